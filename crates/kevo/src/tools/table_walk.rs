//! Walking a table file block by block: every checksum verified, every entry decoded and
//! checked, damage recorded with its offset, and the walk going on past it.
//!
//! Data blocks are found through the index. When the footer or the index is damaged, they
//! are found by scanning instead: the first data block starts at offset 0 and each next one
//! right after the previous block's trailer, and a block's end is where its trailer's
//! checksum (seeded with the block's offset) verifies. A damaged data block is skipped when
//! the index says where the next one starts; a scan cannot resynchronise past one, so it
//! stops there.
//!
//! The walk hands every valid entry (an internal key above the previous one) to a sink, in
//! order: `check` counts them, `repair` copies them into a new table, `dump_table` keeps
//! them.

use std::path::Path;

use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::dump::{
    BlockView, EntryView, FilterView, FooterView, HandleView, IndexEntryView, PropertiesView,
    TableDump,
};
use super::{Finding, KeyView, display_name, escape, key_less};
use crate::coding::Decoder;
use crate::error::{Error, Result};
use crate::fs::{Fs, FsFile};
use crate::key::{self, ParsedKey, ValueKind};
use crate::sst::block::Block;
use crate::sst::filter::Filter;
use crate::sst::format::{
    BlockHandle, FOOTER_LEN, Footer, MAX_BLOCK_SIZE, TRAILER_LEN, decode_block,
};
use crate::sst::properties::TableProperties;

/// A scan looks for a block's end at most this far past its start.
const SCAN_WINDOW: usize = 64 << 20;
/// A scan reads the file in steps of this many bytes.
const SCAN_CHUNK: usize = 1 << 20;
/// A scan gives up after hashing this many bytes in one table (a pathological file).
const SCAN_HASH_BUDGET: u64 = 1 << 30;

/// Receives every valid entry of a table, in order.
pub(crate) type Sink<'a> = &'a mut dyn FnMut(&[u8], &[u8]) -> Result<()>;

/// What a walk found.
pub(crate) struct TableWalk {
    /// The decoded structure and every problem, with offsets.
    pub dump: TableDump,
    /// The properties block, if it decoded.
    pub properties: Option<TableProperties>,
    /// Valid entries handed to the sink.
    pub entries: u64,
    /// Entries decoded but not handed on (an invalid key, or out of order).
    pub skipped: u64,
    /// The first and last valid keys.
    pub first_key: Option<Vec<u8>>,
    pub last_key: Option<Vec<u8>>,
    /// The sequence range of the valid entries (`None` without entries).
    pub sequences: Option<(u64, u64)>,
    /// Data blocks read whole, and those damaged (unreadable or cut short).
    pub blocks_ok: u64,
    pub blocks_damaged: u64,
    /// Tombstones among the valid entries.
    deletions: u64,
    /// Distinct user keys the filter rejects (it must accept every key the table holds).
    filter_misses: u64,
    first_filter_miss: Option<Vec<u8>>,
}

impl TableWalk {
    /// Whether nothing is wrong with the file.
    pub fn healthy(&self) -> bool {
        self.dump.problems.is_empty()
    }
}

/// Walks the table at `path`, handing valid entries to `sink` (an error from the sink ends
/// the walk with it). With `keep_entries` the dump holds every decoded entry. Errors are
/// I/O failures only; damage is in the result's problems.
pub(crate) fn walk_table(
    fs: &dyn Fs,
    path: &Path,
    keep_entries: bool,
    sink: Sink<'_>,
) -> Result<TableWalk> {
    let (file, file_len) = crate::sst::table::open_file(fs, path)?;
    let mut walker = Walker {
        file: file.as_ref(),
        path,
        name: display_name(path),
        keep_entries,
        filter: None,
        walk: TableWalk {
            dump: TableDump {
                file: path.display().to_string(),
                file_size: file_len,
                footer: None,
                properties: None,
                filter: None,
                index: Vec::new(),
                located_by_scan: false,
                blocks: Vec::new(),
                problems: Vec::new(),
                notes: Vec::new(),
            },
            properties: None,
            entries: 0,
            skipped: 0,
            first_key: None,
            last_key: None,
            sequences: None,
            blocks_ok: 0,
            blocks_damaged: 0,
            deletions: 0,
            filter_misses: 0,
            first_filter_miss: None,
        },
    };
    walker.run(sink)?;
    Ok(walker.walk)
}

struct Walker<'a> {
    file: &'a dyn FsFile,
    path: &'a Path,
    name: String,
    keep_entries: bool,
    filter: Option<Filter>,
    walk: TableWalk,
}

/// A data block the index names.
struct Indexed {
    handle: BlockHandle,
    /// The index key: the block's last key.
    last_key: Vec<u8>,
}

impl Walker<'_> {
    fn problem(&mut self, offset: Option<u64>, what: impl Into<String>) {
        self.walk
            .dump
            .problems
            .push(Finding::new(self.name.clone(), offset, what));
    }

    fn note(&mut self, offset: Option<u64>, what: impl Into<String>) {
        self.walk
            .dump
            .notes
            .push(Finding::new(self.name.clone(), offset, what));
    }

    fn run(&mut self, sink: Sink<'_>) -> Result<()> {
        let file_len = self.walk.dump.file_size;
        let footer = self.read_footer()?;
        let data_end = match &footer {
            Some(footer) => {
                self.read_meta_blocks(footer)?;
                data_end(footer)
            }
            None => file_len,
        };
        let (indexed, index_complete) = match &footer {
            Some(footer) => self.read_index(footer.index, data_end)?,
            None => (Vec::new(), false),
        };
        let mut next = 0;
        for block in &indexed {
            self.data_block(block.handle, Some(&block.last_key), sink)?;
            next = block.handle.offset + block.handle.size + TRAILER_LEN as u64;
        }
        if !index_complete {
            self.scan(next, data_end, footer.is_some(), sink)?;
        }
        self.finish(footer.as_ref());
        Ok(())
    }

    fn read_footer(&mut self) -> Result<Option<Footer>> {
        let file_len = self.walk.dump.file_size;
        if file_len < FOOTER_LEN as u64 {
            self.problem(
                None,
                format!("file of {file_len} bytes is shorter than a table footer ({FOOTER_LEN})"),
            );
            return Ok(None);
        }
        let at = file_len - FOOTER_LEN as u64;
        let mut bytes = [0u8; FOOTER_LEN];
        self.file
            .read_exact_at(&mut bytes, at)
            .map_err(|e| Error::io("reading a table footer", e).with_file(self.path))?;
        match Footer::decode(&bytes, file_len) {
            Ok(footer) => {
                let view = |h: BlockHandle| HandleView {
                    offset: h.offset,
                    size: h.size,
                };
                self.walk.dump.footer = Some(FooterView {
                    offset: at,
                    filter: (footer.filter != BlockHandle::default()).then(|| view(footer.filter)),
                    index: view(footer.index),
                    properties: view(footer.properties),
                    format_version: footer.format_version,
                });
                Ok(Some(footer))
            }
            Err(e) => {
                self.problem(
                    Some(at),
                    format!(
                        "footer: {}; data blocks are located by scanning",
                        e.message()
                    ),
                );
                Ok(None)
            }
        }
    }

    /// Reads a block, verified and decompressed, with its compression byte. `Ok(Err)` is
    /// damage (the message says what).
    fn read_block(&self, handle: BlockHandle) -> Result<std::result::Result<(Bytes, u8), String>> {
        if !handle.fits_before(self.walk.dump.file_size) || handle.size > MAX_BLOCK_SIZE {
            return Ok(Err(format!(
                "block of {} bytes runs past the end of the file",
                handle.size
            )));
        }
        let mut buf = vec![0u8; handle.size as usize + TRAILER_LEN];
        self.file
            .read_exact_at(&mut buf, handle.offset)
            .map_err(|e| {
                Error::io("reading a table block", e)
                    .with_file(self.path)
                    .with_offset(handle.offset)
            })?;
        let kind = buf[handle.size as usize];
        Ok(decode_block(&Bytes::from(buf), handle.offset)
            .map(|raw| (raw, kind))
            .map_err(|e| e.message().to_string()))
    }

    /// The filter and properties blocks, and the layout the footer describes.
    fn read_meta_blocks(&mut self, footer: &Footer) -> Result<()> {
        let file_len = self.walk.dump.file_size;
        // The builder writes data, filter, index, properties, footer, each right after the
        // one before.
        let mut layout = Vec::new();
        if footer.filter != BlockHandle::default() {
            layout.push(("filter", footer.filter));
        }
        layout.push(("index", footer.index));
        layout.push(("properties", footer.properties));
        let mut expected = data_end(footer);
        for (what, handle) in &layout {
            if handle.offset != expected {
                self.problem(
                    Some(handle.offset),
                    format!("the {what} block is not where the layout puts it (offset {expected})"),
                );
            }
            expected = handle.offset + handle.size + TRAILER_LEN as u64;
        }
        if expected != file_len - FOOTER_LEN as u64 {
            self.problem(
                Some(expected),
                "bytes between the properties block and the footer",
            );
        }

        let props = footer.properties;
        match self.read_block(props)? {
            Ok((raw, _)) => match TableProperties::decode(&raw) {
                Ok(p) => {
                    self.walk.dump.properties = Some(PropertiesView::from(&p));
                    self.walk.properties = Some(p);
                }
                Err(e) => self.problem(Some(props.offset), format!("properties: {}", e.message())),
            },
            Err(what) => self.problem(Some(props.offset), format!("properties block: {what}")),
        }
        if footer.filter != BlockHandle::default() {
            let handle = footer.filter;
            match self.read_block(handle)? {
                Ok((raw, _)) => match Filter::decode(raw) {
                    Ok(filter) => {
                        self.walk.dump.filter = Some(FilterView {
                            offset: handle.offset,
                            size: handle.size,
                            num_blocks: filter.num_blocks(),
                            num_probes: filter.num_probes(),
                        });
                        self.filter = Some(filter);
                    }
                    Err(e) => self.problem(Some(handle.offset), format!("filter: {}", e.message())),
                },
                Err(what) => self.problem(Some(handle.offset), format!("filter block: {what}")),
            }
        }
        Ok(())
    }

    /// The data blocks the index names, checked against each other and the data region;
    /// and whether the index accounted for the whole region (else the rest is scanned).
    fn read_index(&mut self, handle: BlockHandle, data_end: u64) -> Result<(Vec<Indexed>, bool)> {
        let raw = match self.read_block(handle)? {
            Ok((raw, _)) => raw,
            Err(what) => {
                self.problem(
                    Some(handle.offset),
                    format!("index block: {what}; data blocks are located by scanning"),
                );
                return Ok((Vec::new(), false));
            }
        };
        let mut raw_entries = Vec::new();
        let damage = decode_entries(&raw, |offset, key, value| {
            raw_entries.push((offset, key.to_vec(), value.to_vec()));
        });
        let mut complete = true;
        if let Some((at, what)) = damage {
            self.problem(
                Some(handle.offset),
                format!("index block, entry at block offset {at}: {what}; the rest of the data is located by scanning"),
            );
            complete = false;
        }
        let mut indexed: Vec<Indexed> = Vec::new();
        let mut next = 0u64;
        for (at, key, value) in raw_entries {
            let view = KeyView::parse(&key);
            let block = BlockHandle::decode_varint(&value);
            self.walk.dump.index.push(IndexEntryView {
                key: view.clone(),
                block: block.map(|h| HandleView {
                    offset: h.offset,
                    size: h.size,
                }),
            });
            let bad = if view.kind == super::EntryKind::Invalid {
                Some("its key is not an internal key".to_string())
            } else if indexed
                .last()
                .is_some_and(|prev| !key_less(&prev.last_key, &key))
            {
                Some("its key is not above the previous entry's".to_string())
            } else {
                match block {
                    None => Some("malformed block handle".to_string()),
                    Some(h) if !h.fits_before(data_end) => Some(format!(
                        "block {}+{} lies outside the data region",
                        h.offset, h.size
                    )),
                    Some(h) if h.offset != next => Some(format!(
                        "block at {} does not start where the previous one ends ({next})",
                        h.offset
                    )),
                    Some(_) => None,
                }
            };
            match (bad, block) {
                (None, Some(h)) => {
                    next = h.offset + h.size + TRAILER_LEN as u64;
                    indexed.push(Indexed {
                        handle: h,
                        last_key: key,
                    });
                }
                (bad, _) => {
                    let what = bad.unwrap_or_default();
                    self.problem(
                        Some(handle.offset),
                        format!("index entry at block offset {at}: {what}; the rest of the data is located by scanning"),
                    );
                    complete = false;
                    break;
                }
            }
        }
        if complete && next != data_end {
            self.problem(
                Some(next),
                format!(
                    "{} bytes of the data region are not named by the index; they are scanned",
                    data_end.saturating_sub(next)
                ),
            );
            complete = false;
        }
        Ok((indexed, complete))
    }

    /// Reads one data block and hands its entries on. `index_key` is the block's last key
    /// as the index records it.
    fn data_block(
        &mut self,
        handle: BlockHandle,
        index_key: Option<&[u8]>,
        sink: Sink<'_>,
    ) -> Result<()> {
        match self.read_block(handle)? {
            Ok((raw, kind)) => self.data_block_entries(handle, kind, &raw, index_key, sink),
            Err(what) => {
                self.walk.blocks_damaged += 1;
                let lost = match (index_key, &self.walk.last_key) {
                    (Some(last), Some(prev)) => format!(
                        "; its entries (keys after {} up to {}) are lost",
                        KeyView::parse(prev),
                        KeyView::parse(last)
                    ),
                    (Some(last), None) => {
                        format!(
                            "; its entries (keys up to {}) are lost",
                            KeyView::parse(last)
                        )
                    }
                    (None, _) => String::new(),
                };
                self.problem(Some(handle.offset), format!("data block: {what}{lost}"));
                self.walk.dump.blocks.push(BlockView {
                    offset: handle.offset,
                    size: handle.size,
                    compression: None,
                    entry_count: 0,
                    entries: Vec::new(),
                    error: Some(what),
                });
                Ok(())
            }
        }
    }

    fn data_block_entries(
        &mut self,
        handle: BlockHandle,
        kind: u8,
        raw: &Bytes,
        index_key: Option<&[u8]>,
        sink: Sink<'_>,
    ) -> Result<()> {
        let mut view = BlockView {
            offset: handle.offset,
            size: handle.size,
            compression: Some(compression_name(kind).to_string()),
            entry_count: 0,
            entries: Vec::new(),
            error: None,
        };
        let mut problems = Vec::new();
        let mut sink_error = None;
        let mut block_last: Option<Vec<u8>> = None;
        let damage = decode_entries(raw, |offset, key, value| {
            view.entry_count += 1;
            if self.keep_entries {
                view.entries.push(EntryView {
                    offset: offset as u64,
                    key: KeyView::parse(key),
                    value: value.to_vec(),
                });
            }
            block_last = Some(key.to_vec());
            let Some(parsed) = ParsedKey::parse(key) else {
                self.walk.skipped += 1;
                problems.push(format!(
                    "entry at block offset {offset}: not an internal key"
                ));
                return;
            };
            if self
                .walk
                .last_key
                .as_deref()
                .is_some_and(|last| !key_less(last, key))
            {
                self.walk.skipped += 1;
                problems.push(format!(
                    "entry at block offset {offset}: {} is not above the previous key",
                    KeyView::parse(key)
                ));
                return;
            }
            if sink_error.is_some() {
                return;
            }
            if let Err(e) = sink(key, value) {
                sink_error = Some(e);
                return;
            }
            self.accept(key, &parsed);
        });
        if let Some(e) = sink_error {
            return Err(e);
        }
        if let Some((at, what)) = &damage {
            view.error = Some(format!("entry at block offset {at}: {what}"));
            problems.push(format!(
                "entry at block offset {at}: {what}; the rest of the block is lost"
            ));
        }
        if let (Some(index_key), None) = (index_key, &damage)
            && block_last.as_deref() != Some(index_key)
        {
            problems.push(format!(
                "the block's last key ({}) differs from its index key ({})",
                block_last
                    .as_deref()
                    .map_or_else(|| "none".to_string(), |k| KeyView::parse(k).to_string()),
                KeyView::parse(index_key)
            ));
        }
        if damage.is_some() {
            self.walk.blocks_damaged += 1;
        } else {
            self.walk.blocks_ok += 1;
        }
        for what in problems {
            self.problem(Some(handle.offset), format!("data block: {what}"));
        }
        self.walk.dump.blocks.push(view);
        Ok(())
    }

    /// Counts a valid entry.
    fn accept(&mut self, key: &[u8], parsed: &ParsedKey<'_>) {
        let w = &mut self.walk;
        let new_user_key = w
            .last_key
            .as_deref()
            .is_none_or(|last| key::user_key(last) != parsed.user_key);
        if new_user_key
            && let Some(filter) = &self.filter
            && !filter.may_contain(parsed.user_key)
        {
            w.filter_misses += 1;
            w.first_filter_miss
                .get_or_insert_with(|| parsed.user_key.to_vec());
        }
        w.entries += 1;
        w.deletions += u64::from(parsed.kind == ValueKind::Delete);
        w.sequences = Some(match w.sequences {
            Some((lo, hi)) => (lo.min(parsed.sequence), hi.max(parsed.sequence)),
            None => (parsed.sequence, parsed.sequence),
        });
        if w.first_key.is_none() {
            w.first_key = Some(key.to_vec());
        }
        let last = w.last_key.get_or_insert_with(Vec::new);
        last.clear();
        last.extend_from_slice(key);
    }

    /// Finds data blocks in `[from, to)` by their trailers' checksums, one after the
    /// other, and reads them.
    fn scan(&mut self, from: u64, to: u64, footer_ok: bool, sink: Sink<'_>) -> Result<()> {
        self.walk.dump.located_by_scan = true;
        let mut start = from;
        // Bytes of the file from `start`.
        let mut buf: Vec<u8> = Vec::new();
        let mut budget = SCAN_HASH_BUDGET;
        while start < to {
            let found = self.find_block_end(start, to, &mut buf, &mut budget)?;
            let Some(size) = found else {
                let what = format!(
                    "no data block found in bytes {start}..{to} ({} bytes)",
                    to - start
                );
                if budget == 0 {
                    self.problem(
                        Some(start),
                        format!("{what}: the scan gave up (too costly)"),
                    );
                } else if footer_ok {
                    self.problem(Some(start), format!("{what}: their entries are lost"));
                } else {
                    // Without the footer the data region's end is unknown: the filter,
                    // index and properties blocks follow the last data block.
                    self.note(
                        Some(start),
                        format!("{what}: the table's other blocks and footer, or damage"),
                    );
                }
                return Ok(());
            };
            let handle = BlockHandle {
                offset: start,
                size: size as u64,
            };
            let stored = Bytes::copy_from_slice(&buf[..size + TRAILER_LEN]);
            if let Ok(raw) = decode_block(&stored, start) {
                self.data_block_entries(handle, buf[size], &raw, None, sink)?;
            }
            buf.drain(..size + TRAILER_LEN);
            start += (size + TRAILER_LEN) as u64;
        }
        Ok(())
    }

    /// The stored size of the data block starting at `start`, if one can be found: the
    /// first length at which the trailer verifies and the content is a block of valid
    /// entries above every key read so far. `buf` holds the file's bytes from `start` and
    /// grows as needed.
    fn find_block_end(
        &self,
        start: u64,
        to: u64,
        buf: &mut Vec<u8>,
        budget: &mut u64,
    ) -> Result<Option<usize>> {
        let mut size = 1;
        loop {
            while size + TRAILER_LEN <= buf.len() {
                if self.block_ends_at(buf, start, size, budget) {
                    return Ok(Some(size));
                }
                if *budget == 0 {
                    return Ok(None);
                }
                size += 1;
            }
            let have = start + buf.len() as u64;
            if have >= to || buf.len() >= SCAN_WINDOW + TRAILER_LEN {
                return Ok(None);
            }
            let more = (to - have).min(SCAN_CHUNK as u64) as usize;
            let old = buf.len();
            buf.resize(old + more, 0);
            self.file
                .read_exact_at(&mut buf[old..], have)
                .map_err(|e| {
                    Error::io("reading a table to scan it", e)
                        .with_file(self.path)
                        .with_offset(have)
                })?;
        }
    }

    /// Whether `buf[..size]` is a data block's stored bytes followed by its trailer.
    fn block_ends_at(&self, buf: &[u8], start: u64, size: usize, budget: &mut u64) -> bool {
        let kind = buf[size];
        // Cheap structural tests first, so few lengths are hashed.
        let plausible = match kind {
            0 => {
                // A raw block ends with its restart count, after that many restart points,
                // the first of which is 0.
                size >= 8 && {
                    let count = u32::from_le_bytes([
                        buf[size - 4],
                        buf[size - 3],
                        buf[size - 2],
                        buf[size - 1],
                    ]) as usize;
                    count >= 1
                        && count <= (size - 4) / 4
                        && buf[size - 4 - 4 * count..size - 4 * count] == [0, 0, 0, 0]
                }
            }
            // A compressed block starts with its raw size, and is only stored compressed
            // when that made it smaller.
            1 | 2 => Decoder::new(&buf[..size])
                .varint()
                .is_some_and(|raw| raw <= MAX_BLOCK_SIZE && (size as u64) < raw),
            _ => false,
        };
        if !plausible {
            return false;
        }
        let cost = size as u64 + 1;
        if *budget < cost {
            *budget = 0;
            return false;
        }
        *budget -= cost;
        let stored =
            u32::from_le_bytes([buf[size + 1], buf[size + 2], buf[size + 3], buf[size + 4]]);
        if xxh3_64_with_seed(&buf[..=size], start) as u32 != stored {
            return false;
        }
        // The checksum matched: is it a block of entries that continue the table?
        let Ok(raw) = decode_block(&Bytes::copy_from_slice(&buf[..size + TRAILER_LEN]), start)
        else {
            return false;
        };
        let mut last = self.walk.last_key.clone();
        let mut ok = true;
        let mut any = false;
        let damage = decode_entries(&raw, |_, key, _| {
            any = true;
            ok &= ParsedKey::parse(key).is_some()
                && last.as_deref().is_none_or(|prev| key_less(prev, key));
            last = Some(key.to_vec());
        });
        ok && any && damage.is_none()
    }

    /// Compares what the blocks held with the properties block, and reports filter misses.
    fn finish(&mut self, footer: Option<&Footer>) {
        if self.walk.filter_misses > 0 {
            let first = self
                .walk
                .first_filter_miss
                .as_deref()
                .map(escape)
                .unwrap_or_default();
            let what = format!(
                "the filter rejects {} user keys the table holds (first: {first})",
                self.walk.filter_misses
            );
            self.problem(footer.map(|f| f.filter.offset), what);
        }
        let damaged = self.walk.blocks_damaged > 0 || self.walk.dump.located_by_scan;
        let Some(props) = self.walk.properties.clone() else {
            return;
        };
        if damaged {
            return; // the counts differ by what was lost; that damage is reported already
        }
        let w = &self.walk;
        let total_entries = w.entries + w.skipped;
        let data_size: u64 = w
            .dump
            .blocks
            .iter()
            .map(|b| b.size + TRAILER_LEN as u64)
            .sum();
        let mut mismatches = Vec::new();
        let mut compare = |what: &str, recorded: String, found: String| {
            if recorded != found {
                mismatches.push(format!(
                    "properties say {what} {recorded}, the blocks hold {found}"
                ));
            }
        };
        compare(
            "entries",
            props.entries.to_string(),
            total_entries.to_string(),
        );
        compare(
            "deletions",
            props.deletions.to_string(),
            w.deletions.to_string(),
        );
        compare(
            "data blocks",
            props.data_blocks.to_string(),
            w.dump.blocks.len().to_string(),
        );
        compare(
            "data size",
            props.data_size.to_string(),
            data_size.to_string(),
        );
        let key_text =
            |k: Option<&[u8]>| k.map_or_else(|| "none".into(), |k| KeyView::parse(k).to_string());
        compare(
            "smallest key",
            key_text(Some(&props.smallest_key)),
            key_text(w.first_key.as_deref()),
        );
        compare(
            "largest key",
            key_text(Some(&props.largest_key)),
            key_text(w.last_key.as_deref()),
        );
        if let Some((lo, hi)) = w.sequences {
            compare(
                "sequences",
                format!("{}..{}", props.min_sequence, props.max_sequence),
                format!("{lo}..{hi}"),
            );
        }
        let offset = footer.map(|f| f.properties.offset);
        for what in mismatches {
            self.problem(offset, what);
        }
    }
}

/// Where the data blocks end: at the first block the footer names.
fn data_end(footer: &Footer) -> u64 {
    let mut end = footer.index.offset.min(footer.properties.offset);
    if footer.filter != BlockHandle::default() {
        end = end.min(footer.filter.offset);
    }
    end
}

fn compression_name(kind: u8) -> &'static str {
    match kind {
        0 => "none",
        1 => "lz4",
        2 => "zstd",
        _ => "unknown",
    }
}

/// Decodes every entry of a (decompressed) block in order, calling `f(offset, key, value)`
/// with the entry's offset in the block; checks the restart array too. Returns the first
/// damage found (offset in the block, what); entries before it were handed on.
pub(crate) fn decode_entries(
    raw: &Bytes,
    mut f: impl FnMut(usize, &[u8], &[u8]),
) -> Option<(usize, String)> {
    if let Err(e) = Block::decode(raw.clone()) {
        return Some((raw.len().saturating_sub(4), e.message().to_string()));
    }
    // `Block::decode` checked the restart array: its count, and that its points are
    // ascending, start at 0 and lie before it.
    let count_at = raw.len() - 4;
    let count = u32::from_le_bytes([
        raw[count_at],
        raw[count_at + 1],
        raw[count_at + 2],
        raw[count_at + 3],
    ]) as usize;
    let end = count_at - 4 * count;
    let restart = |i: usize| {
        let at = end + 4 * i;
        u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]) as usize
    };
    let mut next_restart = 0;
    let mut key: Vec<u8> = Vec::new();
    let mut pos = 0;
    while pos < end {
        let at_restart = next_restart < count && restart(next_restart) == pos;
        if next_restart < count && restart(next_restart) < pos {
            return Some((
                restart(next_restart),
                "a restart point is not at an entry boundary".to_string(),
            ));
        }
        let mut d = Decoder::new(&raw[pos..end]);
        let header = (d.varint(), d.varint(), d.varint());
        let (Some(shared), Some(unshared), Some(value_len)) = header else {
            return Some((pos, "malformed entry header".to_string()));
        };
        let (Ok(shared), Ok(unshared), Ok(value_len)) = (
            usize::try_from(shared),
            usize::try_from(unshared),
            usize::try_from(value_len),
        ) else {
            return Some((pos, "entry lengths overflow".to_string()));
        };
        if at_restart && shared != 0 {
            return Some((pos, "entry at a restart point shares key bytes".to_string()));
        }
        if shared > key.len() {
            return Some((
                pos,
                "entry shares more key bytes than the previous key has".to_string(),
            ));
        }
        let key_start = end - d.remaining().len();
        let Some(value_end) = key_start
            .checked_add(unshared)
            .and_then(|v| v.checked_add(value_len))
            .filter(|&v| v <= end)
        else {
            return Some((pos, "entry runs past the end of the block".to_string()));
        };
        key.truncate(shared);
        key.extend_from_slice(&raw[key_start..key_start + unshared]);
        f(pos, &key, &raw[key_start + unshared..value_end]);
        if at_restart {
            next_restart += 1;
        }
        pos = value_end;
    }
    if next_restart < count && restart(next_restart) < end {
        return Some((
            restart(next_restart),
            "a restart point is not at an entry boundary".to_string(),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sst::block::BlockBuilder;

    fn ikey(user: &[u8], seq: u64) -> Vec<u8> {
        let mut k = Vec::new();
        key::append_internal_key(&mut k, user, seq, ValueKind::Put);
        k
    }

    #[test]
    fn decode_entries_reads_every_entry_with_its_offset_and_checks_restarts() {
        let mut b = BlockBuilder::new(3);
        for i in 0..10u32 {
            b.add(&ikey(format!("k{i:03}").as_bytes(), 5), &[i as u8; 3]);
        }
        let raw = Bytes::copy_from_slice(b.finish());
        let mut seen = Vec::new();
        assert_eq!(
            decode_entries(&raw, |at, k, v| seen.push((at, k.to_vec(), v.to_vec()))),
            None
        );
        assert_eq!(seen.len(), 10);
        assert_eq!(seen[0].0, 0);
        assert_eq!(seen[9].1, ikey(b"k009", 5));
        // A restart point moved inside an entry is damage.
        let mut bytes = raw.to_vec();
        let count_at = bytes.len() - 4;
        let second = count_at - 4 * 4 + 4; // restart points: 4 (10 entries, interval 3)
        bytes[second] += 1;
        let damaged = Bytes::from(bytes);
        assert!(decode_entries(&damaged, |_, _, _| {}).is_some());
    }

    #[test]
    fn decode_entries_never_panics_on_garbage() {
        let mut state = 0x1234_5678_9abc_def0u64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 32) as u8
                })
                .collect();
            let _ = decode_entries(&Bytes::from(bytes), |_, _, _| {});
        }
    }
}
