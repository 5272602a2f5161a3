//! Reading a manifest the way recovery does, but leniently: every edit is decoded and
//! applied even after a contradiction, so one pass reports every problem, and the state
//! it arrives at is still available to look at.

use std::path::{Path, PathBuf};

use super::log_walk::{LogWalk, walk_log};
use super::{Finding, display_name};
use crate::db::files::{self, FileKind};
use crate::db::open::{oldest_wal_missing, oldest_wal_missing_message};
use crate::error::{Error, Result};
use crate::fs::Fs;
use crate::key;
use crate::options_file::KEY_ORDER;
use crate::version::edit::{FileMeta, MAX_LEVELS, VersionEdit};
use crate::version::manifest;

/// How many times a reader retries when the manifest `CURRENT` named was replaced before
/// it could be opened (the database is open elsewhere and rolled its manifest over).
const CURRENT_RETRIES: usize = 5;

/// A manifest, decoded and applied.
#[derive(Debug)]
pub(crate) struct ManifestState {
    /// Its path.
    pub path: PathBuf,
    /// What walking its records found.
    pub log: LogWalk,
    /// Every record: its offset, and its edit or why it does not decode.
    pub edits: Vec<(u64, std::result::Result<VersionEdit, String>)>,
    /// The tables per level after every edit (`MAX_LEVELS` levels; L0 newest first, the
    /// others by smallest key).
    pub levels: Vec<Vec<FileMeta>>,
    /// The counters as the edits record them.
    pub log_number: u64,
    pub next_file_number: u64,
    pub last_sequence: u64,
    /// Problems: anything that makes recovery refuse the manifest, or loses an edit.
    pub problems: Vec<Finding>,
    /// Things worth knowing that recovery accepts (a torn last record).
    pub notes: Vec<Finding>,
}

impl ManifestState {
    /// Every live table with its level.
    pub fn tables(&self) -> impl Iterator<Item = (usize, &FileMeta)> {
        self.levels
            .iter()
            .enumerate()
            .flat_map(|(level, files)| files.iter().map(move |f| (level, f)))
    }
}

/// Reads and applies the manifest `path` (file number `number`). Errors are I/O failures
/// only.
pub(crate) fn read_manifest(fs: &dyn Fs, path: &Path, number: u64) -> Result<ManifestState> {
    let name = display_name(path);
    let mut edits = Vec::new();
    let log = walk_log(fs, path, number, &mut |offset, _, payload| {
        edits.push((
            offset,
            VersionEdit::decode(payload).map_err(|e| e.message().to_string()),
        ));
        Ok(())
    })?;
    let mut state = ManifestState {
        path: path.to_path_buf(),
        log,
        edits: Vec::new(),
        levels: vec![Vec::new(); MAX_LEVELS],
        log_number: 0,
        next_file_number: number + 1,
        last_sequence: 0,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    classify_damage(&name, &mut state);
    let mut overlapping = [false; MAX_LEVELS];
    for (i, (offset, edit)) in edits.iter().enumerate() {
        let at = Some(*offset);
        let edit = match edit {
            Ok(edit) => edit,
            Err(what) => {
                state.problems.push(Finding::new(
                    &name,
                    at,
                    format!("edit does not decode: {what}"),
                ));
                continue;
            }
        };
        if i == 0 {
            match edit.key_order.as_deref() {
                Some(KEY_ORDER) => {}
                Some(other) => state.problems.push(Finding::new(
                    &name,
                    at,
                    format!("key order `{other}` is not this build's `{KEY_ORDER}`"),
                )),
                None => state.problems.push(Finding::new(
                    &name,
                    at,
                    "the manifest does not begin with a snapshot",
                )),
            }
        }
        for what in apply(&mut state.levels, edit) {
            state.problems.push(Finding::new(&name, at, what));
        }
        for (level, files) in state.levels.iter().enumerate().skip(1) {
            if !overlapping[level]
                && let Some(what) = overlap(files)
            {
                overlapping[level] = true;
                state
                    .problems
                    .push(Finding::new(&name, at, format!("level {level}: {what}")));
            }
        }
        state.next_file_number = edit.next_file_number.unwrap_or(state.next_file_number);
        state.last_sequence = state.last_sequence.max(edit.last_sequence.unwrap_or(0));
        state.log_number = state.log_number.max(edit.log_number.unwrap_or(0));
    }
    if edits.is_empty() {
        state
            .problems
            .push(Finding::new(&name, None, "the manifest holds no edit"));
    }
    state.edits = edits;
    Ok(state)
}

/// Damage followed by a valid record is a problem; at the end, a record cut short is a torn
/// write (a note), but a whole record that fails its checksum is more likely a bit that
/// changed after it was written: recovery drops it all the same, with its edit.
fn classify_damage(name: &str, state: &mut ManifestState) {
    for damage in state.log.damage.clone() {
        let at = Some(damage.offset);
        if damage.followed {
            state.problems.push(Finding::new(
                name,
                at,
                format!("damaged record ({}) before valid ones", damage.reason),
            ));
        } else if damage.is_truncation() {
            state.notes.push(Finding::new(
                name,
                at,
                format!(
                    "torn last record ({}): an edit cut short by a crash, ignored",
                    damage.reason
                ),
            ));
        } else {
            state.problems.push(Finding::new(
                name,
                at,
                format!(
                    "the last record is damaged ({}): recovery ignores it as a torn write, \
                     losing its edit if it was complete",
                    damage.reason
                ),
            ));
        }
    }
}

/// Applies `edit`'s table changes, returning the contradictions met (recovery refuses a
/// manifest with any).
pub(crate) fn apply(levels: &mut [Vec<FileMeta>], edit: &VersionEdit) -> Vec<String> {
    let mut problems = Vec::new();
    for &(level, number) in &edit.deleted_files {
        let Some(files) = levels.get_mut(level) else {
            problems.push(format!(
                "deletes table {number} from level {level}, past the last"
            ));
            continue;
        };
        match files.iter().position(|f| f.number == number) {
            Some(at) => {
                files.remove(at);
            }
            None => problems.push(format!(
                "deletes table {number} which level {level} does not hold"
            )),
        }
    }
    for (level, file) in &edit.new_files {
        if levels.iter().flatten().any(|f| f.number == file.number) {
            problems.push(format!("adds table {} twice", file.number));
            continue;
        }
        match levels.get_mut(*level) {
            Some(files) => files.push(file.clone()),
            None => problems.push(format!(
                "adds table {} to level {level}, past the last",
                file.number
            )),
        }
    }
    if let Some(l0) = levels.first_mut() {
        l0.sort_by(|a, b| {
            b.max_sequence
                .cmp(&a.max_sequence)
                .then(b.number.cmp(&a.number))
        });
    }
    for files in levels.iter_mut().skip(1) {
        files.sort_by(|a, b| key::compare(&a.smallest, &b.smallest));
    }
    problems
}

/// The first overlap between neighbouring tables of a sorted level, if any.
pub(crate) fn overlap(files: &[FileMeta]) -> Option<String> {
    files.windows(2).find_map(|w| {
        (key::user_key(&w[0].largest) >= key::user_key(&w[1].smallest)).then(|| {
            format!(
                "tables {} and {} overlap (user keys up to {} and from {})",
                w[0].number,
                w[1].number,
                super::escape(key::user_key(&w[0].largest)),
                super::escape(key::user_key(&w[1].smallest)),
            )
        })
    })
}

/// Reads `CURRENT` and the manifest it names, retrying if the database (open elsewhere)
/// replaced the manifest in between. `Err` if `CURRENT` is missing or malformed, or on I/O
/// failure. A manifest whose oldest live WAL is gone while a later one is there lost edits
/// at its end, as `Db::open` finds too: a problem.
pub(crate) fn read_live_manifest(fs: &dyn Fs, dir: &Path) -> Result<ManifestState> {
    // The directory is listed before the manifest is read: a database open elsewhere
    // deletes a WAL only after a manifest edit naming a later one is durable, so this
    // order never sees a WAL missing that the manifest read still needs.
    let wals: Vec<u64> = fs
        .list(dir)
        .map_err(|e| Error::io("listing the database directory", e).with_file(dir))?
        .iter()
        .filter_map(|name| match files::parse(name) {
            Some(FileKind::Wal(n)) => Some(n),
            _ => None,
        })
        .collect();
    let mut attempt = 0;
    loop {
        let (path, number) = manifest::read_current(fs, dir)?;
        match read_manifest(fs, &path, number) {
            Ok(mut state) => {
                if oldest_wal_missing(state.log_number, &wals) {
                    state.problems.push(Finding::new(
                        display_name(&path),
                        None,
                        oldest_wal_missing_message(state.log_number),
                    ));
                }
                return Ok(state);
            }
            Err(e)
                if attempt + 1 < CURRENT_RETRIES
                    && e.io_error()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) =>
            {
                attempt += 1;
            }
            Err(e)
                if e.io_error()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) =>
            {
                return Err(manifest::missing_manifest(dir, &path));
            }
            other => return other,
        }
    }
}
