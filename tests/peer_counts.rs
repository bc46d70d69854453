//! `peers.forwarded` counts every forward queued: also those queued in the transaction that
//! creates the peer's row (a reply to a first-time sender).

mod common;

#[test]
fn forwarded_counts_every_outbox_row() {
    let d = tempfile::tempdir().unwrap();
    let st = d.path().join("s.sqlite");
    let route = |args: &[&str], stdin: &[u8]| {
        let o = common::run_on(env!("CARGO_BIN_EXE_cmr-route"), &st, args, stdin);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    route(&["init", "--address", "http://bob.test/cmr"], b"");
    let topics = [
        "jupiter saturn uranus neptune giant planets of the outer solar system",
        "the giant planets jupiter and saturn have many moons and rings",
        "what is the largest planet of the solar system jupiter or saturn",
        "bread flour water yeast salt make a simple loaf of bread",
        "a loaf of bread needs flour water salt and some yeast to rise",
    ];
    for (i, body) in topics.iter().cycle().take(15).enumerate() {
        let m = format!(
            "0\r\n2020/01/01 00:{:02}:{:02} http://peer{i}.test/\r\n\r\n{}\r\n{body}",
            i / 60,
            i % 60,
            body.len()
        );
        route(&[], m.as_bytes());
    }
    let db = rusqlite::Connection::open(&st).unwrap();
    let (rows, counted): (i64, i64) = db
        .query_row(
            "SELECT (SELECT count(*) FROM outbox), (SELECT coalesce(sum(forwarded), 0) FROM peers)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(rows > 0, "the scenario queues forwards");
    assert_eq!(counted, rows);
    let per_dest: i64 = db
        .query_row(
            "SELECT count(*) FROM (SELECT dest, count(*) AS n FROM outbox GROUP BY dest) o
             LEFT JOIN peers p ON p.address = o.dest WHERE p.forwarded IS NOT o.n",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        per_dest, 0,
        "every destination's count matches its outbox rows"
    );
}
