//! The decision log: one row per message the router or a client handled, with the outcome
//! and the reason (A3 rejections are silent on the wire, so this is where they show).

use super::db_failure;
use crate::exit::Failure;
use rusqlite::{Connection, Transaction};
use serde::Serialize;

/// One logged decision.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: i64,
    pub at: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub sender: Option<String>,
    pub via: Option<String>,
    pub msg_key: Option<String>,
    pub cache_id: Option<i64>,
    pub detail: Option<String>,
}

/// What to record.
#[derive(Debug, Clone, Default)]
pub struct Record<'a> {
    pub outcome: &'a str,
    pub reason: Option<&'a str>,
    pub sender: Option<&'a str>,
    pub via: Option<&'a str>,
    pub msg_key: Option<&'a [u8]>,
    pub cache_id: Option<i64>,
    pub detail: Option<&'a str>,
}

/// Append a decision.
pub fn record(tx: &Transaction, r: &Record) -> Result<i64, Failure> {
    let (now, _) = super::now();
    tx.prepare_cached(
        "INSERT INTO log(at, outcome, reason, sender, via, msg_key, cache_id, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .map_err(db_failure)?
    .execute(rusqlite::params![
        now, r.outcome, r.reason, r.sender, r.via, r.msg_key, r.cache_id, r.detail
    ])
    .map_err(db_failure)?;
    Ok(tx.last_insert_rowid())
}

/// Add `by` to a counter (`scope`, `name`), e.g. ("via:mail", "bad_signature").
pub fn bump(tx: &Transaction, scope: &str, name: &str, by: i64) -> Result<(), Failure> {
    tx.prepare_cached(
        "INSERT INTO counters(scope, name, value) VALUES (?1, ?2, ?3)
         ON CONFLICT(scope, name) DO UPDATE SET value = value + excluded.value",
    )
    .map_err(db_failure)?
    .execute(rusqlite::params![scope, name, by])
    .map_err(db_failure)?;
    Ok(())
}

/// Every counter.
pub fn counters(conn: &Connection) -> Result<Vec<(String, String, i64)>, Failure> {
    let mut st = conn
        .prepare_cached("SELECT scope, name, value FROM counters ORDER BY scope, name")
        .map_err(db_failure)?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(db_failure)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_failure)
}

/// The most recent `limit` decisions, newest first.
pub fn recent(conn: &Connection, limit: usize) -> Result<Vec<Entry>, Failure> {
    let mut st = conn
        .prepare_cached(
            "SELECT id, at, outcome, reason, sender, via, msg_key, cache_id, detail
             FROM log ORDER BY id DESC LIMIT ?1",
        )
        .map_err(db_failure)?;
    let rows = st
        .query_map([limit as i64], |r| {
            let k: Option<Vec<u8>> = r.get(6)?;
            Ok(Entry {
                id: r.get(0)?,
                at: r.get(1)?,
                outcome: r.get(2)?,
                reason: r.get(3)?,
                sender: r.get(4)?,
                via: r.get(5)?,
                msg_key: k.map(|k| String::from_utf8_lossy(&k).into_owned()),
                cache_id: r.get(7)?,
                detail: r.get(8)?,
            })
        })
        .map_err(db_failure)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_failure)
}
