//! From an exchanged secret to the signing key (A5, plus the hardened derivation).
//!
//! A5 leaves the conversion of the exchanged number k into signing-key bytes implicit; A5.3
//! says a key "is converted into bytes (two digits per byte)". Two modes, chosen per peer:
//!
//! - `spec`: the secret as is: RSA k's big-endian bytes, the DH shared value's big-endian
//!   bytes (both minimal, no leading zero bytes), the clear key's bytes.
//! - `hardened` (default): HKDF-SHA-256 (RFC 5869) over those same bytes, with salt
//!   `cmr-v1-key-exchange` and info `"cmr" 0x00 label 0x00 min(local,peer) 0x00
//!   max(local,peer)` (label `rsa`, `dh` or `clear`; addresses compared bytewise), giving 32
//!   bytes. This binds the key to the pair of peers and to the method, turns the structured
//!   values RSA and DH produce (a group element, a textbook-RSA plaintext) into a uniform key,
//!   and keeps the raw secret out of every signature computed afterwards.
//!
//! Both peers must use the same mode: it is not carried on the wire.

use crate::sign::Key;
use hkdf::Hkdf;
use sha2::Sha256;
use std::fmt;
use std::str::FromStr;

/// HKDF salt of the hardened derivation.
pub const SALT: &[u8] = b"cmr-v1-key-exchange";

/// How an exchanged secret becomes the signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Derive {
    /// The exchanged secret's bytes as the key (interoperable with peers that speak only A5).
    Spec,
    /// HKDF-SHA-256 bound to both addresses and the method.
    #[default]
    Hardened,
}

impl Derive {
    pub fn as_str(&self) -> &'static str {
        match self {
            Derive::Spec => "spec",
            Derive::Hardened => "hardened",
        }
    }
}

impl fmt::Display for Derive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Derive {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "spec" => Ok(Derive::Spec),
            "hardened" => Ok(Derive::Hardened),
            _ => Err(format!(
                "unknown key derivation '{s}' (expected spec or hardened)"
            )),
        }
    }
}

/// The exchange method, also the HKDF label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// A5.1
    Rsa,
    /// A5.2
    Dh,
    /// A5.3
    Clear,
}

impl Method {
    pub fn label(&self) -> &'static str {
        match self {
            Method::Rsa => "rsa",
            Method::Dh => "dh",
            Method::Clear => "clear",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rsa" => Ok(Method::Rsa),
            "dh" => Ok(Method::Dh),
            "clear" => Ok(Method::Clear),
            _ => Err(format!(
                "unknown key exchange method '{s}' (expected rsa, dh or clear)"
            )),
        }
    }
}

/// The HKDF info string: `"cmr" 0x00 label 0x00 min(local,peer) 0x00 max(local,peer)`.
pub fn info(method: Method, local: &[u8], peer: &[u8]) -> Vec<u8> {
    let (lo, hi) = if local <= peer {
        (local, peer)
    } else {
        (peer, local)
    };
    let mut v = b"cmr\0".to_vec();
    v.extend_from_slice(method.label().as_bytes());
    v.push(0);
    v.extend_from_slice(lo);
    v.push(0);
    v.extend_from_slice(hi);
    v
}

/// The signing key from the exchanged secret `ikm` (see the module notes for the byte forms).
pub fn derive(mode: Derive, method: Method, ikm: &[u8], local: &[u8], peer: &[u8]) -> Key {
    match mode {
        Derive::Spec => Key::new(ikm.to_vec()),
        Derive::Hardened => {
            let hk = Hkdf::<Sha256>::new(Some(SALT), ikm);
            let mut okm = [0u8; 32];
            // 32 bytes is far below HKDF-SHA-256's limit of 255 * 32.
            hk.expand(&info(method, local, peer), &mut okm)
                .expect("32 bytes is a valid HKDF-SHA-256 output length");
            let k = Key::new(okm.to_vec());
            okm.iter_mut().for_each(|b| *b = 0);
            k
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardened_check_vector() {
        // clear key "foo", local http://bob.com/, peer http://alice.com/cmr
        let k = derive(
            Derive::Hardened,
            Method::Clear,
            b"foo",
            b"http://bob.com/",
            b"http://alice.com/cmr",
        );
        assert_eq!(
            k.to_hex(),
            "83ceb0bb34bd3e8c2e7680834a6fa91752f3f32459ca0045d15f6d601f1fd7d5"
        );
        // Symmetric in the two addresses: both peers derive the same key.
        let k2 = derive(
            Derive::Hardened,
            Method::Clear,
            b"foo",
            b"http://alice.com/cmr",
            b"http://bob.com/",
        );
        assert_eq!(k, k2);
    }

    #[test]
    fn label_and_mode_matter() {
        let a = derive(Derive::Hardened, Method::Rsa, b"foo", b"a", b"b");
        let b = derive(Derive::Hardened, Method::Dh, b"foo", b"a", b"b");
        assert_ne!(a, b);
        assert_eq!(
            derive(Derive::Spec, Method::Dh, b"foo", b"a", b"b").bytes(),
            b"foo"
        );
        assert_eq!(info(Method::Dh, b"z", b"a"), b"cmr\0dh\0a\0z".to_vec());
    }
}
