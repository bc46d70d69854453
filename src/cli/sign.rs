//! `cmr-sign`: sign, re-sign, verify or strip the signature of an A2 message.

use super::{input_name, read_message_input_limited, RuleArgs};
use crate::exit::{self, Failure};
use crate::sign::{self, Key, Scheme};
use crate::wire::{self, Signature};
use clap::{CommandFactory, Parser};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const ABOUT: &str = "Sign, re-sign, verify or strip the signature of a CMR message";

const LONG_ABOUT: &str = "\
Sign (or re-sign) the CMR message in FILE or on standard input with the key shared with \
the peer that receives it, and write the signed message to standard output. The signature \
covers every byte after the signature line (routing header and body), so signing never \
changes the rest of the message.

Schemes: sha256 is the spec's SHA-256(key | header | body) (Appendix A2; the spec's \
example verifies with key \"foo\"). It is open to length extension, so the default is \
hmac-sha256, HMAC-SHA-256(key, header | body); both ends of a link must agree.

Keys: --key-hex takes hex digits (\"666f6f\" is \"foo\"). --key-file reads a file: when \
the file holds only hex digits (an even number of them), optionally followed by one \
newline (LF or CR LF), they are decoded as hex; otherwise the file's bytes are the key, \
as they are. An empty key is refused.";

const EXAMPLES: &str = "\
Examples:
  cmr-sign --key-hex 666f6f --scheme sha256 unsigned.msg > signed.msg
  cmr-sign --verify --key-file ~/.cmr/bob.key signed.msg && echo good
  cmr-sign --strip signed.msg > unsigned.msg
  cmr-sign --strip in.msg | cmr-sign --key-file carol.key > resigned.msg

Exit status: 0 done (or verified), 77 signature does not verify (or the message is
unsigned), 65 malformed message, 66 no input, 64 usage error (e.g. no key).";

#[derive(Parser, Debug)]
#[command(
    name = "cmr-sign",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES
)]
pub struct Args {
    /// Message file, or - for standard input
    #[arg(value_name = "FILE", default_value = "-")]
    pub file: String,
    /// Signature scheme: sha256 (the spec's) or hmac-sha256
    #[arg(long, value_name = "SCHEME", default_value = "hmac-sha256",
          value_parser = ["sha256", "hmac-sha256"])]
    pub scheme: String,
    /// The shared key as hex digits
    #[arg(long, value_name = "HEX", conflicts_with = "key_file")]
    pub key_hex: Option<String>,
    /// Read the shared key from PATH (hex digits, or raw bytes: see --help)
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Check the signature instead of signing: exit 0 when it matches, 77 when not
    #[arg(long, conflicts_with = "strip")]
    pub verify: bool,
    /// Write the unsigned form (signature line `0`); needs no key
    #[arg(long)]
    pub strip: bool,
    #[command(flatten)]
    pub rules: RuleArgs,
}

pub fn command() -> clap::Command {
    Args::command()
}

pub fn main() -> ExitCode {
    super::main_with("cmr-sign", |_: &Args| None, |args| run(&args))
}

/// Read the key named by `--key-hex` / `--key-file`, None when neither is given.
pub fn key_from_args(
    hex: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Option<Key>, Failure> {
    let key = match (hex, file) {
        (Some(h), _) => Key::from_hex(h).map_err(|e| Failure::usage(format!("--key-hex: {e}")))?,
        (None, Some(p)) => {
            let raw = std::fs::read(p).map_err(|e| Failure::from(e).context(p.display()))?;
            key_from_file_bytes(raw).map_err(|e| e.context(p.display()))?
        }
        (None, None) => return Ok(None),
    };
    if key.bytes().is_empty() {
        return Err(Failure::usage("the key is empty"));
    }
    Ok(Some(key))
}

/// The key-file rule: only hex digits (an even number), optionally followed by one LF or
/// CR LF, are decoded as hex; anything else is the key as raw bytes.
pub fn key_from_file_bytes(raw: Vec<u8>) -> Result<Key, Failure> {
    let digits = raw
        .strip_suffix(b"\r\n")
        .or_else(|| raw.strip_suffix(b"\n"))
        .unwrap_or(&raw);
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_hexdigit) {
        if digits.len() % 2 != 0 {
            return Err(Failure::usage("key file holds an odd number of hex digits"));
        }
        let s = std::str::from_utf8(digits).unwrap_or_default();
        return Key::from_hex(s).map_err(Failure::usage);
    }
    Ok(Key::new(raw))
}

pub fn run(args: &Args) -> Result<u8, Failure> {
    let scheme: Scheme = args.scheme.parse().map_err(Failure::usage)?;
    let key = key_from_args(args.key_hex.as_deref(), args.key_file.as_deref())?;
    if key.is_none() && !args.strip {
        return Err(Failure::usage(
            "a key is required: --key-hex HEX or --key-file PATH (or use --strip)",
        ));
    }
    let rules = args.rules.rules();
    let buf = read_message_input_limited(&args.file, rules.limits.max_message_bytes)?;
    let msg = wire::parse(&buf, &rules)
        .map_err(|e| Failure::data(format!("{}: {e}", input_name(&args.file))))?;
    let out = match key {
        _ if args.strip => msg.with_signature(Signature::Unsigned),
        Some(key) if args.verify => {
            sign::verify(&msg, scheme, &key).map_err(|e| {
                Failure::perm(format!(
                    "{}: signature refused ({scheme}): {e}",
                    input_name(&args.file)
                ))
            })?;
            return Ok(exit::OK);
        }
        Some(key) => sign::sign(msg, scheme, &key),
        None => return Err(Failure::usage("a key is required")),
    };
    let stdout = io::stdout();
    let mut w = stdout.lock();
    out.write_to(&mut w)?;
    w.flush()?;
    Ok(exit::OK)
}
