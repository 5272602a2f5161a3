//! Counters and latency histograms kept on the hot paths, cheaply: relaxed atomics, no lock.
//!
//! [`Metrics`](crate::Metrics) is the serializable snapshot `Db::metrics` returns; this module
//! holds the live instruments and the Prometheus text rendering.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Sub-buckets per power of two: 4 gives buckets at most 25% wide.
const SUB_BUCKETS: usize = 4;
/// Powers of two covered, in nanoseconds (2^40 ns ≈ 18 minutes).
const OCTAVES: usize = 40;
const BUCKETS: usize = OCTAVES * SUB_BUCKETS;

/// A log-linear latency histogram in nanoseconds: lock-free, fixed memory, quantiles within
/// 25% of the true value.
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
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
        self.buckets[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(nanos, Ordering::Relaxed);
        self.max.fetch_max(nanos, Ordering::Relaxed);
    }

    /// A consistent-enough copy (each field read once; concurrent records may straddle).
    pub fn snapshot(&self) -> LatencySummary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
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
        let max = self.max.load(Ordering::Relaxed);
        LatencySummary {
            count: self.count.load(Ordering::Relaxed),
            sum_nanos: self.sum.load(Ordering::Relaxed),
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

/// The counters of one database. Relaxed atomics: each is exact, their combination is a
/// moment's approximation.
#[derive(Default)]
pub(crate) struct Counters {
    pub puts: AtomicU64,
    pub deletes: AtomicU64,
    pub writes: AtomicU64,
    pub bytes_written: AtomicU64,
    pub gets: AtomicU64,
    pub get_hits: AtomicU64,
    pub bytes_read: AtomicU64,
    pub commit_groups: AtomicU64,
    pub wal_syncs: AtomicU64,
    pub flushes: AtomicU64,
    pub flush_bytes: AtomicU64,
    pub compactions: AtomicU64,
    pub compaction_bytes_read: AtomicU64,
    pub compaction_bytes_written: AtomicU64,
    pub compaction_throttled_micros: AtomicU64,
    pub background_errors: AtomicU64,
    pub transaction_commits: AtomicU64,
    pub transaction_conflicts: AtomicU64,
    pub write_stalls: AtomicU64,
    pub write_stall_micros: AtomicU64,
    pub write_slowdowns: AtomicU64,
    pub get_latency: Histogram,
    pub write_latency: Histogram,
}

/// Work done writing tables into one level: flushes (L0) and compactions whose output went
/// there.
#[derive(Default)]
pub(crate) struct LevelCounters {
    pub compactions: AtomicU64,
    /// Input bytes from shallower levels (what moved into this level).
    pub bytes_in: AtomicU64,
    /// Input bytes that were already in this level (rewritten to merge with the new ones).
    pub bytes_rewritten: AtomicU64,
    pub bytes_written: AtomicU64,
    pub micros: AtomicU64,
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

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Reads a counter.
pub(crate) fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
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
    /// Latency of `get`.
    pub get_latency: LatencySummary,
    /// Latency of writes, from the call to the acknowledgement.
    pub write_latency: LatencySummary,
}

impl Metrics {
    /// The metrics in the Prometheus text exposition format (version 0.0.4), every name
    /// prefixed `kevo_`.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        for (name, value, help) in self.counter_samples() {
            let name = format!("kevo_{name}");
            header(&mut out, &name, "counter", help);
            sample(&mut out, &name, "", value);
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
        self.render_latencies(&mut out);
        self.render_shape(&mut out);
        out
    }

    /// Every counter: name (without prefix), value, help text.
    fn counter_samples(&self) -> [(&'static str, u64, &'static str); 23] {
        [
            ("puts_total", self.puts, "Puts applied."),
            ("deletes_total", self.deletes, "Deletes applied."),
            ("writes_total", self.writes, "Acknowledged write calls."),
            (
                "written_bytes_total",
                self.bytes_written,
                "Bytes of keys and values acknowledged.",
            ),
            ("gets_total", self.gets, "Point reads."),
            (
                "get_hits_total",
                self.get_hits,
                "Point reads that found a value.",
            ),
            (
                "read_bytes_total",
                self.bytes_read,
                "Bytes of values returned by point reads.",
            ),
            (
                "commit_groups_total",
                self.commit_groups,
                "Commit groups (one WAL append each).",
            ),
            ("wal_syncs_total", self.wal_syncs, "WAL syncs by commits."),
            (
                "flushes_total",
                self.flushes,
                "Memtables flushed to tables.",
            ),
            (
                "flush_bytes_total",
                self.flush_bytes,
                "Bytes of tables written by flushes.",
            ),
            ("compactions_total", self.compactions, "Compactions run."),
            (
                "compaction_read_bytes_total",
                self.compaction_bytes_read,
                "Bytes read by compactions.",
            ),
            (
                "compaction_written_bytes_total",
                self.compaction_bytes_written,
                "Bytes written by compactions.",
            ),
            (
                "compaction_throttled_microseconds_total",
                self.compaction_throttled_micros,
                "Time compactions waited for the rate limiter.",
            ),
            (
                "background_errors_total",
                self.background_errors,
                "Failures that made the database read-only.",
            ),
            (
                "transaction_commits_total",
                self.transaction_commits,
                "Transactions committed.",
            ),
            (
                "transaction_conflicts_total",
                self.transaction_conflicts,
                "Transactions refused for a conflict.",
            ),
            (
                "write_stalls_total",
                self.write_stalls,
                "Commit groups that waited for flush or compaction.",
            ),
            (
                "write_stall_microseconds_total",
                self.write_stall_micros,
                "Time spent in write stalls.",
            ),
            (
                "write_slowdowns_total",
                self.write_slowdowns,
                "Commit groups delayed by L0 tables.",
            ),
            (
                "block_cache_hits_total",
                self.block_cache_hits,
                "Block cache hits.",
            ),
            (
                "block_cache_misses_total",
                self.block_cache_misses,
                "Block cache misses.",
            ),
        ]
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
        type Field = fn(&crate::db::LevelShape) -> u64;
        let per_level: [(&str, &str, &str, Field); 7] = [
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
        ];
        for (name, kind, help, field) in per_level {
            header(out, name, kind, help);
            for level in &self.lsm.levels {
                let labels = format!("{{level=\"{}\"}}", level.level);
                sample(out, name, &labels, field(level));
            }
        }
        for (name, value, help) in [
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
