//! The network's links: a seeded random graph of average degree d.
//!
//! - `regular`: a random d-regular graph (the pairing model, redrawn until it is simple and
//!   connected);
//! - `ws`: Watts-Strogatz, a ring where each router links to its d/2 nearest on each side,
//!   every link then rewired to a random router with probability `rewire`.

use crate::exit::Failure;
use rand::Rng;
use std::collections::{BTreeSet, VecDeque};

/// Which random graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Regular,
    WattsStrogatz,
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "regular" => Ok(Kind::Regular),
            "ws" | "watts-strogatz" => Ok(Kind::WattsStrogatz),
            _ => Err(format!("unknown topology '{s}' (expected regular or ws)")),
        }
    }
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Regular => "regular",
            Kind::WattsStrogatz => "ws",
        }
    }
}

/// An undirected graph on routers 0..n, neighbours sorted.
#[derive(Debug, Clone)]
pub struct Graph {
    pub adj: Vec<Vec<usize>>,
}

impl Graph {
    fn from_edges(n: usize, edges: &BTreeSet<(usize, usize)>) -> Graph {
        let mut adj = vec![Vec::new(); n];
        for &(a, b) in edges {
            adj[a].push(b);
            adj[b].push(a);
        }
        for v in &mut adj {
            v.sort_unstable();
        }
        Graph { adj }
    }

    pub fn len(&self) -> usize {
        self.adj.len()
    }

    pub fn is_empty(&self) -> bool {
        self.adj.is_empty()
    }

    /// Every link once, (a, b) with a < b.
    pub fn edges(&self) -> Vec<(usize, usize)> {
        let mut e = Vec::new();
        for (a, ns) in self.adj.iter().enumerate() {
            for &b in ns {
                if a < b {
                    e.push((a, b));
                }
            }
        }
        e
    }

    pub fn mean_degree(&self) -> f64 {
        if self.adj.is_empty() {
            return 0.0;
        }
        self.adj.iter().map(Vec::len).sum::<usize>() as f64 / self.adj.len() as f64
    }

    /// Hops from `src` to every router (`u32::MAX`: unreachable).
    pub fn bfs(&self, src: usize) -> Vec<u32> {
        let mut dist = vec![u32::MAX; self.adj.len()];
        let mut q = VecDeque::new();
        dist[src] = 0;
        q.push_back(src);
        while let Some(v) = q.pop_front() {
            for &w in &self.adj[v] {
                if dist[w] == u32::MAX {
                    dist[w] = dist[v] + 1;
                    q.push_back(w);
                }
            }
        }
        dist
    }

    pub fn connected(&self) -> bool {
        self.adj.is_empty() || self.bfs(0).iter().all(|&d| d != u32::MAX)
    }
}

/// A seeded random graph of `n` routers and degree `d`.
pub fn generate(
    kind: Kind,
    n: usize,
    d: usize,
    rewire: f64,
    rng: &mut impl Rng,
) -> Result<Graph, Failure> {
    if n < 3 {
        return Err(Failure::usage(format!("--routers {n}: at least 3 routers")));
    }
    if d < 2 || d >= n {
        return Err(Failure::usage(format!(
            "--degree {d}: must be at least 2 and below the number of routers ({n})"
        )));
    }
    match kind {
        Kind::Regular => {
            if n * d % 2 == 1 {
                return Err(Failure::usage(format!(
                    "--degree {d} with --routers {n}: a {d}-regular graph needs n*d even"
                )));
            }
            for _ in 0..1000 {
                if let Some(g) = pairing(n, d, rng) {
                    if g.connected() {
                        return Ok(g);
                    }
                }
            }
            Err(Failure::software(format!(
                "no simple connected {d}-regular graph on {n} routers after 1000 draws"
            )))
        }
        Kind::WattsStrogatz => {
            if d % 2 == 1 {
                return Err(Failure::usage(format!(
                    "--degree {d}: Watts-Strogatz needs an even degree"
                )));
            }
            if !(0.0..=1.0).contains(&rewire) {
                return Err(Failure::usage(format!(
                    "--rewire {rewire}: a probability, 0 to 1"
                )));
            }
            for _ in 0..1000 {
                let g = watts_strogatz(n, d, rewire, rng);
                if g.connected() {
                    return Ok(g);
                }
            }
            Err(Failure::software(
                "no connected Watts-Strogatz graph after 1000 draws",
            ))
        }
    }
}

/// The pairing model with the Steger-Wormald repair: stubs are paired at random, a pair
/// that would make a loop or a double link is drawn again; None when a draw gets stuck.
fn pairing(n: usize, d: usize, rng: &mut impl Rng) -> Option<Graph> {
    let mut stubs: Vec<usize> = (0..n).flat_map(|v| std::iter::repeat(v).take(d)).collect();
    let mut edges = BTreeSet::new();
    while !stubs.is_empty() {
        let mut done = false;
        for _ in 0..200 {
            let i = rng.gen_range(0..stubs.len());
            let j = rng.gen_range(0..stubs.len());
            let (a, b) = (stubs[i].min(stubs[j]), stubs[i].max(stubs[j]));
            if i == j || a == b || edges.contains(&(a, b)) {
                continue;
            }
            edges.insert((a, b));
            let (hi, lo) = (i.max(j), i.min(j));
            stubs.swap_remove(hi);
            stubs.swap_remove(lo);
            done = true;
            break;
        }
        if !done {
            return None;
        }
    }
    Some(Graph::from_edges(n, &edges))
}

fn watts_strogatz(n: usize, d: usize, beta: f64, rng: &mut impl Rng) -> Graph {
    let mut edges = BTreeSet::new();
    let key = |a: usize, b: usize| (a.min(b), a.max(b));
    for v in 0..n {
        for j in 1..=d / 2 {
            edges.insert(key(v, (v + j) % n));
        }
    }
    let lattice: Vec<(usize, usize)> = edges.iter().copied().collect();
    for (a, b) in lattice {
        if rng.gen::<f64>() < beta {
            for _ in 0..32 {
                let c = rng.gen_range(0..n);
                if c != a && !edges.contains(&key(a, c)) {
                    edges.remove(&(a, b));
                    edges.insert(key(a, c));
                    break;
                }
            }
        }
    }
    Graph::from_edges(n, &edges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn regular_and_small_world_graphs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let g = generate(Kind::Regular, 50, 4, 0.0, &mut rng).unwrap();
        assert!(g.adj.iter().all(|v| v.len() == 4));
        assert!(g.connected());
        assert_eq!(g.edges().len(), 100);
        let w = generate(Kind::WattsStrogatz, 50, 6, 0.2, &mut rng).unwrap();
        assert_eq!(w.mean_degree(), 6.0);
        assert!(w.connected());
        assert!(generate(Kind::Regular, 5, 3, 0.0, &mut rng).is_err());
        assert!(generate(Kind::WattsStrogatz, 10, 3, 0.1, &mut rng).is_err());
    }
}
