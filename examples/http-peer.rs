//! A minimal front end to the HTTP transport, for the integration scripts until the
//! `cmr-recv --http` / `cmr-send --to http://` front ends are in place.
//!
//!   http-peer serve [--https CERT KEY] [--state FILE] [--log FILE] [--trust PEM]
//!   http-peer send URL FILE [--trust PEM] [--handshake OWN_URL] [--state FILE] [--timeout SECS]
//!                           [--peer-options 'trust=PEM handshake=OWN_URL ...']
//!
//! `serve` answers one request on stdin/stdout (inetd nowait). `send` exits 0, 75
//! (transient) or 69 (permanent).

use cmr::exit::{self, Failure};
use cmr::transport::http::{self, HandshakeOptions, HttpOptions, PeerOptions};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    exit::run("http-peer", move || run(args))
}

fn run(args: Vec<String>) -> Result<u8, Failure> {
    let mut state: Option<PathBuf> = None;
    let mut tls: Option<(PathBuf, PathBuf)> = None;
    let mut peer_options: Option<String> = None;
    let mut trust: Option<PathBuf> = None;
    let mut own: Option<String> = None;
    let mut timeout: Option<u64> = None;
    let mut pos = Vec::new();
    let mut it = args.into_iter();
    let need = |v: Option<String>, what: &str| {
        v.ok_or_else(|| Failure::usage(format!("{what} needs a value")))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--state" => state = Some(need(it.next(), "--state")?.into()),
            "--log" => cmr::log::set_sink(cmr::log::Sink::parse(&need(it.next(), "--log")?)),
            "--https" => {
                tls = Some((
                    need(it.next(), "--https")?.into(),
                    need(it.next(), "--https")?.into(),
                ))
            }
            "--trust" => trust = Some(need(it.next(), "--trust")?.into()),
            "--peer-options" => peer_options = Some(need(it.next(), "--peer-options")?),
            "--handshake" => own = Some(need(it.next(), "--handshake")?),
            "--timeout" => {
                timeout = Some(
                    need(it.next(), "--timeout")?
                        .parse()
                        .map_err(|_| Failure::usage("--timeout SECS"))?,
                )
            }
            _ => pos.push(a),
        }
    }
    match pos.first().map(String::as_str) {
        Some("serve") => {
            let mut opts = HttpOptions::default();
            opts.fetch.trust_file = trust;
            if let Some((cert, key)) = tls {
                opts.https = true;
                opts.cert = Some(cert);
                opts.key = Some(key);
            }
            http::serve_stdio(state.as_deref(), &opts)?;
            Ok(0)
        }
        Some("send") => {
            let (url, file) = match (pos.get(1), pos.get(2)) {
                (Some(u), Some(f)) => (u, f),
                _ => return Err(Failure::usage("send URL FILE")),
            };
            let bytes = cmr::cli::read_input(file)?;
            let mut o = PeerOptions {
                trust_file: trust,
                ..PeerOptions::default()
            };
            if let Some(t) = timeout {
                o.timeout = std::time::Duration::from_secs(t);
            }
            if let Some(text) = peer_options {
                o = o
                    .with_options(&text, state.as_deref())
                    .map_err(Failure::config)?;
            }
            if let Some(own) = own {
                let mut hs = HandshakeOptions::new(own);
                hs.state_path = state;
                o.handshake = Some(hs);
            }
            http::send(url, &bytes, &o)?;
            Ok(0)
        }
        _ => Err(Failure::usage("http-peer serve|send ...")),
    }
}
