//! `cmr-recv --http`: arbitrary bytes as one HTTP request (head, then a body by
//! Content-Length, chunked or multipart, or a GET query). The server never panics and
//! always writes one well-formed status line (or nothing for an empty connection). No
//! state file exists, so nothing is routed or created.
#![no_main]

use cmr::transport::http::{self, HttpOptions};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let opts = HttpOptions {
        deadline: Duration::from_secs(5),
        max_header_bytes: 4096,
        max_body_bytes: 64 * 1024,
        inetd: false,
        ..HttpOptions::default()
    };
    let state = std::path::Path::new("/nonexistent/cmr-fuzz/state.sqlite");
    let mut out = Vec::new();
    let _ = http::serve(data, &mut out, Some(state), &opts);
    if !out.is_empty() {
        assert!(
            out.starts_with(b"HTTP/1.1 "),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
        let head_end = out.windows(4).position(|w| w == b"\r\n\r\n");
        assert!(head_end.is_some(), "a complete head");
    }
});
