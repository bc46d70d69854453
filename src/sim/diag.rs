//! Diagnostics (CMR_SIM_DIAG=1), on stderr after the query phase: match scores of same- and
//! other-label pairs, best peer scores, the best match of spam and of corpus messages, and
//! where the queries that failed within 8 rounds were lost. Under it the report also
//! counts relay refusals by kind of source and forwards of spam by rule.

use super::delivery::Delivery;
use super::workload::Expert;
use super::{Kind, QueryState, Tracker};
use crate::route::{Decision, RefusedForward};
use std::collections::{HashMap, HashSet};

/// What the diagnostics collect over a run.
#[derive(Default)]
pub(super) struct Diag {
    /// The score of each match of an accepted corpus message, and whether the two share
    /// their label.
    scores: Vec<(f64, bool)>,
    /// The best peer score of each accepted message.
    peer: Vec<f64>,
    /// The best match of each accepted spam message, and of each accepted corpus message.
    best_spam: Vec<f64>,
    best_label: Vec<f64>,
    /// The best match of each accepted spam message among messages that are not spam.
    spam_honest: Vec<f64>,
    /// A query's body -> the query.
    query_of: HashMap<Vec<u8>, usize>,
    /// Per query: the routers its own body was delivered to.
    reach: Vec<Vec<usize>>,
    /// Per query: messages of its label delivered to its router within 9 rounds of its
    /// due round.
    arrived: Vec<usize>,
    /// Per query: its router's address, its label, and what happened to it on its way.
    trace: Vec<Trace>,
    /// The round being delivered.
    pub(super) round: u64,
    /// Deliveries of the query phase that were duplicates where they arrived.
    pub(super) duplicates: u64,
    /// (sender, destination, body) -> why the sender queued it (query phase).
    why_sent: HashMap<(usize, String, Vec<u8>), String>,
    /// Duplicates by why they were sent.
    dup_by: std::collections::BTreeMap<String, u64>,
    /// Query-phase forwards by rule, by whether the message routed was a query, and by
    /// its header lines.
    sent_by: std::collections::BTreeMap<String, u64>,
}

/// What happened to one query at the routers it reached.
#[derive(Default, Clone)]
struct Trace {
    router: String,
    index: usize,
    due: u64,
    label: usize,
    /// Routers (other than its own) that accepted it.
    accepted: usize,
    /// Of those, the ones that matched it to a message of its label.
    found: usize,
    /// Messages of its label queued back to its router, or to another address of its path.
    y_origin: usize,
    y_path: usize,
    /// Messages of its label whose send the relay policy refused.
    y_refused: usize,
    /// Messages of its label accepted at its own router (after it was posted).
    accepted_home: usize,
    /// Routers that matched it to its label and sent no message of its label to its
    /// router: the origin was in every such message's header; the forward cap was reached.
    skip_header: usize,
    skip_hops: usize,
    skip_refused: usize,
    skip_cap: usize,
    /// The router had sent that message to the query's router before (outbox dedupe).
    skip_seen: usize,
    skip_other: usize,
    /// Routers that took it for an answer to a message they had passed on.
    taken_for_answer: usize,
    /// Messages of its label that reached its router (after it was posted) and were
    /// refused there as duplicates: the router held them already.
    dup_home: usize,
}

impl Trace {
    /// A router matched the query to its label (`found`: those cache rows) and sent none of
    /// them to its router: count the first cause that applies (the origin already in every
    /// such message's header, a refusal, the cap, the message sent to the origin before,
    /// then the hop limit, which only narrows what may be sent).
    fn note_skip(&mut self, conn: &rusqlite::Connection, d: &Decision, found: &[i64]) {
        let msgs: Vec<crate::wire::Message> = found
            .iter()
            .filter_map(|&y| crate::state::cache::get(conn, y).ok().flatten())
            .filter_map(|r| r.message().ok())
            .collect();
        let in_header = msgs.len() == found.len()
            && msgs
                .iter()
                .all(|m| m.ids().any(|i| i.address_str() == self.router.as_str()));
        let refused = d
            .refused
            .iter()
            .any(|r| r.what == "y" && found.contains(&r.cache_id));
        // Queued or sent to the origin before (the outbox's never-twice rule).
        let seen = msgs.iter().any(|m| {
            crate::state::outbox::seen(conn, &self.router, &m.origin().key()).unwrap_or(false)
        });
        if in_header {
            self.skip_header += 1;
        } else if refused {
            self.skip_refused += 1;
        } else if d.notes.iter().any(|n| n.contains("max_forwards")) {
            self.skip_cap += 1;
        } else if seen {
            self.skip_seen += 1;
        } else if d.notes.iter().any(|n| n.contains("max_hops")) {
            self.skip_hops += 1;
        } else {
            self.skip_other += 1;
        }
    }

    /// The counts summed over the failed queries, in the order `print_lost` prints them.
    fn counts(&self) -> [usize; 13] {
        [
            self.accepted,
            self.found,
            self.y_origin,
            self.y_path,
            self.y_refused,
            self.accepted_home,
            usize::from(self.found > 0 && self.y_origin == 0),
            self.skip_header,
            self.skip_hops,
            self.skip_refused,
            self.skip_cap,
            self.skip_other,
            self.skip_seen,
        ]
    }

    /// Where a failed query was lost: never matched to its label; answered to its router
    /// and still not shown; or, matched, the first cause of the answer not sent.
    fn lost_at(&self) -> &'static str {
        if self.found == 0 {
            "never matched to its label"
        } else if self.y_origin > 0 {
            "answered to its router"
        } else if self.skip_refused > 0 {
            "answer refused"
        } else if self.skip_seen > 0 {
            "answer sent to its router before"
        } else if self.skip_cap > 0 {
            "max_forwards"
        } else if self.y_path > 0 {
            "answered to the path only"
        } else {
            "other"
        }
    }
}

/// The key of a relay refusal under CMR_SIM_DIAG: its code, the kind of source the
/// contact budget counted, and what was refused.
pub(super) fn refusal_key(r: &RefusedForward) -> String {
    let src = if r.reason.contains("source unverified") {
        "unverified"
    } else if r.reason.contains("source local") {
        "local"
    } else if r.code == "contact-budget-source" {
        "peer"
    } else {
        ""
    };
    format!("{} {src} {}", r.code, r.what)
}

/// p10, p25, p50, p75 and p90 of `v`, and its size; "none" when empty.
fn quantiles(v: &[f64]) -> String {
    let mut v = v.to_vec();
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
}

impl Diag {
    /// The scores of a message a router (state file `conn`) accepted.
    pub(super) fn decision(
        &mut self,
        conn: &rusqlite::Connection,
        tracker: &Tracker,
        d: &Decision,
    ) {
        let kx = d.cache_id.and_then(|id| tracker.kind_cached(conn, id));
        if kx == Some(Kind::Spam) {
            let honest = d
                .matched
                .iter()
                .filter(|m| tracker.kind_cached(conn, m.cache_id) != Some(Kind::Spam))
                .map(|m| m.score)
                .fold(f64::INFINITY, f64::min);
            self.spam_honest.push(honest);
        }
        if let Some(m) = d.matched.first() {
            match kx {
                Some(Kind::Spam) => self.best_spam.push(m.score),
                Some(Kind::Label(_)) => self.best_label.push(m.score),
                _ => {}
            }
        }
        for m in &d.matched {
            let ky = tracker.kind_cached(conn, m.cache_id);
            if let (Some(Kind::Label(a)), Some(Kind::Label(b))) = (kx, ky) {
                self.scores.push((m.score, a == b));
            }
        }
        if let Some(b) = d.scores.first() {
            self.peer.push(b.score);
        }
    }

    /// The query phase starts with `qs`.
    pub(super) fn start(&mut self, qs: &[QueryState]) {
        self.query_of = qs
            .iter()
            .enumerate()
            .map(|(i, q)| (q.body.clone(), i))
            .collect();
        self.reach = vec![Vec::new(); qs.len()];
        self.arrived = vec![0; qs.len()];
    }

    /// Where each query's router is (its address), for [`Diag::trace`].
    pub(super) fn addresses(&mut self, qs: &[QueryState], addr: impl Fn(usize) -> String) {
        self.trace = qs
            .iter()
            .map(|q| Trace {
                router: addr(q.router),
                index: q.router,
                due: q.due,
                label: q.label,
                ..Trace::default()
            })
            .collect();
    }

    /// Remember why router `from` queued each forward of its decision `d` (a query's post
    /// at its router, or a message it accepted in the query phase), and count them.
    pub(super) fn sent(&mut self, conn: &rusqlite::Connection, from: usize, d: &Decision) {
        let routed = d
            .cache_id
            .and_then(|id| crate::state::cache::get(conn, id).ok().flatten());
        let what = match routed {
            Some(r) if self.query_of.contains_key(r.body()) => "a query",
            _ => "another message",
        };
        let lines = match d.header_lines {
            _ if d.outcome == crate::route::Outcome::Posted => "at its router".to_string(),
            n @ 0..=2 => format!("{n} header line(s)"),
            _ => "3+ header lines".to_string(),
        };
        for f in &d.forwards {
            let why = f.why.split([':', ';']).next().unwrap_or("");
            *self
                .sent_by
                .entry(format!("{what}, {lines}: {} {why}", f.what))
                .or_default() += 1;
        }
        for f in &d.forwards {
            if let Some(row) = crate::state::cache::get(conn, f.cache_id).ok().flatten() {
                let why = f.why.split([':', ';']).next().unwrap_or("").to_string();
                self.why_sent.insert(
                    (from, f.dest.clone(), row.body().to_vec()),
                    format!("{} {why}", f.what),
                );
            }
        }
    }

    /// Count the duplicates of a round by why they were sent. `decisions` are in the order
    /// of the deliveries by destination (one message per delivery).
    pub(super) fn duplicates_of(
        &mut self,
        batch: &[Delivery],
        decisions: &[(usize, Decision)],
        addr: impl Fn(usize) -> String,
    ) {
        if self.trace.is_empty() {
            return;
        }
        let mut order: Vec<&Delivery> = batch.iter().collect();
        order.sort_by_key(|d| d.to);
        for (dl, (to, dec)) in order.iter().zip(decisions) {
            debug_assert_eq!(dl.to, *to);
            if dec.outcome != crate::route::Outcome::Duplicate {
                continue;
            }
            let Ok(m) = crate::wire::parse(&dl.bytes, &crate::wire::Rules::unchecked_time()) else {
                continue;
            };
            let why = self
                .why_sent
                .get(&(dl.from, addr(dl.to), m.body().to_vec()))
                .cloned()
                .unwrap_or_else(|| "a client's post".into());
            *self.dup_by.entry(why).or_default() += 1;
        }
    }

    pub(super) fn trace_empty(&self) -> bool {
        self.trace.is_empty()
    }

    /// Follow the queries through router `to`'s decision on a message it accepted.
    pub(super) fn trace(
        &mut self,
        conn: &rusqlite::Connection,
        tracker: &Tracker,
        to: usize,
        d: &Decision,
    ) {
        let Some(id) = d.cache_id else { return };
        let Some(row) = crate::state::cache::get(conn, id).ok().flatten() else {
            return;
        };
        if let Some(&i) = self.query_of.get(row.body()) {
            let t = &mut self.trace[i];
            if t.index == to {
                return;
            }
            t.accepted += 1;
            if d.notes
                .iter()
                .any(|n| n.contains("an answer on its way back"))
            {
                t.taken_for_answer += 1;
            }
            let lab = Some(Kind::Label(t.label));
            let found: Vec<i64> = d
                .matched
                .iter()
                .filter(|m| tracker.kind_cached(conn, m.cache_id) == lab)
                .map(|m| m.cache_id)
                .collect();
            if !found.is_empty() {
                t.found += 1;
                let to_origin = d
                    .forwards
                    .iter()
                    .any(|f| f.what == "y" && f.dest == t.router && found.contains(&f.cache_id));
                if !to_origin {
                    t.note_skip(conn, d, &found);
                }
            }
            for f in d.forwards.iter().filter(|f| f.what == "y") {
                if tracker.kind_cached(conn, f.cache_id) == lab {
                    if f.dest == t.router {
                        t.y_origin += 1;
                    } else {
                        t.y_path += 1;
                    }
                }
            }
            for r in d.refused.iter().filter(|r| r.what == "y") {
                if tracker.kind_cached(conn, r.cache_id) == lab {
                    t.y_refused += 1;
                }
            }
        }
        if let Some(Kind::Label(l)) = tracker.kind(row.body()) {
            let round = self.round;
            for t in self.trace.iter_mut() {
                if t.index == to && t.label == l && t.due <= round && round <= t.due + 9 {
                    t.accepted_home += 1;
                }
            }
        }
    }

    /// Where a round's deliveries went: a query's own body, messages of a query's label
    /// to its router. `round` is the round after it.
    pub(super) fn batch(
        &mut self,
        batch: &[Delivery],
        tracker: &Tracker,
        qs: &[QueryState],
        round: u64,
    ) {
        for d in batch {
            let Ok(m) = crate::wire::parse(&d.bytes, &crate::wire::Rules::unchecked_time()) else {
                continue;
            };
            if let Some(&i) = self.query_of.get(m.body()) {
                self.reach[i].push(d.to);
            }
            if let Some(Kind::Label(l)) = tracker.kind(m.body()) {
                for (i, q) in qs.iter().enumerate() {
                    if q.post_id.is_some() && q.router == d.to && q.label == l && round <= q.due + 9
                    {
                        self.arrived[i] += 1;
                    }
                }
            }
        }
    }

    /// A delivery to router `to` refused as a duplicate: count it for the queries of its
    /// label posted there that are still open.
    pub(super) fn duplicate(
        &mut self,
        conn: &rusqlite::Connection,
        tracker: &Tracker,
        to: usize,
        d: &Decision,
    ) {
        let Some(id) = d.duplicate_of else { return };
        let Some(Kind::Label(l)) = tracker.kind_cached(conn, id) else {
            return;
        };
        let round = self.round;
        for t in self.trace.iter_mut() {
            if t.index == to && t.label == l && t.due <= round && round <= t.due + 9 {
                t.dup_home += 1;
            }
        }
    }

    /// Print the diagnostics on stderr.
    pub(super) fn print(
        &self,
        qs: &[QueryState],
        experts: &[Expert],
        labels: usize,
        adj: &[Vec<usize>],
    ) {
        self.print_lost(qs, experts, labels);
        self.print_hits(qs, adj);
        let same: Vec<f64> = self.scores.iter().filter(|x| x.1).map(|x| x.0).collect();
        let other: Vec<f64> = self.scores.iter().filter(|x| !x.1).map(|x| x.0).collect();
        let lines = [
            ("match scores same label", &same),
            ("match scores other label", &other),
            ("best peer score", &self.peer),
            ("best match of spam", &self.best_spam),
            ("best match of spam among others", &self.spam_honest),
            ("best match of corpus messages", &self.best_label),
        ];
        for (what, v) in lines {
            crate::log::info(&format!("diag: {what} p10..p90 {}", quantiles(v)));
        }
    }

    /// Where the routers whose own matcher would answer a query with its label sit: one and
    /// two hops from its router, and among the routers its body reached; for the queries
    /// that succeeded within 4 rounds and those that did not.
    fn print_hits(&self, qs: &[QueryState], adj: &[Vec<usize>]) {
        // [queries, with a hit 1 hop away, 2 hops away, reached, hits 1 hop, hits 2 hops]
        let mut sums = [[0usize; 6]; 2];
        for (i, q) in qs.iter().enumerate() {
            let hit = |r: usize| q.answers.get(r).is_some_and(|a| a.0);
            let one: HashSet<usize> = adj[q.router].iter().copied().collect();
            let mut two: HashSet<usize> = HashSet::new();
            for &n in &one {
                for &m in &adj[n] {
                    if m != q.router && !one.contains(&m) {
                        two.insert(m);
                    }
                }
            }
            let h1 = one.iter().filter(|&&r| hit(r)).count();
            let h2 = two.iter().filter(|&&r| hit(r)).count();
            let reached = self.reach[i].iter().any(|&r| r != q.router && hit(r));
            let s = &mut sums[usize::from(q.success.is_some_and(|h| h <= 4))];
            for (k, v) in [
                1,
                usize::from(h1 > 0),
                usize::from(h2 > 0),
                usize::from(reached),
                h1,
                h2,
            ]
            .into_iter()
            .enumerate()
            {
                s[k] += v;
            }
        }
        for (what, s) in [
            ("failed within 4", sums[0]),
            ("succeeded within 4", sums[1]),
        ] {
            crate::log::info(&format!(
                "diag: queries {what}: {}; with a matcher hit 1 hop away {}, 2 hops away {}, \
                 among the routers reached {}; hits 1 hop away {:.2} per query, 2 hops {:.2}",
                s[0],
                s[1],
                s[2],
                s[3],
                s[4] as f64 / s[0].max(1) as f64,
                s[5] as f64 / s[0].max(1) as f64
            ));
        }
    }

    /// The failed queries whose router refused a message of their label as a duplicate.
    fn print_duplicates(&self, qs: &[QueryState]) {
        let failed_dup: Vec<usize> = qs
            .iter()
            .zip(&self.trace)
            .filter(|(q, _)| q.success.is_none_or(|h| h >= 8))
            .map(|(_, t)| t.dup_home)
            .collect();
        crate::log::info(&format!(
            "diag: failed queries whose router refused a message of their label as a duplicate: {} ({} such refusals)",
            failed_dup.iter().filter(|&&n| n > 0).count(),
            failed_dup.iter().sum::<usize>()
        ));
    }

    /// Where the queries that failed within 8 rounds were lost.
    fn print_lost(&self, qs: &[QueryState], experts: &[Expert], labels: usize) {
        let mut holder: Vec<HashSet<usize>> = vec![HashSet::new(); labels];
        for e in experts {
            holder[e.label].insert(e.router);
        }
        let (mut failed, mut reached, mut arrived, mut at_holder) = (0, 0, 0, 0);
        for (i, q) in qs.iter().enumerate() {
            if q.success.is_some_and(|h| h < 8) {
                continue;
            }
            failed += 1;
            at_holder += usize::from(holder[q.label].contains(&q.router));
            reached += usize::from(self.reach[i].iter().any(|r| holder[q.label].contains(r)));
            arrived += usize::from(self.arrived[i] > 0);
        }
        let mut sums = [0usize; 13];
        // Per failed query, where it was lost (Trace::lost_at).
        let mut lost: std::collections::BTreeMap<&str, usize> = Default::default();
        for (i, q) in qs.iter().enumerate() {
            if q.success.is_some_and(|h| h < 8) {
                continue;
            }
            let t = &self.trace[i];
            for (k, v) in t.counts().into_iter().enumerate() {
                sums[k] += v;
            }
            let why = t.lost_at();
            *lost.entry(why).or_default() += 1;
        }
        crate::log::info(&format!(
            "diag: failed queries by where they were lost: {lost:?}"
        ));
        self.print_duplicates(qs);
        let taken: Vec<usize> = self.trace.iter().map(|t| t.taken_for_answer).collect();
        crate::log::info(&format!(
            "diag: routers that took a query for an answer: {} in all, {} of the failed queries'",
            taken.iter().sum::<usize>(),
            qs.iter()
                .zip(&taken)
                .filter(|(q, _)| q.success.is_none_or(|h| h >= 8))
                .map(|(_, n)| n)
                .sum::<usize>()
        ));
        crate::log::info(&format!(
            "diag: failed queries, summed: accepted by {} routers, matched to their label at {}, \
             label answers queued to the origin {}, to the path {}, refused {}, label messages \
             accepted at the origin {}; queries found somewhere but not answered to the origin {}; of the routers that matched one to its label and sent it no message of its label: \
             the origin was in the header {}, the hop limit {}, the relay policy {}, max_forwards {}, \
             other {}, sent to the origin before {}",
            sums[0], sums[1], sums[2], sums[3], sums[4], sums[5], sums[6], sums[7], sums[8],
            sums[9], sums[10], sums[11], sums[12]
        ));
        crate::log::info(&format!(
            "diag: deliveries of the query phase that arrived as duplicates: {}, by why they were sent: {:?}",
            self.duplicates, self.dup_by
        ));
        let per_query: Vec<String> = self
            .sent_by
            .iter()
            .map(|(k, n)| format!("{k} {:.2}", *n as f64 / qs.len().max(1) as f64))
            .collect();
        crate::log::info(&format!(
            "diag: forwards of the query phase per query, by the message routed, its header lines and the rule: {}",
            per_query.join("; ")
        ));
        let reach: usize = self.reach.iter().map(Vec::len).sum();
        crate::log::info(&format!(
            "diag: {failed} queries failed within 8 rounds: {at_holder} posted at a holder of their label, \
             {reached} reached one, {arrived} had a message of their label delivered to their router \
             within 9 rounds; deliveries of a query's own body: {:.2} per query",
            reach as f64 / qs.len().max(1) as f64
        ));
    }
}
