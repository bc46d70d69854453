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
//! - [`metrics`]: what is measured; [`report`]: the table and the SVG plot.
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
pub mod metrics;
pub mod report;
pub mod topology;
pub mod workload;

use crate::exit::Failure;
use crate::route::Outcome;
use metrics::Report;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

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
    pub settle: usize,
    pub flood_ttl: u32,
    pub walkers: usize,
    pub walk_ttl: u32,
    pub churn: f64,
    pub spam: f64,
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
            settle: 8,
            flood_ttl: 7,
            walkers: 16,
            walk_ttl: 8,
            churn: 0.0,
            spam: 0.0,
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
    fn kind(&self, body: &[u8]) -> Option<Kind> {
        self.kinds.get(body).copied()
    }
    fn kind_of_wire(&self, bytes: &[u8]) -> Option<Kind> {
        crate::wire::parse(bytes, &crate::wire::Rules::unchecked_time())
            .ok()
            .and_then(|m| self.kind(m.body()))
    }
}

struct QueryState {
    router: usize,
    label: usize,
    body: Vec<u8>,
    due: u64,
    post_id: Option<i64>,
    success: Option<u32>,
    inbox: Option<u32>,
    /// What every router's matcher would answer it with when it was posted (the
    /// `flood_match` and `walk_match` baselines).
    answers: baselines::Answers,
}

/// What each router's matcher answers `body` with, read before it is posted: the origin
/// shows `related_k` related messages (as `cmr-post` does), any other router sends its
/// `match_k` closest within `match_threshold` (as A3 sends the messages it matched).
fn matcher_answers(
    net: &delivery::Net,
    s: &crate::state::settings::Settings,
    tracker: &Tracker,
    origin: usize,
    body: &[u8],
    label: usize,
) -> Result<baselines::Answers, Failure> {
    let mut out = Vec::with_capacity(net.routers.len());
    for (r, router) in net.routers.iter().enumerate() {
        let k = if r == origin { s.related_k } else { s.match_k } as usize;
        let found = crate::route::post::search(&router.state, body, Some(k))?;
        let sent: Vec<_> = found
            .iter()
            .filter(|m| r == origin || m.score <= s.match_threshold)
            .filter(|m| m.body.as_bytes() != body)
            .collect();
        let hit = sent
            .iter()
            .any(|m| tracker.kind(m.body.as_bytes()) == Some(Kind::Label(label)));
        out.push((hit, sent.len() as u32));
    }
    Ok(out)
}

fn seeded(seed: u64, stream: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream)
}

fn say(cfg: &Config, s: &str) {
    if cfg.verbose {
        crate::log::info(s);
    }
}

/// Run the simulation; the report of everything measured.
pub fn run(cfg: &Config) -> Result<Report, Failure> {
    let start = std::time::Instant::now();
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
    let mut net = delivery::Net::build(
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
    let mut rng = seeded(cfg.seed, 4);
    let mut tracker = Tracker {
        kinds: HashMap::new(),
    };
    for it in &corpus.items {
        tracker
            .kinds
            .entry(it.text.as_bytes().to_vec())
            .or_insert(Kind::Label(it.label));
    }

    let mut round: u64 = 0;
    // Simulated time: round r is `base + r * round_secs`, the clock standing still within
    // a round. The base is fixed (2030-03-17 17:46:40 UTC), so a run is a function of its
    // seed and options (message IDs, hence the exploration's tie-breaks, hold times);
    // it lies ahead of the real clock, so the outbox's age limit (checked against SQLite's
    // own clock) never dead-letters a row of the run.
    let base = 1_900_000_000.0;
    let mut rejected: BTreeMap<String, usize> = BTreeMap::new();
    let mut explored = 0usize;
    let mut routed = 0usize;
    let mut forwards_by: BTreeMap<String, usize> = BTreeMap::new();
    let mut refused_by: BTreeMap<String, usize> = BTreeMap::new();
    // Diagnostics (CMR_SIM_DIAG=1): match scores of same- and other-label pairs, best peer scores.
    let diag = std::env::var_os("CMR_SIM_DIAG").is_some();
    let mut diag_scores: Vec<(f64, bool)> = Vec::new();
    let mut diag_peer: Vec<f64> = Vec::new();
    let mut diag_best_spam: Vec<f64> = Vec::new();
    let mut diag_best_label: Vec<f64> = Vec::new();
    let mut step = |net: &mut delivery::Net,
                    round: &mut u64,
                    down: &HashSet<usize>,
                    extra: Vec<delivery::Delivery>,
                    rejected: &mut BTreeMap<String, usize>,
                    tracker: &Tracker|
     -> Result<Vec<delivery::Delivery>, Failure> {
        crate::wire::freeze_clock(Some(base + *round as f64 * cfg.round_secs));
        let mut batch = net.drain(down)?;
        batch.extend(extra);
        // The messages arrive half a round later: what the receivers stamp on their
        // forwards (a microsecond apart) is never ahead of their own clock.
        crate::wire::freeze_clock(Some(base + (*round as f64 + 0.5) * cfg.round_secs));
        for (to, d) in net.deliver(&batch)? {
            if diag && d.outcome == Outcome::Accepted {
                let conn = net.routers[to].state.conn();
                let body = |id: i64| -> Option<Vec<u8>> {
                    crate::state::cache::get(conn, id)
                        .ok()
                        .flatten()
                        .map(|r| r.body().to_vec())
                };
                let kx = d.cache_id.and_then(body).and_then(|b| tracker.kind(&b));
                if let Some(m) = d.matched.first() {
                    match kx {
                        Some(Kind::Spam) => diag_best_spam.push(m.score),
                        Some(Kind::Label(_)) => diag_best_label.push(m.score),
                        _ => {}
                    }
                }
                for m in &d.matched {
                    let ky = body(m.cache_id).and_then(|b| tracker.kind(&b));
                    if let (Some(Kind::Label(a)), Some(Kind::Label(b))) = (kx, ky) {
                        diag_scores.push((m.score, a == b));
                    }
                }
                if let Some(b) = d.scores.first() {
                    diag_peer.push(b.score);
                }
            }
            if d.outcome == Outcome::Rejected {
                *rejected
                    .entry(d.reason_code.clone().unwrap_or_default())
                    .or_default() += 1;
            } else if d.outcome == Outcome::Accepted {
                routed += 1;
                for r in &d.refused {
                    let mut k = r.code.to_string();
                    if diag {
                        let src = if r.reason.contains("source unverified") {
                            "unverified"
                        } else if r.reason.contains("source local") {
                            "local"
                        } else if r.code == "contact-budget-source" {
                            "peer"
                        } else {
                            ""
                        };
                        k = format!("{k} {src} {}", r.what);
                    }
                    *refused_by.entry(k).or_default() += 1;
                }
                for f in &d.forwards {
                    let why = f.why.split([':', ';']).next().unwrap_or("").to_string();
                    *forwards_by.entry(format!("{} {why}", f.what)).or_default() += 1;
                    if diag {
                        let conn = net.routers[to].state.conn();
                        let spam = crate::state::cache::get(conn, f.cache_id)
                            .ok()
                            .flatten()
                            .is_some_and(|r| tracker.kind(r.body()) == Some(Kind::Spam));
                        if spam {
                            *forwards_by
                                .entry(format!("spam {} {why}", f.what))
                                .or_default() += 1;
                        }
                    }
                }
                if d.forwards
                    .iter()
                    .any(|f| f.why.starts_with("3.1 exploration"))
                {
                    explored += 1;
                }
            }
        }
        *round += 1;
        Ok(batch)
    };

    // Phase 1: training.
    let none = HashSet::new();
    let mut training_msgs = 0u64;
    let most = wl.experts.iter().map(|e| e.items.len()).max().unwrap_or(0);
    for k in 0..most {
        crate::wire::freeze_clock(Some(base + round as f64 * cfg.round_secs));
        for e in &wl.experts {
            if let Some(&it) = e.items.get(k) {
                net.post(e.router, corpus.items[it].text.as_bytes())?;
            }
        }
        training_msgs += step(
            &mut net,
            &mut round,
            &none,
            Vec::new(),
            &mut rejected,
            &tracker,
        )?
        .len() as u64;
    }
    for _ in 0..cfg.settle {
        if !net.pending()? {
            break;
        }
        training_msgs += step(
            &mut net,
            &mut round,
            &none,
            Vec::new(),
            &mut rejected,
            &tracker,
        )?
        .len() as u64;
    }
    let training_posts: usize = wl.experts.iter().map(|e| e.items.len()).sum();
    say(
        cfg,
        &format!("cmr-sim: training done after {round} rounds, {training_msgs} deliveries"),
    );

    // Phase 2: queries.
    let mut qs: Vec<QueryState> = wl
        .queries
        .iter()
        .enumerate()
        .map(|(i, q)| QueryState {
            router: q.router,
            label: corpus.items[q.item].label,
            body: corpus.items[q.item].text.as_bytes().to_vec(),
            due: round + (i as f64 / cfg.query_rate).floor() as u64,
            post_id: None,
            success: None,
            inbox: None,
            answers: Vec::new(),
        })
        .collect();
    let settings0 = crate::state::settings::Settings::load(net.routers[0].state.conn())?;
    let qbody: HashMap<Vec<u8>, usize> = qs
        .iter()
        .enumerate()
        .map(|(i, q)| (q.body.clone(), i))
        .collect();
    let mut diag_reach: Vec<Vec<usize>> = vec![Vec::new(); qs.len()];
    let mut diag_arrived: Vec<usize> = vec![0; qs.len()];
    let expert_routers: HashSet<usize> = wl.experts.iter().map(|e| e.router).collect();
    let pick_outsider = |rng: &mut rand::rngs::StdRng| -> usize {
        let others: Vec<usize> = (0..cfg.routers)
            .filter(|r| !expert_routers.contains(r))
            .collect();
        others.choose(rng).copied().unwrap_or(0)
    };
    let spammer = (cfg.spam > 0.0).then(|| pick_outsider(&mut rng));
    let forger = (cfg.forger > 0.0).then(|| pick_outsider(&mut rng));
    let victim = forger.map(|f| {
        // A router two hops away: some of the forger's neighbours hold its key, most do not.
        let dist = graph.bfs(f);
        (0..cfg.routers)
            .find(|&v| dist[v] == 2)
            .unwrap_or((f + 1) % cfg.routers)
    });
    // The normal rate of one router's clients: queries per round over the routers.
    let normal = cfg.query_rate / cfg.routers as f64;
    let (mut spam_credit, mut forge_credit) = (0.0f64, 0.0f64);
    let mut spam = spammer.map(|r| metrics::Spam {
        router: r,
        rate_multiple: cfg.spam,
        ..Default::default()
    });
    let mut forged = forger.map(|r| metrics::Forger {
        router: r,
        claims: victim.map(delivery::address).unwrap_or_default(),
        ..Default::default()
    });
    let mut forge_key = seeded(cfg.seed, 5);
    let last_due = qs.last().map(|q| q.due).unwrap_or(round);
    let end = last_due + cfg.horizon as u64 + 1;
    let mut query_msgs = 0u64;
    let mut spam_msgs = 0u64;
    let mut load = vec![0f64; cfg.routers];
    let mut by_post: HashMap<(usize, i64), usize> = HashMap::new();
    let mut next_q = 0usize;
    let mut spam_n = 0usize;
    let n_down = (cfg.churn * cfg.routers as f64).round() as usize;
    while round < end {
        crate::wire::freeze_clock(Some(base + round as f64 * cfg.round_secs));
        let down: HashSet<usize> = if n_down > 0 {
            rand::seq::index::sample(&mut rng, cfg.routers, n_down)
                .into_iter()
                .collect()
        } else {
            HashSet::new()
        };
        // Queries due (a client whose router is down waits for it; its rounds count).
        for (i, q) in qs.iter_mut().enumerate().skip(next_q) {
            if q.due > round {
                break;
            }
            if q.post_id.is_some() || down.contains(&q.router) {
                continue;
            }
            q.answers = matcher_answers(&net, &settings0, &tracker, q.router, &q.body, q.label)?;
            let p = net.post(q.router, &q.body)?;
            q.post_id = p.cache_id;
            if let Some(id) = p.cache_id {
                by_post.insert((q.router, id), i);
            }
            let hit = p.related.iter().any(|r| {
                r.body.as_bytes() != q.body.as_slice()
                    && tracker.kind(r.body.as_bytes()) == Some(Kind::Label(q.label))
            });
            if hit {
                q.success = Some((round - q.due) as u32);
            }
        }
        while next_q < qs.len() && qs[next_q].post_id.is_some() {
            next_q += 1;
        }
        // The spammer's clients.
        if let (Some(r), Some(s)) = (spammer, spam.as_mut()) {
            if round <= last_due && !down.contains(&r) {
                spam_credit += cfg.spam * normal;
                while spam_credit >= 1.0 {
                    spam_credit -= 1.0;
                    let body = workload::junk(spam_n, &mut rng);
                    spam_n += 1;
                    tracker.kinds.insert(body.as_bytes().to_vec(), Kind::Spam);
                    net.post(r, body.as_bytes())?;
                    s.posted += 1;
                }
            }
        }
        // The forger: messages claiming the victim's address, straight to its neighbours.
        let mut extra = Vec::new();
        if let (Some(f), Some(v), Some(fs)) = (forger, victim, forged.as_mut()) {
            if round <= last_due && !down.contains(&f) {
                forge_credit += cfg.forger * normal;
                while forge_credit >= 1.0 {
                    forge_credit -= 1.0;
                    let body = format!("FORGED {}: {}", fs.sent, workload::junk(fs.sent, &mut rng));
                    tracker.kinds.insert(body.as_bytes().to_vec(), Kind::Forged);
                    let m = crate::wire::Message::compose(
                        &[(
                            crate::wire::Timestamp::now(),
                            delivery::address(v).as_bytes(),
                        )],
                        body.as_bytes(),
                        &crate::wire::Rules::unchecked_time(),
                    )
                    .map_err(|e| Failure::software(format!("composing a forgery: {e}")))?;
                    // Signed with a key the forger made up: it holds none of the victim's.
                    let k = crate::sign::Key::new(forge_key.gen::<[u8; 32]>().to_vec());
                    let m = crate::sign::sign(m, crate::sign::Scheme::HmacSha256, &k);
                    for &to in &graph.adj[f] {
                        if to != v && !down.contains(&to) {
                            extra.push(delivery::Delivery {
                                from: f,
                                to,
                                bytes: m.encode(),
                            });
                            fs.sent += 1;
                        }
                    }
                }
            }
        }
        let batch = step(&mut net, &mut round, &down, extra, &mut rejected, &tracker)?;
        if diag {
            for d in &batch {
                let Ok(m) = crate::wire::parse(&d.bytes, &crate::wire::Rules::unchecked_time())
                else {
                    continue;
                };
                if let Some(&i) = qbody.get(m.body()) {
                    diag_reach[i].push(d.to);
                }
                if let Some(Kind::Label(l)) = tracker.kind(m.body()) {
                    for (i, q) in qs.iter().enumerate() {
                        if q.post_id.is_some()
                            && q.router == d.to
                            && q.label == l
                            && round <= q.due + 9
                        {
                            diag_arrived[i] += 1;
                        }
                    }
                }
            }
        }
        for d in &batch {
            match tracker.kind_of_wire(&d.bytes) {
                Some(Kind::Spam) => spam_msgs += 1,
                Some(Kind::Forged) => {}
                _ => {
                    query_msgs += 1;
                    load[d.to] += 1.0;
                }
            }
        }
        // Inboxes of the routers with queries still open (cmr-post --replies).
        let open: HashSet<usize> = qs
            .iter()
            .filter(|q| q.post_id.is_some() && q.inbox.is_none())
            .filter(|q| round - q.due <= cfg.horizon as u64 + 1)
            .map(|q| q.router)
            .collect();
        for r in open {
            if down.contains(&r) {
                continue;
            }
            for rep in net.replies(r)? {
                let Some(&i) = by_post.get(&(r, rep.post_cache_id)) else {
                    continue;
                };
                let q = &mut qs[i];
                let body = rep.message.body.as_bytes();
                if body != q.body.as_slice() && tracker.kind(body) == Some(Kind::Label(q.label)) {
                    // Delivered in the round just run (round - 1), counted from the due round.
                    let h = (round - q.due) as u32;
                    q.inbox.get_or_insert(h);
                    if q.success.is_none_or(|s| s > h) {
                        q.success = Some(h);
                    }
                }
            }
        }
    }
    say(cfg, &format!("cmr-sim: queries done after {round} rounds"));
    if diag {
        // Where the queries that failed within 8 rounds were lost.
        let mut holder: Vec<HashSet<usize>> = vec![HashSet::new(); corpus.labels.len()];
        for e in &wl.experts {
            holder[e.label].insert(e.router);
        }
        let (mut failed, mut reached, mut arrived, mut at_holder) = (0, 0, 0, 0);
        for (i, q) in qs.iter().enumerate() {
            if q.success.is_some_and(|h| h < 8) {
                continue;
            }
            failed += 1;
            at_holder += usize::from(holder[q.label].contains(&q.router));
            reached += usize::from(diag_reach[i].iter().any(|r| holder[q.label].contains(r)));
            arrived += usize::from(diag_arrived[i] > 0);
        }
        let reach: usize = diag_reach.iter().map(Vec::len).sum();
        crate::log::info(&format!(
            "diag: {failed} queries failed within 8 rounds: {at_holder} posted at a holder of their label, \
             {reached} reached one, {arrived} had a message of their label delivered to their router \
             within 9 rounds; deliveries of a query's own body: {:.2} per query",
            reach as f64 / qs.len().max(1) as f64
        ));
        let q = |mut v: Vec<f64>| -> String {
            v.sort_by(f64::total_cmp);
            if v.is_empty() {
                return "none".into();
            }
            [0.1, 0.25, 0.5, 0.75, 0.9]
                .iter()
                .map(|p| format!("{:.3}", v[((v.len() - 1) as f64 * p) as usize]))
                .collect::<Vec<_>>()
                .join(" ")
                + &format!(" (n={})", v.len())
        };
        let same: Vec<f64> = diag_scores.iter().filter(|x| x.1).map(|x| x.0).collect();
        let other: Vec<f64> = diag_scores.iter().filter(|x| !x.1).map(|x| x.0).collect();
        crate::log::info(&format!(
            "diag: match scores same label p10..p90 {}",
            q(same)
        ));
        crate::log::info(&format!(
            "diag: match scores other label p10..p90 {}",
            q(other)
        ));
        crate::log::info(&format!(
            "diag: best peer score p10..p90 {}",
            q(diag_peer.clone())
        ));
        crate::log::info(&format!(
            "diag: best match of spam p10..p90 {}",
            q(diag_best_spam.clone())
        ));
        crate::log::info(&format!(
            "diag: best match of corpus messages p10..p90 {}",
            q(diag_best_label.clone())
        ));
    }

    // Spread of spam and forgeries.
    if let Some(s) = spam.as_mut() {
        s.messages = spam_msgs;
        for r in 0..cfg.routers {
            if r != s.router
                && net
                    .cached_bodies(r)?
                    .iter()
                    .any(|b| tracker.kind(b) == Some(Kind::Spam))
            {
                s.routers_cached += 1;
            }
        }
        s.share_cached = s.routers_cached as f64 / cfg.routers as f64;
    }
    if let (Some(fs), Some(f), Some(v)) = (forged.as_mut(), forger, victim) {
        for r in 0..cfg.routers {
            if r != f
                && net
                    .cached_bodies(r)?
                    .iter()
                    .any(|b| tracker.kind(b) == Some(Kind::Forged))
            {
                fs.routers_cached += 1;
            }
        }
        fs.rejected = rejected
            .iter()
            .filter(|(k, _)| {
                matches!(
                    k.as_str(),
                    "signature" | "unknown-signer" | "unsigned-from-keyed-peer"
                )
            })
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        fs.accepted = fs.sent - fs.rejected.values().sum::<usize>().min(fs.sent);
        let va = delivery::address(v);
        let mut reps = Vec::new();
        for &n in &graph.adj[v] {
            if let Some(p) = crate::state::peers::get(net.routers[n].state.conn(), &va)? {
                reps.push(p.reputation);
            }
        }
        fs.victim_reputation = reps.iter().sum::<f64>() / reps.len().max(1) as f64;
    }

    // Baselines on the same graph and workload.
    let mut holders = vec![vec![false; cfg.routers]; corpus.labels.len()];
    for e in &wl.experts {
        if !e.items.is_empty() {
            holders[e.label][e.router] = true;
        }
    }
    let qpairs: Vec<(usize, usize)> = qs.iter().map(|q| (q.router, q.label)).collect();
    let mut brng = seeded(cfg.seed, 6);
    let answers: Vec<baselines::Answers> = qs.iter().map(|q| q.answers.clone()).collect();
    let bl = baselines::run_all(
        &graph,
        &qpairs,
        &holders,
        Some(&answers),
        cfg.horizon,
        cfg.flood_ttl,
        cfg.walkers,
        cfg.walk_ttl,
        &mut brng,
    );

    let succ: Vec<Option<u32>> = qs.iter().map(|q| q.success).collect();
    let inbox: Vec<Option<u32>> = qs.iter().map(|q| q.inbox).collect();
    let fifth = (qs.len() / 5).max(1);
    let first = metrics::success_by_round(&succ[..fifth.min(succ.len())], cfg.horizon);
    let last = metrics::success_by_round(&succ[succ.len().saturating_sub(fifth)..], cfg.horizon);
    let mut caches = Vec::with_capacity(cfg.routers);
    for r in 0..cfg.routers {
        caches.push(net.cache_size(r)? as f64);
    }
    let load_s = metrics::spread(&load);
    let mut settings_used = BTreeMap::new();
    {
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
            "related_k",
        ] {
            if let Ok(v) = crate::state::settings::get_or_default(net.routers[0].state.conn(), k) {
                settings_used.insert(k.to_string(), v);
            }
        }
    }
    crate::wire::freeze_clock(None);
    let report = Report {
        routers: cfg.routers,
        degree: graph.mean_degree(),
        topology: cfg.topology.as_str().into(),
        seed: cfg.seed,
        corpus: cfg.corpus.display().to_string(),
        labels: corpus.labels.len(),
        experts: wl.experts.len(),
        training_items: training_posts,
        queries: qs.len(),
        round_secs: cfg.round_secs,
        horizon: cfg.horizon,
        success_by_round: metrics::success_by_round(&succ, cfg.horizon),
        inbox_success_by_round: metrics::success_by_round(&inbox, cfg.horizon),
        messages_per_query: query_msgs as f64 / qs.len().max(1) as f64,
        messages_per_training_post: training_msgs as f64 / training_posts.max(1) as f64,
        load_max_over_mean: load_s.max_over_mean,
        load: load_s,
        cache: metrics::spread(&caches),
        learning: metrics::Learning {
            first_fifth_4: first.get(3).copied().unwrap_or(0.0),
            last_fifth_4: last.get(3).copied().unwrap_or(0.0),
            first_fifth_by_round: first,
            last_fifth_by_round: last,
        },
        baselines: bl.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        churn: cfg.churn,
        spam,
        forger: forged,
        rejected,
        explored_share: explored as f64 / routed.max(1) as f64,
        forwards_by_reason: forwards_by,
        relay_refused: refused_by,
        rounds: round,
        settings: settings_used,
        wall_s: start.elapsed().as_secs_f64(),
        peak_rss_kib: metrics::peak_rss_kib(),
    };
    Ok(report)
}
