//! Arbitrary bytes into the multipart/form-data decoder the HTTP ingress keeps by hand
//! (src/transport/multipart.rs): it never panics, every part it returns lies inside the
//! body (or is base64 decoded), and an upload it builds parses back to the same bytes.
#![no_main]

use cmr::transport::multipart;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks how much of the input is a Content-Type, the rest is the body.
    let (ct, body) = match data.split_first() {
        Some((&n, rest)) => rest.split_at((n as usize).min(rest.len())),
        None => (&data[..0], &data[..0]),
    };
    if let Some(Ok(boundary)) = multipart::boundary_of(&String::from_utf8_lossy(ct)) {
        if let Ok(parts) = multipart::parse(body, &boundary) {
            assert!(!parts.is_empty() && parts.len() <= multipart::MAX_PARTS);
            assert!(multipart::message_index(&parts).is_some());
        }
    }
    let _ = multipart::parse(data, "b");
    // What we send, the receiver reads back byte for byte.
    let (upload, content_type) = multipart::build_upload(data);
    let boundary = multipart::boundary_of(&content_type).unwrap().unwrap();
    let parts = multipart::parse(&upload, &boundary).unwrap();
    assert_eq!(
        &parts[multipart::message_index(&parts).unwrap()].data[..],
        data
    );
});
