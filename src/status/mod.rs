//! `cmr-route status`: is this peer healthy? One report for a person and for monitoring.
//!
//! It reads the state file (our addresses, peers and their keys, the outbox, when the outbox
//! was last drained, the decision log's recent refusals, settings changed from their
//! defaults, the file's size and its WAL) and looks for the host's wiring: a crontab or
//! timer line running `cmr-send --outbox`, an inetd/xinetd service running `cmr-recv`, a
//! `.forward`, alias, procmail recipe or Postfix pipe running `cmr-recv --mail`, and an
//! `authorized_keys` forced command running `cmr-recv --ssh`.
//!
//! The verdict follows the Nagios plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN,
//! with the reasons on the first line. Needs attention: an uninitialised state file
//! (critical), due rows nobody drained for a while (critical: cron is not running
//! `cmr-send --outbox`), dead letters (warning), a peer's pending key exchange that expired
//! (warning). The wiring found or not found is reported, never judged: a peer may take mail
//! only, or HTTP only.

use crate::exit::Failure;
use crate::state::{db_failure, settings, State};
use crate::wire::Timestamp;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

mod text;
pub use text::{duration, text};

/// The Nagios plugin states, in rising order of concern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Level {
    /// The plugin exit status.
    pub fn code(self) -> u8 {
        match self {
            Level::Ok => 0,
            Level::Warning => 1,
            Level::Critical => 2,
            Level::Unknown => 3,
        }
    }
    pub fn word(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
            Level::Unknown => "UNKNOWN",
        }
    }
}

/// What the host's machinery runs: which tool, in which role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Wiring {
    /// cron or a systemd timer runs `cmr-send --outbox`.
    Cron,
    /// inetd or xinetd runs `cmr-recv`.
    Inetd,
    /// The MTA runs `cmr-recv --mail` (.forward, aliases, procmail, Postfix pipe).
    Mail,
    /// sshd runs `cmr-recv --ssh` as a forced command.
    Ssh,
}

impl Wiring {
    pub const ALL: [Wiring; 4] = [Wiring::Cron, Wiring::Inetd, Wiring::Mail, Wiring::Ssh];

    fn word(self) -> &'static str {
        match self {
            Wiring::Cron => "cron",
            Wiring::Inetd => "inetd",
            Wiring::Mail => "mail",
            Wiring::Ssh => "ssh",
        }
    }

    /// Does this configuration line wire up our tool in this role?
    fn matches(self, line: &str) -> bool {
        let l = line.trim_start();
        if l.starts_with('#') {
            return false;
        }
        match self {
            Wiring::Cron => l.contains("cmr-send") && l.contains("--outbox"),
            Wiring::Inetd => l.contains("cmr-recv"),
            Wiring::Mail => l.contains("cmr-recv") && l.contains("--mail"),
            Wiring::Ssh => l.contains("command=") && l.contains("cmr-recv"),
        }
    }
}

/// Where to look for the wiring: files (a directory stands for the files in it), and
/// whether to ask `crontab -l` for the user's crontab.
#[derive(Debug, Clone, Default)]
pub struct WiringSources {
    pub files: Vec<(Wiring, PathBuf)>,
    pub crontab_command: bool,
}

impl WiringSources {
    /// The usual places on a Unix host, for the user whose home is `home`.
    pub fn system(home: Option<&Path>) -> WiringSources {
        let mut files: Vec<(Wiring, PathBuf)> = vec![
            (Wiring::Cron, "/etc/crontab".into()),
            (Wiring::Cron, "/etc/cron.d".into()),
            (Wiring::Cron, "/etc/systemd/system".into()),
            (Wiring::Inetd, "/etc/inetd.conf".into()),
            (Wiring::Inetd, "/etc/xinetd.conf".into()),
            (Wiring::Inetd, "/etc/xinetd.d".into()),
            (Wiring::Mail, "/etc/aliases".into()),
            (Wiring::Mail, "/etc/postfix/master.cf".into()),
            (Wiring::Mail, "/etc/procmailrc".into()),
        ];
        if let Some(h) = home {
            files.extend([
                (Wiring::Cron, h.join(".config/systemd/user")),
                (Wiring::Mail, h.join(".forward")),
                (Wiring::Mail, h.join(".procmailrc")),
                (Wiring::Ssh, h.join(".ssh/authorized_keys")),
            ]);
        }
        WiringSources {
            files,
            crontab_command: true,
        }
    }
}

/// Thresholds.
#[derive(Debug, Clone)]
pub struct Options {
    /// A due outbox row older than this means nobody drains the outbox (critical).
    pub stale_secs: u64,
    /// The log window the refusals are counted over.
    pub window_secs: u64,
    pub wiring: WiringSources,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            stale_secs: 3600,
            window_secs: 86400,
            wiring: WiringSources::default(),
        }
    }
}

/// One peer's health.
#[derive(Debug, Clone, Serialize)]
pub struct PeerHealth {
    pub address: String,
    pub has_key: bool,
    /// The key exchange of ours waiting for a reply (its method), if any.
    pub key_pending: Option<String>,
    pub key_pending_since: Option<String>,
    pub key_pending_expired: bool,
    /// Messages held until the key exchange ends.
    pub held: i64,
    pub configured: bool,
    pub last_seen: Option<String>,
}

/// The outbox by state.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OutboxHealth {
    /// Queued and due now.
    pub due: i64,
    /// Queued, failed before, waiting for their next attempt.
    pub deferred: i64,
    /// Claimed by a `cmr-send --outbox` run.
    pub sending: i64,
    /// Dead letters: gave up (`cmr-send --retry-dead` requeues them).
    pub dead: i64,
    /// Age of the oldest row, in seconds.
    pub oldest_age_secs: Option<f64>,
    /// How long the longest-waiting due row has been due, in seconds.
    pub longest_due_secs: Option<f64>,
}

/// A setting whose stored value is not its default.
#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    pub key: String,
    pub value: String,
    /// None for a key no tool knows.
    pub default: Option<String>,
}

/// One configuration line that wires a tool up.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub kind: Wiring,
    pub file: String,
    pub line: usize,
    pub text: String,
}

/// The whole report (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub status: Level,
    pub code: u8,
    /// Why the status is not OK, most serious first.
    pub reasons: Vec<String>,
    pub state: PathBuf,
    pub state_bytes: u64,
    pub wal_bytes: u64,
    pub addresses: Vec<String>,
    pub cache: i64,
    pub peers: Vec<PeerHealth>,
    pub outbox: OutboxHealth,
    /// When `cmr-send --outbox` last ran to its end, and how long ago (seconds).
    pub last_drain: Option<String>,
    pub last_drain_age_secs: Option<f64>,
    /// Messages refused in the window, by reason, most frequent first.
    pub refusals: Vec<(String, i64)>,
    /// Forwards the relay policy refused in the window, by code (crate::contact).
    pub relay_refusals: Vec<(String, i64)>,
    pub window_secs: u64,
    pub settings: Vec<Changed>,
    pub wiring: Vec<Found>,
    /// Roles no wiring was seen for.
    pub wiring_missing: Vec<Wiring>,
}

impl Report {
    fn flag(&mut self, level: Level, reason: String) {
        if level > self.status {
            self.status = level;
        }
        // Most serious first: a critical reason goes before the warnings.
        let at = if level == Level::Critical {
            0
        } else {
            self.reasons.len()
        };
        self.reasons.insert(at, reason);
        self.code = self.status.code();
    }
}

/// Counter scope and name of the last full outbox run (Unix seconds).
const DRAIN_SCOPE: &str = "outbox";
const DRAIN_NAME: &str = "last_drain_unix";

/// Note that `cmr-send --outbox` has just drained the outbox (what `status` reports).
pub fn record_drain(state: &State) -> Result<(), Failure> {
    let now = Timestamp::now().unix_secs();
    state.write(|tx| {
        tx.execute(
            "INSERT INTO counters(scope, name, value) VALUES (?1, ?2, ?3)
             ON CONFLICT(scope, name) DO UPDATE SET value = excluded.value",
            rusqlite::params![DRAIN_SCOPE, DRAIN_NAME, now],
        )
        .map_err(db_failure)?;
        Ok(())
    })
}

fn now_unix() -> f64 {
    let t = Timestamp::now();
    t.unix_secs() as f64 + t.subsec_nanos() as f64 / 1e9
}

/// Seconds from a stored time ("YYYY/MM/DD HH:MM:SS[.f]", UTC) until now.
fn age_sql(col: &str) -> String {
    format!("(julianday('now') - julianday(replace({col}, '/', '-'))) * 86400.0")
}

/// Build the report for the open state file `st`.
pub fn check(st: &State, opts: &Options) -> Result<Report, Failure> {
    let mut r = gather(st, opts)?;
    verdict(&mut r, opts);
    Ok(r)
}

/// What the state file and the host's wiring show, before any verdict.
fn gather(st: &State, opts: &Options) -> Result<Report, Failure> {
    let c = st.conn();
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = st.path().as_os_str().to_owned();
    wal.push("-wal");
    let mut r = Report {
        status: Level::Ok,
        code: 0,
        reasons: Vec::new(),
        state: st.path().to_path_buf(),
        state_bytes: size(st.path()),
        wal_bytes: size(Path::new(&wal)),
        addresses: settings::own_addresses(c)?,
        cache: c
            .query_row("SELECT count(*) FROM cache", [], |r| r.get(0))
            .map_err(db_failure)?,
        peers: peers(c)?,
        outbox: outbox(c)?,
        last_drain: None,
        last_drain_age_secs: None,
        refusals: refusals(c, opts.window_secs)?,
        relay_refusals: relay_refusals(c, opts.window_secs)?,
        window_secs: opts.window_secs,
        settings: changed_settings(c)?,
        wiring: Vec::new(),
        wiring_missing: Vec::new(),
    };
    if let Some(t) = last_drain(c)? {
        r.last_drain = Some(Timestamp::from_unix(t, 0, 0).to_string());
        r.last_drain_age_secs = Some((now_unix() - t as f64).max(0.0));
    }
    r.wiring = find_wiring(&opts.wiring);
    r.wiring_missing = Wiring::ALL
        .into_iter()
        .filter(|w| !r.wiring.iter().any(|f| f.kind == *w))
        .collect();
    Ok(r)
}

/// When `cmr-send --outbox` last drained the outbox (Unix seconds), if it ever did.
fn last_drain(c: &Connection) -> Result<Option<i64>, Failure> {
    c.query_row(
        "SELECT value FROM counters WHERE scope = ?1 AND name = ?2",
        [DRAIN_SCOPE, DRAIN_NAME],
        |r| r.get(0),
    )
    .optional()
    .map_err(db_failure)
}

/// The verdict: flag what needs attention in `r`, most serious first.
fn verdict(r: &mut Report, opts: &Options) {
    if r.addresses.is_empty() {
        r.flag(
            Level::Critical,
            "not initialised: no address of ours (cmr-route init --address ADDR)".into(),
        );
    }
    if let Some(due) = r
        .outbox
        .longest_due_secs
        .filter(|&s| s > opts.stale_secs as f64)
    {
        r.flag(
            Level::Critical,
            format!(
                "outbox not drained for {}: {} row(s) due (last drain {}; is cron running cmr-send --outbox?)",
                duration(due),
                r.outbox.due,
                r.last_drain_age_secs
                    .map(|a| format!("{} ago", duration(a)))
                    .unwrap_or_else(|| "never".into())
            ),
        );
    }
    if r.outbox.dead > 0 {
        r.flag(
            Level::Warning,
            format!(
                "{} dead letter(s) in the outbox (cmr-send --list; cmr-send --retry-dead)",
                r.outbox.dead
            ),
        );
    }
    let expired: Vec<String> = r
        .peers
        .iter()
        .filter(|p| p.key_pending_expired)
        .map(|p| p.address.clone())
        .collect();
    if !expired.is_empty() {
        r.flag(
            Level::Warning,
            format!(
                "key exchange expired unanswered with {} (cmr-keyx show PEER; cmr-keyx init PEER)",
                expired.join(", ")
            ),
        );
    }
}

fn peers(c: &Connection) -> Result<Vec<PeerHealth>, Failure> {
    let all = crate::state::peers::list(c)?;
    // keyx::db::list wants a transaction; a deferred one only reads.
    let tx = c.unchecked_transaction().map_err(db_failure)?;
    let keyx = crate::keyx::db::list(&tx)?;
    drop(tx);
    let mut out: Vec<PeerHealth> = all
        .iter()
        .map(|p| PeerHealth {
            address: p.address.clone(),
            has_key: p.has_key,
            key_pending: None,
            key_pending_since: None,
            key_pending_expired: false,
            held: 0,
            configured: p.configured,
            last_seen: p.last_seen.clone(),
        })
        .collect();
    for k in keyx {
        let i = match out.iter().position(|p| p.address == k.peer) {
            Some(i) => i,
            None => {
                out.push(PeerHealth {
                    address: k.peer.clone(),
                    has_key: k.has_key,
                    key_pending: None,
                    key_pending_since: None,
                    key_pending_expired: false,
                    held: 0,
                    configured: false,
                    last_seen: None,
                });
                out.len() - 1
            }
        };
        let p = &mut out[i];
        p.key_pending = k.pending.clone();
        p.key_pending_since = k
            .pending_since
            .map(|t| Timestamp::from_unix(t, 0, 0).to_string());
        p.key_pending_expired = k.pending_expired;
        p.held = k.held;
    }
    Ok(out)
}

fn outbox(c: &Connection) -> Result<OutboxHealth, Failure> {
    let due_at = age_sql("next_attempt");
    let created = age_sql("created");
    c.query_row(
        &format!(
            "SELECT
               coalesce(sum(state = 'queued' AND {due_at} >= 0), 0),
               coalesce(sum(state = 'queued' AND {due_at} < 0), 0),
               coalesce(sum(state = 'sending'), 0),
               coalesce(sum(state = 'dead'), 0),
               max({created}),
               max(CASE WHEN state = 'queued' AND {due_at} >= 0 THEN {due_at} END)
             FROM outbox"
        ),
        [],
        |r| {
            Ok(OutboxHealth {
                due: r.get(0)?,
                deferred: r.get(1)?,
                sending: r.get(2)?,
                dead: r.get(3)?,
                oldest_age_secs: r.get(4)?,
                longest_due_secs: r.get(5)?,
            })
        },
    )
    .map_err(db_failure)
}

fn refusals(c: &Connection, window_secs: u64) -> Result<Vec<(String, i64)>, Failure> {
    let now = Timestamp::now().unix_secs();
    let since = Timestamp::from_unix(now.saturating_sub(window_secs as i64), 0, 0).to_string();
    // Times are written "YYYY/MM/DD HH:MM:SS[.fff]" (UTC), which sort as text.
    let mut q = c
        .prepare(
            "SELECT coalesce(json_extract(detail, '$.reason_code'), reason, '(none)') AS why,
                    count(*) AS n
             FROM log WHERE outcome = 'rejected' AND at >= ?1
             GROUP BY why ORDER BY n DESC, why",
        )
        .map_err(db_failure)?;
    let rows = q
        .query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db_failure)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_failure)
}

/// Forwards the relay policy refused in the window, by code: each routed message's log row
/// lists its refused forwards as `[dest, what, code]`.
fn relay_refusals(c: &Connection, window_secs: u64) -> Result<Vec<(String, i64)>, Failure> {
    let now = Timestamp::now().unix_secs();
    let since = Timestamp::from_unix(now.saturating_sub(window_secs as i64), 0, 0).to_string();
    let mut q = c
        .prepare(
            "SELECT json_extract(j.value, '$[2]') AS code, count(*) AS n
             FROM log, json_each(log.detail, '$.refused') AS j
             WHERE log.at >= ?1 AND json_valid(log.detail)
             GROUP BY code ORDER BY n DESC, code",
        )
        .map_err(db_failure)?;
    let rows = q
        .query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db_failure)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_failure)
}

/// The default of a setting any tool knows.
fn default_of(key: &str) -> Option<&'static str> {
    settings::spec(key)
        .map(|s| s.default)
        .or_else(|| crate::keyx::db::setting(key).map(|s| s.default))
        .or_else(|| {
            crate::transport::SETTINGS
                .iter()
                .find(|s| s.0 == key)
                .map(|s| s.1)
        })
}

fn changed_settings(c: &Connection) -> Result<Vec<Changed>, Failure> {
    let mut q = c
        .prepare("SELECT key, value FROM settings ORDER BY key")
        .map_err(db_failure)?;
    let rows = q
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(db_failure)?;
    let mut out = Vec::new();
    for row in rows {
        let (key, value) = row.map_err(db_failure)?;
        let default = default_of(&key);
        if default != Some(value.as_str()) {
            out.push(Changed {
                key,
                value,
                default: default.map(str::to_string),
            });
        }
    }
    Ok(out)
}

/// The files under `p`: itself, or the files in it (not deeper).
fn files_at(p: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(p) {
        Ok(d) => {
            let mut v: Vec<PathBuf> = d
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            v.sort();
            v
        }
        Err(_) if p.is_file() => vec![p.to_path_buf()],
        Err(_) => Vec::new(),
    }
}

fn scan(kind: Wiring, name: &str, text: &str, out: &mut Vec<Found>) {
    for (i, l) in text.lines().enumerate() {
        if kind.matches(l) {
            out.push(Found {
                kind,
                file: name.to_string(),
                line: i + 1,
                text: l.trim().chars().take(160).collect(),
            });
        }
    }
}

/// Every configuration line that wires one of our tools up, in the given places. Files
/// that cannot be read are skipped: they are somebody else's.
pub fn find_wiring(src: &WiringSources) -> Vec<Found> {
    let mut out = Vec::new();
    for (kind, p) in &src.files {
        for f in files_at(p) {
            if let Ok(text) = std::fs::read_to_string(&f) {
                scan(*kind, &f.display().to_string(), &text, &mut out);
            }
        }
    }
    if src.crontab_command {
        let o = std::process::Command::new("crontab")
            .arg("-l")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output();
        if let Some(o) = o.ok().filter(|o| o.status.success()) {
            scan(
                Wiring::Cron,
                "crontab -l",
                &String::from_utf8_lossy(&o.stdout),
                &mut out,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wiring_lines_are_recognised_by_role() {
        assert!(Wiring::Cron.matches("*/5 * * * * cmr-send --outbox --log syslog"));
        assert!(!Wiring::Cron.matches("# */5 * * * * cmr-send --outbox"));
        assert!(!Wiring::Cron.matches("*/5 * * * * cmr-send --to mailto:x@y msg"));
        assert!(Wiring::Mail.matches("\"|cmr-recv --mail\""));
        assert!(Wiring::Mail
            .matches("  flags=Rq user=cmr argv=/usr/bin/cmr-recv --mail --state /var/lib/cmr/s"));
        assert!(!Wiring::Mail.matches("\"|cmr-recv --ssh\""));
        assert!(Wiring::Ssh.matches("command=\"cmr-recv --ssh\",restrict ssh-ed25519 AAAA"));
        assert!(!Wiring::Ssh.matches("ssh-ed25519 AAAA me@host"));
        assert!(Wiring::Inetd.matches("    server = /usr/bin/cmr-recv"));
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(5.2), "5 s");
        assert_eq!(duration(600.0), "10 min");
        assert_eq!(duration(3.0 * 3600.0 + 600.0), "3 h 10 min");
        assert_eq!(duration(2.0 * 86400.0 + 7200.0), "2 d 2 h");
        assert_eq!(duration(86400.0), "24 h");
    }

    #[test]
    fn the_worst_level_wins_and_critical_reasons_come_first() {
        let mut r = Report {
            status: Level::Ok,
            code: 0,
            reasons: vec![],
            state: PathBuf::new(),
            state_bytes: 0,
            wal_bytes: 0,
            addresses: vec![],
            cache: 0,
            peers: vec![],
            outbox: OutboxHealth::default(),
            last_drain: None,
            last_drain_age_secs: None,
            refusals: vec![],
            relay_refusals: vec![],
            window_secs: 0,
            settings: vec![],
            wiring: vec![],
            wiring_missing: vec![],
        };
        r.flag(Level::Warning, "w".into());
        r.flag(Level::Critical, "c".into());
        r.flag(Level::Warning, "w2".into());
        assert_eq!(r.status, Level::Critical);
        assert_eq!(r.code, 2);
        assert_eq!(r.reasons, vec!["c", "w", "w2"]);
    }
}
