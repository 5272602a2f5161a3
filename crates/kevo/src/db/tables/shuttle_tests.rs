//! Model checks of the table cache's open, lookup and eviction races with shuttle. The
//! tables are real (built once per test in a `MemFs`); the cache's lock and its tables'
//! "used" bits are shuttle's, so shuttle may switch threads at each of them. The `ArcSwap`
//! of open tables is arc-swap's own (its atomics are std's): to shuttle each load or store
//! of it is one indivisible step, which is what arc-swap promises.
//!
//! Checked in every schedule:
//! - every lookup answers with its table's value, also when the table is closed (by
//!   capacity or by `evict`) between the lookup finding it and reading it;
//! - concurrent opens of one table leave one entry, and hand every opener the same table;
//! - afterwards the map of open tables and the eviction order name the same tables, each
//!   once, and no more than the capacity are open.
//!
//! Run: `cargo test --workspace --features kevo/shuttle --lib shuttle`
//! (`KEVO_SHUTTLE_ITERATIONS`, `KEVO_SHUTTLE_SEED`: see [`crate::sync::model_check`]).

use std::path::Path;

use shuttle::thread;

use super::TableCache;
use crate::fs::{Fs, MemFs};
use crate::key::{ValueKind, append_internal_key};
use crate::options::Options;
use crate::sst::builder::{TableBuilder, TableOptions};
use crate::sst::table::{Table, TableLookup};
use crate::sync::{Arc, Mutex, lock, model_check, yield_now};

/// Schedules per scheduler by default: 0.5–1.2 s per test in debug on 2 shared cores
/// (each schedule opens real tables).
const ITERATIONS: usize = 5000;

/// Builds tables `1..=count` in a new `MemFs` under `/db`: table `n` holds one key,
/// `key{n}`, whose value is `n`.
fn tables(count: u64) -> Arc<dyn Fs> {
    let fs = MemFs::new();
    let dir = Path::new("/db");
    fs.create_dir_all(dir).unwrap();
    for number in 1..=count {
        let mut builder = TableBuilder::create(
            &fs,
            &dir.join(super::files::table_name(number)),
            number,
            TableOptions::from(&Options::default()),
        )
        .unwrap();
        let mut key = Vec::new();
        append_internal_key(&mut key, &user_key(number), 1, ValueKind::Put);
        builder.add(&key, &number.to_le_bytes()).unwrap();
        builder.finish().unwrap();
    }
    Arc::new(fs)
}

fn user_key(number: u64) -> Vec<u8> {
    format!("key{number}").into_bytes()
}

/// Asserts that `table` is table `number` and answers for its key.
fn assert_reads(table: &Table, number: u64) {
    assert_eq!(
        table.get(&user_key(number), 10).unwrap(),
        Some(TableLookup::Value(bytes::Bytes::copy_from_slice(
            &number.to_le_bytes()
        ))),
        "table {number}"
    );
}

/// A lookup as `TableCache::search` makes it.
fn look_up(cache: &TableCache, number: u64) {
    cache
        .with_table(number, |table| assert_reads(table, number))
        .unwrap();
}

/// Takes table `number` as an iterator does, lets the other threads run, then reads it.
fn hold_and_read(cache: &TableCache, number: u64) -> Arc<Table> {
    let table = cache.table(number).unwrap();
    yield_now();
    assert_reads(&table, number);
    table
}

/// What one thread of a scenario does.
type Work = Box<dyn FnOnce(&TableCache) + Send>;

/// Runs each of `threads` on `cache` at once and waits for them.
fn run(cache: &Arc<TableCache>, threads: Vec<Work>) {
    let handles: Vec<_> = threads
        .into_iter()
        .map(|work| {
            let cache = cache.clone();
            thread::spawn(move || work(&cache))
        })
        .collect();
    for handle in handles {
        handle.join().expect("a lookup panicked");
    }
}

/// The open tables, after checking that the map and the eviction order agree and that
/// the capacity holds.
fn open_tables(cache: &TableCache) -> Vec<u64> {
    let order = lock(&cache.changes);
    let mut ordered: Vec<u64> = order.iter().copied().collect();
    ordered.sort_unstable();
    let mut open: Vec<u64> = cache.open.load().keys().copied().collect();
    open.sort_unstable();
    assert_eq!(
        ordered, open,
        "the eviction order names the open tables, each once"
    );
    assert!(
        open.len() <= cache.capacity,
        "{} tables open, capacity {}",
        open.len(),
        cache.capacity
    );
    open
}

fn cache(fs: &Arc<dyn Fs>, capacity: usize) -> Arc<TableCache> {
    Arc::new(TableCache::new(
        fs.clone(),
        Path::new("/db"),
        64 << 10,
        capacity,
        7,
    ))
}

#[test]
#[cfg_attr(not(feature = "shuttle"), ignore = "needs --features shuttle")]
fn shuttle_concurrent_opens_of_one_table_leave_one_entry() {
    let fs = tables(2);
    model_check("table cache: concurrent opens", ITERATIONS, move || {
        let cache = cache(&fs, 4);
        let got: Arc<Mutex<Vec<Arc<Table>>>> = Arc::default();
        let opener = |got: &Arc<Mutex<Vec<Arc<Table>>>>| -> Work {
            let got = got.clone();
            Box::new(move |cache| {
                let table = hold_and_read(cache, 1);
                lock(&got).push(table);
            })
        };
        run(
            &cache,
            vec![
                opener(&got),
                opener(&got),
                Box::new(|cache| look_up(cache, 2)),
            ],
        );
        assert_eq!(open_tables(&cache), [1, 2]);
        let got = lock(&got);
        assert!(
            Arc::ptr_eq(&got[0], &got[1]),
            "both openers got the same table"
        );
    });
}

#[test]
#[cfg_attr(not(feature = "shuttle"), ignore = "needs --features shuttle")]
fn shuttle_a_table_closed_during_a_lookup_still_answers() {
    let fs = tables(3);
    model_check(
        "table cache: closing during lookups",
        ITERATIONS,
        move || {
            let cache = cache(&fs, 1);
            run(
                &cache,
                vec![
                    Box::new(|cache| {
                        hold_and_read(cache, 1);
                        look_up(cache, 1);
                    }),
                    Box::new(|cache| look_up(cache, 2)),
                    Box::new(|cache| {
                        cache.evict(1);
                        look_up(cache, 3);
                    }),
                ],
            );
            open_tables(&cache);
        },
    );
}

#[test]
#[cfg_attr(not(feature = "shuttle"), ignore = "needs --features shuttle")]
fn shuttle_capacity_holds_after_concurrent_lookups() {
    let fs = tables(3);
    model_check("table cache: capacity", ITERATIONS, move || {
        let cache = cache(&fs, 2);
        run(
            &cache,
            vec![
                Box::new(|cache| (1..=3).for_each(|n| look_up(cache, n))),
                Box::new(|cache| [3, 1, 2].into_iter().for_each(|n| look_up(cache, n))),
                // A hot reader: its lookups set the "used" bits the eviction hand clears.
                Box::new(|cache| (0..6).for_each(|i| look_up(cache, 1 + i % 2))),
            ],
        );
        open_tables(&cache);
    });
}
