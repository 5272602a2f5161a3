//! [`Table`]: an open table. Opening reads and checks the footer, index, filter and
//! properties once (they stay pinned in memory); data blocks are read on demand through the
//! block cache, and every block read from disk is checksum-verified before use.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use bytes::Bytes;

use super::block::{Block, BlockIter};
use super::cache::BlockCache;
use super::filter::Filter;
use super::format::{BlockHandle, FOOTER_LEN, Footer, TRAILER_LEN, decode_block};
use super::properties::TableProperties;
use crate::error::{Error, Result};
use crate::fs::{Fs, FsFile};
use crate::iter::InternalIterator;
use crate::key::{self, ParsedKey, SequenceNumber, ValueKind};
use crate::metrics::{Counter, FilterCounters};
use crate::options::PrefixExtractor;

/// The cache shared by every table of a database.
pub type TableBlockCache = BlockCache<Block>;

/// An open, immutable table. Share it as `Arc<Table>`; every method takes `&self`.
pub struct Table {
    number: u64,
    path: PathBuf,
    file: Box<dyn FsFile>,
    index: Block,
    filter: Option<Filter>,
    properties: TableProperties,
    cache: Option<Arc<TableBlockCache>>,
    /// What reads of this table did; apart from the fields every lookup reads.
    counts: Box<TableCounts>,
    /// The database's count of data block reads, if it keeps one.
    db_block_reads: Option<Arc<Counter>>,
    /// The filter's expected false-positive rate in parts per million (0 when unknown).
    expected_fp_ppm: u64,
}

/// One lookup in this many (per thread) is counted in a table's own filter counters.
pub const TABLE_COUNT_SAMPLING: u64 = 16;

/// Per-table counters. Boxed and aligned so their writes do not share a cache line with
/// the fields lookups read.
#[derive(Default)]
#[repr(align(128))]
struct TableCounts {
    /// Data blocks read from the file (cache misses).
    block_reads: AtomicU64,
    /// Point lookups that asked the filter.
    filter_checks: AtomicU64,
    /// Those the filter answered "absent".
    filter_useful: AtomicU64,
    /// Those the filter let through although the table held no visible version.
    filter_false_positives: AtomicU64,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("number", &self.number)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// How a read uses the block cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockReads {
    /// Keep blocks read from the file in the cache.
    pub fill_cache: bool,
    /// Read from the file (and verify) even when the block is cached.
    pub verify_checksums: bool,
    /// A read for a user (get, iterator): counted in the read counters and the block
    /// cache's hits and misses. Compaction's reads are not, and bypass the cache.
    pub counted: bool,
}

impl Default for BlockReads {
    fn default() -> Self {
        BlockReads {
            fill_cache: true,
            verify_checksums: false,
            counted: true,
        }
    }
}

impl BlockReads {
    /// How compaction reads its inputs: from the files, neither through the block cache
    /// (the tables are about to be replaced, and their blocks are mostly cold) nor counted
    /// with the users' reads.
    pub fn compaction() -> Self {
        BlockReads {
            fill_cache: false,
            verify_checksums: false,
            counted: false,
        }
    }
}

/// What a table's filter said about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterVerdict {
    Absent,
    Maybe,
}

/// The result of [`Table::find`].
struct Found {
    entries: Option<BlockIter>,
    /// `None` when the table has no filter.
    filter_verdict: Option<FilterVerdict>,
}

/// What a table says about a key at a sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableLookup {
    /// The newest visible version is this value.
    Value(Bytes),
    /// The newest visible version is a tombstone.
    Deleted,
}

impl Table {
    /// Opens and checks the table at `path` (file number `number`, the block cache key).
    /// A file that is not a whole kevo table is `Corruption`; a newer format is `Config`.
    pub fn open(
        fs: &dyn Fs,
        path: &Path,
        number: u64,
        cache: Option<Arc<TableBlockCache>>,
    ) -> Result<Table> {
        let (file, file_len) = open_file(fs, path)?;
        let in_file = |e: Error| e.with_file(path);
        let footer = read_footer(file.as_ref(), path, file_len)?;
        let read = |handle: BlockHandle| read_block(file.as_ref(), path, handle);
        let index = Block::decode(read(footer.index)?)
            .map_err(|e| in_file(e.with_offset(footer.index.offset)))?;
        let properties = TableProperties::decode(&read(footer.properties)?)
            .map_err(|e| in_file(e.with_offset(footer.properties.offset)))?;
        let filter = if footer.filter == BlockHandle::default() {
            None
        } else {
            Some(
                Filter::decode(read(footer.filter)?)
                    .map_err(|e| in_file(e.with_offset(footer.filter.offset)))?,
            )
        };
        Ok(Table {
            number,
            path: path.to_path_buf(),
            file,
            index,
            filter,
            properties,
            cache,
            counts: Box::default(),
            db_block_reads: None,
            expected_fp_ppm: 0,
        }
        .with_expected_rate())
    }

    /// Records the filter's expected rate, computed once.
    fn with_expected_rate(mut self) -> Self {
        self.expected_fp_ppm = self
            .filter_sizing()
            .map_or(0, |(_, rate)| (rate * 1e6).round() as u64);
        self
    }

    /// Also counts the table's data block reads in `counter` (the database's total).
    pub(crate) fn count_block_reads_in(mut self, counter: Arc<Counter>) -> Self {
        self.db_block_reads = Some(counter);
        self
    }

    /// The table's file number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// What the table holds.
    pub fn properties(&self) -> &TableProperties {
        &self.properties
    }

    /// Data blocks read from the file so far (block cache misses).
    pub fn block_reads(&self) -> u64 {
        self.counts.block_reads.load(AtomicOrdering::Relaxed)
    }

    /// What this table's filter said to point lookups: checks, "absent" answers, and
    /// false positives ("maybe" although the table held no visible version of the key).
    /// `useful + false_positives` lookups were for keys the table lacked. Checks and
    /// "absent" answers are estimates from a sample of one lookup in
    /// [`TABLE_COUNT_SAMPLING`] per thread; false positives are exact.
    pub fn filter_counts(&self) -> (u64, u64, u64) {
        let c = &self.counts;
        (
            c.filter_checks.load(AtomicOrdering::Relaxed),
            c.filter_useful.load(AtomicOrdering::Relaxed),
            c.filter_false_positives.load(AtomicOrdering::Relaxed),
        )
    }

    /// The filter's bits per key and the false-positive rate expected of it, when the
    /// table has a filter and records the number of hashes it holds.
    pub fn filter_sizing(&self) -> Option<(f64, f64)> {
        let filter = self.filter.as_ref()?;
        let keys = self.properties.filter_keys;
        if keys == 0 {
            return None;
        }
        let bits = f64::from(filter.num_blocks()) * 512.0 / keys as f64;
        Some((
            bits,
            super::filter::expected_fp_rate(bits, filter.num_probes()),
        ))
    }

    /// The table's filter, if it has one.
    pub fn filter(&self) -> Option<&Filter> {
        self.filter.as_ref()
    }

    /// False if the table surely holds no key with prefix `prefix` (as `extractor` finds
    /// prefixes). True when it may, and whenever the table's filter holds no prefixes of
    /// that extractor (no filter, none configured when it was written, or another one).
    pub fn may_contain_prefix(&self, prefix: &[u8], extractor: PrefixExtractor) -> bool {
        let Some(filter) = &self.filter else {
            return true;
        };
        if self.properties.prefix_extractor != extractor.name() {
            return true;
        }
        filter.may_contain_hash(super::filter::prefix_hash(prefix))
    }

    /// Bytes pinned in memory for this table (index and filter).
    pub fn pinned_memory(&self) -> usize {
        self.index.size() + self.filter.as_ref().map_or(0, Filter::memory)
    }

    /// The newest version of `user_key` with sequence ≤ `sequence`, if the table holds one.
    /// A key the filter rules out costs no block read.
    pub fn get(&self, user_key: &[u8], sequence: SequenceNumber) -> Result<Option<TableLookup>> {
        self.get_with(user_key, sequence, BlockReads::default(), None)
    }

    /// [`Table::get`] with control over the block cache, counting what the filter said in
    /// `filter_counters`.
    pub(crate) fn get_with(
        &self,
        user_key: &[u8],
        sequence: SequenceNumber,
        reads: BlockReads,
        filter_counters: Option<&FilterCounters>,
    ) -> Result<Option<TableLookup>> {
        let found = self.find(user_key, sequence, reads)?;
        if let Some(verdict) = found.filter_verdict {
            // Not found at `sequence`, but the table holds newer entries: the key may be
            // among them (a snapshot read of a key written since), so the filter's "maybe"
            // may have been right. Only a read at or past the table's newest entry knows.
            let absent = found.entries.is_none() && sequence >= self.properties.max_sequence;
            self.count_filter_verdict(verdict, absent, filter_counters);
        }
        let Some(entries) = found.entries else {
            return Ok(None);
        };
        // `find` checked the key parses.
        let kind = ParsedKey::parse(entries.key()).map_or(ValueKind::Delete, |p| p.kind);
        Ok(Some(match kind {
            ValueKind::Put => TableLookup::Value(entries.value_bytes()),
            ValueKind::Delete => TableLookup::Deleted,
        }))
    }

    /// Counts what the filter said to a lookup (`absent`: the table held no visible
    /// version). The level's counters are sharded and exact. The table's own checks and
    /// "absent" answers are sampled, one lookup in [`TABLE_COUNT_SAMPLING`] per thread: a
    /// hot table is probed by every reader, and an exact shared count would make them fight
    /// over its cache line. False positives are rare and counted exactly.
    fn count_filter_verdict(
        &self,
        verdict: FilterVerdict,
        absent: bool,
        level: Option<&FilterCounters>,
    ) {
        let false_positive = verdict == FilterVerdict::Maybe && absent;
        if false_positive {
            self.counts
                .filter_false_positives
                .fetch_add(1, AtomicOrdering::Relaxed);
        }
        if crate::metrics::sample_table_count() {
            let c = &self.counts;
            c.filter_checks
                .fetch_add(TABLE_COUNT_SAMPLING, AtomicOrdering::Relaxed);
            if verdict == FilterVerdict::Absent {
                c.filter_useful
                    .fetch_add(TABLE_COUNT_SAMPLING, AtomicOrdering::Relaxed);
            }
        }
        if let Some(counters) = level {
            counters.checks.add(1);
            if verdict == FilterVerdict::Absent {
                counters.useful.add(1);
            }
            if false_positive {
                counters.false_positives.add(1);
            }
            if verdict == FilterVerdict::Absent || false_positive {
                counters.expected_ppm.add(self.expected_fp_ppm);
            }
        }
    }

    /// The sequence number of the newest version of `user_key` the table holds, if any.
    pub fn newest_sequence(&self, user_key: &[u8]) -> Result<Option<SequenceNumber>> {
        let found = self.find(user_key, key::MAX_SEQUENCE, BlockReads::default())?;
        Ok(found
            .entries
            .and_then(|entries| ParsedKey::parse(entries.key()).map(|p| p.sequence)))
    }

    /// A block cursor on the newest version of `user_key` with sequence ≤ `sequence`, if
    /// the table has one (a lookup the filter rules out reads no block), and what the
    /// filter said.
    fn find(&self, user_key: &[u8], sequence: SequenceNumber, reads: BlockReads) -> Result<Found> {
        let filter_verdict = self.filter.as_ref().map(|f| {
            if f.may_contain(user_key) {
                FilterVerdict::Maybe
            } else {
                FilterVerdict::Absent
            }
        });
        let entries = if filter_verdict == Some(FilterVerdict::Absent) {
            None
        } else {
            self.search_blocks(user_key, sequence, reads)?
        };
        Ok(Found {
            entries,
            filter_verdict,
        })
    }

    /// The index and data block part of [`Table::find`].
    fn search_blocks(
        &self,
        user_key: &[u8],
        sequence: SequenceNumber,
        reads: BlockReads,
    ) -> Result<Option<BlockIter>> {
        let target = key::seek_key(user_key, sequence);
        let mut index = self.index.iter();
        index.seek(&target);
        if !index.valid() {
            return index
                .status()
                .map(|()| None)
                .map_err(|e| e.with_file(&self.path));
        }
        let block = self.data_block(index.value(), reads)?;
        let mut entries = block.iter();
        entries.seek(&target);
        if !entries.valid() {
            return entries
                .status()
                .map(|()| None)
                .map_err(|e| e.with_file(&self.path));
        }
        let Some(found) = ParsedKey::parse(entries.key()) else {
            return Err(
                Error::corruption("table entry without a valid internal key").with_file(&self.path),
            );
        };
        Ok((found.user_key == user_key).then_some(entries))
    }

    /// A cursor over every entry of the table.
    #[allow(clippy::iter_not_returning_iterator)] // a seekable cursor, not a std Iterator
    pub fn iter(self: &Arc<Self>) -> TableIter {
        self.iter_with(BlockReads::default())
    }

    /// [`Table::iter`] with control over the block cache and counting.
    pub fn iter_with(self: &Arc<Self>, reads: BlockReads) -> TableIter {
        TableIter {
            table: self.clone(),
            index: self.index.iter(),
            data: None,
            error: None,
            reads,
        }
    }

    /// The data block an index entry points to, through the cache.
    fn data_block(&self, encoded_handle: &[u8], reads: BlockReads) -> Result<Block> {
        let Some(handle) = BlockHandle::decode_varint(encoded_handle) else {
            return Err(
                Error::corruption("malformed block handle in the table index")
                    .with_file(&self.path),
            );
        };
        let cached = if reads.verify_checksums || !reads.counted {
            None
        } else {
            self.cache
                .as_ref()
                .and_then(|c| c.get(self.number, handle.offset))
        };
        if let Some(block) = cached {
            return Ok(block);
        }
        if reads.counted {
            self.counts
                .block_reads
                .fetch_add(1, AtomicOrdering::Relaxed);
            if let Some(total) = &self.db_block_reads {
                total.add(1);
            }
        }
        let bytes = read_block(self.file.as_ref(), &self.path, handle)?;
        let block =
            Block::decode(bytes).map_err(|e| e.with_file(&self.path).with_offset(handle.offset))?;
        if let Some(cache) = self.cache.as_ref().filter(|_| reads.fill_cache) {
            cache.insert(self.number, handle.offset, block.clone(), block.size());
        }
        Ok(block)
    }
}

/// Reads and checks the footer of the table `path`, `file_len` bytes long.
fn read_footer(file: &dyn FsFile, path: &Path, file_len: u64) -> Result<Footer> {
    if file_len < FOOTER_LEN as u64 {
        return Err(Error::corruption(format!(
            "table of {file_len} bytes is shorter than its footer"
        ))
        .with_file(path));
    }
    let mut footer_bytes = [0u8; FOOTER_LEN];
    let footer_at = file_len - FOOTER_LEN as u64;
    file.read_exact_at(&mut footer_bytes, footer_at)
        .map_err(|e| Error::io("reading a table footer", e).with_file(path))?;
    Footer::decode(&footer_bytes, file_len).map_err(|e| e.with_offset(footer_at).with_file(path))
}

/// Opens the table file at `path` for reading, with its length.
pub(crate) fn open_file(fs: &dyn Fs, path: &Path) -> Result<(Box<dyn FsFile>, u64)> {
    let file = fs
        .open(path)
        .map_err(|e| Error::io("opening a table", e).with_file(path))?;
    let len = file
        .len()
        .map_err(|e| Error::io("reading a table's length", e).with_file(path))?;
    Ok((file, len))
}

/// Reads only the footer and the properties block of the table at `path`: what it holds,
/// without its index or filter (for tools). Errors as [`Table::open`]'s; a missing file is
/// an `Io` error whose source has kind `NotFound`.
pub(crate) fn read_properties(fs: &dyn Fs, path: &Path) -> Result<TableProperties> {
    let (file, file_len) = open_file(fs, path)?;
    let footer = read_footer(file.as_ref(), path, file_len)?;
    let block = read_block(file.as_ref(), path, footer.properties)?;
    TableProperties::decode(&block)
        .map_err(|e| e.with_offset(footer.properties.offset).with_file(path))
}

/// Reads, verifies and decompresses the block at `handle`.
fn read_block(file: &dyn FsFile, path: &Path, handle: BlockHandle) -> Result<Bytes> {
    // Handles were checked against the file size (footer) or come from a verified index;
    // a size that still does not fit in memory is damage.
    let Some(len) = handle
        .size
        .checked_add(TRAILER_LEN as u64)
        .and_then(|n| usize::try_from(n).ok())
    else {
        return Err(Error::corruption("block handle too large")
            .with_file(path)
            .with_offset(handle.offset));
    };
    if handle.size > super::format::MAX_BLOCK_SIZE {
        return Err(Error::corruption("block handle too large")
            .with_file(path)
            .with_offset(handle.offset));
    }
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, handle.offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::corruption("block runs past the end of the table")
                .with_file(path)
                .with_offset(handle.offset)
        } else {
            Error::io("reading a table block", e)
                .with_file(path)
                .with_offset(handle.offset)
        }
    })?;
    decode_block(&Bytes::from(buf), handle.offset).map_err(|e| e.with_file(path))
}

/// A cursor over a table: the index picks the block, a block cursor walks it.
pub struct TableIter {
    table: Arc<Table>,
    index: BlockIter,
    data: Option<BlockIter>,
    error: Option<Error>,
    reads: BlockReads,
}

impl TableIter {
    /// The current value as a shared slice of its block.
    pub fn value_bytes(&self) -> Bytes {
        self.data
            .as_ref()
            .map_or_else(Bytes::new, BlockIter::value_bytes)
    }

    /// Loads the block the index cursor is on (none if the index cursor is not valid).
    fn load_block(&mut self) {
        self.data = None;
        if !self.index.valid() {
            return;
        }
        match self.table.data_block(self.index.value(), self.reads) {
            Ok(block) => self.data = Some(block.iter()),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }

    fn data_valid(&self) -> bool {
        self.data.as_ref().is_some_and(BlockIter::valid)
    }

    /// Moves forward past blocks with nothing left.
    fn skip_forward(&mut self) {
        while !self.data_valid()
            && self.index.valid()
            && self.error.is_none()
            && self.data_status_ok()
        {
            self.index.next();
            self.load_block();
            if let Some(d) = &mut self.data {
                d.seek_to_first();
            }
        }
    }

    /// Moves backward past blocks with nothing left.
    fn skip_backward(&mut self) {
        while !self.data_valid()
            && self.index.valid()
            && self.error.is_none()
            && self.data_status_ok()
        {
            self.index.prev();
            self.load_block();
            if let Some(d) = &mut self.data {
                d.seek_to_last();
            }
        }
    }

    fn data_status_ok(&self) -> bool {
        self.data.as_ref().is_none_or(|d| d.status().is_ok())
    }
}

impl InternalIterator for TableIter {
    fn valid(&self) -> bool {
        self.error.is_none() && self.data_valid()
    }

    fn seek_to_first(&mut self) {
        self.index.seek_to_first();
        self.load_block();
        if let Some(d) = &mut self.data {
            d.seek_to_first();
        }
        self.skip_forward();
    }

    fn seek_to_last(&mut self) {
        self.index.seek_to_last();
        self.load_block();
        if let Some(d) = &mut self.data {
            d.seek_to_last();
        }
        self.skip_backward();
    }

    fn seek(&mut self, target: &[u8]) {
        self.index.seek(target);
        self.load_block();
        if let Some(d) = &mut self.data {
            d.seek(target);
        }
        self.skip_forward();
    }

    fn next(&mut self) {
        if let Some(d) = &mut self.data {
            d.next();
        }
        self.skip_forward();
    }

    fn prev(&mut self) {
        if let Some(d) = &mut self.data {
            d.prev();
        }
        self.skip_backward();
    }

    fn key(&self) -> &[u8] {
        if self.valid() {
            self.data.as_ref().map_or(&[], |d| d.key())
        } else {
            &[]
        }
    }

    fn value(&self) -> &[u8] {
        if self.valid() {
            self.data.as_ref().map_or(&[], |d| d.value())
        } else {
            &[]
        }
    }

    fn status(&self) -> Result<()> {
        let path = &self.table.path;
        if let Some(e) = &self.error {
            return Err(e.duplicate());
        }
        self.index.status().map_err(|e| e.with_file(path))?;
        match &self.data {
            Some(d) => d.status().map_err(|e| e.with_file(path)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
