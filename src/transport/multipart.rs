//! RFC 1867 file upload (multipart/form-data, RFC 7578) over the RFC 2046 multipart syntax:
//! the format A4.2 names for carrying a message over HTTP.
//!
//! ```text
//! multipart-body := [preamble CRLF] dash-boundary transport-padding CRLF body-part
//!                   *encapsulation close-delimiter transport-padding [CRLF epilogue]
//! encapsulation  := delimiter transport-padding CRLF body-part
//! delimiter      := CRLF dash-boundary          dash-boundary := "--" boundary
//! close-delimiter := delimiter "--"
//! ```
//!
//! Parts are taken byte for byte (binary bodies pass untouched); the whole structure up to
//! the close delimiter is checked, so a truncated upload is refused rather than routed.
//!
//! Why by hand, when mail-parser (already a dependency, for mail ingress) parses MIME
//! multipart: measured with `cargo bench --bench multipart` (benches/multipart.rs), it
//! decodes a text part to UTF-8 by its charset, and RFC 7578 makes a part without a
//! Content-Type text/plain, so a message uploaded as text comes out with other bytes than
//! its signature covers; it takes a truncated upload (no close delimiter) as complete; and
//! it was slower in every run here (a 1 MiB part: 0.6 to 1.3 ms against 1.4 to 3.0 ms, a
//! 200-byte message: 0.6 to 3.7 us against 2.0 to 4.9 us, on a shared 2-core machine). The
//! fuzz target `multipart` (fuzz/fuzz_targets/multipart.rs) runs this decoder.

use std::borrow::Cow;
use std::fmt;

/// Most parts one upload may carry.
pub const MAX_PARTS: usize = 64;
/// Most bytes of one part's header block.
pub const MAX_PART_HEADER: usize = 8 * 1024;

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// `name` of the Content-Disposition, if any.
    pub name: Option<String>,
    /// `filename` of the Content-Disposition, if any.
    pub filename: Option<String>,
    pub content_type: Option<String>,
    /// The part's bytes (base64 transfer encoding undone when declared).
    pub data: std::borrow::Cow<'a, [u8]>,
}

/// Why a multipart body was refused; `offset` counts from the start of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub offset: usize,
    pub what: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "multipart body, byte {}: {}", self.offset, self.what)
    }
}

fn err(offset: usize, what: impl Into<String>) -> Error {
    Error {
        offset,
        what: what.into(),
    }
}

/// Split a header value into its main token and `; name=value` parameters (values may be
/// quoted strings with backslash escapes). Names come back lower-cased.
pub fn header_params(value: &str) -> (String, Vec<(String, String)>) {
    let mut params = Vec::new();
    let (main, mut rest) = match value.find(';') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, ""),
    };
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            break;
        }
        let eq = rest.find(['=', ';']).unwrap_or(rest.len());
        let name = rest[..eq].trim().to_ascii_lowercase();
        if rest[eq..].starts_with('=') {
            let after = rest[eq + 1..].trim_start_matches([' ', '\t']);
            if let Some(q) = after.strip_prefix('"') {
                let mut val = String::new();
                let mut chars = q.char_indices();
                let mut end = q.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                val.push(n);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => val.push(c),
                    }
                }
                params.push((name, val));
                rest = &q[end.min(q.len())..];
            } else {
                let end = after.find(';').unwrap_or(after.len());
                params.push((name, after[..end].trim().to_string()));
                rest = &after[end..];
            }
        } else {
            params.push((name, String::new()));
            rest = &rest[eq..];
        }
    }
    (main.trim().to_ascii_lowercase(), params)
}

/// The boundary of a `multipart/...` Content-Type, checked against RFC 2046 (1 to 70
/// characters, not ending in a space). None when the type is not multipart.
pub fn boundary_of(content_type: &str) -> Option<Result<String, String>> {
    let (main, params) = header_params(content_type);
    if !main.starts_with("multipart/") {
        return None;
    }
    let b = match params.into_iter().find(|(n, _)| n == "boundary") {
        Some((_, b)) => b,
        None => return Some(Err(format!("{main} without a boundary parameter"))),
    };
    // RFC 2046 5.1.1: boundary := 0*69<bchars> bcharsnospace
    if b.is_empty()
        || b.len() > 70
        || b.ends_with(' ')
        || b.bytes().any(|c| !(32..=126).contains(&c))
    {
        return Some(Err(format!("invalid multipart boundary {b:?}")));
    }
    Some(Ok(b))
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = from;
    while i + needle.len() <= hay.len() {
        match hay[i..hay.len() - needle.len() + 1]
            .iter()
            .position(|&c| c == first)
        {
            None => return None,
            Some(p) => {
                i += p;
                if hay[i..].starts_with(needle) {
                    return Some(i);
                }
                i += 1;
            }
        }
    }
    None
}

/// After a (dash-)boundary: transport padding then CRLF (a bare LF is tolerated).
/// Returns the offset of the next line.
fn after_padding(body: &[u8], mut i: usize) -> Result<usize, Error> {
    while i < body.len() && (body[i] == b' ' || body[i] == b'\t') {
        i += 1;
    }
    if body[i..].starts_with(b"\r\n") {
        Ok(i + 2)
    } else if body[i..].starts_with(b"\n") {
        Ok(i + 1)
    } else if i >= body.len() {
        Err(err(i, "truncated after a boundary line"))
    } else {
        Err(err(i, "boundary line not followed by CRLF"))
    }
}

/// Parse a whole multipart body; every part up to the close delimiter.
pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, Error> {
    let mut dash = b"--".to_vec();
    dash.extend_from_slice(boundary.as_bytes());
    // The first dash-boundary: at the very start, or after the preamble's CRLF.
    let mut at = if body.starts_with(&dash) {
        0
    } else {
        let mut delim = b"\n".to_vec();
        delim.extend_from_slice(&dash);
        match find(body, &delim, 0) {
            Some(p) => p + 1,
            None => return Err(err(0, format!("no boundary \"--{boundary}\" found"))),
        }
    };
    let mut delim = b"\r\n".to_vec();
    delim.extend_from_slice(&dash);
    let mut parts = Vec::new();
    loop {
        let after = at + dash.len();
        if body[after..].starts_with(b"--") {
            // close-delimiter: the epilogue after it is ignored.
            if parts.is_empty() {
                return Err(err(at, "no parts before the closing boundary"));
            }
            return Ok(parts);
        }
        if parts.len() == MAX_PARTS {
            return Err(err(at, format!("more than {MAX_PARTS} parts")));
        }
        let start = after_padding(body, after)?;
        let (hdr_end, data_start) = headers_end(body, start)?;
        let mut part = part_headers(&body[start..hdr_end], start)?;
        let end = match find(body, &delim, data_start) {
            Some(p) => p,
            None => {
                return Err(err(
                    body.len(),
                    "truncated: the part has no closing boundary",
                ))
            }
        };
        part.data = part_data(
            &body[data_start..end],
            data_start,
            part_encoding_base64(&body[start..hdr_end]),
        )?;
        parts.push(part);
        at = end + 2;
        if body.len() < at + dash.len() + 2 {
            return Err(err(
                body.len(),
                format!("truncated: no closing boundary \"--{boundary}--\""),
            ));
        }
    }
}

/// Where a part's headers starting at `start` end (an empty line), and its data starts.
fn headers_end(body: &[u8], start: usize) -> Result<(usize, usize), Error> {
    if body[start..].starts_with(b"\r\n") {
        return Ok((start, start + 2));
    }
    if body[start..].starts_with(b"\n") {
        return Ok((start, start + 1));
    }
    let limit = (start + MAX_PART_HEADER).min(body.len());
    match find(&body[..limit], b"\r\n\r\n", start) {
        Some(p) => Ok((p + 2, p + 4)),
        None => match find(&body[..limit], b"\n\n", start) {
            Some(p) => Ok((p + 1, p + 2)),
            None if limit == body.len() => Err(err(start, "truncated in a part's headers")),
            None => Err(err(
                start,
                format!("part headers longer than {MAX_PART_HEADER} bytes"),
            )),
        },
    }
}

/// A part's bytes as they are, or base64-decoded when its headers say so.
fn part_data(data: &[u8], offset: usize, base64: bool) -> Result<Cow<'_, [u8]>, Error> {
    if !base64 {
        return Ok(Cow::Borrowed(data));
    }
    use base64::Engine;
    let clean: Vec<u8> = data
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    match base64::engine::general_purpose::STANDARD.decode(clean) {
        Ok(v) => Ok(Cow::Owned(v)),
        Err(e) => Err(err(offset, format!("bad base64 part: {e}"))),
    }
}

fn part_encoding_base64(hdrs: &[u8]) -> bool {
    String::from_utf8_lossy(hdrs).lines().any(|l| {
        l.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case("content-transfer-encoding")
                && v.trim().eq_ignore_ascii_case("base64")
        })
    })
}

fn part_headers(hdrs: &[u8], offset: usize) -> Result<Part<'static>, Error> {
    let mut part = Part {
        name: None,
        filename: None,
        content_type: None,
        data: std::borrow::Cow::Borrowed(&[]),
    };
    let text = String::from_utf8_lossy(hdrs);
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let (name, value) = match line.split_once(':') {
            Some(nv) => nv,
            None => {
                return Err(err(
                    offset,
                    format!("part header without a colon: {line:?}"),
                ))
            }
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "content-disposition" => {
                let (_, params) = header_params(value);
                for (n, v) in params {
                    match n.as_str() {
                        "name" => part.name = Some(v),
                        "filename" => part.filename = Some(v),
                        _ => {}
                    }
                }
            }
            "content-type" => part.content_type = Some(value.trim().to_string()),
            "content-transfer-encoding" => {
                let enc = value.trim().to_ascii_lowercase();
                if !matches!(enc.as_str(), "binary" | "8bit" | "7bit" | "base64") {
                    return Err(err(
                        offset,
                        format!("unsupported Content-Transfer-Encoding {enc}"),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(part)
}

/// The part carrying the message: the first file part (one with a filename), else the
/// first part. Any field name is accepted.
pub fn message_part<'p, 'a>(parts: &'p [Part<'a>]) -> Option<&'p Part<'a>> {
    message_index(parts).map(|i| &parts[i])
}

/// Where [`message_part`] is in `parts`.
pub fn message_index(parts: &[Part<'_>]) -> Option<usize> {
    parts
        .iter()
        .position(|p| p.filename.is_some())
        .or(if parts.is_empty() { None } else { Some(0) })
}

/// A fresh boundary that does not occur in `data`.
pub fn new_boundary(data: &[u8]) -> String {
    use rand::Rng;
    loop {
        let r: [u8; 16] = rand::thread_rng().gen();
        let b = format!("cmr-{}", crate::wire::hex(&r));
        if find(data, b.as_bytes(), 0).is_none() {
            return b;
        }
    }
}

/// The body and Content-Type of a one-file upload: as the reference implementation expects,
/// one part named "file", filename "cmr.msg", type application/octet-stream.
pub fn build_upload(data: &[u8]) -> (Vec<u8>, String) {
    let b = new_boundary(data);
    let mut v = Vec::with_capacity(data.len() + 200);
    v.extend_from_slice(format!("--{b}\r\n").as_bytes());
    v.extend_from_slice(b"Content-Disposition: form-data; name=\"file\"; filename=\"cmr.msg\"\r\n");
    v.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
    v.extend_from_slice(data);
    v.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    (v, format!("multipart/form-data; boundary={b}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_binary() {
        let data: Vec<u8> = (0..=255u8).chain(b"\r\n--x\r\n".iter().copied()).collect();
        let (body, ct) = build_upload(&data);
        let b = boundary_of(&ct).unwrap().unwrap();
        let parts = parse(&body, &b).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].name.as_deref(), Some("file"));
        assert_eq!(parts[0].filename.as_deref(), Some("cmr.msg"));
        assert_eq!(&*parts[0].data, &data[..]);
    }

    #[test]
    fn preamble_epilogue_quoted_boundary_padding() {
        let body = b"This is the preamble.\r\n--a b\t \r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--a b\r\nContent-Disposition: form-data; name=\"up\"; filename=\"m.txt\"\r\nContent-Type: text/plain\r\n\r\nDATA\r\n--a b--  \r\nepilogue --a b\r\n";
        let b = boundary_of("multipart/form-data; charset=utf-8; boundary=\"a b\"")
            .unwrap()
            .unwrap();
        assert_eq!(b, "a b");
        let parts = parse(body, &b).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(&*parts[0].data, b"hi");
        let p = message_part(&parts).unwrap();
        assert_eq!(p.filename.as_deref(), Some("m.txt"));
        assert_eq!(&*p.data, b"DATA");
    }

    #[test]
    fn truncated_is_refused() {
        let (body, ct) = build_upload(b"0\r\n2024/01/01 00:00:00 x\r\n\r\n1\r\nA");
        let b = boundary_of(&ct).unwrap().unwrap();
        for cut in [10, 60, body.len() - 20, body.len() - 4, body.len() - 3] {
            assert!(parse(&body[..cut], &b).is_err(), "cut at {cut}");
        }
        assert!(parse(&body, &b).is_ok());
        // The CRLF after the close delimiter is optional.
        assert!(parse(&body[..body.len() - 2], &b).is_ok());
        assert!(parse(b"no boundary here", &b).is_err());
    }

    #[test]
    fn base64_part_and_bad_boundaries() {
        let body = b"--q\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n--q--";
        let parts = parse(body, "q").unwrap();
        assert_eq!(&*parts[0].data, b"hello");
        assert!(boundary_of("text/plain").is_none());
        assert!(boundary_of("multipart/form-data").unwrap().is_err());
        assert!(
            boundary_of(&format!("multipart/form-data; boundary={}", "x".repeat(71)))
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn never_panics_on_garbage() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet = b"-\r\n ab:;=\"";
        for _ in 0..20000 {
            let n = rng.gen_range(0..60);
            let v: Vec<u8> = (0..n)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            let _ = parse(&v, "a");
            let _ = header_params(&String::from_utf8_lossy(&v));
        }
    }
}
