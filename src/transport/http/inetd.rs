//! The inetd/xinetd side of the HTTP server: one connection per process on fds 0 and 1,
//! plain or inside TLS (A4.3), with socket timeouts, the connecting address for A4.5, a
//! whole-request deadline and an alarm as the last resort.

use super::server::serve_stream;
use super::HttpOptions;
use crate::exit::Failure;
use crate::route::Transport;
use std::borrow::Cow;
use std::io::{self, BufReader, Read, Write};
use std::net::IpAddr;
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

/// True when `fd` is a socket.
pub fn is_socket(fd: i32) -> bool {
    // SAFETY: a zeroed stat is a valid out-buffer; fstat only writes into it and reports a
    // bad fd as an error.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    unsafe { libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK }
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
    if !opts.inetd || !is_socket(0) {
        return Cow::Borrowed(opts);
    }
    keep_heap();
    let mut o = opts.clone();
    set_socket_timeouts(0, o.read_timeout);
    set_socket_timeouts(1, o.read_timeout);
    if o.peer.is_none() {
        o.peer = peer_address(0);
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
    use std::os::fd::FromRawFd;
    // SAFETY: fds 0 and 1 stay open for the whole process; ManuallyDrop never closes them.
    let input = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) });
    let output = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) });
    let r = serve(&*input, &*output, state_path, opts);
    if is_socket(1) {
        // SAFETY: fd 1 is a socket (checked above); shutdown touches nothing in memory.
        unsafe { libc::shutdown(1, libc::SHUT_WR) };
    }
    r
}

/// SO_RCVTIMEO and SO_SNDTIMEO on a socket fd (a no-op on pipes and files).
pub fn set_socket_timeouts(fd: i32, t: Duration) {
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: the option value points to a live timeval of the size passed.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
    }
}

/// The remote address of a socket fd (IPv4-mapped IPv6 addresses come back as IPv4).
pub fn peer_address(fd: i32) -> Option<IpAddr> {
    // SAFETY: a zeroed sockaddr_storage is a valid out-buffer of the length passed, and the
    // casts below read it as the family getpeername wrote.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let rc = unsafe {
        libc::getpeername(
            fd,
            &mut ss as *mut libc::sockaddr_storage as *mut libc::sockaddr,
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    match ss.ss_family as i32 {
        libc::AF_INET => {
            let sin = unsafe { &*(&ss as *const _ as *const libc::sockaddr_in) };
            Some(IpAddr::from(
                u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
            ))
        }
        libc::AF_INET6 => {
            let sin6 = unsafe { &*(&ss as *const _ as *const libc::sockaddr_in6) };
            let a = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(match a.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(a),
            })
        }
        _ => None,
    }
}
