//! The forward clock (A3): "Alice's clock should be of sufficient resolution that each
//! forwarded message has a different value of T."
//!
//! The last value handed out lives in the `clock` row and is read and advanced inside the
//! caller's write transaction, so values are unique and strictly increasing across every
//! process sharing the state file, even when the system clock steps back.

use super::db_failure;
use crate::exit::Failure;
use crate::wire::Timestamp;
use rusqlite::{OptionalExtension, Transaction};

/// Microseconds since the Unix epoch.
fn micros(t: &Timestamp) -> i128 {
    t.unix_secs() as i128 * 1_000_000 + (t.subsec_nanos() / 1000) as i128
}

fn from_micros(us: i128) -> Timestamp {
    let secs = us.div_euclid(1_000_000) as i64;
    let rest = us.rem_euclid(1_000_000) as u32;
    Timestamp::from_unix(secs, rest * 1000, 6)
}

/// The latest of: now, one microsecond after the last value handed out, one microsecond
/// after `newer_than` (the newest line of the header the stamp goes on). UTC, six
/// fractional digits.
pub fn next(tx: &Transaction, newer_than: Option<&Timestamp>) -> Result<Timestamp, Failure> {
    let last: Option<String> = tx
        .prepare_cached("SELECT last FROM clock WHERE id = 1")
        .map_err(db_failure)?
        .query_row([], |r| r.get(0))
        .optional()
        .map_err(db_failure)?;
    let mut t = micros(&Timestamp::now());
    if let Some(l) = last.as_deref() {
        let lt = Timestamp::parse(l.as_bytes())
            .map_err(|_| Failure::config(format!("state file: clock row holds '{l}'")))?;
        // Truncation to microseconds loses nothing: we only ever store six digits.
        t = t.max(micros(&lt) + 1);
    }
    if let Some(n) = newer_than {
        // micros() truncates, so +1 is strictly later than n whatever its precision.
        t = t.max(micros(n) + 1);
    }
    let ts = from_micros(t);
    if ts.unix_secs() > 253_402_300_799 {
        return Err(Failure::software("clock: timestamp beyond 9999/12/31"));
    }
    tx.prepare_cached(
        "INSERT INTO clock(id, last) VALUES (1, ?1)
         ON CONFLICT(id) DO UPDATE SET last = excluded.last",
    )
    .and_then(|mut st| st.execute([ts.as_str()]))
    .map_err(db_failure)?;
    Ok(ts)
}

/// The last value handed out, if any.
pub fn last(conn: &rusqlite::Connection) -> Result<Option<Timestamp>, Failure> {
    let last: Option<String> = conn
        .query_row("SELECT last FROM clock WHERE id = 1", [], |r| r.get(0))
        .optional()
        .map_err(db_failure)?;
    Ok(last.and_then(|l| Timestamp::parse(l.as_bytes()).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;

    #[test]
    fn strictly_increasing_and_newer_than_header() {
        let d = tempfile::tempdir().unwrap();
        let st = State::open(Some(&d.path().join("s"))).unwrap();
        let a = st.write(|tx| next(tx, None)).unwrap();
        let b = st.write(|tx| next(tx, None)).unwrap();
        assert!(b > a);
        let future = Timestamp::now().plus_secs(3600);
        let far =
            Timestamp::parse(format!("{}.1234567891", &future.as_str()[..19]).as_bytes()).unwrap();
        let c = st.write(|tx| next(tx, Some(&far))).unwrap();
        assert!(c > far, "{c} > {far}");
        let e = st.write(|tx| next(tx, None)).unwrap();
        assert!(e > c);
    }
}
