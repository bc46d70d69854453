//! The query phase: held-out queries posted at their routers when due (with
//! `--search-first`, searched in the router's pool first), churn, the spammer and the
//! forger acting in each round, the traffic counted, and the clients' inboxes read.

use super::faults::{Forger, Spammer};
use super::{baselines, delivery, say, Kind, Sim, Tracker};
use crate::exit::Failure;
use crate::state::settings::Settings;
use delivery::Delivery;
use std::collections::{HashMap, HashSet};

pub(super) struct QueryState {
    pub(super) router: usize,
    pub(super) label: usize,
    pub(super) body: Vec<u8>,
    pub(super) due: u64,
    pub(super) post_id: Option<i64>,
    /// Not posted: its client found its answer in its router's pool (`cmr-post --search`).
    pub(super) found_locally: bool,
    pub(super) success: Option<u32>,
    pub(super) inbox: Option<u32>,
    /// `--widen-after`: its client checked its replies and, unanswered, widened its post.
    pub(super) widen_checked: bool,
    /// What every router's matcher would answer it with when it was posted (the
    /// `flood_match` and `walk_match` baselines).
    pub(super) answers: baselines::Answers,
}

impl QueryState {
    /// Done with posting: posted, or found in its router's pool (`--search-first`).
    fn handled(&self) -> bool {
        self.post_id.is_some() || self.found_locally
    }
}

/// What each router's matcher answers `body` with, read before it is posted: the origin
/// shows `related_k` related messages (as `cmr-post` does), any other router sends its
/// `match_k` closest within `match_threshold` (as A3 sends the messages it matched).
pub(super) fn matcher_answers(
    net: &delivery::Net,
    s: &Settings,
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

/// The query phase: the queries, where their posts are, and the faults.
pub(super) struct QueryPhase {
    pub(super) queries: Vec<QueryState>,
    /// A post (router, cache id) -> its query.
    pub(super) by_post: HashMap<(usize, i64), usize>,
    /// The first query not yet posted.
    pub(super) next: usize,
    /// Router 0's settings (every router has the same): what the matchers answer.
    pub(super) settings: Settings,
    /// The round the last query is due; faults act until then.
    pub(super) last_due: u64,
    /// The round the run stops: `horizon` rounds after the last query.
    pub(super) end: u64,
    /// How many routers are down in each round.
    pub(super) n_down: usize,
    pub(super) spammer: Option<Spammer>,
    pub(super) forger: Option<Forger>,
}

impl Sim<'_> {
    /// The queries, due `query_rate` per round from now, and the faults of the run.
    pub(super) fn start_queries(&mut self) -> Result<QueryPhase, Failure> {
        let cfg = self.cfg;
        let queries: Vec<QueryState> = self
            .wl
            .queries
            .iter()
            .enumerate()
            .map(|(i, q)| QueryState {
                router: q.router,
                label: self.corpus.items[q.item].label,
                body: self.corpus.items[q.item].text.as_bytes().to_vec(),
                due: self.round + (i as f64 / cfg.query_rate).floor() as u64,
                post_id: None,
                found_locally: false,
                success: None,
                inbox: None,
                widen_checked: false,
                answers: Vec::new(),
            })
            .collect();
        let settings = Settings::load(self.net.routers[0].state.conn())?;
        if let Some(d) = self.diag.as_mut() {
            d.start(&queries);
            d.addresses(&queries, |r| self.net.routers[r].addr.clone());
        }
        let spammer = self.spammer();
        let forger = self.forger();
        let last_due = queries.last().map(|q| q.due).unwrap_or(self.round);
        Ok(QueryPhase {
            queries,
            by_post: HashMap::new(),
            next: 0,
            settings,
            last_due,
            end: last_due + cfg.horizon as u64 + 1,
            n_down: (cfg.churn * cfg.routers as f64).round() as usize,
            spammer,
            forger,
        })
    }

    /// Phase 2: rounds until `horizon` rounds after the last query is due.
    pub(super) fn run_queries(&mut self, p: &mut QueryPhase) -> Result<(), Failure> {
        while self.round < p.end {
            self.query_round(p)?;
        }
        say(
            self.cfg,
            &format!("cmr-sim: queries done after {} rounds", self.round),
        );
        Ok(())
    }

    /// One round of the query phase: churn, the due queries, the spammer and the forger,
    /// the delivery, then the inboxes.
    fn query_round(&mut self, p: &mut QueryPhase) -> Result<(), Failure> {
        self.clock(self.round as f64);
        let down = self.churn(p.n_down);
        self.post_due(p, &down)?;
        self.widen_unanswered(p, &down)?;
        if let Some(s) = p.spammer.as_mut() {
            self.spam(s, p.last_due, &down)?;
        }
        let extra = match p.forger.as_mut() {
            Some(f) => self.forge(f, p.last_due, &down)?,
            None => Vec::new(),
        };
        let batch = self.step(&down, extra)?;
        if let Some(d) = self.diag.as_mut() {
            d.batch(&batch, &self.tracker, &p.queries, self.round);
        }
        self.count_traffic(&batch);
        self.read_inboxes(p, &down)
    }

    /// The routers down in this round: `n_down` of them, at random.
    fn churn(&mut self, n_down: usize) -> HashSet<usize> {
        if n_down > 0 {
            rand::seq::index::sample(&mut self.rng, self.cfg.routers, n_down)
                .into_iter()
                .collect()
        } else {
            HashSet::new()
        }
    }

    /// Queries due (a client whose router is down waits for it; its rounds count).
    fn post_due(&mut self, p: &mut QueryPhase, down: &HashSet<usize>) -> Result<(), Failure> {
        for (i, q) in p.queries.iter_mut().enumerate().skip(p.next) {
            if q.due > self.round {
                break;
            }
            if q.handled() || down.contains(&q.router) {
                continue;
            }
            q.answers = matcher_answers(
                &self.net,
                &p.settings,
                &self.tracker,
                q.router,
                &q.body,
                q.label,
            )?;
            // The origin's entry is what `cmr-post --search` shows (`related_k` messages).
            if self.cfg.search_first && q.answers[q.router].0 {
                q.found_locally = true;
                q.success = Some((self.round - q.due) as u32);
                continue;
            }
            let posted = self.net.post(q.router, &q.body)?;
            if let (Some(diag), Some(d)) = (self.diag.as_mut(), posted.decision.as_ref()) {
                diag.sent(self.net.routers[q.router].state.conn(), q.router, d);
            }
            q.post_id = posted.cache_id;
            if let Some(id) = posted.cache_id {
                p.by_post.insert((q.router, id), i);
            }
            let hit = posted.related.iter().any(|r| {
                r.body.as_bytes() != q.body.as_slice()
                    && self.tracker.kind(r.body.as_bytes()) == Some(Kind::Label(q.label))
            });
            if hit {
                q.success = Some((self.round - q.due) as u32);
            }
        }
        while p.next < p.queries.len() && p.queries[p.next].handled() {
            p.next += 1;
        }
        Ok(())
    }

    /// `--widen-after N`: the clients of the queries due N rounds ago that hold no message
    /// of their label yet (the requester's check, as the walkers' baseline has it) widen
    /// their posts; a client whose router is down then waits for it to come back.
    fn widen_unanswered(
        &mut self,
        p: &mut QueryPhase,
        down: &HashSet<usize>,
    ) -> Result<(), Failure> {
        let n = self.cfg.widen_after as u64;
        if n == 0 {
            return Ok(());
        }
        for q in p.queries.iter_mut() {
            let Some(post) = q.post_id else { continue };
            if q.widen_checked
                || q.success.is_some()
                || self.round < q.due + n
                || down.contains(&q.router)
            {
                continue;
            }
            q.widen_checked = true;
            let w = self.net.widen(q.router, post)?;
            if let Some(diag) = self.diag.as_mut() {
                diag.sent(
                    self.net.routers[q.router].state.conn(),
                    q.router,
                    &w.decision,
                );
            }
            self.counts.widened += usize::from(w.widened);
        }
        Ok(())
    }

    /// Count a query-phase round's deliveries: spam, or query traffic and load (forgeries
    /// are neither).
    fn count_traffic(&mut self, batch: &[Delivery]) {
        for d in batch {
            match self.tracker.kind_of_wire(&d.bytes) {
                Some(Kind::Spam) => self.counts.spam_msgs += 1,
                Some(Kind::Forged) => {}
                _ => {
                    self.counts.query_msgs += 1;
                    self.counts.load[d.to] += 1.0;
                }
            }
        }
    }

    /// Inboxes of the routers with queries still open (cmr-post --replies).
    fn read_inboxes(&mut self, p: &mut QueryPhase, down: &HashSet<usize>) -> Result<(), Failure> {
        let open: HashSet<usize> = p
            .queries
            .iter()
            .filter(|q| q.post_id.is_some())
            .filter(|q| self.round - q.due <= self.cfg.horizon as u64 + 1)
            .map(|q| q.router)
            .collect();
        for r in open {
            if down.contains(&r) {
                continue;
            }
            for rep in self.net.replies(r)? {
                let Some(&i) = p.by_post.get(&(r, rep.post_cache_id)) else {
                    continue;
                };
                let q = &mut p.queries[i];
                let body = rep.message.body.as_bytes();
                let label = self.tracker.kind(body) == Some(Kind::Label(q.label));
                if self.round - q.due <= self.cfg.horizon as u64 + 1 {
                    self.counts.replies += 1;
                    self.counts.replies_label += u64::from(label);
                }
                if body != q.body.as_slice() && label {
                    // Delivered in the round just run (round - 1), counted from the due round.
                    let h = (self.round - q.due) as u32;
                    q.inbox.get_or_insert(h);
                    if q.success.is_none_or(|s| s > h) {
                        q.success = Some(h);
                    }
                }
            }
        }
        Ok(())
    }
}
