//! The workload: a labelled corpus in the route-eval JSONL shape (`{"id","label","text"}`),
//! split per label into expert training items and held-out queries.
//!
//! Each label has `experts` expert clients, each at a random router; expert j of a label
//! posts `train` items of it. The items left over are held out; `queries` of them, drawn at
//! random, are posted by clients at random routers. Spam is generated junk (random words
//! and numbers, unlike anything in the corpus).

use crate::exit::Failure;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::HashMap;
use std::path::Path;

/// One corpus item.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub label: usize,
    pub text: String,
}

/// A labelled corpus.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub labels: Vec<String>,
    pub items: Vec<Item>,
}

/// Read a JSONL corpus. Bad lines name the file and line (65).
pub fn load(path: &Path) -> Result<Corpus, Failure> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Failure::from(e).context(path.display()))?;
    let mut labels: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| Failure::data(format!("{}:{}: {what}", path.display(), n + 1));
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let field = |k: &str| -> Result<String, Failure> {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| bad(&format!("no string field \"{k}\"")))
        };
        let (id, label, text) = (field("id")?, field("label")?, field("text")?);
        if text.is_empty() {
            continue;
        }
        let l = *index.entry(label.clone()).or_insert_with(|| {
            labels.push(label);
            labels.len() - 1
        });
        items.push(Item { id, label: l, text });
    }
    if labels.len() < 2 {
        return Err(Failure::data(format!(
            "{}: a corpus needs at least two labels",
            path.display()
        )));
    }
    Ok(Corpus { labels, items })
}

/// An expert client: its label, its router, the items it posts.
#[derive(Debug, Clone)]
pub struct Expert {
    pub label: usize,
    pub router: usize,
    pub items: Vec<usize>,
}

/// A query: a held-out item, the router its client posts at.
#[derive(Debug, Clone)]
pub struct Query {
    pub item: usize,
    pub router: usize,
}

/// Who posts what, where.
#[derive(Debug, Clone)]
pub struct Workload {
    pub experts: Vec<Expert>,
    pub queries: Vec<Query>,
}

/// Split the corpus: per label, shuffle; expert j takes items j*train..(j+1)*train; the rest
/// are held out. A label with too few items gives its experts fewer (it keeps at least a
/// quarter of its items held out).
pub fn plan(
    corpus: &Corpus,
    routers: usize,
    experts: usize,
    train: usize,
    queries: usize,
    rng: &mut impl Rng,
) -> Workload {
    let mut by_label: Vec<Vec<usize>> = vec![Vec::new(); corpus.labels.len()];
    for (i, it) in corpus.items.iter().enumerate() {
        by_label[it.label].push(i);
    }
    let mut ex = Vec::new();
    let mut held = Vec::new();
    for (label, items) in by_label.iter_mut().enumerate() {
        items.shuffle(rng);
        let per = train.min(items.len() * 3 / 4 / experts.max(1));
        for j in 0..experts {
            ex.push(Expert {
                label,
                router: rng.gen_range(0..routers),
                items: items[j * per..(j + 1) * per].to_vec(),
            });
        }
        held.extend_from_slice(&items[experts * per..]);
    }
    held.shuffle(rng);
    let qs = held
        .into_iter()
        .take(queries)
        .map(|item| Query {
            item,
            router: rng.gen_range(0..routers),
        })
        .collect();
    Workload {
        experts: ex,
        queries: qs,
    }
}

const JUNK: &[&str] = &[
    "cheap",
    "offer",
    "click",
    "winner",
    "free",
    "bonus",
    "casino",
    "pills",
    "crypto",
    "deal",
    "limited",
    "urgent",
    "prize",
    "cash",
    "loan",
    "discount",
    "viagra",
    "lottery",
    "investment",
    "guaranteed",
    "unsubscribe",
    "act",
    "now",
    "exclusive",
    "million",
    "refund",
    "wire",
    "transfer",
    "account",
    "verify",
];

/// The n-th junk message: random words and numbers, never the same twice.
pub fn junk(n: usize, rng: &mut impl Rng) -> String {
    let mut s = format!("SPAM {n}:");
    for _ in 0..40 {
        if rng.gen_bool(0.3) {
            s.push_str(&format!(" {:x}", rng.gen::<u32>()));
        } else {
            s.push(' ');
            s.push_str(JUNK[rng.gen_range(0..JUNK.len())]);
        }
    }
    s
}
