//! Block cache: lookups by 1, 2 and 4 threads, the hit ratio on skewed keys, and the cost of
//! an insert into a full cache. 16 KiB blocks, a 64 MiB cache (the default budget).
//!
//! - `get/fit`: uniform lookups over 2048 blocks that all fit: the cost of a hit alone.
//! - `get/zipf0.99`, `get/80-20`: read-through lookups (on a miss, insert the block, as the
//!   table reader does) over a working set three times the cache. The miss here costs
//!   only the insert; a real one also reads and decompresses the block, which is why the
//!   hit ratio printed first matters more than these figures.
//! - `insert_full`: a new block into a full cache, so every insert evicts.
//!
//! `cargo bench -p kevo --bench block_cache`
//!
//! This bench chose the cache's design. Figures on the 2-core development machine (Mops/s
//! over all threads, best of 5 interleaved rounds; 1t / 2t / 4t):
//!
//! | candidate | fit | zipf 0.99 | 80/20 | hit ratio zipf, 80/20 | zipf, miss = copy 16 KiB |
//! | --- | --- | --- | --- | --- | --- |
//! | sharded CLOCK, `ShardedLock` | 35.0 / 37.1 / 38.1 | 19.7 / 15.9 / 15.4 | 17.4 / 17.2 / 17.0 | 0.838, 0.804 | 2.11 / 1.93 / 2.32 |
//! | sharded CLOCK, `parking_lot` | 30.1 / 22.1 / 20.7 | 25.3 / 14.1 / 14.0 | 22.0 / 13.0 / 12.6 | 0.838, 0.804 | 2.09 / 2.24 / 2.78 |
//! | `quick_cache::sync` (`parking_lot`) | 25.4 / 27.8 / 27.5 | 22.0 / 19.3 / 15.7 | 20.0 / 20.3 / 19.2 | 0.863, 0.832 | 3.02 / 2.86 / 3.87 |
//! | quick_cache shards in `ShardedLock` (kept) | 29.0 / 36.3 / 36.2 | 19.6 / 17.1 / 16.2 | 18.2 / 17.9 / 17.7 | 0.863, 0.832 | 2.89 / 2.72 / 3.58 |
//!
//! CLOCK's hits are the cheapest, but it misses 15–17% more often, and a miss that only
//! allocates and copies the block (far cheaper than a read and a decompression) already
//! makes it 25–40% slower end to end. A `parking_lot` read lock word shared by all readers
//! of a shard stops hits from scaling past one thread; a per-thread-striped read lock
//! lets them scale.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kevo::sst::cache::BlockCache;

const BLOCK: usize = 16 << 10;
const CAPACITY: usize = 64 << 20;
/// Blocks in the working set: three times what the cache holds.
const WORKING_SET: usize = 3 * CAPACITY / BLOCK;
/// Blocks in the `fit` working set: half what the cache holds.
const FITTING: usize = CAPACITY / BLOCK / 2;
const BLOCKS_PER_TABLE: usize = 256;
/// Lookups pregenerated per thread (reused round robin).
const SEQUENCE: usize = 1 << 20;

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy)]
enum Dist {
    /// Uniform over blocks that all fit in the cache.
    Fit,
    /// Zipf, exponent 0.99 (YCSB's), over the working set.
    Zipf,
    /// 80% of lookups go to 20% of the working set, uniformly within each part.
    Hot80,
}

impl Dist {
    fn name(self) -> &'static str {
        match self {
            Dist::Fit => "fit",
            Dist::Zipf => "zipf0.99",
            Dist::Hot80 => "80-20",
        }
    }

    /// Block indices drawn from the distribution.
    fn sequence(self, seed: u64) -> Vec<u32> {
        let mut rng = SplitMix(seed);
        // Ranks are scattered over the blocks (7919 is coprime with the working set), so
        // hot blocks are spread over tables and offsets as in a real key space.
        let scatter = |rank: usize| ((rank * 7919) % WORKING_SET) as u32;
        match self {
            Dist::Fit => (0..SEQUENCE)
                .map(|_| (rng.next() % FITTING as u64) as u32)
                .collect(),
            Dist::Zipf => {
                let mut cdf = Vec::with_capacity(WORKING_SET);
                let mut sum = 0.0;
                for k in 0..WORKING_SET {
                    sum += 1.0 / ((k + 1) as f64).powf(0.99);
                    cdf.push(sum);
                }
                (0..SEQUENCE)
                    .map(|_| {
                        let u = rng.unit() * sum;
                        scatter(cdf.partition_point(|&c| c < u).min(WORKING_SET - 1))
                    })
                    .collect()
            }
            Dist::Hot80 => {
                let hot = WORKING_SET / 5;
                (0..SEQUENCE)
                    .map(|_| {
                        let r = rng.next();
                        let rank = if r % 100 < 80 {
                            (r >> 8) as usize % hot
                        } else {
                            hot + (r >> 8) as usize % (WORKING_SET - hot)
                        };
                        scatter(rank)
                    })
                    .collect()
            }
        }
    }
}

/// One distinct allocation per block, as the table reader would make.
fn blocks() -> Vec<Bytes> {
    (0..WORKING_SET)
        .map(|i| Bytes::from(vec![i as u8; BLOCK]))
        .collect()
}

fn key_of(block: u32) -> (u64, u64) {
    let b = block as usize;
    (
        (b / BLOCKS_PER_TABLE) as u64 + 1,
        ((b % BLOCKS_PER_TABLE) * BLOCK) as u64,
    )
}

/// A lookup as the table reader makes it: on a miss, "read" the block and insert it.
#[inline]
fn read_through(c: &BlockCache<Bytes>, blocks: &[Bytes], block: u32) {
    let (t, o) = key_of(block);
    match c.get(t, o) {
        Some(v) => {
            black_box(v);
        }
        None => c.insert(t, o, blocks[block as usize].clone(), BLOCK),
    }
}

fn warm(c: &BlockCache<Bytes>, blocks: &[Bytes], seq: &[u32]) {
    for &b in seq.iter().take(SEQUENCE / 2) {
        read_through(c, blocks, b);
    }
}

/// Hit ratio of a single-threaded read-through run after warm-up.
fn hit_ratios(blocks: &[Bytes]) {
    for dist in [Dist::Zipf, Dist::Hot80] {
        let seq = dist.sequence(42);
        let c = BlockCache::new(CAPACITY);
        warm(&c, blocks, &seq);
        let (h0, m0) = (c.hits(), c.misses());
        for &b in &seq {
            read_through(&c, blocks, b);
        }
        let (h, m) = (c.hits() - h0, c.misses() - m0);
        println!(
            "block_cache hit ratio {:>8}: {:.4}  (usage {} of {} bytes)",
            dist.name(),
            h as f64 / (h + m) as f64,
            c.usage(),
            CAPACITY
        );
    }
}

fn lookups(c: &mut Criterion) {
    let blocks = blocks();
    hit_ratios(&blocks);
    for dist in [Dist::Fit, Dist::Zipf, Dist::Hot80] {
        let seqs: Vec<Vec<u32>> = (0..4).map(|t| dist.sequence(1000 + t)).collect();
        let cache = BlockCache::new(CAPACITY);
        warm(&cache, &blocks, &seqs[0]);
        let mut g = c.benchmark_group(format!("block_cache/get/{}", dist.name()));
        for threads in [1usize, 2, 4] {
            g.throughput(Throughput::Elements(threads as u64));
            g.bench_function(format!("{threads}t"), |b| {
                b.iter_custom(|iters| {
                    let barrier = Barrier::new(threads);
                    std::thread::scope(|s| {
                        let handles: Vec<_> = seqs[..threads]
                            .iter()
                            .map(|seq| {
                                let (cache, blocks, barrier) = (&cache, &blocks, &barrier);
                                s.spawn(move || {
                                    barrier.wait();
                                    let start = Instant::now();
                                    for i in 0..iters as usize {
                                        read_through(cache, blocks, seq[i % SEQUENCE]);
                                    }
                                    start.elapsed()
                                })
                            })
                            .collect();
                        // The slowest thread's time: all `threads × iters` lookups were
                        // done by then.
                        handles
                            .into_iter()
                            .map(|h| h.join().unwrap_or_default())
                            .max()
                            .unwrap_or_default()
                    })
                });
            });
        }
        g.finish();
    }
}

/// Insert of a new block into a full cache: every insert evicts.
fn inserts(c: &mut Criterion) {
    let value = Bytes::from(vec![7u8; BLOCK]);
    let cache = BlockCache::new(CAPACITY);
    let mut inserted = 0u64;
    let mut next_key = || {
        inserted += 1;
        let per_table = BLOCKS_PER_TABLE as u64;
        (
            1 + inserted / per_table,
            (inserted % per_table) * BLOCK as u64,
        )
    };
    for _ in 0..2 * CAPACITY / BLOCK {
        let (table, offset) = next_key();
        cache.insert(table, offset, value.clone(), BLOCK);
    }
    let mut group = c.benchmark_group("block_cache");
    group.throughput(Throughput::Elements(1));
    group.bench_function("insert_full", |b| {
        b.iter(|| {
            let (table, offset) = next_key();
            cache.insert(table, offset, value.clone(), BLOCK);
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = lookups, inserts
}
criterion_main!(benches);
