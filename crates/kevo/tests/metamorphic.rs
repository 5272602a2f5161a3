//! Metamorphic test: one random sequence of operations (puts, deletes, batches, flushes,
//! compactions, reopens, snapshot reads, gets and range scans) runs against several option
//! sets on MemFs — tiny and large memtables, 64-byte and 4 KiB blocks, leveled and tiered
//! compaction, no compression, LZ4 and Zstd, bloom filters on and off, no block cache and a
//! 1 MiB one, 1 and 3 background threads. The options change how the data is laid out, never
//! what a read returns: every configuration must give exactly the answers of a `BTreeMap`
//! model (and so of each other), including after reopens.
//!
//! `KEVO_METAMORPHIC_CASES` sets the number of random sequences (default 24).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::ops::Bound;

use common::{DIR, Model, Op, memfs_options};
use kevo::fs::MemFs;
use kevo::{CompactionStyle, Compression, Db, Options, Snapshot};
use proptest::prelude::*;

/// A key range as owned bounds.
type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Keys of the sequences: 40 keys, so a key is often overwritten or deleted.
fn mkey(i: u8) -> Vec<u8> {
    format!("k{:02}", i % 40).into_bytes()
}

fn value(seed: u16, len: usize) -> Vec<u8> {
    let mut v = format!("v{seed}-").into_bytes();
    v.resize(len.max(v.len()), b'a' + (seed % 26) as u8);
    v
}

#[derive(Debug, Clone)]
enum Step {
    Write(Op),
    Get(u8),
    Range(KeyRange),
    Flush,
    Compact,
    Reopen,
    /// Takes a snapshot (at most two are held; the oldest is released first).
    TakeSnapshot,
    /// Reads every held snapshot in full.
    ReadSnapshots,
}

fn bound_strategy() -> impl Strategy<Value = Bound<Vec<u8>>> {
    let key = (0u8..42).prop_map(mkey);
    prop_oneof![
        Just(Bound::Unbounded),
        key.clone().prop_map(Bound::Included),
        key.prop_map(Bound::Excluded)
    ]
}

fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
    (any::<u16>(), prop_oneof![0usize..16, 16usize..400]).prop_map(|(s, l)| value(s, l))
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let put = (0u8..40, value_strategy()).prop_map(|(k, v)| Step::Write(Op::Put(mkey(k), v)));
    let delete = (0u8..40).prop_map(|k| Step::Write(Op::Delete(mkey(k))));
    let batch = prop::collection::vec(
        (0u8..40, prop::option::weighted(0.7, value_strategy())),
        1..6,
    )
    .prop_map(|entries| {
        Step::Write(Op::Batch(
            entries.into_iter().map(|(k, v)| (mkey(k), v)).collect(),
        ))
    });
    prop_oneof![
        12 => put,
        4 => delete,
        4 => batch,
        3 => (0u8..42).prop_map(Step::Get),
        2 => (bound_strategy(), bound_strategy()).prop_map(Step::Range),
        1 => Just(Step::Flush),
        1 => Just(Step::Compact),
        1 => Just(Step::Reopen),
        1 => Just(Step::TakeSnapshot),
        1 => Just(Step::ReadSnapshots),
    ]
}

/// The option sets compared. Together they take every value of every dimension.
fn configurations(fs: &MemFs) -> Vec<(&'static str, Options)> {
    let base = || memfs_options(fs);
    vec![
        (
            "1KiB memtable, 64B blocks, leveled, no compression, bloom, no cache, 1 thread",
            base()
                .memtable_size(1 << 10)
                .block_size(64)
                .compaction_style(CompactionStyle::Leveled)
                .compression(Compression::None)
                .bloom_bits_per_key(10)
                .block_cache_size(0)
                .background_threads(1),
        ),
        (
            "1MiB memtable, 4KiB blocks, tiered, LZ4, no bloom, 1MiB cache, 3 threads",
            base()
                .memtable_size(1 << 20)
                .block_size(4096)
                .compaction_style(CompactionStyle::Tiered)
                .compression(Compression::Lz4)
                .bloom_bits_per_key(0)
                .block_cache_size(1 << 20)
                .background_threads(3),
        ),
        (
            "1KiB memtable, 4KiB blocks, tiered, Zstd(3), bloom, 1MiB cache, 1 thread",
            base()
                .memtable_size(1 << 10)
                .block_size(4096)
                .compaction_style(CompactionStyle::Tiered)
                .compression(Compression::Zstd(3))
                .bloom_bits_per_key(10)
                .block_cache_size(1 << 20)
                .background_threads(1),
        ),
        (
            "1MiB memtable, 64B blocks, leveled, Zstd(1), no bloom, no cache, 3 threads",
            base()
                .memtable_size(1 << 20)
                .block_size(64)
                .compaction_style(CompactionStyle::Leveled)
                .compression(Compression::Zstd(1))
                .bloom_bits_per_key(0)
                .block_cache_size(0)
                .background_threads(3),
        ),
        (
            "1KiB memtable, 64B blocks, tiered, LZ4, no bloom, 1MiB cache, 3 threads",
            base()
                .memtable_size(1 << 10)
                .block_size(64)
                .compaction_style(CompactionStyle::Tiered)
                .compression(Compression::Lz4)
                .bloom_bits_per_key(0)
                .block_cache_size(1 << 20)
                .background_threads(3),
        ),
        (
            "1KiB memtable, 4KiB blocks, leveled, no compression, bloom, 1MiB cache, 3 threads",
            base()
                .memtable_size(1 << 10)
                .block_size(4096)
                .compaction_style(CompactionStyle::Leveled)
                .compression(Compression::None)
                .bloom_bits_per_key(10)
                .block_cache_size(1 << 20)
                .background_threads(3),
        ),
    ]
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// One answer of a read, as the model or a database gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Get(Vec<u8>, Option<Vec<u8>>),
    Scan(&'static str, Pairs),
}

fn collect(iter: kevo::DbIter, reverse: bool) -> Pairs {
    let owned = |kv: kevo::Result<(kevo::Value, kevo::Value)>| {
        let (k, v) = kv.unwrap();
        (k.to_vec(), v.to_vec())
    };
    if reverse {
        iter.rev().map(owned).collect()
    } else {
        iter.map(owned).collect()
    }
}

fn model_range(model: &Model, (lower, upper): &KeyRange) -> Pairs {
    let empty = match (lower, upper) {
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u))
        | (Bound::Excluded(l), Bound::Included(u)) => l >= u,
        _ => false,
    };
    if empty {
        return Vec::new();
    }
    model
        .range((lower.clone(), upper.clone()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn reversed(mut pairs: Pairs) -> Pairs {
    pairs.reverse();
    pairs
}

/// The ranges every full check reads.
fn fixed_ranges() -> Vec<KeyRange> {
    vec![
        (Bound::Included(mkey(5)), Bound::Excluded(mkey(17))),
        (Bound::Excluded(mkey(20)), Bound::Unbounded),
        (Bound::Unbounded, Bound::Included(mkey(9))),
    ]
}

/// The answers of a full read (forward and reverse scans, every get, a few ranges).
fn full_read_model(model: &Model, out: &mut Vec<Answer>) {
    let all: Pairs = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    out.push(Answer::Scan("forward", all.clone()));
    out.push(Answer::Scan("reverse", reversed(all)));
    for r in fixed_ranges() {
        let expected = model_range(model, &r);
        out.push(Answer::Scan("range", expected.clone()));
        out.push(Answer::Scan("range reverse", reversed(expected)));
    }
    for k in 0..42 {
        let k = mkey(k);
        out.push(Answer::Get(k.clone(), model.get(&k).cloned()));
    }
}

/// Reads of a database or a snapshot.
trait Reader {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    fn range(&self, range: KeyRange) -> kevo::DbIter;
}

impl Reader for Db {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        Db::get(self, key).unwrap().map(|v| v.to_vec())
    }
    fn range(&self, range: KeyRange) -> kevo::DbIter {
        Db::range(self, range)
    }
}

impl Reader for Snapshot {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        Snapshot::get(self, key).unwrap().map(|v| v.to_vec())
    }
    fn range(&self, range: KeyRange) -> kevo::DbIter {
        Snapshot::range(self, range)
    }
}

fn full_read(reader: &dyn Reader, out: &mut Vec<Answer>) {
    let all = (Bound::Unbounded, Bound::Unbounded);
    out.push(Answer::Scan(
        "forward",
        collect(reader.range(all.clone()), false),
    ));
    out.push(Answer::Scan("reverse", collect(reader.range(all), true)));
    for r in fixed_ranges() {
        out.push(Answer::Scan(
            "range",
            collect(reader.range(r.clone()), false),
        ));
        out.push(Answer::Scan(
            "range reverse",
            collect(reader.range(r), true),
        ));
    }
    for k in 0..42 {
        let k = mkey(k);
        out.push(Answer::Get(k.clone(), reader.get(&k)));
    }
}

/// The answers the model gives to `steps`.
fn model_answers(steps: &[Step]) -> Vec<Answer> {
    let mut model = Model::new();
    let mut snapshots: Vec<Model> = Vec::new();
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Write(op) => op.apply_to_model(&mut model),
            Step::Get(k) => out.push(Answer::Get(mkey(*k), model.get(&mkey(*k)).cloned())),
            Step::Range(r) => {
                let expected = model_range(&model, r);
                out.push(Answer::Scan("range", expected.clone()));
                out.push(Answer::Scan("range reverse", reversed(expected)));
            }
            Step::Flush | Step::Compact => {}
            Step::Reopen => {
                snapshots.clear();
                full_read_model(&model, &mut out);
            }
            Step::TakeSnapshot => {
                if snapshots.len() == 2 {
                    snapshots.remove(0);
                }
                snapshots.push(model.clone());
            }
            Step::ReadSnapshots => {
                for snapshot in &snapshots {
                    full_read_model(snapshot, &mut out);
                }
            }
        }
    }
    full_read_model(&model, &mut out);
    snapshots.clear();
    full_read_model(&model, &mut out);
    out
}

/// The answers a database with `options` gives to `steps`, and the tables it ended with.
fn db_answers(steps: &[Step], options: &Options) -> (Vec<Answer>, usize) {
    let mut db = Db::open(DIR, options.clone()).unwrap();
    let mut snapshots: Vec<Snapshot> = Vec::new();
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Write(op) => op.apply_to_db(&db).unwrap(),
            Step::Get(k) => out.push(Answer::Get(mkey(*k), Reader::get(&db, &mkey(*k)))),
            Step::Range(r) => {
                out.push(Answer::Scan("range", collect(db.range(r.clone()), false)));
                out.push(Answer::Scan(
                    "range reverse",
                    collect(db.range(r.clone()), true),
                ));
            }
            Step::Flush => db.flush().unwrap(),
            Step::Compact => db.compact().unwrap(),
            Step::Reopen => {
                snapshots.clear();
                db.close().unwrap();
                db = Db::open(DIR, options.clone()).unwrap();
                full_read(&db, &mut out);
            }
            Step::TakeSnapshot => {
                if snapshots.len() == 2 {
                    snapshots.remove(0);
                }
                snapshots.push(db.snapshot());
            }
            Step::ReadSnapshots => {
                for snapshot in &snapshots {
                    full_read(snapshot, &mut out);
                }
            }
        }
    }
    full_read(&db, &mut out);
    snapshots.clear();
    db.close().unwrap();
    // The final reopen: every configuration reads the same data back from its files.
    let db = Db::open(DIR, options.clone()).unwrap();
    full_read(&db, &mut out);
    let tables = db.lsm_shape().levels.iter().map(|l| l.tables).sum();
    db.close().unwrap();
    (out, tables)
}

fn cases() -> u32 {
    std::env::var("KEVO_METAMORPHIC_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_configuration_gives_the_models_answers(
        steps in prop::collection::vec(step_strategy(), 1..150)
    ) {
        let expected = model_answers(&steps);
        let mut tables = Vec::new();
        for i in 0..configurations(&MemFs::new()).len() {
            // Each configuration gets a file system of its own.
            let (name, options) = configurations(&MemFs::new()).swap_remove(i);
            let (answers, t) = db_answers(&steps, &options);
            tables.push(t);
            prop_assert_eq!(answers.len(), expected.len(), "{}: answer count", name);
            for (i, (got, want)) in answers.iter().zip(&expected).enumerate() {
                prop_assert_eq!(got, want, "{}: answer {} differs", name, i);
            }
        }
        eprintln!(
            "{} steps, {} answers, tables at the end per configuration: {tables:?}",
            steps.len(),
            expected.len()
        );
    }
}
