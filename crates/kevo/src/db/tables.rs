//! The open tables of a database, and point lookups across a [`Version`]'s levels.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use arc_swap::ArcSwap;

use super::files;
use crate::error::Result;
use crate::fs::Fs;
use crate::key::{self, SequenceNumber};
use crate::metrics::{Counter, FilterCounters};
use crate::sst::table::{BlockReads, Table, TableBlockCache, TableLookup};
use crate::sync::{Arc, AtomicBool, Mutex, Ordering, lock};
use crate::version::edit::FileMeta;
use crate::version::set::Version;

#[cfg(test)]
mod shuttle_tests;

/// Opens tables on first use and keeps up to `capacity` open (their index and filter
/// pinned), closing one not used lately beyond that; all share one block cache.
///
/// Thread safety: every method takes `&self`. A lookup of an open table takes no lock and
/// writes no shared memory: it loads the current map of open tables (an `ArcSwap`, which
/// costs no reference count) and finds the table there. Opening or closing a table
/// replaces the map under `changes`. (A mutex around the map was measured: two threads of
/// absent-key lookups spent 72% of their time on it and ran at 0.3x one thread.)
/// The races of opens, lookups and closes are model-checked with shuttle (`shuttle_tests`,
/// through [`crate::sync`]).
pub(crate) struct TableCache {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    blocks: Option<Arc<TableBlockCache>>,
    /// The open tables by file number, replaced whole when one opens or closes.
    open: ArcSwap<HashMap<u64, Arc<OpenTable>>>,
    /// Serialises replacements of `open`, and holds the eviction order.
    changes: Mutex<VecDeque<u64>>,
    capacity: usize,
    /// What the filters of each level said to point lookups.
    filters: Box<[FilterCounters]>,
    /// Data blocks read from table files, by every table.
    block_reads: Arc<Counter>,
    /// Entries and tombstones of each live table known so far (written since open, or
    /// opened): what the tombstone compaction looks for, without opening tables.
    counts: Mutex<HashMap<u64, (u64, u64)>>,
}

/// An open table and its "used since the eviction hand last passed" bit (the clock
/// algorithm: an approximation of LRU that a lookup keeps with a read, and a write only
/// the first time after the hand cleared it).
struct OpenTable {
    table: Arc<Table>,
    referenced: AtomicBool,
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
            open: ArcSwap::default(),
            changes: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            filters: (0..levels).map(|_| FilterCounters::default()).collect(),
            block_reads: Arc::default(),
            counts: Mutex::default(),
        }
    }

    /// Records table `number`'s entries and tombstones.
    pub fn note_counts(&self, number: u64, entries: u64, deletions: u64) {
        lock(&self.counts).insert(number, (entries, deletions));
    }

    /// Table `number`'s entries and tombstones, if known.
    pub fn counts(&self, number: u64) -> Option<(u64, u64)> {
        lock(&self.counts).get(&number).copied()
    }

    /// Runs `f` on the open table `number`, opening it if needed.
    pub fn with_table<R>(&self, number: u64, f: impl FnOnce(&Table) -> R) -> Result<R> {
        {
            let open = self.open.load();
            if let Some(slot) = open.get(&number) {
                slot.mark_used();
                return Ok(f(&slot.table));
            }
        }
        Ok(f(&*self.open_table_file(number)?))
    }

    /// The open table `number`, opening it if needed. A reader keeps its `Arc` even if the
    /// table is closed here meanwhile: closing only drops the cache's handle.
    pub fn table(&self, number: u64) -> Result<Arc<Table>> {
        if let Some(slot) = self.open.load().get(&number) {
            slot.mark_used();
            return Ok(slot.table.clone());
        }
        self.open_table_file(number)
    }

    /// Opens table `number` (without any lock held: other lookups and opens go on during
    /// the I/O) and adds it to the map, closing others beyond the capacity.
    fn open_table_file(&self, number: u64) -> Result<Arc<Table>> {
        let path = self.dir.join(files::table_name(number));
        let table = Arc::new(
            Table::open(self.fs.as_ref(), &path, number, self.blocks.clone())?
                .count_block_reads_in(self.block_reads.clone()),
        );
        let p = table.properties();
        self.note_counts(number, p.entries, p.deletions);
        let mut order = lock(&self.changes);
        let current = self.open.load_full();
        if let Some(slot) = current.get(&number) {
            // Opened meanwhile by another lookup: use that one.
            return Ok(slot.table.clone());
        }
        let mut next = HashMap::clone(&current);
        next.insert(
            number,
            Arc::new(OpenTable {
                table: table.clone(),
                referenced: AtomicBool::new(true),
            }),
        );
        order.push_back(number);
        evict_beyond(&mut next, &mut order, self.capacity);
        self.open.store(Arc::new(next));
        Ok(table)
    }

    /// Closes table `number` and drops its cached blocks (its file is being deleted).
    pub fn evict(&self, number: u64) {
        lock(&self.counts).remove(&number);
        {
            let mut order = lock(&self.changes);
            let current = self.open.load_full();
            if current.contains_key(&number) {
                let mut next = HashMap::clone(&current);
                next.remove(&number);
                order.retain(|&n| n != number);
                self.open.store(Arc::new(next));
            }
        }
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
        self.open
            .load()
            .values()
            .filter_map(|slot| slot.table.filter().map(crate::sst::filter::Filter::memory))
            .sum()
    }

    /// The false positives the filters of `level` were expected to give for the lookups
    /// of keys their tables lacked (the sum of each probed filter's expected rate).
    pub fn filter_expected_false_positives(&self, level: usize) -> f64 {
        self.filters
            .get(level)
            .map_or(0.0, |c| crate::metrics::read(&c.expected_ppm) as f64 / 1e6)
    }

    /// The filter counters of `level` adaptation reads: useful, false positives, and the
    /// expected false positives in parts per million.
    pub fn filter_raw(&self, level: usize) -> (u64, u64, u64) {
        self.filters.get(level).map_or((0, 0, 0), |c| {
            let (_, useful, false_positives) = c.read();
            (
                useful,
                false_positives,
                crate::metrics::read(&c.expected_ppm),
            )
        })
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
        self.open.load().len()
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
                && let Some(found) = self.with_table(file.number, |t| probe(t, 0))??
            {
                return Ok(Some(found));
            }
        }
        for level in 1..version.num_levels() {
            let files = version.files(level);
            let i = files.partition_point(|f| key::user_key(&f.largest) < user_key);
            if let Some(file) = files.get(i).filter(|f| covers(f, user_key))
                && let Some(found) = self.with_table(file.number, |t| probe(t, level))??
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

impl OpenTable {
    fn mark_used(&self) {
        // A read first: the common case (already marked) writes nothing shared.
        if !self.referenced.load(Ordering::Relaxed) {
            self.referenced.store(true, Ordering::Relaxed);
        }
    }
}

/// Closes tables of `open` until at most `capacity` remain: the clock hand walks `order`
/// (oldest opened first), giving each table used since its last pass a second chance.
fn evict_beyond(
    open: &mut HashMap<u64, Arc<OpenTable>>,
    order: &mut VecDeque<u64>,
    capacity: usize,
) {
    // Two passes clear every bit, so this ends.
    let mut steps = 2 * order.len();
    while open.len() > capacity && steps > 0 {
        steps -= 1;
        let Some(number) = order.pop_front() else {
            break;
        };
        match open.get(&number) {
            Some(slot) if slot.referenced.swap(false, Ordering::Relaxed) => order.push_back(number),
            Some(_) => {
                open.remove(&number);
            }
            None => {}
        }
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
