//! The native model as the router's matching engine ([`super::matching::Matcher`]).
//!
//! Scores follow the router's convention: lower = closer, and normalised so that the 3.3
//! thresholds do not depend on the message size.
//! - peer scores (3.2): `cond` (default) C(X|Y_i) / C(X) over the words of X the cache
//!   knows (words no cached message contains say nothing about where X belongs), where
//!   C(X) is the code length under the background model of the whole cache: 1.0 means
//!   "no better than the cache as a whole", and differences are shares of X's size as for
//!   the general-purpose compressors. `spec` D(X,Y_i) / C(X); `relative`
//!   (D(X,Y_i) - C(Y_i)) / C(X); `ncd` NCD(X, Y_i) (see [`super::model`]).
//! - related messages (A3): 1 - closeness(m) / max closeness, closeness in bits as in
//!   [`super::related`] (shared rare words plus the gain of m's peer): 0 for a message
//!   holding all of X's known words from the best peer, 1 for one sharing nothing.
//!
//! A message is scored once per routing decision even though the router asks for peer
//! scores and related messages separately: the last scoring is kept for the same body.

use super::matching::Matcher;
use super::model::{self, Global, PeerStats, Scored, Term, TermRow};
use super::related::{self, QueryView, RelatedOptions};
use super::store::{db_failure, SqlStore, Store};
use super::Metric;
use crate::exit::Failure;
use crate::state::fts::{ensure_fts, fts_learn};
pub use crate::state::fts::{fts_exists, sync_fts};
use crate::state::settings::Settings;
use rusqlite::{Connection, Transaction};
use std::cell::RefCell;

struct Last {
    /// `PRAGMA data_version` read before the rows below: while it is unchanged, no other
    /// connection has committed, and the rows are still what the file holds.
    version: i64,
    body: Vec<u8>,
    g: Global,
    peers: Vec<PeerStats>,
    terms: Vec<Term>,
    scored: Scored,
}

/// The native word model behind the router.
pub struct ModelMatcher {
    pub metric: Metric,
    pub opts: RelatedOptions,
    last: RefCell<Option<Last>>,
}

impl ModelMatcher {
    pub fn new(metric: Metric) -> ModelMatcher {
        ModelMatcher {
            metric,
            opts: RelatedOptions::default(),
            last: RefCell::new(None),
        }
    }

    /// From the `metric` setting: conditional, spec, relative or ncd.
    pub fn from_settings(s: &Settings) -> Result<ModelMatcher, Failure> {
        let metric = match s.metric.as_str() {
            "conditional" => Metric::Cond,
            "spec" => Metric::D,
            "relative" => Metric::DRel,
            "ncd" => Metric::Ncd,
            o => return Err(Failure::config(format!("unknown metric '{o}'"))),
        };
        Ok(ModelMatcher::new(metric))
    }

    /// Score `body` against every peer the model knows (or reuse the last scoring).
    fn with_scored<T>(
        &self,
        conn: &Connection,
        body: &[u8],
        f: impl FnOnce(&mut SqlStore<'_>, &Last) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let mut st = SqlStore::new(conn);
        let mut last = self.last.borrow_mut();
        if last.as_ref().is_none_or(|l| l.body != body) {
            let version = data_version(conn)?;
            let g = st.global()?;
            let peers = st.all_peers()?;
            let terms = model::terms(body);
            let scored = model::score(&mut st, &g, &terms, &peers)?;
            *last = Some(Last {
                version,
                body: body.to_vec(),
                g,
                peers,
                terms,
                scored,
            });
        }
        match last.as_ref() {
            Some(l) => f(&mut st, l),
            None => Err(Failure::software("engine: no scoring")),
        }
    }

    fn forget_last(&self) {
        self.last.borrow_mut().take();
    }

    /// The word rows of the last scoring of `body`, if no other connection has committed
    /// since they were read (the router scores X, then learns it in its write transaction:
    /// its words' rows need not be read twice). Clears the last scoring.
    fn take_rows(
        &self,
        conn: &Connection,
        body: &[u8],
    ) -> Result<Vec<(u64, Option<TermRow>)>, Failure> {
        let Some(l) = self.last.borrow_mut().take() else {
            return Ok(Vec::new());
        };
        if l.body != body || data_version(conn)? != l.version {
            return Ok(Vec::new());
        }
        Ok(l.terms.iter().map(|t| t.hash).zip(l.scored.rows).collect())
    }
}

/// SQLite's count of commits by other connections (`PRAGMA data_version`).
fn data_version(conn: &Connection) -> Result<i64, Failure> {
    conn.prepare_cached("PRAGMA data_version")
        .map_err(db_failure)?
        .query_row([], |r| r.get(0))
        .map_err(db_failure)
}

/// Learn every cached message the model does not hold yet (a state file whose cache
/// predates the engine's tables), oldest first, in the caller's transaction. Returns how
/// many were learned.
pub fn reindex(tx: &Transaction) -> Result<usize, Failure> {
    let rows: Vec<(i64, String, Vec<u8>)> = {
        let mut st = tx
            .prepare(
                "SELECT id, sender, substr(bytes, body_offset + 1) FROM cache
                 WHERE id NOT IN (SELECT id FROM engine_docs) ORDER BY id",
            )
            .map_err(db_failure)?;
        let it = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(db_failure)?;
        it.collect::<Result<_, _>>().map_err(db_failure)?
    };
    let mut store = SqlStore::new(tx);
    for (id, sender, body) in &rows {
        model::learn(&mut store, *id, sender, body)?;
    }
    Ok(rows.len())
}

/// Learn again, under `peer`, every cached message whose immediate sender is `sender` (a
/// sender declared an alias of `peer`, or given back its own context with `peer` =
/// `sender`), in cache order, in the caller's transaction. Returns how many.
pub fn relearn_sender(tx: &Transaction, sender: &str, peer: &str) -> Result<usize, Failure> {
    let rows: Vec<(i64, Vec<u8>)> = {
        let mut st = tx
            .prepare(
                "SELECT c.id, substr(c.bytes, c.body_offset + 1) FROM cache c
                 JOIN engine_docs d ON d.id = c.id WHERE c.sender = ?1 ORDER BY c.id",
            )
            .map_err(db_failure)?;
        let it = st
            .query_map([sender], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db_failure)?;
        it.collect::<Result<_, _>>().map_err(db_failure)?
    };
    let mut store = SqlStore::new(tx);
    for (id, body) in &rows {
        // learn() forgets what it learned under this id before
        model::learn(&mut store, *id, peer, body)?;
    }
    Ok(rows.len())
}

/// Add a cached message to the indexes: the native model always (so that the `compressor`
/// setting can go back to `model` at any time), and the baselines' full-text index when it
/// exists (only while a baseline compressor is selected: [`sync_fts`]).
pub fn learn_indexes(
    tx: &Transaction,
    cache_id: i64,
    peer: &str,
    body: &[u8],
    fts: bool,
) -> Result<(), Failure> {
    learn_with(tx, SqlStore::new(tx), cache_id, peer, body, fts)
}

fn learn_with(
    tx: &Transaction,
    mut store: SqlStore<'_>,
    cache_id: i64,
    peer: &str,
    body: &[u8],
    fts: bool,
) -> Result<(), Failure> {
    model::learn(&mut store, cache_id, peer, body)?;
    if fts {
        ensure_fts(tx)?;
        fts_learn(tx, cache_id, body)?;
    }
    Ok(())
}

/// Remove a cached message from the indexes of [`learn_indexes`].
pub fn forget_indexes(tx: &Transaction, cache_id: i64, fts: bool) -> Result<(), Failure> {
    model::forget(&mut SqlStore::new(tx), cache_id)?;
    if fts && fts_exists(tx)? {
        tx.execute("DELETE FROM cache_fts WHERE rowid = ?1", [cache_id])
            .map_err(db_failure)?;
    }
    Ok(())
}

impl Matcher for ModelMatcher {
    fn learn(
        &self,
        tx: &Transaction,
        cache_id: i64,
        peer: &str,
        body: &[u8],
    ) -> Result<(), Failure> {
        let rows = self.take_rows(tx, body)?;
        learn_with(tx, SqlStore::primed(tx, rows), cache_id, peer, body, false)
    }

    fn peer_scores(
        &self,
        conn: &Connection,
        body: &[u8],
        peers: &[String],
    ) -> Result<Vec<(String, f64)>, Failure> {
        let metric = self.metric;
        self.with_scored(conn, body, |_, l| {
            let sc = &l.scored;
            let cx = sc.cx.max(1.0);
            let mut out = Vec::with_capacity(peers.len());
            for want in peers {
                // a peer we have no message from has no context (the baseline skips it too)
                let Some(i) = l.peers.iter().position(|p| &p.address == want) else {
                    continue;
                };
                if l.peers[i].messages == 0 {
                    continue;
                }
                let s = match metric {
                    Metric::Cond if sc.cx_known > 0.0 => sc.cond_known[i] / sc.cx_known,
                    Metric::Cond => sc.cond[i] / cx,
                    Metric::D | Metric::DRel => sc.distance(metric, i, &l.peers[i]) / cx,
                    Metric::Ncd => sc.distance(metric, i, &l.peers[i]),
                };
                out.push((want.clone(), s, i));
            }
            // C(X|Y) / C(X): the mixture orders the peers, the best peer's own model gives
            // the scale of the thresholds (model::calibrate)
            if metric == Metric::Cond && sc.cx_known > 0.0 {
                if let Some(&(_, _, b)) = out.iter().min_by(|a, b| a.1.total_cmp(&b.1)) {
                    let own = sc.own_known_bits(&l.g, &l.peers[b]) / sc.cx_known;
                    let mut s: Vec<f64> = out.iter().map(|o| o.1).collect();
                    model::calibrate(&mut s, own);
                    for (o, v) in out.iter_mut().zip(s) {
                        o.1 = v;
                    }
                }
            }
            Ok(out.into_iter().map(|(a, s, _)| (a, s)).collect())
        })
    }

    fn related(
        &self,
        conn: &Connection,
        body: &[u8],
        k: usize,
    ) -> Result<Vec<(i64, f64)>, Failure> {
        if k == 0 {
            return Ok(Vec::new());
        }
        let opts = self.opts;
        self.with_scored(conn, body, |st, l| {
            let view = QueryView::new(&l.g, &l.terms, &l.scored, &l.peers, &opts);
            let top = view.max_closeness().max(1e-9);
            let r = related::related(st, &view, &l.terms, &l.scored, k, &opts)?;
            // related() returns -closeness
            Ok(r.into_iter().map(|(id, s)| (id, 1.0 + s / top)).collect())
        })
    }

    /// [`related::may_be_related`]: no peer scoring, and no read at all for a message that
    /// shares no word with X.
    fn may_relate(
        &self,
        conn: &Connection,
        body: &[u8],
        id: i64,
        new: &[u8],
    ) -> Result<bool, Failure> {
        let m: super::FastSet<u64> = model::terms(new).iter().map(|t| t.hash).collect();
        let mut st = SqlStore::new(conn);
        related::may_be_related(&mut st, &model::terms(body), &m, id, self.opts.probe)
    }

    /// C(Z) - C(Z | peer) under the model: the bits the peer's own statistics save on each
    /// candidate (the words of X are not added to his context: they are one message among
    /// the many his statistics hold). Reads one word row per word of the candidates.
    fn reply_gains(
        &self,
        conn: &Connection,
        peer: &str,
        x: &[u8],
        zs: &[&[u8]],
    ) -> Result<Vec<f64>, Failure> {
        self.with_scored(conn, x, |st, l| {
            let Some(p) = l.peers.iter().find(|p| p.address == peer) else {
                return Ok(vec![0.0; zs.len()]);
            };
            zs.iter()
                .map(|z| {
                    let s = model::score(st, &l.g, &model::terms(z), std::slice::from_ref(p))?;
                    Ok(s.cx - s.cond[0])
                })
                .collect()
        })
    }

    fn forget(&self, tx: &Transaction, cache_id: i64) -> Result<(), Failure> {
        self.forget_last();
        forget_indexes(tx, cache_id, false)
    }

    fn name(&self) -> String {
        let m = match self.metric {
            Metric::Cond => "conditional",
            Metric::D => "spec",
            Metric::DRel => "relative",
            Metric::Ncd => "ncd",
        };
        format!("model({m}, word model with peer statistics in the state file)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{cache, State};
    use crate::wire::{Message, Rules, Timestamp};

    /// A state file whose cache holds `msgs` (sender, body), one second apart, not indexed.
    fn cached(msgs: &[(&str, &str)]) -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(Some(&dir.path().join("s.sqlite"))).unwrap();
        state
            .write(|tx| {
                for (n, (from, body)) in msgs.iter().enumerate() {
                    let t = Timestamp::from_unix(1_700_000_000 + n as i64, 0, 0);
                    let m = Message::compose(
                        &[(t, from.as_bytes())],
                        body.as_bytes(),
                        &Rules::unchecked_time(),
                    )
                    .unwrap();
                    cache::insert(tx, &m, from, "pipe", false, false)?;
                }
                Ok(())
            })
            .unwrap();
        (dir, state)
    }

    #[test]
    fn reindex_learns_what_the_cache_holds_and_only_once() {
        let (_dir, state) = cached(&[
            ("http://a.test/", "Jupiter is the largest planet."),
            ("http://b.test/", "Bake the bread in a hot oven."),
            ("http://a.test/", "Saturn has rings; it is a planet too."),
        ]);
        assert_eq!(state.write(reindex).unwrap(), 3);
        assert_eq!(state.write(reindex).unwrap(), 0);
        let m = ModelMatcher::new(Metric::Cond);
        let peers = vec!["http://a.test/".to_string(), "http://b.test/".to_string()];
        let s = m
            .peer_scores(state.conn(), b"which planet has rings", &peers)
            .unwrap();
        assert_eq!(s.len(), 2);
        assert!(s[0].1 < s[1].1, "{s:?}");
        let r = m
            .related(state.conn(), b"which planet has rings", 1)
            .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, 3, "{r:?}");
    }

    /// `may_relate` is never false for a message `related` returns, and false for one that
    /// shares no word with the query.
    #[test]
    fn may_relate_never_rules_out_a_related_message() {
        let bodies = [
            "Jupiter is the largest planet.",
            "Bake the bread in a hot oven.",
            "Saturn has rings; it is a planet too.",
            "Rings of ice circle the outer planets.",
            "Knead the dough, then let it rise.",
            "Mars is red.",
        ];
        let msgs: Vec<(&str, &str)> = bodies
            .iter()
            .enumerate()
            .map(|(n, b)| (["http://p0.test/", "http://p1.test/"][n % 2], *b))
            .collect();
        let (_dir, state) = cached(&msgs);
        assert_eq!(state.write(reindex).unwrap(), bodies.len());
        let m = ModelMatcher::new(Metric::Cond);
        for x in [
            "which planet has rings",
            "the bread and the dough",
            "red planet",
        ] {
            let related = m.related(state.conn(), x.as_bytes(), bodies.len()).unwrap();
            assert!(!related.is_empty(), "{x}");
            for (id, body) in bodies.iter().enumerate() {
                let id = id as i64 + 1;
                let may = m
                    .may_relate(state.conn(), x.as_bytes(), id, body.as_bytes())
                    .unwrap();
                if related.iter().any(|&(r, _)| r == id) {
                    assert!(may, "{x:?} relates to {body:?} ({related:?})");
                }
            }
        }
        // "Mars is red." shares no word with the query: ruled out without a ranking.
        let may = m
            .may_relate(state.conn(), b"bake bread", 6, b"Mars is red.")
            .unwrap();
        assert!(!may);
    }
}
