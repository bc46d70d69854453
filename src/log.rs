//! Diagnostics: stderr by default, a file or syslog where stderr is not ours.
//!
//! Under inetd, fd 2 is the client's socket, so `cmr-recv` switches the sink to a file
//! (`--log FILE`) or syslog (`--log syslog`) before anything can be printed.

use std::io::Write;
use std::sync::Mutex;

/// Where diagnostics go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    Stderr,
    File(std::path::PathBuf),
    Syslog,
    /// Drop everything (tests, or `--quiet`).
    Null,
}

static SINK: Mutex<Option<Sink>> = Mutex::new(None);

impl Sink {
    /// `-` or `stderr`, `syslog`, `none`, or a file path.
    pub fn parse(s: &str) -> Sink {
        match s {
            "-" | "stderr" => Sink::Stderr,
            "syslog" => Sink::Syslog,
            "none" | "null" => Sink::Null,
            p => Sink::File(p.into()),
        }
    }
}

/// Choose the sink for the rest of the process.
pub fn set_sink(s: Sink) {
    if s == Sink::Syslog {
        // The ident must outlive every syslog call: leak one small string once.
        let ident: &'static std::ffi::CStr = Box::leak(
            std::ffi::CString::new(program_name())
                .unwrap_or_default()
                .into_boxed_c_str(),
        );
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
        Sink::Syslog => {
            let msg = std::ffi::CString::new(line.replace('\0', "\\0")).unwrap_or_default();
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
