//! `cmr-keyx`: key exchange with a peer (A5: RSA, Diffie-Hellman, clear keys) and key
//! management.

use crate::exit::{self, Failure};
use crate::keyx::db;
use crate::keyx::dh::Group;
use crate::keyx::exchange::{self, Start, Store};
use crate::keyx::rsa::KeyPair;
use crate::keyx::{Derive, Method};
use crate::route::Transport;
use crate::sign::{Key, Scheme};
use crate::state::{peers, settings, State};
use crate::wire::Message;
use clap::{ArgGroup, CommandFactory, Parser, Subcommand};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const ABOUT: &str =
    "Key exchange with a CMR peer (RSA, Diffie-Hellman, clear keys) and key management";

const LONG_ABOUT: &str = "\
Establish the key shared with one peer (Appendix A5) and manage keys. `init` writes a key \
exchange request for PEER into the outbox (or prints it with --print). The peer's router \
answers through its outbox; replies (and requests from peers) arrive through cmr-route or \
cmr-recv like any other message and are handled there, inside the router's transaction. \
Control messages are never cached or routed.

Methods: --rsa sends a one-time RSA public key (A5.1: the peer replies with c = k^e mod n); \
--dh sends g, p and A = g^a mod p in an RFC 3526 MODP group (A5.2); --clear sends a key \
directly and is allowed only over HTTPS or SSH (A5.3). With no key yet both messages are \
unsigned; with a key they are signed with the old key and the new key takes effect on the \
next message (A5.1).

Derivation (both peers must agree): hardened (default) turns the exchanged secret into a \
32-byte key with HKDF-SHA-256 bound to both addresses; spec uses the secret's bytes as they \
are, for peers that implement only A5. The signature scheme (hmac-sha256 or sha256) is a \
separate per-peer choice.";

const EXAMPLES: &str = "\
Examples:
  cmr-keyx init http://bob.example/cmr --dh            # request queued in the outbox
  cmr-keyx init http://bob.example/cmr --rsa --print | ssh bob cmr-route --via ssh -
  cmr-keyx init https://bob.example/cmr --clear        # only over https or ssh
  cmr-keyx list
  cmr-keyx show http://bob.example/cmr --json
  cmr-keyx set http://bob.example/cmr --key-hex 666f6f --scheme sha256
  cmr-keyx set http://bob.example/cmr --derive spec    # before exchanging with an A5-only peer
  cmr-keyx forget http://bob.example/cmr
  cmr-keyx spare --count 2                             # RSA key pairs for first contact
  cmr-keyx retry                                       # cron: re-ask peers with held messages
  cmr-keyx policy keyx_first_contact exchange

Exit status: 0 done, 64 usage error (e.g. a clear key over an insecure channel, or an
exchange already pending), 66 unknown peer (show), 75 state file busy (retry),
78 state file not initialised (cmr-route init --address ADDR).";

#[derive(Parser, Debug)]
#[command(
    name = "cmr-keyx",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES
)]
pub struct Args {
    /// State file (default: $CMR_STATE, else $XDG_STATE_HOME/cmr/state.sqlite)
    #[arg(long, global = true, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Print JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Where diagnostics go: stderr (default), syslog, none, or a file path
    #[arg(long, global = true, value_name = "SINK")]
    pub log: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Start a key exchange with PEER: queue (or print) the request
    #[command(group(ArgGroup::new("method").required(true).args(["rsa", "dh", "clear"])))]
    Init {
        /// The peer's address
        peer: String,
        /// A5.1: one-time RSA key pair (a spare one if kept, else generated now)
        #[arg(long)]
        rsa: bool,
        /// A5.2: Diffie-Hellman in an RFC 3526 group
        #[arg(long)]
        dh: bool,
        /// A5.3: send a key directly (HTTPS or SSH only); it takes effect at once
        #[arg(long)]
        clear: bool,
        /// DH group: 14 (2048 bits), 15 (3072) or 16 (4096); default: setting keyx_dh_group
        #[arg(long, value_name = "ID", value_parser = ["14", "15", "16"])]
        group: Option<String>,
        /// RSA modulus size in bits (2048 to 8192)
        #[arg(long, value_name = "BITS", default_value_t = 2048,
              value_parser = clap::value_parser!(u32).range(2048..=8192))]
        bits: u32,
        /// Key derivation for this peer from now on: hardened or spec
        #[arg(long, value_name = "MODE", value_parser = ["hardened", "spec"])]
        derive: Option<String>,
        /// Signature scheme for this peer: hmac-sha256 or sha256
        #[arg(long, value_name = "SCHEME", value_parser = ["hmac-sha256", "sha256"])]
        scheme: Option<String>,
        /// The clear key in hex (default: 32 random bytes)
        #[arg(long, value_name = "HEX", requires = "clear")]
        key_hex: Option<String>,
        /// The channel the request will travel (for --clear: https or ssh); default: the
        /// peer's address scheme
        #[arg(long, value_name = "TRANSPORT")]
        via: Option<String>,
        /// Print the request on standard output instead of queueing it
        #[arg(long)]
        print: bool,
        /// Replace a request that is still pending (a reply to it is then refused)
        #[arg(long)]
        replace: bool,
    },
    /// List peers with keys, exchanges, pending requests or held messages (keys are never
    /// printed)
    List,
    /// Show one peer's key-exchange state
    Show { peer: String },
    /// Set a key made outside CMR, a peer's scheme, or its derivation
    Set {
        peer: String,
        /// The key in hex
        #[arg(long, value_name = "HEX")]
        key_hex: Option<String>,
        /// Signature scheme: hmac-sha256 or sha256
        #[arg(long, value_name = "SCHEME", value_parser = ["hmac-sha256", "sha256"])]
        scheme: Option<String>,
        /// Key derivation for this peer: hardened, spec, or default (the keyx_derive setting)
        #[arg(long, value_name = "MODE", value_parser = ["hardened", "spec", "default"])]
        derive: Option<String>,
    },
    /// Forget the key, pending request and held messages for PEER
    Forget { peer: String },
    /// Start a new exchange with each peer whose held first-contact messages wait on an
    /// expired or lost request (for cron)
    Retry,
    /// Generate one-time RSA key pairs ahead of time (used by init --rsa and first contact)
    Spare {
        /// How many to add
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=100))]
        count: u32,
        /// Modulus size in bits
        #[arg(long, value_name = "BITS", default_value_t = 2048,
              value_parser = clap::value_parser!(u32).range(2048..=8192))]
        bits: u32,
    },
    /// Show or set key-exchange settings: no KEY lists them, KEY shows one, KEY VALUE sets it
    Policy {
        key: Option<String>,
        value: Option<String>,
        /// Reset KEY to its default
        #[arg(long, requires = "key", conflicts_with = "value")]
        unset: bool,
    },
}

pub fn command() -> clap::Command {
    Args::command()
}

pub fn main() -> ExitCode {
    super::main_with("cmr-keyx", |a: &Args| super::log_option(&a.log), run)
}

/// Human output: control characters from the network are shown escaped, never obeyed.
fn out(s: &str) -> Result<(), Failure> {
    out_bytes(crate::log::terminal_safe(s).as_bytes())
}

fn out_bytes(b: &[u8]) -> Result<(), Failure> {
    let mut o = std::io::stdout().lock();
    o.write_all(b)?;
    o.flush()?;
    Ok(())
}

fn print_json(v: &serde_json::Value) -> Result<(), Failure> {
    out_bytes(format!("{v}\n").as_bytes())
}

pub fn run(args: Args) -> Result<u8, Failure> {
    let st = State::open_existing(args.state.as_deref())?;
    let json = args.json;
    match args.cmd {
        Cmd::Init {
            peer,
            rsa,
            dh,
            clear,
            group,
            bits,
            derive,
            scheme,
            key_hex,
            via,
            print,
            replace,
        } => {
            let method = if rsa {
                Method::Rsa
            } else if dh {
                Method::Dh
            } else {
                debug_assert!(clear);
                Method::Clear
            };
            init(
                &st,
                &Init {
                    peer,
                    method,
                    group,
                    bits,
                    derive,
                    scheme,
                    key_hex,
                    via,
                    print,
                    replace,
                },
                json,
            )
        }
        Cmd::List => list(&st, json),
        Cmd::Show { peer } => show(&st, &peer, json),
        Cmd::Set {
            peer,
            key_hex,
            scheme,
            derive,
        } => set(&st, &peer, key_hex, scheme, derive, json),
        Cmd::Forget { peer } => forget(&st, &peer, json),
        Cmd::Retry => retry(&st, json),
        Cmd::Spare { count, bits } => spare(&st, count, bits, json),
        Cmd::Policy { key, value, unset } => policy(&st, key, value, unset, json),
    }
}

/// Forget the key and key exchange state held for `peer`.
fn forget(st: &State, peer: &str, json: bool) -> Result<u8, Failure> {
    let any = st.write(|tx| db::forget(tx, peer))?;
    if json {
        print_json(&json!({"peer": peer, "forgotten": any}))?;
    } else if any {
        out(&format!(
            "forgot the key and key exchange state for {peer}\n"
        ))?;
    } else {
        out(&format!("nothing known about {peer}\n"))?;
    }
    Ok(exit::OK)
}

/// Start a new request for each peer whose held messages wait on an expired one.
fn retry(st: &State, json: bool) -> Result<u8, Failure> {
    let started = st.write(db::retry_held)?;
    if json {
        print_json(&json!({ "started": started }))?;
    } else if started.is_empty() {
        out("no held messages wait on an expired request\n")?;
    } else {
        for p in &started {
            out(&format!("queued a new key exchange request for {p}\n"))?;
        }
    }
    Ok(exit::OK)
}

/// Generate `count` one-time RSA key pairs of `bits` bits for later requests.
fn spare(st: &State, count: u32, bits: u32, json: bool) -> Result<u8, Failure> {
    let mut made = 0;
    for _ in 0..count {
        // Generated outside the write transaction: other processes never wait for it.
        let kp = KeyPair::generate(bits as usize)?;
        st.write(|tx| db::add_spare(tx, &kp))?;
        made += 1;
    }
    let total = db::spare_count(st.conn(), None)?;
    if json {
        print_json(&json!({"added": made, "spare": total}))?;
    } else {
        out(&format!(
            "added {made} one-time RSA key pair(s) of {bits} bits; {total} kept\n"
        ))?;
    }
    Ok(exit::OK)
}

struct Init {
    peer: String,
    method: Method,
    group: Option<String>,
    bits: u32,
    derive: Option<String>,
    scheme: Option<String>,
    key_hex: Option<String>,
    via: Option<String>,
    print: bool,
    replace: bool,
}

/// Is the channel to `peer` secure (A5.3)? `--via` if given, else the peer's configured
/// transport, else its address scheme.
fn channel_secure(st: &State, peer: &str, via: Option<&str>) -> Result<(bool, String), Failure> {
    let named = match via {
        Some(v) => Some(v.to_string()),
        None => peers::get(st.conn(), peer)?.and_then(|p| p.transport),
    };
    if let Some(v) = named {
        let t: Transport = v.parse().map_err(Failure::usage)?;
        return Ok((t.is_secure(), t.as_str().to_string()));
    }
    let scheme = peer
        .split_once(':')
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    Ok((
        matches!(scheme.as_str(), "https" | "ssh"),
        if scheme.is_empty() {
            "unknown".into()
        } else {
            scheme
        },
    ))
}

fn init(st: &State, a: &Init, json: bool) -> Result<u8, Failure> {
    if a.peer.is_empty() || a.peer.contains(['\r', '\n']) {
        return Err(Failure::usage(
            "bad peer address: empty, or it holds CR or LF",
        ));
    }
    let derive: Option<Derive> = a
        .derive
        .as_deref()
        .map(|d| d.parse().map_err(Failure::usage))
        .transpose()?;
    let scheme: Option<Scheme> = a
        .scheme
        .as_deref()
        .map(|s| s.parse().map_err(Failure::usage))
        .transpose()?;
    // Slow work before the write transaction: RSA key generation.
    let generated =
        if a.method == Method::Rsa && db::spare_count(st.conn(), Some(a.bits as u64))? == 0 {
            Some(KeyPair::generate(a.bits as usize)?)
        } else {
            None
        };
    let clear = if a.method == Method::Clear {
        Some(clear_key(st, a)?)
    } else {
        None
    };
    let (msg, row, mode) = st.write(|tx| {
        if let Some(d) = derive {
            db::set_derive(tx, &a.peer, Some(d))?;
        }
        if let Some(s) = scheme {
            db::set_key(tx, &a.peer, Some(s), None)?;
        }
        let mut store = db::DbStore::new(tx)?;
        let mode = store.derive_mode(&a.peer)?;
        let start = start(tx, a, generated.as_ref(), clear.as_deref())?;
        let msg = exchange::initiate(&mut store, &a.peer, start, mode, a.replace)?;
        let row = if a.print {
            None
        } else {
            let key = msg.sender().key();
            crate::state::outbox::enqueue_for(tx, &a.peer, &msg.encode(), &key, None)?
        };
        Ok((msg, row, mode))
    })?;
    init_done(a, &msg, row, mode, json)?;
    Ok(exit::OK)
}

/// The key a clear exchange sends (--key-hex, else 32 random bytes), once the channel to the
/// peer is known to be secure (A5.3).
fn clear_key(st: &State, a: &Init) -> Result<Vec<u8>, Failure> {
    let (secure, chan) = channel_secure(st, &a.peer, a.via.as_deref())?;
    if !secure {
        return Err(Failure::usage(format!(
            "a clear key may only travel over HTTPS or SSH (A5.3), and the channel to {} \
             is {chan}; use --rsa or --dh, or --via https|ssh",
            a.peer
        )));
    }
    Ok(match &a.key_hex {
        Some(h) => Key::from_hex(h)
            .map_err(|e| Failure::usage(format!("--key-hex: {e}")))?
            .bytes()
            .to_vec(),
        None => {
            use rand::RngCore;
            let mut k = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut k);
            k
        }
    })
}

/// How the exchange starts, in the write transaction `tx`: an RSA key pair (a spare one,
/// else `generated`), a DH group, or the `clear` key.
fn start(
    tx: &rusqlite::Transaction,
    a: &Init,
    generated: Option<&KeyPair>,
    clear: Option<&[u8]>,
) -> Result<Start, Failure> {
    Ok(match a.method {
        Method::Rsa => {
            let kp = match (db::take_spare(tx, a.bits as u64)?, generated) {
                (Some(kp), _) => kp,
                (None, Some(kp)) => kp.clone(),
                // Another process took the spare we counted on: rare, generate here.
                (None, None) => KeyPair::generate(a.bits as usize)?,
            };
            Start::Rsa(kp)
        }
        Method::Dh => {
            let id: u32 = match &a.group {
                Some(g) => g.parse().unwrap_or(14),
                None => db::get_setting(tx, "keyx_dh_group")?.parse().unwrap_or(14),
            };
            Start::Dh(Group::modp(id).ok_or_else(|| Failure::usage("unknown DH group"))?)
        }
        Method::Clear => Start::Clear {
            key: clear.map(<[u8]>::to_vec).unwrap_or_default(),
            secure: true,
        },
    })
}

/// Say what `init` queued (with --print, write the message itself to standard output).
fn init_done(
    a: &Init,
    msg: &Message,
    row: Option<i64>,
    mode: Derive,
    json: bool,
) -> Result<(), Failure> {
    if a.print {
        let mut o = std::io::stdout().lock();
        msg.write_to(&mut o)?;
        o.flush()?;
    } else if json {
        print_json(&json!({
            "peer": a.peer,
            "method": a.method.label(),
            "derive": mode.as_str(),
            "signed": msg.signature().is_signed(),
            "outbox_id": row,
            "key_set": a.method == Method::Clear,
        }))?;
    } else {
        let what = match a.method {
            Method::Rsa => "RSA key exchange request",
            Method::Dh => "DH key exchange request",
            Method::Clear => "clear key (in effect from the next message)",
        };
        out(&format!(
            "queued {what} for {} ({}, derivation {mode}{})\n",
            a.peer,
            if msg.signature().is_signed() {
                "signed with the old key"
            } else {
                "unsigned: no key yet"
            },
            row.map(|r| format!(", outbox row {r}")).unwrap_or_default()
        ))?;
    }
    Ok(())
}

fn describe(s: &db::PeerStatus) -> String {
    let mut parts = vec![
        match &s.key_id {
            Some(id) if s.provisional => format!("key {id} (provisional: not yet confirmed)"),
            Some(id) => format!("key {id}"),
            None => "no key".to_string(),
        },
        s.scheme.clone(),
        format!(
            "derive {}{}",
            s.derive,
            if s.derive_set { "" } else { " (default)" }
        ),
    ];
    if let Some(p) = &s.pending {
        parts.push(format!(
            "{p} request pending{}",
            if s.pending_expired { " (expired)" } else { "" }
        ));
    }
    if s.held > 0 {
        parts.push(format!("{} held", s.held));
    }
    if let (Some(m), Some(t)) = (&s.last_method, &s.last_exchange) {
        parts.push(format!("last {m} exchange {t}"));
    }
    parts.join(", ")
}

fn list(st: &State, json: bool) -> Result<u8, Failure> {
    // A deferred (read) transaction: takes no write lock.
    let tx = st
        .conn()
        .unchecked_transaction()
        .map_err(crate::state::db_failure)?;
    let all = db::list(&tx)?;
    drop(tx);
    if json {
        print_json(&serde_json::to_value(&all).unwrap_or_default())?;
    } else if all.is_empty() {
        out("no keys and no key exchanges\n")?;
    } else {
        let mut s = String::new();
        for p in &all {
            s.push_str(&format!("{}  {}\n", p.peer, describe(p)));
        }
        out(&s)?;
    }
    Ok(exit::OK)
}

fn show(st: &State, peer: &str, json: bool) -> Result<u8, Failure> {
    let tx = st
        .conn()
        .unchecked_transaction()
        .map_err(crate::state::db_failure)?;
    let s = db::status(&tx, peer)?;
    drop(tx);
    let s = s.ok_or_else(|| Failure::no_input(format!("nothing known about peer {peer}")))?;
    if json {
        print_json(&serde_json::to_value(&s).unwrap_or_default())?;
    } else {
        out(&format!("{}  {}\n", s.peer, describe(&s)))?;
    }
    Ok(exit::OK)
}

fn set(
    st: &State,
    peer: &str,
    key_hex: Option<String>,
    scheme: Option<String>,
    derive: Option<String>,
    json: bool,
) -> Result<u8, Failure> {
    if key_hex.is_none() && scheme.is_none() && derive.is_none() {
        return Err(Failure::usage(
            "nothing to set: give --key-hex, --scheme and/or --derive",
        ));
    }
    let key = key_hex
        .as_deref()
        .map(|h| Key::from_hex(h).map_err(|e| Failure::usage(format!("--key-hex: {e}"))))
        .transpose()?;
    if key.as_ref().is_some_and(|k| k.bytes().is_empty()) {
        return Err(Failure::usage("--key-hex: the key is empty"));
    }
    let scheme: Option<Scheme> = scheme
        .as_deref()
        .map(|s| s.parse().map_err(Failure::usage))
        .transpose()?;
    let derive: Option<Option<Derive>> = match derive.as_deref() {
        None => None,
        Some("default") => Some(None),
        Some(d) => Some(Some(d.parse().map_err(Failure::usage)?)),
    };
    let status = st.write(|tx| {
        if key.is_some() || scheme.is_some() {
            db::set_key(tx, peer, scheme, key.as_ref())?;
        }
        if let Some(d) = derive {
            db::set_derive(tx, peer, d)?;
        }
        db::status(tx, peer)
    })?;
    match status {
        Some(s) if json => print_json(&serde_json::to_value(&s).unwrap_or_default())?,
        Some(s) => out(&format!("{}  {}\n", s.peer, describe(&s)))?,
        None => {}
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
            for s in db::SETTINGS {
                rows.push((s, db::get_setting(st.conn(), s.key)?));
            }
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(s, v)| json!({"key": s.key, "value": v, "default": s.default, "help": s.help}))
                    .collect();
                print_json(&serde_json::Value::Array(v))?;
            } else {
                let mut o = String::new();
                for (s, v) in rows {
                    o.push_str(&format!("{} = {}    # {}\n", s.key, v, s.help));
                }
                out(&o)?;
            }
        }
        (Some(k), None) => {
            db::validate_setting(&k, db::setting(&k).map(|s| s.default).unwrap_or(""))?;
            if unset {
                st.write(|tx| settings::unset(tx, &k))?;
            }
            let v = db::get_setting(st.conn(), &k)?;
            if json {
                print_json(&json!({"key": k, "value": v}))?;
            } else {
                out(&format!("{k} = {v}\n"))?;
            }
        }
        (Some(k), Some(v)) => {
            let v = db::validate_setting(&k, &v)?;
            st.write(|tx| settings::set_raw(tx, &k, &v))?;
            if json {
                print_json(&json!({"key": k, "value": v}))?;
            } else {
                out(&format!("{k} = {v}\n"))?;
            }
        }
    }
    Ok(exit::OK)
}
