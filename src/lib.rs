//! cmr: Competitive Message Routing (Mahoney, "Distributed AGI" v2.2, Section 3 and
//! Appendix A) as a set of Unix tools over one library and one SQLite state file.
//!
//! # Layering
//!
//! Data flows ingress -> route -> outbox -> send, and the modules stand on each other the
//! same way: a module uses only the modules below it (`tests/layering.rs` fails on an
//! import cycle between top-level modules).
//!
//! ```text
//! cli                      the tools' front ends (src/bin/* are one line each)
//! transport                A4: address forms, ingress adapters (mail, HTTP, UDP, SSH),
//!                          senders, the outbox drain, the A4.5 handshake
//! route                    A3: accept or reject, cache, match, route, queue forwards
//! contact  keyx            who may be sent to (relay policy) · A5 key exchange
//! compress                 the matching engine: compressors, word model, distances (3.2)
//! state                    the SQLite file: schema and migrations of every table,
//!                          settings, cache, peers, outbox rows, clock, log
//! sign  log                signatures · diagnostics
//! wire  via  netaddr  exit A2 format · how a message came · address ranges · sysexits
//! sys                      safe system calls on the standard descriptors (rustix)
//! ```
//!
//! `state` knows tables, not their owners' logic: every migration is in `state::schema`,
//! and the tables' logic lives with their owners (`keyx_*` in keyx, `engine_*` in
//! compress, `handshake_*` and the outbox drain in transport, `contact_spend` in contact).
//!
//! - [`wire`]: the A2 message format, strict parse and byte-exact encode.
//! - [`sign`]: signature schemes (the spec's SHA-256(k | header | body), and HMAC-SHA-256).
//! - [`exit`]: sysexits codes and the error every tool ends in.
//! - [`compress`]: compressors, the native word model and the routing distances (3.2).
//! - [`contact`]: the relay policy (who a router may send to), over [`netaddr`].
//! - [`log`]: diagnostics to stderr, a file or syslog.
//! - [`status`]: `cmr-route status`, a peer's health for people and monitoring.
//! - [`sim`]: a network of real routers on one machine, measured (`cmr-sim`).
pub mod cli;
pub mod compress;
pub mod contact;
pub mod exit;
pub mod keyx;
pub mod log;
pub mod netaddr;
pub mod route;
pub mod sign;
pub mod sim;
pub mod state;
pub mod status;
pub mod sys;
pub mod transport;
pub mod via;
pub mod wire;
