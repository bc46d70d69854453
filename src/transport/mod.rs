//! Transports (A4). Each file is one transport, both the sending and the receiving side.

pub mod handshake;
pub mod http;
pub mod multipart;
