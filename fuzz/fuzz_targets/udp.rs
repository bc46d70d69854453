//! `cmr-recv --udp`: arbitrary bytes as one datagram (`tag LF message`, A4.4). Unframing
//! never panics, returns a suffix of the datagram, and undoes `frame`.
#![no_main]

use cmr::transport::udp::{self, ReceiveOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for tag in [None, Some("cmr".to_string())] {
        let opts = ReceiveOptions {
            tag,
            max_datagram: 4096,
            ..ReceiveOptions::default()
        };
        if let Ok(m) = udp::unframe(data, &opts) {
            assert!(data.ends_with(m));
            assert!(m.len() < data.len());
        }
    }
    if let Ok(f) = udp::frame("cmr", data) {
        let opts = ReceiveOptions {
            tag: Some("cmr".into()),
            max_datagram: usize::MAX,
            ..ReceiveOptions::default()
        };
        assert_eq!(udp::unframe(&f, &opts).expect("our frame unframes"), data);
    }
});
