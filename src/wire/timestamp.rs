//! A2 timestamps: "year/month/day hour:minute:seconds", UTC, with optional fractional
//! seconds; compared as instants, printed as written.

use super::Defect;
use std::cmp::Ordering;
use std::fmt;

// ---------------------------------------------------------------------------------------
// Timestamps

/// A2 timestamp `YYYY/MM/DD HH:MM:SS[.S*]`, UTC, years 0000 to 9999.
///
/// Compared exactly: whole seconds, then the fraction's digits (no floating point), so
/// `00:00:00.000000000000000000001` is later than `00:00:00` and `.50` equals `.5`.
/// The original text is kept, so encoding gives back the bytes that were parsed.
#[derive(Debug, Clone)]
pub struct Timestamp {
    pub(super) text: Box<str>,
    /// Seconds since 1970-01-01 00:00:00 UTC (negative before).
    pub(super) secs: i64,
}

impl Timestamp {
    /// Parse the text of a timestamp, checking the format, the ranges and the calendar.
    pub fn parse(b: &[u8]) -> Result<Timestamp, (Defect, usize)> {
        let (secs, len) = parse_ts(b)?;
        if len != b.len() {
            return Err((
                Defect::TimestampFormat("unexpected characters after the seconds"),
                len,
            ));
        }
        Ok(Timestamp {
            // parse_ts accepted only ASCII digits and separators.
            text: std::str::from_utf8(b).unwrap_or_default().into(),
            secs,
        })
    }

    /// The system clock, in microseconds.
    pub fn now() -> Timestamp {
        let d = super::system_time();
        Timestamp::from_unix(d.as_secs() as i64, d.subsec_micros() * 1000, 6)
    }

    /// From Unix seconds and nanoseconds, written with `digits` fractional digits (0 to 9).
    pub fn from_unix(secs: i64, nanos: u32, digits: usize) -> Timestamp {
        let days = secs.div_euclid(86400);
        let rem = secs.rem_euclid(86400);
        let (y, m, d) = civil_from_days(days);
        let mut text = format!(
            "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
            y,
            m,
            d,
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        );
        let digits = digits.min(9);
        if digits > 0 {
            let frac = format!("{:09}", nanos.min(999_999_999));
            text.push('.');
            text.push_str(&frac[..digits]);
        }
        Timestamp {
            text: text.into(),
            secs,
        }
    }

    /// Unix seconds (whole).
    pub fn unix_secs(&self) -> i64 {
        self.secs
    }

    /// Nanoseconds of the fraction (truncated to 9 digits).
    pub fn subsec_nanos(&self) -> u32 {
        let f = self.fraction_digits();
        let mut n: u32 = 0;
        for i in 0..9 {
            n = n * 10 + f.as_bytes().get(i).map_or(0, |d| (d - b'0') as u32);
        }
        n
    }

    /// The digits after the point, trailing zeros removed.
    pub(super) fn fraction_digits(&self) -> &str {
        frac_of(self.text.as_bytes())
            .map(|f| std::str::from_utf8(f).unwrap_or_default())
            .unwrap_or("")
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Canonical text: same instant, same text (`.50` and `.5` agree, `.0` and no point agree).
    pub fn canonical(&self) -> String {
        let f = self.fraction_digits();
        if f.is_empty() {
            self.text[..19].to_string()
        } else {
            format!("{}.{}", &self.text[..19], f)
        }
    }

    /// This instant plus whole seconds, written with the same fraction.
    pub fn plus_secs(&self, s: i64) -> Timestamp {
        let t = Timestamp::from_unix(self.secs + s, 0, 0);
        let f = self.fraction_digits();
        if f.is_empty() {
            t
        } else {
            Timestamp {
                text: format!("{}.{}", t.text, f).into(),
                secs: t.secs,
            }
        }
    }
}

impl PartialEq for Timestamp {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Timestamp {}
impl PartialOrd for Timestamp {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timestamp {
    fn cmp(&self, o: &Self) -> Ordering {
        self.secs
            .cmp(&o.secs)
            .then_with(|| self.fraction_digits().cmp(o.fraction_digits()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Fraction digits of a timestamp text (after "."), trailing zeros removed. None when absent.
pub(super) fn frac_of(ts: &[u8]) -> Option<&[u8]> {
    if ts.len() <= 20 {
        return None;
    }
    let mut f = &ts[20..];
    while let [rest @ .., b'0'] = f {
        f = rest;
    }
    Some(f)
}

/// Compare two timestamp texts already known valid, exactly.
pub(super) fn cmp_ts(a_secs: i64, a: &[u8], b_secs: i64, b: &[u8]) -> Ordering {
    a_secs
        .cmp(&b_secs)
        .then_with(|| frac_of(a).unwrap_or(b"").cmp(frac_of(b).unwrap_or(b"")))
}

// Howard Hinnant's days_from_civil / civil_from_days, proleptic Gregorian.
pub(super) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

pub(super) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub(super) fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Parse a timestamp at the start of `b`. Returns Unix seconds and its length in bytes.
/// On error, the defect and the offset inside `b` where it was found.
pub(super) fn parse_ts(b: &[u8]) -> Result<(i64, usize), (Defect, usize)> {
    const SHAPE: &[u8; 19] = b"dddd/dd/dd dd:dd:dd";
    for (i, &want) in SHAPE.iter().enumerate() {
        let Some(&c) = b.get(i) else {
            return Err((Defect::TimestampFormat("too short"), i));
        };
        let ok = if want == b'd' {
            c.is_ascii_digit()
        } else {
            c == want
        };
        if !ok {
            let what = if want == b'd' && b"/ :.".contains(&c) {
                "a field has too few digits"
            } else if want == b'd' {
                "expected a digit"
            } else if c.is_ascii_digit() {
                "a field has the wrong number of digits"
            } else {
                "expected '/', ' ' or ':' between fields"
            };
            return Err((Defect::TimestampFormat(what), i));
        }
    }
    let n = |i: usize, w: usize| -> i64 {
        b[i..i + w]
            .iter()
            .fold(0i64, |a, &d| a * 10 + (d - b'0') as i64)
    };
    let (y, mo, d, h, mi, s) = (n(0, 4), n(5, 2), n(8, 2), n(11, 2), n(14, 2), n(17, 2));
    // A2: range 0000/01/01 00:00:00 to 9999/12/31 23:59:59.999...
    if !(1..=12).contains(&mo) {
        return Err((Defect::FieldRange("month"), 5));
    }
    let mdays = [
        31,
        if is_leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d < 1 || d > mdays[(mo - 1) as usize] {
        return Err((Defect::InvalidDate, 8));
    }
    if h > 23 {
        return Err((Defect::FieldRange("hour (00-23)"), 11));
    }
    if mi > 59 {
        return Err((Defect::FieldRange("minute (00-59)"), 14));
    }
    if s > 59 {
        return Err((Defect::FieldRange("second (00-59)"), 17));
    }
    let mut len = 19;
    // A2: "A decimal point after the seconds is optional. If it appears, it may be
    // followed by any number of decimals."
    if b.get(19) == Some(&b'.') {
        len = 20;
        while b.get(len).is_some_and(u8::is_ascii_digit) {
            len += 1;
        }
    }
    let secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    Ok((secs, len))
}
