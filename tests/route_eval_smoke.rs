//! route-eval on a subset of the open corpus (6 labels, 20 queries each, the protocol of
//! shared/corpus/README.md): the engine must route well above chance, and its related
//! messages must be mostly of the query's label. The full figures come from
//! `cargo bench --bench route_eval` (docs/routing.md). Cold start: with 20 training
//! messages per peer the engine must beat the tf-idf centroid on the same split.

use cmr::compress::eval::{peer_address, read_corpus, split, TfIdfCentroid};
use cmr::compress::model::{learn, score, terms};
use cmr::compress::related::{related, related_exhaustive, QueryView, RelatedOptions};
use cmr::compress::store::{SqlStore, Store};
use std::path::PathBuf;

fn corpus() -> PathBuf {
    std::env::var_os("CMR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join("corpus/fortunes_topics.jsonl")
}

#[test]
fn engine_routes_a_corpus_subset_well_above_chance() {
    let items = read_corpus(&corpus()).expect("the open corpus");
    let sp = split(&items, Some(6), 20, 1);
    assert_eq!(sp.labels.len(), 6);
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    SqlStore::create(&conn).unwrap();
    let addrs: Vec<String> = sp.labels.iter().map(|l| peer_address(l)).collect();
    let mut label_of_id = std::collections::HashMap::new();
    {
        let tx = conn.unchecked_transaction().unwrap();
        let mut st = SqlStore::new(&tx);
        for (n, &(l, i)) in sp.train.iter().enumerate() {
            learn(&mut st, n as i64 + 1, &addrs[l], items[i].text.as_bytes()).unwrap();
            label_of_id.insert(n as i64 + 1, l);
        }
        tx.commit().unwrap();
    }
    let mut st = SqlStore::new(&conn);
    let g = st.global().unwrap();
    let peers = st.all_peers().unwrap();
    let opts = RelatedOptions::default();
    let (mut hit, mut good, mut n_rel, mut rec, mut n_rec) = (0, 0, 0, 0, 0);
    for &(l, i) in &sp.queries {
        let ts = terms(items[i].text.as_bytes());
        let sc = score(&mut st, &g, &ts, &peers).unwrap();
        let best = (0..peers.len())
            .min_by(|&a, &b| sc.cond[a].total_cmp(&sc.cond[b]))
            .unwrap();
        hit += (peers[best].address == addrs[l]) as usize;
        let view = QueryView::new(&g, &ts, &sc, &peers, &opts);
        let rel = related(&mut st, &view, &ts, &sc, 5, &opts).unwrap();
        n_rel += rel.len();
        good += rel.iter().filter(|r| label_of_id[&r.0] == l).count();
        let all = related_exhaustive(&mut st, &view, 5).unwrap();
        n_rec += all.len();
        rec += all
            .iter()
            .filter(|a| rel.iter().any(|r| r.0 == a.0))
            .count();
    }
    let q = sp.queries.len() as f64;
    let top1 = hit as f64 / q;
    let p5 = good as f64 / n_rel as f64;
    let recall = rec as f64 / n_rec as f64;
    // chance is 1/6 = 0.167 for both; measured 0.58 and 0.52 on this split
    assert!(top1 >= 0.40, "top-1 {top1}");
    assert!(p5 >= 0.35, "precision@5 {p5}");
    // the shortlist finds most of what scoring the whole cache finds
    assert!(recall >= 0.6, "recall {recall}");
}

#[test]
fn engine_beats_the_tfidf_centroid_from_20_messages_per_peer() {
    // All 18 labels, 20 queries each, each peer's 20 most recent training messages
    // (route-eval --train 20 --tests 20), seeds 1 to 3.
    let items = read_corpus(&corpus()).expect("the open corpus");
    let (mut engine, mut tfidf) = (0.0, 0.0);
    for seed in 1..=3 {
        let mut sp = split(&items, None, 20, seed);
        sp.limit_train(20);
        assert_eq!(sp.train.len(), 20 * sp.labels.len());
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        SqlStore::create(&conn).unwrap();
        let addrs: Vec<String> = sp.labels.iter().map(|l| peer_address(l)).collect();
        let mut st = SqlStore::new(&conn);
        for (n, &(l, i)) in sp.train.iter().enumerate() {
            learn(&mut st, n as i64 + 1, &addrs[l], items[i].text.as_bytes()).unwrap();
        }
        let centroid = TfIdfCentroid::fit(
            sp.labels.len(),
            sp.train.iter().map(|&(l, i)| (l, items[i].text.as_str())),
        );
        let g = st.global().unwrap();
        let peers = st.all_peers().unwrap();
        let (mut hit, mut hit_tfidf) = (0, 0);
        for &(l, i) in &sp.queries {
            let sc = score(&mut st, &g, &terms(items[i].text.as_bytes()), &peers).unwrap();
            let best = (0..peers.len())
                .min_by(|&a, &b| sc.cond[a].total_cmp(&sc.cond[b]))
                .unwrap();
            hit += (peers[best].address == addrs[l]) as usize;
            hit_tfidf += (centroid.best(&items[i].text) == Some(l)) as usize;
        }
        engine += hit as f64 / sp.queries.len() as f64 / 3.0;
        tfidf += hit_tfidf as f64 / sp.queries.len() as f64 / 3.0;
    }
    // measured: engine 0.256, tf-idf centroid 0.197 (without the peer models' mixture
    // with the background the engine scored 0.213)
    assert!(
        engine >= tfidf + 0.03,
        "engine {engine}, tf-idf centroid {tfidf}"
    );
}
