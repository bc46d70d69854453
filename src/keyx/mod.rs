//! Key exchange (A5): RSA, Diffie-Hellman and clear keys, and first contact.
//!
//! "When Alice sends a message to Bob for the first time and they do not share a secret key,
//! a key may be established in a number of ways that are defined outside the CMR protocol.
//! A key is unique to each pair of peers."
//!
//! - [`body`]: the five control bodies, strict parse and exact format; [`is_control`].
//! - [`rsa`], [`dh`]: the arithmetic and the checks on a peer's parameters.
//! - [`derive`]: from the exchanged secret to the signing key (`spec` or `hardened`).
//! - [`exchange`]: the protocol itself (requests, replies, the signing rules, the tie-break
//!   for simultaneous exchanges, first contact), written against the [`exchange::Store`]
//!   trait so that it runs the same over the state file and over memory.
//!
//! Control messages never enter the pool: the router hands them here and neither caches
//! nor routes them (A5.1 "Alice and Bob remove the two messages from their caches").

pub mod body;
pub mod db;
pub mod derive;
pub mod dh;
pub mod exchange;
pub mod memory;
pub mod rsa;

#[cfg(test)]
mod tests;

pub use body::{is_control, BodyDefect, BodyError, Control};
pub use db::{before_forward, handle};
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
