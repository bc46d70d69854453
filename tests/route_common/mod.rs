//! Helpers for the cmr-route / cmr-post integration tests: a temporary state file and the
//! real binaries.
#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;

use cmr::sign::{self, Key, Scheme};
use cmr::wire::{self, Message, Timestamp};
use std::path::PathBuf;
use std::process::{Command, Output};

pub const ME: &str = "http://router.test/cmr";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
}

impl Env {
    /// A fresh state file initialised with our address.
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.sqlite");
        let e = Env { dir, state };
        let o = e.route(&["init", "--address", ME], b"");
        assert!(
            o.status.success(),
            "init: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        e
    }

    fn run(&self, bin: &str, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(bin);
        c.arg("--state").arg(&self.state).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        common::run_cmd(c, stdin)
    }

    pub fn route(&self, args: &[&str], stdin: &[u8]) -> Output {
        self.run(env!("CARGO_BIN_EXE_cmr-route"), args, stdin, &[])
    }

    pub fn route_env(&self, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
        self.run(env!("CARGO_BIN_EXE_cmr-route"), args, stdin, env)
    }

    pub fn post(&self, args: &[&str], stdin: &[u8]) -> Output {
        self.run(env!("CARGO_BIN_EXE_cmr-post"), args, stdin, &[])
    }

    /// Route one message with --json; returns the exit code and the decision.
    pub fn route_json(&self, msg: &[u8], extra: &[&str]) -> (i32, serde_json::Value) {
        let mut a = vec!["--json"];
        a.extend_from_slice(extra);
        let o = self.route(&a, msg);
        let out = String::from_utf8_lossy(&o.stdout);
        let v = serde_json::from_str(out.lines().next().unwrap_or("null")).unwrap_or_else(|e| {
            panic!(
                "bad JSON ({e}): {out} / stderr {}",
                String::from_utf8_lossy(&o.stderr)
            )
        });
        (o.status.code().unwrap_or(-1), v)
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.state).unwrap()
    }

    pub fn count(&self, table: &str) -> i64 {
        self.db()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.route(args, b"");
        assert!(
            o.status.success(),
            "cmr-route {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

/// A timestamp `secs_ago` seconds in the past, with microseconds, unique per call.
pub fn past(secs_ago: i64) -> Timestamp {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = Timestamp::now();
    Timestamp::from_unix(
        n.unix_secs() - secs_ago,
        N.fetch_add(1, Ordering::Relaxed) % 1_000_000 * 1000,
        6,
    )
}

/// An unsigned message created by `from` (one header line).
pub fn msg(from: &str, body: &str) -> Message {
    Message::compose(
        &[(past(60), from.as_bytes())],
        body.as_bytes(),
        &wire::Rules::default(),
    )
    .unwrap()
}

/// A message created by `origin` and forwarded to us by `via` (two header lines).
pub fn msg2(via: &str, origin: &str, body: &str) -> Message {
    let t0 = past(120);
    let t1 = past(30);
    Message::compose(
        &[(t1, via.as_bytes()), (t0, origin.as_bytes())],
        body.as_bytes(),
        &wire::Rules::default(),
    )
    .unwrap()
}

/// A message whose header has `lines`, the immediate sender first: (address, created
/// that many seconds ago).
pub fn with_lines(lines: &[(&str, i64)], body: &str) -> Message {
    let ids: Vec<(Timestamp, &[u8])> = lines
        .iter()
        .map(|(a, age)| (past(*age), a.as_bytes()))
        .collect();
    Message::compose(&ids, body.as_bytes(), &wire::Rules::default()).unwrap()
}

/// (destination, body of the cached message it carries, or "" for a row of no cached
/// message) of every outbox row, oldest first.
pub fn outbox_rows(e: &Env) -> Vec<(String, String)> {
    let db = e.db();
    let mut st = db
        .prepare(
            "SELECT o.dest, substr(c.bytes, c.body_offset + 1) FROM outbox o
             LEFT JOIN cache c ON c.id = o.cache_id ORDER BY o.id",
        )
        .unwrap();
    let v = st
        .query_map([], |r| {
            let body: Vec<u8> = r.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default();
            Ok((r.get(0)?, String::from_utf8_lossy(&body).into_owned()))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    v
}

pub fn signed(m: Message, scheme: Scheme, key: &[u8]) -> Vec<u8> {
    sign::sign(m, scheme, &Key::new(key.to_vec())).encode()
}

pub fn hex(b: &[u8]) -> String {
    wire::hex(b)
}

/// The end state after concurrent or interrupted deliveries of `origins` (one message
/// each): every message cached exactly once under its creator, no ID pointing nowhere, no
/// (destination, message) pair queued or delivered twice, one `accepted` log row each.
pub fn assert_each_once(e: &Env, origins: &[String], seeded_cache: i64) {
    let n = origins.len() as i64;
    let db = e.db();
    let one = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        one("SELECT count(DISTINCT cache_id) FROM ids"),
        seeded_cache + n
    );
    assert_eq!(
        one("SELECT count(*) FROM ids WHERE cache_id NOT IN (SELECT id FROM cache)"),
        0
    );
    let mut st = db
        .prepare("SELECT count(*) FROM cache WHERE origin = ?1")
        .unwrap();
    for o in origins {
        let c: i64 = st.query_row([o], |r| r.get(0)).unwrap();
        assert_eq!(c, 1, "{o}");
    }
    assert_eq!(
        one(
            "SELECT count(*) FROM (SELECT dest, msg_key FROM (SELECT dest, msg_key FROM outbox \
             UNION ALL SELECT dest, msg_key FROM delivered) GROUP BY dest, msg_key \
             HAVING count(*) > 1)"
        ),
        0
    );
    assert_eq!(
        one("SELECT count(*) FROM (SELECT cache_id, dest FROM outbox \
             GROUP BY cache_id, dest HAVING count(*) > 1)"),
        0
    );
    assert_eq!(
        one("SELECT count(*) FROM log WHERE outcome = 'accepted'"),
        seeded_cache + n
    );
    assert_engine_matches_cache(e);
}

/// The routing engine's word statistics are exactly what learning the cache from scratch,
/// in cache order, gives: whatever interleaving of processes built them.
pub fn assert_engine_matches_cache(e: &Env) {
    use cmr::compress::model::{self, TermRow};
    use cmr::compress::store::{MemStore, Store};
    use std::collections::BTreeMap;
    let db = e.db();
    let mut mem = MemStore::default();
    let mut st = db
        .prepare("SELECT id, sender, substr(bytes, body_offset + 1) FROM cache ORDER BY id")
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (id, sender, body) = row.unwrap();
        model::learn(&mut mem, id, &sender, &body).unwrap();
    }
    // (hash -> (df, peer address -> count)) from both sides
    let mem_peers: Vec<String> = mem
        .all_peers()
        .unwrap()
        .into_iter()
        .map(|p| p.address)
        .collect();
    let want: BTreeMap<i64, (u64, BTreeMap<String, u32>)> = mem
        .terms
        .iter()
        .map(|(h, r)| {
            let c = r
                .counts
                .iter()
                .map(|&(p, c)| (mem_peers[p as usize].clone(), c))
                .collect();
            (*h as i64, (r.df, c))
        })
        .collect();
    let db_peers: BTreeMap<i64, String> = db
        .prepare("SELECT idx, address FROM engine_peers")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let have: BTreeMap<i64, (u64, BTreeMap<String, u32>)> = db
        .prepare("SELECT hash, df, counts FROM engine_terms")
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .unwrap()
        .map(|r| {
            let (h, df, counts) = r.unwrap();
            let c = TermRow::decode_counts(&counts)
                .unwrap()
                .into_iter()
                .map(|(p, c)| (db_peers[&(p as i64)].clone(), c))
                .collect();
            (h, (df as u64, c))
        })
        .collect();
    assert_eq!(have.len(), want.len(), "distinct words");
    assert!(have == want, "word statistics differ from the cache's");
    let docs: i64 = db
        .query_row("SELECT docs FROM engine_global", [], |r| r.get(0))
        .unwrap();
    assert_eq!(docs as u64, mem.g.docs);
}

/// Four topics, one seed peer each, for the concurrency and crash tests.
pub const TOPICS: [&str; 4] = [
    "planet orbit telescope comet star galaxy",
    "bread oven flour dough yeast bake",
    "goal referee match striker league cup",
    "court judge lawyer verdict appeal trial",
];

/// Seed the cache with one message per topic from its own peer (margin 0.5, so that every
/// new message is routed and forwarded).
///
/// The seed peers are configured peers (`peer add`), so the relay policy lets unverified
/// messages be routed to them; the rate windows are off, as these tests route hundreds of
/// messages in seconds.
pub fn seed_topics(e: &Env) {
    e.ok(&["policy", "margin", "0.5"]);
    e.ok(&["policy", "rate_peer", "off"]);
    e.ok(&["policy", "rate_global", "off"]);
    for (i, t) in TOPICS.iter().enumerate() {
        e.ok(&["peer", "add", &format!("http://seed{i}.test/")]);
        let (_, d) = e.route_json(&msg(&format!("http://seed{i}.test/"), t).encode(), &[]);
        assert_eq!(d["outcome"], "accepted");
    }
}
