//! cmr-sim on a small network: real routers, real keys, a few queries, and the baselines.

mod common;

use std::process::Command;

fn sim() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cmr-sim"));
    c.env("CMR_SHARED", common::shared());
    c
}

/// cmr-sim on a small network: 12 routers of degree 4, one expert per label with 4
/// training posts, 12 queries, seed 3.
fn small() -> Command {
    let mut c = sim();
    c.args([
        "--routers",
        "12",
        "--degree",
        "4",
        "--seed",
        "3",
        "--experts",
        "1",
        "--train",
        "4",
        "--queries",
        "12",
    ]);
    c
}

/// Run `c` (with `--json`), expect success, and parse what it printed.
fn json_of(c: &mut Command) -> serde_json::Value {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_small_network_answers_queries_and_the_baselines_run() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("net.svg");
    let v = json_of(
        small()
            .args(["--horizon", "6", "--json", "--plot"])
            .arg(&plot),
    );
    for k in [
        "routers",
        "queries",
        "success_by_round",
        "messages_per_query",
        "load_max_over_mean",
        "baselines",
        "wall_s",
        "peak_rss_kib",
    ] {
        assert!(v.get(k).is_some(), "key {k} missing: {v}");
    }
    assert_eq!(v["routers"], 12);
    assert_eq!(v["queries"], 12);
    let succ: Vec<f64> = v["success_by_round"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(succ.len(), 6);
    assert!(
        succ.windows(2).all(|w| w[0] <= w[1]),
        "success never falls with h: {succ:?}"
    );
    // Queries find their topic through the real routers.
    assert!(succ[5] >= 0.25, "success within 6 rounds {succ:?}");
    // Every share comes with its interval, and the comparison with flooding with its own.
    let ci = v["success_ci95_by_round"].as_array().unwrap();
    assert_eq!(ci.len(), 6);
    for (p, c) in succ.iter().zip(ci) {
        let (lo, hi) = (c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
        assert!(lo <= *p && *p <= hi && hi - lo > 0.1, "{p} in {c}");
    }
    let a = &v["against_flood"];
    assert_eq!(a["baseline"], "flood");
    assert_eq!(a["h"], 4);
    let flood4 = v["baselines"]["flood"]["success_by_round"][3]
        .as_f64()
        .unwrap();
    let ratio = a["ratio"].as_f64().unwrap();
    assert!((ratio - succ[3] / flood4).abs() < 1e-9, "{a}");
    assert!(a["ci95"][0].as_f64().unwrap() <= ratio && ratio <= a["ci95"][1].as_f64().unwrap());
    assert!(v["messages_per_query"].as_f64().unwrap() > 0.0);
    assert!(v["peak_rss_kib"].as_u64().unwrap() > 0);
    // Every link is keyed: nothing was refused for its signature.
    let rejected = v["rejected"].as_object().unwrap();
    assert!(rejected.get("signature").is_none(), "{rejected:?}");
    let b = &v["baselines"];
    for k in ["flood", "walk", "oracle", "flood_match", "walk_match"] {
        let s = b[k]["success_by_round"].as_array().unwrap();
        assert_eq!(s.len(), 6, "{k}");
        assert!(b[k]["messages_per_query"].as_f64().unwrap() >= 0.0);
    }
    // The oracle is the floor on hops: nothing succeeds earlier than it, and on 12 routers
    // every holder is within its horizon.
    let f = |k: &str, h: usize| b[k]["success_by_round"][h].as_f64().unwrap();
    for h in 0..6 {
        assert!(f("oracle", h) >= f("walk", h) && f("oracle", h) >= f("flood", h) - 1e-9);
    }
    assert_eq!(f("oracle", 5), 1.0);
    // With the routers' own recognition, a walker's router is one flooding reached by then
    // (same answers, read when the query was posted): flooding finds at least as much.
    for h in 0..6 {
        assert!(
            f("flood_match", h) >= f("walk_match", h) - 1e-9,
            "h={h}: {b}"
        );
    }
    assert!(b["flood_match"]["messages_per_query"].as_f64().unwrap() > 0.0);
    // Flooding costs more messages than the oracle.
    assert!(
        b["flood"]["messages_per_query"].as_f64().unwrap()
            > b["oracle"]["messages_per_query"].as_f64().unwrap()
    );
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("flood") && svg.contains("cmr"));
}

#[test]
fn bad_options_and_a_missing_corpus() {
    let out = sim().args(["--churn", "1.5"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sim().args(["--set", "margin"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = sim().args(["--set", "margin=-1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let out = sim()
        .args(["--routers", "12", "--corpus", "/nonexistent/corpus.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/corpus.jsonl"));
    let out = sim()
        .args(["--routers", "5", "--degree", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

/// `--spam-limit N` stops the spammer after N posts; without it the spammer posts at its
/// rate, and either way the report says how far the spam spread.
#[test]
fn the_spammer_posts_at_its_rate_or_stops_at_its_limit() {
    let spam = |limit: Option<&str>| -> serde_json::Value {
        let mut c = small();
        c.args(["--horizon", "4", "--spam", "40", "--json"]);
        if let Some(n) = limit {
            c.args(["--spam-limit", n]);
        }
        json_of(&mut c)["spam"].clone()
    };
    let free = spam(None);
    assert!(free["posted"].as_u64().unwrap() > 2, "{free}");
    let once = spam(Some("1"));
    assert_eq!(once["posted"], 1, "{once}");
    // The one junk message spread (exploration), and cost fewer deliveries than 39 did.
    assert!(once["routers_cached"].as_u64().unwrap() >= 1, "{once}");
    let (one, all) = (
        once["messages"].as_u64().unwrap(),
        free["messages"].as_u64().unwrap(),
    );
    assert!(one >= 1 && one < all, "{once} {free}");
}

/// `--search-first`: a client whose router's pool answers its query does not post it; such
/// a query succeeds in round 0 and costs no delivery.
#[test]
fn search_first_clients_post_only_what_their_pool_cannot_answer() {
    let run = |extra: &[&str]| json_of(small().args(["--horizon", "4", "--json"]).args(extra));
    let plain = run(&[]);
    let first = run(&["--search-first"]);
    assert_eq!(plain["search_first"], false);
    assert_eq!(plain["found_locally"], 0);
    assert_eq!(first["search_first"], true);
    let found = first["found_locally"].as_u64().unwrap();
    assert!((1..12).contains(&found), "{first}");
    // Found in the pool: success in round 0, at least for those.
    let h1 = first["success_by_round"][0].as_f64().unwrap();
    assert!(h1 >= found as f64 / 12.0 - 1e-9, "{first}");
    // Fewer queries posted, fewer deliveries.
    let m = |v: &serde_json::Value| v["messages_per_query"].as_f64().unwrap();
    assert!(m(&first) < m(&plain), "{} vs {}", m(&first), m(&plain));
}

/// `--widen-after N`: the clients of queries still unanswered N rounds after they were due
/// widen their posts (cmr-post --widen), which costs deliveries; the spammer's clients
/// widen at most their first post (a later one is a series; here the first went to every
/// neighbour already); nobody widens without the option.
#[test]
fn clients_widen_unanswered_posts_and_pay_for_it_in_deliveries() {
    let run = |extra: &[&str]| {
        json_of(
            small()
                .args(["--horizon", "4", "--spam", "40", "--json"])
                .args(extra),
        )
    };
    let plain = run(&[]);
    let wide = run(&["--widen-after", "1"]);
    assert_eq!(plain["widen_after"], 0);
    assert_eq!(plain["widened"], 0);
    assert_eq!(plain["spam"]["widened"], 0);
    let n = wide["widened"].as_u64().unwrap();
    let unanswered = (12.0 * (1.0 - plain["success_by_round"][0].as_f64().unwrap())).round();
    assert!(
        n >= 1 && n as f64 <= unanswered + 1e-9,
        "{n} of {unanswered}: {wide}"
    );
    assert!(wide["spam"]["widened"].as_u64().unwrap() <= 1, "{wide}");
    assert_eq!(wide["settings"]["widen_fanout"], "2");
    let m = |v: &serde_json::Value| v["messages_per_query"].as_f64().unwrap();
    assert!(m(&wide) > m(&plain), "{} vs {}", m(&wide), m(&plain));
    // The human table says it too.
    let out = small()
        .args(["--horizon", "2", "--widen-after", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("clients widen posts unanswered after 1 round(s)"));
}
