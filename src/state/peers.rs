//! Peers: address, signature scheme, shared key, counters and reputation.
//!
//! A row appears when an operator adds a peer (`cmr-route peer add`), when a key is set
//! (key exchange), or when we accept a message whose immediate sender it is. Counters and
//! reputation move only for messages whose signature verified with the peer's key:
//! Section 4, "Charlie should downgrade only Bob's reputation", and a forger who uses
//! Bob's address without Bob's key must not be able to lower Bob's standing.

use super::db_failure;
use crate::exit::Failure;
use crate::sign::{Key, Scheme};
use rusqlite::{Connection, OptionalExtension, Row, Transaction};
use serde::Serialize;

/// One peer.
#[derive(Debug, Clone, Serialize)]
pub struct Peer {
    pub address: String,
    #[serde(serialize_with = "ser_scheme")]
    pub scheme: Scheme,
    #[serde(skip)]
    pub key: Option<Key>,
    /// Whether we hold a shared key (the key itself is never printed).
    pub has_key: bool,
    pub transport: Option<String>,
    pub options: Option<String>,
    /// Added by an operator or the key exchange, not just seen.
    pub configured: bool,
    pub received: i64,
    pub accepted: i64,
    pub rejected: i64,
    pub forwarded: i64,
    pub reputation: f64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    /// Cache row of the most recent message accepted from this peer.
    pub last_id: Option<i64>,
}

fn ser_scheme<S: serde::Serializer>(s: &Scheme, z: S) -> Result<S::Ok, S::Error> {
    z.serialize_str(s.as_str())
}

const COLS: &str = "address, scheme, key, transport, options, configured, received, accepted, \
                    rejected, forwarded, reputation, first_seen, last_seen, last_id";

fn from_row(r: &Row) -> rusqlite::Result<Peer> {
    let scheme: String = r.get(1)?;
    let key: Option<Vec<u8>> = r.get(2)?;
    Ok(Peer {
        address: r.get(0)?,
        scheme: scheme.parse().unwrap_or_default(),
        has_key: key.is_some(),
        key: key.map(Key::new),
        transport: r.get(3)?,
        options: r.get(4)?,
        configured: r.get::<_, i64>(5)? != 0,
        received: r.get(6)?,
        accepted: r.get(7)?,
        rejected: r.get(8)?,
        forwarded: r.get(9)?,
        reputation: r.get(10)?,
        first_seen: r.get(11)?,
        last_seen: r.get(12)?,
        last_id: r.get(13)?,
    })
}

/// The peer with this address, if we know it.
pub fn get(conn: &Connection, address: &str) -> Result<Option<Peer>, Failure> {
    conn.prepare_cached(&format!("SELECT {COLS} FROM peers WHERE address = ?1"))
        .map_err(db_failure)?
        .query_row([address], from_row)
        .optional()
        .map_err(db_failure)
}

/// Every peer, by address.
pub fn list(conn: &Connection) -> Result<Vec<Peer>, Failure> {
    let mut st = conn
        .prepare_cached(&format!("SELECT {COLS} FROM peers ORDER BY address"))
        .map_err(db_failure)?;
    let rows = st.query_map([], from_row).map_err(db_failure)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_failure)
}

/// The most recently active peers (by their last accepted message), at most `limit`.
/// This is the candidate list for routing (3.2): each has cached messages.
pub fn recent(conn: &Connection, limit: usize) -> Result<Vec<String>, Failure> {
    let mut st = conn
        .prepare_cached(
            "SELECT address FROM peers WHERE last_id IS NOT NULL ORDER BY last_id DESC LIMIT ?1",
        )
        .map_err(db_failure)?;
    let rows = st
        .query_map([limit as i64], |r| r.get::<_, String>(0))
        .map_err(db_failure)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_failure)
}

/// The addresses the operator configured (`cmr-route peer add`), in address order.
pub fn configured(conn: &Connection) -> Result<Vec<String>, Failure> {
    let mut st = conn
        .prepare_cached("SELECT address FROM peers WHERE configured = 1 ORDER BY address")
        .map_err(db_failure)?;
    let rows = st
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(db_failure)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_failure)
}

fn check_address(address: &str) -> Result<(), Failure> {
    if address.is_empty() || address.contains(['\r', '\n']) {
        return Err(Failure::usage(format!(
            "bad peer address '{}': it must be non-empty, without CR or LF",
            address.escape_debug()
        )));
    }
    Ok(())
}

/// Add (or update) a configured peer. `key` None keeps an existing key.
pub fn add(
    tx: &Transaction,
    address: &str,
    scheme: Scheme,
    key: Option<&Key>,
) -> Result<(), Failure> {
    check_address(address)?;
    let (now, _) = super::now();
    tx.execute(
        "INSERT INTO peers(address, scheme, key, configured, first_seen) VALUES (?1, ?2, ?3, 1, ?4)
         ON CONFLICT(address) DO UPDATE SET scheme = excluded.scheme,
             key = coalesce(excluded.key, peers.key), configured = 1",
        rusqlite::params![address, scheme.as_str(), key.map(|k| k.bytes()), now],
    )
    .map_err(db_failure)?;
    Ok(())
}

/// Set the shared key and scheme for a peer (the key exchange calls this).
pub fn set_key(tx: &Transaction, address: &str, scheme: Scheme, key: &Key) -> Result<(), Failure> {
    add(tx, address, scheme, Some(key))
}

/// Forget the key of a peer (messages from it are then treated as from an unknown signer).
pub fn clear_key(tx: &Transaction, address: &str) -> Result<bool, Failure> {
    Ok(tx
        .execute("UPDATE peers SET key = NULL WHERE address = ?1", [address])
        .map_err(db_failure)?
        > 0)
}

/// Set (or with None clear) a peer's transport options (`transport::http::PeerOptions`
/// text; the caller checks it).
pub fn set_options(tx: &Transaction, address: &str, options: Option<&str>) -> Result<(), Failure> {
    check_address(address)?;
    tx.execute(
        "INSERT INTO peers(address, options, configured) VALUES (?1, ?2, 1)
         ON CONFLICT(address) DO UPDATE SET options = excluded.options, configured = 1",
        rusqlite::params![address, options],
    )
    .map_err(db_failure)?;
    Ok(())
}

/// Declare `alias` another address of `peer` (None: `alias` is a peer of its own again).
/// No chains: a peer is not an alias, an alias is nobody's peer.
pub fn set_alias(tx: &Transaction, alias: &str, peer: Option<&str>) -> Result<(), Failure> {
    check_address(alias)?;
    let Some(peer) = peer else {
        let n = tx
            .execute("DELETE FROM peer_aliases WHERE alias = ?1", [alias])
            .map_err(db_failure)?;
        if n == 0 {
            return Err(Failure::no_input(format!("{alias} is not an alias")));
        }
        return Ok(());
    };
    check_address(peer)?;
    if alias == peer {
        return Err(Failure::usage(format!(
            "{alias}: an address is not an alias of itself"
        )));
    }
    let is_alias = |a: &str| -> Result<bool, Failure> {
        tx.query_row(
            "SELECT count(*) FROM peer_aliases WHERE alias = ?1",
            [a],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(db_failure)
    };
    if is_alias(peer)? {
        return Err(Failure::usage(format!(
            "{peer} is itself an alias; name the peer it belongs to"
        )));
    }
    let has_aliases: i64 = tx
        .query_row(
            "SELECT count(*) FROM peer_aliases WHERE peer = ?1",
            [alias],
            |r| r.get(0),
        )
        .map_err(db_failure)?;
    if has_aliases > 0 {
        return Err(Failure::usage(format!(
            "{alias} has aliases of its own; it cannot be one"
        )));
    }
    tx.execute(
        "INSERT INTO peer_aliases(alias, peer) VALUES (?1, ?2)
         ON CONFLICT(alias) DO UPDATE SET peer = excluded.peer",
        [alias, peer],
    )
    .map_err(db_failure)?;
    Ok(())
}

/// Remove a peer. False when there was none.
pub fn remove(tx: &Transaction, address: &str) -> Result<bool, Failure> {
    Ok(tx
        .execute("DELETE FROM peers WHERE address = ?1", [address])
        .map_err(db_failure)?
        > 0)
}

/// Set a peer's reputation (an operator's rating).
pub fn set_reputation(tx: &Transaction, address: &str, value: f64) -> Result<bool, Failure> {
    Ok(tx
        .execute(
            "UPDATE peers SET reputation = ?2 WHERE address = ?1",
            rusqlite::params![address, value],
        )
        .map_err(db_failure)?
        > 0)
}

/// Record a message accepted from `address` (cache row `cache_id`). `verified`: its
/// signature verified with the peer's key; only then does reputation rise.
pub fn note_accepted(
    tx: &Transaction,
    address: &str,
    cache_id: i64,
    verified: bool,
) -> Result<(), Failure> {
    let (now, _) = super::now();
    tx.execute(
        "INSERT INTO peers(address, received, accepted, first_seen, last_seen, last_id, reputation)
         VALUES (?1, 1, 1, ?2, ?2, ?3, ?4)
         ON CONFLICT(address) DO UPDATE SET received = received + 1, accepted = accepted + 1,
             last_seen = excluded.last_seen, last_id = excluded.last_id,
             first_seen = coalesce(first_seen, excluded.first_seen),
             reputation = reputation + excluded.reputation",
        rusqlite::params![address, now, cache_id, if verified { 1.0 } else { 0.0 }],
    )
    .map_err(db_failure)?;
    Ok(())
}

/// Record a policy rejection of a message whose signature verified with this peer's key:
/// the peer really sent it, so its standing drops.
pub fn note_rejected_verified(tx: &Transaction, address: &str) -> Result<(), Failure> {
    tx.execute(
        "UPDATE peers SET received = received + 1, rejected = rejected + 1,
             reputation = reputation - 1 WHERE address = ?1",
        [address],
    )
    .map_err(db_failure)?;
    Ok(())
}

/// Count a forward queued for a peer. The row is made when there is none yet (a forward
/// queued before the transaction records the message from that peer, or to an address
/// of the header): every outbox row is counted.
pub fn note_forwarded(tx: &Transaction, address: &str) -> Result<(), Failure> {
    tx.prepare_cached(
        "INSERT INTO peers(address, forwarded) VALUES (?1, 1)
         ON CONFLICT(address) DO UPDATE SET forwarded = forwarded + 1",
    )
    .and_then(|mut st| st.execute([address]))
    .map_err(db_failure)?;
    Ok(())
}
