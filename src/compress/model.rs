//! The native statistical compressor: an adaptive word model per peer, backed off to a
//! background model of everything in the cache.
//!
//! What it codes: the set of distinct words of a message X (a word is a maximal run of
//! ASCII letters/digits, apostrophes and non-ASCII bytes, lower-cased; at most
//! [`MAX_TERMS`] per message). Each word t is coded with
//!
//! ```text
//!   P(t | peer) = w max(c - D(c), 0) / N  +  (1 - w (1 - gamma)) P(t | all),   c = c(t, peer)
//!   gamma       = (D1 N1 + D2 N2 + D3 N3+) / N
//!   P(t | all)  = (df(t) + 1/2) / (T + (V + 1) / 2)
//! ```
//!
//! i.e. PPM-style escape from the peer's statistics (c = how many of the peer's messages
//! contain t, N = sum of c, Nk = words with c = k, N3+ with c >= 3) to the background
//! (df = how many cached messages contain t, T = sum of df, V = distinct words). The
//! discounts are those of modified Kneser-Ney (Chen and Goodman 1998), estimated from the
//! peer's own counts of counts n1..n4: Y = n1 / (n1 + 2 n2), D1 = 1 - 2Y n2/n1,
//! D2 = 2 - 3Y n3/n2, D3 = 3 - 4Y n4/n3; so there is no hand-tuned constant. A word never
//! seen costs the escape plus 8 bits per byte and a terminator. The code length
//! C(X | Y_peer) = sum -log2 P(t | peer) is computed without producing output.
//!
//! The peer's own distribution (its discounted counts backed off to the background, as in
//! Kneser-Ney) is itself one component of a mixture: a word of X comes from the peer's
//! model with probability w = [`TOPIC_WEIGHT`] and from the background (the language of
//! the whole cache) otherwise. That is the two-component model of topical text of
//! information retrieval (a document's words are its topic's or general language's; Zhai
//! and Lafferty 2001, Hiemstra 2001). It matters most where a peer is known by few
//! messages: a word missing from 20 messages says little against the peer, and a common
//! word a peer happens to use a little more often than the cache says little for it;
//! without the mixture both count as much as the shared rare words that identify a topic.
//! The weight was chosen on route-eval over two corpora (fortunes, Debian package
//! descriptions), seeds 1 to 6 and 5 to all training messages per peer: 0.1 to 0.3 do
//! about equally well everywhere (docs/routing.md, "Cold start").
//!
//! The statistics are counts keyed by a 64-bit hash of the word. Caching a message updates
//! only the rows of its own words ([`learn`]), and scoring reads only the rows of the
//! words of X ([`score`]): cost O(|X| x peers), independent of the cache size.
//!
//! C(Y) of a peer is the sum of the code lengths of its messages at the time each was
//! learned (an adaptive code); C(XY) is taken as C(Y) + C(X|Y) (exact for an exchangeable
//! model), which is what the metrics D, D - C(Y) and NCD need.

use super::store::{Doc, Store};
use super::{Metric, Sizes};
use crate::exit::Failure;

/// At most this many distinct words of a message are used (bounds the work per message).
pub const MAX_TERMS: usize = 4096;
/// A word longer than this many bytes is cut (it still hashes all of its bytes).
const MAX_WORD: usize = 64;
/// w: the share of a message's words drawn from its peer's own distribution, the rest from
/// the background (see the module documentation).
pub const TOPIC_WEIGHT: f64 = 0.2;
/// Each word row remembers the ids of the most recent messages containing it, at most
/// this many (the shortlist index of [`super::related`]).
pub const RECENT: usize = 64;

/// One distinct word of a message: its hash and its length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    pub hash: u64,
    pub len: u16,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'\'' || b >= 0x80
}

/// FNV-1a, 64 bits: stable across platforms and versions (the hashes are stored).
fn fnv1a(h: u64, b: u8) -> u64 {
    (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
}
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// The distinct words of `body`, in order of first occurrence.
pub fn terms(body: &[u8]) -> Vec<Term> {
    let mut out: Vec<Term> = Vec::new();
    let mut seen = super::FastSet::default();
    let mut i = 0;
    while i < body.len() && out.len() < MAX_TERMS {
        if !is_word_byte(body[i]) {
            i += 1;
            continue;
        }
        let start = i;
        let mut h = FNV_OFFSET;
        while i < body.len() && is_word_byte(body[i]) {
            h = fnv1a(h, body[i].to_ascii_lowercase());
            i += 1;
        }
        // A lone apostrophe (a quote) is not a word.
        if i - start == 1 && body[start] == b'\'' {
            continue;
        }
        if seen.insert(h) {
            out.push(Term {
                hash: h,
                len: (i - start).min(MAX_WORD) as u16,
            });
        }
    }
    out
}

/// Statistics of everything cached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Global {
    /// messages learned
    pub docs: u64,
    /// T: sum over words of df
    pub total: u64,
    /// V: distinct words
    pub distinct: u64,
}

/// Statistics of one peer's messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerStats {
    pub idx: u32,
    pub address: String,
    pub messages: u64,
    /// N: sum over words of c(t, peer)
    pub total: u64,
    /// D: distinct words
    pub distinct: u64,
    /// counts of counts: nk[k-1] = words seen in exactly k of the peer's messages (k = 1..4)
    pub nk: [u64; 4],
    /// C(Y): adaptive code length of everything learned from the peer, in bits
    pub bits: f64,
}

impl PeerStats {
    /// The modified Kneser-Ney discounts of this peer and the weights of the mixture with
    /// the background (see the module documentation).
    pub fn discounts(&self) -> Discounts {
        self.discounts_with(TOPIC_WEIGHT)
    }

    /// The same with the peer's own distribution weighing `w` in the mixture (1: the
    /// peer's model alone, its escape gamma to the background as Kneser-Ney has it).
    pub fn discounts_with(&self, w: f64) -> Discounts {
        let n = self.nk.map(|v| v as f64);
        let y = if n[0] + n[1] > 0.0 {
            n[0] / (n[0] + 2.0 * n[1])
        } else {
            0.5
        };
        // D_k = k - (k+1) Y n_{k+1} / n_k, kept inside [0.1, k - 0.05]. Where the counts
        // it needs are missing (a small peer), the single discount Y of Ney et al. instead:
        // D_k = k would leave the peer's count-k words almost nothing of their own.
        let simple = y.clamp(0.1, 0.9);
        let dk = |k: usize| -> f64 {
            let kf = k as f64;
            if k == 1 && n[0] > 0.0 || n[k - 1] > 0.0 && n[k] > 0.0 {
                (kf - (kf + 1.0) * y * n[k] / n[k - 1]).clamp(0.1, kf - 0.05)
            } else {
                simple
            }
        };
        let d = [dk(1), dk(2), dk(3)];
        let n3plus = self.distinct.saturating_sub(self.nk[0] + self.nk[1]) as f64;
        let gamma = if self.total == 0 {
            1.0
        } else {
            (d[0] * n[0] + d[1] * n[1] + d[2] * n3plus) / self.total as f64
        };
        Discounts {
            d,
            own: w,
            escape: 1.0 - w * (1.0 - gamma),
        }
    }

    /// Count c(t, peer) -> c - 1 (c = `old` > 0): the reverse of [`PeerStats::bump`].
    fn unbump(&mut self, old: u32) {
        self.total = self.total.saturating_sub(1);
        if old == 1 {
            self.distinct = self.distinct.saturating_sub(1);
        }
        if (1..=4).contains(&old) {
            self.nk[old as usize - 1] = self.nk[old as usize - 1].saturating_sub(1);
        }
        if (2..=5).contains(&old) {
            self.nk[old as usize - 2] += 1;
        }
    }

    /// Count c(t, peer) -> c + 1: keep N, D and the counts of counts in step.
    fn bump(&mut self, old: u32) {
        self.total += 1;
        if old == 0 {
            self.distinct += 1;
        }
        if (1..=4).contains(&old) {
            // saturating, as in unbump: statistics out of step with the rows (a state file
            // edited by hand) must not wrap around or panic
            self.nk[old as usize - 1] = self.nk[old as usize - 1].saturating_sub(1);
        }
        if old < 4 {
            self.nk[old as usize] += 1;
        }
    }
}

/// A peer's discounts D1, D2, D3+, the weight of its own discounted counts (w) and the
/// weight of the background, 1 - w (1 - gamma), gamma being its escape probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Discounts {
    pub d: [f64; 3],
    pub own: f64,
    pub escape: f64,
}

/// One word's row: its document frequency, per-peer counts and recent message ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermRow {
    pub df: u64,
    /// (peer idx, count), sorted by peer idx
    pub counts: Vec<(u32, u32)>,
    /// (id, peer idx) of the most recent messages containing the word, oldest first
    pub recent: Vec<(i64, u32)>,
}

impl TermRow {
    pub fn count(&self, peer: u32) -> u32 {
        match self.counts.binary_search_by_key(&peer, |c| c.0) {
            Ok(i) => self.counts[i].1,
            Err(_) => 0,
        }
    }
    /// Add one message of `peer` with id `id`; return the peer's old count.
    fn add(&mut self, peer: u32, id: i64) -> u32 {
        self.df += 1;
        let old = match self.counts.binary_search_by_key(&peer, |c| c.0) {
            Ok(i) => {
                self.counts[i].1 += 1;
                self.counts[i].1 - 1
            }
            Err(i) => {
                self.counts.insert(i, (peer, 1));
                0
            }
        };
        // Kept in id order (a message learned again, e.g. under its sender's peer once the
        // sender is declared an alias, takes its own place, not the newest one's).
        let at = self.recent.partition_point(|&(i, _)| i < id);
        self.recent.insert(at, (id, peer));
        if self.recent.len() > RECENT {
            self.recent.remove(0);
        }
        old
    }

    /// Remove one message of `peer` with id `id`; return the peer's old count.
    fn remove(&mut self, peer: u32, id: i64) -> u32 {
        let Ok(i) = self.counts.binary_search_by_key(&peer, |c| c.0) else {
            return 0;
        };
        let old = self.counts[i].1;
        if old <= 1 {
            self.counts.remove(i);
        } else {
            self.counts[i].1 -= 1;
        }
        self.df = self.df.saturating_sub(1);
        self.recent.retain(|r| r.0 != id);
        old
    }

    /// Serialise the counts: varints of (peer idx delta, count).
    pub fn encode_counts(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.counts.len() * 3);
        let mut prev = 0u32;
        for &(p, c) in &self.counts {
            put_varint(&mut out, (p - prev) as u64);
            put_varint(&mut out, c as u64);
            prev = p;
        }
        out
    }
    pub fn decode_counts(b: &[u8]) -> Option<Vec<(u32, u32)>> {
        let mut out = Vec::new();
        let mut i = 0;
        let mut prev = 0u64;
        while i < b.len() {
            let d = get_varint(b, &mut i)?;
            let c = get_varint(b, &mut i)?;
            prev += d;
            out.push((u32::try_from(prev).ok()?, u32::try_from(c).ok()?));
        }
        Some(out)
    }
    /// Serialise the recent messages: per message a zigzag varint of the difference to
    /// the previous id, then a varint of its peer idx.
    pub fn encode_recent(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.recent.len() * 4);
        let mut prev = 0i64;
        for &(id, p) in &self.recent {
            let d = id.wrapping_sub(prev);
            put_varint(&mut out, ((d << 1) ^ (d >> 63)) as u64);
            put_varint(&mut out, p as u64);
            prev = id;
        }
        out
    }
    pub fn decode_recent(b: &[u8]) -> Option<Vec<(i64, u32)>> {
        let mut out = Vec::new();
        let mut i = 0;
        let mut prev = 0i64;
        while i < b.len() {
            let z = get_varint(b, &mut i)?;
            let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
            prev = prev.wrapping_add(d);
            let p = u32::try_from(get_varint(b, &mut i)?).ok()?;
            out.push((prev, p));
        }
        Some(out)
    }
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
pub fn get_varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = *b.get(*i)?;
        *i += 1;
        if shift > 63 {
            return None;
        }
        v |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            return Some(v);
        }
        shift += 7;
    }
}

/// The background probability of a word with document frequency `df`.
fn p_all(g: &Global, df: u64) -> f64 {
    (df as f64 + 0.5) / (g.total as f64 + (g.distinct as f64 + 1.0) * 0.5)
}

/// Extra bits for spelling out a word no message in the cache contains.
fn spell_bits(t: &Term, df: u64) -> f64 {
    if df == 0 {
        8.0 * (t.len as f64 + 1.0)
    } else {
        0.0
    }
}

/// -log2 P(t | peer) for a word with background probability `pb` and peer count `c`.
fn peer_bits(p: &PeerStats, d: &Discounts, c: u32, pb: f64) -> f64 {
    if p.total == 0 {
        return -pb.log2();
    }
    let own = if c == 0 {
        0.0
    } else {
        d.own * (c as f64 - d.d[(c as usize).min(3) - 1]).max(0.0) / p.total as f64
    };
    -(own + d.escape * pb).log2()
}

/// Code lengths of one message against every peer.
#[derive(Debug, Clone)]
pub struct Scored {
    /// C(X): the message under the background model alone (no peer), bits
    pub cx: f64,
    /// C0(X): the message's words spelt out without any model (8 bits a byte plus a
    /// terminator per word), bits: the size with no knowledge at all
    pub c0: f64,
    /// C(X | Y_i) for each requested peer, bits
    pub cond: Vec<f64>,
    /// C(X) and C(X | Y_i) over the words the cache knows (df > 0) only: the words no
    /// cached message contains say nothing about where X belongs
    pub cx_known: f64,
    pub cond_known: Vec<f64>,
    /// the word rows read (None for unseen words), in the order of the terms
    pub rows: Vec<Option<TermRow>>,
}

/// Score the words of X against the given peers. Reads one row per word of X.
pub fn score(
    store: &mut dyn Store,
    g: &Global,
    terms: &[Term],
    peers: &[PeerStats],
) -> Result<Scored, Failure> {
    score_with(store, g, terms, peers, TOPIC_WEIGHT)
}

/// [`score`] with the weight `w` of the peers' own distributions in the mixture instead
/// of [`TOPIC_WEIGHT`] (route-eval's `--topic-weight`; 1 is the peer model alone).
pub fn score_with(
    store: &mut dyn Store,
    g: &Global,
    terms: &[Term],
    peers: &[PeerStats],
    w: f64,
) -> Result<Scored, Failure> {
    let ds: Vec<Discounts> = peers.iter().map(|p| p.discounts_with(w)).collect();
    let mut cond = vec![0.0; peers.len()];
    let mut cond_known = vec![0.0; peers.len()];
    let mut cx_known = 0.0;
    let mut cx = 0.0;
    let mut c0 = 0.0;
    let mut rows = Vec::with_capacity(terms.len());
    let mut dense = vec![0u32; peers.iter().map(|p| p.idx as usize + 1).max().unwrap_or(0)];
    for t in terms {
        let row = store.term(t.hash)?;
        let df = row.as_ref().map_or(0, |r| r.df);
        let pb = p_all(g, df);
        let spell = spell_bits(t, df);
        cx += -pb.log2() + spell;
        if df > 0 {
            cx_known += -pb.log2();
        }
        c0 += 8.0 * (t.len as f64 + 1.0);
        if let Some(r) = &row {
            for &(p, c) in &r.counts {
                if let Some(slot) = dense.get_mut(p as usize) {
                    *slot = c;
                }
            }
        }
        for (i, p) in peers.iter().enumerate() {
            let c = dense[p.idx as usize];
            let b = peer_bits(p, &ds[i], c, pb);
            cond[i] += b + spell;
            if df > 0 {
                cond_known[i] += b;
            }
        }
        if let Some(r) = &row {
            for &(p, _) in &r.counts {
                if let Some(slot) = dense.get_mut(p as usize) {
                    *slot = 0;
                }
            }
        }
        rows.push(row);
    }
    Ok(Scored {
        cx,
        c0,
        cond,
        cx_known,
        cond_known,
        rows,
    })
}

impl Scored {
    /// C(X | Y) over the words the cache knows under the peer's own model alone, without
    /// the mixture with the background (`discounts_with(1.0)`), from the rows [`score`]
    /// read: the scale of the 3.3 thresholds ([`calibrate`]). O(|X|).
    pub fn own_known_bits(&self, g: &Global, peer: &PeerStats) -> f64 {
        let d = peer.discounts_with(1.0);
        self.rows
            .iter()
            .flatten()
            .map(|r| peer_bits(peer, &d, r.count(peer.idx), p_all(g, r.df)))
            .sum()
    }

    /// The routing distance of X to peer number `i` under `metric` (lower = closer).
    pub fn distance(&self, metric: Metric, i: usize, peer: &PeerStats) -> f64 {
        let cyx = peer.bits + self.cond[i];
        metric.of(&Sizes {
            cx: self.cx,
            cy: peer.bits,
            cxy: cyx,
            cyx,
        })
    }
}

/// Normalised peer scores for the 3.3 thresholds: `scores` are C(X | Y_i) / C(X) under the
/// mixture (lower = closer), `own_best` the same for the best of them under its own model
/// alone ([`Scored::own_known_bits`]). The mixture orders the peers; the scale is the best
/// peer's own model's, so that `distance_threshold` and `margin` keep the meaning they have
/// for a peer model ("shares of X's bits the peer's statistics save"): the best peer scores
/// `own_best`, and the others keep their savings relative to it. The mixture's savings are
/// smaller (a word is the peer's with probability w only), most of all in a small cache.
pub fn calibrate(scores: &mut [f64], own_best: f64) {
    let Some(best) = scores.iter().copied().min_by(f64::total_cmp) else {
        return;
    };
    if best < 1.0 && own_best < 1.0 {
        // 1 - s_i = (1 - s_best') (1 - s_i) / (1 - s_best): savings scaled
        let k = (1.0 - own_best) / (1.0 - best);
        for s in scores.iter_mut() {
            *s = 1.0 - (1.0 - *s) * k;
        }
    } else {
        // no saving under one of the two: shifted, the order kept
        for s in scores.iter_mut() {
            *s += own_best - best;
        }
    }
}

/// Learn one cached message `id` received from the peer `address`: update the global
/// statistics, the peer's, and the rows of the message's own words. A message learned
/// earlier under the same id is forgotten first (a cache row id reused after a deletion
/// the engine was not told about); returns false in that case.
pub fn learn(store: &mut dyn Store, id: i64, address: &str, body: &[u8]) -> Result<bool, Failure> {
    let fresh = !forget(store, id)?;
    let terms = terms(body);
    let idx = match store.peer_index(address)? {
        Some(i) => i,
        None => store.add_peer(address)?,
    };
    let mut g = store.global()?;
    let mut p = store.peer(idx)?;
    // the code length of the message under the statistics before it (as score() sees it)
    let (g0, p0) = (g, p.clone());
    let d = p0.discounts();
    let mut bits = 0.0;
    for t in &terms {
        let mut row = store.term(t.hash)?.unwrap_or_default();
        let pb = p_all(&g0, row.df);
        bits += peer_bits(&p0, &d, row.count(idx), pb) + spell_bits(t, row.df);
        if row.df == 0 {
            g.distinct += 1;
        }
        let old = row.add(idx, id);
        p.bump(old);
        g.total += 1;
        store.set_term(t.hash, &row)?;
    }
    g.docs += 1;
    p.messages += 1;
    p.bits += bits;
    store.set_peer(&p)?;
    store.set_global(&g)?;
    let doc = Doc {
        peer: idx,
        bits,
        terms: terms.iter().map(|t| t.hash).collect(),
    };
    store.add_doc(id, &doc)?;
    Ok(fresh)
}

/// Forget a cached message (it left the cache): undo what [`learn`] did, exactly, except
/// that the recent-message lists simply drop its id. Returns false if it was not learned.
pub fn forget(store: &mut dyn Store, id: i64) -> Result<bool, Failure> {
    let Some(doc) = store.doc(id)? else {
        return Ok(false);
    };
    let mut g = store.global()?;
    let mut p = store.peer(doc.peer)?;
    for &h in &doc.terms {
        let Some(mut row) = store.term(h)? else {
            continue;
        };
        let old = row.remove(doc.peer, id);
        if old == 0 {
            continue; // not counted (cannot happen in a consistent store)
        }
        p.unbump(old);
        g.total = g.total.saturating_sub(1);
        if row.df == 0 {
            g.distinct = g.distinct.saturating_sub(1);
            store.delete_term(h)?;
        } else {
            store.set_term(h, &row)?;
        }
    }
    g.docs = g.docs.saturating_sub(1);
    p.messages = p.messages.saturating_sub(1);
    p.bits -= doc.bits;
    store.set_peer(&p)?;
    store.set_global(&g)?;
    store.delete_doc(id)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::super::store::MemStore;
    use super::*;
    use std::collections::HashMap;

    fn corpus() -> Vec<(&'static str, &'static str)> {
        vec![
            ("a", "The cat sat on the mat."),
            ("b", "Perl regular expressions match strings."),
            ("a", "A cat and a dog: the cat won."),
            ("c", "Ballet, opera and the theatre."),
            ("b", "Strings in Perl; perl hackers."),
            ("a", "Dogs chase cats up the tree"),
            ("c", "Opera singers sing; the audience claps"),
        ]
    }

    #[test]
    fn words_are_distinct_lowercased_runs() {
        let t = terms(b"The cat, the CAT's 'hat' - caf\xc3\xa9 ' ");
        let want: Vec<u64> = ["the", "cat", "cat's", "'hat'", "caf\u{e9}"]
            .iter()
            .map(|w| w.bytes().fold(FNV_OFFSET, fnv1a))
            .collect();
        assert_eq!(t.iter().map(|t| t.hash).collect::<Vec<_>>(), want);
        assert_eq!(t[4].len, 5);
    }

    #[test]
    fn peer_distribution_sums_to_one() {
        // The per-word code of every peer is a complete code: the probabilities of all
        // known words plus the escape mass left for unknown words sum to 1.
        let mut s = MemStore::default();
        for (i, (p, m)) in corpus().iter().enumerate() {
            learn(&mut s, i as i64, p, m.as_bytes()).unwrap();
        }
        let g = s.global().unwrap();
        let words: Vec<u64> = s.terms.keys().copied().collect();
        assert_eq!(words.len() as u64, g.distinct);
        for p in s.peers.clone() {
            let d = p.discounts();
            let mut sum = 0.0;
            for w in &words {
                let r = &s.terms[w];
                sum += 2f64.powf(-peer_bits(&p, &d, r.count(p.idx), p_all(&g, r.df)));
            }
            let unknown = d.escape * p_all(&g, 0);
            assert!((sum + unknown - 1.0).abs() < 1e-9, "{}: {}", p.address, sum);
        }
    }

    #[test]
    fn code_lengths_add_up_over_words() {
        let mut s = MemStore::default();
        for (i, (p, m)) in corpus().iter().enumerate() {
            learn(&mut s, i as i64, p, m.as_bytes()).unwrap();
        }
        let g = s.global().unwrap();
        let peers = s.all_peers().unwrap();
        let x = terms(b"the cat and the perl opera zyzzyva");
        let whole = score(&mut s, &g, &x, &peers).unwrap();
        let mut parts = vec![0.0; peers.len()];
        let mut cx = 0.0;
        for t in &x {
            let one = score(&mut s, &g, &[*t], &peers).unwrap();
            cx += one.cx;
            for (a, b) in parts.iter_mut().zip(&one.cond) {
                *a += b;
            }
        }
        assert!((whole.cx - cx).abs() < 1e-9);
        for (a, b) in parts.iter().zip(&whole.cond) {
            assert!((a - b).abs() < 1e-9);
        }
        // the unseen word is spelt out: 8 bits a byte plus a terminator, on top of escape
        assert!(whole.cx > 8.0 * 8.0);
        // the cat peer codes a cat message best
        let cat = score(&mut s, &g, &terms(b"cat dog cats"), &peers).unwrap();
        let best = (0..peers.len())
            .min_by(|&i, &j| cat.cond[i].total_cmp(&cat.cond[j]))
            .unwrap();
        assert_eq!(peers[best].address, "a");
        assert!(cat.cond[best] < cat.cx);
    }

    #[test]
    fn incremental_learning_equals_a_batch_count() {
        let mut s = MemStore::default();
        for (i, (p, m)) in corpus().iter().enumerate() {
            assert!(learn(&mut s, i as i64 + 10, p, m.as_bytes()).unwrap());
        }
        // batch: count everything at once
        let mut counts: HashMap<u64, HashMap<&str, u32>> = HashMap::new();
        let mut per_peer: HashMap<&str, (u64, u64)> = HashMap::new();
        for (p, m) in corpus() {
            let ts = terms(m.as_bytes());
            per_peer.entry(p).or_default().0 += 1;
            per_peer.entry(p).or_default().1 += ts.len() as u64;
            for t in ts {
                *counts.entry(t.hash).or_default().entry(p).or_default() += 1;
            }
        }
        assert_eq!(counts.len(), s.terms.len());
        let g = s.global().unwrap();
        assert_eq!(g.distinct, counts.len() as u64);
        assert_eq!(g.docs, corpus().len() as u64);
        for (h, byp) in &counts {
            let row = &s.terms[h];
            assert_eq!(row.df, byp.values().map(|&c| c as u64).sum::<u64>());
            for peer in s.peers.iter() {
                let want = byp.get(peer.address.as_str()).copied().unwrap_or(0);
                assert_eq!(row.count(peer.idx), want);
            }
        }
        for peer in &s.peers {
            let (msgs, total) = per_peer[peer.address.as_str()];
            assert_eq!(peer.messages, msgs);
            assert_eq!(peer.total, total);
            let mut nk = [0u64; 4];
            let mut distinct = 0;
            for byp in counts.values() {
                if let Some(&c) = byp.get(peer.address.as_str()) {
                    if (1..=4).contains(&c) {
                        nk[c as usize - 1] += 1;
                    }
                    distinct += 1;
                }
            }
            assert_eq!((peer.nk, peer.distinct), (nk, distinct));
        }
        // C(Y) is the sum of the code lengths each message had when learned
        let mut fresh = MemStore::default();
        let mut bits_a = 0.0;
        for (i, (p, m)) in corpus().iter().enumerate() {
            if *p == "a" {
                let g = fresh.global().unwrap();
                let peers = fresh.all_peers().unwrap();
                if let Some(k) = peers.iter().position(|x| x.address == "a") {
                    bits_a += score(&mut fresh, &g, &terms(m.as_bytes()), &peers)
                        .unwrap()
                        .cond[k];
                } else {
                    bits_a += score(&mut fresh, &g, &terms(m.as_bytes()), &[]).unwrap().cx;
                }
            }
            learn(&mut fresh, i as i64, p, m.as_bytes()).unwrap();
        }
        let a = s.peers.iter().find(|p| p.address == "a").unwrap();
        assert!((a.bits - bits_a).abs() < 1e-9, "{} {}", a.bits, bits_a);
        // an id learned again replaces what it held: learning the same message again
        // leaves the counts as they were
        let before = s.clone();
        assert!(!learn(&mut s, 10, corpus()[0].0, corpus()[0].1.as_bytes()).unwrap());
        assert_eq!(before.terms.len(), s.terms.len());
        for (h, r) in &before.terms {
            assert_eq!(r.counts, s.terms[h].counts);
            assert_eq!(r.df, s.terms[h].df);
        }
        assert_eq!(before.g, s.g);
    }

    #[test]
    fn forgetting_undoes_learning() {
        let msgs = corpus();
        for gone in 0..msgs.len() {
            let mut all = MemStore::default();
            let mut without = MemStore::default();
            for (i, (p, m)) in msgs.iter().enumerate() {
                learn(&mut all, i as i64, p, m.as_bytes()).unwrap();
                if i != gone {
                    learn(&mut without, i as i64, p, m.as_bytes()).unwrap();
                } else {
                    // keep peer numbering the same
                    if without.peer_index(p).unwrap().is_none() {
                        without.add_peer(p).unwrap();
                    }
                }
            }
            assert!(forget(&mut all, gone as i64).unwrap());
            assert!(!forget(&mut all, gone as i64).unwrap());
            assert_eq!(all.g, without.g);
            assert_eq!(all.terms, without.terms);
            assert_eq!(all.docs.len(), without.docs.len());
            for (a, b) in all.peers.iter().zip(&without.peers) {
                assert_eq!(
                    (a.messages, a.total, a.distinct, a.nk),
                    (b.messages, b.total, b.distinct, b.nk)
                );
            }
        }
    }

    #[test]
    fn calibration_keeps_the_order_and_gives_the_best_its_own_score() {
        let mut s = vec![0.99, 0.97, 1.02, 0.98];
        calibrate(&mut s, 0.91);
        assert!((s[1] - 0.91).abs() < 1e-12);
        // savings scaled by (1 - 0.91) / (1 - 0.97) = 3
        assert!((s[0] - 0.97).abs() < 1e-12 && (s[3] - 0.94).abs() < 1e-12);
        assert!((s[2] - 1.06).abs() < 1e-12);
        // no saving under the peer's own model: shifted, order kept
        let mut s = vec![0.99, 0.97];
        calibrate(&mut s, 1.01);
        assert!((s[1] - 1.01).abs() < 1e-12 && (s[0] - 1.03).abs() < 1e-12);
        calibrate(&mut [], 0.5);
    }

    #[test]
    fn the_mixture_counts_a_missing_word_less_than_the_peer_model_alone() {
        // the mixture's point: a word absent from a peer's few messages costs little more
        // than under the background, and a shared rare word still saves bits
        let mut s = MemStore::default();
        for (i, (p, m)) in corpus().iter().enumerate() {
            learn(&mut s, i as i64, p, m.as_bytes()).unwrap();
        }
        let g = s.global().unwrap();
        let ia = s.peer_index("a").unwrap().unwrap() as usize;
        let a = s.peers[ia].clone();
        let perl = s.terms[&terms(b"perl")[0].hash].clone();
        let pb = p_all(&g, perl.df);
        let mixed = peer_bits(&a, &a.discounts(), 0, pb);
        let alone = peer_bits(&a, &a.discounts_with(1.0), 0, pb);
        assert!(
            mixed - (-pb.log2()) < 0.5 * (alone - (-pb.log2())),
            "{mixed} {alone}"
        );
        let cat = s.terms[&terms(b"cat")[0].hash].clone();
        let pb = p_all(&g, cat.df);
        assert!(peer_bits(&a, &a.discounts(), cat.count(a.idx), pb) < -pb.log2());
        // own_known_bits is the score without the mixture
        let x = terms(b"the cat and perl");
        let sc = score(&mut s, &g, &x, std::slice::from_ref(&a)).unwrap();
        let alone: f64 = x
            .iter()
            .map(|t| {
                let r = &s.terms[&t.hash];
                peer_bits(&a, &a.discounts_with(1.0), r.count(a.idx), p_all(&g, r.df))
            })
            .sum();
        assert!((sc.own_known_bits(&g, &a) - alone).abs() < 1e-9);
        assert!(sc.cond_known[0] != alone);
    }

    #[test]
    fn rows_round_trip() {
        let mut r = TermRow::default();
        for (i, p) in [3u32, 0, 3, 7, 1000, 3].iter().enumerate() {
            r.add(*p, 1_000_000 + i as i64 * 37);
        }
        for i in 0..200 {
            r.add(2, i * 5);
        }
        assert_eq!(r.recent.len(), RECENT);
        let c = TermRow::decode_counts(&r.encode_counts()).unwrap();
        let rec = TermRow::decode_recent(&r.encode_recent()).unwrap();
        assert_eq!(c, r.counts);
        assert_eq!(rec, r.recent);
        let odd = TermRow {
            df: 4,
            counts: vec![(0, 1), (u32::MAX, 3)],
            recent: vec![(i64::MIN, 0), (0, 7), (i64::MAX, u32::MAX), (-5, 1)],
        };
        let rec = TermRow::decode_recent(&odd.encode_recent()).unwrap();
        assert_eq!(rec, odd.recent);
        assert_eq!(
            TermRow::decode_counts(&odd.encode_counts()).unwrap(),
            odd.counts
        );
        assert!(TermRow::decode_counts(&[0x80]).is_none());
    }
}
