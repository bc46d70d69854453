//! Key-exchange timings: `cargo bench --bench keyx`. Prints figures; asserts nothing about
//! time. Shows that hostile parameters are rejected fast (a 32,768-bit RSA modulus is refused
//! by a length check before any big-number work), and what generation and answers cost.

use cmr::keyx::exchange::{self, Start};
use cmr::keyx::memory::MemoryStore;
use cmr::keyx::{dh, rsa, Derive};
use cmr::wire::{parse, Rules};
use std::time::{Duration, Instant};

fn stats(name: &str, mut d: Vec<Duration>) {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1e3;
    println!(
        "{name:<58} n={:<4} min {:>9.3} ms  median {:>9.3} ms  max {:>9.3} ms",
        d.len(),
        ms(d[0]),
        ms(d[d.len() / 2]),
        ms(d[d.len() - 1])
    );
}

fn time<T>(n: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect()
}

/// Route one control body from Alice to a fresh Bob and return the outcome's reason.
fn refuse(body: &str) -> String {
    let mut a = MemoryStore::new("http://alice.com/cmr");
    let m = exchange::compose(&mut a, "http://bob.com/", body.as_bytes()).unwrap();
    let raw = m.encode();
    let mut b = MemoryStore::new("http://bob.com/");
    let m = parse(&raw, &Rules::unchecked_time()).unwrap();
    let o = exchange::receive(&mut b, "http://alice.com/cmr", &m, false, false).unwrap();
    assert!(!o.accepted());
    assert!(b.keys.is_empty());
    o.reason
}

fn main() {
    let g14 = dh::Group::modp(14).unwrap();
    let g16 = dh::Group::modp(16).unwrap();
    let p = format!("{:x}", g14.p);

    let huge = format!("RSA key exchange request={},10001.", "f".repeat(8192));
    println!("32768-bit modulus: {}", refuse(&huge));
    stats(
        "reject RSA request, 32768-bit n (parse + route)",
        time(200, || refuse(&huge)),
    );
    let small = format!("RSA key exchange request={},10001.", "f".repeat(256));
    stats(
        "reject RSA request, 1024-bit n",
        time(200, || refuse(&small)),
    );
    let even_e = format!("RSA key exchange request={p},10000.");
    stats("reject RSA request, even e", time(200, || refuse(&even_e)));
    let big_dh = format!("DH key exchange request=2,{},5.", "f".repeat(8192));
    stats(
        "reject DH request, 32768-bit p",
        time(200, || refuse(&big_dh)),
    );
    // Odd p with no small factors in p or q that is not a safe prime: as costly as a fake
    // group gets (trial division, then Miller-Rabin base 2 on q).
    let fake_of = |bits: u32| {
        let mut x = (num_bigint::BigUint::from(1u32) << (bits - 1)) + 1u32;
        loop {
            let q: num_bigint::BigUint = &x >> 1u32;
            let ok = x.bit(0)
                && q.bit(0)
                && dh::SMALL_PRIMES
                    .iter()
                    .all(|&s| &x % s != 0u32.into() && &q % s != 0u32.into());
            if ok {
                break x;
            }
            x += 2u32;
        }
    };
    let fake4096 = fake_of(4096);
    let fake_body = format!("DH key exchange request=2,{fake4096:x},5.");
    println!("fake 4096-bit group: {}", refuse(&fake_body));
    stats(
        "reject DH request, 4096-bit p, not a safe prime",
        time(10, || refuse(&fake_body)),
    );
    let fake8192 = dh::Group {
        g: 2u32.into(),
        p: fake_of(8192),
    };
    let big_body = format!("DH key exchange request=2,{:x},5.", fake8192.p);
    println!("fake 8192-bit group, default limit: {}", refuse(&big_body));
    stats(
        "reject DH request, 8192-bit p (over the default limit)",
        time(10, || refuse(&big_body)),
    );
    stats(
        "check an 8192-bit fake p with the limit raised to 8192",
        time(3, || fake8192.validate_up_to(8192).unwrap_err()),
    );
    let custom16 = dh::Group {
        g: 3u32.into(),
        p: g16.p.clone(),
    };
    stats(
        "validate a custom 4096-bit safe-prime group (g=3)",
        time(3, || custom16.validate().unwrap()),
    );

    stats(
        "generate one-time RSA key pair, 2048 bits",
        time(10, || rsa::KeyPair::generate(2048).unwrap()),
    );
    stats(
        "generate one-time RSA key pair, 3072 bits",
        time(3, || rsa::KeyPair::generate(3072).unwrap()),
    );

    let kp = rsa::KeyPair::generate(2048).unwrap();
    let (n, e) = (kp.n(), kp.e());
    stats(
        "RSA responder: k and c = k^e mod n (2048)",
        time(50, || rsa::respond(&n, &e)),
    );
    let (_, c) = rsa::respond(&n, &e);
    stats(
        "RSA initiator: k = c^d mod n (2048, CRT, blinded)",
        time(50, || kp.recover(&c).unwrap()),
    );
    stats("DH keypair, group 14", time(50, || g14.keypair()));
    stats("DH keypair, group 16", time(20, || g16.keypair()));
    let mut a = MemoryStore::new("http://alice.com/cmr");
    stats(
        "DH request (initiate), group 14",
        time(20, || {
            a.pending.clear();
            exchange::initiate(
                &mut a,
                "http://bob.com/",
                Start::Dh(g14.clone()),
                Derive::Hardened,
                false,
            )
            .unwrap()
        }),
    );
}
