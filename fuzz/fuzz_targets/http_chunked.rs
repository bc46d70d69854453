//! `cmr-recv --http`: arbitrary bytes as a chunked request body (RFC 9112 7.1) after a
//! fixed head, so that the fuzzer spends its time in chunk sizes, extensions and trailers.
#![no_main]

use cmr::transport::http::{self, HttpOptions};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let opts = HttpOptions {
        deadline: Duration::from_secs(5),
        max_body_bytes: 64 * 1024,
        inetd: false,
        ..HttpOptions::default()
    };
    let state = std::path::Path::new("/nonexistent/cmr-fuzz/state.sqlite");
    let mut req = b"POST / HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(data);
    let mut out = Vec::new();
    let _ = http::serve(&req[..], &mut out, Some(state), &opts);
    assert!(
        out.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
});
