//! Shared by the routing benchmarks: a real state file, bulk caching through the same
//! calls the router's accept step makes, and `cmr-route` run as a fresh process.
#![allow(dead_code)]

use cmr::exit::Failure;
use cmr::route::matching;
use cmr::state::settings::Settings;
use cmr::state::{cache, peers, State};
use cmr::wire::{self, Message, Timestamp};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

pub const ME: &str = "http://router.example/cmr";
pub const CLIENT: &str = "http://client.example/cmr";
const CMR_ROUTE: &str = env!("CARGO_BIN_EXE_cmr-route");

/// The `cmr-route` the end-to-end figures run: `$CMR_ROUTE_BIN` when set (the bench
/// scripts set it to the tools as installed, `scripts/build-release.sh`), else the one
/// cargo built for the benchmark.
pub fn route_bin() -> std::ffi::OsString {
    std::env::var_os("CMR_ROUTE_BIN").unwrap_or_else(|| CMR_ROUTE.into())
}

/// The labelled corpus the routing benchmarks read by default:
/// `$CMR_SHARED/corpus/fortunes_topics.jsonl`, `$CMR_SHARED` defaulting to `../shared`.
pub fn default_corpus() -> PathBuf {
    let shared = std::env::var_os("CMR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    shared.join("corpus/fortunes_topics.jsonl")
}

/// Run `cmr-route --state PATH ARGS...`; error with its stderr on failure.
pub fn cmr_route(state: &Path, args: &[&str]) -> Result<(), String> {
    let o = Command::new(route_bin())
        .arg("--state")
        .arg(state)
        .args(args)
        .output()
        .map_err(|e| format!("cmr-route: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "cmr-route {args:?}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// A new state file with our address and the given policy settings. The rate windows are
/// off: a benchmark pushes thousands of messages a minute through one router, which the
/// default windows (rate_peer, rate_global) would refuse.
pub fn init_state(state: &Path, policy: &[(&str, &str)]) -> Result<(), String> {
    cmr_route(state, &["init", "--address", ME])?;
    cmr_route(state, &["policy", "rate_peer", "off"])?;
    cmr_route(state, &["policy", "rate_global", "off"])?;
    for (k, v) in policy {
        cmr_route(state, &["policy", k, v])?;
    }
    Ok(())
}

/// One message from `from` (its only header line) with `body`; `n` makes the IDs unique.
pub fn compose(from: &str, n: u64, body: &[u8]) -> Result<Message, String> {
    let t = Timestamp::from_unix(
        1_700_000_000 + (n / 1_000_000) as i64,
        (n % 1_000_000) as u32 * 1000,
        6,
    );
    Message::compose(
        &[(t, from.as_bytes())],
        body,
        &wire::Rules::unchecked_time(),
    )
    .map_err(|e| format!("compose: {e:?}"))
}

/// Cache messages as the router's accept step does (cache row with its IDs, the matcher
/// learns it, the peer's counters), `batch` messages per transaction. Returns the cache ids.
pub fn bulk_cache(
    state: &mut State,
    msgs: &mut dyn Iterator<Item = (String, Message)>,
    batch: usize,
) -> Result<Vec<i64>, String> {
    let settings = Settings::load(state.conn()).map_err(|f| f.message)?;
    let matcher = matching::from_settings(&settings).map_err(|f| f.message)?;
    let mut ids = Vec::new();
    loop {
        let chunk: Vec<(String, Message)> = msgs.take(batch).collect();
        if chunk.is_empty() {
            break;
        }
        let got = state
            .write(|tx| {
                let mut out = Vec::with_capacity(chunk.len());
                for (peer, m) in &chunk {
                    let id = cache::insert(tx, m, peer, "http", false, false)?;
                    matcher.learn(tx, id, peer, m.body())?;
                    peers::note_accepted(tx, peer, id, false)?;
                    out.push(id);
                }
                Ok::<_, Failure>(out)
            })
            .map_err(|f| f.message)?;
        ids.extend(got);
    }
    Ok(ids)
}

/// What one fresh `cmr-route --dry-run --json` process said and cost.
pub struct Fresh {
    pub decision: serde_json::Value,
    pub wall_ms: f64,
    /// user + system CPU time of the process (wait4)
    pub cpu_ms: f64,
}

/// Route `raw` in a fresh `cmr-route --dry-run --json` process.
pub fn route_fresh(state: &Path, raw: &[u8]) -> Result<Fresh, String> {
    let t = Instant::now();
    let mut child = Command::new(route_bin())
        .arg("--state")
        .arg(state)
        .args(["--dry-run", "--json", "--log", "none", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cmr-route: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(raw)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .ok_or("no stdout")?
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    let mut status = 0;
    // SAFETY: wait4 on our own child's pid, writing into locals. (Its ru_maxrss would
    // count this process's pages before the exec: see rss_via_time.)
    let cpu_ms = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru);
        let tv = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    };
    let wall_ms = t.elapsed().as_secs_f64() * 1e3;
    let decision: serde_json::Value = serde_json::from_slice(&out).map_err(|e| {
        format!(
            "cmr-route output ({e}): {}",
            String::from_utf8_lossy(&out)
                .chars()
                .take(200)
                .collect::<String>()
        )
    })?;
    Ok(Fresh {
        decision,
        wall_ms,
        cpu_ms,
    })
}

/// The median of a sample (the machine is shared: means are at the scheduler's mercy).
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Peak RSS (KiB) and CPU ms (10 ms resolution) of one `cmr-route --dry-run` run, through
/// /usr/bin/time.
pub fn rss_via_time(state: &Path, raw: &[u8]) -> Option<(f64, f64)> {
    if !Path::new("/usr/bin/time").exists() {
        return None;
    }
    let mut c = Command::new("/usr/bin/time")
        .args(["-f", "%M %U %S"])
        .arg(route_bin())
        .arg("--state")
        .arg(state)
        .args(["--dry-run", "--json", "--log", "none", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    c.stdin.take()?.write_all(raw).ok()?;
    let o = c.wait_with_output().ok()?;
    let s = String::from_utf8_lossy(&o.stderr);
    let mut f = s.split_whitespace().rev().take(3).collect::<Vec<_>>();
    f.reverse();
    let kib: f64 = f.first()?.parse().ok()?;
    let cpu: f64 = f.get(1)?.parse::<f64>().ok()? + f.get(2)?.parse::<f64>().ok()?;
    Some((kib, cpu * 1e3))
}

/// CPU time of the calling thread, ms (robust against a loaded machine, unlike wall time).
pub fn thread_cpu_ms() -> f64 {
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
    }
}
