//! Counters and latency histograms kept on the hot paths, cheaply: relaxed atomics, no lock.
//!
//! [`Metrics`](crate::Metrics) is the serializable snapshot `Db::metrics` returns; this module
//! holds the live instruments and the Prometheus text rendering.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Sub-buckets per power of two: 4 gives buckets at most 25% wide.
const SUB_BUCKETS: usize = 4;
/// Powers of two covered, in nanoseconds (2^40 ns ≈ 18 minutes).
const OCTAVES: usize = 40;
const BUCKETS: usize = OCTAVES * SUB_BUCKETS;

/// Shards per instrument: threads spread over them, so increments from different cores
/// rarely touch the same cache line.
const SHARDS: usize = 8;

/// The shard of the calling thread: threads are numbered in order of first use.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

/// One point lookup in this many (per thread) has its latency recorded.
pub(crate) const LATENCY_SAMPLING: u32 = 8;

/// Whether the calling thread's current lookup is one to time.
#[doc(hidden)] // public for the instrumentation benchmark
pub fn sample_latency() -> bool {
    thread_local! {
        static CALLS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    CALLS.with(|calls| {
        let n = calls.get().wrapping_add(1);
        calls.set(n);
        n % LATENCY_SAMPLING == 1
    })
}

/// Whether the calling thread's current table lookup is one to count in the table's own
/// (shared, unsharded) counters: one in `sst::table::TABLE_COUNT_SAMPLING`.
pub(crate) fn sample_table_count() -> bool {
    thread_local! {
        static LOOKUPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    // A per-thread xorshift, not a count: lookups that probe a fixed number of tables in
    // a fixed order would make a count land on the same table every time.
    LOOKUPS.with(|state| {
        let mut x = state.get();
        if x == 0 {
            // Seeded per thread from the address of its state.
            x = (std::ptr::from_ref(state) as u64) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x % crate::sst::table::TABLE_COUNT_SAMPLING == 0
    })
}

/// One atomic alone on its cache lines (128 bytes: adjacent-line prefetch pairs lines).
#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// A counter that threads increment without contending: one padded atomic per shard,
/// summed when read. Exact; a read concurrent with increments sees some of them.
#[derive(Default)]
#[doc(hidden)] // public for the instrumentation benchmark
pub struct Counter {
    shards: [Padded; SHARDS],
}

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.shards[shard_index()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The total.
    pub fn get(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// A log-linear latency histogram in nanoseconds: lock-free, sharded like [`Counter`],
/// fixed memory, quantiles within 25% of the true value.
#[doc(hidden)] // public for the instrumentation benchmark
pub struct Histogram {
    shards: Box<[HistogramShard]>,
}

#[repr(align(128))]
struct HistogramShard {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for HistogramShard {
    fn default() -> Self {
        HistogramShard {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            shards: (0..SHARDS).map(|_| HistogramShard::default()).collect(),
        }
    }
}

fn bucket_of(nanos: u64) -> usize {
    if nanos < SUB_BUCKETS as u64 {
        return nanos as usize;
    }
    let octave = 63 - nanos.leading_zeros() as usize; // ≥ 2
    let sub = ((nanos >> (octave - 2)) & 0b11) as usize;
    ((octave - 1) * SUB_BUCKETS + sub).min(BUCKETS - 1)
}

/// The largest value bucket `index` holds.
fn bucket_upper(index: usize) -> u64 {
    if index < SUB_BUCKETS {
        return index as u64;
    }
    let octave = index / SUB_BUCKETS + 1;
    let sub = (index % SUB_BUCKETS) as u64;
    ((SUB_BUCKETS as u64 + sub + 1) << (octave - 2)) - 1
}

impl Histogram {
    /// Records one latency.
    pub fn record(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let shard = &self.shards[shard_index()];
        shard.buckets[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        shard.count.fetch_add(1, Ordering::Relaxed);
        shard.sum.fetch_add(nanos, Ordering::Relaxed);
        shard.max.fetch_max(nanos, Ordering::Relaxed);
    }

    /// A consistent-enough copy (each field read once; concurrent records may straddle).
    pub fn snapshot(&self) -> LatencySummary {
        let counts: Vec<u64> = (0..BUCKETS)
            .map(|b| {
                self.shards
                    .iter()
                    .map(|s| s.buckets[b].load(Ordering::Relaxed))
                    .sum()
            })
            .collect();
        let total: u64 = counts.iter().sum();
        let quantile = |q: f64| -> u64 {
            if total == 0 {
                return 0;
            }
            let rank = ((total as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, &c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return bucket_upper(i);
                }
            }
            bucket_upper(BUCKETS - 1)
        };
        let sum_of = |field: fn(&HistogramShard) -> &AtomicU64| -> u64 {
            self.shards
                .iter()
                .map(|s| field(s).load(Ordering::Relaxed))
                .fold(0, u64::wrapping_add)
        };
        let max = self
            .shards
            .iter()
            .map(|s| s.max.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        LatencySummary {
            count: sum_of(|s| &s.count),
            sum_nanos: sum_of(|s| &s.sum),
            p50_nanos: quantile(0.5).min(max),
            p99_nanos: quantile(0.99).min(max),
            p999_nanos: quantile(0.999).min(max),
            max_nanos: max,
        }
    }
}

/// Quantiles of a latency histogram, in nanoseconds (within 25% of the true values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct LatencySummary {
    /// Operations recorded.
    pub count: u64,
    /// Sum of their latencies.
    pub sum_nanos: u64,
    /// Median.
    pub p50_nanos: u64,
    /// 99th percentile.
    pub p99_nanos: u64,
    /// 99.9th percentile.
    pub p999_nanos: u64,
    /// Slowest.
    pub max_nanos: u64,
}

/// The counters of one database. Sharded relaxed atomics: each is exact, their combination
/// is a moment's approximation.
#[derive(Default)]
pub(crate) struct Counters {
    pub puts: Counter,
    pub deletes: Counter,
    pub writes: Counter,
    pub bytes_written: Counter,
    pub gets: Counter,
    pub get_hits: Counter,
    pub bytes_read: Counter,
    pub commit_groups: Counter,
    pub wal_syncs: Counter,
    pub flushes: Counter,
    pub flush_bytes: Counter,
    pub compactions: Counter,
    pub compaction_bytes_read: Counter,
    pub compaction_bytes_written: Counter,
    pub compaction_throttled_micros: Counter,
    pub background_errors: Counter,
    pub transaction_commits: Counter,
    pub transaction_conflicts: Counter,
    pub write_stalls: Counter,
    pub write_stall_micros: Counter,
    pub write_slowdowns: Counter,
    pub iter_seeks: Counter,
    pub iter_steps: Counter,
    pub get_latency: Histogram,
    pub write_latency: Histogram,
    pub sync_latency: Histogram,
    pub flush_latency: Histogram,
    pub compaction_latency: Histogram,
}

/// Work done writing tables into one level: flushes (L0) and compactions whose output went
/// there.
#[derive(Default)]
pub(crate) struct LevelCounters {
    pub compactions: Counter,
    /// Input bytes from shallower levels (what moved into this level).
    pub bytes_in: Counter,
    /// Input bytes that were already in this level (rewritten to merge with the new ones).
    pub bytes_rewritten: Counter,
    pub bytes_written: Counter,
    pub micros: Counter,
}

/// A copy of one level's [`LevelCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct LevelWork {
    pub compactions: u64,
    pub bytes_in: u64,
    pub bytes_rewritten: u64,
    pub bytes_written: u64,
    pub micros: u64,
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

impl LevelCounters {
    /// A flush into L0: nothing read from a table.
    pub fn record_flush(&self, bytes_written: u64, elapsed: Duration) {
        add(&self.compactions, 1);
        add(&self.bytes_written, bytes_written);
        add(&self.micros, micros(elapsed));
    }

    /// A compaction (trivial moves included: they move bytes in and write none).
    pub fn record_compaction(&self, work: LevelWork, elapsed: Duration) {
        add(&self.compactions, 1);
        add(&self.bytes_in, work.bytes_in);
        add(&self.bytes_rewritten, work.bytes_rewritten);
        add(&self.bytes_written, work.bytes_written);
        add(&self.micros, micros(elapsed));
    }

    /// The counters now.
    pub fn read(&self) -> LevelWork {
        LevelWork {
            compactions: read(&self.compactions),
            bytes_in: read(&self.bytes_in),
            bytes_rewritten: read(&self.bytes_rewritten),
            bytes_written: read(&self.bytes_written),
            micros: read(&self.micros),
        }
    }
}

/// What the bloom filters of one level said to point lookups.
#[derive(Default)]
pub(crate) struct FilterCounters {
    /// Lookups that asked a filter.
    pub checks: Counter,
    /// The filter said "absent": a table read saved.
    pub useful: Counter,
    /// The filter said "maybe" and the table held no visible version of the key.
    pub false_positives: Counter,
    /// The false positives expected for the lookups of keys the tables lacked: the sum of
    /// each probed filter's expected rate, in parts per million (a u64 that lasts 3e13
    /// lookups even at the worst rates; adaptation reads it as differences, which survive
    /// a wrap).
    pub expected_ppm: Counter,
}

impl FilterCounters {
    /// The counters now: checks, useful, false positives.
    pub fn read(&self) -> (u64, u64, u64) {
        (
            read(&self.checks),
            read(&self.useful),
            read(&self.false_positives),
        )
    }
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &Counter, n: u64) {
    counter.add(n);
}

/// Reads a counter.
pub(crate) fn read(counter: &Counter) -> u64 {
    counter.get()
}

/// Renders `value` as a Prometheus sample line.
pub(crate) fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{name}{labels} {value}");
}

/// Renders a `# HELP` and `# TYPE` header.
pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_contiguous_and_within_a_quarter() {
        let mut previous_upper = None;
        for i in 0..BUCKETS {
            let upper = bucket_upper(i);
            if let Some(p) = previous_upper {
                assert!(upper > p, "bucket {i}");
                assert_eq!(
                    bucket_of(p + 1),
                    i,
                    "the value after bucket {} starts bucket {i}",
                    i - 1
                );
            }
            assert_eq!(bucket_of(upper), i);
            let lower = previous_upper.map_or(0, |p| p + 1);
            assert!(
                upper - lower <= upper / 4 + 1,
                "bucket {i}: {lower}..={upper}"
            );
            previous_upper = Some(upper);
        }
    }

    #[test]
    fn quantiles_come_out_within_the_bucket_error() {
        let h = Histogram::default();
        for micros in 1..=1000u64 {
            h.record(Duration::from_micros(micros));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 1000);
        assert_eq!(s.max_nanos, 1_000_000);
        let near = |got: u64, want: u64| got >= want && (got as f64) <= want as f64 * 1.25;
        assert!(near(s.p50_nanos, 500_000), "{s:?}");
        assert!(near(s.p99_nanos, 990_000), "{s:?}");
        assert!(
            s.p999_nanos <= s.max_nanos && s.p999_nanos >= 999_000 * 8 / 10,
            "{s:?}"
        );
        assert_eq!(Histogram::default().snapshot(), LatencySummary::default());
    }
}

/// A database's numbers at one moment (see [`Db::metrics`](crate::Db::metrics)).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Metrics {
    /// The shape of the tree.
    pub lsm: crate::LsmShape,
    /// Puts applied (entries of acknowledged writes and batches).
    pub puts: u64,
    /// Deletes applied.
    pub deletes: u64,
    /// Acknowledged write calls (`put`, `delete`, `write` and their forms).
    pub writes: u64,
    /// Bytes of keys and values acknowledged.
    pub bytes_written: u64,
    /// `get` calls.
    pub gets: u64,
    /// `get` calls that found a value.
    pub get_hits: u64,
    /// Bytes of values `get` returned.
    pub bytes_read: u64,
    /// Commit groups (each one WAL append): writes / commit_groups is the group size.
    pub commit_groups: u64,
    /// WAL syncs by commits (not counting background and rotation syncs).
    pub wal_syncs: u64,
    /// Memtables flushed to tables.
    pub flushes: u64,
    /// Bytes of tables written by flushes.
    pub flush_bytes: u64,
    /// Compactions run (trivial moves included).
    pub compactions: u64,
    /// Bytes of tables read by compactions.
    pub compaction_bytes_read: u64,
    /// Bytes of tables written by compactions.
    pub compaction_bytes_written: u64,
    /// Microseconds compactions waited for the rate limiter.
    pub compaction_throttled_micros: u64,
    /// Table bytes written (flush + compaction) per byte the user wrote.
    pub write_amplification: f64,
    /// Failures that made the database read-only.
    pub background_errors: u64,
    /// Transactions committed.
    pub transaction_commits: u64,
    /// Transactions refused at commit for a conflict.
    pub transaction_conflicts: u64,
    /// Commit groups that had to wait (too many frozen memtables or L0 tables).
    pub write_stalls: u64,
    /// Microseconds spent in those waits.
    pub write_stall_micros: u64,
    /// Commit groups delayed because L0 passed `l0_slowdown_trigger`.
    pub write_slowdowns: u64,
    /// Block cache lookups that hit.
    pub block_cache_hits: u64,
    /// Block cache lookups that missed.
    pub block_cache_misses: u64,
    /// Data blocks read from table files (cache misses, and reads that bypass the cache).
    pub block_reads: u64,
    /// Bytes of bloom filters held in memory by the open tables.
    pub filter_memory_bytes: u64,
    /// Times a level's new tables were given more filter bits because its observed
    /// false-positive rate was too high (`Options::adaptive_filters`).
    pub filter_adjustments: u64,
    /// Latency of `get`, sampled: one call in 8 per thread is timed (`count` is the
    /// samples, `gets` the calls).
    pub get_latency: LatencySummary,
    /// Latency of writes, from the call to the acknowledgement.
    pub write_latency: LatencySummary,
    /// Latency of WAL syncs made by commits.
    pub sync_latency: LatencySummary,
    /// Duration of flushes.
    pub flush_latency: LatencySummary,
    /// Duration of compactions (trivial moves included).
    pub compaction_latency: LatencySummary,
    /// Iterator positionings: a cursor's first seek, `seek`, `seek_for_prev`.
    pub iter_seeks: u64,
    /// Iterator steps: `next` and `next_back` calls.
    pub iter_steps: u64,
    /// Point lookups that asked a table's bloom filter (every level).
    pub bloom_checks: u64,
    /// Those the filter answered "absent" (a table read saved).
    pub bloom_useful: u64,
    /// Those the filter let through although the table held no visible version of the key.
    pub bloom_false_positives: u64,
    /// Event listener callbacks that panicked (caught; the database was unaffected).
    pub listener_panics: u64,
}

/// Every counter: name (without the `kevo_` prefix), help text, value.
type CounterSample = (&'static str, &'static str, fn(&Metrics) -> u64);

const COUNTERS: [CounterSample; 31] = [
    ("puts_total", "Puts applied.", |m| m.puts),
    ("deletes_total", "Deletes applied.", |m| m.deletes),
    ("writes_total", "Acknowledged write calls.", |m| m.writes),
    (
        "written_bytes_total",
        "Bytes of keys and values acknowledged.",
        |m| m.bytes_written,
    ),
    ("gets_total", "Point reads.", |m| m.gets),
    ("get_hits_total", "Point reads that found a value.", |m| {
        m.get_hits
    }),
    (
        "read_bytes_total",
        "Bytes of values returned by point reads.",
        |m| m.bytes_read,
    ),
    (
        "commit_groups_total",
        "Commit groups (one WAL append each).",
        |m| m.commit_groups,
    ),
    ("wal_syncs_total", "WAL syncs by commits.", |m| m.wal_syncs),
    ("flushes_total", "Memtables flushed to tables.", |m| {
        m.flushes
    }),
    (
        "flush_bytes_total",
        "Bytes of tables written by flushes.",
        |m| m.flush_bytes,
    ),
    ("compactions_total", "Compactions run.", |m| m.compactions),
    (
        "compaction_read_bytes_total",
        "Bytes read by compactions.",
        |m| m.compaction_bytes_read,
    ),
    (
        "compaction_written_bytes_total",
        "Bytes written by compactions.",
        |m| m.compaction_bytes_written,
    ),
    (
        "compaction_throttled_microseconds_total",
        "Time compactions waited for the rate limiter.",
        |m| m.compaction_throttled_micros,
    ),
    (
        "background_errors_total",
        "Failures that made the database read-only.",
        |m| m.background_errors,
    ),
    (
        "transaction_commits_total",
        "Transactions committed.",
        |m| m.transaction_commits,
    ),
    (
        "transaction_conflicts_total",
        "Transactions refused for a conflict.",
        |m| m.transaction_conflicts,
    ),
    (
        "write_stalls_total",
        "Commit groups that waited for flush or compaction.",
        |m| m.write_stalls,
    ),
    (
        "write_stall_microseconds_total",
        "Time spent in write stalls.",
        |m| m.write_stall_micros,
    ),
    (
        "write_slowdowns_total",
        "Commit groups delayed by L0 tables.",
        |m| m.write_slowdowns,
    ),
    ("block_cache_hits_total", "Block cache hits.", |m| {
        m.block_cache_hits
    }),
    ("block_cache_misses_total", "Block cache misses.", |m| {
        m.block_cache_misses
    }),
    (
        "block_reads_total",
        "Data blocks read from table files.",
        |m| m.block_reads,
    ),
    (
        "filter_adjustments_total",
        "Levels given more filter bits for observed false positives.",
        |m| m.filter_adjustments,
    ),
    (
        "iter_seeks_total",
        "Iterator positionings (first seek, seek, seek_for_prev).",
        |m| m.iter_seeks,
    ),
    (
        "iter_steps_total",
        "Iterator next and next_back calls.",
        |m| m.iter_steps,
    ),
    (
        "bloom_checks_total",
        "Point lookups that asked a bloom filter.",
        |m| m.bloom_checks,
    ),
    (
        "bloom_useful_total",
        "Bloom filter answers of absent (a table read saved).",
        |m| m.bloom_useful,
    ),
    (
        "bloom_false_positives_total",
        "Bloom filter maybes for keys the table did not hold.",
        |m| m.bloom_false_positives,
    ),
    (
        "listener_panics_total",
        "Event listener callbacks that panicked.",
        |m| m.listener_panics,
    ),
];

/// Every per-level series: name, type, help text, value.
type LevelSample = (
    &'static str,
    &'static str,
    &'static str,
    fn(&crate::db::LevelShape) -> u64,
);

const LEVEL_SERIES: [LevelSample; 10] = [
    ("kevo_level_tables", "gauge", "Tables per level.", |l| {
        l.tables as u64
    }),
    ("kevo_level_bytes", "gauge", "Bytes per level.", |l| l.bytes),
    (
        "kevo_level_compactions_total",
        "counter",
        "Flushes (L0) or compactions that wrote into the level.",
        |l| l.compactions,
    ),
    (
        "kevo_level_compaction_in_bytes_total",
        "counter",
        "Bytes compactions moved into the level from above.",
        |l| l.bytes_in,
    ),
    (
        "kevo_level_compaction_rewritten_bytes_total",
        "counter",
        "Bytes of the level compactions read to rewrite.",
        |l| l.bytes_rewritten,
    ),
    (
        "kevo_level_written_bytes_total",
        "counter",
        "Bytes of tables flushes or compactions wrote into the level.",
        |l| l.bytes_written,
    ),
    (
        "kevo_level_compaction_microseconds_total",
        "counter",
        "Time flushes or compactions into the level took.",
        |l| l.compaction_micros,
    ),
    (
        "kevo_level_filter_checks_total",
        "counter",
        "Point lookups that asked a bloom filter of the level.",
        |l| l.filter_checks,
    ),
    (
        "kevo_level_filter_useful_total",
        "counter",
        "Bloom filter answers of absent in the level.",
        |l| l.filter_useful,
    ),
    (
        "kevo_level_filter_false_positives_total",
        "counter",
        "Bloom filter maybes in the level for keys its table did not hold.",
        |l| l.filter_false_positives,
    ),
];

impl Metrics {
    /// The metrics in the Prometheus text exposition format (version 0.0.4), every name
    /// prefixed `kevo_`.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        for (name, help, value) in COUNTERS {
            let name = format!("kevo_{name}");
            header(&mut out, &name, "counter", help);
            sample(&mut out, &name, "", value(self));
        }
        header(
            &mut out,
            "kevo_write_amplification",
            "gauge",
            "Table bytes written per byte the user wrote.",
        );
        sample(
            &mut out,
            "kevo_write_amplification",
            "",
            self.write_amplification,
        );
        header(
            &mut out,
            "kevo_filter_memory_bytes",
            "gauge",
            "Bytes of bloom filters held by open tables.",
        );
        sample(
            &mut out,
            "kevo_filter_memory_bytes",
            "",
            self.filter_memory_bytes,
        );
        self.render_latencies(&mut out);
        self.render_shape(&mut out);
        out
    }

    fn render_latencies(&self, out: &mut String) {
        for (name, summary, help) in [
            (
                "kevo_get_latency_seconds",
                &self.get_latency,
                "Latency of point reads.",
            ),
            (
                "kevo_write_latency_seconds",
                &self.write_latency,
                "Latency of writes.",
            ),
            (
                "kevo_sync_latency_seconds",
                &self.sync_latency,
                "Latency of WAL syncs by commits.",
            ),
            (
                "kevo_flush_duration_seconds",
                &self.flush_latency,
                "Duration of flushes.",
            ),
            (
                "kevo_compaction_duration_seconds",
                &self.compaction_latency,
                "Duration of compactions.",
            ),
        ] {
            header(out, name, "summary", help);
            for (q, nanos) in [
                ("0.5", summary.p50_nanos),
                ("0.99", summary.p99_nanos),
                ("0.999", summary.p999_nanos),
            ] {
                sample(out, name, &format!("{{quantile=\"{q}\"}}"), seconds(nanos));
            }
            sample(out, &format!("{name}_sum"), "", seconds(summary.sum_nanos));
            sample(out, &format!("{name}_count"), "", summary.count);
        }
    }

    fn render_shape(&self, out: &mut String) {
        for (name, kind, help, field) in LEVEL_SERIES {
            header(out, name, kind, help);
            for level in &self.lsm.levels {
                let labels = format!("{{level=\"{}\"}}", level.level);
                sample(out, name, &labels, field(level));
            }
        }
        header(
            out,
            "kevo_level_compaction_score",
            "gauge",
            "Leveled compaction score per level (1 or more: due).",
        );
        for level in &self.lsm.levels {
            if let Some(score) = level.compaction_score {
                let labels = format!("{{level=\"{}\"}}", level.level);
                sample(out, "kevo_level_compaction_score", &labels, score);
            }
        }
        for (name, value, help) in [
            (
                "kevo_table_bytes",
                self.lsm.table_bytes,
                "Bytes of all tables.",
            ),
            (
                "kevo_pending_compaction_bytes",
                self.lsm.pending_compaction_bytes,
                "Bytes compaction has yet to move to reach its targets.",
            ),
            (
                "kevo_snapshots",
                self.lsm.snapshots as u64,
                "Live snapshots.",
            ),
            (
                "kevo_memtable_bytes",
                self.lsm.memtable_bytes as u64,
                "Bytes in memtables.",
            ),
            (
                "kevo_frozen_memtables",
                self.lsm.frozen_memtables as u64,
                "Memtables waiting for flush.",
            ),
            (
                "kevo_live_wals",
                self.lsm.live_wals as u64,
                "WAL files holding unflushed data.",
            ),
            (
                "kevo_last_sequence",
                self.lsm.last_sequence,
                "Sequence number of the newest visible write.",
            ),
        ] {
            header(out, name, "gauge", help);
            sample(out, name, "", value);
        }
    }
}

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}
