//! Table bloom filters: one cache-local *blocked* bloom filter per table, over its user keys.
//!
//! A key is hashed once, with XXH3-64 (seed 0) of the user key ([`key_hash`]). The low 32
//! bits pick one 64-byte (512-bit) block, the high 32 bits pick the probed bits inside it, so
//! a lookup touches a single cache line:
//!
//! ```text
//! block   = (lo32 * num_blocks) >> 32          (64-bit product)
//! x_0     = hi32
//! x_i+1   = x_i * 0x9E3779B9 mod 2^32
//! probe i = bit (x_i >> 23) of the block, for i in 0..num_probes
//! ```
//!
//! This is the layout of RocksDB's "fast local bloom".
//!
//! With a prefix extractor, the filter also holds each distinct prefix of the table's keys,
//! hashed as XXH3-64 with seed [`PREFIX_SEED`] ([`prefix_hash`]), so a prefix never answers
//! for a whole key that happens to equal it. The table's properties name the extractor; a
//! reader uses the prefix entries only when that name is the extractor it has.
//!
//! # Encoding
//!
//! ```text
//! filter  := blocks[64 * num_blocks] trailer
//! trailer := check:u32 num_blocks:u32 num_probes:u8 version:u8        (10 bytes)
//! ```
//!
//! - Bit `b` (0..512) of a block is bit `b % 8` (least significant first) of the block's
//!   byte `b / 8`.
//! - `check` is the low 32 bits of XXH3-64 (seed 0) of the 6 trailer bytes after it. It
//!   guards the parameters, because a flipped probe count would make the filter reject keys
//!   the table holds. The bits themselves are covered by the table block checksum.
//! - `num_blocks` may be 0 for a table without keys. Such a filter contains nothing.
//! - `num_probes` is in 1..=30.
//! - `version` is 1. It comes last so a later layout, whatever its trailer, can be told
//!   apart by its final byte. An unknown version is `Corruption`.
//!
//! A filter needs nothing from the options to be read, so tables written under another
//! policy stay readable.
//!
//! # Sizing
//!
//! `num_blocks = ceil(keys * bits_per_key / 512)` (at least 1 when there are keys). `keys`
//! counts hashes that differ from the previous hash added. A table adds its keys in sorted
//! order, so the versions of one user key are adjacent and count once. A repeat that is not
//! adjacent is counted again, which only makes the filter slightly larger.
//!
//! # Why the probes are not double hashing
//!
//! Double hashing (`x_i = a + i * b`, top 9 bits) was measured first, over 1M keys and 4M
//! absent probes. The high bits of `a + i * b` depend almost only on the high bits of `a`
//! and `b`. Two keys in one block then often probe shifted copies of the same pattern. At 10
//! bits per key this gave 1.04% false positives against 0.96% expected (the multiplicative
//! sequence above gave 0.96%). At 16 bits per key it gave 0.14% against 0.082%, and at 24
//! bits per key it was 7 times the expected rate. The multiplicative sequence stays within
//! 6% of the expected rate at every density tried (5 to 24 bits per key).
//!
//! # False-positive rate
//!
//! A block holds a Poisson-distributed number of keys (mean `512 / bits_per_key`). The
//! expected rate is the standard formula `(1 - e^(-k*n/m))^k` applied inside one block and
//! averaged over that distribution ([`expected_fp_rate`]). Blocking costs accuracy: at 10 bits
//! per key the expected rate is 0.96%, against 0.82% for an unblocked filter. At 16 bits per
//! key it is 0.082% against 0.046%. `FalsePositiveRate(p)` is sized for `p` under the
//! blocked formula, so it spends slightly more bits than an unblocked filter would.
//! `FalsePositiveRate(0.01)` takes 9.9 bits per key instead of 9.6, and
//! `FalsePositiveRate(0.001)` takes 15.5 instead of 14.4.

use std::f64::consts::LN_2;
use std::fmt;

use bytes::Bytes;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::{Error, FilterPolicy, Result};

/// Bytes in a filter block: one cache line.
pub const BLOCK_BYTES: usize = 64;
/// Bytes of the trailer after the blocks.
pub const TRAILER_LEN: usize = 10;
/// The filter layout version this code writes, the only one it reads.
pub const FORMAT_VERSION: u8 = 1;
/// The most probes a filter uses.
pub const MAX_PROBES: u32 = 30;
/// The most bits per key a filter spends. `FalsePositiveRate` targets below what this buys
/// (about 1e-8) get this many bits.
pub const MAX_BITS_PER_KEY: f64 = 64.0;

const BLOCK_BITS: f64 = 512.0;
/// The fewest bits per key (keeps the rate formula finite).
const MIN_BITS_PER_KEY: f64 = 1.0 / 1024.0;
/// 2^32 / golden ratio. It is odd, so the probe sequence never collapses to zero.
const PROBE_MULTIPLIER: u32 = 0x9E37_79B9;
/// Blocks whose bytes, plus the trailer, still fit in a `usize`/`isize` and whose count
/// fits the trailer's u32.
const MAX_BLOCKS: u64 = {
    let by_size = (isize::MAX as u64 - TRAILER_LEN as u64) / BLOCK_BYTES as u64;
    if by_size < u32::MAX as u64 {
        by_size
    } else {
        u32::MAX as u64
    }
};

/// The hash a filter uses for a key: XXH3-64 (seed 0) of the user key. Compute it once per
/// lookup and probe many tables with [`Filter::may_contain_hash`].
#[inline]
pub fn key_hash(user_key: &[u8]) -> u64 {
    xxh3_64(user_key)
}

/// The XXH3 seed of prefix entries: "prefix" in ASCII.
pub const PREFIX_SEED: u64 = 0x7072_6566_6978;

/// The hash a filter uses for a key prefix: XXH3-64 with seed [`PREFIX_SEED`].
#[inline]
pub fn prefix_hash(prefix: &[u8]) -> u64 {
    xxh3_64_with_seed(prefix, PREFIX_SEED)
}

/// The block of `num_blocks` (> 0) that `hash` maps to.
#[inline]
fn block_index(hash: u64, num_blocks: u32) -> usize {
    ((u64::from(hash as u32) * u64::from(num_blocks)) >> 32) as usize
}

/// Bits per key and probe count for a policy, or `None` for [`FilterPolicy::None`].
///
/// - `BitsPerKey(b)` gives `b` bits per key, clamped to [1/1024, 64].
/// - `FalsePositiveRate(p)` gives the fewest bits per key whose expected rate is at most
///   `p`, capped at 64. That is about `-ln(p) / (ln 2)^2` plus a blocking correction.
///
/// The probe count is the one with the lowest expected rate for the blocked layout, always
/// in 1..=30. Blocking puts it at or below the unblocked `round(b * ln 2)`: 7 at 10 bits per
/// key, 10 at 16 (unblocked 11), 20 at 64 (unblocked 44).
///
/// Values that `Options::validate` rejects (NaN, non-positive bits, a rate outside (0, 1))
/// give `None`.
pub fn parameters(policy: FilterPolicy) -> Option<(f64, u32)> {
    let bits_per_key = match policy {
        // `Optimized` is resolved per level before a table is built (see
        // `compaction::filter_policy_for_level`); unresolved, it is its average.
        FilterPolicy::BitsPerKey(b) | FilterPolicy::Optimized { bits_per_key: b } if b > 0.0 => {
            b.clamp(MIN_BITS_PER_KEY, MAX_BITS_PER_KEY)
        }
        FilterPolicy::FalsePositiveRate(p) if p > 0.0 && p < 1.0 => bits_for_rate(p),
        _ => return None,
    };
    Some((bits_per_key, best_probes(bits_per_key)))
}

/// The expected false-positive rate of a filter with `bits_per_key` and `probes`. It
/// applies the standard formula within one 512-bit block and averages it over the Poisson
/// distribution of keys per block. For a built filter, pass its real bits per key,
/// `512 * num_blocks / keys`.
pub fn expected_fp_rate(bits_per_key: f64, probes: u32) -> f64 {
    let lambda = BLOCK_BITS / bits_per_key.clamp(MIN_BITS_PER_KEY, f64::MAX);
    let k = probes.clamp(1, MAX_PROBES);
    // The chance a given bit of a block stays clear as one more key is added.
    let clear_per_key = (1.0 - 1.0 / BLOCK_BITS).powi(k as i32);
    if lambda > 2048.0 {
        // Too many terms to sum. This is the closed form
        // E[(1 - c^J)^k] = sum_i C(k, i) (-1)^i e^(-lambda (1 - c^i)).
        // Its cancellation error (about 1e-8) does not matter at these densities, where
        // the rate is close to 1.
        let mut sum = 0.0;
        let mut binomial = 1.0;
        for i in 0..=k {
            let term = binomial * (-lambda * (1.0 - clear_per_key.powi(i as i32))).exp();
            sum += if i % 2 == 0 { term } else { -term };
            binomial = binomial * f64::from(k - i) / f64::from(i + 1);
        }
        return sum.clamp(0.0, 1.0);
    }
    // Sum over +-12 standard deviations of the number of keys in a block, j.
    let spread = 12.0 * lambda.sqrt() + 8.0;
    let mut j = (lambda - spread).max(0.0).floor();
    let last = (lambda + spread).ceil();
    let mut pmf = (-lambda + j * lambda.ln() - ln_factorial(j)).exp();
    let mut clear = clear_per_key.powf(j);
    let mut sum = 0.0;
    while j <= last {
        sum += pmf * (1.0 - clear).powi(k as i32);
        j += 1.0;
        pmf *= lambda / j;
        clear *= clear_per_key;
    }
    sum
}

/// ln(n!) for a whole number n >= 0.
fn ln_factorial(n: f64) -> f64 {
    if n < 16.0 {
        return (2..=n as u32).map(|i| f64::from(i).ln()).sum();
    }
    // Stirling's series. Its next term is below 1e-9 at n = 16.
    let n2 = n * n;
    n * n.ln() - n + 0.5 * (std::f64::consts::TAU * n).ln() + 1.0 / (12.0 * n)
        - 1.0 / (360.0 * n * n2)
        + 1.0 / (1260.0 * n * n2 * n2)
}

/// The probe count with the lowest expected rate at `bits_per_key`.
fn best_probes(bits_per_key: f64) -> u32 {
    let start = ((bits_per_key * LN_2).round() as u32).clamp(1, MAX_PROBES);
    let rate = |k| expected_fp_rate(bits_per_key, k);
    // The rate is unimodal in k. Blocking moves its minimum at or below the unblocked
    // optimum, so walk down first.
    let mut best = (start, rate(start));
    for k in (1..start).rev() {
        let r = rate(k);
        if r >= best.1 {
            break;
        }
        best = (k, r);
    }
    if best.0 == start {
        for k in start + 1..=MAX_PROBES {
            let r = rate(k);
            if r >= best.1 {
                break;
            }
            best = (k, r);
        }
    }
    best.0
}

/// The fewest bits per key whose expected rate, with the best probe count, is at most `rate`.
pub fn bits_for_rate(rate: f64) -> f64 {
    let achieved = |bits: f64| expected_fp_rate(bits, best_probes(bits));
    if achieved(MAX_BITS_PER_KEY) > rate {
        return MAX_BITS_PER_KEY;
    }
    if achieved(MIN_BITS_PER_KEY) <= rate {
        return MIN_BITS_PER_KEY;
    }
    // The rate falls as bits grow: bisect on log2(bits).
    let (mut lo, mut hi) = (MIN_BITS_PER_KEY.log2(), MAX_BITS_PER_KEY.log2());
    for _ in 0..32 {
        let mid = f64::midpoint(lo, hi);
        if achieved(mid.exp2()) <= rate {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi.exp2()
}

/// Builds the filter of one table: add its user keys (or their [`key_hash`]), then
/// [`FilterBuilder::finish`].
///
/// It keeps 8 bytes per distinct key until `finish`, because the filter is sized from the
/// final count.
pub struct FilterBuilder {
    hashes: Vec<u64>,
    bits_per_key: f64,
    probes: u32,
}

impl FilterBuilder {
    /// A builder for `policy`; `None` for [`FilterPolicy::None`] (see [`parameters`]).
    pub fn new(policy: FilterPolicy) -> Option<FilterBuilder> {
        let (bits_per_key, probes) = parameters(policy)?;
        Some(FilterBuilder {
            hashes: Vec::new(),
            bits_per_key,
            probes,
        })
    }

    /// Adds a user key. Adding the same key again right after it counts once.
    pub fn add_key(&mut self, user_key: &[u8]) {
        self.add_hash(key_hash(user_key));
    }

    /// Adds a key by its [`key_hash`]. A hash equal to the previous one counts once.
    pub fn add_hash(&mut self, hash: u64) {
        if self.hashes.last() != Some(&hash) {
            self.hashes.push(hash);
        }
    }

    /// Distinct keys added so far (as counted for sizing).
    pub fn keys(&self) -> usize {
        self.hashes.len()
    }

    /// Encodes the filter, sized from the keys added. With no keys it is just the trailer.
    pub fn finish(self) -> Vec<u8> {
        let num_blocks = if self.hashes.is_empty() {
            0
        } else {
            // The float-to-int cast saturates; the clamp keeps the length representable.
            let blocks = (self.hashes.len() as f64 * self.bits_per_key / BLOCK_BITS).ceil();
            (blocks as u64).clamp(1, MAX_BLOCKS) as u32
        };
        let bits_len = num_blocks as usize * BLOCK_BYTES;
        let mut out = vec![0u8; bits_len + TRAILER_LEN];
        let (bits, trailer) = out.split_at_mut(bits_len);
        let (blocks, _) = bits.as_chunks_mut::<BLOCK_BYTES>();
        if !blocks.is_empty() {
            for &hash in &self.hashes {
                let block = &mut blocks[block_index(hash, num_blocks)];
                let mut x = (hash >> 32) as u32;
                for _ in 0..self.probes {
                    let bit = x >> 23;
                    block[(bit >> 3) as usize] |= 1 << (bit & 7);
                    x = x.wrapping_mul(PROBE_MULTIPLIER);
                }
            }
        }
        trailer[4..8].copy_from_slice(&num_blocks.to_le_bytes());
        trailer[8] = self.probes as u8;
        trailer[9] = FORMAT_VERSION;
        let check = xxh3_64(&trailer[4..]) as u32;
        trailer[..4].copy_from_slice(&check.to_le_bytes());
        out
    }
}

impl fmt::Debug for FilterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterBuilder")
            .field("keys", &self.hashes.len())
            .field("bits_per_key", &self.bits_per_key)
            .field("probes", &self.probes)
            .finish()
    }
}

/// A decoded filter. It holds its encoded bytes; cloning it is cheap.
#[derive(Clone)]
pub struct Filter {
    /// The whole encoding, trailer included.
    data: Bytes,
    num_blocks: u32,
    probes: u32,
}

impl Filter {
    /// Reads a filter, checking the trailer (version, checksum, probe count) and that the
    /// length matches the block count. Anything malformed is `Corruption`.
    pub fn decode(data: Bytes) -> Result<Filter> {
        let Some(&version) = data.last() else {
            return Err(Error::corruption("empty filter block"));
        };
        if version != FORMAT_VERSION {
            return Err(Error::corruption(format!(
                "unknown filter format version {version}"
            )));
        }
        let Some(bits_len) = data.len().checked_sub(TRAILER_LEN) else {
            return Err(Error::corruption(format!(
                "filter block of {} bytes is shorter than its {TRAILER_LEN}-byte trailer",
                data.len()
            )));
        };
        let Some(trailer) = data
            .get(bits_len..)
            .and_then(|t| <&[u8; TRAILER_LEN]>::try_from(t).ok())
        else {
            return Err(Error::corruption("filter trailer is unreadable"));
        };
        let [c0, c1, c2, c3, b0, b1, b2, b3, probes, _] = *trailer;
        if xxh3_64(&trailer[4..]) as u32 != u32::from_le_bytes([c0, c1, c2, c3]) {
            return Err(Error::corruption("filter trailer checksum mismatch"));
        }
        let num_blocks = u32::from_le_bytes([b0, b1, b2, b3]);
        let probes = u32::from(probes);
        if !(1..=MAX_PROBES).contains(&probes) {
            return Err(Error::corruption(format!(
                "filter probe count {probes} is outside 1..={MAX_PROBES}"
            )));
        }
        if u64::from(num_blocks) * BLOCK_BYTES as u64 != bits_len as u64 {
            return Err(Error::corruption(format!(
                "filter holds {bits_len} bytes of bits but its trailer says {num_blocks} blocks of \
                 {BLOCK_BYTES}"
            )));
        }
        Ok(Filter {
            data,
            num_blocks,
            probes,
        })
    }

    /// False if the table surely does not hold `user_key`. True means it may.
    #[inline]
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.may_contain_hash(key_hash(user_key))
    }

    /// [`Filter::may_contain`] for a key's [`key_hash`].
    #[inline]
    pub fn may_contain_hash(&self, hash: u64) -> bool {
        if self.num_blocks == 0 {
            return false;
        }
        let start = block_index(hash, self.num_blocks) * BLOCK_BYTES;
        // `decode` checked the length, so the block is there. If it were not, `true` would
        // be the safe answer.
        let Some(block) = self
            .data
            .get(start..start + BLOCK_BYTES)
            .and_then(|b| <&[u8; BLOCK_BYTES]>::try_from(b).ok())
        else {
            return true;
        };
        // Every probe runs: no early exit. Most probes are for keys a table lacks, and for
        // those the exit point is a coin toss the branch predictor loses. Measured at 10 bits
        // per key: 142M absent probes/s without the exit against 91M with it (present keys:
        // 142M against 205M).
        let mut x = (hash >> 32) as u32;
        let mut all = 1u8;
        for _ in 0..self.probes {
            let bit = x >> 23;
            all &= block[(bit >> 3) as usize] >> (bit & 7);
            x = x.wrapping_mul(PROBE_MULTIPLIER);
        }
        all & 1 == 1
    }

    /// Bytes of memory the filter holds: its encoding plus this struct. (When the encoding
    /// is a slice of a larger buffer, that buffer stays alive too.)
    pub fn memory(&self) -> usize {
        self.data.len() + size_of::<Filter>()
    }

    /// The number of 64-byte blocks.
    pub fn num_blocks(&self) -> u32 {
        self.num_blocks
    }

    /// The number of bits probed per key.
    pub fn num_probes(&self) -> u32 {
        self.probes
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("num_blocks", &self.num_blocks)
            .field("probes", &self.probes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ErrorKind;

    /// The key `i` of key set `set`. Present and absent keys come from different sets.
    fn key(set: u32, i: u64) -> [u8; 12] {
        let mut k = [0u8; 12];
        k[..4].copy_from_slice(&set.to_be_bytes());
        k[4..].copy_from_slice(&i.to_be_bytes());
        k
    }

    fn build(policy: FilterPolicy, set: u32, keys: u64) -> Filter {
        let mut b = FilterBuilder::new(policy).unwrap();
        for i in 0..keys {
            b.add_key(&key(set, i));
        }
        Filter::decode(Bytes::from(b.finish())).unwrap()
    }

    fn assert_no_false_negatives(filter: &Filter, set: u32, keys: u64) {
        for i in 0..keys {
            assert!(
                filter.may_contain(&key(set, i)),
                "key {i} of {keys} missing"
            );
        }
    }

    const POLICIES: [FilterPolicy; 5] = [
        FilterPolicy::BitsPerKey(5.0),
        FilterPolicy::BitsPerKey(10.0),
        FilterPolicy::BitsPerKey(16.0),
        FilterPolicy::FalsePositiveRate(0.01),
        FilterPolicy::FalsePositiveRate(0.001),
    ];

    #[test]
    fn every_added_key_passes() {
        let policies = POLICIES.iter().copied().chain([
            FilterPolicy::BitsPerKey(0.5),
            FilterPolicy::BitsPerKey(64.0),
            FilterPolicy::FalsePositiveRate(1e-12),
            FilterPolicy::FalsePositiveRate(0.9),
        ]);
        for policy in policies {
            for keys in [0, 1, 2, 3, 7, 51, 52, 100, 1000, 4321] {
                let filter = build(policy, 1, keys);
                assert_no_false_negatives(&filter, 1, keys);
            }
        }
    }

    #[test]
    fn an_empty_filter_is_its_trailer_and_contains_nothing() {
        let encoded = FilterBuilder::new(FilterPolicy::BitsPerKey(10.0))
            .unwrap()
            .finish();
        assert_eq!(encoded.len(), TRAILER_LEN);
        let filter = Filter::decode(Bytes::from(encoded)).unwrap();
        assert_eq!(filter.num_blocks(), 0);
        assert!(!filter.may_contain(b"anything"));
        assert!(!filter.may_contain(b""));
    }

    #[test]
    fn adjacent_duplicates_count_once() {
        let mut once = FilterBuilder::new(FilterPolicy::BitsPerKey(10.0)).unwrap();
        let mut repeated = FilterBuilder::new(FilterPolicy::BitsPerKey(10.0)).unwrap();
        for i in 0..1000 {
            once.add_key(&key(1, i));
            for _ in 0..5 {
                repeated.add_key(&key(1, i));
            }
        }
        assert_eq!(repeated.keys(), 1000);
        assert_eq!(once.finish(), repeated.finish());
    }

    #[test]
    fn parameters_follow_the_policy() {
        assert_eq!(parameters(FilterPolicy::None), None);
        assert_eq!(parameters(FilterPolicy::BitsPerKey(10.0)), Some((10.0, 7)));
        assert_eq!(parameters(FilterPolicy::BitsPerKey(16.0)), Some((16.0, 10)));
        assert_eq!(
            parameters(FilterPolicy::BitsPerKey(1000.0)).map(|p| p.0),
            Some(64.0)
        );
        for bad in [f64::NAN, 0.0, -1.0] {
            assert_eq!(parameters(FilterPolicy::BitsPerKey(bad)), None);
        }
        for bad in [f64::NAN, 0.0, 1.0, 2.0, -0.5] {
            assert_eq!(parameters(FilterPolicy::FalsePositiveRate(bad)), None);
        }
        // A rate is met under the blocked formula, with more bits than an unblocked filter
        // needs (-ln p / ln^2 2), and no more than it takes.
        for p in [0.5, 0.1, 0.01, 0.001, 1e-4, 1e-6] {
            let (bits, k) = parameters(FilterPolicy::FalsePositiveRate(p)).unwrap();
            let unblocked = -p.ln() / (LN_2 * LN_2);
            assert!(
                bits >= unblocked && bits < 1.5 * unblocked,
                "{p}: {bits} bits"
            );
            assert!(expected_fp_rate(bits, k) <= p, "{p}");
            assert!(
                expected_fp_rate(bits * 0.999, best_probes(bits * 0.999)) > p,
                "{p}"
            );
        }
        let unreachable = parameters(FilterPolicy::FalsePositiveRate(1e-12));
        assert_eq!(
            unreachable,
            parameters(FilterPolicy::BitsPerKey(MAX_BITS_PER_KEY))
        );
        assert_eq!(unreachable.map(|p| p.1), Some(20));
        // Tiny bit counts stay finite and pick one probe.
        assert_eq!(
            parameters(FilterPolicy::BitsPerKey(1e-9)),
            Some((MIN_BITS_PER_KEY, 1))
        );
    }

    #[test]
    fn the_expected_rate_matches_known_values() {
        // An unblocked filter at 10 bits per key and 7 probes: 0.819%. Blocking raises it.
        let unblocked = (1.0 - (-0.7f64).exp()).powi(7);
        let blocked = expected_fp_rate(10.0, 7);
        assert!((unblocked - 0.008_194).abs() < 1e-6);
        assert!((blocked - 0.009_571).abs() < 2e-6, "{blocked}");
        assert!((expected_fp_rate(16.0, 10) - 0.000_824_6).abs() < 2e-7);
        // The closed form for dense filters meets the sum at the switch-over.
        let below = expected_fp_rate(BLOCK_BITS / 2048.0, 1);
        let above = expected_fp_rate(BLOCK_BITS / 2_048.000_1, 1);
        assert!((below - above).abs() < 1e-6, "{below} {above}");
        // One probe, one key per 512 bits: 1 - E[c^J] = 1 - e^(-lambda/512).
        let one = expected_fp_rate(512.0 / 100.0, 1);
        assert!((one - (1.0 - (-100.0f64 / 512.0).exp())).abs() < 1e-9);
        // Every rate is a probability, falling with bits.
        let mut last = 1.0;
        for bits in [1.0 / 1024.0, 0.01, 0.25, 1.0, 4.0, 10.0, 20.0, 40.0, 64.0] {
            let r = expected_fp_rate(bits, best_probes(bits));
            assert!(
                (0.0..=1.0).contains(&r) && (r < last || bits < 0.25),
                "{bits}: {r}"
            );
            last = r;
        }
    }

    /// Absent keys probed against each filter, for the rate tests.
    const PROBES: u64 = 1_000_000;

    /// Builds `filters` filters of `keys` keys each. It probes them with `PROBES` absent
    /// keys in all and returns the measured and the expected rate.
    fn measure(policy: FilterPolicy, keys: u64, filters: u32) -> (f64, f64) {
        let per_filter = PROBES / u64::from(filters);
        let (mut hits, mut expected) = (0u64, 0.0);
        for f in 0..filters {
            let filter = build(policy, f, keys);
            assert_no_false_negatives(&filter, f, keys.min(1000));
            let bits_per_key = f64::from(filter.num_blocks()) * BLOCK_BITS / keys as f64;
            expected += expected_fp_rate(bits_per_key, filter.num_probes()) / f64::from(filters);
            let absent = 1_000 + f;
            hits += (0..per_filter)
                .filter(|&i| filter.may_contain(&key(absent, i)))
                .count() as u64;
        }
        (
            hits as f64 / (per_filter * u64::from(filters)) as f64,
            expected,
        )
    }

    /// The measured rate is within 20% of the expected one. It is checked for one table of
    /// 100 000 keys and for ten tables of 10 000 keys. One small table alone varies too much
    /// with how its keys happen to fall into blocks.
    fn check_rate(policy: FilterPolicy) {
        for (keys, filters) in [(100_000, 1), (10_000, 10)] {
            let (measured, expected) = measure(policy, keys, filters);
            let ratio = measured / expected;
            // Shown with --nocapture.
            eprintln!(
                "{policy:?}, {filters} x {keys} keys: measured {measured:.6}, expected {expected:.6}"
            );
            assert!(
                (0.8..=1.2).contains(&ratio),
                "{policy:?}, {filters} x {keys} keys: measured {measured:.5}, expected {expected:.5}"
            );
            if let FilterPolicy::FalsePositiveRate(p) = policy {
                // Within 20% of the target itself, not only of the filter's own expectation.
                assert!(
                    (0.8 * p..=1.2 * p).contains(&measured),
                    "{policy:?}: measured {measured:.5}"
                );
            }
        }
    }

    #[test]
    fn false_positive_rate_5_bits_per_key() {
        check_rate(FilterPolicy::BitsPerKey(5.0));
    }

    #[test]
    fn false_positive_rate_10_bits_per_key() {
        check_rate(FilterPolicy::BitsPerKey(10.0));
    }

    #[test]
    fn false_positive_rate_16_bits_per_key() {
        check_rate(FilterPolicy::BitsPerKey(16.0));
    }

    #[test]
    fn false_positive_rate_target_1_percent() {
        check_rate(FilterPolicy::FalsePositiveRate(0.01));
    }

    #[test]
    fn false_positive_rate_target_5_percent() {
        check_rate(FilterPolicy::FalsePositiveRate(0.05));
    }

    #[test]
    fn false_positive_rate_target_0_1_percent() {
        check_rate(FilterPolicy::FalsePositiveRate(0.001));
    }

    #[test]
    fn a_filter_decodes_without_its_policy() {
        // Filters written under different policies are read by the same code, which learns
        // the size and probe count from the trailer alone.
        let mut seen = Vec::new();
        for policy in POLICIES {
            let filter = build(policy, 7, 2000);
            assert_no_false_negatives(&filter, 7, 2000);
            let (bits, probes) = parameters(policy).unwrap();
            assert_eq!(filter.num_probes(), probes);
            assert_eq!(
                filter.num_blocks(),
                (2000.0 * bits / BLOCK_BITS).ceil() as u32
            );
            assert_eq!(
                filter.memory(),
                filter.num_blocks() as usize * 64 + TRAILER_LEN + size_of::<Filter>()
            );
            let false_positives = (0..20_000)
                .filter(|&i| filter.may_contain(&key(8, i)))
                .count();
            seen.push((filter.num_blocks(), probes, false_positives));
        }
        // Fewer false positives with more bits: the policies really differ.
        assert!(
            seen.windows(2).filter(|w| w[0].0 != w[1].0).count() >= 3,
            "{seen:?}"
        );
        assert!(seen[0].2 > seen[1].2 && seen[1].2 > seen[2].2, "{seen:?}");
    }

    #[test]
    fn the_encoding_is_stable() {
        // Three keys at 10 bits per key: one block, 7 probes, format 1.
        let mut b = FilterBuilder::new(FilterPolicy::BitsPerKey(10.0)).unwrap();
        for k in [&b"apple"[..], b"banana", b"cherry"] {
            b.add_key(k);
        }
        let encoded = b.finish();
        assert_eq!(encoded.len(), 64 + TRAILER_LEN);
        assert_eq!(&encoded[64 + 4..], &[1, 0, 0, 0, 7, 1]);
        let set: u32 = encoded[..64].iter().map(|b| b.count_ones()).sum();
        assert!((19..=21).contains(&set), "{set} bits set");
        assert_eq!(xxh3_64(&encoded), GOLDEN, "{:#018x}", xxh3_64(&encoded));
        let filter = Filter::decode(Bytes::from(encoded)).unwrap();
        assert!(filter.may_contain(b"apple") && filter.may_contain(b"cherry"));
    }

    const GOLDEN: u64 = 0x2d74_39fd_4ddf_4e4e;

    fn encoded_filter(keys: u64) -> Bytes {
        let mut b = FilterBuilder::new(FilterPolicy::BitsPerKey(10.0)).unwrap();
        for i in 0..keys {
            b.add_key(&key(3, i));
        }
        Bytes::from(b.finish())
    }

    /// Decoding gives `Corruption`, or a filter without false negatives.
    fn assert_corrupt_or_sound(data: Bytes, keys: u64) {
        match Filter::decode(data) {
            Err(e) => assert_eq!(e.kind(), ErrorKind::Corruption, "{e}"),
            Ok(filter) => assert_no_false_negatives(&filter, 3, keys),
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        for keys in [0, 1, 300] {
            let data = encoded_filter(keys);
            for len in 0..data.len() {
                let err = Filter::decode(data.slice(..len)).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
                assert_corrupt_or_sound(data.slice(data.len() - len..), keys);
            }
        }
    }

    #[test]
    fn every_trailer_bit_flip_is_detected() {
        for keys in [0, 1, 300] {
            let data = encoded_filter(keys);
            let trailer_start = data.len() - TRAILER_LEN;
            for bit in trailer_start * 8..data.len() * 8 {
                let mut flipped = data.to_vec();
                flipped[bit / 8] ^= 1 << (bit % 8);
                let err = Filter::decode(Bytes::from(flipped)).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Corruption, "bit {bit}: {err}");
            }
        }
    }

    #[test]
    fn bit_flips_in_the_blocks_do_not_panic() {
        let data = encoded_filter(300);
        for bit in (0..(data.len() - TRAILER_LEN) * 8).step_by(7) {
            let mut flipped = data.to_vec();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let filter = Filter::decode(Bytes::from(flipped)).unwrap();
            for i in 0..50 {
                filter.may_contain(&key(3, i));
            }
        }
    }

    #[test]
    fn unknown_versions_and_bad_probe_counts_are_refused() {
        let reencode = |num_blocks: u32, probes: u8, version: u8, bits: usize| {
            let mut data = vec![0u8; bits + TRAILER_LEN];
            let t = &mut data[bits..];
            t[4..8].copy_from_slice(&num_blocks.to_le_bytes());
            t[8] = probes;
            t[9] = version;
            let check = xxh3_64(&t[4..]) as u32;
            t[..4].copy_from_slice(&check.to_le_bytes());
            Filter::decode(Bytes::from(data))
        };
        assert!(reencode(1, 7, 1, 64).is_ok());
        assert!(reencode(0, 30, 1, 0).is_ok());
        for (num_blocks, probes, version, bits) in [
            (1, 7, 2, 64),
            (1, 7, 0, 64),
            (1, 0, 1, 64),
            (1, 31, 1, 64),
            (1, 255, 1, 64),
            (2, 7, 1, 64),
            (1, 7, 1, 65),
            (u32::MAX, 7, 1, 64),
        ] {
            let err = reencode(num_blocks, probes, version, bits).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
        }
        let err = reencode(1, 7, 9, 64).unwrap_err();
        assert!(err.message().contains("version 9"), "{err}");
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(filter) = Filter::decode(Bytes::from(data)) {
                for i in 0..20 {
                    filter.may_contain(&key(0, i));
                }
            }
        }

        #[test]
        fn arbitrary_bits_behind_a_valid_trailer_never_panic(
            blocks in 0u32..4,
            probes in 1u8..=30,
            seed in any::<u64>(),
            hashes in proptest::collection::vec(any::<u64>(), 0..50),
        ) {
            let mut data: Vec<u8> = (0..u64::from(blocks) * 64)
                .map(|i| (seed.wrapping_mul(i | 1) >> 56) as u8)
                .collect();
            let len = data.len();
            data.resize(len + TRAILER_LEN, 0);
            let t = &mut data[len..];
            t[4..8].copy_from_slice(&blocks.to_le_bytes());
            t[8] = probes;
            t[9] = FORMAT_VERSION;
            let check = xxh3_64(&t[4..]) as u32;
            t[..4].copy_from_slice(&check.to_le_bytes());
            let filter = Filter::decode(Bytes::from(data)).unwrap();
            for h in hashes {
                let hit = filter.may_contain_hash(h);
                prop_assert!(blocks > 0 || !hit);
            }
        }
    }
}
