//! The A3 forward: strip the signature, prepend our line, sign for the destination.
//!
//! "Alice removes the signature line from X ... Alice assigns X := T | " " | Alice | CR |
//! LF | X, where T is the current time ... If Alice knows the shared secret key Kab with
//! Bob, then Alice assigns X := "1" | SHA-256(kab | X) | CR | LF | X. Otherwise ... "0"."
//!
//! T comes from the state file's clock inside the caller's write transaction: unique,
//! strictly increasing across processes, newer than the header's newest line.
//!
//! Our line names the address of ours that suits the destination (`Settings::our_address_for`): the
//! destination shares its key with that address, so that is the line it checks the
//! signature against. A message that already carries that address (one our own client
//! created under it with cmr-post) is forwarded as it is, keeping its original ID: A2
//! forbids an address twice in a header. A router with several addresses may so add a line
//! naming another of its addresses above its client's creator line; the addresses differ,
//! so A2 holds, and the destination sees the sender it shares a key with.

use crate::contact::{self, Cause, Refusal};
use crate::exit::Failure;
use crate::sign;
use crate::state::{clock, outbox, peers, settings::Settings};
use crate::wire::{Message, Timestamp};
use rusqlite::Transaction;

/// A forward ready for the outbox.
#[derive(Debug, Clone)]
pub struct Built {
    pub bytes: Vec<u8>,
    /// Our line's timestamp (None when the message already carried our address).
    pub timestamp: Option<Timestamp>,
    pub signed: bool,
}

/// Build the forward of `msg` (canonical, unsigned) to `dest`.
pub fn build(
    tx: &Transaction,
    settings: &Settings,
    msg: &Message,
    dest: &str,
) -> Result<Built, Failure> {
    let ours = settings
        .our_address_for(dest)
        .ok_or_else(|| Failure::config("no address of ours: run cmr-route init --address ADDR"))?;
    let (fwd, timestamp) = if msg.has_address(ours.as_bytes()) {
        (
            msg.clone().with_signature(crate::wire::Signature::Unsigned),
            None,
        )
    } else {
        let t = clock::next(tx, Some(&msg.sender().time()))?;
        let f = msg.prepend(&t, ours.as_bytes()).map_err(|e| {
            Failure::software(format!(
                "forward to {dest}: prepending our line failed: {e}"
            ))
        })?;
        (f, Some(t))
    };
    let peer = peers::get(tx, dest)?;
    let (fwd, signed) = match peer
        .as_ref()
        .and_then(|p| p.key.as_ref().map(|k| (p.scheme, k)))
    {
        Some((scheme, key)) => (sign::sign(fwd, scheme, key), true),
        None => (fwd, false),
    };
    Ok(Built {
        bytes: fwd.encode(),
        timestamp,
        signed,
    })
}

/// What became of one forward.
#[derive(Debug, Clone)]
pub enum Queued {
    /// In the outbox: its row and the forward as built.
    Queued(i64, Built),
    /// Kept by the key exchange until a key is agreed with the destination (it queues it).
    Held(Built),
    /// Not queued: that (destination, message) pair was queued, sent or held before, or the
    /// key exchange refused to send to the destination.
    Skipped,
    /// Not queued: the relay policy refused the destination ([`crate::contact`]).
    Refused(Refusal),
}

/// Build and queue the forward of `msg` (`what`: x, y or z) to `dest`, unless that pair
/// was queued, sent or held before, or the relay policy refuses the destination for this
/// `cause`. The key exchange's first-contact hook sees every forward before it is queued.
pub fn queue(
    tx: &Transaction,
    settings: &Settings,
    msg: &Message,
    cache_id: i64,
    dest: &str,
    what: &str,
    cause: &Cause,
) -> Result<Queued, Failure> {
    let key = msg.origin().key();
    // Never the same (destination, message) twice: queued or sent before, or held by the
    // key exchange until a key is agreed with the destination (it queues it then).
    if outbox::seen(tx, dest, &key)? || crate::keyx::db::is_held(tx, dest, &key)? {
        return Ok(Queued::Skipped);
    }
    // A3's "zero or more addresses": who we may send to at all (crate::contact).
    if let Err(r) = contact::admit(tx, settings, dest, what, cause)? {
        return Ok(Queued::Refused(r));
    }
    let b = build(tx, settings, msg, dest)?;
    match crate::keyx::before_forward(tx, dest, &b.bytes, &key)? {
        crate::keyx::FirstContact::Send => {}
        crate::keyx::FirstContact::Held => return Ok(Queued::Held(b)),
        crate::keyx::FirstContact::Refused => return Ok(Queued::Skipped),
    }
    match outbox::enqueue_for(tx, dest, &b.bytes, &key, Some(cache_id))? {
        Some(id) => {
            peers::note_forwarded(tx, dest)?;
            Ok(Queued::Queued(id, b))
        }
        None => Ok(Queued::Skipped),
    }
}
