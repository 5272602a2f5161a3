//! Iterators and snapshots through the public API, checked against a `BTreeMap` model:
//! forward, reverse, mixed ends, bounded ranges and prefixes, across flushes and reopens,
//! with snapshots held while the database changes.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;

use common::*;
use kevo::fs::MemFs;
use kevo::{Db, ErrorKind, ReadOptions, Snapshot, WriteBatch};
use proptest::prelude::*;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;
/// A key range as owned bounds.
type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

fn collect(iter: kevo::DbIter) -> Vec<(Vec<u8>, Vec<u8>)> {
    iter.map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect()
}

fn model_range(
    model: &Map,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let invalid = match (&lower, &upper) {
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u))
        | (Bound::Excluded(l), Bound::Included(u)) => l >= u,
        _ => false,
    };
    if invalid {
        return Vec::new();
    }
    model
        .range((lower, upper))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Checks every way of reading `db` (or `snap`) against `model`.
fn check_reads(
    read: &dyn Fn() -> ReadHandle,
    model: &Map,
    bounds: &[KeyRange],
    prefixes: &[Vec<u8>],
) {
    let all: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(collect(read().iter()), all, "forward");
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(collect_rev(read().iter()), reversed, "reverse");
    // Alternating ends meet in the middle without repeating or skipping.
    let mut it = read().iter();
    let (mut front, mut back) = (Vec::new(), Vec::new());
    let mut turn = 0;
    loop {
        let item = if turn % 3 == 2 {
            it.next_back()
        } else {
            it.next()
        };
        let Some(item) = item else { break };
        let (k, v) = item.unwrap();
        if turn % 3 == 2 {
            back.push((k.to_vec(), v.to_vec()))
        } else {
            front.push((k.to_vec(), v.to_vec()))
        }
        turn += 1;
    }
    back.reverse();
    front.extend(back);
    assert_eq!(front, all, "both ends");
    for (lower, upper) in bounds {
        let expected = model_range(model, lower.clone(), upper.clone());
        assert_eq!(
            collect(read().range((lower.clone(), upper.clone()))),
            expected,
            "range {lower:?}..{upper:?}"
        );
        let mut rev = expected;
        rev.reverse();
        assert_eq!(
            collect_rev(read().range((lower.clone(), upper.clone()))),
            rev,
            "reverse range {lower:?}..{upper:?}"
        );
    }
    // Seeks, within bounds and outside them, forward and back, and over returned keys.
    for (lower, upper) in bounds {
        let expected = model_range(model, lower.clone(), upper.clone());
        let owned = |kv: Option<kevo::Result<(kevo::Value, kevo::Value)>>| {
            kv.map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        };
        // One iterator reseeked up and down the key space, each end on its own.
        let mut forward = read().range((lower.clone(), upper.clone()));
        let mut backward = read().range((lower.clone(), upper.clone()));
        for target in [7u64, 0, 13, 3, 3, 10, 5, 1, 12].map(key) {
            forward.seek(&target);
            let first = expected.iter().find(|(k, _)| *k >= target).cloned();
            assert_eq!(
                owned(forward.next()),
                first,
                "seek {target:?} in {lower:?}..{upper:?}"
            );
            backward.seek_for_prev(&target);
            let last = expected.iter().rev().find(|(k, _)| *k <= target).cloned();
            assert_eq!(
                owned(backward.next_back()),
                last,
                "seek_for_prev {target:?}"
            );
        }
        // After a seek the front end stops at the back end.
        let mut both = read().range((lower.clone(), upper.clone()));
        let back = owned(both.next_back());
        both.seek(key(0));
        let mut rest: Vec<_> = std::iter::from_fn(|| owned(both.next())).collect();
        rest.extend(back);
        assert_eq!(rest, expected, "seek then meet in {lower:?}..{upper:?}");
    }
    for p in prefixes {
        let expected: Vec<_> = all
            .iter()
            .filter(|(k, _)| k.starts_with(p))
            .cloned()
            .collect();
        assert_eq!(collect(read().prefix(p)), expected, "prefix {p:?}");
    }
    for k in all_keys() {
        assert_eq!(
            read().get(&k).map(|v| v.to_vec()),
            model.get(&k).cloned(),
            "get {k:?}"
        );
    }
}

fn collect_rev(iter: kevo::DbIter) -> Vec<(Vec<u8>, Vec<u8>)> {
    iter.rev()
        .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect()
}

/// A database or a snapshot, read the same way.
enum ReadHandle {
    Db(Db),
    Snap(Snapshot),
}

impl ReadHandle {
    fn iter(&self) -> kevo::DbIter {
        match self {
            ReadHandle::Db(db) => db.iter(),
            ReadHandle::Snap(s) => s.iter(),
        }
    }
    fn range(&self, r: KeyRange) -> kevo::DbIter {
        match self {
            ReadHandle::Db(db) => db.range(r),
            ReadHandle::Snap(s) => s.range(r),
        }
    }
    fn prefix(&self, p: &[u8]) -> kevo::DbIter {
        match self {
            ReadHandle::Db(db) => db.prefix(p),
            ReadHandle::Snap(s) => s.prefix(p),
        }
    }
    fn get(&self, k: &[u8]) -> Option<kevo::Value> {
        match self {
            ReadHandle::Db(db) => db.get(k).unwrap(),
            ReadHandle::Snap(s) => s.get(k).unwrap(),
        }
    }
}

fn bound_strategy() -> impl Strategy<Value = Bound<Vec<u8>>> {
    let key = (0u64..14).prop_map(key);
    prop_oneof![
        Just(Bound::Unbounded),
        key.clone().prop_map(Bound::Included),
        key.prop_map(Bound::Excluded)
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Write(Op),
    Flush,
    Compact,
    Reopen,
    TakeSnapshot,
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let k = (0u64..12).prop_map(key);
    let v = proptest::collection::vec(any::<u8>(), 0..30);
    prop_oneof![
        6 => (k.clone(), v.clone()).prop_map(|(k, v)| Step::Write(Op::Put(k, v))),
        2 => k.clone().prop_map(|k| Step::Write(Op::Delete(k))),
        2 => proptest::collection::vec((k, proptest::option::of(v)), 1..4).prop_map(|e| Step::Write(Op::Batch(e))),
        1 => Just(Step::Flush),
        1 => Just(Step::Compact),
        1 => Just(Step::Reopen),
        1 => Just(Step::TakeSnapshot),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn iterators_and_snapshots_match_the_model_across_flushes_and_reopens(
        steps in proptest::collection::vec(step_strategy(), 1..50),
        bounds in proptest::collection::vec((bound_strategy(), bound_strategy()), 0..4),
        small_memtable: bool,
    ) {
        let fs = MemFs::new();
        let options = || memfs_options(&fs).memtable_size(if small_memtable { 1 << 10 } else { 1 << 20 });
        let mut db = Db::open(DIR, options()).unwrap();
        let mut model = Map::new();
        let mut snapshots: Vec<(Snapshot, Map)> = Vec::new();
        let prefixes = vec![b"key".to_vec(), b"key00".to_vec(), b"key01".to_vec(), b"nope".to_vec(), Vec::new()];
        for step in &steps {
            match step {
                Step::Write(op) => {
                    op.apply_to_db(&db).unwrap();
                    op.apply_to_model(&mut model);
                }
                Step::Flush => db.flush().unwrap(),
                Step::Compact => db.compact().unwrap(),
                Step::Reopen => {
                    // Snapshots do not survive a reopen; drop them first.
                    snapshots.clear();
                    drop(db);
                    db = Db::open(DIR, options()).unwrap();
                }
                Step::TakeSnapshot => snapshots.push((db.snapshot(), model.clone())),
            }
        }
        let handle = db.clone();
        check_reads(&|| ReadHandle::Db(handle.clone()), &model, &bounds, &prefixes);
        for (snap, expected) in &snapshots {
            let s = snap.clone();
            check_reads(&|| ReadHandle::Snap(s.clone()), expected, &bounds, &prefixes);
            let with_options = ReadOptions { snapshot: Some(snap.clone()), ..ReadOptions::default() };
            for k in all_keys() {
                prop_assert_eq!(db.get_opt(&k, &with_options).unwrap().map(|v| v.to_vec()), expected.get(&k).cloned());
            }
        }
    }
}

#[test]
fn an_iterator_keeps_its_view_while_writes_and_flushes_go_on() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    for i in 0..50u64 {
        db.put(key(i), b"before").unwrap();
    }
    let mut it = db.iter();
    let first = it.next().unwrap().unwrap();
    for i in 0..50u64 {
        db.put(key(i), b"after").unwrap();
    }
    db.delete(key(10)).unwrap();
    db.flush().unwrap();
    let rest: Vec<_> = it.map(|kv| kv.unwrap()).collect();
    assert_eq!(first.1.as_ref(), b"before");
    assert_eq!(rest.len(), 49, "the deletion after creation is not seen");
    assert!(rest.iter().all(|(_, v)| v.as_ref() == b"before"));
    assert!(db.iter().all(|kv| kv.unwrap().1.as_ref() == b"after"));
}

#[test]
fn readers_iterating_while_writers_commit_batches_always_see_the_invariant() {
    // Each batch moves one unit between two accounts: every consistent view sums to 1000.
    let fs = MemFs::new();
    let db = Db::open(
        DIR,
        memfs_options(&fs)
            .memtable_size(8 << 10)
            .sync_mode(kevo::SyncMode::None),
    )
    .unwrap();
    let accounts = 10u64;
    let mut init = WriteBatch::new();
    for a in 0..accounts {
        init.put(a.to_be_bytes(), 100u64.to_be_bytes());
    }
    db.write(init).unwrap();
    let balance = |v: &[u8]| u64::from_be_bytes(v.try_into().unwrap());
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let db = db.clone();
            s.spawn(move || {
                // Writers work on disjoint account pairs, so read-modify-write is safe.
                let (a, b) = (t * 2, t * 2 + 1);
                for i in 0..300u64 {
                    let snap = db.snapshot();
                    let va = balance(&snap.get(a.to_be_bytes()).unwrap().unwrap());
                    let vb = balance(&snap.get(b.to_be_bytes()).unwrap().unwrap());
                    let (from, to, vf, vt) = if i % 2 == 0 {
                        (a, b, va, vb)
                    } else {
                        (b, a, vb, va)
                    };
                    if vf == 0 {
                        continue;
                    }
                    let mut batch = WriteBatch::new();
                    batch.put(from.to_be_bytes(), (vf - 1).to_be_bytes());
                    batch.put(to.to_be_bytes(), (vt + 1).to_be_bytes());
                    db.write(batch).unwrap();
                }
            });
        }
        for _ in 0..2 {
            let db = db.clone();
            s.spawn(move || {
                for round in 0..200 {
                    let sum: u64 = if round % 2 == 0 {
                        db.iter().map(|kv| balance(&kv.unwrap().1)).sum()
                    } else {
                        db.iter().rev().map(|kv| balance(&kv.unwrap().1)).sum()
                    };
                    assert_eq!(sum, 1000, "an iterator saw half a batch");
                }
            });
        }
    });
}

#[test]
fn iterating_a_closed_database_reports_closed() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    db.put(b"k", b"v").unwrap();
    db.close().unwrap();
    let mut it = db.iter();
    assert_eq!(it.next().unwrap().unwrap_err().kind(), ErrorKind::Closed);
    assert!(it.next().is_none());
}
