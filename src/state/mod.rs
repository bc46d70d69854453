//! The state file: one SQLite database holding every piece of state and every setting.
//!
//! - Path: `--state`, else `$CMR_STATE`, else `$XDG_STATE_HOME/cmr/state.sqlite`, else
//!   `~/.local/state/cmr/state.sqlite`.
//! - Created with mode 0600 (keys live here). WAL, `synchronous=FULL`, a busy timeout
//!   (`$CMR_BUSY_TIMEOUT_MS`, else the `busy_timeout_ms` setting, else 10 s).
//! - Every write goes through [`State::write`]: `BEGIN IMMEDIATE`, the caller's work,
//!   `COMMIT`. A tool reports success only after that commit (nothing lost).
//! - Busy, locked, full, I/O and cannot-open errors become EX_TEMPFAIL (75): retry later.
//!   So do a read-only file system and a file or directory this user may not read or write:
//!   an operator can fix those, and the message must stay with its sender meanwhile (an MTA
//!   bounces on any other code). The diagnostic says what to fix.
//! - Only [`State::open`] creates a file (`cmr-route init` and the administration commands).
//!   The tools that need an initialised file open it with [`State::open_existing`], which
//!   creates nothing when it is missing: a failing tool leaves no half-made state file.

pub mod cache;
pub mod clock;
pub mod fts;
pub mod log;
pub mod outbox;
pub mod peers;
pub mod schema;
pub mod settings;

use crate::exit::{self, Failure};
use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default busy timeout.
pub const DEFAULT_BUSY_TIMEOUT_MS: u64 = 10_000;

/// The busy timeout of this process's connections, read by [`busy_wait`].
static BUSY_TIMEOUT_MS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(DEFAULT_BUSY_TIMEOUT_MS);

/// Wait for a lock in short steps until the busy timeout. SQLite's own handler backs off
/// to 100 ms sleeps, which leaves the lock idle while many processes wait for it; 1 ms
/// (then 2 ms) steps hand it on at once.
fn busy_wait(n: i32) -> bool {
    let n = n.max(0) as u64;
    let waited = if n < 50 { n } else { 50 + (n - 50) * 2 };
    if waited >= BUSY_TIMEOUT_MS.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    std::thread::sleep(Duration::from_millis(if n < 50 { 1 } else { 2 }));
    true
}

/// An open state file.
pub struct State {
    conn: Connection,
    path: PathBuf,
    /// The WAL file's directory entry is not yet known to be on disk (see `write`).
    wal_dir_sync: std::cell::Cell<bool>,
}

/// Map a SQLite error to a failure: transient trouble (busy, locked, disk full, I/O, cannot
/// open) is EX_TEMPFAIL (75), so the caller retries; a file that is not a database is a
/// configuration error (78); anything else is an internal error (70).
pub fn db_failure(e: rusqlite::Error) -> Failure {
    let code = match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::OutOfMemory
            | ErrorCode::FileLockingProtocolFailed,
        ) => exit::TEMPFAIL,
        // A read-only mount, or a file, WAL or directory this user may not write: the
        // operator fixes it and the sender retries.
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            return Failure::temp(format!(
                "state file: {e}: the file, its -wal/-shm files or its directory is read-only \
                 or not writable by this user ({}): fix that, then retry",
                whoami()
            ))
        }
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => exit::CONFIG,
        Some(ErrorCode::AuthorizationForStatementDenied) => exit::NOPERM,
        _ => exit::SOFTWARE,
    };
    Failure::new(code, format!("state file: {e}"))
}

/// "uid N", for diagnostics about permissions.
fn whoami() -> String {
    format!("uid {}", crate::sys::euid())
}

/// An I/O error while opening or creating the state file at `path`. What an operator can
/// fix (a read-only mount, missing permissions) is EX_TEMPFAIL with what to fix; disk full
/// and the like are transient anyway ([`exit::io_code`]).
fn open_failure(path: &Path, e: std::io::Error) -> Failure {
    match e.raw_os_error() {
        Some(libc::EROFS) => Failure::temp(format!(
            "state file {}: {e}: remount the file system read-write (or give --state a \
             writable place), then retry",
            path.display()
        )),
        Some(libc::EACCES | libc::EPERM) => Failure::temp(format!(
            "state file {}: {e}: give {} read and write access to the file and its directory, \
             then retry",
            path.display(),
            whoami()
        )),
        _ => Failure::from(e).context(path.display()),
    }
}

/// Where the state file is: `explicit`, else `$CMR_STATE`, else the XDG state directory.
pub fn resolve_path(explicit: Option<&Path>) -> Result<PathBuf, Failure> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("CMR_STATE").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".local/state"),
            None => {
                return Err(Failure::config(
                    "no state file: give --state, or set CMR_STATE, XDG_STATE_HOME or HOME",
                ))
            }
        },
    };
    Ok(base.join("cmr").join("state.sqlite"))
}

fn busy_timeout_from_env() -> Result<Option<u64>, Failure> {
    match std::env::var("CMR_BUSY_TIMEOUT_MS") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse::<u64>().map(Some).map_err(|_| {
            Failure::config(format!(
                "CMR_BUSY_TIMEOUT_MS must be a number of milliseconds, found '{v}'"
            ))
        }),
        _ => Ok(None),
    }
}

impl State {
    /// Open (creating if needed) the state file and bring its schema up to date.
    pub fn open(path: Option<&Path>) -> Result<State, Failure> {
        let path = resolve_path(path)?;
        create_private(&path)?;
        Self::open_at(path, true)
    }

    /// Open a state file that must exist already; create nothing. A missing file is a
    /// configuration error (78) that names the file and how to make one.
    pub fn open_existing(path: Option<&Path>) -> Result<State, Failure> {
        let path = resolve_path(path)?;
        match std::fs::metadata(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Failure::config(format!(
                    "no state file at {}: initialise one with cmr-route init --address ADDR \
                     (or give --state); nothing was created",
                    path.display()
                )))
            }
            Err(e) => return Err(open_failure(&path, e)),
        }
        Self::open_at(path, false)
    }

    fn open_at(path: PathBuf, create: bool) -> Result<State, Failure> {
        // Opening read-write fails here, with the OS's reason, on a read-only mount or a file
        // this user may not write; SQLite would only say "unable to open".
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| open_failure(&path, e))?;
        // SQLite is built with SQLITE_DISABLE_DIRSYNC (.cargo/config.toml): unmodified, it
        // fsyncs the directory on every process's first WAL sync, one more disk wait per
        // message. A directory needs syncing only when an entry in it is new: the state file
        // (create_private) and the WAL file, when this process is the one that creates it.
        let wal_new = !wal_path(&path).exists();
        let create_flag = if create {
            OpenFlags::SQLITE_OPEN_CREATE
        } else {
            OpenFlags::empty()
        };
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | create_flag | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_failure)
        .map_err(|f| f.context(path.display()))?;
        // Routing one message runs some fifty distinct statements, several of them once per
        // forward; rusqlite's default cache of 16 would prepare them again and again.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let env_timeout = busy_timeout_from_env()?;
        let st0 = State {
            conn,
            path: path.clone(),
            wal_dir_sync: std::cell::Cell::new(false),
        };
        st0.set_busy_timeout(env_timeout.unwrap_or(DEFAULT_BUSY_TIMEOUT_MS))?;
        let conn = st0.conn;
        // WAL lets readers go on while one process writes; FULL makes a commit durable
        // before we report success.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(db_failure)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Failure::temp(format!(
                "state file {}: cannot switch to WAL (journal mode is {mode})",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(db_failure)?;
        // Every message may be a process of its own (inetd, an MTA pipe). By default the last
        // connection to close checkpoints the WAL into the database and deletes it: more
        // fsyncs and a new WAL file for every message. Commits are already durable in the
        // WAL (synchronous=FULL), so a process leaves the WAL as it is, and `write` truncates
        // it once it has grown past WAL_TRUNCATE_BYTES (a new process reads the whole WAL to
        // rebuild its index, so it must stay short).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(db_failure)?;
        let mut st = State {
            conn,
            path,
            wal_dir_sync: std::cell::Cell::new(wal_new),
        };
        st.migrate()?;
        if env_timeout.is_none() {
            if let Some(ms) = settings::get(&st.conn, "busy_timeout_ms")? {
                if let Ok(ms) = ms.parse::<u64>() {
                    st.set_busy_timeout(ms)?;
                }
            }
        }
        Ok(st)
    }

    /// Apply the migrations this file has not seen yet.
    fn migrate(&mut self) -> Result<(), Failure> {
        let want = schema::MIGRATIONS.len() as i64;
        let have: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db_failure)?;
        if have == want {
            return Ok(());
        }
        if have > want {
            return Err(Failure::config(format!(
                "state file {} has schema version {have}, newer than this program knows ({want})",
                self.path.display()
            )));
        }
        self.write(|tx| {
            // Read again under the write lock: another process may have migrated meanwhile.
            let have: i64 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(db_failure)?;
            for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(have as usize) {
                tx.execute_batch(sql)
                    .map_err(|e| db_failure(e).context(format!("schema migration {}", i + 1)))?;
                if i + 1 == schema::FTS_ON_DEMAND {
                    // (only this setting: later migrations have not run yet)
                    let c = settings::get_or_default(tx, "compressor")?;
                    fts::sync_fts(tx, &c, false)?;
                }
            }
            tx.execute_batch(&format!("PRAGMA user_version = {want}"))
                .map_err(db_failure)?;
            Ok(())
        })
    }

    /// The database, for reads.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Set how long to wait for another writer before giving up (then EX_TEMPFAIL).
    pub fn set_busy_timeout(&self, ms: u64) -> Result<(), Failure> {
        BUSY_TIMEOUT_MS.store(ms, std::sync::atomic::Ordering::Relaxed);
        self.conn.busy_handler(Some(busy_wait)).map_err(db_failure)
    }

    /// Run `f` in one write transaction (`BEGIN IMMEDIATE` ... `COMMIT`). Returns only after
    /// the commit; on any error the transaction is rolled back and nothing is changed.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&Transaction) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(db_failure)?;
        let v = f(&tx)?; // dropping tx on error rolls back
        tx.commit().map_err(db_failure)?;
        if self.wal_dir_sync.get() {
            // The commit is in the WAL; make the WAL's name durable too, before success is
            // reported. A failure here is transient, like any other failed sync.
            sync_dir(&self.path)?;
            self.wal_dir_sync.set(false);
        }
        self.trim_wal();
        Ok(v)
    }

    /// Run `f` inside one read transaction: every statement sees the same snapshot, and the
    /// WAL read lock is taken once instead of once per statement. Nothing is written; the
    /// transaction ends before this returns, whatever `f` returns.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Failure>) -> Result<T, Failure> {
        if !self.conn.is_autocommit() {
            return f(&self.conn); // already inside a transaction
        }
        self.conn.execute_batch("BEGIN").map_err(db_failure)?;
        let v = f(&self.conn);
        if !self.conn.is_autocommit() {
            let end = self.conn.execute_batch("COMMIT").map_err(db_failure);
            if end.is_err() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            if v.is_ok() {
                end?;
            }
        }
        v
    }

    /// After a commit: once the WAL is past [`WAL_TRUNCATE_BYTES`], copy it into the
    /// database and truncate it. Best effort: the commit is already durable, and a reader
    /// holding the WAL only postpones this to a later commit.
    fn trim_wal(&self) {
        let wal = wal_path(&self.path);
        let big = std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_TRUNCATE_BYTES);
        if big {
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

/// Prepared statements kept per connection (see `State::open`).
const STATEMENT_CACHE: usize = 256;

/// WAL size past which a commit checkpoints and truncates it (see `State::open`).
const WAL_TRUNCATE_BYTES: u64 = 1 << 20;

/// The WAL file SQLite keeps beside the state file.
fn wal_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// fsync the directory holding `path`, so a new entry in it survives a crash.
fn sync_dir(path: &Path) -> Result<(), Failure> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Failure::temp(format!("syncing directory {}: {e}", dir.display())))
}

/// Create the file (and its directory) readable by its owner only, before SQLite opens it.
fn create_private(path: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| open_failure(dir, e))?;
        }
    }
    let new = !path.exists();
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| open_failure(path, e))?;
    if new {
        sync_dir(path)?;
    }
    Ok(())
}

/// The current time as text and as Unix seconds (for `arrived`, `created`, log rows).
pub fn now() -> (String, f64) {
    let t = crate::wire::Timestamp::now();
    let unix = t.unix_secs() as f64 + t.subsec_nanos() as f64 / 1e9;
    (t.to_string(), unix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_private_file_with_schema() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/state.sqlite");
        let st = State::open(Some(&p)).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let v: i64 = st
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, schema::MIGRATIONS.len() as i64);
        // The WAL and shared-memory files SQLite creates beside it are private too.
        st.write(|tx| settings::set_raw(tx, "x", "y")).unwrap();
        for ext in ["sqlite-wal", "sqlite-shm"] {
            let m = std::fs::metadata(p.with_extension(ext)).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600, "{ext}");
        }
        drop(st);
        // Closing the last connection leaves the WAL for the next process (no checkpoint
        // and no WAL rebuild per message), and what was committed is there on reopening.
        let wal = std::fs::metadata(p.with_extension("sqlite-wal")).unwrap();
        assert!(wal.len() > 0, "the WAL survives the connection");
        // Reopening is a no-op.
        let st = State::open(Some(&p)).unwrap();
        assert_eq!(settings::get(st.conn(), "x").unwrap().as_deref(), Some("y"));
    }

    #[test]
    fn failed_write_rolls_back() {
        let d = tempfile::tempdir().unwrap();
        let st = State::open(Some(&d.path().join("s"))).unwrap();
        let r: Result<(), Failure> = st.write(|tx| {
            tx.execute("INSERT INTO settings VALUES ('a','b')", [])
                .map_err(db_failure)?;
            Err(Failure::data("no"))
        });
        assert!(r.is_err());
        let n: i64 = st
            .conn()
            .query_row("SELECT count(*) FROM settings", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn reads_share_one_snapshot_and_always_end() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s");
        let st = State::open(Some(&path)).unwrap();
        let other = State::open(Some(&path)).unwrap();
        let count = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM settings", [], |r| r.get(0))
                .unwrap()
        };
        let (before, after) = st
            .read(|c| {
                let before = count(c);
                // another process commits meanwhile: this snapshot does not see it
                other.write(|tx| settings::set_raw(tx, "x", "y")).unwrap();
                Ok((before, count(c)))
            })
            .unwrap();
        assert_eq!(before, after);
        assert!(st.conn().is_autocommit(), "the read transaction ended");
        assert_eq!(
            count(st.conn()),
            before + 1,
            "the next read sees the commit"
        );
        // An error inside ends the transaction too, and a write can follow.
        let r: Result<(), Failure> = st.read(|_| Err(Failure::data("no")));
        assert!(r.is_err() && st.conn().is_autocommit());
        st.write(|tx| settings::set_raw(tx, "z", "w")).unwrap();
    }
}
