//! Table reads: block seek, table get through the block cache (hit) and from the file
//! (miss: read, verify, decompress), and a get the bloom filter answers.
//!
//! `cargo bench -p kevo --bench table`

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kevo::Compression;
use kevo::FilterPolicy;
use kevo::fs::OsFs;
use kevo::iter::InternalIterator;
use kevo::key::{self, ValueKind};
use kevo::sst::builder::{TableBuilder, TableOptions};
use kevo::sst::table::{Table, TableBlockCache};

const ENTRIES: u64 = 100_000;

fn user_key(i: u64) -> Vec<u8> {
    format!("user:{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 1).into_bytes()
}

/// Writes a table of `ENTRIES` keys with 100-byte values; returns the sorted user keys.
fn build(dir: &Path, compression: Compression) -> Vec<Vec<u8>> {
    let mut users: Vec<Vec<u8>> = (0..ENTRIES).map(user_key).collect();
    users.sort();
    let options = TableOptions {
        block_size: 16 << 10,
        restart_interval: 16,
        compression,
        filter_policy: FilterPolicy::BitsPerKey(10.0),
        prefix_extractor: None,
    };
    let fs = OsFs::new();
    let mut builder =
        TableBuilder::create(&fs, &dir.join("000001.sst"), 1, options).expect("create");
    let value = b"value:".repeat(17);
    for (i, u) in users.iter().enumerate() {
        let mut k = Vec::new();
        key::append_internal_key(&mut k, u, i as u64 + 1, ValueKind::Put);
        builder.add(&k, &value[..100]).expect("add");
    }
    builder.finish().expect("finish");
    users
}

fn probes(users: &[Vec<u8>]) -> Vec<Vec<u8>> {
    users.iter().step_by(97).cloned().collect()
}

fn table_get(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let users = build(dir.path(), Compression::Lz4);
    let probes = probes(&users);
    let path = dir.path().join("000001.sst");
    let fs = OsFs::new();
    let cached = Table::open(
        &fs,
        &path,
        1,
        Some(Arc::new(TableBlockCache::new(256 << 20))),
    )
    .expect("open");
    let uncached = Table::open(&fs, &path, 1, None).expect("open");
    let absent: Vec<Vec<u8>> = probes.iter().map(|p| [&p[..], b"~"].concat()).collect();

    let mut group = c.benchmark_group("table_get_100k_lz4");
    group.throughput(Throughput::Elements(probes.len() as u64));
    group.bench_function("block_cache_hit", |b| {
        b.iter(|| {
            for p in &probes {
                black_box(cached.get(p, u64::MAX >> 8).expect("get"));
            }
        });
    });
    group.bench_function("block_cache_miss", |b| {
        b.iter(|| {
            for p in &probes {
                black_box(uncached.get(p, u64::MAX >> 8).expect("get"));
            }
        });
    });
    group.bench_function("absent_key_filtered", |b| {
        b.iter(|| {
            for p in &absent {
                black_box(uncached.get(p, u64::MAX >> 8).expect("get"));
            }
        });
    });
    group.finish();
}

fn block_seek(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let users = build(dir.path(), Compression::None);
    let probes = probes(&users);
    let table = Arc::new(
        Table::open(
            &OsFs::new(),
            &dir.path().join("000001.sst"),
            1,
            Some(Arc::new(TableBlockCache::new(256 << 20))),
        )
        .expect("open"),
    );
    let targets: Vec<Vec<u8>> = probes
        .iter()
        .map(|p| key::seek_key(p, u64::MAX >> 8))
        .collect();
    let mut iter = table.iter();
    let mut group = c.benchmark_group("table_seek_100k");
    group.throughput(Throughput::Elements(targets.len() as u64));
    group.bench_function("seek_then_next", |b| {
        b.iter(|| {
            for t in &targets {
                iter.seek(t);
                black_box(iter.key());
                iter.next();
            }
        });
    });
    group.finish();
}

criterion_group!(benches, table_get, block_seek);
criterion_main!(benches);
