//! Matching (A3 "matched to zero or more messages in the cache") and the routing metric
//! (3.2), behind one trait so a better engine can replace the baseline.
//!
//! Scores are "lower = closer". The baseline [`CompressionMatcher`] measures distances with
//! a general-purpose compressor:
//!
//! - peer scores (3.2): for each peer i, Y_i = the bodies of its most recent cached
//!   messages (at most `context_bytes`, 32 KB by default: the deflate window), and
//!   - `conditional` (default): C(Y_i X) - C(Y_i), "the peer that can compress X the
//!     smallest";
//!   - `spec`: D(X, Y_i) = C(X Y_i) - C(X) + C(Y_i X) - C(Y_i), the spec's distance;
//!   - `relative`: D(X, Y_i) - C(Y_i);
//!
//!   each divided by C(X), so that 1.0 means "the peer's context does not help" and the
//!   3.3 thresholds do not depend on the message size.
//! - related messages: a shortlist from the full-text index of the cache (`cache_fts`,
//!   SQLite FTS5, kept only while a baseline is selected, ranked by bm25, the query made of the message's rarer-looking words),
//!   then each candidate scored exactly as (C(Y X) - C(Y)) / C(X). Never a scan of the
//!   whole cache.

use crate::exit::Failure;
use crate::state::{self, db_failure, settings::Settings};
use rusqlite::{Connection, Transaction};
use std::io::Write;

/// The matching engine's interface. Lower scores are closer.
pub trait Matcher {
    /// A message was added to the cache (row `cache_id`, immediate sender `peer`): update
    /// whatever index or model the engine keeps. Runs inside the router's transaction.
    fn learn(
        &self,
        tx: &Transaction,
        cache_id: i64,
        peer: &str,
        body: &[u8],
    ) -> Result<(), Failure>;
    /// Score `body` against each peer's context (3.2). One entry per scored peer.
    fn peer_scores(
        &self,
        conn: &Connection,
        body: &[u8],
        peers: &[String],
    ) -> Result<Vec<(String, f64)>, Failure>;
    /// The at most `k` cached messages closest to `body`, closest first: (cache row, score).
    fn related(&self, conn: &Connection, body: &[u8], k: usize)
        -> Result<Vec<(i64, f64)>, Failure>;
    /// Whether cached message `id` (body `new`) can be among the related messages of `body`
    /// at all: a cheap test before [`Matcher::related`], never false for a message
    /// `related` could return. By default always true.
    fn may_relate(
        &self,
        _conn: &Connection,
        _body: &[u8],
        _id: i64,
        _new: &[u8],
    ) -> Result<bool, Failure> {
        Ok(true)
    }
    /// A cached message left the cache.
    fn forget(&self, tx: &Transaction, cache_id: i64) -> Result<(), Failure>;
    /// 3.2 compensatory reply: for each candidate body Z, what `peer` (one of X's senders)
    /// would save on Z given what he sent us and X: C(Z) - C(Z | peer's context, X).
    /// Higher = the better reply. By default with deflate over the peer's most recent
    /// 8 KB followed by X ("Alice can concatenate other messages from Bob to X").
    fn reply_gains(
        &self,
        conn: &Connection,
        peer: &str,
        x: &[u8],
        zs: &[&[u8]],
    ) -> Result<Vec<f64>, Failure> {
        compressor_reply_gains(Compressor::Deflate, conn, peer, x, zs)
    }
    /// A short name for `--explain`.
    fn name(&self) -> String;
}

/// [`Matcher::reply_gains`] with a general-purpose compressor: C(Z) - (C(B X Z) - C(B X)),
/// B the peer's most recent 8 KB.
fn compressor_reply_gains(
    c: Compressor,
    conn: &Connection,
    peer: &str,
    x: &[u8],
    zs: &[&[u8]],
) -> Result<Vec<f64>, Failure> {
    let mut ctx = state::cache::peer_context(conn, peer, 8 << 10)?;
    ctx.extend_from_slice(x);
    Ok(zs
        .iter()
        .map(|z| c.size(z) as f64 - c.conditional(&ctx, z) as f64)
        .collect())
}

/// The matcher the settings ask for: the native model (`compressor = model`, the
/// default, see docs/routing.md) or a general-purpose compressor.
pub fn from_settings(s: &Settings) -> Result<Box<dyn Matcher>, Failure> {
    match s.matcher.as_str() {
        "compression" if s.compressor == "model" => {
            Ok(Box::new(super::matcher::ModelMatcher::from_settings(s)?))
        }
        "compression" => Ok(Box::new(CompressionMatcher::from_settings(s)?)),
        other => Err(Failure::config(format!("unknown matcher '{other}'"))),
    }
}

/// A general-purpose compressor used as a distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compressor {
    Deflate,
    Xz,
}

/// A `Write` that only counts.
struct Count(usize);
impl Write for Count {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Compressor {
    pub fn parse(s: &str) -> Result<Compressor, Failure> {
        match s {
            "deflate" => Ok(Compressor::Deflate),
            "xz" => Ok(Compressor::Xz),
            o => Err(Failure::config(format!("unknown compressor '{o}'"))),
        }
    }

    /// C(x): compressed size in bytes.
    pub fn size(&self, x: &[u8]) -> usize {
        match self {
            Compressor::Deflate => {
                let mut e =
                    flate2::write::DeflateEncoder::new(Count(0), flate2::Compression::default());
                let _ = e.write_all(x);
                e.finish().map(|c| c.0).unwrap_or(x.len())
            }
            Compressor::Xz => {
                let mut e = xz2::write::XzEncoder::new(Count(0), 2);
                let _ = e.write_all(x);
                e.finish().map(|c| c.0).unwrap_or(x.len())
            }
        }
    }

    /// C(y x) - C(y): the bytes x costs after y.
    pub fn conditional(&self, y: &[u8], x: &[u8]) -> usize {
        match self {
            Compressor::Deflate => {
                // One pass: a sync flush after y marks C(y) without resetting the window.
                let mut e =
                    flate2::write::DeflateEncoder::new(Count(0), flate2::Compression::default());
                let _ = e.write_all(y);
                let _ = e.flush();
                let cy = e.get_ref().0;
                let _ = e.write_all(x);
                let cyx = e.finish().map(|c| c.0).unwrap_or(cy + x.len());
                cyx.saturating_sub(cy)
            }
            Compressor::Xz => {
                let mut yx = Vec::with_capacity(y.len() + x.len());
                yx.extend_from_slice(y);
                yx.extend_from_slice(x);
                self.size(&yx).saturating_sub(self.size(y))
            }
        }
    }
}

/// The routing metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// C(Y X) - C(Y).
    Conditional,
    /// D(X, Y) = C(X Y) - C(X) + C(Y X) - C(Y).
    Spec,
    /// D(X, Y) - C(Y).
    Relative,
    /// NCD(X, Y) = (C(XY) - min(C(X), C(Y))) / max(C(X), C(Y)).
    Ncd,
}

impl Metric {
    pub fn parse(s: &str) -> Result<Metric, Failure> {
        match s {
            "conditional" => Ok(Metric::Conditional),
            "spec" => Ok(Metric::Spec),
            "relative" => Ok(Metric::Relative),
            "ncd" => Ok(Metric::Ncd),
            o => Err(Failure::config(format!("unknown metric '{o}'"))),
        }
    }
}

/// The baseline: compression distances, an FTS5 shortlist for related messages.
pub struct CompressionMatcher {
    pub compressor: Compressor,
    pub metric: Metric,
    pub context_bytes: usize,
    /// Candidates taken from the full-text index before exact scoring.
    pub shortlist: usize,
    /// Rank related messages by compression (true) or by the index's bm25 alone.
    pub rescore: bool,
}

impl CompressionMatcher {
    pub fn from_settings(s: &Settings) -> Result<CompressionMatcher, Failure> {
        Ok(CompressionMatcher {
            compressor: Compressor::parse(&s.compressor)?,
            metric: Metric::parse(&s.metric)?,
            context_bytes: s.context_bytes as usize,
            shortlist: 64,
            rescore: s.related_rank == "compression",
        })
    }

    /// The score of `x` against one context (see the module docs).
    pub fn score(&self, context: &[u8], x: &[u8], cx: usize) -> f64 {
        let c = &self.compressor;
        let cond = c.conditional(context, x) as f64;
        let raw = match self.metric {
            Metric::Conditional => cond,
            Metric::Spec => c.conditional(x, context) as f64 + cond,
            Metric::Relative => {
                let cy = c.size(context) as f64;
                c.conditional(x, context) as f64 + cond - cy
            }
            Metric::Ncd => {
                // already normalised
                let cy = c.size(context) as f64;
                let cxf = cx as f64;
                let cxy = (cy + cond).min(cxf + c.conditional(x, context) as f64);
                return (cxy - cxf.min(cy)) / cxf.max(cy).max(1.0);
            }
        };
        raw / cx.max(1) as f64
    }
}

/// Words for the full-text query: distinct, at least three characters, not among the
/// commonest English words, longest first (a cheap stand-in for rarity), at most `max`.
pub fn query_terms(body: &[u8], max: usize) -> Vec<String> {
    const STOP: &[&str] = &[
        "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her", "was",
        "one", "our", "out", "has", "his", "how", "its", "who", "did", "get", "may", "him", "she",
        "too", "use", "that", "with", "have", "this", "will", "your", "from", "they", "been",
        "were", "what", "when", "which", "there", "their", "would", "could", "about", "into",
        "than", "then", "them", "these", "some", "only", "also", "just",
    ];
    let text = String::from_utf8_lossy(&body[..body.len().min(64 << 10)]).to_lowercase();
    let mut seen = std::collections::HashSet::new();
    let mut terms: Vec<String> = Vec::new();
    for w in text.split(|c: char| !c.is_alphanumeric()) {
        if w.chars().count() < 3 || w.len() > 64 || STOP.contains(&w) {
            continue;
        }
        if seen.insert(w.to_string()) {
            terms.push(w.to_string());
        }
    }
    // Stable: among equal lengths keep the order of first appearance.
    terms.sort_by_key(|t| std::cmp::Reverse(t.chars().count()));
    terms.truncate(max);
    terms
}

/// The FTS5 MATCH expression for `body`: its query terms, each quoted, joined by OR;
/// None when the body has no terms.
fn fts_query(body: &[u8]) -> Option<String> {
    let terms = query_terms(body, 32);
    if terms.is_empty() {
        return None;
    }
    Some(
        terms
            .iter()
            .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" OR "),
    )
}

/// FTS5 shortlist: cache rows whose bodies share words with `body`, best bm25 first.
pub fn fts_shortlist(conn: &Connection, body: &[u8], limit: usize) -> Result<Vec<i64>, Failure> {
    let q = match fts_query(body) {
        Some(q) if limit > 0 => q,
        _ => return Ok(Vec::new()),
    };
    let mut st = conn
        .prepare_cached(
            "SELECT rowid FROM cache_fts WHERE cache_fts MATCH ?1 ORDER BY bm25(cache_fts) LIMIT ?2",
        )
        .map_err(db_failure)?;
    let rows = st
        .query_map(rusqlite::params![q, limit as i64], |r| r.get::<_, i64>(0))
        .map_err(db_failure)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_failure)
}

/// FTS5 alone: the `k` best bm25 matches, scored 1 - 1/(1 + |bm25|) so that lower is
/// closer and scores fall in [0, 1).
pub fn fts_ranked(conn: &Connection, body: &[u8], k: usize) -> Result<Vec<(i64, f64)>, Failure> {
    let q = match fts_query(body) {
        Some(q) if k > 0 => q,
        _ => return Ok(Vec::new()),
    };
    let mut st = conn
        .prepare_cached(
            "SELECT rowid, bm25(cache_fts) FROM cache_fts WHERE cache_fts MATCH ?1
             ORDER BY bm25(cache_fts) LIMIT ?2",
        )
        .map_err(db_failure)?;
    let rows = st
        .query_map(rusqlite::params![q, k as i64], |r| {
            let b: f64 = r.get(1)?;
            Ok((r.get::<_, i64>(0)?, 1.0 - 1.0 / (1.0 + b.abs())))
        })
        .map_err(db_failure)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_failure)
}

impl Matcher for CompressionMatcher {
    fn learn(
        &self,
        tx: &Transaction,
        cache_id: i64,
        peer: &str,
        body: &[u8],
    ) -> Result<(), Failure> {
        super::matcher::learn_indexes(tx, cache_id, peer, body, true)
    }

    fn forget(&self, tx: &Transaction, cache_id: i64) -> Result<(), Failure> {
        super::matcher::forget_indexes(tx, cache_id, true)
    }

    fn peer_scores(
        &self,
        conn: &Connection,
        body: &[u8],
        peers: &[String],
    ) -> Result<Vec<(String, f64)>, Failure> {
        let cx = self.compressor.size(body);
        let mut out = Vec::with_capacity(peers.len());
        for p in peers {
            let ctx = state::cache::peer_context(conn, p, self.context_bytes)?;
            if ctx.is_empty() {
                continue;
            }
            out.push((p.clone(), self.score(&ctx, body, cx)));
        }
        Ok(out)
    }

    fn related(
        &self,
        conn: &Connection,
        body: &[u8],
        k: usize,
    ) -> Result<Vec<(i64, f64)>, Failure> {
        // The index is built by the first message learned after a switch to a baseline
        // (or by `cmr-route policy compressor`); until then nothing is shortlisted.
        if k == 0 || !super::matcher::fts_exists(conn)? {
            return Ok(Vec::new());
        }
        if !self.rescore {
            return fts_ranked(conn, body, k);
        }
        let ids = fts_shortlist(conn, body, self.shortlist.max(k))?;
        let cx = self.compressor.size(body).max(1) as f64;
        let mut st = conn
            .prepare_cached("SELECT substr(bytes, body_offset + 1) FROM cache WHERE id = ?1")
            .map_err(db_failure)?;
        let mut scored = Vec::with_capacity(ids.len());
        for id in ids {
            let y: Vec<u8> = match st.query_row([id], |r| r.get(0)) {
                Ok(y) => y,
                Err(rusqlite::Error::QueryReturnedNoRows) => continue,
                Err(e) => return Err(db_failure(e)),
            };
            let s = self.compressor.conditional(&y, body) as f64 / cx;
            scored.push((id, s));
        }
        scored.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        Ok(scored)
    }

    fn reply_gains(
        &self,
        conn: &Connection,
        peer: &str,
        x: &[u8],
        zs: &[&[u8]],
    ) -> Result<Vec<f64>, Failure> {
        compressor_reply_gains(self.compressor, conn, peer, x, zs)
    }

    fn name(&self) -> String {
        let c = match self.compressor {
            Compressor::Deflate => "deflate",
            Compressor::Xz => "xz",
        };
        let m = match self.metric {
            Metric::Conditional => "conditional",
            Metric::Spec => "spec",
            Metric::Relative => "relative",
            Metric::Ncd => "ncd",
        };
        format!(
            "compression({m}, {c}, {} byte contexts)",
            self.context_bytes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_helps_conditional_compression() {
        let c = Compressor::Deflate;
        let x = b"Jupiter is the largest planet of the solar system.";
        let near = b"Saturn is the second largest planet of the solar system. Mercury is the innermost planet.";
        let far = b"Preheat the oven, whisk eggs with sugar, fold in flour and bake for an hour.";
        assert!(c.conditional(near, x) < c.conditional(far, x));
        assert!(Compressor::Xz.conditional(near, x) <= Compressor::Xz.conditional(far, x));
    }

    #[test]
    fn query_terms_skip_short_and_common_words() {
        let t = query_terms(b"What is the largest planet? The largest!", 8);
        assert_eq!(t, vec!["largest", "planet"]);
    }
}
