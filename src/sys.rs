//! The few system calls the tools make on their standard file descriptors (inetd hands a
//! connection over as fds 0, 1 and 2), through `rustix`'s safe wrappers: no `unsafe` here.
//! At the bottom of the library: it knows no other module.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// One of the standard descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Std {
    In,
    Out,
    Err,
}

fn with_fd<T>(fd: Std, f: impl FnOnce(BorrowedFd<'_>) -> T) -> T {
    match fd {
        Std::In => f(std::io::stdin().as_fd()),
        Std::Out => f(std::io::stdout().as_fd()),
        Std::Err => f(std::io::stderr().as_fd()),
    }
}

/// Whether the descriptor is a socket.
pub fn is_socket(fd: Std) -> bool {
    with_fd(fd, |d| {
        rustix::fs::fstat(d)
            .map(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket
            })
            .unwrap_or(false)
    })
}

/// Whether the descriptor is a datagram socket.
pub fn is_datagram_socket(fd: Std) -> bool {
    with_fd(fd, |d| {
        rustix::net::sockopt::socket_type(d)
            .map(|t| t == rustix::net::SocketType::DGRAM)
            .unwrap_or(false)
    })
}

/// A descriptor of our own for the same open socket or file (a `dup`).
pub fn dup(fd: Std) -> std::io::Result<OwnedFd> {
    with_fd(fd, |d| d.try_clone_to_owned())
}

/// SO_RCVTIMEO and SO_SNDTIMEO on a socket (nothing on pipes and files).
pub fn set_socket_timeouts(fd: Std, t: Duration) {
    with_fd(fd, |d| {
        use rustix::net::sockopt::{set_socket_timeout, Timeout};
        let _ = set_socket_timeout(d, Timeout::Recv, Some(t));
        let _ = set_socket_timeout(d, Timeout::Send, Some(t));
    })
}

/// The remote address of a socket (IPv4-mapped IPv6 addresses come back as IPv4).
pub fn peer_address(fd: Std) -> Option<IpAddr> {
    let any = with_fd(fd, |d| rustix::net::getpeername(d).ok().flatten())?;
    let sa = SocketAddr::try_from(any).ok()?;
    Some(match sa.ip() {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
        v4 => v4,
    })
}

/// Shut the writing side of a socket (the reader sees the end of the answer).
pub fn shutdown_write(fd: Std) {
    with_fd(fd, |d| {
        let _ = rustix::net::shutdown(d, rustix::net::Shutdown::Write);
    })
}

/// The effective user id, for diagnostics about permissions.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_is_no_socket_and_a_socket_is_one() {
        // Under `cargo test` the standard descriptors are pipes or a terminal.
        assert!(!is_datagram_socket(Std::In) || is_socket(Std::In));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let any = rustix::net::getpeername(&s).unwrap().unwrap();
        assert_eq!(SocketAddr::try_from(any).unwrap(), c.local_addr().unwrap());
        assert!(euid() == rustix::process::geteuid().as_raw());
    }
}
