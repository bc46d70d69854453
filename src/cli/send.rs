//! `cmr-send`: deliver one message to one address, or drain the outbox (cron).

use crate::exit::{self, Failure};
use crate::state::State;
use crate::transport::{self, outbox, Address, SendOptions};
use crate::wire;
use clap::{ArgGroup, CommandFactory, Parser};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const ABOUT: &str = "Deliver CMR messages: to one address, or drain the outbox";

const LONG_ABOUT: &str = "\
Deliver CMR messages over the A4 transports.

With --to, send the one message in FILE (or standard input) to ADDRESS. With --outbox, \
send every due row of the state file's outbox (the forwards cmr-route queued): a row is \
claimed so that concurrent runs never send it twice, marked sent only after the transport \
confirmed delivery, retried with exponential backoff and jitter on failure, and \
dead-lettered after outbox_max_attempts attempts or outbox_max_age seconds (or at once on \
a permanent error). Dead rows stay listed (--list) until --retry-dead requeues them.

Addresses:
  mailto:bob@example.org           local sendmail (default) or the smtp_relay setting
  http://host/path, https://...    RFC 1867 upload (A4.2, A4.3)
  udp://host:port/tag              one datagram, `tag LF message` (A4.4), max 65507 bytes
  ssh://[user@]host[:port]/tag     ssh -o BatchMode=yes -T to the remote's forced command

Settings live in the state file (cmr-send --settings lists them, --set KEY=VALUE sets \
them): send_timeout, outbox_max_attempts, outbox_max_age, outbox_backoff_base, \
outbox_backoff_max, outbox_claim_timeout, smtp_from, smtp_sendmail, smtp_relay, \
smtp_relay_ca, ssh_command, ssh_identity, ssh_known_hosts, ssh_options, http_trust_file, \
http_handshake. Command-line options override them for one run; a peer's own row \
(cmr-route peer) can add HTTP options for that destination.";

const EXAMPLES: &str = "\
Examples:
  cmr-send --to mailto:bob@example.org msg.cmr
  cmr-sign --peer udp://10.0.0.2:7777/bob m | cmr-send --allow 10.0.0.0/8 --to udp://10.0.0.2:7777/bob -
  cmr-send --to ssh://cmr@bob.example/bob --ssh-identity ~/.ssh/cmr_ed25519 msg.cmr
  cmr-send --outbox                      drain what is due (crontab: */5 * * * *)
  cmr-send --outbox --json               ... and print {sent, deferred, dead, skipped}
  cmr-send --outbox --print --for http://bob.example/cmr | cmr-route --state bob.sqlite
                                         hand Bob's messages over a pipe (or a file)
  cmr-send --list                        queued, in-flight and dead rows
  cmr-send --retry-dead                  requeue every dead row (or --retry-dead ID)
  cmr-send --set smtp_relay='smtp://relay.example:587?tls=required' --set send_timeout=30
  cmr-send --settings

Crontab:
  */5 * * * * cmr-send --outbox --log syslog

Exit status: 0 delivered (--outbox: everything due was delivered), 75 deferred (a
transient failure; will be retried), 69 dead-lettered or permanently refused, 65
malformed message, 64 usage, 78 bad setting.";

#[derive(Parser, Debug)]
#[command(name = "cmr-send", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
#[command(group(ArgGroup::new("mode").args(["to", "outbox", "list", "retry_dead", "settings", "set"])))]
pub struct Args {
    /// Send the message in FILE to this address
    #[arg(long, value_name = "ADDRESS")]
    pub to: Option<String>,
    /// Message file for --to, or - for standard input
    #[arg(value_name = "FILE", default_value = "-", requires = "to")]
    pub file: String,
    /// Send every due outbox row (for cron)
    #[arg(long)]
    pub outbox: bool,
    /// With --outbox: write the due messages to standard output as one stream instead of
    /// sending them (store and forward over a pipe or a file); each is marked sent once written
    #[arg(long, requires = "outbox", conflicts_with = "json")]
    pub print: bool,
    /// With --outbox: only the rows for this destination address
    #[arg(long = "for", value_name = "ADDRESS", requires = "outbox")]
    pub for_dest: Option<String>,
    /// List outbox rows (queued, sending, dead; with --all also the delivered ones)
    #[arg(long)]
    pub list: bool,
    /// With --list: include the delivered (destination, message) pairs
    #[arg(long, requires = "list")]
    pub all: bool,
    /// Requeue dead-lettered rows: all, or the one with this id
    #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "all")]
    pub retry_dead: Option<String>,
    /// Log every delivery and the run's counts (failures are always logged)
    #[arg(short, long)]
    pub verbose: bool,
    /// List the transport settings with their values and defaults
    #[arg(long)]
    pub settings: bool,
    /// Set a transport setting in the state file (repeatable), e.g. --set send_timeout=30
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Remove a transport setting (back to its default; repeatable)
    #[arg(long, value_name = "KEY", conflicts_with_all = ["to", "outbox", "list", "retry_dead", "settings"])]
    pub unset: Vec<String>,
    /// Print JSON (--outbox: the run's counts; --list: the rows)
    #[arg(long)]
    pub json: bool,
    /// Also allow these loopback/private/link-local ranges or host names as destinations,
    /// besides the state file's send_allow (e.g. --allow 127.0.0.0/8,::1 for a test on
    /// this host); restricted addresses are refused otherwise
    #[arg(long, value_name = "RANGES")]
    pub allow: Option<String>,
    /// State file (default $CMR_STATE, else $XDG_STATE_HOME/cmr/state.sqlite)
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Diagnostics: stderr (default), syslog (with no syslog socket: stderr, or FILE with
    /// syslog:FILE), none, or a file
    #[arg(long, value_name = "FILE|syslog")]
    pub log: Option<String>,
    /// Give up on one destination after SECS seconds (send_timeout, default 60)
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Dead-letter after N attempts (outbox_max_attempts, default 12)
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
    /// Dead-letter rows older than SECS (outbox_max_age, default 604800)
    #[arg(long, value_name = "SECS")]
    pub max_age: Option<f64>,
    /// First retry delay; doubles per attempt (outbox_backoff_base, default 60)
    #[arg(long, value_name = "SECS")]
    pub backoff_base: Option<f64>,
    /// Longest retry delay (outbox_backoff_max, default 21600)
    #[arg(long, value_name = "SECS")]
    pub backoff_max: Option<f64>,
    /// Take over claims older than SECS from runs that died (outbox_claim_timeout, default 900)
    #[arg(long, value_name = "SECS")]
    pub claim_timeout: Option<f64>,
    /// From: address for mailto: (smtp_from)
    #[arg(long, value_name = "ADDR")]
    pub from: Option<String>,
    /// sendmail binary (smtp_sendmail, default /usr/sbin/sendmail)
    #[arg(long, value_name = "PATH")]
    pub sendmail: Option<PathBuf>,
    /// Send mail through this SMTP relay instead of sendmail, e.g.
    /// smtp://user:pass@relay:587?tls=required (smtp_relay)
    #[arg(long, value_name = "URL")]
    pub relay: Option<String>,
    /// PEM certificates to trust for the SMTP relay's TLS; TLS then required (smtp_relay_ca)
    #[arg(long, value_name = "PEM")]
    pub relay_ca: Option<PathBuf>,
    /// PEM certificates to trust for https:// peers (http_trust_file)
    #[arg(long, value_name = "PEM")]
    pub http_trust: Option<PathBuf>,
    /// ssh identity file (ssh_identity)
    #[arg(long, value_name = "FILE")]
    pub ssh_identity: Option<PathBuf>,
    /// Extra ssh -o option, e.g. UserKnownHostsFile=/path (repeatable; ssh_options)
    #[arg(long, value_name = "OPT")]
    pub ssh_option: Vec<String>,
}

pub fn command() -> clap::Command {
    Args::command()
}

pub fn main() -> ExitCode {
    super::main_with(
        "cmr-send",
        |a: &Args| super::log_option(&a.log),
        |args| run(&args),
    )
}

fn secs(v: f64, what: &str) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| Failure::usage(format!("{what}: {v} is not a duration in seconds")))
}

/// Settings from the state file, then the command line on top.
fn options(args: &Args, state: Option<&State>) -> Result<(SendOptions, outbox::Policy), Failure> {
    let (mut o, mut p) = match state {
        Some(s) => (
            SendOptions::from_settings(s.conn())?,
            outbox::Policy::from_settings(s.conn())?,
        ),
        None => (SendOptions::default(), outbox::Policy::default()),
    };
    if let Some(t) = args.timeout {
        o.timeout = secs(t, "--timeout")?;
    }
    if let Some(n) = args.max_attempts {
        p.max_attempts = n.max(1);
    }
    if let Some(t) = args.max_age {
        p.max_age = secs(t, "--max-age")?;
    }
    if let Some(t) = args.backoff_base {
        p.backoff_base = secs(t, "--backoff-base")?;
    }
    if let Some(t) = args.backoff_max {
        p.backoff_max = secs(t, "--backoff-max")?;
    }
    if let Some(t) = args.claim_timeout {
        p.claim_timeout = secs(t, "--claim-timeout")?;
    }
    if args.from.is_some() {
        o.mail.from = args.from.clone();
    }
    if let Some(s) = &args.sendmail {
        o.mail.sendmail = s.clone();
    }
    if args.relay.is_some() {
        o.mail.relay = args.relay.clone();
    }
    if args.relay_ca.is_some() {
        o.mail.relay_ca = args.relay_ca.clone();
    }
    if args.http_trust.is_some() {
        o.http.trust_file = args.http_trust.clone();
    }
    if args.ssh_identity.is_some() {
        o.ssh.identity = args.ssh_identity.clone();
    }
    o.ssh.options.extend(args.ssh_option.iter().cloned());
    if let Some(a) = &args.allow {
        let extra =
            crate::netaddr::Allow::parse(a).map_err(|e| Failure::usage(format!("--allow: {e}")))?;
        o.allow = o.allow.union(&extra);
        o.http.allow = o.http.allow.union(&extra);
    }
    Ok((o, p))
}

pub fn run(args: &Args) -> Result<u8, Failure> {
    if !(args.to.is_some()
        || args.outbox
        || args.list
        || args.retry_dead.is_some()
        || args.settings
        || !args.set.is_empty()
        || !args.unset.is_empty())
    {
        return Err(Failure::usage(
            "say what to do: --to ADDRESS, --outbox, --list, --retry-dead, --settings, --set or --unset (see --help)",
        ));
    }
    if let Some(to) = &args.to {
        return send_one(args, to);
    }
    let state = State::open(args.state.as_deref())?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.list {
        list(&state, args, &mut out)?;
        return Ok(exit::OK);
    }
    if !args.set.is_empty() || !args.unset.is_empty() {
        set_settings(&state, args)?;
        return Ok(exit::OK);
    }
    if args.settings {
        show_settings(&state, args.json, &mut out)?;
        return Ok(exit::OK);
    }
    if let Some(which) = &args.retry_dead {
        retry_dead(&state, which, args.json, &mut out)?;
        return Ok(exit::OK);
    }
    drain_outbox(args, &state, &mut out)
}

/// --list: the outbox rows (with --all also the delivered ones), one a line or as JSON.
fn list(state: &State, args: &Args, out: &mut impl Write) -> Result<(), Failure> {
    let rows = outbox::list(state.conn(), args.all)?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &rows).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        for r in rows {
            let when = match r.state.as_str() {
                "queued" => r.next_attempt.clone().map(|t| format!("next {t}")),
                "sending" => r.claimed_at.clone().map(|t| format!("claimed {t}")),
                "sent" => r.sent_at.clone().map(|t| format!("sent {t}")),
                _ => r.created.clone().map(|t| format!("created {t}")),
            }
            .unwrap_or_default();
            let mut line = format!(
                "{:>6} {:<7} {:>2} tries {:>7} B  {}  {}",
                r.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
                r.state,
                r.attempts,
                r.size,
                r.dest,
                when
            );
            if let Some(e) = &r.last_error {
                line.push_str(&format!("  [{e}]"));
            }
            // Addresses and errors come from the network: shown escaped, never obeyed.
            writeln!(out, "{}", crate::log::terminal_safe(&line))?;
        }
    }
    Ok(())
}

/// --set KEY=VALUE and --unset KEY, all in one transaction.
fn set_settings(state: &State, args: &Args) -> Result<(), Failure> {
    let mut pairs = Vec::new();
    for kv in &args.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| Failure::usage(format!("--set takes KEY=VALUE, not {kv:?}")))?;
        pairs.push((k.trim().to_string(), Some(v.trim().to_string())));
    }
    pairs.extend(args.unset.iter().map(|k| (k.clone(), None)));
    state.write(|tx| {
        for (k, v) in &pairs {
            transport::set_setting(tx, k, v.as_deref())?;
        }
        Ok(())
    })
}

/// --settings: every transport setting with its value, default and help.
fn show_settings(state: &State, json: bool, out: &mut impl Write) -> Result<(), Failure> {
    let mut rows = Vec::new();
    for &(k, d, _, help) in transport::SETTINGS {
        let v = transport::setting(state.conn(), k)?;
        rows.push(serde_json::json!({"key": k, "value": v, "default": d, "help": help}));
        if !json {
            let shown = match v {
                Some(v) => v,
                None if d.is_empty() => "(not set)".into(),
                None => format!("{d} (default)"),
            };
            writeln!(out, "{k:<22} {shown:<24} {help}")?;
        }
    }
    if json {
        writeln!(out, "{}", serde_json::Value::Array(rows))?;
    }
    Ok(())
}

/// --retry-dead [ID]: requeue every dead row (`which` is "all"), or the one with this id.
fn retry_dead(state: &State, which: &str, json: bool, out: &mut impl Write) -> Result<(), Failure> {
    let id =
        match which {
            "all" => None,
            n => Some(n.parse::<i64>().map_err(|_| {
                Failure::usage(format!("--retry-dead takes an outbox id, not {n:?}"))
            })?),
        };
    let n = outbox::retry_dead(state, id)?;
    if json {
        writeln!(out, "{}", serde_json::json!({ "requeued": n }))?;
    } else {
        writeln!(out, "requeued {n} dead row(s)")?;
    }
    Ok(())
}

/// --outbox: send every due row (with --print, write it to standard output instead); the exit
/// status says how the run went.
fn drain_outbox(args: &Args, state: &State, out: &mut impl Write) -> Result<u8, Failure> {
    let (o, mut policy) = options(args, Some(state))?;
    policy.only_dest = args.for_dest.clone();
    let report = if args.print {
        // The "transport" is our stdout: a row is delivered once its bytes are written and
        // flushed. A2 messages are self-delimiting, so the stream needs no framing.
        let mut sink = std::io::stdout().lock();
        outbox::drain(state, &policy, args.verbose, &mut |_, b| {
            sink.write_all(b)
                .and_then(|_| sink.flush())
                .map_err(|e| transport::SendError::Transient(format!("writing stdout: {e}")))
        })?
    } else {
        outbox::drain(state, &policy, args.verbose, &mut |a, b| {
            // Options the operator can mend (a peer row edited by hand) defer the row rather
            // than dead-letter it: it goes once they are fixed.
            let od = o.for_destination(state, a).map_err(|f| {
                transport::SendError::Transient(format!(
                    "{} (mend with cmr-route peer add ADDRESS --options ...)",
                    f.message
                ))
            })?;
            transport::send(a, b, &od)
        })?
    };
    if !args.print {
        // For `cmr-route status`: when the outbox was last drained. The drain itself is
        // done and committed; a failure to note it only makes status report an older drain.
        if let Err(f) = crate::status::record_drain(state) {
            crate::log::error(&format!("cmr-send: noting the drain: {}", f.message));
        }
    }

    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&report).map_err(std::io::Error::from)?
        )?;
    } else if args.verbose {
        crate::log::info(&format!(
            "cmr-send: {} sent, {} deferred, {} dead-lettered, {} left for a later run",
            report.sent, report.deferred, report.dead, report.skipped
        ));
    }
    Ok(report.exit_code())
}

fn send_one(args: &Args, to: &str) -> Result<u8, Failure> {
    let addr = Address::parse(to)?;
    let bytes = super::read_input(&args.file)?;
    let name = if args.file == "-" {
        "standard input"
    } else {
        &args.file
    };
    if bytes.is_empty() {
        return Err(Failure::no_input(format!("{name}: empty input")));
    }
    // One whole A2 message: catch a wrong file before it leaves the host.
    wire::parse(&bytes, &wire::Rules::unchecked_time())
        .map_err(|e| Failure::data(format!("{name}: {e}")))?;
    // Settings are read when a state file is named or already exists; sending needs none.
    let state = match &args.state {
        Some(p) => Some(State::open(Some(p))?),
        // The default state file is read when it exists; --to never creates one.
        None => match crate::state::resolve_path(None) {
            Ok(p) if p.exists() => Some(State::open(Some(&p))?),
            _ => None,
        },
    };
    let (mut o, _) = options(args, state.as_ref())?;
    if let Some(s) = &state {
        o = o.for_destination(s, &addr)?;
    }
    drop(state);
    transport::send(&addr, &bytes, &o)?;
    if args.json {
        writeln!(
            std::io::stdout(),
            "{}",
            serde_json::json!({ "to": addr.to_string(), "sent": true })
        )?;
    }
    Ok(exit::OK)
}
