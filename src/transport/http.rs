//! Interim stand-in for the HTTP/HTTPS transport (owned by the http branch, which replaces
//! this file; the shapes here are that branch's).

use super::SendError;
use crate::exit::Failure;
use crate::route::RouteOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How one peer is reached over HTTP(S).
#[derive(Debug, Clone)]
pub struct PeerOptions {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub trust_file: Option<PathBuf>,
    pub handshake: Option<HandshakeOptions>,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            trust_file: None,
            handshake: None,
        }
    }
}

impl PeerOptions {
    /// The options for one destination: `base` plus the peer's row (stand-in: `base`).
    pub fn for_peer(
        _state: &crate::state::State,
        _addr: &str,
        base: PeerOptions,
    ) -> Result<PeerOptions, Failure> {
        Ok(base)
    }
}

/// The sending side of the A4.5 handshake.
#[derive(Debug, Clone)]
pub struct HandshakeOptions {
    pub own_address: String,
    pub state_path: Option<PathBuf>,
    pub expiry: Duration,
}

impl HandshakeOptions {
    pub fn new(own_address: impl Into<String>) -> Self {
        HandshakeOptions {
            own_address: own_address.into(),
            state_path: None,
            expiry: Duration::from_secs(600),
        }
    }
}

/// Limits and settings of the receiving side.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    pub deadline: Duration,
    pub read_timeout: Duration,
    pub fetch: PeerOptions,
    pub route: RouteOptions,
    pub https: bool,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// inetd/xinetd `nowait`: the connection is fds 0 and 1.
pub fn serve_stdio(_state_path: Option<&Path>, _opts: &HttpOptions) -> Result<(), Failure> {
    Err(Failure::unavailable("HTTP ingress is not built in yet"))
}

pub fn send(addr: &str, _bytes: &[u8], _opts: &PeerOptions) -> Result<(), SendError> {
    Err(SendError::Transient(format!(
        "{addr}: HTTP sending is not built in yet"
    )))
}
