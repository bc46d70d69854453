//! cmr: Competitive Message Routing (Mahoney, "Distributed AGI" v2.2, Section 3 and
//! Appendix A) as a set of Unix tools over one library and one SQLite state file.
//!
//! - [`wire`]: the A2 message format, strict parse and byte-exact encode.
//! - [`sign`]: signature schemes (the spec's SHA-256(k | header | body), and HMAC-SHA-256).
//! - [`exit`]: sysexits codes and the error every tool ends in.
//! - [`compress`]: compressors, the native word model and the routing distances (3.2).
//! - [`log`]: diagnostics to stderr, a file or syslog.
//! - [`status`]: `cmr-route status`, a peer's health for people and monitoring.
pub mod cli;
pub mod compress;
pub mod exit;
pub mod keyx;
pub mod log;
pub mod route;
pub mod sign;
pub mod state;
pub mod status;
pub mod transport;
pub mod wire;
