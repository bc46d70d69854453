//! `--log syslog` on a host without a syslog socket: the lines go to stderr (or to the
//! file of `--log syslog:FILE`), and the first one says so; when fd 2 is a socket (inetd)
//! nothing is written to it. Where /dev/log is a live socket these cases cannot arise, and
//! the tests only check that syslog is used quietly.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn syslog_listening() -> bool {
    use std::os::unix::net::{UnixDatagram, UnixStream};
    UnixDatagram::unbound()
        .and_then(|s| s.connect("/dev/log"))
        .is_ok()
        || UnixStream::connect("/dev/log").is_ok()
}

/// `cmr-route --log LOG --state S peer remove http://nobody.example/cmr`: fails with 66
/// ("no peer"), so it has one error line to log.
fn failing(state: &Path, log: &str, stderr: Stdio) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cmr-route"))
        .args(["--log", log, "--state"])
        .arg(state)
        .args(["peer", "remove", "http://nobody.example/cmr"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .output()
        .unwrap()
}

fn init(state: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_cmr-route"))
        .arg("--state")
        .arg(state)
        .args(["init", "--address", "mailto:me@example.org"])
        .output()
        .unwrap();
    assert!(o.status.success());
}

#[test]
fn without_a_syslog_socket_the_lines_go_to_stderr_and_say_so_once() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.sqlite");
    init(&s);
    let o = failing(&s, "syslog", Stdio::piped());
    assert_eq!(o.status.code(), Some(66));
    let err = String::from_utf8_lossy(&o.stderr);
    if syslog_listening() {
        assert!(err.is_empty(), "syslog is there, yet: {err}");
        return;
    }
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(
        lines[0],
        "cmr-route: no syslog socket at /dev/log: logging to stderr instead"
    );
    assert!(
        lines[1].contains("no peer http://nobody.example/cmr"),
        "{err}"
    );
    // A run with nothing to log says nothing (cron mails any output).
    let o = Command::new(env!("CARGO_BIN_EXE_cmr-route"))
        .args(["--log", "syslog", "--state"])
        .arg(&s)
        .arg("stats")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn syslog_or_a_named_file() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.sqlite");
    init(&s);
    let f = d.path().join("cmr.log");
    let o = failing(&s, &format!("syslog:{}", f.display()), Stdio::piped());
    assert_eq!(o.status.code(), Some(66));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    if syslog_listening() {
        assert!(!f.exists());
        return;
    }
    let text = std::fs::read_to_string(&f).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].ends_with(&format!(
        "cmr-route: no syslog socket at /dev/log: logging to {} instead",
        f.display()
    )));
    assert!(
        lines[1].contains("no peer http://nobody.example/cmr"),
        "{text}"
    );
}

#[test]
fn under_inetd_nothing_goes_to_the_client_socket() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.sqlite");
    init(&s);
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let o = failing(
        &s,
        "syslog",
        Stdio::from(std::os::fd::OwnedFd::from(theirs)),
    );
    assert_eq!(o.status.code(), Some(66));
    ours.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let _ = (&ours).read_to_end(&mut got);
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
}
