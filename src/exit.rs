//! Exit codes (sysexits.h) and the one error type every binary ends in.
//!
//! Every reader of our exit status (an MTA, inetd, a shell script, cron) treats only
//! 75 (EX_TEMPFAIL) as "try again later". Everything else is final. The mapping from a
//! failure to a code lives here, once, so the tools cannot disagree about it.

use std::fmt;
use std::io;

/// successful termination
pub const OK: u8 = 0;
/// command line usage error
pub const USAGE: u8 = 64;
/// data format error: malformed input
pub const DATAERR: u8 = 65;
/// cannot open input
pub const NOINPUT: u8 = 66;
/// service unavailable
pub const UNAVAILABLE: u8 = 69;
/// internal software error (a bug; never a panic's 101)
pub const SOFTWARE: u8 = 70;
/// input/output error
pub const IOERR: u8 = 74;
/// temporary failure: the caller should retry later
pub const TEMPFAIL: u8 = 75;
/// permission denied: a signature or policy refused the input
pub const NOPERM: u8 = 77;
/// configuration error
pub const CONFIG: u8 = 78;

/// The symbolic name of an exit code, for logs and `--json` output.
pub fn name(code: u8) -> &'static str {
    match code {
        OK => "ok",
        USAGE => "usage",
        DATAERR => "dataerr",
        NOINPUT => "noinput",
        UNAVAILABLE => "unavailable",
        SOFTWARE => "software",
        IOERR => "ioerr",
        TEMPFAIL => "tempfail",
        NOPERM => "noperm",
        CONFIG => "config",
        _ => "other",
    }
}

/// A failure on its way out of a tool: the exit code and a one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
    pub fn usage(m: impl Into<String>) -> Self {
        Self::new(USAGE, m)
    }
    pub fn data(m: impl Into<String>) -> Self {
        Self::new(DATAERR, m)
    }
    pub fn no_input(m: impl Into<String>) -> Self {
        Self::new(NOINPUT, m)
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new(UNAVAILABLE, m)
    }
    pub fn software(m: impl Into<String>) -> Self {
        Self::new(SOFTWARE, m)
    }
    pub fn temp(m: impl Into<String>) -> Self {
        Self::new(TEMPFAIL, m)
    }
    pub fn perm(m: impl Into<String>) -> Self {
        Self::new(NOPERM, m)
    }
    pub fn config(m: impl Into<String>) -> Self {
        Self::new(CONFIG, m)
    }
    /// Prefix the message with context ("reading msg.txt: ...").
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
    /// True when the caller should retry later (EX_TEMPFAIL).
    pub fn is_transient(&self) -> bool {
        self.code == TEMPFAIL
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Map an I/O error to the code a caller should see. Errors that may go away by
/// themselves (disk full, interrupted, timed out, out of memory) are transient.
pub fn io_code(e: &io::Error) -> u8 {
    use io::ErrorKind::*;
    match e.kind() {
        NotFound => NOINPUT,
        PermissionDenied => NOPERM,
        Interrupted | WouldBlock | TimedOut | OutOfMemory | StorageFull | ResourceBusy
        | ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected
        | HostUnreachable | NetworkUnreachable | NetworkDown | AddrNotAvailable => TEMPFAIL,
        _ => {
            // ENOSPC / EDQUOT / EAGAIN via raw errno, for kinds std does not name stably.
            match e.raw_os_error() {
                Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EAGAIN) | Some(libc::EIO) => {
                    TEMPFAIL
                }
                _ => IOERR,
            }
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::new(io_code(&e), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_io_errors_are_tempfail() {
        let e = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(io_code(&e), TEMPFAIL);
        let e = io::Error::new(io::ErrorKind::NotFound, "x");
        assert_eq!(io_code(&e), NOINPUT);
        let e = io::Error::new(io::ErrorKind::InvalidData, "x");
        assert_eq!(io_code(&e), IOERR);
    }
}
