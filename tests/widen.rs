//! `cmr-post --widen POST` through the real binaries: our client's unanswered post goes to
//! `widen_fanout` more peers not asked yet, once per post; what is not ours, not there,
//! widened before, held as bulk posting, or with widening off is refused or declined
//! with the state unchanged.

mod route_common;
use route_common::*;

const QUESTION: &str = "What is the largest planet in the solar system, and how many moons?";

/// Seven configured peers, and our client's question posted: (env, its cache row).
fn posted() -> (Env, i64) {
    let e = Env::new();
    for i in 1..=7 {
        e.ok(&["peer", "add", &format!("http://p{i}.test/cmr")]);
    }
    let o = e.post(&["--json"], QUESTION.as_bytes());
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    (e, v["cache_id"].as_i64().unwrap())
}

/// `cmr-post --widen POST` exits 0, widens nothing, and says why (`why` in its reason).
fn assert_declined(e: &Env, post: &str, why: &str) {
    let (code, w) = widen_json(e, post);
    assert_eq!(code, 0, "{w}");
    assert_eq!(w["widened"], false, "{w}");
    assert!(w["reason"].as_str().unwrap().contains(why), "{w}");
}

fn widen_json(e: &Env, post: &str) -> (i32, serde_json::Value) {
    let o = e.post(&["--widen", post, "--json"], b"");
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o.status.code().unwrap_or(-1), v)
}

#[test]
fn a_post_goes_to_two_more_peers_once() {
    let (e, row) = posted();
    let before: Vec<String> = outbox_rows(&e).into_iter().map(|(d, _)| d).collect();
    let (code, v) = widen_json(&e, &row.to_string());
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["widened"], true, "{v}");
    let after: Vec<String> = outbox_rows(&e).into_iter().map(|(d, _)| d).collect();
    assert_eq!(after.len(), before.len() + 2, "{before:?} -> {after:?}");
    for d in &after[before.len()..] {
        assert!(!before.contains(d), "{d} was asked already: {before:?}");
    }
    // By its ID as well; the second time it is declined and nothing is queued.
    let id = v["message_id"].as_str().unwrap().to_string();
    assert_declined(&e, &id, "widened before");
    assert_eq!(outbox_rows(&e).len(), after.len());
    // The human form says the same.
    let o = e.post(&["--widen", &row.to_string()], b"");
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("not widened "),
        "{o:?}"
    );
}

#[test]
fn what_cannot_be_widened_is_refused_with_its_code_and_nothing_changes() {
    let (e, row) = posted();
    // A body or a body's options with --widen: EX_USAGE.
    for extra in [
        &["note.txt"][..],
        &["-k", "3"],
        &["--from", "mailto:x@example.org"],
    ] {
        let mut args = vec!["--widen", "1"];
        args.extend_from_slice(extra);
        let o = e.post(&args, b"");
        assert_eq!(o.status.code(), Some(64), "{extra:?}: {o:?}");
    }
    // Not in the cache: EX_NOINPUT.
    for missing in ["999", "2030/01/01 00:00:00 http://nowhere.test/"] {
        let o = e.post(&["--widen", missing], b"");
        assert_eq!(o.status.code(), Some(66), "{o:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("no cached message"));
    }
    // A peer's message, not our client's post: EX_DATAERR.
    let (code, _) = e.route_json(
        &msg("http://p1.test/cmr", "Jupiter has 95 moons.").encode(),
        &[],
    );
    assert_eq!(code, 0);
    let o = e.post(&["--widen", &(row + 1).to_string()], b"");
    assert_eq!(o.status.code(), Some(65), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a post of our client"));
    let queued = e.count("outbox");
    // Widening off: EX_CONFIG.
    e.ok(&["policy", "widen_fanout", "0"]);
    let o = e.post(&["--widen", &row.to_string()], b"");
    assert_eq!(o.status.code(), Some(78), "{o:?}");
    assert_eq!(e.count("outbox"), queued);
    assert_eq!(e.count("widened"), 0);
}

#[test]
fn a_post_held_as_bulk_is_not_widened() {
    let (e, _) = posted();
    let first =
        "SPAM 1: cheap offer 5f3a click winner free bonus casino deal 77e1 limited urgent now";
    let copy =
        "SPAM 2: cheap offer 9b01 click winner free bonus casino prize 12cd limited urgent act";
    let o = e.post(&["--json"], first.as_bytes());
    assert!(o.status.success(), "{o:?}");
    let o = e.post(&["--json"], copy.as_bytes());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["decision"]["near_duplicate_of"].is_i64(), "{v}");
    let n = e.count("outbox");
    assert_declined(&e, &v["cache_id"].to_string(), "bulk posting");
    assert_eq!(e.count("outbox"), n);
}

#[test]
fn a_post_of_a_series_is_not_widened() {
    let (e, _) = posted();
    // Not a near copy (it is forwarded as usual), but a third of its words are the
    // question's: one of a series, not a new question.
    let next = "How many moons does the largest planet have, and who found the first of them with a telescope?";
    let o = e.post(&["--json"], next.as_bytes());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["decision"]["near_duplicate_of"].is_null(), "{v}");
    assert_declined(&e, &v["cache_id"].to_string(), "series");
    // With the bulk check off there is no series either.
    e.ok(&["policy", "bulk_resemblance", "off"]);
    let (_, w) = widen_json(&e, &v["cache_id"].to_string());
    assert_eq!(w["widened"], true, "{w}");
}

#[test]
fn with_every_peer_asked_nothing_is_spent() {
    let e = Env::new();
    e.ok(&["peer", "add", "http://p1.test/cmr"]);
    let o = e.post(&["--json"], QUESTION.as_bytes());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let row = v["cache_id"].to_string();
    assert_declined(&e, &row, "asked already");
    // A peer added later is asked when the client widens again.
    e.ok(&["peer", "add", "http://p2.test/cmr"]);
    let (_, w) = widen_json(&e, &row);
    assert_eq!(w["widened"], true, "{w}");
    assert!(outbox_rows(&e)
        .iter()
        .any(|(d, _)| d == "http://p2.test/cmr"));
}
