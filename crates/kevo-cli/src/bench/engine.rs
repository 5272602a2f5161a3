//! The storage engines the benchmark drives, behind one small trait so peers (rocksdb, fjall,
//! sled, redb) can be added later behind opt-in cargo features without touching the
//! workloads.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use kevo::{
    CompactionStyle, Db, Error, FilterPolicy, Options, PrefixExtractor, Result, SyncMode,
    WriteOptions,
};

use super::timeline::{Event, EventLog};

/// What every benchmarked engine offers. Errors are `kevo::Error`s: a peer wraps its own
/// (`Error::new(ErrorKind::Io, ...).with_source(e)`).
pub trait Engine: Send + Sync {
    /// Writes `key`; with `sync`, durable before it returns.
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()>;
    /// The length of `key`'s value, or `None` if absent. A length, not the value, so an
    /// engine need not copy.
    fn get(&self, key: &[u8]) -> Result<Option<usize>>;
    fn delete(&self, key: &[u8], sync: bool) -> Result<()>;
    /// Calls `visit` on entries in key order (`reverse`: from the last) until it returns
    /// `false` or the entries run out.
    fn scan(&self, reverse: bool, visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()>;
    /// Calls `visit` on the first entry at or after `key`, if there is one.
    fn seek(&self, key: &[u8], visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<()>;
    /// Calls `visit` on every entry whose key starts with `prefix`, in key order.
    fn prefix(&self, prefix: &[u8], visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        let _ = (prefix, visit);
        Err(Error::invalid_argument(
            "this engine has no prefix scans in the benchmark",
        ))
    }
    /// Data blocks served so far from the block cache and read from files, if the engine
    /// counts them.
    fn block_counts(&self) -> Option<(u64, u64)> {
        None
    }
    /// Bytes of filters held in memory now, if the engine counts them.
    fn filter_memory(&self) -> Option<u64> {
        None
    }
    /// Writes buffered data to tables and waits (so table sizes can be measured).
    fn flush(&self) -> Result<()>;
    /// Bytes in the engine's tables now.
    fn table_bytes(&self) -> Result<u64>;
    /// Bytes written to tables (flushes and compactions) since the database opened, if the
    /// engine counts them.
    fn table_bytes_written(&self) -> Option<u64>;
    /// Sorted runs a point read may consult now, if the engine has such a notion.
    fn sorted_runs(&self) -> Option<u64> {
        None
    }
    /// Engine-specific figures for the JSON report (the tree's shape, counters).
    fn stats(&self) -> serde_json::Value;
    /// The background events (flushes, compactions, stalls) logged since the last call that
    /// overlap `from..to`, if the engine reports them.
    fn drain_events(&self, from: Instant, to: Instant) -> Vec<Event> {
        let _ = (from, to);
        Vec::new()
    }
    fn close(&self) -> Result<()>;
}

/// Which engine to benchmark (peers only when built with their cargo feature).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    Kevo,
    #[cfg(feature = "fjall")]
    Fjall,
    #[cfg(feature = "redb")]
    Redb,
    #[cfg(feature = "sled")]
    Sled,
    #[cfg(feature = "rocksdb")]
    Rocksdb,
}

/// Tunables the benchmark passes on; `None` keeps the engine's default.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    pub write_buffer_size: Option<usize>,
    pub cache_size: Option<usize>,
    pub bloom_bits: Option<u32>,
    pub target_file_size: Option<u64>,
    pub compaction_style: Option<StyleArg>,
    pub block_size: Option<usize>,
    /// kevo only: the filter policy (overrides `bloom_bits`).
    pub filter_policy: Option<FilterPolicy>,
    /// kevo only: a fixed-length prefix extractor of this many bytes.
    pub prefix_len: Option<usize>,
}

/// `--compaction_style`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StyleArg {
    Leveled,
    Tiered,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Kevo => "kevo",
            #[cfg(feature = "fjall")]
            EngineKind::Fjall => "fjall",
            #[cfg(feature = "redb")]
            EngineKind::Redb => "redb",
            #[cfg(feature = "sled")]
            EngineKind::Sled => "sled",
            #[cfg(feature = "rocksdb")]
            EngineKind::Rocksdb => "rocksdb",
        }
    }

    /// Opens (`create`: or creates) the database in `dir`.
    pub fn open(self, dir: &Path, config: &EngineConfig, create: bool) -> Result<Arc<dyn Engine>> {
        #[allow(unused_imports)] // only with a peer feature
        use super::peers;
        let _ = create;
        match self {
            EngineKind::Kevo => Ok(Arc::new(Kevo::open(dir, config, create)?)),
            #[cfg(feature = "fjall")]
            EngineKind::Fjall => Ok(Arc::new(peers::fjall::Fjall::open(dir, config)?)),
            #[cfg(feature = "redb")]
            EngineKind::Redb => Ok(Arc::new(peers::redb::Redb::open(dir, config)?)),
            #[cfg(feature = "sled")]
            EngineKind::Sled => Ok(Arc::new(peers::sled::Sled::open(dir, config)?)),
            #[cfg(feature = "rocksdb")]
            EngineKind::Rocksdb => Ok(Arc::new(peers::rocksdb::RocksDb::open(
                dir, config, create,
            )?)),
        }
    }

    /// Removes the database in `dir`, refusing a directory that holds files the engine did
    /// not make (a mistyped `--db` must not cost anyone their files).
    pub fn destroy(self, dir: &Path) -> Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("listing the database directory", e).with_file(dir)),
        };
        let owns: fn(&str) -> bool = match self {
            EngineKind::Kevo => kevo_file,
            // A peer's directory is ours when it holds the marker the benchmark wrote.
            #[allow(unreachable_patterns)] // without peer features
            _ => {
                if !dir.join(super::peers::MARKER).exists() {
                    return Err(Error::invalid_argument(format!(
                        "refusing to delete {}: it holds no {} database the benchmark made",
                        dir.display(),
                        self.name()
                    )));
                }
                |_: &str| true
            }
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing the database directory", e))?;
            let name = entry.file_name();
            if !name.to_str().is_some_and(owns) {
                return Err(Error::invalid_argument(format!(
                    "refusing to delete {}: {} holds files that are not a {} database's ({})",
                    dir.display(),
                    dir.display(),
                    self.name(),
                    name.to_string_lossy()
                )));
            }
        }
        std::fs::remove_dir_all(dir)
            .map_err(|e| Error::io("deleting the old database", e).with_file(dir))
    }
}

/// Whether `name` has the shape of a file kevo makes.
fn kevo_file(name: &str) -> bool {
    let name = name.strip_suffix(".tmp").unwrap_or(name);
    let numbered = |s: &str| s.len() >= 6 && s.bytes().all(|b| b.is_ascii_digit());
    matches!(name, "LOCK" | "CURRENT")
        || name.strip_prefix("MANIFEST-").is_some_and(numbered)
        || name.strip_prefix("OPTIONS-").is_some_and(numbered)
        || name.strip_suffix(".wal").is_some_and(numbered)
        || name.strip_suffix(".sst").is_some_and(numbered)
}

struct Kevo {
    db: Db,
    /// Its flushes, compactions and stalls, for the throughput timeline.
    events: Arc<EventLog>,
}

impl Kevo {
    fn open(dir: &Path, config: &EngineConfig, create: bool) -> Result<Self> {
        // As db_bench: writes are not synced unless the workload asks (--sync, fillsync).
        let events = Arc::new(EventLog::default());
        let mut options = Options::default()
            .sync_mode(SyncMode::None)
            .create_if_missing(create)
            .listener(events.clone());
        if let Some(size) = config.write_buffer_size {
            options = options.memtable_size(size);
        }
        if let Some(size) = config.cache_size {
            options = options.block_cache_size(size);
        }
        if let Some(bits) = config.bloom_bits {
            options = options.bloom_bits_per_key(bits);
        }
        if let Some(policy) = config.filter_policy {
            options = options.filter_policy(policy);
        }
        if let Some(len) = config.prefix_len {
            options = options.prefix_extractor(Some(PrefixExtractor::Fixed(len)));
        }
        if let Some(size) = config.target_file_size {
            options = options.target_file_size(size);
        }
        if let Some(size) = config.block_size {
            options = options.block_size(size);
        }
        match config.compaction_style {
            Some(StyleArg::Leveled) => options = options.compaction_style(CompactionStyle::Leveled),
            Some(StyleArg::Tiered) => options = options.compaction_style(CompactionStyle::Tiered),
            None => {}
        }
        Ok(Kevo {
            db: Db::open(dir, options)?,
            events,
        })
    }
}

#[allow(clippy::needless_update)] // stays right when WriteOptions gains fields
fn write_options(sync: bool) -> WriteOptions {
    WriteOptions {
        sync,
        ..WriteOptions::default()
    }
}

impl Engine for Kevo {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        self.db.put_opt(key, value, &write_options(sync))
    }

    fn get(&self, key: &[u8]) -> Result<Option<usize>> {
        Ok(self.db.get(key)?.map(|v| v.len()))
    }

    fn delete(&self, key: &[u8], sync: bool) -> Result<()> {
        self.db.delete_opt(key, &write_options(sync))
    }

    fn scan(&self, reverse: bool, visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let mut iter = self.db.iter();
        loop {
            let entry = if reverse {
                iter.next_back()
            } else {
                iter.next()
            };
            match entry {
                None => return Ok(()),
                Some(entry) => {
                    let (k, v) = entry?;
                    if !visit(&k, &v) {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn seek(&self, key: &[u8], visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        if let Some(entry) = self.db.range(key..).next() {
            let (k, v) = entry?;
            visit(&k, &v);
        }
        Ok(())
    }

    fn prefix(&self, prefix: &[u8], visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        for entry in self.db.prefix(prefix) {
            let (k, v) = entry?;
            visit(&k, &v);
        }
        Ok(())
    }

    fn block_counts(&self) -> Option<(u64, u64)> {
        let m = self.db.metrics();
        Some((m.block_cache_hits, m.block_reads))
    }

    fn filter_memory(&self) -> Option<u64> {
        Some(self.db.metrics().filter_memory_bytes)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()
    }

    fn table_bytes(&self) -> Result<u64> {
        Ok(self.db.metrics().lsm.levels.iter().map(|l| l.bytes).sum())
    }

    fn table_bytes_written(&self) -> Option<u64> {
        let m = self.db.metrics();
        Some(m.flush_bytes + m.compaction_bytes_written)
    }

    fn sorted_runs(&self) -> Option<u64> {
        let levels = self.db.lsm_shape().levels;
        let l0 = levels.first().map_or(0, |l| l.tables);
        let deeper = levels.iter().skip(1).filter(|l| l.tables > 0).count();
        Some((l0 + deeper) as u64)
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::to_value(self.db.metrics()).unwrap_or(serde_json::Value::Null)
    }

    fn drain_events(&self, from: Instant, to: Instant) -> Vec<Event> {
        self.events.drain(from, to)
    }

    fn close(&self) -> Result<()> {
        self.db.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kevo_shaped_names_are_kevo_files() {
        for ours in [
            "LOCK",
            "CURRENT",
            "MANIFEST-000001",
            "OPTIONS-000004",
            "000012.wal",
            "000013.sst",
            "000013.sst.tmp",
        ] {
            assert!(kevo_file(ours), "{ours}");
        }
        for theirs in ["notes.txt", "12.sst", "MANIFEST-", "x.wal", "CURRENT.bak"] {
            assert!(!kevo_file(theirs), "{theirs}");
        }
    }
}
