//! Optimistic transactions: read-your-own-writes, lost updates prevented, write skew allowed
//! under snapshot isolation and prevented when serializable, concurrent transfers keep the
//! total, conflicts counted.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;
use kevo::fs::MemFs;
use kevo::{Db, ErrorKind};

fn number(v: Option<kevo::Value>) -> i64 {
    v.map_or(0, |v| std::str::from_utf8(&v).unwrap().parse().unwrap())
}

#[test]
fn a_transaction_reads_its_own_writes_and_commits_them_atomically() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    db.put(b"a", b"1").unwrap();
    let mut tx = db.transaction();
    tx.put(b"a", b"2");
    tx.put(b"b", b"3");
    tx.delete(b"c");
    assert_eq!(tx.get(b"a").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(
        db.get(b"a").unwrap().as_deref(),
        Some(&b"1"[..]),
        "not visible before commit"
    );
    assert_eq!(db.get(b"b").unwrap(), None);
    tx.commit().unwrap();
    assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b"3"[..]));
}

#[test]
fn rollback_and_drop_discard_everything() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    let mut tx = db.transaction();
    tx.put(b"x", b"1");
    tx.rollback();
    let mut tx = db.transaction();
    tx.put(b"y", b"1");
    drop(tx);
    assert_eq!(db.get(b"x").unwrap(), None);
    assert_eq!(db.get(b"y").unwrap(), None);
}

#[test]
fn a_lost_update_is_prevented() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    db.put(b"counter", b"10").unwrap();
    let mut first = db.transaction();
    let mut second = db.transaction();
    let a = number(first.get(b"counter").unwrap());
    let b = number(second.get(b"counter").unwrap());
    first.put(b"counter", (a + 1).to_string());
    second.put(b"counter", (b + 1).to_string());
    first.commit().unwrap();
    let err = second.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Concurrency, "{err}");
    assert_eq!(
        number(db.get(b"counter").unwrap()),
        11,
        "the refused commit applied nothing"
    );
    // A plain write after a transaction began conflicts too.
    let mut third = db.transaction();
    third.put(b"counter", b"99");
    db.put(b"counter", b"12").unwrap();
    assert_eq!(third.commit().unwrap_err().kind(), ErrorKind::Concurrency);
    assert_eq!(number(db.get(b"counter").unwrap()), 12);
    let metrics = db.metrics();
    assert_eq!(
        (metrics.transaction_commits, metrics.transaction_conflicts),
        (1, 2)
    );
}

/// Two doctors on call; each may go off call if the other stays. Both read both, each
/// writes only their own row.
fn write_skew(serializable: bool) -> (kevo::Result<()>, kevo::Result<()>, Db) {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    db.put(b"alice", b"1").unwrap();
    db.put(b"bob", b"1").unwrap();
    let begin = || {
        if serializable {
            db.serializable_transaction()
        } else {
            db.transaction()
        }
    };
    let (mut t1, mut t2) = (begin(), begin());
    for (tx, me) in [(&mut t1, &b"alice"[..]), (&mut t2, &b"bob"[..])] {
        let on_call = number(tx.get(b"alice").unwrap()) + number(tx.get(b"bob").unwrap());
        if on_call >= 2 {
            tx.put(me, b"0");
        }
    }
    (t1.commit(), t2.commit(), db)
}

#[test]
fn write_skew_is_allowed_under_snapshot_isolation_and_prevented_when_serializable() {
    let (r1, r2, db) = write_skew(false);
    r1.unwrap();
    r2.unwrap();
    let on_call = number(db.get(b"alice").unwrap()) + number(db.get(b"bob").unwrap());
    assert_eq!(
        on_call, 0,
        "snapshot isolation allows the skew (documented)"
    );

    let (r1, r2, db) = write_skew(true);
    r1.unwrap();
    assert_eq!(r2.unwrap_err().kind(), ErrorKind::Concurrency);
    let on_call = number(db.get(b"alice").unwrap()) + number(db.get(b"bob").unwrap());
    assert_eq!(on_call, 1, "serializable keeps someone on call");
}

#[test]
fn concurrent_transfers_keep_the_total_and_every_conflict_is_retried() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs).sync_mode(kevo::SyncMode::None)).unwrap();
    let accounts = 5u64;
    for a in 0..accounts {
        db.put(format!("acct{a}"), b"100").unwrap();
    }
    let conflicts = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (db, conflicts) = (&db, &conflicts);
            s.spawn(move || {
                for i in 0..100u64 {
                    let (from, to) = ((t + i) % accounts, (t + 2 * i + 1) % accounts);
                    if from == to {
                        continue;
                    }
                    loop {
                        let mut tx = db.transaction();
                        let a = number(tx.get(format!("acct{from}")).unwrap());
                        let b = number(tx.get(format!("acct{to}")).unwrap());
                        tx.put(format!("acct{from}"), (a - 1).to_string());
                        tx.put(format!("acct{to}"), (b + 1).to_string());
                        match tx.commit() {
                            Ok(()) => break,
                            Err(e) if e.kind() == ErrorKind::Concurrency => {
                                conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            });
        }
        // A reader checks the invariant through snapshots meanwhile.
        s.spawn(|| {
            for _ in 0..200 {
                let snap = db.snapshot();
                let total: i64 = (0..accounts)
                    .map(|a| number(snap.get(format!("acct{a}")).unwrap()))
                    .sum();
                assert_eq!(total, 500);
            }
        });
    });
    let total: i64 = (0..accounts)
        .map(|a| number(db.get(format!("acct{a}")).unwrap()))
        .sum();
    assert_eq!(total, 500);
    let metrics = db.metrics();
    assert_eq!(
        metrics.transaction_conflicts,
        conflicts.load(std::sync::atomic::Ordering::Relaxed)
    );
}

fn keys_of(iter: kevo::TxnIter<'_>) -> Vec<String> {
    iter.map(|kv| String::from_utf8(kv.unwrap().0.to_vec()).unwrap())
        .collect()
}

#[test]
fn scans_in_a_transaction_merge_its_own_writes_with_the_snapshot_both_ways() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    for k in ["a", "c", "e", "g"] {
        db.put(k, format!("db-{k}")).unwrap();
    }
    db.flush().unwrap();
    let mut tx = db.transaction();
    tx.put("b", "tx-b");
    tx.put("c", "tx-c");
    tx.delete("e");
    tx.put("h", "tx-h");
    tx.delete("zz");
    // Written after the transaction began: invisible to it.
    db.put("d", "late").unwrap();
    assert_eq!(keys_of(tx.iter()), ["a", "b", "c", "g", "h"]);
    assert_eq!(keys_of(tx.range("b".."g")), ["b", "c"]);
    let reversed: Vec<String> = tx
        .iter()
        .rev()
        .map(|kv| String::from_utf8(kv.unwrap().0.to_vec()).unwrap())
        .collect();
    assert_eq!(reversed, ["h", "g", "c", "b", "a"]);
    // Alternating ends meet without repeating or skipping a key.
    let mut it = tx.iter();
    let mut seen = Vec::new();
    for turn in 0.. {
        let item = if turn % 2 == 0 {
            it.next()
        } else {
            it.next_back()
        };
        match item {
            Some(kv) => seen.push(String::from_utf8(kv.unwrap().0.to_vec()).unwrap()),
            None => break,
        }
    }
    drop(it);
    seen.sort();
    assert_eq!(seen, ["a", "b", "c", "g", "h"]);
    let values: Vec<_> = tx.prefix("c").map(|kv| kv.unwrap().1.to_vec()).collect();
    assert_eq!(values, [b"tx-c".to_vec()]);
    tx.commit().unwrap();
    let after: Vec<String> = db
        .iter()
        .map(|kv| String::from_utf8(kv.unwrap().0.to_vec()).unwrap())
        .collect();
    assert_eq!(after, ["a", "b", "c", "d", "g", "h"]);
}

/// A transaction that scanned a range, then writes; meanwhile another write lands at `key`.
fn scan_then_write(db: &Db, serializable: bool, take: usize, key: &str) -> kevo::Result<()> {
    let mut tx = if serializable {
        db.serializable_transaction()
    } else {
        db.transaction()
    };
    let seen = tx.prefix("acct").take(take).count();
    assert!(seen <= take);
    db.put(key, "1").unwrap();
    tx.put("summary", seen.to_string());
    tx.commit()
}

#[test]
fn a_phantom_in_a_scanned_range_fails_a_serializable_commit_only() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    for i in [1, 3, 5, 7] {
        db.put(format!("acct{i}"), "1").unwrap();
    }
    let conflicts = |db: &Db| db.metrics().transaction_conflicts;
    // A new key inside the scanned range (a phantom): a conflict when serializable.
    let err = scan_then_write(&db, true, usize::MAX, "acct4").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Concurrency);
    assert_eq!(conflicts(&db), 1);
    // Snapshot isolation does not look at reads.
    scan_then_write(&db, false, usize::MAX, "acct6").unwrap();
    // Outside the range: no conflict.
    scan_then_write(&db, true, usize::MAX, "other").unwrap();
    // A scan stopped after two keys (acct1, acct3) covered only up to acct3.
    scan_then_write(&db, true, 2, "acct8").unwrap();
    let err = scan_then_write(&db, true, 2, "acct2").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Concurrency);
    assert_eq!(conflicts(&db), 2);
    // A change that reached a table (flushed) is found there too.
    let mut tx = db.serializable_transaction();
    assert_eq!(tx.prefix("acct").count(), 8);
    db.delete("acct5").unwrap();
    db.flush().unwrap();
    tx.put("summary", "8");
    assert_eq!(tx.commit().unwrap_err().kind(), ErrorKind::Concurrency);
}
