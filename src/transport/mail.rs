//! A4.1 SMTP: "The body of the email message may be either a CMR message or a MIME encoded
//! file attachment containing a CMR message. ... The recommended subject is "cmr"."
//!
//! Sending: a message whose bytes survive mail unchanged (printable ASCII and tabs, every
//! line ended by CR LF, lines of at most 998 bytes) goes as the plain body; anything else
//! goes as an `application/octet-stream` attachment in base64. The mail is handed to the
//! local `sendmail` (the MTA's queue owns retries from there), or to an SMTP relay when the
//! `smtp_relay` setting names one.
//!
//! Receiving: an RFC 5322 message on stdin (Postfix `pipe`, `.forward`, procmail). Local
//! delivery turns CR LF into LF, so a plain body is read back with its line ends restored;
//! this is exact because the sender only sends plain bodies whose every line end is CR LF.

use super::{setting, SendError};
use crate::exit::Failure;
use crate::wire;
use lettre::message::{header::ContentType, Attachment, Body};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// How mail leaves this host.
#[derive(Debug, Clone)]
pub struct MailOptions {
    /// The From: and envelope sender. Default: the first `mailto:` own address, else
    /// `$USER@hostname`.
    pub from: Option<String>,
    /// The sendmail binary (default /usr/sbin/sendmail).
    pub sendmail: PathBuf,
    /// An SMTP relay URL instead of sendmail, e.g. `smtp://user:pass@relay:587?tls=required`
    /// (STARTTLS) or `smtps://relay:465`.
    pub relay: Option<String>,
    /// PEM certificate(s) to trust for the relay's TLS besides the public roots (a private
    /// CA); with it, TLS is required even when the URL does not say so.
    pub relay_ca: Option<PathBuf>,
}

impl Default for MailOptions {
    fn default() -> Self {
        MailOptions {
            from: None,
            sendmail: PathBuf::from("/usr/sbin/sendmail"),
            relay: None,
            relay_ca: None,
        }
    }
}

impl MailOptions {
    /// `smtp_from`, `smtp_sendmail`, `smtp_relay` from the settings; the From address
    /// falls back to the first `mailto:` own address.
    pub fn from_settings(conn: &rusqlite::Connection) -> Result<MailOptions, Failure> {
        let mut o = MailOptions {
            from: setting(conn, "smtp_from")?,
            ..MailOptions::default()
        };
        if o.from.is_none() {
            use rusqlite::OptionalExtension;
            let own: Option<String> = conn
                .query_row(
                    "SELECT address FROM own_addresses WHERE address LIKE 'mailto:%' \
                     ORDER BY address LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(crate::state::db_failure)?;
            o.from = own.map(|a| a["mailto:".len()..].to_string());
        }
        if let Some(s) = setting(conn, "smtp_sendmail")? {
            o.sendmail = s.into();
        }
        o.relay = setting(conn, "smtp_relay")?;
        o.relay_ca = setting(conn, "smtp_relay_ca")?.map(PathBuf::from);
        Ok(o)
    }

    fn sender_address(&self) -> String {
        if let Some(f) = &self.from {
            return f.clone();
        }
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "cmr".into());
        format!("{user}@{}", hostname())
    }
}

fn hostname() -> String {
    match hostname::get() {
        Ok(h) if !h.is_empty() => h.to_string_lossy().into_owned(),
        _ => "localhost".into(),
    }
}

/// True when `m` passes through mail byte for byte as a plain body (up to line ends,
/// which the receiver restores): printable ASCII and tab, no bare CR or LF, lines of at
/// most 998 bytes (RFC 5322 2.1.1).
pub fn is_mail_safe(m: &[u8]) -> bool {
    let mut line = 0usize;
    for (i, &c) in m.iter().enumerate() {
        match c {
            b'\r' => {
                if m.get(i + 1) != Some(&b'\n') {
                    return false;
                }
            }
            b'\n' => {
                if i == 0 || m[i - 1] != b'\r' {
                    return false;
                }
                line = 0;
                continue;
            }
            b'\t' | 0x20..=0x7e => {}
            _ => return false,
        }
        line += 1;
        if line > 998 {
            return false;
        }
    }
    true
}

/// The RFC 5322 message carrying `cmr` to `to`, subject "cmr".
pub fn compose(to: &str, from: &str, cmr: &[u8]) -> Result<lettre::Message, SendError> {
    let perm = |what: &str, e: &dyn std::fmt::Display| SendError::Permanent(format!("{what}: {e}"));
    let b = lettre::Message::builder()
        .from(
            from.parse()
                .map_err(|e| perm(&format!("From {from:?}"), &e))?,
        )
        .to(to.parse().map_err(|e| perm(&format!("To {to:?}"), &e))?)
        .subject("cmr");
    let m = if is_mail_safe(cmr) {
        b.header(ContentType::TEXT_PLAIN)
            .body(Body::dangerous_pre_encoded(
                cmr.to_vec(),
                lettre::message::header::ContentTransferEncoding::SevenBit,
            ))
    } else {
        let octets = ContentType::parse("application/octet-stream").expect("literal");
        b.singlepart(Attachment::new("cmr.msg".into()).body(cmr.to_vec(), octets))
    };
    m.map_err(|e| perm("composing mail", &e))
}

/// Send one CMR message to `mailto:to`.
pub fn send(to: &str, cmr: &[u8], o: &MailOptions) -> Result<(), SendError> {
    let from = o.sender_address();
    let mail = compose(to, &from, cmr)?;
    match &o.relay {
        Some(url) => send_relay(url, o.relay_ca.as_deref(), &mail),
        None => send_sendmail(&o.sendmail, &from, to, &mail.formatted()),
    }
}

/// The host part of an SMTP URL (`smtp://user:pass@host:port/ehlo?tls=...`).
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let auth = rest.split(['/', '?']).next()?;
    let hp = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    let host = if let Some(v6) = hp.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        hp.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

fn send_relay(
    url: &str,
    ca: Option<&std::path::Path>,
    mail: &lettre::Message,
) -> Result<(), SendError> {
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::Transport;
    let perm = |m: String| SendError::Permanent(m);
    let mut b = lettre::SmtpTransport::from_url(url)
        .map_err(|e| perm(format!("smtp_relay {url:?}: {e}")))?;
    if let Some(ca) = ca {
        let pem = std::fs::read(ca)
            .map_err(|e| SendError::from_io(&format!("smtp_relay_ca {}", ca.display()), &e))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| perm(format!("smtp_relay_ca {}: {e}", ca.display())))?;
        let host = url_host(url).ok_or_else(|| perm(format!("smtp_relay {url:?}: no host")))?;
        let params = TlsParameters::builder(host.to_string())
            .add_root_certificate(cert)
            .build_rustls()
            .map_err(|e| perm(format!("smtp_relay TLS: {e}")))?;
        b = b.tls(if url.starts_with("smtps:") {
            Tls::Wrapper(params)
        } else {
            Tls::Required(params)
        });
    }
    b.build().send(mail).map(|_| ()).map_err(|e| {
        if e.is_permanent() {
            SendError::Permanent(format!("SMTP relay: {e}"))
        } else {
            SendError::Transient(format!("SMTP relay: {e}"))
        }
    })
}

/// Run `sendmail -i -f FROM -- TO` with the mail on stdin. Exit 0: the MTA has queued it.
/// EX_TEMPFAIL or a signal: transient; other codes (unknown user, bad address): permanent.
fn send_sendmail(bin: &PathBuf, from: &str, to: &str, mail: &[u8]) -> Result<(), SendError> {
    let what = format!("{} (to {to})", bin.display());
    let mut child = Command::new(bin)
        .arg("-i")
        .arg("-f")
        .arg(from)
        .arg("--")
        .arg(to)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SendError::Transient(format!("{what}: cannot run: {e}")))?;
    let w = child.stdin.take().map(|mut s| s.write_all(mail));
    let out = child
        .wait_with_output()
        .map_err(|e| SendError::from_io(&what, &e))?;
    let err = String::from_utf8_lossy(&out.stderr)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    match out.status.code() {
        Some(0) => match w {
            Some(Err(e)) => Err(SendError::from_io(&what, &e)),
            _ => Ok(()),
        },
        Some(c) if c == crate::exit::TEMPFAIL as i32 => {
            Err(SendError::Transient(format!("{what}: exit {c}: {err}")))
        }
        None => Err(SendError::Transient(format!("{what}: killed by a signal"))),
        Some(c) => Err(SendError::Permanent(format!("{what}: exit {c}: {err}"))),
    }
}

/// Why a mail yielded no CMR message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoMessage {
    pub reason: String,
}

impl std::fmt::Display for NoMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Turn every LF not preceded by CR into CR LF (undo local delivery's line ends).
fn restore_crlf(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.len() + b.len() / 32);
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
            v.push(b'\r');
        }
        v.push(c);
    }
    v
}

/// The CMR message at the start of `b`, allowing trailing white space (mail adds a final
/// newline) and, failing that, with local delivery's LF line ends turned back into CR LF.
fn message_in(b: &[u8], rules: &wire::Rules) -> Result<Vec<u8>, String> {
    let try_one = |b: &[u8]| -> Result<Vec<u8>, String> {
        let (m, used) = wire::parse_prefix(b, rules).map_err(|e| e.to_string())?;
        if !b[used..].iter().all(|c| c.is_ascii_whitespace()) {
            // Something other than the final newline follows: not a message body.
            return Err(format!(
                "{} bytes follow the message at byte {used}",
                b.len() - used
            ));
        }
        Ok(m.encode())
    };
    match try_one(b) {
        Ok(m) => Ok(m),
        Err(first) => try_one(&restore_crlf(b)).map_err(|_| first),
    }
}

/// Extract the CMR message from an RFC 5322 mail: the body, or the first MIME part that
/// parses as one (decoded from base64 or quoted-printable).
pub fn extract(mail: &[u8], rules: &wire::Rules) -> Result<Vec<u8>, NoMessage> {
    // An mbox "From " envelope line (some local deliveries add one) is not a header.
    let mail = if mail.starts_with(b"From ") {
        match mail.iter().position(|&c| c == b'\n') {
            Some(i) => &mail[i + 1..],
            None => mail,
        }
    } else {
        mail
    };
    let parsed = mail_parser::MessageParser::default()
        .parse(mail)
        .ok_or_else(|| NoMessage {
            reason: "not an RFC 5322 mail message".into(),
        })?;
    let mut first_err: Option<String> = None;
    let mut candidates = 0;
    for part in &parsed.parts {
        if part.is_multipart() || part.is_message() {
            continue;
        }
        candidates += 1;
        // Decoded contents first; the raw body bytes as a fallback (a charset the parser
        // converted, or a part it took for text).
        let raw = mail
            .get(part.raw_body_offset() as usize..part.raw_end_offset() as usize)
            .unwrap_or(b"");
        for bytes in [part.contents(), raw] {
            if bytes.is_empty() {
                continue;
            }
            match message_in(bytes, rules) {
                Ok(m) => return Ok(m),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    Err(NoMessage {
        reason: match first_err {
            Some(e) => {
                format!("mail has no part holding a CMR message ({candidates} part(s); first: {e})")
            }
            None => "mail has no body and no attachment".into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"0\r\n2008/09/01 00:00:53 udp://192.168.0.102:53/dns-tunnel\r\n\r\n14\r\nHello World!\r\n";

    fn rules() -> wire::Rules {
        wire::Rules::default()
    }

    #[test]
    fn plain_body_survives_local_delivery() {
        assert!(is_mail_safe(MSG));
        let m = compose("bob@example.org", "alice@example.org", MSG).unwrap();
        let f = m.formatted();
        let s = String::from_utf8_lossy(&f);
        assert!(s.contains("Subject: cmr"));
        // Exact, CR LF form.
        assert_eq!(extract(&f, &rules()).unwrap(), MSG);
        // As a Postfix pipe / .forward sees it: LF line ends, a From_ line and a newline.
        let mut lf = b"From alice@example.org  Sun Nov 22 12:00:00 2026\n".to_vec();
        lf.extend(f.iter().copied().filter(|&c| c != b'\r'));
        lf.push(b'\n');
        assert_eq!(extract(&lf, &rules()).unwrap(), MSG);
    }

    #[test]
    fn binary_goes_as_base64_attachment() {
        let body = b"caf\xc3\xa9\nbare lf\x00";
        let mut msg = b"0\r\n2008/09/01 00:00:53 mailto:a@b.c\r\n\r\n".to_vec();
        msg.extend_from_slice(format!("{}\r\n", body.len()).as_bytes());
        msg.extend_from_slice(body);
        assert!(!is_mail_safe(&msg));
        let f = compose("bob@example.org", "alice@example.org", &msg)
            .unwrap()
            .formatted();
        let s = String::from_utf8_lossy(&f);
        assert!(s.contains("application/octet-stream"), "{s}");
        assert!(s.contains("base64"), "{s}");
        let lf: Vec<u8> = f.iter().copied().filter(|&c| c != b'\r').collect();
        assert_eq!(extract(&lf, &rules()).unwrap(), msg);
    }

    #[test]
    fn quoted_printable_part_in_multipart() {
        let mail = "From: a@b.c\r\nTo: d@e.f\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
            Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n\
            Content-Type: text/plain\r\n\r\nhello, no cmr here\r\n--XX\r\n\
            Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
            0\r\n2008/09/01 00:00:53 udp://192.168.0.102:53/dns-tunnel\r\n\r\n14\r\nHello W=\r\norld!\r\n\r\n--XX--\r\n";
        assert_eq!(extract(mail.as_bytes(), &rules()).unwrap(), MSG);
    }

    #[test]
    fn relay_url_host() {
        assert_eq!(
            url_host("smtp://u:p@relay.example:587?tls=required"),
            Some("relay.example")
        );
        assert_eq!(url_host("smtps://relay.example"), Some("relay.example"));
        assert_eq!(url_host("smtp://[::1]:25"), Some("::1"));
        assert_eq!(url_host("smtp://127.0.0.1:25/ehlo.name"), Some("127.0.0.1"));
        assert_eq!(url_host("relay"), None);
    }

    #[test]
    fn mail_without_cmr_part_is_refused() {
        let mail = b"From: a@b.c\nTo: d@e.f\nSubject: hi\n\nJust saying hello.\n";
        let e = extract(mail, &rules()).unwrap_err();
        assert!(e.reason.contains("no part holding a CMR message"), "{e}");
        let e = extract(b"From: a@b.c\n\n", &rules()).unwrap_err();
        assert!(e.reason.contains("no body"), "{e}");
    }
}
