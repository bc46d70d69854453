//! Signatures (A2, Section 4): keys are shared per pair of peers, signatures are hop by hop.
//!
//! Two schemes, chosen per peer:
//! - `sha256`: the spec's `SHA-256(k | header | body)`. It verifies the Appendix A example
//!   (key "foo"). Being a plain hash of key and data it is open to length extension, so it is
//!   for interoperability with peers that speak only the spec.
//! - `hmac-sha256`: RFC 2104 HMAC over the same bytes. The default for new peers.
//!
//! "header | body" is every byte after the signature line (`Message::payload`).

use crate::wire::{Message, Signature};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use subtle::ConstantTimeEq;

/// A signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// A2: SHA-256(k | header | body).
    Sha256,
    /// HMAC-SHA-256(k, header | body).
    #[default]
    HmacSha256,
}

impl Scheme {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scheme::Sha256 => "sha256",
            Scheme::HmacSha256 => "hmac-sha256",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "sha256" | "spec" => Ok(Scheme::Sha256),
            "hmac-sha256" | "hmac" => Ok(Scheme::HmacSha256),
            _ => Err(format!(
                "unknown signature scheme '{s}' (expected sha256 or hmac-sha256)"
            )),
        }
    }
}

/// A shared key: any number of bytes (A2 "kab may be of any length").
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Key {
        Key(bytes.into())
    }
    /// From hex as A5.3 writes keys ("666f6f" is "foo").
    pub fn from_hex(s: &str) -> Result<Key, String> {
        crate::wire::unhex(s)
            .map(Key)
            .ok_or_else(|| "key is not an even number of hex digits".to_string())
    }
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn to_hex(&self) -> String {
        crate::wire::hex(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes)", self.0.len())
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // A wipe the optimiser cannot remove.
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// The 32-byte signature of a payload.
pub fn digest(scheme: Scheme, key: &Key, payload: &[u8]) -> [u8; 32] {
    match scheme {
        Scheme::Sha256 => {
            // A2: "no bytes are placed after the key before the routing header"
            let mut h = Sha256::new();
            h.update(key.bytes());
            h.update(payload);
            h.finalize().into()
        }
        Scheme::HmacSha256 => {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key.bytes())
                .expect("HMAC takes keys of any length");
            m.update(payload);
            m.finalize().into_bytes().into()
        }
    }
}

/// Sign (or re-sign) a message.
pub fn sign(msg: Message, scheme: Scheme, key: &Key) -> Message {
    let d = digest(scheme, key, msg.payload());
    msg.with_signature(Signature::Signed(d))
}

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// The message is unsigned (`0`), and a signature was required.
    Unsigned,
    /// The hash does not match the key and scheme.
    Mismatch,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Unsigned => write!(f, "message is unsigned (signature line '0')"),
            VerifyError::Mismatch => write!(
                f,
                "signature does not match: wrong key, wrong scheme, or the message was altered"
            ),
        }
    }
}

impl std::error::Error for VerifyError {}

impl From<VerifyError> for crate::exit::Failure {
    fn from(e: VerifyError) -> Self {
        crate::exit::Failure::perm(format!("signature refused: {e}"))
    }
}

/// Verify in constant time. A3: "If the message is signed, then it should compute the
/// signature and reject it if it does not match."
pub fn verify(msg: &Message, scheme: Scheme, key: &Key) -> Result<(), VerifyError> {
    match msg.signature() {
        Signature::Unsigned => Err(VerifyError::Unsigned),
        Signature::Signed(h) => {
            let want = digest(scheme, key, msg.payload());
            if bool::from(want.ct_eq(h)) {
                Ok(())
            } else {
                Err(VerifyError::Mismatch)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{parse, Rules};

    const SPEC: &[u8] = b"101c1ad32d6fe646a56edba43bd342ee11e45ba188c59aeec91a5590a0ea114d5\r\n2008/09/01 00:00:53.42 http://alice.com/cmr\r\n2008/09/01 00:00:53 udp://192.168.0.102:53/dns-tunnel\r\n2008/08/31 23:59:01.0955 https://www.charlie.com/messages.pl\r\n\r\n14\r\nHello World!\r\n";

    #[test]
    fn appendix_a_example_verifies_with_foo() {
        let m = parse(SPEC, &Rules::default()).unwrap();
        let k = Key::from_hex("666f6f").unwrap();
        assert_eq!(verify(&m, Scheme::Sha256, &k), Ok(()));
        assert_eq!(
            verify(&m, Scheme::HmacSha256, &k),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(&m, Scheme::Sha256, &Key::new("fop")),
            Err(VerifyError::Mismatch)
        );
        let resigned = sign(
            m.clone().with_signature(Signature::Unsigned),
            Scheme::Sha256,
            &k,
        );
        assert_eq!(resigned.encode(), SPEC);
    }
}
