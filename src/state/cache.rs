//! The cache (A1 "a store of messages called a cache") and its index of message IDs.
//!
//! Each row holds the canonical unsigned bytes (`0` CR LF + header + body: A3 "removes the
//! signature line"), when it arrived, the immediate sender, the transport and whether one
//! of our own clients created it. Every ID of its header goes into `ids`, so the A3
//! duplicate check ("an ID that matches an ID of another message already in the cache") is
//! one primary-key lookup per header line.

use super::db_failure;
use crate::exit::Failure;
use crate::wire::{self, Message};
use rusqlite::{Connection, OptionalExtension, Row, Transaction};
use serde::Serialize;

/// One cached message.
#[derive(Debug, Clone, Serialize)]
pub struct Cached {
    pub id: i64,
    #[serde(skip)]
    pub bytes: Vec<u8>,
    pub arrived: String,
    pub sender: String,
    pub origin: String,
    pub via: String,
    pub client: bool,
    pub signed: bool,
    #[serde(skip)]
    pub body_offset: usize,
}

impl Cached {
    /// The message (canonical, unsigned). Cached bytes were checked on arrival.
    pub fn message(&self) -> Result<Message, Failure> {
        let rules = wire::Rules {
            limits: wire::Limits {
                max_message_bytes: usize::MAX,
                max_header_lines: usize::MAX,
                max_line_bytes: usize::MAX,
            },
            ..wire::Rules::unchecked_time()
        };
        wire::parse(&self.bytes, &rules).map_err(|e| {
            Failure::software(format!(
                "state file: cache row {} does not parse: {e}",
                self.id
            ))
        })
    }
    pub fn body(&self) -> &[u8] {
        &self.bytes[self.body_offset.min(self.bytes.len())..]
    }
}

const COLS: &str = "id, bytes, arrived, sender, origin, via, client, signed, body_offset";

fn from_row(r: &Row) -> rusqlite::Result<Cached> {
    Ok(Cached {
        id: r.get(0)?,
        bytes: r.get(1)?,
        arrived: r.get(2)?,
        sender: r.get(3)?,
        origin: r.get(4)?,
        via: r.get(5)?,
        client: r.get::<_, i64>(6)? != 0,
        signed: r.get::<_, i64>(7)? != 0,
        body_offset: r.get::<_, i64>(8)? as usize,
    })
}

/// The canonical unsigned bytes of a message.
pub fn canonical_bytes(msg: &Message) -> Vec<u8> {
    let mut v = b"0\r\n".to_vec();
    v.extend_from_slice(msg.payload());
    v
}

/// The first ID of `msg` already in the cache, with the cache row holding it.
pub fn find_duplicate(conn: &Connection, msg: &Message) -> Result<Option<(String, i64)>, Failure> {
    let mut st = conn
        .prepare_cached("SELECT cache_id FROM ids WHERE key = ?1")
        .map_err(db_failure)?;
    for id in msg.ids() {
        let key = id.key();
        if let Some(c) = st
            .query_row([&key], |r| r.get::<_, i64>(0))
            .optional()
            .map_err(db_failure)?
        {
            return Ok(Some((String::from_utf8_lossy(&key).into_owned(), c)));
        }
    }
    Ok(None)
}

/// Add a message to the cache with all its IDs. The caller has checked for duplicates in
/// the same transaction.
pub fn insert(
    tx: &Transaction,
    msg: &Message,
    sender: &str,
    via: &str,
    client: bool,
    signed: bool,
) -> Result<i64, Failure> {
    let bytes = canonical_bytes(msg);
    let body_offset = bytes.len() - msg.body().len();
    let (now, unix) = super::now();
    tx.prepare_cached(
        "INSERT INTO cache(bytes, body_offset, arrived, arrived_unix, sender, origin, via, client, signed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .map_err(db_failure)?
    .execute(rusqlite::params![
        bytes,
        body_offset as i64,
        now,
        unix,
        sender,
        msg.origin().address_str(),
        via,
        client as i64,
        signed as i64
    ])
    .map_err(db_failure)?;
    let id = tx.last_insert_rowid();
    let mut st = tx
        .prepare_cached("INSERT INTO ids(key, cache_id) VALUES (?1, ?2)")
        .map_err(db_failure)?;
    for mid in msg.ids() {
        st.execute(rusqlite::params![mid.key(), id])
            .map_err(db_failure)?;
    }
    Ok(id)
}

/// Record the IDs of a message that is not kept in the cache (a key-exchange message), so
/// that a replay of it is a duplicate. They point at cache row 0, which never exists.
pub fn remember_ids(tx: &Transaction, msg: &Message) -> Result<(), Failure> {
    let mut st = tx
        .prepare_cached("INSERT OR IGNORE INTO ids(key, cache_id) VALUES (?1, 0)")
        .map_err(db_failure)?;
    for mid in msg.ids() {
        st.execute([mid.key()]).map_err(db_failure)?;
    }
    Ok(())
}

/// One cached message by row id.
pub fn get(conn: &Connection, id: i64) -> Result<Option<Cached>, Failure> {
    conn.prepare_cached(&format!("SELECT {COLS} FROM cache WHERE id = ?1"))
        .map_err(db_failure)?
        .query_row([id], from_row)
        .optional()
        .map_err(db_failure)
}

/// The cache row holding a message ID (any line of its header), given as
/// `timestamp SP address`.
pub fn by_message_id(conn: &Connection, id_line: &str) -> Result<Option<Cached>, Failure> {
    // The timestamp holds a space itself: the address starts after the next one.
    let Some(sp) = id_line.get(19..).and_then(|r| r.find(' ')).map(|i| i + 19) else {
        return Ok(None);
    };
    let (ts, addr) = (&id_line[..sp], &id_line[sp + 1..]);
    let Ok(t) = wire::Timestamp::parse(ts.as_bytes()) else {
        return Ok(None);
    };
    let mut key = t.canonical().into_bytes();
    key.push(b' ');
    key.extend_from_slice(addr.as_bytes());
    let c: Option<i64> = conn
        .query_row("SELECT cache_id FROM ids WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()
        .map_err(db_failure)?;
    match c {
        Some(c) => get(conn, c),
        None => Ok(None),
    }
}

/// The most recent `limit` cached messages, newest first.
pub fn list(conn: &Connection, limit: usize) -> Result<Vec<Cached>, Failure> {
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM cache ORDER BY id DESC LIMIT ?1"
        ))
        .map_err(db_failure)?;
    let rows = st.query_map([limit as i64], from_row).map_err(db_failure)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_failure)
}

/// Number of cached messages.
pub fn count(conn: &Connection) -> Result<i64, Failure> {
    conn.query_row("SELECT count(*) FROM cache", [], |r| r.get(0))
        .map_err(db_failure)
}

/// The bodies of the most recent messages received from `sender`, oldest first, at most
/// `max_bytes` in all (the most recent ones kept): 3.2 "Yi is the concatenation of all
/// messages received from peer i", bounded to what the compressor's window can use.
pub fn peer_context(conn: &Connection, sender: &str, max_bytes: usize) -> Result<Vec<u8>, Failure> {
    let mut st = conn
        .prepare_cached(
            "SELECT substr(bytes, body_offset + 1) FROM cache
             WHERE sender = ?1 AND client = 0 ORDER BY arrived_unix DESC, id DESC",
        )
        .map_err(db_failure)?;
    let mut rows = st.query([sender]).map_err(db_failure)?;
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut total = 0usize;
    while total < max_bytes {
        let Some(r) = rows.next().map_err(db_failure)? else {
            break;
        };
        let b: Vec<u8> = r.get(0).map_err(db_failure)?;
        total += b.len();
        parts.push(b);
    }
    let mut out = Vec::with_capacity(total.min(max_bytes));
    for p in parts.iter().rev() {
        out.extend_from_slice(p);
    }
    if out.len() > max_bytes {
        out.drain(..out.len() - max_bytes);
    }
    Ok(out)
}

/// Accepted messages from `sender` (or from anyone, when None) since `since_unix`.
pub fn arrivals_since(
    conn: &Connection,
    sender: Option<&str>,
    since_unix: f64,
) -> Result<u64, Failure> {
    let n: i64 = match sender {
        Some(s) => conn
            .prepare_cached(
                "SELECT count(*) FROM cache WHERE sender = ?1 AND arrived_unix > ?2 AND client = 0",
            )
            .map_err(db_failure)?
            .query_row(rusqlite::params![s, since_unix], |r| r.get(0)),
        None => conn
            .prepare_cached("SELECT count(*) FROM cache WHERE arrived_unix > ?1 AND client = 0")
            .map_err(db_failure)?
            .query_row([since_unix], |r| r.get(0)),
    }
    .map_err(db_failure)?;
    Ok(n as u64)
}

/// Cache rows to remove so that only the `keep` most recent remain (A3: "A router may remove
/// messages from its cache at any time"). The ID index keeps their IDs, so a removed message
/// that comes back is still a duplicate.
pub fn prune_candidates(conn: &Connection, keep: usize) -> Result<Vec<i64>, Failure> {
    let mut st = conn
        .prepare("SELECT id FROM cache ORDER BY id DESC LIMIT -1 OFFSET ?1")
        .map_err(db_failure)?;
    let rows = st
        .query_map([keep as i64], |r| r.get::<_, i64>(0))
        .map_err(db_failure)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_failure)
}

/// Remove one cache row (its IDs stay in the index).
pub fn remove(tx: &Transaction, id: i64) -> Result<bool, Failure> {
    Ok(tx
        .execute("DELETE FROM cache WHERE id = ?1", [id])
        .map_err(db_failure)?
        > 0)
}
