//! `cmr-route`: the router (A3), and the administration of the state file.

use crate::exit::{self, Failure};
use crate::route::{self, Decision, Outcome, RouteOptions, Transport};
use crate::sign::{Key, Scheme};
use crate::state::{self, cache, log as dlog, outbox, peers, settings, State};
use clap::{CommandFactory, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

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

fn outcome_word(d: &Decision) -> &'static str {
    match d.outcome {
        Outcome::Accepted => "accepted",
        Outcome::Duplicate => "duplicate",
        Outcome::Rejected => "rejected",
        Outcome::KeyExchange => "key-exchange",
        Outcome::Posted => "posted",
    }
}

/// One line per message.
pub fn summary(d: &Decision) -> String {
    let id = d.message_id.as_deref().unwrap_or("-");
    match d.outcome {
        Outcome::Rejected => format!(
            "rejected {id}: {}\n",
            d.reason.as_deref().unwrap_or("(no reason)")
        ),
        Outcome::Duplicate => format!(
            "duplicate {id}: already cached (row {})\n",
            d.duplicate_of.unwrap_or(0)
        ),
        _ => format!(
            "{} {id} from {}: cache row {}, {} matched, {} forward(s) queued\n",
            outcome_word(d),
            d.sender.as_deref().unwrap_or("-"),
            d.cache_id
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            d.matched.len(),
            d.forwards.len()
        ),
    }
}

/// The decision for people (--explain).
pub fn explain(d: &Decision) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "decision:   {}", outcome_word(d));
    if let Some(id) = &d.message_id {
        let _ = writeln!(
            s,
            "message:    {id} ({} header line(s), {} body bytes)",
            d.header_lines, d.body_bytes
        );
    }
    if let Some(x) = &d.sender {
        let _ = writeln!(
            s,
            "sender:     {x} via {}, {}",
            d.via.map(|v| v.as_str()).unwrap_or("-"),
            match (d.signed, d.verified) {
                (_, true) => "signature verified",
                (true, false) => "signed, not verified (no key)",
                (false, false) => "unsigned",
            }
        );
    }
    if let Some(r) = &d.reason {
        let _ = writeln!(
            s,
            "reason:     {r} [{}]",
            d.reason_code.as_deref().unwrap_or("")
        );
    }
    if let Some(c) = d.cache_id {
        let _ = writeln!(s, "cached:     row {c}");
    }
    let routed = matches!(d.outcome, Outcome::Accepted | Outcome::Posted);
    if let Some(m) = &d.matcher {
        if routed {
            let _ = writeln!(s, "matcher:    {m}");
        }
    }
    if !d.scores.is_empty() {
        let _ = writeln!(s, "peer scores (lower = closer):");
        for p in &d.scores {
            let best = if d.best_peer.as_deref() == Some(&p.peer) {
                "  <- best"
            } else {
                ""
            };
            let _ = writeln!(s, "  {:>8.4}  {}{best}", p.score, p.peer);
        }
    } else if routed {
        let _ = writeln!(s, "peer scores: none (no peer has cached messages)");
    }
    if !d.matched.is_empty() {
        let _ = writeln!(s, "matched cached messages:");
        for m in &d.matched {
            let _ = writeln!(
                s,
                "  {:>8.4}  row {}  {} (from {})",
                m.score, m.cache_id, m.origin, m.sender
            );
        }
    }
    if !d.forwards.is_empty() {
        let _ = writeln!(s, "forwards queued:");
        for f in &d.forwards {
            let _ = writeln!(
                s,
                "  {}: {} (row {}) -> {}  [{}{}] {}",
                f.outbox_id
                    .map(|i| format!("outbox {i}"))
                    .unwrap_or_else(|| "held for key exchange".into()),
                f.what.to_uppercase(),
                f.cache_id,
                f.dest,
                if f.signed { "signed" } else { "unsigned" },
                f.timestamp
                    .as_deref()
                    .map(|t| format!(", T={t}"))
                    .unwrap_or_default(),
                f.why
            );
        }
    } else if routed {
        let _ = writeln!(s, "forwards queued: none");
    }
    if !d.refused.is_empty() {
        let _ = writeln!(s, "forwards refused by the relay policy:");
        for r in &d.refused {
            let _ = writeln!(
                s,
                "  {} (row {}) -> {}  [{}] {}",
                r.what.to_uppercase(),
                r.cache_id,
                r.dest,
                r.code,
                r.reason
            );
        }
    }
    for n in &d.notes {
        let _ = writeln!(s, "note:       {n}");
    }
    s.push('\n');
    s
}

fn init(st: &State, addresses: &[String], json: bool) -> Result<u8, Failure> {
    let added = st.write(|tx| {
        let mut n = Vec::new();
        for a in addresses {
            if settings::add_own_address(tx, a)? {
                n.push(a.clone());
            }
        }
        Ok(n)
    })?;
    let all = settings::own_addresses(st.conn())?;
    if json {
        emit_json(&serde_json::json!({"state": st.path(), "addresses": all, "added": added}))?;
    } else {
        let mut s = format!("state file {}\n", st.path().display());
        for (i, a) in all.iter().enumerate() {
            s.push_str(&format!(
                "  {} {a}{}\n",
                if i == 0 { "primary" } else { "also   " },
                if added.contains(a) { "  (added)" } else { "" }
            ));
        }
        emit(&s)?;
    }
    Ok(exit::OK)
}

fn policy(
    st: &State,
    key: Option<String>,
    value: Option<String>,
    unset: bool,
    json: bool,
) -> Result<u8, Failure> {
    match (key, value) {
        (None, _) => {
            let mut rows = Vec::new();
            for s in settings::SPECS {
                let stored = settings::get(st.conn(), s.key)?;
                rows.push((s, stored));
            }
            if json {
                let v: serde_json::Map<String, serde_json::Value> = rows
                    .iter()
                    .map(|(s, v)| {
                        (
                            s.key.to_string(),
                            serde_json::json!({
                                "value": v.clone().unwrap_or_else(|| s.default.to_string()),
                                "default": s.default, "set": v.is_some(), "help": s.help
                            }),
                        )
                    })
                    .collect();
                emit_json(&v)?;
            } else {
                let mut s = String::new();
                for (sp, v) in rows {
                    let shown = v.clone().unwrap_or_else(|| sp.default.to_string());
                    let shown = if shown.is_empty() {
                        "(unset)".to_string()
                    } else {
                        shown
                    };
                    s.push_str(&format!(
                        "{:<20} {:<14} {}{}\n",
                        sp.key,
                        shown,
                        sp.help,
                        if v.is_some() { "" } else { " [default]" }
                    ));
                }
                emit(&s)?;
            }
        }
        (Some(k), None) if unset => {
            settings::validate(&k, settings::spec(&k).map(|s| s.default).unwrap_or(""))?;
            st.write(|tx| settings::unset(tx, &k))?;
            emit(&format!("{k} reset to its default\n"))?;
        }
        (Some(k), None) => {
            let sp = settings::spec(&k).ok_or_else(|| {
                settings::validate(&k, "")
                    .err()
                    .unwrap_or_else(|| Failure::usage(format!("unknown policy setting '{k}'")))
            })?;
            let v = settings::get(st.conn(), &k)?.unwrap_or_else(|| sp.default.to_string());
            if json {
                emit_json(&serde_json::json!({ k: v }))?;
            } else {
                emit(&format!("{v}\n"))?;
            }
        }
        (Some(k), Some(v)) => {
            if unset {
                return Err(Failure::usage("--unset takes a KEY only"));
            }
            let v = st.write(|tx| settings::set(tx, &k, &v))?;
            // Check that the whole set of settings still loads.
            settings::Settings::load(st.conn())?;
            if !json {
                emit(&format!("{k} = {v}\n"))?;
            } else {
                emit_json(&serde_json::json!({ k: v }))?;
            }
        }
    }
    Ok(exit::OK)
}

fn read_key_hex(h: &str) -> Result<Key, Failure> {
    let text = if h == "-" {
        let b = crate::cli::read_input("-")?;
        String::from_utf8_lossy(&b).trim().to_string()
    } else {
        h.to_string()
    };
    Key::from_hex(&text).map_err(|e| Failure::usage(format!("--key-hex: {e}")))
}

fn peer(st: &State, cmd: PeerCmd, json: bool) -> Result<u8, Failure> {
    match cmd {
        PeerCmd::Add {
            address,
            scheme,
            key_hex,
            options,
        } => {
            let scheme: Scheme = scheme.parse().map_err(Failure::usage)?;
            let key = key_hex.as_deref().map(read_key_hex).transpose()?;
            let options = options.map(|o| o.trim().to_string());
            if let Some(o) = options.as_deref().filter(|o| !o.is_empty()) {
                let lower = address.to_ascii_lowercase();
                if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                    return Err(Failure::usage(format!(
                        "--options: {address}: options apply to http:// and https:// peers"
                    )));
                }
                crate::transport::http::PeerOptions::default()
                    .with_options(o, None)
                    .map_err(|e| Failure::usage(format!("--options: {e}")))?;
            }
            st.write(|tx| {
                peers::add(tx, &address, scheme, key.as_ref())?;
                match options.as_deref() {
                    Some("") => peers::set_options(tx, &address, None),
                    Some(o) => peers::set_options(tx, &address, Some(o)),
                    None => Ok(()),
                }
            })?;
            let p = peers::get(st.conn(), &address)?;
            if json {
                emit_json(&p)?;
            } else {
                emit(&format!(
                    "peer {address}: scheme {scheme}, {}\n",
                    if p.map(|p| p.has_key).unwrap_or(false) {
                        "key set"
                    } else {
                        "no key"
                    }
                ))?;
            }
        }
        PeerCmd::Alias {
            alias,
            peer,
            remove: _,
        } => {
            let settings = settings::Settings::load(st.conn())?;
            for a in std::iter::once(&alias).chain(peer.as_ref()) {
                if settings.is_own(a.as_bytes()) {
                    return Err(Failure::usage(format!("{a} is one of our own addresses")));
                }
            }
            // The messages ALIAS sent so far move to the context they now belong to.
            let moved = st.write(|tx| {
                peers::set_alias(tx, &alias, peer.as_deref())?;
                crate::compress::matcher::relearn_sender(
                    tx,
                    &alias,
                    peer.as_deref().unwrap_or(&alias),
                )
            })?;
            if json {
                emit_json(
                    &serde_json::json!({ "alias": alias, "peer": peer, "relearned": moved }),
                )?;
            } else {
                match &peer {
                    Some(p) => emit(&format!(
                        "{alias} is an address of {p} ({moved} cached message(s) from it now in {p}'s context)\n"
                    ))?,
                    None => emit(&format!(
                        "{alias} is a peer of its own ({moved} cached message(s) back in its own context)\n"
                    ))?,
                }
            }
        }
        PeerCmd::List => {
            let all = peers::list(st.conn())?;
            let aliases = settings::aliases(st.conn())?;
            let alias_of = |a: &str| aliases.iter().find(|(x, _)| x == a).map(|(_, p)| p.clone());
            // aliases that sent nothing yet have no row of their own
            let bare: Vec<&(String, String)> = aliases
                .iter()
                .filter(|(a, _)| !all.iter().any(|p| &p.address == a))
                .collect();
            if json {
                let mut v = Vec::new();
                for p in &all {
                    let mut o =
                        serde_json::to_value(p).map_err(|e| Failure::software(e.to_string()))?;
                    o["alias_of"] = alias_of(&p.address).into();
                    v.push(o);
                }
                for (a, p) in bare {
                    v.push(serde_json::json!({ "address": a, "alias_of": p }));
                }
                emit_json(&v)?;
            } else {
                let mut s = String::new();
                for p in all {
                    s.push_str(&format!(
                        "{}  scheme={} key={} reputation={} accepted={} rejected={} forwarded={}{}{}{}\n",
                        p.address,
                        p.scheme,
                        if p.has_key { "yes" } else { "no" },
                        p.reputation,
                        p.accepted,
                        p.rejected,
                        p.forwarded,
                        p.options
                            .as_deref()
                            .map(|o| format!(" options=\"{o}\""))
                            .unwrap_or_default(),
                        alias_of(&p.address)
                            .map(|a| format!(" alias-of={a}"))
                            .unwrap_or_default(),
                        if p.configured { "" } else { " (seen)" }
                    ));
                }
                for (a, p) in bare {
                    s.push_str(&format!("{a}  alias-of={p}\n"));
                }
                emit(&s)?;
            }
        }
        PeerCmd::Remove { address } => {
            if !st.write(|tx| peers::remove(tx, &address))? {
                return Err(Failure::no_input(format!("no peer {address}")));
            }
            if !json {
                emit(&format!("removed peer {address}\n"))?;
            }
        }
        PeerCmd::Reputation { address, value } => {
            if !value.is_finite() {
                return Err(Failure::usage("reputation must be a finite number"));
            }
            if !st.write(|tx| peers::set_reputation(tx, &address, value))? {
                return Err(Failure::no_input(format!("no peer {address}")));
            }
            if !json {
                emit(&format!("peer {address}: reputation {value}\n"))?;
            }
        }
    }
    Ok(exit::OK)
}

fn first_line(b: &[u8], max: usize) -> String {
    let t = String::from_utf8_lossy(b);
    let l = t.lines().next().unwrap_or("");
    if l.chars().count() > max {
        format!("{}...", l.chars().take(max).collect::<String>())
    } else {
        l.to_string()
    }
}

fn cache_cmd(st: &State, cmd: CacheCmd, json: bool) -> Result<u8, Failure> {
    match cmd {
        CacheCmd::List { limit } => {
            let rows = cache::list(st.conn(), limit)?;
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "id": c.id, "arrived": c.arrived, "sender": c.sender, "origin": c.origin,
                            "via": c.via, "client": c.client, "signed": c.signed,
                            "body_bytes": c.body().len(),
                            "message_id": c.message().ok().map(|m| String::from_utf8_lossy(&m.origin().line()).into_owned()),
                        })
                    })
                    .collect();
                emit_json(&v)?;
            } else {
                let mut s = String::new();
                for c in rows {
                    s.push_str(&format!(
                        "{:>6}  {}  from {}  by {}  {}\n",
                        c.id,
                        c.arrived,
                        c.sender,
                        c.origin,
                        first_line(c.body(), 60)
                    ));
                }
                emit(&s)?;
            }
        }
        CacheCmd::Prune { keep } => {
            let settings = settings::Settings::load(st.conn())?;
            let matcher = route::matching::from_settings(&settings)?;
            let ids = cache::prune_candidates(st.conn(), keep)?;
            let n = st.write(|tx| {
                let mut n = 0;
                for &id in &ids {
                    if cache::remove(tx, id)? {
                        matcher.forget(tx, id)?;
                        n += 1;
                    }
                }
                Ok(n)
            })?;
            if json {
                emit_json(&serde_json::json!({ "removed": n }))?;
            } else {
                emit(&format!("removed {n} cached message(s)\n"))?;
            }
        }
        CacheCmd::Reindex => {
            let n = st.write(|tx| {
                let n = crate::compress::matcher::reindex(tx)?;
                let compressor = settings::Settings::load(tx)?.compressor;
                crate::compress::matcher::sync_fts(tx, &compressor, true)?;
                Ok(n)
            })?;
            if json {
                emit_json(&serde_json::json!({ "learned": n }))?;
            } else {
                emit(&format!("learned {n} cached message(s)\n"))?;
            }
        }
        CacheCmd::Show { id, raw } => {
            let row = match id.parse::<i64>() {
                Ok(n) => cache::get(st.conn(), n)?,
                Err(_) => cache::by_message_id(st.conn(), &id)?,
            }
            .ok_or_else(|| Failure::no_input(format!("no cached message {id}")))?;
            if raw {
                emit_bytes(&row.bytes)?;
            } else if json {
                let m = row.message()?;
                let v = serde_json::json!({
                    "id": row.id, "arrived": row.arrived, "sender": row.sender,
                    "origin": row.origin, "via": row.via, "client": row.client, "signed": row.signed,
                    "header": m.ids().map(|i| String::from_utf8_lossy(&i.line()).into_owned()).collect::<Vec<_>>(),
                    "body": String::from_utf8_lossy(m.body()),
                });
                emit_json(&v)?;
            } else {
                let m = row.message()?;
                let mut s = format!(
                    "row {}  arrived {}  via {}  from {}{}\n",
                    row.id,
                    row.arrived,
                    row.via,
                    row.sender,
                    if row.client { " (our client)" } else { "" }
                );
                for i in m.ids() {
                    s.push_str(&format!("  {}\n", String::from_utf8_lossy(&i.line())));
                }
                s.push('\n');
                s.push_str(&String::from_utf8_lossy(m.body()));
                if !s.ends_with('\n') {
                    s.push('\n');
                }
                emit(&s)?;
            }
        }
    }
    Ok(exit::OK)
}

fn outbox_cmd(st: &State, json: bool) -> Result<u8, Failure> {
    let rows = outbox::list(st.conn())?;
    if json {
        emit_json(&rows)?;
    } else {
        let mut s = String::new();
        for r in rows {
            s.push_str(&format!(
                "{:>6}  {:<7} {}  -> {}  ({} bytes, {} attempt(s){})\n",
                r.id,
                r.state,
                String::from_utf8_lossy(&r.msg_key),
                r.dest,
                r.bytes.len(),
                r.attempts,
                r.last_error
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default()
            ));
        }
        emit(&s)?;
    }
    Ok(exit::OK)
}

fn stats(st: &State, json: bool) -> Result<u8, Failure> {
    let c = st.conn();
    let n = |sql: &str| -> Result<i64, Failure> {
        c.query_row(sql, [], |r| r.get(0))
            .map_err(state::db_failure)
    };
    let mut by_state = serde_json::Map::new();
    {
        let mut q = c
            .prepare("SELECT state, count(*) FROM outbox GROUP BY state ORDER BY state")
            .map_err(state::db_failure)?;
        let rows = q
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(state::db_failure)?;
        for r in rows {
            let (k, v) = r.map_err(state::db_failure)?;
            by_state.insert(k, v.into());
        }
    }
    let counters = dlog::counters(c)?;
    let v = serde_json::json!({
        "state": st.path(),
        "addresses": settings::own_addresses(c)?,
        "cache": n("SELECT count(*) FROM cache")?,
        "cache_bytes": n("SELECT coalesce(sum(length(bytes)), 0) FROM cache")?,
        "ids": n("SELECT count(*) FROM ids")?,
        "peers": n("SELECT count(*) FROM peers")?,
        "peers_with_key": n("SELECT count(*) FROM peers WHERE key IS NOT NULL")?,
        "outbox": by_state,
        "delivered": n("SELECT count(*) FROM delivered")?,
        "log": n("SELECT count(*) FROM log")?,
        "clock": state::clock::last(c)?.map(|t| t.to_string()),
        "counters": counters.iter().map(|(s, k, v)| serde_json::json!({"scope": s, "name": k, "value": v})).collect::<Vec<_>>(),
    });
    if json {
        emit_json(&v)?;
    } else {
        let mut s = format!("state file   {}\n", st.path().display());
        s.push_str(&format!(
            "addresses    {}\n",
            settings::own_addresses(c)?.join(", ")
        ));
        for k in [
            "cache",
            "cache_bytes",
            "ids",
            "peers",
            "peers_with_key",
            "delivered",
            "log",
        ] {
            s.push_str(&format!("{k:<12} {}\n", v[k]));
        }
        s.push_str(&format!(
            "outbox       {}\n",
            if by_state.is_empty() {
                "empty".to_string()
            } else {
                by_state
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
        s.push_str(&format!(
            "clock        {}\n",
            v["clock"].as_str().unwrap_or("(unused)")
        ));
        for (scope, name, val) in counters {
            s.push_str(&format!("counter      {scope} {name} {val}\n"));
        }
        emit(&s)?;
    }
    Ok(exit::OK)
}

fn log_cmd(st: &State, limit: usize, json: bool) -> Result<u8, Failure> {
    let rows = dlog::recent(st.conn(), limit)?;
    if json {
        emit_json(&rows)?;
    } else {
        let mut s = String::new();
        for r in rows {
            s.push_str(&format!(
                "{}  {:<12} {}  via {}  {}\n",
                r.at,
                r.outcome,
                r.sender.as_deref().unwrap_or("-"),
                r.via.as_deref().unwrap_or("-"),
                r.reason.as_deref().unwrap_or("")
            ));
        }
        emit(&s)?;
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
