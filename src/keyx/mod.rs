//! Key exchange (A5): RSA, Diffie-Hellman and clear keys, and first contact.
//!
//! "When Alice sends a message to Bob for the first time and they do not share a secret key,
//! a key may be established in a number of ways that are defined outside the CMR protocol.
//! A key is unique to each pair of peers."
//!
//! - [`body`]: the five control bodies, strict parse and exact format; [`is_control`].
//! - [`rsa`], [`dh`]: the arithmetic and the checks on a peer's parameters.
//! - [`derive`](mod@derive): from the exchanged secret to the signing key (`spec` or `hardened`).
//! - [`exchange`]: the protocol itself (requests, replies, the signing rules, the tie-break
//!   for simultaneous exchanges, first contact), written against the [`exchange::Store`]
//!   trait so that it runs the same over the state file and over memory.
//!
//! Control messages never enter the pool: the router hands them here and neither caches
//! nor routes them (A5.1 "Alice and Bob remove the two messages from their caches").
//!
//! # Where this goes beyond or departs from A5
//!
//! - Bodies are parsed strictly: lower-case hex only, the closing period required, nothing
//!   after it, numbers of at most 2048 hex digits (8192 bits).
//! - RSA (A5.1): the peer's n must have 2048 to 8192 bits, be odd and have no prime factor
//!   below 1000; e must be odd, at least 3, below n and at most 256 bits. The responder's k
//!   is a random number one bit shorter than n, not a short key: under textbook RSA (no
//!   padding, as A5.1 writes it) a short k with a small e is recovered by an integer root.
//! - DH (A5.2): our requests use RFC 3526 groups 14 to 16 with a primitive root as g (11,
//!   5 and 5; RFC 3526's g = 2 is still accepted from peers). A peer's custom group must be
//!   a safe prime (see [`dh`] for exactly what is checked), at most `keyx_dh_custom_max_bits`.
//! - Clear keys (A5.3): only over HTTPS or SSH, at least `keyx_clear_min_bytes` (16) bytes.
//! - Derivation: `hardened` (the default) runs the exchanged secret through HKDF-SHA-256
//!   bound to both addresses; `spec` uses it as is. A number becomes bytes big-endian,
//!   without leading zero bytes.
//! - A key from an exchange nobody authenticated is provisional until a message signed with
//!   it verifies; until then a fresh exchange from that address replaces it (see
//!   [`exchange`]), so a forged first exchange cannot lock the real peer out.
//! - Once a key is established, an unsigned control message is refused (otherwise anyone
//!   could replace the key), unless the transport authenticated that very peer (an SSH forced
//!   command per peer, an HTTPS client certificate): then it is handled and answered
//!   unsigned. A signed one from a peer we hold no key for cannot be checked and is refused
//!   too. Control messages must come straight from the peer (one header line).
//! - A key replaced by an exchange still verifies ordinary messages for a grace period
//!   ([`retired_key`]); control messages verify only with the current key.
//! - Simultaneous requests: the side with the bytewise-smaller address gives way (see
//!   [`exchange`]). A reply with no request pending is refused; requests expire.
//! - Our address in a key exchange with a peer is the one the router puts on forwards to
//!   that peer: the first of ours with the peer's URL scheme, else the primary one.

pub mod body;
pub mod db;
pub mod derive;
pub mod dh;
pub mod exchange;
pub mod first_contact;
pub mod memory;
pub mod rsa;
pub mod settings;

#[cfg(test)]
mod tests;

pub use body::{is_control, BodyDefect, BodyError, Control};
pub use db::{before_forward, confirm, handle, is_provisional, retired_key};
pub use derive::{Derive, Method};
pub use exchange::{Action, FirstContact, FirstContactPolicy, KeyxOutcome, Store};

use std::fmt;

/// Why a key-exchange message or parameter was refused. The key stays as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl Refusal {
    pub fn new(reason: impl Into<String>) -> Refusal {
        Refusal(reason.into())
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

impl From<Refusal> for crate::exit::Failure {
    fn from(r: Refusal) -> Self {
        crate::exit::Failure::data(format!("key exchange refused: {}", r.0))
    }
}
