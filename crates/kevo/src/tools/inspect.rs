//! `inspect`: the live version of a database, read from `CURRENT` and the manifest without
//! taking the lock and without writing anything, so it works on a database another process
//! has open. Each live table's properties block and each live WAL are read too: what the
//! tables hold (entries, tombstones, age) and what the memtables will hold after recovery.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::log_walk::walk_log;
use super::manifest_state::read_live_manifest;
use super::{Finding, KeyView, display_name};
use crate::batch::WriteBatch;
use crate::db::files::{self, FileKind};
use crate::error::{Error, ErrorKind, Result};
use crate::fs::Fs;
use crate::key::ValueKind;
use crate::sst::table::read_properties;
use crate::version::edit::FileMeta;

/// A file and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileView {
    /// Its name in the database directory.
    pub name: String,
    /// Its length in bytes.
    pub size: u64,
}

/// A live table, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableView {
    /// Its level.
    pub level: usize,
    /// Its file number.
    pub number: u64,
    /// Its file name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its smallest internal key.
    pub smallest: KeyView,
    /// Its largest internal key.
    pub largest: KeyView,
    /// The smallest sequence number in it.
    pub min_sequence: u64,
    /// The largest sequence number in it.
    pub max_sequence: u64,
    /// Its entries (every version and tombstone), from its properties block. `None` where
    /// only the manifest was read (a manifest dump, a repair report) or the properties could
    /// not be (`inspect` says why in its problems or notes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    /// The tombstones among its entries, from its properties block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletions: Option<u64>,
    /// When it was written, in seconds since the Unix epoch, from its properties block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
}

impl TableView {
    pub(crate) fn new(level: usize, meta: &FileMeta) -> Self {
        TableView {
            level,
            number: meta.number,
            name: files::table_name(meta.number),
            size: meta.size,
            smallest: KeyView::parse(&meta.smallest),
            largest: KeyView::parse(&meta.largest),
            min_sequence: meta.min_sequence,
            max_sequence: meta.max_sequence,
            entries: None,
            deletions: None,
            created_at: None,
        }
    }

    /// The share of its entries that are tombstones, in [0, 1] (`None` when its properties
    /// are unknown; 0 for a table without entries).
    pub fn tombstone_share(&self) -> Option<f64> {
        match (self.entries, self.deletions) {
            (Some(0), Some(_)) => Some(0.0),
            (Some(entries), Some(deletions)) => {
                Some((deletions as f64 / entries as f64).clamp(0.0, 1.0))
            }
            _ => None,
        }
    }

    /// Its age in seconds at `now` (seconds since the Unix epoch), if its properties are
    /// known; 0 for a table stamped in the future (a clock that moved back).
    pub fn age_secs(&self, now: u64) -> Option<u64> {
        self.created_at.map(|at| now.saturating_sub(at))
    }
}

/// The writes a live WAL holds: what replaying it puts in a memtable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WalContents {
    /// Valid records (one write batch each).
    pub records: u64,
    /// Entries of the batches (puts and deletes).
    pub entries: u64,
    /// The deletes (tombstones) among them.
    pub deletions: u64,
    /// Key and value bytes of the entries.
    pub bytes: u64,
    /// The smallest sequence number of an entry (`None`: no entries).
    pub min_sequence: Option<u64>,
    /// The largest sequence number of an entry (`None`: no entries).
    pub max_sequence: Option<u64>,
}

/// A live WAL: a memtable's writes (the newest WAL's memtable takes new writes while the
/// database is open; older ones wait for flush). Recovery replays them all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WalView {
    /// Its name in the database directory.
    pub name: String,
    /// Its file number (the checksum seed of its records).
    pub number: u64,
    /// Its length in bytes.
    pub size: u64,
    /// What it holds, read record by record up to its length at the time; `None` if it
    /// could not be read (the problems say why).
    pub contents: Option<WalContents>,
}

/// One level of the live version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LevelView {
    /// The level number (0 is the newest).
    pub level: usize,
    /// Its tables in lookup order (L0: newest first; deeper: by key).
    pub tables: Vec<TableView>,
    /// Their total size.
    pub bytes: u64,
}

/// The live version of a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    /// The directory inspected.
    pub dir: String,
    /// The manifest `CURRENT` names.
    pub manifest: FileView,
    /// The last sequence number the manifest records (writes still only in a WAL may be
    /// newer).
    pub last_sequence: u64,
    /// The next file number the manifest records.
    pub next_file_number: u64,
    /// WALs numbered below this hold nothing that is not in a table.
    pub log_number: u64,
    /// L0 down to the deepest level holding a table.
    pub levels: Vec<LevelView>,
    /// The live WALs (numbered from the log number on), oldest first, with what each holds.
    pub wals: Vec<WalView>,
    /// The newest OPTIONS file.
    pub options_file: Option<FileView>,
    /// When the inspection was made, in seconds since the Unix epoch (tables' ages are
    /// counted to it).
    pub inspected_at: u64,
    /// Damage or contradictions met in the manifest, tables whose properties do not read,
    /// WALs damaged before valid records: the version shown may not be the one the
    /// database would open with (run `check`).
    pub problems: Vec<Finding>,
    /// A torn last manifest record or WAL tail (ignored, as recovery ignores it; on a
    /// database open elsewhere, possibly a write in progress), a table gone while we
    /// looked.
    pub notes: Vec<Finding>,
}

impl Inspection {
    /// Entries and tombstones in the tables whose properties were read.
    pub fn table_entries(&self) -> (u64, u64) {
        self.levels
            .iter()
            .flat_map(|l| &l.tables)
            .fold((0, 0), |(e, d), t| {
                (e + t.entries.unwrap_or(0), d + t.deletions.unwrap_or(0))
            })
    }
}

/// Reads the live version of the database in `dir`: per level the tables with their
/// number, size, key range and sequence range, and (from each table's properties block)
/// entries, tombstones and when it was written; the live WALs and the writes each holds;
/// the manifest and the counters it records. Takes no lock and writes nothing. A table or
/// WAL that does not read is a finding, not an error. Errors: `NotFound` for a directory
/// without a database, `Corruption` if `CURRENT` is malformed or names no manifest, I/O
/// failures.
pub fn inspect(fs: &dyn Fs, dir: &Path) -> Result<Inspection> {
    let names = list_database(fs, dir)?;
    let manifest = read_live_manifest(fs, dir)?;
    let mut problems = manifest.problems;
    let mut notes = manifest.notes;
    let mut levels: Vec<LevelView> = manifest
        .levels
        .iter()
        .enumerate()
        .map(|(level, files)| LevelView {
            level,
            tables: files.iter().map(|f| TableView::new(level, f)).collect(),
            bytes: files.iter().map(|f| f.size).sum(),
        })
        .collect();
    let deepest = levels
        .iter()
        .rposition(|l| !l.tables.is_empty())
        .unwrap_or(0);
    levels.truncate(deepest + 1);
    for table in levels.iter_mut().flat_map(|l| &mut l.tables) {
        match read_properties(fs, &dir.join(&table.name)) {
            Ok(p) => {
                table.entries = Some(p.entries);
                table.deletions = Some(p.deletions);
                table.created_at = Some(p.created_at);
            }
            Err(e) if is_not_found(&e) => notes.push(Finding::new(
                &table.name,
                None,
                "gone: removed while we looked (a database open elsewhere compacts), or \
                 missing (run kevo check)",
            )),
            Err(e) => problems.push(Finding::new(
                &table.name,
                e.offset(),
                format!("properties do not read: {}", cause(&e)),
            )),
        }
    }

    let mut wal_numbers = Vec::new();
    let mut options = None;
    for name in &names {
        match files::parse(name) {
            Some(FileKind::Wal(n)) if n >= manifest.log_number => wal_numbers.push(n),
            Some(FileKind::Options(_)) => options = Some(name.clone()),
            _ => {}
        }
    }
    wal_numbers.sort_unstable();
    let mut wals = Vec::new();
    for number in wal_numbers {
        if let Some(wal) = read_wal(fs, dir, number, &mut problems, &mut notes)? {
            wals.push(wal);
        }
    }
    let options_file = match options {
        Some(name) => file_size(fs, &dir.join(&name))?.map(|size| FileView { name, size }),
        None => None,
    };
    let inspected_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Inspection {
        dir: dir.display().to_string(),
        manifest: FileView {
            name: display_name(&manifest.path),
            size: manifest.log.size,
        },
        last_sequence: manifest.last_sequence,
        next_file_number: manifest.next_file_number,
        log_number: manifest.log_number,
        levels,
        wals,
        options_file,
        inspected_at,
        problems,
        notes,
    })
}

/// What failed and, for an I/O failure, the OS's reason (the finding names the file).
fn cause(e: &Error) -> String {
    match e.io_error() {
        Some(io) => format!("{}: {io}", e.message()),
        None => e.message().to_string(),
    }
}

fn is_not_found(e: &Error) -> bool {
    e.io_error()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
}

/// The WAL numbered `number` and the writes it holds, or `None` if it no longer exists
/// (flushed and removed by the database while we looked). Damage before valid records and
/// batches that do not decode are problems; damage at the end is a note (a torn tail, or
/// on a database open elsewhere a write in progress); a WAL that does not read at all is
/// a problem and has no contents.
fn read_wal(
    fs: &dyn Fs,
    dir: &Path,
    number: u64,
    problems: &mut Vec<Finding>,
    notes: &mut Vec<Finding>,
) -> Result<Option<WalView>> {
    let name = files::wal_name(number);
    let path = dir.join(&name);
    let Some(size) = file_size(fs, &path)? else {
        return Ok(None);
    };
    let mut contents = WalContents {
        records: 0,
        entries: 0,
        deletions: 0,
        bytes: 0,
        min_sequence: None,
        max_sequence: None,
    };
    let mut bad_batches = Vec::new();
    let walked = walk_log(fs, &path, number, &mut |offset, _, payload| {
        match WriteBatch::decode(payload) {
            Ok(batch) => {
                let base = batch.sequence();
                for (i, entry) in batch.iter().enumerate() {
                    let sequence = base.saturating_add(i as u64);
                    contents.min_sequence =
                        Some(contents.min_sequence.map_or(sequence, |m| m.min(sequence)));
                    contents.max_sequence =
                        Some(contents.max_sequence.map_or(sequence, |m| m.max(sequence)));
                    contents.entries += 1;
                    contents.deletions += u64::from(entry.kind == ValueKind::Delete);
                    contents.bytes += (entry.key.len() + entry.value.len()) as u64;
                }
            }
            Err(e) => bad_batches.push((offset, e.message().to_string())),
        }
        Ok(())
    });
    let walk = match walked {
        Ok(walk) => walk,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => {
            problems.push(Finding::new(
                &name,
                None,
                format!("does not read: {}", cause(&e)),
            ));
            return Ok(Some(WalView {
                name,
                number,
                size,
                contents: None,
            }));
        }
    };
    contents.records = walk.records;
    for (offset, what) in bad_batches {
        problems.push(Finding::new(
            &name,
            Some(offset),
            format!("record is not a valid write batch: {what}"),
        ));
    }
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
                    "{} bytes after the last valid record ({}): a torn tail recovery drops, \
                     or a write in progress",
                    walk.size.saturating_sub(d.offset),
                    d.reason
                ),
            ));
        }
    }
    Ok(Some(WalView {
        name,
        number,
        size: walk.size,
        contents: Some(contents),
    }))
}

/// The sorted names in `dir`, which must hold a database (a `CURRENT` file).
pub(crate) fn list_database(fs: &dyn Fs, dir: &Path) -> Result<Vec<String>> {
    let names = fs.list(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::new(ErrorKind::NotFound, "no such database directory").with_file(dir)
        } else {
            Error::io("listing the database directory", e).with_file(dir)
        }
    })?;
    if !names.iter().any(|n| n == crate::version::manifest::CURRENT) {
        return Err(Error::new(
            ErrorKind::NotFound,
            "no CURRENT file: not a kevo database (if CURRENT was lost, `kevo repair` rebuilds it)",
        )
        .with_file(dir));
    }
    Ok(names)
}

/// The length of `path`, or `None` if it no longer exists (removed by the database while
/// we looked).
pub(crate) fn file_size(fs: &dyn Fs, path: &Path) -> Result<Option<u64>> {
    let file = match fs.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("opening a file", e).with_file(path)),
    };
    file.len()
        .map(Some)
        .map_err(|e| Error::io("reading a file's length", e).with_file(path))
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "database {}", self.dir)?;
        writeln!(
            f,
            "manifest {} ({} bytes): last sequence {}, next file {}, log number {}",
            self.manifest.name,
            self.manifest.size,
            self.last_sequence,
            self.next_file_number,
            self.log_number
        )?;
        for level in self
            .levels
            .iter()
            .filter(|l| l.level == 0 || !l.tables.is_empty())
        {
            writeln!(
                f,
                "L{}: {} tables, {} bytes",
                level.level,
                level.tables.len(),
                level.bytes
            )?;
            for t in &level.tables {
                write!(
                    f,
                    "  {} ({} bytes): {} .. {}, sequences {}..{}",
                    t.name, t.size, t.smallest, t.largest, t.min_sequence, t.max_sequence
                )?;
                if let (Some(entries), Some(deletions)) = (t.entries, t.deletions) {
                    write!(f, ", {entries} entries ({deletions} tombstones)")?;
                }
                if let Some(age) = t.age_secs(self.inspected_at) {
                    write!(f, ", written {age} s ago")?;
                }
                writeln!(f)?;
            }
        }
        if self.wals.is_empty() {
            writeln!(f, "live WALs: none")?;
        } else {
            writeln!(f, "live WALs (the memtables after recovery):")?;
        }
        for w in &self.wals {
            write!(f, "  {} ({} bytes)", w.name, w.size)?;
            match &w.contents {
                Some(c) => writeln!(
                    f,
                    ": {} records, {} entries ({} tombstones), {} key and value bytes",
                    c.records, c.entries, c.deletions, c.bytes
                )?,
                None => writeln!(f, ": does not read")?,
            }
        }
        if let Some(o) = &self.options_file {
            writeln!(f, "options: {} ({} bytes)", o.name, o.size)?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        for p in &self.problems {
            writeln!(f, "problem: {p}")?;
        }
        Ok(())
    }
}
