//! The block cache: decompressed table blocks kept in memory, keyed by (table id, block
//! offset), within a byte budget ([`Options::block_cache_size`](crate::Options)).
//!
//! # Design
//!
//! The cache is split into up to 64 shards by a hash of the key. Each shard is a
//! [`quick_cache`] cache (its S3-FIFO-like Clock-PRO policy, with ghost entries) behind a
//! [`ShardedLock`]: a reader-writer lock whose read side is striped per thread, so that
//! lookups by different threads write different cache lines and scale with the cores, while
//! an insert (after a miss, which costs a file read anyway) takes every stripe.
//!
//! This design was chosen by `benches/block_cache.rs` over a hand-written sharded CLOCK and
//! over `quick_cache::sync::Cache` as it is (per-shard `parking_lot` locks): S3-FIFO misses
//! 15–17% less often than CLOCK on skewed lookups over a working set three times the cache,
//! which outweighs CLOCK's cheaper hits as soon as a miss costs more than ~0.5 µs (reading
//! and decompressing a block costs several); and the per-thread read stripes make hits
//! scale across threads where a shared read lock word does not. (quick_cache's own
//! `sharded-lock` feature would do the latter, but it is mutually exclusive with its default
//! `parking_lot` feature, so a library enabling it breaks any application that also uses
//! quick_cache with default features.)
//!
//! # Budget
//!
//! An entry is charged the caller's `charge` plus [`ENTRY_OVERHEAD`]. Each shard holds at
//! most `capacity / shards` bytes and evicts before it inserts, so [`BlockCache::usage`]
//! never exceeds [`BlockCache::capacity`]. An entry whose charge exceeds 97% of a shard's
//! budget (quick_cache's hot-section size) is not cached at all; a shard's budget is at
//! least 512 KiB whenever the whole cache is, so only blocks far larger than any configured
//! block size are turned away.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::sync::ShardedLock;

/// Bytes charged for each entry on top of the caller's charge: the key (16 bytes), the
/// value's handle and charge (40 for [`bytes::Bytes`]), quick_cache's per-entry links
/// (21), and its index and ghost-entry slack (about half as much again). An estimate, so
/// that a cache of small blocks still accounts for its bookkeeping.
pub const ENTRY_OVERHEAD: usize = 128;

/// Smallest budget a shard is given: a small cache gets fewer shards, so each still holds
/// a few dozen 16 KiB blocks and the policy has room to tell hot blocks from cold.
const MIN_SHARD_BYTES: usize = 512 << 10;
/// Most shards: enough that inserts by a few dozen threads rarely meet on one lock.
const MAX_SHARDS: usize = 64;
/// Block size assumed when sizing a shard's index and ghost list (the default
/// `Options::block_size`). Only an estimate: the index grows if blocks are smaller.
const ESTIMATED_BLOCK_BYTES: usize = 16 << 10;

/// A cache key: (table id, block offset).
type Key = (u64, u64);

/// The splitmix64 finalizer: spreads every input bit over the whole word, so offsets that
/// share their low bits (aligned blocks) still land in different shards and buckets.
#[inline]
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Hashes a [`Key`] for both the shard choice and the shard's own table. The keys come
/// from our own table files, never from an adversary, so a fast mixer replaces SipHash
/// (which would cost more than the rest of a lookup).
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        mix64(self.0)
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for `(u64, u64)`, which hashes as two `write_u64`; kept correct anyway.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(32) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[derive(Default, Clone, Copy)]
struct BuildKeyHasher;

impl BuildHasher for BuildKeyHasher {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher::default()
    }
}

/// A cached value with the bytes it is charged (overhead included).
#[derive(Clone)]
struct Charged<V> {
    value: V,
    charge: u64,
}

/// Weighs an entry by its charge, which is never 0 (quick_cache never evicts weight 0).
#[derive(Clone, Copy)]
struct ChargeWeighter;

impl<V> quick_cache::Weighter<Key, Charged<V>> for ChargeWeighter {
    fn weight(&self, _key: &Key, val: &Charged<V>) -> u64 {
        val.charge
    }
}

/// Stashes the (at most two) entries an insert evicts, so their blocks are freed after the
/// shard lock is released rather than under it.
type Evicted<V> = quick_cache::sync::DefaultLifecycle<Key, Charged<V>>;

type ShardCache<V> =
    quick_cache::unsync::Cache<Key, Charged<V>, ChargeWeighter, BuildKeyHasher, Evicted<V>>;

/// One shard, on cache lines of its own so that shards never share one.
#[repr(align(128))]
struct Shard<V> {
    /// Protects the shard's cache. Lookups take it shared (quick_cache's `get` takes
    /// `&self` and only bumps an atomic reference counter in the entry); inserts and
    /// erases take it exclusive.
    lock: ShardedLock<ShardCache<V>>,
    /// Bytes charged in the shard: stored under `lock` held exclusive, read without it.
    usage: AtomicUsize,
}

/// A sharded, byte-budgeted cache of table blocks, keyed by (table id, block offset).
///
/// Values are returned by clone, so `V` should be cheap to clone ([`bytes::Bytes`], an
/// `Arc`): a hit never copies a block. See the [module docs](self) for the design and the
/// budget it guarantees.
pub struct BlockCache<V> {
    shards: Box<[Shard<V>]>,
    /// log2 of the shard count: the shard is picked by the hash's top bits.
    shard_bits: u32,
    capacity: usize,
    counters: Counters,
}

impl<V: Clone + Send + Sync + 'static> BlockCache<V> {
    /// A cache of `capacity_bytes`; 0 disables it (every lookup misses, inserts do
    /// nothing).
    pub fn new(capacity_bytes: usize) -> Self {
        let wanted = (capacity_bytes / MIN_SHARD_BYTES).clamp(1, MAX_SHARDS);
        // Round down to a power of two.
        let shard_bits = usize::BITS - 1 - wanted.leading_zeros();
        let per_shard = capacity_bytes >> shard_bits;
        let shards = (0..1usize << shard_bits)
            .map(|_| {
                let options = quick_cache::OptionsBuilder::new()
                    .estimated_items_capacity((per_shard / ESTIMATED_BLOCK_BYTES).max(1))
                    .weight_capacity(per_shard as u64)
                    .build()
                    .expect("every option quick_cache requires is set");
                Shard {
                    lock: ShardedLock::new(ShardCache::with_options(
                        options,
                        ChargeWeighter,
                        BuildKeyHasher,
                        Evicted::default(),
                    )),
                    usage: AtomicUsize::new(0),
                }
            })
            .collect();
        Self {
            shards,
            shard_bits,
            capacity: capacity_bytes,
            counters: Counters::new(),
        }
    }

    #[inline]
    fn shard(&self, key: &Key) -> &Shard<V> {
        // The top bits: quick_cache's table uses the low ones, and the shard's keys share
        // their top bits, so each table sees the full spread of its own bits.
        let h = BuildKeyHasher.hash_one(key);
        let i = h.checked_shr(64 - self.shard_bits).unwrap_or(0) as usize;
        &self.shards[i]
    }

    /// The block at (`table_id`, `offset`), if cached. Counts a hit or a miss.
    pub fn get(&self, table_id: u64, offset: u64) -> Option<V> {
        if self.capacity == 0 {
            self.counters.record(false);
            return None;
        }
        let key = (table_id, offset);
        let value = self
            .shard(&key)
            .lock
            .read()
            // A panic under the lock cannot leave quick_cache's shard half-updated in a
            // way that matters to a cache: at worst an entry is lost.
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .map(|c| c.value.clone());
        self.counters.record(value.is_some());
        value
    }

    /// Caches `value` under (`table_id`, `offset`), charged `charge + ENTRY_OVERHEAD`
    /// bytes, evicting other blocks of its shard to make room. Replaces a block already
    /// cached under that key. A block too large for a shard is not cached.
    pub fn insert(&self, table_id: u64, offset: u64, value: V, charge: usize) {
        if self.capacity == 0 {
            return;
        }
        let key = (table_id, offset);
        let charge = charge.saturating_add(ENTRY_OVERHEAD) as u64;
        let shard = self.shard(&key);
        let mut evicted = Default::default();
        let mut cache = shard.lock.write().unwrap_or_else(PoisonError::into_inner);
        cache.insert_with_lifecycle(key, Charged { value, charge }, &mut evicted);
        shard
            .usage
            .store(cache.weight() as usize, Ordering::Relaxed);
        drop(cache);
        drop(evicted);
    }

    /// Drops every block of a table (when the table file is deleted), so a dead table's
    /// blocks free their memory at once instead of waiting to age out.
    ///
    /// O(entries): it walks every shard under its exclusive lock, one shard at a time.
    /// Tables are deleted at most once per compaction, and a shard holds about 64 blocks at
    /// the default budget, so each lock is held for a few microseconds.
    pub fn erase_table(&self, table_id: u64) {
        for shard in &self.shards {
            let mut cache = shard.lock.write().unwrap_or_else(PoisonError::into_inner);
            cache.retain(|k, _| k.0 != table_id);
            shard
                .usage
                .store(cache.weight() as usize, Ordering::Relaxed);
        }
    }

    /// Bytes charged now (at most [`capacity`](Self::capacity)).
    pub fn usage(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.usage.load(Ordering::Relaxed))
            .sum()
    }

    /// The byte budget.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Lookups that found their block.
    pub fn hits(&self) -> u64 {
        self.counters.hits()
    }

    /// Lookups that did not.
    pub fn misses(&self) -> u64 {
        self.counters.misses()
    }
}

/// Hit and miss counters striped by thread, so that counting never makes two threads write
/// the same cache line.
struct Counters {
    stripes: Box<[Stripe]>,
}

#[repr(align(128))]
#[derive(Default)]
struct Stripe {
    hits: AtomicU64,
    misses: AtomicU64,
}

const STRIPES: usize = 32;

thread_local! {
    /// This thread's counter stripe, handed out round robin on first use.
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

impl Counters {
    fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
        }
    }

    #[inline]
    fn record(&self, hit: bool) {
        let i = STRIPE.with(|s| {
            let mut i = s.get();
            if i == usize::MAX {
                i = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
                s.set(i);
            }
            i
        });
        let stripe = &self.stripes[i];
        // Relaxed: the counters are statistics, ordered with nothing else.
        if hit {
            stripe.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            stripe.misses.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn hits(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.hits.load(Ordering::Relaxed))
            .sum()
    }

    fn misses(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.misses.load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;

    const BLOCK: usize = 16 << 10;

    fn block(tag: u8) -> Bytes {
        Bytes::from(vec![tag; BLOCK])
    }

    #[test]
    fn hits_and_misses_count_exactly() {
        let c = BlockCache::new(4 << 20);
        assert_eq!((c.hits(), c.misses()), (0, 0));
        assert!(c.get(1, 0).is_none());
        c.insert(1, 0, block(1), BLOCK);
        c.insert(1, 4096, block(2), BLOCK);
        assert_eq!(c.get(1, 0).as_deref(), Some(&block(1)[..]));
        assert_eq!(c.get(1, 4096).as_deref(), Some(&block(2)[..]));
        assert_eq!(c.get(1, 0).as_deref(), Some(&block(1)[..]));
        assert!(c.get(2, 0).is_none()); // another table, same offset
        assert!(c.get(1, 8192).is_none());
        assert_eq!((c.hits(), c.misses()), (3, 3));
        // Inserts, usage and erases count nothing.
        c.insert(1, 0, block(3), BLOCK);
        let _ = c.usage();
        c.erase_table(7);
        assert_eq!((c.hits(), c.misses()), (3, 3));
        // A re-insert replaced the block, and is charged once.
        assert_eq!(c.get(1, 0).as_deref(), Some(&block(3)[..]));
        assert_eq!(c.usage(), 2 * (BLOCK + ENTRY_OVERHEAD));
        assert_eq!((c.hits(), c.misses()), (4, 3));
    }

    #[test]
    fn hit_returns_the_cached_allocation() {
        let c = BlockCache::new(1 << 20);
        let b = block(9);
        c.insert(3, 0, b.clone(), BLOCK);
        let got = c.get(3, 0).expect("cached");
        // A clone of the handle, not a copy of the block.
        assert_eq!(got.as_ptr(), b.as_ptr());
    }

    #[test]
    fn usage_never_exceeds_capacity() {
        for capacity in [100 << 10, 1 << 20, 3 << 20, 8 << 20, 64 << 20] {
            let c = BlockCache::new(capacity);
            assert_eq!(c.capacity(), capacity);
            let mut x = 0x1234_5678_u64;
            for i in 0..20_000u64 {
                x = mix64(x.wrapping_add(i));
                // Mixed sizes, repeated keys (re-inserts with another size) included.
                let charge = 512 + (x % (32 << 10)) as usize;
                let (table, offset) = (x % 7, (x >> 8) % 4096 * 4096);
                c.insert(table, offset, Bytes::new(), charge);
                assert!(
                    c.usage() <= capacity,
                    "usage {} > capacity {capacity} after insert {i}",
                    c.usage()
                );
            }
            // ... and the budget is used, not just respected.
            assert!(
                c.usage() > capacity / 2,
                "usage {} of {capacity}",
                c.usage()
            );
        }
    }

    #[test]
    fn recently_inserted_blocks_are_found() {
        // The cache holds about 64 blocks; the last few inserted are always there.
        let c = BlockCache::new(1 << 20);
        for i in 0..1000u64 {
            c.insert(1, i * BLOCK as u64, block(i as u8), BLOCK);
            assert!(
                c.get(1, i * BLOCK as u64).is_some(),
                "block {i} just inserted"
            );
        }
    }

    #[test]
    fn block_larger_than_a_shard_is_not_cached() {
        let c = BlockCache::new(1 << 20);
        c.insert(1, 0, Bytes::new(), 2 << 20);
        assert!(c.get(1, 0).is_none());
        assert_eq!(c.usage(), 0);
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let c = BlockCache::new(0);
        assert_eq!(c.capacity(), 0);
        for i in 0..100 {
            c.insert(1, i, block(1), BLOCK);
            c.insert(1, i, block(1), 0);
        }
        for i in 0..100 {
            assert!(c.get(1, i).is_none());
        }
        assert_eq!(c.usage(), 0);
        assert_eq!((c.hits(), c.misses()), (0, 100));
        c.erase_table(1);
    }

    #[test]
    fn erase_table_drops_only_that_table() {
        let c = BlockCache::new(8 << 20);
        for t in 1..=3u64 {
            for i in 0..50u64 {
                c.insert(t, i * BLOCK as u64, block(t as u8), BLOCK);
            }
        }
        let before = c.usage();
        assert_eq!(before, 150 * (BLOCK + ENTRY_OVERHEAD));
        c.erase_table(2);
        assert_eq!(c.usage(), 100 * (BLOCK + ENTRY_OVERHEAD));
        for i in 0..50u64 {
            let o = i * BLOCK as u64;
            assert!(c.get(2, o).is_none());
            assert_eq!(c.get(1, o).as_deref(), Some(&block(1)[..]));
            assert_eq!(c.get(3, o).as_deref(), Some(&block(3)[..]));
        }
        // The table's blocks can be cached again (the id is not poisoned).
        c.insert(2, 0, block(2), BLOCK);
        assert_eq!(c.get(2, 0).as_deref(), Some(&block(2)[..]));
    }

    /// The value names its key: a lookup must only ever return the value of its own key.
    #[derive(Clone)]
    struct Tagged(Arc<(u64, u64)>);

    #[test]
    fn concurrent_gets_and_inserts_never_mix_up_keys() {
        // Small enough to evict constantly, with a working set four times the budget.
        let c = BlockCache::<Tagged>::new(1 << 20);
        let threads = 4u64;
        std::thread::scope(|s| {
            for t in 0..threads {
                let c = &c;
                s.spawn(move || {
                    let mut x = t + 1;
                    let (mut hits, mut erased) = (0u64, 0u64);
                    for _ in 0..100_000 {
                        x = mix64(x);
                        let key = (x % 16, (x >> 8) % 64 * 4096);
                        match c.get(key.0, key.1) {
                            Some(v) => {
                                assert_eq!(*v.0, key, "wrong block for {key:?}");
                                hits += 1;
                            }
                            None => c.insert(key.0, key.1, Tagged(Arc::new(key)), BLOCK),
                        }
                        if x % 5000 == 0 {
                            c.erase_table(key.0);
                            erased += 1;
                        }
                        assert!(c.usage() <= c.capacity());
                    }
                    assert!(hits > 0 && erased > 0);
                });
            }
        });
        assert_eq!(c.hits() + c.misses(), threads * 100_000);
    }
}
