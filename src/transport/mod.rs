//! A4 transports: where a message goes (address forms), how it gets there (dispatch), and
//! how each ingress hands what arrives to the router.
//!
//! Address forms (all but `ssh://` are the spec's):
//!
//! | form                               | transport | module |
//! |------------------------------------|-----------|--------|
//! | `mailto:bob@example.org`           | SMTP (A4.1): local sendmail, or a relay | [`mail`] |
//! | `http://host[:port]/path`          | HTTP (A4.2) | [`http`] |
//! | `https://host[:port]/path`         | HTTPS (A4.3) | [`http`] |
//! | `udp://host:port/tag`              | UDP (A4.4): `tag LF message` in one datagram | [`udp`] |
//! | `ssh://[user@]host[:port]/tag`     | SSH to a forced command | [`ssh`] |
//!
//! Sending never needs a shell: every transport runs with fixed argument vectors.

use crate::exit::{self, Failure};
use crate::route::Transport;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub mod compat;
pub mod handshake;
pub mod http;
pub mod mail;
pub mod maildir;
pub mod multipart;
pub mod outbox;
pub mod resolve;
pub mod ssh;
pub mod udp;

/// A peer's server address, classified by transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `mailto:` + an RFC 5321 mailbox.
    Mail { mailbox: String },
    /// The whole `http://` URL.
    Http(String),
    /// The whole `https://` URL.
    Https(String),
    /// `udp://host:port/tag` (A4.4: "the string is used to identify which local CMR server
    /// listening on the port should receive the message").
    Udp {
        host: String,
        port: u16,
        tag: String,
    },
    /// `ssh://[user@]host[:port]/tag`: the remote runs a forced command; `tag` is the only
    /// thing sent as the remote command line and is a single safe token.
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
        tag: String,
    },
}

/// Why an address string is not one we can send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressError {
    pub address: String,
    pub reason: String,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "address {:?}: {}", self.address, self.reason)
    }
}

impl std::error::Error for AddressError {}

impl From<AddressError> for Failure {
    fn from(e: AddressError) -> Failure {
        Failure::usage(e.to_string())
    }
}

/// A tag (UDP string, SSH remote command): letters, digits and `._-+=@,:`, 1..=64 bytes.
/// Never anything a shell or sshd would interpret.
pub fn is_safe_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-+=@,:".contains(&c))
}

/// Split `host[:port]` where host may be `[v6]`.
fn split_host_port(hp: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = hp.strip_prefix('[') {
        let end = rest.find(']').ok_or("unterminated [IPv6] host")?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after ]")?),
        };
        (host.to_string(), port)
    } else {
        match hp.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hp.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    if !host
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b".-_:".contains(&c))
    {
        return Err(format!(
            "host {host:?} has characters a host name cannot have"
        ));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|&n| n != 0)
                .ok_or_else(|| format!("port {p:?} is not a number in 1..65535"))?,
        ),
    };
    Ok((host, port))
}

/// A `mailto:` address after its scheme: `user@domain`, any `?query` dropped.
fn parse_mailto(mb: &str) -> Result<Address, String> {
    let mb = mb.split('?').next().unwrap_or("");
    let (local, domain) = mb
        .rsplit_once('@')
        .ok_or_else(|| "a mailto: address needs user@domain".to_string())?;
    if local.is_empty() || domain.is_empty() {
        return Err("a mailto: address needs user@domain".into());
    }
    mb.parse::<lettre::Address>()
        .map_err(|e| format!("not a mailbox: {e}"))?;
    Ok(Address::Mail {
        mailbox: mb.to_string(),
    })
}

/// A `udp://` address after its scheme: `host:port/tag`.
fn parse_udp(rest: &str) -> Result<Address, String> {
    let (hp, tag) = rest
        .split_once('/')
        .ok_or_else(|| "a udp address is udp://host:port/tag".to_string())?;
    let (host, port) = split_host_port(hp)?;
    let port = port.ok_or_else(|| "a udp address needs a port".to_string())?;
    if !is_safe_token(tag) {
        return Err(format!(
            "tag {tag:?} must be 1-64 of letters, digits and ._-+=@,:"
        ));
    }
    Ok(Address::Udp {
        host,
        port,
        tag: tag.to_string(),
    })
}

/// An `ssh://` address after its scheme: `[user@]host[:port]/tag`.
fn parse_ssh(rest: &str) -> Result<Address, String> {
    let (auth, tag) = rest
        .split_once('/')
        .ok_or_else(|| "an ssh address is ssh://[user@]host[:port]/tag".to_string())?;
    let (user, hp) = match auth.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, auth),
    };
    if let Some(u) = user {
        if u.is_empty()
            || u.starts_with('-')
            || !u
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
        {
            return Err(format!("user {u:?} is not a plain user name"));
        }
    }
    let (host, port) = split_host_port(hp)?;
    if host.starts_with('-') {
        return Err("host must not start with -".into());
    }
    if !is_safe_token(tag) {
        return Err(format!(
            "tag {tag:?} must be 1-64 of letters, digits and ._-+=@,:"
        ));
    }
    Ok(Address::Ssh {
        user: user.map(str::to_string),
        host,
        port,
        tag: tag.to_string(),
    })
}

impl Address {
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        let err = |reason: String| AddressError {
            address: s.to_string(),
            reason,
        };
        if s.bytes().any(|c| c.is_ascii_control() || c == b' ') {
            return Err(err("contains a space or control character".into()));
        }
        let lower = s.to_ascii_lowercase();
        if let Some(mb) = strip_ci(s, &lower, "mailto:") {
            return parse_mailto(mb).map_err(err);
        }
        if lower.starts_with("http://") {
            if s.len() == 7 {
                return Err(err("no host".into()));
            }
            return Ok(Address::Http(s.to_string()));
        }
        if lower.starts_with("https://") {
            if s.len() == 8 {
                return Err(err("no host".into()));
            }
            return Ok(Address::Https(s.to_string()));
        }
        if let Some(rest) = strip_ci(s, &lower, "udp://") {
            return parse_udp(rest).map_err(err);
        }
        if let Some(rest) = strip_ci(s, &lower, "ssh://") {
            return parse_ssh(rest).map_err(err);
        }
        Err(err(
            "unknown transport; expected mailto:, http://, https://, udp:// or ssh://".into(),
        ))
    }

    /// The transport a message arriving this way is tagged with.
    pub fn transport(&self) -> Transport {
        match self {
            Address::Mail { .. } => Transport::Mail,
            Address::Http(_) => Transport::Http,
            Address::Https(_) => Transport::Https,
            Address::Udp { .. } => Transport::Udp,
            Address::Ssh { .. } => Transport::Ssh,
        }
    }
}

fn strip_ci<'a>(s: &'a str, lower: &str, prefix: &str) -> Option<&'a str> {
    lower.starts_with(prefix).then(|| &s[prefix.len()..])
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, AddressError> {
        Address::parse(s)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hp = |f: &mut fmt::Formatter<'_>, h: &str, p: Option<u16>| -> fmt::Result {
            if h.contains(':') {
                write!(f, "[{h}]")?
            } else {
                f.write_str(h)?
            }
            match p {
                Some(p) => write!(f, ":{p}"),
                None => Ok(()),
            }
        };
        match self {
            Address::Mail { mailbox } => write!(f, "mailto:{mailbox}"),
            Address::Http(u) | Address::Https(u) => f.write_str(u),
            Address::Udp { host, port, tag } => {
                f.write_str("udp://")?;
                hp(f, host, Some(*port))?;
                write!(f, "/{tag}")
            }
            Address::Ssh {
                user,
                host,
                port,
                tag,
            } => {
                f.write_str("ssh://")?;
                if let Some(u) = user {
                    write!(f, "{u}@")?;
                }
                hp(f, host, *port)?;
                write!(f, "/{tag}")
            }
        }
    }
}

/// Why a send did not happen. Transient: try again later (the outbox backs off);
/// permanent: it will never work as it stands (dead-lettered at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    Transient(String),
    Permanent(String),
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }
    pub fn message(&self) -> &str {
        match self {
            SendError::Transient(m) | SendError::Permanent(m) => m,
        }
    }
    /// A transient error from an I/O error whose kind says it may pass; permanent otherwise.
    pub fn from_io(what: &str, e: &std::io::Error) -> SendError {
        if exit::io_code(e) == exit::TEMPFAIL {
            SendError::Transient(format!("{what}: {e}"))
        } else {
            SendError::Permanent(format!("{what}: {e}"))
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Transient(m) => write!(f, "{m} (will retry)"),
            SendError::Permanent(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SendError {}

impl From<SendError> for Failure {
    fn from(e: SendError) -> Failure {
        match e {
            SendError::Transient(m) => Failure::temp(m),
            SendError::Permanent(m) => Failure::unavailable(m),
        }
    }
}

/// Everything a send needs besides the address and the bytes.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Per-destination limit for one delivery attempt.
    pub timeout: Duration,
    pub mail: mail::MailOptions,
    pub ssh: ssh::SshOptions,
    /// HTTP(S) peers: trust file, A4.5 handshake (`http_trust_file`, `http_handshake`).
    pub http: http::PeerOptions,
    /// Restricted addresses that may be sent to anyway (`send_allow`; crate::netaddr).
    pub allow: crate::netaddr::Allow,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            timeout: Duration::from_secs(60),
            mail: mail::MailOptions::default(),
            ssh: ssh::SshOptions::default(),
            http: http::PeerOptions::default(),
            allow: crate::netaddr::Allow::default(),
        }
    }
}

/// What a transport setting's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    /// Seconds, a non-negative number.
    Seconds,
    /// A positive integer.
    Count,
    /// Free text (an address, a path, options).
    Text,
}

/// The settings the transports read (`cmr-send --settings` lists them, `--set` sets them).
pub const SETTINGS: &[(&str, &str, SettingKind, &str)] = &[
    (
        "send_timeout",
        "60",
        SettingKind::Seconds,
        "per-destination limit for one delivery attempt",
    ),
    (
        "outbox_max_attempts",
        "12",
        SettingKind::Count,
        "dead-letter a row after this many failed attempts",
    ),
    (
        "outbox_max_age",
        "604800",
        SettingKind::Seconds,
        "dead-letter a row still undelivered after this long",
    ),
    (
        "outbox_backoff_base",
        "60",
        SettingKind::Seconds,
        "first retry delay; doubles per attempt (with jitter)",
    ),
    (
        "outbox_backoff_max",
        "21600",
        SettingKind::Seconds,
        "longest retry delay",
    ),
    (
        "outbox_claim_timeout",
        "900",
        SettingKind::Seconds,
        "take over claims older than this (a run that died)",
    ),
    (
        "smtp_from",
        "",
        SettingKind::Text,
        "From: for mailto: (default: our mailto: address, else $USER@hostname)",
    ),
    (
        "smtp_sendmail",
        "/usr/sbin/sendmail",
        SettingKind::Text,
        "the sendmail binary",
    ),
    (
        "smtp_relay",
        "",
        SettingKind::Text,
        "SMTP relay URL instead of sendmail, e.g. smtp://user:pass@relay:587?tls=required",
    ),
    (
        "smtp_relay_ca",
        "",
        SettingKind::Text,
        "PEM certificates to trust for the relay's TLS (a private CA); TLS then required",
    ),
    ("ssh_command", "ssh", SettingKind::Text, "the ssh client"),
    (
        "ssh_identity",
        "",
        SettingKind::Text,
        "ssh -i identity file",
    ),
    (
        "ssh_known_hosts",
        "",
        SettingKind::Text,
        "ssh UserKnownHostsFile",
    ),
    (
        "ssh_options",
        "",
        SettingKind::Text,
        "extra ssh -o options, space-separated",
    ),
    (
        "http_trust_file",
        "",
        SettingKind::Text,
        "PEM certificates to trust for https:// peers (besides the system roots)",
    ),
    (
        "http_handshake",
        "",
        SettingKind::Text,
        "our own http(s) address: send by the A4.5 handshake instead of a POST",
    ),
];

/// Check and store `key = value` (None removes it, back to the default).
pub fn set_setting(
    tx: &rusqlite::Transaction,
    key: &str,
    value: Option<&str>,
) -> Result<(), Failure> {
    let Some(&(_, _, kind, _)) = SETTINGS.iter().find(|s| s.0 == key) else {
        let known: Vec<_> = SETTINGS.iter().map(|s| s.0).collect();
        return Err(Failure::usage(format!(
            "unknown transport setting {key:?}; known: {}",
            known.join(", ")
        )));
    };
    if let Some(v) = value {
        let ok = match kind {
            SettingKind::Seconds => v.parse::<f64>().is_ok_and(|x| x.is_finite() && x >= 0.0),
            SettingKind::Count => v.parse::<u32>().is_ok_and(|x| x > 0),
            SettingKind::Text => !v.contains(['\r', '\n']),
        };
        if !ok {
            return Err(Failure::usage(format!(
                "setting {key}: {v:?} is not {}",
                match kind {
                    SettingKind::Seconds => "a number of seconds >= 0",
                    SettingKind::Count => "a positive integer",
                    SettingKind::Text => "one line of text",
                }
            )));
        }
        tx.execute(
            "INSERT OR REPLACE INTO settings(key, value) VALUES (?1, ?2)",
            [key, v],
        )
        .map_err(crate::state::db_failure)?;
    } else {
        tx.execute("DELETE FROM settings WHERE key = ?1", [key])
            .map_err(crate::state::db_failure)?;
    }
    Ok(())
}

/// A setting from the state file's `settings` table.
pub fn setting(conn: &rusqlite::Connection, key: &str) -> Result<Option<String>, Failure> {
    use rusqlite::OptionalExtension;
    conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
        r.get::<_, Option<String>>(0)
    })
    .optional()
    .map(Option::flatten)
    .map_err(crate::state::db_failure)
}

/// The `send_allow` policy setting: restricted addresses we may send to anyway.
pub fn send_allow(conn: &rusqlite::Connection) -> Result<crate::netaddr::Allow, Failure> {
    let v = crate::state::settings::get_or_default(conn, "send_allow")?;
    crate::netaddr::Allow::parse(&v)
        .map_err(|e| Failure::config(format!("setting send_allow = {v:?}: {e}")))
}

/// A numeric setting, with a clear error when it does not parse.
pub fn setting_num<T: FromStr>(
    conn: &rusqlite::Connection,
    key: &str,
    default: T,
) -> Result<T, Failure> {
    match setting(conn, key)? {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| Failure::config(format!("setting {key} = {v:?} is not a valid number"))),
    }
}

impl SendOptions {
    /// Read the transport settings from the state file (`send_timeout`, `smtp_*`, `ssh_*`).
    pub fn from_settings(conn: &rusqlite::Connection) -> Result<SendOptions, Failure> {
        let allow = send_allow(conn)?;
        Ok(SendOptions {
            timeout: Duration::try_from_secs_f64(setting_num(conn, "send_timeout", 60.0)?)
                .map_err(|_| Failure::config("setting send_timeout must be >= 0 seconds"))?,
            mail: mail::MailOptions::from_settings(conn)?,
            ssh: ssh::SshOptions::from_settings(conn)?,
            http: http::PeerOptions {
                trust_file: setting(conn, "http_trust_file")?.map(Into::into),
                handshake: setting(conn, "http_handshake")?.map(http::HandshakeOptions::new),
                allow: allow.clone(),
                ..http::PeerOptions::default()
            },
            allow,
        })
    }
}

impl SendOptions {
    /// The options for one destination: these, plus what the peer's row in the state file
    /// says for its transport (HTTP: trust file, timeouts, A4.5 handshake).
    pub fn for_destination(
        &self,
        state: &crate::state::State,
        addr: &Address,
    ) -> Result<SendOptions, Failure> {
        let mut o = self.clone();
        if let Address::Http(u) | Address::Https(u) = addr {
            // The peer's own `timeout=` replaces send_timeout for it.
            let base = http::PeerOptions {
                timeout: o.timeout,
                ..o.http
            };
            o.http = http::PeerOptions::for_peer(state, u, base)?;
            o.timeout = o.http.timeout;
        }
        Ok(o)
    }
}

/// Deliver `bytes` (one whole CMR message) to `addr`, giving up after `opts.timeout`.
/// Ok means the transport took it: the MTA queued it, the HTTP server answered 2xx, the
/// SSH forced command exited 0, or the UDP datagram left (UDP confirms nothing more).
pub fn send(addr: &Address, bytes: &[u8], opts: &SendOptions) -> Result<(), SendError> {
    match addr {
        Address::Udp { host, port, tag } => udp::send(host, *port, tag, bytes, &opts.allow),
        Address::Ssh { .. } => ssh::send(addr, bytes, &opts.ssh, opts.timeout, &opts.allow),
        _ => {
            // Transports without their own deadline run on a thread we stop waiting for.
            let (tx, rx) = std::sync::mpsc::channel();
            let (a, b, o) = (addr.clone(), bytes.to_vec(), opts.clone());
            std::thread::spawn(move || {
                let r = match &a {
                    Address::Mail { mailbox } => mail::send(mailbox, &b, &o.mail),
                    Address::Http(u) | Address::Https(u) => {
                        let mut po = o.http.clone();
                        po.timeout = o.timeout;
                        po.allow = o.allow.clone();
                        http::send(u, &b, &po)
                    }
                    _ => unreachable!("handled above"),
                };
                let _ = tx.send(r);
            });
            match rx.recv_timeout(opts.timeout) {
                Ok(r) => r,
                Err(_) => Err(SendError::Transient(format!(
                    "{addr}: no answer within {}s",
                    opts.timeout.as_secs_f64()
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_settings_can_be_set_and_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let st = crate::state::State::open(Some(&dir.path().join("s.sqlite"))).unwrap();
        st.write(|tx| {
            set_setting(tx, "http_trust_file", Some("/etc/cmr/peer.pem"))?;
            set_setting(tx, "http_handshake", Some("http://alice.example/"))
        })
        .unwrap();
        let o = SendOptions::from_settings(st.conn()).unwrap();
        assert_eq!(
            o.http.trust_file.as_deref(),
            Some(std::path::Path::new("/etc/cmr/peer.pem"))
        );
        assert!(o.http.handshake.is_some());
        st.write(|tx| set_setting(tx, "http_trust_file", None))
            .unwrap();
        let o = SendOptions::from_settings(st.conn()).unwrap();
        assert!(o.http.trust_file.is_none());
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(
            Address::parse("mailto:bob@bob.com").unwrap(),
            Address::Mail {
                mailbox: "bob@bob.com".into()
            }
        );
        assert_eq!(
            Address::parse("udp://192.168.0.102:53/dns-tunnel").unwrap(),
            Address::Udp {
                host: "192.168.0.102".into(),
                port: 53,
                tag: "dns-tunnel".into()
            }
        );
        assert_eq!(
            Address::parse("udp://[::1]:9000/x").unwrap(),
            Address::Udp {
                host: "::1".into(),
                port: 9000,
                tag: "x".into()
            }
        );
        assert_eq!(
            Address::parse("ssh://cmr@bob.example:2222/bob").unwrap(),
            Address::Ssh {
                user: Some("cmr".into()),
                host: "bob.example".into(),
                port: Some(2222),
                tag: "bob".into()
            }
        );
        assert!(matches!(
            Address::parse("http://alice.com/cmr").unwrap(),
            Address::Http(_)
        ));
        assert!(matches!(
            Address::parse("https://www.charlie.com/messages.pl").unwrap(),
            Address::Https(_)
        ));
        for s in [
            "udp://192.168.0.102:53/dns-tunnel",
            "ssh://cmr@bob.example:2222/bob",
            "ssh://h/t",
            "udp://[::1]:9/x",
            "mailto:a@b.c",
        ] {
            assert_eq!(Address::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn refuses_bad_forms_with_reasons() {
        for (s, why) in [
            ("mailto:nobody", "user@domain"),
            ("udp://host/tag", "port"),
            ("udp://host:99999/t", "port"),
            ("udp://host:53", "udp://host:port/tag"),
            ("udp://host:53/", "tag"),
            ("udp://host:53/a b", "space"),
            ("ssh://-oProxyCommand=x/t", "host"),
            ("ssh://h/$(reboot)", "tag"),
            ("ssh://-u@h/t", "user"),
            ("gopher://x", "unknown transport"),
        ] {
            let e = Address::parse(s).unwrap_err();
            assert!(e.to_string().contains(why), "{s}: {e}");
        }
    }
}
