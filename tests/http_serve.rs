//! The HTTP receiver on recorded requests (tests/fixtures/http/STATUS-name.http): each
//! fixture's expected status is its name's prefix; only 200 may change the state file.
//! Plus slow clients, 100-continue, and the sender against the receiver on loopback.

use cmr::transport::http::{self, HttpOptions, PeerOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Defaults, without the inetd setup (fd 0 of the test process is not our connection).
fn opts() -> HttpOptions {
    HttpOptions {
        inetd: false,
        ..HttpOptions::default()
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/http")
}

/// A fresh state file for a receiver at http://bob.example/cgi-bin/cmr.
fn new_state(dir: &tempfile::TempDir) -> PathBuf {
    let p = dir.path().join("state.sqlite");
    let st = cmr::state::State::open(Some(&p)).unwrap();
    st.write(|tx| cmr::state::settings::add_own_address(tx, "http://bob.example/cgi-bin/cmr"))
        .unwrap();
    p
}

fn cache_rows(state: &Path) -> Vec<Vec<u8>> {
    if !state.exists() {
        return Vec::new();
    }
    let c = rusqlite::Connection::open(state).unwrap();
    let mut st = c.prepare("SELECT bytes FROM cache ORDER BY id").unwrap();
    let rows = st.query_map([], |r| r.get(0)).unwrap();
    rows.map(|r| r.unwrap()).collect()
}

/// Serve one request from memory; returns (status, head, body, result).
fn serve_bytes(
    req: &[u8],
    state: &Path,
    opts: &HttpOptions,
) -> (u16, String, Vec<u8>, Result<(), cmr::exit::Failure>) {
    let mut out = Vec::new();
    let r = http::serve(req, &mut out, Some(state), opts);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8(out[..split].to_vec()).unwrap();
    let body = out[split + 4..].to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, body, r)
}

#[test]
fn fixtures_answer_their_status_and_only_200_changes_state() {
    let mut n = 0;
    let mut names: Vec<_> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let expect: u16 = name[..3].parse().unwrap();
        let req = std::fs::read(&path).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let state = new_state(&dir);
        let (status, head, body, r) = serve_bytes(&req, &state, &opts());
        assert_eq!(
            status,
            expect,
            "{name}: {head}\n{}",
            String::from_utf8_lossy(&body)
        );
        let rows = cache_rows(&state);
        if expect == 200 {
            assert!(r.is_ok(), "{name}: {r:?}");
            assert_eq!(rows.len(), 1, "{name}: one message cached");
            assert!(rows[0].starts_with(b"0\r\n2008/"), "{name}");
        } else {
            assert!(r.is_err(), "{name}: a refusal is reported");
            assert!(rows.is_empty(), "{name}: no state change");
            assert!(
                head.to_ascii_lowercase().contains("\r\nx-cmr-error: "),
                "{name}: reason header\n{head}"
            );
            assert!(!body.is_empty(), "{name}: reason in the body");
        }
        assert!(head.contains("\r\nConnection: close"), "{name}");
        n += 1;
    }
    assert!(n >= 20, "only {n} fixtures");
}

#[test]
fn binary_part_is_cached_byte_for_byte() {
    let req = std::fs::read(fixtures().join("200-multipart-binary-quoted-boundary.http")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = new_state(&dir);
    let (status, ..) = serve_bytes(&req, &state, &opts());
    assert_eq!(status, 200);
    let rows = cache_rows(&state);
    let body: Vec<u8> = (0..=255u8).chain(*b"\r\n--frontier\r\n").collect();
    assert!(rows[0].ends_with(&body));
}

#[test]
fn duplicate_is_200_and_idempotent() {
    let req = std::fs::read(fixtures().join("200-raw-body.http")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = new_state(&dir);
    let (s1, _, b1, _) = serve_bytes(&req, &state, &opts());
    let (s2, _, b2, _) = serve_bytes(&req, &state, &opts());
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(b1, b"accepted\n");
    assert_eq!(b2, b"duplicate\n");
    assert_eq!(cache_rows(&state).len(), 1);
}

/// A client that sends part of its request and then stalls is answered 408 when the
/// socket's read timeout fires; one that trickles bytes is cut off at the deadline.
#[test]
fn slow_clients_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let state = new_state(&dir);

    // Stalling: per-read timeout (SO_RCVTIMEO) on a real socket pair.
    let (mut client, server) = std::os::unix::net::UnixStream::pair().unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    client.write_all(b"POST / HTTP/1.1\r\nContent-Len").unwrap();
    let t0 = Instant::now();
    let out_sock = server.try_clone().unwrap();
    let r = http::serve(&server, &out_sock, Some(&state), &opts());
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(r.unwrap_err().is_transient());
    let mut answer = String::new();
    drop(server);
    drop(out_sock);
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");

    // Trickling: one byte every 50 ms never trips the per-read timeout, the deadline does.
    struct Trickle(Vec<u8>, usize);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_millis(50));
            if self.1 >= self.0.len() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[self.1];
            self.1 += 1;
            Ok(1)
        }
    }
    let mut req = b"POST / HTTP/1.1\r\nContent-Length: 1000\r\n\r\n".to_vec();
    req.extend(std::iter::repeat_n(b'x', 1000));
    let opts = HttpOptions {
        deadline: Duration::from_millis(700),
        ..opts()
    };
    let mut out = Vec::new();
    let t0 = Instant::now();
    let r = http::serve(Trickle(req, 0), &mut out, Some(&state), &opts);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(r.is_err());
    assert!(out.starts_with(b"HTTP/1.1 408 "));
    assert!(cache_rows(&state).is_empty());
}

#[test]
fn expect_100_continue() {
    let dir = tempfile::tempdir().unwrap();
    let state = new_state(&dir);
    let raw = std::fs::read(fixtures().join("200-raw-body.http")).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let mut req = raw[..split + 2].to_vec();
    req.extend_from_slice(b"Expect: 100-continue\r\n\r\n");
    req.extend_from_slice(&raw[split + 4..]);
    let mut out = Vec::new();
    http::serve(&req[..], &mut out, Some(&state), &opts()).unwrap();
    assert!(out.starts_with(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"));
    // Too large: refused before the client sends the body.
    let mut out = Vec::new();
    let req = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 99999999999\r\n\r\n";
    let _ = http::serve(&req[..], &mut out, Some(&state), &opts());
    assert!(out.starts_with(b"HTTP/1.1 413 "));
}

#[test]
fn never_panics_on_mutated_requests() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let state = new_state(&dir);
    let base = std::fs::read(fixtures().join("200-multipart-preamble-epilogue.http")).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for _ in 0..300 {
        let mut v = base.clone();
        for _ in 0..rng.gen_range(1..6) {
            if v.is_empty() {
                break;
            }
            let i = rng.gen_range(0..v.len());
            match rng.gen_range(0..3) {
                0 => v[i] = rng.gen(),
                1 => {
                    v.remove(i);
                }
                _ => v.truncate(i),
            }
        }
        let mut out = Vec::new();
        let _ = http::serve(&v[..], &mut out, Some(&state), &opts());
        assert!(out.starts_with(b"HTTP/1.1 ") || out.is_empty());
    }
}

/// The sender's upload, read by the receiver over a real loopback socket: one part named
/// "file", filename "cmr.msg", application/octet-stream.
#[test]
fn send_to_serve_over_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let state = new_state(&dir);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let st = state.clone();
    let server = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (sock, _) = listener.accept().unwrap();
            // Record what arrives, then serve it.
            let mut req = Vec::new();
            let mut s2 = sock.try_clone().unwrap();
            s2.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut buf = [0u8; 65536];
            while let Ok(n) = s2.read(&mut buf) {
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
                if req.windows(4).any(|w| w == b"--\r\n") {
                    break;
                }
            }
            let _ = http::serve(&req[..], &sock, Some(&st), &opts());
            seen.push(req);
        }
        seen
    });
    let msg = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/valid/binary-body.msg"),
    )
    .unwrap_or_else(|_| {
        b"0\r\n2008/09/01 00:00:53 http://a.example/\r\n\r\n3\r\n\x00\xff\r".to_vec()
    });
    let url = format!("http://127.0.0.1:{port}/cgi-bin/cmr");
    // Loopback is refused by default (no request forgery), before any connection.
    let e = http::send(&url, &msg, &PeerOptions::default()).unwrap_err();
    assert!(!e.is_transient() && e.message().contains("loopback"), "{e}");
    let e = http::send(
        &format!("http://localhost:{port}/cgi-bin/cmr"),
        &msg,
        &PeerOptions::default(),
    )
    .unwrap_err();
    assert!(e.message().contains("localhost resolves to"), "{e}");
    let lo = PeerOptions {
        allow: cmr::netaddr::Allow::parse("127.0.0.0/8").unwrap(),
        ..PeerOptions::default()
    };
    http::send(&url, &msg, &lo).unwrap();
    let e = http::send(&url, b"not a message", &lo).unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert!(e.message().contains("HTTP 400"), "{e}");
    let seen = server.join().unwrap();
    let first = String::from_utf8_lossy(&seen[0]);
    assert!(
        first.starts_with("POST /cgi-bin/cmr HTTP/1.1\r\n"),
        "{first}"
    );
    assert!(first.contains(
        "Content-Disposition: form-data; name=\"file\"; filename=\"cmr.msg\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    ));
    let rows = cache_rows(&state);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0][3..],
        msg[msg.iter().position(|&c| c == b'\n').unwrap() + 1..]
    );

    // Nobody listening: transient.
    let e = http::send(
        "http://127.0.0.1:1/",
        &msg,
        &PeerOptions {
            timeout: Duration::from_secs(3),
            ..lo.clone()
        },
    )
    .unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(http::send("ftp://x/", &msg, &PeerOptions::default())
        .unwrap_err()
        .message()
        .contains("not an http"));
}
