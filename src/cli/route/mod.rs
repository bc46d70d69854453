//! `cmr-route`: the router (A3), and the administration of the state file.

use crate::exit::{self, Failure};
use crate::route::{self, Decision, Outcome, RouteOptions, Transport};
use crate::state::{self, settings, State};
use clap::{CommandFactory, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

mod admin;
mod explain;
use admin::{cache_cmd, init, log_cmd, outbox_cmd, peer, policy, stats};
pub use explain::{explain, summary};

const LONG_ABOUT: &str = "\
The CMR router (Appendix A3). Routing is the default action: read one message, or several \
concatenated, from FILE or standard input, and run the A3 steps: strict parse, duplicate \
check, signature, policy, key-exchange hand-off, cache, match, and queue every forward in the \
outbox, all in one transaction. A message rejected per A3 is logged with its reason and the \
exit status is 0 (\"ignore and discard\"); with --strict it is 65 (malformed) or 77 \
(signature or policy). A duplicate (an ID already in the cache) changes nothing and exits 0. \
A busy or full state file gives 75: retry later, nothing was stored.

The subcommands administer the state file: init, policy, peer, cache, outbox, stats, log.

State file: --state, else $CMR_STATE, else $XDG_STATE_HOME/cmr/state.sqlite. \
$CMR_BUSY_TIMEOUT_MS overrides how long to wait for another writer (default 10000).

Exit status: 0 ok (also: a network message rejected per A3), 64 usage, 65 malformed \
(--strict), 66 no input, 75 temporary failure (retry), 77 signature or policy refusal \
(--strict), 78 configuration error (for example a state file never initialised).";

const AFTER_HELP: &str = "\
Examples:
  cmr-route init --address mailto:cmr@example.org --address https://example.org/cmr
  cmr-route peer add https://peer.example.net/cmr --scheme hmac-sha256 --key-hex 666f6f
  cmr-route peer add https://peer.example.net/cmr --options 'trust=/etc/cmr/peer.pem timeout=20'
  cmr-route peer add http://peer.example.net/cmr --options 'handshake=http://example.org/cmr'
  cmr-route peer alias mailto:cmr@peer.example.net https://peer.example.net/cmr
  cmr-route --via mail < message.txt        route one message that came by mail
  cmr-route --explain message.txt           why: scores, best peer, matches, forwards
  cmr-route --json --strict - < stream.bin  one JSON object per message
  cmr-route --dry-run --explain message.txt decide, store nothing
  cmr-route policy                          list the policy settings
  cmr-route policy unsigned reject
  cmr-route policy rate_peer 60/60
  cmr-route policy send_allow 10.0.0.0/8    peers on this LAN may be sent to
  cmr-route policy contact_budget_source 4/3600   first contacts per source
  cmr-route peer list --json
  cmr-route outbox --json
  cmr-route cache show 12
  cmr-route cache prune --keep 100000       (cron) bound the cache
  cmr-route cache reindex                   teach the engine a cache it never saw
  cmr-route stats
  cmr-route log --limit 5
  cmr-route status                          is this peer healthy? (exit 0, 1, 2 or 3)
  cmr-route status --json --stale 900       for monitoring: due rows 15 min old are critical";

/// The routing options (shared by the default action and `cmr-route route`).
#[derive(clap::Args, Debug, Clone)]
pub struct RouteArgs {
    /// Transport the message came in by: mail, http, https, udp, ssh, pipe, local.
    #[arg(long, value_name = "TRANSPORT", default_value = "pipe", value_parser = parse_transport)]
    pub via: Transport,
    /// Exit 65 (malformed) or 77 (signature/policy) when a message is rejected.
    #[arg(long)]
    pub strict: bool,
    /// Print the decision for people: scores, best peer, matched messages, forwards, reasons.
    #[arg(long)]
    pub explain: bool,
    /// Decide and report, but store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The transport authenticated the sender as ADDR (e.g. an SSH forced command per
    /// peer): unsigned messages from ADDR count as verified.
    #[arg(long, value_name = "ADDR")]
    pub authenticated_sender: Option<String>,
    /// Print nothing on success (diagnostics still go to the log).
    #[arg(short, long)]
    pub quiet: bool,
    /// Message file, or - for standard input.
    #[arg(value_name = "FILE", default_value = "-")]
    pub file: String,
}

fn parse_transport(s: &str) -> Result<Transport, String> {
    s.parse()
}

#[derive(Parser, Debug)]
#[command(
    name = "cmr-route",
    version,
    about = "Route CMR messages (A3): accept or reject, cache, match, queue forwards",
    long_about = LONG_ABOUT,
    override_usage = "cmr-route [OPTIONS] [FILE]\n       cmr-route [--state PATH] [--json] <COMMAND> ...",
    after_help = AFTER_HELP,
    subcommand_negates_reqs = true
)]
pub struct Args {
    /// State file (default: $CMR_STATE, else $XDG_STATE_HOME/cmr/state.sqlite).
    #[arg(long, global = true, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Where diagnostics go: stderr (default), syslog (with no syslog socket: stderr, or
    /// FILE with syslog:FILE), none, or a file path.
    #[arg(long, global = true, value_name = "SINK")]
    pub log: Option<String>,
    #[command(flatten)]
    pub route: RouteArgs,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Route messages (the same as giving no subcommand).
    Route(RouteArgs),
    /// Initialise a state file with our own address(es); the first is the primary one.
    Init {
        /// One of our addresses (repeatable).
        #[arg(long = "address", value_name = "ADDR", required = true)]
        addresses: Vec<String>,
    },
    /// Show or set policy settings: no KEY lists them all, KEY shows one, KEY VALUE sets it.
    Policy {
        key: Option<String>,
        value: Option<String>,
        /// Reset KEY to its default.
        #[arg(long)]
        unset: bool,
    },
    /// Manage peers (addresses, signature schemes, shared keys).
    #[command(subcommand)]
    Peer(PeerCmd),
    /// Inspect the cache.
    #[command(subcommand)]
    Cache(CacheCmd),
    /// List the forwards waiting in the outbox.
    Outbox,
    /// Counts: cache, peers, outbox, counters, clock.
    Stats,
    /// The most recent routing decisions.
    Log {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Is this peer healthy? Our addresses, peers and their keys, the outbox, its last drain,
    /// recent refusals, settings changed from their defaults, the state file and its WAL, and
    /// the wiring seen on this host (cron, inetd/xinetd, .forward/Postfix, authorized_keys).
    /// The first line says OK, WARNING, CRITICAL or UNKNOWN and why; the exit status is the
    /// Nagios plugin's: 0, 1, 2 or 3. Dead letters and an expired key exchange warn; due rows
    /// nobody drained for --stale seconds, and a missing or uninitialised state file, are
    /// critical; a state file that cannot be read is unknown.
    Status {
        /// Due outbox rows waiting longer than SECS mean nobody drains the outbox.
        #[arg(long, value_name = "SECS", default_value_t = 3600)]
        stale: u64,
        /// Count the log's refusals over the last SECS.
        #[arg(long, value_name = "SECS", default_value_t = 86400)]
        window: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum PeerCmd {
    /// Add a peer, or change its scheme or key.
    Add {
        address: String,
        /// Signature scheme: hmac-sha256 (default) or sha256 (the spec's, for interoperability).
        #[arg(long, default_value = "hmac-sha256")]
        scheme: String,
        /// Shared key in hex (A5.3 writes keys in hex); - reads the hex from standard input.
        #[arg(long, value_name = "HEX")]
        key_hex: Option<String>,
        /// Options for sending to this http(s) peer, space separated: trust=PEM (certificates
        /// to trust), timeout=SECS, connect_timeout=SECS, handshake=OUR_URL (deliver by the
        /// A4.5 handshake: the peer fetches the message from OUR_URL), handshake_expiry=SECS.
        /// An empty string clears them.
        #[arg(long, value_name = "TEXT")]
        options: Option<String>,
    },
    /// Declare ALIAS another address of PEER (Bob by mail and by HTTP, say): one peer to the
    /// router. Messages from ALIAS teach PEER's context, PEER is scored and routed to, and
    /// no message goes to either address while the other is in its header. Keys stay per
    /// address. With --remove, ALIAS is a peer of its own again.
    Alias {
        alias: String,
        #[arg(required_unless_present = "remove")]
        peer: Option<String>,
        #[arg(long, conflicts_with = "peer")]
        remove: bool,
    },
    /// List peers (keys are never printed).
    List,
    /// Remove a peer and its key.
    Remove { address: String },
    /// Set a peer's reputation (an operator's rating; the reputation_floor policy uses it).
    Reputation { address: String, value: f64 },
}

#[derive(Subcommand, Debug)]
pub enum CacheCmd {
    /// List cached messages, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Remove all but the KEEP most recent cached messages (their IDs stay in the index,
    /// so they remain duplicates if they come back).
    Prune {
        #[arg(long, value_name = "KEEP")]
        keep: usize,
    },
    /// Bring the routing engine up to date with the cache: the word model learns every cached
    /// message it does not hold yet (a state file older than the engine, rows copied in by
    /// other means), and the baselines' full-text index is rebuilt when one of them is the
    /// `compressor`. Safe to run at any time; a second run learns nothing.
    Reindex,
    /// Show one cached message: by row number, or by any message ID of its header
    /// ("YYYY/MM/DD HH:MM:SS ADDRESS").
    Show {
        id: String,
        /// Print the stored message bytes as they are.
        #[arg(long)]
        raw: bool,
    },
}

/// The clap definition (man pages are generated from it).
pub fn command() -> clap::Command {
    Args::command()
}

pub fn main() -> std::process::ExitCode {
    super::main_with("cmr-route", |a: &Args| super::log_option(&a.log), run)
}

fn run(args: Args) -> Result<u8, Failure> {
    let json = args.json;
    // status never creates the state file: it is taken before State::open.
    if let Some(Cmd::Status { stale, window }) = &args.cmd {
        return status_cmd(args.state.as_deref(), *stale, *window, json);
    }
    let mut st = match &args.cmd {
        // Routing needs an initialised file: a missing one is not created.
        None | Some(Cmd::Route(_)) => State::open_existing(args.state.as_deref())?,
        Some(Cmd::Init { addresses }) => {
            // A failed init leaves nothing: check before the file is created.
            for a in addresses {
                settings::check_own_address(a)?;
            }
            State::open(args.state.as_deref())?
        }
        Some(_) => State::open(args.state.as_deref())?,
    };
    match args.cmd {
        None => route_cmd(&mut st, &args.route, json),
        Some(Cmd::Route(r)) => route_cmd(&mut st, &r, json),
        Some(Cmd::Init { addresses }) => init(&st, &addresses, json),
        Some(Cmd::Policy { key, value, unset }) => policy(&st, key, value, unset, json),
        Some(Cmd::Peer(p)) => peer(&st, p, json),
        Some(Cmd::Cache(c)) => cache_cmd(&st, c, json),
        Some(Cmd::Outbox) => outbox_cmd(&st, json),
        Some(Cmd::Stats) => stats(&st, json),
        Some(Cmd::Log { limit }) => log_cmd(&st, limit, json),
        Some(Cmd::Status { stale, window }) => {
            status_cmd(args.state.as_deref(), stale, window, json)
        }
    }
}

/// Human output: control characters from the network are shown escaped, never obeyed.
fn emit(s: &str) -> Result<(), Failure> {
    emit_bytes(crate::log::terminal_safe(s).as_bytes())
}

fn emit_bytes(b: &[u8]) -> Result<(), Failure> {
    let mut o = std::io::stdout().lock();
    o.write_all(b)
        .and_then(|_| o.flush())
        .map_err(|e| Failure::from(e).context("writing output"))
}

/// `v` as one line of JSON on stdout.
fn emit_json<T: serde::Serialize>(v: &T) -> Result<(), Failure> {
    emit_bytes(format!("{}\n", to_json(v)?).as_bytes())
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, Failure> {
    serde_json::to_string(v).map_err(|e| Failure::software(format!("JSON output: {e}")))
}

fn route_cmd(st: &mut State, r: &RouteArgs, json: bool) -> Result<u8, Failure> {
    let opts = RouteOptions {
        dry_run: r.dry_run,
        authenticated_sender: r.authenticated_sender.clone(),
    };
    let decisions = if r.file == "-" {
        let stdin = std::io::stdin();
        route::receive_stream(st, stdin.lock(), r.via, &opts)?
    } else {
        let f = std::fs::File::open(&r.file).map_err(|e| Failure::from(e).context(&r.file))?;
        route::receive_stream(st, std::io::BufReader::new(f), r.via, &opts)?
    };
    if decisions.is_empty() && r.strict {
        return Err(Failure::no_input(format!(
            "{}: no message on input",
            crate::cli::input_name(&r.file)
        )));
    }
    let mut text = String::new();
    for d in &decisions {
        if json {
            text.push_str(&to_json(d)?);
            text.push('\n');
        } else if r.explain {
            text.push_str(&explain(d));
        } else if !r.quiet {
            text.push_str(&summary(d));
        }
    }
    if json {
        emit_bytes(text.as_bytes())?;
    } else {
        emit(&text)?;
    }
    if r.strict {
        if let Some(code) = decisions.iter().map(|d| d.strict_exit).find(|&c| c != 0) {
            return Ok(code);
        }
    }
    Ok(exit::OK)
}

/// `cmr-route status`: the report, and the Nagios plugin status as the exit status. It
/// never creates the state file, and any failure to read it is UNKNOWN (3).
fn status_cmd(
    path: Option<&std::path::Path>,
    stale: u64,
    window: u64,
    json: bool,
) -> Result<u8, Failure> {
    use crate::status::{self, Level};
    let early = |level: Level, why: String| -> Result<u8, Failure> {
        if json {
            emit_json(&serde_json::json!({
                "status": level, "code": level.code(), "reasons": [why],
            }))?;
        } else {
            emit(&format!("CMR {}: {why}\n", level.word()))?;
        }
        Ok(level.code())
    };
    let p = match state::resolve_path(path) {
        Ok(p) => p,
        Err(f) => return early(Level::Unknown, f.message),
    };
    if !p.exists() {
        return early(
            Level::Critical,
            format!(
                "no state file at {} (cmr-route init --address ADDR)",
                p.display()
            ),
        );
    }
    let opts = status::Options {
        stale_secs: stale,
        window_secs: window,
        wiring: status::WiringSources::system(
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
                .as_deref(),
        ),
    };
    let r = match State::open_existing(Some(&p)).and_then(|st| status::check(&st, &opts)) {
        Ok(r) => r,
        Err(f) => return early(Level::Unknown, format!("{}: {}", p.display(), f.message)),
    };
    if json {
        emit_json(&r)?;
    } else {
        emit(&status::text(&r))?;
    }
    Ok(r.code)
}
