//! 3.1 "sending those responses back to the originator as well as any peers through which
//! X was routed", through the real cmr-route: a message older than one that passed through
//! us, and close to it, is an answer on its way back (`answers_return`): it goes on along
//! that message's header and is routed no further. A newer one is a new message. An
//! answer from a peer that had the question from us, signed, went along the question's
//! whole header from there: it stops here (`answers_return 2`).

mod route_common;
use cmr::sign::Scheme;
use cmr::wire::Message;
use route_common::*;

const A: &str = "http://a.test/";
const B: &str = "http://b.test/";
const D: &str = "http://d.test/";
const QUESTION: &str = "Which planet of the solar system is the largest planet?";
const ANSWER: &str = "The planet Jupiter is the largest planet of the solar system.";

const KEY_A: [u8; 32] = [0xa1; 32];
const KEY_B: [u8; 32] = [0xb2; 32];

/// A message from `sender` created by `origin` `age` seconds ago.
fn from(sender: &str, origin: &str, age: i64, body: &str) -> Message {
    with_lines(&[(sender, 0), (origin, age)], body)
}

/// A router with three neighbours (configured, or sharing a key with us when `keyed`)
/// that has sent A's question on to B.
fn asked(answers_return: &str, keyed: bool) -> Env {
    let e = Env::new();
    for (p, k) in [(A, KEY_A), (B, KEY_B), (D, [0xd4; 32])] {
        if keyed {
            e.ok(&["peer", "add", p, "--key-hex", &hex(&k)]);
        } else {
            e.ok(&["peer", "add", p]);
        }
    }
    e.ok(&["policy", "answers_return", answers_return]);
    let q = msg(A, QUESTION);
    let q = if keyed {
        signed(q, Scheme::HmacSha256, &KEY_A)
    } else {
        q.encode()
    };
    let (_, d) = e.route_json(&q, &[]);
    assert_eq!(d["outcome"], "accepted", "{d}");
    let to: Vec<&str> = d["forwards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["dest"].as_str().unwrap())
        .collect();
    assert!(to.contains(&B), "the question was not sent to B: {d}");
    e
}

/// Where router `asked(answers_return)` sends a message from B created `age` seconds ago
/// elsewhere with the answer's text, and why: (destination, reason) of each forward.
fn forwards_of_answer(answers_return: &str, age: i64) -> Vec<(String, String)> {
    let (_, d) = answer(answers_return, false, age);
    forwards(&d)
}

/// Router `asked(answers_return, keyed)`'s decision on a message from B (signed when
/// `keyed`) created `age` seconds ago elsewhere with the answer's text.
fn answer(answers_return: &str, keyed: bool, age: i64) -> (Env, serde_json::Value) {
    let e = asked(answers_return, keyed);
    let y = from(B, "http://c.test/", age, ANSWER);
    let y = if keyed {
        signed(y, Scheme::HmacSha256, &KEY_B)
    } else {
        y.encode()
    };
    let (_, d) = e.route_json(&y, &["--explain"]);
    assert_eq!(d["outcome"], "accepted", "{d}");
    (e, d)
}

/// (destination, reason) of each forward of a decision.
fn forwards(d: &serde_json::Value) -> Vec<(String, String)> {
    d["forwards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["dest"].as_str().unwrap().to_string(),
                f["why"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn an_older_answer_returns_along_the_path_and_no_further() {
    // Created an hour ago elsewhere, cached by B, sent back because of the question.
    let f = forwards_of_answer("1", 3600);
    assert!(!f.is_empty());
    for (dest, why) in &f {
        assert_eq!(
            dest, A,
            "an answer goes back to the question's path only: {f:?}"
        );
        assert!(why.starts_with("3.1 answer"), "{f:?}");
    }
}

#[test]
fn a_newer_message_is_routed_as_a_new_one() {
    // Created after the question: a new message, whatever it resembles.
    let f = forwards_of_answer("1", 1);
    assert!(
        f.iter().all(|(_, why)| !why.starts_with("3.1 answer")),
        "{f:?}"
    );
}

#[test]
fn with_answers_return_off_an_older_answer_is_routed_like_any_message() {
    let f = forwards_of_answer("0", 3600);
    assert!(
        f.iter().all(|(_, why)| !why.starts_with("3.1 answer")),
        "{f:?}"
    );
}

#[test]
fn a_signed_answer_from_the_peer_we_asked_stops_here_with_answers_return_2() {
    // B had the question from us, signed, with our line and A's in its header; A3 sent
    // its answer to both, so a copy from here would reach A twice.
    let (e, d) = answer("2", true, 3600);
    assert_eq!(d["verified"], true, "{d}");
    assert!(forwards(&d).is_empty(), "{d}");
    let notes = d["notes"].to_string();
    assert!(notes.contains("not sent again"), "{d}");
    assert!(
        !outbox_rows(&e).iter().any(|(_, body)| body == ANSWER),
        "the answer was queued: {:?}",
        outbox_rows(&e)
    );
    // The same answer with `answers_return 1` goes back to A, and unsigned (B only
    // configured: it may not have reached A itself) with 2 as well.
    let (_, d) = answer("1", true, 3600);
    assert_eq!(forwards(&d), [(A.to_string(), forwards(&d)[0].1.clone())]);
    assert!(forwards(&d)[0].1.starts_with("3.1 answer"), "{d}");
    let (_, d) = answer("2", false, 3600);
    assert!(
        forwards(&d)
            .iter()
            .any(|(dest, why)| dest == A && why.starts_with("3.1 answer")),
        "{d}"
    );
}

/// Our client's open post and a question from A that we sent on to B; then an older
/// message from B, closer to A's question than to the post. It returns along the
/// question's path, and it is among the post's replies too (A1): the post's path ends
/// here. Only `answers_return` can put it there: the post's own ranking is off
/// (`related_k 0`) and only the closest cached message is matched (`match_k 1`).
#[test]
fn an_answer_that_returns_along_another_path_still_reaches_our_clients_post() {
    let e = asked("2", false);
    e.ok(&["policy", "related_k", "0"]);
    e.ok(&["policy", "match_k", "1"]);
    let o = e.post(
        &["-k", "0"],
        b"Is the largest planet of the solar system made of gas?",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let y = from(B, "http://c.test/", 3600, ANSWER);
    let (_, d) = e.route_json(&y.encode(), &["--explain"]);
    assert_eq!(d["outcome"], "accepted", "{d}");
    assert!(
        forwards(&d)
            .iter()
            .any(|(dest, why)| dest == A && why.starts_with("3.1 answer")),
        "it returns along the question's path: {d}"
    );
    let o = e.post(&["--replies", "--json"], b"");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Jupiter"),
        "not among the post's replies: {out} {d}"
    );
}
