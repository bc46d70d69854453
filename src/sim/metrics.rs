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

/// The Wilson score interval (95%) of a share `p` of `n` trials: what the share could be
/// with another sample of as many queries (Wilson 1927; it stays within [0, 1] and is
/// sound at shares near 0 or 1, where the normal approximation is not).
pub fn wilson95(p: f64, n: usize) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    const Z: f64 = 1.959_963_984_540_054;
    let n = n as f64;
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

/// cmr's success within `h` rounds over a baseline's, on the same queries.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Against {
    pub baseline: String,
    pub h: usize,
    pub ratio: f64,
    /// 95% percentile interval of the ratio over `BOOTSTRAP` resamples of the queries
    /// (each resample draws as many queries, with replacement, and keeps each query's
    /// pair of outcomes: cmr and the baseline answered the same queries).
    pub ci95: [f64; 2],
}

/// Resamples of the paired bootstrap.
const BOOTSTRAP: usize = 2000;

/// [`Against`] for the per-query outcomes `cmr` and `base` (the round of the first
/// answer, None: none within the horizon), seeded so that a run's figures repeat.
pub fn against(
    name: &str,
    cmr: &[Option<u32>],
    base: &[Option<u32>],
    h: usize,
    seed: u64,
) -> Against {
    use rand::{Rng, SeedableRng};
    let within = |r: &Option<u32>| r.is_some_and(|r| r as usize <= h);
    let pairs: Vec<(bool, bool)> = cmr
        .iter()
        .zip(base)
        .map(|(a, b)| (within(a), within(b)))
        .collect();
    let ratio = |sample: &mut dyn Iterator<Item = (bool, bool)>| {
        let (mut a, mut b) = (0usize, 0usize);
        for (x, y) in sample {
            a += usize::from(x);
            b += usize::from(y);
        }
        if b == 0 {
            0.0
        } else {
            a as f64 / b as f64
        }
    };
    let point = ratio(&mut pairs.iter().copied());
    if pairs.is_empty() {
        return Against {
            baseline: name.to_string(),
            h,
            ratio: point,
            ci95: [0.0, 0.0],
        };
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut rs: Vec<f64> = (0..BOOTSTRAP)
        .map(|_| {
            let mut draw = (0..pairs.len()).map(|_| pairs[rng.gen_range(0..pairs.len())]);
            ratio(&mut draw)
        })
        .collect();
    rs.sort_by(f64::total_cmp);
    let at = |q: f64| rs[((q * (BOOTSTRAP - 1) as f64).round() as usize).min(BOOTSTRAP - 1)];
    Against {
        baseline: name.to_string(),
        h,
        ratio: point,
        ci95: [at(0.025), at(0.975)],
    }
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
    /// The 95% Wilson interval of each share of `success_by_round`: the sampling error of
    /// `queries` queries.
    pub success_ci95_by_round: Vec<[f64; 2]>,
    /// Success within 4 rounds (or the horizon, if shorter) against flooding's, with a
    /// paired bootstrap interval over the queries.
    pub against_flood: Against,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_intervals_match_the_formula_and_stay_in_bounds() {
        // Wilson (1927): 50 of 100 gives 0.404 to 0.596.
        let [lo, hi] = wilson95(0.5, 100);
        assert!(
            (lo - 0.4038).abs() < 1e-4 && (hi - 0.5962).abs() < 1e-4,
            "{lo} {hi}"
        );
        // No successes in 10: the upper end is 0.278, not 0.
        let [lo, hi] = wilson95(0.0, 10);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.2775).abs() < 1e-4, "{hi}");
        let [lo, hi] = wilson95(1.0, 10);
        assert!(
            (lo - 0.7225).abs() < 1e-4 && (hi - 1.0).abs() < 1e-12,
            "{lo} {hi}"
        );
        assert_eq!(wilson95(0.3, 0), [0.0, 1.0]);
    }

    #[test]
    fn the_paired_bootstrap_brackets_the_ratio_and_repeats() {
        let same = vec![Some(1); 50];
        let a = against("flood", &same, &same, 4, 1);
        assert_eq!((a.ratio, a.ci95), (1.0, [1.0, 1.0]));
        // cmr answers 40 of 50 within 4 rounds, the baseline all 50; one late answer of
        // cmr's (round 6) does not count.
        let mut cmr = vec![Some(2); 40];
        cmr.extend(vec![None; 9]);
        cmr.push(Some(6));
        let a = against("flood", &cmr, &same, 4, 7);
        assert!((a.ratio - 0.8).abs() < 1e-12);
        assert!(
            a.ci95[0] < 0.8 && 0.8 < a.ci95[1] && a.ci95[1] <= 1.0,
            "{:?}",
            a.ci95
        );
        assert!(a.ci95[0] > 0.6, "{:?}", a.ci95);
        let b = against("flood", &cmr, &same, 4, 7);
        assert_eq!(a.ci95, b.ci95);
    }
}
