//! The full-text index of cached bodies (`cache_fts`, SQLite FTS5): the related-message
//! shortlist of the general-purpose baseline compressors. It exists only while one of them is
//! the `compressor` setting; the native model keeps its own word rows (compress::store).

use super::db_failure;
use crate::exit::Failure;
use rusqlite::{Connection, Transaction};

/// Whether the full-text index exists.
pub fn fts_exists(conn: &Connection) -> Result<bool, Failure> {
    conn.prepare_cached(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'cache_fts'",
    )
    .map_err(db_failure)?
    .query_row([], |r| r.get::<_, i64>(0))
    .map(|n| n > 0)
    .map_err(db_failure)
}

/// Create the full-text index of the cache and fill it, if it does not exist.
pub fn ensure_fts(tx: &Transaction) -> Result<(), Failure> {
    if fts_exists(tx)? {
        return Ok(());
    }
    tx.execute_batch(
        "CREATE VIRTUAL TABLE cache_fts USING fts5(body, content='', contentless_delete=1);",
    )
    .map_err(db_failure)?;
    let rows: Vec<(i64, Vec<u8>)> = {
        let mut st = tx
            .prepare("SELECT id, substr(bytes, body_offset + 1) FROM cache ORDER BY id")
            .map_err(db_failure)?;
        let it = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db_failure)?;
        it.collect::<Result<_, _>>().map_err(db_failure)?
    };
    for (id, body) in &rows {
        fts_learn(tx, *id, body)?;
    }
    Ok(())
}

/// Keep the full-text index in step with the `compressor` setting: the general-purpose
/// baselines (`deflate`, `xz`) shortlist related messages with it, the native model does
/// not. With the model it does not exist, and a routed message costs no FTS5 writes; a
/// switch to a baseline builds it from the cache (an index that exists is current: the
/// baselines keep it so). `rebuild` builds it afresh all the same (`cache reindex`).
pub fn sync_fts(tx: &Transaction, compressor: &str, rebuild: bool) -> Result<(), Failure> {
    if compressor == "model" || rebuild {
        tx.execute_batch("DROP TABLE IF EXISTS cache_fts;")
            .map_err(db_failure)?;
    }
    if compressor != "model" {
        ensure_fts(tx)?;
    }
    Ok(())
}

/// The baseline's full-text index entry for a cached body.
pub fn fts_learn(tx: &Transaction, cache_id: i64, body: &[u8]) -> Result<(), Failure> {
    let text = String::from_utf8_lossy(&body[..body.len().min(64 << 10)]);
    tx.prepare_cached("INSERT INTO cache_fts(rowid, body) VALUES (?1, ?2)")
        .map_err(db_failure)?
        .execute(rusqlite::params![cache_id, text])
        .map_err(db_failure)?;
    Ok(())
}
