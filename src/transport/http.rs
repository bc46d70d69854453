//! A4.2 HTTP and A4.3 HTTPS transports, both sides.
//!
//! A4.2: "Messages are sent as plain text files using file upload protocol as described in
//! RFC 1867." A4.3: "The protocol for HTTPS is the same as for HTTP."
//!
//! Receiving ([`serve`], [`serve_tls`], [`serve_stdio`]): one HTTP/1.0 or 1.1 request per
//! process, as inetd/xinetd `nowait` runs it, the socket on stdin/stdout. A POST carries the
//! message as a multipart/form-data upload (any field name) or as the raw request body; a GET
//! carries the A4.5 handshake ([`super::handshake`]). Status codes:
//!
//! | status | meaning |
//! |--------|---------|
//! | 200 | accepted (or a duplicate of a message already accepted: retries are idempotent) |
//! | 400 | malformed request or message, or rejected by the router; reason in `X-CMR-Error` (and, for a router's rejection, in `X-CMR-Drop-Reason` too) |
//! | 403 | A4.5 request whose sender does not resolve to the connecting address |
//! | 404 | A4.5 reply secret unknown, used or expired |
//! | 405 | a method other than GET and POST |
//! | 408 | the client was too slow (per-read timeout or whole-request deadline) |
//! | 411 | POST without Content-Length or chunked Transfer-Encoding |
//! | 413 | body larger than the limit |
//! | 431 | request head larger than the limit |
//! | 500 | internal error |
//! | 501 | a Transfer-Encoding other than chunked |
//! | 503 | transient trouble (state file busy, disk full, peer unreachable): retry after `Retry-After` |
//!
//! Sending ([`send`]): POST as an RFC 1867 upload with one part `name="file"`,
//! `filename="cmr.msg"`, `application/octet-stream`. 2xx is success, and so is a refusal
//! saying the peer already holds the message (`duplicate message id`); 5xx, 408, 429 and
//! connection trouble (a timeout after the body was sent included) are transient; other
//! statuses are permanent, with the server's reason (`X-CMR-Error` or `X-CMR-Drop-Reason`).

use super::handshake;
use super::multipart;
pub use super::SendError;
use crate::exit::{self, Failure};
use crate::route::{self, Decision, Outcome, RouteOptions, Transport};
use crate::state::State;
use rusqlite::OptionalExtension;
use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How one peer is reached over HTTP(S) (per destination).
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// The whole exchange, connect to last byte of the answer.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// PEM file of CA or server certificates to trust for this peer, in addition to the
    /// system roots (a private CA, or the peer's self-signed certificate).
    pub trust_file: Option<PathBuf>,
    /// Use the A4.5 handshake instead of a POST.
    pub handshake: Option<HandshakeOptions>,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            trust_file: None,
            handshake: None,
        }
    }
}

impl PeerOptions {
    /// Apply a peer's HTTP options, as kept in the `options` text of its row in `peers`
    /// (whitespace-separated `key=value`):
    ///
    /// - `trust=FILE`: PEM file of CA or server certificates to trust for this peer
    /// - `timeout=SECS`, `connect_timeout=SECS`
    /// - `handshake=OUR-URL`: deliver with the A4.5 handshake; OUR-URL is the address our
    ///   own `cmr-recv --http` answers at, reading the state file `state_path`
    /// - `handshake_expiry=SECS`: how long the message waits to be fetched
    ///
    /// Keys of other transports are ignored.
    pub fn with_options(
        mut self,
        text: &str,
        state_path: Option<&Path>,
    ) -> Result<PeerOptions, String> {
        let secs = |k: &str, v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("peer option {k}={v}: expected a number of seconds"))
        };
        let mut expiry = None;
        for item in text.split_whitespace() {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("peer option {item:?}: expected key=value"))?;
            match k {
                "trust" => self.trust_file = Some(PathBuf::from(v)),
                "timeout" => self.timeout = secs(k, v)?,
                "connect_timeout" => self.connect_timeout = secs(k, v)?,
                "handshake" => {
                    handshake::PeerUrl::parse(v)?;
                    let mut hs = HandshakeOptions::new(v);
                    hs.state_path = state_path.map(Path::to_path_buf);
                    self.handshake = Some(hs);
                }
                "handshake_expiry" => expiry = Some(secs(k, v)?),
                _ => {
                    return Err(format!(
                        "peer option {k:?}: unknown; expected trust, timeout, connect_timeout, \
                         handshake or handshake_expiry"
                    ))
                }
            }
        }
        if let (Some(e), Some(hs)) = (expiry, self.handshake.as_mut()) {
            hs.expiry = e;
        }
        Ok(self)
    }

    /// The options for one destination: `base` (e.g. the global timeout) plus what the
    /// peer's row in the state file says.
    pub fn for_peer(state: &State, addr: &str, base: PeerOptions) -> Result<PeerOptions, Failure> {
        let text: Option<String> = state
            .conn()
            .query_row(
                "SELECT options FROM peers WHERE address = ?1",
                [addr],
                |r| r.get(0),
            )
            .optional()
            .map_err(crate::state::db_failure)?
            .flatten();
        match text {
            None => Ok(base),
            Some(t) => base
                .with_options(&t, Some(state.path()))
                .map_err(|e| Failure::config(format!("peer {addr}: {e}"))),
        }
    }
}

/// The sending side of the A4.5 handshake.
#[derive(Debug, Clone)]
pub struct HandshakeOptions {
    /// Our own HTTP(S) address, which the receiver fetches `?reply=SECRET` from; our
    /// `cmr-recv --http` there answers from the state file below.
    pub own_address: String,
    /// The state file our `cmr-recv --http` reads (None: the default state file).
    pub state_path: Option<PathBuf>,
    /// How long the message waits to be fetched.
    pub expiry: Duration,
}

impl HandshakeOptions {
    pub fn new(own_address: impl Into<String>) -> Self {
        HandshakeOptions {
            own_address: own_address.into(),
            state_path: None,
            expiry: handshake::DEFAULT_EXPIRY,
        }
    }
}

/// Limits and settings of the receiving side.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Request line plus headers.
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Request body (a multipart upload carries about 200 bytes around the message).
    pub max_body_bytes: usize,
    /// One read (SO_RCVTIMEO on the socket, set by [`serve_stdio`]).
    pub read_timeout: Duration,
    /// The whole request must have arrived within this time (a trickling client cannot
    /// hold the process).
    pub deadline: Duration,
    /// `Retry-After` seconds on 503.
    pub retry_after_secs: u32,
    /// The connecting address (inetd: getpeername on fd 0); A4.5 requests need it.
    pub peer: Option<IpAddr>,
    /// Answer A4.5 `?request=` by fetching the message from the requester.
    pub handshake: bool,
    /// How the A4.5 reply is fetched from the requester.
    pub fetch: PeerOptions,
    pub route: RouteOptions,
    /// When fd 0 is a socket, treat it as inetd's connection: socket timeouts, the peer's
    /// address, the alarm (false for callers that serve other streams in a long-lived
    /// process, such as tests).
    pub inetd: bool,
    /// Serve HTTPS (A4.3): TLS with the certificate chain and key below (PEM files).
    pub https: bool,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Seconds from `$CMR_HTTP_TIMEOUT` (the whole-request deadline; an operator sets it in
/// the inetd service's environment), if set and valid.
fn timeout_from_env() -> Option<Duration> {
    std::env::var("CMR_HTTP_TIMEOUT")
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e6)
        .map(Duration::from_secs_f64)
}

impl Default for HttpOptions {
    /// The limits above; `$CMR_HTTP_TIMEOUT` (seconds) replaces the 30 s request deadline
    /// (and caps the 10 s per-read timeout).
    fn default() -> Self {
        let deadline = timeout_from_env().unwrap_or(Duration::from_secs(30));
        HttpOptions {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: crate::wire::Limits::default().max_message_bytes + 64 * 1024,
            read_timeout: deadline.min(Duration::from_secs(10)),
            deadline,
            retry_after_secs: 60,
            peer: None,
            handshake: true,
            fetch: PeerOptions {
                timeout: Duration::from_secs(20),
                ..PeerOptions::default()
            },
            route: RouteOptions::default(),
            inetd: true,
            https: false,
            cert: None,
            key: None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Receiving
// ---------------------------------------------------------------------------------------

/// The answer to one request.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// What the tool reports (and logs) when the request did not succeed.
    pub failure: Option<Failure>,
}

impl Reply {
    pub fn ok(text: &str) -> Reply {
        Reply {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: text.as_bytes().to_vec(),
            failure: None,
        }
    }

    /// No answer at all: the client sent nothing.
    fn nothing() -> Reply {
        Reply {
            status: 0,
            content_type: "",
            headers: Vec::new(),
            body: Vec::new(),
            failure: None,
        }
    }

    /// An error answer: the reason goes in `X-CMR-Error` and the body.
    pub fn error(status: u16, reason: impl Into<String>) -> Reply {
        let reason = reason.into();
        let code = match status {
            503 => exit::TEMPFAIL,
            408 => exit::TEMPFAIL,
            403 => exit::NOPERM,
            500 => exit::SOFTWARE,
            _ => exit::DATAERR,
        };
        let mut r = Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: vec![("X-CMR-Error", header_safe(&reason))],
            body: format!("{reason}\n").into_bytes(),
            failure: Some(Failure::new(code, format!("HTTP {status}: {reason}"))),
        };
        if status == 405 {
            r.headers.push(("Allow", "GET, POST".into()));
        }
        r
    }

    fn unavailable(reason: impl Into<String>, retry_after: u32) -> Reply {
        let mut r = Reply::error(503, reason);
        r.headers.push(("Retry-After", retry_after.to_string()));
        r
    }

    /// A failure from the state file or the router.
    pub fn from_failure(f: Failure, retry_after: u32) -> Reply {
        if f.is_transient() {
            Reply::unavailable(f.message, retry_after)
        } else {
            Reply::error(500, f.message)
        }
    }
}

/// Printable ASCII only, one line, bounded: safe to put in a header.
fn header_safe(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() >= 300 {
            out.push_str("...");
            break;
        }
        match c {
            ' '..='~' => out.push(c),
            '\t' | '\r' | '\n' => out.push(' '),
            c => out.push_str(&c.escape_default().to_string()),
        }
    }
    out
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

fn write_reply(w: &mut impl Write, r: &Reply) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
        r.status,
        reason_phrase(r.status),
        r.content_type,
        r.body.len()
    );
    for (n, v) in &r.headers {
        head.push_str(n);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut all = head.into_bytes();
    all.extend_from_slice(&r.body);
    w.write_all(&all)?;
    w.flush()
}

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
    let mut s = Duplex {
        r: Deadline {
            inner: input,
            until: Instant::now() + opts.deadline,
        },
        w: output,
    };
    serve_stream(&mut s, state_path, &opts, Transport::Http)
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
    let mut s = rustls::StreamOwned::new(
        conn,
        Duplex {
            r: Deadline {
                inner: input,
                until: Instant::now() + opts.deadline,
            },
            w: output,
        },
    );
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
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    unsafe { libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK }
}

/// One short-lived process per message: keep freed memory in the heap instead of giving it
/// back to the kernel after every large free (the router's compressors allocate and free
/// large buffers many times per message; trimming and re-faulting them cost more than the
/// routing itself). Measured: 6900 page faults and 0.13 s per message down to 380 and 0.05 s.
fn keep_heap() {
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

/// One request on one stream.
fn serve_stream<S: Read + Write>(
    s: &mut S,
    state_path: Option<&Path>,
    opts: &HttpOptions,
    via: Transport,
) -> Result<(), Failure> {
    let mut r = BufReader::with_capacity(64 * 1024, s);
    let mut unread: u64 = 0;
    let reply = handle(&mut r, state_path, opts, via, &mut unread);
    if reply.status == 0 {
        return Ok(());
    }
    let written = write_reply(r.get_mut(), &reply);
    // A short body we did not read (an early 405/413...): take it off the socket so
    // closing does not reset the connection before the client has read our answer.
    if written.is_ok() && unread > 0 && unread <= 256 * 1024 {
        let _ = io::copy(&mut (&mut r).take(unread), &mut io::sink());
    }
    if let Err(e) = written {
        let f = Failure::from(e).context("writing the HTTP answer");
        return Err(reply.failure.unwrap_or(f));
    }
    match reply.failure {
        None => Ok(()),
        Some(f) => Err(f),
    }
}

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct Request {
    pub method: String,
    pub target: String,
    pub minor: u8,
    pub headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        let name = name.to_string();
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.as_str())
    }
}

fn io_reply(e: io::Error, what: &str) -> Reply {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            Reply::error(408, format!("{what}: client too slow ({e})"))
        }
        io::ErrorKind::UnexpectedEof => {
            Reply::error(400, format!("{what}: connection closed early"))
        }
        _ => Reply::error(400, format!("{what}: {e}")),
    }
}

/// Read the request line and headers, up to and including the empty line.
fn read_head(r: &mut impl BufRead, max: usize) -> Result<Vec<u8>, Reply> {
    let mut head = Vec::new();
    let mut seen = 0usize;
    loop {
        let buf = r
            .fill_buf()
            .map_err(|e| io_reply(e, "reading the request"))?;
        if buf.is_empty() {
            if seen == 0 {
                // Connected and closed without a byte (a port probe): nothing to answer.
                return Err(Reply::nothing());
            }
            return Err(Reply::error(
                400,
                format!("request head truncated after {seen} bytes"),
            ));
        }
        let mut used = 0;
        for &c in buf.iter() {
            used += 1;
            seen += 1;
            if seen > max {
                r.consume(used);
                return Err(Reply::error(
                    431,
                    format!("request head larger than {max} bytes"),
                ));
            }
            // RFC 9112 2.2: ignore empty lines before the request line.
            if head.is_empty() && (c == b'\r' || c == b'\n') {
                continue;
            }
            head.push(c);
            if c == b'\n' && (head.ends_with(b"\n\r\n") || head.ends_with(b"\n\n")) {
                r.consume(used);
                return Ok(head);
            }
        }
        r.consume(used);
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// Parse the request line and header fields (RFC 9112).
pub(crate) fn parse_head(head: &[u8], max_headers: usize) -> Result<Request, Reply> {
    let text = std::str::from_utf8(head).map_err(|e| {
        Reply::error(
            400,
            format!("request head is not UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().unwrap_or("");
    let mut it = line.split(' ');
    let (method, target, version) = match (it.next(), it.next(), it.next(), it.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => {
            return Err(Reply::error(
                400,
                format!("malformed request line {:?}", header_safe(line)),
            ))
        }
    };
    if !is_token(method) {
        return Err(Reply::error(
            400,
            format!("malformed method {:?}", header_safe(method)),
        ));
    }
    if target.is_empty() || target.bytes().any(|c| !(33..=126).contains(&c)) {
        return Err(Reply::error(
            400,
            format!("malformed request target {:?}", header_safe(target)),
        ));
    }
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        v if v.starts_with("HTTP/") && v.len() == 8 => {
            return Err(Reply::error(505, format!("unsupported version {v}")))
        }
        v => {
            return Err(Reply::error(
                400,
                format!("malformed HTTP version {:?}", header_safe(v)),
            ))
        }
    };
    let mut headers = Vec::new();
    for (i, l) in lines.enumerate() {
        if l.is_empty() {
            break;
        }
        if l.starts_with([' ', '\t']) {
            return Err(Reply::error(
                400,
                format!("header line {} is folded (obsolete)", i + 2),
            ));
        }
        let (n, v) = l
            .split_once(':')
            .ok_or_else(|| Reply::error(400, format!("header line {} has no colon", i + 2)))?;
        if !is_token(n) {
            return Err(Reply::error(
                400,
                format!(
                    "header line {}: malformed field name {:?}",
                    i + 2,
                    header_safe(n)
                ),
            ));
        }
        if headers.len() == max_headers {
            return Err(Reply::error(
                431,
                format!("more than {max_headers} header fields"),
            ));
        }
        headers.push((n.to_string(), v.trim_matches([' ', '\t']).to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        minor,
        headers,
    })
}

fn handle<S: Read + Write>(
    r: &mut BufReader<S>,
    state_path: Option<&Path>,
    opts: &HttpOptions,
    via: Transport,
    unread: &mut u64,
) -> Reply {
    let head = match read_head(r, opts.max_header_bytes) {
        Ok(h) => h,
        Err(reply) => return reply,
    };
    let req = match parse_head(&head, opts.max_headers) {
        Ok(q) => q,
        Err(reply) => return reply,
    };
    if let Some(n) = req
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        *unread = n;
    }
    match req.method.as_str() {
        "POST" => post(r, &req, state_path, opts, via, unread),
        "GET" => get(&req, state_path, opts),
        m => Reply::error(
            405,
            format!("method {m} not allowed: POST a message, or GET for the A4.5 handshake"),
        ),
    }
}

fn post<S: Read + Write>(
    r: &mut BufReader<S>,
    req: &Request,
    state_path: Option<&Path>,
    opts: &HttpOptions,
    via: Transport,
    unread: &mut u64,
) -> Reply {
    let max = opts.max_body_bytes;
    let te = req.header("transfer-encoding");
    let lengths: Vec<&str> = req.all("content-length").collect();
    if te.is_some() && !lengths.is_empty() {
        // RFC 9112 6.3: both present is a smuggling attempt or a broken client.
        *unread = 0;
        return Reply::error(400, "both Transfer-Encoding and Content-Length");
    }
    let expect_continue = match req.header("expect") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("100-continue") => req.minor == 1,
        Some(v) => return Reply::error(417, format!("unsupported expectation {v:?}")),
    };
    let send_continue = |r: &mut BufReader<S>| -> Result<(), Reply> {
        if expect_continue {
            let w = r.get_mut();
            w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .and_then(|_| w.flush())
                .map_err(|e| io_reply(e, "writing 100 Continue"))?;
        }
        Ok(())
    };
    let body = if let Some(te) = te {
        if !te.eq_ignore_ascii_case("chunked") {
            return Reply::error(
                501,
                format!("unsupported Transfer-Encoding {te:?} (only chunked)"),
            );
        }
        if let Err(rep) = send_continue(r) {
            return rep;
        }
        match read_chunked(r, max) {
            Ok(b) => b,
            Err(rep) => return rep,
        }
    } else {
        let n = match lengths.as_slice() {
            [] => {
                return Reply::error(
                    411,
                    "POST needs a Content-Length (or chunked Transfer-Encoding)",
                )
            }
            [first, rest @ ..] => {
                if first.is_empty()
                    || !first.bytes().all(|c| c.is_ascii_digit())
                    || first.len() > 19
                {
                    *unread = 0;
                    return Reply::error(400, format!("malformed Content-Length {first:?}"));
                }
                if rest.iter().any(|v| v != first) {
                    *unread = 0;
                    return Reply::error(400, "conflicting Content-Length fields");
                }
                first.parse::<u64>().unwrap_or(u64::MAX)
            }
        };
        if n > max as u64 {
            if expect_continue {
                // The client waits for our word before sending the body.
                *unread = 0;
            }
            return Reply::error(
                413,
                format!("body of {n} bytes is larger than the limit of {max} bytes"),
            );
        }
        if let Err(rep) = send_continue(r) {
            return rep;
        }
        let mut body = Vec::with_capacity(n as usize);
        match (&mut *r).take(n).read_to_end(&mut body) {
            Ok(_) if body.len() as u64 == n => {}
            Ok(_) => {
                *unread = 0;
                return Reply::error(
                    400,
                    format!("body truncated: got {} of {n} bytes", body.len()),
                );
            }
            Err(e) => {
                *unread = 0;
                return io_reply(
                    e,
                    &format!("reading the body (got {} of {n} bytes)", body.len()),
                );
            }
        }
        body
    };
    *unread = 0;
    let ct = req.header("content-type").unwrap_or("");
    let parts;
    let msg: Cow<[u8]> = match multipart::boundary_of(ct) {
        Some(Err(e)) => return Reply::error(400, e),
        Some(Ok(b)) => {
            parts = match multipart::parse(&body, &b) {
                Ok(p) => p,
                Err(e) => return Reply::error(400, e.to_string()),
            };
            match multipart::message_part(&parts) {
                Some(p) => Cow::Borrowed(&p.data[..]),
                None => return Reply::error(400, "multipart body without parts"),
            }
        }
        // Any other type: the body is the message (`curl --data-binary @msg`).
        None => Cow::Borrowed(&body[..]),
    };
    if msg.is_empty() {
        return Reply::error(400, "empty message");
    }
    route_message(state_path, &msg, via, opts)
}

/// RFC 9112 7.1 chunked transfer coding, bounded: at most `max` bytes of data, chunk-size
/// lines and trailers bounded too.
fn read_chunked(r: &mut impl BufRead, max: usize) -> Result<Vec<u8>, Reply> {
    fn line(r: &mut impl BufRead, what: &str) -> Result<String, Reply> {
        let mut v = Vec::new();
        (&mut *r)
            .take(4096)
            .read_until(b'\n', &mut v)
            .map_err(|e| io_reply(e, what))?;
        if !v.ends_with(b"\n") {
            return Err(if v.len() >= 4096 {
                Reply::error(400, format!("{what}: line too long"))
            } else {
                Reply::error(400, format!("{what}: truncated"))
            });
        }
        let s = String::from_utf8_lossy(&v);
        Ok(s.trim_end_matches(['\r', '\n']).to_string())
    }
    let mut body = Vec::new();
    loop {
        let l = line(r, "chunked body: chunk size")?;
        let size_hex = l.split(';').next().unwrap_or("").trim();
        let size = if !size_hex.is_empty() && size_hex.len() <= 15 {
            usize::from_str_radix(size_hex, 16).ok()
        } else {
            None
        }
        .ok_or_else(|| {
            Reply::error(
                400,
                format!("chunked body: bad chunk size {:?}", header_safe(&l)),
            )
        })?;
        if size == 0 {
            break;
        }
        if body.len() + size > max {
            return Err(Reply::error(
                413,
                format!("chunked body larger than the limit of {max} bytes"),
            ));
        }
        let start = body.len();
        (&mut *r)
            .take(size as u64)
            .read_to_end(&mut body)
            .map_err(|e| io_reply(e, "chunked body"))?;
        if body.len() - start != size {
            return Err(Reply::error(400, "chunked body truncated inside a chunk"));
        }
        if !line(r, "chunked body: chunk end")?.is_empty() {
            return Err(Reply::error(
                400,
                "chunked body: chunk not followed by CRLF",
            ));
        }
    }
    // Trailer fields, ignored, bounded.
    for _ in 0..64 {
        if line(r, "chunked body: trailer")?.is_empty() {
            return Ok(body);
        }
    }
    Err(Reply::error(400, "chunked body: too many trailer fields"))
}

/// Decode `application/x-www-form-urlencoded` query parameters.
pub(crate) fn parse_query(q: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((percent_decode(n)?, percent_decode(v)?));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut v = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => v.push(b' '),
            b'%' => {
                let h = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
                v.push(h);
                i += 2;
            }
            c => v.push(c),
        }
        i += 1;
    }
    String::from_utf8(v).map_err(|_| format!("query value {s:?} is not UTF-8"))
}

/// Percent-encode a query value (everything but RFC 3986 unreserved characters).
pub fn percent_encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len() * 3);
    for c in s.bytes() {
        if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
            o.push(c as char);
        } else {
            o.push_str(&format!("%{c:02X}"));
        }
    }
    o
}

fn get(req: &Request, state_path: Option<&Path>, opts: &HttpOptions) -> Reply {
    let query = req.target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let params = match parse_query(query) {
        Ok(p) => p,
        Err(e) => return Reply::error(400, e),
    };
    let one = |name: &str| -> Result<Option<&str>, Reply> {
        let mut it = params.iter().filter(|(n, _)| n == name);
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return Err(Reply::error(400, format!("parameter {name} given twice")));
        }
        Ok(first)
    };
    let (reply, request, key) = match (one("reply"), one("request"), one("key")) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    match (reply, request, key) {
        (Some(secret), None, None) => handshake_reply(secret, state_path, opts),
        (None, Some(sender), Some(key)) => handshake_request(sender, key, state_path, opts),
        (None, Some(_), None) => Reply::error(400, "A4.5 request without key="),
        _ => Reply::error(
            400,
            "GET takes ?request=SENDER&key=SECRET or ?reply=SECRET (A4.5); POST a message",
        ),
    }
}

/// A4.5, our side as the sender: "Alice replies to the request with a web page of
/// Content-Type: text/plain containing the unsigned message." Once: the entry is deleted
/// in the same transaction that reads it.
fn handshake_reply(secret: &str, state_path: Option<&Path>, opts: &HttpOptions) -> Reply {
    if let Err(e) = handshake::check_secret(secret) {
        return Reply::error(400, e);
    }
    let mut state = match State::open(state_path) {
        Ok(s) => s,
        Err(f) => return Reply::from_failure(f, opts.retry_after_secs),
    };
    match handshake::take(&mut state, secret) {
        Ok(Some(bytes)) => Reply {
            status: 200,
            content_type: "text/plain",
            headers: Vec::new(),
            body: bytes,
            failure: None,
        },
        Ok(None) => Reply::error(
            404,
            "no such handshake (unknown, already fetched or expired)",
        ),
        Err(f) => Reply::from_failure(f, opts.retry_after_secs),
    }
}

/// A4.5, our side as the receiver: check that the requester's host is the connecting
/// address, fetch `SENDER?reply=SECRET`, route what comes back as received from SENDER.
/// The answer ("a blank web page") is given after the fetch, so the sender learns whether
/// its message arrived.
fn handshake_request(
    sender: &str,
    key: &str,
    state_path: Option<&Path>,
    opts: &HttpOptions,
) -> Reply {
    if !opts.handshake {
        return Reply::error(403, "the A4.5 handshake is disabled here");
    }
    if let Err(e) = handshake::check_secret(key) {
        return Reply::error(400, e);
    }
    let origin = match handshake::PeerUrl::parse(sender) {
        Ok(u) => u,
        Err(e) => return Reply::error(400, e),
    };
    let peer = match opts.peer {
        Some(p) => p,
        None => {
            return Reply::error(
                403,
                "cannot verify the requester: the connecting address is unknown",
            )
        }
    };
    if let Err(e) = origin.verify(peer) {
        return Reply::error(403, e);
    }
    // The sender's own peer options (e.g. `trust=` for its certificate) apply to the fetch.
    let fetch_opts = match State::open(state_path)
        .and_then(|st| PeerOptions::for_peer(&st, sender, opts.fetch.clone()))
    {
        Ok(o) => PeerOptions {
            handshake: None,
            ..o
        },
        Err(f) => return Reply::from_failure(f, opts.retry_after_secs),
    };
    let bytes = match handshake::fetch(sender, key, &fetch_opts) {
        Ok(b) => b,
        Err(SendError::Transient(m)) => return Reply::unavailable(m, opts.retry_after_secs),
        Err(SendError::Permanent(m)) => return Reply::error(400, m),
    };
    // "routes the fetched message as received from that sender": its first header line
    // must name the requester.
    if let Ok(m) = crate::wire::parse(&bytes, &crate::wire::Rules::unchecked_time()) {
        if m.sender().address != sender.as_bytes() {
            return Reply::error(
                400,
                format!(
                    "fetched message is from {}, not from the requester {sender}",
                    header_safe(&m.sender().address_str())
                ),
            );
        }
    }
    let via = if origin.https {
        Transport::Https
    } else {
        Transport::Http
    };
    // A4.5 authenticates the sender: its host is the connecting address and the message
    // came from its own server.
    let mut hs_opts = opts.clone();
    hs_opts.route.authenticated_sender = Some(sender.to_string());
    let mut r = route_message(state_path, &bytes, via, &hs_opts);
    if r.status == 200 {
        // "Bob replies with a blank web page".
        r.body.clear();
        r.content_type = "text/plain";
    }
    r
}

/// Route one message and turn the decision into an answer.
fn route_message(
    state_path: Option<&Path>,
    msg: &[u8],
    via: Transport,
    opts: &HttpOptions,
) -> Reply {
    let mut state = match State::open(state_path) {
        Ok(s) => s,
        Err(f) => return Reply::from_failure(f, opts.retry_after_secs),
    };
    match route::receive(&mut state, msg, via, &opts.route) {
        Ok(d) => decision_reply(&d),
        Err(f) => Reply::from_failure(f, opts.retry_after_secs),
    }
}

fn decision_reply(d: &Decision) -> Reply {
    let result = |text: &str| {
        let mut r = Reply::ok(&format!("{text}\n"));
        r.headers.push(("X-CMR-Result", text.to_string()));
        r
    };
    match d.outcome {
        Outcome::Accepted | Outcome::Posted => result("accepted"),
        // A retry of a message we already hold: success, nothing done twice.
        Outcome::Duplicate => result("duplicate"),
        Outcome::KeyExchange => result("key-exchange"),
        Outcome::Rejected => {
            let reason = d.reason.as_deref().unwrap_or("rejected");
            let mut r = Reply::error(400, format!("rejected: {reason}"));
            // the other implementation's name for the same thing, for its operators
            r.headers
                .push(("X-CMR-Drop-Reason", header_safe(&format!("rejected: {reason}"))));
            if let Some(code) = &d.reason_code {
                r.headers.push(("X-CMR-Reason", header_safe(code)));
            }
            r
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sending
// ---------------------------------------------------------------------------------------

fn system_roots() -> &'static [Vec<u8>] {
    static ROOTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        rustls_native_certs::load_native_certs()
            .certs
            .into_iter()
            .map(|c| c.as_ref().to_vec())
            .collect()
    })
}

/// An agent for one destination: its timeouts, system roots plus its trusted file, no
/// redirects, statuses returned rather than turned into errors.
pub(crate) fn agent(opts: &PeerOptions) -> Result<ureq::Agent, SendError> {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let mut roots: Vec<Certificate<'static>> = system_roots()
        .iter()
        .map(|d| Certificate::from_der(d).to_owned())
        .collect();
    if let Some(p) = &opts.trust_file {
        let f = std::fs::File::open(p).map_err(|e| {
            SendError::Transient(format!("trusted certificate file {}: {e}", p.display()))
        })?;
        let mut n = 0;
        for c in rustls_pemfile::certs(&mut BufReader::new(f)) {
            let c = c.map_err(|e| {
                SendError::Transient(format!("trusted certificate file {}: {e}", p.display()))
            })?;
            roots.push(Certificate::from_der(c.as_ref()).to_owned());
            n += 1;
        }
        if n == 0 {
            return Err(SendError::Transient(format!(
                "trusted certificate file {}: no PEM certificate",
                p.display()
            )));
        }
    }
    let root_certs = if roots.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::new_with_certs(&roots)
    };
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(opts.timeout))
        .timeout_connect(Some(opts.connect_timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("cmr/", env!("CARGO_PKG_VERSION")))
        .tls_config(TlsConfig::builder().root_certs(root_certs).build())
        .build();
    Ok(config.into())
}

/// Classify a transport error: only a bad address or a local misuse is permanent. Trouble
/// after the body may have been sent (a timeout, a reset, an answer we cannot read) is
/// ambiguous: the peer may hold the message already, so it is transient and retried, never
/// dead-lettered on its own; the retry's "duplicate" answer then counts as delivered.
pub(crate) fn classify(addr: &str, e: ureq::Error) -> SendError {
    use ureq::Error as E;
    let m = format!("{addr}: {e}");
    match e {
        E::BadUri(_) | E::Http(_) | E::RequireHttpsOnly(_) | E::InvalidProxyUrl => {
            SendError::Permanent(m)
        }
        _ => SendError::Transient(m),
    }
}

/// The refusal reason of an answer: our own `X-CMR-Error`, the other implementation's
/// `X-CMR-Drop-Reason` (both when they differ), else the first line of the body.
fn refusal_reason(resp: &mut ureq::http::Response<ureq::Body>) -> String {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| header_safe(v.trim()))
            .filter(|v| !v.is_empty())
    };
    match (header("x-cmr-error"), header("x-cmr-drop-reason")) {
        (Some(e), Some(d)) if !e.contains(&d) => format!("{e} ({d})"),
        (Some(e), _) => e,
        (None, Some(d)) => d,
        (None, None) => {
            let body = resp
                .body_mut()
                .with_config()
                .limit(4096)
                .read_to_vec()
                .unwrap_or_default();
            let s = String::from_utf8_lossy(&body);
            header_safe(s.lines().next().unwrap_or("").trim())
        }
    }
}

/// Turn a status into a result: 2xx ok; 5xx, 408, 429 transient; the rest permanent.
pub(crate) fn check_status(
    addr: &str,
    resp: ureq::http::Response<ureq::Body>,
) -> Result<ureq::http::Response<ureq::Body>, SendError> {
    status_result(addr, resp).map_err(|(e, _)| e)
}

/// [`check_status`], also giving the refusal reason alone.
fn status_result(
    addr: &str,
    mut resp: ureq::http::Response<ureq::Body>,
) -> Result<ureq::http::Response<ureq::Body>, (SendError, String)> {
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(resp);
    }
    let reason = refusal_reason(&mut resp);
    let mut m = format!("{addr}: HTTP {status}");
    if let Some(loc) = resp.headers().get("location").and_then(|v| v.to_str().ok()) {
        m.push_str(&format!(" (moved to {loc})"));
    }
    if !reason.is_empty() {
        m.push_str(": ");
        m.push_str(&reason);
    }
    Err((
        if status >= 500 || status == 408 || status == 429 {
            SendError::Transient(m)
        } else {
            SendError::Permanent(m)
        },
        reason,
    ))
}

/// True when a refusal says the peer already holds the message: the other implementation
/// answers `400` with `X-CMR-Drop-Reason: duplicate message id in cache` (cmr's own ingress
/// answers 200 `duplicate`). The message is there, so the delivery is done.
pub(crate) fn is_duplicate_refusal(reason: &str) -> bool {
    reason.contains("duplicate message id")
}

/// The result of delivering a message: [`check_status`], except that a "duplicate" refusal
/// counts as delivered (idempotent, as a retry after an ambiguous timeout needs).
pub(crate) fn delivery_status(
    addr: &str,
    resp: ureq::http::Response<ureq::Body>,
) -> Result<(), SendError> {
    match status_result(addr, resp) {
        Ok(_) => Ok(()),
        Err((SendError::Permanent(_), reason)) if is_duplicate_refusal(&reason) => Ok(()),
        Err((e, _)) => Err(e),
    }
}

fn check_scheme(addr: &str) -> Result<(), SendError> {
    let lower = addr.get(..8).unwrap_or(addr).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        Ok(())
    } else {
        Err(SendError::Permanent(format!(
            "{addr}: not an http:// or https:// address"
        )))
    }
}

/// A4.2/A4.3: deliver one message (the bytes as they go on the wire) to an http:// or
/// https:// address, as an RFC 1867 upload, or through the A4.5 handshake when
/// `opts.handshake` is set.
pub fn send(addr: &str, bytes: &[u8], opts: &PeerOptions) -> Result<(), SendError> {
    check_scheme(addr)?;
    if let Some(hs) = &opts.handshake {
        return handshake::send(addr, bytes, hs, opts);
    }
    let agent = agent(opts)?;
    let (body, content_type) = multipart::build_upload(bytes);
    let resp = agent
        .post(addr)
        .header("Content-Type", &content_type)
        .send(&body[..])
        .map_err(|e| classify(addr, e))?;
    delivery_status(addr, resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_parsing() {
        let r = parse_head(
            b"POST /cmr?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length:  5 \r\n\r\n",
            10,
        )
        .unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.target, "/cmr?x=1");
        assert_eq!(r.header("content-length"), Some("5"));
        for bad in [
            &b"GET / HTTP/1.1 extra\r\n\r\n"[..],
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET /\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: a\r\n\r\n",
            b"GET / FTP/1.0\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            let e = parse_head(bad, 10).unwrap_err();
            assert_eq!(e.status, 400, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            parse_head(b"GET / HTTP/2.0\r\n\r\n", 10)
                .unwrap_err()
                .status,
            505
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\n\r\n", 1)
                .unwrap_err()
                .status,
            431
        );
    }

    #[test]
    fn query_codec() {
        let q = format!(
            "request={}&key={}",
            percent_encode("http://a.example/cmr?x=1&y"),
            percent_encode("s e+c")
        );
        let p = parse_query(&q).unwrap();
        assert_eq!(p[0].1, "http://a.example/cmr?x=1&y");
        assert_eq!(p[1].1, "s e+c");
        assert_eq!(parse_query("a=b+c").unwrap()[0].1, "b c");
        assert!(parse_query("a=%4").is_err());
        assert!(parse_query("a=%zz").is_err());
        assert!(parse_query("a=%ff").is_err());
    }

    #[test]
    fn chunked_decoding() {
        let mut r = io::Cursor::new(&b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n"[..]);
        assert_eq!(read_chunked(&mut r, 100).unwrap(), b"Wikipedia");
        let mut r = io::Cursor::new(&b"4\r\nWiki\r\n5\r\nped"[..]);
        assert_eq!(read_chunked(&mut r, 100).unwrap_err().status, 400);
        let mut r = io::Cursor::new(&b"40\r\n"[..]);
        assert_eq!(read_chunked(&mut r, 10).unwrap_err().status, 413);
        let mut r = io::Cursor::new(&b"zz\r\n"[..]);
        assert_eq!(read_chunked(&mut r, 10).unwrap_err().status, 400);
        let mut r = io::Cursor::new(&b"ffffffffffffffffffff\r\n"[..]);
        assert_eq!(read_chunked(&mut r, 10).unwrap_err().status, 400);
    }

    #[test]
    fn peer_options_text() {
        let o = PeerOptions::default()
            .with_options(
                "trust=/etc/cmr/bob.pem timeout=5 connect_timeout=1.5 handshake=http://me.example/ handshake_expiry=30",
                Some(Path::new("/s.sqlite")),
            )
            .unwrap();
        assert_eq!(o.trust_file.as_deref(), Some(Path::new("/etc/cmr/bob.pem")));
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert_eq!(o.connect_timeout, Duration::from_millis(1500));
        let hs = o.handshake.unwrap();
        assert_eq!(hs.own_address, "http://me.example/");
        assert_eq!(hs.state_path.as_deref(), Some(Path::new("/s.sqlite")));
        assert_eq!(hs.expiry, Duration::from_secs(30));
        // a misspelt or foreign option is an error, not silently dropped
        let e = PeerOptions::default()
            .with_options("trust=/x.pem ssh_options=x", None)
            .unwrap_err();
        assert!(e.contains("\"ssh_options\": unknown"), "{e}");
        assert!(PeerOptions::default()
            .with_options("timeout=x", None)
            .is_err());
        assert!(PeerOptions::default().with_options("trust", None).is_err());
        assert!(PeerOptions::default()
            .with_options("handshake=mailto:a@b", None)
            .is_err());
    }

    #[test]
    fn status_classes_and_header_safety() {
        assert_eq!(header_safe("a\r\nb\u{e9}"), "a  b\\u{e9}");
        assert!(header_safe(&"x".repeat(1000)).len() < 310);
        assert!(check_scheme("mailto:a@b").is_err());
        assert!(check_scheme("HTTPS://a/").is_ok());
    }
}
