//! SSH: the system `ssh` client in batch mode, to a forced command on the remote.
//!
//! Address: `ssh://[user@]host[:port]/tag`. The sender runs
//! `ssh -o BatchMode=yes -T [-p port] [-l user] ... -- host tag` with the message on stdin;
//! the remote's `authorized_keys` line forces `cmr-recv --ssh --peer NAME`, so whatever the
//! client asks to run is never executed. `tag` is a single safe token (letters, digits,
//! `._-+=@,:`), which `cmr-recv --ssh --tag` may compare with `SSH_ORIGINAL_COMMAND`.
//!
//! Exit status of the remote is passed back by ssh: 0 delivered; 64, 65, 66, 77, 78 (the
//! receiver refused the input or is misconfigured) are permanent; anything else (75, 255 =
//! ssh could not connect, a signal) is transient.

use super::{setting, Address, SendError};
use crate::exit::Failure;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct SshOptions {
    /// The ssh client (default `ssh`, from PATH).
    pub program: PathBuf,
    /// `-i` identity file.
    pub identity: Option<PathBuf>,
    /// `-o UserKnownHostsFile=`.
    pub known_hosts: Option<PathBuf>,
    /// Further `-o` options, e.g. `StrictHostKeyChecking=accept-new`.
    pub options: Vec<String>,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            program: PathBuf::from("ssh"),
            identity: None,
            known_hosts: None,
            options: Vec::new(),
        }
    }
}

impl SshOptions {
    /// `ssh_command`, `ssh_identity`, `ssh_known_hosts`, `ssh_options` (space-separated
    /// `-o` values).
    pub fn from_settings(conn: &rusqlite::Connection) -> Result<SshOptions, Failure> {
        let mut o = SshOptions::default();
        if let Some(p) = setting(conn, "ssh_command")? {
            o.program = p.into();
        }
        o.identity = setting(conn, "ssh_identity")?.map(PathBuf::from);
        o.known_hosts = setting(conn, "ssh_known_hosts")?.map(PathBuf::from);
        if let Some(v) = setting(conn, "ssh_options")? {
            o.options = v.split_whitespace().map(str::to_string).collect();
        }
        Ok(o)
    }
}

/// The ssh argument vector for `addr` (no shell is involved anywhere).
pub fn command_args(addr: &Address, o: &SshOptions, timeout: Duration) -> Vec<String> {
    let Address::Ssh {
        user,
        host,
        port,
        tag,
    } = addr
    else {
        return Vec::new();
    };
    let mut a: Vec<String> = vec![
        "-o".into(),
        "BatchMode=yes".into(),
        "-T".into(),
        "-o".into(),
        format!("ConnectTimeout={}", timeout.as_secs().max(1)),
    ];
    if let Some(p) = port {
        a.push("-p".into());
        a.push(p.to_string());
    }
    if let Some(u) = user {
        a.push("-l".into());
        a.push(u.clone());
    }
    if let Some(i) = &o.identity {
        a.push("-i".into());
        a.push(i.display().to_string());
        a.push("-o".into());
        a.push("IdentitiesOnly=yes".into());
    }
    if let Some(k) = &o.known_hosts {
        a.push("-o".into());
        a.push(format!("UserKnownHostsFile={}", k.display()));
    }
    for x in &o.options {
        a.push("-o".into());
        a.push(x.clone());
    }
    a.push("--".into());
    a.push(host.clone());
    a.push(tag.clone());
    a
}

/// The host ssh connects to: the peer's host resolved once and checked against the
/// address policy ([`crate::netaddr`]). A name is replaced by the checked address, with
/// `HostKeyAlias` keeping the name for the host-key check, so ssh cannot resolve it again
/// to somewhere else.
fn checked_target(
    addr: &Address,
    allow: &crate::netaddr::Allow,
) -> Result<(Address, Option<String>), SendError> {
    let Address::Ssh {
        user,
        host,
        port,
        tag,
    } = addr
    else {
        return Ok((addr.clone(), None));
    };
    let ip = match crate::netaddr::resolve(host, port.unwrap_or(22), allow) {
        Ok(a) => a[0].ip(),
        Err(e @ crate::netaddr::ResolveError::Refused(_)) => {
            return Err(SendError::Permanent(format!("{addr}: {e}")))
        }
        Err(e) => return Err(SendError::Transient(format!("{addr}: {e}"))),
    };
    if crate::netaddr::literal_ip(host).is_some() {
        return Ok((addr.clone(), None));
    }
    let target = Address::Ssh {
        user: user.clone(),
        host: ip.to_string(),
        port: *port,
        tag: tag.clone(),
    };
    Ok((target, Some(host.clone())))
}

/// Send one message (or several concatenated ones) to an `ssh://` address.
pub fn send(
    addr: &Address,
    bytes: &[u8],
    o: &SshOptions,
    timeout: Duration,
    allow: &crate::netaddr::Allow,
) -> Result<(), SendError> {
    let what = addr.to_string();
    let (target, alias) = checked_target(addr, allow)?;
    let mut args = command_args(&target, o, timeout);
    if let Some(name) = alias {
        // Before the "--" that ends the options.
        let at = args.iter().position(|a| a == "--").unwrap_or(0);
        args.splice(at..at, ["-o".to_string(), format!("HostKeyAlias={name}")]);
    }
    let mut child = Command::new(&o.program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            SendError::Transient(format!("{what}: cannot run {}: {e}", o.program.display()))
        })?;
    // Feed stdin and drain stderr on threads so neither pipe can stall the deadline.
    let mut stdin = child.stdin.take();
    let body = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        let r = stdin.as_mut().map(|s| s.write_all(&body));
        drop(stdin);
        r
    });
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.take(64 * 1024).read_to_end(&mut s);
        }
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SendError::Transient(format!(
                    "{what}: no answer within {}s",
                    timeout.as_secs_f64()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(SendError::from_io(&what, &e)),
        }
    };
    let _ = writer.join();
    let err = reader.join().unwrap_or_default();
    let err = String::from_utf8_lossy(&err);
    let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    match status.code() {
        Some(0) => Ok(()),
        Some(c @ (64 | 65 | 66 | 77 | 78)) => Err(SendError::Permanent(format!(
            "{what}: receiver refused (exit {c}): {last}"
        ))),
        Some(255) => Err(SendError::Transient(format!("{what}: ssh failed: {last}"))),
        Some(c) => Err(SendError::Transient(format!("{what}: exit {c}: {last}"))),
        None => Err(SendError::Transient(format!(
            "{what}: ssh killed by a signal"
        ))),
    }
}

/// For a forced command: check what the client asked to run (SSH_ORIGINAL_COMMAND, never
/// executed) against our tag. Absent is fine; present and different is refused.
pub fn check_original_command(original: Option<&str>, tag: Option<&str>) -> Result<(), Failure> {
    match (original.map(str::trim), tag) {
        (Some(o), Some(t)) if !o.is_empty() && o != t => Err(Failure::usage(format!(
            "ssh client asked for {o:?}, but this forced command serves tag {t:?}"
        ))),
        _ => Ok(()),
    }
}

/// Default for the whole input of `cmr-recv --ssh`, seconds (`$CMR_SSH_TIMEOUT`).
pub const DEFAULT_INPUT_DEADLINE_SECS: u64 = 300;

/// The input deadline of `cmr-recv --ssh`: `$CMR_SSH_TIMEOUT` seconds when set and valid,
/// else [`DEFAULT_INPUT_DEADLINE_SECS`].
pub fn input_deadline() -> Duration {
    std::env::var("CMR_SSH_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e6)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(DEFAULT_INPUT_DEADLINE_SECS))
}

/// Standard input with an overall deadline, whatever fd 0 is (a pipe from sshd, a pipe or
/// file given to `--http`): a read still waiting `deadline` after [`StallGuard::new`] ends
/// the process with EX_TEMPFAIL (75) and a diagnostic, so a client that stops sending cannot
/// hold it. Time spent routing between reads does not count against a read that then
/// returns at once. Ending the process is safe: what was committed stays, what was not is
/// rolled back, and the sender retries (a message routed twice is a duplicate).
pub struct StallGuard<R> {
    inner: R,
    shared: std::sync::Arc<GuardState>,
}

struct GuardState {
    /// A read is in progress.
    reading: std::sync::atomic::AtomicBool,
    /// The guard was dropped: the watchdog ends.
    done: std::sync::atomic::AtomicBool,
}

impl<R: Read> StallGuard<R> {
    /// Guard `inner`; `what` names the input in the diagnostic.
    pub fn new(inner: R, deadline: Duration, what: &'static str) -> StallGuard<R> {
        use std::sync::atomic::Ordering::SeqCst;
        let shared = std::sync::Arc::new(GuardState {
            reading: false.into(),
            done: false.into(),
        });
        let s = shared.clone();
        let until = Instant::now() + deadline;
        std::thread::spawn(move || loop {
            let now = Instant::now();
            if s.done.load(SeqCst) {
                return;
            }
            if now >= until && s.reading.load(SeqCst) {
                crate::log::error(&format!(
                    "{what}: input not complete within {:.0} s: giving up (75; the sender \
                     retries)",
                    deadline.as_secs_f64()
                ));
                std::process::exit(crate::exit::TEMPFAIL as i32);
            }
            let step = Duration::from_millis(100);
            std::thread::sleep(if now < until {
                (until - now).min(step)
            } else {
                step
            });
        });
        StallGuard { inner, shared }
    }
}

impl<R: Read> Read for StallGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::sync::atomic::Ordering::SeqCst;
        self.shared.reading.store(true, SeqCst);
        let r = self.inner.read(buf);
        self.shared.reading.store(false, SeqCst);
        r
    }
}

impl<R> Drop for StallGuard<R> {
    fn drop(&mut self) {
        self.shared
            .done
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_vector_is_fixed_and_batch() {
        let a = Address::parse("ssh://cmr@bob.example:2222/bob").unwrap();
        let o = SshOptions {
            identity: Some("/k/id".into()),
            options: vec!["StrictHostKeyChecking=accept-new".into()],
            ..Default::default()
        };
        let v = command_args(&a, &o, Duration::from_secs(30));
        let s = v.join(" ");
        assert!(s.starts_with("-o BatchMode=yes -T -o ConnectTimeout=30 -p 2222 -l cmr -i /k/id"));
        assert!(s.ends_with("-o StrictHostKeyChecking=accept-new -- bob.example bob"));
    }

    #[test]
    fn original_command_must_match_tag() {
        assert!(check_original_command(None, Some("bob")).is_ok());
        assert!(check_original_command(Some("bob"), Some("bob")).is_ok());
        assert!(check_original_command(Some("rm -rf /"), None).is_ok());
        assert_eq!(
            check_original_command(Some("rm -rf /"), Some("bob"))
                .unwrap_err()
                .code,
            64
        );
    }

    #[test]
    fn unreachable_ssh_is_transient() {
        let a = Address::parse("ssh://127.0.0.1:1/t").unwrap();
        let o = SshOptions {
            program: "/nonexistent/ssh".into(),
            ..Default::default()
        };
        let lo = crate::netaddr::Allow::parse("127.0.0.0/8").unwrap();
        let e = send(&a, b"x", &o, Duration::from_secs(2), &lo).unwrap_err();
        assert!(e.is_transient(), "{e}");
        // Without the allowance, loopback is refused before ssh runs, for good.
        let e = send(&a, b"x", &o, Duration::from_secs(2), &Default::default()).unwrap_err();
        assert!(!e.is_transient() && e.message().contains("loopback"), "{e}");
    }
}
