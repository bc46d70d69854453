//! Baselines: search strategies of the simulator (never of the router), on the same graph
//! and workload as cmr. A router "holds" a label when an expert of that label sits there;
//! the baselines cache nothing, so what they find is what the experts posted.
//!
//! Every strategy answers the querying client directly (one message, as a cmr router
//! answers the address in the header), so a holder reached at hop d answers within d + 1
//! rounds; a query posted at a holder succeeds in round 0 with no message.
//!
//! - `flood`: Gnutella-style flooding with a TTL. The origin sends the query to every
//!   neighbour; a router that gets it for the first time at hop d < TTL sends it to every
//!   neighbour but the one it came from (copies that arrive twice are dropped, but they were
//!   sent and count). Every holder it reaches answers once. Messages = copies sent +
//!   answers.
//! - `walk`: k random walkers (Lv et al. 2002). Each walker steps to a random neighbour
//!   (not straight back when it can help it) once per round; when one reaches a holder, it
//!   answers and every walker stops at the end of that round (the requester's "checking",
//!   as if it were free). At most TTL steps. Messages = steps taken + 1 answer.
//! - `oracle`: knows where the experts sit and sends the query along a shortest path to the
//!   nearest holder: d hops and one answer. The floor on hops.

use super::topology::Graph;
use rand::Rng;
use serde::Serialize;

/// One strategy's results.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Result {
    pub success_by_round: Vec<f64>,
    pub messages_per_query: f64,
}

/// The round of each query's first answer (None: none within the horizon) and its messages.
fn summarise(rounds: &[Option<u32>], messages: u64, horizon: usize) -> Result {
    let n = rounds.len().max(1) as f64;
    Result {
        success_by_round: (1..=horizon)
            .map(|h| {
                rounds
                    .iter()
                    .filter(|r| r.is_some_and(|r| r as usize <= h))
                    .count() as f64
                    / n
            })
            .collect(),
        messages_per_query: messages as f64 / n,
    }
}

/// `holds[r]`: does router r hold the query's label? One call per query.
pub fn flood(
    g: &Graph,
    origin: usize,
    holds: &dyn Fn(usize) -> bool,
    ttl: u32,
) -> (Option<u32>, u64) {
    if holds(origin) {
        return (Some(0), 0);
    }
    let dist = g.bfs(origin);
    let mut msgs = 0u64;
    let mut best: Option<u32> = None;
    for (v, &d) in dist.iter().enumerate() {
        if d == u32::MAX || d > ttl {
            continue;
        }
        if d < ttl {
            msgs += if v == origin {
                g.adj[v].len()
            } else {
                g.adj[v].len().saturating_sub(1)
            } as u64;
        }
        if d > 0 && holds(v) {
            msgs += 1;
            best = Some(best.map_or(d + 1, |b| b.min(d + 1)));
        }
    }
    (best, msgs)
}

pub fn walk(
    g: &Graph,
    origin: usize,
    holds: &dyn Fn(usize) -> bool,
    walkers: usize,
    ttl: u32,
    rng: &mut impl Rng,
) -> (Option<u32>, u64) {
    if holds(origin) {
        return (Some(0), 0);
    }
    let mut at: Vec<(usize, usize)> = vec![(origin, usize::MAX); walkers];
    let mut msgs = 0u64;
    for step in 1..=ttl {
        let mut hit = false;
        for w in at.iter_mut() {
            let ns = &g.adj[w.0];
            if ns.is_empty() {
                continue;
            }
            // Not straight back, unless that is the only way.
            let back = ns.iter().filter(|&&x| x == w.1).count();
            let next = if back == 0 || back == ns.len() {
                ns[rng.gen_range(0..ns.len())]
            } else {
                let mut k = rng.gen_range(0..ns.len() - back);
                let mut pick = ns[0];
                for &x in ns.iter().filter(|&&x| x != w.1) {
                    if k == 0 {
                        pick = x;
                        break;
                    }
                    k -= 1;
                }
                pick
            };
            *w = (next, w.0);
            msgs += 1;
            hit |= holds(next);
        }
        if hit {
            return (Some(step + 1), msgs + 1);
        }
    }
    (None, msgs)
}

pub fn oracle(g: &Graph, origin: usize, holds: &dyn Fn(usize) -> bool) -> (Option<u32>, u64) {
    if holds(origin) {
        return (Some(0), 0);
    }
    let dist = g.bfs(origin);
    match (0..g.len())
        .filter(|&v| holds(v) && dist[v] != u32::MAX)
        .map(|v| dist[v])
        .min()
    {
        Some(d) => (Some(d + 1), d as u64 + 1),
        None => (None, 0),
    }
}

/// Run the three strategies for every query (origin router, label).
pub fn run_all(
    g: &Graph,
    queries: &[(usize, usize)],
    holders: &[Vec<bool>],
    horizon: usize,
    flood_ttl: u32,
    walkers: usize,
    walk_ttl: u32,
    rng: &mut impl Rng,
) -> [(&'static str, Result); 3] {
    let (mut f, mut w, mut o) = (Vec::new(), Vec::new(), Vec::new());
    let (mut fm, mut wm, mut om) = (0, 0, 0);
    for &(origin, label) in queries {
        let holds = |v: usize| holders[label][v];
        let (r, m) = flood(g, origin, &holds, flood_ttl);
        f.push(r);
        fm += m;
        let (r, m) = walk(g, origin, &holds, walkers, walk_ttl, rng);
        w.push(r);
        wm += m;
        let (r, m) = oracle(g, origin, &holds);
        o.push(r);
        om += m;
    }
    [
        ("flood", summarise(&f, fm, horizon)),
        ("walk", summarise(&w, wm, horizon)),
        ("oracle", summarise(&o, om, horizon)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn line(n: usize) -> Graph {
        let mut adj = vec![Vec::new(); n];
        for i in 0..n - 1 {
            adj[i].push(i + 1);
            adj[i + 1].push(i);
        }
        Graph { adj }
    }

    #[test]
    fn strategies_on_a_line() {
        // 0 - 1 - 2 - 3 - 4, the label at 3.
        let g = line(5);
        let holds = |v: usize| v == 3;
        // Flood TTL 3: 0 sends 1, 1 and 2 forward 1 each, 3 (hop 3) does not; 3 answers.
        assert_eq!(flood(&g, 0, &holds, 3), (Some(4), 4));
        assert_eq!(flood(&g, 0, &holds, 2), (None, 2));
        assert_eq!(oracle(&g, 0, &holds), (Some(4), 4));
        assert_eq!(oracle(&g, 3, &holds), (Some(0), 0));
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        // A single walker on a line that never steps back reaches 3 at step 3.
        assert_eq!(walk(&g, 0, &holds, 1, 8, &mut rng), (Some(4), 4));
    }
}
