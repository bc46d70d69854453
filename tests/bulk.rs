//! Section 4 bulk posting (`bulk_resemblance`) through the real cmr-route: a message whose
//! words resemble a recent cached message from the same creator is cached and forwarded to
//! no one; the first copy, another creator's copy, and copies with the check off travel
//! as usual.

mod route_common;
use route_common::*;

const P: &str = "http://p.test/";
const S: &str = "http://spam.test/";
const PITCH: &str = "Cheap offer: click now for a free bonus at the casino, limited deal.";
const FIRST: &str =
    "SPAM 1: cheap offer 5f3a click winner free bonus casino deal 77e1 limited urgent now";
// The same words, other numbers (what a bulk poster varies to defeat exact-duplicate
// checks), two words swapped for others.
const COPY: &str =
    "SPAM 2: cheap offer 9b01 click winner free bonus casino prize 12cd limited urgent act";

fn sent_to_p(d: &serde_json::Value) -> bool {
    d["forwards"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["dest"] == P)
}

/// Route P's pitch, then `first` and `second` (creator, body); the second's decision.
fn second_of(bulk: Option<&str>, first: (&str, &str), second: (&str, &str)) -> serde_json::Value {
    let e = Env::new();
    // A configured peer: the relay policy lets us write to it.
    e.ok(&["peer", "add", P]);
    if let Some(b) = bulk {
        e.ok(&["policy", "bulk_resemblance", b]);
    }
    let (_, d) = e.route_json(&msg(P, PITCH).encode(), &[]);
    assert_eq!(d["outcome"], "accepted", "{d}");
    let (_, d) = e.route_json(&msg(first.0, first.1).encode(), &[]);
    assert_eq!(d["outcome"], "accepted", "{d}");
    assert!(d["near_duplicate_of"].is_null(), "the first copy: {d}");
    assert!(
        sent_to_p(&d),
        "A3 sends the first copy to the creator of what it matched: {d}"
    );
    let (_, d) = e.route_json(&msg(second.0, second.1).encode(), &["--explain"]);
    assert_eq!(d["outcome"], "accepted", "cached all the same: {d}");
    d
}

#[test]
fn a_near_copy_from_the_same_creator_is_cached_and_not_forwarded() {
    let d = second_of(None, (S, FIRST), (S, COPY));
    assert!(d["near_duplicate_of"].as_i64().is_some(), "{d}");
    assert!(d["forwards"].as_array().unwrap().is_empty(), "{d}");
    assert!(d.to_string().contains("bulk posting"), "{d}");
}

#[test]
fn another_creator_or_the_check_off_lets_the_copy_travel() {
    for (bulk, creator) in [(None, "http://other.test/"), (Some("off"), S)] {
        let d = second_of(bulk, (S, FIRST), (creator, COPY));
        assert!(d["near_duplicate_of"].is_null(), "{d}");
        assert!(sent_to_p(&d), "{d}");
    }
}

#[test]
fn a_message_of_the_same_creator_that_only_shares_some_words_is_not_a_copy() {
    let other = "SPAM 3: the weather was fine and the casino closed early, so we walked home";
    let d = second_of(None, (S, FIRST), (S, other));
    assert!(d["near_duplicate_of"].is_null(), "{d}");
}

#[test]
fn bulk_resemblance_takes_a_share_or_off() {
    let e = Env::new();
    for bad in ["often", "0", "1.5"] {
        let o = e.route(&["policy", "bulk_resemblance", bad], b"");
        assert_eq!(o.status.code(), Some(78), "{bad}: {o:?}");
    }
    e.ok(&["policy", "bulk_resemblance", "0.8"]);
}
