//! cmr-recv and cmr-send as processes, without daemons: each ingress extracts the message,
//! refuses bad input with a clear one-line error and the right exit status, and leaves the
//! state file untouched when it refuses.

use std::io::Write;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const MSG: &[u8] =
    b"0\r\n2008/09/01 00:00:53 udp://192.168.0.102:53/dns-tunnel\r\n\r\n14\r\nHello World!\r\n";

fn recv(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cmr-recv"));
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut ch = c.spawn().unwrap();
    // The tool may refuse before reading its input.
    let _ = ch.stdin.take().unwrap().write_all(stdin);
    ch.wait_with_output().unwrap()
}

/// A receiver's state file, initialised with its own address (the router needs one).
fn init(state: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_cmr-route"))
        .arg("init")
        .arg("--state")
        .arg(state)
        .args(["--address", "udp://127.0.0.1:7777/bob"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn cached(state: &Path) -> i64 {
    if !state.exists() {
        return 0;
    }
    rusqlite::Connection::open(state)
        .unwrap()
        .query_row("SELECT count(*) FROM cache", [], |r| r.get(0))
        .unwrap_or(0)
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn mail_print_extracts_the_body_with_crlf_restored() {
    let mut mail = b"From: a@example.org\nTo: b@example.org\nSubject: cmr\n\n".to_vec();
    mail.extend(MSG.iter().copied().filter(|&c| c != b'\r'));
    let o = recv(&["--mail", "--print"], &mail, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(o.stdout, MSG);
}

#[test]
fn mail_without_cmr_part_is_65_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.sqlite");
    init(&s);
    let st = s.to_str().unwrap();
    let mail = b"From: a@example.org\nSubject: hi\n\nno message here\n";
    let o = recv(&["--mail", "--state", st], mail, &[]);
    assert_eq!(o.status.code(), Some(65));
    assert!(
        err(&o).contains("mail has no part holding a CMR message"),
        "{}",
        err(&o)
    );
    assert_eq!(err(&o).lines().count(), 1, "one line: {}", err(&o));
    assert_eq!(cached(&s), 0);
    let o = recv(
        &["--mail", "--no-message-exit", "0", "--state", st],
        mail,
        &[],
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(cached(&s), 0);
    let o = recv(&["--mail", "--state", st], b"", &[]);
    assert_eq!(o.status.code(), Some(66), "empty input: {}", err(&o));
}

#[test]
fn ssh_reads_a_stream_and_refuses_foreign_commands() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.sqlite");
    init(&s);
    let st = s.to_str().unwrap();
    let two: Vec<u8> = [
        MSG,
        b"0\r\n2008/09/01 00:00:54 mailto:c@example.org\r\n\r\n1\r\nx".as_slice(),
    ]
    .concat();
    let o = recv(
        &["--ssh", "--tag", "bob", "--state", st],
        &two,
        &[("SSH_ORIGINAL_COMMAND", "bob")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(cached(&s), 2);
    let o = recv(
        &["--ssh", "--tag", "bob", "--state", st],
        MSG,
        &[("SSH_ORIGINAL_COMMAND", "sh -c 'rm -rf ~'")],
    );
    assert_eq!(o.status.code(), Some(64));
    assert!(err(&o).contains("serves tag \"bob\""), "{}", err(&o));
    let o = recv(&["--ssh", "--state", st], b"0\r\nnot a header\r\n", &[]);
    assert_eq!(o.status.code(), Some(65), "{}", err(&o));
    assert!(err(&o).contains("message 1"), "{}", err(&o));
    assert_eq!(cached(&s), 2);
}

#[test]
fn udp_listen_drops_bad_datagrams() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.sqlite");
    init(&s);
    let log = d.path().join("recv.log");
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut ch = Command::new(env!("CARGO_BIN_EXE_cmr-recv"))
        .args([
            "--udp",
            "--listen",
            &addr,
            "--tag",
            "bob",
            "--idle",
            "1",
            "--max-datagram",
            "200",
        ])
        .arg("--state")
        .arg(&s)
        .arg("--log")
        .arg(&log)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.send_to(&[b"carol\n".as_slice(), MSG].concat(), &addr)
        .unwrap();
    tx.send_to(&[b"bob\n".as_slice(), &[b'x'; 300]].concat(), &addr)
        .unwrap();
    tx.send_to(&[b"bob\n".as_slice(), MSG].concat(), &addr)
        .unwrap();
    assert_eq!(ch.wait().unwrap().code(), Some(0));
    assert_eq!(cached(&s), 1);
    let l = std::fs::read_to_string(&log).unwrap();
    assert!(l.contains("tag \"carol\" is not ours"), "{l}");
    assert!(
        l.contains("oversized datagram: 304 bytes, limit 200"),
        "{l}"
    );
    assert!(l.contains("3 datagram(s), 1 handed on, 2 dropped"), "{l}");
}

#[test]
fn udp_without_a_socket_on_fd0_is_a_usage_error() {
    let o = recv(&["--udp", "--log", "stderr"], b"", &[]);
    assert_eq!(o.status.code(), Some(64));
    assert!(err(&o).contains("datagram socket on fd 0"), "{}", err(&o));
}

#[test]
fn send_refuses_bad_addresses_and_input() {
    let d = tempfile::tempdir().unwrap();
    let st = d.path().join("state.sqlite");
    let run = |args: &[&str], input: &[u8]| {
        let mut ch = Command::new(env!("CARGO_BIN_EXE_cmr-send"))
            .args(args)
            .env("CMR_STATE", &st)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The tool may refuse before reading its input.
        let _ = ch.stdin.take().unwrap().write_all(input);
        ch.wait_with_output().unwrap()
    };
    let o = run(&["--to", "udp://host/x", "-"], MSG);
    assert_eq!(o.status.code(), Some(64));
    assert!(
        err(&o).contains("a udp address needs a port"),
        "{}",
        err(&o)
    );
    let o = run(&["--to", "udp://127.0.0.1:9/x", "-"], b"hello");
    assert_eq!(o.status.code(), Some(65));
    assert!(err(&o).contains("standard input: line 1"), "{}", err(&o));
    let o = run(&["--to", "ssh://h/$(reboot)", "-"], MSG);
    assert_eq!(o.status.code(), Some(64));
}
