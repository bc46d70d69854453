//! Many cmr-route processes on one state file at once, and a busy database.

mod route_common;
use cmr::wire;
use route_common::*;
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn concurrent_routers_lose_nothing_and_stamp_unique_increasing_times() {
    let e = Env::new();
    seed_topics(&e);
    let seeded_cache = e.count("cache");
    let seeded_outbox = e.count("outbox");

    // 8 processes, each routing a stream of 4 distinct messages.
    let procs = 8;
    let per = 4;
    let mut children = Vec::new();
    for p in 0..procs {
        let mut stream = Vec::new();
        for j in 0..per {
            let topic = TOPICS[(p + j) % TOPICS.len()];
            let m = msg2(
                &format!("http://peer{p}.test/"),
                &format!("http://client{p}-{j}.test/"),
                &format!("{topic} (message {j} of process {p})"),
            );
            stream.extend(m.encode());
        }
        let mut c = Command::new(env!("CARGO_BIN_EXE_cmr-route"))
            .arg("--state")
            .arg(&e.state)
            .arg("--json")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(&stream).unwrap();
        children.push(c);
    }
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(out.lines().count(), per);
        for l in out.lines() {
            let d: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(d["outcome"], "accepted", "{d}");
        }
    }
    // No lost rows.
    assert_eq!(e.count("cache"), seeded_cache + (procs * per) as i64);
    assert_eq!(e.count("ids"), seeded_cache + 2 * (procs * per) as i64);
    let accepted: i64 = e
        .db()
        .query_row(
            "SELECT count(*) FROM log WHERE outcome = 'accepted'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(accepted, seeded_cache + (procs * per) as i64);
    assert!(e.count("outbox") > seeded_outbox + (procs * per) as i64 / 2);

    // Every forward's timestamp (our line) is unique, and they increase in commit order.
    let db = e.db();
    let mut st = db.prepare("SELECT bytes FROM outbox ORDER BY id").unwrap();
    let stamps: Vec<wire::Timestamp> = st
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|b| {
            let m = wire::parse(&b.unwrap(), &wire::Rules::default()).unwrap();
            assert_eq!(m.sender().address, ME.as_bytes());
            m.sender().time()
        })
        .collect();
    for w in stamps.windows(2) {
        assert!(w[1] > w[0], "{} is not after {}", w[1], w[0]);
    }
    let last: String = db
        .query_row("SELECT last FROM clock", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        wire::Timestamp::parse(last.as_bytes()).unwrap(),
        *stamps.last().unwrap()
    );
}

#[test]
fn busy_database_past_the_timeout_is_tempfail_and_changes_nothing() {
    let e = Env::new();
    e.ok(&["policy", "busy_timeout_ms", "150"]);
    let m = msg("http://alice.test/", "hello while the database is busy");
    let holder = rusqlite::Connection::open(&e.state).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let env = [("CMR_BUSY_TIMEOUT_MS", "200")];
    let o = e.route_env(&["--strict"], &m.encode(), &env);
    assert_eq!(
        o.status.code(),
        Some(75),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!o.stderr.is_empty());
    // The setting alone (no environment variable) gives up after its timeout too.
    let t = std::time::Instant::now();
    let o = e.route(&["--strict"], &m.encode());
    assert_eq!(o.status.code(), Some(75));
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
    // The busy timeout is also a setting (read at open).
    let o = Command::new(env!("CARGO_BIN_EXE_cmr-post"))
        .arg("--state")
        .arg(&e.state)
        .env("CMR_BUSY_TIMEOUT_MS", "100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"a post")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(o.status.code(), Some(75));
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(e.count("cache"), 0);
    assert_eq!(e.count("log"), 0);
    // The retry succeeds.
    let (c, d) = e.route_json(&m.encode(), &["--strict"]);
    assert_eq!((c, d["outcome"].as_str()), (0, Some("accepted")));
}

/// The acceptance size: 8 processes each routing a stream of 250 distinct messages (2,000 in
/// all) from several peers into one state file at once. Each message is cached exactly once,
/// each forward queued exactly once; a process may fail only with 75 (EX_TEMPFAIL), and
/// re-running its whole input then is a no-op for what it had already committed.
#[test]
fn eight_streams_of_250_into_one_state_file() {
    let e = Env::new();
    seed_topics(&e);
    let seeded_cache = e.count("cache");
    let seeded_ids = e.count("ids");

    let procs = 8;
    let per = 250;
    // The forwarding peers are configured peers: the relay policy lets the router send to
    // them (these messages are unsigned).
    for i in 0..12 {
        e.ok(&["peer", "add", &format!("http://peer{i}.test/")]);
    }
    // Two-line headers are forwarded (not only answered) under a hop limit of 3.
    e.ok(&["policy", "max_hops", "3"]);
    let mut streams = Vec::new();
    let mut origins = Vec::new();
    for p in 0..procs {
        let mut stream = Vec::new();
        for j in 0..per {
            let topic = TOPICS[(p + j) % TOPICS.len()];
            // Several peers per process, so forwards go to several destinations.
            let via = format!("http://peer{}.test/", (p * 3 + j) % 12);
            let origin = format!("http://client{p}-{j}.test/");
            let m = msg2(
                &via,
                &origin,
                &format!("{topic} number {j} from stream {p} word{p}x{j}"),
            );
            origins.push(origin);
            stream.extend(m.encode());
        }
        streams.push(stream);
    }
    let spawn = |s: &[u8]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cmr-route"))
            .arg("--state")
            .arg(&e.state)
            .arg("--json")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut w = c.stdin.take().unwrap();
        let s = s.to_vec();
        let t = std::thread::spawn(move || {
            let _ = w.write_all(&s);
        });
        (c, t)
    };
    let children: Vec<_> = streams.iter().map(|s| spawn(s)).collect();
    let mut retry = Vec::new();
    for (p, (c, t)) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        t.join().unwrap();
        match o.status.code() {
            Some(0) => {
                let out = String::from_utf8_lossy(&o.stdout);
                assert_eq!(out.lines().count(), per, "process {p}");
                for l in out.lines() {
                    let d: serde_json::Value = serde_json::from_str(l).unwrap();
                    assert_eq!(d["outcome"], "accepted", "{d}");
                }
            }
            Some(75) => retry.push(p),
            other => panic!(
                "process {p}: exit {other:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
        }
    }
    // Re-deliver each failed stream whole, one at a time: what was committed is a duplicate.
    for p in &retry {
        let o = e.route(&["--json"], &streams[*p]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "retry {p}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            let d: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(
                d["outcome"] == "accepted" || d["outcome"] == "duplicate",
                "{d}"
            );
        }
    }
    if !retry.is_empty() {
        eprintln!("re-ran streams {retry:?} after exit 75");
    }

    let n = (procs * per) as i64;
    assert_eq!(e.count("cache"), seeded_cache + n);
    // Two ids (creator and forwarding peer) per message, each pointing at its one row.
    assert_eq!(e.count("ids"), seeded_ids + 2 * n);
    assert!(e.count("outbox") >= n, "too few forwards");
    assert_each_once(&e, &origins, seeded_cache);
}
