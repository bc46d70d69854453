//! Interim stand-in for the HTTP/HTTPS transport (owned by the http branch, which replaces
//! this file). Shapes agreed: `serve` for `cmr-recv --http/--https` under inetd, `send` for
//! `cmr-send` to `http://` and `https://` addresses.

use super::SendError;
use crate::exit::Failure;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options for one inetd-spawned HTTP(S) connection.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    pub https: bool,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Options for sending to one HTTP(S) peer.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    pub timeout: Duration,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            timeout: Duration::from_secs(60),
        }
    }
}

pub fn serve(
    _input: impl Read,
    _output: impl Write,
    _state_path: Option<&Path>,
    _opts: &HttpOptions,
) -> Result<(), Failure> {
    Err(Failure::unavailable("HTTP ingress is not built in yet"))
}

pub fn send(addr: &str, _bytes: &[u8], _peer_opts: &PeerOptions) -> Result<(), SendError> {
    Err(SendError::Transient(format!(
        "{addr}: HTTP sending is not built in yet"
    )))
}
