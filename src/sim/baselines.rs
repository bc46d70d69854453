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
//!
//! `flood_match` and `walk_match` are the same searches with the recognition of a Gnutella
//! servent: a router reached answers with what its own matcher finds in its own cache (the
//! router's `match_k` closest cached messages within `match_threshold`; at the origin, the
//! `related_k` that `cmr-post` shows), one message each, read at the moment the query is
//! posted. A query succeeds when one of those answers has its label. They separate what
//! the route finds from what recognition finds: `flood` and `walk` are credited with a
//! recognition no matcher has.

use super::topology::Graph;
use rand::Rng;
use serde::Serialize;

/// One strategy's results.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Result {
    pub success_by_round: Vec<f64>,
    pub messages_per_query: f64,
    /// Each query's outcome: the round of its first answer (None: none within the horizon).
    #[serde(skip)]
    pub rounds: Vec<Option<u32>>,
}

/// The round of each query's first answer (None: none within the horizon) and its messages.
fn summarise(rounds: &[Option<u32>], messages: u64, horizon: usize) -> Result {
    Result {
        success_by_round: super::metrics::success_by_round(rounds, horizon),
        messages_per_query: messages as f64 / rounds.len().max(1) as f64,
        rounds: rounds.to_vec(),
    }
}

/// `holds[r]`: does router r hold the query's label? One call per query.
pub fn flood(
    g: &Graph,
    origin: usize,
    holds: &dyn Fn(usize) -> bool,
    ttl: u32,
) -> (Option<u32>, u64) {
    flood_answers(g, origin, holds, &|v| holds(v) as u64, ttl)
}

/// [`flood`] where a router reached sends `answers(v)` messages (when it holds the label,
/// or, with recognition, whatever it found).
fn flood_answers(
    g: &Graph,
    origin: usize,
    holds: &dyn Fn(usize) -> bool,
    answers: &dyn Fn(usize) -> u64,
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
        if d > 0 {
            if holds(v) {
                best = Some(best.map_or(d + 1, |b| b.min(d + 1)));
            }
            msgs += answers(v);
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
    walk_answers(g, origin, holds, None, walkers, ttl, rng)
}

/// [`walk`]; with `answers`, every router a walker reaches sends `answers(v)` messages
/// (what its matcher found), and the search stops when one of them has the label.
fn walk_answers(
    g: &Graph,
    origin: usize,
    holds: &dyn Fn(usize) -> bool,
    answers: Option<&dyn Fn(usize) -> u64>,
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
            msgs += 1 + answers.map_or(0, |a| a(next));
            hit |= holds(next);
        }
        if hit {
            return (Some(step + 1), msgs + answers.map_or(1, |_| 0));
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

/// What each router's matcher answers one query with: (an answer has the query's label,
/// how many answers). Index: router.
pub type Answers = Vec<(bool, u32)>;

/// Run the strategies for every query (origin router, label); with `answers` (one per
/// query), also `flood_match` and `walk_match`.
#[allow(clippy::too_many_arguments)]
pub fn run_all(
    g: &Graph,
    queries: &[(usize, usize)],
    holders: &[Vec<bool>],
    answers: Option<&[Answers]>,
    horizon: usize,
    flood_ttl: u32,
    walkers: usize,
    walk_ttl: u32,
    rng: &mut impl Rng,
) -> Vec<(&'static str, Result)> {
    let mut out = perfect(
        g, queries, holders, horizon, flood_ttl, walkers, walk_ttl, rng,
    );
    if let Some(ans) = answers {
        let (mut f, mut w) = (Vec::new(), Vec::new());
        let (mut fm, mut wm) = (0, 0);
        for (&(origin, _), a) in queries.iter().zip(ans) {
            let holds = |v: usize| a.get(v).is_some_and(|x| x.0);
            let sends = |v: usize| a.get(v).map_or(0, |x| x.1 as u64);
            let (r, m) = flood_answers(g, origin, &holds, &sends, flood_ttl);
            f.push(r);
            fm += m;
            let (r, m) = walk_answers(g, origin, &holds, Some(&sends), walkers, walk_ttl, rng);
            w.push(r);
            wm += m;
        }
        out.push(("flood_match", summarise(&f, fm, horizon)));
        out.push(("walk_match", summarise(&w, wm, horizon)));
    }
    out
}

/// The strategies credited with perfect recognition (a holder always answers right).
#[allow(clippy::too_many_arguments)]
fn perfect(
    g: &Graph,
    queries: &[(usize, usize)],
    holders: &[Vec<bool>],
    horizon: usize,
    flood_ttl: u32,
    walkers: usize,
    walk_ttl: u32,
    rng: &mut impl Rng,
) -> Vec<(&'static str, Result)> {
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
    vec![
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
