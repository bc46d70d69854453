//! The A3 router: accept or reject a message, cache it, match it, queue its forwards.
//!
//! [`receive`] runs the steps of A3 in order:
//!
//! 1. strict parse with limits (our own addresses may not appear in the header: A2);
//! 2. duplicate: "reject any message with an ID that matches an ID of another message
//!    already in the cache" (nothing is done twice; logged; not an error);
//! 3. signature: "If the message is signed, then it should compute the signature and
//!    reject it if it does not match", with the immediate sender's key and scheme;
//!    unsigned messages and signed ones from senders we hold no key for are up to policy;
//! 4. policy ("It may also reject a message for any reason"): size cap, reputation
//!    floor, per-peer and global rate windows;
//! 5. key-exchange bodies go to [`crate::keyx`] and are never cached or routed (A5.1);
//! 6. otherwise the message is cached with all its IDs, matched (A3), routed (3.2, 3.3),
//!    and every forward is queued in the outbox.
//!
//! Steps 2 to 6 commit in ONE write transaction: a message is cached together with every
//! forward it causes, or not at all. The exact scoring (compression) runs before the
//! write lock is taken, on a snapshot; what it decided is re-checked under the lock.
//!
//! Failed signatures never touch the peer whose address the message claims (anyone can
//! write that address): they are counted against the transport (`counters`, scope
//! `via:<transport>`). Peer counters and reputation move only for verified messages.

pub mod forward;
pub mod matching;
pub mod post;

use crate::exit::{self, Failure};
use crate::sign;
use crate::state::{self, cache, log as dlog, peers, settings::Settings, State};
use crate::wire::{self, Message, ReadError};
use matching::Matcher;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// How a message reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Mail,
    Http,
    Https,
    Udp,
    Ssh,
    /// A local shell pipe.
    Pipe,
    /// Our own client (cmr-post).
    Local,
}

impl Transport {
    /// True when the channel itself is confidential and authenticated (A5.3 clear keys).
    pub fn is_secure(&self) -> bool {
        matches!(self, Transport::Https | Transport::Ssh)
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Transport::Mail => "mail",
            Transport::Http => "http",
            Transport::Https => "https",
            Transport::Udp => "udp",
            Transport::Ssh => "ssh",
            Transport::Pipe => "pipe",
            Transport::Local => "local",
        }
    }
    pub const ALL: [Transport; 7] = [
        Transport::Mail,
        Transport::Http,
        Transport::Https,
        Transport::Udp,
        Transport::Ssh,
        Transport::Pipe,
        Transport::Local,
    ];
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let l = s.to_ascii_lowercase();
        Transport::ALL
            .iter()
            .find(|t| t.as_str() == l || (l == "smtp" && **t == Transport::Mail))
            .copied()
            .ok_or_else(|| {
                format!(
                    "unknown transport '{s}' (expected mail, http, https, udp, ssh, pipe or local)"
                )
            })
    }
}

impl Serialize for Transport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Options for [`receive`].
#[derive(Debug, Clone, Default)]
pub struct RouteOptions {
    /// Decide and report, then roll back: nothing is stored (not even the log row).
    pub dry_run: bool,
    /// The transport authenticated the sender as this address (e.g. an SSH forced command
    /// per peer): an unsigned message whose immediate sender is this address counts as
    /// verified, and an unsigned key-exchange message from it is handled even when we hold
    /// a key for it (see `keyx::handle`). A signed message must still verify.
    pub authenticated_sender: Option<String>,
}

/// What happened to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    #[default]
    Accepted,
    /// Already in the cache (A3): nothing done.
    Duplicate,
    /// Rejected per A3; the reason says why.
    Rejected,
    /// A key-exchange control message handed to keyx (never cached or routed).
    KeyExchange,
    /// Created by our own client and added to the pool (cmr-post).
    Posted,
}

/// A peer's routing score (lower = closer).
#[derive(Debug, Clone, Serialize)]
pub struct PeerScore {
    pub peer: String,
    pub score: f64,
}

/// A cached message the new one matched (A3).
#[derive(Debug, Clone, Serialize)]
pub struct Matched {
    pub cache_id: i64,
    pub score: f64,
    pub origin: String,
    pub sender: String,
}

/// One forward the router decided.
#[derive(Debug, Clone, Serialize)]
pub struct Forward {
    pub dest: String,
    /// `x` (the new message), `y` (a matched cached message) or `z` (3.2 compensatory reply).
    pub what: &'static str,
    pub cache_id: i64,
    pub why: String,
    /// The outbox row; None when the key exchange holds the forward until a key is agreed.
    pub outbox_id: Option<i64>,
    /// Held by the key exchange (first contact): it queues the forward itself later.
    pub held: bool,
    pub timestamp: Option<String>,
    pub signed: bool,
}

/// The router's decision on one message (`--json` prints it).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Decision {
    pub outcome: Outcome,
    /// True when the message was cached (accepted or posted) or handled by the key exchange.
    pub accepted: bool,
    /// Why it was rejected (or a note on a duplicate).
    pub reason: Option<String>,
    /// Stable reason name: `malformed:<defect>`, `signature`, `unsigned`,
    /// `unsigned-from-keyed-peer`, `unknown-signer`, `size`, `reputation`, `rate-peer`,
    /// `rate-global`, `key-exchange`, `duplicate`.
    pub reason_code: Option<String>,
    /// The exit code `--strict` uses: 0, 65 (malformed) or 77 (signature or policy).
    pub strict_exit: u8,
    pub via: Option<Transport>,
    pub sender: Option<String>,
    /// The creator line (the message's ID as its creator wrote it).
    pub message_id: Option<String>,
    pub header_lines: usize,
    pub body_bytes: usize,
    pub signed: bool,
    pub verified: bool,
    pub cache_id: Option<i64>,
    pub duplicate_of: Option<i64>,
    pub matcher: Option<String>,
    pub scores: Vec<PeerScore>,
    pub best_peer: Option<String>,
    pub matched: Vec<Matched>,
    pub forwards: Vec<Forward>,
    pub notes: Vec<String>,
}

impl Decision {
    fn reject(&mut self, code: &str, reason: impl Into<String>, strict_exit: u8) {
        self.outcome = Outcome::Rejected;
        self.accepted = false;
        self.reason_code = Some(code.to_string());
        self.reason = Some(reason.into());
        self.strict_exit = strict_exit;
    }
    fn describe(&mut self, msg: &Message) {
        self.sender = Some(msg.sender().address_str().into_owned());
        self.message_id = Some(String::from_utf8_lossy(&msg.origin().line()).into_owned());
        self.header_lines = msg.ids().len();
        self.body_bytes = msg.body().len();
        self.signed = msg.signature().is_signed();
    }
}

/// What the read-only phase worked out: the exact scoring, done before the write lock.
#[derive(Default)]
pub(crate) struct Plan {
    pub related: Vec<(i64, f64)>,
    pub scores: Vec<(String, f64)>,
    /// 3.2 compensatory reply candidates per peer (cache rows, best first).
    pub compensation: Vec<(String, Vec<i64>)>,
}

/// Load settings and refuse to run on a state file that was never initialised.
pub fn load_settings(state: &State) -> Result<Settings, Failure> {
    let s = Settings::load(state.conn())?;
    if s.own_addresses.is_empty() {
        return Err(Failure::config(format!(
            "state file {} has no address of ours: run cmr-route init --address ADDR",
            state.path().display()
        )));
    }
    Ok(s)
}

/// The whole A3 pipeline for one message (`raw` must hold exactly one).
pub fn receive(
    state: &mut State,
    raw: &[u8],
    via: Transport,
    opts: &RouteOptions,
) -> Result<Decision, Failure> {
    let settings = load_settings(state)?;
    match wire::parse(raw, &settings.rules()) {
        Ok(msg) => receive_message(state, &settings, msg, via, opts),
        Err(e) => reject_malformed(state, &e, 0, via, opts),
    }
}

/// Several concatenated messages (a stream on a pipe). The stream is split with the
/// structural rules; each message is then checked against every rule (own addresses, the
/// future), so a message refused for its content does not stop the ones after it. A message
/// whose end cannot be known (broken structure) ends the stream: its decision is the last.
pub fn receive_stream(
    state: &mut State,
    input: impl std::io::BufRead,
    via: Transport,
    opts: &RouteOptions,
) -> Result<Vec<Decision>, Failure> {
    let settings = load_settings(state)?;
    let strict = settings.rules();
    let structural = wire::Rules {
        now: wire::Now::Unchecked,
        own_addresses: Vec::new(),
        ..strict.clone()
    };
    let mut reader = wire::Reader::new(input, structural);
    let mut out = Vec::new();
    loop {
        let at = reader.offset();
        match reader.next_message() {
            Ok(None) => break,
            Ok(Some(m)) => match wire::parse(&m.encode(), &strict) {
                Ok(msg) => out.push(receive_message(state, &settings, msg, via, opts)?),
                Err(e) => out.push(reject_malformed(state, &e, at, via, opts)?),
            },
            Err(ReadError::Parse(e)) => {
                out.push(reject_malformed(state, &e, 0, via, opts)?);
                break;
            }
            Err(ReadError::Io(e)) => {
                return Err(Failure::from(e).context("reading messages"));
            }
        }
    }
    // An empty stream is zero messages (a pipe with nothing due), not a malformed one.
    Ok(out)
}

/// Log a malformed message. `at`: where the message starts in a stream, when the error's
/// line and offset count from the message rather than from the stream.
fn reject_malformed(
    state: &State,
    e: &wire::ParseError,
    at: usize,
    via: Transport,
    opts: &RouteOptions,
) -> Result<Decision, Failure> {
    let mut d = Decision {
        via: Some(via),
        ..Decision::default()
    };
    let place = if at > 0 {
        format!("message at byte {at} of the stream: ")
    } else {
        String::new()
    };
    d.reject(
        &format!("malformed:{}", e.defect.code()),
        format!("malformed message: {place}{e}"),
        exit::DATAERR,
    );
    commit(state, opts, |tx| {
        log_decision(tx, &d, None)?;
        dlog::bump(tx, &format!("via:{via}"), "malformed", 1)
    })?;
    Ok(d)
}

/// Run `f` in a write transaction, or roll it back when this is a dry run.
fn commit<T>(
    state: &State,
    opts: &RouteOptions,
    f: impl FnOnce(&rusqlite::Transaction) -> Result<T, Failure>,
) -> Result<T, Failure> {
    if !opts.dry_run {
        return state.write(f);
    }
    let tx = rusqlite::Transaction::new_unchecked(
        state.conn(),
        rusqlite::TransactionBehavior::Immediate,
    )
    .map_err(state::db_failure)?;
    let v = f(&tx)?;
    tx.rollback().map_err(state::db_failure)?;
    Ok(v)
}

fn log_decision(
    tx: &rusqlite::Transaction,
    d: &Decision,
    key: Option<&[u8]>,
) -> Result<(), Failure> {
    let outcome = serde_json::to_value(d.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let detail = serde_json::json!({
        "reason_code": d.reason_code,
        "message_id": d.message_id,
        "best_peer": d.best_peer,
        "matched": d.matched.iter().map(|m| m.cache_id).collect::<Vec<_>>(),
        "forwards": d.forwards.iter().map(|f| (&f.dest, f.what, f.cache_id)).collect::<Vec<_>>(),
    })
    .to_string();
    let via = d.via.map(|v| v.as_str());
    dlog::record(
        tx,
        &dlog::Record {
            outcome: &outcome,
            reason: d.reason.as_deref(),
            sender: d.sender.as_deref(),
            via,
            msg_key: key,
            cache_id: d.cache_id.or(d.duplicate_of),
            detail: Some(&detail),
        },
    )?;
    Ok(())
}

/// Why the addresses of `msg` cannot be kept exactly, if they cannot. A2 allows any bytes
/// but CR and LF in an address; the state file keeps addresses as text (peers, outbox
/// destinations, aliases, keys), so an address that is not UTF-8 would become another
/// address (`\xff` and `\xfe` both U+FFFD: two peers as one, a forward to an address in no
/// header), and a NUL byte would cut it short in places. Such a message is refused at
/// ingress instead (reason `address`, 65 with --strict): nothing is converted.
pub fn address_defect(msg: &Message) -> Option<String> {
    for (i, id) in msg.ids().enumerate() {
        let a = id.address;
        if let Err(e) = std::str::from_utf8(a) {
            return Some(format!(
                "address in header line {} is not UTF-8 (byte 0x{:02x} at offset {}): refused, \
                 as addresses are kept as text and would not stay exact",
                i + 1,
                a[e.valid_up_to()],
                e.valid_up_to()
            ));
        }
        if let Some(at) = a.iter().position(|&c| c == 0) {
            return Some(format!(
                "address in header line {} holds a NUL byte at offset {at}: refused, as it would \
                 not stay exact",
                i + 1
            ));
        }
    }
    None
}

/// Check the signature and the policy that needs no write lock. Returns whether the
/// message verified with the sender's key; a rejection is written into `d`.
fn check_signature(
    state: &State,
    settings: &Settings,
    msg: &Message,
    opts: &RouteOptions,
    d: &mut Decision,
) -> Result<Option<peers::Peer>, Failure> {
    if let Some(why) = address_defect(msg) {
        d.reject("address", why, exit::DATAERR);
        return Ok(None);
    }
    let sender = msg.sender().address_str().into_owned();
    let peer = peers::get(state.conn(), &sender)?;
    let key = peer
        .as_ref()
        .and_then(|p| p.key.as_ref().map(|k| (p.scheme, k)));
    let control = crate::keyx::is_control(msg.body());
    match (msg.signature().is_signed(), key) {
        (true, Some((scheme, k))) => match sign::verify(msg, scheme, k) {
            Ok(()) => d.verified = true,
            Err(e) => {
                // A message the peer signed before a key exchange replaced the key may still
                // be in flight: the replaced key verifies it during its grace period
                // (`keyx_retired_grace`). Never for key-exchange messages: those must be
                // signed with the current key (A5.1 "signed with the old keys" means the
                // key in force when the exchange starts).
                let retired = if control {
                    None
                } else {
                    crate::keyx::retired_key(state.conn(), &sender)?
                };
                match retired {
                    Some((rs, rk)) if sign::verify(msg, rs, &rk).is_ok() => {
                        d.verified = true;
                        d.notes.push(format!(
                            "signature verified with the key {sender} used before the last \
                             key exchange (retired key, within keyx_retired_grace)"
                        ));
                    }
                    _ => d.reject(
                        "signature",
                        format!("signature refused: {e} (sender {sender}, scheme {scheme})"),
                        exit::NOPERM,
                    ),
                }
            }
        },
        (true, None) => {
            if !settings.accept_unknown_signed {
                d.reject(
                    "unknown-signer",
                    format!("signed message from {sender}, for whom we hold no key (policy unknown_signed=reject)"),
                    exit::NOPERM,
                );
            }
        }
        (false, Some(_)) => {
            if opts.authenticated_sender.as_deref() == Some(sender.as_str()) {
                d.verified = true;
            } else if crate::keyx::is_provisional(state.conn(), &sender)? {
                // A key no verified message has confirmed may be a forger's (keyx::exchange):
                // the sender is treated as one we hold no key for.
                if !settings.accept_unsigned && !control {
                    d.reject(
                        "unsigned",
                        format!("unsigned message from {sender} (policy unsigned=reject)"),
                        exit::NOPERM,
                    );
                }
            } else if !control {
                // A5.1: once a key is established, messages are signed. The key exchange
                // decides for its own messages (a peer that lost its key starts over).
                d.reject(
                    "unsigned-from-keyed-peer",
                    format!(
                        "unsigned message claiming to be from {sender}, with whom we share a key"
                    ),
                    exit::NOPERM,
                );
            }
        }
        (false, None) => {
            if opts.authenticated_sender.as_deref() == Some(sender.as_str()) {
                d.verified = true;
            } else if !settings.accept_unsigned {
                d.reject(
                    "unsigned",
                    format!("unsigned message from {sender} (policy unsigned=reject)"),
                    exit::NOPERM,
                );
            }
        }
    }
    Ok(peer)
}

/// Policy checks that need no write lock: size cap and reputation floor.
fn check_static_policy(
    settings: &Settings,
    msg: &Message,
    peer: Option<&peers::Peer>,
    d: &mut Decision,
) {
    if msg.body().len() as u64 > settings.max_body_bytes {
        d.reject(
            "size",
            format!(
                "body of {} bytes exceeds max_body_bytes {}",
                msg.body().len(),
                settings.max_body_bytes
            ),
            exit::NOPERM,
        );
        return;
    }
    if let (Some(floor), Some(p)) = (settings.reputation_floor, peer) {
        if p.reputation < floor {
            d.reject(
                "reputation",
                format!(
                    "sender {} has reputation {} below the floor {floor}",
                    p.address, p.reputation
                ),
                exit::NOPERM,
            );
        }
    }
}

/// Rate windows, checked under the write lock so concurrent routers count each other.
fn check_rates(
    tx: &rusqlite::Transaction,
    settings: &Settings,
    sender: &str,
    d: &mut Decision,
) -> Result<(), Failure> {
    let (_, now) = state::now();
    if let Some(r) = settings.rate_peer {
        let n = cache::arrivals_since(tx, Some(sender), now - r.secs as f64)?;
        if n >= r.count {
            d.reject(
                "rate-peer",
                format!(
                    "{sender} sent {n} messages in the last {} s (rate_peer {}/{})",
                    r.secs, r.count, r.secs
                ),
                exit::NOPERM,
            );
            return Ok(());
        }
    }
    if let Some(r) = settings.rate_global {
        let n = cache::arrivals_since(tx, None, now - r.secs as f64)?;
        if n >= r.count {
            d.reject(
                "rate-global",
                format!(
                    "{n} messages in the last {} s (rate_global {}/{})",
                    r.secs, r.count, r.secs
                ),
                exit::NOPERM,
            );
        }
    }
    Ok(())
}

/// The read-only part of matching and routing for `msg` (no write lock held).
pub(crate) fn plan(
    state: &State,
    settings: &Settings,
    matcher: &dyn Matcher,
    msg: &Message,
) -> Result<Plan, Failure> {
    let conn = state.conn();
    let body = msg.body();
    let mut p = Plan {
        related: matcher
            .related(conn, body, settings.match_k as usize)?
            .into_iter()
            .filter(|(_, s)| *s <= settings.match_threshold)
            .collect(),
        ..Plan::default()
    };
    // One candidate per peer: an alias's messages are its peer's context.
    let mut candidates: Vec<String> = Vec::new();
    for a in peers::recent(conn, settings.max_peers_scored as usize)? {
        let p = settings.peer_of(&a).to_string();
        if !settings.is_own(p.as_bytes())
            && settings.client_address.as_deref() != Some(&p)
            && !candidates.contains(&p)
        {
            candidates.push(p);
        }
    }
    p.scores = matcher.peer_scores(conn, body, &candidates)?;
    p.scores
        .sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    // 3.2: a selected peer that is one of X's senders gets a compensatory reply instead.
    for (peer, _) in selected_peers(settings, &p.scores) {
        if settings.peer_in_header(msg, &peer) {
            let c = compensation_candidates(conn, settings, matcher, msg, &peer)?;
            p.compensation.push((peer, c));
        }
    }
    Ok(p)
}

/// 3.2/3.3: the best peer, and the others within `margin` of it, if the best is within
/// `distance_threshold`.
fn selected_peers(settings: &Settings, scores: &[(String, f64)]) -> Vec<(String, f64)> {
    let Some((_, best)) = scores.first() else {
        return Vec::new();
    };
    if *best > settings.distance_threshold {
        return Vec::new();
    }
    scores
        .iter()
        .filter(|(_, s)| *s <= best + settings.margin && *s <= settings.distance_threshold)
        .cloned()
        .collect()
}

/// 3.2 compensatory reply: "for each message Zj in Alice's cache where Bob is not one of
/// the senders, Alice computes Dj = D(Zj, Z_{i≠j}) - D(X, Zj) and reply with Zj that
/// maximizes Dj."
///
/// Bounded approximation: the candidates are the shortlist of cached messages related to X
/// (at most 16), without Bob in their headers. D(Zj, rest of cache) (what Zj costs Alice to
/// keep, as it is not redundant with her cache) is approximated by C(Zj), and D(X, Zj) by
/// the cost of Zj given Bob's context ("Alice can concatenate other messages from Bob to
/// X"): Dj ≈ C(Zj) - C(Zj | Bob), what Bob saves on Zj ([`Matcher::reply_gains`]: his
/// peer model for the native engine, his most recent 8 KB followed by X for the
/// general-purpose compressors). Best first.
fn compensation_candidates(
    conn: &rusqlite::Connection,
    settings: &Settings,
    matcher: &dyn Matcher,
    x: &Message,
    peer: &str,
) -> Result<Vec<i64>, Failure> {
    let short = matcher.related(conn, x.body(), 16)?;
    let mut ids = Vec::new();
    let mut bodies = Vec::new();
    for (id, _) in short {
        let Some(z) = cache::get(conn, id)? else {
            continue;
        };
        let zm = z.message()?;
        if settings.peer_in_header(&zm, peer) {
            continue; // Bob is one of its senders
        }
        ids.push(id);
        bodies.push(zm.body().to_vec());
    }
    let zs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
    let gains = matcher.reply_gains(conn, peer, x.body(), &zs)?;
    let mut scored: Vec<(i64, f64)> = ids.into_iter().zip(gains).collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(scored.into_iter().map(|(i, _)| i).collect())
}

/// The whole pipeline for a parsed message.
pub fn receive_message(
    state: &mut State,
    settings: &Settings,
    msg: Message,
    via: Transport,
    opts: &RouteOptions,
) -> Result<Decision, Failure> {
    let mut d = Decision {
        via: Some(via),
        ..Decision::default()
    };
    d.describe(&msg);
    let sender = msg.sender().address_str().into_owned();
    let key = msg.origin().key();
    let matcher = matching::from_settings(settings)?;
    d.matcher = Some(matcher.name());

    // Cheap checks first, without the write lock, in one read snapshot.
    let control = crate::keyx::is_control(msg.body());
    let plan = state.read(|conn| {
        let dup = cache::find_duplicate(conn, &msg)?;
        if dup.is_none() {
            let peer = check_signature(state, settings, &msg, opts, &mut d)?;
            if d.outcome != Outcome::Rejected {
                check_static_policy(settings, &msg, peer.as_ref(), &mut d);
            }
        }
        if dup.is_none() && d.outcome != Outcome::Rejected && !control {
            plan(state, settings, matcher.as_ref(), &msg)
        } else {
            Ok(Plan::default())
        }
    })?;

    commit(state, opts, |tx| {
        // A3 duplicate, again under the lock: another process may have cached it meanwhile.
        if let Some((id, row)) = cache::find_duplicate(tx, &msg)? {
            d = Decision {
                outcome: Outcome::Duplicate,
                reason_code: Some("duplicate".into()),
                reason: Some(if row == 0 {
                    format!("message ID {id} was seen before (a key-exchange message, not kept)")
                } else {
                    format!("message ID {id} is already in the cache (row {row})")
                }),
                duplicate_of: Some(row),
                verified: false,
                ..d.clone()
            };
            log_decision(tx, &d, Some(&key))?;
            return Ok(());
        }
        if d.verified && msg.signature().is_signed() {
            // Key confirmation: a provisional key that verified a message is established.
            crate::keyx::confirm(tx, &sender)?;
        }
        if d.outcome != Outcome::Rejected {
            check_rates(tx, settings, &sender, &mut d)?;
        }
        if d.outcome == Outcome::Rejected {
            log_decision(tx, &d, Some(&key))?;
            if d.reason_code.as_deref() == Some("signature")
                || d.reason_code.as_deref() == Some("unsigned-from-keyed-peer")
            {
                // Section 4: a failed signature is not the claimed peer's doing.
                dlog::bump(tx, &format!("via:{via}"), "bad_signature", 1)?;
            } else if d.verified {
                peers::note_rejected_verified(tx, &sender)?;
            } else {
                dlog::bump(tx, &format!("via:{via}"), "rejected_unverified", 1)?;
            }
            return Ok(());
        }
        if control {
            // A5: key exchange; never cached or routed. A refusal leaves nothing behind.
            tx.execute_batch("SAVEPOINT keyx")
                .map_err(state::db_failure)?;
            // The transport authenticated this very peer (an SSH forced command per peer):
            // the key exchange may take an unsigned control message from a keyed peer.
            let authenticated = opts.authenticated_sender.as_deref() == Some(sender.as_str());
            match crate::keyx::handle(tx, &msg, &sender, via, authenticated) {
                Ok(outcome) => {
                    tx.execute_batch("RELEASE keyx")
                        .map_err(state::db_failure)?;
                    // The body is not kept, but its IDs are (cache row 0: none), so a replay
                    // of the same control message is a duplicate and does nothing.
                    cache::remember_ids(tx, &msg)?;
                    d.outcome = Outcome::KeyExchange;
                    d.accepted = true;
                    d.notes.push(format!("key exchange: {outcome:?}"));
                }
                Err(f) if f.is_transient() => return Err(f),
                Err(f) => {
                    tx.execute_batch("ROLLBACK TO keyx; RELEASE keyx")
                        .map_err(state::db_failure)?;
                    d.reject("key-exchange", f.message.clone(), f.code);
                }
            }
            log_decision(tx, &d, Some(&key))?;
            return Ok(());
        }
        let id = accept(
            tx,
            settings,
            matcher.as_ref(),
            &msg,
            &sender,
            via,
            false,
            &plan,
            &mut d,
        )?;
        if !d.verified {
            dlog::bump(tx, &format!("via:{via}"), "accepted_unverified", 1)?;
        }
        peers::note_accepted(tx, &sender, id, d.verified)?;
        log_decision(tx, &d, Some(&key))?;
        Ok(())
    })?;
    if d.outcome == Outcome::Rejected {
        crate::log::info(&format!(
            "rejected message from {} via {via}: {}",
            d.sender.as_deref().unwrap_or("?"),
            d.reason.as_deref().unwrap_or("")
        ));
    }
    Ok(d)
}

/// Cache `msg`, let the matcher learn it, and queue its forwards (A3, 3.2, 3.3).
#[allow(clippy::too_many_arguments)]
pub(crate) fn accept(
    tx: &rusqlite::Transaction,
    settings: &Settings,
    matcher: &dyn Matcher,
    msg: &Message,
    sender: &str,
    via: Transport,
    client: bool,
    plan: &Plan,
    d: &mut Decision,
) -> Result<i64, Failure> {
    let id = cache::insert(tx, msg, sender, via.as_str(), client, d.verified)?;
    // An alias's messages teach its peer's context.
    matcher.learn(tx, id, settings.peer_of(sender), msg.body())?;
    d.cache_id = Some(id);
    d.accepted = true;
    d.outcome = if client {
        Outcome::Posted
    } else {
        Outcome::Accepted
    };
    d.scores = plan
        .scores
        .iter()
        .map(|(p, s)| PeerScore {
            peer: p.clone(),
            score: *s,
        })
        .collect();
    d.best_peer = plan.scores.first().map(|(p, _)| p.clone());

    let max = settings.max_forwards as usize;
    let queue = |d: &mut Decision,
                 what: &'static str,
                 m: &Message,
                 mid: i64,
                 dest: &str,
                 why: String|
     -> Result<bool, Failure> {
        if d.forwards.len() >= max {
            return Ok(false);
        }
        // Never to us, never to an address (or another address of a peer) already in the
        // forwarded message's header.
        if settings.is_own(dest.as_bytes()) || settings.peer_in_header(m, dest) {
            return Ok(false);
        }
        let (outbox_id, b) = match forward::queue(tx, settings, m, mid, dest)? {
            forward::Queued::Queued(id, b) => (Some(id), b),
            forward::Queued::Held(b) => (None, b),
            forward::Queued::Skipped => return Ok(false),
        };
        d.forwards.push(Forward {
            dest: dest.to_string(),
            what,
            cache_id: mid,
            why,
            held: outbox_id.is_none(),
            outbox_id,
            timestamp: b.timestamp.map(|t| t.to_string()),
            signed: b.signed,
        });
        Ok(true)
    };

    // 3.2 / 3.3: route X to the best peer, and to peers within the margin of it.
    let mut selected = selected_peers(settings, &plan.scores);
    if client && selected.is_empty() && settings.post_to_best {
        // 3.1: Alice "doesn't know who might know, but knows Bob ... She asks Bob." The 3.3
        // threshold bounds what a router relays; a new post from our own client is one
        // message, and it goes at least to the best peer we know.
        if let Some(best) = plan.scores.first() {
            d.notes.push(format!(
                "3.1: our client's post goes to the best peer although its score {:.4} is above distance_threshold {} (post_routing best)",
                best.1, settings.distance_threshold
            ));
            selected.push(best.clone());
        }
    }
    if !plan.scores.is_empty() && selected.is_empty() {
        d.notes.push(format!(
            "3.3: best score {:.4} is above distance_threshold {}: not routed to a peer",
            plan.scores[0].1, settings.distance_threshold
        ));
    }
    for (peer, score) in &selected {
        if settings.peer_in_header(msg, peer) {
            // 3.2: "If Bob is one of the senders of X, then Alice should keep X rather than
            // send it back ... send a different message back to Bob".
            let cands = plan
                .compensation
                .iter()
                .find(|(p, _)| p == peer)
                .map(|(_, c)| c.as_slice())
                .unwrap_or(&[]);
            let mut sent = false;
            for &z in cands {
                let Some(row) = cache::get(tx, z)? else {
                    continue;
                };
                let zm = row.message()?;
                if queue(
                    d,
                    "z",
                    &zm,
                    z,
                    peer,
                    format!(
                        "3.2 compensatory reply: {peer} (score {score:.4}) is one of the senders"
                    ),
                )? {
                    sent = true;
                    break;
                }
            }
            if !sent {
                d.notes.push(format!(
                    "3.2: {peer} is one of the senders; no compensatory reply left to send"
                ));
            }
        } else {
            queue(
                d,
                "x",
                msg,
                id,
                peer,
                format!("3.2 routing: score {score:.4}"),
            )?;
        }
    }

    // A3: "For each message Y matched to X, it should forward X to zero or more addresses
    // that appear in the header of Y, and forward Y to zero or more addresses that appear
    // in the header of X."
    let per_match = settings.forwards_per_match as usize;
    for &(yid, score) in &plan.related {
        let Some(row) = cache::get(tx, yid)? else {
            continue;
        };
        let y = row.message()?;
        if row.client && !client {
            // A1: our client's post Y is answered by X, "posted later by other clients".
            let (now, _) = state::now();
            tx.execute(
                "INSERT OR IGNORE INTO client_inbox(post_id, cache_id, score, at) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![yid, id, score, now],
            )
            .map_err(state::db_failure)?;
        }
        d.matched.push(Matched {
            cache_id: yid,
            score,
            origin: String::from_utf8_lossy(&y.origin().line()).into_owned(),
            sender: row.sender.clone(),
        });
        // X to Y's creator first (who posted the similar message), then the routers it
        // came through, oldest first.
        let y_addrs: Vec<String> = y
            .ids()
            .map(|i| i.address_str().into_owned())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let mut n = 0;
        for a in &y_addrs {
            if n >= per_match {
                break;
            }
            if queue(
                d,
                "x",
                msg,
                id,
                a,
                format!("A3: matched cached message {yid} (score {score:.4})"),
            )? {
                n += 1;
            }
        }
        // Y back to everyone X passed: its creator and every router (3.1 "sending those
        // responses back to the originator as well as any peers through which X was
        // routed").
        let x_addrs: Vec<String> = msg
            .ids()
            .map(|i| i.address_str().into_owned())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        for a in &x_addrs {
            queue(
                d,
                "y",
                &y,
                yid,
                a,
                format!("A3: matched by the new message (score {score:.4})"),
            )?;
        }
    }
    if d.forwards.len() >= max {
        d.notes.push(format!("3.3: max_forwards {max} reached"));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_round_trip() {
        for t in Transport::ALL {
            assert_eq!(t.as_str().parse::<Transport>().unwrap(), t);
        }
        assert_eq!("SMTP".parse::<Transport>().unwrap(), Transport::Mail);
        assert!("carrier-pigeon".parse::<Transport>().is_err());
        assert!(Transport::Https.is_secure() && Transport::Ssh.is_secure());
        assert!(!Transport::Http.is_secure() && !Transport::Mail.is_secure());
    }

    #[test]
    fn peers_within_the_margin_of_a_good_enough_best() {
        let d = tempfile::tempdir().unwrap();
        let st = State::open(Some(&d.path().join("s"))).unwrap();
        let mut s = Settings::load(st.conn()).unwrap();
        s.distance_threshold = 0.9;
        s.margin = 0.05;
        let sc = |v: &[(&str, f64)]| -> Vec<(String, f64)> {
            v.iter().map(|(p, x)| (p.to_string(), *x)).collect()
        };
        let pick = |v: Vec<(String, f64)>| -> Vec<String> {
            selected_peers(&s, &v).into_iter().map(|(p, _)| p).collect()
        };
        assert_eq!(
            pick(sc(&[("a", 0.5), ("b", 0.54), ("c", 0.56)])),
            ["a", "b"]
        );
        assert_eq!(
            pick(sc(&[("a", 0.88), ("b", 0.92)])),
            ["a"],
            "never above the threshold"
        );
        assert!(pick(sc(&[("a", 0.91)])).is_empty());
        assert!(pick(Vec::new()).is_empty());
    }
}
