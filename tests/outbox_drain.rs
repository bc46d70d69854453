//! The outbox under concurrency and failure, with real `cmr-send --outbox` processes and a
//! real UDP receiver on loopback: every row delivered exactly once, failures back off,
//! dead rows stay listed and can be requeued, stale claims are taken over.

use cmr::state::State;
use std::collections::HashMap;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn message(i: usize) -> Vec<u8> {
    let body = format!("message number {i}");
    format!(
        "0\r\n2026/01/01 00:00:{:02}.{i:06} mailto:client@example.org\r\n\r\n{}\r\n{body}",
        i % 60,
        body.len()
    )
    .into_bytes()
}

/// Queue messages `range` for `dest`. The receivers here listen on loopback, which the
/// address policy refuses unless allowed: the state file allows 127.0.0.0/8.
fn enqueue(state: &Path, dest: &str, range: std::ops::Range<usize>) {
    enqueue_with(state, dest, range, "127.0.0.0/8")
}

fn enqueue_with(state: &Path, dest: &str, range: std::ops::Range<usize>, allow: &str) {
    let s = State::open(Some(state)).unwrap();
    s.write(|tx| {
        cmr::state::settings::set(tx, "send_allow", allow)?;
        for i in range {
            let m = message(i);
            assert!(cmr::state::outbox::enqueue(
                tx,
                dest,
                &m,
                format!("key{i}").as_bytes()
            )?);
        }
        Ok(())
    })
    .unwrap();
}

/// A loopback UDP port with nothing behind it (bound, then released), and its address.
fn closed_udp_dest() -> (u16, String) {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (port, format!("udp://127.0.0.1:{port}/drain"))
}

fn send(state: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cmr-send"))
        .arg("--state")
        .arg(state)
        .args(extra)
        .output()
        .unwrap()
}

/// A UDP receiver thread counting each datagram's payload.
struct Receiver {
    port: u16,
    seen: Arc<Mutex<HashMap<Vec<u8>, usize>>>,
}

impl Receiver {
    fn start(sock: UdpSocket) -> Receiver {
        let port = sock.local_addr().unwrap().port();
        let seen: Arc<Mutex<HashMap<Vec<u8>, usize>>> = Default::default();
        let s2 = seen.clone();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = sock.recv(&mut buf) {
                let d = buf[..n].to_vec();
                let nl = d.iter().position(|&c| c == b'\n').unwrap();
                assert_eq!(&d[..nl], b"drain", "tag");
                *s2.lock().unwrap().entry(d[nl + 1..].to_vec()).or_default() += 1;
            }
        });
        Receiver { port, seen }
    }
    fn wait_for(&self, n: usize) -> HashMap<Vec<u8>, usize> {
        for _ in 0..100 {
            if self.seen.lock().unwrap().len() >= n {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
        self.seen.lock().unwrap().clone()
    }
}

fn states(state: &Path) -> HashMap<String, i64> {
    let c = rusqlite::Connection::open(state).unwrap();
    let mut st = c
        .prepare("SELECT state, count(*) FROM outbox GROUP BY state")
        .unwrap();
    let mut m: HashMap<String, i64> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // Delivered rows leave the outbox for `delivered`.
    let sent: i64 = c
        .query_row("SELECT count(*) FROM delivered", [], |r| r.get(0))
        .unwrap();
    if sent > 0 {
        m.insert("sent".into(), sent);
    }
    m
}

#[test]
fn concurrent_runs_send_every_row_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    let rx = Receiver::start(UdpSocket::bind("127.0.0.1:0").unwrap());
    let dest = format!("udp://127.0.0.1:{}/drain", rx.port);
    const N: usize = 120;
    enqueue(&state, &dest, 0..N);
    let procs: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_cmr-send"))
                .arg("--state")
                .arg(&state)
                .args(["--outbox", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut total_sent = 0;
    let mut runs_that_sent = 0;
    for p in procs {
        let out = p.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let s = j["sent"].as_u64().unwrap();
        total_sent += s;
        runs_that_sent += (s > 0) as usize;
    }
    assert_eq!(total_sent as usize, N);
    let seen = rx.wait_for(N);
    assert_eq!(seen.len(), N, "every message arrived");
    assert!(
        seen.values().all(|&c| c == 1),
        "no duplicates: {:?}",
        seen.values().max()
    );
    for i in 0..N {
        assert_eq!(seen.get(&message(i)), Some(&1));
    }
    assert_eq!(states(&state).get("sent"), Some(&(N as i64)));
    // The runs really ran side by side and shared the work.
    assert!(
        runs_that_sent >= 2,
        "only {runs_that_sent} run(s) sent anything"
    );
    // A further run finds nothing due.
    let out = send(&state, &["--outbox", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["sent"],
        0
    );
}

#[test]
fn destination_down_then_back_gets_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    // A port with nothing behind it.
    let (port, dest) = closed_udp_dest();
    enqueue(&state, &dest, 0..10);
    let out = send(&state, &["--outbox", "--json", "--backoff-base", "0.2"]);
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // One attempt for the destination, the other nine left for a later run.
    assert_eq!(
        (
            j["sent"].as_u64(),
            j["deferred"].as_u64(),
            j["skipped"].as_u64()
        ),
        (Some(0), Some(1), Some(9))
    );
    let list = send(&state, &["--list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 10);
    assert!(rows[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("port unreachable"));
    assert_eq!(rows[0]["attempts"], 1);
    // Still down: a few more runs, all deferred, none lost.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            send(&state, &["--outbox", "--backoff-base", "0.2"])
                .status
                .code(),
            Some(75)
        );
    }
    // Back up on the same port.
    let rx = Receiver::start(UdpSocket::bind(("127.0.0.1", port)).unwrap());
    std::thread::sleep(Duration::from_secs(2));
    let out = send(&state, &["--outbox", "--json", "--backoff-base", "0.2"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = rx.wait_for(10);
    assert_eq!(seen.len(), 10);
    assert!(seen.values().all(|&c| c == 1));
    assert_eq!(states(&state).get("sent"), Some(&10));
}

#[test]
fn dead_letters_are_listed_and_can_be_retried() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    let (port, dest) = closed_udp_dest();
    enqueue(&state, &dest, 0..3);
    // A permanent failure (oversized for UDP) is dead at once.
    {
        let s = State::open(Some(&state)).unwrap();
        s.write(|tx| cmr::state::outbox::enqueue(tx, &dest, &vec![b'x'; 70_000], b"big"))
            .unwrap();
    }
    let opts = ["--outbox", "--backoff-base", "0", "--max-attempts", "2"];
    // Pairs of concurrent runs until nothing is deferred: each row fails twice (one try
    // per destination per run) and is dead-lettered; none is ever sent.
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 20, "still deferring after {rounds} rounds");
        let a = Command::new(env!("CARGO_BIN_EXE_cmr-send"))
            .arg("--state")
            .arg(&state)
            .args(opts)
            .spawn()
            .unwrap();
        let b = send(&state, &opts).status.code();
        let a = a.wait_with_output().unwrap().status.code();
        assert!(matches!(a, Some(0 | 69 | 75)) && matches!(b, Some(0 | 69 | 75)));
        if a != Some(75) && b != Some(75) {
            break;
        }
    }
    let out = send(&state, &opts);
    assert_eq!(out.status.code(), Some(0), "nothing due any more");
    let st = states(&state);
    assert_eq!(st.get("dead"), Some(&4), "{st:?}");
    let list = String::from_utf8(send(&state, &["--list"]).stdout).unwrap();
    assert_eq!(
        list.lines().filter(|l| l.contains(" dead ")).count(),
        4,
        "{list}"
    );
    assert!(list.contains("65507"), "the oversized row says why: {list}");
    let rows: serde_json::Value =
        serde_json::from_slice(&send(&state, &["--list", "--json"]).stdout).unwrap();
    let big_id = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["size"] == 70_000)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["size"] != 70_000)
        .all(|r| r["attempts"] == 2));
    // Requeue all but the oversized one, one by one, and deliver.
    let rx = Receiver::start(UdpSocket::bind(("127.0.0.1", port)).unwrap());
    for r in rows.as_array().unwrap() {
        let id = r["id"].as_i64().unwrap();
        if id != big_id {
            let o = send(&state, &["--retry-dead", &id.to_string()]);
            assert_eq!(
                String::from_utf8_lossy(&o.stdout).trim(),
                "requeued 1 dead row(s)"
            );
        }
    }
    let out = send(&state, &["--outbox", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = rx.wait_for(3);
    assert_eq!(seen.len(), 3);
    assert!(seen.values().all(|&c| c == 1));
    let st = states(&state);
    assert_eq!((st.get("sent"), st.get("dead")), (Some(&3), Some(&1)));
    // --retry-dead without an id requeues what is left.
    let o = send(&state, &["--retry-dead"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "requeued 1 dead row(s)"
    );
    let out = send(&state, &["--outbox"]);
    assert_eq!(
        out.status.code(),
        Some(69),
        "the big one is dead again at once"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("over the 65507-byte UDP limit"));
}

#[test]
fn stale_claims_are_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    let rx = Receiver::start(UdpSocket::bind("127.0.0.1:0").unwrap());
    let dest = format!("udp://127.0.0.1:{}/drain", rx.port);
    enqueue(&state, &dest, 0..2);
    // Row 1: claimed an hour ago by a run that died. Row 2: claimed just now by a live run.
    let c = rusqlite::Connection::open(&state).unwrap();
    c.execute_batch(
        "UPDATE outbox SET state='sending', claim_token='dead-run',
           claimed_at=strftime('%Y-%m-%d %H:%M:%f','now','-3600 seconds') WHERE id=1;
         UPDATE outbox SET state='sending', claim_token='live-run',
           claimed_at=strftime('%Y-%m-%d %H:%M:%f','now') WHERE id=2;",
    )
    .unwrap();
    let out = send(&state, &["--outbox", "--json", "--claim-timeout", "600"]);
    assert_eq!(out.status.code(), Some(0));
    let seen = rx.wait_for(1);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen.get(&message(0)), Some(&1));
    let st: String = c
        .query_row("SELECT state FROM outbox WHERE id=2", [], |r| r.get(0))
        .unwrap();
    assert_eq!(st, "sending", "a fresh claim is left to its run");
}

/// `--outbox --print --for DEST`: the rows for DEST come out as one message stream, in
/// queue order, and are marked sent; rows for other destinations stay queued.
#[test]
fn print_exports_one_destination_as_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.sqlite");
    enqueue(&state, "http://bob.example/cmr", 0..3);
    enqueue(&state, "http://carol.example/cmr", 3..5);
    let out = send(
        &state,
        &["--outbox", "--print", "--for", "http://bob.example/cmr"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let want: Vec<u8> = (0..3).flat_map(message).collect();
    assert_eq!(out.stdout, want, "the three messages for bob, concatenated");
    let rules = cmr::wire::Rules::unchecked_time();
    let stream: Vec<_> = cmr::wire::Reader::new(&out.stdout[..], rules)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stream.len(), 3);
    // Nothing left for bob; carol's two still queued, and a second export prints nothing.
    let list = String::from_utf8(send(&state, &["--list"]).stdout).unwrap();
    assert_eq!(list.matches("carol.example").count(), 2, "{list}");
    assert!(!list.contains("bob.example"), "{list}");
    let again = send(
        &state,
        &["--outbox", "--print", "--for", "http://bob.example/cmr"],
    );
    assert_eq!(again.status.code(), Some(0));
    assert!(again.stdout.is_empty());
    // --print with --json would mix the report into the stream: refused as a usage error.
    let mixed = send(&state, &["--outbox", "--print", "--json"]);
    assert_eq!(mixed.status.code(), Some(64));
}

#[test]
fn bad_peer_options_defer_rows_instead_of_killing_them() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("s.sqlite");
    let dest = "http://127.0.0.1:9/cmr";
    enqueue(&state, dest, 0..2);
    // A peer row edited by hand with an option the sender does not know.
    rusqlite::Connection::open(&state)
        .unwrap()
        .execute(
            "INSERT INTO peers(address, options, configured) VALUES (?1, 'trsut=/x.pem', 1)",
            [dest],
        )
        .unwrap();
    let o = send(&state, &["--outbox"]);
    assert_eq!(o.status.code(), Some(75), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("\"trsut\": unknown"), "{err}");
    let s = states(&state);
    assert_eq!(s.get("queued"), Some(&2), "{s:?}");
    assert_eq!(s.get("dead"), None, "{s:?}");
}

/// No request forgery: with the default policy, a row to a name that resolves to a
/// loopback address is refused when it is sent (after resolution), dead-lettered with the
/// reason, and nothing reaches the receiver; so is a literal one.
#[test]
fn loopback_by_name_is_refused_at_send_time() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.sqlite");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let rx = Receiver::start(sock);
    let by_name = format!("udp://localhost:{port}/drain");
    let literal = format!("udp://127.0.0.1:{port}/drain");
    enqueue_with(&state, &by_name, 0..2, "");
    enqueue_with(&state, &literal, 2..3, "");
    let o = send(&state, &["--outbox"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("localhost resolves to"), "{err}");
    let st = states(&state);
    assert_eq!(st.get("dead").copied(), Some(3), "{st:?} {err}");
    let db = rusqlite::Connection::open(&state).unwrap();
    let why: String = db
        .query_row(
            "SELECT last_error FROM outbox WHERE dest = ?1 LIMIT 1",
            [&by_name],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        why.contains("loopback") && why.contains("send_allow"),
        "{why}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(rx.wait_for(0).is_empty(), "nothing may reach the receiver");
    // Allowed by the operator: the same rows go out once requeued.
    enqueue_with(&state, &literal, 3..4, "127.0.0.0/8");
    let o = send(&state, &["--outbox"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(rx.wait_for(1).len(), 1);
}
