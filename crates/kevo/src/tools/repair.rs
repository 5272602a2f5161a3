//! `repair`: salvage what is readable into a consistent database, as LevelDB's `RepairDB`
//! does, keeping every original file.
//!
//! Two ways, by whether the manifest can be trusted:
//!
//! - **The manifest is sound** (every record verifies and decodes, the edits agree): its
//!   live tables keep their levels. A table that verifies whole, with the size and key
//!   range the manifest records, is kept as it is; any other is rewritten from the entries
//!   of its readable blocks (within its recorded key range, so it still fits its level),
//!   or dropped if nothing is readable. The live WALs are replayed, tolerating damage,
//!   into one new L0 table: their writes are newer than every table's.
//! - **The manifest is damaged, missing or contradictory**: which tables are live, and at
//!   which level, is unknown, and tables of different levels cannot simply be stacked in
//!   L0 (a lookup takes the first L0 table holding a key, and an older level's table can
//!   hold a newer sequence range than a younger one). So every table in the directory
//!   (damaged ones through the entries of their readable blocks) and every WAL are merged
//!   into one sorted run of new tables in L1, keeping every version.
//!
//! Either way a fresh manifest names the result, with the last sequence the largest seen
//! and a log number past every WAL, and `CURRENT` is pointed at it (each synced). Only
//! then are the replaced files (damaged tables, WALs, old manifests, a damaged OPTIONS
//! file, tables no manifest named) moved into `lost/`: until `CURRENT` changes, the
//! directory holds the old database untouched plus new files the next open would ignore.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::inspect::TableView;
use super::log_walk::walk_log;
use super::manifest_state::{ManifestState, read_live_manifest};
use super::table_walk::{TableWalk, walk_table};
use super::{Finding, LOST_DIR, batch_last_sequence, display_name, key_less};
use crate::batch::WriteBatch;
use crate::compaction::table_meta;
use crate::db::files::{self, FileKind};
use crate::error::{Error, ErrorKind, Result};
use crate::fs::{Fs, read_file};
use crate::iter::InternalIterator;
use crate::iter::merge::{MergingIter, Source};
use crate::key::{self, ParsedKey};
use crate::memtable::{MemTable, MemTableIter};
use crate::options::Options;
use crate::options_file::{KEY_ORDER, OptionsFile};
use crate::sst::builder::{TableBuilder, TableInfo, TableOptions};
use crate::sst::table::Table;
use crate::version::edit::{FileMeta, VersionEdit};
use crate::version::manifest::{ManifestWriter, set_current};
use crate::version::set::Version;

/// OPTIONS files are small; a larger one is refused before it is read.
const OPTIONS_FILE_LIMIT: u64 = 1 << 20;
/// The level the merged run goes to when the manifest cannot be used: valid under every
/// `max_levels` (at least 2) and both compaction styles; leveled compaction moves its
/// tables further down without rewriting them.
const MERGED_LEVEL: usize = 1;

/// What repair did with a table it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableAction {
    /// Whole and as the manifest records it: kept in place.
    Kept,
    /// Damaged (or not as recorded): its readable entries were copied into a new table.
    Rewritten,
    /// Merged with the others into the new sorted run (the manifest was not usable).
    Merged,
    /// Nothing of it could be read, or it was missing: dropped.
    Lost,
    /// Not live (the manifest does not name it): left out, moved aside.
    Ignored,
}

/// One table repair found, and what it did with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableOutcome {
    /// Its file name.
    pub name: String,
    /// Its level in the manifest, if the manifest was used.
    pub level: Option<usize>,
    /// What repair did.
    pub action: TableAction,
    /// Entries carried into the repaired database.
    pub entries: u64,
    /// Entries lost, when known (the properties block gives the table's count).
    pub entries_lost: Option<u64>,
    /// Data blocks that could not be read.
    pub blocks_lost: u64,
    /// Why, for anything but a kept table.
    pub reason: Option<String>,
}

/// One WAL repair found, and what it recovered from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WalOutcome {
    /// Its file name.
    pub name: String,
    /// Whether it was replayed (else it was obsolete: every write in it is in a table).
    pub replayed: bool,
    /// Valid records (write batches) recovered.
    pub records: u64,
    /// Entries of those batches.
    pub entries: u64,
    /// Damaged regions skipped (each may have held one or more records).
    pub damaged_regions: u64,
    /// Records whose checksum verified but whose batch did not decode.
    pub invalid_records: u64,
}

/// What `repair` found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// The directory repaired.
    pub dir: String,
    /// The manifest whose live tables were kept, if it was sound.
    pub manifest_used: Option<String>,
    /// Why the manifest was not used, if it was not.
    pub manifest_problem: Option<String>,
    /// Every table found.
    pub tables: Vec<TableOutcome>,
    /// Every WAL found.
    pub wals: Vec<WalOutcome>,
    /// The manifest written.
    pub new_manifest: String,
    /// The tables written (salvaged, replayed or merged).
    pub new_tables: Vec<TableView>,
    /// Tables of the repaired database.
    pub live_tables: u64,
    /// Entries of the repaired database's tables.
    pub entries: u64,
    /// Entries known lost (damaged blocks of tables whose properties give their count).
    pub entries_lost: u64,
    /// Data blocks that could not be read.
    pub blocks_lost: u64,
    /// Tables dropped whole (missing, or nothing readable).
    pub tables_lost: u64,
    /// WAL records recovered.
    pub wal_records: u64,
    /// WAL damage skipped: damaged regions plus undecodable records.
    pub wal_damage: u64,
    /// Versions found twice (the same key and sequence in two files) and written once;
    /// `conflicts` of them had different values (the first file's was kept).
    pub duplicates: u64,
    /// See `duplicates`.
    pub conflicts: u64,
    /// The last sequence number of the repaired database.
    pub last_sequence: u64,
    /// Files moved into `lost/` (under these names there).
    pub moved_to_lost: Vec<String>,
    /// The damage found, file by file.
    pub findings: Vec<Finding>,
}

/// Rebuilds the database in `dir` from what is readable (see the module documentation),
/// so that `Db::open` succeeds and `check` passes. Takes the lock: `Concurrency` if the
/// database is open. `NotFound` for a directory without kevo files. An I/O failure before
/// the new manifest is in place leaves the database as it was (new tables already written
/// are removed, best effort).
pub fn repair(fs: &dyn Fs, dir: &Path) -> Result<RepairReport> {
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
    if !ours.iter().any(|(_, k)| {
        matches!(
            k,
            FileKind::Current | FileKind::Manifest(_) | FileKind::Table(_) | FileKind::Wal(_)
        )
    }) {
        return Err(
            Error::new(ErrorKind::NotFound, "no kevo files: not a kevo database").with_file(dir),
        );
    }
    let _lock =
        crate::db::open::take_lock(fs, dir, "the database is open; close it before repairing")?;
    let mut repairer = Repairer::new(fs, dir, &names);
    repairer.read_options(&ours);
    let manifest = repairer.read_manifest();
    let result = match &manifest {
        Some(state) => repairer.keep_live(state, &ours),
        None => repairer.merge_all(&ours),
    }
    .and_then(|()| repairer.commit());
    if let Err(e) = result {
        // Unless `CURRENT` may already name the new manifest, the old database is
        // untouched: remove what this attempt wrote. (If it may, both manifests' files are
        // all still there, whichever `CURRENT` names.)
        if !repairer.current_may_have_changed {
            for number in &repairer.created {
                let _ = fs.remove(&dir.join(files::table_name(*number)));
            }
        }
        return Err(e);
    }
    repairer.move_aside(&ours)?;
    Ok(repairer.report)
}

struct Repairer<'a> {
    fs: &'a dyn Fs,
    dir: &'a Path,
    options: Options,
    /// The next file number to hand out: above every number in the directory.
    next_number: u64,
    /// The tables of the repaired database.
    version: Vec<(usize, FileMeta)>,
    /// Tables this repair wrote (removed if it fails before committing).
    created: Vec<u64>,
    /// Tables written only to be merged, removed once the merge is committed.
    intermediate: Vec<u64>,
    /// Original files to move aside once the new state is durable.
    replaced: Vec<String>,
    /// The largest sequence number seen anywhere.
    max_sequence: u64,
    /// Entries of each table kept or written, by number.
    table_entries: Vec<(u64, u64)>,
    /// `CURRENT` was being replaced: after a failure it may name either manifest.
    current_may_have_changed: bool,
    report: RepairReport,
}

impl<'a> Repairer<'a> {
    fn new(fs: &'a dyn Fs, dir: &'a Path, names: &[String]) -> Self {
        // Temporary files count too: a new table must not reuse a name being written.
        let highest = names
            .iter()
            .filter_map(|n| files::parse(n.strip_suffix(".tmp").unwrap_or(n)))
            .filter_map(|k| match k {
                FileKind::Manifest(n)
                | FileKind::Wal(n)
                | FileKind::Table(n)
                | FileKind::Options(n) => Some(n),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        Repairer {
            fs,
            dir,
            options: Options::default(),
            next_number: highest + 1,
            version: Vec::new(),
            created: Vec::new(),
            intermediate: Vec::new(),
            replaced: Vec::new(),
            max_sequence: 0,
            table_entries: Vec::new(),
            current_may_have_changed: false,
            report: RepairReport {
                dir: dir.display().to_string(),
                manifest_used: None,
                manifest_problem: None,
                tables: Vec::new(),
                wals: Vec::new(),
                new_manifest: String::new(),
                new_tables: Vec::new(),
                live_tables: 0,
                entries: 0,
                entries_lost: 0,
                blocks_lost: 0,
                tables_lost: 0,
                wal_records: 0,
                wal_damage: 0,
                duplicates: 0,
                conflicts: 0,
                last_sequence: 0,
                moved_to_lost: Vec::new(),
                findings: Vec::new(),
            },
        }
    }

    fn new_number(&mut self) -> u64 {
        let n = self.next_number;
        self.next_number += 1;
        n
    }

    fn finding(&mut self, file: &str, offset: Option<u64>, what: impl Into<String>) {
        self.report.findings.push(Finding::new(file, offset, what));
    }

    /// The options new tables are written with: the newest OPTIONS file's, or the
    /// defaults. A damaged OPTIONS file would stop the next open: it is moved aside.
    fn read_options(&mut self, ours: &[(String, FileKind)]) {
        let mut options_files: Vec<(u64, String)> = ours
            .iter()
            .filter_map(|(name, k)| match *k {
                FileKind::Options(n) => Some((n, name.clone())),
                _ => None,
            })
            .collect();
        options_files.sort();
        // Open reads the newest: move damaged ones aside until a sound one is newest.
        while let Some((_, newest)) = options_files.pop() {
            let decoded = read_file(self.fs, &self.dir.join(&newest), OPTIONS_FILE_LIMIT)
                .map_err(|e| Error::io("reading", e))
                .and_then(|bytes| OptionsFile::decode(&bytes));
            match decoded {
                Ok(file) => {
                    self.options = file.options;
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Config => {
                    // Written by a newer kevo: not damage, and not ours to replace.
                    self.finding(&newest, None, format!("OPTIONS file: {}", e.message()));
                    return;
                }
                Err(e) => {
                    self.finding(
                        &newest,
                        None,
                        format!("OPTIONS file: {}; moved aside", e.message()),
                    );
                    self.replaced.push(newest);
                }
            }
        }
    }

    /// The manifest `CURRENT` names, if it is sound enough to keep its live set.
    fn read_manifest(&mut self) -> Option<ManifestState> {
        let state = match read_live_manifest(self.fs, self.dir) {
            Ok(state) => state,
            Err(e) => {
                let file = e.file().map_or_else(|| "CURRENT".to_string(), display_name);
                self.finding(&file, e.offset(), e.message().to_string());
                self.report.manifest_problem = Some(e.to_string());
                return None;
            }
        };
        self.report.findings.extend(state.problems.iter().cloned());
        let max_levels = self.options.max_levels;
        let too_deep = state.tables().find(|(level, _)| *level >= max_levels);
        let problem = match (state.problems.first(), too_deep) {
            (Some(p), _) => Some(p.to_string()),
            (None, Some((level, f))) => Some(format!(
                "table {} is in level {level}, deeper than max_levels ({max_levels})",
                f.number
            )),
            (None, None) => None,
        };
        if let Some(problem) = problem {
            self.report.manifest_problem = Some(problem);
            return None;
        }
        self.next_number = self.next_number.max(state.next_file_number);
        self.max_sequence = self.max_sequence.max(state.last_sequence);
        self.report.manifest_used = Some(display_name(&state.path));
        Some(state)
    }

    /// The manifest is sound: keep its live tables where they are, rewrite the damaged
    /// ones, replay the live WALs into L0.
    fn keep_live(&mut self, state: &ManifestState, ours: &[(String, FileKind)]) -> Result<()> {
        let live: Vec<(usize, FileMeta)> = state
            .tables()
            .map(|(level, f)| (level, f.clone()))
            .collect();
        for (level, meta) in live {
            self.keep_or_rewrite(level, &meta)?;
        }
        for (name, kind) in ours {
            if let FileKind::Table(n) = *kind
                && !state.tables().any(|(_, f)| f.number == n)
            {
                self.report.tables.push(TableOutcome {
                    name: name.clone(),
                    level: None,
                    action: TableAction::Ignored,
                    entries: 0,
                    entries_lost: None,
                    blocks_lost: 0,
                    reason: Some("the manifest does not name it".into()),
                });
                self.replaced.push(name.clone());
            }
        }
        let mem = self.replay_wals(ours, state.log_number)?;
        if !mem.is_empty() {
            let mut iter = MemTableIter::new(Arc::new(mem));
            for meta in self.write_run(&mut iter, false)? {
                self.version.push((0, meta));
            }
        }
        Ok(())
    }

    fn keep_or_rewrite(&mut self, level: usize, meta: &FileMeta) -> Result<()> {
        let name = files::table_name(meta.number);
        let path = self.dir.join(&name);
        self.max_sequence = self.max_sequence.max(meta.max_sequence);
        let walk = match walk_table(self.fs, &path, false, &mut |_, _| Ok(())) {
            Ok(walk) => walk,
            Err(e)
                if e.io_error()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) =>
            {
                self.finding(&name, None, "missing: the manifest names it");
                self.report.tables_lost += 1;
                self.report.tables.push(TableOutcome {
                    name,
                    level: Some(level),
                    action: TableAction::Lost,
                    entries: 0,
                    entries_lost: None,
                    blocks_lost: 0,
                    reason: Some("missing".into()),
                });
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let as_recorded = walk.dump.file_size == meta.size
            && walk.first_key.as_deref() == Some(&meta.smallest[..])
            && walk.last_key.as_deref() == Some(&meta.largest[..])
            && walk.sequences == Some((meta.min_sequence, meta.max_sequence));
        if walk.healthy() && as_recorded {
            self.table_entries.push((meta.number, walk.entries));
            self.report.tables.push(TableOutcome {
                name,
                level: Some(level),
                action: TableAction::Kept,
                entries: walk.entries,
                entries_lost: Some(0),
                blocks_lost: 0,
                reason: None,
            });
            self.version.push((level, meta.clone()));
            return Ok(());
        }
        let reason = walk.dump.problems.first().map_or_else(
            || "its size, key range or sequences differ from the manifest's".to_string(),
            |p| p.what.clone(),
        );
        self.report
            .findings
            .extend(walk.dump.problems.iter().cloned());
        let range = (meta.smallest.clone(), meta.largest.clone());
        let (salvage, info) = self.salvage(&path, Some(&range))?;
        let outcome =
            self.salvage_outcome(&name, Some(level), &walk, &salvage, info.as_ref(), reason);
        if let Some(info) = info {
            self.version.push((level, table_meta(info.number, &info)));
        }
        self.report.tables.push(outcome);
        self.replaced.push(name);
        Ok(())
    }

    /// The manifest cannot be used: merge every table and WAL into one sorted run.
    fn merge_all(&mut self, ours: &[(String, FileKind)]) -> Result<()> {
        let mut sources: Vec<Arc<Table>> = Vec::new();
        for (name, kind) in ours {
            let FileKind::Table(number) = *kind else {
                continue;
            };
            let path = self.dir.join(name);
            self.replaced.push(name.clone());
            let walk = walk_table(self.fs, &path, false, &mut |_, _| Ok(()))?;
            if let Some(p) = &walk.properties {
                self.max_sequence = self.max_sequence.max(p.max_sequence);
            }
            if walk.healthy()
                && let Ok(table) = Table::open(self.fs, &path, number, None)
            {
                self.report.tables.push(TableOutcome {
                    name: name.clone(),
                    level: None,
                    action: TableAction::Merged,
                    entries: walk.entries,
                    entries_lost: Some(0),
                    blocks_lost: 0,
                    reason: None,
                });
                sources.push(Arc::new(table));
                continue;
            }
            let reason = walk
                .dump
                .problems
                .first()
                .map_or_else(|| "it does not open".to_string(), |p| p.what.clone());
            self.report
                .findings
                .extend(walk.dump.problems.iter().cloned());
            let (salvage, info) = self.salvage(&path, None)?;
            let mut outcome =
                self.salvage_outcome(name, None, &walk, &salvage, info.as_ref(), reason);
            if let Some(info) = info {
                self.intermediate.push(info.number);
                let path = self.dir.join(files::table_name(info.number));
                sources.push(Arc::new(Table::open(self.fs, &path, info.number, None)?));
                outcome.action = TableAction::Merged;
            }
            self.report.tables.push(outcome);
        }
        let mem = self.replay_wals(ours, 0)?;
        if !mem.is_empty() {
            let mut iter = MemTableIter::new(Arc::new(mem));
            for meta in self.write_run(&mut iter, false)? {
                self.intermediate.push(meta.number);
                let path = self.dir.join(files::table_name(meta.number));
                sources.push(Arc::new(Table::open(self.fs, &path, meta.number, None)?));
            }
        }
        let sources: Vec<Source> = sources
            .iter()
            .map(|t| Box::new(t.iter()) as Source)
            .collect();
        let mut merged = MergingIter::new(sources);
        for meta in self.write_run(&mut merged, true)? {
            self.version.push((MERGED_LEVEL, meta));
        }
        Ok(())
    }

    /// Copies the valid entries of the table at `path` (those inside `range`, if given)
    /// into a new table. Returns what the walk saw and the table, if any entry was copied.
    fn salvage(
        &mut self,
        path: &Path,
        range: Option<&(Vec<u8>, Vec<u8>)>,
    ) -> Result<(TableWalk, Option<TableInfo>)> {
        let number = self.new_number();
        let out = self.dir.join(files::table_name(number));
        let fs = self.fs;
        let table_options = TableOptions::from(&self.options);
        let mut builder: Option<TableBuilder<'_>> = None;
        let mut outside = 0u64;
        let walk = walk_table(fs, path, false, &mut |key, value| {
            if let Some((lo, hi)) = range
                && (key_less(key, lo) || key_less(hi, key))
            {
                outside += 1;
                return Ok(());
            }
            let b = match &mut builder {
                Some(b) => b,
                None => builder.insert(TableBuilder::create(fs, &out, number, table_options)?),
            };
            b.add(key, value)
        })?;
        if outside > 0 {
            self.finding(
                &display_name(path),
                None,
                format!("{outside} entries outside the manifest's key range for it were dropped"),
            );
        }
        let info = match builder {
            Some(b) => {
                self.created.push(number);
                Some(b.finish()?)
            }
            None => None,
        };
        if let Some(info) = &info {
            self.max_sequence = self.max_sequence.max(info.properties.max_sequence);
            self.table_entries.push((number, info.properties.entries));
        }
        Ok((walk, info))
    }

    fn salvage_outcome(
        &mut self,
        name: &str,
        level: Option<usize>,
        first: &TableWalk,
        salvage: &TableWalk,
        info: Option<&TableInfo>,
        reason: String,
    ) -> TableOutcome {
        let copied = info.map_or(0, |i| i.properties.entries);
        let entries_lost = first
            .properties
            .as_ref()
            .map(|p| p.entries.saturating_sub(copied));
        self.report.entries_lost += entries_lost.unwrap_or(0);
        self.report.blocks_lost += salvage.blocks_damaged;
        let action = if info.is_some() {
            TableAction::Rewritten
        } else {
            self.report.tables_lost += 1;
            TableAction::Lost
        };
        TableOutcome {
            name: name.to_string(),
            level,
            action,
            entries: copied,
            entries_lost,
            blocks_lost: salvage.blocks_damaged,
            reason: Some(reason),
        }
    }

    /// Replays the WALs numbered from `from` on into a memtable, skipping damage; moves
    /// every WAL aside (older ones are obsolete).
    fn replay_wals(&mut self, ours: &[(String, FileKind)], from: u64) -> Result<MemTable> {
        let mem = MemTable::new();
        let mut wals: Vec<(u64, String)> = ours
            .iter()
            .filter_map(|(name, k)| match *k {
                FileKind::Wal(n) => Some((n, name.clone())),
                _ => None,
            })
            .collect();
        wals.sort();
        for (number, name) in wals {
            self.replaced.push(name.clone());
            let mut outcome = WalOutcome {
                name: name.clone(),
                replayed: number >= from,
                records: 0,
                entries: 0,
                damaged_regions: 0,
                invalid_records: 0,
            };
            if number < from {
                self.report.wals.push(outcome);
                continue;
            }
            let mut invalid = Vec::new();
            let mut max_sequence = 0u64;
            let walk = walk_log(
                self.fs,
                &self.dir.join(&name),
                number,
                &mut |offset, _, payload| {
                    match WriteBatch::decode(payload) {
                        Ok(batch) if batch.is_empty() => outcome.records += 1,
                        Ok(batch)
                            if batch_last_sequence(batch.sequence(), batch.len()).is_none() =>
                        {
                            invalid.push((
                                offset,
                                format!(
                                    "its sequence numbers ({} and {} more) are outside the range",
                                    batch.sequence(),
                                    batch.len() - 1
                                ),
                            ));
                        }
                        Ok(batch) => {
                            for (i, entry) in batch.iter().enumerate() {
                                let sequence = batch.sequence() + i as u64;
                                mem.add(sequence, entry.kind, entry.key, entry.value);
                                max_sequence = max_sequence.max(sequence);
                                outcome.entries += 1;
                            }
                            outcome.records += 1;
                        }
                        Err(e) => invalid.push((offset, e.message().to_string())),
                    }
                    Ok(())
                },
            )?;
            self.max_sequence = self.max_sequence.max(max_sequence);
            outcome.invalid_records = invalid.len() as u64;
            outcome.damaged_regions = walk.damage.len() as u64;
            for (offset, what) in invalid {
                self.finding(
                    &name,
                    Some(offset),
                    format!("record is not a valid write batch: {what}"),
                );
            }
            for d in &walk.damage {
                let what = if d.followed {
                    format!("damaged record ({}) skipped", d.reason)
                } else {
                    format!("torn tail ({}) dropped", d.reason)
                };
                self.finding(&name, Some(d.offset), what);
            }
            self.report.wal_records += outcome.records;
            self.report.wal_damage += outcome.damaged_regions + outcome.invalid_records;
            self.report.wals.push(outcome);
        }
        Ok(mem)
    }

    /// Writes the entries of `iter` into new tables, one version of each
    /// internal key (a duplicate from a second file is dropped); with `split`, cut at the
    /// target file size between user keys, so the tables do not overlap.
    fn write_run(&mut self, iter: &mut dyn InternalIterator, split: bool) -> Result<Vec<FileMeta>> {
        let fs = self.fs;
        let table_options = TableOptions::from(&self.options);
        let target = self.options.target_file_size;
        let mut written = Vec::new();
        let mut current: Option<(u64, TableBuilder<'_>)> = None;
        let mut last_key: Vec<u8> = Vec::new();
        let mut last_value: Vec<u8> = Vec::new();
        let mut any = false;
        iter.seek_to_first();
        while iter.valid() {
            let (key, value) = (iter.key(), iter.value());
            if any && key == last_key.as_slice() {
                self.report.duplicates += 1;
                if value != last_value.as_slice() {
                    self.report.conflicts += 1;
                }
                iter.next();
                continue;
            }
            if ParsedKey::parse(key).is_none() || (any && !key_less(&last_key, key)) {
                // Sources only hold checked entries: this cannot happen, but never write
                // a table out of order.
                iter.next();
                continue;
            }
            let cut = split
                && any
                && key::user_key(&last_key) != key::user_key(key)
                && current
                    .as_ref()
                    .is_some_and(|(_, b)| b.estimated_size() >= target);
            if cut && let Some((number, builder)) = current.take() {
                written.push(self.finish_table(number, builder)?);
            }
            let (_, builder) = match &mut current {
                Some(c) => c,
                None => {
                    let number = self.new_number();
                    let path = self.dir.join(files::table_name(number));
                    let builder = TableBuilder::create(fs, &path, number, table_options)?;
                    self.created.push(number);
                    current.insert((number, builder))
                }
            };
            builder.add(key, value)?;
            last_key.clear();
            last_key.extend_from_slice(key);
            last_value.clear();
            last_value.extend_from_slice(value);
            any = true;
            iter.next();
        }
        iter.status()?;
        if let Some((number, builder)) = current {
            written.push(self.finish_table(number, builder)?);
        }
        Ok(written)
    }

    fn finish_table(&mut self, number: u64, builder: TableBuilder<'_>) -> Result<FileMeta> {
        let info = builder.finish()?;
        self.max_sequence = self.max_sequence.max(info.properties.max_sequence);
        self.table_entries.push((number, info.properties.entries));
        Ok(table_meta(number, &info))
    }

    /// Writes the new manifest and points `CURRENT` at it: from here the repaired
    /// database is the database.
    fn commit(&mut self) -> Result<()> {
        for (level, meta) in &self.version {
            if self.created.contains(&meta.number) {
                self.report.new_tables.push(TableView::new(*level, meta));
            }
            self.report.entries += self
                .table_entries
                .iter()
                .find(|(n, _)| *n == meta.number)
                .map_or(0, |(_, e)| *e);
        }
        let manifest_number = self.new_number();
        let snapshot = VersionEdit {
            key_order: Some(KEY_ORDER.to_string()),
            // Every WAL was replayed (or was obsolete): none is live.
            log_number: Some(self.next_number),
            next_file_number: Some(self.next_number),
            last_sequence: Some(self.max_sequence),
            deleted_files: Vec::new(),
            new_files: self.version.clone(),
        };
        // The result must be a version recovery accepts.
        Version::empty(self.options.max_levels)
            .apply(&snapshot)
            .map_err(|e| {
                Error::corruption(format!(
                    "repair built an inconsistent version ({}); nothing was changed",
                    e.message()
                ))
            })?;
        ManifestWriter::create(self.fs, self.dir, manifest_number, &snapshot)?;
        self.current_may_have_changed = true;
        set_current(self.fs, self.dir, manifest_number)?;
        let name = crate::version::manifest::manifest_name(manifest_number);
        self.report.new_manifest = name;
        self.report.last_sequence = self.max_sequence;
        self.report.live_tables = self.version.len() as u64;
        Ok(())
    }

    /// Moves the replaced files into `lost/` and removes the intermediate tables, then
    /// makes both directories durable.
    fn move_aside(&mut self, ours: &[(String, FileKind)]) -> Result<()> {
        let mut aside = std::mem::take(&mut self.replaced);
        for (name, kind) in ours {
            if matches!(kind, FileKind::Manifest(_)) && *name != self.report.new_manifest {
                aside.push(name.clone());
            }
        }
        aside.sort();
        aside.dedup();
        let lost = self.dir.join(LOST_DIR);
        if !aside.is_empty() {
            self.fs
                .create_dir_all(&lost)
                .map_err(|e| Error::io("creating the lost/ directory", e).with_file(&lost))?;
        }
        for name in aside {
            let mut target = name.clone();
            let mut n = 1;
            while self
                .fs
                .exists(&lost.join(&target))
                .map_err(|e| Error::io("looking into lost/", e).with_file(&lost))?
            {
                target = format!("{name}.{n}");
                n += 1;
            }
            let from = self.dir.join(&name);
            match self.fs.rename(&from, &lost.join(&target)) {
                Ok(()) => self.report.moved_to_lost.push(target),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::io("moving a replaced file into lost/", e).with_file(&from));
                }
            }
        }
        for number in std::mem::take(&mut self.intermediate) {
            let path = self.dir.join(files::table_name(number));
            self.fs
                .remove(&path)
                .map_err(|e| Error::io("removing an intermediate table", e).with_file(&path))?;
        }
        if !self.report.moved_to_lost.is_empty() {
            self.fs
                .sync_dir(&lost)
                .map_err(|e| Error::io("syncing lost/", e).with_file(&lost))?;
        }
        self.fs
            .sync_dir(self.dir)
            .map_err(|e| Error::io("syncing the database directory", e).with_file(self.dir))
    }
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "repaired {}", self.dir)?;
        match (&self.manifest_used, &self.manifest_problem) {
            (Some(m), _) => writeln!(
                f,
                "manifest {m} was sound: its live tables keep their levels"
            )?,
            (None, Some(p)) => writeln!(
                f,
                "manifest not used ({p}): every table and WAL was merged into one sorted run in L{MERGED_LEVEL}"
            )?,
            (None, None) => writeln!(f, "no manifest: every table and WAL was merged")?,
        }
        for t in &self.tables {
            let action = match t.action {
                TableAction::Kept => "kept",
                TableAction::Rewritten => "rewritten",
                TableAction::Merged => "merged",
                TableAction::Lost => "LOST",
                TableAction::Ignored => "ignored",
            };
            write!(f, "table {}: {action}, {} entries", t.name, t.entries)?;
            if let Some(lost) = t.entries_lost.filter(|&n| n > 0) {
                write!(f, ", {lost} entries lost")?;
            }
            if t.blocks_lost > 0 {
                write!(f, ", {} blocks lost", t.blocks_lost)?;
            }
            match &t.reason {
                Some(reason) => writeln!(f, " ({reason})")?,
                None => writeln!(f)?,
            }
        }
        for w in &self.wals {
            if w.replayed {
                write!(
                    f,
                    "WAL {}: replayed {} records ({} entries)",
                    w.name, w.records, w.entries
                )?;
                if w.damaged_regions + w.invalid_records > 0 {
                    write!(
                        f,
                        ", {} damaged regions and {} invalid records skipped",
                        w.damaged_regions, w.invalid_records
                    )?;
                }
                writeln!(f)?;
            } else {
                writeln!(f, "WAL {}: obsolete (already in tables)", w.name)?;
            }
        }
        for t in &self.new_tables {
            writeln!(f, "new table: {t}")?;
        }
        writeln!(
            f,
            "result: manifest {}, {} tables, last sequence {}",
            self.new_manifest, self.live_tables, self.last_sequence
        )?;
        writeln!(
            f,
            "lost: {} tables, {} data blocks, {} entries known, {} WAL damage regions/records",
            self.tables_lost, self.blocks_lost, self.entries_lost, self.wal_damage
        )?;
        if self.duplicates > 0 {
            writeln!(
                f,
                "{} versions found in two files were written once ({} with different values)",
                self.duplicates, self.conflicts
            )?;
        }
        if !self.moved_to_lost.is_empty() {
            writeln!(
                f,
                "moved into {LOST_DIR}/: {}",
                self.moved_to_lost.join(", ")
            )?;
        }
        if self.findings.is_empty() {
            writeln!(f, "no damage found")
        } else {
            writeln!(f, "damage found ({}):", self.findings.len())?;
            for finding in &self.findings {
                writeln!(f, "  {finding}")?;
            }
            Ok(())
        }
    }
}
