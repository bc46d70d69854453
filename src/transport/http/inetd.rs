//! The inetd/xinetd side of the HTTP server: one connection per process on fds 0 and 1,
//! plain or inside TLS (A4.3), with socket timeouts, the connecting address for A4.5, a
//! whole-request deadline and an alarm as the last resort.

use super::server::serve_stream;
use super::HttpOptions;
use crate::exit::Failure;
use crate::route::Transport;
use crate::sys::{self, Std};
use std::borrow::Cow;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads fail with TimedOut once the deadline has passed; a socket's SO_RCVTIMEO
/// (EAGAIN) is reported as TimedOut too.
struct Deadline<R> {
    inner: R,
    until: Instant,
}

impl<R: Read> Read for Deadline<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if Instant::now() >= self.until {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request deadline passed",
            ));
        }
        match self.inner.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out"))
            }
            r => r,
        }
    }
}

/// Separate input and output joined into one stream (stdin + stdout under inetd).
struct Duplex<R, W> {
    r: R,
    w: W,
}

impl<R: Read, W> Read for Duplex<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.r.read(buf)
    }
}

impl<R, W: Write> Write for Duplex<R, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.w.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// Answer one HTTP request read from `input` on `output` (over TLS when `opts.https`),
/// routing a posted message into the state file at `state_path` (None: the default one).
///
/// Under inetd (fd 0 is a socket) it also sets per-read and per-write timeouts on the
/// socket, takes the connecting address for A4.5 from getpeername, and arms an alarm as a
/// last resort against anything that hangs.
///
/// Ok when the answer was 200; otherwise the failure that was answered (already written to
/// the client), so the caller can log it and exit with its code.
pub fn serve(
    input: impl Read,
    output: impl Write,
    state_path: Option<&Path>,
    opts: &HttpOptions,
) -> Result<(), Failure> {
    let opts = inetd_prepare(opts);
    if opts.https {
        return tls_stream(input, output, state_path, &opts);
    }
    let mut s = deadline_duplex(input, output, opts.deadline);
    serve_stream(&mut s, state_path, &opts, Transport::Http)
}

/// `input` (reads cut off after `deadline`) and `output` as one stream.
fn deadline_duplex<R: Read, W: Write>(
    input: R,
    output: W,
    deadline: Duration,
) -> Duplex<Deadline<R>, W> {
    Duplex {
        r: Deadline {
            inner: input,
            until: Instant::now() + deadline,
        },
        w: output,
    }
}

/// [`serve`] inside TLS (rustls; the certificate chain and key from the PEM files
/// `opts.cert` and `opts.key`): A4.3. Messages arrive as `Transport::Https`, which permits
/// the A5.3 clear key exchange.
pub fn serve_tls(
    input: impl Read,
    output: impl Write,
    state_path: Option<&Path>,
    opts: &HttpOptions,
) -> Result<(), Failure> {
    let opts = inetd_prepare(opts);
    tls_stream(input, output, state_path, &opts)
}

fn tls_stream(
    input: impl Read,
    output: impl Write,
    state_path: Option<&Path>,
    opts: &HttpOptions,
) -> Result<(), Failure> {
    let (cert, key) = match (&opts.cert, &opts.key) {
        (Some(c), Some(k)) => (c, k),
        _ => {
            return Err(Failure::usage(
                "HTTPS needs a certificate and a key (--cert, --key)",
            ))
        }
    };
    let config = server_config(cert, key)?;
    let conn =
        rustls::ServerConnection::new(config).map_err(|e| Failure::config(format!("TLS: {e}")))?;
    let mut s = rustls::StreamOwned::new(conn, deadline_duplex(input, output, opts.deadline));
    let r = serve_stream(&mut s, state_path, opts, Transport::Https);
    s.conn.send_close_notify();
    let _ = s.flush();
    r
}

/// Load the server certificate chain and key (PEM files) for HTTPS.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Failure> {
    let open = |p: &Path| {
        std::fs::File::open(p)
            .map(BufReader::new)
            .map_err(|e| Failure::config(format!("{}: {e}", p.display())))
    };
    let certs: Vec<_> = rustls_pemfile::certs(&mut open(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::config(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(Failure::config(format!(
            "{}: no PEM certificate found",
            cert.display()
        )));
    }
    let key_der = rustls_pemfile::private_key(&mut open(key)?)
        .map_err(|e| Failure::config(format!("{}: {e}", key.display())))?
        .ok_or_else(|| Failure::config(format!("{}: no PEM private key found", key.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Failure::config(format!("TLS: {e}")))?
    .with_no_client_auth()
    .with_single_cert(certs, key_der)
    .map_err(|e| Failure::config(format!("TLS certificate/key: {e}")))?;
    Ok(Arc::new(config))
}

/// One short-lived process per message: keep freed memory in the heap instead of giving it
/// back to the kernel after every large free (the router's compressors allocate and free
/// large buffers many times per message; trimming and re-faulting them cost more than the
/// routing itself). Measured: 6900 page faults and 0.13 s per message down to 380 and 0.05 s.
fn keep_heap() {
    // SAFETY: mallopt only tunes glibc's allocator; called before any threads exist.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
}

/// Under inetd: socket timeouts, the peer's address, the alarm.
fn inetd_prepare(opts: &HttpOptions) -> Cow<'_, HttpOptions> {
    if !opts.inetd || !sys::is_socket(Std::In) {
        return Cow::Borrowed(opts);
    }
    keep_heap();
    let mut o = opts.clone();
    sys::set_socket_timeouts(Std::In, o.read_timeout);
    sys::set_socket_timeouts(Std::Out, o.read_timeout);
    if o.peer.is_none() {
        o.peer = sys::peer_address(Std::In);
    }
    // Backstop: whatever hangs (name resolution, a stuck fetch), the process ends.
    let backstop = o.deadline + o.fetch.timeout + o.fetch.connect_timeout * 2;
    // SAFETY: alarm only arms a timer whose default action ends the process.
    unsafe { libc::alarm(backstop.as_secs().clamp(1, u32::MAX as u64 - 30) as u32 + 30) };
    Cow::Owned(o)
}

/// inetd/xinetd `nowait`: serve the connection on fds 0 and 1 (unbuffered), then shut it
/// down.
pub fn serve_stdio(state_path: Option<&Path>, opts: &HttpOptions) -> Result<(), Failure> {
    // Our own descriptors for fds 0 and 1 (dups): unbuffered reads and writes, no unsafe.
    let input = std::fs::File::from(sys::dup(Std::In).map_err(Failure::from)?);
    let output = std::fs::File::from(sys::dup(Std::Out).map_err(Failure::from)?);
    let r = serve(&input, &output, state_path, opts);
    drop(output);
    if sys::is_socket(Std::Out) {
        sys::shutdown_write(Std::Out);
    }
    r
}
