//! Reading and writing the pool as mail: `cmr-post --replies --maildir DIR` and
//! `cmr-recv --mail --post`. The Maildir files are checked with a real mail parser
//! (mail-parser), and with mblaze's mlist/mshow when they are installed.

mod common;

use mail_parser::MessageParser;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KEY: &str = "626f62626f62";
const BOB: &str = "mailto:bob@example.org";

struct T {
    dir: tempfile::TempDir,
}

impl T {
    fn new() -> T {
        let t = T {
            dir: tempfile::tempdir().unwrap(),
        };
        t.ok(
            "cmr-route",
            &["init", "--address", "mailto:me@example.org"],
            b"",
        );
        t.ok("cmr-route", &["peer", "add", BOB, "--key-hex", KEY], b"");
        t
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state.sqlite")
    }
    fn maildir(&self) -> PathBuf {
        self.dir.path().join("Maildir")
    }
    fn run_env(&self, tool: &str, args: &[&str], input: &[u8], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(common::tool(tool));
        if tool != "cmr-sign" {
            c.arg("--state").arg(self.state());
        }
        c.env_remove("SENDER").args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        common::run_cmd(c, input)
    }
    fn ok(&self, tool: &str, args: &[&str], input: &[u8]) -> String {
        let o = self.run_env(tool, args, input, &[]);
        assert!(
            o.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    /// A message Bob created at `ts`, signed with his key, routed in as mail.
    fn bob_sends(&self, ts: &str, body: &str) {
        let m = format!("0\r\n{ts} {BOB}\r\n\r\n{}\r\n{body}", body.len());
        let signed = self.ok("cmr-sign", &["--key-hex", KEY], m.as_bytes());
        let out = self.ok("cmr-route", &["--via", "mail"], signed.as_bytes());
        assert!(out.starts_with("accepted"), "{out}");
    }
    fn cache(&self) -> String {
        self.ok("cmr-route", &["cache", "list", "--limit", "1000"], b"")
    }
}

/// The files in DIR/new and DIR/cur.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            v.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    v.sort();
    v
}

/// What cmr-post --json says the post's ID is.
fn post_id(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["message_id"].as_str().unwrap().to_string()
}

fn cmr_message_id(creator_line: &str) -> String {
    cmr::transport::maildir::message_id(creator_line)
}

#[test]
fn later_replies_land_in_a_maildir_as_rfc5322_mail() {
    let t = T::new();
    t.bob_sends(
        "2025/06/01 10:00:00",
        "Saturn and Jupiter are the gas giants of the solar system.",
    );
    let post = post_id(&t.ok("cmr-post", &["--json"], b"What is the largest planet?"));
    let dir = t.maildir();
    // Nothing has arrived since: no file, but a Maildir ready for a reader.
    t.ok(
        "cmr-post",
        &["--replies", "--maildir", dir.to_str().unwrap()],
        b"",
    );
    assert!(dir.join("new").is_dir() && dir.join("cur").is_dir() && dir.join("tmp").is_dir());
    assert_eq!(files(&dir).len(), 0);

    // A related message arrives later (A1: "posted later by other clients").
    t.bob_sends(
        "2025/06/02 09:30:15.25",
        "Jupiter is the largest planet.\nIt is more massive than all the other planets together.",
    );
    let out = t.ok(
        "cmr-post",
        &["--replies", "--maildir", dir.to_str().unwrap(), "--json"],
        b"",
    );
    assert!(out.contains("\"delivered\":1"), "{out}");
    let f = files(&dir);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].starts_with(dir.join("new")));
    let raw = std::fs::read(&f[0]).unwrap();
    let m = MessageParser::default().parse(&raw[..]).unwrap();
    let from = m.from().unwrap().first().unwrap();
    assert_eq!(from.address(), Some("bob@example.org"));
    let d = m.date().unwrap();
    assert_eq!(
        (d.year, d.month, d.day, d.hour, d.minute, d.second),
        (2025, 6, 2, 9, 30, 15)
    );
    assert_eq!(m.subject(), Some("Jupiter is the largest planet."));
    let post_mid = cmr_message_id(&post);
    let bare = post_mid.trim_matches(['<', '>']);
    assert_eq!(m.references().as_text(), Some(bare), "{m:?}");
    assert_eq!(m.in_reply_to().as_text(), Some(bare));
    assert_eq!(
        m.message_id(),
        Some(cmr_message_id(&format!("2025/06/02 09:30:15.25 {BOB}")).trim_matches(['<', '>']))
    );
    assert_eq!(
        m.body_text(0).unwrap().trim_end(),
        "Jupiter is the largest planet.\nIt is more massive than all the other planets together."
    );
    assert_eq!(
        m.header("X-CMR-ID").and_then(|h| h.as_text()),
        Some(format!("2025/06/02 09:30:15.25 {BOB}").as_str())
    );

    // Shown: a second run writes nothing; --all finds the file there and writes nothing.
    t.ok(
        "cmr-post",
        &["--replies", "--maildir", dir.to_str().unwrap()],
        b"",
    );
    assert_eq!(files(&dir).len(), 1);
    assert!(t
        .ok("cmr-post", &["--replies"], b"")
        .contains("no new replies"));
    // A reader moved it to cur/ and flagged it seen: still not written again.
    let name = f[0].file_name().unwrap().to_string_lossy().into_owned();
    std::fs::rename(&f[0], dir.join("cur").join(format!("{name}:2,S"))).unwrap();
    t.ok(
        "cmr-post",
        &["--replies", "--all", "--maildir", dir.to_str().unwrap()],
        b"",
    );
    assert_eq!(files(&dir).len(), 1, "{:?}", files(&dir));

    // mblaze reads it, when it is installed.
    if Command::new("mlist").arg("-h").output().is_ok() {
        let l = Command::new("mlist").arg(&dir).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&l.stdout).lines().count(), 1);
        let s = Command::new("mshow")
            .arg(dir.join("cur").join(format!("{name}:2,S")))
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&s.stdout);
        assert!(s.contains("Subject: Jupiter is the largest planet."), "{s}");
    }
}

#[test]
fn a_mail_becomes_a_post_and_the_related_messages_come_back_as_mail() {
    let t = T::new();
    t.bob_sends(
        "2025/06/01 10:00:00",
        "Saturn and Jupiter are the gas giants of the solar system.",
    );
    let dir = t.maildir();
    let mail =
        b"From: Me <me@example.org>\nTo: ask@example.org\nSubject: What is the largest planet?\n\
Date: Mon, 1 Dec 2025 10:00:00 +0000\n\nI would like to know.\n-- \nMe\n";
    let args = [
        "--mail",
        "--post",
        "--maildir",
        dir.to_str().unwrap(),
        "--allow-sender",
        "me@example.org",
    ];
    // Somebody else may not post.
    let before = t.cache();
    let o = t.run_env("cmr-recv", &args, mail, &[("SENDER", "eve@example.org")]);
    assert_eq!(
        o.status.code(),
        Some(77),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("eve@example.org"));
    assert_eq!(t.cache(), before);
    assert_eq!(files(&dir).len(), 0);

    let o = t.run_env("cmr-recv", &args, mail, &[("SENDER", "me@example.org")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cache = t.cache();
    assert!(
        cache.contains("by mailto:me@example.org  What is the largest planet?"),
        "{cache}"
    );
    let list: serde_json::Value =
        serde_json::from_str(&t.ok("cmr-route", &["--json", "cache", "list"], b"")).unwrap();
    let post = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client"] == true)
        .unwrap();
    let body = t.ok(
        "cmr-route",
        &["cache", "show", &post["id"].to_string(), "--raw"],
        b"",
    );
    assert!(
        body.ends_with("What is the largest planet?\n\nI would like to know."),
        "the signature stays out: {body:?}"
    );
    // Bob's message, already in the pool, is in the Maildir as a reply to the post.
    let f = files(&dir);
    assert_eq!(f.len(), 1, "{f:?}");
    let raw = std::fs::read(&f[0]).unwrap();
    let m = MessageParser::default().parse(&raw[..]).unwrap();
    assert_eq!(
        m.subject(),
        Some("Saturn and Jupiter are the gas giants of the solar system.")
    );
    let post_line = post["message_id"].as_str().unwrap();
    assert_eq!(
        m.references().as_text(),
        Some(cmr_message_id(post_line).trim_matches(['<', '>']))
    );
    assert_eq!(
        m.to().unwrap().first().unwrap().address(),
        Some("me@example.org")
    );

    // A mail with nothing to post is refused (65), and posts nothing.
    let o = t.run_env(
        "cmr-recv",
        &["--mail", "--post"],
        b"From: me@example.org\nSubject:\n\n\n",
        &[],
    );
    assert_eq!(o.status.code(), Some(65));
    assert_eq!(t.cache(), cache);
}
