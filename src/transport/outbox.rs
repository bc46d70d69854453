//! Draining the outbox: the transactional hand-off from "the router decided to forward"
//! (a row, committed with the decision) to "the transport confirmed delivery".
//!
//! - Claim: in one `BEGIN IMMEDIATE` transaction a due row becomes `sending` with
//!   `claimed_at` and a claim token unique to this run, so concurrent `cmr-send --outbox`
//!   runs never send the same row. A claim older than `outbox_claim_timeout` (the run that
//!   made it died) may be taken over.
//! - Confirm: only after the transport said yes, and only if our claim token still holds,
//!   does the row leave the outbox for `delivered` (which keeps the same forward from
//!   being queued twice).
//! - Failure: `attempts + 1`, the next attempt after an exponential backoff with jitter;
//!   dead-lettered (`dead`, still listed, `--retry-dead` requeues) on a permanent error,
//!   after `outbox_max_attempts` attempts, or when older than `outbox_max_age`.
//!
//! Times are written as A2 timestamps (UTC `YYYY/MM/DD HH:MM:SS.ffffff`, like every other
//! time in the state file) and compared in SQL through `julianday()` after turning the
//! slashes into dashes.

use super::{setting_num, Address, SendError};
use crate::exit::Failure;
use crate::state::{db_failure, State};
use rand::{Rng, SeedableRng};
use rusqlite::{params, OptionalExtension};
use std::collections::HashSet;
use std::time::Duration;

/// Now, `secs` seconds from now, as a timestamp string.
fn time_in(secs: f64) -> String {
    let now = crate::wire::Timestamp::now();
    let t = now.unix_secs() as f64 + now.subsec_nanos() as f64 / 1e9 + secs;
    let whole = t.floor();
    crate::wire::Timestamp::from_unix(whole as i64, ((t - whole) * 1e9) as u32, 6).to_string()
}

/// SQL: the Julian day of a timestamp column in either `/` or `-` date form.
fn jd(col: &str) -> String {
    format!("julianday(replace({col}, '/', '-'))")
}

/// Retry policy, from the settings (`outbox_*`) with command-line overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub max_attempts: u32,
    pub max_age: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub claim_timeout: Duration,
    /// Only rows for this destination (`cmr-send --outbox --for ADDRESS`).
    pub only_dest: Option<String>,
    /// Draw the backoff's jitter from this seed, the row and its attempt, instead of the
    /// process's random source: a simulation that must give the same result on every run
    /// (the jitter decides when, and so in which order, retried rows fall due).
    pub jitter_seed: Option<u64>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: 12,
            max_age: Duration::from_secs(7 * 86400),
            backoff_base: Duration::from_secs(60),
            backoff_max: Duration::from_secs(6 * 3600),
            claim_timeout: Duration::from_secs(900),
            only_dest: None,
            jitter_seed: None,
        }
    }
}

impl Policy {
    pub fn from_settings(conn: &rusqlite::Connection) -> Result<Policy, Failure> {
        let d = Policy::default();
        let secs = |k: &str, v: Duration| -> Result<Duration, Failure> {
            let s: f64 = setting_num(conn, k, v.as_secs_f64())?;
            if !(s.is_finite() && s >= 0.0) {
                return Err(Failure::config(format!("setting {k} must be >= 0 seconds")));
            }
            Ok(Duration::from_secs_f64(s))
        };
        Ok(Policy {
            max_attempts: setting_num(conn, "outbox_max_attempts", d.max_attempts)?,
            max_age: secs("outbox_max_age", d.max_age)?,
            backoff_base: secs("outbox_backoff_base", d.backoff_base)?,
            backoff_max: secs("outbox_backoff_max", d.backoff_max)?,
            claim_timeout: secs("outbox_claim_timeout", d.claim_timeout)?,
            only_dest: None,
            jitter_seed: None,
        })
    }

    /// Delay before attempt `attempts + 1`: base * 2^(attempts-1), capped, with "equal
    /// jitter" (half fixed, half random) so retries from many runs spread out.
    pub fn backoff(&self, attempts: u32, rng: &mut impl Rng) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        let d = self
            .backoff_base
            .saturating_mul(1u32 << exp)
            .min(self.backoff_max);
        let half = d / 2;
        half + half.mul_f64(rng.gen::<f64>())
    }
}

/// A row this run has claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub dest: String,
    pub bytes: Vec<u8>,
    pub attempts: u32,
}

/// A fresh claim token: pid, time and randomness.
pub fn new_token() -> String {
    format!(
        "{}-{:016x}",
        std::process::id(),
        rand::thread_rng().gen::<u64>()
    )
}

/// SQL: the rows due now (?1 = claim timeout in seconds). An unreadable time counts as due.
/// `now` is the index of a parameter bound to `time_in(0.0)`: the clock that stamps
/// `claimed_at` and `next_attempt`, so a row stamped a moment ago compares as past
/// (SQLite's own `'now'` has only millisecond resolution).
fn due(now: usize) -> String {
    let (na, ca) = (jd("next_attempt"), jd("claimed_at"));
    let now = jd(&format!("?{now}"));
    format!(
        "((state = 'queued' AND ({na} IS NULL OR {na} <= {now}))
          OR (state = 'sending' AND ({ca} IS NULL OR {ca} <= {now} - ?1 / 86400.0)))"
    )
}

/// Claim the next due row not in `skip_ids` and not for a destination in `skip_dests`.
pub fn claim_next(
    state: &State,
    token: &str,
    policy: &Policy,
    skip_ids: &HashSet<i64>,
    skip_dests: &HashSet<String>,
) -> Result<Option<Claimed>, Failure> {
    state.write(|tx| {
        // Rows already tried in this run and destinations that failed in it are left out
        // in SQL, so a long backlog for one dead destination cannot hide the others.
        let pick: Option<i64> = tx
            .prepare_cached(&format!(
                "SELECT id FROM outbox WHERE {} \
                 AND id NOT IN (SELECT value FROM json_each(?2)) \
                 AND dest NOT IN (SELECT value FROM json_each(?3)) \
                 AND (?4 IS NULL OR dest = ?4) \
                 ORDER BY {}, id LIMIT 1",
                due(5),
                jd("next_attempt")
            ))
            .map_err(db_failure)?
            .query_row(
                params![
                    policy.claim_timeout.as_secs_f64(),
                    serde_json::to_string(skip_ids).unwrap_or_else(|_| "[]".into()),
                    serde_json::to_string(skip_dests).unwrap_or_else(|_| "[]".into()),
                    policy.only_dest,
                    time_in(0.0)
                ],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_failure)?;
        let Some(id) = pick else { return Ok(None) };
        tx.execute(
            "UPDATE outbox SET state = 'sending', claimed_at = ?3, claim_token = ?2 WHERE id = ?1",
            params![id, token, time_in(0.0)],
        )
        .map_err(db_failure)?;
        tx.query_row(
            "SELECT id, dest, bytes, COALESCE(attempts, 0) FROM outbox WHERE id = ?1",
            [id],
            |r| {
                Ok(Claimed {
                    id: r.get(0)?,
                    dest: r.get(1)?,
                    bytes: r.get(2)?,
                    attempts: r.get::<_, i64>(3)?.max(0) as u32,
                })
            },
        )
        .optional()
        .map_err(db_failure)
    })
}

/// The transport confirmed delivery: mark the row sent. False when our claim was taken
/// over meanwhile (a stale-claim timeout shorter than the send).
pub fn mark_sent(state: &State, c: &Claimed, token: &str) -> Result<bool, Failure> {
    state.write(|tx| {
        let ours = tx
            .query_row(
                "SELECT 1 FROM outbox WHERE id = ?1 AND claim_token = ?2 AND state = 'sending'",
                params![c.id, token],
                |_| Ok(()),
            )
            .optional()
            .map_err(db_failure)?
            .is_some();
        Ok(ours && crate::state::outbox::mark_sent(tx, c.id)?)
    })
}

/// What became of a row whose send failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Queued again, next attempt after this delay.
    Deferred(Duration),
    /// Dead-lettered: listed, not retried until `--retry-dead`.
    Dead,
    /// Our claim was taken over; nothing written.
    Lost,
}

pub fn mark_failed(
    state: &State,
    c: &Claimed,
    token: &str,
    err: &SendError,
    policy: &Policy,
) -> Result<Outcome, Failure> {
    let attempts = c.attempts + 1;
    state.write(|tx| {
        let too_old: bool = tx
            .query_row(
                &format!(
                    "SELECT COALESCE(julianday('now') - {} > ?2 / 86400.0, 0) \
                     FROM outbox WHERE id = ?1",
                    jd("created")
                ),
                params![c.id, policy.max_age.as_secs_f64()],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_failure)?
            .unwrap_or(false);
        let dead = !err.is_transient() || attempts >= policy.max_attempts || too_old;
        let why = if !err.is_transient() {
            err.message().to_string()
        } else if dead {
            format!(
                "{} (gave up after {attempts} attempts{})",
                err.message(),
                if too_old { ", too old" } else { "" }
            )
        } else {
            err.message().to_string()
        };
        let (outcome, n) = if dead {
            let n = tx
                .execute(
                    "UPDATE outbox SET state = 'dead', attempts = ?3, last_error = ?4, \
                     claim_token = NULL WHERE id = ?1 AND claim_token = ?2",
                    params![c.id, token, attempts, why],
                )
                .map_err(db_failure)?;
            (Outcome::Dead, n)
        } else {
            let delay = match policy.jitter_seed {
                Some(seed) => {
                    let row = (c.id as u64).rotate_left(32) ^ u64::from(attempts);
                    policy.backoff(attempts, &mut rand::rngs::StdRng::seed_from_u64(seed ^ row))
                }
                None => policy.backoff(attempts, &mut rand::thread_rng()),
            };
            let n = tx
                .execute(
                    "UPDATE outbox SET state = 'queued', attempts = ?3, last_error = ?4, \
                     claim_token = NULL, claimed_at = NULL, next_attempt = ?5 \
                     WHERE id = ?1 AND claim_token = ?2",
                    params![c.id, token, attempts, why, time_in(delay.as_secs_f64())],
                )
                .map_err(db_failure)?;
            (Outcome::Deferred(delay), n)
        };
        Ok(if n == 1 { outcome } else { Outcome::Lost })
    })
}

/// Counts from one drain.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub sent: usize,
    pub deferred: usize,
    pub dead: usize,
    /// Due rows left for a later run because their destination already failed in this one.
    pub skipped: usize,
}

impl Report {
    /// 0 when everything due was delivered, 75 when something was deferred, 69 when
    /// nothing was deferred but something was dead-lettered.
    pub fn exit_code(&self) -> u8 {
        if self.deferred > 0 || self.skipped > 0 {
            crate::exit::TEMPFAIL
        } else if self.dead > 0 {
            crate::exit::UNAVAILABLE
        } else {
            crate::exit::OK
        }
    }
}

/// The transport call `drain` makes for each row.
pub type SendFn<'a> = dyn FnMut(&Address, &[u8]) -> Result<(), SendError> + 'a;

/// Send every due row once, through `send`. A destination that fails transiently is not
/// tried again in the same run (its other rows wait for the next run, no timeout wasted).
pub fn drain(
    state: &State,
    policy: &Policy,
    verbose: bool,
    send: &mut SendFn<'_>,
) -> Result<Report, Failure> {
    let token = new_token();
    let mut report = Report::default();
    let mut tried = HashSet::new();
    let mut down = HashSet::new();
    while let Some(c) = claim_next(state, &token, policy, &tried, &down)? {
        tried.insert(c.id);
        // Never emitted: what the other implementation refuses (transport::compat).
        let r = match (Address::parse(&c.dest), super::compat::refusal(&c.bytes)) {
            (Ok(_), Some(why)) => Err(SendError::Permanent(why)),
            (Ok(a), None) => send(&a, &c.bytes),
            (Err(e), _) => Err(SendError::Permanent(e.to_string())),
        };
        match r {
            Ok(()) => {
                if mark_sent(state, &c, &token)? {
                    report.sent += 1;
                    if verbose {
                        crate::log::info(&format!("outbox {}: sent to {}", c.id, c.dest));
                    }
                } else {
                    crate::log::info(&format!(
                        "outbox {}: sent to {}, but another run had taken the claim over",
                        c.id, c.dest
                    ));
                }
            }
            Err(e) => {
                if e.is_transient() {
                    down.insert(c.dest.clone());
                }
                let o = mark_failed(state, &c, &token, &e, policy)?;
                log_failure(&c, &e, &o, &mut report);
            }
        }
    }
    if !down.is_empty() {
        let n: i64 = state
            .conn()
            .query_row(
                &format!(
                    "SELECT count(*) FROM outbox WHERE {} AND state = 'queued' AND dest IN \
                     (SELECT value FROM json_each(?2)) AND id NOT IN \
                     (SELECT value FROM json_each(?3))",
                    due(4)
                ),
                params![
                    policy.claim_timeout.as_secs_f64(),
                    serde_json::to_string(&down).unwrap_or_default(),
                    serde_json::to_string(&tried).unwrap_or_default(),
                    time_in(0.0)
                ],
                |r| r.get(0),
            )
            .map_err(db_failure)?;
        report.skipped = n.max(0) as usize;
    }
    Ok(report)
}

/// Count and log a failed send.
fn log_failure(c: &Claimed, e: &SendError, o: &Outcome, report: &mut Report) {
    match o {
        Outcome::Deferred(d) => {
            report.deferred += 1;
            crate::log::error(&format!(
                "outbox {}: {}: {e}; next attempt in {}s",
                c.id,
                c.dest,
                d.as_secs()
            ));
        }
        Outcome::Dead => {
            report.dead += 1;
            crate::log::error(&format!(
                "outbox {}: {}: {}; dead-lettered (cmr-send --retry-dead {})",
                c.id,
                c.dest,
                e.message(),
                c.id
            ));
        }
        Outcome::Lost => {}
    }
}

/// One outbox row as `cmr-send --list` shows it (a delivered pair has no id).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub id: Option<i64>,
    pub dest: String,
    pub state: String,
    pub attempts: i64,
    pub size: i64,
    pub created: Option<String>,
    pub next_attempt: Option<String>,
    pub claimed_at: Option<String>,
    pub sent_at: Option<String>,
    pub last_error: Option<String>,
}

/// The outbox rows, oldest first; with `all`, the delivered pairs after them.
pub fn list(conn: &rusqlite::Connection, all: bool) -> Result<Vec<Entry>, Failure> {
    let mut st = conn
        .prepare(
            "SELECT id, dest, state, attempts, length(bytes), created, next_attempt, \
             claimed_at, last_error FROM outbox ORDER BY id",
        )
        .map_err(db_failure)?;
    let rows = st
        .query_map([], |r| {
            Ok(Entry {
                id: r.get(0)?,
                dest: r.get(1)?,
                state: r.get(2)?,
                attempts: r.get(3)?,
                size: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                created: r.get(5)?,
                next_attempt: r.get(6)?,
                claimed_at: r.get(7)?,
                sent_at: None,
                last_error: r.get(8)?,
            })
        })
        .map_err(db_failure)?;
    let mut v = rows.collect::<Result<Vec<_>, _>>().map_err(db_failure)?;
    if all {
        let mut st = conn
            .prepare("SELECT dest, at FROM delivered ORDER BY at")
            .map_err(db_failure)?;
        let rows = st
            .query_map([], |r| {
                Ok(Entry {
                    id: None,
                    dest: r.get(0)?,
                    state: "sent".into(),
                    attempts: 0,
                    size: 0,
                    created: None,
                    next_attempt: None,
                    claimed_at: None,
                    sent_at: r.get(1)?,
                    last_error: None,
                })
            })
            .map_err(db_failure)?;
        v.extend(rows.collect::<Result<Vec<_>, _>>().map_err(db_failure)?);
    }
    Ok(v)
}

/// Delivered (destination, message) pairs.
pub fn delivered_count(conn: &rusqlite::Connection) -> Result<i64, Failure> {
    conn.query_row("SELECT count(*) FROM delivered", [], |r| r.get(0))
        .map_err(db_failure)
}

/// Requeue dead-lettered rows (one, or all when `id` is None) for an attempt now, with a
/// fresh attempt count. Returns how many.
pub fn retry_dead(state: &State, id: Option<i64>) -> Result<usize, Failure> {
    state.write(|tx| {
        tx.execute(
            "UPDATE outbox SET state = 'queued', attempts = 0, next_attempt = ?2, \
             claim_token = NULL, claimed_at = NULL \
             WHERE state = 'dead' AND (?1 IS NULL OR id = ?1)",
            params![id, time_in(0.0)],
        )
        .map_err(db_failure)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let p = Policy {
            backoff_base: Duration::from_secs(60),
            backoff_max: Duration::from_secs(3600),
            ..Default::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (attempts, full) in [
            (1, 60),
            (2, 120),
            (3, 240),
            (6, 1920),
            (7, 3600),
            (40, 3600),
        ] {
            for _ in 0..50 {
                let d = p.backoff(attempts, &mut rng).as_secs_f64();
                assert!(
                    d >= full as f64 / 2.0 && d <= full as f64,
                    "{attempts}: {d}"
                );
            }
        }
    }

    fn state_with(rows: &[&str]) -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(Some(&dir.path().join("s.sqlite"))).unwrap();
        s.write(|tx| {
            for (i, d) in rows.iter().enumerate() {
                crate::state::outbox::enqueue(
                    tx,
                    d,
                    format!("m{i}").as_bytes(),
                    &(i as u32).to_be_bytes(),
                )?;
            }
            Ok(())
        })
        .unwrap();
        (dir, s)
    }

    #[test]
    fn sent_failed_and_dead_rows() {
        let (_d, s) = state_with(&[
            "udp://127.0.0.1:9/ok",
            "udp://127.0.0.1:9/down",
            "udp://127.0.0.1:9/down",
            "gopher://nowhere",
        ]);
        let p = Policy::default();
        let mut seen = Vec::new();
        let r = drain(&s, &p, false, &mut |a, b| {
            seen.push((a.to_string(), b.to_vec()));
            if a.to_string().ends_with("/down") {
                Err(SendError::Transient("down".into()))
            } else {
                Ok(())
            }
        })
        .unwrap();
        // The second row for the down destination is not even tried in this run.
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!((r.sent, r.deferred, r.dead, r.skipped), (1, 1, 1, 1));
        assert_eq!(r.exit_code(), 75);
        let l = list(s.conn(), false).unwrap();
        let states: Vec<_> = l
            .iter()
            .map(|e| (e.id.unwrap(), e.state.as_str()))
            .collect();
        assert_eq!(states, vec![(2, "queued"), (3, "queued"), (4, "dead")]);
        assert_eq!(delivered_count(s.conn()).unwrap(), 1);
        assert!(l[2]
            .last_error
            .as_deref()
            .unwrap()
            .contains("unknown transport"));
        // Nothing is due right now: row 2 backs off, row 3 is due but its dest is down...
        // a new run tries row 3 (a new run has no memory of the failure).
        let mut n = 0;
        drain(&s, &p, false, &mut |_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 1);
        assert_eq!(retry_dead(&s, None).unwrap(), 1);
        let l = list(s.conn(), true).unwrap();
        assert_eq!(l.iter().filter(|e| e.state == "sent").count(), 2);
        assert_eq!(l.iter().filter(|e| e.state == "queued").count(), 2);
    }

    #[test]
    fn a_long_backlog_for_a_dead_destination_does_not_hide_others() {
        let mut dests = vec!["udp://127.0.0.1:9/down"; 1500];
        dests.push("udp://127.0.0.1:9/up");
        let (_d, s) = state_with(&dests);
        let mut tried = Vec::new();
        let r = drain(&s, &Policy::default(), false, &mut |a, _| {
            tried.push(a.to_string());
            if a.to_string().ends_with("/down") {
                Err(SendError::Transient("down".into()))
            } else {
                Ok(())
            }
        })
        .unwrap();
        assert_eq!(tried.len(), 2, "one try per destination");
        assert_eq!((r.sent, r.deferred, r.skipped), (1, 1, 1499));
    }

    /// With `jitter_seed`, the retry delay of a row's attempt is the same on every run.
    #[test]
    fn a_jitter_seed_makes_the_retry_delay_reproducible() {
        let delay = |seed: Option<u64>| {
            let (_d, s) = state_with(&["udp://127.0.0.1:9/x"]);
            let p = Policy {
                jitter_seed: seed,
                ..Default::default()
            };
            let c = claim_next(&s, "A", &p, &HashSet::new(), &HashSet::new())
                .unwrap()
                .unwrap();
            match mark_failed(&s, &c, "A", &SendError::Transient("no".into()), &p).unwrap() {
                Outcome::Deferred(d) => d,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(delay(Some(7)), delay(Some(7)));
        // Equal jitter: half the base fixed, half drawn.
        let d = delay(Some(7)).as_secs_f64();
        assert!((30.0..60.0).contains(&d), "{d}");
        let drawn: HashSet<u64> = (0..8).map(|_| delay(None).as_nanos() as u64).collect();
        assert!(drawn.len() > 1, "without a seed the jitter is drawn afresh");
    }

    #[test]
    fn dead_after_max_attempts() {
        let (_d, s) = state_with(&["udp://127.0.0.1:9/x"]);
        let p = Policy {
            max_attempts: 3,
            backoff_base: Duration::ZERO,
            ..Default::default()
        };
        for i in 1..=3 {
            let r = drain(&s, &p, false, &mut |_, _| {
                Err(SendError::Transient("no".into()))
            })
            .unwrap();
            if i < 3 {
                assert_eq!(r.deferred, 1);
            } else {
                assert_eq!(r.dead, 1);
                assert_eq!(r.exit_code(), 69);
            }
        }
        let l = list(s.conn(), false).unwrap();
        assert_eq!((l[0].state.as_str(), l[0].attempts), ("dead", 3));
    }

    #[test]
    fn stale_claims_are_taken_over_fresh_ones_are_not() {
        let (_d, s) = state_with(&["udp://127.0.0.1:9/x"]);
        let p = Policy::default();
        let none = HashSet::new();
        let c = claim_next(&s, "A", &p, &none, &HashSet::new())
            .unwrap()
            .unwrap();
        assert!(claim_next(&s, "B", &p, &none, &HashSet::new())
            .unwrap()
            .is_none());
        let stale = Policy {
            claim_timeout: Duration::ZERO,
            ..Default::default()
        };
        let c2 = claim_next(&s, "B", &stale, &none, &HashSet::new())
            .unwrap()
            .unwrap();
        assert_eq!(c.id, c2.id);
        // A's confirmation no longer counts; B's does.
        assert!(!mark_sent(&s, &c, "A").unwrap());
        assert!(mark_sent(&s, &c2, "B").unwrap());
    }
}
