//! Table bloom filters: kevo's blocked filter (one 64-byte block per key) against a
//! standard bloom filter with double hashing over the whole bit array, at 10 bits per key
//! over 1 000 000 keys. It measures probes of present and absent keys (from precomputed
//! hashes, since a lookup hashes once and probes many tables) and the build.
//!
//! `cargo bench -p kevo --bench filter`
//!
//! Before timing, it prints each filter's measured false-positive rate against its
//! expected rate.

use std::f64::consts::LN_2;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kevo::FilterPolicy;
use kevo::sst::filter::{Filter, FilterBuilder, expected_fp_rate, key_hash};

const KEYS: u64 = 1_000_000;
const BITS_PER_KEY: f64 = 10.0;
/// Probes per timed iteration.
const BATCH: usize = 10_000;

/// A 16-byte key: `set`, then `i`. Present and absent keys use different sets.
fn key(set: u64, i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&set.to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn hashes(set: u64) -> Vec<u64> {
    (0..KEYS).map(|i| key_hash(&key(set, i))).collect()
}

/// The baseline: a standard bloom filter with `k = round(b ln 2)` probes, by double hashing
/// (`h1 + i * h2 mod m`, h1 and h2 the hash's halves) over all `m` bits.
struct StandardBloom {
    bits: Vec<u64>,
    m: u64,
    probes: u32,
}

impl StandardBloom {
    fn build(hashes: &[u64], bits_per_key: f64) -> Self {
        let m = ((hashes.len() as f64 * bits_per_key).ceil() as u64).max(64);
        let mut filter = StandardBloom {
            bits: vec![0; m.div_ceil(64) as usize],
            m,
            probes: ((bits_per_key * LN_2).round() as u32).clamp(1, 30),
        };
        for &h in hashes {
            let (mut pos, step) = filter.start(h);
            for _ in 0..filter.probes {
                filter.bits[(pos / 64) as usize] |= 1 << (pos % 64);
                pos = filter.next(pos, step);
            }
        }
        filter
    }

    fn start(&self, h: u64) -> (u64, u64) {
        ((h >> 32) % self.m, (h & 0xffff_ffff) % self.m)
    }

    fn next(&self, pos: u64, step: u64) -> u64 {
        let next = pos + step;
        if next >= self.m { next - self.m } else { next }
    }

    fn may_contain_hash(&self, h: u64) -> bool {
        let (mut pos, step) = self.start(h);
        for _ in 0..self.probes {
            if self.bits[(pos / 64) as usize] & (1 << (pos % 64)) == 0 {
                return false;
            }
            pos = self.next(pos, step);
        }
        true
    }

    fn expected_fp_rate(&self) -> f64 {
        let k = f64::from(self.probes);
        (1.0 - (-k * KEYS as f64 / self.m as f64).exp()).powi(self.probes as i32)
    }
}

fn build_blocked(hashes: &[u64]) -> Filter {
    let mut b = FilterBuilder::new(FilterPolicy::BitsPerKey(BITS_PER_KEY)).expect("a filter");
    for &h in hashes {
        b.add_hash(h);
    }
    Filter::decode(Bytes::from(b.finish())).expect("decodes")
}

fn report_rates(blocked: &Filter, standard: &StandardBloom, present: &[u64], absent: &[u64]) {
    assert!(
        present
            .iter()
            .all(|&h| blocked.may_contain_hash(h) && standard.may_contain_hash(h))
    );
    let rate = |hit: &dyn Fn(u64) -> bool| {
        absent.iter().filter(|&&h| hit(h)).count() as f64 / absent.len() as f64
    };
    let bits_per_key = f64::from(blocked.num_blocks()) * 512.0 / KEYS as f64;
    println!(
        "blocked:  {} probes, {:.3} bits/key, false positives {:.4}% (expected {:.4}%)",
        blocked.num_probes(),
        bits_per_key,
        100.0 * rate(&|h| blocked.may_contain_hash(h)),
        100.0 * expected_fp_rate(bits_per_key, blocked.num_probes()),
    );
    println!(
        "standard: {} probes, {:.3} bits/key, false positives {:.4}% (expected {:.4}%)",
        standard.probes,
        standard.m as f64 / KEYS as f64,
        100.0 * rate(&|h| standard.may_contain_hash(h)),
        100.0 * standard.expected_fp_rate(),
    );
}

/// Times `probe` over `hashes`, `BATCH` at a time, moving through the whole set.
fn bench_probes(
    c: &mut Criterion,
    group: &str,
    hashes: &[u64],
    blocked: &Filter,
    standard: &StandardBloom,
) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut at = 0;
    g.bench_function("blocked", |b| {
        b.iter(|| {
            at = (at + BATCH) % (hashes.len() - BATCH);
            hashes[at..at + BATCH]
                .iter()
                .filter(|&&h| blocked.may_contain_hash(black_box(h)))
                .count()
        });
    });
    let mut at = 0;
    g.bench_function("standard", |b| {
        b.iter(|| {
            at = (at + BATCH) % (hashes.len() - BATCH);
            hashes[at..at + BATCH]
                .iter()
                .filter(|&&h| standard.may_contain_hash(black_box(h)))
                .count()
        });
    });
    g.finish();
}

fn filter(c: &mut Criterion) {
    let present = hashes(1);
    let absent = hashes(2);
    let blocked = build_blocked(&present);
    let standard = StandardBloom::build(&present, BITS_PER_KEY);
    report_rates(&blocked, &standard, &present, &absent);

    bench_probes(c, "filter_probe_present", &present, &blocked, &standard);
    bench_probes(c, "filter_probe_absent", &absent, &blocked, &standard);

    let mut g = c.benchmark_group("filter_build");
    g.throughput(Throughput::Elements(KEYS));
    g.sample_size(20);
    g.bench_function("blocked", |b| b.iter(|| build_blocked(black_box(&present))));
    g.bench_function("standard", |b| {
        b.iter(|| StandardBloom::build(black_box(&present), BITS_PER_KEY));
    });
    g.finish();

    let keys: Vec<[u8; 16]> = (0..BATCH as u64).map(|i| key(3, i)).collect();
    let mut g = c.benchmark_group("filter_key_hash");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("xxh3_16_byte_keys", |b| {
        b.iter(|| {
            keys.iter()
                .fold(0u64, |acc, k| acc ^ key_hash(black_box(k)))
        });
    });
    g.finish();
}

criterion_group!(benches, filter);
criterion_main!(benches);
