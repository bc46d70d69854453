//! A5 key-exchange bodies: arbitrary bytes as a message body. `is_control` never panics;
//! whatever parses is recognised as a control message, and its canonical form (what we
//! send: no leading zeros) parses back to the same value and formats to itself.
#![no_main]

use cmr::keyx::{is_control, Control};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let control = is_control(data);
    if let Ok(c) = Control::parse(data) {
        assert!(control, "a parsed control body is a control message");
        let f = c.format();
        let again = Control::parse(f.as_bytes()).expect("our own format parses");
        assert!(again == c, "same value");
        assert_eq!(again.format(), f);
        assert_eq!(again.kind(), c.kind());
    }
});
