//! Key exchange (A5) between two state files, through the real binaries: requests from
//! `cmr-keyx init --print` piped into `cmr-route`, replies taken from the responder's outbox
//! and piped into the initiator's `cmr-route`.

mod common;
use cmr::sign::{self, Key, Scheme};
use cmr::state::State;
use cmr::wire::{self, Message, Timestamp};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Instant;

const ALICE: &str = "http://alice.com/cmr";
const BOB: &str = "http://bob.com/";

struct Peer {
    _dir: tempfile::TempDir,
    state: PathBuf,
    addr: &'static str,
}

use common::run_on as run;

impl Peer {
    fn new(addr: &'static str) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.sqlite");
        let p = Peer {
            _dir: dir,
            state,
            addr,
        };
        p.route_ok(&["init", "--address", addr]);
        p
    }
    fn route(&self, args: &[&str], stdin: &[u8]) -> Output {
        run(env!("CARGO_BIN_EXE_cmr-route"), &self.state, args, stdin)
    }
    fn route_ok(&self, args: &[&str]) -> String {
        let o = self.route(args, b"");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn keyx(&self, args: &[&str]) -> Output {
        run(env!("CARGO_BIN_EXE_cmr-keyx"), &self.state, args, b"")
    }
    fn keyx_ok(&self, args: &[&str]) -> Vec<u8> {
        let o = self.keyx(args);
        assert!(
            o.status.success(),
            "cmr-keyx {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    }
    /// Route one message: (exit code, decision).
    fn receive(&self, msg: &[u8], via: &str) -> (i32, serde_json::Value) {
        self.receive_with(msg, &["--via", via])
    }
    /// Route one message with more options: (exit code, decision).
    fn receive_with(&self, msg: &[u8], opts: &[&str]) -> (i32, serde_json::Value) {
        let mut args = vec!["--json", "--strict"];
        args.extend_from_slice(opts);
        args.push("-");
        let o = self.route(&args, msg);
        let out = String::from_utf8_lossy(&o.stdout);
        let v = serde_json::from_str(out.lines().next().unwrap_or("null")).unwrap_or_else(|e| {
            panic!(
                "bad JSON ({e}): {out} / {}",
                String::from_utf8_lossy(&o.stderr)
            )
        });
        (o.status.code().unwrap_or(-1), v)
    }
    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.state).unwrap()
    }
    fn key_for(&self, peer: &str) -> Option<Vec<u8>> {
        self.db()
            .query_row("SELECT key FROM peers WHERE address = ?1", [peer], |r| {
                r.get::<_, Option<Vec<u8>>>(0)
            })
            .ok()
            .flatten()
    }
    /// Take every queued message for `dest` out of the outbox (as a sender would).
    fn take_outbox(&self, dest: &str) -> Vec<Vec<u8>> {
        let db = self.db();
        let rows: Vec<(i64, Vec<u8>)> = db
            .prepare("SELECT id, bytes FROM outbox WHERE dest = ?1 ORDER BY id")
            .unwrap()
            .query_map([dest], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (id, _) in &rows {
            db.execute("DELETE FROM outbox WHERE id = ?1", [id])
                .unwrap();
        }
        rows.into_iter().map(|r| r.1).collect()
    }
    fn count(&self, table: &str) -> i64 {
        self.db()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }
    /// A new message from us to `to`, signed with the key our state file holds for it.
    fn signed_message(&self, to: &str, body: &str) -> Vec<u8> {
        let key = self.key_for(to).expect("a key");
        let m = Message::compose(
            &[(past(5), self.addr.as_bytes())],
            body.as_bytes(),
            &wire::Rules::default(),
        )
        .unwrap();
        sign::sign(m, Scheme::HmacSha256, &Key::new(key)).encode()
    }
}

fn past(secs: i64) -> Timestamp {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(1);
    let n = Timestamp::now();
    Timestamp::from_unix(
        n.unix_secs() - secs,
        N.fetch_add(1, Ordering::Relaxed) * 1000,
        6,
    )
}

fn body_of(raw: &[u8]) -> String {
    let m = wire::parse(raw, &wire::Rules::unchecked_time()).unwrap();
    String::from_utf8_lossy(m.body()).into_owned()
}

/// Signed messages both ways verify with the exchanged key.
fn signed_messages_verify(a: &Peer, b: &Peer) {
    for (from, to) in [(a, b), (b, a)] {
        let m = from.signed_message(to.addr, "What is the largest planet?");
        let (c, d) = to.receive(&m, "http");
        assert_eq!(c, 0, "{d}");
        assert_eq!(d["outcome"], "accepted", "{d}");
        assert_eq!(d["verified"], true, "{d}");
    }
}

/// A complete exchange over pipes; returns the pair.
fn exchange(method: &str, derive: &str) -> (Peer, Peer) {
    let (a, b) = (Peer::new(ALICE), Peer::new(BOB));
    b.keyx_ok(&["set", ALICE, "--derive", derive]);
    let req = a.keyx_ok(&["init", BOB, method, "--derive", derive, "--print"]);
    assert!(req.starts_with(b"0\r\n"), "A5.1: no key yet, unsigned");
    let cache_b = b.count("cache");
    let (c, d) = b.receive(&req, "pipe");
    assert_eq!((c, d["outcome"].as_str()), (0, Some("key-exchange")), "{d}");
    assert_eq!(
        b.count("cache"),
        cache_b,
        "control messages are never cached"
    );
    let replies = b.take_outbox(ALICE);
    assert_eq!(replies.len(), 1);
    assert!(replies[0].starts_with(b"0\r\n"), "reply unsigned too");
    let (c, d) = a.receive(&replies[0], "pipe");
    assert_eq!((c, d["outcome"].as_str()), (0, Some("key-exchange")), "{d}");
    assert_eq!(a.count("cache"), 0);
    assert_eq!(
        a.count("keyx_pending"),
        0,
        "pending state deleted after use"
    );
    let (ka, kb) = (a.key_for(BOB).unwrap(), b.key_for(ALICE).unwrap());
    assert_eq!(ka, kb);
    if derive == "hardened" {
        assert_eq!(ka.len(), 32);
    } else {
        assert!(ka.len() > 200, "spec: the secret's bytes ({})", ka.len());
    }
    signed_messages_verify(&a, &b);
    (a, b)
}

#[test]
fn rsa_exchange_over_pipes_both_derivations() {
    let (a, _) = exchange("--rsa", "hardened");
    let show: serde_json::Value =
        serde_json::from_slice(&a.keyx_ok(&["show", BOB, "--json"])).unwrap();
    assert_eq!(show["has_key"], true);
    assert_eq!(show["last_method"], "rsa");
    assert!(show.get("key").is_none(), "keys are never printed");
    exchange("--rsa", "spec");
}

#[test]
fn show_prints_a_key_id_both_ends_agree_on() {
    let (a, b) = exchange("--dh", "hardened");
    let show = |p: &Peer, peer: &str| -> serde_json::Value {
        serde_json::from_slice(&p.keyx_ok(&["show", peer, "--json"])).unwrap()
    };
    let (sa, sb) = (show(&a, BOB), show(&b, ALICE));
    let id = sa["key_id"].as_str().expect("a key id").to_string();
    assert_eq!(id.len(), 16, "{sa}");
    assert_eq!(sa["key_id"], sb["key_id"], "same key, same id");
    let key = a.key_for(BOB).unwrap();
    assert!(!id.contains(&wire::hex(&key)[..16]), "not the key itself");
    // Another key, another id; the text form shows it too.
    a.keyx_ok(&["set", BOB, "--key-hex", "00112233445566778899aabbccddeeff"]);
    assert_ne!(show(&a, BOB)["key_id"], sb["key_id"]);
    let text = String::from_utf8(a.keyx_ok(&["show", BOB])).unwrap();
    assert!(
        text.contains(&format!(
            "key {}",
            show(&a, BOB)["key_id"].as_str().unwrap()
        )),
        "{text}"
    );
    a.keyx_ok(&["forget", BOB]);
    assert!(show(&a, BOB)["key_id"].is_null() || a.keyx(&["show", BOB]).status.code() == Some(66));
}

#[test]
fn dh_exchange_over_pipes_both_derivations() {
    exchange("--dh", "hardened");
    exchange("--dh", "spec");
}

#[test]
fn init_queues_the_request_in_the_outbox() {
    let (a, b) = (Peer::new(ALICE), Peer::new(BOB));
    let o = a.keyx_ok(&["init", BOB, "--dh", "--group", "15", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o).unwrap();
    assert_eq!(v["method"], "dh");
    assert!(v["outbox_id"].as_i64().is_some());
    let q = a.take_outbox(BOB);
    assert_eq!(q.len(), 1);
    assert!(body_of(&q[0]).starts_with("DH key exchange request=5,ffffffffffffffffc90fdaa2"));
    assert!(body_of(&q[0]).ends_with('.'));
    // A second init while one is pending: refused (64) unless --replace.
    let o = a.keyx(&["init", BOB, "--dh"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already pending"));
    a.keyx_ok(&["init", BOB, "--dh", "--replace"]);
    let q = a.take_outbox(BOB);
    let (_, d) = b.receive(&q[0], "pipe");
    assert_eq!(d["outcome"], "key-exchange", "{d}");
    let (_, d) = a.receive(&b.take_outbox(ALICE)[0], "pipe");
    assert_eq!(d["outcome"], "key-exchange", "{d}");
    assert_eq!(a.key_for(BOB), b.key_for(ALICE));
    let list: serde_json::Value = serde_json::from_slice(&a.keyx_ok(&["list", "--json"])).unwrap();
    assert_eq!(list[0]["peer"], BOB);
    assert_eq!(list[0]["has_key"], true);
}

#[test]
fn clear_keys_only_over_secure_channels() {
    let a = Peer::new(ALICE);
    // The initiator refuses to send a clear key over an insecure channel.
    let o = a.keyx(&["init", BOB, "--clear", "--print"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("HTTPS or SSH"));
    let o = a.keyx(&["init", BOB, "--clear", "--via", "udp", "--print"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(a.key_for(BOB).is_none());
    // An https:// or ssh: address is secure without --via.
    let other = Peer::new(ALICE);
    let m = other.keyx_ok(&["init", "https://bob.com/", "--clear", "--print"]);
    assert!(body_of(&m).starts_with("Clear key exchange="));
    assert_eq!(other.key_for("https://bob.com/").unwrap().len(), 32);
    let msg = a.keyx_ok(&["init", BOB, "--clear", "--via", "https", "--print"]);
    assert!(body_of(&msg).starts_with("Clear key exchange="));
    let ka = a.key_for(BOB).unwrap();
    // The receiver: refused over http, udp and mail, accepted over ssh and https.
    for via in ["http", "udp", "mail"] {
        let b = Peer::new(BOB);
        let (c, d) = b.receive(&msg, via);
        assert_eq!(c, 77, "{via}: {d}");
        assert_eq!(d["reason_code"], "key-exchange", "{d}");
        assert!(d["reason"].as_str().unwrap().contains("not secure"), "{d}");
        assert!(b.key_for(ALICE).is_none(), "{via}: no key change");
        assert_eq!(b.count("outbox"), 0);
    }
    for via in ["ssh", "https"] {
        let b = Peer::new(BOB);
        let (c, d) = b.receive(&msg, via);
        assert_eq!(
            (c, d["outcome"].as_str()),
            (0, Some("key-exchange")),
            "{via}: {d}"
        );
        assert_eq!(b.key_for(ALICE).unwrap(), ka, "{via}");
        signed_messages_verify(&a, &b);
    }
}

#[test]
fn hkdf_check_vector_end_to_end() {
    // Alice sends the clear key "foo" over HTTPS; Bob (http://bob.com/) derives the check
    // vector with the hardened derivation.
    let (a, b) = (Peer::new(ALICE), Peer::new(BOB));
    for p in [&a, &b] {
        p.keyx_ok(&["policy", "keyx_clear_min_bytes", "3"]);
    }
    let msg = a.keyx_ok(&[
        "init",
        BOB,
        "--clear",
        "--key-hex",
        "666f6f",
        "--via",
        "https",
        "--print",
    ]);
    assert_eq!(body_of(&msg), "Clear key exchange=666f6f.");
    let (c, d) = b.receive(&msg, "https");
    assert_eq!(c, 0, "{d}");
    let want = "83ceb0bb34bd3e8c2e7680834a6fa91752f3f32459ca0045d15f6d601f1fd7d5";
    assert_eq!(wire::hex(&b.key_for(ALICE).unwrap()), want);
    assert_eq!(wire::hex(&a.key_for(BOB).unwrap()), want);
    // With the default minimum (16 bytes) the same key is refused.
    let b2 = Peer::new(BOB);
    let (c, d) = b2.receive(&msg, "https");
    assert_eq!(c, 77, "{d}");
    assert!(b2.key_for(ALICE).is_none());
}

#[test]
fn weak_parameters_rejected_fast_without_key_change() {
    let b = Peer::new(BOB);
    let g14 = cmr::keyx::dh::Group::modp(14).unwrap();
    let p = format!("{:x}", g14.p);
    let cases = [
        // a 32,768-bit RSA modulus
        (
            format!("RSA key exchange request={},10001.", "f".repeat(8192)),
            65,
        ),
        (
            format!("RSA key exchange request={},10001.", "f".repeat(256)),
            77,
        ),
        (format!("RSA key exchange request={p},10000."), 77),
        (format!("RSA key exchange request={p},1."), 77),
        (format!("DH key exchange request=2,{p},1."), 77),
        (
            format!("DH key exchange request=2,{},5.", "f".repeat(512)),
            77,
        ),
        (format!("DH key exchange request={},{p},5.", &p), 77),
        ("RSA key exchange reply=5.".to_string(), 77),
        ("DH key exchange reply=5".to_string(), 65),
    ];
    for (body, code) in cases {
        let m = Message::compose(
            &[(past(5), ALICE.as_bytes())],
            body.as_bytes(),
            &wire::Rules::default(),
        )
        .unwrap()
        .encode();
        let t = Instant::now();
        let (c, d) = b.receive(&m, "pipe");
        let took = t.elapsed();
        // A figure, not an assertion: `cargo bench --bench keyx` measures the library path.
        eprintln!(
            "{:>8.1} ms (whole cmr-route run)  {body:.50}",
            took.as_secs_f64() * 1e3
        );
        assert_eq!(c, code, "{body:.60}: {d}");
        assert_eq!(d["reason_code"], "key-exchange", "{d}");
        assert!(b.key_for(ALICE).is_none());
        assert_eq!(b.count("outbox"), 0);
        assert_eq!(b.count("keyx_pending"), 0);
        assert_eq!(b.count("cache"), 0);
    }
}

#[test]
fn rotation_old_key_signs_the_exchange_new_key_the_next_message() {
    let (a, b) = exchange("--rsa", "hardened");
    let k1 = a.key_for(BOB).unwrap();
    // Messages Alice signs with the old key while the exchange is in flight.
    let old_signed = a.signed_message(BOB, "signed with the old key");
    let old_signed_late = a.signed_message(BOB, "signed with the old key, arrives late");
    let req = a.keyx_ok(&["init", BOB, "--dh", "--print"]);
    let m = wire::parse(&req, &wire::Rules::default()).unwrap();
    sign::verify(&m, Scheme::HmacSha256, &Key::new(k1.clone())).expect("signed with the old key");
    let (c, d) = b.receive(&req, "pipe");
    assert_eq!((c, d["verified"].as_bool()), (0, Some(true)), "{d}");
    let reply = b.take_outbox(ALICE).remove(0);
    let r = wire::parse(&reply, &wire::Rules::default()).unwrap();
    sign::verify(&r, Scheme::HmacSha256, &Key::new(k1.clone()))
        .expect("reply signed with the old key");
    let (c, d) = a.receive(&reply, "pipe");
    assert_eq!((c, d["verified"].as_bool()), (0, Some(true)), "{d}");
    let k2 = a.key_for(BOB).unwrap();
    assert_ne!(k1, k2);
    assert_eq!(b.key_for(ALICE).unwrap(), k2);
    // The next message is signed with the new key.
    signed_messages_verify(&a, &b);
    // The replaced key is kept for a grace period (keyx_retired_grace, default an hour):
    // a message Alice signed with it before she switched is accepted, verified, and the
    // decision says which key verified it.
    let (c, d) = b.receive(&old_signed, "http");
    assert_eq!((c, d["outcome"].as_str()), (0, Some("accepted")), "{d}");
    assert_eq!(d["verified"], true, "{d}");
    assert!(d["notes"].to_string().contains("retired key"), "{d}");
    // A key-exchange message signed with the old key is refused: it must use the current
    // one (otherwise a stale request would replace the key).
    let stale_req = sign::sign(
        Message::compose(
            &[(past(2), ALICE.as_bytes())],
            body_of(&req).as_bytes(),
            &wire::Rules::default(),
        )
        .unwrap(),
        Scheme::HmacSha256,
        &Key::new(k1.clone()),
    )
    .encode();
    let (c, d) = b.receive(&stale_req, "http");
    assert_eq!(
        (c, d["reason_code"].as_str()),
        (77, Some("signature")),
        "{d}"
    );
    assert_eq!(b.key_for(ALICE).unwrap(), k2, "no key change");
    assert!(b.take_outbox(ALICE).is_empty(), "no reply");
    // Neither key: refused, grace period or not.
    let forged = sign::sign(
        Message::compose(
            &[(past(2), ALICE.as_bytes())],
            b"signed with neither key",
            &wire::Rules::default(),
        )
        .unwrap(),
        Scheme::HmacSha256,
        &Key::new(b"some other key of 32 bytes......".to_vec()),
    )
    .encode();
    let (c, d) = b.receive(&forged, "http");
    assert_eq!(
        (c, d["reason_code"].as_str()),
        (77, Some("signature")),
        "{d}"
    );
    // After the grace period the old key verifies nothing.
    b.db()
        .execute("UPDATE keyx_retired SET until = until - 100000", [])
        .unwrap();
    let (c, d) = b.receive(&old_signed_late, "http");
    assert_eq!(
        (c, d["reason_code"].as_str()),
        (77, Some("signature")),
        "{d}"
    );
    b.db()
        .execute("UPDATE keyx_retired SET until = until + 100000", [])
        .unwrap();
    let st = State::open(Some(&b.state)).unwrap();
    let (scheme, old) = cmr::keyx::retired_key(st.conn(), ALICE).unwrap().unwrap();
    assert_eq!(old.bytes(), &k1[..]);
    let m = wire::parse(&old_signed, &wire::Rules::default()).unwrap();
    sign::verify(&m, scheme, &old).unwrap();
    a.keyx_ok(&["forget", BOB]);
    let sa = State::open(Some(&a.state)).unwrap();
    assert!(cmr::keyx::retired_key(sa.conn(), BOB).unwrap().is_none());
    // An unsigned request from someone claiming to be Alice changes nothing.
    let forged = Peer::new(ALICE).keyx_ok(&["init", BOB, "--dh", "--print"]);
    let (c, d) = b.receive(&forged, "pipe");
    assert_eq!(c, 77, "{d}");
    assert_eq!(b.key_for(ALICE).unwrap(), k2);
    assert_eq!(b.count("outbox"), 0);
}

#[test]
fn simultaneous_initiation_ends_with_equal_keys() {
    let (a, b) = (Peer::new(ALICE), Peer::new(BOB));
    let ra = a.keyx_ok(&["init", BOB, "--dh", "--print"]);
    let rb = b.keyx_ok(&["init", ALICE, "--rsa", "--print"]);
    // Both requests cross. Alice's address is the smaller: she answers Bob's request and
    // abandons hers; Bob ignores hers.
    let (c, d) = b.receive(&ra, "pipe");
    assert_eq!(c, 0, "{d}");
    assert!(d["notes"].to_string().contains("Ignored"), "{d}");
    assert!(b.take_outbox(ALICE).is_empty());
    let (c, d) = a.receive(&rb, "pipe");
    assert_eq!(c, 0, "{d}");
    let replies = a.take_outbox(BOB);
    assert_eq!(replies.len(), 1);
    assert!(body_of(&replies[0]).starts_with("RSA key exchange reply="));
    let (c, d) = b.receive(&replies[0], "pipe");
    assert_eq!(c, 0, "{d}");
    assert_eq!(a.key_for(BOB).unwrap(), b.key_for(ALICE).unwrap());
    assert_eq!(a.count("keyx_pending") + b.count("keyx_pending"), 0);
    signed_messages_verify(&a, &b);
}

#[test]
fn first_contact_holds_messages_until_the_key_is_set() {
    let (a, b) = (Peer::new(ALICE), Peer::new(BOB));
    a.keyx_ok(&["policy", "keyx_first_contact", "exchange"]);
    let st = State::open(Some(&a.state)).unwrap();
    let fwd = |body: &str| {
        Message::compose(
            &[(past(5), ALICE.as_bytes())],
            body.as_bytes(),
            &wire::Rules::default(),
        )
        .unwrap()
    };
    let (m1, m2) = (fwd("first"), fwd("second"));
    for m in [&m1, &m2] {
        let r = st
            .write(|tx| cmr::keyx::before_forward(tx, BOB, &m.encode(), &m.sender().key()))
            .unwrap();
        assert_eq!(r, cmr::keyx::FirstContact::Held);
    }
    assert_eq!(a.count("keyx_held"), 2);
    let q = a.take_outbox(BOB);
    assert_eq!(q.len(), 1, "one request for both");
    assert!(body_of(&q[0]).starts_with("DH key exchange request="));
    b.receive(&q[0], "pipe");
    let (c, d) = a.receive(&b.take_outbox(ALICE)[0], "pipe");
    assert_eq!(c, 0, "{d}");
    // Released in the same transaction, signed with the new key.
    assert_eq!(a.count("keyx_held"), 0);
    let out = a.take_outbox(BOB);
    assert_eq!(out.len(), 2);
    for (raw, want) in out.iter().zip(["first", "second"]) {
        assert_eq!(body_of(raw), want);
        let (c, d) = b.receive(raw, "http");
        assert_eq!((c, d["verified"].as_bool()), (0, Some(true)), "{d}");
    }
    // With a key, forwards go straight out; with `refuse`, nothing goes to unknown peers.
    let m3 = fwd("third");
    let r = st
        .write(|tx| cmr::keyx::before_forward(tx, BOB, &m3.encode(), &m3.sender().key()))
        .unwrap();
    assert_eq!(r, cmr::keyx::FirstContact::Send);
    a.keyx_ok(&["policy", "keyx_first_contact", "refuse"]);
    let r = st
        .write(|tx| {
            cmr::keyx::before_forward(tx, "http://carol.org/", &m3.encode(), &m3.sender().key())
        })
        .unwrap();
    assert_eq!(r, cmr::keyx::FirstContact::Refused);
    a.keyx_ok(&["policy", "--unset", "keyx_first_contact"]);
    let r = st
        .write(|tx| {
            cmr::keyx::before_forward(tx, "http://carol.org/", &m3.encode(), &m3.sender().key())
        })
        .unwrap();
    assert_eq!(r, cmr::keyx::FirstContact::Send, "default: unsigned");
}

#[test]
fn set_forget_spare_and_policy() {
    let a = Peer::new(ALICE);
    let o = a.keyx(&["show", BOB]);
    assert_eq!(o.status.code(), Some(66));
    a.keyx_ok(&["set", BOB, "--key-hex", "666f6f", "--scheme", "sha256"]);
    let db = a.db();
    let (scheme, key): (String, Vec<u8>) = db
        .query_row(
            "SELECT scheme, key FROM peers WHERE address = ?1",
            [BOB],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((scheme.as_str(), key.as_slice()), ("sha256", &b"foo"[..]));
    let text = String::from_utf8(a.keyx_ok(&["list"])).unwrap();
    assert!(text.contains(BOB) && text.contains("sha256"), "{text}");
    assert!(!text.contains("666f6f"), "keys are never printed");
    a.keyx_ok(&["forget", BOB]);
    assert!(a.key_for(BOB).is_none());
    assert_eq!(
        a.keyx(&["set", BOB, "--key-hex", "6"]).status.code(),
        Some(64)
    );
    assert_eq!(
        a.keyx(&["policy", "keyx_first_contact", "maybe"])
            .status
            .code(),
        Some(64)
    );
    assert_eq!(a.keyx(&["policy", "no_such"]).status.code(), Some(64));
    let pol = String::from_utf8(a.keyx_ok(&["policy"])).unwrap();
    assert!(pol.contains("keyx_first_contact = unsigned"), "{pol}");
    // A spare key pair is used by the next RSA init.
    a.keyx_ok(&["spare", "--count", "1"]);
    assert_eq!(a.count("keyx_spare"), 1);
    a.keyx_ok(&["init", BOB, "--rsa"]);
    assert_eq!(a.count("keyx_spare"), 0);
    // An uninitialised state file: 78.
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        env!("CARGO_BIN_EXE_cmr-keyx"),
        &dir.path().join("s.sqlite"),
        &["init", BOB, "--dh"],
        b"",
    );
    assert_eq!(
        o.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// First contact through the router: a forward to a peer we share no key with is held, a
/// DH request goes out instead, and the forward follows, signed, once the reply is in.
#[test]
fn first_contact_through_the_router() {
    const CAROL: &str = "http://carol.org/";
    let (a, b) = (Peer::new(ALICE), Peer::new(BOB));
    a.keyx_ok(&["policy", "keyx_first_contact", "exchange"]);
    // The operator configured Bob (no key yet): the relay policy lets an unverified message
    // be routed to him, and the key exchange agrees the key on first contact.
    a.route_ok(&["peer", "add", BOB]);
    let unsigned = |from: &str, body: &str| {
        Message::compose(
            &[(past(30), from.as_bytes())],
            body.as_bytes(),
            &wire::Rules::default(),
        )
        .unwrap()
        .encode()
    };
    let (c, d) = a.receive(&unsigned(BOB, "Jupiter is the largest planet."), "http");
    assert_eq!((c, d["outcome"].as_str()), (0, Some("accepted")), "{d}");
    let (c, d) = a.receive(&unsigned(CAROL, "Which planet is the largest one?"), "http");
    assert_eq!((c, d["outcome"].as_str()), (0, Some("accepted")), "{d}");
    let to_bob: Vec<_> = d["forwards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["dest"] == BOB)
        .collect();
    // Bob is both the best-scoring peer (3.2) and the creator of the matched message (A3):
    // two reasons, one forward, held once and reported once.
    assert_eq!(to_bob.len(), 1, "{d}");
    assert!(to_bob.iter().all(|f| f["held"] == true), "{d}");
    // One held row per (destination, message), however many reasons the router had.
    let held_for_bob: i64 = a
        .db()
        .query_row(
            "SELECT count(*) FROM keyx_held WHERE dest = ?1",
            [BOB],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(held_for_bob, 1);
    let key: Vec<u8> = a
        .db()
        .query_row(
            "SELECT msg_key FROM keyx_held WHERE dest = ?1",
            [BOB],
            |r| r.get(0),
        )
        .unwrap();
    let st = State::open(Some(&a.state)).unwrap();
    assert!(cmr::keyx::db::is_held(st.conn(), BOB, &key).unwrap());
    assert!(!cmr::keyx::db::is_held(st.conn(), CAROL, b"nothing").unwrap());
    // Only the key exchange request is in the outbox for Bob.
    let q = a.take_outbox(BOB);
    assert_eq!(q.len(), 1);
    assert!(body_of(&q[0]).starts_with("DH key exchange request="));
    let (c, d) = b.receive(&q[0], "http");
    assert_eq!(c, 0, "{d}");
    let (c, d) = a.receive(&b.take_outbox(ALICE)[0], "http");
    assert_eq!(c, 0, "{d}");
    // The held forward is now queued, signed with the new key, and Bob's router takes it.
    let q = a.take_outbox(BOB);
    assert_eq!(q.len(), 1);
    assert_eq!(body_of(&q[0]), "Which planet is the largest one?");
    let (c, d) = b.receive(&q[0], "http");
    assert_eq!((c, d["outcome"].as_str()), (0, Some("accepted")), "{d}");
    assert_eq!(d["verified"], true, "{d}");
    assert_eq!(
        a.count("keyx_held"),
        1,
        "the forward to Carol still waits for her"
    );
    // Carol never answers; once her request has expired, `retry` asks again.
    let retry = |p: &Peer| -> serde_json::Value {
        serde_json::from_slice(&p.keyx_ok(&["retry", "--json"])).unwrap()
    };
    assert_eq!(retry(&a)["started"], serde_json::json!([]));
    a.db()
        .execute("UPDATE keyx_pending SET created = created - 100000", [])
        .unwrap();
    assert_eq!(retry(&a)["started"], serde_json::json!([CAROL]));
    let q = a.take_outbox(CAROL);
    assert_eq!(q.len(), 2, "the first request and the new one");
    assert!(body_of(&q[1]).starts_with("DH key exchange request="));
    assert_eq!(a.count("keyx_held"), 1);
}

/// The request travels through a real shell pipeline: `cmr-keyx init --print | cmr-route`.
#[test]
fn shell_pipeline_init_print_into_route() {
    let (a, b) = (Peer::new(ALICE), Peer::new(BOB));
    let script = format!(
        "set -e -o pipefail; '{}' --state '{}' init '{}' --dh --print | '{}' --state '{}' --strict --json -",
        env!("CARGO_BIN_EXE_cmr-keyx"),
        a.state.display(),
        BOB,
        env!("CARGO_BIN_EXE_cmr-route"),
        b.state.display()
    );
    let o = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["outcome"], "key-exchange", "{d}");
    let (c, d) = a.receive(&b.take_outbox(ALICE)[0], "pipe");
    assert_eq!(c, 0, "{d}");
    assert_eq!(a.key_for(BOB), b.key_for(ALICE));
    signed_messages_verify(&a, &b);
}

/// A peer that lost its key rotates it over a transport that authenticated it (an SSH forced
/// command per peer): its unsigned control messages are handled although we hold a key for
/// it, and our reply goes back unsigned. Without that authentication, or authenticated as
/// someone else, they are refused.
#[test]
fn transport_authenticated_peer_may_rotate_unsigned() {
    let (a, b) = exchange("--dh", "hardened");
    let k1 = b.key_for(ALICE).unwrap();
    a.keyx_ok(&["forget", BOB]);
    // A clear key over SSH, unsigned since Alice holds no key any more.
    let clear = a.keyx_ok(&["init", BOB, "--clear", "--via", "ssh", "--print"]);
    assert!(clear.starts_with(b"0\r\n"));
    let ka = a.key_for(BOB).unwrap();
    for opts in [
        &["--via", "ssh"][..],
        &[
            "--via",
            "ssh",
            "--authenticated-sender",
            "http://carol.org/",
        ][..],
    ] {
        let (c, d) = b.receive_with(&clear, opts);
        assert_eq!(c, 77, "{opts:?}: {d}");
        assert_eq!(d["reason_code"], "key-exchange", "{d}");
        assert!(d["reason"].as_str().unwrap().contains("unsigned"), "{d}");
        assert_eq!(b.key_for(ALICE).unwrap(), k1, "no key change");
    }
    let (c, d) = b.receive_with(&clear, &["--via", "ssh", "--authenticated-sender", ALICE]);
    assert_eq!((c, d["outcome"].as_str()), (0, Some("key-exchange")), "{d}");
    assert_eq!(d["verified"], true, "{d}");
    assert_eq!(b.key_for(ALICE).unwrap(), ka);
    signed_messages_verify(&a, &b);

    // DH the same way: Bob answers unsigned (Alice has no key to check a signature with),
    // and Alice completes the exchange.
    a.keyx_ok(&["forget", BOB]);
    let req = a.keyx_ok(&["init", BOB, "--dh", "--print"]);
    assert!(req.starts_with(b"0\r\n"));
    let (c, d) = b.receive_with(&req, &["--via", "ssh", "--authenticated-sender", ALICE]);
    assert_eq!((c, d["outcome"].as_str()), (0, Some("key-exchange")), "{d}");
    let reply = b.take_outbox(ALICE);
    assert_eq!(reply.len(), 1);
    assert!(reply[0].starts_with(b"0\r\n"), "the reply is unsigned");
    let (c, d) = a.receive(&reply[0], "http");
    assert_eq!((c, d["outcome"].as_str()), (0, Some("key-exchange")), "{d}");
    assert_ne!(b.key_for(ALICE).unwrap(), ka);
    assert_eq!(a.key_for(BOB), b.key_for(ALICE));
    signed_messages_verify(&a, &b);

    // A signed control message must still verify, authenticated transport or not.
    let bad = sign::sign(
        Message::compose(
            &[(past(1), ALICE.as_bytes())],
            body_of(&req).as_bytes(),
            &wire::Rules::default(),
        )
        .unwrap(),
        Scheme::HmacSha256,
        &Key::new(k1),
    )
    .encode();
    let (c, d) = b.receive_with(&bad, &["--via", "ssh", "--authenticated-sender", ALICE]);
    assert_eq!(
        (c, d["reason_code"].as_str()),
        (77, Some("signature")),
        "{d}"
    );
}

/// A forger who can write any sender address sends Bob an unsigned RSA request and then a
/// DH request claiming Alice. Alice is not locked out: her unsigned messages still pass,
/// her own exchange completes without operator action, both ends show the same key id, and
/// her signed message verifies. The same when Alice's request was pending while Bob
/// answered the forged ones (and their replies reached her first).
#[test]
fn a_forged_first_exchange_cannot_lock_a_peer_out() {
    let show = |p: &Peer, peer: &str| -> serde_json::Value {
        serde_json::from_slice(&p.keyx_ok(&["show", peer, "--json"])).unwrap()
    };
    for alice_pending in [false, true] {
        let (a, b) = (Peer::new(ALICE), Peer::new(BOB));
        // The forger: a router of its own that calls itself Alice.
        let forger = Peer::new(ALICE);
        let pending = alice_pending.then(|| a.keyx_ok(&["init", BOB, "--dh", "--print"]));
        for (i, m) in ["--rsa", "--dh"].iter().enumerate() {
            let mut args = vec!["init", BOB, m, "--print"];
            if i > 0 {
                args.push("--replace");
            }
            let forged = forger.keyx_ok(&args);
            assert!(forged.starts_with(b"0\r\n"));
            let (c, d) = b.receive(&forged, "http");
            assert_eq!((c, d["outcome"].as_str()), (0, Some("key-exchange")), "{d}");
        }
        let sb = show(&b, ALICE);
        assert_eq!(sb["provisional"], true, "{sb}");
        // Bob's answers to the forged requests go to the real Alice.
        for r in b.take_outbox(ALICE) {
            let _ = a.receive(&r, "http");
        }
        // Alice's ordinary unsigned messages are not refused meanwhile.
        let m = Message::compose(
            &[(past(3), ALICE.as_bytes())],
            b"unsigned, from the real Alice",
            &wire::Rules::default(),
        )
        .unwrap()
        .encode();
        let (c, d) = b.receive(&m, "http");
        assert_eq!((c, d["outcome"].as_str()), (0, Some("accepted")), "{d}");

        // Alice's own exchange completes.
        let req = pending.unwrap_or_else(|| a.keyx_ok(&["init", BOB, "--dh", "--print"]));
        assert!(req.starts_with(b"0\r\n"));
        let (c, d) = b.receive(&req, "http");
        assert_eq!((c, d["outcome"].as_str()), (0, Some("key-exchange")), "{d}");
        let replies = b.take_outbox(ALICE);
        assert_eq!(replies.len(), 1);
        assert!(
            replies[0].starts_with(b"0\r\n"),
            "unsigned: Bob's key is provisional"
        );
        let (c, d) = a.receive(&replies[0], "http");
        assert_eq!((c, d["outcome"].as_str()), (0, Some("key-exchange")), "{d}");

        let (sa, sb) = (show(&a, BOB), show(&b, ALICE));
        assert!(sa["key_id"].is_string(), "{sa}");
        assert_eq!(
            sa["key_id"], sb["key_id"],
            "pending={alice_pending}: {sa} / {sb}"
        );
        // A signed message from Alice verifies, and confirms the key at Bob.
        let m = a.signed_message(BOB, "What is the largest planet?");
        let (c, d) = b.receive(&m, "http");
        assert_eq!((c, d["verified"].as_bool()), (0, Some(true)), "{d}");
        assert_eq!(show(&b, ALICE)["provisional"], false);
        signed_messages_verify(&a, &b);
        assert_eq!(show(&a, BOB)["provisional"], false);

        // Once confirmed, the key is established: a forged exchange is refused again.
        let k = b.key_for(ALICE);
        let forged = forger.keyx_ok(&["init", BOB, "--dh", "--print", "--replace"]);
        let (c, d) = b.receive(&forged, "http");
        assert_eq!(
            (c, d["reason_code"].as_str()),
            (77, Some("key-exchange")),
            "{d}"
        );
        assert_eq!(b.key_for(ALICE), k);
    }
}

#[test]
fn dh_print_sends_a_primitive_root_for_every_group() {
    // A5.2: "a primitive root g of p". For the safe primes p = 2q+1 of RFC 3526, g is one
    // iff g^2 != 1 and g^q != 1 (mod p).
    use num_bigint::BigUint;
    for (group, g_hex) in [("14", "b"), ("15", "5"), ("16", "5")] {
        let a = Peer::new(ALICE);
        let req = a.keyx_ok(&["init", BOB, "--dh", "--group", group, "--print"]);
        let body = body_of(&req);
        let nums = body
            .strip_prefix("DH key exchange request=")
            .and_then(|r| r.strip_suffix('.'))
            .unwrap();
        let v: Vec<BigUint> = nums
            .split(',')
            .map(|h| BigUint::parse_bytes(h.as_bytes(), 16).unwrap())
            .collect();
        let (g, p) = (&v[0], &v[1]);
        assert_eq!(format!("{g:x}"), g_hex, "group {group}");
        let q: BigUint = p >> 1u32;
        assert_ne!(g.modpow(&BigUint::from(2u32), p), BigUint::from(1u32));
        assert_ne!(g.modpow(&q, p), BigUint::from(1u32), "group {group}: g^q");
    }
}
