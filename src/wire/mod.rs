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

mod parser;
mod reader;
mod timestamp;
pub use parser::{parse, parse_prefix};
pub use reader::{ReadError, Reader};
use std::fmt;
use std::io;
pub use timestamp::Timestamp;

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

/// When nonzero, the clock stands still at this many microseconds since the epoch (the
/// simulator sets it once per round, so a run does not depend on how fast it runs).
static CLOCK_FROZEN_MICROS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Stop this process's clock (every `Timestamp::now()`, hence the state file's times, the
/// outbox's backoff, the rate windows and the not-in-the-future rule) at `secs` since the
/// Unix epoch; None lets it run again. Only the simulator calls it.
pub fn freeze_clock(secs: Option<f64>) {
    CLOCK_FROZEN_MICROS.store(
        secs.map_or(0, |s| (s * 1e6) as i64),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// The time since the Unix epoch: the system clock, or the frozen time (only in the
/// simulator).
pub fn system_time() -> std::time::Duration {
    let frozen = CLOCK_FROZEN_MICROS.load(std::sync::atomic::Ordering::Relaxed);
    if frozen > 0 {
        return std::time::Duration::from_micros(frozen as u64);
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
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
                let d = system_time();
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
