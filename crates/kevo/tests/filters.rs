//! Bloom filters through the public API: exact observed false-positive counts per level and
//! per table, adaptation of a level's bits to what it observes, prefix filters that let a
//! prefix scan skip tables, and tables written under one filter configuration read under
//! another.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use common::{DIR, memfs_options};
use kevo::fs::MemFs;
use kevo::sst::table::Table;
use kevo::{Db, EventListener, FilterAdjustInfo, FilterPolicy, Options, PrefixExtractor};

/// Options with a large memtable and no background compaction: tables appear only where a
/// test puts them.
fn quiet(fs: &MemFs) -> Options {
    memfs_options(fs)
        .memtable_size(1 << 20)
        .target_file_size(1 << 20)
        .disable_auto_compactions(true)
}

/// The live table files, by number.
fn table_numbers(db: &Db) -> Vec<u64> {
    db.table_stats().unwrap().iter().map(|t| t.number).collect()
}

/// Opens table `number` of the database on `fs` directly, to ask its filter.
fn open_table(fs: &MemFs, number: u64) -> Table {
    let path = Path::new(DIR).join(format!("{number:06}.sst"));
    Table::open(fs, &path, number, None).unwrap()
}

/// A database holding k0000..k1999 in one L0 table.
fn one_table(opts: Options) -> Db {
    let db = Db::open(DIR, opts).unwrap();
    for i in 0..2000u32 {
        db.put(format!("k{i:04}"), format!("value{i}")).unwrap();
    }
    db.flush().unwrap();
    assert_eq!(table_numbers(&db).len(), 1);
    db
}

/// An absent key inside the table's key range: "k0005x0" sorts between k0005 and k0006
/// (k1999 is the largest key, so nothing is made from it).
fn absent(i: u32) -> String {
    format!("k{:04}x{}", i % 1999, i / 1999)
}

// ---------------------------------------------------------------------------------------
// Observed false positives
// ---------------------------------------------------------------------------------------

#[test]
fn observed_false_positives_are_exactly_the_absent_keys_the_filter_lets_through() {
    const LOOKUPS: u32 = 5000;
    let fs = MemFs::new();
    let db = one_table(quiet(&fs).adaptive_filters(false));
    let number = table_numbers(&db)[0];
    let filter_of_table = open_table(&fs, number);
    let filter = filter_of_table.filter().expect("the table has a filter");
    let passing = (0..LOOKUPS)
        .filter(|&i| filter.may_contain(absent(i).as_bytes()))
        .count() as u64;
    for i in 0..LOOKUPS {
        assert_eq!(db.get(absent(i)).unwrap(), None);
    }
    for i in (0..2000u32).step_by(7) {
        assert!(db.get(format!("k{i:04}")).unwrap().is_some());
    }
    let present = (0..2000u32).step_by(7).count() as u64;
    let lookups = u64::from(LOOKUPS);

    let level = &db.lsm_shape().levels[0];
    assert_eq!(level.filter_checks, lookups + present);
    assert_eq!(level.filter_false_positives, passing);
    assert_eq!(level.filter_useful, lookups - passing);
    assert!(passing > 0 && passing < lookups / 20, "{passing}");
    let observed = level.filter_observed_fp_rate.unwrap();
    assert!((observed - passing as f64 / lookups as f64).abs() < 1e-12);

    // One table: its counts are its level's. False positives are counted exactly, checks
    // and "absent" answers estimated from a random sample of one lookup in 16 (about 330
    // samples here: within 30%).
    let table = &db.table_stats().unwrap()[0];
    assert_eq!(table.filter_false_positives, level.filter_false_positives);
    let near = |estimate: u64, exact: u64| estimate.abs_diff(exact) * 10 < exact * 3;
    assert!(near(table.filter_checks, level.filter_checks), "{table:?}");
    assert!(near(table.filter_useful, level.filter_useful), "{table:?}");
    let bits = table.filter_bits_per_key.unwrap();
    assert!((10.0..10.3).contains(&bits), "{bits}");
    let expected = table.filter_expected_fp_rate.unwrap();
    assert!((0.008..0.011).contains(&expected), "{expected}");
    // Summed in parts per million.
    assert!((level.filter_expected_fp_rate.unwrap() - expected).abs() < 1e-6);
    assert_eq!(level.filter_bits_per_key, Some(10.0));
}

// ---------------------------------------------------------------------------------------
// Adaptation
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Adjustments(Mutex<Vec<FilterAdjustInfo>>);

impl EventListener for Adjustments {
    fn on_filter_adjusted(&self, info: &FilterAdjustInfo) {
        self.0.lock().unwrap().push(*info);
    }
}

/// Looks up, 60 times each, 40 absent keys the table's filter lets through: a skewed
/// workload whose observed rate is 100% where 1% is expected.
fn hammer_false_positives(fs: &MemFs, db: &Db) -> u64 {
    let table = open_table(fs, table_numbers(db)[0]);
    let filter = table.filter().unwrap();
    let passing: Vec<String> = (0..200_000)
        .map(absent)
        .filter(|k| filter.may_contain(k.as_bytes()))
        .take(40)
        .collect();
    assert_eq!(passing.len(), 40);
    for _ in 0..60 {
        for k in &passing {
            assert_eq!(db.get(k).unwrap(), None);
        }
    }
    40 * 60
}

fn flush_more(db: &Db, round: u32) {
    for i in 0..500u32 {
        db.put(format!("k{i:04}r{round}"), "more").unwrap();
    }
    db.flush().unwrap();
}

#[test]
fn a_level_with_too_many_false_positives_gives_its_new_tables_more_bits() {
    let fs = MemFs::new();
    let listener = Arc::new(Adjustments::default());
    let db = one_table(quiet(&fs).listener(listener.clone()));
    let lookups = hammer_false_positives(&fs, &db);
    let shape = db.lsm_shape();
    assert_eq!(shape.levels[0].filter_observed_fp_rate, Some(1.0));
    assert_eq!(shape.levels[0].filter_bits_per_key, Some(10.0), "not yet");

    flush_more(&db, 1);
    let events = listener.0.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = events[0];
    assert_eq!(e.level, 0);
    assert_eq!(e.lookups, lookups);
    assert!((e.observed_rate - 1.0).abs() < 1e-12);
    assert!((0.008..0.011).contains(&e.expected_rate), "{e:?}");
    assert!((e.bits_per_key_before - 10.0).abs() < 1e-9);
    // 100x the expected rate asks for a 1e-4 filter, capped at 16 more bits.
    assert!(
        (16.0..=26.0).contains(&e.bits_per_key_after),
        "{}",
        e.bits_per_key_after
    );
    assert_eq!(db.metrics().filter_adjustments, 1);
    assert_eq!(
        db.lsm_shape().levels[0].filter_bits_per_key,
        Some(e.bits_per_key_after)
    );
    let stats = db.table_stats().unwrap();
    let newest = stats.iter().max_by_key(|t| t.number).unwrap();
    let bits = newest.filter_bits_per_key.unwrap();
    assert!(
        (e.bits_per_key_after..e.bits_per_key_after + 0.5).contains(&bits),
        "the new table has {bits} bits per key"
    );

    // The same evidence again sets the same bits: no second adjustment.
    flush_more(&db, 2);
    assert_eq!(listener.0.lock().unwrap().len(), 1);
    assert_eq!(db.metrics().filter_adjustments, 1);
}

#[test]
fn without_adaptive_filters_the_same_workload_changes_nothing() {
    let fs = MemFs::new();
    let listener = Arc::new(Adjustments::default());
    let db = one_table(
        quiet(&fs)
            .adaptive_filters(false)
            .listener(listener.clone()),
    );
    hammer_false_positives(&fs, &db);
    flush_more(&db, 1);
    assert!(listener.0.lock().unwrap().is_empty());
    assert_eq!(db.metrics().filter_adjustments, 0);
    let stats = db.table_stats().unwrap();
    assert!(
        stats
            .iter()
            .all(|t| t.filter_bits_per_key.is_some_and(|b| b < 10.5))
    );
}

#[test]
fn uniform_lookups_of_absent_keys_never_adapt() {
    let fs = MemFs::new();
    let listener = Arc::new(Adjustments::default());
    let db = one_table(quiet(&fs).listener(listener.clone()));
    for i in 0..30_000 {
        assert_eq!(db.get(absent(i)).unwrap(), None);
    }
    flush_more(&db, 1);
    assert!(listener.0.lock().unwrap().is_empty());
    let level = &db.lsm_shape().levels[0];
    let (observed, expected) = (
        level.filter_observed_fp_rate.unwrap(),
        level.filter_expected_fp_rate.unwrap(),
    );
    assert!(
        (observed / expected - 1.0).abs() < 0.25,
        "observed {observed}, expected {expected}"
    );
}

// ---------------------------------------------------------------------------------------
// Prefix filters
// ---------------------------------------------------------------------------------------

/// Keys "pNNN/sSS": 20 per even prefix p000, p002, ..., p198, across three L0 tables and a
/// level below (prefixes with a fixed length of 4 bytes: "pNNN").
fn prefixed_db(opts: Options) -> Db {
    let db = Db::open(DIR, opts).unwrap();
    for round in 0..4u32 {
        for p in (0..200u32).step_by(2) {
            for s in (round..20).step_by(4) {
                db.put(format!("p{p:03}/s{s:02}"), format!("v{p}.{s}"))
                    .unwrap();
            }
        }
        db.flush().unwrap();
        if round == 0 {
            db.compact().unwrap();
        }
    }
    let shape = db.lsm_shape();
    assert_eq!(shape.levels[0].tables, 3);
    assert!(shape.levels[1..].iter().any(|l| l.tables > 0));
    db
}

fn scan(db: &Db, prefix: &str) -> Vec<String> {
    db.prefix(prefix)
        .map(|kv| String::from_utf8(kv.unwrap().0.to_vec()).unwrap())
        .collect()
}

fn block_reads(db: &Db) -> u64 {
    db.metrics().block_reads
}

/// Reopens with `opts` (an empty block cache).
fn reopen(db: Db, opts: Options) -> Db {
    db.close().unwrap();
    drop(db);
    Db::open(DIR, opts).unwrap()
}

#[test]
fn a_prefix_scan_of_a_missing_prefix_reads_no_data_block() {
    let fs = MemFs::new();
    let opts = quiet(&fs).prefix_extractor(Some(PrefixExtractor::Fixed(4)));
    let db = reopen(prefixed_db(opts.clone()), opts.clone());
    let tables: Vec<Table> = table_numbers(&db)
        .into_iter()
        .map(|n| open_table(&fs, n))
        .collect();
    // Every odd prefix is inside the tables' key ranges and absent. Where no table's filter
    // lets it through (a filter may, about 1% of the time), the scan reads no data block.
    let mut ruled_out = 0;
    for p in (1..200u32).step_by(2) {
        let prefix = format!("p{p:03}");
        let passing = tables
            .iter()
            .filter(|t| t.may_contain_prefix(prefix.as_bytes(), PrefixExtractor::Fixed(4)))
            .count();
        let before = block_reads(&db);
        assert!(scan(&db, &prefix).is_empty());
        assert!(scan(&db, &format!("{prefix}/s0")).is_empty());
        let reads = block_reads(&db) - before;
        if passing == 0 {
            assert_eq!(reads, 0, "{prefix}");
            ruled_out += 1;
        } else {
            assert!(reads <= 2 * passing as u64, "{prefix}: {reads} reads");
        }
    }
    assert!(
        ruled_out >= 90,
        "{ruled_out} of 100 missing prefixes ruled out"
    );
    // Present prefixes: exactly their keys, in order, in both directions.
    for p in (0..200u32).step_by(2) {
        let want: Vec<String> = (0..20).map(|s| format!("p{p:03}/s{s:02}")).collect();
        assert_eq!(scan(&db, &format!("p{p:03}")), want);
        let back: Vec<String> = db
            .prefix(format!("p{p:03}"))
            .rev()
            .map(|kv| String::from_utf8(kv.unwrap().0.to_vec()).unwrap())
            .collect();
        assert_eq!(back, want.iter().rev().cloned().collect::<Vec<_>>());
        assert_eq!(scan(&db, &format!("p{p:03}/s1")).len(), 10);
    }
    // A prefix shorter than the extractor's has no prefix of its own: no skipping, and the
    // answer is still right.
    assert_eq!(scan(&db, "p01").len(), 5 * 20);

    // The control: without the extractor, the same missing-prefix scans read data blocks.
    let db = reopen(db, opts.prefix_extractor(None));
    let before = block_reads(&db);
    for p in (1..200u32).step_by(2) {
        assert!(scan(&db, &format!("p{p:03}")).is_empty());
    }
    assert!(
        block_reads(&db) > before + 100,
        "{}",
        block_reads(&db) - before
    );
}

#[test]
fn a_delimiter_extractor_skips_tables_without_the_prefix() {
    let fs = MemFs::new();
    let opts = quiet(&fs).prefix_extractor(Some(PrefixExtractor::Delimiter(b':')));
    let db = Db::open(DIR, opts.clone()).unwrap();
    for (i, group) in ["apple", "banana", "cherry", "damson"].iter().enumerate() {
        if i == 2 {
            continue; // "cherry:" is missing, inside the key range
        }
        for k in 0..50 {
            db.put(format!("{group}:{k:02}"), "v").unwrap();
        }
        db.flush().unwrap();
    }
    db.put("cherries", "no delimiter").unwrap();
    db.flush().unwrap();
    let db = reopen(db, opts);
    let before = block_reads(&db);
    assert!(scan(&db, "cherry:").is_empty());
    assert!(scan(&db, "cherry:1").is_empty());
    assert_eq!(block_reads(&db), before);
    assert_eq!(scan(&db, "banana:").len(), 50);
    assert_eq!(scan(&db, "banana:1").len(), 10);
    // Without a delimiter in the scanned prefix there is nothing to skip by.
    assert_eq!(scan(&db, "cherr"), vec!["cherries".to_string()]);
    assert_eq!(scan(&db, "ba").len(), 50);
}

#[test]
fn prefix_scans_through_a_snapshot_skip_tables_and_see_the_snapshot() {
    let fs = MemFs::new();
    let opts = quiet(&fs).prefix_extractor(Some(PrefixExtractor::Fixed(4)));
    let db = reopen(prefixed_db(opts.clone()), opts);
    let snapshot = db.snapshot();
    db.put("p001/new", "after the snapshot").unwrap();
    db.delete("p002/s00").unwrap();
    let before = block_reads(&db);
    assert_eq!(snapshot.prefix("p001").count(), 0);
    assert_eq!(snapshot.prefix("p003").count(), 0);
    assert_eq!(block_reads(&db), before);
    assert_eq!(snapshot.prefix("p002").count(), 20);
    assert_eq!(scan(&db, "p001"), vec!["p001/new".to_string()]);
    assert_eq!(scan(&db, "p002").len(), 19);
}

// ---------------------------------------------------------------------------------------
// Tables written under another configuration
// ---------------------------------------------------------------------------------------

#[test]
fn tables_written_under_one_filter_configuration_read_under_another() {
    let fs = MemFs::new();
    let written = quiet(&fs)
        .prefix_extractor(Some(PrefixExtractor::Fixed(4)))
        .filter_policy(FilterPolicy::BitsPerKey(10.0));
    let mut db = prefixed_db(written);
    let reads = [
        // Another prefix length: the tables' prefix entries are for 4 bytes, so a 3-byte
        // prefix must not be looked up in them.
        quiet(&fs).prefix_extractor(Some(PrefixExtractor::Fixed(3))),
        quiet(&fs).prefix_extractor(Some(PrefixExtractor::Delimiter(b'/'))),
        quiet(&fs).filter_policy(FilterPolicy::None),
        quiet(&fs).filter_policy(FilterPolicy::FalsePositiveRate(0.001)),
        quiet(&fs).filter_policy(FilterPolicy::Optimized { bits_per_key: 6.0 }),
    ];
    for opts in reads {
        let label = format!("{:?} {:?}", opts.prefix_extractor, opts.filter_policy);
        db = reopen(db, opts);
        assert_eq!(scan(&db, "p00").len(), 5 * 20, "{label}");
        assert_eq!(scan(&db, "p004/").len(), 20, "{label}");
        assert!(scan(&db, "p005/").is_empty(), "{label}");
        for p in (0..200u32).step_by(9) {
            let got = db.get(format!("p{p:03}/s07")).unwrap();
            assert_eq!(got.is_some(), p % 2 == 0, "{label}: p{p:03}");
        }
        // New tables under the new configuration, read together with the old ones.
        db.put("p005/s00", "new").unwrap();
        db.flush().unwrap();
        assert_eq!(scan(&db, "p005/"), vec!["p005/s00".to_string()], "{label}");
        db.delete("p005/s00").unwrap();
        db.flush().unwrap();
    }
}

#[test]
fn a_bad_prefix_extractor_is_a_config_error() {
    let fs = MemFs::new();
    for bad in [PrefixExtractor::Fixed(0), PrefixExtractor::Fixed(1 << 20)] {
        let err = Db::open(DIR, quiet(&fs).prefix_extractor(Some(bad))).unwrap_err();
        assert_eq!(err.kind(), kevo::ErrorKind::Config, "{bad:?}");
        assert!(err.to_string().contains("prefix_extractor"), "{err}");
    }
    assert!(kevo::fs::Fs::list(&fs, Path::new(DIR)).map_or(true, |l| l.is_empty()));
}

// ---------------------------------------------------------------------------------------
// Optimized allocation
// ---------------------------------------------------------------------------------------

/// Filter memory of a database of 4000 distinct keys in the last level and 400 newer
/// distinct keys in L0, written under `policy`, and its tables' bits per key by level.
fn filter_memory(policy: FilterPolicy) -> (u64, Vec<(usize, f64)>) {
    let fs = MemFs::new();
    let opts = quiet(&fs)
        .memtable_size(16 << 10)
        .l0_slowdown_trigger(1000)
        .l0_stop_trigger(1000)
        .filter_policy(policy);
    let db = Db::open(DIR, opts).unwrap();
    for i in 0..4000u32 {
        db.put(format!("k{i:05}"), [3u8; 40]).unwrap();
    }
    db.compact().unwrap();
    for i in 0..400u32 {
        db.put(format!("k{i:05}x"), [4u8; 40]).unwrap();
    }
    db.flush().unwrap();
    let stats = db.table_stats().unwrap();
    assert_eq!(stats.iter().map(|t| t.entries).sum::<u64>(), 4400);
    let bits = stats
        .iter()
        .map(|t| (t.level, t.filter_bits_per_key.unwrap_or(0.0)))
        .collect();
    (db.metrics().filter_memory_bytes, bits)
}

#[test]
fn the_optimized_policy_spends_no_more_memory_than_its_budget() {
    let (fixed, fixed_bits) = filter_memory(FilterPolicy::BitsPerKey(8.0));
    let (optimized, optimized_bits) = filter_memory(FilterPolicy::Optimized { bits_per_key: 8.0 });
    // The budget: 8 bits for each of the 4400 keys, plus each filter's rounding up to a
    // whole 64-byte block and its trailer and handle.
    let tables = optimized_bits.len() as u64;
    let budget = 4400 * 8 / 8 + tables * 150;
    assert!(
        optimized <= budget,
        "optimized filters hold {optimized} bytes, the budget is {budget}"
    );
    assert!(
        optimized as f64 <= fixed as f64 * 1.05,
        "optimized {optimized} bytes, fixed {fixed}"
    );
    // Spent unevenly: the small L0 gets more bits per key than the last level.
    let l0 = optimized_bits.iter().filter(|(l, _)| *l == 0).map(|t| t.1);
    let last = optimized_bits.iter().filter(|(l, _)| *l > 0).map(|t| t.1);
    let (l0_min, last_max) = (l0.fold(f64::MAX, f64::min), last.fold(0.0, f64::max));
    assert!(
        l0_min > last_max + 2.0,
        "L0 {l0_min}, last level {last_max}"
    );
    // Fixed bits: every table at 8, less the rounding of small filters to whole blocks.
    assert!(fixed <= budget, "{fixed} bytes, {fixed_bits:?}");
}

// ---------------------------------------------------------------------------------------
// Review regressions
// ---------------------------------------------------------------------------------------

/// A prefix scan asks a deeper table's filter only when its cursor reaches that table: a
/// scan that reads one key opens about as many tables as a range scan over the same bounds
/// (it opened all 70-odd tables in range before the first key).
#[test]
fn a_prefix_scan_opens_only_the_tables_it_reaches() {
    use std::sync::atomic::Ordering;
    let (counting, fs) = common::counting();
    let opts = memfs_options(&fs)
        .fs(Arc::new(counting.clone()))
        .prefix_extractor(Some(PrefixExtractor::Delimiter(b':')))
        .tombstone_compaction_ratio(0.0);
    let db = Db::open(DIR, opts.clone()).unwrap();
    for i in 0..3000u32 {
        db.put(format!("user:{i:06}"), [b'v'; 100]).unwrap();
    }
    db.compact().unwrap();
    let db = reopen(db, opts);
    let tables = table_numbers(&db).len();
    assert!(tables > 20, "{tables}");
    let opens = || counting.table_opens.load(Ordering::Relaxed);
    let before = opens();
    assert!(db.prefix("user:").next().is_some());
    assert!(
        opens() - before <= 2,
        "prefix().next() opened {}",
        opens() - before
    );
    // And the whole scan is still complete.
    assert_eq!(db.prefix("user:").count(), 3000);
    assert_eq!(db.prefix("user:").rev().count(), 3000);
}

/// A snapshot read that finds nothing in a table holding newer entries: the key may be
/// among them (written after the snapshot), so the filter's "maybe" was no false positive.
#[test]
fn a_snapshot_read_of_a_key_written_since_is_no_false_positive() {
    let fs = MemFs::new();
    let db = Db::open(DIR, quiet(&fs)).unwrap();
    db.put("k", "v1").unwrap();
    db.put("other", "x").unwrap();
    db.flush().unwrap();
    let snapshot = db.snapshot();
    db.put("k", "v2").unwrap();
    db.put("other2", "x").unwrap();
    db.flush().unwrap();
    let before = db.lsm_shape().levels[0].clone();
    assert_eq!(&snapshot.get("k").unwrap().unwrap()[..], b"v1");
    let after = db.lsm_shape().levels[0].clone();
    assert_eq!(after.filter_false_positives, before.filter_false_positives);
    assert_eq!(after.filter_checks, before.filter_checks + 2);
    assert!(
        db.table_stats()
            .unwrap()
            .iter()
            .all(|t| t.filter_false_positives == 0)
    );
}

/// Per-table counts are sampled at random, not every 16th lookup of a thread: lookups that
/// each probe two tables in the same order sampled one table always and the other never.
#[test]
fn per_table_sampling_does_not_alias_with_the_probe_order() {
    const N: u64 = 8000;
    let fs = MemFs::new();
    let db = Db::open(DIR, quiet(&fs)).unwrap();
    for round in 0..2 {
        for i in 0..1000u32 {
            db.put(format!("k{i:04}"), format!("v{round}")).unwrap();
        }
        db.flush().unwrap();
    }
    for i in 0..N {
        assert!(db.get(format!("k{:04}x{i}", i % 999)).unwrap().is_none());
    }
    let stats = db.table_stats().unwrap();
    assert_eq!(stats.len(), 2);
    for t in &stats {
        // 8000 checks sampled 1 in 16: about 500 samples, so well within ±40%.
        assert!(t.filter_checks.abs_diff(N) < N * 4 / 10, "{stats:?}");
    }
}
