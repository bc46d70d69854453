//! route-eval: routing accuracy and speed on a labelled JSONL corpus, by the protocol of
//! shared/corpus/README.md (see `cmr::compress::eval`).
//!
//!     cargo bench --bench route_eval -- --seed 1,2,3
//!     cargo bench --bench route_eval -- --compressor xz --metric d --labels 6
//!     cargo bench --bench route_eval -- --train 20 --no-recall   # cold start
//!
//! Prints, per seed and as the mean over seeds: top-1 accuracy, precision of the related
//! messages (share with the query's label), forwards per query (distinct peers among the
//! related messages' senders, A3), recall of the shortlist against exhaustive matching,
//! and milliseconds per routing decision in the library (peer scores; related messages).
//! Beside them, the top-1 accuracy of the corpus README's reference classifier, tf-idf
//! cosine to each peer's centroid, on the same split (`compress::eval::TfIdfCentroid`).
//!
//! `--train N` keeps at most N training messages per peer, its most recent: the last N of
//! its label in corpus order, the order in which they enter the cache (`Split::limit_train`).
//!
//! With `--e2e`, the same split also goes through the real router: the training messages
//! are cached in a state file (as the router's accept step does, in big transactions) and
//! each query is routed by a fresh `cmr-route --dry-run --json` process; its decision
//! (best peer, matched messages, forwards), wall-clock time and peak RSS are reported.

#[path = "common/mod.rs"]
mod common;

use clap::Parser;
use cmr::compress::eval::{peer_address, read_corpus, split, Item, TfIdfCentroid};
use cmr::compress::model::{learn, score_with, terms, TOPIC_WEIGHT};
use cmr::compress::related::{related, related_exhaustive, QueryView, RelatedOptions};
use cmr::compress::store::{SqlStore, Store};
use cmr::compress::{general_sizes, CompressorKind, Metric, PeerContext};
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(name = "route-eval")]
struct Args {
    /// JSONL corpus ({"id","label","text"} a line)
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// number of labels (peers) to keep; default all
    #[arg(long)]
    labels: Option<usize>,
    /// held-out queries per label
    #[arg(long, default_value_t = 40)]
    tests: usize,
    /// at most this many training messages per peer, its most recent (the last in corpus
    /// order); default all
    #[arg(long)]
    train: Option<usize>,
    /// seeds, comma separated; figures are averaged over them
    #[arg(long, default_value = "1,2,3", value_delimiter = ',')]
    seed: Vec<u64>,
    /// model, deflate or xz
    #[arg(long, default_value = "model")]
    compressor: CompressorKind,
    /// d, d-rel, cond or ncd; a comma separated list is measured in one pass (the sizes
    /// are computed once; decision times then include C(XY) for all)
    #[arg(long, default_value = "cond", value_delimiter = ',')]
    metric: Vec<Metric>,
    /// peer context size for deflate and xz (most recent bytes)
    #[arg(long, default_value_t = 32768)]
    context_bytes: usize,
    /// related messages returned per query
    #[arg(long, default_value_t = 5)]
    k: usize,
    /// rarest words of X probed for the shortlist
    #[arg(long)]
    probe: Option<usize>,
    /// shortlist size
    #[arg(long)]
    shortlist: Option<usize>,
    /// weight of the peer model in related-message scores; default 1 / topic weight
    #[arg(long)]
    peer_weight: Option<f64>,
    /// weight of each peer's own distribution in its mixture with the background (the
    /// engine's TOPIC_WEIGHT by default; 1 = the peer model alone, without the mixture)
    #[arg(long)]
    topic_weight: Option<f64>,
    /// skip the exhaustive matching used to measure the shortlist's recall
    #[arg(long)]
    no_recall: bool,
    /// print one JSON object with the means
    #[arg(long)]
    json: bool,
    /// also route the queries end to end, each in a fresh `cmr-route` process
    #[arg(long)]
    e2e: bool,
    /// at most this many queries end to end (spread over the labels); default all
    #[arg(long)]
    e2e_queries: Option<usize>,
    /// keep the state file of the last seed in this directory (for inspection)
    #[arg(long)]
    keep: Option<PathBuf>,
    /// accepted and ignored (cargo bench passes it)
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Default, Debug, Clone, serde::Serialize)]
struct Figures {
    /// top-1 accuracy per metric, in the order of --metric
    top1: Vec<f64>,
    /// top-1 accuracy of tf-idf cosine to the peers' centroids, same split
    tfidf_top1: f64,
    /// training messages in the split
    train: usize,
    p_at_k: f64,
    forwards: f64,
    recall: f64,
    /// ms per routing decision (peer scores), per metric
    decide_ms: Vec<f64>,
    /// the same in CPU time (this thread): robust against a loaded machine
    decide_cpu_ms: Vec<f64>,
    related_ms: f64,
    /// CPU time (this thread) per message for peer scores plus related messages
    cpu_ms: f64,
    learn_ms: f64,
    queries: usize,
    peers: usize,
    /// end to end (cmr-route in a fresh process), when measured
    e2e: Option<E2e>,
}

#[derive(Default, Debug, Clone, serde::Serialize)]
struct E2e {
    top1: f64,
    p_at_k: f64,
    forwards: f64,
    routed: f64,
    median_ms: f64,
    cpu_ms: f64,
    max_rss_mib: f64,
    queries: usize,
}

fn route_setting(m: Metric) -> &'static str {
    match m {
        Metric::Cond => "conditional",
        Metric::D => "spec",
        Metric::DRel => "relative",
        Metric::Ncd => "ncd",
    }
}

/// The split through the real router: bulk-cached training messages, each query routed by
/// a fresh `cmr-route --dry-run --json`.
fn run_e2e(
    args: &Args,
    items: &[Item],
    sp: &cmr::compress::eval::Split,
    addrs: &[String],
    dir: &std::path::Path,
) -> Result<E2e, String> {
    let path = dir.join("state.sqlite");
    let k = args.k.to_string();
    let ctx = args.context_bytes.to_string();
    common::init_state(
        &path,
        &[
            ("compressor", args.compressor.as_str()),
            ("metric", route_setting(args.metric[0])),
            ("match_k", &k),
            ("context_bytes", &ctx),
        ],
    )?;
    let mut state = cmr::state::State::open(Some(&path)).map_err(|f| f.message)?;
    let mut msgs = sp.train.iter().enumerate().map(|(n, &(l, i))| {
        let m = common::compose(&addrs[l], n as u64, items[i].text.as_bytes());
        (addrs[l].clone(), m)
    });
    let mut bad = None;
    let mut ok_msgs = std::iter::from_fn(|| match msgs.next()? {
        (a, Ok(m)) => Some((a, m)),
        (_, Err(e)) => {
            bad = Some(e);
            None
        }
    });
    let ids = common::bulk_cache(&mut state, &mut ok_msgs, 10_000)?;
    if let Some(e) = bad {
        return Err(e);
    }
    drop(state);
    let label_of_id: HashMap<i64, usize> = ids
        .iter()
        .zip(&sp.train)
        .map(|(&id, &(l, _))| (id, l))
        .collect();
    let label_of_addr: HashMap<&str, usize> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (a.as_str(), i))
        .collect();
    let n = args
        .e2e_queries
        .unwrap_or(sp.queries.len())
        .min(sp.queries.len());
    // spread over the labels: every (len / n)-th query
    let step = (sp.queries.len() as f64 / n.max(1) as f64).max(1.0);
    let mut e = E2e::default();
    let mut wall = Vec::new();
    let (mut hit, mut routed, mut good, mut rel, mut fwd) = (0, 0, 0, 0, 0);
    let mut rss = 0f64;
    let mut cpu = Vec::new();
    for q in 0..n {
        let (l, i) = sp.queries[(q as f64 * step) as usize];
        let raw = common::compose(
            common::CLIENT,
            50_000_000 + q as u64,
            items[i].text.as_bytes(),
        )?
        .encode();
        let f = common::route_fresh(&path, &raw)?;
        wall.push(f.wall_ms);
        cpu.push(f.cpu_ms);
        if q < 5 {
            if let Some((kib, _)) = common::rss_via_time(&path, &raw) {
                rss = rss.max(kib);
            }
        }
        let d = &f.decision;
        if let Some(best) = d["best_peer"].as_str() {
            hit += (label_of_addr.get(best) == Some(&l)) as usize;
        }
        if d["forwards"].as_array().is_some_and(|a| !a.is_empty()) {
            routed += 1;
        }
        fwd += d["forwards"].as_array().map_or(0, |a| a.len());
        for m in d["matched"].as_array().into_iter().flatten() {
            rel += 1;
            if let Some(id) = m["cache_id"].as_i64() {
                good += (label_of_id.get(&id) == Some(&l)) as usize;
            }
        }
    }
    let nq = n.max(1) as f64;
    e.top1 = hit as f64 / nq;
    e.p_at_k = good as f64 / rel.max(1) as f64;
    e.forwards = fwd as f64 / nq;
    e.routed = routed as f64 / nq;
    e.median_ms = common::median(&mut wall);
    e.max_rss_mib = rss / 1024.0;
    e.cpu_ms = common::median(&mut cpu);
    e.queries = n;
    Ok(e)
}

fn run(args: &Args, items: &[Item], seed: u64) -> Result<Figures, String> {
    let mut sp = split(items, args.labels, args.tests, seed);
    if let Some(n) = args.train {
        sp.limit_train(n);
    }
    let tfidf = TfIdfCentroid::fit(
        sp.labels.len(),
        sp.train.iter().map(|&(l, i)| (l, items[i].text.as_str())),
    );
    let tfidf_hits = sp
        .queries
        .iter()
        .filter(|&&(l, i)| tfidf.best(&items[i].text) == Some(l))
        .count();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let conn = Connection::open(dir.path().join("engine.sqlite")).map_err(|e| e.to_string())?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
        .map_err(|e| e.to_string())?;
    SqlStore::create(&conn).map_err(|f| f.message)?;
    let addrs: Vec<String> = sp.labels.iter().map(|l| peer_address(l)).collect();
    let label_of_addr: HashMap<&str, usize> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (a.as_str(), i))
        .collect();
    // the cache: ids 1.. in corpus order
    let mut label_of_id: HashMap<i64, usize> = HashMap::new();
    let t = Instant::now();
    {
        let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
        let mut st = SqlStore::new(&tx);
        for (n, &(l, i)) in sp.train.iter().enumerate() {
            let id = n as i64 + 1;
            learn(&mut st, id, &addrs[l], items[i].text.as_bytes()).map_err(|f| f.message)?;
            label_of_id.insert(id, l);
        }
        tx.commit().map_err(|e| e.to_string())?;
    }
    let learn_ms = t.elapsed().as_secs_f64() * 1e3 / sp.train.len().max(1) as f64;

    // peer contexts for the general-purpose compressors
    let mut ctx_bytes: Vec<Vec<u8>> = vec![Vec::new(); sp.labels.len()];
    for &(l, i) in &sp.train {
        ctx_bytes[l].extend_from_slice(items[i].text.as_bytes());
        ctx_bytes[l].push(b'\n');
    }
    let contexts: Vec<PeerContext> = ctx_bytes
        .into_iter()
        .map(|b| PeerContext::new(b, args.context_bytes))
        .collect();

    let mut opts = RelatedOptions::default();
    if let Some(p) = args.probe {
        opts.probe = p;
    }
    if let Some(s) = args.shortlist {
        opts.shortlist = s;
    }
    let topic_weight = args.topic_weight.unwrap_or(TOPIC_WEIGHT);
    opts.peer_weight = args.peer_weight.unwrap_or(1.0 / topic_weight);

    let needs_xy = args.metric.iter().any(|m| m.needs_xy());
    let mut st = SqlStore::new(&conn);
    let mut f = Figures {
        queries: sp.queries.len(),
        peers: sp.labels.len(),
        ..Default::default()
    };
    let mut hit = vec![0usize; args.metric.len()];
    let (mut rel_good, mut rel_n, mut fwd, mut rec_hit, mut rec_n) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut decide = vec![0.0; args.metric.len()];
    let mut decide_cpu = vec![0.0; args.metric.len()];
    let mut relt = 0.0;
    let mut cpu = 0.0;
    for &(l, i) in &sp.queries {
        let x = items[i].text.as_bytes();
        let c0 = common::thread_cpu_ms();
        let t0 = Instant::now();
        let ts = terms(x);
        let g = st.global().map_err(|f| f.message)?;
        let peers = st.all_peers().map_err(|f| f.message)?;
        let scored = score_with(&mut st, &g, &ts, &peers, topic_weight).map_err(|f| f.message)?;
        // per metric: the label of the closest peer
        let best: Vec<Option<usize>> = match args.compressor.general() {
            None => args
                .metric
                .iter()
                .map(|&m| {
                    let d: Vec<f64> = (0..peers.len())
                        .map(|k| scored.distance(m, k, &peers[k]))
                        .collect();
                    argmin(&d).map(|k| label_of_addr[peers[k].address.as_str()])
                })
                .collect(),
            Some(c) => {
                // timed in two parts: C(X), C(Y), C(YX) (every metric) and C(XY) (d, d-rel,
                // ncd), so that each metric is charged what it needs
                let refs: Vec<&PeerContext> = contexts.iter().collect();
                let (tb, cb) = (Instant::now(), common::thread_cpu_ms());
                let mut sizes = general_sizes(c, false, x, &refs);
                let base = tb.elapsed().as_secs_f64();
                let base_cpu = common::thread_cpu_ms() - cb;
                let (tx, cx) = (Instant::now(), common::thread_cpu_ms());
                if needs_xy {
                    for (s, p) in sizes.iter_mut().zip(&refs) {
                        s.cxy = c.size2(x, &p.bytes);
                    }
                }
                let xy = tx.elapsed().as_secs_f64();
                let xy_cpu = common::thread_cpu_ms() - cx;
                for (m, (d, dc)) in args
                    .metric
                    .iter()
                    .zip(decide.iter_mut().zip(&mut decide_cpu))
                {
                    *d += base + if m.needs_xy() { xy } else { 0.0 };
                    *dc += base_cpu + if m.needs_xy() { xy_cpu } else { 0.0 };
                }
                args.metric
                    .iter()
                    .map(|m| argmin(&sizes.iter().map(|s| m.of(s)).collect::<Vec<_>>()))
                    .collect()
            }
        };
        let t1 = Instant::now();
        if args.compressor.general().is_none() {
            let c1 = common::thread_cpu_ms() - c0;
            for (d, dc) in decide.iter_mut().zip(&mut decide_cpu) {
                *d += (t1 - t0).as_secs_f64();
                *dc += c1;
            }
        }
        let view = QueryView::new(&g, &ts, &scored, &peers, &opts);
        let rel = related(&mut st, &view, &ts, &scored, args.k, &opts).map_err(|f| f.message)?;
        let t2 = Instant::now();
        cpu += common::thread_cpu_ms() - c0;
        relt += (t2 - t1).as_secs_f64();
        for (h, b) in hit.iter_mut().zip(&best) {
            *h += (*b == Some(l)) as usize;
        }
        rel_n += rel.len();
        rel_good += rel.iter().filter(|(id, _)| label_of_id[id] == l).count();
        fwd += rel
            .iter()
            .map(|(id, _)| label_of_id[id])
            .collect::<HashSet<_>>()
            .len();
        if !args.no_recall {
            let all = related_exhaustive(&mut st, &view, args.k).map_err(|f| f.message)?;
            let got: HashSet<i64> = rel.iter().map(|r| r.0).collect();
            rec_n += all.len();
            rec_hit += all.iter().filter(|r| got.contains(&r.0)).count();
        }
    }
    let q = sp.queries.len().max(1) as f64;
    f.top1 = hit.iter().map(|&h| h as f64 / q).collect();
    f.tfidf_top1 = tfidf_hits as f64 / q;
    f.train = sp.train.len();
    f.p_at_k = rel_good as f64 / rel_n.max(1) as f64;
    f.forwards = fwd as f64 / q;
    f.recall = if rec_n == 0 {
        f64::NAN
    } else {
        rec_hit as f64 / rec_n as f64
    };
    f.decide_ms = decide.iter().map(|d| d * 1e3 / q).collect();
    f.decide_cpu_ms = decide_cpu.iter().map(|d| d / q).collect();
    f.related_ms = relt * 1e3 / q;
    f.cpu_ms = cpu / q;
    f.learn_ms = learn_ms;
    if args.e2e {
        let d = match &args.keep {
            Some(k) => {
                let _ = std::fs::remove_file(k.join("state.sqlite"));
                k.clone()
            }
            None => dir.path().to_path_buf(),
        };
        f.e2e = Some(run_e2e(args, items, &sp, &addrs, &d)?);
    }
    Ok(f)
}

fn argmin(v: &[f64]) -> Option<usize> {
    (0..v.len()).min_by(|&a, &b| v[a].total_cmp(&v[b]))
}

fn print(name: &str, f: &Figures, args: &Args) {
    let top: Vec<String> = args
        .metric
        .iter()
        .zip(&f.top1)
        .zip(f.decide_ms.iter().zip(&f.decide_cpu_ms))
        .map(|((m, t), (d, c))| {
            format!("{}:{m} {t:.4} ({d:.3} ms, CPU {c:.3} ms)", args.compressor)
        })
        .collect();
    println!(
        "{name:>8}: top-1 (ms per decision) {}  tf-idf centroid {:.4}  p@{} {:.4}  forwards {:.2}  \
         recall {:.3}  related {:.3} ms  CPU {:.3} ms/msg  learn {:.3} ms  ({} queries, {} peers, \
         {} training messages)",
        top.join(" "),
        f.tfidf_top1,
        args.k,
        f.p_at_k,
        f.forwards,
        f.recall,
        f.related_ms,
        f.cpu_ms,
        f.learn_ms,
        f.queries,
        f.peers,
        f.train
    );
    if let Some(e) = &f.e2e {
        println!(
            "{:>8}  end to end (fresh cmr-route, {}:{}): top-1 {:.4}  p@{} {:.4}  forwards {:.2}  \
             routed {:.3}  {:.3} ms per message (median wall; CPU {:.2} ms)  peak RSS {:.1} MiB  \
             ({} queries)",
            "",
            args.compressor,
            route_setting(args.metric[0]),
            e.top1,
            args.k,
            e.p_at_k,
            e.forwards,
            e.routed,
            e.median_ms,
            e.cpu_ms,
            e.max_rss_mib,
            e.queries
        );
    }
}

fn main() {
    let args = Args::parse();
    let corpus = args.corpus.clone().unwrap_or_else(common::default_corpus);
    let items = match read_corpus(&corpus) {
        Ok(i) => i,
        Err(f) => {
            eprintln!("route-eval: {}", f.message);
            std::process::exit(f.code as i32);
        }
    };
    println!(
        "route-eval: corpus {} ({} items), labels {}, tests {}, train {}, compressor {}, metrics {:?}, context {} bytes",
        corpus.display(),
        items.len(),
        args.labels.map_or("all".to_string(), |l| l.to_string()),
        args.tests,
        args.train.map_or("all".to_string(), |n| n.to_string()),
        args.compressor,
        args.metric.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        args.context_bytes
    );
    let mut all = Vec::new();
    for &s in &args.seed {
        match run(&args, &items, s) {
            Ok(f) => {
                print(&format!("seed {s}"), &f, &args);
                all.push(f);
            }
            Err(e) => {
                eprintln!("route-eval: seed {s}: {e}");
                std::process::exit(70);
            }
        }
    }
    let n = all.len().max(1) as f64;
    let mean = Figures {
        top1: (0..args.metric.len())
            .map(|m| all.iter().map(|f| f.top1[m]).sum::<f64>() / n)
            .collect(),
        tfidf_top1: all.iter().map(|f| f.tfidf_top1).sum::<f64>() / n,
        train: all.first().map_or(0, |f| f.train),
        p_at_k: all.iter().map(|f| f.p_at_k).sum::<f64>() / n,
        forwards: all.iter().map(|f| f.forwards).sum::<f64>() / n,
        recall: all.iter().map(|f| f.recall).sum::<f64>() / n,
        decide_ms: (0..args.metric.len())
            .map(|m| all.iter().map(|f| f.decide_ms[m]).sum::<f64>() / n)
            .collect(),
        decide_cpu_ms: (0..args.metric.len())
            .map(|m| all.iter().map(|f| f.decide_cpu_ms[m]).sum::<f64>() / n)
            .collect(),
        related_ms: all.iter().map(|f| f.related_ms).sum::<f64>() / n,
        cpu_ms: all.iter().map(|f| f.cpu_ms).sum::<f64>() / n,
        learn_ms: all.iter().map(|f| f.learn_ms).sum::<f64>() / n,
        queries: all.first().map_or(0, |f| f.queries),
        peers: all.first().map_or(0, |f| f.peers),
        e2e: if args.e2e {
            let es: Vec<&E2e> = all.iter().filter_map(|f| f.e2e.as_ref()).collect();
            let m = es.len().max(1) as f64;
            Some(E2e {
                top1: es.iter().map(|e| e.top1).sum::<f64>() / m,
                p_at_k: es.iter().map(|e| e.p_at_k).sum::<f64>() / m,
                forwards: es.iter().map(|e| e.forwards).sum::<f64>() / m,
                routed: es.iter().map(|e| e.routed).sum::<f64>() / m,
                median_ms: es.iter().map(|e| e.median_ms).sum::<f64>() / m,
                cpu_ms: es.iter().map(|e| e.cpu_ms).sum::<f64>() / m,
                max_rss_mib: es.iter().map(|e| e.max_rss_mib).fold(0.0, f64::max),
                queries: es.first().map_or(0, |e| e.queries),
            })
        } else {
            None
        },
    };
    print("mean", &mean, &args);
    if args.json {
        let mut v = serde_json::to_value(&mean).unwrap_or_default();
        v["compressor"] = args.compressor.as_str().into();
        v["metric"] = args
            .metric
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .into();
        v["seeds"] = serde_json::json!(args.seed);
        v["labels"] = serde_json::json!(mean.peers);
        v["train_per_peer"] = serde_json::json!(args.train);
        v["topic_weight"] = serde_json::json!(args.topic_weight.unwrap_or(TOPIC_WEIGHT));
        v["corpus"] = corpus.display().to_string().into();
        println!("{v}");
    }
}
