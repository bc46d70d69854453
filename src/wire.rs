//! The A2 message format: strict parse and byte-exact encode.
//!
//! ```text
//! signature   = ("0" / "1" 64LOWERHEX) CRLF
//! header      = 1*(timestamp SP address CRLF) CRLF      ; newest first
//! body        = length CRLF <length bytes>
//! timestamp   = YYYY "/" MM "/" DD SP HH ":" MM ":" SS ["." *DIGIT]   ; UTC
//! ```
//!
//! A message is self-delimiting (the body carries its length), so a stream of messages needs
//! no framing: [`parse_prefix`] takes one message off the front of a buffer and
//! [`Reader`] takes them one by one off any `Read`.
//!
//! Every error is a [`ParseError`]: the rule broken ([`Defect`]), the line (the signature
//! line is line 1) and the byte offset from the start of the input.

use std::cmp::Ordering;
use std::fmt;
use std::io::{self, BufRead};

/// Limits that keep a hostile peer from making us allocate or scan without bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Whole message: signature line, header and body.
    pub max_message_bytes: usize,
    /// Message IDs in the routing header.
    pub max_header_lines: usize,
    /// One header line (timestamp, space, address), without CR LF.
    pub max_line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 16 << 20,
            max_header_lines: 256,
            max_line_bytes: 4096,
        }
    }
}

/// What "now" is for the A2 rule "a timestamp must represent a valid time, not in the future".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Now {
    /// The system clock, read once per parse.
    #[default]
    System,
    /// A fixed instant (tests, replays).
    Fixed(Timestamp),
    /// Do not check (re-reading our own cache, whose entries were checked on arrival).
    Unchecked,
}

/// The rules a message is checked against.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub limits: Limits,
    pub now: Now,
    /// Allowance for peers whose clocks run ahead of ours, in seconds (default 0).
    pub skew_secs: u32,
    /// The recipient's own addresses: A2 "The recipient's address should not appear at all."
    pub own_addresses: Vec<Vec<u8>>,
}

impl Rules {
    /// The default rules with the future check disabled.
    pub fn unchecked_time() -> Self {
        Rules {
            now: Now::Unchecked,
            ..Rules::default()
        }
    }

    /// The latest instant a timestamp may name: now plus the allowed skew. Built without
    /// allocating, since it is computed once per parsed message.
    fn horizon(&self) -> Option<Horizon<'_>> {
        let skew = self.skew_secs as i64;
        match &self.now {
            Now::System => {
                let d = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let mut digits = [b'0'; 9];
                let mut n = d.subsec_nanos();
                for c in digits.iter_mut().rev() {
                    *c = b'0' + (n % 10) as u8;
                    n /= 10;
                }
                let mut len = 9;
                while len > 0 && digits[len - 1] == b'0' {
                    len -= 1;
                }
                Some(Horizon {
                    secs: d.as_secs() as i64 + skew,
                    own: digits,
                    own_len: len as u8,
                    borrowed: None,
                })
            }
            Now::Fixed(t) => Some(Horizon {
                secs: t.secs + skew,
                own: [0; 9],
                own_len: 0,
                borrowed: Some(t.fraction_digits().as_bytes()),
            }),
            Now::Unchecked => None,
        }
    }
}

/// "Now" for the future check: whole seconds and the fraction's digits (no trailing zeros).
struct Horizon<'a> {
    secs: i64,
    own: [u8; 9],
    own_len: u8,
    borrowed: Option<&'a [u8]>,
}

impl Horizon<'_> {
    fn frac(&self) -> &[u8] {
        self.borrowed.unwrap_or(&self.own[..self.own_len as usize])
    }
}

/// The rule a message breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    EmptyInput,
    /// A line ends with a bare LF.
    BareLf,
    /// A CR that is not followed by LF inside a line.
    BareCr,
    /// The input ends before the line does.
    UnterminatedLine,
    Version(u8),
    UnsignedWithHash,
    HashLength(usize),
    HashUpperCase,
    HashNotHex,
    EmptyHeader,
    /// A line that should be a message ID looks like the body length: the blank line is missing.
    NoBlankLine,
    TimestampFormat(&'static str),
    InvalidDate,
    FieldRange(&'static str),
    Future,
    NotDescending,
    EqualTimestamps,
    MissingSpace,
    EmptyAddress,
    /// The address also stands on this earlier line.
    DuplicateAddress(usize),
    OwnAddress,
    LengthSyntax,
    LengthTooLarge(u64),
    BodyShort {
        have: usize,
        need: usize,
    },
    TrailingBytes(usize),
    TooManyHeaderLines(usize),
    LineTooLong(usize),
    MessageTooLarge(usize),
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Defect::*;
        match self {
            EmptyInput => write!(f, "empty input: no message"),
            BareLf => write!(f, "line ends with a bare LF: lines must end with CR LF"),
            BareCr => write!(f, "CR not followed by LF inside a line: lines must end with CR LF"),
            UnterminatedLine => write!(f, "input ends inside a line: lines must end with CR LF"),
            Version(b) => write!(
                f,
                "signature version must be 0 or 1, found {}",
                show_byte(*b)
            ),
            UnsignedWithHash => write!(
                f,
                "unsigned message (version 0) must have an empty hash string"
            ),
            HashLength(n) => write!(
                f,
                "signature hash must be 64 lower case hex digits, found {n} characters"
            ),
            HashUpperCase => write!(
                f,
                "signature hash has upper case hex digits: it must be lower case"
            ),
            HashNotHex => write!(f, "signature hash has a character that is not a hex digit"),
            EmptyHeader => write!(
                f,
                "empty routing header: a header needs at least one message ID"
            ),
            NoBlankLine => write!(
                f,
                "no blank line after the routing header (found a body length where a message ID or the blank line belongs)"
            ),
            TimestampFormat(what) => write!(
                f,
                "timestamp must be YYYY/MM/DD HH:MM:SS[.S*] with fixed-width fields: {what}"
            ),
            InvalidDate => write!(f, "timestamp is not a valid date"),
            FieldRange(what) => write!(f, "timestamp {what} out of range"),
            Future => write!(f, "timestamp is in the future"),
            NotDescending => write!(
                f,
                "timestamp is not earlier than the line above: message IDs must be newest first (descending)"
            ),
            EqualTimestamps => write!(
                f,
                "timestamp equals the one on the line above: it must be strictly earlier"
            ),
            MissingSpace => write!(f, "expected a space between timestamp and address"),
            EmptyAddress => write!(f, "empty address after the timestamp"),
            DuplicateAddress(l) => write!(
                f,
                "duplicate address: it already appears on line {l}"
            ),
            OwnAddress => write!(f, "the recipient's own address appears in the header"),
            LengthSyntax => write!(
                f,
                "body length must be a decimal number of digits only (no sign, no spaces)"
            ),
            LengthTooLarge(u64::MAX) => write!(
                f,
                "body length too large: beyond any size limit"
            ),
            LengthTooLarge(n) => write!(f, "body length {n} exceeds the message size limit"),
            BodyShort { have, need } => write!(
                f,
                "body short: {have} bytes where the length says {need}"
            ),
            TrailingBytes(n) => write!(
                f,
                "{n} trailing bytes after the body (one message expected)"
            ),
            TooManyHeaderLines(n) => write!(f, "routing header has more than {n} lines (limit)"),
            LineTooLong(n) => write!(f, "header line longer than {n} bytes (limit)"),
            MessageTooLarge(n) => write!(f, "message larger than {n} bytes (limit)"),
        }
    }
}

fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

impl Defect {
    /// A short stable name for scripts (`--json`).
    pub fn code(&self) -> &'static str {
        use Defect::*;
        match self {
            EmptyInput => "empty-input",
            BareLf | BareCr | UnterminatedLine => "line-ending",
            Version(_) => "version",
            UnsignedWithHash => "unsigned-with-hash",
            HashLength(_) => "hash-length",
            HashUpperCase => "hash-case",
            HashNotHex => "hash-not-hex",
            EmptyHeader => "empty-header",
            NoBlankLine => "no-blank-line",
            TimestampFormat(_) => "timestamp-format",
            InvalidDate => "invalid-date",
            FieldRange(_) => "timestamp-range",
            Future => "future",
            NotDescending => "not-descending",
            EqualTimestamps => "equal-timestamps",
            MissingSpace => "missing-space",
            EmptyAddress => "empty-address",
            DuplicateAddress(_) => "duplicate-address",
            OwnAddress => "own-address",
            LengthSyntax => "length-syntax",
            LengthTooLarge(_) => "length-too-large",
            BodyShort { .. } => "body-short",
            TrailingBytes(_) => "trailing-bytes",
            TooManyHeaderLines(_) => "too-many-header-lines",
            LineTooLong(_) => "line-too-long",
            MessageTooLarge(_) => "message-too-large",
        }
    }
}

/// A broken A2 rule and where: line (signature line = 1) and byte offset from the input start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub defect: Defect,
    pub line: usize,
    pub offset: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, byte {}: {}",
            self.line, self.offset, self.defect
        )
    }
}

impl std::error::Error for ParseError {}

impl From<ParseError> for crate::exit::Failure {
    fn from(e: ParseError) -> Self {
        crate::exit::Failure::data(format!("malformed message: {e}"))
    }
}

// ---------------------------------------------------------------------------------------
// Timestamps

/// A2 timestamp `YYYY/MM/DD HH:MM:SS[.S*]`, UTC, years 0000 to 9999.
///
/// Compared exactly: whole seconds, then the fraction's digits (no floating point), so
/// `00:00:00.000000000000000000001` is later than `00:00:00` and `.50` equals `.5`.
/// The original text is kept, so encoding gives back the bytes that were parsed.
#[derive(Debug, Clone)]
pub struct Timestamp {
    text: Box<str>,
    /// Seconds since 1970-01-01 00:00:00 UTC (negative before).
    secs: i64,
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
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
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
    fn fraction_digits(&self) -> &str {
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
fn frac_of(ts: &[u8]) -> Option<&[u8]> {
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
fn cmp_ts(a_secs: i64, a: &[u8], b_secs: i64, b: &[u8]) -> Ordering {
    a_secs
        .cmp(&b_secs)
        .then_with(|| frac_of(a).unwrap_or(b"").cmp(frac_of(b).unwrap_or(b"")))
}

// Howard Hinnant's days_from_civil / civil_from_days, proleptic Gregorian.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
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

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Parse a timestamp at the start of `b`. Returns Unix seconds and its length in bytes.
/// On error, the defect and the offset inside `b` where it was found.
fn parse_ts(b: &[u8]) -> Result<(i64, usize), (Defect, usize)> {
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

// ---------------------------------------------------------------------------------------
// Messages

/// The signature line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// `0`: unsigned.
    Unsigned,
    /// `1` + 64 lower-case hex digits.
    Signed([u8; 32]),
}

impl Signature {
    /// The line, CR LF included.
    pub fn line(&self) -> Vec<u8> {
        match self {
            Signature::Unsigned => b"0\r\n".to_vec(),
            Signature::Signed(h) => {
                let mut v = Vec::with_capacity(67);
                v.push(b'1');
                v.extend_from_slice(hex(h).as_bytes());
                v.extend_from_slice(b"\r\n");
                v
            }
        }
    }
    pub fn is_signed(&self) -> bool {
        matches!(self, Signature::Signed(_))
    }
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}

/// Bytes from hex (either case); None on odd length or a non-hex character.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        return None;
    }
    let v = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(v(p[0])? << 4 | v(p[1])?))
        .collect()
}

/// Where one message ID stands inside [`Message::payload`].
#[derive(Debug, Clone, Copy)]
struct IdSpan {
    start: u32,
    /// Offset of the space between timestamp and address.
    space: u32,
    /// Offset of the CR ending the line.
    end: u32,
    secs: i64,
}

/// One message ID: a header line, `timestamp SP address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageId<'a> {
    pub timestamp: &'a str,
    pub address: &'a [u8],
    secs: i64,
}

impl<'a> MessageId<'a> {
    /// The timestamp as a value.
    pub fn time(&self) -> Timestamp {
        Timestamp {
            text: self.timestamp.into(),
            secs: self.secs,
        }
    }
    /// The address as text (lossy where it is not UTF-8).
    pub fn address_str(&self) -> std::borrow::Cow<'a, str> {
        String::from_utf8_lossy(self.address)
    }
    /// The ID in canonical form: equal IDs (same instant, same address) give equal keys.
    /// This is what the duplicate check (A3) compares.
    pub fn key(&self) -> Vec<u8> {
        let mut k = self.time().canonical().into_bytes();
        k.push(b' ');
        k.extend_from_slice(self.address);
        k
    }
    /// The line as it stands in the header, without CR LF.
    pub fn line(&self) -> Vec<u8> {
        let mut l = self.timestamp.as_bytes().to_vec();
        l.push(b' ');
        l.extend_from_slice(self.address);
        l
    }
}

/// A parsed, valid A2 message.
///
/// `payload` holds every byte after the signature line (header, blank line, length line
/// and body): exactly what the signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    signature: Signature,
    payload: Vec<u8>,
    ids: Vec<IdSpan>,
    body_start: usize,
}

impl PartialEq for IdSpan {
    fn eq(&self, o: &Self) -> bool {
        (self.start, self.space, self.end) == (o.start, o.space, o.end)
    }
}
impl Eq for IdSpan {}

impl Message {
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Header, blank line, length line and body: the bytes the signature covers.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    pub fn body(&self) -> &[u8] {
        &self.payload[self.body_start..]
    }

    /// The routing header lines, each with CR LF, without the blank line.
    pub fn header_bytes(&self) -> &[u8] {
        let end = self.ids.last().map_or(0, |s| s.end as usize + 2);
        &self.payload[..end]
    }

    /// Message IDs, newest (the immediate sender) first, the creator last.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = MessageId<'_>> + '_ {
        self.ids.iter().map(|s| self.id_at(s))
    }

    fn id_at(&self, s: &IdSpan) -> MessageId<'_> {
        let p = &self.payload;
        MessageId {
            timestamp: std::str::from_utf8(&p[s.start as usize..s.space as usize])
                .unwrap_or_default(),
            address: &p[s.space as usize + 1..s.end as usize],
            secs: s.secs,
        }
    }

    /// The immediate sender: the first line of the header.
    pub fn sender(&self) -> MessageId<'_> {
        self.id_at(&self.ids[0])
    }

    /// The creator: the last line of the header.
    pub fn origin(&self) -> MessageId<'_> {
        self.id_at(&self.ids[self.ids.len() - 1])
    }

    /// True when `addr` appears anywhere in the header.
    pub fn has_address(&self, addr: &[u8]) -> bool {
        self.ids().any(|i| i.address == addr)
    }

    /// Signature line plus payload: the message as it goes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.signature.line();
        v.reserve(self.payload.len());
        v.extend_from_slice(&self.payload);
        v
    }

    /// Write the message without building it in memory first.
    pub fn write_to(&self, w: &mut impl io::Write) -> io::Result<()> {
        w.write_all(&self.signature.line())?;
        w.write_all(&self.payload)
    }

    /// Length on the wire.
    pub fn encoded_len(&self) -> usize {
        self.payload.len() + if self.signature.is_signed() { 67 } else { 3 }
    }

    /// The same message with another signature line (the payload is untouched).
    pub fn with_signature(mut self, s: Signature) -> Message {
        self.signature = s;
        self
    }

    /// The payload with each timestamp ending in a bare `.` without it and the length line
    /// without leading zeros: the same message (A2: "A decimal point after the seconds is
    /// optional"; the same n), in the form the other implementation (`cmr-peer`) accepts. It
    /// refuses a timestamp ending in `.`, and its signature check fails on a zero-padded
    /// length, since it signs the length as it prints it. Borrowed when already plain.
    pub fn plain_payload(&self) -> std::borrow::Cow<'_, [u8]> {
        let len_line = &self.payload[self.header_bytes().len() + 2..self.body_start - 2];
        let padded = len_line.len() > 1 && len_line[0] == b'0';
        let dotted = self.ids().any(|i| i.timestamp.ends_with('.'));
        if !padded && !dotted {
            return std::borrow::Cow::Borrowed(&self.payload);
        }
        let mut v = Vec::with_capacity(self.payload.len());
        for id in self.ids() {
            v.extend_from_slice(
                id.timestamp
                    .strip_suffix('.')
                    .unwrap_or(id.timestamp)
                    .as_bytes(),
            );
            v.push(b' ');
            v.extend_from_slice(id.address);
            v.extend_from_slice(b"\r\n");
        }
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(self.body().len().to_string().as_bytes());
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(self.body());
        std::borrow::Cow::Owned(v)
    }

    /// Compose a new message: header lines (newest first) and body, unsigned.
    /// The result is checked against `rules` like any incoming message.
    pub fn compose(
        ids: &[(Timestamp, &[u8])],
        body: &[u8],
        rules: &Rules,
    ) -> Result<Message, ParseError> {
        let mut v = b"0\r\n".to_vec();
        for (t, a) in ids {
            v.extend_from_slice(t.as_str().as_bytes());
            v.push(b' ');
            v.extend_from_slice(a);
            v.extend_from_slice(b"\r\n");
        }
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(body.len().to_string().as_bytes());
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(body);
        parse(&v, rules)
    }

    /// A3 forward: "Alice removes the signature line from X ... X := T SP Alice CR LF X".
    /// The result is unsigned; T must be newer than the current first line and the address
    /// must not already be in the header.
    ///
    /// The rest is re-written in its plainest A2 form where it was not (see
    /// [`Message::plain_payload`]), since our signature covers it anew.
    pub fn prepend(&self, t: &Timestamp, address: &[u8]) -> Result<Message, ParseError> {
        let mut v = b"0\r\n".to_vec();
        v.extend_from_slice(t.as_str().as_bytes());
        v.push(b' ');
        v.extend_from_slice(address);
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(&self.plain_payload());
        let rules = Rules {
            now: Now::Unchecked,
            limits: Limits {
                max_message_bytes: usize::MAX,
                max_header_lines: usize::MAX,
                max_line_bytes: usize::MAX,
            },
            ..Rules::default()
        };
        parse(&v, &rules)
    }
}

/// Parse exactly one message: bytes after its body are an error (A2 single-message input).
pub fn parse(input: &[u8], rules: &Rules) -> Result<Message, ParseError> {
    let (m, used) = parse_prefix(input, rules)?;
    if used != input.len() {
        return Err(ParseError {
            defect: Defect::TrailingBytes(input.len() - used),
            line: input[..used].iter().filter(|&&c| c == b'\n').count() + 1,
            offset: used,
        });
    }
    Ok(m)
}

/// Parse the message at the start of `input`; returns it and the number of bytes it took.
/// Use this to split a stream of concatenated messages.
pub fn parse_prefix(input: &[u8], rules: &Rules) -> Result<(Message, usize), ParseError> {
    Parser {
        input,
        pos: 0,
        line: 1,
        rules,
    }
    .message()
}

struct Parser<'a, 'r> {
    input: &'a [u8],
    pos: usize,
    line: usize,
    rules: &'r Rules,
}

impl<'a> Parser<'a, '_> {
    fn err<T>(&self, defect: Defect, offset: usize) -> Result<T, ParseError> {
        Err(ParseError {
            defect,
            line: self.line,
            offset,
        })
    }

    /// Take one line ending with CR LF; returns its content and the offset where it starts.
    /// Lines longer than `max` are refused before the scan goes on.
    fn line(&mut self, max: usize) -> Result<(&'a [u8], usize), ParseError> {
        let start = self.pos;
        let rest = &self.input[start..];
        let window = &rest[..rest.len().min(max.saturating_add(2))];
        // The first CR or LF decides: CR LF ends the line, anything else is a defect.
        if let Some(i) = memchr::memchr2(b'\r', b'\n', window) {
            if window[i] == b'\n' {
                return self.err(Defect::BareLf, start + i);
            }
            match window.get(i + 1) {
                Some(b'\n') => {
                    self.pos = start + i + 2;
                    self.line += 1;
                    return Ok((&rest[..i], start));
                }
                Some(_) => return self.err(Defect::BareCr, start + i),
                None => {} // CR at the window's end: too long, or unterminated
            }
        }
        if window.len() < rest.len() {
            return self.err(Defect::LineTooLong(max), start + max);
        }
        if rest.is_empty() && start == 0 {
            return self.err(Defect::EmptyInput, 0);
        }
        self.err(Defect::UnterminatedLine, self.input.len())
    }

    fn message(mut self) -> Result<(Message, usize), ParseError> {
        let limits = &self.rules.limits;
        // A2: "The first character of the signature is a version number, either 0 or 1,
        // followed by a hash string."
        let sig_line = match self.line(68) {
            Ok((l, _)) => l,
            Err(ParseError {
                defect: Defect::LineTooLong(_),
                ..
            }) => {
                // An over-long signature line: name the rule it breaks, not the line limit.
                let n = self
                    .input
                    .iter()
                    .take(limits.max_line_bytes.max(68))
                    .take_while(|&&c| c != b'\r' && c != b'\n')
                    .count();
                return match self.input[0] {
                    b'0' => self.err(Defect::UnsignedWithHash, 1),
                    b'1' => self.err(Defect::HashLength(n - 1), 1),
                    c => self.err(Defect::Version(c), 0),
                };
            }
            Err(e) => return Err(e),
        };
        self.line = 1; // errors below name the signature line
        let signature = match sig_line.first() {
            None => return self.err(Defect::Version(b'\r'), 0),
            Some(b'0') if sig_line.len() == 1 => Signature::Unsigned,
            // A2: "If the version number is 0 then the hash string is empty"
            Some(b'0') => return self.err(Defect::UnsignedWithHash, 1),
            Some(b'1') => {
                let h = &sig_line[1..];
                // A2: "The hash is written as 64 lower case hexadecimal digits."
                if let Some(i) = h.iter().position(|c| !c.is_ascii_hexdigit()) {
                    return self.err(Defect::HashNotHex, 1 + i);
                }
                if let Some(i) = h.iter().position(|c| c.is_ascii_uppercase()) {
                    return self.err(Defect::HashUpperCase, 1 + i);
                }
                if h.len() != 64 {
                    return self.err(Defect::HashLength(h.len()), 1);
                }
                let mut out = [0u8; 32];
                for (o, p) in out.iter_mut().zip(h.chunks(2)) {
                    let v = |c: u8| if c <= b'9' { c - b'0' } else { c - b'a' + 10 };
                    *o = v(p[0]) << 4 | v(p[1]);
                }
                Signature::Signed(out)
            }
            Some(&c) => return self.err(Defect::Version(c), 0),
        };
        self.line = 2;
        let payload_start = self.pos;
        let horizon = self.rules.horizon();
        let mut ids: Vec<IdSpan> = Vec::with_capacity(4);
        loop {
            let (l, at) = self.line(limits.max_line_bytes)?;
            if l.is_empty() {
                break;
            }
            if ids.len() >= limits.max_header_lines {
                self.line -= 1;
                return self.err(Defect::TooManyHeaderLines(limits.max_header_lines), at);
            }
            self.line -= 1; // errors below name the line just read
            let (secs, ts_len) = match parse_ts(l) {
                Ok(v) => v,
                Err((d, i)) => {
                    // A line of digits only is the body length: the blank line is missing.
                    let d = if !ids.is_empty() && l.iter().all(u8::is_ascii_digit) {
                        Defect::NoBlankLine
                    } else {
                        d
                    };
                    return self.err(d, at + i);
                }
            };
            if l.get(ts_len) != Some(&b' ') {
                let d = if ts_len > 19 || l.len() == ts_len {
                    Defect::MissingSpace
                } else {
                    Defect::TimestampFormat("unexpected characters after the seconds")
                };
                return self.err(d, at + ts_len);
            }
            let addr = &l[ts_len + 1..];
            if addr.is_empty() {
                return self.err(Defect::EmptyAddress, at + ts_len + 1);
            }
            let ts = &l[..ts_len];
            // A2: "not in the future"
            if let Some(h) = &horizon {
                let later = secs
                    .cmp(&h.secs)
                    .then_with(|| frac_of(ts).unwrap_or(b"").cmp(h.frac()));
                if later == Ordering::Greater {
                    return self.err(Defect::Future, at);
                }
            }
            // A2: "earlier than the timestamp on the line above it, if any"
            if let Some(prev) = ids.last() {
                let pt = &self.input
                    [payload_start + prev.start as usize..payload_start + prev.space as usize];
                match cmp_ts(secs, ts, prev.secs, pt) {
                    Ordering::Less => {}
                    Ordering::Equal => return self.err(Defect::EqualTimestamps, at),
                    Ordering::Greater => return self.err(Defect::NotDescending, at),
                }
            }
            // A2: "No address should appear more than once in a header."
            for (n, p) in ids.iter().enumerate() {
                let pa = &self.input
                    [payload_start + p.space as usize + 1..payload_start + p.end as usize];
                if pa == addr {
                    return self.err(Defect::DuplicateAddress(n + 2), at + ts_len + 1);
                }
            }
            // A2: "The recipient's address should not appear at all."
            if self
                .rules
                .own_addresses
                .iter()
                .any(|o| o.as_slice() == addr)
            {
                return self.err(Defect::OwnAddress, at + ts_len + 1);
            }
            let rel = (at - payload_start) as u32;
            ids.push(IdSpan {
                start: rel,
                space: rel + ts_len as u32,
                end: rel + l.len() as u32,
                secs,
            });
            self.line += 1;
        }
        if ids.is_empty() {
            self.line -= 1;
            return self.err(Defect::EmptyHeader, payload_start);
        }
        // A2: "The message body consists of a length, n, written as a decimal number
        // followed by CR LF, then n bytes"
        let (len_line, at) = match self.line(24) {
            Ok(v) => v,
            Err(ParseError {
                defect: Defect::LineTooLong(_),
                offset,
                line,
            }) => {
                // A length line longer than any length we could accept.
                let at = self.pos;
                let digits = self.input[at..offset].iter().all(u8::is_ascii_digit);
                return Err(ParseError {
                    defect: if digits {
                        Defect::LengthTooLarge(u64::MAX)
                    } else {
                        Defect::LengthSyntax
                    },
                    line,
                    offset: at,
                });
            }
            Err(e) => return Err(e),
        };
        if len_line.is_empty() || !len_line.iter().all(u8::is_ascii_digit) {
            self.line -= 1;
            return self.err(Defect::LengthSyntax, at);
        }
        let mut n: u64 = 0;
        for &d in len_line {
            n = match n
                .checked_mul(10)
                .and_then(|n| n.checked_add((d - b'0') as u64))
            {
                Some(v) => v,
                None => {
                    self.line -= 1;
                    return self.err(Defect::LengthTooLarge(u64::MAX), at);
                }
            };
        }
        let body_start = self.pos;
        if n > (limits.max_message_bytes.saturating_sub(body_start)) as u64 {
            self.line -= 1;
            return self.err(Defect::LengthTooLarge(n), at);
        }
        let n = n as usize;
        let have = self.input.len() - body_start;
        if have < n {
            return self.err(Defect::BodyShort { have, need: n }, self.input.len());
        }
        let end = body_start + n;
        Ok((
            Message {
                signature,
                payload: self.input[payload_start..end].to_vec(),
                ids,
                body_start: body_start - payload_start,
            },
            end,
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Streams

/// Why reading a message from a stream failed.
#[derive(Debug)]
pub enum ReadError {
    Parse(ParseError),
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Parse(e) => e.fmt(f),
            ReadError::Io(e) => write!(f, "read error: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<ReadError> for crate::exit::Failure {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Parse(p) => p.into(),
            ReadError::Io(e) => crate::exit::Failure::from(e).context("reading input"),
        }
    }
}

/// Reads concatenated messages off a byte stream, one at a time, with bounded memory:
/// no more than one message (within the limits) is held at once.
pub struct Reader<R> {
    inner: R,
    rules: Rules,
    /// Stream offset and line number of the next message's first byte.
    offset: usize,
    line: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> Reader<R> {
    pub fn new(inner: R, rules: Rules) -> Self {
        Reader {
            inner,
            rules,
            offset: 0,
            line: 1,
            buf: Vec::new(),
        }
    }

    /// Stream offset where the next message starts.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Append one CR LF line (up to `max` bytes before it) to `buf`; false at a clean EOF.
    fn take_line(&mut self, max: usize) -> io::Result<bool> {
        let start = self.buf.len();
        loop {
            let avail = self.inner.fill_buf()?;
            if avail.is_empty() {
                return Ok(self.buf.len() > start);
            }
            let room = (max + 2).saturating_sub(self.buf.len() - start);
            let take = &avail[..avail.len().min(room.max(1))];
            if let Some(i) = memchr::memchr(b'\n', take) {
                self.buf.extend_from_slice(&take[..=i]);
                self.inner.consume(i + 1);
                return Ok(true);
            }
            let n = take.len();
            self.buf.extend_from_slice(take);
            self.inner.consume(n);
            if self.buf.len() - start > max + 1 {
                return Ok(true); // too long: the parser reports it
            }
        }
    }

    /// The next message, None at the end of the stream.
    pub fn next_message(&mut self) -> Result<Option<Message>, ReadError> {
        self.buf.clear();
        let lim = self.rules.limits.clone();
        let fail = |me: &Self, e: ParseError| {
            ReadError::Parse(ParseError {
                line: e.line + me.line - 1,
                offset: e.offset + me.offset,
                ..e
            })
        };
        if !self.take_line(68).map_err(ReadError::Io)? {
            return Ok(None);
        }
        // Header lines up to the blank line, then the length line.
        let mut lines = 0usize;
        loop {
            let before = self.buf.len();
            if !self.take_line(lim.max_line_bytes).map_err(ReadError::Io)? {
                break;
            }
            let l = &self.buf[before..];
            let blank = l == b"\r\n";
            lines += 1;
            if blank || lines > lim.max_header_lines + 1 || !l.ends_with(b"\n") {
                if blank {
                    self.take_line(24).map_err(ReadError::Io)?;
                }
                break;
            }
            if self.buf.len() > lim.max_message_bytes {
                break;
            }
        }
        // Let the parser judge the header; it reports a short body with the length it wants.
        let need = match parse_prefix(&self.buf, &self.rules) {
            Ok((m, used)) => return self.finish(m, used),
            Err(ParseError {
                defect: Defect::BodyShort { have, need },
                ..
            }) => need - have,
            Err(e) => return Err(fail(self, e)),
        };
        let before = self.buf.len();
        (&mut self.inner)
            .take(need as u64)
            .read_to_end(&mut self.buf)
            .map_err(ReadError::Io)?;
        if self.buf.len() - before < need {
            let e = parse_prefix(&self.buf, &self.rules).err();
            return Err(fail(
                self,
                e.unwrap_or(ParseError {
                    defect: Defect::BodyShort { have: 0, need },
                    line: 1,
                    offset: self.buf.len(),
                }),
            ));
        }
        match parse_prefix(&self.buf, &self.rules) {
            Ok((m, used)) => self.finish(m, used),
            Err(e) => Err(fail(self, e)),
        }
    }

    fn finish(&mut self, m: Message, used: usize) -> Result<Option<Message>, ReadError> {
        self.line += memchr::memchr_iter(b'\n', &self.buf[..used]).count();
        self.offset += used;
        Ok(Some(m))
    }
}

use std::io::Read as _;

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Message, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_message().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[u8] = b"101c1ad32d6fe646a56edba43bd342ee11e45ba188c59aeec91a5590a0ea114d5\r\n2008/09/01 00:00:53.42 http://alice.com/cmr\r\n2008/09/01 00:00:53 udp://192.168.0.102:53/dns-tunnel\r\n2008/08/31 23:59:01.0955 https://www.charlie.com/messages.pl\r\n\r\n14\r\nHello World!\r\n";

    #[test]
    fn parses_the_appendix_example() {
        let m = parse(SPEC, &Rules::default()).unwrap();
        assert!(m.signature().is_signed());
        assert_eq!(m.ids().len(), 3);
        assert_eq!(m.sender().address, b"http://alice.com/cmr");
        assert_eq!(m.origin().timestamp, "2008/08/31 23:59:01.0955");
        assert_eq!(m.body(), b"Hello World!\r\n");
        assert_eq!(m.encode(), SPEC);
    }

    #[test]
    fn timestamps_compare_exactly() {
        let t = |s: &str| Timestamp::parse(s.as_bytes()).unwrap();
        assert!(t("2010/01/01 00:00:00.000000000000000000001") > t("2010/01/01 00:00:00"));
        assert_eq!(t("2010/01/01 00:00:00.50"), t("2010/01/01 00:00:00.5"));
        assert_eq!(t("2010/01/01 00:00:00."), t("2010/01/01 00:00:00"));
        assert!(t("2010/01/01 00:00:00.5") > t("2010/01/01 00:00:00.42"));
        assert!(t("0000/01/01 00:00:00") < t("9999/12/31 23:59:59.9"));
        assert_eq!(
            t("2008/09/01 00:00:53.420").canonical(),
            "2008/09/01 00:00:53.42"
        );
    }

    #[test]
    fn calendar_round_trips() {
        for &(s, ns) in &[
            (0i64, 0u32),
            (951_825_600, 5),
            (-62_167_219_200, 0),
            (253_402_300_799, 999_999_999),
        ] {
            let t = Timestamp::from_unix(s, ns, 9);
            let p = Timestamp::parse(t.as_str().as_bytes()).unwrap();
            assert_eq!(p.unix_secs(), s);
            assert_eq!(p.subsec_nanos(), ns);
        }
        assert_eq!(
            Timestamp::from_unix(-62_167_219_200, 0, 0).as_str(),
            "0000/01/01 00:00:00"
        );
        assert!(Timestamp::parse(b"1900/02/29 00:00:00").is_err());
        assert!(Timestamp::parse(b"2000/02/29 00:00:00").is_ok());
    }

    #[test]
    fn stream_of_messages() {
        let mut s = SPEC.to_vec();
        s.extend_from_slice(b"0\r\n2010/01/01 00:00:00 x\r\n\r\n0\r\n");
        let (a, n) = parse_prefix(&s, &Rules::default()).unwrap();
        assert_eq!(a.encode(), SPEC);
        let (b, m) = parse_prefix(&s[n..], &Rules::default()).unwrap();
        assert_eq!(n + m, s.len());
        assert_eq!(b.body(), b"");
        let r: Vec<_> = Reader::new(&s[..], Rules::default()).collect();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].as_ref().unwrap().encode(), b.encode());
    }

    #[test]
    fn stream_errors_carry_stream_offsets() {
        let mut s = SPEC.to_vec();
        s.extend_from_slice(b"0\r\n2010/13/01 00:00:00 x\r\n\r\n0\r\n");
        let mut r = Reader::new(&s[..], Rules::default());
        r.next().unwrap().unwrap();
        let e = match r.next().unwrap() {
            Err(ReadError::Parse(e)) => e,
            x => panic!("{x:?}"),
        };
        assert_eq!(e.offset, SPEC.len() + 3 + 5);
        assert_eq!(e.line, 9);
    }

    #[test]
    fn huge_length_does_not_overflow() {
        let m = b"0\r\n2010/01/01 00:00:00 x\r\n\r\n99999999999999999999999\r\n";
        let e = parse(m, &Rules::default()).unwrap_err();
        assert!(matches!(e.defect, Defect::LengthTooLarge(_)), "{e}");
    }

    #[test]
    fn own_address_and_prepend() {
        let m = parse(SPEC, &Rules::default()).unwrap();
        let rules = Rules {
            own_addresses: vec![b"http://alice.com/cmr".to_vec()],
            ..Rules::default()
        };
        assert_eq!(parse(SPEC, &rules).unwrap_err().defect, Defect::OwnAddress);
        let t = Timestamp::parse(b"2008/09/01 00:01:00").unwrap();
        let f = m.prepend(&t, b"http://bob.com/").unwrap();
        assert_eq!(f.ids().len(), 4);
        assert_eq!(f.sender().address, b"http://bob.com/");
        assert!(m.prepend(&t, b"http://alice.com/cmr").is_err());
        let old = Timestamp::parse(b"2008/09/01 00:00:00").unwrap();
        assert!(m.prepend(&old, b"http://bob.com/").is_err());
    }

    #[test]
    fn future_check_uses_the_clock_fraction_and_skew() {
        let m = b"0\r\n2010/01/01 00:00:00.5 x\r\n\r\n0\r\n";
        let at = |t: &str, skew| Rules {
            now: Now::Fixed(Timestamp::parse(t.as_bytes()).unwrap()),
            skew_secs: skew,
            ..Rules::default()
        };
        assert!(parse(m, &at("2010/01/01 00:00:00.5", 0)).is_ok());
        assert!(parse(m, &at("2010/01/01 00:00:00.50", 0)).is_ok());
        let e = parse(m, &at("2010/01/01 00:00:00.49", 0)).unwrap_err();
        assert_eq!((e.defect, e.line, e.offset), (Defect::Future, 2, 3));
        assert!(parse(m, &at("2009/12/31 23:59:59.6", 1)).is_ok());
        assert!(parse(m, &at("2009/12/31 23:59:59.4", 1)).is_err());
        // The system clock: far future fails, the past passes.
        assert!(parse(
            b"0\r\n9999/12/31 23:59:59 x\r\n\r\n0\r\n",
            &Rules::default()
        )
        .is_err());
        assert!(parse(m, &Rules::default()).is_ok());
    }

    #[test]
    fn over_long_signature_and_length_lines_name_their_rule() {
        let mut m = b"1".to_vec();
        m.extend_from_slice(&[b'a'; 80]);
        m.extend_from_slice(b"\r\n2010/01/01 00:00:00 x\r\n\r\n0\r\n");
        let e = parse(&m, &Rules::default()).unwrap_err();
        assert_eq!(e.defect, Defect::HashLength(80), "{e}");
        let mut m = b"0".to_vec();
        m.extend_from_slice(&[b'0'; 80]);
        m.extend_from_slice(b"\r\n");
        assert_eq!(
            parse(&m, &Rules::default()).unwrap_err().defect,
            Defect::UnsignedWithHash
        );
        let m = b"0\r\n2010/01/01 00:00:00 x\r\n\r\n000000000000000000000000000000001\r\nx";
        let e = parse(m, &Rules::default()).unwrap_err();
        assert!(matches!(e.defect, Defect::LengthTooLarge(_)), "{e}");
        assert_eq!((e.line, e.offset), (4, 28));
        let m = b"0\r\n2010/01/01 00:00:00 x\r\n\r\n1 2 3 4 5 6 7 8 9 10 11 12 13 14\r\nx";
        let e = parse(m, &Rules::default()).unwrap_err();
        assert_eq!(e.defect, Defect::LengthSyntax, "{e}");
    }
}
