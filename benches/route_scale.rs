//! route-scale: routing time and memory against the size of the cache.
//!
//!     cargo bench --bench route_scale                                  # 20 and 100 peers, 1k..1M
//!     cargo bench --bench route_scale -- --peers 20 --sizes 1000,10000 # smoke
//!
//! For each peer count, one state file grows to each size in turn. Messages are cached as
//! the router's accept step caches them (cache row and IDs, the matcher learns it, the
//! peer's counters; `common::bulk_cache`), 10,000 per transaction. Their bodies are corpus
//! texts (shared/corpus) plus two words drawn from a Zipf law over 2^22 made-up words, so
//! that the vocabulary keeps growing with the cache as in real text. At each size:
//! - library: ms per message (median wall, mean wall, median CPU time) for what the
//!   router asks of the engine (peer scores of all peers, then 5 related messages) on an
//!   open state file;
//! - end to end: ms per message (median) of a fresh `cmr-route --dry-run --json` process
//!   routing one message (parse, duplicate check, matching, caching, learning, forwards,
//!   then roll back), its CPU time (user + system), and its peak RSS (measured through
//!   `/usr/bin/time` when present: a child's own wait4 figure would include the pages of
//!   this large process that spawned it);
//! - the state file size.

#[path = "common/mod.rs"]
mod common;

use clap::Parser;
use cmr::compress::eval::{read_corpus, SplitMix64};
use cmr::route::matching;
use cmr::state::settings::Settings;
use cmr::state::State;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(name = "route-scale")]
struct Args {
    /// peer counts, comma separated
    #[arg(long, default_value = "20,100", value_delimiter = ',')]
    peers: Vec<usize>,
    /// cache sizes, comma separated, increasing
    #[arg(
        long,
        default_value = "1000,10000,100000,1000000",
        value_delimiter = ','
    )]
    sizes: Vec<usize>,
    /// messages routed in the library at each size
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// fresh processes at each size
    #[arg(long, default_value_t = 40)]
    processes: usize,
    /// directory for the state files (kept); default a temporary directory (removed)
    #[arg(long)]
    dir: Option<PathBuf>,
    /// JSONL corpus the message texts come from
    #[arg(long)]
    corpus: Option<PathBuf>,
    #[arg(long, hide = true)]
    bench: bool,
}

/// Zipf-distributed made-up word (rank r with probability ~ 1/r over 2^22 ranks).
fn rare_word(rng: &mut SplitMix64) -> String {
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let mut r = 2f64.powf(22.0 * u) as u64; // log-uniform rank: Zipf exponent 1
    let mut w = String::from("zq");
    loop {
        w.push((b'a' + (r % 26) as u8) as char);
        r /= 26;
        if r == 0 {
            break;
        }
    }
    w
}

fn synth(texts: &[String], rng: &mut SplitMix64) -> String {
    let t = &texts[rng.below(texts.len())];
    format!("{t} {} {}", rare_word(rng), rare_word(rng))
}

fn file_size(p: &Path) -> u64 {
    let wal = PathBuf::from(format!("{}-wal", p.display()));
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

fn run(args: &Args, texts: &[String], peers: usize, dir: &Path) -> Result<(), String> {
    let db = dir.join(format!("scale-{peers}.sqlite"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    common::init_state(&db, &[])?;
    let mut state = State::open(Some(&db)).map_err(|f| f.message)?;
    // a large page cache for building only (the routing processes use the default)
    state
        .conn()
        .execute_batch("PRAGMA cache_size=-262144; PRAGMA synchronous=NORMAL;")
        .map_err(|e| e.to_string())?;
    let addrs: Vec<String> = (0..peers)
        .map(|i| format!("http://peer{i}.example/cmr"))
        .collect();
    // Configured peers: the relay policy lets the router forward these unsigned messages to
    // them, as it did before the policy existed, so the figures stay comparable.
    state
        .write(|tx| {
            for a in &addrs {
                cmr::state::peers::add(tx, a, cmr::sign::Scheme::HmacSha256, None)?;
            }
            Ok(())
        })
        .map_err(|f| f.message)?;
    let mut rng = SplitMix64(42);
    let mut qrng = SplitMix64(7);
    let mut have = 0usize;
    for &size in &args.sizes {
        let t = Instant::now();
        let mut gen = std::iter::from_fn(|| {
            if have >= size {
                return None;
            }
            have += 1;
            let body = synth(texts, &mut rng);
            let p = rng.below(peers);
            common::compose(&addrs[p], have as u64, body.as_bytes())
                .ok()
                .map(|m| (addrs[p].clone(), m))
        });
        common::bulk_cache(&mut state, &mut gen, 10_000)?;
        let build = t.elapsed().as_secs_f64();
        state
            .conn()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(|e| e.to_string())?;

        // library: what the router asks of the engine, on an open state file
        let settings = Settings::load(state.conn()).map_err(|f| f.message)?;
        let qs: Vec<String> = (0..args.queries).map(|_| synth(texts, &mut qrng)).collect();
        let mut lib = Vec::new();
        let mut lib_cpu = Vec::new();
        for q in &qs {
            // a fresh matcher per message, as in a routing process
            let matcher = matching::from_settings(&settings).map_err(|f| f.message)?;
            let t = Instant::now();
            let c = common::thread_cpu_ms();
            matcher
                .peer_scores(state.conn(), q.as_bytes(), &addrs)
                .map_err(|f| f.message)?;
            matcher
                .related(state.conn(), q.as_bytes(), 5)
                .map_err(|f| f.message)?;
            lib.push(t.elapsed().as_secs_f64() * 1e3);
            lib_cpu.push(common::thread_cpu_ms() - c);
        }
        let lib_mean = lib.iter().sum::<f64>() / lib.len().max(1) as f64;

        // end to end: fresh cmr-route processes
        let mut wall = Vec::new();
        let mut cpu = Vec::new();
        let mut rss = 0f64;
        for (n, q) in qs.iter().take(args.processes).enumerate() {
            let raw =
                common::compose(common::CLIENT, 90_000_000 + n as u64, q.as_bytes())?.encode();
            let f = common::route_fresh(&db, &raw)?;
            if f.decision["outcome"] != "accepted" {
                return Err(format!("cmr-route did not accept: {}", f.decision));
            }
            wall.push(f.wall_ms);
            cpu.push(f.cpu_ms);
            if n < 10 {
                if let Some((kib, _)) = common::rss_via_time(&db, &raw) {
                    rss = rss.max(kib);
                }
            }
        }
        println!(
            "peers {peers:>4}  cached {size:>8}  library {:.3} ms/msg (mean {lib_mean:.3}; CPU {:.3})  \
             cmr-route {:.3} ms/msg (median wall; CPU {:.2} ms)  peak RSS {:.1} MiB  \
             state file {:.1} MiB  (built in {:.1} s, {:.3} ms/message cached)",
            common::median(&mut lib),
            common::median(&mut lib_cpu),
            common::median(&mut wall),
            common::median(&mut cpu),
            rss / 1024.0,
            file_size(&db) as f64 / (1 << 20) as f64,
            build,
            build * 1e3 / size as f64
        );
    }
    drop(state);
    if args.dir.is_none() {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    let corpus = args.corpus.clone().unwrap_or_else(common::default_corpus);
    let texts: Vec<String> = match read_corpus(&corpus) {
        Ok(items) => items.into_iter().map(|i| i.text).collect(),
        Err(f) => {
            eprintln!("route-scale: {}", f.message);
            std::process::exit(f.code as i32);
        }
    };
    let tmp = tempfile::tempdir().ok();
    let dir = args
        .dir
        .clone()
        .or_else(|| tmp.as_ref().map(|t| t.path().to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("."));
    for &p in &args.peers {
        if let Err(e) = run(&args, &texts, p, &dir) {
            eprintln!("route-scale: {e}");
            std::process::exit(70);
        }
    }
}
