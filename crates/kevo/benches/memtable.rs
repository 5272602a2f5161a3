//! Memtable insert and lookup: kevo's arena skip list against `crossbeam-skiplist` and a
//! `BTreeMap` behind a read-write lock, on the same internal keys, in the same run.
//!
//! `cargo bench -p kevo --bench memtable`

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use kevo::key::{self, ValueKind};
use kevo::memtable::MemTable;
use parking_lot::RwLock;

const ENTRIES: usize = 100_000;
const VALUE: [u8; 100] = [0x5a; 100];

/// An internal key ordered as the memtable orders it, for the baselines.
#[derive(Clone, PartialEq, Eq)]
struct InternalKey(Vec<u8>);

impl Ord for InternalKey {
    fn cmp(&self, other: &Self) -> Ordering {
        key::compare(&self.0, &other.0)
    }
}

impl PartialOrd for InternalKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// 16-byte user keys in a scrambled order.
fn user_keys() -> Vec<[u8; 16]> {
    (0..ENTRIES as u64)
        .map(|i| {
            let scrambled = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&scrambled.to_be_bytes());
            k[8..].copy_from_slice(&i.to_be_bytes());
            k
        })
        .collect()
}

fn internal(user: &[u8], seq: u64) -> InternalKey {
    let mut k = Vec::with_capacity(user.len() + 8);
    key::append_internal_key(&mut k, user, seq, ValueKind::Put);
    InternalKey(k)
}

fn fill_kevo(keys: &[[u8; 16]]) -> MemTable {
    let m = MemTable::new();
    for (i, k) in keys.iter().enumerate() {
        m.add(i as u64 + 1, ValueKind::Put, k, &VALUE);
    }
    m
}

fn fill_crossbeam(keys: &[[u8; 16]]) -> crossbeam_skiplist::SkipMap<InternalKey, Vec<u8>> {
    let m = crossbeam_skiplist::SkipMap::new();
    for (i, k) in keys.iter().enumerate() {
        m.insert(internal(k, i as u64 + 1), VALUE.to_vec());
    }
    m
}

fn fill_btree(keys: &[[u8; 16]]) -> RwLock<BTreeMap<InternalKey, Vec<u8>>> {
    let m = RwLock::new(BTreeMap::new());
    for (i, k) in keys.iter().enumerate() {
        m.write().insert(internal(k, i as u64 + 1), VALUE.to_vec());
    }
    m
}

fn insert(c: &mut Criterion) {
    let keys = user_keys();
    let mut group = c.benchmark_group("memtable_insert_100k");
    group.throughput(Throughput::Elements(ENTRIES as u64));
    group.sample_size(10);
    group.bench_function("kevo_skiplist", |b| {
        b.iter_batched(|| (), |()| fill_kevo(&keys), BatchSize::PerIteration);
    });
    group.bench_function("crossbeam_skiplist", |b| {
        b.iter_batched(|| (), |()| fill_crossbeam(&keys), BatchSize::PerIteration);
    });
    group.bench_function("btreemap_rwlock", |b| {
        b.iter_batched(|| (), |()| fill_btree(&keys), BatchSize::PerIteration);
    });
    group.finish();
}

fn lookup(c: &mut Criterion) {
    let keys = user_keys();
    let (kevo, crossbeam, btree) = (fill_kevo(&keys), fill_crossbeam(&keys), fill_btree(&keys));
    let probes: Vec<&[u8; 16]> = keys.iter().step_by(7).collect();
    let mut group = c.benchmark_group("memtable_get");
    group.throughput(Throughput::Elements(probes.len() as u64));
    group.bench_function("kevo_skiplist", |b| {
        b.iter(|| {
            for k in &probes {
                black_box(kevo.get(&k[..], u64::MAX >> 8));
            }
        });
    });
    group.bench_function("crossbeam_skiplist", |b| {
        b.iter(|| {
            for k in &probes {
                let seek = InternalKey(key::seek_key(&k[..], u64::MAX >> 8));
                let hit = crossbeam.lower_bound(std::ops::Bound::Included(&seek));
                black_box(
                    hit.filter(|e| key::user_key(&e.key().0) == &k[..])
                        .map(|e| e.value().clone()),
                );
            }
        });
    });
    group.bench_function("btreemap_rwlock", |b| {
        b.iter(|| {
            for k in &probes {
                let seek = InternalKey(key::seek_key(&k[..], u64::MAX >> 8));
                let map = btree.read();
                let hit = map.range(seek..).next();
                black_box(
                    hit.filter(|(ik, _)| key::user_key(&ik.0) == &k[..])
                        .map(|(_, v)| v.clone()),
                );
            }
        });
    });
    group.finish();
}

/// Times `iters` rounds of `reader` while a thread calls `writer` with fresh sequence
/// numbers until the rounds are done.
fn measure(
    writer: impl Fn(u64) + Sync,
    reader: impl Fn() + Sync,
    iters: u64,
) -> std::time::Duration {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut seq = 1u64 << 40;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                writer(seq);
                seq += 1;
            }
        });
        let start = std::time::Instant::now();
        for _ in 0..iters {
            reader();
        }
        let elapsed = start.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        elapsed
    })
}

/// Lookups while another thread keeps inserting: the case a memtable is built for. The
/// lock-free skip lists let readers go on; the `BTreeMap` readers wait for the write lock.
fn lookup_under_writes(c: &mut Criterion) {
    let keys = user_keys();
    let probes: Vec<&[u8; 16]> = keys.iter().step_by(7).collect();
    let mut group = c.benchmark_group("memtable_get_with_concurrent_writer");
    group.throughput(Throughput::Elements(probes.len() as u64));
    group.sample_size(10);

    let kevo = fill_kevo(&keys);
    group.bench_function("kevo_skiplist", |b| {
        b.iter_custom(|iters| {
            measure(
                |seq| kevo.add(seq, ValueKind::Put, &seq.to_be_bytes(), &VALUE),
                || {
                    for k in &probes {
                        black_box(kevo.get(&k[..], u64::MAX >> 8));
                    }
                },
                iters,
            )
        });
    });
    let crossbeam = fill_crossbeam(&keys);
    group.bench_function("crossbeam_skiplist", |b| {
        b.iter_custom(|iters| {
            measure(
                |seq| {
                    crossbeam.insert(internal(&seq.to_be_bytes(), seq), VALUE.to_vec());
                },
                || {
                    for k in &probes {
                        let seek = InternalKey(key::seek_key(&k[..], u64::MAX >> 8));
                        let hit = crossbeam.lower_bound(std::ops::Bound::Included(&seek));
                        black_box(
                            hit.filter(|e| key::user_key(&e.key().0) == &k[..])
                                .map(|e| e.value().clone()),
                        );
                    }
                },
                iters,
            )
        });
    });
    let btree = fill_btree(&keys);
    group.bench_function("btreemap_rwlock", |b| {
        b.iter_custom(|iters| {
            measure(
                |seq| {
                    btree
                        .write()
                        .insert(internal(&seq.to_be_bytes(), seq), VALUE.to_vec());
                },
                || {
                    for k in &probes {
                        let seek = InternalKey(key::seek_key(&k[..], u64::MAX >> 8));
                        let map = btree.read();
                        let hit = map.range(seek..).next();
                        black_box(
                            hit.filter(|(ik, _)| key::user_key(&ik.0) == &k[..])
                                .map(|(_, v)| v.clone()),
                        );
                    }
                },
                iters,
            )
        });
    });
    group.finish();
}

criterion_group!(benches, insert, lookup, lookup_under_writes);
criterion_main!(benches);
