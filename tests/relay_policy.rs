//! No open relay, no request forgery: who the router may send to (crate::contact), with
//! default settings, through the real cmr-route.

mod route_common;
use cmr::sign::Scheme;
use cmr::wire::Message;
use route_common::*;

const PLANETS: &str = "The planet Jupiter is the largest planet of the solar system.";
const QUESTION: &str = "Which planet of the solar system is the largest planet?";

/// The addresses a stranger writes into a header: 30 third parties by mail, and the host's
/// own services, the cloud metadata endpoint and the internal network.
fn third_parties() -> Vec<String> {
    let mut v: Vec<String> = (0..30)
        .map(|i| format!("mailto:victim{i}@example.org"))
        .collect();
    v.push("http://127.0.0.1:6379/".into());
    v.push("http://169.254.169.254/latest/meta-data/".into());
    v.push("udp://10.0.0.1:53/x".into());
    v
}

/// A message whose immediate sender is `sender`, with `rest` below it in the header.
fn with_header(sender: &str, rest: &[String], body: &str) -> Message {
    let mut lines = vec![(sender, 5)];
    for (i, a) in rest.iter().enumerate() {
        lines.push((a.as_str(), 10 + i as i64));
    }
    with_lines(&lines, body)
}

fn outbox_dests(e: &Env) -> Vec<String> {
    outbox_rows(e).into_iter().map(|(d, _)| d).collect()
}

fn refused_codes(d: &serde_json::Value) -> Vec<(String, String)> {
    d["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["dest"].as_str().unwrap().to_string(),
                r["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// With every default: the open-relay message queues nothing to the header's third parties.
#[test]
fn with_the_defaults_the_open_relay_message_reaches_no_third_party() {
    let e = Env::new();
    let (_, d) = e.route_json(&msg("http://astro.test/", PLANETS).encode(), &[]);
    assert_eq!(d["outcome"], "accepted", "{d}");
    let parties = third_parties();
    let x = with_header("mailto:stranger@evil.test", &parties, QUESTION);
    let (c, d) = e.route_json(&x.encode(), &[]);
    assert_eq!((c, d["outcome"].as_str()), (0, Some("accepted")), "{d}");
    let dests = outbox_dests(&e);
    for p in &parties {
        assert!(
            !dests.contains(p),
            "queued to the third party {p}: {dests:?}"
        );
    }
}

#[test]
fn an_unverified_stranger_cannot_use_the_router_as_a_relay() {
    let e = Env::new();
    // max_hops (3 by default) alone would forward nothing of a 34-line header: lift it, so
    // that what is refused here is the relay policy's doing.
    e.ok(&["policy", "max_hops", "0"]);
    // A small shared budget for the unverified senders, so that the test sees it run out.
    e.ok(&["policy", "contact_budget_source", "8/3600"]);
    let (_, d) = e.route_json(&msg("http://astro.test/", PLANETS).encode(), &[]);
    assert_eq!(d["outcome"], "accepted", "{d}");
    let parties = third_parties();
    let x = with_header("mailto:stranger@evil.test", &parties, QUESTION);
    let (c, d) = e.route_json(&x.encode(), &["--explain"]);
    assert_eq!((c, d["outcome"].as_str()), (0, Some("accepted")), "{d}");
    assert_eq!(d["matched"].as_array().unwrap().len(), 1, "{d}");
    let dests = outbox_dests(&e);
    for p in &parties {
        assert!(
            !dests.contains(p),
            "queued to the third party {p}: {dests:?}"
        );
    }
    // What may go: the matched message back to the immediate sender (one first contact,
    // within the budget shared by every unverified sender). Nothing to astro.test, a
    // stranger named only in a cached header.
    assert!(dests.len() <= 1, "{dests:?}");
    assert!(
        dests.iter().all(|d| d == "mailto:stranger@evil.test"),
        "{dests:?}"
    );
    // Every refusal is in the decision with its reason, and in the log and the counters.
    let refused = refused_codes(&d);
    assert!(
        refused
            .iter()
            .any(|(dest, code)| dest == "mailto:victim0@example.org" && code == "relay-unverified"),
        "{refused:?}"
    );
    assert!(
        refused.iter().any(|(dest, _)| dest == "http://astro.test/"),
        "{refused:?}"
    );
    let logged: String = e
        .db()
        .query_row(
            "SELECT detail FROM log WHERE outcome = 'accepted' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(logged.contains("relay-unverified"), "{logged}");
    let counted: i64 = e
        .db()
        .query_row(
            "SELECT sum(value) FROM counters WHERE scope = 'relay'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(counted as usize, refused.len());
    // cmr-route status counts them, by code.
    let o = e.route(&["status", "--json"], b"");
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let relay = st["relay_refusals"].as_array().unwrap();
    assert!(
        relay
            .iter()
            .any(|r| r[0] == "relay-unverified" && r[1].as_i64().unwrap() >= 30),
        "{st}"
    );
    // The same message with new IDs, again and again: still nothing to the third parties,
    // and the replies to invented senders stop at the shared budget.
    for i in 0..12 {
        let x = with_header(&format!("mailto:stranger{i}@evil.test"), &parties, QUESTION);
        let (_, d) = e.route_json(&x.encode(), &[]);
        assert_eq!(d["outcome"], "accepted");
    }
    let dests = outbox_dests(&e);
    for p in &parties {
        assert!(!dests.contains(p), "queued to {p}");
    }
    assert!(dests.len() <= 8, "contact_budget_source 8/3600: {dests:?}");
    let human = e.route(
        &["--explain"],
        &with_header("mailto:s@evil.test", &parties, QUESTION).encode(),
    );
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("forwards refused by the relay policy"),
        "{text}"
    );
}

#[test]
fn a_verified_peer_reaches_strangers_only_within_the_budget_and_never_private_ones() {
    let e = Env::new();
    let key = b"peer key".to_vec();
    e.ok(&[
        "peer",
        "add",
        "http://friend.test/",
        "--key-hex",
        &hex(&key),
    ]);
    e.ok(&["policy", "max_forwards", "100"]);
    e.ok(&["policy", "max_hops", "0"]);
    e.ok(&["policy", "contact_budget_source", "5/3600"]);
    let (_, d) = e.route_json(&msg("http://astro.test/", PLANETS).encode(), &[]);
    assert_eq!(d["outcome"], "accepted");
    let parties = third_parties();
    let x = with_header("http://friend.test/", &parties, QUESTION);
    let (c, d) = e.route_json(&signed(x, Scheme::HmacSha256, &key), &[]);
    assert_eq!((c, d["verified"].as_bool()), (0, Some(true)), "{d}");
    let dests = outbox_dests(&e);
    // Private, loopback and metadata addresses: refused at queue time, with the reason.
    for p in [
        "http://127.0.0.1:6379/",
        "http://169.254.169.254/latest/meta-data/",
        "udp://10.0.0.1:53/x",
    ] {
        assert!(!dests.iter().any(|d| d == p), "{p} queued");
        assert!(
            refused_codes(&d).contains(&(p.to_string(), "restricted-address".to_string())),
            "{d}"
        );
    }
    // Strangers named in the header: at most the budget (5), the rest refused for it.
    let strangers = dests
        .iter()
        .filter(|d| d.starts_with("mailto:victim") || *d == "http://astro.test/")
        .count();
    assert_eq!(strangers, 5, "{dests:?}");
    assert!(
        refused_codes(&d)
            .iter()
            .any(|(_, c)| c == "contact-budget-source"),
        "{d}"
    );
    // With the allow-list, the operator opts a range back in.
    e.ok(&["policy", "send_allow", "10.0.0.0/8"]);
    let x = with_header(
        "http://friend.test/",
        &parties,
        "Which planet has the most moons of all?",
    );
    let (_, d) = e.route_json(&signed(x, Scheme::HmacSha256, &key), &[]);
    assert!(
        !refused_codes(&d).contains(&(
            "udp://10.0.0.1:53/x".to_string(),
            "restricted-address".to_string()
        )),
        "{d}"
    );
}

/// Reflection: forged key-exchange requests, each claiming a different third party, get
/// answers only within the first-contact budget; past it nothing is queued and no peer
/// row is made.
#[test]
fn forged_key_exchange_requests_are_answered_only_within_the_budget() {
    let e = Env::new();
    e.ok(&["policy", "contact_budget_source", "3/3600"]);
    let dh = cmr::keyx::dh::Group::modp(14).unwrap();
    let a = dh.g.modpow(&num_bigint::BigUint::from(12345u32), &dh.p);
    let body = format!("DH key exchange request={:x},{:x},{:x}.", dh.g, dh.p, a);
    let mut answered = 0;
    for i in 0..10 {
        let m = msg(&format!("mailto:victim{i}@example.org"), &body);
        let (_, d) = e.route_json(&m.encode(), &[]);
        match d["outcome"].as_str() {
            Some("key-exchange") => answered += 1,
            Some("rejected") => assert_eq!(d["reason_code"], "contact-budget-source", "{d}"),
            other => panic!("{other:?}: {d}"),
        }
    }
    assert_eq!(answered, 3);
    assert_eq!(e.count("outbox"), 3);
    let peers: i64 = e
        .db()
        .query_row(
            "SELECT count(*) FROM peers WHERE address LIKE 'mailto:victim%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(peers <= 3, "{peers} peer rows");
}
