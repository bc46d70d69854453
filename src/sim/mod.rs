//! `cmr-sim`: a network of real cmr routers on one machine, delivered in rounds.
//!
//! Section 3.1: "When a client creates a message X, the peers have the goal of routing X to
//! the peers that hold messages close to it, and sending those responses back to the
//! originator as well as any peers through which X was routed." 3.3 asks that traffic stay
//! bounded; Section 4 that hostile peers not ruin it. This module measures both.
//!
//! - [`topology`]: the seeded random graph (random regular or Watts-Strogatz);
//! - [`workload`]: the labelled corpus, experts and held-out queries, spam;
//! - [`delivery`]: the real routers (a state file each, keyed links) and a round's delivery;
//! - [`baselines`]: flooding with a TTL, k random walkers, the shortest-path oracle;
//! - [`metrics`]: what is measured; [`report`]: the table and the SVG plot;
//! - `diag`: what `CMR_SIM_DIAG=1` prints on stderr (scores, where failed queries were lost,
//!   duplicates by the rule that sent them);
//! - `queries`: the query phase (posts when due, `--search-first`, the clients' inboxes);
//! - `faults`: the spammer and the forger, and how far what they sent spread.
//!
//! One round is one hop: every router's due outbox rows are delivered to their destination's
//! receive path. The process clock stands still within a round and moves `round_secs` per
//! round ([`crate::wire::freeze_clock`]), as if cron drained every outbox that often, so the
//! outbox's backoff, the rate windows and the contact budgets run on simulated time, and a
//! run does not depend on how fast the machine is.
//!
//! Phases: (1) training: every expert posts one of its items per round until all are
//! posted, then rounds run until the outboxes are empty (at most `settle` rounds);
//! (2) queries: `query_rate` per round, each at its router; faults act in this phase; the
//! run goes on `horizon` rounds after the last query.

pub mod baselines;
pub mod delivery;
mod diag;
mod faults;
mod queries;
use queries::{QueryPhase, QueryState};
pub mod metrics;
pub mod report;
pub mod topology;
pub mod workload;

use crate::exit::Failure;
use crate::route::{Decision, Outcome};
use delivery::Delivery;
use metrics::Report;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

/// A run's parameters (`cmr-sim` options).
#[derive(Debug, Clone)]
pub struct Config {
    pub routers: usize,
    pub degree: usize,
    pub topology: topology::Kind,
    pub rewire: f64,
    pub seed: u64,
    pub corpus: PathBuf,
    pub experts: usize,
    pub train: usize,
    pub queries: usize,
    pub query_rate: f64,
    pub round_secs: f64,
    pub horizon: usize,
    /// Queries' clients search their router's pool first and post only when it has no
    /// message of the query's label (`cmr-post --search`, then `cmr-post`).
    pub search_first: bool,
    /// A query's client that holds no message of its label this many rounds after the
    /// query was due asks its router to send the post to more neighbours (`cmr-post
    /// --widen`), and the spammer's clients widen every post at once; 0: nobody widens.
    pub widen_after: usize,
    pub settle: usize,
    pub flood_ttl: u32,
    pub walkers: usize,
    pub walk_ttl: u32,
    pub churn: f64,
    pub spam: f64,
    /// The spammer's posts at most (0: no limit).
    pub spam_limit: usize,
    pub forger: f64,
    /// Router settings (`cmr-route policy KEY VALUE`) for every router.
    pub settings: Vec<(String, String)>,
    pub dir: Option<PathBuf>,
    /// Progress lines on stderr.
    pub verbose: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            routers: 100,
            degree: 6,
            topology: topology::Kind::Regular,
            rewire: 0.1,
            seed: 1,
            corpus: PathBuf::from("../shared/corpus/fortunes_topics.jsonl"),
            experts: 2,
            train: 20,
            queries: 200,
            query_rate: 1.0,
            round_secs: 60.0,
            horizon: 8,
            search_first: false,
            widen_after: 0,
            settle: 8,
            flood_ttl: 7,
            walkers: 16,
            walk_ttl: 8,
            churn: 0.0,
            spam: 0.0,
            spam_limit: 0,
            forger: 0.0,
            settings: Vec::new(),
            dir: None,
            verbose: false,
        }
    }
}

/// What a body is, for the counting: a corpus label, spam, or a forgery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Label(usize),
    Spam,
    Forged,
}

struct Tracker {
    kinds: HashMap<Vec<u8>, Kind>,
}

impl Tracker {
    /// Every corpus text with its label (the first label a text comes with).
    fn of_corpus(corpus: &workload::Corpus) -> Self {
        let mut kinds = HashMap::new();
        for it in &corpus.items {
            kinds
                .entry(it.text.as_bytes().to_vec())
                .or_insert(Kind::Label(it.label));
        }
        Tracker { kinds }
    }
    fn kind(&self, body: &[u8]) -> Option<Kind> {
        self.kinds.get(body).copied()
    }
    fn kind_of_wire(&self, bytes: &[u8]) -> Option<Kind> {
        crate::wire::parse(bytes, &crate::wire::Rules::unchecked_time())
            .ok()
            .and_then(|m| self.kind(m.body()))
    }
    /// The kind of the message cached as `id` in the state file `conn`.
    fn kind_cached(&self, conn: &rusqlite::Connection, id: i64) -> Option<Kind> {
        crate::state::cache::get(conn, id)
            .ok()
            .flatten()
            .and_then(|r| self.kind(r.body()))
    }
}

fn seeded(seed: u64, stream: u64) -> StdRng {
    StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream)
}

fn say(cfg: &Config, s: &str) {
    if cfg.verbose {
        crate::log::info(s);
    }
}

// Simulated time: round r is `BASE + r * round_secs`, the clock standing still within
// a round. The base is fixed (2030-03-17 17:46:40 UTC), so a run is a function of its
// seed and options (message IDs, hence the exploration's tie-breaks, hold times);
// it lies ahead of the real clock, so the outbox's age limit (checked against SQLite's
// own clock) never dead-letters a row of the run.
const BASE: f64 = 1_900_000_000.0;

/// Run the simulation; the report of everything measured.
pub fn run(cfg: &Config) -> Result<Report, Failure> {
    let start = Instant::now();
    check(cfg)?;
    let mut sim = Sim::new(cfg)?;
    // Phase 1: training.
    sim.train()?;
    // Phase 2: queries.
    let mut phase = sim.start_queries()?;
    sim.run_queries(&mut phase)?;
    if let Some(d) = &sim.diag {
        d.print(
            &phase.queries,
            &sim.wl.experts,
            sim.corpus.labels.len(),
            &sim.graph.adj,
        );
    }
    // Spread of spam and forgeries.
    if let Some(s) = phase.spammer.as_mut() {
        sim.spam_spread(s)?;
    }
    if let Some(f) = phase.forger.as_mut() {
        sim.forgery_spread(f)?;
    }
    sim.report(phase, start)
}

/// The options a run cannot start with.
fn check(cfg: &Config) -> Result<(), Failure> {
    if !(0.0..1.0).contains(&cfg.churn) {
        return Err(Failure::usage(format!(
            "--churn {}: a share, 0 to below 1",
            cfg.churn
        )));
    }
    if cfg.query_rate <= 0.0 || !cfg.query_rate.is_finite() {
        return Err(Failure::usage("--query-rate must be above 0"));
    }
    if cfg.horizon == 0 {
        return Err(Failure::usage("--horizon must be at least 1"));
    }
    Ok(())
}

/// What the deliveries of a run are counted into.
#[derive(Default)]
struct Counts {
    /// Rejected deliveries by reason code.
    rejected: BTreeMap<String, usize>,
    /// Accepted deliveries, and those of them forwarded by exploration (3.1).
    routed: usize,
    explored: usize,
    /// Forwards by what (`x`, `y`, `z`) and rule.
    forwards_by: BTreeMap<String, usize>,
    /// Forwards the relay policy refused, by reason code.
    refused_by: BTreeMap<String, usize>,
    training_msgs: u64,
    /// The query phase's deliveries: other than spam and forgeries, and spam.
    query_msgs: u64,
    spam_msgs: u64,
    /// Messages (other than spam and forgeries) received per router, query phase.
    load: Vec<f64>,
    /// Replies shown to the queries' clients within the horizon, and those of them with
    /// the query's label.
    replies: u64,
    replies_label: u64,
    /// Posts widened (`--widen-after`).
    widened: usize,
}

/// A run in progress: the network, what its bodies are, the counters and the simulated
/// clock.
struct Sim<'a> {
    cfg: &'a Config,
    corpus: workload::Corpus,
    graph: topology::Graph,
    wl: workload::Workload,
    net: delivery::Net,
    /// Churn, the attackers' routers and their bodies.
    rng: StdRng,
    tracker: Tracker,
    /// Rounds run so far; round r runs at `BASE + r * round_secs`.
    round: u64,
    counts: Counts,
    /// Diagnostics (CMR_SIM_DIAG=1).
    diag: Option<diag::Diag>,
}

impl<'a> Sim<'a> {
    /// The graph, the workload and the routers of `cfg`, nothing delivered yet.
    fn new(cfg: &'a Config) -> Result<Self, Failure> {
        let corpus = workload::load(&cfg.corpus)?;
        let graph = topology::generate(
            cfg.topology,
            cfg.routers,
            cfg.degree,
            cfg.rewire,
            &mut seeded(cfg.seed, 1),
        )?;
        let wl = workload::plan(
            &corpus,
            cfg.routers,
            cfg.experts,
            cfg.train,
            cfg.queries,
            &mut seeded(cfg.seed, 2),
        );
        let net = delivery::Net::build(
            cfg.routers,
            &graph.edges(),
            &cfg.settings,
            cfg.dir.as_deref(),
            &mut seeded(cfg.seed, 3),
        )?;
        say(
            cfg,
            &format!("cmr-sim: {} routers in {}", cfg.routers, net.dir.display()),
        );
        let tracker = Tracker::of_corpus(&corpus);
        Ok(Sim {
            cfg,
            corpus,
            graph,
            wl,
            net,
            rng: seeded(cfg.seed, 4),
            tracker,
            round: 0,
            counts: Counts {
                load: vec![0f64; cfg.routers],
                ..Counts::default()
            },
            diag: std::env::var_os("CMR_SIM_DIAG").map(|_| diag::Diag::default()),
        })
    }

    /// Set the process clock `rounds` rounds after the base.
    fn clock(&self, rounds: f64) {
        crate::wire::freeze_clock(Some(BASE + rounds * self.cfg.round_secs));
    }

    /// One round: every router that is not `down` has its due outbox rows delivered,
    /// with `extra`; what was delivered.
    fn step(
        &mut self,
        down: &HashSet<usize>,
        extra: Vec<Delivery>,
    ) -> Result<Vec<Delivery>, Failure> {
        self.clock(self.round as f64);
        let mut batch = self.net.drain(down)?;
        batch.extend(extra);
        // The messages arrive half a round later: what the receivers stamp on their
        // forwards (a microsecond apart) is never ahead of their own clock.
        self.clock(self.round as f64 + 0.5);
        if let Some(d) = self.diag.as_mut() {
            d.round = self.round;
        }
        let decisions = self.net.deliver(&batch)?;
        if let Some(diag) = self.diag.as_mut() {
            diag.duplicates_of(&batch, &decisions, |r| self.net.routers[r].addr.clone());
        }
        for (to, d) in decisions {
            self.count(to, &d);
        }
        self.round += 1;
        Ok(batch)
    }

    /// Count router `to`'s decision on a delivery.
    fn count(&mut self, to: usize, d: &Decision) {
        if let Some(diag) = self.diag.as_mut() {
            if d.outcome == Outcome::Duplicate && !diag.trace_empty() {
                diag.duplicates += 1;
                diag.duplicate(self.net.routers[to].state.conn(), &self.tracker, to, d);
            }
            if d.outcome == Outcome::Accepted && !diag.trace_empty() {
                diag.sent(self.net.routers[to].state.conn(), to, d);
            }
            if d.outcome == Outcome::Accepted {
                diag.decision(self.net.routers[to].state.conn(), &self.tracker, d);
                if !diag.trace_empty() {
                    diag.trace(self.net.routers[to].state.conn(), &self.tracker, to, d);
                }
            }
        }
        if d.outcome == Outcome::Rejected {
            *self
                .counts
                .rejected
                .entry(d.reason_code.clone().unwrap_or_default())
                .or_default() += 1;
        } else if d.outcome == Outcome::Accepted {
            self.count_routed(to, d);
        }
    }

    /// Count what router `to` did with a message it accepted: refusals, forwards by rule.
    fn count_routed(&mut self, to: usize, d: &Decision) {
        let c = &mut self.counts;
        c.routed += 1;
        for r in &d.refused {
            let k = match self.diag {
                Some(_) => diag::refusal_key(r),
                None => r.code.to_string(),
            };
            *c.refused_by.entry(k).or_default() += 1;
        }
        for f in &d.forwards {
            let why = f.why.split([':', ';']).next().unwrap_or("").to_string();
            *c.forwards_by
                .entry(format!("{} {why}", f.what))
                .or_default() += 1;
            if self.diag.is_some() {
                let conn = self.net.routers[to].state.conn();
                if self.tracker.kind_cached(conn, f.cache_id) == Some(Kind::Spam) {
                    *c.forwards_by
                        .entry(format!("spam {} {why}", f.what))
                        .or_default() += 1;
                }
            }
        }
        if d.forwards
            .iter()
            .any(|f| f.why.starts_with("3.1 exploration"))
        {
            c.explored += 1;
        }
    }

    /// Phase 1: every expert posts one of its items per round until all are posted, then
    /// rounds run until the outboxes are empty (at most `settle` rounds).
    fn train(&mut self) -> Result<(), Failure> {
        let none = HashSet::new();
        let most = self
            .wl
            .experts
            .iter()
            .map(|e| e.items.len())
            .max()
            .unwrap_or(0);
        for k in 0..most {
            self.clock(self.round as f64);
            for e in &self.wl.experts {
                if let Some(&it) = e.items.get(k) {
                    self.net
                        .post(e.router, self.corpus.items[it].text.as_bytes())?;
                }
            }
            self.counts.training_msgs += self.step(&none, Vec::new())?.len() as u64;
        }
        for _ in 0..self.cfg.settle {
            if !self.net.pending()? {
                break;
            }
            self.counts.training_msgs += self.step(&none, Vec::new())?.len() as u64;
        }
        say(
            self.cfg,
            &format!(
                "cmr-sim: training done after {} rounds, {} deliveries",
                self.round, self.counts.training_msgs
            ),
        );
        Ok(())
    }

    /// Baselines on the same graph and workload.
    fn baselines(&self, qs: &[QueryState]) -> Vec<(&'static str, baselines::Result)> {
        let cfg = self.cfg;
        let mut holders = vec![vec![false; cfg.routers]; self.corpus.labels.len()];
        for e in &self.wl.experts {
            if !e.items.is_empty() {
                holders[e.label][e.router] = true;
            }
        }
        let qpairs: Vec<(usize, usize)> = qs.iter().map(|q| (q.router, q.label)).collect();
        let mut brng = seeded(cfg.seed, 6);
        let answers: Vec<baselines::Answers> = qs.iter().map(|q| q.answers.clone()).collect();
        baselines::run_all(
            &self.graph,
            &qpairs,
            &holders,
            Some(&answers),
            cfg.horizon,
            cfg.flood_ttl,
            cfg.walkers,
            cfg.walk_ttl,
            &mut brng,
        )
    }

    fn cache_sizes(&self) -> Result<Vec<f64>, Failure> {
        let mut caches = Vec::with_capacity(self.cfg.routers);
        for r in 0..self.cfg.routers {
            caches.push(self.net.cache_size(r)? as f64);
        }
        Ok(caches)
    }

    /// The routing settings the run used (router 0's; every router has the same).
    fn settings_used(&self) -> BTreeMap<String, String> {
        let mut settings_used = BTreeMap::new();
        for k in [
            "distance_threshold",
            "margin",
            "match_k",
            "match_threshold",
            "forwards_per_match",
            "max_forwards",
            "post_routing",
            "explore_fanout",
            "explore_hops",
            "explore_until",
            "max_hops",
            "walk_hops",
            "spread_fanout",
            "post_fanout",
            "widen_fanout",
            "answers_to",
            "answers_return",
            "answer_depth",
            "replies_from_asked",
            "related_k",
            "bulk_resemblance",
        ] {
            if let Ok(v) =
                crate::state::settings::get_or_default(self.net.routers[0].state.conn(), k)
            {
                settings_used.insert(k.to_string(), v);
            }
        }
        settings_used
    }

    /// The report of everything measured; the process clock runs again.
    fn report(self, p: QueryPhase, start: Instant) -> Result<Report, Failure> {
        let cfg = self.cfg;
        let bl = self.baselines(&p.queries);
        let qs = &p.queries;
        let succ: Vec<Option<u32>> = qs.iter().map(|q| q.success).collect();
        let inbox: Vec<Option<u32>> = qs.iter().map(|q| q.inbox).collect();
        let success = metrics::success_by_round(&succ, cfg.horizon);
        let caches = self.cache_sizes()?;
        let load_s = metrics::spread(&self.counts.load);
        let settings_used = self.settings_used();
        let held_as_bulk = self.held_as_bulk();
        crate::wire::freeze_clock(None);
        let training_posts: usize = self.wl.experts.iter().map(|e| e.items.len()).sum();
        let c = self.counts;
        Ok(Report {
            routers: cfg.routers,
            degree: self.graph.mean_degree(),
            topology: cfg.topology.as_str().into(),
            seed: cfg.seed,
            corpus: cfg.corpus.display().to_string(),
            labels: self.corpus.labels.len(),
            experts: self.wl.experts.len(),
            training_items: training_posts,
            queries: qs.len(),
            round_secs: cfg.round_secs,
            horizon: cfg.horizon,
            search_first: cfg.search_first,
            found_locally: qs.iter().filter(|q| q.found_locally).count(),
            widen_after: cfg.widen_after,
            widened: c.widened,
            success_ci95_by_round: success
                .iter()
                .map(|&p| metrics::wilson95(p, qs.len()))
                .collect(),
            against_flood: bl
                .iter()
                .find(|(k, _)| *k == "flood")
                .map(|(k, b)| metrics::against(k, &succ, &b.rounds, cfg.horizon.min(4), cfg.seed))
                .unwrap_or_default(),
            success_by_round: success,
            inbox_success_by_round: metrics::success_by_round(&inbox, cfg.horizon),
            messages_per_query: c.query_msgs as f64 / qs.len().max(1) as f64,
            messages_per_training_post: c.training_msgs as f64 / training_posts.max(1) as f64,
            replies_per_query: c.replies as f64 / qs.len().max(1) as f64,
            reply_precision: c.replies_label as f64 / c.replies.max(1) as f64,
            load_max_over_mean: load_s.max_over_mean,
            load: load_s,
            cache: metrics::spread(&caches),
            learning: learning(&succ, cfg.horizon),
            baselines: bl.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            churn: cfg.churn,
            spam: p.spammer.map(|s| s.out),
            forger: p.forger.map(|f| f.out),
            rejected: c.rejected,
            explored_share: c.explored as f64 / c.routed.max(1) as f64,
            held_as_bulk,
            forwards_by_reason: c.forwards_by,
            relay_refused: c.refused_by,
            rounds: self.round,
            settings: settings_used,
            wall_s: start.elapsed().as_secs_f64(),
            peak_rss_kib: metrics::peak_rss_kib(),
        })
    }
}

/// Success in the first fifth of the queries against the last fifth.
fn learning(succ: &[Option<u32>], horizon: usize) -> metrics::Learning {
    let fifth = (succ.len() / 5).max(1);
    let first = metrics::success_by_round(&succ[..fifth.min(succ.len())], horizon);
    let last = metrics::success_by_round(&succ[succ.len().saturating_sub(fifth)..], horizon);
    metrics::Learning {
        first_fifth_4: first.get(3).copied().unwrap_or(0.0),
        last_fifth_4: last.get(3).copied().unwrap_or(0.0),
        first_fifth_by_round: first,
        last_fifth_by_round: last,
    }
}
