//! Interim stand-in for `state::outbox` (the route branch owns it).
use crate::exit::Failure;
use rusqlite::{OptionalExtension, Transaction};

/// Queue `bytes` for `dest`; false when that (dest, message) pair was already queued or sent.
pub fn enqueue(
    tx: &Transaction,
    dest: &str,
    bytes: &[u8],
    msg_key: &[u8],
) -> Result<bool, Failure> {
    let sent = tx
        .query_row(
            "SELECT 1 FROM delivered WHERE dest = ?1 AND msg_key = ?2",
            rusqlite::params![dest, msg_key],
            |_| Ok(()),
        )
        .optional()
        .map_err(super::db_failure)?
        .is_some();
    if sent {
        return Ok(false);
    }
    let (now, _) = super::now();
    let n = tx
        .execute(
            "INSERT OR IGNORE INTO outbox(dest, bytes, msg_key, created, next_attempt)
             VALUES (?1, ?2, ?3, ?4, ?4)",
            rusqlite::params![dest, bytes, msg_key, now],
        )
        .map_err(super::db_failure)?;
    Ok(n == 1)
}

/// Delivery confirmed: the row leaves the outbox, the pair is remembered in `delivered`.
pub fn mark_sent(tx: &Transaction, id: i64) -> Result<bool, Failure> {
    let row: Option<(String, Vec<u8>)> = tx
        .query_row(
            "SELECT dest, msg_key FROM outbox WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(super::db_failure)?;
    let Some((dest, key)) = row else {
        return Ok(false);
    };
    let (now, _) = super::now();
    tx.execute(
        "INSERT OR IGNORE INTO delivered(dest, msg_key, at) VALUES (?1, ?2, ?3)",
        rusqlite::params![dest, key, now],
    )
    .map_err(super::db_failure)?;
    tx.execute("DELETE FROM outbox WHERE id = ?1", [id])
        .map_err(super::db_failure)?;
    Ok(true)
}
