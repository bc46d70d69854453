//! Interim stand-in for `state::outbox::enqueue` (the route branch owns it).
use crate::exit::Failure;
use rusqlite::Transaction;

/// Queue `bytes` for `dest`; false when that (dest, message) pair was already queued or sent.
pub fn enqueue(
    tx: &Transaction,
    dest: &str,
    bytes: &[u8],
    msg_key: &[u8],
) -> Result<bool, Failure> {
    let n = tx
        .execute(
            "INSERT OR IGNORE INTO outbox(dest, bytes, msg_key, created, attempts, next_attempt, state)
             VALUES (?1, ?2, ?3, strftime('%Y-%m-%d %H:%M:%f','now'), 0, strftime('%Y-%m-%d %H:%M:%f','now'), 'queued')",
            rusqlite::params![dest, bytes, msg_key],
        )
        .map_err(super::db_failure)?;
    Ok(n == 1)
}
