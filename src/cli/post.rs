//! `cmr-post`: the client. Compose a message, post it to the pool, print related messages.

use crate::exit::{self, Failure};
use crate::route::post::{self, PostOptions, Related};
use crate::state::State;
use clap::{CommandFactory, Parser};
use std::io::Write;
use std::path::PathBuf;

const LONG_ABOUT: &str = "\
The CMR client. A1: \"When a client posts a message, it has the effect of adding the message \
to the pool and retrieving related messages.\" cmr-post reads the body from FILE or standard \
input, composes a message with one header line (a time from the state file's clock and the \
client address), adds it to the cache through the local router in one transaction (cache, ID \
index, and every delivery it decides, queued in the outbox for cmr-send), and prints the \
related messages already in the pool, closest first. Messages that arrive later and match a \
post, or that the post ranks among its related messages (for reply_window seconds, one day by \
default), are kept for the client: --replies shows them. A post none of whose replies answers \
it can be widened once, while it is open: --widen sends it to widen_fanout (2) more peers not \
asked yet (3.1: \"A client may also post a message to several peers to improve the expected \
number of responses\").

The client address is --from, else the client_address policy setting, else the router's \
first address (then forwards carry our address once, as the message's creator).

Exit status: 0 ok, 64 usage, 65 bad body (empty or too large), 66 no input, 75 temporary \
failure (retry: nothing was posted), 78 configuration error (state file not initialised: \
cmr-route init --address ADDR).";

const AFTER_HELP: &str = "\
Examples:
  printf 'What is the largest planet?' | cmr-post
  cmr-post --search -k 10 question.txt     related messages only, nothing posted
  cmr-post --json < note.txt | jq '.related[].body'
  cmr-post --from mailto:me@example.org note.txt
  cmr-post --explain note.txt              also show the routing decision
  cmr-post --replies                       messages that matched my posts since
  cmr-post --replies --maildir ~/Maildir   the same as mail, for mutt or mblaze (cron)
  cmr-post --widen 42                      not answered: send post (cache row 42) to more peers";

#[derive(Parser, Debug)]
#[command(
    name = "cmr-post",
    version,
    about = "Post a message to the CMR pool and print related messages",
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP
)]
pub struct Args {
    /// State file (default: $CMR_STATE, else $XDG_STATE_HOME/cmr/state.sqlite).
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Creator address for the new message.
    #[arg(long = "from", value_name = "ADDR")]
    pub from: Option<String>,
    /// How many related messages to print (default: the related_k setting).
    #[arg(short = 'k', long = "related", value_name = "N")]
    pub k: Option<usize>,
    /// Print related messages only; post nothing.
    #[arg(long)]
    pub search: bool,
    /// Print the messages that arrived later and matched earlier posts (not shown before),
    /// then mark them shown. Reads no body.
    #[arg(long, conflicts_with = "search")]
    pub replies: bool,
    /// Send our earlier post POST (its cache row, or its ID `timestamp address`) to
    /// widen_fanout more peers not asked yet: once per post, within reply_window, never a
    /// post of a series (one that resembles a recent post of its creator at half
    /// bulk_resemblance or more). Reads no body.
    #[arg(long, value_name = "POST", conflicts_with_all = ["search", "replies", "file", "from", "k"])]
    pub widen: Option<String>,
    /// With --replies: include those already shown.
    #[arg(long, requires = "replies")]
    pub all: bool,
    /// With --replies: deliver them into the Maildir DIR as mail instead of printing them
    /// (From: the creator, Date: its timestamp, Subject: the body's first line, References:
    /// the post). Created if missing; a reply already in DIR is not written again. Prints
    /// nothing (cron mails any output) unless --json.
    #[arg(long, value_name = "DIR", requires = "replies")]
    pub maildir: Option<PathBuf>,
    /// Compose and route, but store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Show the routing decision as well (scores, forwards).
    #[arg(long)]
    pub explain: bool,
    /// Where diagnostics go: stderr (default), syslog (with no syslog socket: stderr, or
    /// FILE with syslog:FILE), none, or a file path.
    #[arg(long, value_name = "SINK")]
    pub log: Option<String>,
    /// Body file, or - for standard input.
    #[arg(value_name = "FILE", default_value = "-")]
    pub file: String,
}

/// The clap definition (man pages are generated from it).
pub fn command() -> clap::Command {
    Args::command()
}

pub fn main() -> std::process::ExitCode {
    super::main_with("cmr-post", |a: &Args| super::log_option(&a.log), run)
}

fn related_item(n: usize, r: &Related) -> String {
    let mut s = format!(
        "\n{n:>2}. {}  [score {:.3}, row {}, from {}]\n",
        r.message_id, r.score, r.cache_id, r.sender
    );
    let lines: Vec<&str> = r.body.lines().collect();
    for l in lines.iter().take(8) {
        let l: String = l.chars().take(200).collect();
        s.push_str(&format!("    {l}\n"));
    }
    if lines.len() > 8 {
        s.push_str(&format!("    ... ({} more lines)\n", lines.len() - 8));
    }
    s
}

fn related_text(rel: &[Related]) -> String {
    if rel.is_empty() {
        return "no related messages in the pool yet\n".into();
    }
    let mut s = String::from("related messages (closest first):\n");
    for (i, r) in rel.iter().enumerate() {
        s.push_str(&related_item(i + 1, r));
    }
    s
}

fn run(a: Args) -> Result<u8, Failure> {
    if let (true, Some(dir)) = (a.replies, &a.maildir) {
        return deliver_replies(&a, dir);
    }
    if a.replies {
        return print_replies(&a);
    }
    if let Some(post) = &a.widen {
        return widen_post(&a, post);
    }
    let mut st = State::open_existing(a.state.as_deref())?;
    let body = read_body(&st, &a.file)?;
    let text = if a.search {
        search_text(&st, &body, &a)?
    } else {
        post_text(&mut st, &body, &a)?
    };
    write_out(&text, a.json)
}

/// --replies --maildir DIR: deliver the replies into DIR as mail.
fn deliver_replies(a: &Args, dir: &std::path::Path) -> Result<u8, Failure> {
    let st = State::open(a.state.as_deref())?;
    let n = crate::transport::maildir::deliver_replies(&st, dir, a.all)?;
    if a.json {
        let mut o = std::io::stdout().lock();
        writeln!(
            o,
            "{}",
            serde_json::json!({ "delivered": n, "maildir": dir })
        )
        .and_then(|_| o.flush())
        .map_err(|e| Failure::from(e).context("writing output"))?;
    }
    Ok(exit::OK)
}

/// --replies: print the messages that matched earlier posts, then mark them shown (unless
/// --dry-run).
fn print_replies(a: &Args) -> Result<u8, Failure> {
    let st = State::open_existing(a.state.as_deref())?;
    let r = post::replies(&st, a.all, !a.dry_run)?;
    let text = if a.json {
        format!(
            "{}\n",
            serde_json::to_string(&serde_json::json!({ "replies": r }))
                .map_err(|e| Failure::software(e.to_string()))?
        )
    } else if r.is_empty() {
        "no new replies\n".to_string()
    } else {
        let mut s = String::new();
        for x in &r {
            s.push_str(&format!("reply to {}:", x.post_id));
            s.push_str(&related_item(1, &x.message));
        }
        s
    };
    write_out(&text, a.json)
}

/// --widen POST: send the post to more peers; what was queued, or why not.
fn widen_post(a: &Args, post: &str) -> Result<u8, Failure> {
    let mut st = State::open_existing(a.state.as_deref())?;
    let opts = crate::route::RouteOptions {
        dry_run: a.dry_run,
        ..Default::default()
    };
    let w = crate::route::widen::widen(&mut st, post, &opts)?;
    if a.json {
        let text = serde_json::to_string(&w).map_err(|e| Failure::software(e.to_string()))?;
        return write_out(&format!("{text}\n"), true);
    }
    let mut s = match &w.reason {
        Some(why) => format!(
            "not widened {} (cache row {}): {why}\n",
            w.message_id, w.cache_id
        ),
        None => {
            let n = w.decision.forwards.len();
            format!(
                "{} {} (cache row {}): {n} deliver{} queued\n",
                if a.dry_run { "would widen" } else { "widened" },
                w.message_id,
                w.cache_id,
                if n == 1 { "y" } else { "ies" }
            )
        }
    };
    if a.explain {
        s.push_str(&crate::cli::route::explain(&w.decision));
    }
    write_out(&s, false)
}

/// The body to post from `file`, refused when empty or over the max_body_bytes setting.
fn read_body(st: &State, file: &str) -> Result<Vec<u8>, Failure> {
    // Stop reading at the size cap: an oversized body is refused without being held whole.
    let max = crate::state::settings::Settings::load(st.conn())?.max_body_bytes;
    let body = crate::cli::read_input_limited(
        file,
        usize::try_from(max).unwrap_or(usize::MAX),
        "setting max_body_bytes",
    )?;
    if body.is_empty() {
        return Err(Failure::data(format!(
            "{}: empty body, nothing to post",
            if file == "-" { "standard input" } else { file }
        )));
    }
    Ok(body)
}

/// --search: the messages related to `body`, nothing posted.
fn search_text(st: &State, body: &[u8], a: &Args) -> Result<String, Failure> {
    let rel = post::search(st, body, a.k)?;
    Ok(if a.json {
        format!(
            "{}\n",
            serde_json::to_string(&serde_json::json!({ "related": rel }))
                .map_err(|e| Failure::software(e.to_string()))?
        )
    } else {
        related_text(&rel)
    })
}

/// Post `body`: what was posted and queued (with --explain, the decision), then the related
/// messages.
fn post_text(st: &mut State, body: &[u8], a: &Args) -> Result<String, Failure> {
    let opts = PostOptions {
        client_address: a.from.clone(),
        k: a.k,
        dry_run: a.dry_run,
    };
    let p = post::post(st, body, &opts)?;
    if a.json {
        return Ok(format!(
            "{}\n",
            serde_json::to_string(&p).map_err(|e| Failure::software(e.to_string()))?
        ));
    }
    let mut s = String::new();
    let queued = p.decision.as_ref().map(|d| d.forwards.len()).unwrap_or(0);
    s.push_str(&format!(
        "{} {} (cache row {}): {queued} deliver{} queued\n",
        if a.dry_run { "would post" } else { "posted" },
        p.message_id.as_deref().unwrap_or("-"),
        p.cache_id.unwrap_or(0),
        if queued == 1 { "y" } else { "ies" }
    ));
    if a.explain {
        if let Some(d) = &p.decision {
            s.push_str(&crate::cli::route::explain(d));
        }
    } else {
        s.push('\n');
    }
    s.push_str(&related_text(&p.related));
    Ok(s)
}

/// Write `text` on stdout: exact when JSON, else with control characters from the network
/// shown escaped, never obeyed.
fn write_out(text: &str, json: bool) -> Result<u8, Failure> {
    let text = if json {
        std::borrow::Cow::Borrowed(text)
    } else {
        crate::log::terminal_safe(text)
    };
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|_| o.flush())
        .map_err(|e| Failure::from(e).context("writing output"))?;
    Ok(exit::OK)
}
