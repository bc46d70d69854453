//! A3 steps 3 and 4: the signature ("If the message is signed, then it should compute the
//! signature and reject it if it does not match") and the policy ("It may also reject a
//! message for any reason"): size cap, reputation floor, rate windows.

use super::{Decision, RouteOptions};
use crate::exit::{self, Failure};
use crate::sign;
use crate::state::{self, cache, peers, settings::Settings, State};
use crate::wire::Message;

/// Why the addresses of `msg` cannot be kept exactly, if they cannot. A2 allows any bytes
/// but CR and LF in an address; the state file keeps addresses as text (peers, outbox
/// destinations, aliases, keys), so an address that is not UTF-8 would become another
/// address (`\xff` and `\xfe` both U+FFFD: two peers as one, a forward to an address in no
/// header), and a NUL byte would cut it short in places. Such a message is refused at
/// ingress instead (reason `address`, 65 with --strict): nothing is converted.
pub fn address_defect(msg: &Message) -> Option<String> {
    for (i, id) in msg.ids().enumerate() {
        let a = id.address;
        if let Err(e) = std::str::from_utf8(a) {
            return Some(format!(
                "address in header line {} is not UTF-8 (byte 0x{:02x} at offset {}): refused, \
                 as addresses are kept as text and would not stay exact",
                i + 1,
                a[e.valid_up_to()],
                e.valid_up_to()
            ));
        }
        if let Some(at) = a.iter().position(|&c| c == 0) {
            return Some(format!(
                "address in header line {} holds a NUL byte at offset {at}: refused, as it would \
                 not stay exact",
                i + 1
            ));
        }
    }
    None
}

/// Check the signature and the policy that needs no write lock. Returns whether the
/// message verified with the sender's key; a rejection is written into `d`.
pub(crate) fn check_signature(
    state: &State,
    settings: &Settings,
    msg: &Message,
    opts: &RouteOptions,
    d: &mut Decision,
) -> Result<Option<peers::Peer>, Failure> {
    if let Some(why) = address_defect(msg) {
        d.reject("address", why, exit::DATAERR);
        return Ok(None);
    }
    let sender = msg.sender().address_str().into_owned();
    let peer = peers::get(state.conn(), &sender)?;
    let key = peer
        .as_ref()
        .and_then(|p| p.key.as_ref().map(|k| (p.scheme, k)));
    let control = crate::keyx::is_control(msg.body());
    let authenticated = opts.authenticated_sender.as_deref() == Some(sender.as_str());
    match (msg.signature().is_signed(), key) {
        (true, Some((scheme, k))) => check_signed(state, msg, &sender, (scheme, k), control, d)?,
        (true, None) => {
            if !settings.accept_unknown_signed {
                d.reject(
                    "unknown-signer",
                    format!("signed message from {sender}, for whom we hold no key (policy unknown_signed=reject)"),
                    exit::NOPERM,
                );
            }
        }
        (false, Some(_)) => {
            if authenticated {
                d.verified = true;
            } else {
                check_unsigned_from_keyed(state, settings, &sender, control, d)?;
            }
        }
        (false, None) => {
            if authenticated {
                d.verified = true;
            } else if !settings.accept_unsigned {
                reject_unsigned(&sender, d);
            }
        }
    }
    Ok(peer)
}

/// A signed message from a sender we hold a key for: verified with that key, or else with
/// the key it replaced, during that key's grace period.
fn check_signed(
    state: &State,
    msg: &Message,
    sender: &str,
    (scheme, k): (sign::Scheme, &sign::Key),
    control: bool,
    d: &mut Decision,
) -> Result<(), Failure> {
    let Err(e) = sign::verify(msg, scheme, k) else {
        d.verified = true;
        return Ok(());
    };
    // A message the peer signed before a key exchange replaced the key may still
    // be in flight: the replaced key verifies it during its grace period
    // (`keyx_retired_grace`). Never for key-exchange messages: those must be
    // signed with the current key (A5.1 "signed with the old keys" means the
    // key in force when the exchange starts).
    let retired = if control {
        None
    } else {
        crate::keyx::retired_key(state.conn(), sender)?
    };
    match retired {
        Some((rs, rk)) if sign::verify(msg, rs, &rk).is_ok() => {
            d.verified = true;
            d.notes.push(format!(
                "signature verified with the key {sender} used before the last \
                 key exchange (retired key, within keyx_retired_grace)"
            ));
        }
        _ => d.reject(
            "signature",
            format!("signature refused: {e} (sender {sender}, scheme {scheme})"),
            exit::NOPERM,
        ),
    }
    Ok(())
}

/// An unsigned message, not from an authenticated sender, claiming a sender we hold a key
/// for.
fn check_unsigned_from_keyed(
    state: &State,
    settings: &Settings,
    sender: &str,
    control: bool,
    d: &mut Decision,
) -> Result<(), Failure> {
    if crate::keyx::is_provisional(state.conn(), sender)? {
        // A key no verified message has confirmed may be a forger's (keyx::exchange):
        // the sender is treated as one we hold no key for.
        if !settings.accept_unsigned && !control {
            reject_unsigned(sender, d);
        }
    } else if !control {
        // A5.1: once a key is established, messages are signed. The key exchange
        // decides for its own messages (a peer that lost its key starts over).
        d.reject(
            "unsigned-from-keyed-peer",
            format!("unsigned message claiming to be from {sender}, with whom we share a key"),
            exit::NOPERM,
        );
    }
    Ok(())
}

fn reject_unsigned(sender: &str, d: &mut Decision) {
    d.reject(
        "unsigned",
        format!("unsigned message from {sender} (policy unsigned=reject)"),
        exit::NOPERM,
    );
}

/// Policy checks that need no write lock: size cap and reputation floor.
pub(crate) fn check_static_policy(
    settings: &Settings,
    msg: &Message,
    peer: Option<&peers::Peer>,
    d: &mut Decision,
) {
    if msg.body().len() as u64 > settings.max_body_bytes {
        d.reject(
            "size",
            format!(
                "body of {} bytes exceeds max_body_bytes {}",
                msg.body().len(),
                settings.max_body_bytes
            ),
            exit::NOPERM,
        );
        return;
    }
    if let (Some(floor), Some(p)) = (settings.reputation_floor, peer) {
        if p.reputation < floor {
            d.reject(
                "reputation",
                format!(
                    "sender {} has reputation {} below the floor {floor}",
                    p.address, p.reputation
                ),
                exit::NOPERM,
            );
        }
    }
}

/// Rate windows, checked under the write lock so concurrent routers count each other.
pub(crate) fn check_rates(
    tx: &rusqlite::Transaction,
    settings: &Settings,
    sender: &str,
    d: &mut Decision,
) -> Result<(), Failure> {
    let (_, now) = state::now();
    if let Some(r) = settings.rate_peer {
        let n = cache::arrivals_since(tx, Some(sender), now - r.secs as f64)?;
        if n >= r.count {
            d.reject(
                "rate-peer",
                format!(
                    "{sender} sent {n} messages in the last {} s (rate_peer {}/{})",
                    r.secs, r.count, r.secs
                ),
                exit::NOPERM,
            );
            return Ok(());
        }
    }
    if let Some(r) = settings.rate_global {
        let n = cache::arrivals_since(tx, None, now - r.secs as f64)?;
        if n >= r.count {
            d.reject(
                "rate-global",
                format!(
                    "{n} messages in the last {} s (rate_global {}/{})",
                    r.secs, r.count, r.secs
                ),
                exit::NOPERM,
            );
        }
    }
    Ok(())
}
