//! Parse throughput: `cargo bench --bench parse`.
//!
//! - one message with a 10 MB body (MB/s; goal >= 1000 MB/s)
//! - small messages (2-line header, 100-byte body) split off a large concatenated buffer
//!   with `parse_prefix`, single thread (messages/s; goal >= 1,000,000/s)
//! - the same stream through `wire::Reader` (messages/s, for comparison)
//!
//! The default rules are used (system clock for the future check).

use cmr::wire::{self, Limits, Reader, Rules};
use std::hint::black_box;
use std::time::{Duration, Instant};

const HEADER: &[u8] = b"0\r\n2024/05/01 12:00:00.25 http://relay.example/cmr\r\n2024/05/01 11:59:58 mailto:origin@example.org\r\n\r\n";

fn message(body_len: usize) -> Vec<u8> {
    let mut m = HEADER.to_vec();
    m.extend_from_slice(format!("{body_len}\r\n").as_bytes());
    m.extend((0..body_len).map(|i| (i * 31 % 251) as u8));
    m
}

/// CPU time used by this thread. The machine may be shared: figures per CPU second show
/// the parser's own speed, figures per wall second what this run got.
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Timing {
    calls: u64,
    wall: f64,
    cpu: f64,
}

/// Run `f` repeatedly for at least `min` of CPU time (after one warm-up call), at least once.
fn time(min: Duration, mut f: impl FnMut()) -> Timing {
    if !min.is_zero() {
        f();
    }
    let (wall0, cpu0) = (Instant::now(), cpu_now());
    let mut calls = 0;
    while calls == 0 || cpu_now() - cpu0 < min {
        f();
        calls += 1;
    }
    Timing {
        calls,
        wall: wall0.elapsed().as_secs_f64(),
        cpu: (cpu_now() - cpu0).as_secs_f64(),
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and then each case
    // runs once on small inputs, as a smoke test.
    let bench = std::env::args().any(|a| a == "--bench");
    let min = Duration::from_secs(if bench { 3 } else { 0 });
    // `cargo bench --bench parse -- small` runs only the cases whose name contains "small".
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |name: &str| filter.as_ref().is_none_or(|f| name.contains(f.as_str()));

    // 1. One message, 10 MB body.
    if run("big") {
        big_body(min, if bench { 10 << 20 } else { 1 << 20 });
    }
    let small = message(100);
    let count = if bench { 200_000 } else { 2_000 };
    let stream: Vec<u8> = small.repeat(count);
    if run("small") {
        small_prefix(min, &small, &stream, count);
    }
    if run("reader") {
        small_reader(min, &stream, count);
    }
}

fn big_body(min: Duration, size: usize) {
    let big = message(size);
    let rules = Rules {
        limits: Limits {
            max_message_bytes: 32 << 20,
            ..Limits::default()
        },
        ..Rules::default()
    };
    assert!(wire::parse(&big, &rules).is_ok());
    let t = time(min, || {
        black_box(wire::parse(black_box(&big), &rules).unwrap());
    });
    let bytes = big.len() as f64 * t.calls as f64;
    println!(
        "parse, big body:     {:>9.0} MB/s per CPU second ({:.0} MB/s wall; {} parses of {} bytes; goal (10 MB body) >= 1000 MB/s)",
        bytes / t.cpu / 1e6,
        bytes / t.wall / 1e6,
        t.calls,
        big.len(),
    );
}

/// Small messages through parse_prefix.
fn small_prefix(min: Duration, small: &[u8], stream: &[u8], count: usize) {
    let rules = Rules::default();
    let t = time(min, || {
        let mut rest = stream;
        while !rest.is_empty() {
            let (m, used) = wire::parse_prefix(black_box(rest), &rules).unwrap();
            black_box(m);
            rest = &rest[used..];
        }
    });
    let msgs = count as f64 * t.calls as f64;
    println!(
        "parse_prefix, small: {:>9.0} msg/s per CPU second ({:.0} msg/s wall; {} bytes each; goal >= 1000000 msg/s)",
        msgs / t.cpu,
        msgs / t.wall,
        small.len(),
    );
}

/// The same stream through the stream reader.
fn small_reader(min: Duration, stream: &[u8], count: usize) {
    let t = time(min, || {
        let mut k = 0;
        for m in Reader::new(stream, Rules::default()) {
            black_box(m.unwrap());
            k += 1;
        }
        assert_eq!(k, count);
    });
    let msgs = count as f64 * t.calls as f64;
    println!(
        "Reader, small:       {:>9.0} msg/s per CPU second ({:.0} msg/s wall)",
        msgs / t.cpu,
        msgs / t.wall,
    );
}
