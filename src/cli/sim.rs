//! `cmr-sim`: run a network of real cmr routers on one machine and measure it.

use crate::exit::{self, Failure};
use crate::sim::{self, topology};
use clap::{CommandFactory, Parser};
use std::io::Write;
use std::path::PathBuf;

const LONG_ABOUT: &str = "\
A network simulator that runs the real router: N routers, each with its own state file (on \
tmpfs /dev/shm when there is one; durability off: synchronous=OFF), linked in a seeded random \
graph of average degree d, every link keyed with its own HMAC-SHA-256 key (as cmr-route peer \
add --key-hex would set it). Routers start knowing only their neighbours.

Delivery runs in rounds; one round is one hop: every router's due outbox rows are drained as \
cmr-send --outbox --print drains them, and each destination reads its messages as cmr-route \
reads a pipe. A row to a router that is down is deferred and retried by the outbox's own \
backoff. The process clock moves --round-secs per round (as if cron drained each outbox that \
often), so the backoff and the rate windows run on simulated time.

Workload: a labelled JSONL corpus ({\"id\",\"label\",\"text\"}). Each label has --experts expert \
clients at random routers; each posts --train items of its label (cmr-post), one per round. \
Then --queries held-out items are posted by clients at random routers, --query-rate per round. \
A query succeeds within h rounds when its client holds a message of the query's label that it \
did not post: among the related messages cmr-post prints at posting (round 0), or in its \
inbox (cmr-post --replies) by round h. With --search-first a client first searches its \
router's pool (cmr-post --search) and posts only when none of the related messages has the \
query's label (the requester's check the walk baselines are credited with); a query found \
there succeeds in round 0 and causes no delivery.

Reported: success within h = 1..--horizon rounds, messages per query (every delivery in the \
query phase), load per router (mean, max, max/mean), cache size per router, learning (first \
and last fifth of the queries), the replies shown to the queries' clients within the horizon (per \
query, and the share of them with the query's label), the messages the routers held as bulk \
posting (spam, forgeries and others: bulk_resemblance), wall time and peak RSS; each success \
share with its 95% Wilson interval over the queries (success_ci95_by_round), and cmr's success \
within 4 rounds over flooding's with a 95% paired bootstrap interval over the queries \
(against_flood): how far another sample of as many queries could move them; and beside \
cmr, on the same graph and \
workload, flooding with a TTL, k random walkers and a shortest-path oracle (strategies of the \
simulator, not of the router), credited with perfect recognition (a router where an expert of \
the label sits answers right), and flood_match and walk_match, the same searches where every \
router reached answers with what its own matcher finds in its cache. Faults: --churn (share of routers down in each round), --spam K \
(one router's clients post junk at K times the normal rate of a router's clients; \
--spam-limit N stops them after N posts), --forger K \
(a router sends, at K times that rate, messages claiming another router's address to its \
neighbours).

The corpus defaults to $CMR_SHARED/corpus/fortunes_topics.jsonl, else \
../shared/corpus/fortunes_topics.jsonl. With CMR_SIM_DIAG=1, the quantiles of the match scores \
of same-label and other-label pairs and of the best peer scores, where the failed queries \
were lost (which routers matched them to their label, and what stopped the answer: the hop \
limit, the relay policy, max_forwards), and the query phase's duplicate deliveries by the \
rule that sent them, go to stderr. A run depends \
only on its options and seed: the clock stands still within a round, from a fixed date. \
docs/network.md describes the model and the results.

Exit status: 0 ok, 64 usage, 65 bad corpus, 66 corpus missing, 70 internal error, 75 \
temporary failure.";

const AFTER_HELP: &str = "\
Examples:
  cmr-sim --routers 100 --seed 1
  cmr-sim --routers 100 --seed 1 --json | jq '.success_by_round, .baselines.flood'
  cmr-sim --routers 12 --queries 20 --plot net.svg
  cmr-sim --routers 100 --churn 0.1              10% of routers down in each round
  cmr-sim --routers 100 --spam 10                a spammer at 10x the normal rate
  cmr-sim --routers 100 --spam 10 --spam-limit 1 how far one junk message spreads
  cmr-sim --routers 100 --forger 10              a forger claiming another router's address
  cmr-sim --routers 100 --set margin=0.05 --set explore_fanout=2
  cmr-sim --topology ws --degree 8 --rewire 0.2 --corpus debian.jsonl";

#[derive(Parser, Debug)]
#[command(
    name = "cmr-sim",
    version,
    about = "Simulate a network of real cmr routers and measure it",
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP
)]
pub struct Args {
    /// Number of routers.
    #[arg(long, default_value_t = 100)]
    pub routers: usize,
    /// Average degree of the graph (links per router).
    #[arg(long, default_value_t = 6)]
    pub degree: usize,
    /// regular (random d-regular) or ws (Watts-Strogatz).
    #[arg(long, default_value = "regular")]
    pub topology: String,
    /// Watts-Strogatz: probability that a ring link is rewired.
    #[arg(long, default_value_t = 0.1)]
    pub rewire: f64,
    /// Seed of the graph, the workload, the keys and the faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Labelled JSONL corpus.
    #[arg(long, value_name = "FILE")]
    pub corpus: Option<PathBuf>,
    /// Expert clients per label.
    #[arg(long, default_value_t = 2)]
    pub experts: usize,
    /// Training items each expert posts.
    #[arg(long, default_value_t = 20)]
    pub train: usize,
    /// Held-out queries.
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    /// Queries posted per round.
    #[arg(long, default_value_t = 1.0)]
    pub query_rate: f64,
    /// Simulated seconds per round.
    #[arg(long, default_value_t = 60.0)]
    pub round_secs: f64,
    /// Success is counted within 1..H rounds.
    #[arg(long, default_value_t = 8)]
    pub horizon: usize,
    /// Queries' clients search their router's pool first (cmr-post --search) and post only
    /// when none of the related messages has the query's label.
    #[arg(long)]
    pub search_first: bool,
    /// A query's client that holds no message of its label N rounds after the query was due
    /// widens its post (cmr-post --widen: its router sends it to widen_fanout more
    /// neighbours); the spammer's clients widen every post at once. 0: nobody widens.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub widen_after: usize,
    /// Rounds at most after the training posts for the outboxes to empty.
    #[arg(long, default_value_t = 8)]
    pub settle: usize,
    /// Flooding baseline: TTL in hops.
    #[arg(long, default_value_t = 7)]
    pub flood_ttl: u32,
    /// Random-walk baseline: walkers per query.
    #[arg(long, default_value_t = 16)]
    pub walkers: usize,
    /// Random-walk baseline: most steps per walker.
    #[arg(long, default_value_t = 8)]
    pub walk_ttl: u32,
    /// Share of routers down in each round of the query phase (0 to below 1).
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// A spammer: one router's clients post junk at K times the normal rate.
    #[arg(long, value_name = "K", default_value_t = 0.0)]
    pub spam: f64,
    /// The spammer stops after N posts (0: no limit). With 1, how far one junk message
    /// spreads.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub spam_limit: usize,
    /// A forger: a router sends messages claiming another router's address, at K times the
    /// normal rate, to each of its neighbours.
    #[arg(long, value_name = "K", default_value_t = 0.0)]
    pub forger: f64,
    /// A router setting for every router, as cmr-route policy KEY VALUE would set it
    /// (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Keep the state files in DIR (default: a temporary directory, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Write an SVG plot: success against rounds and messages per query, cmr and baselines.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Progress on stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// Where diagnostics go: stderr (default), syslog, none, or a file path.
    #[arg(long, value_name = "SINK")]
    pub log: Option<String>,
}

/// The clap definition (man pages are generated from it).
pub fn command() -> clap::Command {
    Args::command()
}

pub fn main() -> std::process::ExitCode {
    super::main_with("cmr-sim", |a: &Args| super::log_option(&a.log), run)
}

/// The default corpus: $CMR_SHARED/corpus/..., else ../shared/corpus/....
pub fn default_corpus() -> PathBuf {
    let shared = std::env::var_os("CMR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared"));
    shared.join("corpus/fortunes_topics.jsonl")
}

fn run(a: Args) -> Result<u8, Failure> {
    let topology: topology::Kind = a.topology.parse().map_err(Failure::usage)?;
    let mut settings = Vec::new();
    for kv in &a.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| Failure::usage(format!("--set {kv}: expected KEY=VALUE")))?;
        let (k, v) = (k.trim(), v.trim());
        if crate::state::settings::spec(k).is_some() {
            crate::state::settings::validate(k, v)?;
        } else if !k.starts_with("outbox_") && !k.starts_with("keyx_") {
            return Err(Failure::usage(format!(
                "--set {kv}: unknown router setting '{k}'"
            )));
        }
        settings.push((k.to_string(), v.to_string()));
    }
    let corpus = a.corpus.clone().unwrap_or_else(default_corpus);
    if !corpus.exists() {
        return Err(Failure::no_input(format!(
            "{}: no such corpus (--corpus FILE, or set CMR_SHARED)",
            corpus.display()
        )));
    }
    let cfg = sim::Config {
        routers: a.routers,
        degree: a.degree,
        topology,
        rewire: a.rewire,
        seed: a.seed,
        corpus,
        experts: a.experts,
        train: a.train,
        queries: a.queries,
        query_rate: a.query_rate,
        round_secs: a.round_secs,
        horizon: a.horizon,
        search_first: a.search_first,
        widen_after: a.widen_after,
        settle: a.settle,
        flood_ttl: a.flood_ttl,
        walkers: a.walkers,
        walk_ttl: a.walk_ttl,
        churn: a.churn,
        spam: a.spam,
        spam_limit: a.spam_limit,
        forger: a.forger,
        settings,
        dir: a.dir.clone(),
        verbose: a.verbose,
    };
    let report = sim::run(&cfg)?;
    if let Some(p) = &a.plot {
        // Written whole to a temporary file, then renamed: no half-made plot.
        let mut tmp = p.as_os_str().to_owned();
        tmp.push(format!(".tmp.{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let r =
            std::fs::write(&tmp, sim::report::svg(&report)).and_then(|_| std::fs::rename(&tmp, p));
        if let Err(e) = r {
            let _ = std::fs::remove_file(&tmp);
            return Err(Failure::from(e).context(p.display()));
        }
    }
    let text = if a.json {
        format!(
            "{}\n",
            serde_json::to_string(&report).map_err(|e| Failure::software(e.to_string()))?
        )
    } else {
        sim::report::table(&report)
    };
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|_| o.flush())
        .map_err(|e| Failure::from(e).context("writing output"))?;
    Ok(exit::OK)
}
