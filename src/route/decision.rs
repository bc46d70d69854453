//! The router's decision on one message: what happened and why (`--json`, `--explain`, the
//! log).

use crate::exit::Failure;
use crate::state::log as dlog;
use crate::wire::Message;
use serde::Serialize;

pub use crate::via::Transport;

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

/// A forward the relay policy refused ([`crate::contact`]).
#[derive(Debug, Clone, Serialize)]
pub struct RefusedForward {
    pub dest: String,
    pub what: &'static str,
    pub cache_id: i64,
    /// `restricted-address`, `relay-unverified`, `contact-budget-source`,
    /// `contact-budget-global`.
    pub code: &'static str,
    pub reason: String,
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
    /// Section 4 bulk posting: the cached message from the same creator this one nearly
    /// duplicates (`bulk_resemblance`); it was cached and not forwarded.
    pub near_duplicate_of: Option<i64>,
    pub matcher: Option<String>,
    pub scores: Vec<PeerScore>,
    pub best_peer: Option<String>,
    pub matched: Vec<Matched>,
    pub forwards: Vec<Forward>,
    /// Forwards the relay policy refused, with their reasons.
    pub refused: Vec<RefusedForward>,
    pub notes: Vec<String>,
}

impl Decision {
    pub(crate) fn reject(&mut self, code: &str, reason: impl Into<String>, strict_exit: u8) {
        self.outcome = Outcome::Rejected;
        self.accepted = false;
        self.reason_code = Some(code.to_string());
        self.reason = Some(reason.into());
        self.strict_exit = strict_exit;
    }
    pub(crate) fn describe(&mut self, msg: &Message) {
        self.sender = Some(msg.sender().address_str().into_owned());
        self.message_id = Some(String::from_utf8_lossy(&msg.origin().line()).into_owned());
        self.header_lines = msg.ids().len();
        self.body_bytes = msg.body().len();
        self.signed = msg.signature().is_signed();
    }
}

pub(crate) fn log_decision(
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
        "refused": d.refused.iter().map(|r| (&r.dest, r.what, r.code, &r.reason)).collect::<Vec<_>>(),
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
