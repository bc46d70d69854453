//! Generated A2 messages: encode/parse round trips, streams, and mutations that must never
//! make the parser panic.

use cmr::wire::{self, Reader, Rules, Timestamp};
use proptest::prelude::*;

/// A timestamp text between 0000/01/01 and 2023, with a fraction written in one of the
/// allowed ways (none, a bare point, any number of digits, trailing zeros).
fn timestamp() -> impl Strategy<Value = String> {
    (
        -62_167_219_200i64..1_700_000_000,
        prop_oneof![
            Just(String::new()),
            Just(".".to_string()),
            "\\.[0-9]{1,30}",
            "\\.[0-9]{0,3}0{1,5}",
        ],
    )
        .prop_map(|(s, f)| format!("{}{f}", Timestamp::from_unix(s, 0, 0).as_str()))
}

fn address() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        1..40,
    )
}

#[derive(Debug, Clone)]
struct Gen {
    signature: Option<[u8; 32]>,
    ids: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Gen {
    fn bytes(&self) -> Vec<u8> {
        let mut v = match &self.signature {
            None => b"0\r\n".to_vec(),
            Some(h) => format!("1{}\r\n", wire::hex(h)).into_bytes(),
        };
        for (t, a) in &self.ids {
            v.extend_from_slice(t.as_bytes());
            v.push(b' ');
            v.extend_from_slice(a);
            v.extend_from_slice(b"\r\n");
        }
        v.extend_from_slice(format!("\r\n{}\r\n", self.body.len()).as_bytes());
        v.extend_from_slice(&self.body);
        v
    }
}

/// A valid message: timestamps strictly descending (equal instants removed), addresses
/// distinct.
fn message() -> impl Strategy<Value = Gen> {
    (
        prop::option::of(any::<[u8; 32]>()),
        prop::collection::vec(timestamp(), 1..8),
        prop::collection::vec(address(), 1..8),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(signature, ts, mut addrs, body)| {
            let mut ts: Vec<(Timestamp, String)> = ts
                .into_iter()
                .map(|t| (Timestamp::parse(t.as_bytes()).unwrap(), t))
                .collect();
            ts.sort_by(|a, b| b.0.cmp(&a.0));
            ts.dedup_by(|a, b| a.0 == b.0);
            addrs.sort();
            addrs.dedup();
            let ids = ts.into_iter().map(|(_, t)| t).zip(addrs).collect();
            Gen {
                signature,
                ids,
                body,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_messages_round_trip(g in message()) {
        let bytes = g.bytes();
        let m = wire::parse(&bytes, &Rules::default())
            .map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(m.encode(), bytes.clone());
        prop_assert_eq!(m.encoded_len(), bytes.len());
        prop_assert_eq!(m.body(), &g.body[..]);
        prop_assert_eq!(m.ids().len(), g.ids.len());
        for (id, (t, a)) in m.ids().zip(&g.ids) {
            prop_assert_eq!(id.timestamp, t.as_str());
            prop_assert_eq!(id.address, &a[..]);
        }
        prop_assert_eq!(m.signature().is_signed(), g.signature.is_some());
        let (p, used) = wire::parse_prefix(&bytes, &Rules::default()).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(p, m);
    }

    #[test]
    fn concatenated_messages_split_back(gs in prop::collection::vec(message(), 1..6)) {
        let parts: Vec<Vec<u8>> = gs.iter().map(Gen::bytes).collect();
        let stream = parts.concat();
        // Through the stream reader, fed in small pieces.
        let reader = std::io::BufReader::with_capacity(7, &stream[..]);
        let got: Vec<Vec<u8>> = Reader::new(reader, Rules::default())
            .map(|m| m.map(|m| m.encode()).map_err(|e| TestCaseError::fail(format!("{e}"))))
            .collect::<Result<_, _>>()?;
        prop_assert_eq!(&got, &parts);
        // Through parse_prefix.
        let mut rest = &stream[..];
        let mut n = 0;
        while !rest.is_empty() {
            let (m, used) = wire::parse_prefix(rest, &Rules::default()).unwrap();
            prop_assert_eq!(m.encode(), parts[n].clone());
            rest = &rest[used..];
            n += 1;
        }
        prop_assert_eq!(n, parts.len());
    }

    #[test]
    fn mutations_never_panic(
        g in message(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>()), 1..6),
    ) {
        let mut b = g.bytes();
        for (at, kind, byte) in edits {
            if b.is_empty() {
                break;
            }
            let i = at.index(b.len());
            match kind {
                0 => b[i] = byte,
                1 => b.insert(i, byte),
                2 => { b.remove(i); }
                _ => b.truncate(i),
            }
        }
        for rules in [Rules::default(), Rules::unchecked_time()] {
            if let Ok(m) = wire::parse(&b, &rules) {
                prop_assert_eq!(m.encode(), b.clone());
            }
            if let Ok((m, used)) = wire::parse_prefix(&b, &rules) {
                prop_assert_eq!(m.encode(), b[..used].to_vec());
            }
            for item in Reader::new(&b[..], rules.clone()) {
                if item.is_err() {
                    break;
                }
            }
        }
    }

    #[test]
    fn timestamp_parser_never_panics(b in prop::collection::vec(any::<u8>(), 0..40)) {
        if let Ok(t) = Timestamp::parse(&b) {
            prop_assert_eq!(t.as_str().as_bytes(), &b[..]);
        }
    }

    #[test]
    fn timestamp_order_matches_the_instant(
        a in -62_167_219_200i64..253_402_300_799, an in 0u32..1_000_000_000,
        b in -62_167_219_200i64..253_402_300_799, bn in 0u32..1_000_000_000,
    ) {
        let ta = Timestamp::from_unix(a, an, 9);
        let tb = Timestamp::from_unix(b, bn, 9);
        prop_assert_eq!(ta.cmp(&tb), (a, an).cmp(&(b, bn)));
        let pa = Timestamp::parse(ta.as_str().as_bytes()).unwrap();
        prop_assert_eq!((pa.unix_secs(), pa.subsec_nanos()), (a, an));
    }
}
