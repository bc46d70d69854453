//! Addresses stay exact: a message whose header holds an address that the state file could
//! not keep byte for byte (not UTF-8, or a NUL byte) is refused at ingress with a clear
//! reason, so two such senders can never merge into one peer and no forward goes to a
//! converted address. Addresses that are UTF-8 (non-ASCII or with control characters) are
//! kept exactly.

mod common;
use std::path::Path;
use std::process::{Command, Output};

fn route(state: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cmr-route"));
    c.arg("--state").arg(state).args(args);
    common::run_cmd(c, stdin)
}

fn message(lines: &[&[u8]], body: &str) -> Vec<u8> {
    let mut m = b"0\r\n".to_vec();
    for (i, a) in lines.iter().enumerate() {
        m.extend_from_slice(format!("2020/01/01 00:00:{:02} ", 50 - i).as_bytes());
        m.extend_from_slice(a);
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(format!("\r\n{}\r\n{body}", body.len()).as_bytes());
    m
}

fn peers(state: &Path) -> Vec<Vec<u8>> {
    let db = rusqlite::Connection::open(state).unwrap();
    let mut st = db
        .prepare("SELECT CAST(address AS BLOB) FROM peers ORDER BY 1")
        .unwrap();
    let v = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<Vec<u8>>, _>>()
        .unwrap();
    v
}

#[test]
fn addresses_that_would_not_stay_exact_are_refused_at_ingress() {
    let d = tempfile::tempdir().unwrap();
    let st = d.path().join("s.sqlite");
    let o = route(&st, &["init", "--address", "http://bob.test/cmr"], b"");
    assert!(o.status.success());
    let body = "the giant planets jupiter and saturn";
    for (n, lines) in [
        (1, vec![&b"http://x.test/cmr\xff"[..]]),
        (1, vec![&b"http://x.test/cmr\xfe"[..]]),
        (
            2,
            vec![&b"http://carol.test/"[..], &b"http://x.test/\xc3"[..]],
        ),
        (1, vec![&b"http://x.test/cm\x00r"[..]]),
        (
            2,
            vec![&b"http://carol.test/"[..], &b"mailto:a\x00b@x.test"[..]],
        ),
    ] {
        let m = message(&lines, body);
        let o = route(&st, &["--strict", "--json"], &m);
        let v: serde_json::Value =
            serde_json::from_slice(o.stdout.split(|&c| c == b'\n').next().unwrap()).unwrap();
        assert_eq!(o.status.code(), Some(65), "{v}");
        assert_eq!(v["reason_code"], "address", "{v}");
        let reason = v["reason"].as_str().unwrap();
        assert!(reason.contains(&format!("header line {n}")), "{reason}");
    }
    assert!(peers(&st).is_empty(), "no peer row from a refused message");
    let db = rusqlite::Connection::open(&st).unwrap();
    let (cached, queued): (i64, i64) = db
        .query_row(
            "SELECT (SELECT count(*) FROM cache), (SELECT count(*) FROM outbox)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((cached, queued), (0, 0));

    // UTF-8 addresses that differ in one character stay two peers, byte for byte.
    let a: &[u8] = "http://x.test/cmr\u{e9}".as_bytes();
    let b: &[u8] = "http://x.test/cmr\u{e8}\u{1b}[31m".as_bytes();
    for (i, x) in [a, b].iter().enumerate() {
        let o = route(&st, &["--strict"], &message(&[x], &format!("{body} {i}")));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(peers(&st), vec![b.to_vec(), a.to_vec()]);
}
