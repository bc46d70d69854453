//! route-scale: routing time and memory against the size of the cache.
//!
//!     cargo bench --bench route_scale -- --peers 20,100 --sizes 1000,10000,100000,1000000
//!     cargo bench --bench route_scale -- --peers 20 --sizes 1000,10000   # smoke
//!
//! For each peer count, one state file grows to each size in turn: messages are learned
//! through the same code path as caching (`model::learn`), in transactions of 10,000.
//! The messages are corpus texts (shared/corpus) plus two words drawn from a Zipf law over
//! a vocabulary of 2^22 made-up words, so the vocabulary keeps growing with the cache as in
//! real text. At each size it prints:
//! - library: ms per message (median, and mean) for the peer scores of all peers plus 5
//!   related messages, on an open connection;
//! - fresh process: the same bench binary re-run in query mode (open the state file, read
//!   the message, decide, print), median ms per message wall clock and measured inside the
//!   process, and its peak RSS (getrusage);
//! - the state file size.

use clap::Parser;
use cmr::compress::eval::{read_corpus, SplitMix64};
use cmr::compress::model::{learn, score, terms};
use cmr::compress::related::{related, QueryView, RelatedOptions};
use cmr::compress::store::{SqlStore, Store};
use rusqlite::{Connection, OpenFlags};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
    /// queries timed in the library at each size
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// fresh processes timed at each size
    #[arg(long, default_value_t = 40)]
    processes: usize,
    /// directory for the state files (default: a temporary directory)
    #[arg(long)]
    dir: Option<PathBuf>,
    /// JSONL corpus the message texts come from
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// query mode (internal): decide one message from stdin against this state file
    #[arg(long, hide = true)]
    query: Option<PathBuf>,
    #[arg(long, hide = true)]
    bench: bool,
}

fn max_rss_kib() -> i64 {
    // SAFETY: getrusage only writes into the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru.ru_maxrss
    }
}

/// Peer scores for every peer plus 5 related messages; returns (best peer, related ids).
fn decide(conn: &Connection, body: &[u8]) -> Result<(usize, Vec<i64>), String> {
    let mut st = SqlStore::new(conn);
    let ts = terms(body);
    let g = st.global().map_err(|f| f.message)?;
    let peers = st.all_peers().map_err(|f| f.message)?;
    let sc = score(&mut st, &g, &ts, &peers).map_err(|f| f.message)?;
    let best = (0..peers.len())
        .min_by(|&a, &b| sc.cond[a].total_cmp(&sc.cond[b]))
        .unwrap_or(0);
    let opts = RelatedOptions::default();
    let view = QueryView::new(&g, &ts, &sc, &peers, &opts);
    let rel = related(&mut st, &view, &ts, &sc, 5, &opts).map_err(|f| f.message)?;
    Ok((best, rel.into_iter().map(|r| r.0).collect()))
}

fn query_mode(db: &Path) -> Result<(), String> {
    let t = Instant::now();
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| e.to_string())?;
    if std::env::var_os("ROUTE_SCALE_MMAP").is_some() {
        conn.execute_batch("PRAGMA mmap_size=268435456;")
            .map_err(|e| e.to_string())?;
    }
    let t1 = Instant::now();
    let (best, rel) = decide(&conn, &body)?;
    println!(
        "{{\"best\":{best},\"related\":{},\"ms\":{:.4},\"decide_ms\":{:.4},\"maxrss_kib\":{}}}",
        rel.len(),
        t.elapsed().as_secs_f64() * 1e3,
        t1.elapsed().as_secs_f64() * 1e3,
        max_rss_kib()
    );
    Ok(())
}

/// Zipf-distributed made-up word (rank r with probability ~ 1/r over 2^22 ranks).
fn rare_word(rng: &mut SplitMix64) -> String {
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let rank = (2f64.powf(22.0 * u)) as u64; // log-uniform = Zipf exponent 1
    let mut w = String::from("zq");
    let mut r = rank;
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

/// The median (the machine is shared: means are at the mercy of the scheduler).
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn file_size(p: &Path) -> u64 {
    let wal = PathBuf::from(format!("{}-wal", p.display()));
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

fn run(args: &Args, texts: &[String], peers: usize, dir: &Path) -> Result<(), String> {
    let db = dir.join(format!("scale-{peers}.sqlite"));
    let _ = std::fs::remove_file(&db);
    let conn = Connection::open(&db).map_err(|e| e.to_string())?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-262144;",
    )
    .map_err(|e| e.to_string())?;
    SqlStore::create(&conn).map_err(|f| f.message)?;
    let addrs: Vec<String> = (0..peers)
        .map(|i| format!("http://peer{i}.example/cmr"))
        .collect();
    let mut rng = SplitMix64(42);
    let mut qrng = SplitMix64(7);
    let mut have = 0usize;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    for &size in &args.sizes {
        let t = Instant::now();
        while have < size {
            let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
            {
                let mut st = SqlStore::new(&tx);
                let end = size.min(have + 10_000);
                while have < end {
                    have += 1;
                    let body = synth(texts, &mut rng);
                    let p = rng.below(peers);
                    learn(&mut st, have as i64, &addrs[p], body.as_bytes())
                        .map_err(|f| f.message)?;
                }
            }
            tx.commit().map_err(|e| e.to_string())?;
        }
        let build = t.elapsed().as_secs_f64();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(|e| e.to_string())?;
        // library, open connection
        let qs: Vec<String> = (0..args.queries).map(|_| synth(texts, &mut qrng)).collect();
        let mut lib = Vec::new();
        for q in &qs {
            let t = Instant::now();
            decide(&conn, q.as_bytes())?;
            lib.push(t.elapsed().as_secs_f64() * 1e3);
        }
        // fresh processes
        let mut wall = Vec::new();
        let mut inner = Vec::new();
        let mut rss = 0i64;
        for q in qs.iter().take(args.processes) {
            let t = Instant::now();
            let mut child = Command::new(&exe)
                .arg("--query")
                .arg(&db)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| e.to_string())?;
            child
                .stdin
                .take()
                .ok_or("no stdin")?
                .write_all(q.as_bytes())
                .map_err(|e| e.to_string())?;
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            wall.push(t.elapsed().as_secs_f64() * 1e3);
            let v: serde_json::Value =
                serde_json::from_slice(&out.stdout).map_err(|e| format!("query mode: {e}"))?;
            inner.push(v["ms"].as_f64().unwrap_or(f64::NAN));
            rss = rss.max(v["maxrss_kib"].as_i64().unwrap_or(0));
        }
        println!(
            "peers {peers:>4}  cached {size:>8}  library {:.3} ms/msg (mean {:.3})  \
             fresh process {:.3} ms/msg wall ({:.3} ms inside)  peak RSS {:.1} MiB  \
             state file {:.1} MiB  (built {:.1} s, {:.3} ms/learn)",
            median(&mut lib),
            lib.iter().sum::<f64>() / lib.len().max(1) as f64,
            median(&mut wall),
            median(&mut inner),
            rss as f64 / 1024.0,
            file_size(&db) as f64 / (1 << 20) as f64,
            build,
            build * 1e3 / size as f64
        );
    }
    drop(conn);
    if args.dir.is_some() {
        // the state files stay in a directory the caller chose
        return Ok(());
    }
    let _ = std::fs::remove_file(&db);
    let _ = std::fs::remove_file(format!("{}-wal", db.display()));
    let _ = std::fs::remove_file(format!("{}-shm", db.display()));
    Ok(())
}

fn main() {
    let args = Args::parse();
    if let Some(db) = &args.query {
        if let Err(e) = query_mode(db) {
            eprintln!("route-scale: {e}");
            std::process::exit(70);
        }
        return;
    }
    let corpus = args.corpus.clone().unwrap_or_else(|| {
        let shared = std::env::var_os("CMR_SHARED")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
        shared.join("corpus/fortunes_topics.jsonl")
    });
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
