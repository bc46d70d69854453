//! The A4.5 handshake query: arbitrary bytes as the query of `GET /?...` (request=SENDER,
//! key=SECRET, reply=SECRET), and as the sender URL and secret on their own. Never panics;
//! the server answers with one status line. Nothing is resolved or fetched.
#![no_main]

use cmr::transport::handshake::{self, PeerUrl};
use cmr::transport::http::{self, HttpOptions};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = handshake::check_secret(&text);
    // (PeerUrl::verify resolves the host name: not here, fuzzing makes no DNS queries.)
    let _ = PeerUrl::parse(&text);
    // As a request target: the query as sent (no CR, LF or space in a request line).
    let q: Vec<u8> = data
        .iter()
        .copied()
        .filter(|&c| c != b'\r' && c != b'\n' && c != b' ')
        .collect();
    let mut req = b"GET /?".to_vec();
    req.extend_from_slice(&q);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: fuzz\r\n\r\n");
    let opts = HttpOptions {
        deadline: Duration::from_secs(5),
        handshake: true,
        // No connecting address: the server refuses before it resolves the sender's host.
        peer: None,
        inetd: false,
        ..HttpOptions::default()
    };
    let state = std::path::Path::new("/nonexistent/cmr-fuzz/state.sqlite");
    let mut out = Vec::new();
    let _ = http::serve(&req[..], &mut out, Some(state), &opts);
    assert!(
        out.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        !out.starts_with(b"HTTP/1.1 200"),
        "nothing to fetch without a state file"
    );
});
