//! Answers find their way back (3.1: "sending those responses back to the originator as
//! well as any peers through which X was routed"; A1: related messages "posted later by
//! other clients"), even when other cached messages are closer to the answer than the
//! message it answers.

mod route_common;
use route_common::*;

const B: &str = "http://b.test/cmr";
const C: &str = "http://c.test/cmr";

const FRUIT: &str = "apples oranges bananas pears plums fruit salad with apples and oranges";
const QUESTION: &str = "how long do I bake an apple pie with cinnamon and sliced apples";
const ANSWER: &str =
    "apples oranges bananas pears plums fruit salad with sliced apples and cinnamon";

fn setup(match_k: &str) -> Env {
    let e = Env::new();
    for (k, v) in [
        ("rate_peer", "off"),
        ("rate_global", "off"),
        ("match_k", match_k),
        ("explore_fanout", "0"),
    ] {
        e.ok(&["policy", k, v]);
    }
    e.ok(&["peer", "add", B]);
    e.ok(&["peer", "add", C]);
    e
}

fn forwards_to(d: &serde_json::Value, dest: &str) -> Vec<String> {
    d["forwards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["dest"] == dest)
        .map(|f| f["why"].as_str().unwrap_or("").to_string())
        .collect()
}

/// B asks a question; it matches C's earlier message, so A3 sends it to C. C's answer is
/// closer to C's earlier message than to the question, yet it is matched to the question
/// (we sent the question to C) and goes back to B.
fn answer_goes_back(answer_depth: &str) -> Vec<String> {
    let e = setup("1");
    e.ok(&["policy", "answer_depth", answer_depth]);
    let (_, d) = e.route_json(&msg(C, FRUIT).encode(), &[]);
    assert_eq!(d["outcome"], "accepted", "{d}");
    let (_, d) = e.route_json(&msg(B, QUESTION).encode(), &[]);
    assert_eq!(d["outcome"], "accepted", "{d}");
    assert!(
        !forwards_to(&d, C).is_empty(),
        "the question goes to C, the creator of what it matched: {d}"
    );
    let (_, d) = e.route_json(&msg(C, ANSWER).encode(), &[]);
    assert_eq!(d["outcome"], "accepted", "{d}");
    forwards_to(&d, B)
}

#[test]
fn an_answer_goes_back_along_the_path_of_the_message_it_answers() {
    let back = answer_goes_back("20");
    assert_eq!(back.len(), 1, "{back:?}");
    assert!(
        back[0].starts_with("A3: matched cached message"),
        "{back:?}"
    );
    // Off: the answer is matched only to its closest cached message (C's own), and B
    // never sees it.
    assert!(answer_goes_back("0").is_empty());
}

/// Our client's post, then a message from B that the post ranks among its related
/// messages although the message's own closest match is another cached message.
fn reply_count(reply_window: &str) -> usize {
    let e = setup("1");
    e.ok(&["policy", "reply_window", reply_window]);
    e.ok(&["policy", "answer_depth", "0"]);
    let (_, d) = e.route_json(&msg(C, FRUIT).encode(), &[]);
    assert_eq!(d["outcome"], "accepted", "{d}");
    let o = e.post(&["-k", "0"], QUESTION.as_bytes());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, d) = e.route_json(&msg(B, ANSWER).encode(), &[]);
    assert_eq!(d["outcome"], "accepted", "{d}");
    let o = e.post(&["--replies", "--json"], b"");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    out.lines()
        .filter(|l| l.contains("sliced apples and cinnamon"))
        .count()
}

#[test]
fn a_later_message_the_post_ranks_as_related_is_a_reply() {
    assert_eq!(reply_count("86400"), 1);
    assert_eq!(
        reply_count("0"),
        0,
        "reply_window 0: only what matches the post"
    );
}

const BREAD: &str = "bread flour water yeast salt make a simple loaf of bread";

/// A router with `replies_from_asked` set to `setting`, peers B and C, and B's context (so
/// that a post has a best peer: B).
fn asked(setting: &str) -> Env {
    let e = Env::new();
    e.ok(&["policy", "explore_fanout", "0"]);
    e.ok(&["policy", "replies_from_asked", setting]);
    e.ok(&["peer", "add", B]);
    e.ok(&["peer", "add", C]);
    let (_, d) = e.route_json(&msg(B, FRUIT).encode(), &[]);
    assert_eq!(d["outcome"], "accepted", "{d}");
    e
}

/// `replies_from_asked`: a message older than our client's post, from the router the post
/// was sent to, is a reply however little it resembles the post; the same message from a
/// router we did not ask is not.
#[test]
fn with_replies_from_asked_what_the_asked_router_sends_is_a_reply() {
    let replies = |setting: &str, from: &str| {
        let e = asked(setting);
        let o = e.post(&["-k", "0"], QUESTION.as_bytes());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            outbox_rows(&e).contains(&(B.to_string(), QUESTION.to_string())),
            "the post goes to B: {:?}",
            outbox_rows(&e)
        );
        let (_, d) = e.route_json(&msg(from, BREAD).encode(), &[]);
        assert_eq!(d["outcome"], "accepted", "{d}");
        let o = e.post(&["--replies", "--json"], b"");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        out.lines().filter(|l| l.contains("simple loaf")).count()
    };
    assert_eq!(replies("1", B), 1);
    assert_eq!(
        replies("0", B),
        0,
        "off by default: it does not resemble the post"
    );
    assert_eq!(replies("1", C), 0, "C was not asked");
}

/// `replies_from_asked`, for a message we hold already: the router asked sends back a
/// cached message the post did not show (A3 rejects the copy as a duplicate); it goes into
/// the post's replies. The same duplicate from a router we did not ask, or with the
/// setting off, does not.
#[test]
fn a_duplicate_from_the_asked_router_is_a_reply_too() {
    let replies = |setting: &str, from: &str| {
        let e = asked(setting);
        // Cached before the post, and not shown by it (-k 0).
        let bread = msg(from, BREAD).encode();
        let (_, d) = e.route_json(&bread, &[]);
        assert_eq!(d["outcome"], "accepted", "{d}");
        let o = e.post(&["-k", "0"], QUESTION.as_bytes());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(outbox_rows(&e).contains(&(B.to_string(), QUESTION.to_string())));
        let (code, d) = e.route_json(&bread, &[]);
        assert_eq!(
            (code, &d["outcome"]),
            (0, &serde_json::json!("duplicate")),
            "{d}"
        );
        let o = e.post(&["--replies", "--json"], b"");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        (
            out.lines().filter(|l| l.contains("simple loaf")).count(),
            e.count("cache"),
        )
    };
    assert_eq!(replies("1", B), (1, 3), "a reply; nothing cached again");
    assert_eq!(replies("0", B), (0, 3));
    assert_eq!(replies("1", C).0, 0, "C was not asked");
}
