//! The A4.5 handshake over the HTTP server: a GET with `?request=SENDER&key=SECRET` (we
//! are the receiver: fetch the message from the sender and route it) or `?reply=SECRET` (we
//! are the sender: hand over the message we offered). The protocol itself (secrets, the
//! sender's check, the fetch and the offer) is [`crate::transport::handshake`].

use super::reply::{header_safe, Reply};
use super::server::{route_message, Request};
use super::{HttpOptions, PeerOptions};
use crate::route::Transport;
use crate::state::State;
use crate::transport::{handshake, SendError};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use std::path::Path;

/// Decode `application/x-www-form-urlencoded` query parameters (`form_urlencoded`), strictly:
/// that crate keeps a malformed `%` escape as written and turns bytes that are not UTF-8 into
/// U+FFFD, which in an A4.5 URL or secret would only hide a mistake, so both are refused.
pub(crate) fn parse_query(q: &str) -> Result<Vec<(String, String)>, String> {
    let b = q.as_bytes();
    for (i, _) in q.match_indices('%') {
        if !b
            .get(i + 1..i + 3)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        {
            return Err(format!("bad percent escape in {q:?}"));
        }
    }
    if percent_encoding::percent_decode(b).decode_utf8().is_err() {
        return Err(format!("query {q:?} is not UTF-8 once decoded"));
    }
    Ok(form_urlencoded::parse(b)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect())
}

/// Everything but the RFC 3986 unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encode a query value (everything but RFC 3986 unreserved characters).
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// A GET: the A4.5 handshake, either side.
pub(super) fn get(req: &Request, state_path: Option<&Path>, opts: &HttpOptions) -> Reply {
    let query = req.target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let params = match parse_query(query) {
        Ok(p) => p,
        Err(e) => return Reply::error(400, e),
    };
    let one = |name: &str| -> Result<Option<&str>, Reply> {
        let mut it = params.iter().filter(|(n, _)| n == name);
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return Err(Reply::error(400, format!("parameter {name} given twice")));
        }
        Ok(first)
    };
    let (reply, request, key) = match (one("reply"), one("request"), one("key")) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    match (reply, request, key) {
        (Some(secret), None, None) => handshake_reply(secret, state_path, opts),
        (None, Some(sender), Some(key)) => handshake_request(sender, key, state_path, opts),
        (None, Some(_), None) => Reply::error(400, "A4.5 request without key="),
        _ => Reply::error(
            400,
            "GET takes ?request=SENDER&key=SECRET or ?reply=SECRET (A4.5); POST a message",
        ),
    }
}

/// A4.5, our side as the sender: "Alice replies to the request with a web page of
/// Content-Type: text/plain containing the unsigned message." Once: the entry is deleted
/// in the same transaction that reads it.
fn handshake_reply(secret: &str, state_path: Option<&Path>, opts: &HttpOptions) -> Reply {
    if let Err(e) = handshake::check_secret(secret) {
        return Reply::error(400, e);
    }
    let mut state = match State::open_existing(state_path) {
        Ok(s) => s,
        Err(f) => return Reply::from_failure(f, opts.retry_after_secs),
    };
    match handshake::take(&mut state, secret) {
        Ok(Some(bytes)) => Reply {
            status: 200,
            content_type: "text/plain",
            headers: Vec::new(),
            body: bytes,
            failure: None,
        },
        Ok(None) => Reply::error(
            404,
            "no such handshake (unknown, already fetched or expired)",
        ),
        Err(f) => Reply::from_failure(f, opts.retry_after_secs),
    }
}

/// A4.5, our side as the receiver: check that the requester's host is the connecting
/// address, fetch `SENDER?reply=SECRET`, route what comes back as received from SENDER.
/// The answer ("a blank web page") is given after the fetch, so the sender learns whether
/// its message arrived.
fn handshake_request(
    sender: &str,
    key: &str,
    state_path: Option<&Path>,
    opts: &HttpOptions,
) -> Reply {
    if !opts.handshake {
        return Reply::error(403, "the A4.5 handshake is disabled here");
    }
    if let Err(e) = handshake::check_secret(key) {
        return Reply::error(400, e);
    }
    let origin = match handshake::PeerUrl::parse(sender) {
        Ok(u) => u,
        Err(e) => return Reply::error(400, e),
    };
    let peer = match opts.peer {
        Some(p) => p,
        None => {
            return Reply::error(
                403,
                "cannot verify the requester: the connecting address is unknown",
            )
        }
    };
    if let Err(e) = origin.verify(peer) {
        return Reply::error(403, e);
    }
    // The sender's own peer options (e.g. `trust=` for its certificate) apply to the fetch.
    let fetch_opts = match State::open_existing(state_path)
        .and_then(|st| PeerOptions::for_peer(&st, sender, opts.fetch.clone()))
    {
        Ok(o) => PeerOptions {
            handshake: None,
            ..o
        },
        Err(f) => return Reply::from_failure(f, opts.retry_after_secs),
    };
    let bytes = match handshake::fetch(sender, key, &fetch_opts) {
        Ok(b) => b,
        Err(SendError::Transient(m)) => return Reply::unavailable(m, opts.retry_after_secs),
        Err(SendError::Permanent(m)) => return Reply::error(400, m),
    };
    // "routes the fetched message as received from that sender": its first header line
    // must name the requester.
    if let Ok(m) = crate::wire::parse(&bytes, &crate::wire::Rules::unchecked_time()) {
        if m.sender().address != sender.as_bytes() {
            return Reply::error(
                400,
                format!(
                    "fetched message is from {}, not from the requester {sender}",
                    header_safe(&m.sender().address_str())
                ),
            );
        }
    }
    let via = if origin.https {
        Transport::Https
    } else {
        Transport::Http
    };
    // A4.5 authenticates the sender: its host is the connecting address and the message
    // came from its own server.
    let mut hs_opts = opts.clone();
    hs_opts.route.authenticated_sender = Some(sender.to_string());
    let mut r = route_message(state_path, &bytes, via, &hs_opts);
    if r.status == 200 {
        // "Bob replies with a blank web page".
        r.body.clear();
        r.content_type = "text/plain";
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_codec() {
        let q = format!(
            "request={}&key={}",
            percent_encode("http://a.example/cmr?x=1&y"),
            percent_encode("s e+c")
        );
        assert_eq!(
            q,
            "request=http%3A%2F%2Fa.example%2Fcmr%3Fx%3D1%26y&key=s%20e%2Bc"
        );
        let p = parse_query(&q).unwrap();
        assert_eq!(p[0].1, "http://a.example/cmr?x=1&y");
        assert_eq!(p[1].1, "s e+c");
        assert_eq!(parse_query("a=b+c").unwrap()[0].1, "b c");
        assert_eq!(parse_query("a&&b=").unwrap().len(), 2);
        assert!(parse_query("a=%4").is_err());
        assert!(parse_query("a=%zz").is_err());
        assert!(parse_query("a=%ff").is_err());
    }
}
