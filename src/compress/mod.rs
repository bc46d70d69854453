//! Compressors and the distances built on them (spec 3.2).
//!
//! 3.2: "we substitute a compression difference measure, C(X, Y) = C(Y|X) + C(X|Y)
//! where C(Y|X) = C(XY) - C(X) and C(XY) means the compressed size of X concatenated
//! with Y." Alice "routes X to the i that minimizes Di", "her best estimate of the peer
//! that can compress X the smallest".
//!
//! Three compressors, all measuring sizes in bits:
//! - [`Deflate`] (flate2) and [`Xz`] (xz2): general-purpose, interoperable baselines. The
//!   conditional size C(X|Y) = C(YX) - C(Y) costs a compression of the peer context per
//!   call (C(Y) is memoised by the caller, see [`PeerContext`]).
//! - the native statistical model ([`model`]): an adaptive word model whose per-peer
//!   statistics live in the state file and yield code lengths -log2 P(X | peer) directly,
//!   without producing output, in time O(|X| x peers) independent of the cache size.
//!
//! The routing distance is a [`Metric`] over those sizes; a setting names
//! `compressor:metric` (see [`Setting`]).

pub mod eval;
pub mod matcher;
pub mod matching;
pub mod model;
pub mod related;
pub mod store;

use std::cell::Cell;
use std::fmt;
use std::io::Write;
use std::str::FromStr;

/// A general-purpose compressor: the compressed size of a byte string, in bits.
pub trait Compressor {
    /// Stable name used in settings and reports.
    fn name(&self) -> &'static str;
    /// C(data), in bits.
    fn size(&self, data: &[u8]) -> f64;
    /// C(a | b) with `a` then `b` concatenated: C(ab).
    fn size2(&self, a: &[u8], b: &[u8]) -> f64 {
        let mut v = Vec::with_capacity(a.len() + b.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        self.size(&v)
    }
}

/// zlib/deflate at the best level (flate2). Sizes include the 2-byte header and the
/// 4-byte trailer; they cancel in every difference the metrics take.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deflate;

impl Compressor for Deflate {
    fn name(&self) -> &'static str {
        "deflate"
    }
    fn size(&self, data: &[u8]) -> f64 {
        self.size2(data, &[])
    }
    fn size2(&self, a: &[u8], b: &[u8]) -> f64 {
        let mut e = flate2::write::ZlibEncoder::new(
            Vec::with_capacity((a.len() + b.len()) / 2 + 64),
            flate2::Compression::best(),
        );
        // Writing into a Vec cannot fail.
        let _ = e.write_all(a);
        let _ = e.write_all(b);
        e.finish().map(|v| v.len()).unwrap_or(usize::MAX) as f64 * 8.0
    }
}

/// xz / LZMA2 at preset 9 (xz2, statically linked liblzma).
#[derive(Debug, Clone, Copy, Default)]
pub struct Xz;

impl Compressor for Xz {
    fn name(&self) -> &'static str {
        "xz"
    }
    fn size(&self, data: &[u8]) -> f64 {
        self.size2(data, &[])
    }
    fn size2(&self, a: &[u8], b: &[u8]) -> f64 {
        // Preset 9 with the dictionary cut to what the input needs: same output as
        // `xz -9` for inputs below the dictionary size, without its 674 MiB of state.
        let need = (a.len() + b.len())
            .next_power_of_two()
            .clamp(4096, 64 << 20) as u32;
        let stream = xz2::stream::LzmaOptions::new_preset(9).and_then(|mut o| {
            o.dict_size(need);
            let mut f = xz2::stream::Filters::new();
            f.lzma2(&o);
            xz2::stream::Stream::new_stream_encoder(&f, xz2::stream::Check::None)
        });
        let Ok(stream) = stream else {
            return f64::INFINITY;
        };
        let mut e = xz2::write::XzEncoder::new_stream(
            Vec::with_capacity((a.len() + b.len()) / 2 + 64),
            stream,
        );
        let _ = e.write_all(a);
        let _ = e.write_all(b);
        e.finish().map(|v| v.len()).unwrap_or(usize::MAX) as f64 * 8.0
    }
}

/// Which compressor measures the sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompressorKind {
    /// The native adaptive word model ([`model`]), scored from the state file.
    Model,
    Deflate,
    Xz,
}

impl CompressorKind {
    pub const ALL: [CompressorKind; 3] = [
        CompressorKind::Model,
        CompressorKind::Deflate,
        CompressorKind::Xz,
    ];
    pub fn as_str(&self) -> &'static str {
        match self {
            CompressorKind::Model => "model",
            CompressorKind::Deflate => "deflate",
            CompressorKind::Xz => "xz",
        }
    }
    /// The general-purpose implementation, `None` for the native model.
    pub fn general(&self) -> Option<&'static dyn Compressor> {
        match self {
            CompressorKind::Model => None,
            CompressorKind::Deflate => Some(&Deflate),
            CompressorKind::Xz => Some(&Xz),
        }
    }
}

impl FromStr for CompressorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "model" | "cm" => Ok(CompressorKind::Model),
            "deflate" | "zlib" => Ok(CompressorKind::Deflate),
            "xz" | "lzma" => Ok(CompressorKind::Xz),
            _ => Err(format!(
                "unknown compressor {s:?} (expected model, deflate or xz)"
            )),
        }
    }
}

impl fmt::Display for CompressorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The routing distance between a message X and a peer context Y (lower = closer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Spec 3.2: D(X,Y) = C(XY) - C(X) + C(YX) - C(Y).
    D,
    /// D(X,Y) - C(Y): D relative to the peer's own size.
    DRel,
    /// C(X|Y) = C(YX) - C(Y): "the peer that can compress X the smallest". Reported
    /// relative to C(X) (bits saved are negative), which does not change the ranking.
    Cond,
    /// Normalised compression distance: (C(XY) - min(C(X),C(Y))) / max(C(X),C(Y)).
    Ncd,
}

impl Metric {
    pub const ALL: [Metric; 4] = [Metric::D, Metric::DRel, Metric::Cond, Metric::Ncd];
    pub fn as_str(&self) -> &'static str {
        match self {
            Metric::D => "d",
            Metric::DRel => "d-rel",
            Metric::Cond => "cond",
            Metric::Ncd => "ncd",
        }
    }

    /// The distance from the four sizes (bits). `cxy` = C(XY), `cyx` = C(YX).
    pub fn of(&self, s: &Sizes) -> f64 {
        match self {
            Metric::D => (s.cxy - s.cx) + (s.cyx - s.cy),
            Metric::DRel => (s.cxy - s.cx) + (s.cyx - s.cy) - s.cy,
            Metric::Cond => s.cyx - s.cy - s.cx,
            Metric::Ncd => {
                let hi = s.cx.max(s.cy);
                if hi <= 0.0 {
                    0.0
                } else {
                    (s.cxy.min(s.cyx) - s.cx.min(s.cy)) / hi
                }
            }
        }
    }
    /// Whether the metric needs C(XY) (X first), which costs one more compression.
    pub fn needs_xy(&self) -> bool {
        matches!(self, Metric::D | Metric::DRel | Metric::Ncd)
    }
}

impl FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "d" | "D" | "spec" => Ok(Metric::D),
            "d-rel" | "drel" => Ok(Metric::DRel),
            "cond" | "conditional" => Ok(Metric::Cond),
            "ncd" => Ok(Metric::Ncd),
            _ => Err(format!(
                "unknown metric {s:?} (expected d, d-rel, cond or ncd)"
            )),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sizes in bits of X, Y and their two concatenations.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sizes {
    pub cx: f64,
    pub cy: f64,
    pub cxy: f64,
    pub cyx: f64,
}

/// A routing setting: `compressor:metric`, e.g. `model:cond` (the default), `xz:d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Setting {
    pub compressor: CompressorKind,
    pub metric: Metric,
}

impl Default for Setting {
    /// The default is what `route-eval` measures best on accuracy and speed (see
    /// docs/routing.md): the native model with the conditional size.
    fn default() -> Self {
        Setting {
            compressor: CompressorKind::Model,
            metric: Metric::Cond,
        }
    }
}

impl FromStr for Setting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (c, m) = s.split_once(':').unwrap_or((s, "cond"));
        Ok(Setting {
            compressor: c.parse()?,
            metric: m.parse()?,
        })
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.compressor, self.metric)
    }
}

/// A peer context Y for a general-purpose compressor: its most recent bytes, with C(Y)
/// computed once and remembered.
pub struct PeerContext {
    pub bytes: Vec<u8>,
    cy: Cell<Option<f64>>,
}

impl PeerContext {
    /// Keep at most the last `limit` bytes of `bytes` (the most recent messages).
    pub fn new(mut bytes: Vec<u8>, limit: usize) -> PeerContext {
        if bytes.len() > limit {
            bytes.drain(..bytes.len() - limit);
        }
        PeerContext {
            bytes,
            cy: Cell::new(None),
        }
    }
    pub fn cy(&self, c: &dyn Compressor) -> f64 {
        if let Some(v) = self.cy.get() {
            return v;
        }
        let v = c.size(&self.bytes);
        self.cy.set(Some(v));
        v
    }
}

/// The sizes of X against each peer context under a general-purpose compressor. C(XY)
/// is only computed when `xy` (otherwise it is set to C(YX)).
pub fn general_sizes(c: &dyn Compressor, xy: bool, x: &[u8], peers: &[&PeerContext]) -> Vec<Sizes> {
    let cx = c.size(x);
    peers
        .iter()
        .map(|p| {
            let cy = p.cy(c);
            let cyx = c.size2(&p.bytes, x);
            let cxy = if xy { c.size2(x, &p.bytes) } else { cyx };
            Sizes { cx, cy, cxy, cyx }
        })
        .collect()
}

/// The distance of X to each peer context under a general-purpose compressor. Lower is
/// closer.
pub fn general_scores(
    c: &dyn Compressor,
    metric: Metric,
    x: &[u8],
    peers: &[&PeerContext],
) -> Vec<f64> {
    general_sizes(c, metric.needs_xy(), x, peers)
        .iter()
        .map(|s| metric.of(s))
        .collect()
}

/// Hasher for keys that are already well mixed (word hashes, cache ids): one multiply
/// (Fibonacci hashing) in place of SipHash, which costs more than the lookups it guards.
/// The worst case an adversary can force is bounded by [`model::MAX_TERMS`] per message.
#[derive(Default, Clone, Copy)]
pub struct MulHasher(u64);

impl std::hash::Hasher for MulHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64)
    }
}

/// A map keyed by word hashes or cache ids.
pub type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<MulHasher>>;
/// A set of word hashes.
pub type FastSet<K> = std::collections::HashSet<K, std::hash::BuildHasherDefault<MulHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_size_prefers_the_similar_context() {
        let a = PeerContext::new(
            b"the cat sat on the mat. the cat ate the rat. a cat is a cat.".repeat(20),
            32768,
        );
        let b = PeerContext::new(
            b"0123456789 quantum chromodynamics gluon 9876543210 lattice".repeat(20),
            32768,
        );
        for c in [&Deflate as &dyn Compressor, &Xz] {
            let s = general_scores(c, Metric::Cond, b"the cat sat on the rat", &[&a, &b]);
            assert!(s[0] < s[1], "{}: {:?}", c.name(), s);
        }
    }

    #[test]
    fn peer_context_keeps_the_most_recent_bytes() {
        let p = PeerContext::new(b"abcdef".to_vec(), 4);
        assert_eq!(p.bytes, b"cdef");
    }

    #[test]
    fn settings_parse_and_print() {
        let s: Setting = "xz:d".parse().unwrap();
        assert_eq!(s.compressor, CompressorKind::Xz);
        assert_eq!(s.metric, Metric::D);
        assert_eq!(s.to_string(), "xz:d");
        assert_eq!("model".parse::<Setting>().unwrap(), Setting::default());
        assert!("gzip:d".parse::<Setting>().is_err());
        assert!("xz:foo".parse::<Setting>().is_err());
    }

    #[test]
    fn metric_formulas() {
        let s = Sizes {
            cx: 100.0,
            cy: 1000.0,
            cxy: 1050.0,
            cyx: 1040.0,
        };
        assert_eq!(Metric::D.of(&s), 950.0 + 40.0);
        assert_eq!(Metric::DRel.of(&s), 990.0 - 1000.0);
        assert_eq!(Metric::Cond.of(&s), -60.0);
        assert_eq!(Metric::Ncd.of(&s), (1040.0 - 100.0) / 1000.0);
    }
}
