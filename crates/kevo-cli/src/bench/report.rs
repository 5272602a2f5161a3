//! Measuring and reporting: per-op latencies, one outcome per workload, the table and the
//! JSON document.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kevo::{Error, ErrorKind, Result};
use serde::Serialize;

use super::timeline::Timeline;

/// Slowest latency recorded exactly: an hour (slower ones are clamped to it).
const MAX_NANOS: u64 = 3_600_000_000_000;

/// Operations done by every recorder, for the progress display and the throughput
/// timeline (updated in batches).
static PROGRESS: AtomicU64 = AtomicU64::new(0);
/// Operations a recorder counts before it adds them to [`PROGRESS`]...
const PROGRESS_BATCH: u64 = 1024;
/// ...or how long it waits at most (slow operations, such as synced writes, still show
/// up in the timeline's 100 ms samples within 5%).
const PROGRESS_DELAY: Duration = Duration::from_millis(5);

/// Operations every recorder has reported so far (a little behind the truth until the
/// recorders [`report`](Recorder::report) at their end).
pub fn progress_ops() -> u64 {
    PROGRESS.load(Ordering::Relaxed)
}

/// What one thread measured: every op's latency and the counts a workload reports.
pub struct Recorder {
    hist: Histogram<u64>,
    last: Instant,
    /// Operations not yet added to [`PROGRESS`].
    unreported: u64,
    /// When the unreported operations are added at the latest.
    report_by: Instant,
    pub ops: u64,
    pub bytes: u64,
    pub found: u64,
    pub mismatches: u64,
    /// Throughput over the workload (set on the merged recorder of a workload's threads).
    pub timeline: Option<Timeline>,
}

impl Recorder {
    pub fn new() -> Result<Self> {
        let hist = Histogram::new_with_bounds(1, MAX_NANOS, 3)
            .map_err(|e| Error::new(ErrorKind::Resource, "making a histogram").with_source(e))?;
        let now = Instant::now();
        Ok(Recorder {
            hist,
            last: now,
            unreported: 0,
            report_by: now + PROGRESS_DELAY,
            ops: 0,
            bytes: 0,
            found: 0,
            mismatches: 0,
            timeline: None,
        })
    }

    /// Starts the clock of the first op.
    pub fn start(&mut self) {
        self.last = Instant::now();
        self.report_by = self.last + PROGRESS_DELAY;
    }

    /// Adds the operations not yet reported to [`progress_ops`] (a recorder's last act).
    pub fn report(&mut self) {
        PROGRESS.fetch_add(self.unreported, Ordering::Relaxed);
        self.unreported = 0;
    }

    /// Ends an op that moved `bytes` bytes. Each op is timed from the end of the one before
    /// (db_bench's way): one clock read per op, loop overhead included.
    #[inline]
    pub fn op(&mut self, bytes: u64) {
        let now = Instant::now();
        let nanos = now.duration_since(self.last).as_nanos() as u64;
        self.hist.saturating_record(nanos.max(1));
        self.last = now;
        self.ops += 1;
        self.bytes += bytes;
        self.unreported += 1;
        if self.unreported == PROGRESS_BATCH || now >= self.report_by {
            self.report();
            self.report_by = now + PROGRESS_DELAY;
        }
    }

    pub fn merge(&mut self, other: &Recorder) -> Result<()> {
        self.hist
            .add(&other.hist)
            .map_err(|e| Error::new(ErrorKind::Resource, "merging histograms").with_source(e))?;
        self.ops += other.ops;
        self.bytes += other.bytes;
        self.found += other.found;
        self.mismatches += other.mismatches;
        Ok(())
    }

    pub fn latency(&self) -> Latency {
        let micros = |nanos: u64| (nanos as f64 / 1e3 * 100.0).round() / 100.0;
        Latency {
            p50: micros(self.hist.value_at_quantile(0.5)),
            p99: micros(self.hist.value_at_quantile(0.99)),
            p999: micros(self.hist.value_at_quantile(0.999)),
            max: micros(self.hist.max()),
            mean: (self.hist.mean() / 1e3 * 100.0).round() / 100.0,
        }
    }
}

/// Per-op latency in microseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// One workload's result.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub name: String,
    /// Operations done (readers' only, for readwhilewriting).
    pub ops: u64,
    pub threads: usize,
    pub seconds: f64,
    /// Key and value bytes written, or read by lookups that found their key.
    pub bytes: u64,
    pub ops_per_sec: f64,
    /// `bytes` per second, in MB (10^6).
    pub mb_per_sec: f64,
    pub latency_us: Latency,
    /// Lookups that found their key, entries a scan visited (reads only).
    pub found: Option<u64>,
    pub not_found: Option<u64>,
    /// Reads whose result disagreed with what the benchmark wrote (`None`: not known, as
    /// with --use_existing_db).
    pub mismatches: Option<u64>,
    /// readwhilewriting: writes the writer thread did meanwhile.
    pub writer_ops: Option<u64>,
    /// After writing workloads only.
    pub amplification: Option<Amplification>,
    /// Data blocks each operation touched (from the block cache or a file), if the engine
    /// counts them.
    pub blocks_per_op: Option<f64>,
    /// Data blocks each operation read from a file (block cache misses).
    pub block_reads_per_op: Option<f64>,
    /// Bytes of filters in memory after the workload, if the engine counts them.
    pub filter_memory_bytes: Option<u64>,
    /// Throughput every 100 ms, and the engine's background events meanwhile.
    pub timeline: Option<Timeline>,
}

/// Measured after a writing workload and a flush.
#[derive(Debug, Serialize)]
pub struct Amplification {
    /// Key and value bytes the workload wrote.
    pub user_bytes: u64,
    /// Bytes the engine wrote to tables meanwhile (flushes and compactions).
    pub table_bytes_written: Option<u64>,
    /// table_bytes_written / user_bytes: the LSM tree's write amplification.
    pub write_amp: Option<f64>,
    /// Bytes the process wrote to any file meanwhile (WAL and manifest too), from
    /// /proc/self/io.
    pub file_bytes_written: Option<u64>,
    /// file_bytes_written / user_bytes: what the device is asked to write.
    pub io_write_amp: Option<f64>,
    /// Bytes in tables after the flush.
    pub table_bytes: u64,
    /// Key and value bytes of the keys present (`None` when not known).
    pub live_bytes: Option<u64>,
    /// table_bytes / live_bytes (below 1 when compression wins more than the tree costs).
    pub space_amp: Option<f64>,
    /// Sorted runs after the flush (each L0 table and each non-empty deeper level): the
    /// tables a point read may consult, its read amplification.
    pub sorted_runs: Option<u64>,
}

impl Outcome {
    pub fn new(name: &str, threads: usize, elapsed: Duration, rec: &Recorder) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Outcome {
            name: name.to_string(),
            ops: rec.ops,
            threads,
            seconds: (secs * 1e4).round() / 1e4,
            bytes: rec.bytes,
            ops_per_sec: (rec.ops as f64 / secs).round(),
            mb_per_sec: (rec.bytes as f64 / secs / 1e6 * 100.0).round() / 100.0,
            latency_us: rec.latency(),
            found: None,
            not_found: None,
            mismatches: None,
            writer_ops: None,
            amplification: None,
            blocks_per_op: None,
            block_reads_per_op: None,
            filter_memory_bytes: None,
            timeline: rec.timeline.clone(),
        }
    }
}

pub const TABLE_HEADER: &str = "workload              ops     secs      ops/s    MB/s   p50 µs   p99 µs p99.9 µs    max µs      found  w-amp io-amp  s-amp  runs blk/op";

pub fn table_row(o: &Outcome) -> String {
    let ratio = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}"));
    let amp = o.amplification.as_ref();
    format!(
        "{:<16} {:>9} {:>8.3} {:>10} {:>7.1} {:>8.2} {:>8.2} {:>8.2} {:>9.1} {:>10} {:>6} {:>6} {:>6} {:>5} {:>6}",
        o.name,
        o.ops,
        o.seconds,
        o.ops_per_sec,
        o.mb_per_sec,
        o.latency_us.p50,
        o.latency_us.p99,
        o.latency_us.p999,
        o.latency_us.max,
        o.found.map_or_else(|| "-".to_string(), |f| f.to_string()),
        ratio(amp.and_then(|a| a.write_amp)),
        ratio(amp.and_then(|a| a.io_write_amp)),
        ratio(amp.and_then(|a| a.space_amp)),
        amp.and_then(|a| a.sorted_runs)
            .map_or_else(|| "-".to_string(), |r| r.to_string()),
        o.blocks_per_op
            .map_or_else(|| "-".to_string(), |b| format!("{b:.2}")),
    )
}

/// A numeric field of a /proc file (`VmHWM:  1234 kB`, `wchar: 99`), in its own unit.
fn proc_field(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The process's peak resident set, in bytes (Linux only).
pub fn peak_rss() -> Option<u64> {
    proc_field("/proc/self/status", "VmHWM").map(|kb| kb * 1024)
}

/// Bytes the process (all threads) has passed to write calls so far (Linux only).
pub fn bytes_written() -> Option<u64> {
    proc_field("/proc/self/io", "wchar")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_counts_and_merges() {
        let mut a = Recorder::new().expect("histogram");
        a.start();
        a.op(10);
        a.op(20);
        let mut b = Recorder::new().expect("histogram");
        b.op(5);
        b.found = 1;
        a.merge(&b).expect("merge");
        assert_eq!((a.ops, a.bytes, a.found), (3, 35, 1));
        let l = a.latency();
        assert!(l.p50 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
    }

    #[test]
    fn proc_fields_are_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss().is_some_and(|b| b > 0));
            assert!(bytes_written().is_some());
        }
    }
}
