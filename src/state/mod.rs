//! Interim stand-in for the state module (the route branch owns the real one; this file is
//! replaced wholesale when it lands). Only what the transports call is here.

use crate::exit::{Failure, TEMPFAIL};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};

pub mod outbox;
pub mod schema;

pub struct State {
    conn: Connection,
}

/// Map an SQLite error: busy/locked/full/ioerr/cantopen are transient (75).
pub fn db_failure(e: rusqlite::Error) -> Failure {
    use rusqlite::ErrorCode::*;
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if matches!(
            f.code,
            DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure | CannotOpen
        ) {
            return Failure::new(TEMPFAIL, format!("state: {e}"));
        }
    }
    Failure::software(format!("state: {e}"))
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
        if let Some(d) = p.parent() {
            if !d.as_os_str().is_empty() {
                std::fs::create_dir_all(d).map_err(|e| Failure::from(e).context(d.display()))?;
            }
        }
        let conn = Connection::open(&p).map_err(db_failure)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db_failure)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_failure)?;
        let mut s = State { conn };
        schema::migrate(&mut s.conn)?;
        Ok(s)
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

/// The current time as text and as Unix seconds.
pub fn now() -> (String, f64) {
    let t = crate::wire::Timestamp::now();
    let unix = t.unix_secs() as f64 + t.subsec_nanos() as f64 / 1e9;
    (t.to_string(), unix)
}
