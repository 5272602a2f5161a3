//! Event listeners: callbacks for flushes, compactions, write stalls, background errors and
//! table files, registered with [`Options::listener`](crate::Options::listener).
//!
//! Callbacks run on the thread doing the work (a background worker, or the writer that
//! stalled), never under a lock readers or writers wait on, and never on the read path.
//! Keep them short: a slow callback slows that work. A callback that panics is caught, the
//! panic is counted (`Metrics::listener_panics`), and the database goes on unharmed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;

/// A flush of one memtable into an L0 table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushInfo {
    /// The table's file number.
    pub table: u64,
    /// Entries written (known at the end; 0 at the beginning).
    pub entries: u64,
    /// Table bytes written (known at the end).
    pub bytes: u64,
    /// How long it took (known at the end).
    pub duration: Duration,
}

/// A compaction job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionInfo {
    /// The level the job started from.
    pub level: usize,
    /// The level its outputs went to.
    pub output_level: usize,
    /// Input tables (file numbers).
    pub inputs: Vec<u64>,
    /// Output tables (known at the end; a trivial move's output is its input).
    pub outputs: Vec<u64>,
    /// Bytes read from the inputs.
    pub bytes_read: u64,
    /// Bytes written (0 for a trivial move).
    pub bytes_written: u64,
    /// Whether the one input moved down without a rewrite.
    pub trivial_move: bool,
    /// Whether `Db::compact` or `Db::compact_range` asked for it.
    pub manual: bool,
    /// How long it took (known at the end).
    pub duration: Duration,
}

/// Why writes stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallCause {
    /// `max_memtables` memtables wait for flush.
    Memtables,
    /// L0 reached `l0_stop_trigger` tables.
    L0Tables,
}

/// A write stall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallInfo {
    /// Why.
    pub cause: StallCause,
    /// How long writes waited (known at the end).
    pub duration: Duration,
}

/// New tables of a level get more filter bits: the level's filters let through more
/// absent keys than their size predicts (see `Options::adaptive_filters`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterAdjustInfo {
    /// The level.
    pub level: usize,
    /// Lookups of keys the level's open tables lacked, in the observation.
    pub lookups: u64,
    /// The false-positive rate observed over those lookups.
    pub observed_rate: f64,
    /// The rate the same filters were expected to give (from their sizes).
    pub expected_rate: f64,
    /// Bits per key new tables of the level got before, and get from now on.
    pub bits_per_key_before: f64,
    /// See `bits_per_key_before`.
    pub bits_per_key_after: f64,
}

/// Why a table file was created or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableReason {
    /// Written by a flush.
    Flush,
    /// Written by a compaction.
    Compaction,
    /// Replaced by a compaction and no longer read by anyone.
    Obsolete,
    /// A compaction's output removed because the compaction failed.
    Abandoned,
}

/// A table file created (published under its final name) or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFileInfo {
    /// The table's file number (its name is `{number:06}.sst`).
    pub number: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Why.
    pub reason: TableReason,
}

/// Callbacks for a database's background events. Every method has an empty default:
/// implement the ones you need.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use kevo::{EventListener, FlushInfo, Options};
///
/// #[derive(Default)]
/// struct Flushes(Mutex<Vec<u64>>);
///
/// impl EventListener for Flushes {
///     fn on_flush_end(&self, info: &FlushInfo) {
///         self.0.lock().unwrap().push(info.bytes);
///     }
/// }
///
/// let flushes = Arc::new(Flushes::default());
/// let dir = tempfile::tempdir()?;
/// let db = kevo::Db::open(dir.path(), Options::default().listener(flushes.clone()))?;
/// db.put(b"k", b"v")?;
/// db.flush()?;
/// assert_eq!(flushes.0.lock().unwrap().len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait EventListener: Send + Sync {
    /// A flush starts.
    fn on_flush_begin(&self, _info: &FlushInfo) {}
    /// A flush's table is in the manifest and readable.
    fn on_flush_end(&self, _info: &FlushInfo) {}
    /// A compaction starts.
    fn on_compaction_begin(&self, _info: &CompactionInfo) {}
    /// A compaction's result is in the manifest and readable.
    fn on_compaction_end(&self, _info: &CompactionInfo) {}
    /// Writes start waiting for flush or compaction.
    fn on_stall_begin(&self, _info: &StallInfo) {}
    /// The stall is over (or timed out).
    fn on_stall_end(&self, _info: &StallInfo) {}
    /// Background work failed and the database turned read-only.
    fn on_background_error(&self, _error: &Error) {}
    /// A table file was published.
    fn on_table_created(&self, _info: &TableFileInfo) {}
    /// A table file was deleted.
    fn on_table_deleted(&self, _info: &TableFileInfo) {}
    /// New tables of a level get more filter bits than configured (adaptive filters).
    fn on_filter_adjusted(&self, _info: &FilterAdjustInfo) {}
}

/// The listeners of one database, each call shielded from panics.
#[derive(Clone, Default)]
pub(crate) struct Listeners {
    listeners: Vec<Arc<dyn EventListener>>,
    panics: Arc<std::sync::atomic::AtomicU64>,
}

impl Listeners {
    pub fn new(listeners: Vec<Arc<dyn EventListener>>) -> Self {
        Listeners {
            listeners,
            panics: Arc::default(),
        }
    }

    /// Calls `event` on every listener; a panic is caught and counted.
    pub fn notify(&self, event: impl Fn(&dyn EventListener)) {
        for listener in &self.listeners {
            let call = AssertUnwindSafe(|| event(listener.as_ref()));
            // The listener's state is its own business; the database's is untouched by it.
            if catch_unwind(call).is_err() {
                self.panics
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Panics caught so far.
    pub fn panics(&self) -> u64 {
        self.panics.load(std::sync::atomic::Ordering::Relaxed)
    }
}
