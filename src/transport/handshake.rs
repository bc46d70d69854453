//! A4.5 HTTP handshake: for a sender whose address the receiver cannot otherwise verify.
//!
//! ```text
//! Alice -> Bob:   GET http://bob.com/?request=http://alice.com/&key=SECRET
//! Bob -> Alice:   GET http://alice.com/?reply=SECRET
//! Alice -> Bob:   200 text/plain, the unsigned message
//! Bob -> Alice:   200, a blank page (the answer to Alice's first GET)
//! ```
//!
//! "Alice and Bob discard the key. They use a new key for each message." The sender keeps
//! the message under a fresh random secret in `handshake_reply` in its state file, where its
//! own `cmr-recv --http` finds it; an entry is served once and expires. Everything is
//! bounded: the number of waiting entries, their age, the secret's length, the fetched size.
//!
//! The receiver fetches only from a requester whose host resolves to the connecting
//! address, so the handshake cannot be used to make it fetch from third parties.
//!
//! Order: our receiver answers Alice's GET after fetching and routing (not before, as the
//! spec's wording has it) so the sender learns whether the message arrived. Our sender
//! also works with receivers that answer first and fetch afterwards: on a 2xx it waits
//! until the entry has been fetched.

use super::http::{self, HandshakeOptions, PeerOptions};
use super::SendError;
use crate::exit::Failure;
use crate::state::{db_failure, State};
use rusqlite::OptionalExtension;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a message waits to be fetched, by default.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(120);
/// Most messages waiting to be fetched at once.
pub const MAX_PENDING: i64 = 1000;
/// Longest secret accepted from a peer.
pub const MAX_SECRET: usize = 128;

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A secret from the network: 1 to 128 printable ASCII characters.
pub fn check_secret(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_SECRET || !s.bytes().all(|c| (33..=126).contains(&c)) {
        return Err(format!(
            "A4.5 key must be 1 to {MAX_SECRET} printable ASCII characters"
        ));
    }
    Ok(())
}

/// A fresh secret: 256 random bits, hex.
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    crate::wire::hex(&b)
}

/// Keep `bytes` for `dest` under a new secret until fetched or expired.
pub fn offer(
    state: &mut State,
    dest: &str,
    bytes: &[u8],
    expiry: Duration,
) -> Result<String, Failure> {
    let secret = new_secret();
    let now = now_secs();
    state.write(|tx| {
        tx.execute("DELETE FROM handshake_reply WHERE expires <= ?1", [now])
            .map_err(db_failure)?;
        let n: i64 = tx
            .query_row("SELECT count(*) FROM handshake_reply", [], |r| r.get(0))
            .map_err(db_failure)?;
        if n >= MAX_PENDING {
            return Err(Failure::temp(format!(
                "{n} handshakes already waiting to be fetched"
            )));
        }
        tx.execute(
            "INSERT INTO handshake_reply(secret, dest, bytes, created, expires) VALUES(?1,?2,?3,?4,?5)",
            rusqlite::params![secret, dest, bytes, now, now + expiry.as_secs().max(1) as i64],
        )
        .map_err(db_failure)?;
        Ok(())
    })?;
    Ok(secret)
}

/// Drop an entry (whether or not it was fetched). True when it was still there.
pub fn withdraw(state: &mut State, secret: &str) -> Result<bool, Failure> {
    state.write(|tx| {
        tx.execute("DELETE FROM handshake_reply WHERE secret = ?1", [secret])
            .map(|n| n > 0)
            .map_err(db_failure)
    })
}

/// True while the entry waits to be fetched.
pub fn pending(state: &State, secret: &str) -> Result<bool, Failure> {
    state
        .conn()
        .query_row(
            "SELECT 1 FROM handshake_reply WHERE secret = ?1 AND expires > ?2",
            rusqlite::params![secret, now_secs()],
            |_| Ok(()),
        )
        .optional()
        .map(|o| o.is_some())
        .map_err(db_failure)
}

/// Serve `?reply=SECRET` once: the message, deleted in the same transaction.
pub fn take(state: &mut State, secret: &str) -> Result<Option<Vec<u8>>, Failure> {
    let now = now_secs();
    state.write(|tx| {
        tx.execute("DELETE FROM handshake_reply WHERE expires <= ?1", [now])
            .map_err(db_failure)?;
        let bytes: Option<Vec<u8>> = tx
            .query_row(
                "SELECT bytes FROM handshake_reply WHERE secret = ?1",
                [secret],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_failure)?;
        if bytes.is_some() {
            tx.execute("DELETE FROM handshake_reply WHERE secret = ?1", [secret])
                .map_err(db_failure)?;
        }
        Ok(bytes)
    })
}

fn with_query(base: &str, query: &str) -> String {
    let base = base.split('#').next().unwrap_or(base);
    if base.contains('?') {
        format!("{base}&{query}")
    } else {
        format!("{base}?{query}")
    }
}

/// `receiver?request=SENDER&key=SECRET`
pub fn request_url(receiver: &str, sender: &str, secret: &str) -> String {
    with_query(
        receiver,
        &format!(
            "request={}&key={}",
            http::percent_encode(sender),
            http::percent_encode(secret)
        ),
    )
}

/// `sender?reply=SECRET`
pub fn reply_url(sender: &str, secret: &str) -> String {
    with_query(sender, &format!("reply={}", http::percent_encode(secret)))
}

/// The host and port of a requester's http(s) address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUrl {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl PeerUrl {
    pub fn parse(url: &str) -> Result<PeerUrl, String> {
        let uri: ureq::http::Uri = url
            .parse()
            .map_err(|e| format!("A4.5 sender {url:?} is not a URL: {e}"))?;
        let https = match uri.scheme_str().map(|s| s.to_ascii_lowercase()).as_deref() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("A4.5 sender {url:?} is not an http(s) address")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("A4.5 sender {url:?} has no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(PeerUrl { https, host, port })
    }

    /// The host must resolve to the address the request came from.
    pub fn verify(&self, peer: IpAddr) -> Result<(), String> {
        let addrs: Vec<IpAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("A4.5 sender host {} does not resolve: {e}", self.host))?
            .map(|a| match a.ip() {
                IpAddr::V6(v6) => v6
                    .to_ipv4_mapped()
                    .map(IpAddr::V4)
                    .unwrap_or(IpAddr::V6(v6)),
                v4 => v4,
            })
            .collect();
        if addrs.contains(&peer) {
            Ok(())
        } else {
            Err(format!(
                "A4.5 sender host {} does not resolve to the connecting address {peer}",
                self.host
            ))
        }
    }
}

/// Receiver side: GET `sender?reply=SECRET`, at most one message's worth of bytes.
pub fn fetch(sender: &str, secret: &str, opts: &PeerOptions) -> Result<Vec<u8>, SendError> {
    let url = reply_url(sender, secret);
    let agent = http::agent(opts)?;
    let resp = agent
        .get(&url)
        .call()
        .map_err(|e| http::classify(sender, e))?;
    let mut resp = http::check_status(sender, resp)?;
    let limit = crate::wire::Limits::default().max_message_bytes as u64;
    resp.body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| match e {
            // the sender's page is larger than any message: its fault, not the network's
            ureq::Error::BodyExceedsLimit(_) => SendError::Permanent(format!("{sender}: {e}")),
            e => http::classify(sender, e),
        })
}

/// Sender side: offer the message, ask the receiver to fetch it, and report whether it
/// was fetched and accepted.
pub fn send(
    addr: &str,
    bytes: &[u8],
    hs: &HandshakeOptions,
    opts: &PeerOptions,
) -> Result<(), SendError> {
    let to_send = |f: Failure| {
        let m = format!("A4.5 handshake with {addr}: {}", f.message);
        if f.is_transient() || f.code == crate::exit::CONFIG {
            SendError::Transient(m)
        } else {
            SendError::Permanent(m)
        }
    };
    let mut state = State::open_existing(hs.state_path.as_deref()).map_err(to_send)?;
    let secret = offer(&mut state, addr, bytes, hs.expiry).map_err(to_send)?;
    let url = request_url(addr, &hs.own_address, &secret);
    let result = http::agent(opts).and_then(|agent| {
        let resp = agent
            .get(&url)
            .call()
            .map_err(|e| http::classify(addr, e))?;
        http::delivery_status(addr, resp)
    });
    if result.is_ok() {
        // A receiver that answers before fetching: wait (bounded) for the fetch.
        let until = std::time::Instant::now() + opts.timeout.min(hs.expiry);
        while pending(&state, &secret).map_err(to_send)? {
            if std::time::Instant::now() >= until {
                let _ = withdraw(&mut state, &secret);
                return Err(SendError::Transient(format!(
                    "A4.5 handshake with {addr}: the receiver did not fetch the message"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        return Ok(());
    }
    let _ = withdraw(&mut state, &secret);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            request_url("http://bob.com/", "http://alice.com/", "foo"),
            "http://bob.com/?request=http%3A%2F%2Falice.com%2F&key=foo"
        );
        assert_eq!(
            reply_url("http://alice.com/cgi?x=1", "a b"),
            "http://alice.com/cgi?x=1&reply=a%20b"
        );
        let u = PeerUrl::parse("https://[::1]:8443/x").unwrap();
        assert_eq!((u.https, u.host.as_str(), u.port), (true, "::1", 8443));
        let u = PeerUrl::parse("http://127.0.0.1/").unwrap();
        assert_eq!(u.port, 80);
        assert!(u.verify("127.0.0.1".parse().unwrap()).is_ok());
        assert!(u.verify("127.0.0.2".parse().unwrap()).is_err());
        assert!(PeerUrl::parse("mailto:a@b").is_err());
        assert!(PeerUrl::parse("udp://1.2.3.4:5/x").is_err());
        assert!(check_secret("foo").is_ok());
        assert!(check_secret("").is_err());
        assert!(check_secret("a b").is_err());
        assert!(check_secret(&"x".repeat(129)).is_err());
    }

    #[test]
    fn store_is_one_time_and_bounded_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.sqlite");
        let mut st = State::open(Some(&p)).unwrap();
        let s = offer(&mut st, "http://b/", b"MSG", Duration::from_secs(60)).unwrap();
        assert_eq!(s.len(), 64);
        assert!(pending(&st, &s).unwrap());
        assert_eq!(take(&mut st, &s).unwrap().as_deref(), Some(&b"MSG"[..]));
        assert_eq!(take(&mut st, &s).unwrap(), None);
        assert!(!pending(&st, &s).unwrap());
        // Expired entries are neither served nor kept.
        let s2 = offer(&mut st, "http://b/", b"OLD", Duration::from_secs(60)).unwrap();
        st.write(|tx| {
            tx.execute("UPDATE handshake_reply SET expires = 0", [])
                .map_err(db_failure)
        })
        .unwrap();
        assert_eq!(take(&mut st, &s2).unwrap(), None);
        let n: i64 = st
            .conn()
            .query_row("SELECT count(*) FROM handshake_reply", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}
