//! Command-line front ends. Each tool has one module here holding its clap definition and
//! its `main`; `src/bin/cmr-*.rs` only calls that `main`. Keeping the clap definitions in
//! the library lets `man/` be generated from them and checked against `--help`.

use crate::exit::{self, Failure};
use crate::wire::{Limits, Now, Rules, Timestamp};
use std::io::Read;
use std::process::ExitCode;

#[doc(hidden)]
pub mod keyx;
pub mod man;
pub mod parse;
pub mod post;
pub mod recv;
pub mod route;
pub mod send;
pub mod sign;
pub mod sim;

/// Every tool's command line, in the order the manual lists them. `tests/man.rs` renders
/// one page per entry into `man/<name>.1`; a new tool adds its `command()` here.
pub fn commands() -> Vec<clap::Command> {
    vec![
        parse::command(),
        sign::command(),
        route::command(),
        post::command(),
        keyx::command(),
        send::command(),
        recv::command(),
        sim::command(),
    ]
}

/// Read a whole input named on the command line: a path, or `-` for stdin.
/// A missing file is EX_NOINPUT (66); the error names the path.
pub fn read_input(path: &str) -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    if path == "-" {
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::from(e).context("stdin"))?;
    } else {
        buf = std::fs::read(path).map_err(|e| Failure::from(e).context(path))?;
    }
    Ok(buf)
}

/// Like [`read_input`], but reading stops past `max` bytes: a larger input is refused as
/// malformed (65) having held at most `max` + 1 bytes of it. `limit` names the limit.
pub fn read_input_limited(path: &str, max: usize, limit: &str) -> Result<Vec<u8>, Failure> {
    let take = (max as u64).saturating_add(1);
    let mut buf = Vec::new();
    let r = if path == "-" {
        std::io::stdin().lock().take(take).read_to_end(&mut buf)
    } else {
        std::fs::File::open(path)
            .map_err(|e| Failure::from(e).context(path))?
            .take(take)
            .read_to_end(&mut buf)
    };
    r.map_err(|e| Failure::from(e).context(input_name(path)))?;
    if buf.len() > max {
        return Err(Failure::data(format!(
            "{}: more than {max} bytes ({limit}): refused without reading the rest",
            input_name(path)
        )));
    }
    Ok(buf)
}

/// Like [`read_input`], but an empty input is EX_NOINPUT too ("no message to read").
pub fn read_message_input(path: &str) -> Result<Vec<u8>, Failure> {
    read_message_input_limited(path, usize::MAX)
}

/// [`read_message_input`] that stops reading past `max` bytes (the A2 size limit).
pub fn read_message_input_limited(path: &str, max: usize) -> Result<Vec<u8>, Failure> {
    let buf = if max == usize::MAX {
        read_input(path)?
    } else {
        read_input_limited(path, max, "--max-size")?
    };
    if buf.is_empty() {
        return Err(Failure::no_input(format!(
            "{}: empty input: no message",
            input_name(path)
        )));
    }
    Ok(buf)
}

/// How errors name an input: the path, or `stdin` for `-`.
pub fn input_name(path: &str) -> &str {
    if path == "-" {
        "stdin"
    } else {
        path
    }
}

/// Parse the command line of `P`. On `--help`/`--version` print them and return Err(0);
/// on a usage error print clap's message on stderr and return Err(64).
pub fn parse_args<P: clap::Parser>() -> Result<P, ExitCode> {
    P::try_parse().map_err(|e| {
        let _ = e.print();
        ExitCode::from(if e.use_stderr() {
            exit::USAGE
        } else {
            exit::OK
        })
    })
}

/// Every tool's `main`: parse the command line of `A` ([`parse_args`]: 0 after `--help` and
/// `--version`, 64 on a usage error), send diagnostics to the sink `log_sink` picks from the
/// arguments (usually `--log`; None keeps the default), then run `body` under [`run_tool`].
pub fn main_with<A>(
    tool: &str,
    log_sink: impl FnOnce(&A) -> Option<crate::log::Sink>,
    body: impl FnOnce(A) -> Result<u8, Failure> + std::panic::UnwindSafe,
) -> ExitCode
where
    A: clap::Parser + std::panic::UnwindSafe,
{
    let args = match parse_args::<A>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    if let Some(sink) = log_sink(&args) {
        crate::log::set_sink(sink);
    }
    run_tool(tool, move || body(args))
}

/// Run a tool's body, print its failure on stderr as `tool: message`, and turn every
/// outcome, a panic included, into a sysexits code. A panic becomes 70 (EX_SOFTWARE),
/// never Rust's 101; a broken pipe on stdout (`cmr-parse ... | head`) ends quietly.
pub fn run_tool<F>(tool: &str, body: F) -> ExitCode
where
    F: FnOnce() -> Result<u8, Failure> + std::panic::UnwindSafe,
{
    let tool_name = tool.to_string();
    std::panic::set_hook(Box::new(move |info| {
        crate::log::error(&format!("{tool_name}: internal error: {info}"));
    }));
    let code = match std::panic::catch_unwind(body) {
        Ok(Ok(code)) => code,
        Ok(Err(f)) => {
            if f.code == exit::IOERR && f.message.contains("Broken pipe") {
                return ExitCode::from(exit::OK);
            }
            crate::log::error(&format!("{tool}: {}", f.message));
            f.code
        }
        Err(_) => exit::SOFTWARE,
    };
    ExitCode::from(code)
}

/// The sink named by a `--log` option, if given.
pub fn log_option(log: &Option<String>) -> Option<crate::log::Sink> {
    log.as_deref().map(crate::log::Sink::parse)
}

/// The A2 checking rules as command-line options, for every tool that reads messages.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RuleArgs {
    /// Largest message accepted, in bytes (signature line, header and body)
    #[arg(long, value_name = "BYTES")]
    pub max_size: Option<usize>,
    /// Most message IDs accepted in a routing header
    #[arg(long, value_name = "N")]
    pub max_header_lines: Option<usize>,
    /// Accept timestamps up to SECS seconds ahead of the clock (peers with fast clocks)
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub skew: u32,
    /// Use TIMESTAMP (YYYY/MM/DD HH:MM:SS[.S*], UTC) as the current time for the
    /// not-in-the-future rule
    #[arg(long, value_name = "TIMESTAMP", value_parser = parse_timestamp)]
    pub now: Option<Timestamp>,
    /// An address of the recipient: A2 forbids it in the header (repeatable)
    #[arg(long, value_name = "ADDRESS")]
    pub own: Vec<String>,
}

impl RuleArgs {
    pub fn rules(&self) -> Rules {
        let d = Limits::default();
        Rules {
            limits: Limits {
                max_message_bytes: self.max_size.unwrap_or(d.max_message_bytes),
                max_header_lines: self.max_header_lines.unwrap_or(d.max_header_lines),
                ..d
            },
            now: match &self.now {
                Some(t) => Now::Fixed(t.clone()),
                None => Now::System,
            },
            skew_secs: self.skew,
            own_addresses: self.own.iter().map(|a| a.as_bytes().to_vec()).collect(),
        }
    }
}

/// clap value parser for an A2 timestamp.
pub fn parse_timestamp(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse(s.as_bytes()).map_err(|(d, at)| format!("byte {at}: {d}"))
}

/// Bytes shown as text: printable ASCII as is, everything else escaped (`\r`, `\n`, `\t`,
/// `\\`, `\xNN`), valid UTF-8 beyond ASCII kept. Quotes are escaped when `quote` is set.
pub fn escape(b: &[u8], quote: bool) -> String {
    let mut s = String::with_capacity(b.len());
    let mut rest = b;
    while !rest.is_empty() {
        let (good, bad) = match std::str::from_utf8(rest) {
            Ok(v) => (v, &[][..]),
            Err(e) => {
                let (g, b) = rest.split_at(e.valid_up_to());
                (std::str::from_utf8(g).unwrap_or_default(), b)
            }
        };
        for c in good.chars() {
            match c {
                '\r' => s.push_str("\\r"),
                '\n' => s.push_str("\\n"),
                '\t' => s.push_str("\\t"),
                '\\' => s.push_str("\\\\"),
                '"' if quote => s.push_str("\\\""),
                c if c.is_control() && (c as u32) < 0x80 => {
                    s.push_str(&format!("\\x{:02x}", c as u32))
                }
                c if c.is_control() => s.push_str(&format!("\\u{{{:04x}}}", c as u32)),
                c => s.push(c),
            }
        }
        if let Some((&x, tail)) = bad.split_first() {
            s.push_str(&format!("\\x{x:02x}"));
            rest = tail;
        } else {
            rest = &[];
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_ex_software() {
        let code = run_tool("t", || panic!("boom"));
        assert_eq!(
            format!("{code:?}"),
            format!("{:?}", ExitCode::from(exit::SOFTWARE))
        );
    }
}
