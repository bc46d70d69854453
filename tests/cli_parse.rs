//! cmr-parse as a user runs it: exit codes, stdout, stderr.

mod common;
use common::*;

const SMALL: &[u8] = b"0\r\n2010/01/02 00:00:00 http://b.example/\r\n2010/01/01 00:00:00.5 http://a.example/\r\n\r\n5\r\nhello";

#[test]
fn summary_marks_sender_and_origin() {
    let out = run(PARSE, &[], &spec_signed());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let s = stdout(&out);
    assert!(
        s.contains("signed 01c1ad32d6fe646a56edba43bd342ee11e45ba188c59aeec91a5590a0ea114d5"),
        "{s}"
    );
    let ids: Vec<&str> = s.lines().filter(|l| l.contains(" 2008/")).collect();
    assert_eq!(ids.len(), 3, "{s}");
    assert!(
        ids[0]
            .trim_start()
            .starts_with("1  2008/09/01 00:00:53.42 "),
        "{s}"
    );
    assert!(ids[0].ends_with("http://alice.com/cmr  (sender)"), "{s}");
    assert!(!ids[1].contains('('), "{s}");
    assert!(
        ids[2].ends_with("https://www.charlie.com/messages.pl  (origin)"),
        "{s}"
    );
    assert!(s.contains("body:      14 bytes"), "{s}");
    assert!(s.contains(r#""Hello World!\r\n""#), "{s}");
    assert!(out.stderr.is_empty());
}

#[test]
fn unsigned_single_line_is_sender_and_origin() {
    let m = b"0\r\n2010/01/01 00:00:00 x\r\n\r\n3\r\n\x00\xff\"";
    let out = run(PARSE, &["-"], m);
    assert_eq!(code(&out), 0);
    let s = stdout(&out);
    assert!(s.contains("signature: unsigned"), "{s}");
    assert!(s.contains("x  (sender, origin)"), "{s}");
    assert!(s.contains(r#""\x00\xff\"""#), "{s}");
}

#[test]
fn long_body_preview_is_cut() {
    let body = vec![b'a'; 1000];
    let mut m = b"0\r\n2010/01/01 00:00:00 x\r\n\r\n1000\r\n".to_vec();
    m.extend_from_slice(&body);
    let s = stdout(&run(PARSE, &[], &m));
    let preview = s.lines().last().unwrap();
    assert_eq!(preview, format!("  \"{}\" ...", "a".repeat(200)));
}

#[test]
fn json_has_stable_fields_and_encodes_binary_bodies() {
    let out = run(PARSE, &["--json"], &spec_signed());
    assert_eq!(code(&out), 0);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["signed"], true);
    assert_eq!(
        j["hash"],
        "01c1ad32d6fe646a56edba43bd342ee11e45ba188c59aeec91a5590a0ea114d5"
    );
    assert_eq!(j["sender"], "http://alice.com/cmr");
    assert_eq!(j["origin"], "https://www.charlie.com/messages.pl");
    assert_eq!(j["ids"][1]["timestamp"], "2008/09/01 00:00:53");
    assert_eq!(j["ids"][1]["address"], "udp://192.168.0.102:53/dns-tunnel");
    assert_eq!(j["body_length"], 14);
    assert_eq!(j["body_encoding"], "utf-8");
    assert_eq!(j["body"], "Hello World!\r\n");
    assert_eq!(j["size"], 249);

    let m = b"0\r\n2010/01/01 00:00:00 x\r\n\r\n2\r\n\xff\x00";
    let j: serde_json::Value = serde_json::from_slice(&run(PARSE, &["--json"], m).stdout).unwrap();
    assert_eq!(j["signed"], false);
    assert_eq!(j["hash"], serde_json::Value::Null);
    assert_eq!(j["body_encoding"], "base64");
    assert_eq!(j["body"], "/wA=");
}

#[test]
fn fields_print_raw_parts() {
    let f = |name: &str| {
        let o = run(PARSE, &["--field", name], SMALL);
        assert_eq!(code(&o), 0, "{name}: {}", stderr(&o));
        o.stdout
    };
    assert_eq!(f("origin"), b"http://a.example/\n");
    assert_eq!(f("sender"), b"http://b.example/\n");
    assert_eq!(
        f("ids"),
        b"2010/01/02 00:00:00 http://b.example/\n2010/01/01 00:00:00.5 http://a.example/\n"
    );
    assert_eq!(f("body"), b"hello");
    assert_eq!(f("signature"), b"0\n");
    assert_eq!(f("length"), b"5\n");
    assert_eq!(
        f("header"),
        b"2010/01/02 00:00:00 http://b.example/\r\n2010/01/01 00:00:00.5 http://a.example/\r\n"
    );
    let o = run(PARSE, &["--field", "signature"], &spec_signed());
    assert_eq!(
        o.stdout,
        b"101c1ad32d6fe646a56edba43bd342ee11e45ba188c59aeec91a5590a0ea114d5\n"
    );
    let o = run(PARSE, &["--field", "nonsense"], SMALL);
    assert_eq!(code(&o), 64);
}

#[test]
fn malformed_input_is_65_with_one_line_naming_line_and_byte() {
    let m = b"0\r\n2010/01/01 00:00:00 a\r\n2010/01/01 00:00:01 b\r\n\r\n0\r\n";
    let o = run(PARSE, &[], m);
    assert_eq!(code(&o), 65);
    assert_eq!(
        stderr(&o),
        "cmr-parse: stdin: line 3, byte 26: timestamp is not earlier than the line above: \
         message IDs must be newest first (descending)\n"
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn no_input_is_66() {
    let o = run(PARSE, &[], b"");
    assert_eq!(code(&o), 66);
    assert_eq!(stderr(&o), "cmr-parse: stdin: empty input: no message\n");
    let o = run(PARSE, &["/nonexistent/x.msg"], b"");
    assert_eq!(code(&o), 66);
    assert!(
        stderr(&o).starts_with("cmr-parse: /nonexistent/x.msg: "),
        "{}",
        stderr(&o)
    );
    let o = run(PARSE, &["--stream"], b"");
    assert_eq!(code(&o), 66);
}

#[test]
fn usage_errors_are_64_and_help_is_0() {
    let o = run(PARSE, &["--no-such-option"], b"");
    assert_eq!(code(&o), 64);
    assert!(stderr(&o).contains("--no-such-option"));
    let o = run(PARSE, &["--json", "--field", "body"], SMALL);
    assert_eq!(code(&o), 64);
    let o = run(PARSE, &["--now", "2010/13/01 00:00:00"], SMALL);
    assert_eq!(code(&o), 64, "{}", stderr(&o));
    let o = run(PARSE, &["--help"], b"");
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("Examples:"));
    assert!(stdout(&o).contains("--max-header-lines"));
}

#[test]
fn rule_options_change_the_verdict() {
    // --now: the message is from the future relative to an injected clock.
    let o = run(PARSE, &["--now", "2010/01/01 00:00:00"], SMALL);
    assert_eq!(code(&o), 65);
    assert!(
        stderr(&o).contains("line 2, byte 3: timestamp is in the future"),
        "{}",
        stderr(&o)
    );
    // ... unless the skew allows it.
    let o = run(
        PARSE,
        &["--now", "2010/01/01 00:00:00", "--skew", "86400"],
        SMALL,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(PARSE, &["--now", "2010/01/02 00:00:00"], SMALL);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // --own
    let o = run(
        PARSE,
        &["--own", "http://c.example/", "--own", "http://a.example/"],
        SMALL,
    );
    assert_eq!(code(&o), 65);
    assert!(
        stderr(&o).contains("line 3, byte 64: the recipient's own address"),
        "{}",
        stderr(&o)
    );
    // --max-header-lines
    let o = run(PARSE, &["--max-header-lines", "1"], SMALL);
    assert_eq!(code(&o), 65);
    assert!(stderr(&o).contains("more than 1 lines"), "{}", stderr(&o));
    // --max-size
    let o = run(PARSE, &["--max-size", "92"], SMALL);
    assert_eq!(code(&o), 65);
    assert!(
        stderr(&o).contains("body length 5 exceeds"),
        "{}",
        stderr(&o)
    );
    let o = run(PARSE, &["--max-size", "93"], SMALL);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

fn three_messages() -> Vec<u8> {
    let mut s = spec_signed();
    s.extend_from_slice(SMALL);
    s.extend_from_slice(b"0\r\n2010/01/01 00:00:00 x y\r\n\r\n0\r\n");
    s
}

#[test]
fn stream_prints_a_line_per_message() {
    let o = run(PARSE, &["--stream"], &three_messages());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = stdout(&o);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 3, "{s}");
    assert_eq!(
        lines[0],
        "msg=1 offset=0 size=249 signature=signed ids=3 body=14 \
         sender=\"http://alice.com/cmr\" origin=\"https://www.charlie.com/messages.pl\""
    );
    assert!(
        lines[1].starts_with("msg=2 offset=249 size=93 signature=unsigned ids=2 body=5 "),
        "{s}"
    );
    assert!(lines[2].ends_with("sender=\"x y\" origin=\"x y\""), "{s}");

    let o = run(PARSE, &["--stream", "--json"], &three_messages());
    let j: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(j.len(), 3);
    assert_eq!(j[2]["index"], 3);
    assert_eq!(j[2]["offset"], 342);
    assert_eq!(j[1]["body"], "hello");
}

#[test]
fn stream_error_names_stream_position_after_good_messages() {
    let mut s = three_messages();
    s.extend_from_slice(b"0\r\n2010/01/01 00:00:00 x\r\n\r\n9\r\nshort");
    let o = run(PARSE, &["--stream"], &s);
    assert_eq!(code(&o), 65);
    assert_eq!(stdout(&o).lines().count(), 3);
    let e = stderr(&o);
    assert!(e.starts_with("cmr-parse: stdin: line 21, byte "), "{e}");
    assert!(
        e.contains("body short: 5 bytes where the length says 9"),
        "{e}"
    );
}

#[test]
fn split_writes_one_file_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input = dir.path().join("in.msgs");
    std::fs::write(&input, three_messages()).unwrap();
    let o = run(
        PARSE,
        &["--split", out.to_str().unwrap(), input.to_str().unwrap()],
        b"",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["000001.msg", "000002.msg", "000003.msg"]);
    assert_eq!(
        std::fs::read(out.join("000001.msg")).unwrap(),
        spec_signed()
    );
    assert_eq!(std::fs::read(out.join("000002.msg")).unwrap(), SMALL);
    let mut joined = Vec::new();
    for n in &names {
        joined.extend(std::fs::read(out.join(n)).unwrap());
    }
    assert_eq!(joined, three_messages());
    assert!(stdout(&o).contains("file=\""), "{}", stdout(&o));
}

#[test]
fn trailing_bytes_fail_single_but_not_stream() {
    let mut s = SMALL.to_vec();
    s.extend_from_slice(SMALL);
    let o = run(PARSE, &[], &s);
    assert_eq!(code(&o), 65);
    assert!(stderr(&o).contains("93 trailing bytes"), "{}", stderr(&o));
    let o = run(PARSE, &["--stream"], &s);
    assert_eq!(code(&o), 0);
}

#[test]
fn broken_pipe_is_quiet() {
    // `cmr-parse --stream big | head -1` must not complain.
    let mut s = Vec::new();
    for _ in 0..20000 {
        s.extend_from_slice(SMALL);
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big");
    std::fs::write(&f, &s).unwrap();
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{PARSE}' --stream '{}' | head -1; echo \"rc=${{PIPESTATUS[0]}}\"",
            f.display()
        ))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).ends_with("rc=0\n"));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("msg=1 "));
}
