//! Routing figures for the baseline matcher on a JSONL corpus (`{"id","label","text"}`),
//! in the shape of the route-eval protocol: one peer per label, its training messages in
//! the cache as received from it, held-out messages routed as new messages from a client.
//!
//!     cargo run --release --example route_baseline_eval -- [CORPUS] [TESTS] [MAX_TRAIN] [SEED]
//!
//! Reports top-1 accuracy of the best peer, precision of the matched (related) messages,
//! forwards per query, and time per routing decision. Queries run with `dry_run`, so
//! they do not enter the cache. The shuffle is a seeded xorshift.

use cmr::route::{self, RouteOptions, Transport};
use cmr::state::{cache, peers, settings::Settings, State};
use cmr::wire::{Message, Rules, Timestamp};
use std::collections::BTreeMap;
use std::time::Instant;

fn shuffle<T>(v: &mut [T], s: &mut u64) {
    for i in (1..v.len()).rev() {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        v.swap(i, (*s % (i as u64 + 1)) as usize);
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let shared = std::env::var("CMR_SHARED")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared").to_string());
    let corpus = a
        .get(1)
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or(format!("{shared}/corpus/fortunes_topics.jsonl"));
    let tests: usize = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let max_train: usize = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(200);
    let mut seed: u64 = a.get(4).and_then(|s| s.parse().ok()).unwrap_or(1);

    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in std::fs::read_to_string(&corpus).expect("corpus").lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        by.entry(v["label"].as_str().unwrap().into())
            .or_default()
            .push(v["text"].as_str().unwrap().into());
    }
    by.retain(|_, v| v.len() >= tests + 20);

    let dir = tempfile::tempdir().unwrap();
    let mut st = State::open(Some(&dir.path().join("eval.sqlite"))).unwrap();
    st.write(|tx| {
        cmr::state::settings::add_own_address(tx, "http://router.eval/")?;
        Ok(())
    })
    .unwrap();
    // EVAL_POLICY="key=value,key=value" overrides policy settings.
    if let Ok(p) = std::env::var("EVAL_POLICY") {
        st.write(|tx| {
            for kv in p.split(',').filter(|s| !s.is_empty()) {
                let (k, v) = kv.split_once('=').expect("key=value");
                cmr::state::settings::set(tx, k, v)?;
            }
            Ok(())
        })
        .unwrap();
    }
    let settings = Settings::load(st.conn()).unwrap();
    let matcher = route::matching::from_settings(&settings).unwrap();
    let rules = Rules::unchecked_time();
    let base = Timestamp::now().unix_secs() - 10_000_000;
    let mut n = 0i64;
    let mut queries = Vec::new();
    let t0 = Instant::now();
    for (label, items) in by.iter_mut() {
        shuffle(items, &mut seed);
        let peer = format!("http://{label}.peer/");
        let (q, train) = items.split_at(tests);
        for t in q {
            queries.push((label.clone(), t.clone()));
        }
        st.write(|tx| {
            for t in train.iter().take(max_train) {
                n += 1;
                let m = Message::compose(
                    &[(Timestamp::from_unix(base + n, 0, 0), peer.as_bytes())],
                    t.as_bytes(),
                    &rules,
                )
                .unwrap();
                let id = cache::insert(tx, &m, &peer, "pipe", false, false)?;
                matcher.learn(tx, id, &peer, m.body())?;
                peers::note_accepted(tx, &peer, id, false)?;
            }
            Ok(())
        })
        .unwrap();
    }
    eprintln!(
        "loaded {n} messages from {} peers in {:.1} s",
        by.len(),
        t0.elapsed().as_secs_f64()
    );
    let opts = RouteOptions {
        dry_run: true,
        ..RouteOptions::default()
    };
    let (mut top1, mut rel_hit, mut rel_n, mut fwd, mut best_scores, mut time) =
        (0usize, 0usize, 0usize, 0usize, Vec::new(), 0f64);
    for (i, (label, text)) in queries.iter().enumerate() {
        let m = Message::compose(
            &[(
                Timestamp::from_unix(base + n + 1 + i as i64, 0, 0),
                format!("http://client{i}.eval/").as_bytes(),
            )],
            text.as_bytes(),
            &rules,
        )
        .unwrap();
        let t = Instant::now();
        let d = route::receive_message(&mut st, &settings, m, Transport::Pipe, &opts).unwrap();
        time += t.elapsed().as_secs_f64();
        if d.best_peer.as_deref() == Some(&format!("http://{label}.peer/")) {
            top1 += 1;
        }
        if let Some(s) = d.scores.first() {
            best_scores.push(s.score);
        }
        for mt in &d.matched {
            rel_n += 1;
            if mt.sender == format!("http://{label}.peer/") {
                rel_hit += 1;
            }
        }
        fwd += d.forwards.len();
    }
    let q = queries.len() as f64;
    best_scores.sort_by(f64::total_cmp);
    let pct = |p: f64| best_scores[((best_scores.len() - 1) as f64 * p) as usize];
    println!("matcher           {}", matcher.name());
    println!("labels            {}", by.len());
    println!("queries           {}", queries.len());
    println!(
        "top-1 accuracy    {:.3} (chance {:.3})",
        top1 as f64 / q,
        1.0 / by.len() as f64
    );
    println!(
        "related precision {:.3} ({rel_hit}/{rel_n})",
        rel_hit as f64 / rel_n.max(1) as f64
    );
    println!("forwards/query    {:.2}", fwd as f64 / q);
    println!("ms/decision       {:.2}", 1000.0 * time / q);
    println!(
        "best score        p10 {:.3}  p50 {:.3}  p90 {:.3}",
        pct(0.1),
        pct(0.5),
        pct(0.9)
    );
}
