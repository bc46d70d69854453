//! Placeholder for the state module (SQLite state file). The real implementation lives on
//! the `route` branch and replaces this file at merge; only the agreed interface is here.

pub mod schema;

use crate::exit::Failure;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};

pub struct State {
    conn: Connection,
}

fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CMR_STATE") {
        return p.into();
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/state")
        });
    base.join("cmr/state.sqlite")
}

impl State {
    pub fn open(path: Option<&Path>) -> Result<State, Failure> {
        let p = path.map(Path::to_path_buf).unwrap_or_else(default_path);
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(&p).map_err(db_failure)?;
        conn.busy_handler(Some(busy_wait)).map_err(db_failure)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(db_failure)?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(db_failure)?;
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_failure)?;
        // One short-lived process per message: do not checkpoint and delete the WAL at every
        // close (several fsyncs each); the automatic checkpoint every 1000 pages suffices.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(db_failure)?;
        let mut st = State { conn };
        st.migrate()?;
        Ok(st)
    }

    fn migrate(&mut self) -> Result<(), Failure> {
        let v: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db_failure)?;
        if v as usize >= schema::MIGRATIONS.len() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_failure)?;
        let v: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db_failure)?;
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(v as usize) {
            tx.execute_batch(sql).map_err(db_failure)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(db_failure)?;
        }
        tx.commit().map_err(db_failure)
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&Transaction) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_failure)?;
        let v = f(&tx)?;
        tx.commit().map_err(db_failure)?;
        Ok(v)
    }
}

/// Wait for the write lock in short steps (SQLite's default handler backs off to 100 ms
/// sleeps, which leaves the lock idle under contention); give up after about 10 s.
fn busy_wait(n: i32) -> bool {
    if n >= 5000 {
        return false;
    }
    std::thread::sleep(std::time::Duration::from_millis(if n < 50 { 1 } else { 2 }));
    true
}

pub fn db_failure(e: rusqlite::Error) -> Failure {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure | CannotOpen) => {
            Failure::temp(format!("state file: {e}"))
        }
        _ => Failure::software(format!("state file: {e}")),
    }
}
