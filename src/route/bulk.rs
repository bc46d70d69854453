//! Bulk posting: one creator sending nearly the same text again and again.
//!
//! Section 4: peers "must have an incentive to prevent their peers from being exploited by
//! forwarding malicious traffic"; A3: a router "may also reject a message for any reason,
//! for example, if ... the content is recognized as spam". Without users' ratings, what a
//! router can recognise is repetition (Usenet's "excessive multi-posting"): a message whose
//! words resemble those of a recent message from the same creator. Such a message is
//! cached (its creator's router, and whoever holds it, can still answer with it) but not
//! forwarded: the first copy travels as far as any new post, the later ones stay put.
//!
//! The measure is the resemblance of the two messages' word sets (Broder, "On the
//! resemblance and containment of documents", 1997): shared words over all words. It is
//! symmetric, so a short message is not a copy of a long one because the long one holds
//! its words. Tokens holding a digit are left out: numbers, codes and random strings
//! ("hash busters") are what a bulk poster varies to defeat exact-duplicate checks.

use crate::exit::Failure;
use crate::state::{db_failure, settings::Settings};
use crate::wire::Message;
use std::collections::HashSet;

/// How many of the creator's most recent cached messages a message is compared with.
const RECENT: i64 = 32;
/// Fewer distinct words than this: too short to call a copy. Two short sentences share
/// their function words ("is", "the", "a") and little else, and that alone can make half
/// of their words.
const MIN_WORDS: usize = 12;

/// The words of a body: lowercased runs of letters and apostrophes; tokens holding a
/// digit are left out.
pub fn words(body: &[u8]) -> HashSet<String> {
    String::from_utf8_lossy(body)
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty() && !w.chars().any(|c| c.is_ascii_digit()))
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Shared words over all words (0 when both are empty).
pub fn resemblance(a: &HashSet<String>, b: &HashSet<String>) -> f64 {
    let shared = a.intersection(b).count();
    let all = a.len() + b.len() - shared;
    if all == 0 {
        0.0
    } else {
        shared as f64 / all as f64
    }
}

/// With `bulk_resemblance` set: the most resembling of the creator's `RECENT` most recent
/// cached messages (of those cached before row `before`), when it resembles `msg` at
/// least that much.
pub(crate) fn near_duplicate(
    conn: &rusqlite::Connection,
    settings: &Settings,
    msg: &Message,
    before: i64,
) -> Result<Option<(i64, f64)>, Failure> {
    match settings.bulk_resemblance {
        Some(bar) => resembling(conn, msg, bar, before),
        None => Ok(None),
    }
}

/// The most resembling of the creator's `RECENT` most recent cached messages (of those
/// cached before row `before`), when it resembles `msg` at least `bar`.
pub(crate) fn resembling(
    conn: &rusqlite::Connection,
    msg: &Message,
    bar: f64,
    before: i64,
) -> Result<Option<(i64, f64)>, Failure> {
    let mine = words(msg.body());
    if mine.len() < MIN_WORDS {
        return Ok(None);
    }
    let creator = msg.origin().address_str();
    let mut st = conn
        .prepare_cached(
            "SELECT id, substr(bytes, body_offset + 1) FROM cache
             WHERE origin = ?1 AND id < ?3 ORDER BY id DESC LIMIT ?2",
        )
        .map_err(db_failure)?;
    let rows = st
        .query_map(rusqlite::params![creator.as_ref(), RECENT, before], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .map_err(db_failure)?;
    let mut best: Option<(i64, f64)> = None;
    for row in rows {
        let (id, body) = row.map_err(db_failure)?;
        let r = resemblance(&mine, &words(&body));
        if r >= bar && best.is_none_or(|(_, b)| r > b) {
            best = Some((id, r));
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_leave_out_numbers_and_fold_case() {
        let w = words(b"Buy NOW: 4f3a9c offer #12, offer ends 2026! Don't");
        let mut v: Vec<_> = w.into_iter().collect();
        v.sort();
        assert_eq!(v, ["buy", "don't", "ends", "now", "offer"]);
    }

    #[test]
    fn resemblance_is_shared_over_all() {
        let a = words(b"a b c d");
        let b = words(b"c d e f");
        assert!((resemblance(&a, &b) - 2.0 / 6.0).abs() < 1e-12);
        assert_eq!(resemblance(&a, &a), 1.0);
        assert_eq!(resemblance(&HashSet::new(), &HashSet::new()), 0.0);
    }
}
