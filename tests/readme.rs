//! Every pipeline in README.md runs as written, so the examples cannot drift from the tools.
//!
//! The ```sh blocks run line by line (`bash -o pipefail -c LINE`) in an empty directory with
//! HOME there and no $CMR_STATE or $XDG_STATE_HOME: the state file is the fallback
//! `~/.local/state/cmr/state.sqlite` the README names. Each line of the ```conf blocks is a
//! line of the host's configuration (.forward, inetd, authorized_keys, crontab); its command
//! runs the way that daemon runs it (`sh -c`), with the input it would hand over, on the
//! same state. The tools come from this build (or from $CMR_BIN, e.g. /usr/bin for the
//! installed package).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The lines of every fenced block whose info string is `lang`, one Vec per block.
fn blocks(text: &str, lang: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // None outside a block; Some(None) inside another language's; Some(Some(lines)) in ours.
    let mut inside: Option<Option<Vec<String>>> = None;
    for l in text.lines() {
        if let Some(info) = l.trim_start().strip_prefix("```") {
            inside = match inside.take() {
                Some(Some(b)) => {
                    out.push(b);
                    None
                }
                Some(None) => None,
                None if info.trim() == lang => Some(Some(Vec::new())),
                None => Some(None),
            };
        } else if let Some(Some(b)) = inside.as_mut() {
            b.push(l.to_string());
        }
    }
    out
}

/// Commands of a block: no blank lines, no comments.
fn commands(block: &[String]) -> Vec<String> {
    block
        .iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

fn bin_dir() -> PathBuf {
    match std::env::var_os("CMR_BIN").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_BIN_EXE_cmr-route"))
            .parent()
            .unwrap()
            .to_path_buf(),
    }
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn cmd(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env_remove("CMR_STATE")
            .env_remove("XDG_STATE_HOME")
            .env_remove("SSH_ORIGINAL_COMMAND")
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin_dir().display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            );
        c
    }

    /// Run `line` with `input` on stdin through `shell -o pipefail -c` (bash) or `sh -c`.
    fn run(&self, shell: &str, line: &str, input: &[u8], env: &[(&str, &str)]) -> Output {
        let args: Vec<&str> = if shell == "bash" {
            vec!["-o", "pipefail", "-c", line]
        } else {
            vec!["-c", line]
        };
        let mut c = self.cmd(shell, &args);
        for (k, v) in env {
            c.env(k, v);
        }
        common::run_cmd(c, input)
    }

    /// Bodies in a state file's cache (`cmr-route cache list`), as one text.
    fn cache(&self, state: Option<&str>) -> String {
        let mut args = vec![];
        if let Some(s) = state {
            args.extend(["--state", s]);
        }
        args.extend(["cache", "list", "--limit", "1000"]);
        let o = self
            .cmd(&bin_dir().join("cmr-route").to_string_lossy(), &args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

fn show(line: &str, o: &Output) -> String {
    format!(
        "README line `{line}`: {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// An unsigned A2 message created by `addr` with `body`.
fn message(addr: &str, body: &str) -> Vec<u8> {
    format!(
        "0\r\n2025/06/01 10:00:00 {addr}\r\n\r\n{}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// How a daemon runs one configuration line: the command, its input, its environment, the
/// exit codes that are success there, and a text the cache must then hold.
struct Wired {
    command: String,
    input: Vec<u8>,
    env: Vec<(&'static str, &'static str)>,
    ok: &'static [i32],
    cached: Option<&'static str>,
    stdout_starts: Option<&'static str>,
}

fn wire(line: &str) -> Wired {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let cron_field = |f: &str| f.chars().all(|c| c.is_ascii_digit() || "*/,-".contains(c));
    if let Some(rest) = line.strip_prefix("\"|") {
        // .forward: local(8) runs the command with the mail on stdin.
        let body = "Neptune is the outermost planet of the solar system.";
        let mut mail =
            b"From: carol@example.org\r\nTo: me@example.org\r\nSubject: cmr\r\n\r\n".to_vec();
        mail.extend(message("mailto:carol@example.org", body));
        Wired {
            command: rest.trim_end_matches('"').to_string(),
            input: mail,
            env: vec![("SENDER", "carol@example.org")],
            ok: &[0],
            cached: Some("Neptune is the outermost planet"),
            stdout_starts: None,
        }
    } else if let Some(rest) = line.strip_prefix("command=\"") {
        // authorized_keys: sshd runs the forced command with the client's stream on stdin.
        let body = "Uranus rolls around the sun on its side.";
        Wired {
            command: rest[..rest.find('"').unwrap()].to_string(),
            input: message("ssh://alice@a.example/cmr", body),
            env: vec![("SSH_CONNECTION", "192.0.2.1 40000 192.0.2.2 22")],
            ok: &[0],
            cached: Some("Uranus rolls around the sun"),
            stdout_starts: None,
        }
    } else if fields.len() > 5 && fields[..5].iter().all(|f| cron_field(f)) {
        // crontab: cron runs the rest of the line with sh -c. 75 is its "try again later".
        let at = line.find(fields[5]).unwrap();
        Wired {
            command: line[at..].to_string(),
            input: Vec::new(),
            env: vec![],
            ok: &[0, 75],
            cached: None,
            stdout_starts: None,
        }
    } else {
        // inetd/xinetd nowait: one HTTP connection on stdin and stdout.
        let msg = message("http://dave.example/cmr", "Mars has two small moons.");
        let mut req = format!(
            "POST /cmr HTTP/1.1\r\nHost: me.example\r\nContent-Length: {}\r\n\r\n",
            msg.len()
        )
        .into_bytes();
        req.extend(msg);
        Wired {
            command: line.to_string(),
            input: req,
            env: vec![],
            ok: &[0],
            cached: Some("Mars has two small moons"),
            stdout_starts: Some("HTTP/1.1 200"),
        }
    }
}

#[test]
fn every_readme_pipeline_runs_as_written() {
    let text = readme();
    let sh = blocks(&text, "sh");
    let conf = blocks(&text, "conf");
    assert!(
        !sh.is_empty() && !conf.is_empty(),
        "README has no ```sh or ```conf block"
    );
    let jq = Command::new("jq").arg("--version").output();
    assert!(
        jq.is_ok_and(|o| o.status.success()),
        "the README pipes into jq: install it (apt-get install jq)"
    );
    let env = Env::new();
    let mut outputs = Vec::new();
    for line in sh.iter().flat_map(|b| commands(b)) {
        let o = env.run("bash", &line, b"", &[]);
        assert!(o.status.success(), "{}", show(&line, &o));
        outputs.push((line, o));
    }
    // What the lines must have done, not only exited 0.
    let out = |needle: &str| -> String {
        let (_, o) = outputs
            .iter()
            .find(|(l, _)| l.contains(needle))
            .unwrap_or_else(|| panic!("no README line with `{needle}`"));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(
        env.dir
            .path()
            .join(".local/state/cmr/state.sqlite")
            .exists(),
        "the state file is not where the README says"
    );
    assert!(out("jq .ids").contains("\"address\": \"http://bob.example/cmr\""));
    assert!(out("| cmr-route --explain").contains("signature verified"));
    assert!(out("| cmr-post").contains("Jupiter and Saturn"));
    assert!(
        env.cache(Some("bob.sqlite"))
            .contains("What is the largest planet?"),
        "the question did not reach bob.sqlite"
    );
    assert!(out("cmr-route status").starts_with("CMR OK: "));
    assert!(env.dir.path().join("Maildir/new").is_dir());

    for line in conf.iter().flat_map(|b| commands(b)) {
        let w = wire(&line);
        let env_vars: Vec<(&str, &str)> = w.env.clone();
        let o = env.run("sh", &w.command, &w.input, &env_vars);
        let code = o.status.code().unwrap_or(-1);
        assert!(w.ok.contains(&code), "{}", show(&line, &o));
        if let Some(s) = w.stdout_starts {
            assert!(o.stdout.starts_with(s.as_bytes()), "{}", show(&line, &o));
        }
        if let Some(c) = w.cached {
            assert!(
                env.cache(None).contains(c),
                "{}: `{c}` is not in the cache",
                show(&line, &o)
            );
        }
    }
}

#[test]
fn fenced_blocks_are_found_by_language() {
    let t = "a\n```sh\none\n# c\n\ntwo\n```\n```text\nthree\n```\n```sh\nfour\n```\n";
    let b = blocks(t, "sh");
    assert_eq!(b.len(), 2);
    assert_eq!(commands(&b[0]), vec!["one", "two"]);
    assert_eq!(commands(&b[1]), vec!["four"]);
    assert_eq!(commands(&blocks(t, "text")[0]), vec!["three"]);
}

/// State files and Maildirs under `dir`.
fn state_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                if name == "Maildir" {
                    found.push(p.clone());
                }
                stack.push(p);
            } else if name.contains(".sqlite") {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

/// The README's commands run without the `cmr-route init` lines (a new user who skipped
/// them): those that fail for want of an initialised state file leave no state file, WAL,
/// SHM or Maildir behind that was not there before.
#[test]
fn readme_commands_that_fail_before_init_leave_nothing_behind() {
    let text = readme();
    let env = Env::new();
    let mut failed = 0;
    for line in blocks(&text, "sh").iter().flat_map(|b| commands(b)) {
        if line.contains(" init ") {
            continue;
        }
        let before = state_files(env.dir.path());
        let o = env.run("bash", &line, b"", &[]);
        if o.status.success() {
            continue;
        }
        failed += 1;
        let after = state_files(env.dir.path());
        assert_eq!(before, after, "{}", show(&line, &o));
    }
    assert!(
        failed >= 4,
        "only {failed} README commands failed without cmr-route init"
    );
}
