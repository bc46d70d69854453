//! A5.1 RSA key exchange.
//!
//! "Alice generates a one time RSA key and sends a message to Bob with her public key. Bob
//! replies by choosing a random key, encrypting it with her public key and sending it to
//! Alice." The encryption is the spec's `c = k^e mod n`: textbook RSA, no padding. Textbook
//! RSA is deterministic and malleable, and a short k under a small e is recovered by an
//! integer e-th root when `k^e < n` (with e = 3 and a 32-byte k, `k^3` has 768 bits and
//! never wraps a 2048-bit n). So the responder does not pick a short k: k is a uniformly
//! random integer of bit length `bits(n) - 1` (top bit set), which is below n and makes
//! `k^e` wrap n for every e >= 3. The hardened derivation then hashes k together with both
//! addresses, so the signing key is uniform, bound to the pair, and never the raw RSA value.
//!
//! Limits on a peer's public key (refused with a reason, no key change): n of 2048 to 8192
//! bits and odd, with no prime factor below 1000; e odd, `3 <= e < n`, at most 256 bits
//! (bounds the cost of `k^e mod n` a stranger can make us spend). Replies: `2 <= c < n`.

use super::Refusal;
use num_bigint::{BigUint, RandBigInt};
use num_traits::{One, ToPrimitive, Zero};
use rand::rngs::OsRng;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};

/// Smallest accepted modulus, bits.
pub const MIN_BITS: u64 = 2048;
/// Largest accepted modulus, bits.
pub const MAX_BITS: u64 = 8192;
/// Largest accepted public exponent, bits.
pub const MAX_E_BITS: u64 = 256;
/// Size of the one-time key pairs we generate.
pub const DEFAULT_BITS: usize = 2048;

/// A one-time key pair, kept in the state file between request and reply.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct KeyPair {
    /// hex
    pub n: String,
    pub e: String,
    pub d: String,
    pub p: String,
    pub q: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair({} hex digits of n)", self.n.len())
    }
}

fn to_dig(x: &BigUint) -> rsa::BigUint {
    rsa::BigUint::from_bytes_be(&x.to_bytes_be())
}
fn from_dig(x: &rsa::BigUint) -> BigUint {
    BigUint::from_bytes_be(&x.to_bytes_be())
}
fn hexnum(s: &str) -> Option<BigUint> {
    BigUint::parse_bytes(s.as_bytes(), 16)
}

impl KeyPair {
    /// A fresh one-time key pair of `bits` bits with e = 65537. Takes from tens of
    /// milliseconds to a few seconds (prime search); the router never calls this while
    /// handling a message (it answers RSA requests without generating anything, and starts
    /// exchanges of its own with DH or a key pair generated ahead of time).
    pub fn generate(bits: usize) -> Result<KeyPair, Refusal> {
        let k = rsa::RsaPrivateKey::new(&mut OsRng, bits)
            .map_err(|e| Refusal::new(format!("RSA key generation failed: {e}")))?;
        let pr = k.primes();
        Ok(KeyPair {
            n: format!("{:x}", from_dig(k.n())),
            e: format!("{:x}", from_dig(k.e())),
            d: format!("{:x}", from_dig(k.d())),
            p: format!("{:x}", from_dig(&pr[0])),
            q: format!("{:x}", from_dig(&pr[1])),
        })
    }

    pub fn n(&self) -> BigUint {
        hexnum(&self.n).unwrap_or_default()
    }
    pub fn e(&self) -> BigUint {
        hexnum(&self.e).unwrap_or_default()
    }

    /// A5.1 "Alice then computes key k = c^d (mod n)": k's big-endian bytes.
    /// CRT with blinding (the rsa crate's raw decryption), and a check that the result
    /// encrypts back to c.
    pub fn recover(&self, c: &BigUint) -> Result<Vec<u8>, Refusal> {
        let n = self.n();
        check_reply(c, &n)?;
        let parts =
            [&self.n, &self.e, &self.d, &self.p, &self.q].map(|h| hexnum(h).map(|x| to_dig(&x)));
        let [Some(n_), Some(e_), Some(d_), Some(p_), Some(q_)] = parts else {
            return Err(Refusal::new("stored RSA key pair is damaged"));
        };
        let key = rsa::RsaPrivateKey::from_components(n_, e_, d_, vec![p_, q_])
            .map_err(|e| Refusal::new(format!("stored RSA key pair is invalid: {e}")))?;
        let k = rsa::hazmat::rsa_decrypt_and_check(&key, Some(&mut OsRng), &to_dig(c))
            .map_err(|e| Refusal::new(format!("RSA reply does not decrypt: {e}")))?;
        Ok(from_dig(&k).to_bytes_be())
    }
}

/// Refuse a weak or abusive public key (checks sizes before anything costly).
pub fn check_public(n: &BigUint, e: &BigUint) -> Result<(), Refusal> {
    let bits = n.bits();
    if bits < MIN_BITS {
        return Err(Refusal::new(format!(
            "RSA modulus n has {bits} bits, fewer than the {MIN_BITS} required"
        )));
    }
    if bits > MAX_BITS {
        return Err(Refusal::new(format!(
            "RSA modulus n has {bits} bits, more than the {MAX_BITS} allowed"
        )));
    }
    if !n.bit(0) {
        return Err(Refusal::new("RSA modulus n is even"));
    }
    if let Some(f) = small_factor(n) {
        return Err(Refusal::new(format!(
            "RSA modulus n has the small factor {f}"
        )));
    }
    if e.bits() > MAX_E_BITS {
        return Err(Refusal::new(format!(
            "RSA exponent e has {} bits, more than the {MAX_E_BITS} allowed",
            e.bits()
        )));
    }
    if e < &BigUint::from(3u32) {
        return Err(Refusal::new("RSA exponent e is below 3"));
    }
    if !e.bit(0) {
        return Err(Refusal::new("RSA exponent e is even"));
    }
    if e >= n {
        return Err(Refusal::new("RSA exponent e is not below n"));
    }
    Ok(())
}

/// Refuse a reply outside `[2, n-1]`.
pub fn check_reply(c: &BigUint, n: &BigUint) -> Result<(), Refusal> {
    if c >= n {
        return Err(Refusal::new("RSA reply c is not below n"));
    }
    if c <= &BigUint::one() {
        return Err(Refusal::new("RSA reply c is 0 or 1"));
    }
    Ok(())
}

fn small_factor(n: &BigUint) -> Option<u32> {
    super::dh::SMALL_PRIMES
        .iter()
        .copied()
        .find(|&p| (n % p).is_zero() && n != &BigUint::from(p))
}

/// The responder's side: a random secret k (see the module notes for its size) and
/// `c = k^e mod n`. Returns (k's big-endian bytes, c). `check_public` must have passed.
pub fn respond(n: &BigUint, e: &BigUint) -> (Vec<u8>, BigUint) {
    let bits = n.bits();
    // k in [2^(bits-2), 2^(bits-1)): below n, and k^e wraps n for every e >= 3.
    let top = BigUint::one() << (bits - 2);
    let k = OsRng.gen_biguint_below(&top) + &top;
    let c = k.modpow(e, n);
    debug_assert!(k.to_u64().is_none());
    (k.to_bytes_be(), c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_round_trips_a_secret() {
        let kp = KeyPair::generate(2048).unwrap();
        let (n, e) = (kp.n(), kp.e());
        assert_eq!(n.bits(), 2048);
        check_public(&n, &e).unwrap();
        let (k, c) = respond(&n, &e);
        assert_eq!(BigUint::from_bytes_be(&k).bits(), 2047);
        assert_eq!(kp.recover(&c).unwrap(), k);
        assert!(kp.recover(&n).is_err());
    }

    #[test]
    fn weak_public_keys_are_refused() {
        let e3 = BigUint::from(3u32);
        let e = BigUint::from(65537u32);
        let why = |n: &BigUint, e: &BigUint| check_public(n, e).unwrap_err().to_string();
        // 2^2047 + 1 is divisible by 3
        let n = (BigUint::one() << 2047u32) + 1u32;
        assert!(why(&n, &e).contains("small factor 3"));
        let short = (BigUint::one() << 2046u32) + 1u32;
        assert!(why(&short, &e3).contains("2047 bits"));
        let big = (BigUint::one() << 8192u32) + 1u32;
        assert!(why(&big, &e3).contains("more than"));
        let even = BigUint::one() << 2047u32;
        assert!(why(&even, &e3).contains("even"));
        // A 2048-bit odd number without small factors: the MODP group 14 prime.
        let n = crate::keyx::dh::Group::modp(14).unwrap().p;
        check_public(&n, &e).unwrap();
        assert!(why(&n, &BigUint::from(65536u32)).contains("even"));
        assert!(why(&n, &BigUint::one()).contains("below 3"));
        assert!(why(&n, &(&n + 2u32)).contains("bits"));
        assert!(why(&n, &(BigUint::one() << 300u32 | BigUint::one())).contains("301 bits"));
        assert!(check_reply(&n, &n).is_err());
        assert!(check_reply(&BigUint::one(), &n).is_err());
    }
}
