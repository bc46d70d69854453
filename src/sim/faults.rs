//! The faults of a run (Section 4): a spammer, whose clients post junk at `--spam` times
//! the normal rate of a router's clients, and a forger, who sends messages claiming another
//! router's address straight to its neighbours at `--forger` times that rate; and how far
//! what they sent spread.

use super::delivery::{self, Delivery};
use super::{metrics, seeded, workload, Kind, Sim};
use crate::exit::Failure;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::HashSet;

/// A router whose clients post junk at `spam` times the normal rate.
pub(super) struct Spammer {
    pub(super) router: usize,
    /// Posts owed: the rate times the rounds, less what was posted.
    pub(super) credit: f64,
    pub(super) out: metrics::Spam,
}

/// A router sending messages that claim the address of `victim`, straight to its own
/// neighbours, at `forger` times the normal rate.
pub(super) struct Forger {
    pub(super) router: usize,
    pub(super) victim: usize,
    pub(super) credit: f64,
    /// Where the keys it makes up come from.
    pub(super) keys: StdRng,
    pub(super) out: metrics::Forger,
}

impl Sim<'_> {
    /// A router that is no expert's, at random.
    pub(super) fn pick_outsider(&mut self) -> usize {
        let expert_routers: HashSet<usize> = self.wl.experts.iter().map(|e| e.router).collect();
        let others: Vec<usize> = (0..self.cfg.routers)
            .filter(|r| !expert_routers.contains(r))
            .collect();
        others.choose(&mut self.rng).copied().unwrap_or(0)
    }

    pub(super) fn spammer(&mut self) -> Option<Spammer> {
        let router = (self.cfg.spam > 0.0).then(|| self.pick_outsider())?;
        Some(Spammer {
            router,
            credit: 0.0,
            out: metrics::Spam {
                router,
                rate_multiple: self.cfg.spam,
                ..Default::default()
            },
        })
    }

    pub(super) fn forger(&mut self) -> Option<Forger> {
        let f = (self.cfg.forger > 0.0).then(|| self.pick_outsider())?;
        // A router two hops away: some of the forger's neighbours hold its key, most do not.
        let dist = self.graph.bfs(f);
        let victim = (0..self.cfg.routers)
            .find(|&v| dist[v] == 2)
            .unwrap_or((f + 1) % self.cfg.routers);
        Some(Forger {
            router: f,
            victim,
            credit: 0.0,
            keys: seeded(self.cfg.seed, 5),
            out: metrics::Forger {
                router: f,
                claims: delivery::address(victim),
                ..Default::default()
            },
        })
    }

    /// The normal rate of one router's clients: queries per round over the routers.
    pub(super) fn normal_rate(&self) -> f64 {
        self.cfg.query_rate / self.cfg.routers as f64
    }

    /// The spammer's clients post what the rate owes them.
    pub(super) fn spam(
        &mut self,
        s: &mut Spammer,
        last_due: u64,
        down: &HashSet<usize>,
    ) -> Result<(), Failure> {
        if self.round > last_due || down.contains(&s.router) {
            return Ok(());
        }
        s.credit += self.cfg.spam * self.normal_rate();
        while s.credit >= 1.0 && (self.cfg.spam_limit == 0 || s.out.posted < self.cfg.spam_limit) {
            s.credit -= 1.0;
            let body = workload::junk(s.out.posted, &mut self.rng);
            self.tracker
                .kinds
                .insert(body.as_bytes().to_vec(), Kind::Spam);
            let posted = self.net.post(s.router, body.as_bytes())?;
            // A spammer wants reach: its clients widen every post (cmr-post --widen).
            let widened = match (posted.cache_id, self.cfg.widen_after) {
                (Some(id), 1..) => Some(self.net.widen(s.router, id)?),
                _ => None,
            };
            s.out.widened += widened.as_ref().map_or(0, |w| usize::from(w.widened));
            if let (Some(d), true) = (posted.decision, self.diag.is_some()) {
                let more = widened.map(|w| w.decision.forwards).unwrap_or_default();
                for f in d.forwards.iter().chain(&more) {
                    let why = f.why.split([':', ';']).next().unwrap_or("").to_string();
                    *self
                        .counts
                        .forwards_by
                        .entry(format!("spam at its router {} {why}", f.what))
                        .or_default() += 1;
                }
            }
            s.out.posted += 1;
        }
        Ok(())
    }

    /// The forger: messages claiming the victim's address, straight to its neighbours.
    pub(super) fn forge(
        &mut self,
        f: &mut Forger,
        last_due: u64,
        down: &HashSet<usize>,
    ) -> Result<Vec<Delivery>, Failure> {
        let mut extra = Vec::new();
        if self.round > last_due || down.contains(&f.router) {
            return Ok(extra);
        }
        f.credit += self.cfg.forger * self.normal_rate();
        while f.credit >= 1.0 {
            f.credit -= 1.0;
            let m = self.forgery(f)?;
            for &to in &self.graph.adj[f.router] {
                if to != f.victim && !down.contains(&to) {
                    extra.push(Delivery {
                        from: f.router,
                        to,
                        bytes: m.encode(),
                    });
                    f.out.sent += 1;
                }
            }
        }
        Ok(extra)
    }

    /// One forged message: from the victim's address, a body of junk.
    pub(super) fn forgery(&mut self, f: &mut Forger) -> Result<crate::wire::Message, Failure> {
        let sent = f.out.sent;
        let body = format!("FORGED {sent}: {}", workload::junk(sent, &mut self.rng));
        self.tracker
            .kinds
            .insert(body.as_bytes().to_vec(), Kind::Forged);
        let m = crate::wire::Message::compose(
            &[(
                crate::wire::Timestamp::now(),
                delivery::address(f.victim).as_bytes(),
            )],
            body.as_bytes(),
            &crate::wire::Rules::unchecked_time(),
        )
        .map_err(|e| Failure::software(format!("composing a forgery: {e}")))?;
        // Signed with a key the forger made up: it holds none of the victim's.
        let k = crate::sign::Key::new(f.keys.gen::<[u8; 32]>().to_vec());
        Ok(crate::sign::sign(m, crate::sign::Scheme::HmacSha256, &k))
    }

    /// How many routers other than `except` hold a message of `kind` in their cache.
    pub(super) fn routers_caching(&self, kind: Kind, except: usize) -> Result<usize, Failure> {
        let mut n = 0;
        for r in 0..self.cfg.routers {
            if r != except
                && self
                    .net
                    .cached_bodies(r)?
                    .iter()
                    .any(|b| self.tracker.kind(b) == Some(kind))
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The messages held as bulk posting, by kind.
    pub(super) fn held_as_bulk(&self) -> metrics::HeldAsBulk {
        let mut h = metrics::HeldAsBulk::default();
        for &(r, row) in &self.net.held_as_bulk {
            let conn = self.net.routers[r].state.conn();
            match self.tracker.kind_cached(conn, row) {
                Some(Kind::Spam) => h.spam += 1,
                Some(Kind::Forged) => h.forged += 1,
                _ => h.other += 1,
            }
        }
        h
    }

    pub(super) fn spam_spread(&self, s: &mut Spammer) -> Result<(), Failure> {
        let out = &mut s.out;
        out.messages = self.counts.spam_msgs;
        out.routers_cached = self.routers_caching(Kind::Spam, out.router)?;
        out.share_cached = out.routers_cached as f64 / self.cfg.routers as f64;
        Ok(())
    }

    /// How far the forgeries got, what rejected them, and what the victim's neighbours
    /// think of it now.
    pub(super) fn forgery_spread(&self, f: &mut Forger) -> Result<(), Failure> {
        let out = &mut f.out;
        out.routers_cached = self.routers_caching(Kind::Forged, f.router)?;
        out.rejected = self
            .counts
            .rejected
            .iter()
            .filter(|(k, _)| {
                matches!(
                    k.as_str(),
                    "signature" | "unknown-signer" | "unsigned-from-keyed-peer"
                )
            })
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        out.accepted = out.sent - out.rejected.values().sum::<usize>().min(out.sent);
        let va = delivery::address(f.victim);
        let mut reps = Vec::new();
        for &n in &self.graph.adj[f.victim] {
            if let Some(p) = crate::state::peers::get(self.net.routers[n].state.conn(), &va)? {
                reps.push(p.reputation);
            }
        }
        out.victim_reputation = reps.iter().sum::<f64>() / reps.len().max(1) as f64;
        Ok(())
    }
}
