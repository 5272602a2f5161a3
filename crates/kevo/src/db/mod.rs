//! [`Db`]: the database handle: open, write, read, sync, close.
//!
//! Writes go through the group-commit queue ([`commit`]) into the WAL and the memtable; a
//! full memtable is frozen and flushed to an L0 table in the background ([`flush`]); the
//! manifest records the live tables ([`crate::version`]). Reads load the visible sequence
//! number and the current [`ReadView`] (memtables and version, swapped as one) without
//! taking any lock a writer holds.

mod background;
mod commit;
mod compact;
pub(crate) mod files;
mod filters;
mod flush;
mod health;
pub(crate) mod iter;
pub(crate) mod open;
mod tables;
mod txn;
mod txn_iter;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::batch::WriteBatch;
use crate::error::{Error, ErrorKind, Result};
use crate::fs::{Fs, FsLock};
use crate::key::{MAX_SEQUENCE, SequenceNumber};
use crate::memtable::{Lookup, MemTable};
pub use crate::metrics::Metrics;
use crate::metrics::{Counters, add, read};
use crate::options::{Options, SyncMode, WriteOptions};
use crate::sst::table::{BlockReads, TableLookup};
use crate::version::set::{Version, VersionSet};
use crate::wal::LogWriter;
use commit::{CommitQueue, PendingWrite};
use flush::FlushState;
pub use health::{Health, HealthStatus, HealthThresholds};
pub use iter::DbIter;
use std::ops::{Bound, RangeBounds};
use tables::TableCache;
pub use txn::Transaction;
pub use txn_iter::TxnIter;

/// A value (or key) returned by kevo: a cheaply cloneable, immutable byte buffer.
pub type Value = Bytes;

/// An open database. Cheap to clone (an `Arc` inside); every clone is the same database.
///
/// Thread safety: `Db` is `Send + Sync`; any number of threads may read and write at once.
///
/// ```
/// use kevo::{Db, Options};
///
/// let dir = tempfile::tempdir()?;
/// let db = Db::open(dir.path(), Options::default())?;
/// db.put(b"hello", b"world")?;
/// assert_eq!(db.get(b"hello")?.as_deref(), Some(&b"world"[..]));
/// db.delete(b"hello")?;
/// assert_eq!(db.get(b"hello")?, None);
/// db.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Db {
    inner: Arc<DbInner>,
    /// Closes the database when the last clone of this handle drops (background threads
    /// hold `DbInner`, never this).
    _close_on_drop: Arc<CloseOnDrop>,
}

struct CloseOnDrop(Arc<DbInner>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        // Best effort: a caller who needs the outcome calls close() first.
        let _ = self.0.close();
    }
}

/// Options of one read. A plain struct: `ReadOptions { snapshot: Some(s), ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Read as of this snapshot instead of now.
    pub snapshot: Option<Snapshot>,
    /// Keep blocks this read loads from disk in the block cache (default `true`; `false`
    /// for one-off scans that should not evict the working set).
    pub fill_cache: bool,
    /// Re-read and re-verify blocks even when they are cached (blocks read from disk are
    /// always verified). Default `false`.
    pub verify_checksums: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            snapshot: None,
            fill_cache: true,
            verify_checksums: false,
        }
    }
}

/// A point-in-time view of a database (see [`Db::snapshot`]). Cheap to clone, `Send +
/// Sync`, owned (no lifetime). Later compactions keep every version it can see.
#[derive(Clone)]
pub struct Snapshot {
    inner: Arc<SnapshotHandle>,
}

struct SnapshotHandle {
    db: Arc<DbInner>,
    sequence: SequenceNumber,
}

impl Drop for SnapshotHandle {
    fn drop(&mut self) {
        let mut snapshots = lock(&self.db.snapshots);
        if let Some(count) = snapshots.get_mut(&self.sequence) {
            *count -= 1;
            if *count == 0 {
                snapshots.remove(&self.sequence);
            }
        }
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("sequence", &self.inner.sequence)
            .finish()
    }
}

impl Snapshot {
    /// The sequence number the snapshot reads at.
    pub fn sequence(&self) -> SequenceNumber {
        self.inner.sequence
    }

    /// The value of `key` as of the snapshot.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        let options = ReadOptions {
            snapshot: Some(self.clone()),
            ..ReadOptions::default()
        };
        self.inner.db.get(key.as_ref(), &options)
    }

    /// Every key and value as of the snapshot.
    pub fn iter(&self) -> DbIter {
        self.inner.db.iter_at(
            Some(self.inner.sequence),
            Bound::Unbounded,
            Bound::Unbounded,
        )
    }

    /// The keys within `range` as of the snapshot.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> DbIter {
        let (lower, upper) = owned_bounds(&range);
        self.inner
            .db
            .iter_at(Some(self.inner.sequence), lower, upper)
    }

    /// The keys starting with `prefix` as of the snapshot.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> DbIter {
        self.inner
            .db
            .prefix_at(Some(self.inner.sequence), prefix.as_ref())
    }
}

impl IntoIterator for &Snapshot {
    type Item = Result<(Value, Value)>;
    type IntoIter = DbIter;

    fn into_iter(self) -> DbIter {
        self.iter()
    }
}

impl IntoIterator for &Db {
    type Item = Result<(Value, Value)>;
    type IntoIter = DbIter;

    /// `for kv in &db` iterates over every key, as [`Db::iter`].
    fn into_iter(self) -> DbIter {
        self.iter()
    }
}

/// Puts, deletes and key+value bytes of a batch.
fn batch_counts(batch: &WriteBatch) -> (u64, u64, u64) {
    batch.iter().fold((0, 0, 0), |(p, d, b), e| match e.kind {
        crate::key::ValueKind::Put => (p + 1, d, b + (e.key.len() + e.value.len()) as u64),
        crate::key::ValueKind::Delete => (p, d + 1, b + e.key.len() as u64),
    })
}

fn owned_bounds<K: AsRef<[u8]>, R: RangeBounds<K>>(range: &R) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let own = |b: Bound<&K>| match b {
        Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    };
    (own(range.start_bound()), own(range.end_bound()))
}

/// The shape of the LSM tree at one moment (see [`Db::lsm_shape`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct LsmShape {
    /// Every level, L0 first.
    pub levels: Vec<LevelShape>,
    /// Bytes of all tables: the database's disk use, less its WALs and manifest.
    pub table_bytes: u64,
    /// Bytes compaction still has to move to bring the tree within its targets (an
    /// estimate; see `docs/operations.md`).
    pub pending_compaction_bytes: u64,
    /// Live snapshots (transactions hold one each).
    pub snapshots: usize,
    /// Bytes held by the active and frozen memtables.
    pub memtable_bytes: usize,
    /// Memtables frozen and waiting for flush.
    pub frozen_memtables: usize,
    /// WAL files holding data not yet in a table.
    pub live_wals: usize,
    /// The sequence number of the newest visible write.
    pub last_sequence: u64,
}

/// One live table and what reads of it did since it was opened (see [`Db::table_stats`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct TableStats {
    /// The level (or, under tiered compaction, the level slot of its run).
    pub level: usize,
    /// The file number (`NNNNNN.sst`).
    pub number: u64,
    /// The file's size in bytes.
    pub size: u64,
    /// Entries, tombstones included.
    pub entries: u64,
    /// Tombstones.
    pub deletions: u64,
    /// Bits per key of its filter (`None` without a filter, or for a table written before
    /// tables recorded their filter's key count).
    pub filter_bits_per_key: Option<f64>,
    /// The false-positive rate expected of its filter, from its size.
    pub filter_expected_fp_rate: Option<f64>,
    /// Point lookups that asked its filter.
    pub filter_checks: u64,
    /// Those the filter answered "absent".
    pub filter_useful: u64,
    /// Those the filter let through although the table held no visible version of the key.
    pub filter_false_positives: u64,
    /// Data blocks read from its file.
    pub block_reads: u64,
}

/// One level of an [`LsmShape`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct LevelShape {
    /// The level number (0 is the newest).
    pub level: usize,
    /// Tables in the level.
    pub tables: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// The smallest and largest user keys the level holds (JSON: printable UTF-8 as is,
    /// other keys as `0x` and hex); `None` when it is empty.
    #[serde(serialize_with = "serialize_key_range")]
    pub key_range: Option<(Vec<u8>, Vec<u8>)>,
    /// Leveled compaction's score for the level (≥ 1: a compaction is due); `None` for
    /// the last level and under tiered compaction.
    pub compaction_score: Option<f64>,
    /// Point lookups that asked a bloom filter of this level.
    pub filter_checks: u64,
    /// Those the filter answered "absent" (a table read saved).
    pub filter_useful: u64,
    /// Those the filter let through although the table held no visible version of the key.
    pub filter_false_positives: u64,
    /// The false-positive rate observed in the level: `filter_false_positives /
    /// (filter_useful + filter_false_positives)`; `None` before any lookup of an absent key.
    pub filter_observed_fp_rate: Option<f64>,
    /// The rate the level's open tables' filters should give for the same lookups, from
    /// their sizes; `None` before any lookup of an absent key.
    pub filter_expected_fp_rate: Option<f64>,
    /// Bits per key the level's new tables get now (the configured policy, resolved for
    /// the level, plus any adaptive extra); `None` without a filter.
    pub filter_bits_per_key: Option<f64>,
    /// Flushes (L0) or compactions that wrote into this level since open.
    pub compactions: u64,
    /// Bytes those compactions moved in from shallower levels.
    pub bytes_in: u64,
    /// Bytes of this level those compactions read to merge with what came in.
    pub bytes_rewritten: u64,
    /// Bytes of tables they wrote. `bytes_written / bytes_in` is the level's write
    /// amplification.
    pub bytes_written: u64,
    /// Time they took, in microseconds (rate-limiter waits included).
    pub compaction_micros: u64,
}

#[allow(clippy::ref_option)] // the signature serde's `serialize_with` calls
fn serialize_key_range<S: serde::Serializer>(
    range: &Option<(Vec<u8>, Vec<u8>)>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::Serialize;
    range
        .as_ref()
        .map(|(lo, hi)| (display_key(lo), display_key(hi)))
        .serialize(serializer)
}

/// A key for people: printable UTF-8 as is, anything else as `0x` and hex.
fn display_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_string(),
        _ => key.iter().fold(String::from("0x"), |mut out, b| {
            use std::fmt::Write as _;
            let _ = write!(out, "{b:02x}"); // writing to a String cannot fail
            out
        }),
    }
}

/// A frozen memtable waiting for flush.
#[derive(Clone)]
pub(crate) struct FrozenMemTable {
    mem: Arc<MemTable>,
    /// The WAL started when this memtable was frozen: once it is flushed, every older WAL
    /// is obsolete.
    next_log: u64,
}

/// What a read consults, swapped atomically as a whole.
pub(crate) struct ReadView {
    /// The memtable taking writes.
    mem: Arc<MemTable>,
    /// Frozen memtables, newest first.
    imm: Vec<FrozenMemTable>,
    /// The live tables.
    version: Arc<Version>,
    /// Compactions that made `version` dropped versions hidden below this sequence: a read
    /// at an older (unregistered) sequence must take a newer one.
    floor: SequenceNumber,
}

/// What the commit leader owns while it commits; also taken by sync, resume and close.
pub(crate) struct WriterState {
    wal: LogWriter,
    /// File length after the last fully appended group: where a failed append is cut back to.
    wal_good_len: u64,
    /// The last sequence number handed out (some may belong to failed groups: never reused).
    last_sequence: SequenceNumber,
}

pub(crate) struct DbInner {
    dir: PathBuf,
    opts: Options,
    fs: Arc<dyn Fs>,
    view: ArcSwap<ReadView>,
    /// Every write with a sequence ≤ this is in the view's memtables and may be read.
    visible_sequence: AtomicU64,
    commits: CommitQueue,
    /// Held by the commit leader for the duration of a commit.
    writer: Mutex<WriterState>,
    /// The error that made the database read-only, if any.
    background_error: Mutex<Option<Error>>,
    closed: AtomicBool,
    /// The LOCK file's lock, released on close.
    lock: Mutex<Option<Box<dyn FsLock>>>,
    /// Wakes the interval-sync thread early on close.
    sync_thread: Arc<(Mutex<bool>, Condvar)>,
    /// The manifest and the file-number counter. Lock order: `writer`, then `versions`, then
    /// `view_change`.
    versions: Mutex<VersionSet>,
    /// Serialises changes of `view` (rotation, flush); readers never take it.
    view_change: Mutex<()>,
    /// WAL segments holding data not yet in a table, oldest first.
    live_wals: Mutex<Vec<u64>>,
    tables: Arc<TableCache>,
    flush_state: Mutex<FlushState>,
    /// Wakes the flush worker, stalled writers and `Db::flush` waiters.
    flush_signal: Condvar,
    /// The background workers, joined on close.
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Live snapshots: sequence number -> handles (compaction keeps what they can see).
    snapshots: Mutex<std::collections::BTreeMap<SequenceNumber, usize>>,
    /// Compactions in progress and the tables they hold.
    compactions: Mutex<background::CompactionState>,
    /// Announces the end of each background compaction.
    compaction_signal: Condvar,
    /// Manual compactions run one at a time.
    manual_compaction: Mutex<()>,
    /// Paces compaction writes (`Options::compaction_rate_limit`).
    rate_limiter: Option<crate::compaction::rate_limiter::RateLimiter>,
    /// Flush (L0) and compaction work by the level written to.
    level_stats: Box<[crate::metrics::LevelCounters]>,
    /// Extra filter bits per level (adaptive filters).
    filter_tuning: filters::FilterTuning,
    /// Tables a compaction replaced, deleted once no read view holds them.
    obsolete_tables: Mutex<Vec<Arc<crate::version::edit::FileMeta>>>,
    /// Counters for `Db::metrics`.
    stats: Counters,
    /// The event listeners of `Options::listeners`.
    listeners: crate::listener::Listeners,
    /// Where the previous `Db::health` left the stall clock.
    health_window: Mutex<health::HealthWindow>,
}

/// How long a commit group waits when L0 is past `l0_slowdown_trigger`.
const SLOWDOWN_DELAY: std::time::Duration = std::time::Duration::from_millis(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent before anything that can panic, so
    // a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Db {
    /// Opens the database in `path`, creating it if missing (unless
    /// `create_if_missing(false)`), and replays its write-ahead log.
    ///
    /// Errors: `Config` for invalid options or a directory that is not a kevo database,
    /// `NotFound` for a missing database with `create_if_missing(false)`, `Concurrency` when
    /// another opener holds it, `Corruption` for damaged files.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        open::open(path.as_ref(), options)
    }

    /// Sets `key` to `value`.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.put_opt(key, value, &WriteOptions::default())
    }

    /// Sets `key` to `value` with explicit write options.
    pub fn put_opt(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        options: &WriteOptions,
    ) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put(key, value);
        self.write_opt(batch, options)
    }

    /// Deletes `key`; deleting a missing key is not an error.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<()> {
        self.delete_opt(key, &WriteOptions::default())
    }

    /// Deletes `key` with explicit write options.
    pub fn delete_opt(&self, key: impl AsRef<[u8]>, options: &WriteOptions) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete(key);
        self.write_opt(batch, options)
    }

    /// Applies `batch` atomically: after a crash, and to every reader, all of it or none.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        self.write_opt(batch, &WriteOptions::default())
    }

    /// Applies `batch` atomically with explicit write options.
    pub fn write_opt(&self, batch: WriteBatch, options: &WriteOptions) -> Result<()> {
        self.inner.check_open()?;
        self.inner.validate_batch(&batch)?;
        if batch.is_empty() && !options.sync {
            return Ok(());
        }
        let inner = &self.inner;
        let started = std::time::Instant::now();
        let empty = batch.is_empty();
        if !empty {
            // Past `l0_stop_trigger`, wait here, before the commit queue and without its
            // lock: a `Db::compact` that would end the stall must be able to run.
            inner.wait_for_l0()?;
        }
        let (puts, deletes, bytes) = batch_counts(&batch);
        inner
            .commits
            .write(batch, options.sync, None, |group| inner.commit_group(group))?;
        if !empty {
            // `Db::sync` (an empty batch) is not a write.
            inner.count_write(puts, deletes, bytes, started);
        }
        Ok(())
    }

    /// The value of `key`, or `None` if it is absent or deleted.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        self.inner.get(key.as_ref(), &ReadOptions::default())
    }

    /// The value of `key` with explicit read options (a snapshot, cache use).
    pub fn get_opt(&self, key: impl AsRef<[u8]>, options: &ReadOptions) -> Result<Option<Value>> {
        self.inner.get(key.as_ref(), options)
    }

    /// Every key and value, in key order (`.rev()` for reverse), as of now.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let db = kevo::Db::open(dir.path(), kevo::Options::default())?;
    /// db.put(b"b", b"2")?;
    /// db.put(b"a", b"1")?;
    /// let keys: Vec<_> = db.iter().map(|kv| kv.map(|(k, _)| k)).collect::<Result<_, _>>()?;
    /// assert_eq!(keys, [&b"a"[..], &b"b"[..]]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> DbIter {
        self.inner.iter_at(None, Bound::Unbounded, Bound::Unbounded)
    }

    /// The keys within `range`, in key order (`.rev()` for reverse), as of now.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> DbIter {
        let (lower, upper) = owned_bounds(&range);
        self.inner.iter_at(None, lower, upper)
    }

    /// The keys starting with `prefix`, in key order, as of now.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> DbIter {
        self.inner.prefix_at(None, prefix.as_ref())
    }

    /// A consistent point-in-time view: reads through it see exactly the writes
    /// acknowledged before it was taken. Released when the last clone drops.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.snapshot()
    }

    /// Makes every acknowledged write durable (syncs the WAL), and waits.
    pub fn sync(&self) -> Result<()> {
        self.write_opt(WriteBatch::new(), &WriteOptions { sync: true })
    }

    /// Compacts the whole key space: flushes the memtable, then merges every level into the
    /// next down to the last, dropping overwritten versions and tombstones no snapshot can
    /// see. Waits.
    pub fn compact(&self) -> Result<()> {
        self.inner.check_open()?;
        self.inner.writable()?;
        self.inner.compact_all(None)
    }

    /// As [`Db::compact`], for the tables holding keys within `range` only (and what they
    /// overlap below). Waits.
    pub fn compact_range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<()> {
        self.inner.check_open()?;
        self.inner.writable()?;
        let range = owned_bounds(&range);
        self.inner.compact_all(Some(&range))
    }

    /// Writes the memtable to a table and waits until every frozen memtable is flushed.
    pub fn flush(&self) -> Result<()> {
        self.inner.check_open()?;
        self.inner.freeze_for_flush()?;
        self.inner.wait_for_flushes()
    }

    /// The database's numbers now: operation counters, latency quantiles, background
    /// work, stalls, caches and the tree's shape. Serializable (serde);
    /// [`Metrics::to_prometheus`] renders the Prometheus text format.
    pub fn metrics(&self) -> Metrics {
        let c = &self.inner.stats;
        let (block_cache_hits, block_cache_misses) = self.inner.tables.block_cache_counts();
        let bytes_written = read(&c.bytes_written);
        let table_bytes_written = read(&c.flush_bytes) + read(&c.compaction_bytes_written);
        let lsm = self.lsm_shape();
        Metrics {
            puts: read(&c.puts),
            deletes: read(&c.deletes),
            writes: read(&c.writes),
            bytes_written,
            gets: read(&c.gets),
            get_hits: read(&c.get_hits),
            bytes_read: read(&c.bytes_read),
            commit_groups: read(&c.commit_groups),
            wal_syncs: read(&c.wal_syncs),
            flushes: read(&c.flushes),
            flush_bytes: read(&c.flush_bytes),
            compactions: read(&c.compactions),
            compaction_bytes_read: read(&c.compaction_bytes_read),
            compaction_bytes_written: read(&c.compaction_bytes_written),
            compaction_throttled_micros: read(&c.compaction_throttled_micros),
            write_amplification: if bytes_written == 0 {
                0.0
            } else {
                table_bytes_written as f64 / bytes_written as f64
            },
            background_errors: read(&c.background_errors),
            transaction_commits: read(&c.transaction_commits),
            transaction_conflicts: read(&c.transaction_conflicts),
            write_stalls: read(&c.write_stalls),
            write_stall_micros: read(&c.write_stall_micros),
            write_slowdowns: read(&c.write_slowdowns),
            block_cache_hits,
            block_cache_misses,
            block_reads: self.inner.tables.block_reads(),
            filter_memory_bytes: self.inner.tables.filter_memory() as u64,
            filter_adjustments: self.inner.filter_tuning.adjustments(),
            get_latency: c.get_latency.snapshot(),
            write_latency: c.write_latency.snapshot(),
            sync_latency: c.sync_latency.snapshot(),
            flush_latency: c.flush_latency.snapshot(),
            compaction_latency: c.compaction_latency.snapshot(),
            iter_seeks: read(&c.iter_seeks),
            iter_steps: read(&c.iter_steps),
            bloom_checks: lsm.levels.iter().map(|l| l.filter_checks).sum(),
            bloom_useful: lsm.levels.iter().map(|l| l.filter_useful).sum(),
            bloom_false_positives: lsm.levels.iter().map(|l| l.filter_false_positives).sum(),
            listener_panics: self.inner.listeners.panics(),
            lsm,
        }
    }

    /// Every live table, L0 first, with its properties and what reads of it did since the
    /// table was opened. Opens the tables not open yet (reading each one's footer, index
    /// and filter), so on a large database it costs I/O.
    pub fn table_stats(&self) -> Result<Vec<TableStats>> {
        self.inner.check_open()?;
        let view = self.inner.view.load_full();
        let version = &view.version;
        let mut out = Vec::new();
        for level in 0..version.num_levels() {
            for file in version.files(level) {
                let table = self.inner.tables.table(file.number)?;
                let (filter_checks, filter_useful, filter_false_positives) = table.filter_counts();
                let sizing = table.filter_sizing();
                out.push(TableStats {
                    level,
                    number: file.number,
                    size: file.size,
                    entries: table.properties().entries,
                    deletions: table.properties().deletions,
                    filter_bits_per_key: sizing.map(|(bits, _)| bits),
                    filter_expected_fp_rate: sizing.map(|(_, rate)| rate),
                    filter_checks,
                    filter_useful,
                    filter_false_positives,
                    block_reads: table.block_reads(),
                });
            }
        }
        Ok(out)
    }

    /// The shape of the tree now: tables and bytes per level, memtables, live WALs.
    pub fn lsm_shape(&self) -> LsmShape {
        let inner = &self.inner;
        let view = inner.view.load();
        let version = &view.version;
        let levels: Vec<LevelShape> = (0..version.num_levels())
            .map(|level| {
                let files = version.files(level);
                let work = inner
                    .level_stats
                    .get(level)
                    .map(crate::metrics::LevelCounters::read)
                    .unwrap_or_default();
                let (filter_checks, filter_useful, filter_false_positives) =
                    inner.tables.filter_counts(level);
                let absent = filter_useful + filter_false_positives;
                let observation = inner.observe_filters(level);
                let smallest = files
                    .iter()
                    .map(|f| crate::key::user_key(&f.smallest))
                    .min();
                let largest = files.iter().map(|f| crate::key::user_key(&f.largest)).max();
                LevelShape {
                    level,
                    tables: files.len(),
                    bytes: files.iter().map(|f| f.size).sum(),
                    key_range: smallest.zip(largest).map(|(s, l)| (s.to_vec(), l.to_vec())),
                    compaction_score: crate::compaction::level_score(version, &inner.opts, level),
                    filter_checks,
                    filter_useful,
                    filter_false_positives,
                    filter_observed_fp_rate: (absent > 0)
                        .then(|| filter_false_positives as f64 / absent as f64),
                    filter_expected_fp_rate: (observation.lookups > 0)
                        .then(|| observation.expected / observation.lookups as f64),
                    filter_bits_per_key: inner.filter_bits_now(version, level),
                    compactions: work.compactions,
                    bytes_in: work.bytes_in,
                    bytes_rewritten: work.bytes_rewritten,
                    bytes_written: work.bytes_written,
                    compaction_micros: work.micros,
                }
            })
            .collect();
        LsmShape {
            table_bytes: levels.iter().map(|l| l.bytes).sum(),
            pending_compaction_bytes: crate::compaction::pending_bytes(version, &inner.opts),
            snapshots: lock(&inner.snapshots).values().sum(),
            levels,
            memtable_bytes: view.mem.memory_usage()
                + view.imm.iter().map(|f| f.mem.memory_usage()).sum::<usize>(),
            frozen_memtables: view.imm.len(),
            live_wals: lock(&inner.live_wals).len(),
            last_sequence: inner.visible_sequence.load(Ordering::Acquire),
        }
    }

    /// The error that made the database read-only, if any (reads still work).
    pub fn background_error(&self) -> Option<Error> {
        lock(&self.inner.background_error)
            .as_ref()
            .map(Error::duplicate)
    }

    /// Leaves the read-only state after a write failure, once its cause is gone: cuts the
    /// failed WAL back to its last complete group, syncs it, and starts a new one. Writes that
    /// failed stay failed (they may reappear after a crash only if they reached the log
    /// whole, as the one write in flight may).
    pub fn resume(&self) -> Result<()> {
        self.inner.check_open()?;
        self.inner.resume()
    }

    /// Waits for in-flight writes, syncs the WAL and releases the lock. Later calls on any
    /// clone fail with [`ErrorKind::Closed`]. Dropping the last clone closes too, best
    /// effort.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl DbInner {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::closed())
        } else {
            Ok(())
        }
    }

    fn validate_key(&self, key: &[u8]) -> Result<()> {
        if key.is_empty() {
            return Err(Error::invalid_argument("keys must not be empty"));
        }
        if key.len() > self.opts.max_key_size {
            return Err(Error::invalid_argument(format!(
                "key of {} bytes is over max_key_size ({})",
                key.len(),
                self.opts.max_key_size
            )));
        }
        Ok(())
    }

    fn validate_batch(&self, batch: &WriteBatch) -> Result<()> {
        if batch.len() > u32::MAX as usize {
            return Err(Error::invalid_argument(
                "a batch holds at most 2^32 - 1 entries",
            ));
        }
        for entry in batch.iter() {
            self.validate_key(entry.key)?;
            if entry.value.len() > self.opts.max_value_size {
                return Err(Error::invalid_argument(format!(
                    "value of {} bytes is over max_value_size ({})",
                    entry.value.len(),
                    self.opts.max_value_size
                )));
            }
        }
        Ok(())
    }

    fn get(&self, key: &[u8], options: &ReadOptions) -> Result<Option<Value>> {
        // Two clock reads and a histogram sample cost a third of a memtable hit: one get
        // in `LATENCY_SAMPLING` per thread is timed (the counters stay exact).
        let started = crate::metrics::sample_latency().then(std::time::Instant::now);
        let found = self.lookup(key, options)?;
        let c = &self.stats;
        add(&c.gets, 1);
        if let Some(v) = &found {
            add(&c.get_hits, 1);
            add(&c.bytes_read, v.len() as u64);
        }
        if let Some(started) = started {
            c.get_latency.record(started.elapsed());
        }
        Ok(found)
    }

    /// Records an acknowledged write.
    fn count_write(&self, puts: u64, deletes: u64, bytes: u64, started: std::time::Instant) {
        let c = &self.stats;
        add(&c.writes, 1);
        add(&c.puts, puts);
        add(&c.deletes, deletes);
        add(&c.bytes_written, bytes);
        c.write_latency.record(started.elapsed());
    }

    fn lookup(&self, key: &[u8], options: &ReadOptions) -> Result<Option<Value>> {
        self.check_open()?;
        self.validate_key(key)?;
        // The sequence first, then the view: every write ≤ the sequence is in a memtable
        // that the later-loaded view still holds.
        // A guard, not an `Arc` clone: no shared reference count for every read to bump.
        let (sequence, view) = match &options.snapshot {
            // A snapshot is registered: compactions keep what it sees.
            Some(snapshot) => (snapshot.sequence(), self.view.load()),
            None => self.read_point_guard(),
        };
        for mem in std::iter::once(&view.mem).chain(view.imm.iter().map(|f| &f.mem)) {
            match mem.get(key, sequence) {
                Some(Lookup::Value(v)) => return Ok(Some(v)),
                Some(Lookup::Deleted) => return Ok(None),
                None => {}
            }
        }
        let reads = BlockReads {
            fill_cache: options.fill_cache,
            verify_checksums: options.verify_checksums,
            counted: true,
        };
        match self.tables.get(&view.version, key, sequence, reads)? {
            Some(TableLookup::Value(v)) => Ok(Some(v)),
            Some(TableLookup::Deleted) | None => Ok(None),
        }
    }

    /// An iterator over `lower..upper` at `sequence` (the visible one if `None`).
    fn iter_at(
        self: &Arc<Self>,
        sequence: Option<SequenceNumber>,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
    ) -> DbIter {
        let (sequence, view) = match sequence {
            Some(sequence) => (sequence, self.view.load_full()),
            None => self.read_point(),
        };
        let iter = DbIter::new(self.clone(), view, sequence, lower, upper);
        if self.closed.load(Ordering::Acquire) {
            iter.failed(Error::closed())
        } else {
            iter
        }
    }

    /// An iterator over the keys starting with `prefix`. With a prefix extractor that
    /// finds a prefix in `prefix`, every key the iterator can return shares it, so tables
    /// whose filters rule it out are skipped.
    fn prefix_at(self: &Arc<Self>, sequence: Option<SequenceNumber>, prefix: &[u8]) -> DbIter {
        let (lower, upper) = iter::prefix_bounds(prefix);
        let iter = self.iter_at(sequence, lower, upper);
        match self.opts.prefix_extractor {
            Some(extractor) => match extractor.prefix(prefix) {
                Some(shared) => iter.skipping_tables_without(extractor, shared),
                None => iter,
            },
            None => iter,
        }
    }

    /// The sequence number and read view of a read that is not through a snapshot.
    ///
    /// The sequence is loaded before the view, so every write at or below it is in the
    /// view's memtables or tables. A compaction may have finished in between and dropped
    /// versions hidden below its cut-off (the view's `floor`); such a read retries with a
    /// newer sequence, which is always at or above every cut-off made so far.
    fn read_point(&self) -> (SequenceNumber, Arc<ReadView>) {
        loop {
            let sequence = self.visible_sequence.load(Ordering::Acquire);
            let view = self.view.load_full();
            if sequence >= view.floor {
                return (sequence, view);
            }
        }
    }

    /// [`DbInner::read_point`] with a short-lived guard on the view instead of an `Arc`.
    fn read_point_guard(&self) -> (SequenceNumber, arc_swap::Guard<Arc<ReadView>>) {
        loop {
            let sequence = self.visible_sequence.load(Ordering::Acquire);
            let view = self.view.load();
            if sequence >= view.floor {
                return (sequence, view);
            }
        }
    }

    /// Registers a snapshot at the visible sequence number.
    fn snapshot(self: &Arc<Self>) -> Snapshot {
        // Read and registered under the lock compaction reads the oldest snapshot under, so
        // no compaction can cut between the two.
        let mut snapshots = lock(&self.snapshots);
        let sequence = self.visible_sequence.load(Ordering::Acquire);
        *snapshots.entry(sequence).or_insert(0) += 1;
        drop(snapshots);
        Snapshot {
            inner: Arc::new(SnapshotHandle {
                db: self.clone(),
                sequence,
            }),
        }
    }

    fn writable(&self) -> Result<()> {
        self.check_open()?;
        match lock(&self.background_error).as_ref() {
            None => Ok(()),
            Some(cause) => Err(Error::new(
                cause.kind(),
                format!(
                    "the database is read-only after an earlier write failed ({}); call resume()",
                    cause.message()
                ),
            )),
        }
    }

    /// Commits a group as its leader: sequence numbers, one WAL append, at most one sync,
    /// memtable inserts, then publication to readers.
    fn commit_group(&self, group: &[Arc<PendingWrite>]) -> Result<()> {
        let mut w = lock(&self.writer);
        self.writable()?;
        self.make_room(&mut w)?;
        let mut batches = self.admit(group)?;
        let entries: u64 = batches.iter().map(|b| b.len() as u64).sum();
        let first = w.last_sequence + 1;
        if w.last_sequence + entries > MAX_SEQUENCE {
            return Err(Error::new(
                ErrorKind::Resource,
                "sequence numbers are exhausted",
            ));
        }
        let mut next = first;
        for batch in batches.iter_mut().filter(|b| !b.is_empty()) {
            batch.set_sequence(next);
            next += batch.len() as u64;
        }
        // Handed out now, so a failure below burns them: they are never reused.
        w.last_sequence = next - 1;
        let records = batches
            .iter()
            .filter(|b| !b.is_empty())
            .map(WriteBatch::encoded);
        if entries > 0
            && let Err(e) = w.wal.add_records(records)
        {
            return Err(self.degrade(e));
        }
        let sync = self.opts.sync_mode == SyncMode::Always || group.iter().any(|p| p.sync);
        add(&self.stats.commit_groups, 1);
        if sync {
            add(&self.stats.wal_syncs, 1);
        }
        if sync {
            let started = std::time::Instant::now();
            let synced = w.wal.sync();
            self.stats.sync_latency.record(started.elapsed());
            if let Err(e) = synced {
                return Err(self.degrade(e));
            }
        }
        w.wal_good_len = w.wal.len();
        if entries == 0 {
            return Ok(());
        }
        let view = self.view.load();
        for batch in &batches {
            for (i, entry) in batch.iter().enumerate() {
                view.mem.add(
                    batch.sequence() + i as u64,
                    entry.kind,
                    entry.key,
                    entry.value,
                );
            }
        }
        self.visible_sequence
            .store(w.last_sequence, Ordering::Release);
        Ok(())
    }

    /// Before a commit: if the memtable is full, freeze it (stalling while too many wait
    /// for flush).
    fn make_room(&self, w: &mut WriterState) -> Result<()> {
        // Too many L0 tables make every read slower: slow writes down a little so compaction
        // catches up (writers stopped at `l0_stop_trigger` wait before they queue, holding
        // no lock, in `DbInner::wait_for_l0`).
        let l0 = self.view.load().version.files(0).len();
        if l0 >= self.opts.l0_slowdown_trigger {
            self.stats.write_slowdowns.add(1);
            std::thread::sleep(SLOWDOWN_DELAY);
        }
        if self.view.load().mem.memory_usage() < self.opts.memtable_size {
            return Ok(());
        }
        self.wait_for_room()?;
        match self.rotate_memtable(w) {
            // The old WAL failed (its sync): the database is read-only, and this commit
            // fails with the cause rather than with a later append to the retired WAL.
            Err(e) if w.wal.is_failed() => Err(e),
            // Only the new WAL could not be started: writing goes on in the current WAL
            // and memtable, and the next commit tries again.
            Ok(()) | Err(_) => Ok(()),
        }
    }

    /// `Db::flush`: freezes a non-empty memtable now.
    fn freeze_for_flush(&self) -> Result<()> {
        let mut w = lock(&self.writer);
        self.writable()?;
        if self.view.load().mem.is_empty() {
            return Ok(());
        }
        self.wait_for_room()?;
        self.rotate_memtable(&mut w)
    }

    /// Records `cause` as the background error (the database turns read-only) and returns it.
    fn degrade(&self, cause: Error) -> Error {
        let mut slot = lock(&self.background_error);
        if slot.is_none() {
            add(&self.stats.background_errors, 1);
            *slot = Some(cause.duplicate());
            drop(slot);
            self.listeners.notify(|l| l.on_background_error(&cause));
        }
        cause
    }

    /// Freezes the memtable and starts a new WAL for the next one. The old WAL is synced
    /// first, so a crash never keeps a newer log's writes while losing an older one's. If the
    /// switch fails, nothing changes and the error says why (its kind from the cause:
    /// `Resource` for ENOSPC); if the old WAL's sync failed, the database is read-only too.
    fn rotate_memtable(&self, w: &mut WriterState) -> Result<()> {
        let number = lock(&self.versions).new_file_number();
        let path = self.dir.join(files::wal_name(number));
        let switched = w.wal.sync().and_then(|()| {
            let wal = LogWriter::create(self.fs.as_ref(), &path, number, self.wal_preallocation())?;
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| Error::io("syncing the database directory", e).with_file(&self.dir))?;
            Ok(wal)
        });
        let wal = match switched {
            Ok(wal) => wal,
            Err(e) if w.wal.is_failed() => return Err(self.degrade(e)),
            Err(e) => {
                // A half-made new WAL holds nothing; the next switch makes another.
                let _ = self.fs.remove(&path);
                return Err(e);
            }
        };
        w.wal = wal;
        w.wal_good_len = 0;
        lock(&self.live_wals).push(number);
        {
            let _guard = lock(&self.view_change);
            let view = self.view.load();
            self.view.store(Arc::new(flush::freeze(
                &view,
                number,
                Arc::new(MemTable::new()),
            )));
        }
        self.signal_flush();
        Ok(())
    }

    fn wal_preallocation(&self) -> u64 {
        // The log of a memtable is about as large as the memtable's data.
        self.opts.memtable_size as u64
    }

    fn resume(&self) -> Result<()> {
        let mut w = lock(&self.writer);
        if lock(&self.background_error).is_none() {
            return Ok(());
        }
        if w.wal.is_failed() {
            self.replace_failed_wal(&mut w)?;
        }
        *lock(&self.background_error) = None;
        // A failed flush is retried: its memtable is still frozen and its WALs still live.
        self.signal_flush();
        Ok(())
    }

    /// Cuts the failed WAL back to its last complete group, syncs it, and starts a new one.
    fn replace_failed_wal(&self, w: &mut WriterState) -> Result<()> {
        let good = w.wal_good_len;
        let old = self
            .fs
            .open_append(w.wal.path())
            .map_err(|e| Error::io("reopening the failed WAL", e).with_file(w.wal.path()))?;
        old.truncate(good).and_then(|()| old.sync()).map_err(|e| {
            Error::io("cutting the failed WAL back to its last complete write", e)
                .with_file(w.wal.path())
        })?;
        let number = lock(&self.versions).new_file_number();
        let path = self.dir.join(files::wal_name(number));
        let wal = LogWriter::create(self.fs.as_ref(), &path, number, self.wal_preallocation())?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("syncing the database directory", e).with_file(&self.dir))?;
        w.wal = wal;
        w.wal_good_len = 0;
        lock(&self.live_wals).push(number);
        Ok(())
    }

    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let (stop, wake) = &*self.sync_thread;
        *lock(stop) = true;
        wake.notify_all();
        lock(&self.flush_state).stop = true;
        self.flush_signal.notify_all();
        // Work in progress stops at its next key (a compaction) or finishes (a flush);
        // frozen memtables left are still in their WALs.
        let workers = std::mem::take(&mut *lock(&self.workers));
        for worker in workers {
            if worker.thread().id() != std::thread::current().id() {
                let _ = worker.join();
            }
        }
        // A manual compaction on another thread stops too: wait for it, so that nothing
        // writes to the directory once the lock is released.
        drop(lock(&self.manual_compaction));
        // Taking the writer lock waits for the commit in flight.
        let mut w = lock(&self.writer);
        let synced = if lock(&self.background_error).is_none() && !w.wal.is_failed() {
            // The preallocated space past the last record is given back (a database opened
            // and closed often would otherwise keep `memtable_size` per WAL); best effort.
            let _ = w.wal.file_handle().truncate(w.wal.len());
            w.wal.sync()
        } else {
            Ok(())
        };
        drop(w);
        lock(&self.lock).take();
        synced
    }

    /// Syncs the current WAL without holding the writer lock during the sync.
    fn background_sync(&self) {
        let file = lock(&self.writer).wal.file_handle();
        if let Err(e) = file.sync() {
            self.degrade(Error::io("syncing the WAL in the background", e));
        }
    }
}

/// Syncs the WAL every `every` until the database closes or drops.
fn spawn_interval_sync(
    db: Weak<DbInner>,
    signal: Arc<(Mutex<bool>, Condvar)>,
    every: Duration,
) -> Result<()> {
    std::thread::Builder::new()
        .name("kevo-wal-sync".into())
        .spawn(move || {
            let (stop, wake) = &*signal;
            let mut stopped = lock(stop);
            loop {
                stopped = wake
                    .wait_timeout(stopped, every)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                if *stopped {
                    return;
                }
                drop(stopped);
                match db.upgrade() {
                    Some(db) => db.background_sync(),
                    None => return,
                }
                stopped = lock(stop);
            }
        })
        .map(drop)
        .map_err(|e| Error::io("starting the WAL sync thread", e))
}
