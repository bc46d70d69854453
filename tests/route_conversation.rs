//! Section 3.1's conversation (the Appendix A addresses' roles) between three routers, each
//! with its own state file, the forwards handed over by pipes alone:
//! `cmr-send --outbox --print --for ADDR | cmr-route`.
//!
//!   Alice -> Bob:      X = "What is the largest planet?"
//!   Bob -> Charlie:    X (Charlie's "Mercury is the innermost planet" is Bob's closest context)
//!   Charlie -> Alice, Bob: "Jupiter is the largest planet." (posted by Dave, Charlie's client)
//!
//! Alice-Bob and Charlie-Alice sign with hmac-sha256, Bob-Charlie with sha256 (A2's scheme).

mod common;
use cmr::sign::{self, Key, Scheme};
use cmr::wire::{self, Message};
use std::path::{Path, PathBuf};
use std::process::Output;

const A: &str = "http://alice.example/cmr";
const B: &str = "http://bob.example/cmr";
const C: &str = "http://charlie.example/cmr";
const DAVE: &str = "mailto:dave@charlie.example";
const KAB: &[u8] = b"alice+bob";
const KBC: &[u8] = b"bob+charlie";
const KCA: &[u8] = b"charlie+alice";

fn run(bin: &str, state: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let o = common::run_on(bin, state, args, stdin);
    assert!(
        o.status.success(),
        "{bin} {args:?}: exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn route(state: &Path, args: &[&str], stdin: &[u8]) -> Output {
    run(env!("CARGO_BIN_EXE_cmr-route"), state, args, stdin)
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON ({e}): {l}")))
        .collect()
}

fn parse_all(bytes: &[u8]) -> Vec<Message> {
    let mut r = wire::Reader::new(bytes, wire::Rules::unchecked_time());
    let mut v = Vec::new();
    while let Some(m) = r.next_message().unwrap() {
        v.push(m);
    }
    v
}

/// A2: "timestamps ... strictly descending" down the header, and no two alike.
fn assert_descending(m: &Message) {
    let ts: Vec<_> = m.ids().map(|i| i.time()).collect();
    for w in ts.windows(2) {
        assert!(w[0] > w[1], "header times not strictly descending: {ts:?}");
    }
}

/// Compose a message created at `addr` `days` days ago.
fn compose(addr: &str, days: i64, body: &str) -> Message {
    let now = wire::Timestamp::now();
    let t = wire::Timestamp::from_unix(now.unix_secs() - days * 86400, 0, 0);
    Message::compose(
        &[(t, addr.as_bytes())],
        body.as_bytes(),
        &wire::Rules::default(),
    )
    .unwrap()
}

/// Hand `from`'s outbox rows for `to_addr` over a pipe into `to`'s router; returns the
/// messages handed over (parsed) and the receiving decisions.
fn hand(
    from: &Path,
    to: &Path,
    to_addr: &str,
    scheme: Scheme,
    key: &[u8],
) -> (Vec<Message>, Vec<serde_json::Value>) {
    let sent = run(
        env!("CARGO_BIN_EXE_cmr-send"),
        from,
        &["--outbox", "--print", "--for", to_addr],
        b"",
    );
    let msgs = parse_all(&sent.stdout);
    assert!(!msgs.is_empty(), "nothing queued for {to_addr}");
    for m in &msgs {
        assert_descending(m);
        // Every hop is signed with the key the two peers share, under their scheme.
        sign::verify(m, scheme, &Key::new(key.to_vec()))
            .unwrap_or_else(|e| panic!("hop to {to_addr} ({scheme:?}): {e}"));
    }
    let ds = json_lines(&route(to, &["--json"], &sent.stdout));
    assert_eq!(ds.len(), msgs.len());
    for d in &ds {
        assert_eq!(d["outcome"], "accepted", "{d}");
        assert_eq!(d["signed"], true, "{d}");
        assert_eq!(d["verified"], true, "{d}");
    }
    (msgs, ds)
}

fn cached(state: &Path) -> Vec<Message> {
    let db = rusqlite::Connection::open(state).unwrap();
    let mut st = db.prepare("SELECT bytes FROM cache ORDER BY id").unwrap();
    let rows: Vec<Vec<u8>> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    rows.iter()
        .map(|b| wire::parse(b, &wire::Rules::unchecked_time()).unwrap())
        .collect()
}

fn outbox(state: &Path) -> Vec<Message> {
    let db = rusqlite::Connection::open(state).unwrap();
    let mut st = db.prepare("SELECT bytes FROM outbox ORDER BY id").unwrap();
    let rows: Vec<Vec<u8>> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    rows.iter()
        .map(|b| wire::parse(b, &wire::Rules::unchecked_time()).unwrap())
        .collect()
}

fn body(m: &Message) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}

#[test]
fn section_3_1_conversation_over_pipes() {
    let dir = tempfile::tempdir().unwrap();
    let st = |n: &str| -> PathBuf { dir.path().join(format!("{n}.sqlite")) };
    let (alice, bob, charlie) = (st("alice"), st("bob"), st("charlie"));
    for (s, a) in [(&alice, A), (&bob, B), (&charlie, C)] {
        route(s, &["init", "--address", a], b"");
    }
    let peer = |s: &Path, a: &str, scheme: &str, k: &[u8]| {
        route(
            s,
            &[
                "peer",
                "add",
                a,
                "--scheme",
                scheme,
                "--key-hex",
                &wire::hex(k),
            ],
            b"",
        );
    };
    peer(&alice, B, "hmac-sha256", KAB);
    peer(&alice, C, "hmac-sha256", KCA);
    peer(&bob, A, "hmac-sha256", KAB);
    peer(&bob, C, "sha256", KBC);
    peer(&charlie, A, "hmac-sha256", KCA);
    peer(&charlie, B, "sha256", KBC);

    // History: Alice got M1 from Bob last week; Bob got M2 from Charlie last month.
    let m1 = compose(
        B,
        7,
        "Hello from Bob. I keep a garden and write about tomatoes, compost and bees.",
    );
    let m1 = sign::sign(m1, Scheme::HmacSha256, &Key::new(KAB.to_vec()));
    let d = &json_lines(&route(&alice, &["--json"], &m1.encode()))[0];
    assert_eq!(
        (&d["outcome"], &d["verified"]),
        (&"accepted".into(), &true.into())
    );
    let m2 = compose(
        C,
        30,
        "Mercury is the innermost planet of the solar system; Venus is the second planet.",
    );
    let m2 = sign::sign(m2, Scheme::Sha256, &Key::new(KBC.to_vec()));
    let d = &json_lines(&route(&bob, &["--json"], &m2.encode()))[0];
    assert_eq!(
        (&d["outcome"], &d["verified"]),
        (&"accepted".into(), &true.into())
    );
    let m2_row = d["cache_id"].clone();

    // Dave, a client of Charlie, posts M3.
    run(
        env!("CARGO_BIN_EXE_cmr-post"),
        &charlie,
        &["--from", DAVE],
        b"Dave said last year: Jupiter is the largest planet of the solar system.",
    );

    // Alice posts X; her router queues it for Bob, the only peer she has heard from.
    let o = run(
        env!("CARGO_BIN_EXE_cmr-post"),
        &alice,
        &["--json"],
        b"What is the largest planet of the solar system?",
    );
    let p: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    let x_id = p["message_id"].as_str().unwrap().to_string();
    let fw = p["decision"]["forwards"].as_array().unwrap();
    assert!(fw.iter().any(|f| f["dest"] == B), "{p}");

    // alice -> bob: Bob routes X to Charlie, because Charlie's M2 is his closest context.
    let (xs, ds) = hand(&alice, &bob, B, Scheme::HmacSha256, KAB);
    assert_eq!(xs.len(), 1);
    assert_eq!(xs[0].origin().line(), x_id.as_bytes());
    let d = &ds[0];
    assert_eq!(d["message_id"], x_id.as_str(), "{d}");
    let to_c: Vec<_> = d["forwards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["dest"] == C && f["what"] == "x")
        .collect();
    assert_eq!(to_c.len(), 1, "X not forwarded to Charlie: {d}");
    // Why: X matched Bob's cached M2, which came from Charlie.
    let why = to_c[0]["why"].as_str().unwrap();
    assert!(
        why.contains(&format!("matched cached message {m2_row}")),
        "{why}"
    );
    let best = &d["matched"][0];
    assert_eq!(best["cache_id"], m2_row, "{d}");
    assert_eq!(best["sender"], C, "{d}");

    // bob -> charlie (sha256): Charlie matches X with Dave's M3.
    let (xs, ds) = hand(&bob, &charlie, C, Scheme::Sha256, KBC);
    assert!(xs.iter().any(|m| body(m).contains("largest planet of")));
    let x_at_c = xs.iter().find(|m| body(m).starts_with("What")).unwrap();
    // A3: Bob prepended his line on top of Alice's.
    let hops: Vec<_> = x_at_c.ids().map(|i| i.address_str().into_owned()).collect();
    assert_eq!(hops, [B, A]);
    assert!(ds.iter().any(|d| d["message_id"] == x_id.as_str()));

    // charlie -> alice and charlie -> bob: M3 comes back.
    let (ms, _) = hand(&charlie, &alice, A, Scheme::HmacSha256, KCA);
    assert!(ms.iter().any(|m| body(m).contains("Jupiter")));
    let (ms, _) = hand(&charlie, &bob, B, Scheme::Sha256, KBC);
    assert!(ms.iter().any(|m| body(m).contains("Jupiter")));

    // Both caches hold it, exactly once, with Charlie's hop on top of Dave's post.
    for s in [&alice, &bob] {
        let js: Vec<_> = cached(s)
            .into_iter()
            .filter(|m| body(m).contains("Jupiter"))
            .collect();
        assert_eq!(js.len(), 1, "{s:?}");
        let hops: Vec<_> = js[0].ids().map(|i| i.address_str().into_owned()).collect();
        assert_eq!(hops, [C, DAVE], "{s:?}");
    }

    // Every cached and every queued message, at all three, has strictly descending,
    // unique header times.
    for s in [&alice, &bob, &charlie] {
        for m in cached(s).iter().chain(outbox(s).iter()) {
            assert_descending(m);
        }
    }

    // Alice's client sees the answer.
    let o = run(env!("CARGO_BIN_EXE_cmr-post"), &alice, &["--replies"], b"");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Jupiter is the largest planet"), "{out}");
    assert!(out.contains(&x_id), "{out}");
}
