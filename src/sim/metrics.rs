//! What a run measures, and the process's own cost.

use super::baselines;
use serde::Serialize;
use std::collections::BTreeMap;

/// Success of each query: the round (counted from the round it was due) by which its
/// client held a message of its label it had not posted; None: not within the horizon.
pub fn success_by_round(rounds: &[Option<u32>], horizon: usize) -> Vec<f64> {
    let n = rounds.len().max(1) as f64;
    (1..=horizon)
        .map(|h| {
            rounds
                .iter()
                .filter(|r| r.is_some_and(|r| r as usize <= h))
                .count() as f64
                / n
        })
        .collect()
}

/// mean, max and max/mean of a list of counts.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Spread {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub max_over_mean: f64,
}

pub fn spread(v: &[f64]) -> Spread {
    if v.is_empty() {
        return Spread::default();
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let max = v.iter().copied().fold(f64::MIN, f64::max);
    let min = v.iter().copied().fold(f64::MAX, f64::min);
    Spread {
        mean,
        min,
        max,
        max_over_mean: if mean > 0.0 { max / mean } else { 0.0 },
    }
}

/// Messages held as bulk posting, by kind.
#[derive(Debug, Clone, Serialize, Default)]
pub struct HeldAsBulk {
    pub spam: usize,
    pub forged: usize,
    pub other: usize,
}

/// Spam: what the spammer's clients posted and how far it spread.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Spam {
    pub router: usize,
    pub rate_multiple: f64,
    pub posted: usize,
    /// Posts its clients widened (`cmr-post --widen`; a post of a series is not widened).
    pub widened: usize,
    /// Routers (the spammer's own excluded) whose cache holds at least one spam message.
    pub routers_cached: usize,
    pub share_cached: f64,
    /// Deliveries of spam messages.
    pub messages: u64,
}

/// The forger: messages claiming another router's address, sent to its neighbours.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Forger {
    pub router: usize,
    pub claims: String,
    pub sent: usize,
    pub accepted: usize,
    /// Rejection reasons (reason codes) and their counts.
    pub rejected: BTreeMap<String, usize>,
    /// Routers (the forger's own excluded) whose cache holds a forged message.
    pub routers_cached: usize,
    /// The claimed router's reputation at its neighbours afterwards (mean; 0 is neutral).
    pub victim_reputation: f64,
}

/// Everything one run reports (`--json` prints it).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub routers: usize,
    pub degree: f64,
    pub topology: String,
    pub seed: u64,
    pub corpus: String,
    pub labels: usize,
    pub experts: usize,
    pub training_items: usize,
    pub queries: usize,
    pub round_secs: f64,
    pub horizon: usize,
    /// `--search-first`: queries found in their router's pool were not posted; how many.
    pub search_first: bool,
    pub found_locally: usize,
    /// `--widen-after`: the round after which an unanswered query's client widens its post
    /// (0: never), and how many posts were widened.
    pub widen_after: usize,
    pub widened: usize,
    /// Share of queries whose client held a message of its label within h rounds, h = 1..
    /// (index h-1): cmr-post's related messages at posting (round 0) or its inbox later.
    pub success_by_round: Vec<f64>,
    /// The same counting only the client inbox (`cmr-post --replies`).
    pub inbox_success_by_round: Vec<f64>,
    /// Deliveries in the query phase (forwards and replies; spam and forgeries excluded)
    /// per query.
    pub messages_per_query: f64,
    /// Deliveries per expert training post, in the training phase.
    pub messages_per_training_post: f64,
    /// Replies shown to the queries' clients (`cmr-post --replies`) within the horizon,
    /// per query, and the share of them that have the query's label: how precise the
    /// replies that success counts are.
    pub replies_per_query: f64,
    pub reply_precision: f64,
    /// Messages received per router in the query phase.
    pub load: Spread,
    pub load_max_over_mean: f64,
    /// Messages cached per router at the end.
    pub cache: Spread,
    /// Success within 4 rounds (and within the horizon) in the first and last fifth of the
    /// queries.
    pub learning: Learning,
    pub baselines: BTreeMap<String, baselines::Result>,
    pub churn: f64,
    pub spam: Option<Spam>,
    pub forger: Option<Forger>,
    /// Rejected deliveries by reason code.
    pub rejected: BTreeMap<String, usize>,
    /// Share of routed messages (not our clients' posts) that were explored (3.1).
    pub explored_share: f64,
    /// Messages the routers cached and forwarded to no one as bulk posting
    /// (`bulk_resemblance`), all phases: spam, forgeries, and the others (corpus messages).
    pub held_as_bulk: HeldAsBulk,
    /// Forwards the routers decided on received messages, by kind (x, y, z) and rule.
    pub forwards_by_reason: BTreeMap<String, usize>,
    /// Forwards the relay policy refused (first contact), by code.
    pub relay_refused: BTreeMap<String, usize>,
    pub rounds: u64,
    pub settings: BTreeMap<String, String>,
    pub wall_s: f64,
    pub peak_rss_kib: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Learning {
    pub first_fifth_by_round: Vec<f64>,
    pub last_fifth_by_round: Vec<f64>,
    pub first_fifth_4: f64,
    pub last_fifth_4: f64,
}

/// Peak resident set of this process (VmHWM), KiB; 0 where /proc is missing.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}
