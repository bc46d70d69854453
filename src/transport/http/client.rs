//! The sending side: one POST per message (A4.2 "file upload protocol as described in RFC
//! 1867"; A4.3 the same over TLS) with `ureq`, or the A4.5 handshake; what an answer means
//! for the outbox (delivered, transient, permanent).

use super::reply::header_safe;
use super::PeerOptions;
use crate::transport::{handshake, multipart, SendError};
use std::io::BufReader;
use std::sync::OnceLock;
use ureq::unversioned::transport::DefaultConnector;

fn system_roots() -> &'static [Vec<u8>] {
    static ROOTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        rustls_native_certs::load_native_certs()
            .certs
            .into_iter()
            .map(|c| c.as_ref().to_vec())
            .collect()
    })
}

/// An agent for one destination: its timeouts, system roots plus its trusted file, no
/// redirects, statuses returned rather than turned into errors.
pub(crate) fn agent(opts: &PeerOptions) -> Result<ureq::Agent, SendError> {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let mut roots: Vec<Certificate<'static>> = system_roots()
        .iter()
        .map(|d| Certificate::from_der(d).to_owned())
        .collect();
    if let Some(p) = &opts.trust_file {
        let f = std::fs::File::open(p).map_err(|e| {
            SendError::Transient(format!("trusted certificate file {}: {e}", p.display()))
        })?;
        let mut n = 0;
        for c in rustls_pemfile::certs(&mut BufReader::new(f)) {
            let c = c.map_err(|e| {
                SendError::Transient(format!("trusted certificate file {}: {e}", p.display()))
            })?;
            roots.push(Certificate::from_der(c.as_ref()).to_owned());
            n += 1;
        }
        if n == 0 {
            return Err(SendError::Transient(format!(
                "trusted certificate file {}: no PEM certificate",
                p.display()
            )));
        }
    }
    let root_certs = if roots.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::new_with_certs(&roots)
    };
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(opts.timeout))
        .timeout_connect(Some(opts.connect_timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("cmr/", env!("CARGO_PKG_VERSION")))
        .tls_config(TlsConfig::builder().root_certs(root_certs).build())
        .build();
    // The address policy at send time: every address the host resolves to is checked,
    // and only the checked addresses are connected to (crate::netaddr).
    Ok(ureq::Agent::with_parts(
        config,
        DefaultConnector::default(),
        crate::transport::resolve::CheckedResolver::new(opts.allow.clone()),
    ))
}

/// Classify a transport error: only a bad address or a local misuse is permanent. Trouble
/// after the body may have been sent (a timeout, a reset, an answer we cannot read) is
/// ambiguous: the peer may hold the message already, so it is transient and retried, never
/// dead-lettered on its own; the retry's "duplicate" answer then counts as delivered.
pub(crate) fn classify(addr: &str, e: ureq::Error) -> SendError {
    use ureq::Error as E;
    let m = format!("{addr}: {e}");
    if crate::transport::resolve::is_refusal(&e) {
        return SendError::Permanent(m);
    }
    match e {
        E::BadUri(_) | E::Http(_) | E::RequireHttpsOnly(_) | E::InvalidProxyUrl => {
            SendError::Permanent(m)
        }
        _ => SendError::Transient(m),
    }
}

/// The refusal reason of an answer: our own `X-CMR-Error`, the other implementation's
/// `X-CMR-Drop-Reason` (both when they differ), else the first line of the body.
fn refusal_reason(resp: &mut ureq::http::Response<ureq::Body>) -> String {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| header_safe(v.trim()))
            .filter(|v| !v.is_empty())
    };
    match (header("x-cmr-error"), header("x-cmr-drop-reason")) {
        (Some(e), Some(d)) if !e.contains(&d) => format!("{e} ({d})"),
        (Some(e), _) => e,
        (None, Some(d)) => d,
        (None, None) => {
            let body = resp
                .body_mut()
                .with_config()
                .limit(4096)
                .read_to_vec()
                .unwrap_or_default();
            let s = String::from_utf8_lossy(&body);
            header_safe(s.lines().next().unwrap_or("").trim())
        }
    }
}

/// Turn a status into a result: 2xx ok; 5xx, 408, 429 transient; the rest permanent.
pub(crate) fn check_status(
    addr: &str,
    resp: ureq::http::Response<ureq::Body>,
) -> Result<ureq::http::Response<ureq::Body>, SendError> {
    status_result(addr, resp).map_err(|(e, _)| e)
}

/// [`check_status`], also giving the refusal reason alone.
fn status_result(
    addr: &str,
    mut resp: ureq::http::Response<ureq::Body>,
) -> Result<ureq::http::Response<ureq::Body>, (SendError, String)> {
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(resp);
    }
    let reason = refusal_reason(&mut resp);
    let mut m = format!("{addr}: HTTP {status}");
    if let Some(loc) = resp.headers().get("location").and_then(|v| v.to_str().ok()) {
        m.push_str(&format!(" (moved to {loc})"));
    }
    if !reason.is_empty() {
        m.push_str(": ");
        m.push_str(&reason);
    }
    Err((
        if status >= 500 || status == 408 || status == 429 {
            SendError::Transient(m)
        } else {
            SendError::Permanent(m)
        },
        reason,
    ))
}

/// True when a refusal says the peer already holds the message: the other implementation
/// answers `400` with `X-CMR-Drop-Reason: duplicate message id in cache` (cmr's own ingress
/// answers 200 `duplicate`). The message is there, so the delivery is done.
pub(crate) fn is_duplicate_refusal(reason: &str) -> bool {
    reason.contains("duplicate message id")
}

/// The result of delivering a message: [`check_status`], except that a "duplicate" refusal
/// counts as delivered (idempotent, as a retry after an ambiguous timeout needs).
pub(crate) fn delivery_status(
    addr: &str,
    resp: ureq::http::Response<ureq::Body>,
) -> Result<(), SendError> {
    match status_result(addr, resp) {
        Ok(_) => Ok(()),
        Err((SendError::Permanent(_), reason)) if is_duplicate_refusal(&reason) => Ok(()),
        Err((e, _)) => Err(e),
    }
}

fn check_scheme(addr: &str) -> Result<(), SendError> {
    let lower = addr.get(..8).unwrap_or(addr).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        Ok(())
    } else {
        Err(SendError::Permanent(format!(
            "{addr}: not an http:// or https:// address"
        )))
    }
}

/// A4.2/A4.3: deliver one message (the bytes as they go on the wire) to an http:// or
/// https:// address, as an RFC 1867 upload, or through the A4.5 handshake when
/// `opts.handshake` is set.
pub fn send(addr: &str, bytes: &[u8], opts: &PeerOptions) -> Result<(), SendError> {
    check_scheme(addr)?;
    if let Some(hs) = &opts.handshake {
        return handshake::send(addr, bytes, hs, opts);
    }
    let agent = agent(opts)?;
    let (body, content_type) = multipart::build_upload(bytes);
    let resp = agent
        .post(addr)
        .header("Content-Type", &content_type)
        .send(&body[..])
        .map_err(|e| classify(addr, e))?;
    delivery_status(addr, resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_duplicates() {
        assert!(check_scheme("mailto:a@b").is_err());
        assert!(check_scheme("HTTPS://a/").is_ok());
        assert!(is_duplicate_refusal("duplicate message id in cache"));
        assert!(!is_duplicate_refusal("rejected: signature"));
    }
}
