//! The route-eval protocol (shared/corpus/README.md), reproducible on any platform.
//!
//! - Read the corpus (JSONL, `{"id", "label", "text"}` a line); keep labels with at least
//!   `tests + 20` items; with seed S, shuffle the label list (taken in sorted order) and
//!   keep the first L labels, then sort them.
//! - For each kept label in sorted order: shuffle its items (taken in corpus order) with the
//!   same generator; the first `tests` are held-out queries, the rest training messages.
//! - One peer per label; the training messages enter the cache in corpus order.
//! - Cold start (`route-eval --train N`, [`Split::limit_train`]): each peer keeps at most N
//!   training messages, its most recent ones: the last N of its label in corpus order, the
//!   order in which the training messages enter the cache. The queries do not change.
//!
//! [`TfIdfCentroid`] is the corpus README's reference classifier (tf-idf cosine to each
//! peer's centroid), computed on the same split.
//!
//! The generator is SplitMix64 (Steele, Lea and Flood 2014) seeded with S; a shuffle is
//! Fisher-Yates from the last position down, drawing j in [0, i] as the high 64 bits of
//! next_u64() * (i + 1).

use crate::exit::Failure;
use std::collections::BTreeMap;
use std::path::Path;

/// SplitMix64.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform-enough integer in [0, n) (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
    /// Fisher-Yates, last position first.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// One corpus line.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Item {
    pub id: String,
    pub label: String,
    pub text: String,
}

/// Read a JSONL corpus; errors name the line.
pub fn read_corpus(path: &Path) -> Result<Vec<Item>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::no_input(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let it: Item = serde_json::from_str(line)
            .map_err(|e| Failure::data(format!("{}:{}: {e}", path.display(), n + 1)))?;
        out.push(it);
    }
    Ok(out)
}

/// One split of the corpus by the protocol. Indices refer to the corpus items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// kept labels, sorted; the peer of label i is peer i
    pub labels: Vec<String>,
    /// training messages (label index, item index), in corpus order
    pub train: Vec<(usize, usize)>,
    /// held-out queries (label index, item index), label by label
    pub queries: Vec<(usize, usize)>,
}

/// Split `items` per the protocol: `l` labels (None = all), `tests` queries per label.
pub fn split(items: &[Item], l: Option<usize>, tests: usize, seed: u64) -> Split {
    let mut by_label: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        by_label.entry(it.label.as_str()).or_default().push(i);
    }
    let mut labels: Vec<&str> = by_label
        .iter()
        .filter(|(_, v)| v.len() >= tests + 20)
        .map(|(k, _)| *k)
        .collect();
    let mut rng = SplitMix64(seed);
    rng.shuffle(&mut labels);
    labels.truncate(l.unwrap_or(usize::MAX));
    labels.sort();
    let mut train = Vec::new();
    let mut queries = Vec::new();
    for (li, lab) in labels.iter().enumerate() {
        let mut v = by_label[lab].clone();
        rng.shuffle(&mut v);
        queries.extend(v[..tests].iter().map(|&i| (li, i)));
        train.extend(v[tests..].iter().map(|&i| (li, i)));
    }
    train.sort_by_key(|&(_, i)| i);
    Split {
        labels: labels.iter().map(|s| s.to_string()).collect(),
        train,
        queries,
    }
}

impl Split {
    /// Keep at most `n` training messages per label: the most recent ones, i.e. the last
    /// `n` of the label in corpus order (the order in which they enter the cache).
    pub fn limit_train(&mut self, n: usize) {
        let mut left = vec![n; self.labels.len()];
        let mut keep: Vec<(usize, usize)> = self
            .train
            .iter()
            .rev()
            .filter(|&&(l, _)| {
                let k = &mut left[l];
                *k > 0 && {
                    *k -= 1;
                    true
                }
            })
            .copied()
            .collect();
        keep.reverse();
        self.train = keep;
    }
}

/// The corpus README's reference: tf-idf cosine to each peer's centroid. Words as the
/// engine's (maximal runs of ASCII letters/digits, apostrophes and non-ASCII bytes,
/// lower-cased), raw term frequency, idf = ln((1 + n) / (1 + df)) + 1 over the n training
/// messages, every message's vector of unit length, a peer's centroid the sum of its
/// messages' vectors; a query goes to the centroid of highest cosine.
#[derive(Debug, Clone, Default)]
pub struct TfIdfCentroid {
    idf: std::collections::HashMap<String, f64>,
    centroids: Vec<std::collections::HashMap<String, f64>>,
}

/// The words of a text with their counts (see [`TfIdfCentroid`]).
fn word_counts(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'\'' || b >= 0x80;
    for w in text.as_bytes().split(|&b| !word(b)) {
        if w.is_empty() || w == b"'" {
            continue;
        }
        *out.entry(String::from_utf8_lossy(w).to_lowercase())
            .or_insert(0.0) += 1.0;
    }
    out
}

impl TfIdfCentroid {
    /// Fit on `train` ((peer, text) pairs) for `peers` peers.
    pub fn fit<'a>(peers: usize, train: impl IntoIterator<Item = (usize, &'a str)>) -> Self {
        let docs: Vec<(usize, BTreeMap<String, f64>)> = train
            .into_iter()
            .map(|(p, t)| (p, word_counts(t)))
            .collect();
        let mut df: std::collections::HashMap<String, f64> = Default::default();
        for (_, d) in &docs {
            for w in d.keys() {
                *df.entry(w.clone()).or_insert(0.0) += 1.0;
            }
        }
        let n = docs.len() as f64;
        let idf: std::collections::HashMap<String, f64> = df
            .into_iter()
            .map(|(w, d)| (w, ((1.0 + n) / (1.0 + d)).ln() + 1.0))
            .collect();
        let mut m = TfIdfCentroid {
            idf,
            centroids: vec![Default::default(); peers],
        };
        for (p, d) in &docs {
            for (w, x) in m.vector(d) {
                *m.centroids[*p].entry(w).or_insert(0.0) += x;
            }
        }
        m
    }

    /// A message's unit tf-idf vector (words unknown to the training set dropped).
    fn vector(&self, counts: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
        let v: Vec<(String, f64)> = counts
            .iter()
            .filter_map(|(w, &c)| self.idf.get(w).map(|i| (w.clone(), c * i)))
            .collect();
        let norm = v.iter().map(|x| x.1 * x.1).sum::<f64>().sqrt();
        v.into_iter()
            .map(|(w, x)| (w, if norm > 0.0 { x / norm } else { 0.0 }))
            .collect()
    }

    /// The peer whose centroid is closest to `text` (cosine); None if no peer has data.
    pub fn best(&self, text: &str) -> Option<usize> {
        let q = self.vector(&word_counts(text));
        let mut best: Option<(usize, f64)> = None;
        for (p, c) in self.centroids.iter().enumerate() {
            if c.is_empty() {
                continue;
            }
            let norm = c.values().map(|x| x * x).sum::<f64>().sqrt();
            let dot: f64 = q.iter().filter_map(|(w, x)| c.get(w).map(|y| x * y)).sum();
            let cos = dot / norm;
            if best.is_none_or(|(_, b)| cos > b) {
                best = Some((p, cos));
            }
        }
        best.map(|b| b.0)
    }
}

/// The address of the peer standing for a label.
pub fn peer_address(label: &str) -> String {
    let host: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("http://{host}.peers.example/cmr")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // first output for seed 0 of the reference implementation (Vigna)
        let mut r = SplitMix64(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn split_follows_the_protocol() {
        let mut items = Vec::new();
        for (lab, n) in [("b", 30), ("a", 25), ("c", 10), ("d", 24)] {
            for k in 0..n {
                items.push(Item {
                    id: format!("{lab}/{k}"),
                    label: lab.to_string(),
                    text: format!("{lab} {k}"),
                });
            }
        }
        let s = split(&items, Some(2), 5, 7);
        assert_eq!(s.labels.len(), 2);
        assert!(s.labels.windows(2).all(|w| w[0] < w[1]));
        assert!(!s.labels.contains(&"c".to_string())); // 10 < 5 + 20
        assert_eq!(s.queries.len(), 10);
        assert!(s.train.windows(2).all(|w| w[0].1 < w[1].1));
        for &(l, i) in s.train.iter().chain(&s.queries) {
            assert_eq!(items[i].label, s.labels[l]);
        }
        let total: usize = s
            .labels
            .iter()
            .map(|l| items.iter().filter(|it| &it.label == l).count())
            .sum();
        assert_eq!(s.train.len() + s.queries.len(), total);
        assert_eq!(s, split(&items, Some(2), 5, 7));
        assert_ne!(split(&items, None, 5, 7), split(&items, None, 5, 8));
        // cold start: the last 3 of each label in corpus order, the queries unchanged
        let mut cold = s.clone();
        cold.limit_train(3);
        assert_eq!(cold.queries, s.queries);
        assert_eq!(cold.train.len(), 6);
        for l in 0..2 {
            let all: Vec<usize> = s.train.iter().filter(|t| t.0 == l).map(|t| t.1).collect();
            let kept: Vec<usize> = cold
                .train
                .iter()
                .filter(|t| t.0 == l)
                .map(|t| t.1)
                .collect();
            assert_eq!(kept, all[all.len() - 3..]);
        }
        assert!(cold.train.windows(2).all(|w| w[0].1 < w[1].1));
    }

    #[test]
    fn tfidf_centroid_picks_the_peer_of_shared_rare_words() {
        let m = TfIdfCentroid::fit(
            3,
            [
                (0, "the cat sat on the mat"),
                (0, "a cat and a dog"),
                (1, "perl regular expressions"),
                (1, "perl hackers write perl"),
                (2, "the opera and the ballet"),
            ],
        );
        assert_eq!(m.best("my CAT likes the dog"), Some(0));
        assert_eq!(m.best("Perl, again"), Some(1));
        assert_eq!(m.best("ballet"), Some(2));
        assert_eq!(m.best("nothing known"), Some(0)); // every cosine 0: the first peer
    }
}
