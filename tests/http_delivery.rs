//! What counts as delivered over HTTP, with the real `cmr-send --outbox` against a receiver
//! on loopback: a timeout after the body was sent is retried (never dead-lettered on its
//! own), and the retry's "duplicate" answer counts as delivered, both from cmr's own ingress
//! (200 `duplicate`) and from the other implementation's (400 with `X-CMR-Drop-Reason:
//! duplicate message id in cache`). A refusal's reason reaches the operator from either
//! header.

use cmr::state::State;
use cmr::transport::http::{self, HttpOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const MSG: &[u8] = b"0\r\n2026/01/01 00:00:01.000001 mailto:client@example.org\r\n\r\n5\r\nhello";

/// How the loopback server answers one connection.
#[derive(Clone, Copy)]
enum Answer {
    /// cmr's ingress, answering only after `delay` (the client has given up by then).
    Cmr { delay: Duration },
    /// A fixed answer head (status line and headers, no body).
    Fixed(&'static str),
}

/// Read one whole upload (up to the closing boundary) from a connection.
fn read_request(sock: &mut TcpStream) -> Vec<u8> {
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = sock.read(&mut buf) {
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
        if req.windows(4).any(|w| w == b"--\r\n") {
            break;
        }
    }
    req
}

/// Serve the answers in order, one connection each, into the receiver's state file.
fn server(answers: Vec<Answer>, state: PathBuf) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        for a in answers {
            let (mut sock, _) = listener.accept().unwrap();
            let req = read_request(&mut sock);
            let out = match a {
                Answer::Cmr { delay } => {
                    let mut out = Vec::new();
                    let opts = HttpOptions {
                        inetd: false,
                        ..HttpOptions::default()
                    };
                    let _ = http::serve(&req[..], &mut out, Some(&state), &opts);
                    std::thread::sleep(delay);
                    out
                }
                Answer::Fixed(head) => format!("{head}Content-Length: 0\r\n\r\n").into_bytes(),
            };
            let _ = sock.write_all(&out);
        }
    });
    (port, h)
}

fn receiver_state(dir: &Path) -> PathBuf {
    let p = dir.join("bob.sqlite");
    let st = State::open(Some(&p)).unwrap();
    st.write(|tx| cmr::state::settings::add_own_address(tx, "http://bob.example/cmr"))
        .unwrap();
    p
}

fn sender_state(dir: &Path, dest: &str) -> PathBuf {
    let p = dir.join("alice.sqlite");
    let s = State::open(Some(&p)).unwrap();
    s.write(|tx| {
        // The receiver listens on loopback, which the address policy refuses unless allowed.
        cmr::state::settings::set(tx, "send_allow", "127.0.0.0/8")?;
        cmr::state::outbox::enqueue(tx, dest, MSG, b"k").map(|_| ())
    })
    .unwrap();
    p
}

fn send(state: &Path, extra: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cmr-send"))
        .arg("--state")
        .arg(state)
        .args(["--outbox", "--backoff-base", "0", "--timeout", "1"])
        .args(extra)
        .output()
        .unwrap()
}

fn assert_delivered(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn count(state: &Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open(state).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn cached(state: &Path) -> i64 {
    count(state, "SELECT count(*) FROM cache")
}

/// Timeout after the body went out, then the retry: delivered, the receiver holds one copy.
#[test]
fn timeout_then_duplicate_from_cmr_ingress_ends_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let bob = receiver_state(dir.path());
    let answers = vec![
        Answer::Cmr {
            delay: Duration::from_millis(1500),
        },
        Answer::Cmr {
            delay: Duration::ZERO,
        },
    ];
    let (port, h) = server(answers, bob.clone());
    let alice = sender_state(dir.path(), &format!("http://127.0.0.1:{port}/cmr"));
    // outbox_max_attempts still bounds the retries (here 2).
    let o = send(&alice, &["--max-attempts", "2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(75), "deferred, not dead: {err}");
    assert!(err.contains("next attempt"), "{err}");
    assert_eq!(cached(&bob), 1, "the receiver took it the first time");
    // the one-connection-at-a-time server is done with the slow answer
    std::thread::sleep(Duration::from_millis(800));
    let o = send(&alice, &["--max-attempts", "2"]);
    assert_delivered(&o);
    h.join().unwrap();
    assert_eq!(count(&alice, "SELECT count(*) FROM delivered"), 1);
    assert_eq!(count(&alice, "SELECT count(*) FROM outbox"), 0);
    assert_eq!(cached(&bob), 1, "held once");
}

/// The other implementation's duplicate answer counts as delivered.
#[test]
fn drop_reason_duplicate_counts_as_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let bob = receiver_state(dir.path());
    let answers = vec![Answer::Fixed(
        "HTTP/1.1 400 Bad Request\r\nX-CMR-Accepted: 0\r\n\
         X-CMR-Drop-Reason: duplicate message id in cache\r\n",
    )];
    let (port, h) = server(answers, bob);
    let alice = sender_state(dir.path(), &format!("http://127.0.0.1:{port}/"));
    let o = send(&alice, &[]);
    assert_delivered(&o);
    h.join().unwrap();
    assert_eq!(count(&alice, "SELECT count(*) FROM delivered"), 1);
}

/// Any other refusal is permanent, and its reason reaches the log from either header.
#[test]
fn refusal_reason_from_either_header() {
    for (head, want) in [
        (
            "HTTP/1.1 400 Bad Request\r\nX-CMR-Drop-Reason: signature verification failed\r\n",
            "HTTP 400: signature verification failed",
        ),
        (
            "HTTP/1.1 400 Bad Request\r\nX-CMR-Error: rejected: stale\r\n",
            "HTTP 400: rejected: stale",
        ),
        (
            "HTTP/1.1 400 Bad Request\r\nX-CMR-Error: rejected: x\r\nX-CMR-Drop-Reason: y\r\n",
            "HTTP 400: rejected: x (y)",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let bob = receiver_state(dir.path());
        let (port, h) = server(vec![Answer::Fixed(head)], bob);
        let alice = sender_state(dir.path(), &format!("http://127.0.0.1:{port}/"));
        let o = send(&alice, &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(69), "{err}");
        assert!(err.contains(want), "{want:?} in {err}");
        assert!(err.contains("dead-lettered"), "{err}");
        h.join().unwrap();
    }
}
