//! Key exchange over the state file: the [`Store`] the router and `cmr-keyx` use, the
//! router's hooks ([`handle`], [`before_forward`]) and the settings.
//!
//! Tables (migration appended to `state::schema`): `keyx_pending` (our requests waiting for
//! a reply, with their one-time secrets), `keyx_peers` (per-peer derivation and the last
//! exchange), `keyx_held` (first-contact messages waiting for a key), `keyx_groups` (custom
//! DH groups already checked), `keyx_retired` (replaced keys during their grace period),
//! `keyx_spare` (one-time RSA key pairs generated ahead), and `keyx_provisional` (keys set
//! by an unauthenticated exchange and not yet confirmed by a verified signature, see
//! [`exchange`](super::exchange); a later migration).
//! Keys themselves live in `peers` (via `state::peers::set_key`).

use super::derive::{Derive, Method};
use super::exchange::{
    self, Action, FirstContact, FirstContactPolicy, KeyxOutcome, Pending, Store,
};
use super::rsa::KeyPair;
use super::settings::num_setting;
pub use super::settings::{get_setting, setting, validate_setting, Setting, SETTINGS};
use crate::exit::Failure;
use crate::sign::{Key, Scheme};
use crate::state::{clock, db_failure, outbox, peers, settings};
use crate::via::Transport;
use crate::wire::{Message, Timestamp};
use rusqlite::{OptionalExtension, Transaction};
use serde::Serialize;

/// The state-file [`Store`], working inside one write transaction.
pub struct DbStore<'a, 'c> {
    tx: &'a Transaction<'c>,
    settings: settings::Settings,
}

impl<'a, 'c> DbStore<'a, 'c> {
    pub fn new(tx: &'a Transaction<'c>) -> Result<Self, Failure> {
        let settings = settings::Settings::load(tx)?;
        Ok(DbStore { tx, settings })
    }
}

fn unix_now() -> i64 {
    Timestamp::now().unix_secs()
}

impl Store for DbStore<'_, '_> {
    fn local_address(&self, peer: &str) -> Result<String, Failure> {
        // The router's rule for forwards (the first of ours with the peer's scheme, else the
        // primary one), so key exchange and forwards name us alike.
        self.settings
            .our_address_for(peer)
            .map(str::to_string)
            .ok_or_else(|| {
                Failure::config(
                    "the state file has no address of ours: run cmr-route init --address ADDR",
                )
            })
    }
    fn key(&self, peer: &str) -> Result<Option<(Scheme, Key)>, Failure> {
        Ok(peers::get(self.tx, peer)?.and_then(|p| p.key.map(|k| (p.scheme, k))))
    }
    fn set_key(&mut self, peer: &str, key: &Key) -> Result<(), Failure> {
        let current = peers::get(self.tx, peer)?;
        let scheme = current.as_ref().map(|p| p.scheme).unwrap_or_default();
        if let Some(old) = current.and_then(|p| p.key) {
            // A provisional key was never established: nothing signed with it needs a grace.
            if !self.is_provisional(peer)? {
                retire(self.tx, peer, scheme, &old)?;
            }
        }
        peers::set_key(self.tx, peer, scheme, key)
    }
    fn derive_mode(&self, peer: &str) -> Result<Derive, Failure> {
        let own: Option<String> = self
            .tx
            .query_row(
                "SELECT derive FROM keyx_peers WHERE peer = ?1",
                [peer],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_failure)?
            .flatten();
        let v = match own {
            Some(v) => v,
            None => get_setting(self.tx, "keyx_derive")?,
        };
        Ok(v.parse().unwrap_or_default())
    }
    fn pending(&self, peer: &str) -> Result<Option<Pending>, Failure> {
        let row: Option<(i64, String)> = self
            .tx
            .query_row(
                "SELECT created, data FROM keyx_pending WHERE peer = ?1",
                [peer],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db_failure)?;
        match row {
            None => Ok(None),
            Some((created, d)) => serde_json::from_str::<Pending>(&d)
                .map(|mut p| {
                    // The column is what `list` shows and what an operator may edit.
                    p.created = created;
                    Some(p)
                })
                .map_err(|e| {
                    Failure::config(format!(
                        "state file: pending key exchange with {peer} is damaged ({e}); \
                         run cmr-keyx forget {peer}"
                    ))
                }),
        }
    }
    fn put_pending(&mut self, peer: &str, p: &Pending) -> Result<(), Failure> {
        let data = serde_json::to_string(p)
            .map_err(|e| Failure::software(format!("pending exchange: {e}")))?;
        self.tx
            .execute(
                "INSERT INTO keyx_pending(peer, method, created, data) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(peer) DO UPDATE SET method = excluded.method,
                     created = excluded.created, data = excluded.data",
                rusqlite::params![peer, p.method().label(), p.created, data],
            )
            .map_err(db_failure)?;
        Ok(())
    }
    fn delete_pending(&mut self, peer: &str) -> Result<(), Failure> {
        self.tx
            .execute("DELETE FROM keyx_pending WHERE peer = ?1", [peer])
            .map_err(db_failure)?;
        Ok(())
    }
    fn next_timestamp(&mut self) -> Result<Timestamp, Failure> {
        clock::next(self.tx, None)
    }
    fn now(&self) -> i64 {
        unix_now()
    }
    fn pending_ttl(&self) -> Result<i64, Failure> {
        num_setting(self.tx, "keyx_pending_ttl")
    }
    fn clear_min_bytes(&self) -> Result<usize, Failure> {
        Ok(num_setting(self.tx, "keyx_clear_min_bytes")?.max(1) as usize)
    }
    fn dh_custom_max_bits(&self) -> Result<u64, Failure> {
        Ok(num_setting(self.tx, "keyx_dh_custom_max_bits")?.max(2048) as u64)
    }
    fn group_checked(&self, digest: &[u8; 32]) -> Result<Option<bool>, Failure> {
        self.tx
            .query_row(
                "SELECT ok FROM keyx_groups WHERE digest = ?1",
                [&digest[..]],
                |r| r.get::<_, bool>(0),
            )
            .optional()
            .map_err(db_failure)
    }
    fn remember_group(&mut self, digest: &[u8; 32], ok: bool) -> Result<(), Failure> {
        self.tx
            .execute(
                "INSERT OR REPLACE INTO keyx_groups(digest, ok, checked) VALUES (?1, ?2, ?3)",
                rusqlite::params![&digest[..], ok, crate::state::now().0],
            )
            .map_err(db_failure)?;
        Ok(())
    }
    fn enqueue(&mut self, peer: &str, bytes: &[u8], msg_key: &[u8]) -> Result<(), Failure> {
        outbox::enqueue(self.tx, peer, bytes, msg_key)?;
        Ok(())
    }
    fn hold(&mut self, peer: &str, payload: &[u8], msg_key: &[u8]) -> Result<(), Failure> {
        self.tx
            .execute(
                "INSERT OR IGNORE INTO keyx_held(dest, payload, msg_key, created)
                 VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![peer, payload, msg_key, crate::state::now().0],
            )
            .map_err(db_failure)?;
        Ok(())
    }
    fn take_held(&mut self, peer: &str) -> Result<Vec<exchange::Held>, Failure> {
        let rows = {
            let mut st = self
                .tx
                .prepare("SELECT payload, msg_key FROM keyx_held WHERE dest = ?1 ORDER BY id")
                .map_err(db_failure)?;
            let it = st
                .query_map([peer], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db_failure)?;
            it.collect::<Result<Vec<_>, _>>().map_err(db_failure)?
        };
        self.tx
            .execute("DELETE FROM keyx_held WHERE dest = ?1", [peer])
            .map_err(db_failure)?;
        Ok(rows)
    }
    fn is_provisional(&self, peer: &str) -> Result<bool, Failure> {
        is_provisional(self.tx, peer)
    }
    fn set_provisional(&mut self, peer: &str, secret: Option<&Pending>) -> Result<(), Failure> {
        let data = match secret {
            Some(p) => Some(
                serde_json::to_string(p)
                    .map_err(|e| Failure::software(format!("provisional key: {e}")))?,
            ),
            None => None,
        };
        self.tx
            .execute(
                "INSERT OR REPLACE INTO keyx_provisional(peer, key, since, secret)
                 SELECT address, key, ?2, ?3 FROM peers WHERE address = ?1 AND key IS NOT NULL",
                rusqlite::params![peer, unix_now(), data],
            )
            .map_err(db_failure)?;
        Ok(())
    }
    fn provisional_secret(&self, peer: &str) -> Result<Option<Pending>, Failure> {
        let d: Option<Option<String>> = self
            .tx
            .query_row(
                "SELECT secret FROM keyx_provisional WHERE peer = ?1",
                [peer],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_failure)?;
        Ok(d.flatten().and_then(|d| serde_json::from_str(&d).ok()))
    }
    fn confirm(&mut self, peer: &str) -> Result<(), Failure> {
        confirm(self.tx, peer)
    }
    fn take_spare_rsa(&mut self) -> Result<Option<KeyPair>, Failure> {
        let row: Option<(i64, String)> = self
            .tx
            .query_row(
                "SELECT id, data FROM keyx_spare ORDER BY id LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db_failure)?;
        let Some((id, data)) = row else {
            return Ok(None);
        };
        self.tx
            .execute("DELETE FROM keyx_spare WHERE id = ?1", [id])
            .map_err(db_failure)?;
        Ok(serde_json::from_str(&data).ok())
    }
}

/// Whether the key held for `peer` is provisional: set by an unauthenticated exchange and
/// not yet confirmed by a message that verified with it. The router takes unsigned messages
/// from such a peer as from a peer we hold no key for.
pub fn is_provisional(conn: &rusqlite::Connection, peer: &str) -> Result<bool, Failure> {
    // Only while the key is the one the exchange set: a key set any other way (cmr-route peer
    // add --key-hex, say) is established.
    conn.prepare_cached(
        "SELECT 1 FROM keyx_provisional v JOIN peers p ON p.address = v.peer AND p.key = v.key
         WHERE v.peer = ?1",
    )
    .map_err(db_failure)?
    .query_row([peer], |_| Ok(()))
    .optional()
    .map(|r| r.is_some())
    .map_err(db_failure)
}

/// A message from `peer` verified with the key held for it: the key is established (key
/// confirmation). The router calls this for every verified message; it costs one lookup.
pub fn confirm(tx: &Transaction, peer: &str) -> Result<(), Failure> {
    tx.prepare_cached("DELETE FROM keyx_provisional WHERE peer = ?1")
        .map_err(db_failure)?
        .execute([peer])
        .map_err(db_failure)?;
    Ok(())
}

/// Keep the key being replaced for `keyx_retired_grace` seconds: messages the peer signed
/// with it before it learnt the new key are still in flight.
fn retire(tx: &Transaction, peer: &str, scheme: Scheme, old: &Key) -> Result<(), Failure> {
    let grace = num_setting(tx, "keyx_retired_grace")?;
    if grace <= 0 {
        return Ok(());
    }
    tx.execute(
        "INSERT OR REPLACE INTO keyx_retired(peer, scheme, key, until) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![peer, scheme.as_str(), old.bytes(), unix_now() + grace],
    )
    .map_err(db_failure)?;
    Ok(())
}

/// The key `peer` used before the last exchange, while its grace period lasts (setting
/// `keyx_retired_grace`, default 3600 s; 0 keeps none). For the router: when a message's
/// signature fails with the current key, a message that verifies with this one was signed
/// before the peer switched and may be accepted. Never for key-exchange messages: those
/// must verify with the current key (the simultaneous-exchange rule depends on it).
pub fn retired_key(
    conn: &rusqlite::Connection,
    peer: &str,
) -> Result<Option<(Scheme, Key)>, Failure> {
    let row: Option<(String, Vec<u8>, i64)> = conn
        .query_row(
            "SELECT scheme, key, until FROM keyx_retired WHERE peer = ?1",
            [peer],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(db_failure)?;
    Ok(match row {
        Some((s, k, until)) if until >= unix_now() => {
            s.parse().ok().map(|s: Scheme| (s, Key::new(k)))
        }
        _ => None,
    })
}

/// Record a completed exchange for `list`/`show`.
fn note_exchange(tx: &Transaction, peer: &str, method: &str) -> Result<(), Failure> {
    tx.execute(
        "INSERT INTO keyx_peers(peer, last_method, last_exchange, exchanges) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT(peer) DO UPDATE SET last_method = excluded.last_method,
             last_exchange = excluded.last_exchange, exchanges = keyx_peers.exchanges + 1",
        rusqlite::params![peer, method, crate::state::now().0],
    )
    .map_err(db_failure)?;
    Ok(())
}

fn method_of(kind: &str) -> &'static str {
    match kind {
        k if k.starts_with("rsa") => "rsa",
        k if k.starts_with("dh") => "dh",
        _ => "clear",
    }
}

/// The router's hand-off (route step 5): handle a control message from `peer_address`, which
/// came in over `via`, inside the router's write transaction. The signature, if any, has been
/// verified with the key held for the peer. `authenticated`: the transport authenticated the
/// sender as `peer_address` (`RouteOptions::authenticated_sender`, e.g. an SSH forced command
/// per peer); then an unsigned control message from a peer we hold a key for is handled
/// (and answered unsigned) instead of refused. A reply goes to the outbox. A refusal is an
/// Err (65 for a malformed body, 77 otherwise) and the router rolls back whatever was begun;
/// a deliberate no-op (the simultaneous-exchange tie-break) is Ok with `Action::Ignored`.
pub fn handle(
    tx: &Transaction,
    msg: &Message,
    peer_address: &str,
    via: Transport,
    authenticated: bool,
) -> Result<KeyxOutcome, Failure> {
    let mut store = DbStore::new(tx)?;
    let o = exchange::receive(
        &mut store,
        peer_address,
        msg,
        via.is_secure(),
        authenticated,
    )?;
    match o.action {
        Action::Refused => {
            let code = if o.kind == "malformed" {
                crate::exit::DATAERR
            } else {
                crate::exit::NOPERM
            };
            Err(Failure::new(
                code,
                format!("key exchange ({}) refused: {}", o.kind, o.reason),
            ))
        }
        Action::Replied | Action::KeySet => {
            note_exchange(tx, peer_address, method_of(o.kind))?;
            Ok(o)
        }
        Action::Ignored => Ok(o),
    }
}

/// The router's first-contact hook: call it for a forward to `dest` before queueing it.
/// `bytes` is the forward as built (unsigned when no key is held), `msg_key` its outbox key.
/// `Send`: queue it as built. `Held`: keyx keeps it and queues it, signed with the new key,
/// in the transaction that completes the exchange (a request has been queued if none was
/// pending). `Refused`: do not send it. Setting `keyx_first_contact` decides (default
/// `unsigned`, which always answers `Send`).
pub fn before_forward(
    tx: &Transaction,
    dest: &str,
    bytes: &[u8],
    msg_key: &[u8],
) -> Result<FirstContact, Failure> {
    if bytes.first() == Some(&b'1') {
        // Built signed: a key is held. The common case costs nothing.
        return Ok(FirstContact::Send);
    }
    let policy: FirstContactPolicy = get_setting(tx, "keyx_first_contact")?
        .parse()
        .unwrap_or_default();
    if policy == FirstContactPolicy::Unsigned {
        return Ok(FirstContact::Send);
    }
    let method: Method = get_setting(tx, "keyx_first_contact_method")?
        .parse()
        .unwrap_or(Method::Dh);
    let group: u32 = get_setting(tx, "keyx_dh_group")?.parse().unwrap_or(14);
    let mut store = DbStore::new(tx)?;
    exchange::first_contact(&mut store, dest, bytes, msg_key, policy, method, group)
}

/// Is (dest, message) held for first contact? The router may treat it like a queued forward
/// (`outbox::seen`), so a message it has several reasons to forward is held once.
pub fn is_held(conn: &rusqlite::Connection, dest: &str, msg_key: &[u8]) -> Result<bool, Failure> {
    conn.prepare_cached("SELECT 1 FROM keyx_held WHERE dest = ?1 AND msg_key = ?2")
        .map_err(db_failure)?
        .query_row(rusqlite::params![dest, msg_key], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
        .map_err(db_failure)
}

/// Start a new exchange with every peer that has held messages and no live request (its
/// request expired or was forgotten). Returns those peers. `cmr-keyx retry`, e.g. from cron.
pub fn retry_held(tx: &Transaction) -> Result<Vec<String>, Failure> {
    let dests: Vec<String> = {
        let mut st = tx
            .prepare("SELECT DISTINCT dest FROM keyx_held ORDER BY dest")
            .map_err(db_failure)?;
        let it = st.query_map([], |r| r.get(0)).map_err(db_failure)?;
        it.collect::<Result<Vec<_>, _>>().map_err(db_failure)?
    };
    let method: Method = get_setting(tx, "keyx_first_contact_method")?
        .parse()
        .unwrap_or(Method::Dh);
    let group: u32 = get_setting(tx, "keyx_dh_group")?.parse().unwrap_or(14);
    let mut store = DbStore::new(tx)?;
    let mut started = Vec::new();
    for d in dests {
        if store.key(&d)?.is_some() {
            // A key arrived by other means (cmr-keyx set): send what waited.
            exchange::release_held(&mut store, &d)?;
            continue;
        }
        if exchange::live_pending(&mut store, &d)?.is_some() {
            continue;
        }
        let start = match method {
            Method::Rsa => match store.take_spare_rsa()? {
                Some(kp) => exchange::Start::Rsa(kp),
                None => exchange::Start::Dh(default_group(group)),
            },
            _ => exchange::Start::Dh(default_group(group)),
        };
        let mode = store.derive_mode(&d)?;
        let req = exchange::initiate(&mut store, &d, start, mode, false)?;
        let key = req.sender().key();
        store.enqueue(&d, &req.encode(), &key)?;
        started.push(d);
    }
    Ok(started)
}

fn default_group(id: u32) -> super::dh::Group {
    super::dh::Group::modp(id)
        .or_else(|| super::dh::Group::modp(14))
        .expect("group 14 is embedded")
}

/// What `cmr-keyx list`/`show` print about one peer. Keys are never printed.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    pub peer: String,
    pub has_key: bool,
    /// [`key_id`] of the key held, so both ends can check they hold the same one.
    pub key_id: Option<String>,
    /// The key came from an unauthenticated exchange and no message signed with it has
    /// verified yet (see [`exchange`](super::exchange)).
    pub provisional: bool,
    pub scheme: String,
    pub derive: String,
    /// Whether the derivation is the peer's own setting (else the default).
    pub derive_set: bool,
    pub pending: Option<String>,
    pub pending_since: Option<i64>,
    pub pending_expired: bool,
    pub held: i64,
    pub last_method: Option<String>,
    pub last_exchange: Option<String>,
    pub exchanges: i64,
}

/// A key's fingerprint: the first 8 bytes of SHA-256 over a fixed label and the key, in
/// hex. Both peers compute the same one for the same key; it tells no more about the key
/// than any message signed with it.
pub fn key_id(key: &Key) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"cmr key id\0");
    h.update(key.bytes());
    crate::wire::hex(&h.finalize()[..8])
}

/// Status of `peer` (None when nothing at all is known about it).
pub fn status(tx: &Transaction, peer: &str) -> Result<Option<PeerStatus>, Failure> {
    let p = peers::get(tx, peer)?;
    type Row = (Option<String>, Option<String>, Option<String>, i64);
    let row: Option<Row> = tx
        .query_row(
            "SELECT derive, last_method, last_exchange, exchanges FROM keyx_peers WHERE peer = ?1",
            [peer],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(db_failure)?;
    let pend: Option<(String, i64)> = tx
        .query_row(
            "SELECT method, created FROM keyx_pending WHERE peer = ?1",
            [peer],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db_failure)?;
    let held: i64 = tx
        .query_row(
            "SELECT count(*) FROM keyx_held WHERE dest = ?1",
            [peer],
            |r| r.get(0),
        )
        .map_err(db_failure)?;
    if p.is_none() && row.is_none() && pend.is_none() && held == 0 {
        return Ok(None);
    }
    let store = DbStore::new(tx)?;
    let ttl = store.pending_ttl()?;
    let (derive_own, last_method, last_exchange, exchanges) = row.unwrap_or((None, None, None, 0));
    Ok(Some(PeerStatus {
        peer: peer.to_string(),
        has_key: p.as_ref().is_some_and(|p| p.key.is_some()),
        key_id: p.as_ref().and_then(|p| p.key.as_ref()).map(key_id),
        provisional: p.as_ref().is_some_and(|p| p.key.is_some()) && is_provisional(tx, peer)?,
        scheme: p.map(|p| p.scheme).unwrap_or_default().to_string(),
        derive: store.derive_mode(peer)?.to_string(),
        derive_set: derive_own.is_some(),
        pending_expired: pend.as_ref().is_some_and(|(_, c)| unix_now() - c > ttl),
        pending: pend.as_ref().map(|(m, _)| m.clone()),
        pending_since: pend.map(|(_, c)| c),
        held,
        last_method,
        last_exchange,
        exchanges,
    }))
}

/// Every peer with a key, an exchange record, a pending request or held messages.
pub fn list(tx: &Transaction) -> Result<Vec<PeerStatus>, Failure> {
    let names: Vec<String> = {
        let mut st = tx
            .prepare(
                "SELECT address FROM peers WHERE key IS NOT NULL
                 UNION SELECT peer FROM keyx_peers UNION SELECT peer FROM keyx_pending
                 UNION SELECT dest FROM keyx_held ORDER BY 1",
            )
            .map_err(db_failure)?;
        let it = st.query_map([], |r| r.get(0)).map_err(db_failure)?;
        it.collect::<Result<Vec<_>, _>>().map_err(db_failure)?
    };
    let mut out = Vec::new();
    for n in names {
        if let Some(s) = status(tx, &n)? {
            out.push(s);
        }
    }
    Ok(out)
}

/// Set a peer's own derivation (None: back to the default setting).
pub fn set_derive(tx: &Transaction, peer: &str, d: Option<Derive>) -> Result<(), Failure> {
    tx.execute(
        "INSERT INTO keyx_peers(peer, derive) VALUES (?1, ?2)
         ON CONFLICT(peer) DO UPDATE SET derive = excluded.derive",
        rusqlite::params![peer, d.map(|d| d.as_str())],
    )
    .map_err(db_failure)?;
    Ok(())
}

/// Set a key by hand (an exchange made outside CMR), releasing held messages.
pub fn set_key(
    tx: &Transaction,
    peer: &str,
    scheme: Option<Scheme>,
    key: Option<&Key>,
) -> Result<(), Failure> {
    let current = peers::get(tx, peer)?;
    let scheme = scheme
        .or(current.as_ref().map(|p| p.scheme))
        .unwrap_or_default();
    match key {
        Some(k) => {
            peers::set_key(tx, peer, scheme, k)?;
            confirm(tx, peer)?;
            note_exchange(tx, peer, "manual")?;
            let mut store = DbStore::new(tx)?;
            store.delete_pending(peer)?;
            exchange::release_held(&mut store, peer)?;
        }
        None => peers::add(tx, peer, scheme, None)?,
    }
    Ok(())
}

/// Forget the key, the pending request and held messages for `peer`. True if anything was
/// there.
pub fn forget(tx: &Transaction, peer: &str) -> Result<bool, Failure> {
    let mut n = peers::clear_key(tx, peer)? as usize;
    for sql in [
        "DELETE FROM keyx_pending WHERE peer = ?1",
        "DELETE FROM keyx_held WHERE dest = ?1",
        "DELETE FROM keyx_retired WHERE peer = ?1",
        "DELETE FROM keyx_provisional WHERE peer = ?1",
    ] {
        n += tx.execute(sql, [peer]).map_err(db_failure)?;
    }
    Ok(n > 0)
}

/// Store a one-time RSA key pair generated ahead of time.
pub fn add_spare(tx: &Transaction, kp: &KeyPair) -> Result<(), Failure> {
    let data =
        serde_json::to_string(kp).map_err(|e| Failure::software(format!("spare key: {e}")))?;
    tx.execute(
        "INSERT INTO keyx_spare(bits, data, created) VALUES (?1, ?2, ?3)",
        rusqlite::params![kp.n().bits() as i64, data, crate::state::now().0],
    )
    .map_err(db_failure)?;
    Ok(())
}

/// How many spare key pairs are kept (of `bits` bits, or of any size).
pub fn spare_count(conn: &rusqlite::Connection, bits: Option<u64>) -> Result<i64, Failure> {
    conn.query_row(
        "SELECT count(*) FROM keyx_spare WHERE ?1 IS NULL OR bits = ?1",
        [bits.map(|b| b as i64)],
        |r| r.get(0),
    )
    .map_err(db_failure)
}

/// Take a spare key pair of `bits` bits (for `cmr-keyx init --rsa`), if one is kept.
pub fn take_spare(tx: &Transaction, bits: u64) -> Result<Option<KeyPair>, Failure> {
    let row: Option<(i64, String)> = tx
        .query_row(
            "SELECT id, data FROM keyx_spare WHERE bits = ?1 ORDER BY id LIMIT 1",
            [bits as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db_failure)?;
    let Some((id, data)) = row else {
        return Ok(None);
    };
    tx.execute("DELETE FROM keyx_spare WHERE id = ?1", [id])
        .map_err(db_failure)?;
    Ok(serde_json::from_str(&data).ok())
}
