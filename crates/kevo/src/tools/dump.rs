//! `dump_table`, `dump_wal`, `dump_manifest`: one file decoded entry by entry, for people
//! (`Display`) and programs (`serde`), with every problem found and its offset.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::inspect::TableView;
use super::log_walk::{log_number, walk_log};
use super::manifest_state::read_manifest;
use super::table_walk::walk_table;
use super::{
    EntryKind, Finding, KeyView, batch_last_sequence, display_name, preview, serialize_escaped,
};
use crate::batch::WriteBatch;
use crate::error::Result;
use crate::fs::Fs;
use crate::key::ValueKind;
use crate::sst::properties::TableProperties;
use crate::version::edit::VersionEdit;

/// Where a block lies: its offset and stored size (without its 5-byte trailer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HandleView {
    /// File offset of the block's first byte.
    pub offset: u64,
    /// Its stored size, trailer excluded.
    pub size: u64,
}

impl fmt::Display for HandleView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.offset, self.size)
    }
}

/// A table's footer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FooterView {
    /// Where the footer starts.
    pub offset: u64,
    /// The filter block, if the table has one.
    pub filter: Option<HandleView>,
    /// The index block.
    pub index: HandleView,
    /// The properties block.
    pub properties: HandleView,
    /// The table format version.
    pub format_version: u32,
}

/// A table's properties block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[allow(missing_docs)] // the fields of `TableProperties`, by the same names
pub struct PropertiesView {
    pub entries: u64,
    pub deletions: u64,
    pub data_blocks: u64,
    pub raw_key_bytes: u64,
    pub raw_value_bytes: u64,
    pub data_size: u64,
    pub index_size: u64,
    pub filter_size: u64,
    pub smallest_key: KeyView,
    pub largest_key: KeyView,
    pub min_sequence: u64,
    pub max_sequence: u64,
    pub compression: String,
    pub filter_policy: String,
    pub created_at: u64,
}

impl From<&TableProperties> for PropertiesView {
    fn from(p: &TableProperties) -> Self {
        PropertiesView {
            entries: p.entries,
            deletions: p.deletions,
            data_blocks: p.data_blocks,
            raw_key_bytes: p.raw_key_bytes,
            raw_value_bytes: p.raw_value_bytes,
            data_size: p.data_size,
            index_size: p.index_size,
            filter_size: p.filter_size,
            smallest_key: KeyView::parse(&p.smallest_key),
            largest_key: KeyView::parse(&p.largest_key),
            min_sequence: p.min_sequence,
            max_sequence: p.max_sequence,
            compression: p.compression.clone(),
            filter_policy: p.filter_policy.clone(),
            created_at: p.created_at,
        }
    }
}

/// A table's bloom filter block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilterView {
    /// Where the block starts.
    pub offset: u64,
    /// Its stored size.
    pub size: u64,
    /// Its 64-byte blocks.
    pub num_blocks: u32,
    /// Bits probed per key.
    pub num_probes: u32,
}

/// One entry of a table's index: a data block's last key and where the block is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexEntryView {
    /// The last key of the block.
    pub key: KeyView,
    /// The block (`None` if the handle does not decode).
    pub block: Option<HandleView>,
}

/// One entry of a data block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryView {
    /// Its offset inside the (decompressed) block.
    pub offset: u64,
    /// Its internal key.
    pub key: KeyView,
    /// Its value.
    #[serde(serialize_with = "serialize_escaped")]
    pub value: Vec<u8>,
}

/// One data block of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockView {
    /// Where it starts.
    pub offset: u64,
    /// Its stored size, trailer excluded.
    pub size: u64,
    /// Its compression (`none`, `lz4`, `zstd`); `None` if the block could not be read.
    pub compression: Option<String>,
    /// Entries decoded.
    pub entry_count: u64,
    /// The entries (kept by `dump_table`; empty in reports that only count).
    pub entries: Vec<EntryView>,
    /// What is wrong with the block, if anything.
    pub error: Option<String>,
}

/// A table, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDump {
    /// The path dumped.
    pub file: String,
    /// Its length.
    pub file_size: u64,
    /// The footer, if it verifies.
    pub footer: Option<FooterView>,
    /// The properties, if they verify.
    pub properties: Option<PropertiesView>,
    /// The filter, if the table has one and it verifies.
    pub filter: Option<FilterView>,
    /// The index entries (empty if the index does not verify).
    pub index: Vec<IndexEntryView>,
    /// Whether data blocks were found by scanning for their trailers (the footer or the
    /// index is damaged) rather than through the index.
    pub located_by_scan: bool,
    /// The data blocks, in file order.
    pub blocks: Vec<BlockView>,
    /// What is wrong, with offsets. Empty for a healthy table.
    pub problems: Vec<Finding>,
    /// Things worth knowing that are not damage.
    pub notes: Vec<Finding>,
}

impl TableDump {
    /// Whether no problem was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Decodes the table at `path`: footer, properties, filter, index and every data block
/// with its entries. Every checksum is verified; a damaged block is reported and the walk
/// goes on with the next (found through the index, or by scanning when the footer or index
/// is damaged). Errors are I/O failures only (a missing file, for one).
pub fn dump_table(fs: &dyn Fs, path: &Path) -> Result<TableDump> {
    Ok(walk_table(fs, path, true, &mut |_, _| Ok(()))?.dump)
}

/// One entry of a write batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchEntryView {
    /// The user key, the sequence number the entry gets, and put or delete.
    pub key: KeyView,
    /// The value (empty for a delete).
    #[serde(serialize_with = "serialize_escaped")]
    pub value: Vec<u8>,
}

/// A write batch, as a WAL record holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchView {
    /// The batch's base sequence number: entry `i` gets `sequence + i`.
    pub sequence: u64,
    /// Its entries.
    pub entries: Vec<BatchEntryView>,
}

/// One record of a WAL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordView {
    /// Where its first fragment starts.
    pub offset: u64,
    /// Its payload's length.
    pub length: u64,
    /// The batch it holds, if it decodes.
    pub batch: Option<BatchView>,
    /// Why the payload is not a valid batch, if it is not.
    pub error: Option<String>,
}

/// A WAL file, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WalDump {
    /// The path dumped.
    pub file: String,
    /// The log number (the checksum seed).
    pub log_number: u64,
    /// The file's length.
    pub size: u64,
    /// Every valid record, in order.
    pub records: Vec<RecordView>,
    /// Damage before valid records, undecodable batches, sequence numbers going back.
    pub problems: Vec<Finding>,
    /// A torn tail (damage with no valid record after it: a crash cut the last write).
    pub notes: Vec<Finding>,
}

impl WalDump {
    /// Whether no problem was found (a torn tail is not one).
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Decodes the WAL at `path`, taking its log number (the checksum seed) from its name
/// (`NNNNNN.wal`).
pub fn dump_wal(fs: &dyn Fs, path: &Path) -> Result<WalDump> {
    dump_wal_numbered(fs, path, log_number(path, false)?)
}

/// Decodes the WAL at `path` whose log number is `number`: every record and its batch.
pub fn dump_wal_numbered(fs: &dyn Fs, path: &Path, number: u64) -> Result<WalDump> {
    let name = display_name(path);
    let mut records = Vec::new();
    let mut problems = Vec::new();
    let mut last_sequence: Option<u64> = None;
    let walk = walk_log(fs, path, number, &mut |offset, _, payload| {
        let mut record = RecordView {
            offset,
            length: payload.len() as u64,
            batch: None,
            error: None,
        };
        match WriteBatch::decode(payload) {
            Ok(batch) => {
                let base = batch.sequence();
                match batch_last_sequence(base, batch.len()) {
                    _ if batch.is_empty() => {}
                    None => problems.push(Finding::new(
                        &name,
                        Some(offset),
                        format!(
                            "batch at sequence {base} with {} entries is outside the sequence range",
                            batch.len()
                        ),
                    )),
                    Some(end) => {
                        if let Some(last) = last_sequence.filter(|&last| base <= last) {
                            problems.push(Finding::new(
                                &name,
                                Some(offset),
                                format!("batch at sequence {base} does not follow sequence {last}"),
                            ));
                        }
                        last_sequence = Some(end);
                    }
                }
                record.batch = Some(batch_view(&batch));
            }
            Err(e) => {
                problems.push(Finding::new(
                    &name,
                    Some(offset),
                    format!("record is not a valid write batch: {}", e.message()),
                ));
                record.error = Some(e.message().to_string());
            }
        }
        records.push(record);
        Ok(())
    })?;
    let mut notes = Vec::new();
    for d in &walk.damage {
        if d.followed {
            problems.push(Finding::new(
                &name,
                Some(d.offset),
                format!("damaged record ({}) before valid ones", d.reason),
            ));
        } else {
            notes.push(Finding::new(
                &name,
                Some(d.offset),
                format!(
                    "torn tail ({}): {} bytes after the last valid record",
                    d.reason,
                    walk.size.saturating_sub(d.offset)
                ),
            ));
        }
    }
    problems.sort_by_key(|f| f.offset);
    Ok(WalDump {
        file: path.display().to_string(),
        log_number: number,
        size: walk.size,
        records,
        problems,
        notes,
    })
}

fn batch_view(batch: &WriteBatch) -> BatchView {
    let base = batch.sequence();
    BatchView {
        sequence: base,
        entries: batch
            .iter()
            .enumerate()
            .map(|(i, e)| BatchEntryView {
                key: KeyView {
                    user_key: e.key.to_vec(),
                    sequence: base.saturating_add(i as u64),
                    kind: match e.kind {
                        ValueKind::Put => EntryKind::Put,
                        ValueKind::Delete => EntryKind::Delete,
                    },
                },
                value: e.value.to_vec(),
            })
            .collect(),
    }
}

/// A table an edit removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletedTableView {
    /// Its level.
    pub level: usize,
    /// Its file number.
    pub number: u64,
}

/// One version edit of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EditView {
    /// Where its record starts.
    pub offset: u64,
    /// Why the record is not a valid edit, if it is not (the fields below are then empty).
    pub error: Option<String>,
    /// The key order (the first edit, a snapshot, records it).
    pub key_order: Option<String>,
    /// WALs numbered below this hold nothing that is not in a table.
    pub log_number: Option<u64>,
    /// The next file number to hand out.
    pub next_file_number: Option<u64>,
    /// The last sequence number written.
    pub last_sequence: Option<u64>,
    /// Tables removed.
    pub deleted: Vec<DeletedTableView>,
    /// Tables added.
    pub added: Vec<TableView>,
}

impl EditView {
    fn new(offset: u64, edit: &std::result::Result<VersionEdit, String>) -> Self {
        match edit {
            Ok(edit) => EditView {
                offset,
                error: None,
                key_order: edit.key_order.clone(),
                log_number: edit.log_number,
                next_file_number: edit.next_file_number,
                last_sequence: edit.last_sequence,
                deleted: edit
                    .deleted_files
                    .iter()
                    .map(|&(level, number)| DeletedTableView { level, number })
                    .collect(),
                added: edit
                    .new_files
                    .iter()
                    .map(|(level, f)| TableView::new(*level, f))
                    .collect(),
            },
            Err(what) => EditView {
                offset,
                error: Some(what.clone()),
                key_order: None,
                log_number: None,
                next_file_number: None,
                last_sequence: None,
                deleted: Vec::new(),
                added: Vec::new(),
            },
        }
    }
}

/// A manifest, decoded: every edit, and the state they add up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestDump {
    /// The path dumped.
    pub file: String,
    /// The manifest's file number (the checksum seed).
    pub number: u64,
    /// The file's length.
    pub size: u64,
    /// Every record, in order.
    pub edits: Vec<EditView>,
    /// The live tables after every edit, by level.
    pub live: Vec<TableView>,
    /// The counters after every edit.
    pub log_number: u64,
    /// See [`EditView::next_file_number`].
    pub next_file_number: u64,
    /// See [`EditView::last_sequence`].
    pub last_sequence: u64,
    /// Damage, undecodable edits, contradictions (a table deleted that is not there, added
    /// twice, overlapping tables below L0).
    pub problems: Vec<Finding>,
    /// A torn last record.
    pub notes: Vec<Finding>,
}

impl ManifestDump {
    /// Whether no problem was found (a torn last record is not one).
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Decodes the manifest at `path`, taking its number (the checksum seed) from its name
/// (`MANIFEST-NNNNNN`).
pub fn dump_manifest(fs: &dyn Fs, path: &Path) -> Result<ManifestDump> {
    dump_manifest_numbered(fs, path, log_number(path, true)?)
}

/// Decodes the manifest at `path` whose file number is `number`: every edit, applied in
/// order as recovery applies them.
pub fn dump_manifest_numbered(fs: &dyn Fs, path: &Path, number: u64) -> Result<ManifestDump> {
    let state = read_manifest(fs, path, number)?;
    let mut problems = state.problems.clone();
    problems.sort_by_key(|f| f.offset);
    Ok(ManifestDump {
        file: path.display().to_string(),
        number,
        size: state.log.size,
        edits: state
            .edits
            .iter()
            .map(|(offset, edit)| EditView::new(*offset, edit))
            .collect(),
        live: state
            .tables()
            .map(|(level, f)| TableView::new(level, f))
            .collect(),
        log_number: state.log_number,
        next_file_number: state.next_file_number,
        last_sequence: state.last_sequence,
        problems,
        notes: state.notes.clone(),
    })
}

/// Writes the problems and notes sections of a report.
pub(super) fn write_findings(
    f: &mut fmt::Formatter<'_>,
    problems: &[Finding],
    notes: &[Finding],
) -> fmt::Result {
    for note in notes {
        writeln!(f, "note: {note}")?;
    }
    if problems.is_empty() {
        writeln!(f, "no problems found")
    } else {
        writeln!(f, "{} problem(s):", problems.len())?;
        for p in problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TableDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = f.alternate();
        writeln!(f, "table {}: {} bytes", self.file, self.file_size)?;
        match &self.footer {
            Some(footer) => {
                write!(f, "footer at {}: ", footer.offset)?;
                if let Some(filter) = footer.filter {
                    write!(f, "filter {filter}, ")?;
                }
                writeln!(
                    f,
                    "index {}, properties {}, format version {}",
                    footer.index, footer.properties, footer.format_version
                )?;
            }
            None => writeln!(f, "footer: unreadable")?,
        }
        if let Some(p) = &self.properties {
            writeln!(
                f,
                "properties: {} entries ({} deletions) in {} data blocks; key bytes {}, value bytes {}; \
                 data {} bytes, index {}, filter {}",
                p.entries,
                p.deletions,
                p.data_blocks,
                p.raw_key_bytes,
                p.raw_value_bytes,
                p.data_size,
                p.index_size,
                p.filter_size
            )?;
            writeln!(
                f,
                "  keys {} .. {}, sequences {}..{}, compression {}, filter {}, created {}",
                p.smallest_key,
                p.largest_key,
                p.min_sequence,
                p.max_sequence,
                p.compression,
                p.filter_policy,
                p.created_at
            )?;
        }
        if let Some(filter) = &self.filter {
            writeln!(
                f,
                "filter at {}: {} blocks of 64 bytes, {} probes",
                filter.offset, filter.num_blocks, filter.num_probes
            )?;
        }
        writeln!(f, "index: {} entries", self.index.len())?;
        for entry in &self.index {
            match entry.block {
                Some(block) => writeln!(f, "  {} -> block {block}", entry.key)?,
                None => writeln!(f, "  {} -> malformed handle", entry.key)?,
            }
        }
        if self.located_by_scan {
            writeln!(f, "data blocks located by scanning for their trailers")?;
        }
        for block in &self.blocks {
            match &block.compression {
                Some(compression) => writeln!(
                    f,
                    "data block at {} ({} bytes, {compression}): {} entries",
                    block.offset, block.size, block.entry_count
                )?,
                None => writeln!(f, "data block at {} ({} bytes)", block.offset, block.size)?,
            }
            for e in &block.entries {
                writeln!(
                    f,
                    "  {:>5}  {} = {}",
                    e.offset,
                    e.key,
                    preview(&e.value, full)
                )?;
            }
            if let Some(error) = &block.error {
                writeln!(f, "  DAMAGED: {error}")?;
            }
        }
        write_findings(f, &self.problems, &self.notes)
    }
}

impl fmt::Display for WalDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = f.alternate();
        writeln!(
            f,
            "WAL {} (log number {}): {} bytes, {} records",
            self.file,
            self.log_number,
            self.size,
            self.records.len()
        )?;
        for r in &self.records {
            match &r.batch {
                Some(batch) => {
                    writeln!(
                        f,
                        "record at {} ({} bytes): batch at sequence {}, {} entries",
                        r.offset,
                        r.length,
                        batch.sequence,
                        batch.entries.len()
                    )?;
                    for e in &batch.entries {
                        match e.key.kind {
                            EntryKind::Put => {
                                writeln!(f, "  {} = {}", e.key, preview(&e.value, full))?
                            }
                            _ => writeln!(f, "  {}", e.key)?,
                        }
                    }
                }
                None => writeln!(
                    f,
                    "record at {} ({} bytes): INVALID: {}",
                    r.offset,
                    r.length,
                    r.error.as_deref().unwrap_or("")
                )?,
            }
        }
        write_findings(f, &self.problems, &self.notes)
    }
}

impl fmt::Display for TableView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "L{} {} ({} bytes): {} .. {}, sequences {}..{}",
            self.level,
            self.name,
            self.size,
            self.smallest,
            self.largest,
            self.min_sequence,
            self.max_sequence
        )
    }
}

impl fmt::Display for ManifestDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "manifest {} (number {}): {} bytes, {} edits",
            self.file,
            self.number,
            self.size,
            self.edits.len()
        )?;
        for edit in &self.edits {
            if let Some(error) = &edit.error {
                writeln!(f, "edit at {}: INVALID: {error}", edit.offset)?;
                continue;
            }
            let mut fields = Vec::new();
            if let Some(order) = &edit.key_order {
                fields.push(format!("key order {order}"));
            }
            if let Some(n) = edit.log_number {
                fields.push(format!("log number {n}"));
            }
            if let Some(n) = edit.next_file_number {
                fields.push(format!("next file {n}"));
            }
            if let Some(n) = edit.last_sequence {
                fields.push(format!("last sequence {n}"));
            }
            writeln!(f, "edit at {}: {}", edit.offset, fields.join(", "))?;
            for d in &edit.deleted {
                writeln!(f, "  - L{} {:06}.sst", d.level, d.number)?;
            }
            for t in &edit.added {
                writeln!(f, "  + {t}")?;
            }
        }
        writeln!(
            f,
            "state: {} live tables, log number {}, next file {}, last sequence {}",
            self.live.len(),
            self.log_number,
            self.next_file_number,
            self.last_sequence
        )?;
        for t in &self.live {
            writeln!(f, "  {t}")?;
        }
        write_findings(f, &self.problems, &self.notes)
    }
}
