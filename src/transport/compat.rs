//! What we never emit on a forward, because the other implementation of the protocol
//! (`cmr-peer`, whose seed peers are the network that exists today) refuses it although A2
//! allows it. docs/spec-notes.md lists every difference.
//!
//! - A timestamp ending in a bare `.` (A2: "A decimal point after the seconds is optional.
//!   If it appears, it may be followed by any number of decimals", zero included): it
//!   wants at least one digit after the point.
//! - A length line with leading zeros: it signs the length as it prints it, so the
//!   signature of such a message never verifies there.
//! - A header address that is not UTF-8 (A2: "any string not containing the CR or LF
//!   characters"): it reads every header line as UTF-8.
//! - A header address containing `://` that the URL standard does not parse (A2: "It has
//!   the form of a URL if the underlying transport protocol supports it"): it parses such
//!   an address as a URL and refuses the message when that fails.
//!
//! The first two are re-written on every forward ([`crate::wire::Message::prepend`] writes
//! the plain form, and our signature covers it). The last two cannot be repaired without
//! changing who the message names: the outbox does not send such a row and dead-letters it
//! with [`forward_defect`]'s reason.

use crate::wire::{self, Limits, Rules};

/// Why `bytes` (a forward as queued) must not go out, or None. Bytes that do not parse are
/// left for the transport to report.
pub fn forward_defect(bytes: &[u8]) -> Option<String> {
    let rules = Rules {
        limits: Limits {
            max_message_bytes: usize::MAX,
            max_header_lines: usize::MAX,
            max_line_bytes: usize::MAX,
        },
        ..Rules::unchecked_time()
    };
    let m = wire::parse(bytes, &rules).ok()?;
    for (i, id) in m.ids().enumerate() {
        let line = i + 2;
        let Ok(address) = std::str::from_utf8(id.address) else {
            return Some(format!(
                "header line {line}: address {:?} is not UTF-8",
                id.address_str()
            ));
        };
        if address.contains("://") && url::Url::parse(address).is_err() {
            return Some(format!(
                "header line {line}: address {address:?} contains \"://\" but is not a valid URL"
            ));
        }
        if id.timestamp.ends_with('.') {
            return Some(format!(
                "header line {line}: timestamp {:?} ends in a bare '.'",
                id.timestamp
            ));
        }
    }
    if m.plain_payload().len() != m.payload().len() {
        return Some("the length line has leading zeros".into());
    }
    None
}

/// [`forward_defect`] as the reason a row is not sent.
pub fn refusal(bytes: &[u8]) -> Option<String> {
    forward_defect(bytes)
        .map(|why| format!("not sent: {why} (the other implementation, cmr-peer, refuses that)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ts: &str, addr: &[u8], len: &str) -> Vec<u8> {
        let mut v = format!("0\r\n2026/01/01 00:00:02 http://a.example/\r\n{ts} ").into_bytes();
        v.extend_from_slice(addr);
        v.extend_from_slice(format!("\r\n\r\n{len}\r\nhello").as_bytes());
        v
    }

    #[test]
    fn what_is_not_emitted() {
        let ok = msg("2026/01/01 00:00:01.5", b"mailto:c@example.org", "5");
        assert_eq!(forward_defect(&ok), None);
        let plain_tag = msg("2026/01/01 00:00:01", b"a name, not a URL", "5");
        assert_eq!(forward_defect(&plain_tag), None);
        for (bytes, want) in [
            (
                msg("2026/01/01 00:00:01.", b"mailto:c@example.org", "5"),
                "bare '.'",
            ),
            (
                msg("2026/01/01 00:00:01", b"mailto:c@example.org", "005"),
                "leading zeros",
            ),
            (
                msg("2026/01/01 00:00:01", b"udp://c\xff/x", "5"),
                "not UTF-8",
            ),
            (
                msg("2026/01/01 00:00:01", b"http://exa mple.org/", "5"),
                "not a valid URL",
            ),
            (
                msg("2026/01/01 00:00:01", b"http://", "5"),
                "not a valid URL",
            ),
            (
                msg("2026/01/01 00:00:01", b"udp://h:99999/x", "5"),
                "not a valid URL",
            ),
        ] {
            let why = refusal(&bytes).expect(want);
            assert!(why.contains(want), "{want}: {why}");
        }
    }

    #[test]
    fn a_forward_is_written_plain() {
        let m = wire::parse(
            &msg("2026/01/01 00:00:01.", b"mailto:c@example.org", "005"),
            &Rules::unchecked_time(),
        )
        .unwrap();
        let t = wire::Timestamp::parse(b"2026/01/01 00:00:03").unwrap();
        let f = m.prepend(&t, b"http://b.example/").unwrap();
        assert_eq!(forward_defect(&f.encode()), None);
        assert_eq!(f.body(), b"hello");
        let ids: Vec<String> = f.ids().map(|i| i.timestamp.to_string()).collect();
        assert_eq!(
            ids,
            [
                "2026/01/01 00:00:03",
                "2026/01/01 00:00:02",
                "2026/01/01 00:00:01"
            ]
        );
        // the same message IDs as before, for the duplicate check
        assert_eq!(f.origin().key(), m.origin().key());
    }
}
