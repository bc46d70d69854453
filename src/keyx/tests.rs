//! The protocol between pairs of in-memory peers: a stand-in router that checks signatures
//! as A3 does and hands control messages to `exchange::receive`.

use super::exchange::{self, first_contact, initiate, receive, Start};
use super::memory::MemoryStore;
use super::*;
use crate::sign::{self, Key, Scheme};
use crate::wire::{parse, Rules};
use num_bigint::BigUint;
use num_traits::One;

const A: &str = "http://alice.com/cmr";
const B: &str = "http://bob.com/";

/// What the stand-in router did with one message.
#[derive(Debug, PartialEq)]
enum Got {
    Control(KeyxOutcome),
    /// An ordinary message whose signature verified (or that was unsigned with no key).
    Accepted,
    /// A3: "If the message is signed, then it should compute the signature and reject it if
    /// it does not match."
    BadSignature,
}

fn route(to: &mut MemoryStore, from: &str, bytes: &[u8], secure: bool) -> Got {
    let m = parse(bytes, &Rules::unchecked_time()).unwrap();
    assert_eq!(m.sender().address, from.as_bytes());
    if m.signature().is_signed() {
        match to.keys.get(from) {
            Some((s, k)) if sign::verify(&m, *s, k).is_ok() => {}
            _ => return Got::BadSignature,
        }
    }
    if is_control(m.body()) {
        Got::Control(receive(to, from, &m, secure, false).unwrap())
    } else {
        Got::Accepted
    }
}

/// Deliver everything `from` has queued for `to`.
fn deliver(from: &mut MemoryStore, to: &mut MemoryStore, secure: bool) -> Vec<Got> {
    let msgs = from.drain();
    msgs.into_iter()
        .map(|(dest, bytes)| {
            assert_eq!(dest, to.address);
            route(to, &from.address.clone(), &bytes, secure)
        })
        .collect()
}

fn pair() -> (MemoryStore, MemoryStore) {
    (MemoryStore::new(A), MemoryStore::new(B))
}

fn key_of(s: &MemoryStore, peer: &str) -> Option<Key> {
    s.keys.get(peer).map(|k| k.1.clone())
}

fn action(g: &[Got]) -> Vec<Action> {
    g.iter()
        .map(|g| match g {
            Got::Control(o) => o.action,
            other => panic!("not a control outcome: {other:?}"),
        })
        .collect()
}

/// A message from `from` to `to`, signed with the key `from` holds, verifies at `to`.
fn signed_message_verifies(from: &mut MemoryStore, to: &mut MemoryStore) {
    let m = exchange::compose(from, &to.address.clone(), b"Hello World!").unwrap();
    assert!(m.signature().is_signed());
    assert_eq!(
        route(to, &from.address.clone(), &m.encode(), false),
        Got::Accepted
    );
}

fn run_exchange(start: impl Fn() -> Start, mode: Derive) -> (MemoryStore, MemoryStore) {
    let (mut a, mut b) = pair();
    a.derive.insert(B.into(), mode);
    b.derive.insert(A.into(), mode);
    let req = initiate(&mut a, B, start(), mode, false).unwrap();
    assert!(!req.signature().is_signed(), "A5.1: no key yet, unsigned");
    a.outbox.push((B.into(), req.encode()));
    assert_eq!(action(&deliver(&mut a, &mut b, false)), [Action::Replied]);
    assert!(b.outbox[0].1.starts_with(b"0\r\n"), "reply unsigned too");
    assert_eq!(action(&deliver(&mut b, &mut a, false)), [Action::KeySet]);
    assert!(a.pending.is_empty(), "pending deleted after use");
    let (ka, kb) = (key_of(&a, B).unwrap(), key_of(&b, A).unwrap());
    assert_eq!(ka, kb);
    match mode {
        Derive::Hardened => assert_eq!(ka.bytes().len(), 32),
        Derive::Spec => assert!(ka.bytes().len() > 200, "k's bytes as is"),
    }
    signed_message_verifies(&mut a, &mut b);
    signed_message_verifies(&mut b, &mut a);
    (a, b)
}

#[test]
fn rsa_exchange_both_derivations() {
    for mode in [Derive::Hardened, Derive::Spec] {
        run_exchange(|| Start::Rsa(rsa::KeyPair::generate(2048).unwrap()), mode);
    }
}

#[test]
fn dh_exchange_both_derivations_and_groups() {
    for mode in [Derive::Hardened, Derive::Spec] {
        run_exchange(|| Start::Dh(dh::Group::modp(14).unwrap()), mode);
    }
    run_exchange(|| Start::Dh(dh::Group::modp(15).unwrap()), Derive::Hardened);
}

#[test]
fn derivation_modes_must_match() {
    let (mut a, mut b) = pair();
    b.derive.insert(A.into(), Derive::Spec);
    let req = initiate(
        &mut a,
        B,
        Start::Dh(dh::Group::modp(14).unwrap()),
        Derive::Hardened,
        false,
    )
    .unwrap();
    a.outbox.push((B.into(), req.encode()));
    deliver(&mut a, &mut b, false);
    deliver(&mut b, &mut a, false);
    assert_ne!(key_of(&a, B), key_of(&b, A));
}

#[test]
fn clear_key_needs_a_secure_channel() {
    let key = b"0123456789abcdef0123".to_vec();
    // Initiator side: refused unless the channel is secure.
    let (mut a, mut b) = pair();
    let e = initiate(
        &mut a,
        B,
        Start::Clear {
            key: key.clone(),
            secure: false,
        },
        Derive::Hardened,
        false,
    )
    .unwrap_err();
    assert!(e.message.contains("HTTPS or SSH"), "{e}");
    assert!(a.keys.is_empty());
    // Receiving side: the same message refused over an insecure channel, accepted otherwise.
    let m = initiate(
        &mut a,
        B,
        Start::Clear {
            key: key.clone(),
            secure: true,
        },
        Derive::Hardened,
        false,
    )
    .unwrap();
    assert!(!m.signature().is_signed());
    let got = route(&mut b, A, &m.encode(), false);
    let Got::Control(o) = got else { panic!() };
    assert_eq!(o.action, Action::Refused);
    assert!(o.reason.contains("not secure"), "{}", o.reason);
    assert!(b.keys.is_empty(), "no key change");
    let Got::Control(o) = route(&mut b, A, &m.encode(), true) else {
        panic!()
    };
    assert_eq!(o.action, Action::KeySet);
    assert_eq!(key_of(&a, B), key_of(&b, A));
    signed_message_verifies(&mut b, &mut a);
}

#[test]
fn short_clear_keys_are_refused() {
    let (mut a, mut b) = pair();
    a.clear_min = 1;
    let m = initiate(
        &mut a,
        B,
        Start::Clear {
            key: b"foo".to_vec(),
            secure: true,
        },
        Derive::Spec,
        false,
    )
    .unwrap();
    let Got::Control(o) = route(&mut b, A, &m.encode(), true) else {
        panic!()
    };
    assert_eq!(o.action, Action::Refused);
    assert!(o.reason.contains("fewer than the 16"), "{}", o.reason);
    b.clear_min = 3;
    // hardened (the default): the check vector (local http://bob.com/, peer A)
    let Got::Control(o) = route(&mut b, A, &m.encode(), true) else {
        panic!()
    };
    assert_eq!(o.action, Action::KeySet);
    assert_eq!(
        key_of(&b, A).unwrap().to_hex(),
        "83ceb0bb34bd3e8c2e7680834a6fa91752f3f32459ca0045d15f6d601f1fd7d5"
    );
    // B now shares a key with A: the same unsigned message is refused (A5.1).
    let Got::Control(o) = route(&mut b, A, &m.encode(), true) else {
        panic!()
    };
    assert_eq!(o.action, Action::Refused);
    // spec: the key bytes as is
    let mut b = MemoryStore::new(B);
    b.clear_min = 3;
    b.derive.insert(A.into(), Derive::Spec);
    let Got::Control(o) = route(&mut b, A, &m.encode(), true) else {
        panic!()
    };
    assert_eq!(o.action, Action::KeySet);
    assert_eq!(key_of(&b, A).unwrap().bytes(), b"foo");
}

/// The body of a control message from A, as raw bytes.
fn from_a(body: &[u8]) -> Vec<u8> {
    let mut a = MemoryStore::new(A);
    exchange::compose(&mut a, B, body).unwrap().encode()
}

#[test]
fn weak_parameters_are_refused_without_key_change() {
    let g14 = dh::Group::modp(14).unwrap();
    let p = format!("{:x}", g14.p);
    let pm1 = format!("{:x}", &g14.p - 1u32);
    let big = "f".repeat(8192); // 32,768 bits
    let small = format!("{:x}", (BigUint::one() << 1023u32) + 1u32);
    let cases: Vec<(String, &str)> = vec![
        (
            format!("RSA key exchange request={big},10001."),
            "longer than 2048",
        ),
        (
            format!("RSA key exchange request={small},10001."),
            "fewer than the 2048",
        ),
        (format!("RSA key exchange request={p},10000."), "even"),
        (format!("RSA key exchange request={p},1."), "below 3"),
        (
            format!("RSA key exchange request={},3.", "e".repeat(512)),
            "even",
        ),
        (format!("RSA key exchange request={p},{p}."), "bits"),
        (
            format!("DH key exchange request=2,{p},1."),
            "outside [2, p-2]",
        ),
        (
            format!("DH key exchange request=2,{p},{pm1}."),
            "outside [2, p-2]",
        ),
        (
            format!("DH key exchange request=2,{p},{p}."),
            "outside [2, p-2]",
        ),
        (
            format!("DH key exchange request={pm1},{p},5."),
            "generator g",
        ),
        (
            format!("DH key exchange request=2,{small},5."),
            "fewer than the 2048",
        ),
        (
            format!("DH key exchange request=2,{big},5."),
            "longer than 2048",
        ),
        (
            format!("DH key exchange request=2,{},5.", "f".repeat(512)),
            "safe prime",
        ),
        ("DH key exchange reply=5.".into(), "no DH request"),
        ("RSA key exchange reply=5.".into(), "no RSA request"),
        (
            "RSA key exchange request=ABC,3.".into(),
            "lower-case hex digit",
        ),
    ];
    for (body, why) in cases {
        let mut b = MemoryStore::new(B);
        let Got::Control(o) = route(&mut b, A, &from_a(body.as_bytes()), false) else {
            panic!()
        };
        assert_eq!(o.action, Action::Refused, "{body:.60}");
        assert!(o.reason.contains(why), "{body:.60}: {}", o.reason);
        assert!(b.keys.is_empty() && b.outbox.is_empty() && b.pending.is_empty());
    }
}

#[test]
fn bad_replies_are_refused_and_keep_the_old_key() {
    let (mut a, mut b) = run_exchange(|| Start::Dh(dh::Group::modp(14).unwrap()), Derive::Hardened);
    let old = key_of(&a, B).unwrap();
    // A new RSA request; the "reply" comes with c >= n.
    let kp = rsa::KeyPair::generate(2048).unwrap();
    let n = kp.n();
    let req = initiate(&mut a, B, Start::Rsa(kp), Derive::Hardened, false).unwrap();
    assert!(req.signature().is_signed());
    let bad = exchange::compose(
        &mut b,
        A,
        format!("RSA key exchange reply={n:x}.").as_bytes(),
    )
    .unwrap();
    let Got::Control(o) = route(&mut a, B, &bad.encode(), false) else {
        panic!()
    };
    assert_eq!(o.action, Action::Refused);
    assert!(o.reason.contains("not below n"), "{}", o.reason);
    let bad = exchange::compose(&mut b, A, b"DH key exchange reply=5.").unwrap();
    let Got::Control(o) = route(&mut a, B, &bad.encode(), false) else {
        panic!()
    };
    assert!(o.reason.contains("RSA request, not DH"), "{}", o.reason);
    assert_eq!(key_of(&a, B).unwrap(), old);
    assert!(
        a.pending.contains_key(B),
        "still waiting for the real reply"
    );
    // A second init while one is pending is refused unless replaced.
    let e = initiate(
        &mut a,
        B,
        Start::Dh(dh::Group::modp(14).unwrap()),
        Derive::Hardened,
        false,
    )
    .unwrap_err();
    assert!(e.message.contains("already pending"));
}

#[test]
fn unsigned_or_forwarded_control_messages_are_refused() {
    let (mut a, mut b) = run_exchange(|| Start::Dh(dh::Group::modp(14).unwrap()), Derive::Hardened);
    let old = key_of(&b, A).unwrap();
    // Someone claiming to be A, without the key, asks B for a new key.
    let mut mallory = MemoryStore::new(A);
    let req = initiate(
        &mut mallory,
        B,
        Start::Dh(dh::Group::modp(14).unwrap()),
        Derive::Hardened,
        false,
    )
    .unwrap();
    let Got::Control(o) = route(&mut b, A, &req.encode(), false) else {
        panic!()
    };
    assert_eq!(o.action, Action::Refused);
    assert!(o.reason.contains("must be signed"), "{}", o.reason);
    assert!(o.reason.contains("cmr-keyx forget http"), "{}", o.reason);
    assert_eq!(key_of(&b, A).unwrap(), old);
    assert!(b.outbox.is_empty());
    // A control message that went through a third peer.
    let m = exchange::compose(&mut a, B, b"DH key exchange reply=5.").unwrap();
    let fwd = m
        .prepend(
            &crate::wire::Timestamp::from_unix(1_800_000_000, 0, 0),
            b"http://carol.org/",
        )
        .unwrap();
    let fwd = fwd.encode();
    let mut c = MemoryStore::new("http://dave.net/");
    let Got::Control(o) = route(&mut c, "http://carol.org/", &fwd, false) else {
        panic!()
    };
    assert!(o.reason.contains("one hop"), "{}", o.reason);
}

#[test]
fn rotation_uses_the_old_key_then_the_new_one() {
    let (mut a, mut b) = run_exchange(|| Start::Dh(dh::Group::modp(14).unwrap()), Derive::Hardened);
    let k1 = key_of(&a, B).unwrap();
    let req = initiate(
        &mut a,
        B,
        Start::Rsa(rsa::KeyPair::generate(2048).unwrap()),
        Derive::Hardened,
        false,
    )
    .unwrap();
    // A5.1: signed with the old key
    sign::verify(&req, Scheme::HmacSha256, &k1).unwrap();
    a.outbox.push((B.into(), req.encode()));
    assert_eq!(action(&deliver(&mut a, &mut b, false)), [Action::Replied]);
    let reply = parse(&b.outbox[0].1, &Rules::unchecked_time()).unwrap();
    sign::verify(&reply, Scheme::HmacSha256, &k1).unwrap();
    assert_eq!(action(&deliver(&mut b, &mut a, false)), [Action::KeySet]);
    let k2 = key_of(&a, B).unwrap();
    assert_ne!(k1, k2);
    assert_eq!(key_of(&b, A).unwrap(), k2);
    // The next message is signed with the new key and no longer with the old one.
    let m = exchange::compose(&mut a, B, b"next").unwrap();
    sign::verify(&m, Scheme::HmacSha256, &k2).unwrap();
    assert!(sign::verify(&m, Scheme::HmacSha256, &k1).is_err());
    assert_eq!(route(&mut b, A, &m.encode(), false), Got::Accepted);
}

/// Both peers start at once; the messages cross in every order the network allows.
#[test]
fn simultaneous_exchanges_end_with_equal_keys() {
    for keyed in [false, true] {
        for order in 0..3 {
            let (mut a, mut b) = if keyed {
                run_exchange(|| Start::Dh(dh::Group::modp(14).unwrap()), Derive::Hardened)
            } else {
                pair()
            };
            let ra = initiate(
                &mut a,
                B,
                Start::Dh(dh::Group::modp(14).unwrap()),
                Derive::Hardened,
                false,
            )
            .unwrap();
            let rb = initiate(
                &mut b,
                A,
                Start::Rsa(rsa::KeyPair::generate(2048).unwrap()),
                Derive::Hardened,
                false,
            )
            .unwrap();
            // A is the smaller address: A gives way, B ignores A's request.
            assert!(A < B);
            let (ra, rb) = (ra.encode(), rb.encode());
            let results: Vec<Got> = match order {
                // both requests arrive before any reply
                0 => vec![route(&mut b, A, &ra, false), route(&mut a, B, &rb, false)],
                1 => vec![route(&mut a, B, &rb, false), route(&mut b, A, &ra, false)],
                // A answers B's request, and the reply reaches B before A's request, which
                // then comes too late: refused (unsigned, or signed with the retired key)
                2 => {
                    let x = route(&mut a, B, &rb, false);
                    deliver(&mut a, &mut b, false);
                    vec![x, route(&mut b, A, &ra, false)]
                }
                _ => unreachable!(),
            };
            if order == 0 {
                assert_eq!(action(&results), [Action::Ignored, Action::Replied]);
            }
            for _ in 0..3 {
                deliver(&mut a, &mut b, false);
                deliver(&mut b, &mut a, false);
            }
            let (ka, kb) = (key_of(&a, B), key_of(&b, A));
            assert!(ka.is_some(), "keyed={keyed} order={order}: {results:?}");
            assert_eq!(ka, kb, "keyed={keyed} order={order}: {results:?}");
            assert!(a.pending.is_empty() && b.pending.is_empty());
            signed_message_verifies(&mut a, &mut b);
            signed_message_verifies(&mut b, &mut a);
        }
    }
}

#[test]
fn expired_requests_are_forgotten() {
    let (mut a, mut b) = pair();
    let req = initiate(
        &mut a,
        B,
        Start::Dh(dh::Group::modp(14).unwrap()),
        Derive::Hardened,
        false,
    )
    .unwrap();
    route(&mut b, A, &req.encode(), false);
    a.clock += exchange::DEFAULT_PENDING_TTL + 10;
    let got = deliver(&mut b, &mut a, false);
    let Got::Control(o) = &got[0] else { panic!() };
    assert_eq!(o.action, Action::Refused);
    assert!(a.keys.is_empty() && a.pending.is_empty());
}

#[test]
fn first_contact_policies() {
    let msg =
        |s: &mut MemoryStore| exchange::compose(s, B, b"What is the largest planet?").unwrap();
    // unsigned / refuse
    let (mut a, _) = pair();
    let m = msg(&mut a);
    let r = first_contact(
        &mut a,
        B,
        &m.encode(),
        b"k1",
        FirstContactPolicy::Unsigned,
        Method::Dh,
        14,
    );
    assert_eq!(r.unwrap(), FirstContact::Send);
    let r = first_contact(
        &mut a,
        B,
        &m.encode(),
        b"k1",
        FirstContactPolicy::Refuse,
        Method::Dh,
        14,
    );
    assert_eq!(r.unwrap(), FirstContact::Refused);
    assert!(a.outbox.is_empty() && a.held.is_empty());

    // exchange: held, one request queued, released signed when the reply arrives
    let (mut a, mut b) = pair();
    let m1 = msg(&mut a);
    let m2 = msg(&mut a);
    for (m, k) in [(&m1, b"k1"), (&m2, b"k2")] {
        let r = first_contact(
            &mut a,
            B,
            &m.encode(),
            k,
            FirstContactPolicy::Exchange,
            Method::Rsa,
            14,
        );
        assert_eq!(r.unwrap(), FirstContact::Held);
    }
    assert_eq!(a.outbox.len(), 1, "one request for both messages");
    assert!(a.outbox[0].1.ends_with(b"."));
    assert!(String::from_utf8_lossy(&a.outbox[0].1).contains("DH key exchange request=b,"));
    assert_eq!(a.held.len(), 2);
    deliver(&mut a, &mut b, false);
    // B's reply arrives: the key is set and both held messages go out signed with it.
    let got = deliver(&mut b, &mut a, false);
    assert_eq!(action(&got), [Action::KeySet]);
    assert!(a.held.is_empty());
    assert_eq!(a.outbox.len(), 2);
    let got = deliver(&mut a, &mut b, false);
    assert_eq!(got, [Got::Accepted, Got::Accepted]);
    // With a key, first_contact says send.
    let m3 = msg(&mut a);
    let r = first_contact(
        &mut a,
        B,
        &m3.encode(),
        b"k3",
        FirstContactPolicy::Exchange,
        Method::Dh,
        14,
    );
    assert_eq!(r.unwrap(), FirstContact::Send);

    // A spare RSA pair is used for RSA first contact.
    let (mut a, _) = pair();
    a.spare.push(rsa::KeyPair::generate(2048).unwrap());
    let m = msg(&mut a);
    first_contact(
        &mut a,
        B,
        &m.encode(),
        b"k",
        FirstContactPolicy::Exchange,
        Method::Rsa,
        14,
    )
    .unwrap();
    assert!(a.spare.is_empty());
    assert!(a.outbox[0].1.windows(4).any(|w| w == b"RSA "));
}

#[test]
fn custom_groups_are_checked_once() {
    let p14 = dh::Group::modp(14).unwrap().p;
    let custom = dh::Group {
        g: BigUint::from(5u32),
        p: p14.clone(),
    };
    assert!(custom.known_id().is_none());
    let (_, b) = run_exchange(|| Start::Dh(custom.clone()), Derive::Hardened);
    assert_eq!(b.groups.get(&custom.digest()), Some(&true));

    // An odd p with no small factor in p or (p-1)/2 that is not a safe prime.
    let mut x = (BigUint::one() << 2047u32) + 1u32;
    let fake = loop {
        let q: BigUint = &x >> 1u32;
        if q.bit(0)
            && dh::SMALL_PRIMES
                .iter()
                .all(|&s| &x % s != BigUint::from(0u32) && &q % s != BigUint::from(0u32))
            && !dh::is_probable_prime(&q, 2)
        {
            break x;
        }
        x += 2u32;
    };
    let body = format!("DH key exchange request=2,{fake:x},5.");
    let mut b = MemoryStore::new(B);
    for _ in 0..2 {
        let Got::Control(o) = route(&mut b, A, &from_a(body.as_bytes()), false) else {
            panic!()
        };
        assert_eq!(o.action, Action::Refused);
        assert!(o.reason.contains("not a safe prime"), "{}", o.reason);
    }
    assert_eq!(b.groups.len(), 1);
    assert!(b.keys.is_empty());
    // Larger custom groups than the limit are refused by size alone.
    let big = format!(
        "DH key exchange request=2,{:x},5.",
        (BigUint::one() << 5000u32) + 1u32
    );
    let Got::Control(o) = route(&mut b, A, &from_a(big.as_bytes()), false) else {
        panic!()
    };
    assert!(
        o.reason.contains("more than the 4096 allowed"),
        "{}",
        o.reason
    );
}

#[test]
fn signed_control_message_without_a_key_is_refused() {
    let (mut a, _) = run_exchange(|| Start::Dh(dh::Group::modp(14).unwrap()), Derive::Hardened);
    let req = initiate(
        &mut a,
        B,
        Start::Dh(dh::Group::modp(14).unwrap()),
        Derive::Hardened,
        false,
    )
    .unwrap();
    assert!(req.signature().is_signed());
    // B lost its key: it cannot check the signature, so it does not answer.
    let mut b = MemoryStore::new(B);
    let o = receive(&mut b, A, &req, false, false).unwrap();
    assert_eq!(o.action, Action::Refused);
    assert!(o.reason.contains("cannot be checked"), "{}", o.reason);
    assert!(b.keys.is_empty() && b.outbox.is_empty());
}
