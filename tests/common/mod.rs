//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Run `bin --state STATE ARGS...` with `stdin` on its standard input.
pub fn run_on(bin: &str, state: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = Command::new(bin);
    c.arg("--state").arg(state).args(args);
    run_cmd(c, stdin)
}

/// The shared data directory: `$CMR_SHARED`, else `<crate>/../shared`.
pub fn shared() -> PathBuf {
    match std::env::var_os("CMR_SHARED") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    }
}

pub fn conformance() -> PathBuf {
    shared().join("conformance")
}

/// One row of conformance/MANIFEST.tsv.
#[derive(Debug, Clone)]
pub struct Vector {
    pub file: String,
    pub valid: bool,
    /// None for `-`.
    pub scheme: Option<String>,
    pub key_hex: Option<String>,
    pub note: String,
}

impl Vector {
    pub fn path(&self) -> PathBuf {
        conformance().join(&self.file)
    }
    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(self.path()).unwrap()
    }
}

pub fn manifest() -> Vec<Vector> {
    let text = std::fs::read_to_string(conformance().join("MANIFEST.tsv"))
        .expect("conformance/MANIFEST.tsv (set CMR_SHARED to the shared directory)");
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split('\t').collect();
    assert_eq!(head, ["file", "expect", "scheme", "key_hex", "note"]);
    let opt = |s: &str| (s != "-" && !s.is_empty()).then(|| s.to_string());
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(f.len() >= 4, "bad manifest row {l:?}");
            let valid = match f[1] {
                "valid" => true,
                "invalid" => false,
                x => panic!("bad expect {x:?}"),
            };
            Vector {
                file: f[0].to_string(),
                valid,
                scheme: opt(f[2]),
                key_hex: opt(f[3]),
                note: f.get(4).unwrap_or(&"").to_string(),
            }
        })
        .collect()
}

/// Run a binary with `args` and `stdin` bytes.
pub fn run(bin: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = Command::new(bin);
    c.args(args);
    run_cmd(c, stdin)
}

/// Run a prepared command with `stdin` bytes (written from a thread: a large input and a
/// large output cannot block each other).
pub fn run_cmd(mut c: Command, stdin: &[u8]) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exited by a signal")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// One of the tools of this build, by name.
pub fn tool(name: &str) -> &'static str {
    match name {
        "cmr-parse" => env!("CARGO_BIN_EXE_cmr-parse"),
        "cmr-sign" => env!("CARGO_BIN_EXE_cmr-sign"),
        "cmr-route" => env!("CARGO_BIN_EXE_cmr-route"),
        "cmr-post" => env!("CARGO_BIN_EXE_cmr-post"),
        "cmr-send" => env!("CARGO_BIN_EXE_cmr-send"),
        "cmr-recv" => env!("CARGO_BIN_EXE_cmr-recv"),
        "cmr-keyx" => env!("CARGO_BIN_EXE_cmr-keyx"),
        t => panic!("no tool {t}"),
    }
}

pub const PARSE: &str = env!("CARGO_BIN_EXE_cmr-parse");
pub const SIGN: &str = env!("CARGO_BIN_EXE_cmr-sign");

/// The Appendix A example, signed with key "foo" under the spec's scheme.
pub fn spec_signed() -> Vec<u8> {
    std::fs::read(conformance().join("valid/appendix-a-spec-signed.msg")).unwrap()
}
