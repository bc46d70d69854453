//! The receiving side of one HTTP/1.x request (RFC 9112): the head parsed by `httparse`
//! (the parser under hyper), the body read bounded (Content-Length or chunked, chunk sizes
//! by `httparse` too), the message taken out of its RFC 1867 upload and routed.

use super::handshake_glue;
use super::reply::{header_safe, io_reply, write_reply, Reply};
use super::HttpOptions;
use crate::exit::Failure;
use crate::route::{self, Decision, Outcome, Transport};
use crate::state::State;
use crate::transport::multipart;
use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

/// One request on one stream.
pub(super) fn serve_stream<S: Read + Write>(
    s: &mut S,
    state_path: Option<&Path>,
    opts: &HttpOptions,
    via: Transport,
) -> Result<(), Failure> {
    let mut r = BufReader::with_capacity(64 * 1024, s);
    let mut unread: u64 = 0;
    let reply = handle(&mut r, state_path, opts, via, &mut unread);
    if reply.status == 0 {
        return Ok(());
    }
    let written = write_reply(r.get_mut(), &reply);
    // A short body we did not read (an early 405/413...): take it off the socket so
    // closing does not reset the connection before the client has read our answer.
    if written.is_ok() && unread > 0 && unread <= 256 * 1024 {
        let _ = io::copy(&mut (&mut r).take(unread), &mut io::sink());
    }
    if let Err(e) = written {
        let f = Failure::from(e).context("writing the HTTP answer");
        return Err(reply.failure.unwrap_or(f));
    }
    match reply.failure {
        None => Ok(()),
        Some(f) => Err(f),
    }
}

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct Request {
    pub method: String,
    pub target: String,
    pub minor: u8,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        let name = name.to_string();
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.as_str())
    }
}

/// Read the request line and headers, up to and including the empty line. Only the end of
/// the head is looked for here; `httparse` parses it.
fn read_head(r: &mut impl BufRead, max: usize) -> Result<Vec<u8>, Reply> {
    let mut head = Vec::new();
    let mut seen = 0usize;
    loop {
        let buf = r
            .fill_buf()
            .map_err(|e| io_reply(e, "reading the request"))?;
        if buf.is_empty() {
            if seen == 0 {
                // Connected and closed without a byte (a port probe): nothing to answer.
                return Err(Reply::nothing());
            }
            return Err(Reply::error(
                400,
                format!("request head truncated after {seen} bytes"),
            ));
        }
        let mut used = 0;
        for &c in buf.iter() {
            used += 1;
            seen += 1;
            if seen > max {
                r.consume(used);
                return Err(Reply::error(
                    431,
                    format!("request head larger than {max} bytes"),
                ));
            }
            // RFC 9112 2.2: ignore empty lines before the request line.
            if head.is_empty() && (c == b'\r' || c == b'\n') {
                continue;
            }
            head.push(c);
            if c == b'\n' && (head.ends_with(b"\n\r\n") || head.ends_with(b"\n\n")) {
                r.consume(used);
                return Ok(head);
            }
        }
        r.consume(used);
    }
}

/// Parse the request line and header fields (RFC 9112) with `httparse`: strict request
/// line (single spaces, a token method, HTTP/1.0 or 1.1), no obsolete line folding, token
/// field names. Then what httparse leaves to its caller: a target of visible ASCII only,
/// UTF-8 field values, and 505 (not 400) for another HTTP version.
pub(crate) fn parse_head(head: &[u8], max_headers: usize) -> Result<Request, Reply> {
    let mut fields = vec![httparse::EMPTY_HEADER; max_headers];
    let mut req = httparse::Request::new(&mut fields);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(Reply::error(400, "request head truncated")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Reply::error(
                431,
                format!("more than {max_headers} header fields"),
            ))
        }
        Err(httparse::Error::Version) if other_http_version(head) => {
            return Err(Reply::error(505, "unsupported HTTP version"))
        }
        Err(e) => {
            let line = head.split(|&c| c == b'\n').next().unwrap_or_default();
            return Err(Reply::error(
                400,
                format!(
                    "malformed request head ({e}); request line {:?}",
                    header_safe(&String::from_utf8_lossy(line))
                ),
            ));
        }
    }
    let (method, target) = (req.method.unwrap_or(""), req.path.unwrap_or(""));
    if target.is_empty() || target.bytes().any(|c| !(33..=126).contains(&c)) {
        return Err(Reply::error(
            400,
            format!("malformed request target {:?}", header_safe(target)),
        ));
    }
    let mut headers = Vec::with_capacity(req.headers.len());
    for (i, h) in req.headers.iter().enumerate() {
        let v = std::str::from_utf8(h.value)
            .map_err(|_| Reply::error(400, format!("header line {}: value is not UTF-8", i + 2)))?;
        headers.push((h.name.to_string(), v.trim_matches([' ', '\t']).to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        minor: req.version.unwrap_or(1),
        headers,
    })
}

/// True when the request line ends in a well-formed `HTTP/d.d` that is not 1.0 or 1.1.
fn other_http_version(head: &[u8]) -> bool {
    let line = head.split(|&c| c == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let v = line.rsplit(|&c| c == b' ').next().unwrap_or_default();
    v.len() == 8
        && v.starts_with(b"HTTP/")
        && v[5].is_ascii_digit()
        && v[6] == b'.'
        && v[7].is_ascii_digit()
}

fn handle<S: Read + Write>(
    r: &mut BufReader<S>,
    state_path: Option<&Path>,
    opts: &HttpOptions,
    via: Transport,
    unread: &mut u64,
) -> Reply {
    let head = match read_head(r, opts.max_header_bytes) {
        Ok(h) => h,
        Err(reply) => return reply,
    };
    let req = match parse_head(&head, opts.max_headers) {
        Ok(q) => q,
        Err(reply) => return reply,
    };
    if let Some(n) = req
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        *unread = n;
    }
    match req.method.as_str() {
        "POST" => post(r, &req, state_path, opts, via, unread),
        "GET" => handshake_glue::get(&req, state_path, opts),
        m => Reply::error(
            405,
            format!("method {m} not allowed: POST a message, or GET for the A4.5 handshake"),
        ),
    }
}

fn post<S: Read + Write>(
    r: &mut BufReader<S>,
    req: &Request,
    state_path: Option<&Path>,
    opts: &HttpOptions,
    via: Transport,
    unread: &mut u64,
) -> Reply {
    let body = match read_body(r, req, opts.max_body_bytes, unread) {
        Ok(b) => b,
        Err(rep) => return rep,
    };
    *unread = 0;
    let msg = match upload_message(req, &body) {
        Ok(m) => m,
        Err(rep) => return rep,
    };
    if msg.is_empty() {
        return Reply::error(400, "empty message");
    }
    route_message(state_path, &msg, via, opts)
}

/// The request body: chunked or Content-Length, at most `max` bytes. `unread` is set to 0
/// where what is left on the stream must not be read (RFC 9112 6.3: the framing is in doubt,
/// or the client waits for our word before sending it).
fn read_body<S: Read + Write>(
    r: &mut BufReader<S>,
    req: &Request,
    max: usize,
    unread: &mut u64,
) -> Result<Vec<u8>, Reply> {
    let te = req.header("transfer-encoding");
    let lengths: Vec<&str> = req.all("content-length").collect();
    if te.is_some() && !lengths.is_empty() {
        // RFC 9112 6.3: both present is a smuggling attempt or a broken client.
        *unread = 0;
        return Err(Reply::error(
            400,
            "both Transfer-Encoding and Content-Length",
        ));
    }
    let expect_continue = match req.header("expect") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("100-continue") => req.minor == 1,
        Some(v) => return Err(Reply::error(417, format!("unsupported expectation {v:?}"))),
    };
    if let Some(te) = te {
        if !te.eq_ignore_ascii_case("chunked") {
            return Err(Reply::error(
                501,
                format!("unsupported Transfer-Encoding {te:?} (only chunked)"),
            ));
        }
        send_continue(r, expect_continue)?;
        return read_chunked(r, max);
    }
    let n = content_length(&lengths, unread)?;
    if n > max as u64 {
        if expect_continue {
            // The client waits for our word before sending the body.
            *unread = 0;
        }
        return Err(Reply::error(
            413,
            format!("body of {n} bytes is larger than the limit of {max} bytes"),
        ));
    }
    send_continue(r, expect_continue)?;
    read_sized(r, n, unread)
}

/// `100 Continue` when the client asked for it.
fn send_continue<S: Read + Write>(r: &mut BufReader<S>, wanted: bool) -> Result<(), Reply> {
    if wanted {
        let w = r.get_mut();
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .and_then(|_| w.flush())
            .map_err(|e| io_reply(e, "writing 100 Continue"))?;
    }
    Ok(())
}

/// The one Content-Length (repeated fields must agree: RFC 9110 8.6).
fn content_length(lengths: &[&str], unread: &mut u64) -> Result<u64, Reply> {
    match lengths {
        [] => Err(Reply::error(
            411,
            "POST needs a Content-Length (or chunked Transfer-Encoding)",
        )),
        [first, rest @ ..] => {
            if first.is_empty() || !first.bytes().all(|c| c.is_ascii_digit()) || first.len() > 19 {
                *unread = 0;
                return Err(Reply::error(
                    400,
                    format!("malformed Content-Length {first:?}"),
                ));
            }
            if rest.iter().any(|v| v != first) {
                *unread = 0;
                return Err(Reply::error(400, "conflicting Content-Length fields"));
            }
            Ok(first.parse::<u64>().unwrap_or(u64::MAX))
        }
    }
}

/// Exactly `n` bytes of body.
fn read_sized(r: &mut impl BufRead, n: u64, unread: &mut u64) -> Result<Vec<u8>, Reply> {
    let mut body = Vec::with_capacity(n as usize);
    match r.take(n).read_to_end(&mut body) {
        Ok(_) if body.len() as u64 == n => Ok(body),
        Ok(_) => {
            *unread = 0;
            Err(Reply::error(
                400,
                format!("body truncated: got {} of {n} bytes", body.len()),
            ))
        }
        Err(e) => {
            *unread = 0;
            Err(io_reply(
                e,
                &format!("reading the body (got {} of {n} bytes)", body.len()),
            ))
        }
    }
}

/// The message in a POST body: the file part of a multipart/form-data upload (RFC 1867, as
/// A4.2 says), or the whole body for any other type (`curl --data-binary @msg`).
fn upload_message<'b>(req: &Request, body: &'b [u8]) -> Result<Cow<'b, [u8]>, Reply> {
    let ct = req.header("content-type").unwrap_or("");
    match multipart::boundary_of(ct) {
        Some(Err(e)) => Err(Reply::error(400, e)),
        Some(Ok(b)) => {
            let mut parts =
                multipart::parse(body, &b).map_err(|e| Reply::error(400, e.to_string()))?;
            let i = multipart::message_index(&parts)
                .ok_or_else(|| Reply::error(400, "multipart body without parts"))?;
            Ok(parts.swap_remove(i).data)
        }
        None => Ok(Cow::Borrowed(body)),
    }
}

/// RFC 9112 7.1 chunked transfer coding, bounded: at most `max` bytes of data, chunk-size
/// lines (parsed by `httparse::parse_chunk_size`) and trailers bounded too.
fn read_chunked(r: &mut impl BufRead, max: usize) -> Result<Vec<u8>, Reply> {
    let mut body = Vec::new();
    loop {
        let l = chunk_line(r, "chunked body: chunk size")?;
        let bad = || {
            Reply::error(
                400,
                format!(
                    "chunked body: bad chunk size {:?}",
                    header_safe(&String::from_utf8_lossy(&l))
                ),
            )
        };
        // httparse reads an empty size as 0: a size has at least one digit.
        if !l.first().is_some_and(u8::is_ascii_hexdigit) {
            return Err(bad());
        }
        let size = match httparse::parse_chunk_size(&l) {
            Ok(httparse::Status::Complete((_, size))) => size,
            _ => return Err(bad()),
        };
        if size == 0 {
            break;
        }
        if body.len() as u64 + size > max as u64 {
            return Err(Reply::error(
                413,
                format!("chunked body larger than the limit of {max} bytes"),
            ));
        }
        let start = body.len();
        (&mut *r)
            .take(size)
            .read_to_end(&mut body)
            .map_err(|e| io_reply(e, "chunked body"))?;
        if (body.len() - start) as u64 != size {
            return Err(Reply::error(400, "chunked body truncated inside a chunk"));
        }
        if chunk_line(r, "chunked body: chunk end")? != b"\r\n" {
            return Err(Reply::error(
                400,
                "chunked body: chunk not followed by CRLF",
            ));
        }
    }
    // Trailer fields, ignored, bounded.
    for _ in 0..64 {
        if chunk_line(r, "chunked body: trailer")? == b"\r\n" {
            return Ok(body);
        }
    }
    Err(Reply::error(400, "chunked body: too many trailer fields"))
}

/// One line of the chunked framing with its CR LF (a bare LF is taken as CR LF), at most
/// 4096 bytes.
fn chunk_line(r: &mut impl BufRead, what: &str) -> Result<Vec<u8>, Reply> {
    let mut v = Vec::new();
    (&mut *r)
        .take(4096)
        .read_until(b'\n', &mut v)
        .map_err(|e| io_reply(e, what))?;
    if !v.ends_with(b"\n") {
        return Err(if v.len() >= 4096 {
            Reply::error(400, format!("{what}: line too long"))
        } else {
            Reply::error(400, format!("{what}: truncated"))
        });
    }
    if !v.ends_with(b"\r\n") {
        v.pop();
        v.extend_from_slice(b"\r\n");
    }
    Ok(v)
}

/// Route one message and turn the decision into an answer.
pub(super) fn route_message(
    state_path: Option<&Path>,
    msg: &[u8],
    via: Transport,
    opts: &HttpOptions,
) -> Reply {
    let mut state = match State::open_existing(state_path) {
        Ok(s) => s,
        Err(f) => return Reply::from_failure(f, opts.retry_after_secs),
    };
    match route::receive(&mut state, msg, via, &opts.route) {
        Ok(d) => decision_reply(&d),
        Err(f) => Reply::from_failure(f, opts.retry_after_secs),
    }
}

fn decision_reply(d: &Decision) -> Reply {
    let result = |text: &str| {
        let mut r = Reply::ok(&format!("{text}\n"));
        r.headers.push(("X-CMR-Result", text.to_string()));
        r
    };
    match d.outcome {
        Outcome::Accepted | Outcome::Posted => result("accepted"),
        // A retry of a message we already hold: success, nothing done twice.
        Outcome::Duplicate => result("duplicate"),
        Outcome::KeyExchange => result("key-exchange"),
        Outcome::Rejected => {
            let reason = d.reason.as_deref().unwrap_or("rejected");
            let mut r = Reply::error(400, format!("rejected: {reason}"));
            // the other implementation's name for the same thing, for its operators
            r.headers.push((
                "X-CMR-Drop-Reason",
                header_safe(&format!("rejected: {reason}")),
            ));
            if let Some(code) = &d.reason_code {
                r.headers.push(("X-CMR-Reason", header_safe(code)));
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_parsing() {
        let r = parse_head(
            b"POST /cmr?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length:  5 \r\n\r\n",
            10,
        )
        .unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.target, "/cmr?x=1");
        assert_eq!(r.header("content-length"), Some("5"));
        for bad in [
            &b"GET / HTTP/1.1 extra\r\n\r\n"[..],
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET /\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: a\r\n\r\n",
            b"GET / FTP/1.0\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n",
        ] {
            let e = parse_head(bad, 10).unwrap_err();
            assert_eq!(e.status, 400, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            parse_head(b"GET / HTTP/2.0\r\n\r\n", 10)
                .unwrap_err()
                .status,
            505
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\n\r\n", 1)
                .unwrap_err()
                .status,
            431
        );
    }

    #[test]
    fn chunked_decoding() {
        let mut r = io::Cursor::new(&b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n"[..]);
        assert_eq!(read_chunked(&mut r, 100).unwrap(), b"Wikipedia");
        let mut r = io::Cursor::new(&b"4\nWiki\n0\n\n"[..]);
        assert_eq!(read_chunked(&mut r, 100).unwrap(), b"Wiki", "bare LF");
        let mut r = io::Cursor::new(&b"4\r\nWiki\r\n5\r\nped"[..]);
        assert_eq!(read_chunked(&mut r, 100).unwrap_err().status, 400);
        let mut r = io::Cursor::new(&b"40\r\n"[..]);
        assert_eq!(read_chunked(&mut r, 10).unwrap_err().status, 413);
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b";x\r\n",
            b"ffffffffffffffffffff\r\n",
        ] {
            let mut r = io::Cursor::new(bad);
            assert_eq!(read_chunked(&mut r, 10).unwrap_err().status, 400);
        }
    }
}
