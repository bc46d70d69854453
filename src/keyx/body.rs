//! The five A5 control bodies: strict parse and exact format.
//!
//! ```text
//! RSA key exchange request=n,e.
//! RSA key exchange reply=c.
//! DH key exchange request=g,p,A.
//! DH key exchange reply=B.
//! Clear key exchange=k.
//! ```
//!
//! A5: "all numbers are written in lower case hexadecimal". The parser takes lower-case hex
//! digits only, needs the closing period and nothing after it, and refuses a number longer
//! than [`MAX_DIGITS`] digits before converting anything to a big number, so an oversized
//! modulus costs one scan of its digits and nothing more.

use num_bigint::BigUint;
use std::fmt;

/// Longest number accepted, in hex digits: 8192 bits. Larger RSA moduli and DH primes are
/// refused anyway (see `rsa::MAX_BITS`, `dh::MAX_BITS`); clear keys are limited to 1024 bytes.
pub const MAX_DIGITS: usize = 2048;

pub const RSA_REQUEST: &str = "RSA key exchange request=";
pub const RSA_REPLY: &str = "RSA key exchange reply=";
pub const DH_REQUEST: &str = "DH key exchange request=";
pub const DH_REPLY: &str = "DH key exchange reply=";
pub const CLEAR: &str = "Clear key exchange=";

const PREFIXES: [&str; 5] = [RSA_REQUEST, RSA_REPLY, DH_REQUEST, DH_REPLY, CLEAR];

/// True when `body` is a key-exchange control message (one of the five A5 prefixes), well
/// formed or not. Such messages are handled by key exchange and never cached or routed.
pub fn is_control(body: &[u8]) -> bool {
    PREFIXES.iter().any(|p| body.starts_with(p.as_bytes()))
}

/// A parsed control body.
#[derive(Clone, PartialEq, Eq)]
pub enum Control {
    /// A5.1 `RSA key exchange request=n,e.`
    RsaRequest { n: BigUint, e: BigUint },
    /// A5.1 `RSA key exchange reply=c.`
    RsaReply { c: BigUint },
    /// A5.2 `DH key exchange request=g,p,A.`
    DhRequest { g: BigUint, p: BigUint, a: BigUint },
    /// A5.2 `DH key exchange reply=B.`
    DhReply { b: BigUint },
    /// A5.3 `Clear key exchange=k.` (k as bytes, two hex digits per byte)
    Clear { key: Vec<u8> },
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Control::Clear { key } => write!(f, "Clear {{ key: {} bytes }}", key.len()),
            other => f.write_str(&other.to_string()),
        }
    }
}

impl Control {
    /// The body as A5 writes it, numbers in lower-case hex without leading zeros, with the
    /// closing period.
    pub fn format(&self) -> String {
        match self {
            Control::RsaRequest { n, e } => format!("{RSA_REQUEST}{n:x},{e:x}."),
            Control::RsaReply { c } => format!("{RSA_REPLY}{c:x}."),
            Control::DhRequest { g, p, a } => format!("{DH_REQUEST}{g:x},{p:x},{a:x}."),
            Control::DhReply { b } => format!("{DH_REPLY}{b:x}."),
            Control::Clear { key } => format!("{CLEAR}{}.", crate::wire::hex(key)),
        }
    }

    /// The short name of the message kind, for logs and `--json`.
    pub fn kind(&self) -> &'static str {
        match self {
            Control::RsaRequest { .. } => "rsa-request",
            Control::RsaReply { .. } => "rsa-reply",
            Control::DhRequest { .. } => "dh-request",
            Control::DhReply { .. } => "dh-reply",
            Control::Clear { .. } => "clear",
        }
    }

    /// Strict parse of a control body.
    pub fn parse(body: &[u8]) -> Result<Control, BodyError> {
        let prefix = PREFIXES
            .iter()
            .find(|p| body.starts_with(p.as_bytes()))
            .ok_or(BodyError {
                defect: BodyDefect::NotControl,
                offset: 0,
            })?;
        let mut c = Cursor {
            b: body,
            pos: prefix.len(),
        };
        let ctl = match *prefix {
            RSA_REQUEST => {
                let n = c.number("n", b',')?;
                let e = c.number("e", b'.')?;
                Control::RsaRequest { n, e }
            }
            RSA_REPLY => Control::RsaReply {
                c: c.number("c", b'.')?,
            },
            DH_REQUEST => {
                let g = c.number("g", b',')?;
                let p = c.number("p", b',')?;
                let a = c.number("A", b'.')?;
                Control::DhRequest { g, p, a }
            }
            DH_REPLY => Control::DhReply {
                b: c.number("B", b'.')?,
            },
            _ => {
                let (start, digits) = c.digits("k", b'.')?;
                if digits.len() % 2 != 0 {
                    return Err(BodyError {
                        defect: BodyDefect::OddKeyDigits(digits.len()),
                        offset: start,
                    });
                }
                let key = crate::wire::unhex(std::str::from_utf8(digits).unwrap_or_default())
                    .unwrap_or_default();
                Control::Clear { key }
            }
        };
        if c.pos != body.len() {
            return Err(BodyError {
                defect: BodyDefect::TrailingBytes(body.len() - c.pos),
                offset: c.pos,
            });
        }
        Ok(ctl)
    }
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format())
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// Lower-case hex digits up to `end`, which is consumed. Checks the length while
    /// scanning: nothing past MAX_DIGITS is looked at.
    fn digits(&mut self, field: &'static str, end: u8) -> Result<(usize, &'a [u8]), BodyError> {
        let start = self.pos;
        loop {
            let Some(&ch) = self.b.get(self.pos) else {
                return Err(BodyError {
                    defect: if end == b'.' {
                        BodyDefect::MissingPeriod(field)
                    } else {
                        BodyDefect::MissingComma(field)
                    },
                    offset: self.pos,
                });
            };
            if ch == end {
                break;
            }
            if !matches!(ch, b'0'..=b'9' | b'a'..=b'f') {
                // A5: "all numbers are written in lower case hexadecimal"
                return Err(BodyError {
                    defect: BodyDefect::NotLowerHex { field, found: ch },
                    offset: self.pos,
                });
            }
            if self.pos - start >= MAX_DIGITS {
                return Err(BodyError {
                    defect: BodyDefect::TooLong {
                        field,
                        max: MAX_DIGITS,
                    },
                    offset: start,
                });
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(BodyError {
                defect: BodyDefect::Empty(field),
                offset: start,
            });
        }
        let d = &self.b[start..self.pos];
        self.pos += 1;
        Ok((start, d))
    }

    fn number(&mut self, field: &'static str, end: u8) -> Result<BigUint, BodyError> {
        let (start, d) = self.digits(field, end)?;
        BigUint::parse_bytes(d, 16).ok_or(BodyError {
            defect: BodyDefect::Empty(field),
            offset: start,
        })
    }
}

/// What is wrong with a control body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyDefect {
    /// None of the five A5 prefixes.
    NotControl,
    /// A number (or the key) has no digits.
    Empty(&'static str),
    /// A character other than a lower-case hex digit inside a number.
    NotLowerHex { field: &'static str, found: u8 },
    /// A number longer than the limit (in hex digits).
    TooLong { field: &'static str, max: usize },
    /// The body ends before the ',' that follows the field.
    MissingComma(&'static str),
    /// The body ends before the closing '.'.
    MissingPeriod(&'static str),
    /// Bytes after the closing period.
    TrailingBytes(usize),
    /// A clear key with an odd number of hex digits (A5.3: two digits per byte).
    OddKeyDigits(usize),
}

/// A defect and the byte offset in the body where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    pub defect: BodyDefect,
    pub offset: usize,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.defect {
            BodyDefect::NotControl => write!(f, "not a key exchange body")?,
            BodyDefect::Empty(x) => write!(f, "number {x} is empty")?,
            BodyDefect::NotLowerHex { field, found } => write!(
                f,
                "number {field}: {} is not a lower-case hex digit",
                show_byte(*found)
            )?,
            BodyDefect::TooLong { field, max } => {
                write!(f, "number {field} is longer than {max} hex digits")?
            }
            BodyDefect::MissingComma(x) => write!(f, "missing ',' after number {x}")?,
            BodyDefect::MissingPeriod(x) => write!(
                f,
                "missing closing '.' after {x} (A5 bodies end with a period)"
            )?,
            BodyDefect::TrailingBytes(n) => write!(f, "{n} byte(s) after the closing '.'")?,
            BodyDefect::OddKeyDigits(n) => {
                write!(f, "clear key has an odd number of hex digits ({n})")?
            }
        }
        write!(f, " at body byte {}", self.offset)
    }
}

impl std::error::Error for BodyError {}

pub(crate) fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> BigUint {
        BigUint::parse_bytes(s.as_bytes(), 16).unwrap()
    }

    #[test]
    fn round_trips_each_body() {
        let cases = [
            "RSA key exchange request=c0ffee1,10001.",
            "RSA key exchange reply=abc.",
            "DH key exchange request=2,ffffffff,1234.",
            "DH key exchange reply=5.",
            "Clear key exchange=666f6f.",
        ];
        for s in cases {
            let c = Control::parse(s.as_bytes()).unwrap();
            assert_eq!(c.format(), s);
            assert!(is_control(s.as_bytes()));
        }
        assert_eq!(
            Control::parse(b"RSA key exchange request=c0ffee1,10001.").unwrap(),
            Control::RsaRequest {
                n: n("c0ffee1"),
                e: n("10001")
            }
        );
        assert_eq!(
            Control::parse(b"Clear key exchange=666f6f.").unwrap(),
            Control::Clear {
                key: b"foo".to_vec()
            }
        );
    }

    #[test]
    fn is_control_recognises_only_the_prefixes() {
        assert!(is_control(b"DH key exchange reply=zz"));
        assert!(!is_control(b"Hello World!"));
        assert!(!is_control(b"rsa key exchange request=1,3."));
        assert!(!is_control(b" RSA key exchange request=1,3."));
    }

    fn err(s: &[u8]) -> BodyError {
        Control::parse(s).unwrap_err()
    }

    #[test]
    fn strict_errors_name_the_defect_and_offset() {
        let e = err(b"RSA key exchange request=ABC,3.");
        assert_eq!(
            e.defect,
            BodyDefect::NotLowerHex {
                field: "n",
                found: b'A'
            }
        );
        assert_eq!(e.offset, 25);
        assert!(e.to_string().contains("at body byte 25"), "{e}");

        let e = err(b"RSA key exchange reply=abc");
        assert_eq!(e.defect, BodyDefect::MissingPeriod("c"));
        assert_eq!(e.offset, 26);

        let e = err(b"RSA key exchange request=abc.");
        assert_eq!(
            e.defect,
            BodyDefect::NotLowerHex {
                field: "n",
                found: b'.'
            }
        );

        let e = err(b"RSA key exchange request=abc");
        assert_eq!(e.defect, BodyDefect::MissingComma("n"));

        let e = err(b"DH key exchange request=2,,3.");
        assert_eq!(e.defect, BodyDefect::Empty("p"));
        assert_eq!(e.offset, 26);

        let e = err(b"DH key exchange reply=5.\r\n");
        assert_eq!(e.defect, BodyDefect::TrailingBytes(2));
        assert_eq!(e.offset, 24);

        let e = err(b"Clear key exchange=666f6.");
        assert_eq!(e.defect, BodyDefect::OddKeyDigits(5));

        let e = err(b"Clear key exchange=.");
        assert_eq!(e.defect, BodyDefect::Empty("k"));

        assert_eq!(err(b"Hello").defect, BodyDefect::NotControl);
    }

    #[test]
    fn oversized_numbers_are_refused_before_conversion() {
        let mut b = RSA_REQUEST.as_bytes().to_vec();
        b.extend(std::iter::repeat_n(b'f', 8192)); // a 32,768-bit modulus
        b.extend_from_slice(b",10001.");
        let e = err(&b);
        assert_eq!(
            e.defect,
            BodyDefect::TooLong {
                field: "n",
                max: MAX_DIGITS
            }
        );
        // exactly MAX_DIGITS digits still parses
        let mut b = RSA_REPLY.as_bytes().to_vec();
        b.extend(std::iter::repeat_n(b'f', MAX_DIGITS));
        b.push(b'.');
        assert!(Control::parse(&b).is_ok());
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn num() -> impl Strategy<Value = BigUint> {
            proptest::collection::vec(any::<u8>(), 1..64).prop_map(|b| BigUint::from_bytes_be(&b))
        }

        proptest! {
            #[test]
            fn format_then_parse_is_identity(n in num(), e in num(), g in num(), k in proptest::collection::vec(any::<u8>(), 1..64)) {
                for c in [
                    Control::RsaRequest { n: n.clone(), e: e.clone() },
                    Control::RsaReply { c: n.clone() },
                    Control::DhRequest { g: g.clone(), p: n.clone(), a: e.clone() },
                    Control::DhReply { b: g.clone() },
                    Control::Clear { key: k.clone() },
                ] {
                    let s = c.format();
                    prop_assert!(is_control(s.as_bytes()));
                    prop_assert_eq!(Control::parse(s.as_bytes()).unwrap(), c);
                }
            }

            #[test]
            fn arbitrary_bytes_after_a_prefix_never_panic(i in 0usize..5, tail in proptest::collection::vec(any::<u8>(), 0..200)) {
                let mut b = PREFIXES[i].as_bytes().to_vec();
                b.extend_from_slice(&tail);
                if let Err(e) = Control::parse(&b) {
                    prop_assert!(e.offset <= b.len());
                }
            }
        }
    }
}
