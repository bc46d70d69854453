//! multipart/form-data for the HTTP ingress: cmr's own parser (src/transport/multipart.rs)
//! against mail-parser's MIME multipart (already a dependency, for mail ingress), on the
//! points that decide which one the HTTP server uses: the bytes of the message part must
//! come through unchanged whatever the part's type (a CMR signature covers them), a
//! truncated upload must be refused rather than routed, and speed.
//!
//! Run: `cargo bench --bench multipart` (prints the table; nothing is asserted here, the
//! unit tests of multipart.rs assert the behaviour).

use cmr::transport::multipart;
use std::time::Instant;

const B: &str = "cmr-5b0c1f";

fn upload(part_headers: &str, data: &[u8], close: bool) -> Vec<u8> {
    let mut v = format!("--{B}\r\n{part_headers}\r\n\r\n").into_bytes();
    v.extend_from_slice(data);
    if close {
        v.extend_from_slice(format!("\r\n--{B}--\r\n").as_bytes());
    }
    v
}

/// cmr's parser: the message part's bytes, or why the upload was refused.
fn ours(body: &[u8]) -> Result<Vec<u8>, String> {
    let parts = multipart::parse(body, B).map_err(|e| e.to_string())?;
    let p = multipart::message_part(&parts).ok_or("no part")?;
    Ok(p.data.to_vec())
}

/// mail-parser: the HTTP Content-Type as a MIME header in front of the body, then the
/// first leaf part's decoded contents (as src/transport/mail.rs takes them).
fn theirs(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut m = format!("Content-Type: multipart/form-data; boundary={B}\r\n\r\n").into_bytes();
    m.extend_from_slice(body);
    let parsed = mail_parser::MessageParser::default()
        .parse(&m[..])
        .ok_or("not parsed")?;
    let part = parsed
        .parts
        .iter()
        .find(|p| !p.is_multipart())
        .ok_or("no part")?;
    Ok(part.contents().to_vec())
}

fn time(n: usize, f: impl Fn() -> usize) -> f64 {
    let t = Instant::now();
    let mut sink = 0;
    for _ in 0..n {
        sink += f();
    }
    assert!(sink > 0);
    t.elapsed().as_secs_f64() / n as f64 * 1e6
}

fn main() {
    let msg =
        b"0\r\n2026/01/01 00:00:01 http://a.example/\r\n\r\n14\r\nhello \xff\xfe world".to_vec();
    let octet = "Content-Disposition: form-data; name=\"file\"; filename=\"cmr.msg\"\r\nContent-Type: application/octet-stream";
    let text = "Content-Disposition: form-data; name=\"file\"; filename=\"cmr.msg\"\r\nContent-Type: text/plain; charset=iso-8859-1";
    let untyped = "Content-Disposition: form-data; name=\"file\"";
    let cases: [(&str, Vec<u8>); 4] = [
        (
            "octet-stream part, non-UTF-8 body",
            upload(octet, &msg, true),
        ),
        (
            "text/plain;charset=iso-8859-1 part",
            upload(text, &msg, true),
        ),
        (
            "part without Content-Type (RFC 7578: text/plain)",
            upload(untyped, &msg, true),
        ),
        ("truncated: no closing boundary", upload(octet, &msg, false)),
    ];
    println!(
        "{:<50} {:<28} {:<28}",
        "case", "multipart.rs", "mail-parser"
    );
    for (name, body) in &cases {
        let show = |r: Result<Vec<u8>, String>| match r {
            Ok(b) if b == msg => "taken, bytes unchanged".to_string(),
            Ok(b) => format!("taken, CHANGED ({} bytes)", b.len()),
            Err(_) => "refused".to_string(),
        };
        println!(
            "{name:<50} {:<28} {:<28}",
            show(ours(body)),
            show(theirs(body))
        );
    }
    let big: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    for (name, data, n) in [
        ("200-byte message", msg.clone(), 20_000),
        ("1 MiB binary part", big, 200),
    ] {
        let body = upload(octet, &data, true);
        let a = time(n, || ours(&body).map(|v| v.len()).unwrap_or(1));
        let b = time(n, || theirs(&body).map(|v| v.len()).unwrap_or(1));
        println!("{name:<50} {a:>10.1} us/upload {b:>14.1} us/upload");
    }
}
