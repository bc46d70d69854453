//! The key-exchange protocol (A5), over an abstract [`Store`].
//!
//! Signing rules (A5.1): "If no key has been established, then both messages are unsigned.
//! Otherwise, both messages are signed with the old keys and the new key takes effect for
//! both Alice and Bob on the next message." So:
//! - our request or reply is signed with the key we hold for the peer, or unsigned if none;
//! - the new key is stored in the same transaction that queues the reply (responder) or that
//!   handles the reply (initiator): every later message uses it;
//! - an incoming control message from a peer we share a key with must be signed (the router
//!   has already checked that signature against the old key); an unsigned one is refused, or
//!   anyone could replace the key of an established pair. The one exception: the transport
//!   itself authenticated that peer (an SSH forced command per peer, an HTTPS client
//!   certificate); the message is then handled and any reply goes back unsigned, since the
//!   peer evidently holds no key (it lost it, or rotates it in the clear over SSH).
//!
//! Simultaneous exchanges: when a request arrives while our own request to that peer is still
//! pending, the side whose own address (as that peer knows it) is bytewise smaller abandons
//! its own request and answers the peer's; the other side ignores the incoming request and
//! waits for the answer to its own. Both end with the key of the larger side's request,
//! whatever order the four messages cross in (a request the larger side receives after its
//! exchange completed is signed with the old key, or unsigned, and is refused by the rule
//! above).
//!
//! A reply only completes the request that is pending; a second `init` while a request is
//! pending is refused unless replaced explicitly, because replies carry nothing that ties them
//! to one request. Pending requests expire (setting `keyx_pending_ttl`, default one day).
//!
//! Control messages travel one hop: one with more than one line in its routing header was
//! forwarded by someone else and is refused.
//!
//! Provisional keys (key confirmation). A2/A5 allow an unsigned first exchange, so anyone
//! who can write a sender address can start one in a peer's name. A key set by an exchange
//! whose messages were neither signed with a key we hold nor authenticated by the transport
//! is therefore *provisional*:
//! - it signs our ordinary messages to the peer, so the peer can confirm it;
//! - the first message from the peer that verifies with it confirms it (the router calls
//!   `db::confirm`); from then on it is an established key as A5.1 means it;
//! - until then it does not count as established: an unsigned message or key exchange from
//!   that address is taken as if no key were held, and a fresh exchange replaces the key.
//!   Our own control messages to the peer go unsigned (the peer may hold another
//!   provisional key, or none);
//! - as the initiator, we keep our request's secret with a provisional key, so that another
//!   reply to the same request (the one to our real request, after a reply to a forged one)
//!   replaces the key too.
//!
//! A forger who can write any sender address can thus delay the pair's key but cannot keep
//! a peer out: the peer's own exchange replaces the forged key, and nothing but a verified
//! signature ever makes a key established. Keys set over a signed exchange, over a transport
//! that authenticated the peer, by hand (`cmr-keyx set`) or by our own clear key are
//! established at once, as before.

use super::body::Control;
use super::derive::{derive, Derive, Method};
use super::dh::Group;
pub use super::first_contact::{first_contact, FirstContact, FirstContactPolicy};
use super::rsa::{self, KeyPair};
use super::Refusal;
use crate::exit::Failure;
use crate::sign::{self, Key, Scheme};
use crate::wire::{Message, Rules, Timestamp};
use num_bigint::BigUint;
use std::fmt;

/// Default lifetime of a pending request, seconds.
pub const DEFAULT_PENDING_TTL: i64 = 86_400;
/// Default smallest clear key, bytes.
pub const DEFAULT_CLEAR_MIN_BYTES: usize = 16;
/// Largest clear key, bytes (the body parser caps it at 2048 hex digits too).
pub const CLEAR_MAX_BYTES: usize = 1024;

/// The secret half of a request of ours that waits for its reply.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Secret {
    Rsa(KeyPair),
    /// Group and private exponent, hex.
    Dh {
        g: String,
        p: String,
        x: String,
    },
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Rsa(_) => f.write_str("Secret::Rsa(..)"),
            Secret::Dh { .. } => f.write_str("Secret::Dh(..)"),
        }
    }
}

/// A request of ours waiting for its reply.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    /// Seconds since the Unix epoch when the request was made.
    pub created: i64,
    /// The derivation to apply to the reply.
    pub derive: String,
    pub secret: Secret,
}

impl Pending {
    pub fn method(&self) -> Method {
        match self.secret {
            Secret::Rsa(_) => Method::Rsa,
            Secret::Dh { .. } => Method::Dh,
        }
    }
    pub fn derive(&self) -> Derive {
        self.derive.parse().unwrap_or_default()
    }
}

/// A held message: (payload, outbox key).
pub type Held = (Vec<u8>, Vec<u8>);

/// Where the exchange keeps its state and sends its messages. The state-file implementation
/// works inside the router's write transaction; tests use memory.
pub trait Store {
    /// Our own address as `peer` knows it (the sender line of messages we send it).
    fn local_address(&self, peer: &str) -> Result<String, Failure>;
    /// The key we share with `peer`, if any.
    fn key(&self, peer: &str) -> Result<Option<(Scheme, Key)>, Failure>;
    /// Store a new key for `peer` (keeping its signature scheme, or the default one).
    fn set_key(&mut self, peer: &str, key: &Key) -> Result<(), Failure>;
    /// The derivation this peer's exchanges use.
    fn derive_mode(&self, peer: &str) -> Result<Derive, Failure>;
    /// Our pending request to `peer`, expired or not.
    fn pending(&self, peer: &str) -> Result<Option<Pending>, Failure>;
    fn put_pending(&mut self, peer: &str, p: &Pending) -> Result<(), Failure>;
    fn delete_pending(&mut self, peer: &str) -> Result<(), Failure>;
    /// A fresh, strictly increasing timestamp for a message we send.
    fn next_timestamp(&mut self) -> Result<Timestamp, Failure>;
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
    /// Lifetime of a pending request, seconds.
    fn pending_ttl(&self) -> Result<i64, Failure> {
        Ok(DEFAULT_PENDING_TTL)
    }
    /// Smallest clear key accepted, bytes.
    fn clear_min_bytes(&self) -> Result<usize, Failure> {
        Ok(DEFAULT_CLEAR_MIN_BYTES)
    }
    /// Queue a message for `peer` (the outbox).
    fn enqueue(&mut self, peer: &str, bytes: &[u8], msg_key: &[u8]) -> Result<(), Failure>;
    /// Hold an unsigned message (its payload: everything after the signature line) for
    /// `peer` until a key is set.
    fn hold(&mut self, peer: &str, payload: &[u8], msg_key: &[u8]) -> Result<(), Failure>;
    /// Take every held message for `peer` (payload, msg_key), oldest first.
    fn take_held(&mut self, peer: &str) -> Result<Vec<Held>, Failure>;
    /// Largest custom DH prime accepted, bits (embedded groups are always accepted).
    fn dh_custom_max_bits(&self) -> Result<u64, Failure> {
        Ok(super::dh::DEFAULT_CUSTOM_MAX_BITS)
    }
    /// Whether the custom group with this digest passed the safe-prime test before.
    fn group_checked(&self, _digest: &[u8; 32]) -> Result<Option<bool>, Failure> {
        Ok(None)
    }
    /// Remember the safe-prime test's result for a custom group.
    fn remember_group(&mut self, _digest: &[u8; 32], _ok: bool) -> Result<(), Failure> {
        Ok(())
    }
    /// A one-time RSA key pair generated ahead of time, if one is kept.
    fn take_spare_rsa(&mut self) -> Result<Option<KeyPair>, Failure> {
        Ok(None)
    }
    /// Whether the key held for `peer` is provisional (see the module text).
    fn is_provisional(&self, _peer: &str) -> Result<bool, Failure> {
        Ok(false)
    }
    /// Mark the key just set for `peer` provisional; as the initiator, keep our request's
    /// secret for further replies to it.
    fn set_provisional(&mut self, _peer: &str, _secret: Option<&Pending>) -> Result<(), Failure> {
        Ok(())
    }
    /// The secret of our request kept with a provisional key, if any.
    fn provisional_secret(&self, _peer: &str) -> Result<Option<Pending>, Failure> {
        Ok(None)
    }
    /// The key held for `peer` is established (signed or authenticated exchange, a verified
    /// message): drop the provisional mark and any kept secret.
    fn confirm(&mut self, _peer: &str) -> Result<(), Failure> {
        Ok(())
    }
}

/// The key we hold for `peer` if it is established (not provisional).
fn established_key(store: &dyn Store, peer: &str) -> Result<Option<(Scheme, Key)>, Failure> {
    match store.key(peer)? {
        Some(k) if !store.is_provisional(peer)? => Ok(Some(k)),
        _ => Ok(None),
    }
}

/// Our live (unexpired) pending request to `peer`; an expired one is deleted.
pub fn live_pending(store: &mut dyn Store, peer: &str) -> Result<Option<Pending>, Failure> {
    match store.pending(peer)? {
        Some(p) if store.now() - p.created <= store.pending_ttl()? => Ok(Some(p)),
        Some(_) => {
            store.delete_pending(peer)?;
            Ok(None)
        }
        None => Ok(None),
    }
}

/// A control message from us to `peer` with `body`, signed with the key we hold for it
/// (A5.1 "signed with the old keys"), or unsigned if none is established (a provisional key
/// may not be the one the peer holds).
pub fn compose(store: &mut dyn Store, peer: &str, body: &[u8]) -> Result<Message, Failure> {
    let m = compose_unsigned(store, peer, body)?;
    Ok(match established_key(store, peer)? {
        Some((scheme, key)) => sign::sign(m, scheme, &key),
        None => m,
    })
}

/// A message from us to `peer` with `body`, unsigned whatever key we hold.
fn compose_unsigned(store: &mut dyn Store, peer: &str, body: &[u8]) -> Result<Message, Failure> {
    let local = store.local_address(peer)?;
    let t = store.next_timestamp()?;
    Message::compose(&[(t, local.as_bytes())], body, &Rules::unchecked_time())
        .map_err(|e| Failure::config(format!("cannot compose a message from '{local}': {e}")))
}

pub(super) fn send(store: &mut dyn Store, peer: &str, m: &Message) -> Result<(), Failure> {
    let key = m.sender().key();
    store.enqueue(peer, &m.encode(), &key)
}

/// What `init` should start.
#[derive(Debug, Clone)]
pub enum Start {
    /// A5.1 with this one-time key pair (from [`KeyPair::generate`] or a spare).
    Rsa(KeyPair),
    /// A5.2 in this group (one of the embedded RFC 3526 groups for requests of ours).
    Dh(Group),
    /// A5.3 with this key. `secure` says the channel to the peer is HTTPS or SSH.
    Clear { key: Vec<u8>, secure: bool },
}

/// Start an exchange with `peer`: record the pending secret and return the request (signed
/// with the old key, or unsigned). The caller queues it or prints it. A clear key takes
/// effect at once (for the next message). `replace` allows replacing a pending request.
pub fn initiate(
    store: &mut dyn Store,
    peer: &str,
    start: Start,
    derive_mode: Derive,
    replace: bool,
) -> Result<Message, Failure> {
    if !replace && live_pending(store, peer)?.is_some() {
        return Err(Failure::usage(format!(
            "a key exchange with {peer} is already pending; wait for its reply, or replace it \
             (a reply to the old request would then be refused)"
        )));
    }
    let now = store.now();
    let (ctl, pending) = match start {
        Start::Rsa(kp) => {
            let ctl = Control::RsaRequest {
                n: kp.n(),
                e: kp.e(),
            };
            (ctl, Some(Secret::Rsa(kp)))
        }
        Start::Dh(group) => {
            group.validate()?;
            let (x, y) = group.keypair();
            let ctl = Control::DhRequest {
                g: group.g.clone(),
                p: group.p.clone(),
                a: y,
            };
            let secret = Secret::Dh {
                g: format!("{:x}", group.g),
                p: format!("{:x}", group.p),
                x: format!("{x:x}"),
            };
            (ctl, Some(secret))
        }
        Start::Clear { key, secure } => {
            if !secure {
                // A5.3: "If CMR is implemented on top of a secure protocol such as HTTPS or
                // SSH, then the key may be chosen by Alice and sent directly"
                return Err(Failure::usage(format!(
                    "a clear key may only be sent over HTTPS or SSH, and {peer} is not reached \
                     over either"
                )));
            }
            check_clear_len(store, &key)?;
            (Control::Clear { key }, None)
        }
    };
    let msg = compose(store, peer, ctl.format().as_bytes())?;
    match pending {
        Some(secret) => store.put_pending(
            peer,
            &Pending {
                created: now,
                derive: derive_mode.as_str().into(),
                secret,
            },
        )?,
        None => {
            // The clear key: the request above is signed with the old key; the new key
            // takes effect from the next message.
            let Control::Clear { key } = &ctl else {
                unreachable!()
            };
            store.delete_pending(peer)?;
            install(store, peer, Method::Clear, derive_mode, key)?;
            // We chose it and sent it over HTTPS or SSH: established.
            store.confirm(peer)?;
        }
    }
    Ok(msg)
}

fn check_clear_len(store: &dyn Store, key: &[u8]) -> Result<(), Refusal> {
    let min = store.clear_min_bytes().unwrap_or(DEFAULT_CLEAR_MIN_BYTES);
    if key.len() < min {
        return Err(Refusal::new(format!(
            "clear key has {} bytes, fewer than the {min} required (setting keyx_clear_min_bytes)",
            key.len()
        )));
    }
    if key.len() > CLEAR_MAX_BYTES {
        return Err(Refusal::new(format!(
            "clear key has {} bytes, more than the {CLEAR_MAX_BYTES} allowed",
            key.len()
        )));
    }
    Ok(())
}

/// Derive and store the new key, then release held messages signed with it.
fn install(
    store: &mut dyn Store,
    peer: &str,
    method: Method,
    mode: Derive,
    secret: &[u8],
) -> Result<(), Failure> {
    let local = store.local_address(peer)?;
    let key = derive(mode, method, secret, local.as_bytes(), peer.as_bytes());
    store.set_key(peer, &key)?;
    release_held(store, peer)
}

/// Sign every held message for `peer` with the key now held and queue it.
pub fn release_held(store: &mut dyn Store, peer: &str) -> Result<(), Failure> {
    let Some((scheme, key)) = store.key(peer)? else {
        return Ok(());
    };
    for (payload, msg_key) in store.take_held(peer)? {
        let d = sign::digest(scheme, &key, &payload);
        let mut bytes = format!("1{}\r\n", crate::wire::hex(&d)).into_bytes();
        bytes.extend_from_slice(&payload);
        store.enqueue(peer, &bytes, &msg_key)?;
    }
    Ok(())
}

/// What happened to an incoming control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A request was answered (reply queued) and the new key stored.
    Replied,
    /// A reply or clear key completed an exchange: the new key is stored.
    KeySet,
    /// Ignored on purpose (the simultaneous-exchange tie-break); nothing changed.
    Ignored,
    /// Refused (malformed, weak or unexpected); nothing changed.
    Refused,
}

/// The outcome of [`receive`] (and `keyx::handle`), for the router's decision and `--json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyxOutcome {
    /// `rsa-request`, `rsa-reply`, `dh-request`, `dh-reply`, `clear` or `malformed`.
    pub kind: &'static str,
    pub action: Action,
    /// Why it was ignored or refused; what was done otherwise.
    pub reason: String,
}

impl fmt::Display for KeyxOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = match self.action {
            Action::Replied => "replied",
            Action::KeySet => "key set",
            Action::Ignored => "ignored",
            Action::Refused => "refused",
        };
        write!(f, "{} {a}: {}", self.kind, self.reason)
    }
}

impl KeyxOutcome {
    /// True when the message did what it asked (a reply queued or a key set).
    pub fn accepted(&self) -> bool {
        matches!(self.action, Action::Replied | Action::KeySet)
    }
    fn refused(kind: &'static str, r: impl fmt::Display) -> KeyxOutcome {
        KeyxOutcome {
            kind,
            action: Action::Refused,
            reason: r.to_string(),
        }
    }
}

/// Handle an incoming control message from `peer` (the first line of its header), whose
/// signature the router has already verified if it is signed. `secure` says it came over
/// HTTPS or SSH. `authenticated` says the transport itself authenticated the sender as
/// `peer` (an SSH forced command per peer, an HTTPS client certificate): then an unsigned
/// message from a peer we share a key with is handled too (the peer lost its key, or rotates
/// it in the clear over SSH), and a reply goes back unsigned, as the peer holds no key to
/// check it with. Refusals come back as an outcome with no state changed; Err is only for
/// trouble with the store.
pub fn receive(
    store: &mut dyn Store,
    peer: &str,
    msg: &Message,
    secure: bool,
    authenticated: bool,
) -> Result<KeyxOutcome, Failure> {
    let ctl = match Control::parse(msg.body()) {
        Ok(c) => c,
        Err(e) => return Ok(KeyxOutcome::refused("malformed", e)),
    };
    let incoming = match admit(store, peer, msg, ctl.kind(), authenticated)? {
        Ok(incoming) => incoming,
        Err(refused) => return Ok(refused),
    };
    match ctl {
        Control::RsaRequest { n, e } => rsa_request(store, &incoming, &n, &e),
        Control::DhRequest { g, p, a } => dh_request(store, &incoming, Group { g, p }, &a),
        Control::RsaReply { c } => rsa_reply(store, &incoming, &c),
        Control::DhReply { b } => dh_reply(store, &incoming, &b),
        Control::Clear { key } => clear(store, &incoming, secure, &key),
    }
}

/// An incoming control message that passed [`admit`]: who sent it and how to answer.
struct Incoming<'a> {
    peer: &'a str,
    /// The control message's kind, as [`KeyxOutcome::kind`].
    kind: &'static str,
    /// The key this exchange sets is established when its messages were signed with an
    /// established key or the transport authenticated the peer; provisional otherwise.
    trusted: bool,
    /// The peer sent it unsigned although we hold a key, and the transport vouches for it:
    /// its reply is unsigned too.
    unsigned_reply: bool,
}

impl Incoming<'_> {
    /// A reply to the peer carrying `body`, signed unless `unsigned_reply`.
    fn reply(&self, store: &mut dyn Store, body: &[u8]) -> Result<Message, Failure> {
        if self.unsigned_reply {
            compose_unsigned(store, self.peer, body)
        } else {
            compose(store, self.peer, body)
        }
    }

    fn refused(&self, r: impl fmt::Display) -> KeyxOutcome {
        KeyxOutcome::refused(self.kind, r)
    }
}

/// The checks every control message of `kind` passes before its own: one hop, and signed
/// exactly when a key is established (or unsigned over a transport that authenticated the
/// peer). Err holds the refusal.
fn admit<'a>(
    store: &mut dyn Store,
    peer: &'a str,
    msg: &Message,
    kind: &'static str,
    authenticated: bool,
) -> Result<Result<Incoming<'a>, KeyxOutcome>, Failure> {
    if msg.ids().len() != 1 {
        return Ok(Err(KeyxOutcome::refused(
            kind,
            "key exchange messages travel one hop; this one has several header lines",
        )));
    }
    // A provisional key is not established: its holder may be a forger (see the module text).
    let keyed = established_key(store, peer)?.is_some();
    let signed = msg.signature().is_signed();
    // The key this exchange sets is established when its messages were signed with an
    // established key or the transport authenticated the peer; provisional otherwise.
    let trusted = signed || authenticated;
    if !keyed && signed {
        // A5.1: "If no key has been established, then both messages are unsigned."
        return Ok(Err(KeyxOutcome::refused(
            kind,
            "signed key exchange from a peer we hold no key for: its signature cannot be \
             checked (if a key was lost, forget it on both sides and start over)",
        )));
    }
    // The peer sent it unsigned although we hold a key, and the transport vouches for it:
    // to the peer no key is established, so its reply is unsigned too (A5.1 "If no key has
    // been established, then both messages are unsigned").
    let unsigned_reply = keyed && !signed;
    if unsigned_reply && !authenticated {
        // A5.1: "Otherwise, both messages are signed with the old keys"
        // No standing per-peer exception: anyone could then replace this key (and with an
        // RSA request of their own, learn the new one). The operator who knows the peer lost
        // its key (cmr-peer keeps exchanged keys in memory only) forgets ours once, and the
        // next request is a first contact; a peer that still holds the key accepts a
        // re-keying we start, signed with it.
        return Ok(Err(KeyxOutcome::refused(
            kind,
            format!(
                "unsigned key exchange from a peer we share a key with (A5.1: it must be \
                 signed with the old key, or come over a transport that authenticated this \
                 peer); if {peer} lost its key, run `cmr-keyx forget {peer}` and let it send \
                 the request again; if it still holds it, re-key from here: `cmr-keyx init \
                 {peer}`"
            ),
        )));
    }
    Ok(Ok(Incoming {
        peer,
        kind,
        trusted,
        unsigned_reply,
    }))
}

/// A5.1 `RSA key exchange request=n,e.`: answer with a new key encrypted to (n, e).
fn rsa_request(
    store: &mut dyn Store,
    incoming: &Incoming,
    n: &BigUint,
    e: &BigUint,
) -> Result<KeyxOutcome, Failure> {
    let (peer, kind, trusted) = (incoming.peer, incoming.kind, incoming.trusted);
    if let Err(r) = rsa::check_public(n, e) {
        return Ok(incoming.refused(r));
    }
    if let Some(o) = tie_break(store, peer, kind)? {
        return Ok(o);
    }
    let (k, c) = rsa::respond(n, e);
    let reply = incoming.reply(store, Control::RsaReply { c }.format().as_bytes())?;
    send(store, peer, &reply)?;
    let mode = store.derive_mode(peer)?;
    install(store, peer, Method::Rsa, mode, &k)?;
    mark(store, peer, trusted, None)?;
    Ok(KeyxOutcome {
        kind,
        action: Action::Replied,
        reason: format!(
            "answered RSA request ({} bits); new key stored{}",
            n.bits(),
            provisional_note(trusted)
        ),
    })
}

/// A5.2 `DH key exchange request=g,p,A.`: answer with our public value B.
fn dh_request(
    store: &mut dyn Store,
    incoming: &Incoming,
    group: Group,
    a: &BigUint,
) -> Result<KeyxOutcome, Failure> {
    let (peer, kind, trusted) = (incoming.peer, incoming.kind, incoming.trusted);
    if let Err(r) = check_group(store, &group, a)? {
        return Ok(incoming.refused(r));
    }
    if let Some(o) = tie_break(store, peer, kind)? {
        return Ok(o);
    }
    let (x, y) = group.keypair();
    let k = group.shared(a, &x);
    let reply = incoming.reply(store, Control::DhReply { b: y }.format().as_bytes())?;
    send(store, peer, &reply)?;
    let mode = store.derive_mode(peer)?;
    install(store, peer, Method::Dh, mode, &k)?;
    mark(store, peer, trusted, None)?;
    Ok(KeyxOutcome {
        kind,
        action: Action::Replied,
        reason: format!(
            "answered DH request ({} bits); new key stored{}",
            group.p.bits(),
            provisional_note(trusted)
        ),
    })
}

/// A5.1 `RSA key exchange reply=c.`: the answer to our pending RSA request.
fn rsa_reply(
    store: &mut dyn Store,
    incoming: &Incoming,
    c: &BigUint,
) -> Result<KeyxOutcome, Failure> {
    let (peer, kind, trusted) = (incoming.peer, incoming.kind, incoming.trusted);
    let Some(pending) = pending_or_kept(store, peer, trusted)? else {
        return Ok(incoming.refused("no RSA request of ours is pending"));
    };
    let Secret::Rsa(kp) = &pending.secret else {
        return Ok(incoming.refused("our pending request is a DH request, not RSA"));
    };
    let k = match kp.recover(c) {
        Ok(k) => k,
        Err(r) => return Ok(incoming.refused(r)),
    };
    store.delete_pending(peer)?;
    install(store, peer, Method::Rsa, pending.derive(), &k)?;
    mark(store, peer, trusted, Some(&pending))?;
    Ok(KeyxOutcome {
        kind,
        action: Action::KeySet,
        reason: format!(
            "RSA exchange complete; new key stored{}",
            provisional_note(trusted)
        ),
    })
}

/// A5.2 `DH key exchange reply=B.`: the answer to our pending DH request.
fn dh_reply(
    store: &mut dyn Store,
    incoming: &Incoming,
    b: &BigUint,
) -> Result<KeyxOutcome, Failure> {
    let (peer, kind, trusted) = (incoming.peer, incoming.kind, incoming.trusted);
    let Some(pending) = pending_or_kept(store, peer, trusted)? else {
        return Ok(incoming.refused("no DH request of ours is pending"));
    };
    let Secret::Dh { g, p, x } = &pending.secret else {
        return Ok(incoming.refused("our pending request is an RSA request, not DH"));
    };
    let num = |h: &str| BigUint::parse_bytes(h.as_bytes(), 16).unwrap_or_default();
    let group = Group {
        g: num(g),
        p: num(p),
    };
    if let Err(r) = group.check_element(b, "public value B") {
        return Ok(incoming.refused(r));
    }
    let k = group.shared(b, &num(x));
    store.delete_pending(peer)?;
    install(store, peer, Method::Dh, pending.derive(), &k)?;
    mark(store, peer, trusted, Some(&pending))?;
    Ok(KeyxOutcome {
        kind,
        action: Action::KeySet,
        reason: format!(
            "DH exchange complete; new key stored{}",
            provisional_note(trusted)
        ),
    })
}

/// A5.3 `Clear key exchange=k.`: the key itself, over a secure channel only.
fn clear(
    store: &mut dyn Store,
    incoming: &Incoming,
    secure: bool,
    key: &[u8],
) -> Result<KeyxOutcome, Failure> {
    let (peer, kind, trusted) = (incoming.peer, incoming.kind, incoming.trusted);
    if !secure {
        // A5.3: clear keys only "on top of a secure protocol such as HTTPS or SSH"
        return Ok(incoming.refused(
            "clear key exchange over a channel that is not secure (A5.3 needs HTTPS or SSH)",
        ));
    }
    if let Err(r) = check_clear_len(store, key) {
        return Ok(incoming.refused(r));
    }
    // The peer switched already; a request of ours could no longer complete
    // consistently, so it is dropped.
    store.delete_pending(peer)?;
    let mode = store.derive_mode(peer)?;
    install(store, peer, Method::Clear, mode, key)?;
    mark(store, peer, trusted, None)?;
    Ok(KeyxOutcome {
        kind,
        action: Action::KeySet,
        reason: format!("clear key stored{}", provisional_note(trusted)),
    })
}

/// After an exchange set a key: established when `trusted`, else provisional (keeping the
/// initiator's `secret` for further replies to the same request).
fn mark(
    store: &mut dyn Store,
    peer: &str,
    trusted: bool,
    secret: Option<&Pending>,
) -> Result<(), Failure> {
    if trusted {
        store.confirm(peer)
    } else {
        store.set_provisional(peer, secret)
    }
}

fn provisional_note(trusted: bool) -> &'static str {
    if trusted {
        ""
    } else {
        " (provisional until a message signed with it verifies)"
    }
}

/// The request a reply answers: the pending one, else (for an unsigned reply) the one whose
/// secret was kept with a provisional key, answered again (the peer answered a forged
/// request in our name first, say).
fn pending_or_kept(
    store: &mut dyn Store,
    peer: &str,
    trusted: bool,
) -> Result<Option<Pending>, Failure> {
    if let Some(p) = live_pending(store, peer)? {
        return Ok(Some(p));
    }
    if trusted || !store.is_provisional(peer)? {
        return Ok(None);
    }
    Ok(store
        .provisional_secret(peer)?
        .filter(|p| store.now() - p.created <= store.pending_ttl().unwrap_or(DEFAULT_PENDING_TTL)))
}

/// A peer's group and public value: cheap checks first, then the safe-prime test, whose
/// result is remembered per group.
fn check_group(
    store: &mut dyn Store,
    group: &Group,
    a: &BigUint,
) -> Result<Result<(), Refusal>, Failure> {
    let max = store.dh_custom_max_bits()?;
    if let Err(r) = group
        .precheck(max)
        .and_then(|_| group.check_element(a, "public value A"))
    {
        return Ok(Err(r));
    }
    if group.known_id().is_some() {
        return Ok(Ok(()));
    }
    let d = group.digest();
    Ok(match store.group_checked(&d)? {
        Some(true) => Ok(()),
        Some(false) => Err(Refusal::new(
            "DH modulus p is not a safe prime (this group failed before)",
        )),
        None => {
            let r = group.check_safe_prime();
            store.remember_group(&d, r.is_ok())?;
            r
        }
    })
}

/// A request arrived while ours is pending: the bytewise-smaller address gives way.
fn tie_break(
    store: &mut dyn Store,
    peer: &str,
    kind: &'static str,
) -> Result<Option<KeyxOutcome>, Failure> {
    if live_pending(store, peer)?.is_none() {
        return Ok(None);
    }
    let local = store.local_address(peer)?;
    if local.as_bytes() < peer.as_bytes() {
        // We give way: abandon our request, answer theirs.
        store.delete_pending(peer)?;
        Ok(None)
    } else {
        Ok(Some(KeyxOutcome {
            kind,
            action: Action::Ignored,
            reason: "our own request to this peer is pending and our address is the larger: \
                     the peer answers ours instead"
                .into(),
        }))
    }
}
