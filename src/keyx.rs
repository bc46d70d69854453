//! Key exchange (A5): the router's hand-off point.
//!
//! The router calls [`is_control`] on every accepted body; a key-exchange message goes to
//! [`handle`] and is never cached or routed (A5.1 "Alice and Bob remove the two messages
//! from their caches"). This module recognises the five A5 bodies and, until the key
//! exchange is implemented, refuses them. [`before_forward`] is the first-contact hook the
//! router calls before queueing each forward; here it always answers `Send`.

use crate::exit::Failure;
use crate::route::Transport;
use crate::wire::Message;
use rusqlite::Transaction;

/// The five A5 body prefixes.
pub const PREFIXES: [&[u8]; 5] = [
    b"RSA key exchange request=",
    b"RSA key exchange reply=",
    b"DH key exchange request=",
    b"DH key exchange reply=",
    b"Clear key exchange=",
];

/// True when the body is a key-exchange control message (A5.1, A5.2, A5.3).
pub fn is_control(body: &[u8]) -> bool {
    PREFIXES.iter().any(|p| body.starts_with(p))
}

/// What the key exchange did with a control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyxOutcome {
    /// A key was installed for the peer.
    KeySet,
    /// A reply was queued for the peer.
    Replied,
}

/// Handle a key-exchange message from `peer_address` that came in over `via`.
/// Not implemented here: every control message is refused (EX_NOPERM).
pub fn handle(
    _tx: &Transaction,
    _msg: &Message,
    peer_address: &str,
    via: Transport,
) -> Result<KeyxOutcome, Failure> {
    Err(Failure::perm(format!(
        "key exchange from {peer_address} over {via} refused: key exchange is not enabled"
    )))
}

/// What to do with a forward to a peer (the first-contact hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstContact {
    /// Queue it as built (signed if a key is held, unsigned otherwise).
    Send,
    /// The key exchange keeps it and queues it itself once a key is agreed.
    Held,
    /// Do not send it.
    Refused,
}

/// Called by the router for every forward before it is queued, inside its transaction.
/// `bytes` is the forward as built, `msg_key` its outbox key.
pub fn before_forward(
    _tx: &Transaction,
    _dest: &str,
    _bytes: &[u8],
    _msg_key: &[u8],
) -> Result<FirstContact, Failure> {
    Ok(FirstContact::Send)
}
