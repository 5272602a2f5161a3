//! The open tables of a database, and point lookups across a [`Version`]'s levels.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{files, lock};
use crate::error::Result;
use crate::fs::Fs;
use crate::key::{self, SequenceNumber};
use crate::metrics::{Counter, FilterCounters};
use crate::sst::table::{BlockReads, Table, TableBlockCache, TableLookup};
use crate::version::edit::FileMeta;
use crate::version::set::Version;

/// Opens tables on first use and keeps up to `capacity` open (their index and filter
/// pinned), closing the least recently used beyond that; all share one block cache.
///
/// Thread safety: every method takes `&self`; the map is behind a mutex held only to look up
/// or insert a handle, never during I/O of a lookup.
pub(crate) struct TableCache {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    blocks: Option<Arc<TableBlockCache>>,
    /// Open tables by file number, with the tick of their last use.
    open: Mutex<OpenTables>,
    capacity: usize,
    /// What the filters of each level said to point lookups.
    filters: Box<[FilterCounters]>,
    /// Data blocks read from table files, by every table.
    block_reads: Arc<Counter>,
}

#[derive(Default)]
struct OpenTables {
    tables: HashMap<u64, (Arc<Table>, u64)>,
    tick: u64,
}

impl TableCache {
    /// A cache keeping at most `capacity` tables open (at least 1).
    pub fn new(
        fs: Arc<dyn Fs>,
        dir: &Path,
        block_cache_size: usize,
        capacity: usize,
        levels: usize,
    ) -> Self {
        let blocks =
            (block_cache_size > 0).then(|| Arc::new(TableBlockCache::new(block_cache_size)));
        TableCache {
            fs,
            dir: dir.to_path_buf(),
            blocks,
            open: Mutex::new(OpenTables::default()),
            capacity: capacity.max(1),
            filters: (0..levels).map(|_| FilterCounters::default()).collect(),
            block_reads: Arc::default(),
        }
    }

    /// The open table `number`, opening it if needed. A reader keeps its `Arc` even if the
    /// table is closed here meanwhile: closing only drops the cache's handle.
    pub fn table(&self, number: u64) -> Result<Arc<Table>> {
        {
            let mut open = lock(&self.open);
            open.tick += 1;
            let tick = open.tick;
            if let Some((table, used)) = open.tables.get_mut(&number) {
                *used = tick;
                return Ok(table.clone());
            }
        }
        // Opened without the lock held: other lookups go on during the I/O.
        let path = self.dir.join(files::table_name(number));
        let table = Arc::new(
            Table::open(self.fs.as_ref(), &path, number, self.blocks.clone())?
                .count_block_reads_in(self.block_reads.clone()),
        );
        let mut open = lock(&self.open);
        let tick = open.tick;
        let table = open
            .tables
            .entry(number)
            .or_insert_with(|| (table, tick))
            .0
            .clone();
        while open.tables.len() > self.capacity {
            let Some(oldest) = open
                .tables
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(n, _)| *n)
            else {
                break;
            };
            open.tables.remove(&oldest);
        }
        Ok(table)
    }

    /// Closes table `number` and drops its cached blocks (its file is being deleted).
    pub fn evict(&self, number: u64) {
        lock(&self.open).tables.remove(&number);
        if let Some(blocks) = &self.blocks {
            blocks.erase_table(number);
        }
    }

    /// Block cache hits and misses so far.
    pub fn block_cache_counts(&self) -> (u64, u64) {
        self.blocks
            .as_ref()
            .map_or((0, 0), |b| (b.hits(), b.misses()))
    }

    /// Data blocks read from table files so far.
    pub fn block_reads(&self) -> u64 {
        self.block_reads.get()
    }

    /// Bytes of filters the open tables hold.
    pub fn filter_memory(&self) -> usize {
        lock(&self.open)
            .tables
            .values()
            .filter_map(|(t, _)| t.filter().map(crate::sst::filter::Filter::memory))
            .sum()
    }

    /// The table `number` if it is open now (without opening it).
    pub fn open_table(&self, number: u64) -> Option<Arc<Table>> {
        lock(&self.open).tables.get(&number).map(|(t, _)| t.clone())
    }

    /// What the filters of `level` said: checks, useful, false positives.
    pub fn filter_counts(&self, level: usize) -> (u64, u64, u64) {
        self.filters
            .get(level)
            .map_or((0, 0, 0), FilterCounters::read)
    }

    /// Tables open now.
    #[cfg(test)]
    pub fn open_tables(&self) -> usize {
        lock(&self.open).tables.len()
    }

    /// The newest version of `user_key` at `sequence` in the tables of `version`.
    pub fn get(
        &self,
        version: &Version,
        user_key: &[u8],
        sequence: SequenceNumber,
        reads: BlockReads,
    ) -> Result<Option<TableLookup>> {
        self.search(version, user_key, |table, level| {
            table.get_with(user_key, sequence, reads, self.filters.get(level))
        })
    }

    /// The sequence of the newest version of `user_key` in the tables of `version`.
    pub fn newest_sequence(
        &self,
        version: &Version,
        user_key: &[u8],
    ) -> Result<Option<SequenceNumber>> {
        self.search(version, user_key, |table, _| {
            table.newest_sequence(user_key)
        })
    }

    /// Asks `probe` of each table that may hold `user_key`, newest data first: L0 newest
    /// first, then one table per deeper level (binary search on key ranges); the first
    /// answer wins.
    fn search<T>(
        &self,
        version: &Version,
        user_key: &[u8],
        probe: impl Fn(&Table, usize) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        for file in version.files(0) {
            if covers(file, user_key)
                && let Some(found) = probe(&*self.table(file.number)?, 0)?
            {
                return Ok(Some(found));
            }
        }
        for level in 1..version.num_levels() {
            let files = version.files(level);
            let i = files.partition_point(|f| key::user_key(&f.largest) < user_key);
            if let Some(file) = files.get(i).filter(|f| covers(f, user_key))
                && let Some(found) = probe(&*self.table(file.number)?, level)?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

fn covers(file: &FileMeta, user_key: &[u8]) -> bool {
    key::user_key(&file.smallest) <= user_key && user_key <= key::user_key(&file.largest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::MemFs;
    use crate::key::{ValueKind, append_internal_key};
    use crate::options::Options;
    use crate::sst::builder::{TableBuilder, TableOptions};
    use crate::version::edit::VersionEdit;

    #[test]
    fn at_most_capacity_tables_stay_open_and_every_lookup_still_answers() {
        let fs = MemFs::new();
        let dir = Path::new("/db");
        fs.create_dir_all(dir).unwrap();
        let mut edit = VersionEdit::default();
        for number in 1..=20u64 {
            let mut builder = TableBuilder::create(
                &fs,
                &dir.join(files::table_name(number)),
                number,
                TableOptions::from(&Options::default()),
            )
            .unwrap();
            let mut k = Vec::new();
            append_internal_key(
                &mut k,
                format!("key{number:02}").as_bytes(),
                number,
                ValueKind::Put,
            );
            builder.add(&k, &number.to_le_bytes()).unwrap();
            let info = builder.finish().unwrap();
            let meta = crate::compaction::table_meta(number, &info);
            edit.new_files.push((0, meta));
        }
        let version = Version::empty(7).apply(&edit).unwrap();
        let cache = TableCache::new(Arc::new(fs), dir, 1 << 20, 16, 7);
        for round in 0..3 {
            for number in 1..=20u64 {
                let got = cache
                    .get(
                        &version,
                        format!("key{number:02}").as_bytes(),
                        100,
                        BlockReads::default(),
                    )
                    .unwrap();
                assert_eq!(
                    got,
                    Some(TableLookup::Value(bytes::Bytes::copy_from_slice(
                        &number.to_le_bytes()
                    ))),
                    "round {round}"
                );
                assert!(cache.open_tables() <= 16);
            }
        }
        assert_eq!(
            cache
                .get(&version, b"key99", 100, BlockReads::default())
                .unwrap(),
            None
        );
    }
}
