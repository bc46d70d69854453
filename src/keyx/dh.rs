//! A5.2 Diffie-Hellman key exchange.
//!
//! "Alice chooses a secret number, a, a large prime number p, and a primitive root g of p.
//! Alice computes A = g^a (mod p) and sends ... `DH key exchange request=g,p,A.` ... Bob
//! chooses a secret number, b, computes B = g^b (mod p) and replies ... `DH key exchange
//! reply=B.` Alice and Bob then agree to use key k = B^a (mod p) = A^b (mod p)."
//!
//! Our requests use the RFC 3526 MODP groups 14 (2048-bit, the default), 15 (3072) or 16
//! (4096), embedded below. Safe primes are never generated on the fly. RFC 3526 names g = 2,
//! but for these primes (p = 7 mod 8) 2 is a quadratic residue and generates only the
//! subgroup of prime order q = (p-1)/2, so it is not "a primitive root g of p" as A5.2 asks
//! (and the other implementation refuses it: "DH generator must be a primitive root of p").
//! We send the smallest primitive root instead: 11 for group 14, 5 for groups 15 and 16
//! (`PRIMITIVE_ROOT`; checked by a test: for a safe prime p = 2q+1, g is a primitive root iff
//! g^2 != 1 and g^q != 1 mod p). A peer's request with g = 2 or with the primitive root over
//! an embedded p is still treated as that known group.
//!
//! A peer's group is checked as follows (refused with a reason, no key change):
//! - a known group (the p of 14, 15 or 16, compared exactly, with g = 2 or our primitive root)
//!   is accepted without further work;
//! - otherwise p must have at least 2048 bits and at most `max_bits` (setting
//!   `keyx_dh_custom_max_bits`, default 4096, at most 8192); neither p nor q = (p-1)/2 may
//!   have a prime factor below 1000; q must pass Miller-Rabin with base 2 and 12 random bases
//!   (error below 2^-24 even for a composite chosen to fool it; a peer gains nothing from
//!   fooling it, since a peer can always leak its own key); then p is proven prime given q by
//!   Pocklington's criterion (q > sqrt(p), 2^(p-1) = 1 mod p and 2^2 != 1 mod p), one
//!   exponentiation instead of a second Miller-Rabin series. The cost of a custom group
//!   grows with the cube of its size: `cargo bench --bench keyx` prints it. The default
//!   limit keeps it near a second while the router holds its write transaction; the result
//!   for each group is remembered in the state file so a group is checked once;
//! - g must lie in [2, p-2]. For a safe prime p = 2q+1 every such g has order q or 2q (the
//!   only elements of order 1 and 2 are 1 and p-1), so the range check is exactly "g
//!   generates the prime-order subgroup or is a primitive root"; both are accepted.
//! - A (and B in a reply) must lie in [2, p-2]: for a safe prime that excludes the small
//!   subgroups {1} and {1, p-1}, so the shared value cannot be confined to a small set.
//!
//! Private exponents are drawn from the operating system's CSPRNG with at least 256 bits
//! (more for larger groups: 320 bits from 3072-bit p, 384 from 4096, 512 from 6144).

use super::Refusal;
use num_bigint::{BigUint, RandBigInt};
use num_traits::{One, Zero};
use rand::rngs::OsRng;

/// Smallest accepted prime, bits.
pub const MIN_BITS: u64 = 2048;
/// Largest accepted prime, bits.
pub const MAX_BITS: u64 = 8192;
/// Default largest custom (not embedded) prime accepted, bits.
pub const DEFAULT_CUSTOM_MAX_BITS: u64 = 4096;
/// Miller-Rabin rounds with random bases for q = (p-1)/2 of a custom group (after base 2).
pub const MR_ROUNDS: usize = 12;

/// Odd primes below 1000, for trial division.
pub const SMALL_PRIMES: &[u32] = &[
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173, 179, 181, 191, 193,
    197, 199, 211, 223, 227, 229, 233, 239, 241, 251, 257, 263, 269, 271, 277, 281, 283, 293, 307,
    311, 313, 317, 331, 337, 347, 349, 353, 359, 367, 373, 379, 383, 389, 397, 401, 409, 419, 421,
    431, 433, 439, 443, 449, 457, 461, 463, 467, 479, 487, 491, 499, 503, 509, 521, 523, 541, 547,
    557, 563, 569, 571, 577, 587, 593, 599, 601, 607, 613, 617, 619, 631, 641, 643, 647, 653, 659,
    661, 673, 677, 683, 691, 701, 709, 719, 727, 733, 739, 743, 751, 757, 761, 769, 773, 787, 797,
    809, 811, 821, 823, 827, 829, 839, 853, 857, 859, 863, 877, 881, 883, 887, 907, 911, 919, 929,
    937, 941, 947, 953, 967, 971, 977, 983, 991, 997,
];

/// RFC 3526 group 14 (2048-bit MODP), p in hex; we send g = 11.
pub const MODP_14: &[&str] = &[
    "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74",
    "020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f1437",
    "4fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7ed",
    "ee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf05",
    "98da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb",
    "9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3b",
    "e39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf695581718",
    "3995497cea956ae515d2261898fa051015728e5a8aacaa68ffffffffffffffff",
];

/// RFC 3526 group 15 (3072-bit MODP), p in hex; we send g = 5.
pub const MODP_15: &[&str] = &[
    "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74",
    "020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f1437",
    "4fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7ed",
    "ee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf05",
    "98da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb",
    "9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3b",
    "e39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf695581718",
    "3995497cea956ae515d2261898fa051015728e5a8aaac42dad33170d04507a33",
    "a85521abdf1cba64ecfb850458dbef0a8aea71575d060c7db3970f85a6e1e4c7",
    "abf5ae8cdb0933d71e8c94e04a25619dcee3d2261ad2ee6bf12ffa06d98a0864",
    "d87602733ec86a64521f2b18177b200cbbe117577a615d6c770988c0bad946e2",
    "08e24fa074e5ab3143db5bfce0fd108e4b82d120a93ad2caffffffffffffffff",
];

/// RFC 3526 group 16 (4096-bit MODP), p in hex; we send g = 5.
pub const MODP_16: &[&str] = &[
    "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74",
    "020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f1437",
    "4fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7ed",
    "ee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf05",
    "98da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb",
    "9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3b",
    "e39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf695581718",
    "3995497cea956ae515d2261898fa051015728e5a8aaac42dad33170d04507a33",
    "a85521abdf1cba64ecfb850458dbef0a8aea71575d060c7db3970f85a6e1e4c7",
    "abf5ae8cdb0933d71e8c94e04a25619dcee3d2261ad2ee6bf12ffa06d98a0864",
    "d87602733ec86a64521f2b18177b200cbbe117577a615d6c770988c0bad946e2",
    "08e24fa074e5ab3143db5bfce0fd108e4b82d120a92108011a723c12a787e6d7",
    "88719a10bdba5b2699c327186af4e23c1a946834b6150bda2583e9ca2ad44ce8",
    "dbbbc2db04de8ef92e8efc141fbecaa6287c59474e6bc05d99b2964fa090c3a2",
    "233ba186515be7ed1f612970cee2d7afb81bdd762170481cd0069127d5b05aa9",
    "93b4ea988d8fddc186ffb7dc90a6c08f4df435c934063199ffffffffffffffff",
];

/// The generator we send with each embedded group: its smallest primitive root (A5.2).
pub const PRIMITIVE_ROOT: [(u32, u32); 3] = [(14, 11), (15, 5), (16, 5)];

/// RFC 3526's own generator, still accepted from peers as a known group.
pub const RFC3526_G: u32 = 2;

/// A Diffie-Hellman group: generator g and prime modulus p.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub g: BigUint,
    pub p: BigUint,
}

impl Group {
    /// RFC 3526 group 14, 15 or 16 with its smallest primitive root as g (A5.2).
    pub fn modp(id: u32) -> Option<Group> {
        let g = PRIMITIVE_ROOT.iter().find(|(i, _)| *i == id)?.1;
        Group::modp_prime(id).map(|p| Group {
            g: BigUint::from(g),
            p,
        })
    }

    /// The prime of RFC 3526 group 14, 15 or 16.
    fn modp_prime(id: u32) -> Option<BigUint> {
        let parts = match id {
            14 => MODP_14,
            15 => MODP_15,
            16 => MODP_16,
            _ => return None,
        };
        BigUint::parse_bytes(parts.concat().as_bytes(), 16)
    }

    /// The RFC 3526 id when this is one of the embedded groups, with either the primitive
    /// root we send or RFC 3526's g = 2 (which peers may still send).
    pub fn known_id(&self) -> Option<u32> {
        PRIMITIVE_ROOT.into_iter().find_map(|(id, root)| {
            let g_known = self.g == BigUint::from(root) || self.g == BigUint::from(RFC3526_G);
            (g_known && Group::modp_prime(id).as_ref() == Some(&self.p)).then_some(id)
        })
    }

    /// Private exponent size for this group, bits.
    pub fn exponent_bits(&self) -> u64 {
        match self.p.bits() {
            0..=2048 => 256,
            2049..=3072 => 320,
            3073..=4096 => 384,
            _ => 512,
        }
    }

    /// A fresh private exponent x (top bit set, exponent_bits long) and g^x mod p.
    pub fn keypair(&self) -> (BigUint, BigUint) {
        let bits = self.exponent_bits();
        let top = BigUint::one() << (bits - 1);
        let x = OsRng.gen_biguint_below(&top) + &top;
        let y = self.g.modpow(&x, &self.p);
        (x, y)
    }

    /// The shared value `peer^x mod p`, big-endian bytes (minimal, no leading zeros).
    pub fn shared(&self, peer: &BigUint, x: &BigUint) -> Vec<u8> {
        peer.modpow(x, &self.p).to_bytes_be()
    }

    /// Check a peer's group (see the module notes for exactly what is checked), with the
    /// default size limit for custom groups.
    pub fn validate(&self) -> Result<(), Refusal> {
        self.validate_up_to(DEFAULT_CUSTOM_MAX_BITS)
    }

    /// A digest naming the group, for remembering checks.
    pub fn digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(format!("{:x},{:x}", self.g, self.p));
        h.finalize().into()
    }

    /// Check the cheap part (sizes, g's range, small factors): everything but primality.
    pub fn precheck(&self, max_bits: u64) -> Result<(), Refusal> {
        if self.known_id().is_some() {
            return Ok(());
        }
        let p = &self.p;
        let bits = p.bits();
        let max = max_bits.min(MAX_BITS);
        if bits < MIN_BITS {
            return Err(Refusal::new(format!(
                "DH prime p has {bits} bits, fewer than the {MIN_BITS} required"
            )));
        }
        if bits > max {
            return Err(Refusal::new(format!(
                "DH prime p has {bits} bits, more than the {max} allowed for a custom group \
                 (setting keyx_dh_custom_max_bits, at most {MAX_BITS})"
            )));
        }
        self.check_element(&self.g, "generator g")?;
        let q: BigUint = p >> 1u32;
        if !p.bit(0)
            || !q.bit(0)
            || SMALL_PRIMES
                .iter()
                .any(|&s| (p % s).is_zero() || (&q % s).is_zero())
        {
            return Err(Refusal::new(
                "DH modulus p is not a safe prime (small factor in p or (p-1)/2)",
            ));
        }
        Ok(())
    }

    /// The costly part: q = (p-1)/2 probably prime, then p prime by Pocklington.
    pub fn check_safe_prime(&self) -> Result<(), Refusal> {
        if self.known_id().is_some() {
            return Ok(());
        }
        let p = &self.p;
        let q: BigUint = p >> 1u32;
        let two = BigUint::from(2u32);
        let ok = is_probable_prime(&q, MR_ROUNDS) && {
            // Pocklington with the prime factor q > sqrt(p) of p-1: p is prime if
            // a^(p-1) = 1 (mod p) and gcd(a^((p-1)/q) - 1, p) = gcd(a^2 - 1, p) = gcd(3, p) = 1.
            two.modpow(&(p - 1u32), p).is_one() && !(p % 3u32).is_zero()
        };
        if !ok {
            return Err(Refusal::new(
                "DH modulus p is not a safe prime (Miller-Rabin)",
            ));
        }
        Ok(())
    }

    /// Check a peer's group, custom groups up to `max_bits`.
    pub fn validate_up_to(&self, max_bits: u64) -> Result<(), Refusal> {
        self.precheck(max_bits)?;
        self.check_safe_prime()
    }

    /// A public value (or g) must lie in [2, p-2].
    pub fn check_element(&self, y: &BigUint, what: &str) -> Result<(), Refusal> {
        let two = BigUint::from(2u32);
        if y < &two || y > &(&self.p - &two) {
            return Err(Refusal::new(format!("DH {what} is outside [2, p-2]")));
        }
        Ok(())
    }
}

/// Miller-Rabin: base 2, then `rounds` random bases in [2, n-2]. n must be odd and > 3.
pub fn is_probable_prime(n: &BigUint, rounds: usize) -> bool {
    let one = BigUint::one();
    let two = BigUint::from(2u32);
    if n < &BigUint::from(5u32) || !n.bit(0) {
        return n == &two || n == &BigUint::from(3u32);
    }
    let n1 = n - &one;
    let s = n1.trailing_zeros().unwrap_or(0);
    let d = &n1 >> s;
    let witness = |a: &BigUint| -> bool {
        let mut x = a.modpow(&d, n);
        if x == one || x == n1 {
            return false;
        }
        for _ in 1..s {
            x = x.modpow(&two, n);
            if x == n1 {
                return false;
            }
        }
        true
    };
    if witness(&two) {
        return false;
    }
    let hi = &n1; // bases in [2, n-2]
    (0..rounds).all(|_| !witness(&OsRng.gen_biguint_range(&two, hi)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_groups_are_safe_primes() {
        for (id, bits) in [(14, 2048), (15, 3072), (16, 4096)] {
            let g = Group::modp(id).unwrap();
            assert_eq!(g.p.bits(), bits);
            let q = &g.p >> 1u32;
            assert!(is_probable_prime(&g.p, 3), "group {id}: p");
            assert!(is_probable_prime(&q, 3), "group {id}: (p-1)/2");
            assert_eq!(g.known_id(), Some(id));
            // RFC 3526's g = 2 over the same p is still the known group
            let two = Group {
                g: BigUint::from(2u32),
                p: g.p.clone(),
            };
            assert_eq!(two.known_id(), Some(id));
            // ... but 2 generates only the subgroup of order q: not a primitive root
            assert_eq!(two.g.modpow(&q, &g.p), BigUint::one());
        }
        assert!(Group::modp(5).is_none());
    }

    #[test]
    fn embedded_generators_are_primitive_roots() {
        // A5.2: "a primitive root g of p". For a safe prime p = 2q+1 the order of g divides
        // 2q, so g is a primitive root iff g^2 != 1 and g^q != 1 (mod p).
        for (id, root) in [(14, 11u32), (15, 5), (16, 5)] {
            let g = Group::modp(id).unwrap();
            assert_eq!(g.g, BigUint::from(root), "group {id}");
            let q = &g.p >> 1u32;
            assert!(
                !g.g.modpow(&BigUint::from(2u32), &g.p).is_one(),
                "group {id}: g^2"
            );
            assert!(!g.g.modpow(&q, &g.p).is_one(), "group {id}: g^q");
            g.validate().unwrap();
            // and it is the smallest: every smaller g >= 2 has g^q = 1
            for small in 2..root {
                let s = BigUint::from(small);
                assert!(
                    s.modpow(&q, &g.p).is_one(),
                    "group {id}: {small} is a root too"
                );
            }
        }
    }

    #[test]
    fn miller_rabin_rejects_composites() {
        let g = Group::modp(14).unwrap();
        // p * small prime, p + 2 (even), and a Carmichael number.
        assert!(!is_probable_prime(&(&g.p * 1009u32), 3));
        assert!(!is_probable_prime(&BigUint::from(561u32), 3));
        assert!(!is_probable_prime(&(&g.p + 2u32), 3));
        assert!(is_probable_prime(&BigUint::from(1009u32), 3));
    }

    #[test]
    fn both_sides_agree() {
        let g = Group::modp(14).unwrap();
        let (a, aa) = g.keypair();
        let (b, bb) = g.keypair();
        assert!(a.bits() == 256 && b.bits() == 256);
        assert_eq!(g.shared(&bb, &a), g.shared(&aa, &b));
        g.check_element(&aa, "A").unwrap();
    }

    #[test]
    fn custom_groups_are_validated() {
        let g14 = Group::modp(14).unwrap();
        // 2^2048 - 1 is odd but not prime
        let bad = Group {
            g: BigUint::from(2u32),
            p: (BigUint::one() << 2048u32) - 1u32,
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("safe prime"));
        // p = 2q+1 where the MODP prime is q: 2q+1 is (almost surely) not prime
        let bad = Group {
            g: BigUint::from(2u32),
            p: &g14.p * 2u32 + 1u32,
        };
        assert!(bad.validate().is_err());
        let small = Group {
            g: BigUint::from(2u32),
            p: BigUint::from(23u32),
        };
        assert!(small.validate().unwrap_err().to_string().contains("fewer"));
        // the group-14 prime with a degenerate generator: passes the prime test, fails on g
        let deg = Group {
            g: &g14.p - 1u32,
            p: g14.p.clone(),
        };
        assert!(deg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("generator g"));
        let five = Group {
            g: BigUint::from(5u32),
            p: g14.p.clone(),
        };
        assert!(five.known_id().is_none());
        five.validate().unwrap();
        assert!(g14.check_element(&BigUint::one(), "A").is_err());
        assert!(g14.check_element(&(&g14.p - 1u32), "A").is_err());
        assert!(g14.check_element(&g14.p, "A").is_err());
    }
}
