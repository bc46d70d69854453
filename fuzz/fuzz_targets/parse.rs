//! Arbitrary bytes into every A2 entry point: none may panic, and whatever parses must
//! encode back to exactly the bytes it came from.
#![no_main]

use cmr::wire::{self, Limits, Now, Reader, Rules, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A fixed "now" keeps runs reproducible; small limits reach the limit paths too.
    let now = Timestamp::parse(b"2030/01/01 00:00:00").expect("valid timestamp");
    let rules = Rules {
        now: Now::Fixed(now),
        ..Rules::default()
    };
    let tight = Rules {
        limits: Limits {
            max_message_bytes: 200,
            max_header_lines: 3,
            max_line_bytes: 64,
        },
        now: Now::Unchecked,
        skew_secs: 5,
        own_addresses: vec![b"http://a.example/".to_vec()],
    };

    for r in [&rules, &tight] {
        if let Ok(m) = wire::parse(data, r) {
            assert_eq!(m.encode(), data);
            assert_eq!(m.encoded_len(), data.len());
            let _ = (
                m.sender(),
                m.origin(),
                m.ids().count(),
                m.body(),
                m.header_bytes(),
            );
            for id in m.ids() {
                let _ = id.key();
            }
        }

        let mut rest = data;
        while let Ok((m, used)) = wire::parse_prefix(rest, r) {
            assert!(used > 0 && used <= rest.len());
            assert_eq!(m.encode(), &rest[..used]);
            rest = &rest[used..];
        }

        // The stream reader must agree with parse_prefix on every message it returns.
        let mut off = 0;
        for item in Reader::new(data, r.clone()) {
            match item {
                Ok(m) => {
                    let e = m.encode();
                    assert_eq!(&data[off..off + e.len()], &e[..]);
                    off += e.len();
                }
                Err(_) => break,
            }
        }
    }

    if let Ok(t) = Timestamp::parse(data) {
        assert_eq!(t.as_str().as_bytes(), data);
        let c = Timestamp::parse(t.canonical().as_bytes()).expect("canonical form parses");
        assert_eq!(c, t);
        let _ = (t.unix_secs(), t.subsec_nanos());
    }
});
