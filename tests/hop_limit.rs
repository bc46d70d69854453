//! 3.3's hop limit (`max_hops`) through the real cmr-route: a message whose header has
//! `max_hops` lines is cached and matched but forwarded to no one, unless
//! `last_hop_answers` lets its matches go back along its header.

mod route_common;
use cmr::wire::Message;
use route_common::*;

const PLANETS: &str = "The planet Jupiter is the largest planet of the solar system.";
const QUESTION: &str = "Which planet of the solar system is the largest planet?";

/// A question that passed three routers: its immediate sender first.
fn three_hops() -> Message {
    with_lines(
        &[
            ("mailto:s@hop.test", 5),
            ("mailto:b@hop.test", 10),
            ("mailto:c@hop.test", 15),
        ],
        QUESTION,
    )
}

fn route_question(last_hop_answers: &str) -> (Env, serde_json::Value) {
    let e = Env::new();
    e.ok(&["policy", "max_hops", "3"]);
    e.ok(&["policy", "last_hop_answers", last_hop_answers]);
    let (_, d) = e.route_json(&msg("http://astro.test/", PLANETS).encode(), &[]);
    assert_eq!(d["outcome"], "accepted", "{d}");
    let (c, d) = e.route_json(&three_hops().encode(), &["--explain"]);
    assert_eq!((c, d["outcome"].as_str()), (0, Some("accepted")), "{d}");
    assert_eq!(d["matched"].as_array().unwrap().len(), 1, "{d}");
    (e, d)
}

#[test]
fn at_the_hop_limit_nothing_is_sent_by_default() {
    let (e, d) = route_question("0");
    assert!(outbox_rows(&e).is_empty(), "{:?}", outbox_rows(&e));
    assert!(d["forwards"].as_array().unwrap().is_empty(), "{d}");
    assert!(d.to_string().contains("cached, not forwarded"), "{d}");
}

#[test]
fn with_last_hop_answers_the_match_goes_back_and_the_question_stops() {
    let (e, d) = route_question("1");
    let rows = outbox_rows(&e);
    // The matched message back to the immediate sender (the one stranger an unverified
    // message may make us write to); the question itself to no one, not even to the
    // creator of what it matched.
    assert!(!rows.is_empty(), "{d}");
    for (dest, body) in &rows {
        assert_eq!(body, PLANETS, "only the answer is sent: {rows:?}");
        assert_ne!(dest, "http://astro.test/", "{rows:?}");
    }
    assert!(
        rows.iter().any(|(dest, _)| dest == "mailto:s@hop.test"),
        "{rows:?}"
    );
    assert!(d.to_string().contains("answered, not forwarded"), "{d}");
}

/// `walk_hops`: past the hop limit the question goes on to one keyed neighbour (never to
/// the strangers of its header or of what it matched), until its header has `walk_hops`
/// lines.
#[test]
fn a_walk_goes_on_to_one_keyed_neighbour_until_walk_hops() {
    use cmr::sign::Scheme;
    const NEXT: &str = "http://next.test/";
    let walked = |walk_hops: &str| {
        let e = Env::new();
        let key = b"next key".to_vec();
        e.ok(&["peer", "add", NEXT, "--key-hex", &hex(&key)]);
        e.ok(&["policy", "max_hops", "3"]);
        e.ok(&["policy", "walk_hops", walk_hops]);
        let ours = msg(NEXT, "Bread dough rises when the yeast is warm.");
        let (_, d) = e.route_json(&signed(ours, Scheme::HmacSha256, &key), &[]);
        assert_eq!(d["verified"], true, "{d}");
        let (_, d) = e.route_json(&msg("http://astro.test/", PLANETS).encode(), &[]);
        assert_eq!(d["outcome"], "accepted", "{d}");
        let (_, d) = e.route_json(&three_hops().encode(), &["--explain"]);
        assert_eq!(d["outcome"], "accepted", "{d}");
        let questions: Vec<String> = outbox_rows(&e)
            .into_iter()
            .filter(|(_, body)| body == QUESTION)
            .map(|(dest, _)| dest)
            .collect();
        (questions, d)
    };
    let (q, d) = walked("0");
    assert!(q.is_empty(), "off by default: {q:?} {d}");
    let (q, d) = walked("3");
    assert!(
        q.is_empty(),
        "3 lines is not fewer than walk_hops 3: {q:?} {d}"
    );
    let (q, d) = walked("4");
    assert_eq!(q, [NEXT], "{d}");
    assert!(d.to_string().contains("3.1 walk"), "{d}");
}

/// `spread_fanout`: a message straight from its creator's router (one header line) also
/// goes to that many configured neighbours, chosen by the message, not by the scores;
/// never one at the hop limit, never to a neighbour in its header.
#[test]
fn spread_sends_a_message_from_its_creator_to_more_neighbours() {
    const NS: [&str; 3] = ["http://n1.test/", "http://n2.test/", "http://n3.test/"];
    let spread = |fanout: &str, m: &Message| {
        let e = Env::new();
        for n in NS {
            e.ok(&["peer", "add", n]);
        }
        e.ok(&["policy", "spread_fanout", fanout]);
        // Exploration would take the same neighbours first (nothing matches here).
        e.ok(&["policy", "explore_fanout", "0"]);
        let (_, d) = e.route_json(&m.encode(), &["--explain"]);
        assert_eq!(d["outcome"], "accepted", "{d}");
        let dests: Vec<String> = d["forwards"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["why"].as_str().unwrap().starts_with("3.1 spread"))
            .map(|f| f["dest"].as_str().unwrap().to_string())
            .collect();
        (dests, d)
    };
    let one_line = msg("http://n1.test/", QUESTION);
    let (s, d) = spread("0", &one_line);
    assert!(s.is_empty(), "off by default: {s:?} {d}");
    let (s, d) = spread("2", &one_line);
    assert_eq!(s.len(), 2, "{d}");
    assert!(
        s.iter().all(|x| NS.contains(&x.as_str()) && x != NS[0]),
        "configured neighbours, never its sender: {s:?}"
    );
    // Two lines: at the default hop limit (max_hops 2), answered only.
    let two_lines = with_lines(
        &[("http://n1.test/", 5), ("http://far.test/", 10)],
        QUESTION,
    );
    let (s, d) = spread("2", &two_lines);
    assert!(s.is_empty(), "{s:?} {d}");
}

/// `answers_to`: what a message that came through another router matched goes back along
/// its whole header (`path`, the default), or to its originator only (`origin`), and not
/// at all when the router it came from holds it already (it sent it to us, or we to it).
#[test]
fn answers_to_origin_skips_the_relays_and_what_the_relay_holds() {
    use cmr::sign::Scheme;
    const S: &str = "http://s.test/";
    const C: &str = "http://c.test/";
    let key = b"s key".to_vec();
    let answered = |answers_to: &str, explore: &str, planets: Vec<u8>| {
        let e = Env::new();
        e.ok(&["peer", "add", S, "--key-hex", &hex(&key)]);
        e.ok(&["policy", "answers_to", answers_to]);
        // Exploration sends the answer, which nothing here places, to S on arrival.
        e.ok(&["policy", "explore_fanout", explore]);
        let (_, d) = e.route_json(&planets, &[]);
        assert_eq!(d["outcome"], "accepted", "{d}");
        // C's question, newer than the answer, forwarded to us by S: two lines, the
        // default hop limit.
        let x = with_lines(&[(S, 5), (C, 10)], QUESTION);
        let (_, d) = e.route_json(&signed(x, Scheme::HmacSha256, &key), &["--explain"]);
        assert_eq!(d["outcome"], "accepted", "{d}");
        assert_eq!(d["verified"], true, "{d}");
        assert_eq!(d["matched"].as_array().unwrap().len(), 1, "{d}");
        let mut dests: Vec<String> = d["forwards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                assert_eq!(f["what"], "y", "{d}");
                f["dest"].as_str().unwrap().to_string()
            })
            .collect();
        dests.sort();
        dests
    };
    let from_astro = || msg("http://astro.test/", PLANETS).encode();
    assert_eq!(answered("path", "0", from_astro()), [C, S]);
    assert_eq!(answered("origin", "0", from_astro()), [C]);
    // We sent the answer to S: it matched the question against it before it sent it on.
    assert_eq!(answered("path", "3", from_astro()), [C]);
    assert!(answered("origin", "3", from_astro()).is_empty());
    // S sent us the answer.
    let via_s = || {
        let m = msg2(S, "http://astro.test/", PLANETS);
        signed(m, Scheme::HmacSha256, &key)
    };
    assert_eq!(answered("path", "0", via_s()), [C]);
    assert!(answered("origin", "0", via_s()).is_empty());
}
