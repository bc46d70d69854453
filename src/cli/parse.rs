//! `cmr-parse`: validate A2 messages and show their parts.

use super::{escape, input_name, read_message_input, RuleArgs};
use crate::exit::{self, Failure};
use crate::wire::{self, Message, ReadError, Reader, Signature};
use base64::Engine as _;
use clap::{CommandFactory, Parser, ValueEnum};
use serde::Serialize;
use std::io::{self, BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const ABOUT: &str = "Validate a CMR message (A2 format) and show its parts";

const LONG_ABOUT: &str = "\
Validate one CMR message (Appendix A2 of the spec) from FILE or standard input and print \
a summary: signature status, the routing header's message IDs (newest first; the first \
line is the immediate sender, the last the origin), the body length and a preview of the \
body. With --stream, validate and split a stream of concatenated messages.

Signatures are not checked here (that needs the peer's key): see cmr-sign --verify.";

const EXAMPLES: &str = "\
Examples:
  cmr-parse message.msg                      summary of one message
  cmr-parse --json < message.msg             the same as JSON
  cmr-parse --field body message.msg         the body, raw
  cmr-parse --field ids message.msg          one message ID per line, newest first
  cat a.msg b.msg | cmr-parse --stream       one summary line per message
  cmr-parse --split out/ spool.msgs          write out/000001.msg, out/000002.msg, ...
  cmr-parse --now '2008/09/01 00:01:00' old.msg

Exit status: 0 valid, 65 malformed (the error names the line and byte offset),
66 no input (missing file or empty input), 64 usage error.";

/// One part of a message, for `--field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Field {
    /// The creator's address (the last header line), with a newline
    Origin,
    /// The immediate sender's address (the first header line), with a newline
    Sender,
    /// Every message ID (`TIMESTAMP ADDRESS`), newest first, one per line
    Ids,
    /// The body, raw bytes, nothing added
    Body,
    /// The signature line without CR LF: `0`, or `1` and 64 hex digits
    Signature,
    /// The body length in bytes, with a newline
    Length,
    /// The routing header lines as on the wire (CR LF each, without the blank line)
    Header,
}

#[derive(Parser, Debug)]
#[command(
    name = "cmr-parse",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES
)]
pub struct Args {
    /// Message file, or - for standard input
    #[arg(value_name = "FILE", default_value = "-")]
    pub file: String,
    /// Print JSON instead of the readable summary (one object per line with --stream)
    #[arg(long, conflicts_with = "field")]
    pub json: bool,
    /// Print only one part of the message, raw
    #[arg(long, value_enum, value_name = "NAME")]
    pub field: Option<Field>,
    /// Read a stream of concatenated messages; print one summary line (or JSON line) each
    #[arg(long, conflicts_with = "field")]
    pub stream: bool,
    /// With --stream: also write each message to DIR/NNNNNN.msg (000001 first);
    /// implies --stream
    #[arg(long, value_name = "DIR", conflicts_with = "field")]
    pub split: Option<PathBuf>,
    #[command(flatten)]
    pub rules: RuleArgs,
}

pub fn command() -> clap::Command {
    Args::command()
}

pub fn main() -> ExitCode {
    super::main_with("cmr-parse", |_: &Args| None, |args| run(&args))
}

/// The tool's work, for callers that already hold parsed arguments.
pub fn run(args: &Args) -> Result<u8, Failure> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if args.stream || args.split.is_some() {
        stream(args, &mut out)?;
    } else {
        let buf = read_message_input(&args.file)?;
        let msg = wire::parse(&buf, &args.rules.rules())
            .map_err(|e| Failure::data(format!("{}: {e}", input_name(&args.file))))?;
        match args.field {
            Some(f) => write_field(&mut out, &msg, f)?,
            None if args.json => {
                let j = JsonMessage::new(&msg);
                serde_json::to_writer_pretty(&mut out, &j).map_err(io::Error::from)?;
                out.write_all(b"\n")?;
            }
            None => write_summary(&mut out, &msg)?,
        }
    }
    out.flush()?;
    Ok(exit::OK)
}

fn stream(args: &Args, out: &mut impl Write) -> Result<(), Failure> {
    let input: Box<dyn BufRead> = if args.file == "-" {
        Box::new(io::stdin().lock())
    } else {
        let f = std::fs::File::open(&args.file)
            .map_err(|e| Failure::from(e).context(input_name(&args.file)))?;
        Box::new(io::BufReader::with_capacity(1 << 16, f))
    };
    if let Some(dir) = &args.split {
        std::fs::create_dir_all(dir).map_err(|e| Failure::from(e).context(dir.display()))?;
    }
    let mut reader = Reader::new(input, args.rules.rules());
    let mut n = 0usize;
    loop {
        let offset = reader.offset();
        let msg = match reader.next_message() {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(ReadError::Parse(e)) => {
                out.flush()?;
                return Err(Failure::data(format!("{}: {e}", input_name(&args.file))));
            }
            Err(ReadError::Io(e)) => {
                out.flush()?;
                return Err(Failure::from(e).context(input_name(&args.file)));
            }
        };
        n += 1;
        let file = match &args.split {
            Some(dir) => {
                let p = dir.join(format!("{n:06}.msg"));
                write_file(&p, &msg)?;
                Some(p)
            }
            None => None,
        };
        if args.json {
            let mut j = JsonMessage::new(&msg);
            j.index = Some(n);
            j.offset = Some(offset);
            j.file = file.as_ref().map(|p| p.display().to_string());
            serde_json::to_writer(&mut *out, &j).map_err(io::Error::from)?;
            out.write_all(b"\n")?;
        } else {
            write_line(out, n, offset, &msg, file.as_deref())?;
        }
    }
    if n == 0 {
        return Err(Failure::no_input(format!(
            "{}: empty input: no message",
            input_name(&args.file)
        )));
    }
    Ok(())
}

fn write_file(p: &Path, msg: &Message) -> Result<(), Failure> {
    let mut f = std::fs::File::create(p).map_err(|e| Failure::from(e).context(p.display()))?;
    msg.write_to(&mut f)
        .and_then(|_| f.flush())
        .map_err(|e| Failure::from(e).context(p.display()))
}

fn sig_text(s: &Signature) -> String {
    match s {
        Signature::Unsigned => "unsigned".into(),
        Signature::Signed(h) => format!("signed {}", wire::hex(h)),
    }
}

/// The readable summary of one message.
pub fn write_summary(out: &mut impl Write, m: &Message) -> io::Result<()> {
    writeln!(out, "message:   {} bytes, valid A2", m.encoded_len())?;
    writeln!(
        out,
        "signature: {}{}",
        sig_text(m.signature()),
        if m.signature().is_signed() {
            " (not verified: see cmr-sign --verify)"
        } else {
            ""
        }
    )?;
    let n = m.ids().len();
    writeln!(
        out,
        "header:    {n} message ID{}, newest first",
        if n == 1 { "" } else { "s" }
    )?;
    let width = m.ids().map(|i| i.timestamp.len()).max().unwrap_or(0);
    for (i, id) in m.ids().enumerate() {
        let mut role = Vec::new();
        if i == 0 {
            role.push("sender");
        }
        if i + 1 == n {
            role.push("origin");
        }
        let role = if role.is_empty() {
            String::new()
        } else {
            format!("  ({})", role.join(", "))
        };
        writeln!(
            out,
            "  {:>3}  {:<width$}  {}{role}",
            i + 1,
            id.timestamp,
            escape(id.address, false),
        )?;
    }
    let body = m.body();
    writeln!(out, "body:      {} bytes", body.len())?;
    if !body.is_empty() {
        let (shown, more) = preview(body);
        writeln!(out, "  \"{}\"{more}", escape(shown, true))?;
    }
    Ok(())
}

/// The first ~200 bytes of a body (cut at a character boundary when the body is UTF-8).
fn preview(body: &[u8]) -> (&[u8], &'static str) {
    const MAX: usize = 200;
    if body.len() <= MAX {
        return (body, "");
    }
    // Do not cut a UTF-8 character in half: back up over continuation bytes.
    let mut cut = MAX;
    while cut > MAX - 3 && body[cut] & 0xc0 == 0x80 {
        cut -= 1;
    }
    (&body[..cut], " ...")
}

/// One summary line for `--stream`.
fn write_line(
    out: &mut impl Write,
    n: usize,
    offset: usize,
    m: &Message,
    file: Option<&Path>,
) -> io::Result<()> {
    write!(
        out,
        "msg={n} offset={offset} size={} signature={} ids={} body={} sender=\"{}\" origin=\"{}\"",
        m.encoded_len(),
        if m.signature().is_signed() {
            "signed"
        } else {
            "unsigned"
        },
        m.ids().len(),
        m.body().len(),
        escape(m.sender().address, true),
        escape(m.origin().address, true),
    )?;
    if let Some(p) = file {
        write!(
            out,
            " file=\"{}\"",
            escape(p.as_os_str().as_encoded_bytes(), true)
        )?;
    }
    writeln!(out)
}

fn write_field(out: &mut impl Write, m: &Message, f: Field) -> io::Result<()> {
    match f {
        Field::Origin => {
            out.write_all(m.origin().address)?;
            out.write_all(b"\n")
        }
        Field::Sender => {
            out.write_all(m.sender().address)?;
            out.write_all(b"\n")
        }
        Field::Ids => {
            for id in m.ids() {
                out.write_all(&id.line())?;
                out.write_all(b"\n")?;
            }
            Ok(())
        }
        Field::Body => out.write_all(m.body()),
        Field::Signature => {
            let l = m.signature().line();
            out.write_all(&l[..l.len() - 2])?;
            out.write_all(b"\n")
        }
        Field::Length => writeln!(out, "{}", m.body().len()),
        Field::Header => out.write_all(m.header_bytes()),
    }
}

/// `--json` output. Field names are stable; new fields may be added.
#[derive(Serialize, Debug)]
pub struct JsonMessage {
    /// Position in the stream (1 = first), with --stream only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Byte offset of the message in the stream, with --stream only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
    /// The file written by --split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Bytes on the wire.
    pub size: usize,
    pub signed: bool,
    /// The 64 hex digits of the signature, null when unsigned.
    pub hash: Option<String>,
    /// Message IDs, newest (the immediate sender) first.
    pub ids: Vec<JsonId>,
    pub sender: String,
    pub origin: String,
    pub body_length: usize,
    /// `utf-8` when the body is valid UTF-8 (then `body` is that text), else `base64`.
    pub body_encoding: &'static str,
    pub body: String,
}

#[derive(Serialize, Debug)]
pub struct JsonId {
    pub timestamp: String,
    /// The address (bytes that are not UTF-8 become U+FFFD).
    pub address: String,
}

impl JsonMessage {
    pub fn new(m: &Message) -> JsonMessage {
        let (body_encoding, body) = match std::str::from_utf8(m.body()) {
            Ok(s) => ("utf-8", s.to_string()),
            Err(_) => (
                "base64",
                base64::engine::general_purpose::STANDARD.encode(m.body()),
            ),
        };
        JsonMessage {
            index: None,
            offset: None,
            file: None,
            size: m.encoded_len(),
            signed: m.signature().is_signed(),
            hash: match m.signature() {
                Signature::Signed(h) => Some(wire::hex(h)),
                Signature::Unsigned => None,
            },
            ids: m
                .ids()
                .map(|i| JsonId {
                    timestamp: i.timestamp.to_string(),
                    address: i.address_str().into_owned(),
                })
                .collect(),
            sender: m.sender().address_str().into_owned(),
            origin: m.origin().address_str().into_owned(),
            body_length: m.body().len(),
            body_encoding,
            body,
        }
    }
}
