//! Diagnostics: stderr by default, a file or syslog where stderr is not ours.
//!
//! Under inetd, fd 2 is the client's socket, so `cmr-recv` switches the sink to a file
//! (`--log FILE`) or syslog (`--log syslog`) before anything can be printed.
//!
//! With no syslog socket (`/dev/log`: a container, a chroot, a host without a syslog
//! daemon), `syslog(3)` drops every line silently. Then `--log syslog` falls back to
//! stderr, or to FILE with `--log syslog:FILE`, and the first line logged says so once;
//! when fd 2 is a socket (inetd's connection to the client) and no file is named, the
//! lines are dropped rather than sent to the client.

use std::io::Write;
use std::sync::Mutex;

/// Where diagnostics go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    Stderr,
    File(std::path::PathBuf),
    Syslog,
    /// Syslog, else this file (`syslog:FILE`).
    SyslogOr(std::path::PathBuf),
    /// Drop everything (tests, or `--quiet`).
    Null,
}

static SINK: Mutex<Option<Sink>> = Mutex::new(None);
/// Said once, before the first line, when syslog was asked for and is not there.
static NOTICE: Mutex<Option<String>> = Mutex::new(None);

impl Sink {
    /// `-` or `stderr`, `syslog`, `syslog:FILE`, `none`, or a file path.
    pub fn parse(s: &str) -> Sink {
        match s {
            "-" | "stderr" => Sink::Stderr,
            "syslog" => Sink::Syslog,
            "none" | "null" => Sink::Null,
            p => match p.strip_prefix("syslog:").filter(|f| !f.is_empty()) {
                Some(f) => Sink::SyslogOr(f.into()),
                None => Sink::File(p.into()),
            },
        }
    }
}

/// The socket syslog(3) writes to.
const SYSLOG_SOCKET: &str = "/dev/log";

/// Is a syslog daemon listening (datagram or stream, as glibc tries)?
fn syslog_listening() -> bool {
    use std::os::unix::net::{UnixDatagram, UnixStream};
    UnixDatagram::unbound()
        .and_then(|s| s.connect(SYSLOG_SOCKET))
        .is_ok()
        || UnixStream::connect(SYSLOG_SOCKET).is_ok()
}

/// Is fd 2 a socket (inetd hands the client's connection over as fds 0, 1 and 2)?
fn stderr_is_socket() -> bool {
    crate::sys::is_socket(crate::sys::Std::Err)
}

/// Choose the sink for the rest of the process.
pub fn set_sink(s: Sink) {
    let s = match s {
        Sink::Syslog | Sink::SyslogOr(_) if !syslog_listening() => {
            let to = match s {
                Sink::SyslogOr(f) => Sink::File(f),
                _ if stderr_is_socket() => Sink::Null,
                _ => Sink::Stderr,
            };
            let place = match &to {
                Sink::File(f) => f.display().to_string(),
                _ => "stderr".to_string(),
            };
            if to != Sink::Null {
                *NOTICE.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!(
                    "{}: no syslog socket at {SYSLOG_SOCKET}: logging to {place} instead",
                    program_name()
                ));
            }
            to
        }
        Sink::SyslogOr(_) => Sink::Syslog,
        s => s,
    };
    if s == Sink::Syslog {
        // The ident must outlive every syslog call: leak one small string once.
        let ident: &'static std::ffi::CStr = Box::leak(
            std::ffi::CString::new(program_name())
                .unwrap_or_default()
                .into_boxed_c_str(),
        );
        // SAFETY: ident is a NUL-terminated string that lives for the whole process, as
        // openlog requires (it keeps the pointer).
        unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, libc::LOG_MAIL) };
    }
    *SINK.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
}

fn program_name() -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "cmr".into())
}

/// Text for a terminal (or a log a terminal will show): control characters that a terminal
/// would act on (C0 but LF and TAB, DEL, C1) become `\xNN` (CR LF is a line end), so that bytes from the network
/// (an address holding `ESC[31m`, say) are shown, never obeyed. Every tool's human output goes through this;
/// `--json` output does not (it stays exact).
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| (c.is_control() && c != '\n' && c != '\t') || c == '\u{7f}';
    if !s.chars().any(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            // A line end written CR LF (message bodies) is a line end.
            '\r' if it.peek() == Some(&'\n') => {}
            c if bad(c) => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn emit(priority: libc::c_int, line: &str) {
    let notice = NOTICE.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(n) = notice {
        emit(libc::LOG_NOTICE, &n);
    }
    let line = &*terminal_safe(line);
    let sink = SINK
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or(Sink::Stderr);
    match sink {
        Sink::Stderr => {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
        Sink::Null => {}
        Sink::File(p) => {
            let stamp = crate::wire::Timestamp::now().to_string();
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
            {
                // One write call per line keeps concurrent appenders from interleaving.
                let _ =
                    f.write_all(format!("{stamp} [{}] {line}\n", std::process::id()).as_bytes());
            }
        }
        Sink::Syslog | Sink::SyslogOr(_) => {
            let msg = std::ffi::CString::new(line.replace('\0', "\\0")).unwrap_or_default();
            // SAFETY: a constant "%s" format with one NUL-terminated argument that outlives
            // the call: syslog reads nothing else.
            unsafe { libc::syslog(priority, c"%s".as_ptr(), msg.as_ptr()) };
        }
    }
}

/// An error the user must see.
pub fn error(line: &str) {
    emit(libc::LOG_ERR, line)
}

/// Something worth recording that is not a failure (a rejected network message).
pub fn info(line: &str) {
    emit(libc::LOG_INFO, line)
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_bytes_are_shown_not_obeyed() {
        assert_eq!(super::terminal_safe("a\tb\nc\r\nd"), "a\tb\nc\nd");
        assert_eq!(
            super::terminal_safe("x\u{1b}[31my\r\u{7f}\u{9b}2J"),
            "x\\x1b[31my\\x0d\\x7f\\x9b2J"
        );
        assert_eq!(super::terminal_safe("caf\u{e9}"), "caf\u{e9}");
    }
}
