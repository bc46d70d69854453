//! Transports (A4). Each file is one transport, both the sending and the receiving side.

use crate::exit::Failure;
use std::fmt;

pub mod handshake;
pub mod http;
pub mod multipart;

/// Why a send did not happen. Transient: try again later; permanent: it will never work as
/// it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    Transient(String),
    Permanent(String),
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }
    pub fn message(&self) -> &str {
        match self {
            SendError::Transient(m) | SendError::Permanent(m) => m,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Transient(m) => write!(f, "{m} (will retry)"),
            SendError::Permanent(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SendError {}

impl From<SendError> for Failure {
    fn from(e: SendError) -> Failure {
        match e {
            SendError::Transient(m) => Failure::temp(m),
            SendError::Permanent(m) => Failure::unavailable(m),
        }
    }
}
