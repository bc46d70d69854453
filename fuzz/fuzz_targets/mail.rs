//! `cmr-recv --mail`: arbitrary bytes as an RFC 5322 mail. Extraction never panics, and
//! what it extracts is one whole A2 message.
#![no_main]

use cmr::transport::mail;
use cmr::wire::{self, Rules};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rules = Rules::unchecked_time();
    if let Ok(m) = mail::extract(data, &rules) {
        let parsed = wire::parse(&m, &rules).expect("an extracted message parses");
        assert_eq!(parsed.encode(), m);
    }
    let _ = mail::is_mail_safe(data);
});
