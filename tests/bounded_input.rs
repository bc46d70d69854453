//! Bounded reads: cmr-post and cmr-sign stop reading at their size limit (an oversized
//! input is refused without being held), and a client that stops sending cannot hold
//! `cmr-recv --ssh` or `cmr-recv --http` on a pipe past the deadline.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn init(state: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_cmr-route"))
        .arg("--state")
        .arg(state)
        .args(["init", "--address", "http://bob.test/cmr"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Feed `total` zero bytes (until the reader stops reading); wait for the child. Returns
/// its exit code and the largest resident set of any child so far, in KiB.
fn flood(mut ch: Child, total: usize) -> (Option<i32>, i64) {
    let mut stdin = ch.stdin.take().unwrap();
    let w = std::thread::spawn(move || {
        let chunk = vec![0u8; 1 << 20];
        let mut sent = 0;
        while sent < total && stdin.write_all(&chunk).is_ok() {
            sent += chunk.len();
        }
        sent
    });
    let o = ch.wait_with_output().unwrap();
    let sent = w.join().unwrap();
    assert!(sent < total, "the tool read all {total} bytes");
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    (o.status.code(), ru.ru_maxrss)
}

#[test]
fn oversized_input_is_refused_at_the_limit() {
    let d = tempfile::tempdir().unwrap();
    let st = d.path().join("s.sqlite");
    init(&st);
    let post = Command::new(env!("CARGO_BIN_EXE_cmr-post"))
        .arg("--state")
        .arg(&st)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, rss_kib) = flood(post, 200 << 20);
    assert_eq!(code, Some(65));
    assert!(rss_kib < 64 * 1024, "max RSS {rss_kib} KiB");
    let sign = Command::new(env!("CARGO_BIN_EXE_cmr-sign"))
        .args(["--key-hex", "00112233445566778899aabbccddeeff"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, rss_kib) = flood(sign, 200 << 20);
    assert_eq!(code, Some(65));
    assert!(rss_kib < 64 * 1024, "max RSS {rss_kib} KiB");
    // Within the limit, the same input is read whole (and refused for what it is).
    let o = Command::new(env!("CARGO_BIN_EXE_cmr-post"))
        .arg("--state")
        .arg(&st)
        .arg(d.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(66));
}

/// A client that opens the stream, sends a little and then nothing: the process ends with
/// 75 soon after the deadline.
fn stalls(args: &[&str], env: (&str, &str), first: &[u8], state: &Path) {
    let mut ch = Command::new(env!("CARGO_BIN_EXE_cmr-recv"))
        .args(args)
        .arg("--state")
        .arg(state)
        .env(env.0, env.1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let mut stdin = ch.stdin.take().unwrap();
    stdin.write_all(first).unwrap();
    // Keep stdin open: the client stalls.
    loop {
        if let Some(s) = ch.try_wait().unwrap() {
            let took = t.elapsed();
            assert!(took < Duration::from_secs(5), "{args:?}: took {took:?}");
            let mut err = String::new();
            use std::io::Read;
            ch.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            assert_eq!(s.code(), Some(75), "{args:?}: {err}");
            assert!(err.contains("not complete within"), "{args:?}: {err}");
            drop(stdin);
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{args:?}: still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_stalled_client_cannot_hold_the_receiver() {
    let d = tempfile::tempdir().unwrap();
    let st = d.path().join("s.sqlite");
    init(&st);
    stalls(
        &["--ssh"],
        ("CMR_SSH_TIMEOUT", "1"),
        b"0\r\n2020/01/01 00:00:00 http://alice.test/\r\n",
        &st,
    );
    stalls(
        &["--http", "--log", "stderr"],
        ("CMR_HTTP_TIMEOUT", "1"),
        b"POST / HTTP/1.1\r\nContent-Length: 100\r\n",
        &st,
    );
    stalls(
        &["--http", "--log", "stderr"],
        ("CMR_HTTP_TIMEOUT", "1"),
        b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n0\r\n",
        &st,
    );
}
