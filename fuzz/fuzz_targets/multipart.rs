//! multipart/form-data (RFC 7578) uploads to `cmr-recv --http`: the first line of the input
//! is the Content-Type value, the rest the body. Never panics; every part's data lies
//! within bounds.
#![no_main]

use cmr::transport::multipart;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (ct, body) = match data.iter().position(|&c| c == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let ct = String::from_utf8_lossy(ct);
    let _ = multipart::header_params(&ct);
    let boundary = match multipart::boundary_of(&ct) {
        Some(Ok(b)) => b,
        _ => "fuzzboundary".to_string(),
    };
    if let Ok(parts) = multipart::parse(body, &boundary) {
        for p in &parts {
            // Decoded data (base64 undone) is never longer than the body it came from.
            assert!(p.data.len() <= body.len());
        }
        let _ = multipart::message_part(&parts);
    }
    // Our own uploads parse back to exactly what they carry.
    let (up, ct) = multipart::build_upload(body);
    let b = match multipart::boundary_of(&ct) {
        Some(Ok(b)) => b,
        other => panic!("our Content-Type {ct:?} names no boundary: {other:?}"),
    };
    let parts = multipart::parse(&up, &b).expect("our upload parses");
    let m = multipart::message_part(&parts).expect("it has the message part");
    assert_eq!(&m.data[..], body);
});
