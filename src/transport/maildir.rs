//! The pool as mail, for people who read with mutt, mblaze or any mail reader.
//!
//! - [`render`]: a pool message as an RFC 5322 message. From is the creator's address (the
//!   message's last header line), Date the creator's timestamp, Subject the first line of
//!   the body; Message-ID is derived from the creator line, so every copy of a message has
//!   the same one, and In-Reply-To/References name the post it is related to.
//! - [`deliver`]: one file into a Maildir (`tmp/`, then `new/`, both synced), named after
//!   the (post, message) pair so that it is never delivered twice.
//! - [`deliver_replies`]: the messages that arrived later for our client's posts
//!   (`cmr-post --replies --maildir DIR`); marked shown only once their files are in `new/`.
//! - [`post_text`]: the text of a mail a person sent to be posted (`cmr-recv --mail --post`).

use crate::exit::Failure;
use crate::route::post::{self, Related};
use crate::state::{db_failure, State};
use crate::wire::Timestamp;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A creator line ("YYYY/MM/DD HH:MM:SS[.f] ADDRESS") split into its timestamp and address.
fn split_id(line: &str) -> (Option<Timestamp>, &str) {
    let mut it = line.splitn(3, ' ');
    match (it.next(), it.next(), it.next()) {
        (Some(d), Some(t), Some(a)) => (Timestamp::parse(format!("{d} {t}").as_bytes()).ok(), a),
        _ => (None, line),
    }
}

/// The Message-ID every copy of the message with this creator line gets.
pub fn message_id(creator_line: &str) -> String {
    let h = Sha256::digest(creator_line.as_bytes());
    format!("<{}@cmr.invalid>", crate::wire::hex(&h[..16]))
}

/// An RFC 5322 date-time (RFC 5322 3.3) for a timestamp, in UTC.
pub fn rfc5322_date(t: &Timestamp) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.unix_secs();
    // "YYYY/MM/DD HH:MM:SS" of the whole second.
    let s = Timestamp::from_unix(secs, 0, 0).to_string();
    let month: usize = s[5..7].parse().unwrap_or(1);
    format!(
        "{}, {} {} {} {} +0000",
        DAYS[secs.div_euclid(86400).rem_euclid(7) as usize],
        s[8..10].trim_start_matches('0'),
        MONTHS[month.clamp(1, 12) - 1],
        &s[0..4],
        &s[11..19]
    )
}

/// The From header's value for a CMR address: a mailto: address as it is, any other as
/// a display name with an address under .invalid (RFC 2606), which no mail reaches.
pub fn from_value(address: &str) -> String {
    if let Some(m) = address.strip_prefix("mailto:") {
        if m.contains('@') && !m.contains(['<', '>', '"', ' ', ',']) {
            return m.to_string();
        }
    }
    let host: String = address
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(address)
        .split(['/', ':', '?'])
        .next()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .collect();
    let host = if host.is_empty() { "cmr".into() } else { host };
    format!("{} <cmr@{host}.invalid>", quoted(address))
}

/// A header value that is printable ASCII as it is, else an RFC 2047 encoded word per
/// 45 bytes (so no encoded word passes 75 characters).
fn header_text(s: &str) -> String {
    use base64::Engine as _;
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return s.to_string();
    }
    let mut words = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let mut cut = rest.len().min(45);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (a, b) = rest.split_at(cut);
        words.push(format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(a)
        ));
        rest = b;
    }
    words.join("\n ")
}

/// A display name: a quoted string (RFC 5322 3.2.4), or encoded words when not ASCII.
fn quoted(s: &str) -> String {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        header_text(s)
    }
}

/// The first line of a body, for the Subject.
pub fn subject_of(body: &str) -> String {
    let l: String = body
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if l.is_empty() {
        "(no text)".into()
    } else {
        l
    }
}

/// `m` as an RFC 5322 message (LF line ends, as files in a Maildir have them). `post` is
/// the creator line of our client's post it relates to; `to` the post's creator address.
pub fn render(m: &Related, post: Option<&str>, to: Option<&str>) -> Vec<u8> {
    use base64::Engine as _;
    let (t, addr) = split_id(&m.message_id);
    let mut h = String::new();
    h.push_str(&format!("From: {}\n", from_value(addr)));
    if let Some(t) = &t {
        h.push_str(&format!("Date: {}\n", rfc5322_date(t)));
    }
    if let Some(to) = to {
        h.push_str(&format!("To: {}\n", from_value(to)));
    }
    h.push_str(&format!("Subject: {}\n", header_text(&subject_of(&m.body))));
    h.push_str(&format!("Message-ID: {}\n", message_id(&m.message_id)));
    if let Some(p) = post {
        let id = message_id(p);
        h.push_str(&format!("In-Reply-To: {id}\nReferences: {id}\n"));
    }
    h.push_str("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n");
    // Header values of our own making: the CMR ID and the peer it came from.
    h.push_str(&format!("X-CMR-ID: {}\n", header_text(&m.message_id)));
    h.push_str(&format!("X-CMR-Sender: {}\n", header_text(&m.sender)));
    h.push_str(&format!("X-CMR-Score: {:.4}\n", m.score));
    let text = m.body.replace("\r\n", "\n");
    let plain = text.lines().all(|l| l.len() <= 998) && !text.contains(['\r', '\0']);
    let mut out = h.into_bytes();
    if plain {
        out.extend_from_slice(b"Content-Transfer-Encoding: 8bit\n\n");
        out.extend_from_slice(text.as_bytes());
        if !text.ends_with('\n') {
            out.push(b'\n');
        }
    } else {
        out.extend_from_slice(b"Content-Transfer-Encoding: base64\n\n");
        let b = base64::engine::general_purpose::STANDARD.encode(m.body.as_bytes());
        for chunk in b.as_bytes().chunks(76) {
            out.extend_from_slice(chunk);
            out.push(b'\n');
        }
    }
    out
}

fn io(e: std::io::Error, what: impl std::fmt::Display) -> Failure {
    Failure::from(e).context(what)
}

fn sync_dir(d: &Path) -> Result<(), Failure> {
    std::fs::File::open(d)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(e, d.display()))
}

/// Make `dir` a Maildir (tmp, new, cur), mode 0700 for what it creates.
pub fn ensure(dir: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::DirBuilderExt;
    for sub in ["", "tmp", "new", "cur"] {
        let d = dir.join(sub);
        if !d.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .map_err(|e| io(e, d.display()))?;
        }
    }
    Ok(())
}

fn hostname() -> String {
    let h = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let h = h.replace('/', "\\057").replace(':', "\\072");
    if h.is_empty() {
        "localhost".into()
    } else {
        h
    }
}

/// The part of a file name that identifies the (post, message) pair.
pub fn delivery_key(post: &str, message: &str) -> String {
    let h = Sha256::digest(format!("{post}\n{message}").as_bytes());
    format!("cmr-{}", crate::wire::hex(&h[..8]))
}

/// Is a file for `key` in `new/` or `cur/` already (read or not, flags or not)?
fn delivered(dir: &Path, key: &str) -> Result<bool, Failure> {
    let needle = format!(".{key}.");
    for sub in ["new", "cur"] {
        let d = dir.join(sub);
        let rd = std::fs::read_dir(&d).map_err(|e| io(e, d.display()))?;
        for e in rd {
            let e = e.map_err(|e| io(e, d.display()))?;
            if e.file_name().to_string_lossy().contains(&needle) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Put `bytes` into the Maildir `dir` as a new message for `key` (written and synced in
/// `tmp/`, then linked into `new/`). False when that key was delivered before.
pub fn deliver(dir: &Path, key: &str, unix: i64, bytes: &[u8]) -> Result<bool, Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    ensure(dir)?;
    if delivered(dir, key)? {
        return Ok(false);
    }
    let name = format!("{}.{key}.{}", unix.max(0), hostname());
    let tmp: PathBuf = dir.join("tmp").join(&name);
    let new: PathBuf = dir.join("new").join(&name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io(e, tmp.display()))?;
    let written = f.write_all(bytes).and_then(|_| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e, tmp.display()));
    }
    drop(f);
    let linked = std::fs::hard_link(&tmp, &new);
    let _ = std::fs::remove_file(&tmp);
    linked.map_err(|e| io(e, new.display()))?;
    sync_dir(&dir.join("new"))?;
    Ok(true)
}

/// Deliver `m` into `dir` as related to the post with creator line `post`.
pub fn deliver_related(dir: &Path, m: &Related, post: &str) -> Result<bool, Failure> {
    let (pt, post_addr) = split_id(post);
    let (t, _) = split_id(&m.message_id);
    let unix = t.or(pt).map(|t| t.unix_secs()).unwrap_or(0);
    deliver(
        dir,
        &delivery_key(post, &m.message_id),
        unix,
        &render(m, Some(post), Some(post_addr)),
    )
}

/// `cmr-post --replies --maildir DIR`: every reply not shown yet (every one with `all`)
/// into `dir`; then, in one transaction, the delivered ones are marked shown. A reply whose
/// file is already there is not written again. Returns how many files were written.
pub fn deliver_replies(st: &State, dir: &Path, all: bool) -> Result<usize, Failure> {
    ensure(dir)?; // a reader may open it before the first reply
    let replies = post::replies(st, all, false)?;
    let mut n = 0;
    for r in &replies {
        if deliver_related(dir, &r.message, &r.post_id)? {
            n += 1;
        }
    }
    if !replies.is_empty() {
        st.write(|tx| {
            let mut q = tx
                .prepare("UPDATE client_inbox SET seen = 1 WHERE post_id = ?1 AND cache_id = ?2")
                .map_err(db_failure)?;
            for r in &replies {
                q.execute([r.post_cache_id, r.message.cache_id])
                    .map_err(db_failure)?;
            }
            Ok(())
        })?;
    }
    Ok(n)
}

/// The text of a mail to post: the Subject as the first line, then the plain-text body
/// (a signature after a "-- " line left out). None when the mail has no text at all.
pub fn post_text(mail: &[u8]) -> Option<String> {
    let m = mail_parser::MessageParser::default().parse(mail)?;
    let subject = m.subject().unwrap_or("").trim().to_string();
    let mut body = m
        .body_text(0)
        .map(|b| b.replace("\r\n", "\n"))
        .unwrap_or_default();
    if let Some(i) = body.find("\n-- \n") {
        body.truncate(i + 1);
    } else if body.starts_with("-- \n") {
        body.clear();
    }
    let body = body.trim();
    let text = match (subject.is_empty(), body.is_empty()) {
        (true, true) => return None,
        (false, true) => subject,
        (true, false) => body.to_string(),
        // The body already opens with the subject: once is enough.
        (false, false) if body.lines().next().map(str::trim) == Some(subject.as_str()) => {
            body.to_string()
        }
        (false, false) => format!("{subject}\n\n{body}"),
    };
    Some(text)
}

/// The envelope sender of a mail being delivered: $SENDER (local(8), procmail, a Postfix
/// pipe with `${sender}`), else the From address.
pub fn sender_of(mail: &[u8]) -> Option<String> {
    if let Some(s) = std::env::var("SENDER").ok().filter(|s| !s.is_empty()) {
        return Some(s);
    }
    let m = mail_parser::MessageParser::default().parse_headers(mail)?;
    m.from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc5322() {
        let t = Timestamp::parse(b"2008/09/01 00:00:53.42").unwrap();
        assert_eq!(rfc5322_date(&t), "Mon, 1 Sep 2008 00:00:53 +0000");
        let t = Timestamp::parse(b"2026/11/30 12:00:00").unwrap();
        assert_eq!(rfc5322_date(&t), "Mon, 30 Nov 2026 12:00:00 +0000");
        let t = Timestamp::parse(b"1970/01/01 00:00:00").unwrap();
        assert_eq!(rfc5322_date(&t), "Thu, 1 Jan 1970 00:00:00 +0000");
    }

    #[test]
    fn from_is_the_mail_address_or_a_name_under_invalid() {
        assert_eq!(from_value("mailto:bob@example.org"), "bob@example.org");
        assert_eq!(
            from_value("http://bob.example:8080/cmr"),
            "\"http://bob.example:8080/cmr\" <cmr@bob.example.invalid>"
        );
        assert_eq!(
            from_value("ssh://cmr@bob.example/bob"),
            "\"ssh://cmr@bob.example/bob\" <cmr@bob.example.invalid>"
        );
    }

    #[test]
    fn subjects_are_the_first_line_and_encoded_when_not_ascii() {
        assert_eq!(subject_of("\n  Jupiter is big.\nmore"), "Jupiter is big.");
        assert_eq!(subject_of(""), "(no text)");
        assert!(header_text("Jüpiter").starts_with("=?UTF-8?B?"));
    }

    #[test]
    fn a_mail_becomes_subject_and_body_without_its_signature() {
        let m = b"From: a@b\nSubject: What is the largest planet?\n\nI wonder.\n-- \nAlice\n";
        assert_eq!(
            post_text(m).unwrap(),
            "What is the largest planet?\n\nI wonder."
        );
        let m = b"From: a@b\nSubject: \n\nOnly a body\n";
        assert_eq!(post_text(m).unwrap(), "Only a body");
        let m = b"From: a@b\nSubject: Same\n\nSame\nand more\n";
        assert_eq!(post_text(m).unwrap(), "Same\nand more");
        assert_eq!(post_text(b"From: a@b\nSubject:\n\n\n"), None);
    }
}
