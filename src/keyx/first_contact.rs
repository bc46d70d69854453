//! First contact: a message for a peer we share no key with is sent unsigned, held while a
//! key exchange runs, or refused (setting `keyx_first_contact`).

use super::derive::Method;
use super::dh::Group;
use super::exchange::{initiate, live_pending, send, Start, Store};
use crate::exit::Failure;
use std::str::FromStr;

/// First-contact policy (setting `keyx_first_contact`): what to do when a message must go to
/// a peer we share no key with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirstContactPolicy {
    /// Send it unsigned (A3 "Otherwise Alice assigns X := "0" | CR | LF | X").
    Unsigned,
    /// Hold it, start a key exchange, and send it signed once the key is set.
    #[default]
    Exchange,
    /// Do not send it.
    Refuse,
}

impl FirstContactPolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            FirstContactPolicy::Unsigned => "unsigned",
            FirstContactPolicy::Exchange => "exchange",
            FirstContactPolicy::Refuse => "refuse",
        }
    }
}

impl FromStr for FirstContactPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "unsigned" => Ok(FirstContactPolicy::Unsigned),
            "exchange" => Ok(FirstContactPolicy::Exchange),
            "refuse" => Ok(FirstContactPolicy::Refuse),
            _ => Err(format!(
                "unknown first-contact policy '{s}' (expected unsigned, exchange or refuse)"
            )),
        }
    }
}

/// What the router does with a forward, decided by [`first_contact`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FirstContact {
    /// Send it now: signed if a key is held, unsigned otherwise. The router queues it.
    Send,
    /// Held by key exchange; it is queued, signed with the new key, when the exchange
    /// completes. The router queues nothing.
    Held,
    /// Do not send it (policy `refuse`).
    Refused,
}

/// Decide a forward to `dest`. `bytes` is the message as it would be sent (its signature
/// line, if any, is dropped and recomputed on release). With the `exchange` policy and no
/// request pending, a DH request (group `dh_group`) or, for `Method::Rsa` with a spare key
/// pair at hand, an RSA request is queued first. Nothing here generates RSA keys.
pub fn first_contact(
    store: &mut dyn Store,
    dest: &str,
    bytes: &[u8],
    msg_key: &[u8],
    policy: FirstContactPolicy,
    method: Method,
    dh_group: u32,
) -> Result<FirstContact, Failure> {
    if store.key(dest)?.is_some() {
        return Ok(FirstContact::Send);
    }
    match policy {
        FirstContactPolicy::Unsigned => Ok(FirstContact::Send),
        FirstContactPolicy::Refuse => Ok(FirstContact::Refused),
        FirstContactPolicy::Exchange => {
            let payload = match bytes.windows(2).position(|w| w == b"\r\n") {
                Some(i) if bytes.first().is_some_and(|&c| c == b'0' || c == b'1') => {
                    &bytes[i + 2..]
                }
                _ => bytes,
            };
            store.hold(dest, payload, msg_key)?;
            if live_pending(store, dest)?.is_none() {
                let start = match method {
                    Method::Rsa => match store.take_spare_rsa()? {
                        Some(kp) => Start::Rsa(kp),
                        None => Start::Dh(default_group(dh_group)),
                    },
                    _ => Start::Dh(default_group(dh_group)),
                };
                let mode = store.derive_mode(dest)?;
                let req = initiate(store, dest, start, mode, false)?;
                send(store, dest, &req)?;
            }
            Ok(FirstContact::Held)
        }
    }
}

fn default_group(id: u32) -> Group {
    Group::modp(id).unwrap_or_else(|| Group::modp(14).expect("group 14 is embedded"))
}
