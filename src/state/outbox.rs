//! The outbox: forwards decided by the router, waiting for a transport.
//!
//! A row is added in the same transaction that caches the message it forwards, so a
//! decision is never lost. `(dest, msg_key)` is UNIQUE and delivered pairs are remembered in
//! `delivered`, so the same message never goes to the same destination twice (3.3).
//! `msg_key` is the canonical key of the message's creator line (its last header line),
//! which every copy of the message shares whatever routers it passed.

use super::db_failure;
use crate::exit::Failure;
use rusqlite::{Connection, OptionalExtension, Row, Transaction};
use serde::Serialize;

/// One outbox row.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: i64,
    pub dest: String,
    #[serde(skip)]
    pub bytes: Vec<u8>,
    #[serde(serialize_with = "ser_lossy")]
    pub msg_key: Vec<u8>,
    pub created: String,
    pub attempts: i64,
    pub next_attempt: String,
    pub last_error: Option<String>,
    pub state: String,
    pub claimed_at: Option<String>,
    pub cache_id: Option<i64>,
}

fn ser_lossy<S: serde::Serializer>(b: &[u8], z: S) -> Result<S::Ok, S::Error> {
    z.serialize_str(&String::from_utf8_lossy(b))
}

const COLS: &str =
    "id, dest, bytes, msg_key, created, attempts, next_attempt, last_error, state, claimed_at, cache_id";

fn from_row(r: &Row) -> rusqlite::Result<Entry> {
    Ok(Entry {
        id: r.get(0)?,
        dest: r.get(1)?,
        bytes: r.get(2)?,
        msg_key: r.get(3)?,
        created: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt: r.get(6)?,
        last_error: r.get(7)?,
        state: r.get(8)?,
        claimed_at: r.get(9)?,
        cache_id: r.get(10)?,
    })
}

/// Queue `bytes` (a complete wire message) for `dest`. False when that (dest, message)
/// pair was already queued or delivered: never twice.
pub fn enqueue(
    tx: &Transaction,
    dest: &str,
    bytes: &[u8],
    msg_key: &[u8],
) -> Result<bool, Failure> {
    enqueue_for(tx, dest, bytes, msg_key, None).map(|id| id.is_some())
}

/// [`enqueue`], remembering which cache row the message is, and returning the new row id.
pub fn enqueue_for(
    tx: &Transaction,
    dest: &str,
    bytes: &[u8],
    msg_key: &[u8],
    cache_id: Option<i64>,
) -> Result<Option<i64>, Failure> {
    let sent: bool = tx
        .prepare_cached("SELECT 1 FROM delivered WHERE dest = ?1 AND msg_key = ?2")
        .map_err(db_failure)?
        .query_row(rusqlite::params![dest, msg_key], |_| Ok(()))
        .optional()
        .map_err(db_failure)?
        .is_some();
    if sent {
        return Ok(None);
    }
    let (now, _) = super::now();
    let n = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO outbox(dest, bytes, msg_key, created, next_attempt, cache_id)
             VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
        )
        .map_err(db_failure)?
        .execute(rusqlite::params![dest, bytes, msg_key, now, cache_id])
        .map_err(db_failure)?;
    Ok((n == 1).then(|| tx.last_insert_rowid()))
}

/// Was (dest, message) ever queued or delivered?
pub fn seen(conn: &Connection, dest: &str, msg_key: &[u8]) -> Result<bool, Failure> {
    let q = conn
        .prepare_cached(
            "SELECT 1 FROM outbox WHERE dest = ?1 AND msg_key = ?2
             UNION ALL SELECT 1 FROM delivered WHERE dest = ?1 AND msg_key = ?2 LIMIT 1",
        )
        .map_err(db_failure)?
        .query_row(rusqlite::params![dest, msg_key], |_| Ok(()))
        .optional()
        .map_err(db_failure)?;
    Ok(q.is_some())
}

/// A delivery confirmed by the transport: the row leaves the outbox and the pair is
/// remembered in `delivered`. False when the row was gone already.
pub fn mark_sent(tx: &Transaction, id: i64) -> Result<bool, Failure> {
    let row: Option<(String, Vec<u8>)> = tx
        .query_row(
            "SELECT dest, msg_key FROM outbox WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db_failure)?;
    let Some((dest, key)) = row else {
        return Ok(false);
    };
    let (now, _) = super::now();
    tx.execute(
        "INSERT OR IGNORE INTO delivered(dest, msg_key, at) VALUES (?1, ?2, ?3)",
        rusqlite::params![dest, key, now],
    )
    .map_err(db_failure)?;
    tx.execute("DELETE FROM outbox WHERE id = ?1", [id])
        .map_err(db_failure)?;
    Ok(true)
}

/// One row by id.
pub fn get(conn: &Connection, id: i64) -> Result<Option<Entry>, Failure> {
    conn.prepare_cached(&format!("SELECT {COLS} FROM outbox WHERE id = ?1"))
        .map_err(db_failure)?
        .query_row([id], from_row)
        .optional()
        .map_err(db_failure)
}

/// Every row, oldest first.
pub fn list(conn: &Connection) -> Result<Vec<Entry>, Failure> {
    let mut st = conn
        .prepare_cached(&format!("SELECT {COLS} FROM outbox ORDER BY id"))
        .map_err(db_failure)?;
    let rows = st.query_map([], from_row).map_err(db_failure)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_failure)
}
