//! [`TableBuilder`]: writes a table, block by block, through [`Fs`], under a temporary
//! name; [`TableBuilder::finish`] syncs it and publishes it atomically.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::block::BlockBuilder;
use super::filter::{FilterBuilder, prefix_hash};
use super::format::{BlockHandle, Footer, TABLE_FORMAT_VERSION, TRAILER_LEN, encode_block};
use super::properties::TableProperties;
use crate::error::{Error, Result};
use crate::fs::{Fs, FsFile};
use crate::key::{self, ParsedKey, ValueKind};
use crate::options::{Compression, FilterPolicy, Options, PrefixExtractor};

/// The options that shape a table. Each table records what it needs to be read back, so a
/// table written with other options stays readable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableOptions {
    /// Target uncompressed size of a data block.
    pub block_size: usize,
    /// Entries between restart points in data blocks.
    pub restart_interval: usize,
    /// Data block compression.
    pub compression: Compression,
    /// The table's bloom filter.
    pub filter_policy: FilterPolicy,
    /// Whose prefixes go into the filter as well (none without a filter).
    pub prefix_extractor: Option<PrefixExtractor>,
}

impl From<&Options> for TableOptions {
    fn from(o: &Options) -> Self {
        TableOptions {
            block_size: o.block_size,
            restart_interval: o.restart_interval,
            compression: o.compression,
            filter_policy: o.filter_policy,
            prefix_extractor: o.prefix_extractor,
        }
    }
}

/// A table that was written and published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// The table's file number.
    pub number: u64,
    /// Its size in bytes.
    pub file_size: u64,
    /// What it holds.
    pub properties: TableProperties,
}

/// Writes one table. Keys (encoded internal keys) must be added in strictly increasing
/// order. Dropping a builder without `finish` removes its temporary file, best effort.
///
/// Thread safety: requires external synchronization (one writer).
pub struct TableBuilder<'a> {
    fs: &'a dyn Fs,
    file: Option<Box<dyn FsFile>>,
    tmp_path: PathBuf,
    path: PathBuf,
    number: u64,
    options: TableOptions,
    data: BlockBuilder,
    index: BlockBuilder,
    filter: Option<FilterBuilder>,
    props: TableProperties,
    last_key: Vec<u8>,
    /// The last prefix added to the filter (prefixes of sorted keys come in runs).
    last_prefix: Option<Vec<u8>>,
    /// Bytes written so far: the offset of the next block.
    offset: u64,
    buf: Vec<u8>,
}

impl<'a> TableBuilder<'a> {
    /// Starts the table `path` (file number `number`), writing to `path.tmp`.
    pub fn create(fs: &'a dyn Fs, path: &Path, number: u64, options: TableOptions) -> Result<Self> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp_path = PathBuf::from(tmp);
        let file = fs
            .create(&tmp_path)
            .map_err(|e| Error::io("creating a table file", e).with_file(&tmp_path))?;
        Ok(TableBuilder {
            fs,
            file: Some(file),
            tmp_path,
            path: path.to_path_buf(),
            number,
            options,
            data: BlockBuilder::new(options.restart_interval),
            // Whole keys in the index: a seek there is one binary search.
            index: BlockBuilder::new(1),
            filter: FilterBuilder::new(options.filter_policy),
            props: TableProperties {
                compression: describe_compression(options.compression),
                filter_policy: describe_filter(options.filter_policy),
                prefix_extractor: match (options.prefix_extractor, options.filter_policy) {
                    (_, FilterPolicy::None) | (None, _) => String::new(),
                    (Some(extractor), _) => extractor.name(),
                },
                min_sequence: u64::MAX,
                ..TableProperties::default()
            },
            last_key: Vec::new(),
            last_prefix: None,
            offset: 0,
            buf: Vec::new(),
        })
    }

    /// Adds an entry. A key out of order, or one without a valid internal-key trailer, is
    /// `InvalidArgument` and leaves the table as it was.
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let Some(parsed) = ParsedKey::parse(key) else {
            return Err(Error::invalid_argument("table keys must be internal keys"));
        };
        if self.props.entries > 0 && key::compare(&self.last_key, key) != Ordering::Less {
            return Err(Error::invalid_argument(
                "table keys must be added in increasing order",
            ));
        }
        if self.props.entries == 0 {
            self.props.smallest_key = key.to_vec();
        }
        if let Some(filter) = &mut self.filter {
            // Versions of one user key are adjacent: add each user key once.
            if self.props.entries == 0 || key::user_key(&self.last_key) != parsed.user_key {
                filter.add_key(parsed.user_key);
                let prefix = self
                    .options
                    .prefix_extractor
                    .and_then(|e| e.prefix(parsed.user_key));
                if let Some(prefix) = prefix
                    && self.last_prefix.as_deref() != Some(prefix)
                {
                    filter.add_hash(prefix_hash(prefix));
                    self.last_prefix = Some(prefix.to_vec());
                }
            }
        }
        self.props.entries += 1;
        self.props.deletions += u64::from(parsed.kind == ValueKind::Delete);
        self.props.raw_key_bytes += key.len() as u64;
        self.props.raw_value_bytes += value.len() as u64;
        self.props.min_sequence = self.props.min_sequence.min(parsed.sequence);
        self.props.max_sequence = self.props.max_sequence.max(parsed.sequence);
        self.data.add(key, value);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        if self.data.estimated_size() >= self.options.block_size {
            self.flush_data_block()?;
        }
        Ok(())
    }

    /// Entries added so far.
    pub fn entries(&self) -> u64 {
        self.props.entries
    }

    /// Bytes the table would take if finished now (roughly).
    pub fn estimated_size(&self) -> u64 {
        self.offset + self.data.estimated_size() as u64
    }

    fn flush_data_block(&mut self) -> Result<()> {
        if self.data.is_empty() {
            return Ok(());
        }
        let handle = self.write_block(BlockKind::Data)?;
        self.index.add(&self.last_key, &encode_handle(handle));
        self.props.data_blocks += 1;
        self.props.data_size += handle.size + TRAILER_LEN as u64;
        self.data.reset();
        Ok(())
    }

    /// Writes the data or index block being built (and its trailer) at the current offset.
    fn write_block(&mut self, kind: BlockKind) -> Result<BlockHandle> {
        self.buf.clear();
        let (raw, compression) = match kind {
            BlockKind::Data => (self.data.finish(), self.options.compression),
            BlockKind::Index => (self.index.finish(), Compression::None),
        };
        let size = encode_block(raw, compression, self.offset, &mut self.buf);
        self.append_encoded(size)
    }

    /// Writes `raw` uncompressed (filter and properties blocks).
    fn write_raw_block(&mut self, raw: &[u8]) -> Result<BlockHandle> {
        self.buf.clear();
        let size = encode_block(raw, Compression::None, self.offset, &mut self.buf);
        self.append_encoded(size)
    }

    /// Appends the encoded block in `buf` (stored size `size`) and returns its handle.
    fn append_encoded(&mut self, size: u64) -> Result<BlockHandle> {
        self.append_buf()?;
        let handle = BlockHandle {
            offset: self.offset,
            size,
        };
        self.offset += self.buf.len() as u64;
        Ok(handle)
    }

    fn append_buf(&mut self) -> Result<()> {
        let Some(file) = &self.file else {
            return Err(Error::invalid_argument("the table was already finished"));
        };
        file.append(&self.buf).map_err(|e| {
            Error::io("writing a table", e)
                .with_file(&self.tmp_path)
                .with_offset(self.offset)
        })
    }

    /// Writes the filter, index, properties and footer, syncs the file, renames it to its
    /// final name and syncs the directory. An empty table is `InvalidArgument`.
    pub fn finish(mut self) -> Result<TableInfo> {
        if self.props.entries == 0 {
            return Err(Error::invalid_argument(
                "a table must hold at least one entry",
            ));
        }
        self.flush_data_block()?;
        self.props.largest_key.clone_from(&self.last_key);
        let filter = match self.filter.take() {
            Some(filter) => {
                self.props.filter_keys = filter.keys() as u64;
                let bytes = filter.finish();
                let handle = self.write_raw_block(&bytes)?;
                self.props.filter_size = handle.size + TRAILER_LEN as u64;
                handle
            }
            None => BlockHandle::default(),
        };
        let index = self.write_block(BlockKind::Index)?;
        self.props.index_size = index.size + TRAILER_LEN as u64;
        self.props.created_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let encoded_props = self.props.encode();
        let properties = self.write_raw_block(&encoded_props)?;
        self.buf.clear();
        Footer {
            filter,
            index,
            properties,
            format_version: TABLE_FORMAT_VERSION,
        }
        .encode(&mut self.buf);
        self.append_buf()?;
        self.offset += self.buf.len() as u64;
        self.publish()?;
        Ok(TableInfo {
            number: self.number,
            file_size: self.offset,
            properties: self.props.clone(),
        })
    }

    /// Sync, rename, sync the directory: after a crash the table is either whole under its
    /// name or absent.
    fn publish(&mut self) -> Result<()> {
        let Some(file) = self.file.take() else {
            return Err(Error::invalid_argument("the table was already finished"));
        };
        file.sync()
            .map_err(|e| Error::io("syncing a table", e).with_file(&self.tmp_path))?;
        drop(file);
        self.fs
            .rename(&self.tmp_path, &self.path)
            .map_err(|e| Error::io("publishing a table", e).with_file(&self.path))?;
        let dir = self.path.parent().unwrap_or(Path::new(""));
        self.fs
            .sync_dir(dir)
            .map_err(|e| Error::io("syncing the database directory", e).with_file(dir))
    }
}

impl Drop for TableBuilder<'_> {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Not finished: the temporary file is garbage. Open removes it if this fails.
            let _ = self.fs.remove(&self.tmp_path);
        }
    }
}

#[derive(Clone, Copy)]
enum BlockKind {
    Data,
    Index,
}

fn encode_handle(handle: BlockHandle) -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    handle.encode_varint(&mut out);
    out
}

fn describe_compression(c: Compression) -> String {
    match c {
        Compression::None => "none".into(),
        Compression::Lz4 => "lz4".into(),
        Compression::Zstd(level) => format!("zstd:{level}"),
    }
}

fn describe_filter(f: FilterPolicy) -> String {
    match f {
        FilterPolicy::None => "none".into(),
        FilterPolicy::BitsPerKey(b) => format!("bits_per_key:{b}"),
        FilterPolicy::FalsePositiveRate(r) => format!("fp_rate:{r}"),
        // Resolved per level before a table is built; kept readable if it is not.
        FilterPolicy::Optimized { bits_per_key } => format!("optimized:{bits_per_key}"),
    }
}
