//! A4.2 HTTP and A4.3 HTTPS transports, both sides.
//!
//! A4.2: "Messages are sent as plain text files using file upload protocol as described in
//! RFC 1867." A4.3: "The protocol for HTTPS is the same as for HTTP."
//!
//! Receiving ([`serve`], [`serve_tls`], [`serve_stdio`]): one HTTP/1.0 or 1.1 request per
//! process, as inetd/xinetd `nowait` runs it, the socket on stdin/stdout. A POST carries the
//! message as a multipart/form-data upload (any field name) or as the raw request body; a GET
//! carries the A4.5 handshake ([`super::handshake`]). Status codes:
//!
//! | status | meaning |
//! |--------|---------|
//! | 200 | accepted (or a duplicate of a message already accepted: retries are idempotent) |
//! | 400 | malformed request or message, or rejected by the router; reason in `X-CMR-Error` (and, for a router's rejection, in `X-CMR-Drop-Reason` too) |
//! | 403 | A4.5 request whose sender does not resolve to the connecting address |
//! | 404 | A4.5 reply secret unknown, used or expired |
//! | 405 | a method other than GET and POST |
//! | 408 | the client was too slow (per-read timeout or whole-request deadline) |
//! | 411 | POST without Content-Length or chunked Transfer-Encoding |
//! | 413 | body larger than the limit |
//! | 431 | request head larger than the limit |
//! | 500 | internal error |
//! | 501 | a Transfer-Encoding other than chunked |
//! | 503 | transient trouble (state file busy, disk full, peer unreachable): retry after `Retry-After` |
//!
//! Sending ([`send`]): POST as an RFC 1867 upload with one part `name="file"`,
//! `filename="cmr.msg"`, `application/octet-stream`. 2xx is success, and so is a refusal
//! saying the peer already holds the message (`duplicate message id`); 5xx, 408, 429 and
//! connection trouble (a timeout after the body was sent included) are transient; other
//! statuses are permanent, with the server's reason (`X-CMR-Error` or `X-CMR-Drop-Reason`).
//!
//! Layout: the options of both sides here; [`inetd`] runs one connection per process (plain
//! or TLS), [`server`] reads and answers one request, [`handshake_glue`] answers the A4.5
//! GETs, [`client`] sends, [`reply`] is the answer's shape.

use super::handshake;
pub use super::SendError;
use crate::exit::Failure;
use crate::route::RouteOptions;
use crate::state::State;
use rusqlite::OptionalExtension;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod client;
mod handshake_glue;
mod inetd;
mod reply;
mod server;

pub use client::send;
pub(crate) use client::{agent, check_status, classify, delivery_status};
pub use handshake_glue::percent_encode;
pub use inetd::{serve, serve_stdio, serve_tls, server_config};

/// How one peer is reached over HTTP(S) (per destination).
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// The whole exchange, connect to last byte of the answer.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// PEM file of CA or server certificates to trust for this peer, in addition to the
    /// system roots (a private CA, or the peer's self-signed certificate).
    pub trust_file: Option<PathBuf>,
    /// Use the A4.5 handshake instead of a POST.
    pub handshake: Option<HandshakeOptions>,
    /// Restricted addresses that may be connected to anyway (setting `send_allow`).
    pub allow: crate::netaddr::Allow,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            trust_file: None,
            handshake: None,
            allow: crate::netaddr::Allow::default(),
        }
    }
}

impl PeerOptions {
    /// Apply a peer's HTTP options, as kept in the `options` text of its row in `peers`
    /// (whitespace-separated `key=value`):
    ///
    /// - `trust=FILE`: PEM file of CA or server certificates to trust for this peer
    /// - `timeout=SECS`, `connect_timeout=SECS`
    /// - `handshake=OUR-URL`: deliver with the A4.5 handshake; OUR-URL is the address our
    ///   own `cmr-recv --http` answers at, reading the state file `state_path`
    /// - `handshake_expiry=SECS`: how long the message waits to be fetched
    ///
    /// Keys of other transports are ignored.
    pub fn with_options(
        mut self,
        text: &str,
        state_path: Option<&Path>,
    ) -> Result<PeerOptions, String> {
        let secs = |k: &str, v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("peer option {k}={v}: expected a number of seconds"))
        };
        let mut expiry = None;
        for item in text.split_whitespace() {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("peer option {item:?}: expected key=value"))?;
            match k {
                "trust" => self.trust_file = Some(PathBuf::from(v)),
                "timeout" => self.timeout = secs(k, v)?,
                "connect_timeout" => self.connect_timeout = secs(k, v)?,
                "handshake" => {
                    handshake::PeerUrl::parse(v)?;
                    let mut hs = HandshakeOptions::new(v);
                    hs.state_path = state_path.map(Path::to_path_buf);
                    self.handshake = Some(hs);
                }
                "handshake_expiry" => expiry = Some(secs(k, v)?),
                _ => {
                    return Err(format!(
                        "peer option {k:?}: unknown; expected trust, timeout, connect_timeout, \
                         handshake or handshake_expiry"
                    ))
                }
            }
        }
        if let (Some(e), Some(hs)) = (expiry, self.handshake.as_mut()) {
            hs.expiry = e;
        }
        Ok(self)
    }

    /// The options for one destination: `base` (e.g. the global timeout) plus what the
    /// peer's row in the state file says.
    pub fn for_peer(state: &State, addr: &str, base: PeerOptions) -> Result<PeerOptions, Failure> {
        let text: Option<String> = state
            .conn()
            .query_row(
                "SELECT options FROM peers WHERE address = ?1",
                [addr],
                |r| r.get(0),
            )
            .optional()
            .map_err(crate::state::db_failure)?
            .flatten();
        let base = PeerOptions {
            allow: base.allow.union(&super::send_allow(state.conn())?),
            ..base
        };
        match text {
            None => Ok(base),
            Some(t) => base
                .with_options(&t, Some(state.path()))
                .map_err(|e| Failure::config(format!("peer {addr}: {e}"))),
        }
    }
}

/// The sending side of the A4.5 handshake.
#[derive(Debug, Clone)]
pub struct HandshakeOptions {
    /// Our own HTTP(S) address, which the receiver fetches `?reply=SECRET` from; our
    /// `cmr-recv --http` there answers from the state file below.
    pub own_address: String,
    /// The state file our `cmr-recv --http` reads (None: the default state file).
    pub state_path: Option<PathBuf>,
    /// How long the message waits to be fetched.
    pub expiry: Duration,
}

impl HandshakeOptions {
    pub fn new(own_address: impl Into<String>) -> Self {
        HandshakeOptions {
            own_address: own_address.into(),
            state_path: None,
            expiry: handshake::DEFAULT_EXPIRY,
        }
    }
}

/// Limits and settings of the receiving side.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Request line plus headers.
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Request body (a multipart upload carries about 200 bytes around the message).
    pub max_body_bytes: usize,
    /// One read (SO_RCVTIMEO on the socket, set by [`serve_stdio`]).
    pub read_timeout: Duration,
    /// The whole request must have arrived within this time (a trickling client cannot
    /// hold the process).
    pub deadline: Duration,
    /// `Retry-After` seconds on 503.
    pub retry_after_secs: u32,
    /// The connecting address (inetd: getpeername on fd 0); A4.5 requests need it.
    pub peer: Option<IpAddr>,
    /// Answer A4.5 `?request=` by fetching the message from the requester.
    pub handshake: bool,
    /// How the A4.5 reply is fetched from the requester.
    pub fetch: PeerOptions,
    pub route: RouteOptions,
    /// When fd 0 is a socket, treat it as inetd's connection: socket timeouts, the peer's
    /// address, the alarm (false for callers that serve other streams in a long-lived
    /// process, such as tests).
    pub inetd: bool,
    /// Serve HTTPS (A4.3): TLS with the certificate chain and key below (PEM files).
    pub https: bool,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Seconds from `$CMR_HTTP_TIMEOUT` (the whole-request deadline; an operator sets it in
/// the inetd service's environment), if set and valid.
fn timeout_from_env() -> Option<Duration> {
    std::env::var("CMR_HTTP_TIMEOUT")
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e6)
        .map(Duration::from_secs_f64)
}

impl Default for HttpOptions {
    /// The limits above; `$CMR_HTTP_TIMEOUT` (seconds) replaces the 30 s request deadline
    /// (and caps the 10 s per-read timeout).
    fn default() -> Self {
        let deadline = timeout_from_env().unwrap_or(Duration::from_secs(30));
        HttpOptions {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: crate::wire::Limits::default().max_message_bytes + 64 * 1024,
            read_timeout: deadline.min(Duration::from_secs(10)),
            deadline,
            retry_after_secs: 60,
            peer: None,
            handshake: true,
            fetch: PeerOptions {
                timeout: Duration::from_secs(20),
                ..PeerOptions::default()
            },
            route: RouteOptions::default(),
            inetd: true,
            https: false,
            cert: None,
            key: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_options_text() {
        let o = PeerOptions::default()
            .with_options(
                "trust=/etc/cmr/bob.pem timeout=5 connect_timeout=1.5 handshake=http://me.example/ handshake_expiry=30",
                Some(Path::new("/s.sqlite")),
            )
            .unwrap();
        assert_eq!(o.trust_file.as_deref(), Some(Path::new("/etc/cmr/bob.pem")));
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert_eq!(o.connect_timeout, Duration::from_millis(1500));
        let hs = o.handshake.unwrap();
        assert_eq!(hs.own_address, "http://me.example/");
        assert_eq!(hs.state_path.as_deref(), Some(Path::new("/s.sqlite")));
        assert_eq!(hs.expiry, Duration::from_secs(30));
        // a misspelt or foreign option is an error, not silently dropped
        let e = PeerOptions::default()
            .with_options("trust=/x.pem ssh_options=x", None)
            .unwrap_err();
        assert!(e.contains("\"ssh_options\": unknown"), "{e}");
        assert!(PeerOptions::default()
            .with_options("timeout=x", None)
            .is_err());
        assert!(PeerOptions::default().with_options("trust", None).is_err());
        assert!(PeerOptions::default()
            .with_options("handshake=mailto:a@b", None)
            .is_err());
    }

    #[test]
    fn header_safety() {
        assert_eq!(reply::header_safe("a\r\nb\u{e9}"), "a  b\\u{e9}");
        assert!(reply::header_safe(&"x".repeat(1000)).len() < 310);
    }
}
