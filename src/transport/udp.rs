//! A4.4 UDP: one message per datagram, `tag LF message` (the reference implementation's
//! framing), to `udp://host:port/tag`.
//!
//! "A message should fit in the payload of a single packet (up to about 64 KB)": we refuse
//! anything whose datagram would exceed 65,507 bytes (the IPv4 UDP payload limit).
//!
//! Receiving runs under inetd/xinetd as a `dgram wait` service: the socket is fd 0, and one
//! process reads datagrams until it has been idle for a while, then exits so inetd listens
//! again.

use super::SendError;
use crate::exit::Failure;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// The largest UDP payload over IPv4 (65,535 - 20 IP header - 8 UDP header).
pub const MAX_DATAGRAM: usize = 65_507;

/// How long after sending we listen for an ICMP "port unreachable" (reported by the kernel
/// as ECONNREFUSED on a connected socket), so a receiver that is down is noticed and the
/// outbox retries instead of counting the message as delivered.
const REFUSAL_WAIT: Duration = Duration::from_millis(50);

/// The datagram for `message`: `tag LF message`.
pub fn frame(tag: &str, message: &[u8]) -> Result<Vec<u8>, SendError> {
    let len = tag.len() + 1 + message.len();
    if len > MAX_DATAGRAM {
        return Err(SendError::Permanent(format!(
            "message is {} bytes; with its tag the datagram would be {len} bytes, over the \
             {MAX_DATAGRAM}-byte UDP limit (A4.4: a message must fit in one packet)",
            message.len()
        )));
    }
    let mut d = Vec::with_capacity(len);
    d.extend_from_slice(tag.as_bytes());
    d.push(b'\n');
    d.extend_from_slice(message);
    Ok(d)
}

/// Send one message to `udp://host:port/tag`.
/// The destination is resolved once and checked against the address policy (`allow`:
/// restricted addresses we may send to anyway); the datagram goes to the checked address.
pub fn send(
    host: &str,
    port: u16,
    tag: &str,
    message: &[u8],
    allow: &crate::netaddr::Allow,
) -> Result<(), SendError> {
    let datagram = frame(tag, message)?;
    let dest: SocketAddr = match crate::netaddr::resolve(host, port, allow) {
        Ok(a) => a[0],
        Err(e @ crate::netaddr::ResolveError::Refused(_)) => {
            return Err(SendError::Permanent(format!("udp://{host}:{port}: {e}")))
        }
        Err(e) => return Err(SendError::Transient(format!("udp://{host}:{port}: {e}"))),
    };
    let bind: SocketAddr = if dest.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let what = format!("udp://{dest}");
    let sock = UdpSocket::bind(bind).map_err(|e| SendError::from_io(&what, &e))?;
    sock.connect(dest)
        .map_err(|e| SendError::from_io(&what, &e))?;
    let n = sock.send(&datagram).map_err(|e| match e.raw_os_error() {
        Some(libc::EMSGSIZE) => SendError::Permanent(format!("{what}: datagram too large: {e}")),
        _ => SendError::from_io(&what, &e),
    })?;
    if n != datagram.len() {
        return Err(SendError::Transient(format!(
            "{what}: sent {n} of {} bytes",
            datagram.len()
        )));
    }
    // A closed port answers with ICMP port unreachable; catch it if it comes quickly.
    sock.set_read_timeout(Some(REFUSAL_WAIT))
        .map_err(|e| SendError::from_io(&what, &e))?;
    let mut b = [0u8; 1];
    match sock.recv(&mut b) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Err(SendError::Transient(
            format!("{what}: port unreachable (nothing listening)"),
        )),
        _ => Ok(()),
    }
}

/// What the receiving loop does with what arrives.
#[derive(Debug, Clone)]
pub struct ReceiveOptions {
    /// The tag this server answers to; datagrams with another tag are dropped.
    /// None accepts any tag.
    pub tag: Option<String>,
    /// Exit after this long without a datagram.
    pub idle: Duration,
    /// How long to wait for the first datagram (inetd started us because one is pending).
    pub first_wait: Duration,
    /// Datagrams larger than this are dropped.
    pub max_datagram: usize,
    /// Stop after this many datagrams (None: until idle).
    pub max_count: Option<usize>,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        ReceiveOptions {
            tag: None,
            idle: Duration::from_secs(10),
            first_wait: Duration::from_secs(30),
            max_datagram: MAX_DATAGRAM,
            max_count: None,
        }
    }
}

/// Why one datagram was not handed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drop {
    Oversized { len: usize, max: usize },
    NoTag,
    WrongTag { got: String, want: String },
}

impl std::fmt::Display for Drop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drop::Oversized { len, max } => {
                write!(f, "oversized datagram: {len} bytes, limit {max}")
            }
            Drop::NoTag => f.write_str("datagram has no `tag LF` prefix"),
            Drop::WrongTag { got, want } => {
                write!(f, "datagram tag {got:?} is not ours ({want:?})")
            }
        }
    }
}

/// Split one datagram into the CMR message it carries, checking size and tag.
pub fn unframe<'a>(d: &'a [u8], opts: &ReceiveOptions) -> Result<&'a [u8], Drop> {
    if d.len() > opts.max_datagram {
        return Err(Drop::Oversized {
            len: d.len(),
            max: opts.max_datagram,
        });
    }
    let nl = d
        .iter()
        .take(65)
        .position(|&c| c == b'\n')
        .ok_or(Drop::NoTag)?;
    let tag = &d[..nl];
    if let Some(want) = &opts.tag {
        if tag != want.as_bytes() {
            return Err(Drop::WrongTag {
                got: String::from_utf8_lossy(tag).into_owned(),
                want: want.clone(),
            });
        }
    }
    Ok(&d[nl + 1..])
}

/// Counts from one receiving run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub datagrams: usize,
    pub handed_on: usize,
    pub dropped: usize,
}

/// Where `receive` hands each message (with the datagram's source address).
pub type DeliverFn<'a> = dyn FnMut(&[u8], SocketAddr) -> Result<(), Failure> + 'a;

/// Read datagrams from `sock` until idle, handing each message to `deliver`. Dropped
/// datagrams are logged and change nothing. A `deliver` error is logged too (a datagram
/// cannot be asked to come again); the run goes on with the next one.
pub fn receive(
    sock: &UdpSocket,
    opts: &ReceiveOptions,
    deliver: &mut DeliverFn<'_>,
) -> Result<Stats, Failure> {
    let mut stats = Stats::default();
    // Room for the largest datagram UDP can carry, so an oversized one is measured, not cut.
    let mut buf = vec![0u8; 65_536];
    let mut wait = opts.first_wait;
    loop {
        if opts.max_count.is_some_and(|m| stats.datagrams >= m) {
            break;
        }
        sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::from(e).context("reading datagram")),
        };
        wait = opts.idle;
        stats.datagrams += 1;
        match unframe(&buf[..n], opts) {
            Err(d) => {
                stats.dropped += 1;
                crate::log::info(&format!("udp from {from}: dropped: {d}"));
            }
            Ok(msg) => match deliver(msg, from) {
                Ok(()) => stats.handed_on += 1,
                Err(f) => {
                    stats.dropped += 1;
                    crate::log::error(&format!("udp from {from}: {}", f.message));
                }
            },
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_and_unframe_round_trip() {
        let d = frame("dns-tunnel", b"0\r\nmsg").unwrap();
        assert_eq!(d, b"dns-tunnel\n0\r\nmsg");
        let o = ReceiveOptions {
            tag: Some("dns-tunnel".into()),
            ..Default::default()
        };
        assert_eq!(unframe(&d, &o).unwrap(), b"0\r\nmsg");
        let o2 = ReceiveOptions {
            tag: Some("other".into()),
            ..Default::default()
        };
        assert!(matches!(unframe(&d, &o2), Err(Drop::WrongTag { .. })));
        assert_eq!(unframe(b"no newline here", &o), Err(Drop::NoTag));
    }

    #[test]
    fn refuses_oversized() {
        let big = vec![b'x'; MAX_DATAGRAM - 1];
        let e = frame("t", &big).unwrap_err();
        assert!(!e.is_transient());
        assert!(e.message().contains("65507"), "{e}");
        assert!(frame("t", &big[..MAX_DATAGRAM - 2]).is_ok());
        let o = ReceiveOptions {
            max_datagram: 10,
            ..Default::default()
        };
        assert!(matches!(
            unframe(b"t\n0123456789", &o),
            Err(Drop::Oversized { len: 12, max: 10 })
        ));
    }

    #[test]
    fn loopback_send_and_closed_port() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rx.local_addr().unwrap().port();
        let lo = crate::netaddr::Allow::parse("127.0.0.0/8").unwrap();
        let refused = send("127.0.0.1", port, "t", b"hello", &Default::default()).unwrap_err();
        assert!(!refused.is_transient(), "{refused}");
        assert!(refused.message().contains("send_allow"), "{refused}");
        send("127.0.0.1", port, "t", b"hello", &lo).unwrap();
        let mut got = Vec::new();
        let o = ReceiveOptions {
            first_wait: Duration::from_secs(2),
            idle: Duration::from_millis(100),
            ..Default::default()
        };
        let st = receive(&rx, &o, &mut |m, _| {
            got.push(m.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(got, vec![b"hello".to_vec()]);
        assert_eq!(st.handed_on, 1);
        drop(rx);
        let e = send("127.0.0.1", port, "t", b"hello", &lo).unwrap_err();
        assert!(e.is_transient(), "{e}");
    }
}
