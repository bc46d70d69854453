//! Interim stand-in: ordered migrations (replaced by the route branch's file).
use crate::exit::Failure;
use rusqlite::Connection;

pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT);
     CREATE TABLE own_addresses(address TEXT PRIMARY KEY);
     CREATE TABLE peers(address TEXT PRIMARY KEY, scheme TEXT, key BLOB);
     CREATE TABLE cache(id INTEGER PRIMARY KEY, bytes BLOB, arrived TEXT, sender TEXT, via TEXT, client INTEGER);
     CREATE TABLE ids(key BLOB PRIMARY KEY, cache_id INTEGER);
     CREATE TABLE outbox(id INTEGER PRIMARY KEY, dest TEXT, bytes BLOB, msg_key BLOB, created TEXT,
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt TEXT, last_error TEXT,
        state TEXT NOT NULL DEFAULT 'queued', claimed_at TEXT, cache_id INTEGER, UNIQUE(dest, msg_key));
     CREATE TABLE delivered(dest TEXT NOT NULL, msg_key BLOB NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY(dest, msg_key)) WITHOUT ROWID;",
    crate::transport::outbox::MIGRATION,
];

pub fn migrate(conn: &mut Connection) -> Result<(), Failure> {
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(super::db_failure)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(super::db_failure)?;
    let v2: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(super::db_failure)?;
    let _ = v;
    for (i, m) in MIGRATIONS.iter().enumerate().skip(v2 as usize) {
        tx.execute_batch(m).map_err(super::db_failure)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(super::db_failure)?;
    }
    tx.commit().map_err(super::db_failure)
}
