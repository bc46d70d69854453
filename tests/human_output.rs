//! Bytes from the network reach a terminal escaped: an address holding `ESC[31m` (and
//! other control bytes) shows as `\x1b[31m` in every tool's human output and diagnostics,
//! while `--json` keeps it exactly.

mod common;

const ME: &str = "http://bob.test/cmr";
const EVIL: &[u8] = b"http://evil.test/\x1b[31mred\x1b]0;title\x07\xc2\x9b2J\x7f";

use common::run_on as run;

fn message(sender: &[u8], t: &str, body: &str) -> Vec<u8> {
    let mut m = format!("0\r\n2020/01/01 00:00:{t} ").into_bytes();
    m.extend_from_slice(sender);
    m.extend_from_slice(format!("\r\n\r\n{}\r\n{body}", body.len()).as_bytes());
    m
}

/// No byte a terminal would act on: C0 controls but LF and TAB, DEL, and C1 (as UTF-8 or raw).
fn assert_terminal_safe(what: &str, out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    for c in text.chars() {
        let bad = (c.is_control() && c != '\n' && c != '\t') || c == '\u{7f}';
        assert!(!bad, "{what}: raw control {:?} in {text:?}", c);
    }
}

#[test]
fn no_raw_control_byte_from_the_network_in_human_output() {
    let d = tempfile::tempdir().unwrap();
    let st = d.path().join("s.sqlite");
    let route = env!("CARGO_BIN_EXE_cmr-route");
    let o = run(route, &st, &["init", "--address", ME], b"");
    assert!(o.status.success());
    let body = "jupiter saturn uranus neptune are the giant planets of the solar system";
    let m1 = message(EVIL, "01", body);
    let m2 = message(b"http://carol.test/", "02", body);
    for (what, args) in [("route", &[][..]), ("route --explain", &["--explain"][..])] {
        let o = run(
            route,
            &st,
            args,
            &if what == "route" {
                m1.clone()
            } else {
                m2.clone()
            },
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_terminal_safe(what, &o.stdout);
        assert_terminal_safe(what, &o.stderr);
        if what == "route" {
            assert!(
                String::from_utf8_lossy(&o.stdout).contains("\\x1b[31mred"),
                "shown escaped: {}",
                String::from_utf8_lossy(&o.stdout)
            );
        }
    }
    // A rejection names the sender in its reason and in the log line on stderr.
    let o = run(route, &st, &["--strict"], &message(EVIL, "03", ""));
    assert_terminal_safe("rejected", &o.stdout);
    assert_terminal_safe("rejected (stderr)", &o.stderr);
    for args in [
        &["peer", "list"][..],
        &["log"][..],
        &["outbox"][..],
        &["stats"][..],
        &["cache", "list"][..],
        &["cache", "show", "1"][..],
    ] {
        let o = run(route, &st, args, b"");
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_terminal_safe(&format!("cmr-route {args:?}"), &o.stdout);
    }
    let o = run(
        env!("CARGO_BIN_EXE_cmr-send"),
        &st,
        &["--list", "--all"],
        b"",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_terminal_safe("cmr-send --list", &o.stdout);
    let o = run(
        env!("CARGO_BIN_EXE_cmr-post"),
        &st,
        &["--search"],
        body.as_bytes(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_terminal_safe("cmr-post --search", &o.stdout);
    let o = run(env!("CARGO_BIN_EXE_cmr-keyx"), &st, &["list"], b"");
    assert_terminal_safe("cmr-keyx list", &o.stdout);

    // --json stays exact: the address comes back byte for byte (JSON escapes, no loss).
    let o = run(route, &st, &["peer", "list", "--json"], b"");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let evil = std::str::from_utf8(EVIL).unwrap();
    assert!(
        v.as_array().unwrap().iter().any(|p| p["address"] == evil),
        "{v}"
    );
}
