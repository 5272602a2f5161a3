//! A concurrency stress test: transactions moving money between accounts, batch writers
//! churning other keys, readers iterating forward and back, snapshot holders, and one thread
//! forcing flushes and compactions, all at once over tiny memtables and tables (so flushes
//! and compactions run all the time, on three background threads), for a bounded time.
//!
//! Invariants checked throughout: every iterator, snapshot and transaction sees the accounts
//! sum to the same total; a snapshot reads the same thing twice; the churn keys always hold
//! a value their writer wrote, in order. At the end, after a reopen, the total holds.
//!
//! `KEVO_STRESS_MILLIS` sets the duration (default 1500 ms).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use kevo::fs::MemFs;
use kevo::{Db, ErrorKind, SyncMode, WriteBatch};

const ACCOUNTS: u64 = 16;
const START: u64 = 1_000;
const TOTAL: u64 = ACCOUNTS * START;

fn account(i: u64) -> Vec<u8> {
    format!("acct{i:03}").into_bytes()
}

fn amount(v: &[u8]) -> u64 {
    u64::from_be_bytes(v.try_into().unwrap())
}

/// The sum of the accounts an iterator yields (other keys are skipped).
fn sum(iter: impl Iterator<Item = kevo::Result<(kevo::Value, kevo::Value)>>) -> u64 {
    iter.map(|kv| kv.unwrap())
        .filter(|(k, _)| k.starts_with(b"acct"))
        .map(|(_, v)| amount(&v))
        .sum()
}

fn millis() -> u64 {
    std::env::var("KEVO_STRESS_MILLIS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500)
}

/// Moves one unit between two accounts in a transaction; returns whether it committed.
fn transfer(db: &Db, from: u64, to: u64) -> bool {
    let mut tx = db.transaction();
    let a = amount(&tx.get(account(from)).unwrap().unwrap());
    let b = amount(&tx.get(account(to)).unwrap().unwrap());
    // A transaction's own view sums to the total too.
    assert_eq!(sum(tx.prefix("acct")), TOTAL, "a transaction's view");
    if a == 0 {
        return false;
    }
    tx.put(account(from), (a - 1).to_be_bytes());
    tx.put(account(to), (b + 1).to_be_bytes());
    match tx.commit() {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::Concurrency => false,
        Err(e) => panic!("commit: {e}"),
    }
}

/// Writer `w` counts its keys up in batches, and puts and deletes a few others.
fn churn(db: &Db, w: u64, stop: &AtomicBool) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let mut batch = WriteBatch::new();
        for k in 0..8u64 {
            batch.put(format!("churn{w}-{k}"), n.to_be_bytes());
        }
        if n.is_multiple_of(5) {
            batch.delete(format!("gone{w}-{}", n % 3));
        } else {
            batch.put(format!("gone{w}-{}", n % 3), [0u8; 200]);
        }
        db.write(batch).unwrap();
    }
}

/// Scans (forward or back) and snapshots until `stop`, checking the invariants.
fn read_and_check(db: &Db, forward: bool, stop: &AtomicBool, checks: &AtomicU64) {
    let mut last_seen = [0u64; 2];
    while !stop.load(Ordering::Relaxed) {
        let total = if forward {
            sum(db.iter())
        } else {
            sum(db.iter().rev())
        };
        assert_eq!(total, TOTAL, "a whole scan");
        let snap = db.snapshot();
        assert_eq!(sum(snap.prefix("acct")), TOTAL, "a snapshot");
        let first: Vec<_> = snap.iter().map(|kv| kv.unwrap()).collect();
        let again: Vec<_> = snap.iter().map(|kv| kv.unwrap()).collect();
        assert_eq!(first, again, "a snapshot reads the same twice");
        for (w, seen) in last_seen.iter_mut().enumerate() {
            let now = snap
                .get(format!("churn{w}-3"))
                .unwrap()
                .map_or(0, |v| amount(&v));
            assert!(now >= *seen, "churn{w} went back: {now} after {seen}");
            *seen = now;
        }
        checks.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn transactions_batches_iterators_snapshots_and_compactions_at_once_keep_every_invariant() {
    let fs = MemFs::new();
    let options = memfs_options(&fs)
        .memtable_size(4 << 10)
        .background_threads(3)
        .sync_mode(SyncMode::None);
    let db = Db::open(DIR, options.clone()).unwrap();
    let mut init = WriteBatch::new();
    for i in 0..ACCOUNTS {
        init.put(account(i), START.to_be_bytes());
    }
    db.write(init).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let checks = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_millis(millis());
    std::thread::scope(|s| {
        // Transfers.
        for t in 0..2u64 {
            let (db, stop, committed) = (db.clone(), stop.clone(), committed.clone());
            s.spawn(move || {
                let mut rng = t * 7 + 1;
                while !stop.load(Ordering::Relaxed) {
                    rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let from = (rng >> 33) % ACCOUNTS;
                    let to = (from + 1 + (rng >> 40) % (ACCOUNTS - 1)) % ACCOUNTS;
                    if transfer(&db, from, to) {
                        committed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        // Churn: each writer counts up its own keys in batches; values never go back.
        for w in 0..2u64 {
            let (db, stop) = (db.clone(), stop.clone());
            s.spawn(move || churn(&db, w, &stop));
        }
        // Readers: whole scans both ways, and the churn keys never go back in a snapshot.
        for r in 0..2u64 {
            let (db, stop, checks) = (db.clone(), stop.clone(), checks.clone());
            s.spawn(move || read_and_check(&db, r == 0, &stop, &checks));
        }
        // Flushes and manual compactions on top of the background ones.
        {
            let (db, stop) = (db.clone(), stop.clone());
            s.spawn(move || {
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    db.flush().unwrap();
                    if round.is_multiple_of(4) {
                        db.compact_range(&b"acct000"[..]..&b"acct008"[..]).unwrap();
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
    });
    eprintln!(
        "{} transfers committed, {} reader checks, {} compactions",
        committed.load(Ordering::Relaxed),
        checks.load(Ordering::Relaxed),
        db.metrics().compactions
    );
    assert!(committed.load(Ordering::Relaxed) > 0 && checks.load(Ordering::Relaxed) > 0);
    assert!(db.background_error().is_none());
    assert_eq!(sum(db.iter()), TOTAL);
    db.close().unwrap();
    let db = Db::open(DIR, options).unwrap();
    assert_eq!(sum(db.iter()), TOTAL, "after reopen");
}
