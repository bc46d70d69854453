//! Network address ranges a router must not send to unless told (issue: no request
//! forgery), and the operator's allow-list (`send_allow`).
//!
//! A header address is a claim anyone can write. Without this check a message naming
//! `http://127.0.0.1:6379/` or `http://169.254.169.254/latest/meta-data/` would make the
//! router POST to the host's own services or the cloud metadata endpoint on a stranger's
//! behalf. So loopback, private (RFC 1918, RFC 6598 shared), link-local, unique-local,
//! multicast, broadcast and unspecified addresses are refused unless the operator allows
//! them. The check applies to literal addresses when a forward is queued and to every
//! resolved address when it is sent ([`resolve`]): the connection then goes to exactly the
//! addresses that were checked, so a name cannot resolve to a public address for the
//! check and to a private one for the connection (DNS rebinding).
//!
//! This module stands at the bottom of the library: it knows no other module.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// Why an IP address is not sent to by default, or None when it is a public address.
pub fn restricted(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => restricted_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return restricted_v4(v4);
            }
            let s = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("unique-local")
            } else if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
                // NAT64 (RFC 6052): the IPv4 address it embeds decides.
                let b = v6.octets();
                restricted_v4(Ipv4Addr::new(b[12], b[13], b[14], b[15]))
            } else if s[..6] == [0; 6] {
                // IPv4-compatible (deprecated) ::a.b.c.d
                let b = v6.octets();
                restricted_v4(Ipv4Addr::new(b[12], b[13], b[14], b[15]))
            } else {
                None
            }
        }
    }
}

fn restricted_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_private() {
        Some("private (RFC 1918)")
    } else if o[0] == 100 && o[1] & 0xc0 == 64 {
        Some("private (RFC 6598 shared address space)")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata lives here)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() || o[0] >= 240 {
        Some("broadcast or reserved")
    } else {
        None
    }
}

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// An address range: network and prefix length.
    Net(IpAddr, u8),
    /// A host name, lower case: sends to it are allowed whatever it resolves to.
    Host(String),
}

/// The operator's allow-list: address ranges (`127.0.0.0/8`, `::1`, `10.1.2.3`) and host
/// names (`peer.lan`) that may be sent to although they are restricted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allow {
    entries: Vec<Entry>,
}

impl serde::Serialize for Allow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_text())
    }
}

impl Allow {
    /// Parse a comma- or space-separated list. Empty: nothing allowed.
    pub fn parse(s: &str) -> Result<Allow, String> {
        let mut entries = Vec::new();
        for item in s.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
            entries.push(parse_entry(item)?);
        }
        Ok(Allow { entries })
    }

    /// The list in its normal form (what `cmr-route policy` stores).
    pub fn to_text(&self) -> String {
        self.entries
            .iter()
            .map(|e| match e {
                Entry::Net(ip, len) => format!("{ip}/{len}"),
                Entry::Host(h) => h.clone(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Both lists in one.
    pub fn union(&self, other: &Allow) -> Allow {
        let mut entries = self.entries.clone();
        for e in &other.entries {
            if !entries.contains(e) {
                entries.push(e.clone());
            }
        }
        Allow { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `host` (as written in the address) is allowed by name.
    pub fn allows_host(&self, host: &str) -> bool {
        let h = host.trim_end_matches('.').to_ascii_lowercase();
        self.entries
            .iter()
            .any(|e| matches!(e, Entry::Host(n) if *n == h))
    }

    /// Whether `ip` falls in an allowed range.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.entries.iter().any(|e| match e {
            Entry::Net(net, len) => in_net(ip, *net, *len),
            Entry::Host(_) => false,
        })
    }
}

fn parse_entry(item: &str) -> Result<Entry, String> {
    let (addr, len) = match item.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (item, None),
    };
    let bare = addr.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        let ip = canonical(ip);
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("{item:?}: prefix length must be 0..={max}"))?,
        };
        return Ok(Entry::Net(ip, len));
    }
    if len.is_some() {
        return Err(format!("{item:?}: not an address range (e.g. 10.0.0.0/8)"));
    }
    let h = addr.trim_end_matches('.').to_ascii_lowercase();
    if h.is_empty()
        || h.len() > 253
        || !h
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
    {
        return Err(format!(
            "{item:?}: neither an address range (10.0.0.0/8, ::1) nor a host name"
        ));
    }
    Ok(Entry::Host(h))
}

/// IPv4-mapped IPv6 addresses compare as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// A send refused by the address policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub host: String,
    pub ip: IpAddr,
    pub why: &'static str,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host == self.ip.to_string() {
            write!(f, "{} is {}", self.ip, self.why)?;
        } else {
            write!(
                f,
                "{} resolves to {}, which is {}",
                self.host, self.ip, self.why
            )?;
        }
        write!(
            f,
            "; not sent (allow it with: cmr-route policy send_allow {})",
            self.ip
        )
    }
}

/// Check one address of `host` against the policy.
pub fn check(host: &str, ip: IpAddr, allow: &Allow) -> Result<(), Refused> {
    match restricted(ip) {
        Some(why) if !allow.allows_host(host) && !allow.allows_ip(ip) => Err(Refused {
            host: host.to_string(),
            ip,
            why,
        }),
        _ => Ok(()),
    }
}

/// A host as written in an address, when it is a literal IP (`[::1]` or `127.0.0.1`).
pub fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The host of a network address (`http://`, `https://`, `udp://`, `ssh://`), as written:
/// `[::1]` keeps its brackets. None for `mailto:` (the local MTA decides where mail goes)
/// and for forms without an authority.
pub fn host_of(address: &str) -> Option<&str> {
    let (scheme, rest) = address.split_once("://")?;
    if !["http", "https", "udp", "ssh"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
    {
        return None;
    }
    let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hp = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    let host = if hp.starts_with('[') {
        &hp[..hp.find(']').map_or(hp.len(), |i| i + 1)]
    } else {
        hp.split(':').next().unwrap_or("")
    };
    (!host.is_empty()).then_some(host)
}

/// Refuse a literal restricted address at queue time (names are checked when sent).
pub fn check_literal(address: &str, allow: &Allow) -> Result<(), Refused> {
    match host_of(address).and_then(|h| literal_ip(h).map(|ip| (h, ip))) {
        Some((h, ip)) => check(h.trim_start_matches('[').trim_end_matches(']'), ip, allow),
        None => Ok(()),
    }
}

/// Why a resolution gave nothing to connect to.
#[derive(Debug)]
pub enum ResolveError {
    /// The name did not resolve (may pass: retry).
    Lookup(std::io::Error),
    /// An address it resolves to is refused by policy (permanent as it stands).
    Refused(Refused),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Lookup(e) => write!(f, "resolving: {e}"),
            ResolveError::Refused(r) => r.fmt(f),
        }
    }
}

impl std::error::Error for ResolveError {}

/// Resolve `host:port` once and check every address it gives. Any restricted address
/// refuses the whole name (a name that mixes public and private addresses is treated as
/// private). The caller connects only to the returned addresses: what was checked is what
/// is used.
pub fn resolve(host: &str, port: u16, allow: &Allow) -> Result<Vec<SocketAddr>, ResolveError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => (bare, port)
            .to_socket_addrs()
            .map_err(ResolveError::Lookup)?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(ResolveError::Lookup(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host}: no address"),
        )));
    }
    for a in &addrs {
        check(bare, a.ip(), allow).map_err(ResolveError::Refused)?;
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn restricted_ranges() {
        for (a, why) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.5.4", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "private"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("fd00::1", "unique-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::a00:1", "private"),
        ] {
            let r = restricted(ip(a)).unwrap_or_else(|| panic!("{a} should be restricted"));
            assert!(r.starts_with(why), "{a}: {r}");
        }
        for a in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert_eq!(restricted(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn allow_list_ranges_and_names() {
        let a = Allow::parse("127.0.0.0/8, ::1 peer.LAN. 10.1.2.3").unwrap();
        assert_eq!(a.to_text(), "127.0.0.0/8,::1/128,peer.lan,10.1.2.3/32");
        assert!(a.allows_ip(ip("127.0.0.1")));
        assert!(a.allows_ip(ip("::ffff:127.0.0.2")));
        assert!(a.allows_ip(ip("::1")));
        assert!(a.allows_ip(ip("10.1.2.3")));
        assert!(!a.allows_ip(ip("10.1.2.4")));
        assert!(a.allows_host("Peer.lan"));
        assert!(!a.allows_host("other.lan"));
        assert!(check("x", ip("10.1.2.4"), &a).is_err());
        assert!(check("peer.lan", ip("10.1.2.4"), &a).is_ok());
        assert!(check("x", ip("8.8.8.8"), &Allow::default()).is_ok());
        assert!(Allow::parse("").unwrap().is_empty());
        for bad in ["10.0.0.0/33", "::/129", "peer/8", "a_b", "x;y"] {
            assert!(Allow::parse(bad).is_err(), "{bad}");
        }
        assert!(Allow::parse("0.0.0.0/0").unwrap().allows_ip(ip("10.0.0.1")));
    }

    #[test]
    fn hosts_of_addresses() {
        for (a, h) in [
            ("http://127.0.0.1:6379/", Some("127.0.0.1")),
            ("HTTP://user:pw@Example.org/cmr?x", Some("Example.org")),
            ("https://[::1]:8443/cmr", Some("[::1]")),
            ("udp://10.0.0.1:53/x", Some("10.0.0.1")),
            ("ssh://bob@[fe80::1]:22/cmr", Some("[fe80::1]")),
            ("mailto:bob@127.0.0.1", None),
            ("http:///nohost", None),
            ("gopher://x/", None),
        ] {
            assert_eq!(host_of(a), h, "{a}");
        }
        let none = Allow::default();
        assert!(check_literal("http://169.254.169.254/latest/meta-data/", &none).is_err());
        assert!(check_literal("udp://[::1]:9/t", &none).is_err());
        assert!(check_literal("http://example.org/", &none).is_ok());
        assert!(check_literal("mailto:a@b", &none).is_ok());
        assert!(check_literal("http://127.0.0.1/", &Allow::parse("127.0.0.1").unwrap()).is_ok());
    }

    #[test]
    fn resolution_is_checked_and_reported() {
        let none = Allow::default();
        match resolve("localhost", 80, &none) {
            Err(ResolveError::Refused(r)) => {
                assert_eq!(r.why, "loopback");
                let m = r.to_string();
                assert!(m.contains("localhost resolves to"), "{m}");
                assert!(m.contains("send_allow"), "{m}");
            }
            other => panic!("localhost must be refused: {other:?}"),
        }
        assert!(matches!(
            resolve("[::1]", 80, &none),
            Err(ResolveError::Refused(_))
        ));
        let lo = Allow::parse("127.0.0.0/8,::1").unwrap();
        let a = resolve("127.0.0.1", 9, &lo).unwrap();
        assert_eq!(a, vec!["127.0.0.1:9".parse().unwrap()]);
        assert!(resolve("localhost", 9, &Allow::parse("localhost").unwrap()).is_ok());
        assert!(matches!(
            resolve("no-such-host.invalid", 80, &none),
            Err(ResolveError::Lookup(_))
        ));
    }
}
