//! `cmr-recv`: the ingress adapter. Takes what an MTA, inetd or sshd hands over, extracts
//! the CMR message(s) and gives each to the router in the same process (one transaction
//! per message), or prints it raw with --print.

use crate::exit::{self, Failure};
use crate::route::{self, RouteOptions, Transport};
use crate::state::State;
use crate::transport::{http, mail, ssh, udp};
use crate::wire;
use clap::{ArgGroup, CommandFactory, Parser};
use std::io::{BufReader, Read, Write};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const ABOUT: &str = "Receive CMR messages from an MTA, inetd or sshd and route them";

const LONG_ABOUT: &str = "\
Ingress adapter: reads what the host's own machinery delivers, extracts the CMR message \
and hands it to the router (as cmr-route would, in the same process and transaction), or \
with --print writes the raw message to standard output for a pipeline.

Modes:
  --mail           an RFC 5322 mail on stdin (Postfix pipe, .forward, procmail)
  --udp            inetd/xinetd dgram wait: datagrams `tag LF message` on fd 0
  --ssh            sshd forced command: message(s) on stdin
  --http, --https  inetd nowait: one HTTP(S) request (RFC 1867 upload, A4.2, A4.3)

--mail takes the body, or the first MIME part that parses (base64 and quoted-printable are \
decoded). --udp reads datagrams until --idle seconds pass without one. --ssh never runs \
SSH_ORIGINAL_COMMAND; it only compares it with --tag.

Deadlines: --ssh must receive its whole input within $CMR_SSH_TIMEOUT seconds (default \
300); --http and --https the whole request within $CMR_HTTP_TIMEOUT seconds (default 30), \
whatever fd 0 is (a socket, a pipe or a file). A client that stops sending ends the process \
with 75 (the sender retries).

Under inetd fd 2 is the socket: --udp, --http and --https log to syslog unless --log \
names a file.";

const EXAMPLES: &str = "\
Examples:
  ~/.forward:        \"|/usr/local/bin/cmr-recv --mail\"
  /etc/aliases:      cmr: \"|/usr/local/bin/cmr-recv --mail --state /var/lib/cmr/state.sqlite\"
  procmail:          :0 w
                     * ^Subject: cmr
                     | cmr-recv --mail
  xinetd (dgram):    server_args = --udp --tag bob --log syslog
  authorized_keys:   restrict,command=\"cmr-recv --ssh --peer ADDR\" ssh-ed25519 AAAA...
  posting by mail:   \"|cmr-recv --mail --post --maildir ~/Maildir --allow-sender me@example.org\"
  cmr-recv --mail --print < mail.eml | cmr-parse --json

Exit status: 0 handled (--mail, --ssh, --udp: a message the router rejects per A3 is
logged, still 0; --http and --https answer it 400 and exit 65), 65 no CMR message in the
mail (--no-message-exit 0 to not bounce) or malformed input, 75 transient trouble (the MTA
or the sending peer retries; also a state file on a read-only mount or not accessible to
this user, and input not complete within the deadline), 64 usage, 78 configuration (a
state file never initialised: none is created).";

#[derive(Parser, Debug)]
#[command(name = "cmr-recv", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
#[command(group(ArgGroup::new("mode").required(true).args(["mail", "udp", "ssh", "http", "https"])))]
pub struct Args {
    /// An RFC 5322 mail on standard input
    #[arg(long)]
    pub mail: bool,
    /// Datagrams on the socket at fd 0 (inetd dgram wait), or on --listen
    #[arg(long)]
    pub udp: bool,
    /// Message(s) on standard input from an sshd forced command
    #[arg(long)]
    pub ssh: bool,
    /// One HTTP connection on stdin/stdout (inetd nowait)
    #[arg(long)]
    pub http: bool,
    /// One HTTPS connection on stdin/stdout (inetd nowait)
    #[arg(long)]
    pub https: bool,
    /// Write the raw message(s) to standard output instead of routing them
    #[arg(long)]
    pub print: bool,
    /// State file (default $CMR_STATE, else $XDG_STATE_HOME/cmr/state.sqlite)
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Diagnostics: stderr, syslog, syslog:FILE (FILE when there is no syslog socket),
    /// none, or a file (default: stderr; syslog for --udp/--http/--https, where fd 2 is
    /// the socket: with no syslog socket and no FILE, nothing is logged there)
    #[arg(long, value_name = "FILE|syslog")]
    pub log: Option<String>,
    /// --mail: exit status for a mail without a CMR message (65 bounces it; 0 drops it)
    #[arg(long, value_name = "CODE", default_value_t = exit::DATAERR)]
    pub no_message_exit: u8,
    /// --udp: the tag this server answers to (datagrams with another tag are dropped);
    /// --ssh: the only remote command a client may name
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// --udp: exit after SECS without a datagram
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub idle: f64,
    /// --udp: drop datagrams larger than BYTES
    #[arg(long, value_name = "BYTES", default_value_t = udp::MAX_DATAGRAM)]
    pub max_datagram: usize,
    /// --udp: bind this address instead of using fd 0 (standalone, tests)
    #[arg(long, value_name = "ADDR:PORT", requires = "udp")]
    pub listen: Option<String>,
    /// --ssh: the peer address this key belongs to (set in the forced command); the
    /// router counts unsigned messages from it as authenticated
    #[arg(long, value_name = "ADDRESS", requires = "ssh")]
    pub peer: Option<String>,
    /// --https: certificate chain (PEM)
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// --https: private key (PEM)
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Log every accepted message too (messages the router does not accept are always
    /// logged)
    #[arg(short, long)]
    pub verbose: bool,
    /// Print each routing decision as a JSON line on stdout (--mail, --ssh)
    #[arg(long, conflicts_with = "print")]
    pub json: bool,
    /// --mail: the mail is a person's post, not a CMR message: its Subject and plain-text
    /// body (without a signature) become a new message posted to the pool, as cmr-post
    /// would (the client address setting, else our first address, as its creator)
    #[arg(long, requires = "mail", conflicts_with = "print")]
    pub post: bool,
    /// --post: deliver the related messages already in the pool into this Maildir, as
    /// replies to the post (later ones: cmr-post --replies --maildir DIR from cron)
    #[arg(long, value_name = "DIR", requires = "post")]
    pub maildir: Option<PathBuf>,
    /// --post: only mail from this envelope sender ($SENDER, else From) may post;
    /// repeatable. Others are refused with 77 (the MTA bounces the mail)
    #[arg(long, value_name = "ADDR", requires = "post")]
    pub allow_sender: Vec<String>,
}

pub fn command() -> clap::Command {
    Args::command()
}

pub fn main() -> ExitCode {
    super::main_with("cmr-recv", log_sink, |args| {
        let r = run(&args);
        // For --ssh and --mail, stderr is the sender's channel (the ssh client, the MTA's
        // bounce): tell them too when the log goes elsewhere.
        if let (Err(f), Some(_)) = (&r, &args.log) {
            if args.ssh || args.mail {
                let _ = writeln!(
                    std::io::stderr(),
                    "cmr-recv: {}",
                    crate::log::terminal_safe(&f.message)
                );
            }
        }
        r
    })
}

/// Set before anything can be printed: under inetd fd 2 is the peer's socket.
fn log_sink(args: &Args) -> Option<crate::log::Sink> {
    match &args.log {
        Some(l) => Some(crate::log::Sink::parse(l)),
        None if args.udp || args.http || args.https => Some(crate::log::Sink::Syslog),
        None => None,
    }
}

/// Where extracted messages go: the router, or stdout.
struct Deliver<'a> {
    args: &'a Args,
    via: Transport,
    state: Option<State>,
}

impl Deliver<'_> {
    fn new(args: &Args, via: Transport) -> Result<Deliver<'_>, Failure> {
        let state = if args.print {
            None
        } else {
            Some(State::open_existing(args.state.as_deref())?)
        };
        Ok(Deliver { args, via, state })
    }

    /// Hand one message on. Ok(()) once it is routed and committed (or printed).
    fn one(&mut self, raw: &[u8], from: &str) -> Result<(), Failure> {
        let Some(state) = self.state.as_mut() else {
            let mut o = std::io::stdout().lock();
            o.write_all(raw)?;
            o.flush()?;
            return Ok(());
        };
        // Only sshd authenticates the sender (by its key); mail and datagrams do not.
        let opts = RouteOptions {
            authenticated_sender: self
                .args
                .peer
                .clone()
                .filter(|_| self.via == Transport::Ssh),
            ..Default::default()
        };
        let d = route::receive(state, raw, self.via, &opts)?;
        if self.args.json {
            let mut o = std::io::stdout().lock();
            serde_json::to_writer(&mut o, &d).map_err(std::io::Error::from)?;
            writeln!(o)?;
        }
        if d.accepted {
            if self.args.verbose {
                crate::log::info(&format!("{} from {from}: accepted", self.via));
            }
        } else {
            // A3: rejected network messages are ignored and discarded (logged, exit 0).
            crate::log::info(&format!(
                "{} from {from}: not accepted: {}",
                self.via,
                d.reason.as_deref().unwrap_or("-")
            ));
        }
        Ok(())
    }
}

pub fn run(args: &Args) -> Result<u8, Failure> {
    if args.peer.is_some() && !args.ssh {
        return Err(Failure::usage(
            "--peer is for --ssh only: no other ingress authenticates the sender",
        ));
    }
    if args.listen.is_some() && !args.udp {
        return Err(Failure::usage("--listen is for --udp only"));
    }
    if args.http || args.https {
        if args.https && (args.cert.is_none() || args.key.is_none()) {
            return Err(Failure::usage("--https needs --cert FILE and --key FILE"));
        }
        let opts = http::HttpOptions {
            https: args.https,
            cert: args.cert.clone(),
            key: args.key.clone(),
            ..Default::default()
        };
        if crate::sys::is_socket(crate::sys::Std::In) {
            // inetd: socket timeouts and an alarm bound the connection (http::serve).
            http::serve_stdio(args.state.as_deref(), &opts)?;
        } else {
            // A pipe or a file: no socket timeout applies, so the request must arrive
            // within the same deadline ($CMR_HTTP_TIMEOUT) or the process ends (75).
            let input = ssh::StallGuard::new(std::io::stdin(), opts.deadline, "cmr-recv --http");
            http::serve(input, std::io::stdout(), args.state.as_deref(), &opts)?;
        }
        return Ok(exit::OK);
    }
    if args.mail && args.post {
        return post_mail(args);
    }
    if args.mail {
        return recv_mail(args);
    }
    if args.udp {
        return recv_udp(args);
    }
    recv_ssh(args)
}

/// Largest mail read: a maximal message, base64-encoded, plus headers.
const MAX_MAIL: u64 = (16 << 20) * 4 / 3 + (1 << 20);

/// Read the mail on stdin (bounded); an empty one is EX_NOINPUT.
fn read_mail() -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_MAIL + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Failure::from(e).context("reading the mail"))?;
    if buf.len() as u64 > MAX_MAIL {
        return Err(Failure::data(format!("mail larger than {MAX_MAIL} bytes")));
    }
    if buf.is_empty() {
        return Err(Failure::no_input("standard input: empty (no mail)"));
    }
    Ok(buf)
}

/// `--mail --post`: a person's mail becomes a post; the related messages already in the
/// pool go to their Maildir.
fn post_mail(args: &Args) -> Result<u8, Failure> {
    use crate::transport::maildir;
    let buf = read_mail()?;
    let sender = maildir::sender_of(&buf).unwrap_or_default();
    if !args.allow_sender.is_empty()
        && !args.allow_sender.iter().any(|a| {
            a.trim_start_matches("mailto:")
                .eq_ignore_ascii_case(&sender)
        })
    {
        return Err(Failure::new(
            exit::NOPERM,
            format!(
                "sender <{sender}> may not post here (--allow-sender {})",
                args.allow_sender.join(", ")
            ),
        ));
    }
    let text = maildir::post_text(&buf)
        .ok_or_else(|| Failure::data("the mail has no subject and no text to post"))?;
    let mut st = State::open(args.state.as_deref())?;
    let p = route::post::post(
        &mut st,
        text.as_bytes(),
        &route::post::PostOptions::default(),
    )?;
    let id = p.message_id.clone().unwrap_or_default();
    if args.verbose {
        crate::log::info(&format!("mail from <{sender}>: posted {id}"));
    }
    if args.json {
        let mut o = std::io::stdout().lock();
        serde_json::to_writer(&mut o, &p).map_err(std::io::Error::from)?;
        writeln!(o)?;
    }
    // The post is committed: from here on nothing may make the MTA deliver it again (that
    // would post it twice). A Maildir that cannot take the related messages is logged.
    if let Some(dir) = &args.maildir {
        for r in &p.related {
            if let Err(f) = maildir::deliver_related(dir, r, &id) {
                crate::log::error(&format!(
                    "cmr-recv: posted {id}, but the related messages could not go to {}: {}",
                    dir.display(),
                    f.message
                ));
                break;
            }
        }
    }
    Ok(exit::OK)
}

fn recv_mail(args: &Args) -> Result<u8, Failure> {
    let buf = match read_mail() {
        // Too large (the only DATAERR of read_mail): no CMR message fits.
        Err(f) if f.code == exit::DATAERR => {
            let m = format!("{}: no CMR message fits", f.message);
            if args.no_message_exit == exit::OK {
                crate::log::info(&format!("cmr-recv: dropped: {m}"));
                return Ok(exit::OK);
            }
            return Err(Failure::new(args.no_message_exit, m));
        }
        r => r?,
    };
    // The router applies the full A2/A3 rules; extraction only needs the structure.
    let msg = match mail::extract(&buf, &wire::Rules::unchecked_time()) {
        Ok(m) => m,
        Err(e) => {
            if args.no_message_exit == exit::OK {
                crate::log::info(&format!("cmr-recv: dropped: {e}"));
                return Ok(exit::OK);
            }
            return Err(Failure::new(args.no_message_exit, e.to_string()));
        }
    };
    // local(8) and procmail export the envelope sender; Postfix pipe can pass it as ${sender}.
    let from = std::env::var("SENDER")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "the MTA".into());
    Deliver::new(args, Transport::Mail)?.one(&msg, &from)?;
    Ok(exit::OK)
}

fn recv_udp(args: &Args) -> Result<u8, Failure> {
    let sock = match &args.listen {
        Some(a) => UdpSocket::bind(a).map_err(|e| Failure::from(e).context(a))?,
        None => {
            use crate::sys::{self, Std};
            // Refuse a non-socket fd 0 (run by hand) with a clear error instead of EBADF noise.
            if !sys::is_datagram_socket(Std::In) {
                return Err(Failure::usage(
                    "--udp expects a datagram socket on fd 0 (run it from inetd/xinetd as a \
                     `dgram wait` service) or --listen ADDR:PORT",
                ));
            }
            // The datagram socket inetd handed us on fd 0, as a descriptor of our own.
            UdpSocket::from(sys::dup(Std::In).map_err(Failure::from)?)
        }
    };
    let opts = udp::ReceiveOptions {
        tag: args.tag.clone(),
        idle: Duration::try_from_secs_f64(args.idle)
            .map_err(|_| Failure::usage("--idle: not a duration in seconds"))?,
        max_datagram: args.max_datagram,
        ..Default::default()
    };
    let mut d = Deliver::new(args, Transport::Udp)?;
    let stats = udp::receive(&sock, &opts, &mut |m, from| {
        // Each datagram is one whole message (A4.4).
        wire::parse(m, &wire::Rules::unchecked_time())
            .map_err(|e| Failure::data(format!("malformed message: {e}")))?;
        d.one(m, &from.to_string())
    })?;
    if args.verbose || stats.dropped > 0 {
        crate::log::info(&format!(
            "cmr-recv --udp: {} datagram(s), {} handed on, {} dropped",
            stats.datagrams, stats.handed_on, stats.dropped
        ));
    }
    Ok(exit::OK)
}

fn recv_ssh(args: &Args) -> Result<u8, Failure> {
    // SSH_ORIGINAL_COMMAND is what the client asked for; it is only compared, never run.
    let original = std::env::var("SSH_ORIGINAL_COMMAND").ok();
    ssh::check_original_command(original.as_deref(), args.tag.as_deref())?;
    let from = args.peer.clone().unwrap_or_else(|| {
        std::env::var("SSH_CONNECTION")
            .ok()
            .and_then(|c| c.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| "ssh".into())
    });
    let mut d = Deliver::new(args, Transport::Ssh)?;
    let stdin = std::io::stdin();
    // A client that stops sending cannot hold the process ($CMR_SSH_TIMEOUT).
    let input = ssh::StallGuard::new(stdin.lock(), ssh::input_deadline(), "cmr-recv --ssh");
    let mut reader = wire::Reader::new(BufReader::new(input), wire::Rules::unchecked_time());
    let mut n = 0usize;
    loop {
        let m = reader
            .next_message()
            .map_err(|e| Failure::from(e).context(format!("standard input, message {}", n + 1)))?;
        let Some(m) = m else { break };
        n += 1;
        d.one(&m.encode(), &from)?;
    }
    if n == 0 {
        return Err(Failure::no_input("standard input: no message"));
    }
    Ok(exit::OK)
}
