//! The answer to one HTTP request: status, headers (the reason of a refusal in
//! `X-CMR-Error`), body, and what the tool reports when it was not a success.

use crate::exit::{self, Failure};
use std::io::{self, Write};

/// The answer to one request.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// What the tool reports (and logs) when the request did not succeed.
    pub failure: Option<Failure>,
}

impl Reply {
    pub fn ok(text: &str) -> Reply {
        Reply {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: text.as_bytes().to_vec(),
            failure: None,
        }
    }

    /// No answer at all: the client sent nothing.
    pub fn nothing() -> Reply {
        Reply {
            status: 0,
            content_type: "",
            headers: Vec::new(),
            body: Vec::new(),
            failure: None,
        }
    }

    /// An error answer: the reason goes in `X-CMR-Error` and the body.
    pub fn error(status: u16, reason: impl Into<String>) -> Reply {
        let reason = reason.into();
        let code = match status {
            503 => exit::TEMPFAIL,
            408 => exit::TEMPFAIL,
            403 => exit::NOPERM,
            500 => exit::SOFTWARE,
            _ => exit::DATAERR,
        };
        let mut r = Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: vec![("X-CMR-Error", header_safe(&reason))],
            body: format!("{reason}\n").into_bytes(),
            failure: Some(Failure::new(code, format!("HTTP {status}: {reason}"))),
        };
        if status == 405 {
            r.headers.push(("Allow", "GET, POST".into()));
        }
        r
    }

    pub fn unavailable(reason: impl Into<String>, retry_after: u32) -> Reply {
        let mut r = Reply::error(503, reason);
        r.headers.push(("Retry-After", retry_after.to_string()));
        r
    }

    /// A failure from the state file or the router.
    pub fn from_failure(f: Failure, retry_after: u32) -> Reply {
        if f.is_transient() {
            Reply::unavailable(f.message, retry_after)
        } else {
            Reply::error(500, f.message)
        }
    }
}

/// Printable ASCII only, one line, bounded: safe to put in a header.
pub(crate) fn header_safe(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() >= 300 {
            out.push_str("...");
            break;
        }
        match c {
            ' '..='~' => out.push(c),
            '\t' | '\r' | '\n' => out.push(' '),
            c => out.push_str(&c.escape_default().to_string()),
        }
    }
    out
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

pub(super) fn write_reply(w: &mut impl Write, r: &Reply) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
        r.status,
        reason_phrase(r.status),
        r.content_type,
        r.body.len()
    );
    for (n, v) in &r.headers {
        head.push_str(n);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut all = head.into_bytes();
    all.extend_from_slice(&r.body);
    w.write_all(&all)?;
    w.flush()
}

/// The answer to an I/O error while reading `what`.
pub(super) fn io_reply(e: io::Error, what: &str) -> Reply {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            Reply::error(408, format!("{what}: client too slow ({e})"))
        }
        io::ErrorKind::UnexpectedEof => {
            Reply::error(400, format!("{what}: connection closed early"))
        }
        _ => Reply::error(400, format!("{what}: {e}")),
    }
}
