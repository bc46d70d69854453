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

/// The log is pruned once every this many rows, inside the write transaction that adds the
/// row: so it holds at most `log_keep` + `PRUNE_EVERY` rows.
pub const PRUNE_EVERY: i64 = 100;

/// Append a decision (and, every [`PRUNE_EVERY`] rows, prune the log).
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
    let id = tx.last_insert_rowid();
    if id % PRUNE_EVERY == 0 {
        prune(tx, id)?;
    }
    Ok(id)
}

/// Bounded retention: keep the newest `log_keep` rows (0: no limit) and none older than
/// `log_keep_days` days (0: no limit). Both deletions are ranges of the primary key, so the
/// cost is that of the rows deleted, never a scan of the whole log. Rows are numbered in
/// the order they were written (and only the oldest are ever deleted), so `newest - keep`
/// bounds the count; the age limit deletes every row before the first one that is recent
/// enough. Returns how many rows were deleted.
pub fn prune(tx: &Transaction, newest: i64) -> Result<usize, Failure> {
    let num = |key: &str| -> Result<i64, Failure> {
        Ok(super::settings::get_or_default(tx, key)?
            .trim()
            .parse::<i64>()
            .unwrap_or(0)
            .max(0))
    };
    let mut n = 0;
    let keep = num("log_keep")?;
    if keep > 0 {
        n += tx
            .prepare_cached("DELETE FROM log WHERE id <= ?1")
            .map_err(db_failure)?
            .execute([newest - keep])
            .map_err(db_failure)?;
    }
    let days = num("log_keep_days")?;
    if days > 0 {
        let t = crate::wire::Timestamp::now();
        let cutoff = crate::wire::Timestamp::from_unix(
            t.unix_secs().saturating_sub(days.saturating_mul(86_400)),
            0,
            0,
        )
        .to_string();
        // Times are written "YYYY/MM/DD HH:MM:SS[.fff]" (UTC), which sort as text.
        n += tx
            .prepare_cached(
                "DELETE FROM log WHERE id < (SELECT id FROM log WHERE at >= ?1 ORDER BY id LIMIT 1)",
            )
            .map_err(db_failure)?
            .execute([cutoff])
            .map_err(db_failure)?;
    }
    Ok(n)
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
