//! 3.1 "sending those responses back to the originator as well as any peers through which
//! X was routed", through the real cmr-route: a message older than one that passed through
//! us, and close to it, is an answer on its way back (`answers_return`): it goes on along
//! that message's header and is routed no further. A newer one is a new message.

mod route_common;
use cmr::wire::{self, Message};
use route_common::*;

const A: &str = "http://a.test/";
const B: &str = "http://b.test/";
const D: &str = "http://d.test/";
const QUESTION: &str = "Which planet of the solar system is the largest planet?";
const ANSWER: &str = "The planet Jupiter is the largest planet of the solar system.";

/// A message from `sender` created by `origin` `age` seconds ago.
fn from(sender: &str, origin: &str, age: i64, body: &str) -> Message {
    let lines: Vec<(wire::Timestamp, &[u8])> =
        vec![(past(0), sender.as_bytes()), (past(age), origin.as_bytes())];
    Message::compose(&lines, body.as_bytes(), &wire::Rules::default()).unwrap()
}

/// A router with three configured neighbours that has sent A's question on to B.
fn asked(answers_return: &str) -> Env {
    let e = Env::new();
    for p in [A, B, D] {
        e.ok(&["peer", "add", p]);
    }
    e.ok(&["policy", "answers_return", answers_return]);
    let (_, d) = e.route_json(&msg(A, QUESTION).encode(), &[]);
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
    let e = asked(answers_return);
    let y = from(B, "http://c.test/", age, ANSWER);
    let (_, d) = e.route_json(&y.encode(), &["--explain"]);
    assert_eq!(d["outcome"], "accepted", "{d}");
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
