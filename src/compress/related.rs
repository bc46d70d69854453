//! Related messages (A3: "it should be matched to zero or more messages in the cache")
//! without scanning the cache.
//!
//! Shortlist: the word rows read for scoring X already carry the ids (and peers) of the
//! most recent messages containing each word ([`super::model::RECENT`] at most). The
//! rarest words of X (at most `probe` of them) vote for those ids with their information
//! content idf(t) = log2((docs + 1) / df(t)), on top of the gain of the message's peer;
//! the best `shortlist` ids are scored exactly.
//!
//! Exact score of a cached message m (in bits, higher = closer; returned negated so that
//! lower = closer as everywhere in routing):
//!
//! ```text
//!   s(m) = sum over words t shared by X and m of idf(t) * (k1 + 1) / (1 + k1 (1 - b + b |m| / avg))
//!        + gain(peer(m)) / w, gain(p) = C(X) - C(X | Y_p)  (bits the peer's model saves on
//!                                   the words of X the cache knows)
//! ```
//!
//! w being the weight of a peer's own distribution in its model's mixture with the
//! background ([`super::model::TOPIC_WEIGHT`]): the mixture's savings are about w times
//! those of the peer's statistics alone, which the BM25 term is weighed against (measured:
//! docs/routing.md, "Cold start").
//!
//! The first term is BM25 with binary term frequencies and its usual constants
//! (k1 = 1.2, b = 0.75); the second is the spec's clustering assumption (3.2: "messages
//! cluster within peers"): a message is more likely related when the peer it came from
//! compresses X well. The cost is O(|X| + probe x RECENT + shortlist), not O(cache).

use super::model::{Global, PeerStats, Scored, Term};
use super::store::{Doc, Store};
use super::FastMap;
use crate::exit::Failure;

/// Knobs of the related-message search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelatedOptions {
    /// rarest words of X whose recent-message lists are probed
    pub probe: usize,
    /// candidates scored exactly
    pub shortlist: usize,
    /// weight of the peer model's gain in the exact score (0 = text similarity only);
    /// default 1 / TOPIC_WEIGHT
    pub peer_weight: f64,
}

impl Default for RelatedOptions {
    fn default() -> Self {
        RelatedOptions {
            probe: 16,
            shortlist: 64,
            peer_weight: 1.0 / super::model::TOPIC_WEIGHT,
        }
    }
}

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// What the exact scorer needs about X.
pub struct QueryView {
    idf: FastMap<u64, f64>,
    gain: Vec<f64>,
    avg_len: f64,
    weight: f64,
}

impl QueryView {
    pub fn new(
        g: &Global,
        terms: &[Term],
        scored: &Scored,
        peers: &[PeerStats],
        opts: &RelatedOptions,
    ) -> QueryView {
        let docs = g.docs as f64 + 1.0;
        let mut idf = FastMap::with_capacity_and_hasher(terms.len(), Default::default());
        for (t, row) in terms.iter().zip(&scored.rows) {
            if let Some(r) = row {
                if r.df > 0 {
                    idf.insert(t.hash, (docs / r.df as f64).log2());
                }
            }
        }
        let n = peers.iter().map(|p| p.idx as usize + 1).max().unwrap_or(0);
        let mut gain = vec![0.0; n];
        for (i, p) in peers.iter().enumerate() {
            // over the words the cache knows, as the router's peer scores
            gain[p.idx as usize] = scored.cx_known - scored.cond_known[i];
        }
        QueryView {
            idf,
            gain,
            avg_len: if g.docs == 0 {
                1.0
            } else {
                g.total as f64 / g.docs as f64
            },
            weight: opts.peer_weight,
        }
    }

    /// The weighted gain of a peer's model on X (bits).
    pub fn peer_gain(&self, peer: u32) -> f64 {
        self.weight * self.gain.get(peer as usize).copied().unwrap_or(0.0)
    }

    /// The largest closeness a message could have: all of X's known words (at the average
    /// length) and the best peer's gain. Normalises closeness into [0, 1] for thresholds.
    pub fn max_closeness(&self) -> f64 {
        let sim: f64 = self.idf.values().map(|w| w * (K1 + 1.0) / (1.0 + K1)).sum();
        sim + self
            .gain
            .iter()
            .map(|g| self.weight * g)
            .fold(0.0, f64::max)
    }

    /// Exact closeness of a cached message (bits, higher = closer).
    pub fn closeness(&self, d: &Doc) -> f64 {
        let norm = K1 * (1.0 - B + B * d.terms.len() as f64 / self.avg_len);
        let mut s = 0.0;
        for t in &d.terms {
            if let Some(w) = self.idf.get(t) {
                s += w * (K1 + 1.0) / (1.0 + norm);
            }
        }
        s + self.peer_gain(d.peer)
    }
}

fn top_k(mut v: Vec<(i64, f64)>, k: usize) -> Vec<(i64, f64)> {
    // closest first; ties: the message cached first (lower id) first, as the baseline does
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    v.truncate(k);
    v
}

/// The `k` related messages of X from the shortlist: (cache id, -closeness), closest first.
pub fn related(
    store: &mut dyn Store,
    view: &QueryView,
    terms: &[Term],
    scored: &Scored,
    k: usize,
    opts: &RelatedOptions,
) -> Result<Vec<(i64, f64)>, Failure> {
    // approximate closeness: idf of the probed words (without length normalisation) plus
    // the gain of the message's peer, which the word rows carry along with the ids
    let mut votes: FastMap<i64, f64> = FastMap::default();
    let dfs = scored.rows.iter().map(|r| r.as_ref().map_or(0, |r| r.df));
    for i in probes(dfs, opts.probe) {
        let w = view.idf.get(&terms[i].hash).copied().unwrap_or(0.0);
        if let Some(r) = &scored.rows[i] {
            for &(id, p) in &r.recent {
                *votes.entry(id).or_insert_with(|| view.peer_gain(p)) += w;
            }
        }
    }
    let short = top_k(
        votes.into_iter().map(|(id, v)| (id, -v)).collect(),
        opts.shortlist,
    );
    let mut exact = Vec::with_capacity(short.len());
    for (id, _) in short {
        if let Some(d) = store.doc(id)? {
            exact.push((id, -view.closeness(&d)));
        }
    }
    Ok(top_k(exact, k))
}

/// The rarest words of X that the cache knows, at most `probe` of them: their indexes in
/// X's words, rarest first, ties in X's order. `dfs`: each word's document frequency (0:
/// unknown), in X's order.
pub fn probes(dfs: impl Iterator<Item = u64>, probe: usize) -> Vec<usize> {
    let mut p: Vec<(u64, usize)> = dfs
        .enumerate()
        .filter(|&(_, df)| df > 0)
        .map(|(i, df)| (df, i))
        .collect();
    p.sort();
    p.truncate(probe);
    p.into_iter().map(|(_, i)| i).collect()
}

/// Whether cached message `id`, whose words are `m`, can be among the related messages of
/// X (words `x`). Only the messages on the recent lists of X's probed words get a vote
/// for the shortlist ([`related`]), and a message is on a word's list only if it holds the
/// word: a message that shares none of X's words is out without a read; otherwise X's
/// probes are found from the words' document frequencies, and the recent lists are read
/// only for the probed words the message holds.
pub fn may_be_related(
    store: &mut dyn Store,
    x: &[Term],
    m: &super::FastSet<u64>,
    id: i64,
    probe: usize,
) -> Result<bool, Failure> {
    if !x.iter().any(|t| m.contains(&t.hash)) {
        return Ok(false);
    }
    let dfs = x
        .iter()
        .map(|t| store.df(t.hash))
        .collect::<Result<Vec<_>, _>>()?;
    for i in probes(dfs.into_iter(), probe) {
        if !m.contains(&x[i].hash) {
            continue;
        }
        if let Some(r) = store.term(x[i].hash)? {
            if r.recent.iter().any(|&(c, _)| c == id) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The `k` related messages by scoring every remembered message exactly (for measuring
/// the shortlist's recall; O(cache)).
pub fn related_exhaustive(
    store: &mut dyn Store,
    view: &QueryView,
    k: usize,
) -> Result<Vec<(i64, f64)>, Failure> {
    let mut all = Vec::new();
    store.for_each_doc(&mut |id, d| all.push((id, -view.closeness(d))))?;
    Ok(top_k(all, k))
}
