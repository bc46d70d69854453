//! The strict A2 parser: one message from bytes, every rule checked, with the line and byte
//! offset of the first defect.

use super::timestamp::{cmp_ts, frac_of, parse_ts};
use super::*;
use std::cmp::Ordering;

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
        let signature = self.signature()?;
        self.line = 2;
        let payload_start = self.pos;
        let ids = self.header(payload_start)?;
        let n = self.body_length()?;
        let body_start = self.pos;
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

    /// The signature line.
    /// A2: "The first character of the signature is a version number, either 0 or 1,
    /// followed by a hash string."
    fn signature(&mut self) -> Result<Signature, ParseError> {
        let sig_line = match self.line(68) {
            Ok((l, _)) => l,
            Err(ParseError {
                defect: Defect::LineTooLong(_),
                ..
            }) => return self.long_signature_line(),
            Err(e) => return Err(e),
        };
        self.line = 1; // errors below name the signature line
        match sig_line.first() {
            None => self.err(Defect::Version(b'\r'), 0),
            Some(b'0') if sig_line.len() == 1 => Ok(Signature::Unsigned),
            // A2: "If the version number is 0 then the hash string is empty"
            Some(b'0') => self.err(Defect::UnsignedWithHash, 1),
            Some(b'1') => Ok(Signature::Signed(self.hash(&sig_line[1..])?)),
            Some(&c) => self.err(Defect::Version(c), 0),
        }
    }

    /// An over-long signature line: name the rule it breaks, not the line limit.
    fn long_signature_line<T>(&self) -> Result<T, ParseError> {
        let n = self
            .input
            .iter()
            .take(self.rules.limits.max_line_bytes.max(68))
            .take_while(|&&c| c != b'\r' && c != b'\n')
            .count();
        match self.input[0] {
            b'0' => self.err(Defect::UnsignedWithHash, 1),
            b'1' => self.err(Defect::HashLength(n - 1), 1),
            c => self.err(Defect::Version(c), 0),
        }
    }

    /// The hash string `h` after a signature's version 1, decoded.
    fn hash(&self, h: &[u8]) -> Result<[u8; 32], ParseError> {
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
        Ok(out)
    }

    /// The header's ID lines up to the blank line ending it, as spans relative to
    /// `payload_start` (where the header begins).
    fn header(&mut self, payload_start: usize) -> Result<Vec<IdSpan>, ParseError> {
        let limits = &self.rules.limits;
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
            let id = self.id_line(l, at, &ids, payload_start, horizon.as_ref())?;
            ids.push(id);
            self.line += 1;
        }
        if ids.is_empty() {
            self.line -= 1;
            return self.err(Defect::EmptyHeader, payload_start);
        }
        Ok(ids)
    }

    /// One ID line `l`, read at offset `at`, checked against the horizon and the lines
    /// above it (`ids`); returns its span.
    fn id_line(
        &self,
        l: &[u8],
        at: usize,
        ids: &[IdSpan],
        payload_start: usize,
        horizon: Option<&Horizon>,
    ) -> Result<IdSpan, ParseError> {
        let (secs, ts_len) = self.id_timestamp(l, at, !ids.is_empty())?;
        let addr = &l[ts_len + 1..];
        if addr.is_empty() {
            return self.err(Defect::EmptyAddress, at + ts_len + 1);
        }
        let ts = &l[..ts_len];
        // A2: "not in the future"
        if let Some(h) = horizon {
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
        self.check_address(addr, at + ts_len + 1, ids, payload_start)?;
        let rel = (at - payload_start) as u32;
        Ok(IdSpan {
            start: rel,
            space: rel + ts_len as u32,
            end: rel + l.len() as u32,
            secs,
        })
    }

    /// The timestamp opening ID line `l` (read at offset `at`) and the space after it;
    /// returns its seconds and length. `not_first`: lines were read above this one.
    fn id_timestamp(
        &self,
        l: &[u8],
        at: usize,
        not_first: bool,
    ) -> Result<(i64, usize), ParseError> {
        let (secs, ts_len) = match parse_ts(l) {
            Ok(v) => v,
            Err((d, i)) => {
                // A line of digits only is the body length: the blank line is missing.
                let d = if not_first && l.iter().all(u8::is_ascii_digit) {
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
        Ok((secs, ts_len))
    }

    /// An ID line's address `addr` (at offset `at`), against the addresses above it (`ids`)
    /// and the recipient's own.
    fn check_address(
        &self,
        addr: &[u8],
        at: usize,
        ids: &[IdSpan],
        payload_start: usize,
    ) -> Result<(), ParseError> {
        // A2: "No address should appear more than once in a header."
        for (n, p) in ids.iter().enumerate() {
            let pa =
                &self.input[payload_start + p.space as usize + 1..payload_start + p.end as usize];
            if pa == addr {
                return self.err(Defect::DuplicateAddress(n + 2), at);
            }
        }
        // A2: "The recipient's address should not appear at all."
        if self
            .rules
            .own_addresses
            .iter()
            .any(|o| o.as_slice() == addr)
        {
            return self.err(Defect::OwnAddress, at);
        }
        Ok(())
    }

    /// The body's length line, checked against the message size limit.
    /// A2: "The message body consists of a length, n, written as a decimal number
    /// followed by CR LF, then n bytes"
    fn body_length(&mut self) -> Result<usize, ParseError> {
        let limits = &self.rules.limits;
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
        Ok(n as usize)
    }
}
