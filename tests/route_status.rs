//! `cmr-route status`: a healthy state file, and each case that needs attention, with the
//! Nagios plugin exit status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) and `--json`.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

struct T {
    dir: tempfile::TempDir,
}

impl T {
    fn new() -> T {
        T {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state.sqlite")
    }
    /// Run a tool on the state file, with HOME in the test directory.
    fn run(&self, tool: &str, args: &[&str], input: &[u8]) -> Output {
        let mut c = Command::new(common::tool(tool));
        if tool != "cmr-sign" {
            c.arg("--state").arg(self.state());
        }
        c.args(args)
            .env("HOME", self.dir.path())
            .env_remove("CMR_STATE")
            .env_remove("XDG_STATE_HOME");
        common::run_cmd(c, input)
    }
    fn ok(&self, tool: &str, args: &[&str], input: &[u8]) -> String {
        let o = self.run(tool, args, input);
        assert!(
            o.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    /// `status` as text and as JSON: (exit code, first line, JSON).
    fn status(&self, extra: &[&str]) -> (i32, String, serde_json::Value) {
        let mut a = vec!["status"];
        a.extend(extra);
        let o = self.run("cmr-route", &a, b"");
        let code = o.status.code().unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let first = text.lines().next().unwrap_or("").to_string();
        a.push("--json");
        let j = self.run("cmr-route", &a, b"");
        assert_eq!(
            j.status.code().unwrap(),
            code,
            "--json changes the exit status"
        );
        let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
        assert_eq!(v["code"], code, "{v}");
        (code, first, v)
    }
    fn sql(&self, q: &str) {
        let c = rusqlite::Connection::open(self.state()).unwrap();
        c.execute_batch(q).unwrap();
    }
    /// An initialised peer: our address, Bob with a key, a message from Bob, and our
    /// question queued for him.
    fn healthy(&self) {
        self.ok(
            "cmr-route",
            &["init", "--address", "mailto:me@example.org"],
            b"",
        );
        self.ok(
            "cmr-route",
            &[
                "peer",
                "add",
                "mailto:bob@example.org",
                "--key-hex",
                "626f62626f62",
            ],
            b"",
        );
        let body = "Jupiter and Saturn are the gas giants of the solar system.";
        let m = format!(
            "0\r\n2025/06/01 10:00:00 mailto:bob@example.org\r\n\r\n{}\r\n{body}",
            body.len()
        );
        let signed = self.ok("cmr-sign", &["--key-hex", "626f62626f62"], m.as_bytes());
        self.ok("cmr-route", &["--via", "mail"], signed.as_bytes());
        self.ok("cmr-post", &[], b"What is the largest planet?");
    }
}

#[test]
fn a_healthy_peer_is_ok_with_every_section() {
    let t = T::new();
    t.healthy();
    std::fs::write(t.dir.path().join(".forward"), "\"|cmr-recv --mail\"\n").unwrap();
    let (code, first, v) = t.status(&[]);
    assert_eq!(code, 0, "{first}");
    assert!(first.starts_with("CMR OK: "), "{first}");
    assert_eq!(v["status"], "OK");
    assert_eq!(v["reasons"].as_array().unwrap().len(), 0);
    assert_eq!(v["addresses"][0], "mailto:me@example.org");
    let bob = v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == "mailto:bob@example.org")
        .unwrap();
    assert_eq!(bob["has_key"], true);
    assert!(bob["last_seen"].is_string());
    assert_eq!(v["outbox"]["due"], 1, "{v}");
    assert!(v["last_drain"].is_null());
    assert!(v["state_bytes"].as_u64().unwrap() > 0);
    assert!(v["wal_bytes"].is_u64());
    let forward = t.dir.path().join(".forward").display().to_string();
    assert!(
        v["wiring"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["kind"] == "mail" && w["file"] == forward.as_str() && w["line"] == 1),
        "{v}"
    );
    // The text report names every section.
    let text = t.ok("cmr-route", &["status"], b"");
    for s in [
        "state file",
        "addresses",
        "peers",
        "outbox",
        "last drain",
        "refusals",
        "settings",
        "wiring",
    ] {
        assert!(text.contains(&format!("\n{s} ")), "no {s} in\n{text}");
    }
    assert!(
        text.contains(&format!("mail: {forward}:1: \"|cmr-recv --mail\"")),
        "{text}"
    );
}

#[test]
fn a_missing_state_file_is_critical_and_is_not_created() {
    let t = T::new();
    let (code, first, v) = t.status(&[]);
    assert_eq!(code, 2);
    assert!(
        first.starts_with("CMR CRITICAL: no state file at "),
        "{first}"
    );
    assert_eq!(v["status"], "CRITICAL");
    assert!(!t.state().exists());
    assert_eq!(std::fs::read_dir(t.dir.path()).unwrap().count(), 0);
}

#[test]
fn an_uninitialised_state_file_is_critical() {
    let t = T::new();
    drop(cmr::state::State::open(Some(&t.state())).unwrap());
    let (code, first, v) = t.status(&[]);
    assert_eq!(code, 2, "{first}");
    assert!(first.contains("not initialised"), "{first}");
    assert_eq!(v["status"], "CRITICAL");
}

#[test]
fn a_file_that_is_no_state_file_is_unknown() {
    let t = T::new();
    std::fs::write(t.state(), vec![b'x'; 8192]).unwrap();
    let (code, first, v) = t.status(&[]);
    assert_eq!(code, 3, "{first}");
    assert!(first.starts_with("CMR UNKNOWN: "), "{first}");
    assert_eq!(v["status"], "UNKNOWN");
}

#[test]
fn dead_letters_warn() {
    let t = T::new();
    t.healthy();
    // A sendmail that refuses the address: permanent, so the row is dead at once.
    t.ok("cmr-send", &["--set", "smtp_sendmail=/bin/false"], b"");
    let o = t.run("cmr-send", &["--outbox"], b"");
    assert_eq!(
        o.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (code, first, v) = t.status(&[]);
    assert_eq!(code, 1, "{first}");
    assert!(
        first.starts_with("CMR WARNING: 1 dead letter(s)"),
        "{first}"
    );
    assert_eq!(v["outbox"]["dead"], 1);
    // The drain was noted.
    assert!(v["last_drain"].is_string(), "{v}");
    assert!(v["last_drain_age_secs"].as_f64().unwrap() < 60.0);
    // Requeued, the warning goes.
    t.ok("cmr-send", &["--retry-dead", "all"], b"");
    assert_eq!(t.status(&[]).0, 0);
}

#[test]
fn an_outbox_nobody_drains_is_critical() {
    let t = T::new();
    t.healthy();
    assert_eq!(t.status(&[]).0, 0);
    // The question has been due for two hours.
    t.sql(
        "UPDATE outbox SET created = strftime('%Y/%m/%d %H:%M:%f', 'now', '-2 hours'),
                           next_attempt = strftime('%Y/%m/%d %H:%M:%f', 'now', '-2 hours')",
    );
    let (code, first, v) = t.status(&[]);
    assert_eq!(code, 2, "{first}");
    assert!(
        first.starts_with("CMR CRITICAL: outbox not drained for 2 h"),
        "{first}"
    );
    assert!(first.contains("last drain never"), "{first}");
    assert!(v["outbox"]["longest_due_secs"].as_f64().unwrap() > 7000.0);
    // --stale moves the line.
    assert_eq!(t.status(&["--stale", "10800"]).0, 0);
    // A row waiting for its next attempt (deferred) is not due: no alarm.
    t.sql("UPDATE outbox SET attempts = 1, next_attempt = strftime('%Y/%m/%d %H:%M:%f', 'now', '+1 hour')");
    let (code, _, v) = t.status(&[]);
    assert_eq!(code, 0);
    assert_eq!(v["outbox"]["deferred"], 1);
}

#[test]
fn an_expired_key_exchange_warns() {
    let t = T::new();
    t.healthy();
    t.ok(
        "cmr-route",
        &["peer", "add", "http://carol.example/cmr"],
        b"",
    );
    t.ok(
        "cmr-keyx",
        &["init", "http://carol.example/cmr", "--dh"],
        b"",
    );
    let (code, first, v) = t.status(&[]);
    assert_eq!(code, 0, "{first}");
    let carol = |v: &serde_json::Value| {
        v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["address"] == "http://carol.example/cmr")
            .cloned()
            .unwrap()
    };
    assert_eq!(carol(&v)["key_pending"], "dh", "{v}");
    assert_eq!(carol(&v)["key_pending_expired"], false);
    // Two days later (keyx_pending_ttl is one day by default).
    t.sql("UPDATE keyx_pending SET created = created - 2 * 86400");
    let (code, first, v) = t.status(&[]);
    assert_eq!(code, 1, "{first}");
    assert!(
        first.contains("key exchange expired unanswered with http://carol.example/cmr"),
        "{first}"
    );
    assert_eq!(carol(&v)["key_pending_expired"], true);
}

#[test]
fn refusals_and_changed_settings_are_reported() {
    let t = T::new();
    t.healthy();
    t.ok("cmr-route", &["policy", "unsigned", "reject"], b"");
    let m = "0\r\n2025/06/01 11:00:00 mailto:eve@example.org\r\n\r\n5\r\nhello";
    t.ok("cmr-route", &["--via", "mail"], m.as_bytes());
    let (code, first, v) = t.status(&[]);
    assert_eq!(code, 0, "{first}");
    let refusals = v["refusals"].as_array().unwrap();
    assert_eq!(refusals.len(), 1, "{v}");
    assert_eq!(refusals[0][1], 1);
    let s = v["settings"].as_array().unwrap();
    assert!(
        s.iter()
            .any(|c| c["key"] == "unsigned" && c["value"] == "reject" && c["default"] == "accept"),
        "{v}"
    );
    let text = t.ok("cmr-route", &["status"], b"");
    assert!(text.contains("refusals     1 in the last 24 h: "), "{text}");
    assert!(
        text.contains("unsigned = reject (default accept)"),
        "{text}"
    );
}
