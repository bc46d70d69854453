//! Interim stand-in for the HTTP/HTTPS transport (owned by the http branch, which replaces
//! this file; the shapes here are that branch's).

use crate::exit::Failure;
use crate::route::RouteOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A failed delivery: `transient` means "keep the message and retry later".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub transient: bool,
    pub message: String,
}

/// How one peer is reached over HTTP(S).
#[derive(Debug, Clone)]
pub struct PeerHttpOptions {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub trust_file: Option<PathBuf>,
    pub handshake: Option<HandshakeOptions>,
}

impl Default for PeerHttpOptions {
    fn default() -> Self {
        PeerHttpOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            trust_file: None,
            handshake: None,
        }
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
    pub fetch: PeerHttpOptions,
    pub route: RouteOptions,
}

/// Certificate chain and private key (PEM files) for `--https`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// inetd/xinetd `nowait`: the connection is fds 0 and 1.
pub fn serve_stdio(
    _state_path: Option<&Path>,
    _opts: &HttpOptions,
    _tls: Option<&TlsFiles>,
) -> Result<(), Failure> {
    Err(Failure::unavailable("HTTP ingress is not built in yet"))
}

pub fn send(addr: &str, _bytes: &[u8], _opts: &PeerHttpOptions) -> Result<(), SendError> {
    Err(SendError {
        transient: true,
        message: format!("{addr}: HTTP sending is not built in yet"),
    })
}
