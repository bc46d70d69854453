//! A stream of self-delimiting A2 messages (a pipe, a file): split with the structural
//! rules, one message at a time, never reading past the end of the one being returned.

use super::*;
use std::io::{self, BufRead};

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
