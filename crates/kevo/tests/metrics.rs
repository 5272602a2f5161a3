//! Observability through the public API: exact operation, iterator and bloom filter
//! counters, event listeners (order and payloads, panics), `Db::health`, and the
//! Prometheus and JSON exports.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use common::*;
use kevo::fs::{Fault, Fs, MemFs, OpKind};
use kevo::{
    CompactionInfo, Db, ErrorKind, EventListener, FlushInfo, HealthStatus, HealthThresholds,
    ReadOptions, StallCause, StallInfo, TableFileInfo, TableReason, WriteBatch,
};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Polls `done` until it holds, failing the test after 5 s.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The numbers of the table files in the database directory.
fn table_numbers(fs: &MemFs) -> BTreeSet<u64> {
    listing(fs, DIR)
        .iter()
        .filter_map(|n| n.strip_suffix(".sst"))
        .map(|n| n.parse().unwrap())
        .collect()
}

/// The size of table file `number`.
fn table_size(fs: &MemFs, number: u64) -> u64 {
    let path = Path::new(DIR).join(format!("{number:06}.sst"));
    fs.open(&path).unwrap().len().unwrap()
}

/// Tables in every level.
fn total_tables(db: &Db) -> usize {
    db.lsm_shape().levels.iter().map(|l| l.tables).sum()
}

/// Options for a database whose memtable holds everything these tests write and whose
/// tables are compacted only when a test says so.
fn quiet_options(fs: &MemFs) -> kevo::Options {
    memfs_options(fs)
        .memtable_size(1 << 20)
        .disable_auto_compactions(true)
}

/// One listener callback, as recorded.
#[derive(Debug, Clone)]
enum Event {
    FlushBegin(FlushInfo),
    FlushEnd(FlushInfo),
    CompactionBegin(CompactionInfo),
    CompactionEnd(CompactionInfo),
    StallBegin(StallInfo),
    StallEnd(StallInfo),
    BackgroundError(ErrorKind, String),
    TableCreated(TableFileInfo),
    TableDeleted(TableFileInfo),
}

/// A listener that records every callback in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl Recorder {
    fn push(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }

    fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    fn count(&self, matches: impl Fn(&Event) -> bool) -> usize {
        self.0.lock().unwrap().iter().filter(|e| matches(e)).count()
    }
}

impl EventListener for Recorder {
    fn on_flush_begin(&self, info: &FlushInfo) {
        self.push(Event::FlushBegin(info.clone()));
    }
    fn on_flush_end(&self, info: &FlushInfo) {
        self.push(Event::FlushEnd(info.clone()));
    }
    fn on_compaction_begin(&self, info: &CompactionInfo) {
        self.push(Event::CompactionBegin(info.clone()));
    }
    fn on_compaction_end(&self, info: &CompactionInfo) {
        self.push(Event::CompactionEnd(info.clone()));
    }
    fn on_stall_begin(&self, info: &StallInfo) {
        self.push(Event::StallBegin(*info));
    }
    fn on_stall_end(&self, info: &StallInfo) {
        self.push(Event::StallEnd(*info));
    }
    fn on_background_error(&self, error: &kevo::Error) {
        self.push(Event::BackgroundError(error.kind(), error.to_string()));
    }
    fn on_table_created(&self, info: &TableFileInfo) {
        self.push(Event::TableCreated(*info));
    }
    fn on_table_deleted(&self, info: &TableFileInfo) {
        self.push(Event::TableDeleted(*info));
    }
}

fn is_flush_end(e: &Event) -> bool {
    matches!(e, Event::FlushEnd(_))
}

/// Opens a database on `fs` with `opts` and a recorder.
fn open_recorded(opts: kevo::Options) -> (Db, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let db = Db::open(DIR, opts.listener(recorder.clone())).unwrap();
    (db, recorder)
}

// ---------------------------------------------------------------------------------------
// 1. Exact operation and iterator counters
// ---------------------------------------------------------------------------------------

/// What a test did, to compare with the metrics.
#[derive(Debug, Default, PartialEq, Eq)]
struct Done {
    puts: u64,
    deletes: u64,
    writes: u64,
    bytes_written: u64,
    gets: u64,
    get_hits: u64,
    bytes_read: u64,
}

impl Done {
    fn put(&mut self, db: &Db, key: &str, value: &str) {
        db.put(key, value).unwrap();
        self.puts += 1;
        self.writes += 1;
        self.bytes_written += (key.len() + value.len()) as u64;
    }

    fn delete(&mut self, db: &Db, key: &str) {
        db.delete(key).unwrap();
        self.deletes += 1;
        self.writes += 1;
        self.bytes_written += key.len() as u64;
    }

    fn batch(&mut self, db: &Db, entries: &[(&str, Option<&str>)]) {
        let mut batch = WriteBatch::new();
        for (k, v) in entries {
            match v {
                Some(v) => {
                    batch.put(k, v);
                    self.puts += 1;
                    self.bytes_written += (k.len() + v.len()) as u64;
                }
                None => {
                    batch.delete(k);
                    self.deletes += 1;
                    self.bytes_written += k.len() as u64;
                }
            }
        }
        db.write(batch).unwrap();
        self.writes += 1;
    }

    fn got(&mut self, found: Option<&kevo::Value>, expected: Option<&str>) {
        assert_eq!(found.map(|v| &v[..]), expected.map(str::as_bytes));
        self.gets += 1;
        if let Some(v) = expected {
            self.get_hits += 1;
            self.bytes_read += v.len() as u64;
        }
    }

    fn of(m: &kevo::Metrics) -> Done {
        Done {
            puts: m.puts,
            deletes: m.deletes,
            writes: m.writes,
            bytes_written: m.bytes_written,
            gets: m.gets,
            get_hits: m.get_hits,
            bytes_read: m.bytes_read,
        }
    }
}

#[test]
fn operation_counters_equal_exactly_what_was_done() {
    let fs = MemFs::new();
    let db = Db::open(DIR, quiet_options(&fs)).unwrap();
    let mut done = Done::default();
    let value = |i: usize| "v".repeat(i + 1);
    for i in 0..20 {
        done.put(&db, &format!("p{i:02}"), &value(i));
    }
    for i in 0..5 {
        done.delete(&db, &format!("p{i:02}"));
    }
    done.delete(&db, "never-written"); // deleting a missing key is still a delete
    done.batch(&db, &[("b1", Some("x")), ("b2", Some("yy")), ("p05", None)]);
    done.batch(&db, &[("b3", Some("zzz")), ("b3", Some("zzzz"))]); // both puts count
    done.batch(&db, &[("p06", None)]);
    // Rejected writes are not acknowledged and count nothing.
    assert!(db.put(b"", b"v").is_err());
    let mut bad = WriteBatch::new();
    bad.put(b"ok", b"v");
    bad.put(b"", b"v");
    assert!(db.write(bad).is_err());
    assert_eq!(Done::of(&db.metrics()), done, "after the writes");

    db.flush().unwrap(); // some reads now come from a table, the rest from the memtable
    done.put(&db, "m1", "in-memtable");
    for i in 0..20 {
        let expected = (i > 6).then(|| value(i));
        done.got(
            db.get(format!("p{i:02}")).unwrap().as_ref(),
            expected.as_deref(),
        );
    }
    done.got(db.get("b1").unwrap().as_ref(), Some("x"));
    done.got(db.get("b3").unwrap().as_ref(), Some("zzzz"));
    done.got(db.get("m1").unwrap().as_ref(), Some("in-memtable"));
    done.got(db.get("never-written").unwrap().as_ref(), None);
    done.got(db.get("zzz-out-of-range").unwrap().as_ref(), None);
    let snapshot = db.snapshot();
    done.got(snapshot.get("p10").unwrap().as_ref(), Some(&value(10)));
    let options = ReadOptions {
        fill_cache: false,
        ..ReadOptions::default()
    };
    done.got(
        db.get_opt("p11", &options).unwrap().as_ref(),
        Some(&value(11)),
    );
    assert!(db.get(b"").is_err(), "an invalid key is no read");

    let m = db.metrics();
    assert_eq!(Done::of(&m), done, "after the reads");
    // One get in 8 per thread is timed (the counters stay exact).
    let sampled = done.gets / 8..=done.gets.div_ceil(8);
    assert!(
        sampled.contains(&m.get_latency.count),
        "{} samples of {} gets",
        m.get_latency.count,
        done.gets
    );
    assert_eq!(m.write_latency.count, done.writes);
    assert_eq!(
        m.commit_groups, done.writes,
        "one writer: one group per write"
    );
    assert_eq!(
        m.wal_syncs, done.writes,
        "SyncMode::Always syncs every group"
    );
    assert_eq!(m.sync_latency.count, m.wal_syncs);
    assert_eq!((m.flushes, m.flush_latency.count), (1, 1));
    assert_eq!((m.compactions, m.compaction_latency.count), (0, 0));
    assert_eq!(m.flush_bytes, m.lsm.levels[0].bytes);
    assert_eq!((m.iter_seeks, m.iter_steps), (0, 0), "no iterator was used");
    assert_eq!(m.lsm.snapshots, 1);
    drop(snapshot);
    assert_eq!(db.lsm_shape().snapshots, 0);
}

/// Keeps the expected iterator counters next to the calls.
#[derive(Debug, Default)]
struct IterCount {
    seeks: u64,
    steps: u64,
}

impl IterCount {
    fn check(&self, db: &Db, at: &str) {
        let m = db.metrics();
        assert_eq!(
            (m.iter_seeks, m.iter_steps),
            (self.seeks, self.steps),
            "(seeks, steps) {at}"
        );
    }
}

fn key_of(item: Option<kevo::Result<(kevo::Value, kevo::Value)>>) -> Option<String> {
    item.map(|kv| String::from_utf8(kv.unwrap().0.to_vec()).unwrap())
}

#[test]
fn iterator_counters_count_every_positioning_and_every_step() {
    let fs = MemFs::new();
    let db = Db::open(DIR, quiet_options(&fs)).unwrap();
    for k in ["a", "b", "c"] {
        db.put(k, "v").unwrap();
    }
    db.flush().unwrap(); // sources from a table and from the memtable
    for k in ["d", "e"] {
        db.put(k, "v").unwrap();
    }
    let mut want = IterCount::default();

    let mut it = db.iter();
    want.check(&db, "a new iterator has not positioned anything");
    assert_eq!(key_of(it.next()).as_deref(), Some("a"));
    (want.seeks, want.steps) = (want.seeks + 1, want.steps + 1); // front cursor created
    assert_eq!(key_of(it.next()).as_deref(), Some("b"));
    want.steps += 1;
    assert_eq!(key_of(it.next_back()).as_deref(), Some("e"));
    (want.seeks, want.steps) = (want.seeks + 1, want.steps + 1); // back cursor created
    want.check(&db, "after next, next, next_back");
    it.seek("c");
    want.seeks += 1;
    assert_eq!(key_of(it.next()).as_deref(), Some("c"));
    want.steps += 1;
    it.seek_for_prev("d");
    want.seeks += 1;
    assert_eq!(key_of(it.next_back()).as_deref(), Some("d"));
    want.steps += 1;
    assert_eq!(key_of(it.next()), None, "the ends met");
    want.steps += 1;
    assert_eq!(key_of(it.next()), None);
    assert_eq!(key_of(it.next_back()), None);
    want.steps += 2; // a finished iterator still counts the calls
    want.check(&db, "after the mixed sequence");
    drop(it);

    let mut it = db.iter();
    it.seek("b"); // creates the front cursor: one seek, not two
    want.seeks += 1;
    assert_eq!(key_of(it.next()).as_deref(), Some("b"));
    want.steps += 1;
    let mut back = db.iter();
    back.seek_for_prev("c"); // creates the back cursor: one seek
    want.seeks += 1;
    assert_eq!(key_of(back.next_back()).as_deref(), Some("c"));
    want.steps += 1;
    want.check(&db, "after seeks on fresh iterators");
    drop((it, back));

    let keys: Vec<_> = db.range("b".."d").map(|kv| kv.unwrap().0).collect();
    assert_eq!(keys.len(), 2);
    (want.seeks, want.steps) = (want.seeks + 1, want.steps + 3); // b, c, None
    assert_eq!(db.iter().rev().count(), 5);
    (want.seeks, want.steps) = (want.seeks + 1, want.steps + 6);
    assert_eq!(db.snapshot().prefix("c").count(), 1);
    (want.seeks, want.steps) = (want.seeks + 1, want.steps + 2);
    assert_eq!((&db).into_iter().count(), 5);
    (want.seeks, want.steps) = (want.seeks + 1, want.steps + 6);
    drop(db.iter()); // never used: nothing
    let mut empty = db.range("d".."b"); // an inverted range admits no key
    empty.seek("c");
    assert_eq!(key_of(empty.next()), None);
    want.steps += 1; // counted, though nothing was positioned
    want.check(&db, "at the end");
    assert_eq!(db.metrics().gets, 0, "iterators are not gets");
}

// ---------------------------------------------------------------------------------------
// 2. Bloom filter counters
// ---------------------------------------------------------------------------------------

/// A database holding k0000..k0999 (k0001 deleted) in exactly one L0 table.
fn one_table_of_1000_keys(fs: &MemFs, bits_per_key: u32) -> Db {
    let opts = quiet_options(fs)
        .target_file_size(1 << 20)
        .bloom_bits_per_key(bits_per_key);
    let db = Db::open(DIR, opts).unwrap();
    for i in 0..1000u32 {
        db.put(format!("k{i:04}"), format!("value{i}")).unwrap();
    }
    db.delete("k0001").unwrap();
    db.flush().unwrap();
    let shape = db.lsm_shape();
    assert_eq!(shape.levels[0].tables, 1);
    assert_eq!(total_tables(&db), 1);
    assert_eq!(
        shape.levels[0].key_range,
        Some((b"k0000".to_vec(), b"k0999".to_vec()))
    );
    assert!(shape.levels[1..].iter().all(|l| l.key_range.is_none()));
    db
}

/// Filter counters: checks, useful, false positives.
type FilterCounts = (u64, u64, u64);

/// Filter counters in total and per level.
fn bloom(db: &Db) -> (FilterCounts, Vec<FilterCounts>) {
    let m = db.metrics();
    let levels = m
        .lsm
        .levels
        .iter()
        .map(|l| (l.filter_checks, l.filter_useful, l.filter_false_positives))
        .collect();
    (
        (m.bloom_checks, m.bloom_useful, m.bloom_false_positives),
        levels,
    )
}

const G: u64 = 200;

/// G gets of absent keys within the table's key range, G of present ones.
fn absent_and_present_gets(db: &Db) {
    for i in 0..G {
        // "k0005x" sorts between k0005 and k0006: inside the table's range, never written.
        assert_eq!(db.get(format!("k{:04}x", i * 5)).unwrap(), None);
    }
    for i in 0..G {
        let k = 2 + i * 4; // never k0001 (deleted)
        assert_eq!(
            db.get(format!("k{k:04}")).unwrap().as_deref(),
            Some(format!("value{k}").as_bytes())
        );
    }
}

#[test]
fn bloom_counters_count_each_table_lookup_and_what_the_filter_said() {
    let fs = MemFs::new();
    let db = one_table_of_1000_keys(&fs, 10);
    assert_eq!(bloom(&db).0, (0, 0, 0));
    absent_and_present_gets(&db);
    let ((checks, useful, false_positives), levels) = bloom(&db);
    assert_eq!(
        checks,
        2 * G,
        "every lookup reaching the table asks its filter"
    );
    assert_eq!(
        useful + false_positives,
        G,
        "each absent key is ruled out or a false positive; present keys are neither"
    );
    assert!(
        false_positives < G / 10,
        "10 bits per key: about 1% false positives, got {false_positives} of {G}"
    );
    assert_eq!(levels[0], (checks, useful, false_positives));
    assert!(levels[1..].iter().all(|l| *l == (0, 0, 0)), "{levels:?}");

    // Keys outside every table's range and keys found in the memtable ask no filter.
    assert_eq!(db.get("a").unwrap(), None);
    assert_eq!(db.get("z").unwrap(), None);
    db.put("k0501x", "now in the memtable").unwrap();
    assert!(db.get("k0501x").unwrap().is_some());
    assert_eq!(bloom(&db).0, (checks, useful, false_positives));

    // A tombstone in the table: the filter says maybe, the table answers: not a false
    // positive, not useful.
    assert_eq!(db.get("k0001").unwrap(), None);
    assert_eq!(bloom(&db).0, (checks + 1, useful, false_positives));

    // After a full compaction the one table is in the last level, and lookups count there.
    db.compact().unwrap();
    let last = db.lsm_shape().levels.len() - 1;
    let before = bloom(&db);
    absent_and_present_gets(&db);
    let (after_total, after_levels) = bloom(&db);
    assert_eq!(after_total.0 - before.0.0, 2 * G);
    assert_eq!(
        (after_total.1 - before.0.1) + (after_total.2 - before.0.2),
        G
    );
    assert_eq!(after_levels[last].0 - before.1[last].0, 2 * G);
    assert_eq!(after_levels[0], before.1[0], "L0 is empty now");
}

#[test]
fn without_a_filter_nothing_is_counted() {
    let fs = MemFs::new();
    let db = one_table_of_1000_keys(&fs, 0);
    absent_and_present_gets(&db);
    let m = db.metrics();
    assert_eq!(m.gets, 2 * G);
    assert_eq!(
        (m.bloom_checks, m.bloom_useful, m.bloom_false_positives),
        (0, 0, 0)
    );
    assert!(m.lsm.levels.iter().all(|l| l.filter_checks == 0));
}

// ---------------------------------------------------------------------------------------
// 3. Event listeners: order and payloads
// ---------------------------------------------------------------------------------------

/// Checks that `events` are exactly one flush of `entries` entries, in order, and returns
/// its table number.
fn assert_one_flush(events: &[Event], entries: u64, fs: &MemFs) -> u64 {
    let [
        Event::FlushBegin(begin),
        Event::TableCreated(created),
        Event::FlushEnd(end),
    ] = events
    else {
        panic!("one flush expected: {events:#?}");
    };
    let table = begin.table;
    assert_eq!(
        (begin.entries, begin.bytes, begin.duration),
        (0, 0, Duration::ZERO),
        "nothing is known at the beginning"
    );
    assert_eq!(
        *created,
        TableFileInfo {
            number: table,
            bytes: table_size(fs, table),
            reason: TableReason::Flush,
        }
    );
    assert_eq!(
        (end.table, end.entries, end.bytes),
        (table, entries, created.bytes)
    );
    assert!(end.duration > Duration::ZERO);
    table
}

#[test]
fn a_flush_reports_begin_then_its_table_then_end() {
    let fs = MemFs::new();
    let (db, recorder) = open_recorded(quiet_options(&fs));
    for i in 0..100u32 {
        db.put(format!("k{i:03}"), format!("v{i}")).unwrap();
    }
    db.flush().unwrap();
    wait_until("the flush end", || recorder.count(is_flush_end) == 1);
    let first = assert_one_flush(&recorder.take(), 100, &fs);
    let shape = db.lsm_shape();
    assert_eq!(shape.levels[0].tables, 1);
    assert_eq!(shape.levels[0].bytes, table_size(&fs, first));
    assert_eq!(table_numbers(&fs), BTreeSet::from([first]));

    // Overwritten versions are not written: entries counts what the table holds.
    db.put("k000", "newer").unwrap();
    db.put("k000", "newest").unwrap();
    db.delete("k001").unwrap();
    db.put("new", "x").unwrap();
    db.flush().unwrap();
    wait_until("the second flush end", || recorder.count(is_flush_end) == 1);
    let second = assert_one_flush(&recorder.take(), 3, &fs);
    assert!(second > first);
    let m = db.metrics();
    assert_eq!(m.flushes, 2);
    assert_eq!(m.flush_latency.count, 2);
    assert_eq!(
        m.flush_bytes,
        table_size(&fs, first) + table_size(&fs, second)
    );
    assert_eq!(m.lsm.levels[0].compactions, 2, "flushes count as L0's work");
    assert_eq!(m.lsm.levels[0].bytes_written, m.flush_bytes);
    db.flush().unwrap(); // nothing to flush: no event
    std::thread::sleep(Duration::from_millis(50));
    assert!(recorder.events().is_empty(), "{:#?}", recorder.events());
}

/// A listener whose `on_flush_end` takes a while.
struct SlowFlushEnd(Mutex<Vec<u64>>);

impl EventListener for SlowFlushEnd {
    fn on_flush_end(&self, info: &FlushInfo) {
        std::thread::sleep(Duration::from_millis(300));
        self.0.lock().unwrap().push(info.table);
    }
}

/// `Db::flush` waits for its flush, and the listener docs' example counts on it: the
/// flush's `on_flush_end` has run when `flush` returns.
#[test]
fn flush_returns_after_the_flush_end_callback_ran() {
    let fs = MemFs::new();
    let listener = Arc::new(SlowFlushEnd(Mutex::new(Vec::new())));
    let db = Db::open(DIR, quiet_options(&fs).listener(listener.clone())).unwrap();
    db.put("k", "v").unwrap();
    db.flush().unwrap();
    let ended = listener.0.lock().unwrap().len();
    assert_eq!(
        ended, 1,
        "Db::flush returned before on_flush_end of its flush had run"
    );
}

/// Per-level work the events account for: compactions, bytes in, rewritten, written.
type LevelWorkSeen = BTreeMap<usize, (u64, u64, u64, u64)>;

/// Replays compaction events over `live` (table number -> (level, size)), checking their
/// order and payloads; returns the per-level work they describe.
fn replay_compactions(events: &[Event], live: &mut BTreeMap<u64, (usize, u64)>) -> LevelWorkSeen {
    let mut running: Option<(CompactionInfo, Vec<TableFileInfo>)> = None;
    let mut replaced: BTreeMap<u64, u64> = BTreeMap::new();
    let mut work = LevelWorkSeen::new();
    for event in events {
        match event {
            Event::CompactionBegin(c) => {
                assert!(running.is_none(), "manual compactions run one at a time");
                assert!(
                    c.manual && c.outputs.is_empty() && c.bytes_written == 0,
                    "{c:?}"
                );
                assert!(!c.inputs.is_empty());
                let sizes: Vec<u64> = c.inputs.iter().map(|n| live[n].1).collect();
                assert_eq!(c.bytes_read, sizes.iter().sum::<u64>(), "{c:?}");
                running = Some((c.clone(), Vec::new()));
            }
            Event::TableCreated(t) => {
                let (_, created) = running.as_mut().expect("a compaction output in a job");
                assert_eq!(t.reason, TableReason::Compaction);
                assert!(!live.contains_key(&t.number));
                created.push(*t);
            }
            Event::CompactionEnd(c) => {
                let (begin, created) = running.take().expect("an end after a begin");
                assert_eq!(
                    (c.level, c.output_level, &c.inputs, c.manual, c.trivial_move),
                    (
                        begin.level,
                        begin.output_level,
                        &begin.inputs,
                        true,
                        begin.trivial_move
                    )
                );
                assert!(c.duration > Duration::ZERO);
                let w = work.entry(c.output_level).or_default();
                w.0 += 1;
                for n in &c.inputs {
                    let (level, size) = live[n];
                    if level == c.output_level {
                        w.2 += size;
                    } else {
                        w.1 += size;
                    }
                }
                if c.trivial_move {
                    assert_eq!((&c.outputs, c.bytes_written), (&c.inputs, 0));
                    assert!(created.is_empty());
                    // Every input moves down as it is (several disjoint tables may).
                    for n in &c.inputs {
                        live.insert(*n, (c.output_level, live[n].1));
                    }
                    continue;
                }
                let outputs: Vec<u64> = created.iter().map(|t| t.number).collect();
                assert_eq!(c.outputs, outputs, "each output was created before the end");
                let written: u64 = created.iter().map(|t| t.bytes).sum();
                assert_eq!(c.bytes_written, written);
                w.3 += written;
                for n in &c.inputs {
                    replaced.insert(*n, live.remove(n).unwrap().1);
                }
                for t in &created {
                    live.insert(t.number, (c.output_level, t.bytes));
                }
            }
            Event::TableDeleted(t) => {
                assert_eq!(t.reason, TableReason::Obsolete);
                let size = replaced.remove(&t.number);
                assert_eq!(
                    size,
                    Some(t.bytes),
                    "deleted after its compaction ended: {t:?}"
                );
            }
            other => panic!("unexpected during a manual compaction: {other:?}"),
        }
    }
    assert!(running.is_none());
    assert!(
        replaced.is_empty(),
        "replaced but not deleted: {replaced:?}"
    );
    work
}

/// Three overlapping L0 tables; returns the model of what the database holds.
fn three_l0_tables(db: &Db, recorder: &Recorder) -> Model {
    let mut model = Model::new();
    for round in 0..3u32 {
        for i in (round * 20)..(round * 20 + 40) {
            let (k, v) = (format!("key{i:03}"), format!("round{round}-{i}").repeat(3));
            db.put(&k, &v).unwrap();
            model.insert(k.into_bytes(), v.into_bytes());
        }
        db.delete(format!("key{:03}", round * 7)).unwrap();
        model.remove(format!("key{:03}", round * 7).as_bytes());
        db.flush().unwrap();
    }
    wait_until("three flush ends", || recorder.count(is_flush_end) == 3);
    recorder.take();
    assert_eq!(db.lsm_shape().levels[0].tables, 3);
    model
}

fn db_content(db: &Db) -> Model {
    db.iter()
        .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect()
}

#[test]
fn a_manual_compaction_reports_its_jobs_outputs_and_deleted_inputs() {
    let fs = MemFs::new();
    // Each flush makes one table; compactions cut their outputs at 1 KiB.
    let (db, recorder) = open_recorded(quiet_options(&fs));
    let model = three_l0_tables(&db, &recorder);
    let mut live: BTreeMap<u64, (usize, u64)> = table_numbers(&fs)
        .into_iter()
        .map(|n| (n, (0, table_size(&fs, n))))
        .collect();
    let before = db.metrics();
    db.compact().unwrap();
    // Inputs go once no reader holds them: at once here, or at the next background round.
    let ends = |e: &Event| match e {
        Event::CompactionEnd(c) if !c.trivial_move => c.inputs.len(),
        _ => 0,
    };
    wait_until("the deletion of every replaced table", || {
        let events = recorder.events();
        let replaced: usize = events.iter().map(ends).sum();
        let deleted = events
            .iter()
            .filter(|e| matches!(e, Event::TableDeleted(_)))
            .count();
        deleted == replaced
    });
    let events = recorder.take();
    let work = replay_compactions(&events, &mut live);

    let after = db.metrics();
    let jobs = work.values().map(|w| w.0).sum::<u64>();
    assert!(jobs >= 1);
    assert_eq!(after.compactions - before.compactions, jobs);
    assert_eq!(after.compaction_latency.count, after.compactions);
    assert_eq!(
        after.compaction_bytes_written,
        work.values().map(|w| w.3).sum::<u64>()
    );
    for level in &after.lsm.levels[1..] {
        let seen = work.get(&level.level).copied().unwrap_or_default();
        let counted = (
            level.compactions,
            level.bytes_in,
            level.bytes_rewritten,
            level.bytes_written,
        );
        assert_eq!(counted, seen, "L{}", level.level);
    }
    // What the events say is live is what the database holds.
    assert_eq!(
        live.keys().copied().collect::<BTreeSet<_>>(),
        table_numbers(&fs)
    );
    assert_eq!(total_tables(&db), live.len());
    let last = after.lsm.levels.len() - 1;
    assert!(live.values().all(|(level, _)| *level == last), "{live:?}");
    assert_eq!(
        after.lsm.levels[last].bytes,
        live.values().map(|v| v.1).sum::<u64>()
    );
    assert_eq!(db_content(&db), model);
}

#[test]
fn tables_an_iterator_reads_are_deleted_only_after_it_drops() {
    let fs = MemFs::new();
    let (db, recorder) = open_recorded(quiet_options(&fs));
    let model = three_l0_tables(&db, &recorder);
    let originals = table_numbers(&fs);
    let mut iter = db.iter();
    let first = iter.next().unwrap().unwrap();
    db.compact().unwrap();
    std::thread::sleep(Duration::from_millis(300)); // a background round or more
    let deleted = |recorder: &Recorder| -> BTreeSet<u64> {
        recorder
            .events()
            .iter()
            .filter_map(|e| match e {
                Event::TableDeleted(t) => Some(t.number),
                _ => None,
            })
            .collect()
    };
    assert!(
        deleted(&recorder).is_disjoint(&originals),
        "the iterator still reads {originals:?}"
    );
    assert!(originals.is_subset(&table_numbers(&fs)));
    let mut seen: Model = Model::new();
    seen.insert(first.0.to_vec(), first.1.to_vec());
    seen.extend(
        iter.by_ref()
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap()),
    );
    assert_eq!(seen, model, "the iterator reads its own view");
    drop(iter);
    wait_until("the deletion of the tables the iterator held", || {
        originals.is_subset(&deleted(&recorder))
    });
    assert!(table_numbers(&fs).is_disjoint(&originals));
    assert_eq!(table_numbers(&fs).len(), total_tables(&db));
}

#[test]
fn a_write_stall_reports_its_cause_and_duration() {
    let fs = MemFs::new();
    let opts = quiet_options(&fs)
        .l0_compaction_trigger(1)
        .l0_slowdown_trigger(2)
        .l0_stop_trigger(3)
        .write_stall_timeout(Some(Duration::from_millis(100)));
    let (db, recorder) = open_recorded(opts);
    for i in 0..3u32 {
        db.put(i.to_be_bytes(), b"v").unwrap();
        db.flush().unwrap();
    }
    wait_until("three flush ends", || recorder.count(is_flush_end) == 3);
    recorder.take();
    let _ = db.health(); // starts the stall-ratio window here
    let err = db.put(b"blocked", b"v").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Resource, "{err}");
    let events = recorder.take();
    let [Event::StallBegin(begin), Event::StallEnd(end)] = events.as_slice() else {
        panic!("one stall expected: {events:#?}");
    };
    assert_eq!(
        *begin,
        StallInfo {
            cause: StallCause::L0Tables,
            duration: Duration::ZERO
        }
    );
    assert_eq!(end.cause, StallCause::L0Tables);
    assert!(end.duration >= Duration::from_millis(100), "{end:?}");
    let m = db.metrics();
    assert_eq!(m.write_stalls, 1);
    assert_eq!(
        m.write_stall_micros,
        u64::try_from(end.duration.as_micros()).unwrap()
    );
    let health = db.health();
    assert_eq!(health.status, HealthStatus::Degraded);
    assert!(health.stall_ratio > 0.5, "{health:?}");
    assert!(
        health.reasons.iter().any(|r| r.contains("stalled")),
        "{health:?}"
    );
    // The window restarts at each check: no stall since the last one.
    db.compact().unwrap();
    let health = db.health();
    assert_eq!(health.status, HealthStatus::Ok, "{health:?}");
    assert!(health.stall_ratio < 0.1);
}

#[test]
fn a_failed_flush_reports_one_background_error() {
    let fs = MemFs::new();
    let (db, recorder) = open_recorded(quiet_options(&fs));
    for i in 0..50u32 {
        db.put(format!("k{i:03}"), [1u8; 64]).unwrap();
    }
    fs.fail_matching(Fault::Enospc, |op| {
        op.kind == OpKind::Append && op.path.to_string_lossy().contains(".sst")
    });
    assert_eq!(db.flush().unwrap_err().kind(), ErrorKind::Resource);
    let is_error = |e: &Event| matches!(e, Event::BackgroundError(..));
    wait_until("the background error", || recorder.count(is_error) == 1);
    // More failing calls are refused by the read-only state: no new background error.
    assert!(db.put(b"x", b"y").is_err());
    assert!(db.flush().is_err());
    assert!(db.compact().is_err());
    std::thread::sleep(Duration::from_millis(300)); // a background round or more
    let events = recorder.take();
    let [
        Event::FlushBegin(begin),
        Event::BackgroundError(kind, message),
    ] = events.as_slice()
    else {
        panic!("a flush begin and one error expected: {events:#?}");
    };
    assert_eq!(*kind, ErrorKind::Resource, "{message}");
    assert!(!table_numbers(&fs).contains(&begin.table));
    assert_eq!(db.metrics().background_errors, 1);

    fs.clear_faults();
    db.resume().unwrap();
    db.flush().unwrap();
    wait_until("the retried flush", || recorder.count(is_flush_end) == 1);
    let table = assert_one_flush(&recorder.take(), 50, &fs);
    assert!(table > begin.table, "a new table number");
    assert_eq!(db.metrics().background_errors, 1);
}

// ---------------------------------------------------------------------------------------
// 4. A panicking listener
// ---------------------------------------------------------------------------------------

const PANIC_MARKER: &str = "this listener panics on purpose";

/// Keeps the deliberate panics out of the test output (other panics print as usual).
fn silence_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&PANIC_MARKER) {
                default(info);
            }
        }));
    });
}

fn boom() -> ! {
    std::panic::panic_any(PANIC_MARKER)
}

/// Panics in every callback.
struct Panicker;

impl EventListener for Panicker {
    fn on_flush_begin(&self, _: &FlushInfo) {
        boom()
    }
    fn on_flush_end(&self, _: &FlushInfo) {
        boom()
    }
    fn on_compaction_begin(&self, _: &CompactionInfo) {
        boom()
    }
    fn on_compaction_end(&self, _: &CompactionInfo) {
        boom()
    }
    fn on_stall_begin(&self, _: &StallInfo) {
        boom()
    }
    fn on_stall_end(&self, _: &StallInfo) {
        boom()
    }
    fn on_background_error(&self, _: &kevo::Error) {
        boom()
    }
    fn on_table_created(&self, _: &TableFileInfo) {
        boom()
    }
    fn on_table_deleted(&self, _: &TableFileInfo) {
        boom()
    }
}

#[test]
fn a_listener_that_panics_in_every_callback_harms_nothing() {
    silence_deliberate_panics();
    let fs = MemFs::new();
    let recorder = Arc::new(Recorder::default());
    // Tiny memtables and tables, automatic compaction: many flushes and compactions.
    let opts = memfs_options(&fs)
        .listener(Arc::new(Panicker))
        .listener(recorder.clone());
    let db = Db::open(DIR, opts.clone()).unwrap();
    let mut model = Model::new();
    for op in workload(400, 11) {
        op.apply_to_db(&db).unwrap();
        op.apply_to_model(&mut model);
    }
    assert_eq!(read_state(&db), model);
    db.flush().unwrap();
    db.compact().unwrap();
    assert_eq!(read_state(&db), model);
    assert_eq!(db_content(&db), model);

    // A background error reported to the panicking listener still turns the database
    // read-only, and it resumes.
    db.put(b"late", b"write").unwrap();
    model.insert(b"late".to_vec(), b"write".to_vec());
    fs.fail_matching(Fault::Enospc, |op| {
        op.kind == OpKind::Append && op.path.to_string_lossy().contains(".sst")
    });
    assert!(db.flush().is_err());
    assert!(db.put(b"refused", b"x").is_err());
    fs.clear_faults();
    db.resume().unwrap();
    db.flush().unwrap();
    assert_eq!(db_content(&db), model);

    db.close().unwrap(); // no callback runs after this
    let m = db.metrics();
    let events = recorder.events();
    assert!(m.listener_panics > 0);
    assert_eq!(
        m.listener_panics,
        events.len() as u64,
        "each event: one panic in the first listener, one call of the second"
    );
    let saw = |what: fn(&Event) -> bool| events.iter().any(what);
    assert!(saw(is_flush_end));
    assert!(saw(|e| matches!(e, Event::CompactionEnd(c) if !c.manual)));
    assert!(saw(|e| matches!(e, Event::CompactionEnd(c) if c.manual)));
    assert!(saw(|e| matches!(e, Event::TableDeleted(_))));
    assert!(saw(|e| matches!(e, Event::BackgroundError(..))));
    drop(db);
    let db = Db::open(DIR, opts).unwrap();
    assert_eq!(db_content(&db), model, "after reopen");
}

// ---------------------------------------------------------------------------------------
// 5. Health
// ---------------------------------------------------------------------------------------

fn strict_pending() -> HealthThresholds {
    HealthThresholds {
        max_pending_compaction_bytes: 0,
        ..HealthThresholds::default()
    }
}

#[test]
fn health_is_read_only_after_a_background_error_until_resume_and_after_close() {
    let fs = MemFs::new();
    let db = Db::open(DIR, quiet_options(&fs)).unwrap();
    let fresh = db.health();
    assert_eq!(fresh.status, HealthStatus::Ok, "{fresh:?}");
    assert!(fresh.reasons.is_empty());
    assert_eq!((fresh.l0_tables, fresh.pending_compaction_bytes), (0, 0));
    assert!(fresh.stall_ratio <= 0.0);
    assert_eq!(db.health_with(&strict_pending()).status, HealthStatus::Ok);

    db.put(b"k", [1u8; 64]).unwrap();
    fs.fail_matching(Fault::Enospc, |op| {
        op.kind == OpKind::Append && op.path.to_string_lossy().contains(".sst")
    });
    assert!(db.flush().is_err());
    let failed = db.health();
    assert_eq!(failed.status, HealthStatus::ReadOnly, "{failed:?}");
    assert_eq!(failed.reasons.len(), 1, "{failed:?}");
    assert!(failed.reasons[0].contains("background error"), "{failed:?}");

    fs.clear_faults();
    assert_eq!(db.health().status, HealthStatus::ReadOnly, "until resume");
    db.resume().unwrap();
    assert_eq!(db.health().status, HealthStatus::Ok);
    db.flush().unwrap();
    let flushed = db.health();
    assert_eq!((flushed.status, flushed.l0_tables), (HealthStatus::Ok, 1));

    db.close().unwrap();
    let closed = db.health();
    assert_eq!(closed.status, HealthStatus::ReadOnly);
    assert!(
        closed.reasons.iter().any(|r| r.contains("closed")),
        "{closed:?}"
    );
}

#[test]
fn health_is_degraded_by_l0_tables_and_compaction_debt_until_compaction() {
    let fs = MemFs::new();
    let opts = quiet_options(&fs)
        .l0_compaction_trigger(2)
        .l0_slowdown_trigger(3)
        .l0_stop_trigger(10);
    let db = Db::open(DIR, opts).unwrap();
    let flush_one = |i: u32| {
        db.put(format!("k{i}"), [7u8; 100]).unwrap();
        db.flush().unwrap();
    };
    flush_one(0);
    assert_eq!(db.health().status, HealthStatus::Ok);
    assert_eq!(db.health_with(&strict_pending()).status, HealthStatus::Ok);
    flush_one(1);
    // At the compaction trigger L0 is owed to compaction.
    let owed = db.lsm_shape().pending_compaction_bytes;
    assert_eq!(owed, db.lsm_shape().levels[0].bytes);
    assert_eq!(
        db.health().status,
        HealthStatus::Ok,
        "under the default limit"
    );
    let strict = db.health_with(&strict_pending());
    assert_eq!(strict.status, HealthStatus::Degraded, "{strict:?}");
    assert_eq!(strict.pending_compaction_bytes, owed);
    assert_eq!(strict.reasons.len(), 1, "{strict:?}");
    assert!(strict.reasons[0].contains("compaction owes"), "{strict:?}");
    flush_one(2);
    let l0 = db.health();
    assert_eq!(
        (l0.status, l0.l0_tables),
        (HealthStatus::Degraded, 3),
        "{l0:?}"
    );
    assert_eq!(l0.reasons.len(), 1, "{l0:?}");
    assert!(l0.reasons[0].contains("L0"), "{l0:?}");
    let lenient = HealthThresholds {
        max_l0_tables: Some(4),
        ..HealthThresholds::default()
    };
    assert_eq!(db.health_with(&lenient).status, HealthStatus::Ok);
    let score = db.lsm_shape().levels[0].compaction_score.unwrap();
    assert!((score - 1.5).abs() < 1e-9, "3 tables, trigger 2: {score}");

    db.compact().unwrap();
    let compacted = db.health();
    assert_eq!(compacted.status, HealthStatus::Ok, "{compacted:?}");
    assert_eq!(
        (compacted.l0_tables, compacted.pending_compaction_bytes),
        (0, 0)
    );
    assert_eq!(db.health_with(&strict_pending()).status, HealthStatus::Ok);
}

// ---------------------------------------------------------------------------------------
// 6. Prometheus and JSON exports
// ---------------------------------------------------------------------------------------

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// Fails the check with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err(format!($($message)+));
        }
    };
}

/// A sample value as the text format writes floats (Go's ParseFloat syntax, which has no
/// Rust-style "inf").
fn sample_value(text: &str, line: &str) -> Result<f64, String> {
    Ok(match text {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => {
            ensure!(
                !text.is_empty()
                    && text
                        .chars()
                        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')),
                "bad value in {line:?}"
            );
            text.parse().map_err(|_| format!("bad value in {line:?}"))?
        }
    })
}

/// `{k="v",...}` into pairs, checking names and escapes.
fn parse_labels(labels: &str, line: &str) -> Result<Vec<(String, String)>, String> {
    let inner = labels
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .ok_or_else(|| format!("bad labels in {line:?}"))?;
    let mut pairs = Vec::new();
    let mut rest = inner;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("bad label in {line:?}"))?;
        ensure!(is_label_name(name), "bad label name in {line:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err(format!("bad escape in {line:?}")),
                },
                Some((_, '\n')) | None => return Err(format!("unterminated value in {line:?}")),
                Some((_, c)) => value.push(c),
            }
        };
        ensure!(
            pairs.iter().all(|(n, _)| n != name),
            "repeated label in {line:?}"
        );
        pairs.push((name.to_string(), value));
        rest = &after[end + 1..];
        if !rest.is_empty() {
            rest = rest
                .strip_prefix(',')
                .ok_or_else(|| format!("labels not comma-separated in {line:?}"))?;
        }
    }
    Ok(pairs)
}

/// The lines of one exposition, checked as they come.
#[derive(Default)]
struct Exposition {
    types: HashMap<String, String>,
    helps: BTreeSet<String>,
    /// Families whose lines have ended: none may come back.
    done: BTreeSet<String>,
    current: Option<String>,
    samples: BTreeMap<String, f64>,
}

impl Exposition {
    /// Lines of one family must be together.
    fn enter(&mut self, family: &str, line: &str) -> Result<(), String> {
        if self.current.as_deref() != Some(family) {
            ensure!(!self.done.contains(family), "family split up at {line:?}");
            if let Some(previous) = self.current.replace(family.to_string()) {
                self.done.insert(previous);
            }
        }
        Ok(())
    }

    fn help(&mut self, rest: &str, line: &str) -> Result<(), String> {
        let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
        ensure!(is_metric_name(name) && !help.trim().is_empty(), "{line:?}");
        ensure!(self.helps.insert(name.to_string()), "HELP twice: {line:?}");
        self.enter(name, line)
    }

    fn type_line(&mut self, rest: &str, line: &str) -> Result<(), String> {
        let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
        ensure!(is_metric_name(name), "{line:?}");
        ensure!(
            ["counter", "gauge", "summary"].contains(&kind),
            "bad type: {line:?}"
        );
        ensure!(
            kind != "counter" || name.ends_with("_total"),
            "a counter not named *_total: {line:?}"
        );
        self.enter(name, line)?;
        let declared = self.types.insert(name.to_string(), kind.to_string());
        ensure!(declared.is_none(), "TYPE twice: {line:?}");
        Ok(())
    }

    fn sample(&mut self, line: &str) -> Result<(), String> {
        ensure!(!line.starts_with('#'), "unexpected comment {line:?}");
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("no value: {line:?}"))?;
        let value = sample_value(value, line)?;
        let (name, labels) = series.split_at(series.find('{').unwrap_or(series.len()));
        ensure!(is_metric_name(name), "bad name: {line:?}");
        let labels = if labels.is_empty() {
            Vec::new()
        } else {
            parse_labels(labels, line)?
        };
        let family = if self.types.contains_key(name) {
            name
        } else {
            name.strip_suffix("_sum")
                .or_else(|| name.strip_suffix("_count"))
                .filter(|f| self.types.get(*f).is_some_and(|k| k == "summary"))
                .ok_or_else(|| format!("no TYPE before {line:?}"))?
        };
        self.enter(family, line)?;
        match self.types[family].as_str() {
            "counter" => ensure!(
                value.is_finite() && value.is_sign_positive(),
                "bad counter value: {line:?}"
            ),
            "summary" if name == family => {
                let q = labels
                    .iter()
                    .find(|(n, _)| n == "quantile")
                    .and_then(|(_, q)| q.parse::<f64>().ok())
                    .ok_or_else(|| format!("no quantile: {line:?}"))?;
                ensure!((0.0..=1.0).contains(&q), "{line:?}");
            }
            _ => {}
        }
        let fresh = self.samples.insert(series.to_string(), value).is_none();
        ensure!(fresh, "series twice: {line:?}");
        Ok(())
    }
}

/// Checks `text` strictly against the Prometheus text format (0.0.4) and returns its
/// samples by series (`name` or `name{labels}` as written).
fn check_exposition(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut exposition = Exposition::default();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            exposition.help(rest, line)?;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            exposition.type_line(rest, line)?;
        } else {
            exposition.sample(line)?;
        }
    }
    let typed: BTreeSet<String> = exposition.types.keys().cloned().collect();
    ensure!(exposition.helps == typed, "a HELP for every TYPE and back");
    Ok(exposition.samples)
}

#[test]
fn the_exposition_check_rejects_malformed_text() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n\
                # HELP s S.\n# TYPE s summary\ns{quantile=\"0.5\"} 0.25\ns_sum 1e-3\ns_count 2\n\
                # HELP g G.\n# TYPE g gauge\ng{level=\"0\",x=\"a\\\"b\"} NaN\n";
    assert_eq!(check_exposition(good).unwrap().len(), 5);
    for bad in [
        "# HELP a A.\n# TYPE a counter\na 1\n", // counter name
        "# HELP g G.\n# TYPE g gauge\n# TYPE g gauge\ng 1\n", // TYPE twice
        "g 1\n# HELP g G.\n# TYPE g gauge\n",   // sample first
        "# HELP g G.\n# TYPE g gauge\ng inf\n", // Rust float
        "# HELP g G.\n# TYPE g gauge\ng{l=\"0\"} 1\ng{l=\"0\"} 2\n", // series twice
        "# HELP g G.\n# TYPE g gauge\ng{0l=\"0\"} 1\n", // label name
        "# HELP g G.\n# TYPE g gauge\ng{l=0} 1\n", // unquoted
        "# HELP g G.\n# TYPE g gauge\ng-x 1\n", // metric name
        "# HELP s S.\n# TYPE s summary\ns 1\n", // no quantile
        "# HELP g G.\n# TYPE g gauge\n# HELP h H.\n# TYPE h gauge\nh 1\ng 1\n", // split
        "# HELP g G.\n# TYPE g histogram\ng 1\n", // unknown type
        "# HELP g G.\n# TYPE g gauge\n# TYPE h gauge\ng 1\n", // TYPE without HELP
    ] {
        assert!(check_exposition(bad).is_err(), "accepted: {bad:?}");
    }
}

#[test]
fn the_prometheus_text_is_well_formed_and_carries_the_metrics() {
    let fs = MemFs::new();
    let db = Db::open(DIR, quiet_options(&fs).target_file_size(1 << 20)).unwrap();
    for i in 0..100u32 {
        db.put(format!("key{i:03}"), format!("value{i}")).unwrap();
    }
    db.delete("key050").unwrap();
    db.flush().unwrap();
    db.compact().unwrap();
    db.put("key100", "in L0").unwrap();
    db.flush().unwrap();
    for i in 0..120u32 {
        db.get(format!("key{i:03}")).unwrap();
        db.get(format!("key{i:03}x")).unwrap();
    }
    assert_eq!(db.iter().count(), 100);
    let _snapshot = db.snapshot();
    let m = db.metrics();
    let samples = check_exposition(&m.to_prometheus()).unwrap();
    assert!(samples.len() > 60, "{samples:?}");
    let value = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in {samples:?}"))
    };
    for (series, expected) in [
        ("kevo_puts_total", m.puts),
        ("kevo_deletes_total", m.deletes),
        ("kevo_writes_total", m.writes),
        ("kevo_written_bytes_total", m.bytes_written),
        ("kevo_gets_total", m.gets),
        ("kevo_get_hits_total", m.get_hits),
        ("kevo_read_bytes_total", m.bytes_read),
        ("kevo_flushes_total", m.flushes),
        ("kevo_compactions_total", m.compactions),
        ("kevo_iter_seeks_total", m.iter_seeks),
        ("kevo_iter_steps_total", m.iter_steps),
        ("kevo_bloom_checks_total", m.bloom_checks),
        ("kevo_bloom_useful_total", m.bloom_useful),
        ("kevo_bloom_false_positives_total", m.bloom_false_positives),
        ("kevo_listener_panics_total", m.listener_panics),
        ("kevo_get_latency_seconds_count", m.get_latency.count),
        ("kevo_sync_latency_seconds_count", m.sync_latency.count),
        ("kevo_flush_duration_seconds_count", m.flush_latency.count),
        (
            "kevo_compaction_duration_seconds_count",
            m.compaction_latency.count,
        ),
        ("kevo_table_bytes", m.lsm.table_bytes),
        (
            "kevo_pending_compaction_bytes",
            m.lsm.pending_compaction_bytes,
        ),
        ("kevo_snapshots", 1),
        ("kevo_last_sequence", m.lsm.last_sequence),
    ] {
        assert!((value(series) - expected as f64).abs() < 0.5, "{series}");
    }
    assert_eq!(
        (m.puts, m.deletes, m.gets, m.iter_steps),
        (101, 1, 240, 101)
    );
    assert_eq!(
        m.bloom_checks,
        m.lsm.levels.iter().map(|l| l.filter_checks).sum::<u64>()
    );
    assert!(m.bloom_checks > 0 && m.bloom_useful > 0);
    let flush_seconds = value("kevo_flush_duration_seconds_sum");
    assert!((flush_seconds - m.flush_latency.sum_nanos as f64 / 1e9).abs() < 1e-6);
    let last = m.lsm.levels.len() - 1;
    for level in &m.lsm.levels {
        let l = level.level;
        let tables = value(&format!("kevo_level_tables{{level=\"{l}\"}}"));
        assert!((tables - level.tables as f64).abs() < 0.5, "L{l}");
        let checks = value(&format!("kevo_level_filter_checks_total{{level=\"{l}\"}}"));
        assert!((checks - level.filter_checks as f64).abs() < 0.5, "L{l}");
        let score = samples.get(&format!("kevo_level_compaction_score{{level=\"{l}\"}}"));
        assert_eq!(score.is_some(), level.compaction_score.is_some(), "L{l}");
    }
    assert!(m.lsm.levels[last].compaction_score.is_none());
    assert_eq!((m.lsm.levels[0].tables, m.lsm.levels[last].tables), (1, 1));
}

#[test]
fn the_json_form_carries_the_new_fields() {
    let fs = MemFs::new();
    let db = Db::open(DIR, quiet_options(&fs)).unwrap();
    for i in 0..20u32 {
        db.put(format!("key{i:02}"), "v").unwrap();
    }
    db.put([0xffu8, 0x00], "binary key").unwrap();
    db.flush().unwrap();
    db.get("key05").unwrap();
    db.get("key05x").unwrap();
    assert_eq!(db.iter().count(), 21);
    let _snapshot = db.snapshot();
    let m = db.metrics();
    let json = serde_json::to_value(&m).unwrap();
    for (field, value) in [
        ("iter_seeks", m.iter_seeks),
        ("iter_steps", m.iter_steps),
        ("bloom_checks", m.bloom_checks),
        ("bloom_useful", m.bloom_useful),
        ("bloom_false_positives", m.bloom_false_positives),
        ("listener_panics", m.listener_panics),
    ] {
        assert_eq!(json[field], value, "{field}");
    }
    assert_eq!((m.iter_seeks, m.iter_steps, m.bloom_checks), (1, 22, 2));
    for field in ["sync_latency", "flush_latency", "compaction_latency"] {
        for part in [
            "count",
            "sum_nanos",
            "p50_nanos",
            "p99_nanos",
            "p999_nanos",
            "max_nanos",
        ] {
            assert!(json[field][part].is_u64(), "{field}.{part}: {json}");
        }
    }
    assert_eq!(json["sync_latency"]["count"], m.sync_latency.count);
    assert_eq!(json["flush_latency"]["count"], 1);
    assert_eq!(json["compaction_latency"]["count"], 0);
    let lsm = &json["lsm"];
    assert_eq!(lsm["table_bytes"], m.lsm.table_bytes);
    assert_eq!(
        lsm["pending_compaction_bytes"],
        m.lsm.pending_compaction_bytes
    );
    assert_eq!(lsm["snapshots"], 1);
    let l0 = &lsm["levels"][0];
    for field in [
        "filter_checks",
        "filter_useful",
        "filter_false_positives",
        "compactions",
        "bytes_in",
        "bytes_rewritten",
        "bytes_written",
        "compaction_micros",
    ] {
        assert!(l0[field].is_u64(), "{field}: {l0}");
    }
    assert_eq!(l0["filter_checks"], 2);
    assert_eq!(l0["compactions"], 1);
    assert!(l0["compaction_score"].is_f64(), "{l0}");
    assert!(lsm["levels"][6]["compaction_score"].is_null());
    assert!(lsm["levels"][1]["key_range"].is_null());
    // Text keys as text, binary keys in hex.
    assert_eq!(
        m.lsm.levels[0].key_range,
        Some((b"key00".to_vec(), vec![0xff, 0x00]))
    );
    let range = l0["key_range"].as_array().unwrap();
    assert_eq!(range.len(), 2);
    assert_eq!(range[0], "key00");
    assert_eq!(range[1], "0xff00");
}
