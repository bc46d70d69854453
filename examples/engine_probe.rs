//! engine-probe: time the routing engine on an existing state file (for instance one that
//! `cargo bench --bench route_scale -- --dir DIR` kept), with the OS page cache warm.
//!
//!     cargo run --release --example engine_probe -- DIR/scale-100.sqlite [PEERS] [MMAP_BYTES]
//!
//! Routes 200 corpus texts (peer scores of the PEERS peers `http://peerN.example/cmr`,
//! default 100, then 5 related messages), each with a fresh matcher as in a routing
//! process, and prints the median CPU time per message. Run it twice: the first run pays
//! for reading the file into the page cache.

use cmr::compress::matcher::ModelMatcher;
use cmr::compress::Metric;
use cmr::route::matching::Matcher;
use std::path::{Path, PathBuf};

fn cpu_ms() -> f64 {
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
    }
}

fn main() -> Result<(), String> {
    let a: Vec<String> = std::env::args().collect();
    let state = a
        .get(1)
        .ok_or("usage: engine_probe STATE [PEERS] [MMAP_BYTES]")?;
    let n: usize = a
        .get(2)
        .map_or(Ok(100), |s| s.parse())
        .map_err(|e| format!("{e}"))?;
    let conn = rusqlite::Connection::open(state).map_err(|e| e.to_string())?;
    if let Some(m) = a.get(3) {
        let m: u64 = m.parse().map_err(|e| format!("{e}"))?;
        conn.execute_batch(&format!("PRAGMA mmap_size={m}"))
            .map_err(|e| e.to_string())?;
    }
    let peers: Vec<String> = (0..n)
        .map(|i| format!("http://peer{i}.example/cmr"))
        .collect();
    let corpus = std::env::var_os("CMR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join("corpus/fortunes_topics.jsonl");
    let items = cmr::compress::eval::read_corpus(Path::new(&corpus)).map_err(|f| f.message)?;
    let mut v = Vec::new();
    for it in items.iter().step_by(37).take(200) {
        let m = ModelMatcher::new(Metric::Cond);
        let c = cpu_ms();
        m.peer_scores(&conn, it.text.as_bytes(), &peers)
            .map_err(|f| f.message)?;
        m.related(&conn, it.text.as_bytes(), 5)
            .map_err(|f| f.message)?;
        v.push(cpu_ms() - c);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{state}: median CPU {:.3} ms per message ({} messages, {n} peers)",
        v[v.len() / 2],
        v.len()
    );
    Ok(())
}
