//! Crash safety: cmr-route processes killed (SIGKILL) at random moments lose nothing and
//! double nothing once every message whose process did not exit 0 is delivered again.

mod route_common;
use route_common::*;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// xorshift64*: a seeded generator, so that a failing run can be replayed (CMR_CRASH_SEED).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn spawn(e: &Env, m: &[u8]) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cmr-route"))
        .arg("--state")
        .arg(&e.state)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The process may be killed before it reads: a broken pipe is expected then.
    let _ = c.stdin.take().unwrap().write_all(m);
    c
}

#[test]
fn sigkill_at_random_moments_loses_and_doubles_nothing() {
    let seed: u64 = std::env::var("CMR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_c0de);
    eprintln!("seed {seed} (set CMR_CRASH_SEED to replay)");
    let mut rng = Rng(seed | 1);

    let e = Env::new();
    seed_topics(&e);
    let seeded_cache = e.count("cache");
    let seeded_ids = e.count("ids");

    let n = 200;
    let parallel = 4;
    let mut origins = Vec::new();
    let msgs: Vec<Vec<u8>> = (0..n)
        .map(|j| {
            let origin = format!("http://client{j}.test/");
            let m = msg2(
                &format!("http://peer{}.test/", j % 7),
                &origin,
                &format!("{} number {j} word{j}", TOPICS[j % TOPICS.len()]),
            );
            origins.push(origin);
            m.encode()
        })
        .collect();

    let mut redeliver = Vec::new();
    let (mut killed, mut exited) = (0, 0);
    for batch in (0..n).collect::<Vec<_>>().chunks(parallel) {
        let mut running: Vec<(usize, Child, Instant)> = batch
            .iter()
            .map(|&j| {
                let c = spawn(&e, &msgs[j]);
                let at = Instant::now() + Duration::from_millis(rng.below(31));
                (j, c, at)
            })
            .collect();
        while !running.is_empty() {
            let mut still = Vec::new();
            for (j, mut c, at) in running {
                match c.try_wait().unwrap() {
                    Some(s) => {
                        exited += 1;
                        if s.code() != Some(0) {
                            // Only a retryable failure is acceptable from a live process.
                            assert_eq!(s.code(), Some(75), "message {j}: {s:?}");
                            redeliver.push(j);
                        }
                    }
                    None if Instant::now() >= at => {
                        c.kill().unwrap(); // SIGKILL
                        let s = c.wait().unwrap();
                        if s.code() == Some(0) {
                            exited += 1;
                        } else {
                            killed += 1;
                            redeliver.push(j);
                        }
                    }
                    None => still.push((j, c, at)),
                }
            }
            running = still;
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    eprintln!("{killed} killed, {exited} exited by themselves");
    assert!(killed > 0, "no process was killed: the test proves nothing");

    for j in redeliver {
        let mut tries = 0;
        loop {
            let (code, d) = e.route_json(&msgs[j], &[]);
            if code == 0 {
                assert!(
                    d["outcome"] == "accepted" || d["outcome"] == "duplicate",
                    "{d}"
                );
                break;
            }
            assert_eq!(code, 75, "re-delivery of {j}: {d}");
            tries += 1;
            assert!(tries < 20, "message {j} keeps failing");
        }
    }

    let db = e.db();
    let ok: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    // Nothing lost, nothing doubled.
    assert_eq!(e.count("cache"), seeded_cache + n as i64);
    assert_eq!(e.count("ids"), seeded_ids + 2 * n as i64);
    assert_each_once(&e, &origins, seeded_cache);
}
