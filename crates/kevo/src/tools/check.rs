//! `check`: verify every checksum and every cross-reference of a database's live files,
//! and report each problem with its file and offset.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::dump::write_findings;
use super::inspect::file_size;
use super::log_walk::walk_log;
use super::manifest_state::{ManifestState, read_live_manifest};
use super::table_walk::walk_table;
use super::{Finding, KeyView, batch_last_sequence, display_name, key_less};
use crate::batch::WriteBatch;
use crate::db::files::{self, FileKind};
use crate::error::{Error, ErrorKind, Result};
use crate::fs::{Fs, FsLock, read_file};
use crate::options::Options;
use crate::options_file::OptionsFile;
use crate::version::edit::FileMeta;
use crate::version::manifest::CURRENT;

/// OPTIONS files are small; a larger one is refused before it is read.
const OPTIONS_FILE_LIMIT: u64 = 1 << 20;

/// What `check` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The directory checked.
    pub dir: String,
    /// The manifest `CURRENT` names, if it could be read.
    pub manifest: Option<String>,
    /// Live tables checked.
    pub tables: u64,
    /// Their data blocks read.
    pub data_blocks: u64,
    /// Their entries read.
    pub entries: u64,
    /// Live WALs checked.
    pub wals: u64,
    /// Their valid records.
    pub wal_records: u64,
    /// Everything wrong, with file and offset. The database is healthy if this is empty.
    pub problems: Vec<Finding>,
    /// Things worth knowing that are not damage: a torn WAL tail (recovery drops it),
    /// leftover files the next open removes, the database being open elsewhere.
    pub notes: Vec<Finding>,
}

impl CheckReport {
    /// Whether no problem was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies the database in `dir`, reading every live file whole:
///
/// - `CURRENT` names a manifest that exists, and every record of the manifest verifies and
///   decodes, and the edits apply without contradiction (a torn last record is a note);
/// - every table the manifest names exists with the recorded size; every block of it
///   verifies (data, index, filter, properties, footer); its entries are valid internal
///   keys in strictly increasing order, each data block ends with its index key, the
///   filter accepts every key, the properties match the blocks, and its first and last keys
///   and sequence range are the manifest's;
/// - no two tables of a level below L0 overlap, and no table is deeper than the options
///   allow;
/// - every live WAL verifies and holds valid batches with increasing sequence numbers
///   (damage at the end of the last WAL is a torn tail: a note);
/// - the newest OPTIONS file verifies.
///
/// Nothing is written. If the database is not open it is locked while checked; if it is
/// open elsewhere the check goes on (files the database removes meanwhile may be reported
/// missing). Errors: `NotFound` for a directory without kevo files, I/O failures.
pub fn check(fs: &dyn Fs, dir: &Path) -> Result<CheckReport> {
    let names = fs.list(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::new(ErrorKind::NotFound, "no such database directory").with_file(dir)
        } else {
            Error::io("listing the database directory", e).with_file(dir)
        }
    })?;
    let ours: Vec<(String, FileKind)> = names
        .iter()
        .filter_map(|n| files::parse(n).map(|k| (n.clone(), k)))
        .collect();
    if !ours.iter().any(|(_, k)| *k != FileKind::Lock) {
        return Err(
            Error::new(ErrorKind::NotFound, "no kevo files: not a kevo database").with_file(dir),
        );
    }
    let mut checker = Checker {
        fs,
        dir,
        report: CheckReport {
            dir: dir.display().to_string(),
            manifest: None,
            tables: 0,
            data_blocks: 0,
            entries: 0,
            wals: 0,
            wal_records: 0,
            problems: Vec::new(),
            notes: Vec::new(),
        },
    };
    let _lock = checker.lock(&ours);
    let options = checker.options(&ours);
    let manifest = checker.manifest(&ours);
    match &manifest {
        Some(state) => {
            checker.live_tables(state, &options)?;
            for (name, kind) in &ours {
                match *kind {
                    FileKind::Table(n) if !state.tables().any(|(_, f)| f.number == n) => {
                        checker.note(name, "a table the manifest does not name (removed on open)");
                    }
                    FileKind::Wal(n) if n < state.log_number => {
                        checker.note(name, "an obsolete WAL (removed on open)");
                    }
                    _ => {}
                }
            }
        }
        None => {
            // Without a manifest, check every table there is, for what it holds.
            for (name, kind) in &ours {
                if let FileKind::Table(_) = kind {
                    checker.table(name, None)?;
                }
            }
        }
    }
    let log_number = manifest.as_ref().map_or(0, |m| m.log_number);
    let wals: Vec<(String, u64)> = ours
        .iter()
        .filter_map(|(name, k)| match *k {
            FileKind::Wal(n) if n >= log_number => Some((name.clone(), n)),
            _ => None,
        })
        .collect();
    checker.wals(&wals)?;
    for (name, kind) in &ours {
        if *kind == FileKind::Temp {
            checker.note(
                name,
                "a file left half-written by a crash (removed on open)",
            );
        }
    }
    let report = &mut checker.report;
    report
        .problems
        .sort_by(|a, b| a.file.cmp(&b.file).then(a.offset.cmp(&b.offset)));
    Ok(checker.report)
}

struct Checker<'a> {
    fs: &'a dyn Fs,
    dir: &'a Path,
    report: CheckReport,
}

impl Checker<'_> {
    fn problem(&mut self, file: &str, offset: Option<u64>, what: impl Into<String>) {
        self.report.problems.push(Finding::new(file, offset, what));
    }

    fn note(&mut self, file: &str, what: impl Into<String>) {
        self.report.notes.push(Finding::new(file, None, what));
    }

    /// Locks the database if nobody has it open, so no one opens it mid-check. The lock
    /// file is not created: checking writes nothing.
    fn lock(&mut self, ours: &[(String, FileKind)]) -> Option<Box<dyn FsLock>> {
        if !ours.iter().any(|(_, k)| *k == FileKind::Lock) {
            return None;
        }
        match self.fs.lock(&self.dir.join(files::LOCK)) {
            Ok(lock) => Some(lock),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.note(
                    files::LOCK,
                    "the database is open elsewhere: its files may change during the check \
                     (a file it removes meanwhile is reported missing)",
                );
                None
            }
            Err(e) => {
                self.note(files::LOCK, format!("could not take the lock: {e}"));
                None
            }
        }
    }

    /// Verifies the newest OPTIONS file; returns the options it records (or the defaults).
    fn options(&mut self, ours: &[(String, FileKind)]) -> Options {
        let mut options_files: Vec<(u64, &String)> = ours
            .iter()
            .filter_map(|(name, k)| match *k {
                FileKind::Options(n) => Some((n, name)),
                _ => None,
            })
            .collect();
        options_files.sort();
        let Some((_, newest)) = options_files.pop() else {
            self.note("OPTIONS", "no OPTIONS file (the next open writes one)");
            return Options::default();
        };
        for (_, old) in options_files {
            self.note(old, "an older OPTIONS file (removed on open)");
        }
        let path = self.dir.join(newest);
        let decoded = read_file(self.fs, &path, OPTIONS_FILE_LIMIT)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    Error::corruption("larger than any OPTIONS file kevo writes")
                } else {
                    Error::io("reading", e)
                }
            })
            .and_then(|bytes| OptionsFile::decode(&bytes))
            .and_then(|file| file.check_compatible().map(|()| file));
        match decoded {
            Ok(file) => file.options,
            Err(e) => {
                self.problem(newest, None, format!("OPTIONS file: {}", e.message()));
                Options::default()
            }
        }
    }

    /// Reads the manifest `CURRENT` names, recording its problems.
    fn manifest(&mut self, ours: &[(String, FileKind)]) -> Option<ManifestState> {
        if !ours.iter().any(|(_, k)| *k == FileKind::Current) {
            self.problem(
                CURRENT,
                None,
                "missing: no manifest is named (`kevo repair` rebuilds one)",
            );
            return None;
        }
        match read_live_manifest(self.fs, self.dir) {
            Ok(state) => {
                let name = display_name(&state.path);
                self.report.manifest = Some(name.clone());
                self.report.problems.extend(state.problems.iter().cloned());
                self.report.notes.extend(state.notes.iter().cloned());
                for (other, kind) in ours {
                    if matches!(kind, FileKind::Manifest(_)) && *other != name {
                        self.note(other, "a manifest CURRENT does not name (removed on open)");
                    }
                }
                Some(state)
            }
            Err(e) => {
                let file = e.file().map_or_else(|| CURRENT.to_string(), display_name);
                self.problem(&file, e.offset(), e.message().to_string());
                None
            }
        }
    }

    /// Checks every table the manifest names.
    fn live_tables(&mut self, state: &ManifestState, options: &Options) -> Result<()> {
        let tables: Vec<(usize, FileMeta)> = state
            .tables()
            .map(|(level, f)| (level, f.clone()))
            .collect();
        let manifest = display_name(&state.path);
        for (level, meta) in tables {
            let name = files::table_name(meta.number);
            if level >= options.max_levels {
                self.problem(
                    &manifest,
                    None,
                    format!(
                        "table {name} is in level {level}, deeper than max_levels ({}) allows",
                        options.max_levels
                    ),
                );
            }
            if meta.max_sequence > state.last_sequence {
                self.problem(
                    &manifest,
                    None,
                    format!(
                        "table {name} holds sequence {} above the manifest's last sequence {} \
                         (new writes would reuse sequence numbers)",
                        meta.max_sequence, state.last_sequence
                    ),
                );
            }
            self.table(&name, Some(&meta))?;
        }
        Ok(())
    }

    /// Checks one table, against the manifest's description of it if given.
    fn table(&mut self, name: &str, meta: Option<&FileMeta>) -> Result<()> {
        let path = self.dir.join(name);
        let Some(size) = file_size(self.fs, &path)? else {
            if meta.is_some() {
                self.problem(name, None, "missing: the manifest names it");
            }
            return Ok(());
        };
        self.report.tables += 1;
        if let Some(meta) = meta
            && size != meta.size
        {
            self.problem(
                name,
                None,
                format!("{size} bytes, but the manifest records {}", meta.size),
            );
        }
        let walk = match walk_table(self.fs, &path, false, &mut |_, _| Ok(())) {
            Ok(walk) => walk,
            Err(e)
                if e.io_error()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) =>
            {
                if meta.is_some() {
                    self.problem(name, None, "missing: the manifest names it");
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.report.data_blocks += walk.blocks_ok + walk.blocks_damaged;
        self.report.entries += walk.entries;
        let healthy = walk.healthy();
        self.report.problems.extend(walk.dump.problems);
        self.report.notes.extend(walk.dump.notes);
        let Some(meta) = meta else {
            return Ok(());
        };
        let (Some(first), Some(last)) = (&walk.first_key, &walk.last_key) else {
            if healthy {
                self.problem(name, None, "holds no entry");
            }
            return Ok(());
        };
        let show = |k: &[u8]| KeyView::parse(k).to_string();
        if healthy {
            if *first != meta.smallest || *last != meta.largest {
                self.problem(
                    name,
                    None,
                    format!(
                        "holds keys {} .. {}, but the manifest records {} .. {}",
                        show(first),
                        show(last),
                        show(&meta.smallest),
                        show(&meta.largest)
                    ),
                );
            }
            if walk.sequences != Some((meta.min_sequence, meta.max_sequence)) {
                let (lo, hi) = walk.sequences.unwrap_or_default();
                self.problem(
                    name,
                    None,
                    format!(
                        "holds sequences {lo}..{hi}, but the manifest records {}..{}",
                        meta.min_sequence, meta.max_sequence
                    ),
                );
            }
        } else if key_less(first, &meta.smallest) || key_less(&meta.largest, last) {
            // What could be read must still lie inside the recorded range.
            self.problem(
                name,
                None,
                format!(
                    "holds keys {} .. {} outside the manifest's range {} .. {}",
                    show(first),
                    show(last),
                    show(&meta.smallest),
                    show(&meta.largest)
                ),
            );
        }
        Ok(())
    }

    /// Checks the live WALs, oldest first, as recovery replays them.
    fn wals(&mut self, wals: &[(String, u64)]) -> Result<()> {
        let mut last_sequence = 0u64;
        let mut sizes = Vec::new();
        for (name, _) in wals {
            sizes.push(file_size(self.fs, &self.dir.join(name))?);
        }
        for (i, (name, number)) in wals.iter().enumerate() {
            if sizes[i].is_none() {
                continue; // removed since the listing (the database is open elsewhere)
            }
            let mut problems = Vec::new();
            let walk = walk_log(
                self.fs,
                &self.dir.join(name),
                *number,
                &mut |offset, _, payload| {
                    match WriteBatch::decode(payload) {
                        Ok(batch) if batch.is_empty() => {}
                        Ok(batch) => match batch_last_sequence(batch.sequence(), batch.len()) {
                            None => problems.push((
                                offset,
                                format!(
                                    "batch at sequence {} with {} entries is outside the sequence range",
                                    batch.sequence(),
                                    batch.len()
                                ),
                            )),
                            Some(last) => {
                                if batch.sequence() <= last_sequence {
                                    problems.push((
                                        offset,
                                        format!(
                                            "batch at sequence {} does not follow sequence {last_sequence}",
                                            batch.sequence()
                                        ),
                                    ));
                                }
                                last_sequence = last;
                            }
                        },
                        Err(e) => problems.push((
                            offset,
                            format!("record is not a valid write batch: {}", e.message()),
                        )),
                    }
                    Ok(())
                },
            );
            let walk = match walk {
                Ok(walk) => walk,
                Err(e)
                    if e.io_error()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.report.wals += 1;
            self.report.wal_records += walk.records;
            for (offset, what) in problems {
                self.problem(name, Some(offset), what);
            }
            let later_data = sizes[i + 1..].iter().any(|s| s.is_some_and(|s| s > 0));
            for d in &walk.damage {
                if d.followed {
                    self.problem(
                        name,
                        Some(d.offset),
                        format!("damaged record ({}) before valid ones", d.reason),
                    );
                } else if later_data {
                    self.problem(
                        name,
                        Some(d.offset),
                        format!(
                            "damaged tail ({}) and a later WAL holds writes: recovery refuses this",
                            d.reason
                        ),
                    );
                } else {
                    self.report.notes.push(Finding::new(
                        name,
                        Some(d.offset),
                        format!(
                            "torn tail ({}): {} bytes after the last whole record, dropped on open",
                            d.reason,
                            walk.size.saturating_sub(d.offset)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "checked {}: manifest {}, {} tables ({} data blocks, {} entries), {} WALs ({} records)",
            self.dir,
            self.manifest.as_deref().unwrap_or("unreadable"),
            self.tables,
            self.data_blocks,
            self.entries,
            self.wals,
            self.wal_records
        )?;
        write_findings(f, &self.problems, &self.notes)
    }
}
