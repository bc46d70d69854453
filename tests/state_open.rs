//! Opening the state file: what an operator can fix (a read-only mount, a file this user may
//! not read) leaves the message with its sender to retry: exit 75, HTTP 503 with
//! Retry-After. A missing file is never created by a tool that needs an initialised one,
//! and a failed `cmr-route init` leaves nothing.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ME: &str = "http://bob.test/cmr";
const MSG: &[u8] = b"0\r\n2030/01/01 00:00:00 http://alice.test/cmr\r\n\r\n5\r\nhello";

fn bin(name: &str) -> &'static str {
    match name {
        "cmr-route" => env!("CARGO_BIN_EXE_cmr-route"),
        "cmr-recv" => env!("CARGO_BIN_EXE_cmr-recv"),
        "cmr-post" => env!("CARGO_BIN_EXE_cmr-post"),
        "cmr-keyx" => env!("CARGO_BIN_EXE_cmr-keyx"),
        "cmr-send" => env!("CARGO_BIN_EXE_cmr-send"),
        _ => unreachable!(),
    }
}

fn http_request() -> Vec<u8> {
    let mut r = format!(
        "POST / HTTP/1.1\r\nHost: bob.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        MSG.len()
    )
    .into_bytes();
    r.extend_from_slice(MSG);
    r
}

fn mail() -> Vec<u8> {
    let mut m = b"From: alice@alice.test\r\nTo: cmr@bob.test\r\nSubject: cmr\r\n\r\n".to_vec();
    m.extend_from_slice(MSG);
    m
}

/// Every tool that opens the state file, with its input: (what, argv, stdin).
fn tools(state: &Path) -> Vec<(&'static str, Vec<String>, Vec<u8>)> {
    let s = state.display().to_string();
    let v = |a: &[&str]| -> Vec<String> { a.iter().map(|x| x.to_string()).collect() };
    vec![
        ("cmr-route", v(&["cmr-route", "--state", &s]), MSG.to_vec()),
        (
            "cmr-route stats",
            v(&["cmr-route", "--state", &s, "stats"]),
            vec![],
        ),
        (
            "cmr-recv --mail",
            v(&["cmr-recv", "--mail", "--state", &s]),
            mail(),
        ),
        (
            "cmr-recv --ssh",
            v(&["cmr-recv", "--ssh", "--state", &s]),
            MSG.to_vec(),
        ),
        (
            "cmr-post",
            v(&["cmr-post", "--state", &s]),
            b"what is a planet?".to_vec(),
        ),
        (
            "cmr-keyx list",
            v(&["cmr-keyx", "--state", &s, "list"]),
            vec![],
        ),
        (
            "cmr-send --outbox",
            v(&["cmr-send", "--state", &s, "--outbox"]),
            vec![],
        ),
        (
            "cmr-recv --http",
            v(&["cmr-recv", "--http", "--log", "stderr", "--state", &s]),
            http_request(),
        ),
    ]
}

/// Run argv[0] (a tool name) under `wrap` (a command prefix), feeding `stdin`.
fn run(wrap: &[String], argv: &[String], stdin: &[u8]) -> Output {
    let mut all: Vec<String> = wrap.to_vec();
    all.push(bin(&argv[0]).to_string());
    all.extend_from_slice(&argv[1..]);
    let mut ch = Command::new(&all[0])
        .args(&all[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = ch.stdin.take().unwrap().write_all(stdin);
    ch.wait_with_output().unwrap()
}

/// Check one tool's answer to a state file it cannot use: 75 (or 503 over HTTP), a
/// diagnostic that says what to fix.
fn assert_retry(what: &str, o: &Output, fix: &str) {
    let out = String::from_utf8_lossy(&o.stdout).to_lowercase();
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    if what == "cmr-recv --http" {
        assert!(out.starts_with("http/1.1 503 "), "{what}: {out} / {err}");
        assert!(out.contains("retry-after: "), "{what}: {out}");
        assert!(out.contains(fix), "{what}: '{fix}' not in {out}");
    } else {
        assert_eq!(o.status.code(), Some(75), "{what}: {err}");
        assert!(err.contains(fix), "{what}: '{fix}' not in {err}");
    }
}

fn init(state: &Path) {
    let o = run(
        &[],
        &[
            "cmr-route",
            "--state",
            &state.display().to_string(),
            "init",
            "--address",
            ME,
        ]
        .map(String::from),
        b"",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// The commands to run a program in a mount namespace of its own, or None where this
/// system allows none (then the read-only test cannot run).
fn unshare() -> Option<Vec<String>> {
    let args: &[&str] = if is_root() { &["-m"] } else { &["-r", "-m"] };
    let ok = Command::new("unshare")
        .args(args)
        .arg("true")
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| {
        let mut v = vec!["unshare".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    })
}

#[test]
fn read_only_file_system_is_retry_later() {
    let Some(mut wrap) = unshare() else {
        eprintln!("skipped: no mount namespace here (unshare -m)");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    let state = dir.join("state.sqlite");
    init(&state);
    let before = std::fs::read(&state).unwrap();
    // In a mount namespace of its own: bind the directory onto itself, read-only.
    let script = format!(
        "mount --bind '{0}' '{0}' && mount -o remount,bind,ro '{0}' && exec \"$@\"",
        dir.display()
    );
    wrap.extend(["sh", "-c", &script, "sh"].map(String::from));
    for (what, argv, stdin) in tools(&state) {
        let o = run(&wrap, &argv, &stdin);
        assert_retry(what, &o, "read-only");
    }
    assert_eq!(std::fs::read(&state).unwrap(), before, "nothing changed");
}

#[test]
fn unreadable_state_is_retry_later() {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = d.path().join("state.sqlite");
    init(&state);
    // The file belongs to someone else (root, 0600) and this user may not read it.
    let wrap: Vec<String> = if is_root() {
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ]
        .map(String::from)
        .to_vec()
    } else {
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o000)).unwrap();
        Vec::new()
    };
    for (what, argv, stdin) in tools(&state) {
        let o = run(&wrap, &argv, &stdin);
        assert_retry(what, &o, "access");
    }
    // The same for a directory this user may not enter.
    let inner = d.path().join("private");
    std::fs::create_dir(&inner).unwrap();
    let state = inner.join("state.sqlite");
    init(&state);
    std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700)).unwrap();
    if !is_root() {
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    for (what, argv, stdin) in tools(&state) {
        let o = run(&wrap, &argv, &stdin);
        assert_retry(what, &o, "access");
    }
    std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700)).unwrap();
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn a_missing_state_file_is_not_created() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state.sqlite");
    for (what, argv, stdin) in tools(&state) {
        if what == "cmr-route stats" || what == "cmr-send --outbox" {
            continue; // administration: these may create a file
        }
        let o = run(&[], &argv, &stdin);
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        if what == "cmr-recv --http" {
            assert!(!out.starts_with("HTTP/1.1 200"), "{what}: {out}");
            assert!(out.contains("cmr-route init"), "{what}: {out}");
        } else {
            assert_eq!(o.status.code(), Some(78), "{what}: {err}");
            assert!(err.contains("cmr-route init"), "{what}: {err}");
        }
        assert_eq!(
            listing(d.path()),
            Vec::<PathBuf>::new(),
            "{what} left files"
        );
    }
}

#[test]
fn a_failed_init_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("sub/state.sqlite");
    let s = state.display().to_string();
    for bad in ["mailto:a\r\nb", "", "http://ok.test/ http://x\n"] {
        let o = run(
            &[],
            &[
                "cmr-route",
                "--state",
                &s,
                "init",
                "--address",
                ME,
                "--address",
                bad,
            ]
            .map(String::from),
            b"",
        );
        assert_eq!(
            o.status.code(),
            Some(64),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(listing(d.path()), Vec::<PathBuf>::new(), "left files");
    }
}
