//! cmr-route and cmr-post end to end: the real binaries on a temporary state file.

mod route_common;
use cmr::sign::{self, Key, Scheme};
use cmr::wire::{self, Timestamp};
use route_common::*;

const ALICE: &str = "http://alice.test/cmr";
const CAROL: &str = "mailto:carol@carol.test";
const DAVE: &str = "udp://192.0.2.4:5000/cmr";

/// Rows of the tables a rejection must not touch, as text, for before/after comparison.
fn snapshot(e: &Env) -> Vec<String> {
    let db = e.db();
    let mut out = Vec::new();
    for (t, cols) in [
        ("cache", "id, hex(bytes), sender, via"),
        ("ids", "hex(key), cache_id"),
        ("outbox", "id, dest, hex(bytes), hex(msg_key), state"),
        ("peers", "address, scheme, hex(key), received, accepted, rejected, forwarded, reputation, last_id"),
        ("clock", "last"),
        ("settings", "key, value"),
    ] {
        let mut st = db.prepare(&format!("SELECT {cols} FROM {t} ORDER BY 1")).unwrap();
        let n = st.column_count();
        let rows = st
            .query_map([], |r| {
                let mut s = String::from(t);
                for i in 0..n {
                    let v: rusqlite::types::Value = r.get(i)?;
                    s.push_str(&format!(" {v:?}"));
                }
                Ok(s)
            })
            .unwrap();
        out.extend(rows.map(|r| r.unwrap()));
    }
    out
}

#[test]
fn duplicate_is_idempotent() {
    let e = Env::new();
    let (c, d) = e.route_json(&msg(ALICE, "Jupiter is the largest planet.").encode(), &[]);
    assert_eq!((c, d["outcome"].as_str()), (0, Some("accepted")));
    let x = msg(CAROL, "Which planet is the largest one?");
    let (_, d1) = e.route_json(&x.encode(), &[]);
    assert_eq!(d1["outcome"], "accepted");
    let forwards = d1["forwards"].as_array().unwrap().len();
    assert!(forwards > 0, "{d1}");
    let (cache, ids, outbox) = (e.count("cache"), e.count("ids"), e.count("outbox"));
    let clock = e
        .db()
        .query_row("SELECT last FROM clock", [], |r| r.get::<_, String>(0))
        .unwrap();

    // The same message again, and a copy of it forwarded by another router: both carry an
    // ID already in the cache.
    let (c2, d2) = e.route_json(&x.encode(), &["--strict"]);
    assert_eq!((c2, d2["outcome"].as_str()), (0, Some("duplicate")), "{d2}");
    assert_eq!(d2["duplicate_of"], d1["cache_id"]);
    let copy = x.prepend(&past(1), b"http://other-router.test/").unwrap();
    let (c3, d3) = e.route_json(&copy.encode(), &[]);
    assert_eq!((c3, d3["outcome"].as_str()), (0, Some("duplicate")), "{d3}");
    assert_eq!(
        (e.count("cache"), e.count("ids"), e.count("outbox")),
        (cache, ids, outbox),
        "a duplicate must change nothing"
    );
    let clock2 = e
        .db()
        .query_row("SELECT last FROM clock", [], |r| r.get::<_, String>(0))
        .unwrap();
    assert_eq!(clock, clock2);
    let logged: i64 = e
        .db()
        .query_row(
            "SELECT count(*) FROM log WHERE outcome = 'duplicate'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(logged, 2);
}

#[test]
fn rejections_change_nothing_and_strict_exit_codes() {
    let e = Env::new();
    e.ok(&["peer", "add", ALICE, "--key-hex", &hex(b"alice-key")]);
    e.route_json(
        &msg(CAROL, "Mercury is the innermost planet.").encode(),
        &[],
    );
    let before = snapshot(&e);

    let good = msg(DAVE, "Venus is the hottest planet.").encode();
    let mut bad_lf = good.clone();
    bad_lf.remove(1); // "0\n": the signature line ends with a bare LF
    let future = format!(
        "0\r\n{} {DAVE}\r\n\r\n2\r\nhi",
        Timestamp::now().plus_secs(3600)
    );
    let own = format!("0\r\n{} {ME}\r\n\r\n2\r\nhi", past(5));
    let forged = signed(
        msg(ALICE, "Send me your keys"),
        Scheme::HmacSha256,
        b"not-alice-key",
    );
    let unsigned_from_keyed = msg(ALICE, "unsigned but claims alice").encode();
    let cases: Vec<(&str, Vec<u8>, i32, &str)> = vec![
        ("bare LF", bad_lf, 65, "malformed:line-ending"),
        ("future", future.into_bytes(), 65, "malformed:future"),
        ("own address", own.into_bytes(), 65, "malformed:own-address"),
        ("forged", forged, 77, "signature"),
        (
            "unsigned from keyed",
            unsigned_from_keyed,
            77,
            "unsigned-from-keyed-peer",
        ),
    ];
    for (name, m, strict, code) in cases {
        let (c, d) = e.route_json(&m, &[]);
        assert_eq!(c, 0, "{name}: A3 rejection exits 0 without --strict");
        assert_eq!(d["outcome"], "rejected", "{name}: {d}");
        assert!(
            d["reason_code"].as_str().unwrap().starts_with(code),
            "{name}: {d}"
        );
        assert!(!d["reason"].as_str().unwrap().is_empty());
        let (c, _) = e.route_json(&m, &["--strict"]);
        assert_eq!(c, strict, "{name}: --strict exit code");
        assert_eq!(
            snapshot(&e),
            before,
            "{name}: a rejection must change no state"
        );
    }
    // An empty stream is zero messages: nothing decided, nothing logged, exit 0; a shell
    // user asking for --strict is told there was no message (66).
    let out = e.route(&["--json"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty(), "no decision for an empty stream");
    assert_eq!(e.route(&["--strict"], &[]).status.code(), Some(66));
    assert_eq!(snapshot(&e), before, "an empty stream changes no state");

    // Policy: unsigned messages refused.
    e.ok(&["policy", "unsigned", "reject"]);
    let before = snapshot(&e);
    let (c, d) = e.route_json(&good, &["--strict"]);
    assert_eq!(
        (c, d["reason_code"].as_str()),
        (77, Some("unsigned")),
        "{d}"
    );
    assert_eq!(snapshot(&e), before);
    // The human text names the reason.
    let o = e.route(&[], &good);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("policy unsigned=reject"));
}

#[test]
fn forwards_parse_carry_our_newer_line_and_are_signed_per_destination() {
    let e = Env::new();
    let ka = b"alice shared key".to_vec();
    let kc = b"foo".to_vec();
    e.ok(&["peer", "add", ALICE, "--key-hex", &hex(&ka)]);
    e.ok(&[
        "peer",
        "add",
        CAROL,
        "--scheme",
        "sha256",
        "--key-hex",
        &hex(&kc),
    ]);
    e.ok(&["policy", "margin", "1"]); // every scored peer gets the message
                                      // A message routed like any other: forwarded past two header lines, and not taken for
                                      // an answer on its way back (it is older than what it matches).
    e.ok(&["policy", "max_hops", "3"]);
    e.ok(&["policy", "answers_return", "0"]);
    let bodies = [
        (
            ALICE,
            "The planet Jupiter is the largest planet in the solar system.",
        ),
        (
            CAROL,
            "The planet Saturn has the most visible rings of any planet.",
        ),
        (DAVE, "The planet Mercury is the closest planet to the sun."),
    ];
    for (from, b) in bodies {
        let m = msg(from, b);
        let raw = match from {
            ALICE => signed(m, Scheme::HmacSha256, &ka),
            CAROL => signed(m, Scheme::Sha256, &kc),
            _ => m.encode(),
        };
        let (c, d) = e.route_json(&raw, &[]);
        assert_eq!((c, d["outcome"].as_str()), (0, Some("accepted")), "{d}");
        if from != DAVE {
            assert_eq!(d["verified"], true);
        }
    }
    // A message forwarded through another router, a keyed peer, about planets: matches
    // all three. (Verified, so its creator may be sent to within the first-contact budget.)
    let kh = b"hop key".to_vec();
    e.ok(&["peer", "add", "http://hop.test/", "--key-hex", &hex(&kh)]);
    let x = msg2(
        "http://hop.test/",
        "http://origin.test/",
        "Which planet is the largest planet?",
    );
    let (_, d) = e.route_json(&signed(x, Scheme::HmacSha256, &kh), &["--explain"]);
    assert!(d["forwards"].as_array().unwrap().len() >= 3, "{d}");

    let db = e.db();
    let mut st = db
        .prepare("SELECT id, dest, bytes, msg_key FROM outbox ORDER BY id")
        .unwrap();
    let rows: Vec<(i64, String, Vec<u8>, Vec<u8>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(rows.len() >= 5, "{rows:?}");
    let mut stamps = Vec::new();
    let mut dests = std::collections::HashSet::new();
    for (id, dest, bytes, key) in &rows {
        // Parses under the strict rules of the receiving peer (its own address may not
        // appear; nothing in the future).
        let rules = wire::Rules {
            own_addresses: vec![dest.as_bytes().to_vec()],
            ..wire::Rules::default()
        };
        let m = wire::parse(bytes, &rules).unwrap_or_else(|err| panic!("outbox {id}: {err}"));
        assert_eq!(
            m.sender().address,
            ME.as_bytes(),
            "outbox {id}: our line first"
        );
        let ids: Vec<_> = m.ids().collect();
        assert!(ids.len() >= 2, "outbox {id}: our line was prepended");
        assert!(
            ids[0].time() > ids[1].time(),
            "outbox {id}: newer timestamp"
        );
        assert_eq!(
            &m.origin().key(),
            key,
            "outbox {id}: msg_key is the creator line"
        );
        stamps.push(ids[0].time());
        match dest.as_str() {
            ALICE => sign::verify(&m, Scheme::HmacSha256, &Key::new(ka.clone())).unwrap(),
            CAROL => sign::verify(&m, Scheme::Sha256, &Key::new(kc.clone())).unwrap(),
            "http://hop.test/" => {
                sign::verify(&m, Scheme::HmacSha256, &Key::new(kh.clone())).unwrap()
            }
            _ => assert!(!m.signature().is_signed(), "outbox {id}: no key, unsigned"),
        }
        assert!(
            dests.insert((dest.clone(), key.clone())),
            "same (dest, message) twice"
        );
    }
    // Clock values: unique and increasing in outbox order.
    for w in stamps.windows(2) {
        assert!(w[1] > w[0], "{} then {}", w[0], w[1]);
    }
    // Y went back to the origin and the hop of X.
    assert!(rows.iter().any(|r| r.1 == "http://origin.test/"));
    assert!(rows.iter().any(|r| r.1 == "http://hop.test/"));
    // outbox --json parses and lists the same rows.
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["outbox", "--json"])).unwrap();
    assert_eq!(v.as_array().unwrap().len(), rows.len());
}

#[test]
fn forged_signature_does_not_lower_the_honest_peers_standing() {
    let e = Env::new();
    let key = b"alice-bob".to_vec();
    e.ok(&["peer", "add", ALICE, "--key-hex", &hex(&key)]);
    let rep = |e: &Env| -> (f64, i64, i64) {
        e.db()
            .query_row(
                "SELECT reputation, rejected, accepted FROM peers WHERE address = ?1",
                [ALICE],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    };
    let (_, d) = e.route_json(
        &signed(msg(ALICE, "hello from alice"), Scheme::HmacSha256, &key),
        &[],
    );
    assert_eq!(d["verified"], true);
    let honest = rep(&e);
    assert_eq!(honest, (1.0, 0, 1));
    for i in 0..5 {
        let forged = signed(
            msg(ALICE, &format!("forged {i}")),
            Scheme::HmacSha256,
            b"guess",
        );
        let (c, d) = e.route_json(&forged, &["--strict", "--via", "http"]);
        assert_eq!((c, d["reason_code"].as_str()), (77, Some("signature")));
    }
    assert_eq!(rep(&e), honest, "forgeries must not touch alice's standing");
    let bad: i64 = e
        .db()
        .query_row(
            "SELECT value FROM counters WHERE scope = 'via:http' AND name = 'bad_signature'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bad, 5);
    // With a reputation floor alice still gets through.
    e.ok(&["policy", "reputation_floor", "0.5"]);
    let (_, d) = e.route_json(
        &signed(msg(ALICE, "still alice"), Scheme::HmacSha256, &key),
        &[],
    );
    assert_eq!(d["outcome"], "accepted", "{d}");
    // But a verified message refused by policy is alice's doing: that does count.
    e.ok(&["policy", "max_body_bytes", "4"]);
    let (_, d) = e.route_json(
        &signed(msg(ALICE, "too long"), Scheme::HmacSha256, &key),
        &[],
    );
    assert_eq!(d["reason_code"], "size");
    let (r, rejected, _) = rep(&e);
    assert_eq!((r, rejected), (1.0, 1), "2 accepted (+2), 1 refused (-1)");
}

#[test]
fn cmr_post_returns_related_messages_and_queues_forwards() {
    let e = Env::new();
    // Which of six cached messages ranks first is the deflate baseline's answer (shared
    // substrings); the word model's idf says little in so small a cache. The mechanism
    // checked here does not depend on the compressor.
    e.ok(&["policy", "compressor", "deflate"]);
    for (from, b) in [
        (ALICE, "Jupiter is the largest planet in the solar system."),
        (ALICE, "Saturn is the second largest planet, with rings."),
        (
            CAROL,
            "Knead the dough, let it rise, then bake the bread for forty minutes.",
        ),
        (
            DAVE,
            "The referee blew the whistle and the match ended in a draw.",
        ),
    ] {
        let (_, d) = e.route_json(&msg(from, b).encode(), &[]);
        assert_eq!(d["outcome"], "accepted");
    }
    let cache = e.count("cache");
    // --search: related messages, nothing stored.
    let o = e.post(
        &["--search", "--json", "-k", "2"],
        b"Which planet is the largest?",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["related"][0]["body"]
            .as_str()
            .unwrap()
            .contains("Jupiter"),
        "{v}"
    );
    assert_eq!(e.count("cache"), cache);

    let o = e.post(&["--json"], b"Which planet is the largest?");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["related"][0]["body"]
            .as_str()
            .unwrap()
            .contains("largest planet"),
        "{v}"
    );
    assert!(v["related"].as_array().unwrap().len() >= 2);
    assert_eq!(e.count("cache"), cache + 1);
    let id = v["message_id"].as_str().unwrap();
    assert!(id.ends_with(ME), "client address defaults to ours: {id}");
    let d = &v["decision"];
    assert_eq!(d["outcome"], "posted");
    assert_eq!(d["best_peer"], ALICE, "{d}");
    let fw = d["forwards"].as_array().unwrap();
    assert!(fw.iter().any(|f| f["dest"] == ALICE), "{d}");
    // The forwards carry our address once, as the creator, with the original ID.
    let db = e.db();
    let bytes: Vec<u8> = db
        .query_row(
            "SELECT bytes FROM outbox WHERE dest = ?1 ORDER BY id DESC",
            [ALICE],
            |r| r.get(0),
        )
        .unwrap();
    let m = wire::parse(&bytes, &wire::Rules::default()).unwrap();
    assert_eq!(m.ids().len(), 1);
    assert_eq!(String::from_utf8_lossy(&m.origin().line()), id);
    // Human output lists the related messages.
    let o = e.post(&[], b"Tell me about the largest planet");
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains("related messages") && t.contains("Jupiter"),
        "{t}"
    );
    // A1: a message arriving later that matches the post is kept for the client.
    let (_, d) = e.route_json(
        &msg(
            CAROL,
            "Jupiter is the largest planet: it is the answer you asked for.",
        )
        .encode(),
        &[],
    );
    let post_match = d["matched"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["origin"].as_str().unwrap().ends_with(ME))
        .unwrap_or_else(|| panic!("{d}"))["origin"]
        .clone();
    let o = e.post(&["--replies", "--json"], b"");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = v["replies"].as_array().unwrap();
    assert!(
        r.iter()
            .any(|x| x["post_id"] == post_match && x["message"]["sender"] == CAROL),
        "{v}"
    );
    let o = e.post(&["--replies", "--json"], b"");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["replies"].as_array().unwrap().len(), 0, "shown once");
    // Empty body: 65, nothing stored.
    let o = e.post(&[], b"");
    assert_eq!(o.status.code(), Some(65));
}

#[test]
fn compensatory_reply_when_the_best_peer_is_a_sender() {
    let e = Env::new();
    // Only 3.2 routing: with A3 matching on, related messages would already have gone
    // back to alice, leaving no compensatory reply to send.
    e.ok(&["policy", "match_k", "0"]);
    e.route_json(
        &msg(
            DAVE,
            "Neptune is the outermost planet, an ice giant planet.",
        )
        .encode(),
        &[],
    );
    e.route_json(
        &msg(CAROL, "Bake the bread in a hot oven until golden.").encode(),
        &[],
    );
    let mut replies = Vec::new();
    for b in [
        "Jupiter is the largest planet; planets orbit the sun.",
        "Saturn is a gas giant planet with rings around the planet.",
        "Mars is the red planet, a small rocky planet.",
    ] {
        let (_, d) = e.route_json(&msg(ALICE, b).encode(), &[]);
        for f in d["forwards"].as_array().unwrap() {
            if f["what"] == "z" {
                replies.push(f["cache_id"].as_i64().unwrap());
            }
        }
    }
    // The first reply is the one Alice gains most from: about her topic (planets), not
    // the bread. (Never the same message to her twice: the next reply is another one.)
    let first: String = e
        .db()
        .query_row(
            "SELECT sender FROM cache WHERE id = ?1",
            [replies[0]],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(first, DAVE, "replies {replies:?}");
    let (_, d) = e.route_json(
        &msg(ALICE, "Venus is the hottest planet, a rocky planet.").encode(),
        &[],
    );
    assert_eq!(d["best_peer"], ALICE, "{d}");
    let fw = d["forwards"].as_array().unwrap();
    let z: Vec<_> = fw.iter().filter(|f| f["what"] == "z").collect();
    assert_eq!(z.len(), 1, "{d}");
    assert_eq!(z[0]["dest"], ALICE);
    // The reply is not one of alice's own messages.
    let zid = z[0]["cache_id"].as_i64().unwrap();
    let sender: String = e
        .db()
        .query_row("SELECT sender FROM cache WHERE id = ?1", [zid], |r| {
            r.get(0)
        })
        .unwrap();
    assert_ne!(sender, ALICE);
    assert!(
        !fw.iter().any(|f| f["what"] == "x" && f["dest"] == ALICE),
        "X never goes back to its sender"
    );
}

#[test]
fn policy_rate_window_and_key_exchange_hand_off() {
    let e = Env::new();
    e.ok(&["policy", "rate_peer", "2/60"]);
    for i in 0..2 {
        let (_, d) = e.route_json(&msg(DAVE, &format!("message {i}")).encode(), &[]);
        assert_eq!(d["outcome"], "accepted");
    }
    let (c, d) = e.route_json(&msg(DAVE, "message 3").encode(), &["--strict"]);
    assert_eq!(
        (c, d["reason_code"].as_str()),
        (77, Some("rate-peer")),
        "{d}"
    );
    let (_, d) = e.route_json(&msg(CAROL, "someone else").encode(), &[]);
    assert_eq!(d["outcome"], "accepted");

    // A body far over the size cap is refused at its length line, before it is read.
    e.ok(&["policy", "max_body_bytes", "10"]);
    let huge = format!(
        "0\r\n{} {CAROL}\r\n\r\n5000000\r\nonly a few bytes",
        past(3)
    );
    let (c, d) = e.route_json(huge.as_bytes(), &["--strict"]);
    assert_eq!(
        (c, d["reason_code"].as_str()),
        (65, Some("malformed:length-too-large")),
        "{d}"
    );
    let (c, d) = e.route_json(&msg(CAROL, "eleven byte").encode(), &["--strict"]);
    assert_eq!((c, d["reason_code"].as_str()), (77, Some("size")), "{d}");
    e.ok(&["policy", "--unset", "max_body_bytes"]);

    // A5: key-exchange bodies are never cached or routed.
    let cache = e.count("cache");
    let (c, d) = e.route_json(
        &msg(CAROL, "Clear key exchange=666f6f").encode(),
        &["--via", "https"],
    );
    assert_eq!(c, 0);
    assert_ne!(d["outcome"], "accepted");
    assert_eq!(e.count("cache"), cache);
}

#[test]
fn administration() {
    let e = Env::new();
    // Bad values: 78; unknown keys: 64; good values are normalised.
    assert_eq!(
        e.route(&["policy", "unsigned", "perhaps"], b"")
            .status
            .code(),
        Some(78)
    );
    assert_eq!(
        e.route(&["policy", "no_such_key", "1"], b"").status.code(),
        Some(64)
    );
    assert_eq!(
        e.ok(&["policy", "unsigned", "REJECT"]).trim(),
        "unsigned = reject"
    );
    assert_eq!(e.ok(&["policy", "unsigned"]).trim(), "reject");
    e.ok(&["policy", "--unset", "unsigned"]);
    assert_eq!(e.ok(&["policy", "unsigned"]).trim(), "accept");
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["policy", "--json"])).unwrap();
    assert_eq!(v["metric"]["value"], "conditional");
    // Peers.
    assert_eq!(
        e.route(&["peer", "add", ALICE, "--key-hex", "xyz"], b"")
            .status
            .code(),
        Some(64)
    );
    assert_eq!(
        e.route(&["peer", "add", ALICE, "--scheme", "md5"], b"")
            .status
            .code(),
        Some(64)
    );
    e.ok(&["peer", "add", ALICE, "--key-hex", "666f6f"]);
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["peer", "list", "--json"])).unwrap();
    assert_eq!(v[0]["address"], ALICE);
    assert_eq!(v[0]["has_key"], true);
    assert!(
        !e.ok(&["peer", "list", "--json"]).contains("666f6f"),
        "keys are never printed"
    );
    // The key can come on standard input (kept out of the process list).
    let o = e.route(&["peer", "add", CAROL, "--key-hex", "-"], b"666f6f\n");
    assert!(o.status.success());
    let key: Vec<u8> = e
        .db()
        .query_row("SELECT key FROM peers WHERE address = ?1", [CAROL], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(key, b"foo");
    // Per-peer sending options for http(s) peers, checked before they are stored.
    let web = "https://web.test/cmr";
    e.ok(&[
        "peer",
        "add",
        web,
        "--options",
        "trust=/etc/cmr/web.pem timeout=20",
    ]);
    assert!(e
        .ok(&["peer", "list"])
        .contains("options=\"trust=/etc/cmr/web.pem timeout=20\""));
    for (bad, why) in [
        ("trsut=/x.pem", "unknown"),
        ("timeout=soon", "seconds"),
        ("handshake=ftp://x", "not an http(s) address"),
    ] {
        let o = e.route(&["peer", "add", web, "--options", bad], b"");
        assert_eq!(o.status.code(), Some(64), "{bad}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(why),
            "{bad}: {o:?}"
        );
    }
    let o = e.route(&["peer", "add", CAROL, "--options", "timeout=5"], b"");
    assert_eq!(o.status.code(), Some(64), "options are for http(s) peers");
    let opts = |e: &Env| -> Option<String> {
        e.db()
            .query_row("SELECT options FROM peers WHERE address = ?1", [web], |r| {
                r.get(0)
            })
            .unwrap()
    };
    assert_eq!(
        opts(&e).as_deref(),
        Some("trust=/etc/cmr/web.pem timeout=20"),
        "refusals change nothing"
    );
    e.ok(&["peer", "add", web, "--options", ""]);
    assert_eq!(opts(&e), None);
    e.ok(&["peer", "remove", web]);
    e.ok(&["peer", "remove", CAROL]);
    e.ok(&["peer", "remove", ALICE]);
    assert_eq!(
        e.route(&["peer", "remove", ALICE], b"").status.code(),
        Some(66)
    );
    // Cache.
    let m = msg(DAVE, "cached body text");
    e.route_json(&m.encode(), &[]);
    // The baselines' full-text index exists only while one of them is selected, and is
    // built from the cache when it is.
    let fts_tables = |e: &Env| -> i64 {
        e.db()
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'cache_fts'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(fts_tables(&e), 0, "no full-text index with the model");
    e.ok(&["policy", "compressor", "deflate"]);
    let indexed: i64 = e
        .db()
        .query_row(
            "SELECT count(*) FROM cache_fts WHERE cache_fts MATCH 'cached'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexed, 1, "built from the cache");
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["cache", "list", "--json"])).unwrap();
    assert_eq!(v[0]["sender"], DAVE);
    let id_line = String::from_utf8_lossy(&m.origin().line()).into_owned();
    assert!(e
        .ok(&["cache", "show", &id_line])
        .contains("cached body text"));
    let raw = e.route(&["cache", "show", "1", "--raw"], b"");
    assert_eq!(raw.stdout, m.encode());
    assert_eq!(
        e.route(&["cache", "show", "99"], b"").status.code(),
        Some(66)
    );
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["stats", "--json"])).unwrap();
    assert_eq!(v["cache"], 1);
    // Prune: the row goes, its IDs stay, so the message is still a duplicate.
    let m2 = msg(CAROL, "another cached body");
    e.route_json(&m2.encode(), &[]);
    assert_eq!(
        e.ok(&["cache", "prune", "--keep", "1"]).trim(),
        "removed 1 cached message(s)"
    );
    assert_eq!(e.count("cache"), 1);
    let (_, d) = e.route_json(&m.encode(), &[]);
    assert_eq!(d["outcome"], "duplicate");
    let o = e.post(&["--search", "--json"], b"cached body text");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rel = v["related"].as_array().unwrap();
    assert!(rel.iter().all(|r| r["body"] != "cached body text"), "{v}");
    e.ok(&["cache", "prune", "--keep", "0"]);
    assert_eq!(e.count("cache"), 0);
    let indexed: i64 = e
        .db()
        .query_row(
            "SELECT count(*) FROM cache_fts WHERE cache_fts MATCH 'cached'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexed, 0, "pruned bodies leave the full-text index");
    e.ok(&["policy", "--unset", "compressor"]);
    assert_eq!(
        fts_tables(&e),
        0,
        "dropped with the switch back to the model"
    );
    // --dry-run decides and reports but stores nothing; --explain speaks to people.
    let before = (e.count("cache"), e.count("log"), e.count("outbox"));
    let o = e.route(
        &["--dry-run", "--explain"],
        &msg(CAROL, "a dry run").encode(),
    );
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains("decision:   accepted") && t.contains("sender:     mailto:carol"),
        "{t}"
    );
    assert_eq!(
        (e.count("cache"), e.count("log"), e.count("outbox")),
        before
    );
    // Explicit `route` subcommand and FILE argument.
    let f = e.dir.path().join("m.txt");
    std::fs::write(&f, msg(CAROL, "from a file").encode()).unwrap();
    assert!(e
        .ok(&["route", f.to_str().unwrap()])
        .starts_with("accepted"));
    assert_eq!(e.route(&["/no/such/file"], b"").status.code(), Some(66));
    // A stream: a message refused for its content (our own address in its header) does
    // not stop the ones after it.
    let mut s = msg(CAROL, "first of three").encode();
    s.extend(format!("0\r\n{} {ME}\r\n\r\n4\r\nmine", past(4)).into_bytes());
    s.extend(msg(DAVE, "third of three").encode());
    let o = e.route(&["--json", "--strict"], &s);
    assert_eq!(o.status.code(), Some(65));
    let ds: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcomes: Vec<_> = ds.iter().map(|d| d["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["accepted", "rejected", "accepted"]);
    assert!(
        ds[1]["reason"]
            .as_str()
            .unwrap()
            .contains("message at byte"),
        "{}",
        ds[1]
    );
    // A stream of two messages.
    let mut s = msg(CAROL, "one").encode();
    s.extend(msg(DAVE, "two").encode());
    assert_eq!(e.ok(&["-q"]).len(), 0);
    let out = String::from_utf8_lossy(&e.route(&["--json"], &s).stdout).into_owned();
    assert_eq!(out.lines().count(), 2);
    // A state file that was never initialised: 78.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cmr-route"))
        .arg("--state")
        .arg(e.dir.path().join("fresh.sqlite"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(78));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&e.state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn no_good_match_is_not_forwarded() {
    // 3.3: "establish a distance threshold ... such that if there is no good match then the
    // message is discarded" (kept in the cache, sent nowhere).
    let e = Env::new();
    for (from, b) in [
        (ALICE, "Jupiter is the largest planet in the solar system."),
        (CAROL, "Knead the dough, let it rise, then bake the bread."),
        (DAVE, "The referee blew the whistle and the match ended."),
    ] {
        e.route_json(&msg(from, b).encode(), &[]);
    }
    // Incompressible bytes: no peer's context helps.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let noise: String = (0..300)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                    [(x % 64) as usize],
            )
        })
        .collect();
    let (_, d) = e.route_json(&msg("http://stranger.test/", &noise).encode(), &[]);
    assert_eq!(d["outcome"], "accepted");
    assert!(d["scores"][0]["score"].as_f64().unwrap() > 0.95, "{d}");
    assert_eq!(d["forwards"].as_array().unwrap().len(), 0, "{d}");
    assert!(
        d["notes"][0]
            .as_str()
            .unwrap()
            .contains("distance_threshold"),
        "{d}"
    );
    // The same with the threshold raised: now it goes to the best peer.
    e.ok(&["policy", "distance_threshold", "2"]);
    let (_, d) = e.route_json(&msg("http://stranger2.test/", &noise[..200]).encode(), &[]);
    assert!(!d["forwards"].as_array().unwrap().is_empty(), "{d}");
}

#[test]
fn key_exchange_messages_are_not_cached_and_replays_are_duplicates() {
    let e = Env::new();
    let peer = "https://peer.test/cmr";
    let m = msg(peer, "Clear key exchange=00112233445566778899aabbccddeeff.");
    let (c, d) = e.route_json(&m.encode(), &["--via", "https", "--strict"]);
    assert_eq!((c, d["outcome"].as_str()), (0, Some("key-exchange")), "{d}");
    assert_eq!(e.count("cache"), 0, "A5.1: never cached");
    assert_eq!(e.count("outbox"), 0, "never routed");
    let key: Vec<u8> = e
        .db()
        .query_row("SELECT key FROM peers WHERE address = ?1", [peer], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(!key.is_empty());
    // The same message again (a replay) does nothing.
    let (c, d) = e.route_json(&m.encode(), &["--via", "https", "--strict"]);
    assert_eq!((c, d["outcome"].as_str()), (0, Some("duplicate")), "{d}");
    let key2: Vec<u8> = e
        .db()
        .query_row("SELECT key FROM peers WHERE address = ?1", [peer], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(key, key2);
}

/// The decision log is bounded: every 100 rows, rows beyond `log_keep` and rows older than
/// `log_keep_days` are pruned, oldest first, in the transaction that writes the row.
#[test]
fn decision_log_is_pruned_by_count_and_by_age() {
    let e = Env::new();
    let ids = |e: &Env| -> (i64, i64, i64) {
        e.db()
            .query_row("SELECT count(*), min(id), max(id) FROM log", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap()
    };
    // One message, then 249 copies of it in the same stream: each is its own decision
    // (the copies are duplicates), so the stream writes 250 log rows.
    let one = msg(ALICE, "Jupiter is the largest planet.").encode();
    let stream = one.repeat(250);
    e.ok(&["policy", "log_keep", "10"]);
    let o = e.route(&["-q", "-"], &stream);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (n, lo, hi) = ids(&e);
    assert_eq!(hi, 250, "the newest row is kept");
    // Pruned at row 200 down to the newest 10 (191..=200), then 50 more rows.
    assert_eq!((n, lo), (60, 191), "at most log_keep + 100 rows");
    let log = e.ok(&["log", "--limit", "1"]);
    assert!(log.contains("duplicate"), "{log}");

    // By age: no count limit; rows written "long ago" go at the next prune, the rest stay.
    e.ok(&["policy", "log_keep", "0"]);
    e.ok(&["policy", "log_keep_days", "30"]);
    e.db()
        .execute(
            "UPDATE log SET at = '2020/01/01 00:00:00.5' WHERE id < 230",
            [],
        )
        .unwrap();
    let o = e.route(&["-q", "-"], &one.repeat(50));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (n, lo, hi) = ids(&e);
    assert_eq!(
        (n, lo, hi),
        (71, 230, 300),
        "rows older than 30 days pruned at row 300"
    );
    // With both limits off nothing is pruned.
    e.ok(&["policy", "log_keep_days", "0"]);
    e.db()
        .execute("UPDATE log SET at = '2020/01/01 00:00:00'", [])
        .unwrap();
    let o = e.route(&["-q", "-"], &one.repeat(100));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(ids(&e), (171, 230, 400));
}

/// A router with several addresses: a post created under its primary (http) address goes
/// to an ssh peer under our ssh address, the one that peer shares its key with, so the
/// peer can check the signature; the creator line below it is kept.
#[test]
fn a_post_goes_out_under_our_address_for_the_destination() {
    let e = Env::new();
    let ssh_me = "ssh://router@router.test/cmr";
    let bob = "ssh://bob@bob.test/cmr";
    let key = b"bob and router share this key";
    let o = e.route(&["init", "--address", ME, "--address", ssh_me], b"");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = e.route(
        &[
            "peer",
            "add",
            bob,
            "--scheme",
            "hmac-sha256",
            "--key-hex",
            &hex(key),
        ],
        b"",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let body = "Saturn has rings and dozens of moons; Titan is the largest of Saturn's moons.";
    let (_, d) = e.route_json(&signed(msg(bob, body), Scheme::HmacSha256, key), &[]);
    assert_eq!(d["outcome"], "accepted", "{d}");
    assert_eq!(d["verified"], true, "{d}");

    let o = e.post(
        &["--json"],
        b"How many moons does Saturn have, and which is the largest?",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes: Vec<u8> = e
        .db()
        .query_row("SELECT bytes FROM outbox WHERE dest = ?1", [bob], |r| {
            r.get(0)
        })
        .expect("the post is queued for bob");
    let f = wire::parse(&bytes, &wire::Rules::default()).unwrap();
    let lines: Vec<String> = f.ids().map(|i| i.address_str().into_owned()).collect();
    assert_eq!(
        lines,
        vec![ssh_me.to_string(), ME.to_string()],
        "our ssh line, then the creator"
    );
    assert!(
        sign::verify(&f, Scheme::HmacSha256, &sign::Key::new(key.to_vec())).is_ok(),
        "signed with the key bob shares with our ssh address"
    );
}

/// 3.1: a post from our own client reaches the best peer even when no peer is within the
/// 3.3 distance threshold (`post_routing best`, the default); `post_routing threshold`
/// holds posts to the threshold as well. Relayed messages keep the threshold either way.
#[test]
fn a_clients_post_reaches_the_best_peer_even_without_a_good_match() {
    let e = Env::new();
    e.route_json(
        &msg(ALICE, "Knead the dough, let it rise, then bake the bread.").encode(),
        &[],
    );
    let post = |body: &[u8]| -> serde_json::Value {
        let o = e.post(&["--json", "--explain"], body);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        serde_json::from_str(&out).unwrap_or_else(|err| panic!("{err}: {out}"))
    };
    let v = post(b"Which moon of Saturn is the largest?");
    let d = &v["decision"];
    assert!(d["scores"][0]["score"].as_f64().unwrap() > 0.95, "{v}");
    let f = d["forwards"].as_array().unwrap();
    assert_eq!(f.len(), 1, "{v}");
    assert_eq!(f[0]["dest"], ALICE);
    assert!(d["notes"].to_string().contains("post_routing"), "{v}");

    e.ok(&["policy", "post_routing", "threshold"]);
    let v = post(b"How many rings does Neptune have?");
    assert_eq!(
        v["decision"]["forwards"].as_array().unwrap().len(),
        0,
        "{v}"
    );
    let o = e.route(&["policy", "post_routing", "sometimes"], b"");
    assert_eq!(
        o.status.code(),
        Some(78),
        "a bad value is refused as a configuration error"
    );
}

/// 3.3 / A3 "if it cannot keep up with input": the global window counts every sender; past
/// it a new message from anyone is refused (77 with --strict), and nothing is stored.
#[test]
fn global_rate_window_refuses_everyone_past_it() {
    let e = Env::new();
    e.ok(&["policy", "rate_global", "3/60"]);
    for (i, from) in [ALICE, CAROL, DAVE].iter().enumerate() {
        let (_, d) = e.route_json(&msg(from, &format!("message {i}")).encode(), &[]);
        assert_eq!(d["outcome"], "accepted", "{d}");
    }
    let before = e.count("cache");
    let (c, d) = e.route_json(
        &msg("http://erin.test/", "one too many").encode(),
        &["--strict"],
    );
    assert_eq!(
        (c, d["reason_code"].as_str()),
        (77, Some("rate-global")),
        "{d}"
    );
    assert_eq!(e.count("cache"), before, "a refusal stores nothing");
    e.ok(&["policy", "rate_global", "off"]);
    let (_, d) = e.route_json(&msg("http://erin.test/", "now it fits").encode(), &[]);
    assert_eq!(d["outcome"], "accepted", "{d}");
}

#[test]
fn reindex_teaches_the_engine_what_the_cache_holds() {
    let e = Env::new();
    e.route_json(&msg(CAROL, "Bake the bread in a hot oven.").encode(), &[]);
    // A cached row the engine never saw (a cache copied in by other means).
    let planets = msg(DAVE, "Jupiter is the largest planet of all the planets.");
    let state = cmr::state::State::open(Some(&e.state)).unwrap();
    let row = state
        .write(|tx| cmr::state::cache::insert(tx, &planets, DAVE, "pipe", false, false))
        .unwrap();
    drop(state);
    let o = e.ok(&["cache", "reindex", "--json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&o).unwrap()["learned"],
        1
    );
    assert_eq!(
        e.ok(&["cache", "reindex"]).trim(),
        "learned 0 cached message(s)"
    );
    // The engine now knows it: a question about planets matches that row.
    let (_, d) = e.route_json(&msg(ALICE, "Which planet is the largest?").encode(), &[]);
    assert_eq!(d["matched"][0]["cache_id"], row, "{d}");
}

#[test]
fn a_peer_under_two_addresses_is_one_peer() {
    let e = Env::new();
    let (bob_mail, bob_web) = ("mailto:bob@bob.test", "http://bob.test/cmr");
    // Bob wrote by mail before anyone knew it was him.
    e.route_json(
        &msg(bob_mail, "Saturn is the planet with the rings.").encode(),
        &[],
    );
    assert_eq!(
        e.ok(&["peer", "alias", bob_mail, bob_web]).trim(),
        format!(
            "{bob_mail} is an address of {bob_web} (1 cached message(s) from it now in {bob_web}'s context)"
        )
    );
    for bad in [
        vec![bob_web, bob_web],            // itself
        vec!["mailto:x@x.test", bob_mail], // an alias is nobody's peer
        vec![bob_web, "http://z.test/"],   // a peer with aliases is nobody's alias
        vec![ME, bob_web],                 // ours
    ] {
        let mut a = vec!["peer", "alias"];
        a.extend(&bad);
        assert_eq!(e.route(&a, b"").status.code(), Some(64), "{bad:?}");
    }
    e.route_json(
        &msg(bob_web, "Jupiter is the largest planet of all.").encode(),
        &[],
    );
    e.route_json(
        &msg(bob_mail, "Mercury is the planet nearest the sun.").encode(),
        &[],
    );
    e.route_json(&msg(CAROL, "Bake the bread in a hot oven.").encode(), &[]);
    let context_of = |e: &Env, addr: &str| -> i64 {
        e.db()
            .query_row(
                "SELECT messages FROM engine_peers WHERE address = ?1",
                [addr],
                |r| r.get(0),
            )
            .unwrap_or(0)
    };
    assert_eq!((context_of(&e, bob_web), context_of(&e, bob_mail)), (3, 0));
    // One Bob to the engine: his two addresses are one context, scored under his address.
    let (_, d) = e.route_json(&msg(DAVE, "Which planet has rings?").encode(), &[]);
    let scored: Vec<&str> = d["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["peer"].as_str().unwrap())
        .collect();
    assert!(
        scored.contains(&bob_web) && !scored.contains(&bob_mail),
        "{d}"
    );
    assert_eq!(d["best_peer"], bob_web, "{d}");
    // A message Bob sent by mail goes to neither of his addresses, and none of his own
    // messages go back to him: only a 3.2 compensatory reply may.
    let (_, d) = e.route_json(&msg(bob_mail, "Mars is the red planet.").encode(), &[]);
    for f in d["forwards"].as_array().unwrap() {
        if f["dest"] == bob_web || f["dest"] == bob_mail {
            assert_eq!(f["what"], "z", "{d}");
        }
    }
    assert!(e
        .ok(&["peer", "list"])
        .contains(&format!("alias-of={bob_web}")));
    e.ok(&["peer", "alias", bob_mail, "--remove"]);
    assert!(!e.ok(&["peer", "list"]).contains("alias-of"));
    let again = e.route(&["peer", "alias", bob_mail, "--remove"], b"");
    assert_eq!(again.status.code(), Some(66), "no such alias any more");
    // His mail back in its own context: Saturn, Mercury and Mars.
    assert_eq!((context_of(&e, bob_web), context_of(&e, bob_mail)), (1, 3));
    assert_engine_matches_cache(&e);
}
