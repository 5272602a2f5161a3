//! `inspect`: the live version of a database, read from `CURRENT` and the manifest without
//! taking the lock and without writing anything, so it works on a database another process
//! has open.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::manifest_state::read_live_manifest;
use super::{Finding, KeyView, display_name};
use crate::db::files::{self, FileKind};
use crate::error::{Error, ErrorKind, Result};
use crate::fs::Fs;
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
        }
    }
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
    /// The live WALs (numbered from the log number on), oldest first.
    pub wals: Vec<FileView>,
    /// The newest OPTIONS file.
    pub options_file: Option<FileView>,
    /// Damage or contradictions met in the manifest: the version shown may not be the one
    /// the database would open with (run `check`).
    pub problems: Vec<Finding>,
    /// A torn last manifest record (ignored, as recovery ignores it).
    pub notes: Vec<Finding>,
}

/// Reads the live version of the database in `dir`: per level the tables with their
/// number, size, key range and sequence range; the live WALs; the manifest and the
/// counters it records. Takes no lock and writes nothing. Errors: `NotFound` for a
/// directory without a database, `Corruption` if `CURRENT` is malformed or names no
/// manifest, I/O failures.
pub fn inspect(fs: &dyn Fs, dir: &Path) -> Result<Inspection> {
    let names = list_database(fs, dir)?;
    let manifest = read_live_manifest(fs, dir)?;
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

    let mut wals = Vec::new();
    let mut options = None;
    for name in &names {
        match files::parse(name) {
            Some(FileKind::Wal(n)) if n >= manifest.log_number => {
                if let Some(size) = file_size(fs, &dir.join(name))? {
                    wals.push(FileView {
                        name: name.clone(),
                        size,
                    });
                }
            }
            Some(FileKind::Options(_)) => options = Some(name.clone()),
            _ => {}
        }
    }
    let options_file = match options {
        Some(name) => file_size(fs, &dir.join(&name))?.map(|size| FileView { name, size }),
        None => None,
    };
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
        problems: manifest.problems,
        notes: manifest.notes,
    })
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
                writeln!(
                    f,
                    "  {} ({} bytes): {} .. {}, sequences {}..{}",
                    t.name, t.size, t.smallest, t.largest, t.min_sequence, t.max_sequence
                )?;
            }
        }
        let wals: Vec<String> = self
            .wals
            .iter()
            .map(|w| format!("{} ({} bytes)", w.name, w.size))
            .collect();
        writeln!(
            f,
            "live WALs: {}",
            if wals.is_empty() {
                "none".to_string()
            } else {
                wals.join(", ")
            }
        )?;
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
