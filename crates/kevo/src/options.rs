//! Options: every tunable of a database, with documented defaults and trade-offs,
//! builder methods, and [`Options::validate`].
//!
//! `Options` serializes (serde) so a database records the options it was opened with in its
//! `OPTIONS-NNNNNN` file (see [`crate::options_file`]). Only format-binding settings must match
//! what is on disk; every other option may change from one open to the next.
//! `docs/configuration.md` lists every option with its default and trade-off.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fs::{Fs, OsFs};
use crate::listener::EventListener;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;

/// When the write-ahead log is synced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncMode {
    /// Sync before acknowledging every write (one sync per commit group). An acknowledged
    /// write survives any crash. The default.
    Always,
    /// Sync in the background at least this often, and on close. A crash loses at most the
    /// writes of the last interval; what survives is always a prefix of what was written.
    Interval(Duration),
    /// Never sync explicitly; the operating system writes back when it likes. A process crash
    /// loses nothing, a power loss may lose any unsynced suffix (still a prefix survives).
    None,
}

/// How WAL replay treats damaged records when the database opens (as RocksDB's
/// `WALRecoveryMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WalRecoveryMode {
    /// A torn or corrupt record at the very end of the newest log (a crash during an append)
    /// is dropped; corruption followed by valid records is [`crate::ErrorKind::Corruption`].
    /// The default.
    TolerateCorruptedTail,
    /// Any damaged record, even a torn tail, fails the open.
    AbsoluteConsistency,
    /// Replay stops at the first damaged record, and everything after it is discarded:
    /// the database opens at the last consistent point in time.
    PointInTime,
    /// Damaged records are skipped and replay goes on. Can lose writes in the middle of the
    /// log; for salvage only.
    SkipAnyCorrupted,
}

/// Which bloom filter each table gets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum FilterPolicy {
    /// A filter with this many bits per key (10 ≈ 1% false positives).
    BitsPerKey(f64),
    /// A filter sized for this false-positive rate, in (0, 1).
    FalsePositiveRate(f64),
    /// No filter: every point lookup reads an index entry and a data block per table.
    None,
    /// A memory budget of this many bits per key on average, spread over the levels to
    /// minimise the expected table reads of a lookup that finds nothing (the allocation of
    /// Monkey, SIGMOD 2017): smaller, shallower levels get more bits per key, the large
    /// last level fewer. Each table is sized when it is written, from the level it goes to
    /// and the levels' current sizes. See docs/configuration.md for the derivation.
    Optimized {
        /// The average bits per key over the whole database, in (0, 64].
        bits_per_key: f64,
    },
}

/// How a key's *prefix* is found, for prefix filters (see [`Options::prefix_extractor`]).
///
/// A table's filter then also holds each distinct prefix of its keys, so a
/// [`Db::prefix`](crate::Db::prefix) scan skips every table that holds no key with the
/// prefix: a scan of a missing prefix reads no data block.
///
/// ```
/// use kevo::PrefixExtractor;
///
/// assert_eq!(PrefixExtractor::Fixed(4).prefix(b"user:42"), Some(&b"user"[..]));
/// assert_eq!(PrefixExtractor::Delimiter(b':').prefix(b"user:42"), Some(&b"user:"[..]));
/// // Keys without a prefix are outside the extractor's domain.
/// assert_eq!(PrefixExtractor::Fixed(4).prefix(b"abc"), None);
/// assert_eq!(PrefixExtractor::Delimiter(b':').prefix(b"plain"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrefixExtractor {
    /// The first `n` bytes; keys shorter than `n` have no prefix.
    Fixed(usize),
    /// The bytes up to and including the first occurrence of this byte; keys without it
    /// have no prefix.
    Delimiter(u8),
}

impl PrefixExtractor {
    /// The prefix of `key`, or `None` when `key` has none.
    pub fn prefix<'a>(&self, key: &'a [u8]) -> Option<&'a [u8]> {
        match *self {
            PrefixExtractor::Fixed(n) => key.get(..n),
            PrefixExtractor::Delimiter(d) => {
                let end = key.iter().position(|&b| b == d)?;
                key.get(..=end)
            }
        }
    }

    /// The name tables record (`fixed:4`, `delimiter:0x3a`): a table's prefix entries are
    /// used only when it names the extractor configured now.
    pub fn name(&self) -> String {
        match *self {
            PrefixExtractor::Fixed(n) => format!("fixed:{n}"),
            PrefixExtractor::Delimiter(d) => format!("delimiter:0x{d:02x}"),
        }
    }
}

/// How data blocks are compressed. A block whose compressed form is not smaller is stored
/// raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Compression {
    /// No compression: the fastest reads, the most disk.
    None,
    /// LZ4: fast, moderate ratio. The default.
    Lz4,
    /// Zstandard at the given level (-7..=22; higher is smaller and slower to write).
    Zstd(i32),
}

/// How tables are merged in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompactionStyle {
    /// Levels of non-overlapping tables, each `level_size_ratio` times the one above: low
    /// space and read amplification, higher write amplification. The default.
    Leveled,
    /// Sorted runs of similar size merged together: low write amplification, higher space
    /// and read amplification.
    Tiered,
}

/// Options of one write.
///
/// A plain struct: `WriteOptions { sync: true, ..Default::default() }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Sync the WAL before acknowledging this write, whatever the [`SyncMode`].
    pub sync: bool,
}

/// Every tunable of a database. Build with [`Options::default`] and the builder methods.
///
/// ```
/// use kevo::{CompactionStyle, Options, SyncMode};
///
/// let opts = Options::default()
///     .memtable_size(64 << 20)
///     .sync_mode(SyncMode::Always)
///     .compaction_style(CompactionStyle::Leveled)
///     .block_size(4 << 10)
///     .bloom_bits_per_key(10)
///     .block_cache_size(64 << 20)
///     .create_if_missing(true);
/// opts.validate().unwrap();
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Options {
    /// Create the database when the directory holds none. Default `true`.
    pub create_if_missing: bool,
    /// Refuse to open a database that already exists. Default `false`.
    pub error_if_exists: bool,
    /// When the WAL is synced. Default [`SyncMode::Always`]: every acknowledged write is
    /// durable, at the price of one sync per commit group.
    pub sync_mode: SyncMode,
    /// How WAL replay treats damaged records. Default
    /// [`WalRecoveryMode::TolerateCorruptedTail`].
    pub wal_recovery_mode: WalRecoveryMode,
    /// Bytes a memtable holds before it is frozen and flushed. Larger: fewer, larger L0
    /// tables and less write amplification, but more memory and longer recovery. Default
    /// 64 MiB.
    pub memtable_size: usize,
    /// Frozen memtables that may wait for flush before writes stall. Default 2.
    pub max_memtables: usize,
    /// Target uncompressed size of a table's data block. Larger: better compression and
    /// scans, slower point reads. Default 4 KiB (chosen by a `kevo bench` sweep: see
    /// docs/configuration.md).
    pub block_size: usize,
    /// Keys between restart points in a block (full keys; the rest are prefix-compressed).
    /// Smaller: faster seeks, larger blocks. Default 16.
    pub restart_interval: usize,
    /// Bloom filter of each table. Default 10 bits per key (~1% false positives).
    pub filter_policy: FilterPolicy,
    /// How a key's prefix is found; each table's filter then also holds the prefixes of
    /// its keys, so prefix scans skip tables without the prefix. Changing it is safe: a
    /// table's prefix entries are used only when the table names the extractor in use.
    /// Default `None` (no prefix entries).
    pub prefix_extractor: Option<PrefixExtractor>,
    /// Raise the bits per key of a level's new tables when its filters' observed
    /// false-positive rate stays above the rate they were sized for (skewed keys, a weak
    /// hash for the data): see docs/configuration.md. Default `true`.
    pub adaptive_filters: bool,
    /// Bytes of decompressed data blocks kept in the block cache (0 disables it). Default
    /// 64 MiB.
    pub block_cache_size: usize,
    /// Data block compression. Default [`Compression::Lz4`].
    pub compression: Compression,
    /// Compaction strategy. Default [`CompactionStyle::Leveled`].
    pub compaction_style: CompactionStyle,
    /// Number of levels, L0 included. Default 7.
    pub max_levels: usize,
    /// Size ratio between adjacent levels (leveled). Larger: fewer levels and less space
    /// amplification, more write amplification. Default 10.
    pub level_size_ratio: u32,
    /// Target size of a compaction output table. Default 64 MiB.
    pub target_file_size: u64,
    /// L0 tables (leveled) or sorted runs (tiered) that trigger a compaction. Default 4.
    pub l0_compaction_trigger: usize,
    /// L0 tables at which writes are slowed down. Default 20.
    pub l0_slowdown_trigger: usize,
    /// L0 tables at which writes stop until compaction catches up. Default 36.
    pub l0_stop_trigger: usize,
    /// Tiered: runs whose sizes differ by at most this percent are merged together.
    /// Default 1 (as RocksDB's universal compaction `size_ratio`).
    pub tiered_size_ratio_percent: u32,
    /// Tiered: a full merge is forced when the bytes outside the largest run exceed this
    /// percent of it (bounds space amplification to 1 + this/100). Default 200.
    pub max_space_amplification_percent: u32,
    /// Run no compaction in the background (`Db::compact` still works): for bulk loads that
    /// compact once at the end. L0 grows, and writes stall at `l0_stop_trigger`. Default
    /// `false`.
    pub disable_auto_compactions: bool,
    /// A table below L0 whose entries are at least this share of tombstones, with nothing
    /// below it, is rewritten in place when no other compaction runs, dropping them
    /// (tombstones that arrive by a trivial move where nothing lies below are otherwise
    /// never dropped). In [0, 1]; 0 disables. Default 0.5.
    pub tombstone_compaction_ratio: f64,
    /// Threads for flush and compaction. Default 2.
    pub background_threads: usize,
    /// Cap on compaction write bandwidth in bytes per second; `None` for no cap. Default
    /// `None`.
    pub compaction_rate_limit: Option<u64>,
    /// How long a stalled write waits for flush or compaction before it fails with
    /// [`crate::ErrorKind::Resource`]; `None` waits without limit. Default 60 s.
    pub write_stall_timeout: Option<Duration>,
    /// Largest accepted key. Default 64 KiB.
    pub max_key_size: usize,
    /// Largest accepted value. Default 64 MiB.
    pub max_value_size: usize,
    /// Verify more aggressively: fail the open on any inconsistency instead of working
    /// around it. Default `true`.
    pub paranoid_checks: bool,
    /// Table files kept open at once (the table cache's capacity). Default 1000.
    pub max_open_files: usize,
    /// Size past which the manifest is rewritten as a fresh snapshot of the state. Default
    /// 64 MiB.
    pub max_manifest_size: u64,
    /// Create files with mode 0600 instead of 0644. Default `false`.
    pub private_files: bool,
    /// The file system every I/O goes through. Default [`OsFs`]; tests plug in
    /// [`crate::fs::MemFs`]. Not persisted.
    #[serde(skip, default = "default_fs")]
    pub fs: Arc<dyn Fs>,
    /// Callbacks for flushes, compactions, stalls, background errors and table files (see
    /// [`EventListener`]). Default none. Not persisted.
    #[serde(skip)]
    pub listeners: Vec<Arc<dyn EventListener>>,
}

fn default_fs() -> Arc<dyn Fs> {
    Arc::new(OsFs::new())
}

impl Default for Options {
    fn default() -> Self {
        Options {
            create_if_missing: true,
            error_if_exists: false,
            sync_mode: SyncMode::Always,
            wal_recovery_mode: WalRecoveryMode::TolerateCorruptedTail,
            memtable_size: 64 * MIB,
            max_memtables: 2,
            block_size: 4 * KIB,
            restart_interval: 16,
            filter_policy: FilterPolicy::BitsPerKey(10.0),
            prefix_extractor: None,
            adaptive_filters: true,
            block_cache_size: 64 * MIB,
            compression: Compression::Lz4,
            compaction_style: CompactionStyle::Leveled,
            max_levels: 7,
            level_size_ratio: 10,
            target_file_size: 64 << 20,
            l0_compaction_trigger: 4,
            l0_slowdown_trigger: 20,
            l0_stop_trigger: 36,
            tiered_size_ratio_percent: 1,
            max_space_amplification_percent: 200,
            disable_auto_compactions: false,
            tombstone_compaction_ratio: 0.5,
            background_threads: 2,
            compaction_rate_limit: None,
            write_stall_timeout: Some(Duration::from_mins(1)),
            max_key_size: 64 * KIB,
            max_value_size: 64 * MIB,
            paranoid_checks: true,
            max_open_files: 1000,
            max_manifest_size: 64 << 20,
            private_files: false,
            fs: default_fs(),
            listeners: Vec::new(),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The JSON form lists every persisted field; `fs` is shown by its Debug.
        let json = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        write!(
            f,
            "Options {{ {json}, fs: {:?}, listeners: {} }}",
            self.fs,
            self.listeners.len()
        )
    }
}

impl PartialEq for Options {
    /// Compares every persisted option; the `fs` and the listeners are not compared.
    fn eq(&self, other: &Self) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

macro_rules! builders {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(
            #[doc = concat!("Sets [`Options::", stringify!($name), "`].")]
            pub fn $name(mut self, value: $ty) -> Self {
                self.$name = value;
                self
            }
        )*
    };
}

impl Options {
    builders! {
        create_if_missing: bool,
        error_if_exists: bool,
        sync_mode: SyncMode,
        wal_recovery_mode: WalRecoveryMode,
        memtable_size: usize,
        max_memtables: usize,
        block_size: usize,
        restart_interval: usize,
        filter_policy: FilterPolicy,
        prefix_extractor: Option<PrefixExtractor>,
        adaptive_filters: bool,
        block_cache_size: usize,
        compression: Compression,
        compaction_style: CompactionStyle,
        max_levels: usize,
        level_size_ratio: u32,
        target_file_size: u64,
        l0_compaction_trigger: usize,
        l0_slowdown_trigger: usize,
        l0_stop_trigger: usize,
        tiered_size_ratio_percent: u32,
        max_space_amplification_percent: u32,
        disable_auto_compactions: bool,
        tombstone_compaction_ratio: f64,
        background_threads: usize,
        compaction_rate_limit: Option<u64>,
        write_stall_timeout: Option<Duration>,
        max_key_size: usize,
        max_value_size: usize,
        paranoid_checks: bool,
        max_open_files: usize,
        max_manifest_size: u64,
        private_files: bool,
        fs: Arc<dyn Fs>,
    }

    /// Adds an event listener (see [`Options::listeners`]).
    pub fn listener(mut self, listener: Arc<dyn EventListener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Shorthand for `filter_policy(FilterPolicy::BitsPerKey(bits as f64))`; 0 means no
    /// filter.
    pub fn bloom_bits_per_key(self, bits: u32) -> Self {
        let policy = if bits == 0 {
            FilterPolicy::None
        } else {
            FilterPolicy::BitsPerKey(f64::from(bits))
        };
        self.filter_policy(policy)
    }

    /// Checks every option. The error is [`crate::ErrorKind::Config`] and names the first
    /// offending option and why.
    pub fn validate(&self) -> Result<()> {
        self.validate_sizes()?;
        self.validate_filter_and_compression()?;
        self.validate_compaction()?;
        self.validate_durability()
    }

    fn validate_sizes(&self) -> Result<()> {
        in_range("memtable_size", self.memtable_size, KIB, 2 * GIB)?;
        in_range("max_memtables", self.max_memtables, 1, 64)?;
        in_range("block_size", self.block_size, 64, 16 * MIB)?;
        in_range("restart_interval", self.restart_interval, 1, 1024)?;
        in_range("max_key_size", self.max_key_size, 1, 16 * MIB)?;
        in_range("max_value_size", self.max_value_size, 1, GIB)?;
        in_range("max_open_files", self.max_open_files, 16, 1 << 20)?;
        in_range(
            "max_manifest_size",
            self.max_manifest_size,
            4 << 10,
            1 << 40,
        )?;
        in_range("target_file_size", self.target_file_size, 1 << 10, 1 << 40)
    }

    fn validate_filter_and_compression(&self) -> Result<()> {
        match self.filter_policy {
            FilterPolicy::BitsPerKey(bits) | FilterPolicy::Optimized { bits_per_key: bits }
                if !(bits.is_finite() && bits > 0.0 && bits <= 64.0) =>
            {
                return Err(Error::config(
                    "filter_policy",
                    format!("BitsPerKey must be in (0, 64], got {bits}"),
                ));
            }
            FilterPolicy::FalsePositiveRate(rate)
                if !(rate.is_finite() && rate > 0.0 && rate < 1.0) =>
            {
                return Err(Error::config(
                    "filter_policy",
                    format!("FalsePositiveRate must be in (0, 1), got {rate}"),
                ));
            }
            _ => {}
        }
        match self.prefix_extractor {
            Some(PrefixExtractor::Fixed(n)) => {
                in_range("prefix_extractor", n, 1, self.max_key_size)?;
            }
            Some(PrefixExtractor::Delimiter(_)) | None => {}
        }
        if let Compression::Zstd(level) = self.compression {
            in_range("compression", level, -7, 22)?;
        }
        Ok(())
    }

    fn validate_compaction(&self) -> Result<()> {
        let ratio = self.tombstone_compaction_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            return Err(Error::config(
                "tombstone_compaction_ratio",
                format!("must be in [0, 1], got {ratio}"),
            ));
        }
        in_range("max_levels", self.max_levels, 2, 16)?;
        in_range("level_size_ratio", self.level_size_ratio, 2, 100)?;
        in_range("l0_compaction_trigger", self.l0_compaction_trigger, 1, 1000)?;
        if self.l0_slowdown_trigger < self.l0_compaction_trigger {
            return Err(Error::config(
                "l0_slowdown_trigger",
                format!(
                    "({}) must not be below l0_compaction_trigger ({})",
                    self.l0_slowdown_trigger, self.l0_compaction_trigger
                ),
            ));
        }
        if self.l0_stop_trigger < self.l0_slowdown_trigger {
            return Err(Error::config(
                "l0_stop_trigger",
                format!(
                    "({}) must not be below l0_slowdown_trigger ({})",
                    self.l0_stop_trigger, self.l0_slowdown_trigger
                ),
            ));
        }
        in_range(
            "tiered_size_ratio_percent",
            self.tiered_size_ratio_percent,
            0,
            100,
        )?;
        in_range(
            "max_space_amplification_percent",
            self.max_space_amplification_percent,
            10,
            10_000,
        )?;
        in_range("background_threads", self.background_threads, 1, 64)?;
        if let Some(rate) = self.compaction_rate_limit {
            in_range("compaction_rate_limit", rate, 4096, u64::MAX)?;
        }
        Ok(())
    }

    fn validate_durability(&self) -> Result<()> {
        if let SyncMode::Interval(every) = self.sync_mode
            && (every.is_zero() || every > Duration::from_hours(1))
        {
            return Err(Error::config(
                "sync_mode",
                format!("Interval must be between 1 ns and 1 hour, got {every:?}"),
            ));
        }
        if self.write_stall_timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::config(
                "write_stall_timeout",
                "must be positive or None (wait without limit)",
            ));
        }
        if self.error_if_exists && !self.create_if_missing {
            return Err(Error::config(
                "error_if_exists",
                "with create_if_missing(false) no open could ever succeed",
            ));
        }
        Ok(())
    }
}

fn in_range<T: Copy + PartialOrd + fmt::Display>(
    option: &str,
    value: T,
    min: T,
    max: T,
) -> Result<()> {
    if value < min || value > max {
        return Err(Error::config(
            option,
            format!("must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn rejected(opts: &Options, option: &str) {
        let err = opts.validate().expect_err(option);
        assert_eq!(err.kind(), ErrorKind::Config, "{option}: {err}");
        assert!(
            err.message().contains(&format!("`{option}`")),
            "{option}: {err}"
        );
    }

    #[test]
    fn defaults_are_valid_and_match_the_api_contract() {
        let opts = Options::default();
        opts.validate().unwrap();
        assert!(opts.create_if_missing && !opts.error_if_exists);
        assert_eq!(opts.sync_mode, SyncMode::Always);
        assert_eq!(
            opts.wal_recovery_mode,
            WalRecoveryMode::TolerateCorruptedTail
        );
        assert_eq!((opts.memtable_size, opts.max_memtables), (64 << 20, 2));
        assert_eq!((opts.block_size, opts.restart_interval), (4 << 10, 16));
        assert_eq!(opts.filter_policy, FilterPolicy::BitsPerKey(10.0));
        assert_eq!(opts.block_cache_size, 64 << 20);
        assert_eq!(opts.compression, Compression::Lz4);
        assert_eq!(opts.compaction_style, CompactionStyle::Leveled);
        assert_eq!(
            (opts.level_size_ratio, opts.target_file_size),
            (10, 64 << 20)
        );
        assert_eq!(
            (
                opts.l0_compaction_trigger,
                opts.l0_slowdown_trigger,
                opts.l0_stop_trigger
            ),
            (4, 20, 36)
        );
        assert_eq!(
            (opts.background_threads, opts.compaction_rate_limit),
            (2, None)
        );
        assert_eq!(
            (opts.max_key_size, opts.max_value_size),
            (64 << 10, 64 << 20)
        );
        assert!(opts.paranoid_checks);
    }

    #[test]
    fn each_size_option_is_bounded() {
        let d = Options::default;
        rejected(&d().memtable_size(100), "memtable_size");
        rejected(&d().memtable_size(3 * GIB), "memtable_size");
        rejected(&d().max_memtables(0), "max_memtables");
        rejected(&d().block_size(10), "block_size");
        rejected(&d().block_size(32 * MIB), "block_size");
        rejected(&d().restart_interval(0), "restart_interval");
        rejected(&d().restart_interval(5000), "restart_interval");
        rejected(&d().max_key_size(0), "max_key_size");
        rejected(&d().max_key_size(17 * MIB), "max_key_size");
        rejected(&d().max_value_size(0), "max_value_size");
        rejected(&d().max_value_size(2 * GIB), "max_value_size");
        rejected(&d().max_open_files(3), "max_open_files");
        rejected(&d().max_manifest_size(10), "max_manifest_size");
        rejected(&d().target_file_size(1), "target_file_size");
        rejected(&d().block_cache_size(0).max_levels(1), "max_levels");
        // The smallest sizes tests use are accepted.
        d().memtable_size(KIB)
            .block_size(64)
            .restart_interval(1)
            .target_file_size(1 << 10)
            .validate()
            .unwrap();
        d().block_cache_size(0).validate().unwrap();
    }

    #[test]
    fn filter_policy_values_must_be_sane() {
        let d = Options::default;
        for bad in [0.0, -1.0, 65.0, f64::NAN, f64::INFINITY] {
            rejected(
                &d().filter_policy(FilterPolicy::BitsPerKey(bad)),
                "filter_policy",
            );
        }
        for bad in [0.0, 1.0, 1.5, -0.1, f64::NAN] {
            rejected(
                &d().filter_policy(FilterPolicy::FalsePositiveRate(bad)),
                "filter_policy",
            );
        }
        d().filter_policy(FilterPolicy::FalsePositiveRate(0.001))
            .validate()
            .unwrap();
        d().filter_policy(FilterPolicy::None).validate().unwrap();
        assert_eq!(d().bloom_bits_per_key(0).filter_policy, FilterPolicy::None);
        assert_eq!(
            d().bloom_bits_per_key(12).filter_policy,
            FilterPolicy::BitsPerKey(12.0)
        );
    }

    #[test]
    fn zstd_level_is_bounded() {
        let d = Options::default;
        rejected(&d().compression(Compression::Zstd(23)), "compression");
        rejected(&d().compression(Compression::Zstd(-8)), "compression");
        d().compression(Compression::Zstd(3)).validate().unwrap();
        d().compression(Compression::None).validate().unwrap();
    }

    #[test]
    fn compaction_triggers_must_be_ordered_and_bounded() {
        let d = Options::default;
        rejected(&d().level_size_ratio(1), "level_size_ratio");
        rejected(&d().level_size_ratio(1000), "level_size_ratio");
        rejected(&d().l0_compaction_trigger(0), "l0_compaction_trigger");
        rejected(
            &d().l0_compaction_trigger(8).l0_slowdown_trigger(6),
            "l0_slowdown_trigger",
        );
        rejected(
            &d().l0_slowdown_trigger(30).l0_stop_trigger(29),
            "l0_stop_trigger",
        );
        rejected(
            &d().tiered_size_ratio_percent(101),
            "tiered_size_ratio_percent",
        );
        rejected(
            &d().max_space_amplification_percent(5),
            "max_space_amplification_percent",
        );
        rejected(&d().background_threads(0), "background_threads");
        rejected(&d().background_threads(65), "background_threads");
        rejected(&d().compaction_rate_limit(Some(0)), "compaction_rate_limit");
        d().compaction_rate_limit(Some(1 << 20))
            .compaction_style(CompactionStyle::Tiered)
            .validate()
            .unwrap();
    }

    #[test]
    fn durability_options_are_checked() {
        let d = Options::default;
        rejected(
            &d().sync_mode(SyncMode::Interval(Duration::ZERO)),
            "sync_mode",
        );
        rejected(
            &d().sync_mode(SyncMode::Interval(Duration::from_hours(2))),
            "sync_mode",
        );
        rejected(
            &d().write_stall_timeout(Some(Duration::ZERO)),
            "write_stall_timeout",
        );
        rejected(
            &d().create_if_missing(false).error_if_exists(true),
            "error_if_exists",
        );
        d().sync_mode(SyncMode::Interval(Duration::from_millis(5)))
            .write_stall_timeout(None)
            .validate()
            .unwrap();
        d().sync_mode(SyncMode::None).validate().unwrap();
    }

    #[test]
    #[allow(clippy::needless_update)] // the form callers use, whatever fields exist
    fn write_options_are_a_plain_struct() {
        let w = WriteOptions {
            sync: true,
            ..Default::default()
        };
        assert!(w.sync);
        assert!(!WriteOptions::default().sync);
    }
}
