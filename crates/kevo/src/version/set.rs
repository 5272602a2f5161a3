//! [`Version`] (the live tables, per level) and [`VersionSet`] (the current version, the
//! database's counters, and the manifest that makes every change durable).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::edit::{FileMeta, MAX_LEVELS, VersionEdit};
use super::manifest::{self, ManifestWriter};
use crate::error::{Error, Result};
use crate::fs::Fs;
use crate::key::{self, SequenceNumber};
use crate::options_file::KEY_ORDER;

/// The tables that make up the database at one point. Immutable; readers hold it by `Arc`
/// for as long as they read, so its files stay on disk until no reader needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// `levels[0]`: newest first (by largest sequence). Deeper levels: sorted by smallest
    /// key, without overlap.
    levels: Vec<Vec<Arc<FileMeta>>>,
}

impl Version {
    /// An empty version with `num_levels` levels.
    pub fn empty(num_levels: usize) -> Self {
        Version {
            levels: vec![Vec::new(); num_levels.clamp(1, MAX_LEVELS)],
        }
    }

    /// The tables of `level`, in lookup order.
    pub fn files(&self, level: usize) -> &[Arc<FileMeta>] {
        self.levels.get(level).map_or(&[], Vec::as_slice)
    }

    /// Number of levels.
    pub fn num_levels(&self) -> usize {
        self.levels.len()
    }

    /// Every live table number.
    pub fn file_numbers(&self) -> impl Iterator<Item = u64> + '_ {
        self.levels.iter().flatten().map(|f| f.number)
    }

    /// This version with `edit`'s file changes applied. Deleting a table that is not there,
    /// adding one twice, a level past the last, or overlapping tables below L0 is
    /// `Corruption`: the manifest contradicts itself.
    pub fn apply(&self, edit: &VersionEdit) -> Result<Version> {
        let mut levels = self.levels.clone();
        // Tables deleted here, by number: one the edit adds again (a trivial move) keeps
        // its `Arc`, so every version holding it shares one count and the table is deleted
        // only when none does.
        let mut removed: Vec<Arc<FileMeta>> = Vec::new();
        for &(level, number) in &edit.deleted_files {
            let files = levels.get_mut(level).ok_or_else(|| bad_level(level))?;
            let Some(at) = files.iter().position(|f| f.number == number) else {
                return Err(Error::corruption(format!(
                    "manifest deletes table {number} which level {level} does not hold"
                )));
            };
            removed.push(files.remove(at));
        }
        for (level, file) in &edit.new_files {
            if self.file_numbers().any(|n| n == file.number)
                && !edit.deleted_files.iter().any(|d| d.1 == file.number)
            {
                return Err(Error::corruption(format!(
                    "manifest adds table {} twice",
                    file.number
                )));
            }
            let moved = removed
                .iter()
                .find(|r| r.number == file.number && ***r == *file)
                .cloned();
            levels
                .get_mut(*level)
                .ok_or_else(|| bad_level(*level))?
                .push(moved.unwrap_or_else(|| Arc::new(file.clone())));
        }
        levels[0].sort_by(|a, b| {
            b.max_sequence
                .cmp(&a.max_sequence)
                .then(b.number.cmp(&a.number))
        });
        for (level, files) in levels.iter_mut().enumerate().skip(1) {
            files.sort_by(|a, b| key::compare(&a.smallest, &b.smallest));
            // User keys compare as plain bytes (they carry no trailer).
            if files
                .windows(2)
                .any(|w| key::user_key(&w[0].largest) >= key::user_key(&w[1].smallest))
            {
                return Err(Error::corruption(format!(
                    "manifest leaves overlapping tables in level {level}"
                )));
            }
        }
        Ok(Version { levels })
    }
}

fn bad_level(level: usize) -> Error {
    Error::corruption(format!("manifest names level {level}, past the last level"))
}

/// The current version and the counters, made durable through the manifest.
///
/// Thread safety: requires external synchronization (the Db serialises version changes);
/// the current `Arc<Version>` may be handed to any thread.
#[derive(Debug)]
pub struct VersionSet {
    dir: PathBuf,
    current: Arc<Version>,
    manifest: ManifestWriter,
    next_file_number: u64,
    last_sequence: SequenceNumber,
    log_number: u64,
    max_manifest_size: u64,
    /// Roll over when the manifest passes this: `max_manifest_size`, or twice the snapshot
    /// it started with if that is larger (so a large state does not roll over on every edit).
    rollover_at: u64,
    /// A rollover failed after its edit was durable: `CURRENT` may name either manifest, so
    /// the next edit goes into a fresh one rather than the old one.
    must_roll_over: bool,
}

impl VersionSet {
    /// Creates the version set of a new database: manifest number `manifest_number` holding
    /// an empty state, then `CURRENT` naming it.
    pub fn create(
        fs: &dyn Fs,
        dir: &Path,
        num_levels: usize,
        manifest_number: u64,
        max_manifest_size: u64,
    ) -> Result<Self> {
        let state = RecoveredVersions::new_database(num_levels, manifest_number);
        VersionSet::install(fs, dir, state, max_manifest_size)
    }

    /// Recovers the version set named by `CURRENT` ([`VersionSet::read`]) and continues in
    /// a fresh manifest ([`VersionSet::install`]).
    pub fn recover(
        fs: &dyn Fs,
        dir: &Path,
        num_levels: usize,
        max_manifest_size: u64,
        used: impl IntoIterator<Item = u64>,
    ) -> Result<Self> {
        let recovered = VersionSet::read(fs, dir, num_levels, used)?;
        VersionSet::install(fs, dir, recovered, max_manifest_size)
    }

    /// Reads the state the manifest named by `CURRENT` records, changing nothing on disk.
    /// Every file number in `used` (found in the directory) is treated as taken.
    pub fn read(
        fs: &dyn Fs,
        dir: &Path,
        num_levels: usize,
        used: impl IntoIterator<Item = u64>,
    ) -> Result<RecoveredVersions> {
        let (path, number) = manifest::read_current(fs, dir)?;
        let edits = manifest::read_edits(fs, &path, number).map_err(|e| {
            // Damage, not an I/O failure: see `missing_manifest`.
            if e.io_error()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
            {
                manifest::missing_manifest(dir, &path)
            } else {
                e
            }
        })?;
        let Some(first) = edits.first() else {
            return Err(Error::corruption("manifest holds no edit").with_file(&path));
        };
        match first.key_order.as_deref() {
            Some(KEY_ORDER) => {}
            Some(other) => {
                let reason =
                    format!("`{other}` in the manifest differs from this build's `{KEY_ORDER}`");
                return Err(Error::config("key_order", reason).with_file(&path));
            }
            None => {
                return Err(
                    Error::corruption("manifest does not begin with a snapshot").with_file(&path)
                );
            }
        }
        let mut state = State {
            version: Version::empty(num_levels),
            next_file_number: number + 1,
            last_sequence: 0,
            log_number: 0,
        };
        for edit in &edits {
            state.version = state.version.apply(edit).map_err(|e| e.with_file(&path))?;
            state.next_file_number = edit.next_file_number.unwrap_or(state.next_file_number);
            state.last_sequence = state.last_sequence.max(edit.last_sequence.unwrap_or(0));
            state.log_number = state.log_number.max(edit.log_number.unwrap_or(0));
        }
        let highest = state
            .version
            .file_numbers()
            .chain(used)
            .chain([number, state.log_number])
            .max()
            .unwrap_or(0);
        state.next_file_number = state.next_file_number.max(highest + 1);
        Ok(RecoveredVersions {
            state,
            manifest: Some(path),
        })
    }

    /// Continues from a recovered state in a fresh manifest (so no edit is ever appended
    /// after a torn record) and removes the old one.
    pub fn install(
        fs: &dyn Fs,
        dir: &Path,
        recovered: RecoveredVersions,
        max_manifest_size: u64,
    ) -> Result<Self> {
        let set = VersionSet::start(fs, dir, recovered.state, max_manifest_size)?;
        // The old manifest is no longer referenced; a leftover is removed on the next open.
        if let Some(old) = &recovered.manifest {
            let _ = fs.remove(old);
        }
        Ok(set)
    }

    /// Writes a manifest holding `state` and points `CURRENT` at it.
    fn start(fs: &dyn Fs, dir: &Path, mut state: State, max_manifest_size: u64) -> Result<Self> {
        let number = state.next_file_number;
        state.next_file_number += 1;
        let snapshot = snapshot(&state);
        let manifest = ManifestWriter::create(fs, dir, number, &snapshot)?;
        manifest::set_current(fs, dir, number)?;
        let rollover_at = max_manifest_size.max(2 * manifest.len());
        Ok(VersionSet {
            dir: dir.to_path_buf(),
            current: Arc::new(state.version),
            manifest,
            next_file_number: state.next_file_number,
            last_sequence: state.last_sequence,
            log_number: state.log_number,
            max_manifest_size,
            rollover_at,
            must_roll_over: false,
        })
    }

    /// The current version.
    pub fn current(&self) -> Arc<Version> {
        self.current.clone()
    }

    /// Hands out a new file number (made durable by the next edit).
    pub fn new_file_number(&mut self) -> u64 {
        let n = self.next_file_number;
        self.next_file_number += 1;
        n
    }

    /// The last sequence number recorded.
    pub fn last_sequence(&self) -> SequenceNumber {
        self.last_sequence
    }

    /// WALs numbered below this hold nothing that is not in a table.
    pub fn log_number(&self) -> u64 {
        self.log_number
    }

    /// The live manifest's number.
    pub fn manifest_number(&self) -> u64 {
        self.manifest.number()
    }

    /// Makes `edit` durable in the manifest (with the current counters), then installs the
    /// version it produces. On error nothing changes in memory (file numbers handed out
    /// stay used) and the manifest is rolled over on the next call. `Ok` means durable: a
    /// rollover that fails after the edit was logged is retried with the next edit.
    pub fn log_and_apply(&mut self, fs: &dyn Fs, mut edit: VersionEdit) -> Result<Arc<Version>> {
        let version = self.current.apply(&edit)?;
        let log_number = edit
            .log_number
            .map_or(self.log_number, |l| self.log_number.max(l));
        let last_sequence = edit
            .last_sequence
            .map_or(self.last_sequence, |s| self.last_sequence.max(s));
        if self.manifest.is_failed() || self.must_roll_over {
            // The live manifest cannot be appended to safely: a fresh one holds the whole
            // new state.
            let state = State {
                version,
                next_file_number: self.next_file_number,
                last_sequence,
                log_number,
            };
            let state = self.roll_over(fs, state)?;
            self.must_roll_over = false;
            return Ok(self.set_current_version(state.version, log_number, last_sequence));
        }
        edit.next_file_number = Some(self.next_file_number);
        edit.last_sequence = Some(last_sequence);
        edit.log_number = Some(log_number);
        self.manifest.append(&edit)?;
        let current = self.set_current_version(version, log_number, last_sequence);
        if self.manifest.len() > self.rollover_at {
            let state = State {
                version: Version::clone(&current),
                next_file_number: self.next_file_number,
                last_sequence,
                log_number,
            };
            if self.roll_over(fs, state).is_err() {
                self.must_roll_over = true;
            }
        }
        Ok(current)
    }

    fn set_current_version(
        &mut self,
        version: Version,
        log_number: u64,
        last_sequence: u64,
    ) -> Arc<Version> {
        self.current = Arc::new(version);
        self.log_number = log_number;
        self.last_sequence = last_sequence;
        self.current.clone()
    }

    /// Writes a new manifest holding `state`, points CURRENT at it, removes the old one;
    /// gives `state` back.
    fn roll_over(&mut self, fs: &dyn Fs, mut state: State) -> Result<State> {
        let number = self.new_file_number();
        state.next_file_number = self.next_file_number;
        let manifest = ManifestWriter::create(fs, &self.dir, number, &snapshot(&state))?;
        manifest::set_current(fs, &self.dir, number)?;
        self.rollover_at = self.max_manifest_size.max(2 * manifest.len());
        let old = std::mem::replace(&mut self.manifest, manifest);
        // Best effort: a leftover old manifest is not referenced and is removed on open.
        let _ = fs.remove(&self.dir.join(manifest::manifest_name(old.number())));
        Ok(state)
    }
}

/// A state read from the manifest (or the empty state of a new database), not yet
/// continued ([`VersionSet::install`]).
#[derive(Debug)]
pub struct RecoveredVersions {
    state: State,
    /// The manifest it was read from; `None` for a new database.
    manifest: Option<PathBuf>,
}

impl RecoveredVersions {
    /// The state of a new database: no table, file numbers from `first_number`.
    pub fn new_database(num_levels: usize, first_number: u64) -> Self {
        RecoveredVersions {
            state: State {
                version: Version::empty(num_levels),
                next_file_number: first_number,
                last_sequence: 0,
                log_number: 0,
            },
            manifest: None,
        }
    }

    /// The manifest the state was read from (`None` for a new database).
    pub fn manifest(&self) -> Option<&Path> {
        self.manifest.as_deref()
    }

    /// Hands out a file number before the state is installed.
    pub fn new_file_number(&mut self) -> u64 {
        let n = self.state.next_file_number;
        self.state.next_file_number += 1;
        n
    }

    /// Raises the log number the installed snapshot records to `number`: the caller knows
    /// no WAL between the recovered log number and `number` exists.
    pub fn raise_log_number(&mut self, number: u64) {
        self.state.log_number = self.state.log_number.max(number);
    }

    /// The recovered version.
    pub fn version(&self) -> &Version {
        &self.state.version
    }

    /// WALs numbered below this are obsolete.
    pub fn log_number(&self) -> u64 {
        self.state.log_number
    }

    /// The last sequence number recorded.
    pub fn last_sequence(&self) -> SequenceNumber {
        self.state.last_sequence
    }
}

/// The state a manifest snapshot records.
#[derive(Debug)]
struct State {
    version: Version,
    next_file_number: u64,
    last_sequence: SequenceNumber,
    log_number: u64,
}

/// The whole state as one edit (the first record of every manifest).
fn snapshot(state: &State) -> VersionEdit {
    let new_files = (0..state.version.num_levels())
        .flat_map(|level| {
            state
                .version
                .files(level)
                .iter()
                .map(move |f| (level, FileMeta::clone(f)))
        })
        .collect();
    VersionEdit {
        key_order: Some(KEY_ORDER.to_string()),
        log_number: Some(state.log_number),
        next_file_number: Some(state.next_file_number),
        last_sequence: Some(state.last_sequence),
        deleted_files: Vec::new(),
        new_files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::fs::{CrashMode, MemFs};
    use crate::key::{ValueKind, append_internal_key};

    fn ikey(user: &[u8], seq: u64) -> Vec<u8> {
        let mut k = Vec::new();
        append_internal_key(&mut k, user, seq, ValueKind::Put);
        k
    }

    fn table(number: u64, from: &[u8], to: &[u8], seq: u64) -> FileMeta {
        FileMeta {
            number,
            size: 1000,
            smallest: ikey(from, seq),
            largest: ikey(to, seq),
            min_sequence: seq,
            max_sequence: seq,
        }
    }

    fn setup() -> (MemFs, PathBuf) {
        let fs = MemFs::new();
        fs.create_dir_all(Path::new("/db")).unwrap();
        (fs, PathBuf::from("/db"))
    }

    #[test]
    fn edits_survive_a_crash_and_recovery_restores_files_and_counters() {
        let (fs, dir) = setup();
        let mut set = VersionSet::create(&fs, &dir, 7, 1, 1 << 20).unwrap();
        let t1 = set.new_file_number();
        let t2 = set.new_file_number();
        set.log_and_apply(
            &fs,
            VersionEdit {
                new_files: vec![(0, table(t1, b"a", b"m", 5)), (1, table(t2, b"a", b"z", 2))],
                last_sequence: Some(5),
                log_number: Some(t2),
                ..VersionEdit::default()
            },
        )
        .unwrap();
        let t3 = set.new_file_number();
        set.log_and_apply(
            &fs,
            VersionEdit {
                new_files: vec![(0, table(t3, b"b", b"c", 9))],
                last_sequence: Some(9),
                ..VersionEdit::default()
            },
        )
        .unwrap();
        let before = set.current();
        let handed_out = set.new_file_number();
        fs.crash(CrashMode::DropUnsynced);

        let set = VersionSet::recover(&fs, &dir, 7, 1 << 20, []).unwrap();
        assert_eq!(*set.current(), *before);
        assert_eq!(
            set.current()
                .files(0)
                .iter()
                .map(|f| f.number)
                .collect::<Vec<_>>(),
            vec![t3, t1],
            "L0 newest first"
        );
        assert_eq!((set.last_sequence(), set.log_number()), (9, t2));
        let mut set = set;
        assert!(
            set.new_file_number() > handed_out,
            "file numbers never repeat, even unrecorded ones"
        );
    }

    #[test]
    fn the_manifest_rolls_over_past_its_size_limit_and_stays_recoverable() {
        let (fs, dir) = setup();
        let mut set = VersionSet::create(&fs, &dir, 7, 1, 4096).unwrap();
        let first_manifest = set.manifest_number();
        let mut live = Vec::new();
        for i in 0..200u64 {
            let n = set.new_file_number();
            let mut edit = VersionEdit {
                new_files: vec![(0, table(n, b"k", b"k", i + 1))],
                last_sequence: Some(i + 1),
                ..VersionEdit::default()
            };
            if live.len() > 3 {
                edit.deleted_files.push((0, live.remove(0)));
            }
            live.push(n);
            set.log_and_apply(&fs, edit).unwrap();
        }
        assert_ne!(set.manifest_number(), first_manifest);
        let manifests = fs
            .list(&dir)
            .unwrap()
            .into_iter()
            .filter(|n| n.starts_with("MANIFEST-"))
            .count();
        assert_eq!(manifests, 1, "old manifests are removed");
        let expected = set.current();
        let set = VersionSet::recover(&fs, &dir, 7, 4096, []).unwrap();
        assert_eq!(*set.current(), *expected);
        assert_eq!(set.last_sequence(), 200);
    }

    #[test]
    fn adjacent_tables_with_long_user_keys_do_not_count_as_overlapping() {
        let v = Version::empty(3);
        let edit = VersionEdit {
            new_files: vec![
                (1, table(1, &1u64.to_be_bytes(), &5u64.to_be_bytes(), 1)),
                (1, table(2, &6u64.to_be_bytes(), &9u64.to_be_bytes(), 1)),
            ],
            ..VersionEdit::default()
        };
        assert_eq!(v.apply(&edit).unwrap().files(1).len(), 2);
        let overlapping = VersionEdit {
            new_files: vec![(1, table(3, &5u64.to_be_bytes(), &6u64.to_be_bytes(), 1))],
            ..VersionEdit::default()
        };
        assert!(v.apply(&edit).unwrap().apply(&overlapping).is_err());
    }

    /// Found by `tests/corruption.rs`: a bit flipped in a digit of `CURRENT` named a
    /// manifest that is not there, and the open failed with `Io` (ENOENT), whose advice is
    /// to check the device and retry.
    #[test]
    fn a_current_naming_a_missing_manifest_is_corruption_naming_current() {
        let (fs, dir) = setup();
        VersionSet::create(&fs, &dir, 7, 1, 1 << 20).unwrap();
        manifest::set_current(&fs, &dir, 100_001).unwrap();
        let err = VersionSet::read(&fs, &dir, 7, []).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
        assert_eq!(err.file(), Some(dir.join(manifest::CURRENT).as_path()));
        assert!(err.message().contains("MANIFEST-100001"), "{err}");
    }

    #[test]
    fn a_contradictory_manifest_is_corruption() {
        let v = Version::empty(3);
        let delete_missing = VersionEdit {
            deleted_files: vec![(0, 4)],
            ..VersionEdit::default()
        };
        assert_eq!(
            v.apply(&delete_missing).unwrap_err().kind(),
            ErrorKind::Corruption
        );
        let overlapping = VersionEdit {
            new_files: vec![(1, table(1, b"a", b"m", 1)), (1, table(2, b"k", b"z", 1))],
            ..VersionEdit::default()
        };
        assert_eq!(
            v.apply(&overlapping).unwrap_err().kind(),
            ErrorKind::Corruption
        );
        let too_deep = VersionEdit {
            new_files: vec![(5, table(1, b"a", b"b", 1))],
            ..VersionEdit::default()
        };
        assert_eq!(
            v.apply(&too_deep).unwrap_err().kind(),
            ErrorKind::Corruption
        );
        let once = v
            .apply(&VersionEdit {
                new_files: vec![(0, table(1, b"a", b"b", 1))],
                ..VersionEdit::default()
            })
            .unwrap();
        let twice = VersionEdit {
            new_files: vec![(0, table(1, b"a", b"b", 1))],
            ..VersionEdit::default()
        };
        assert_eq!(
            once.apply(&twice).unwrap_err().kind(),
            ErrorKind::Corruption
        );
    }

    #[test]
    fn a_crash_at_any_point_of_a_rollover_leaves_a_recoverable_manifest() {
        // Count the operations of one edit that triggers a rollover, then crash at each.
        let run = |fs: &MemFs| -> Result<()> {
            let dir = Path::new("/db");
            let mut set = VersionSet::recover(fs, dir, 7, 64, [])?;
            let n = set.new_file_number();
            set.log_and_apply(
                fs,
                VersionEdit {
                    new_files: vec![(0, table(n, b"a", b"b", 3))],
                    last_sequence: Some(3),
                    ..VersionEdit::default()
                },
            )?;
            Ok(())
        };
        let prepare = || {
            let (fs, dir) = setup();
            VersionSet::create(&fs, &dir, 7, 1, 64).unwrap();
            fs
        };
        let clean = prepare();
        let start = clean.op_count();
        run(&clean).unwrap();
        let total = clean.op_count() - start;
        for point in 0..total {
            let fs = prepare();
            fs.fail_nth(fs.op_count() + point, crate::fs::Fault::Halt);
            let acked = run(&fs).is_ok();
            fs.crash(CrashMode::DropUnsynced);
            let set = VersionSet::recover(&fs, Path::new("/db"), 7, 64, [])
                .unwrap_or_else(|e| panic!("crash point {point}: {e}"));
            let tables = set.current().files(0).len();
            assert!(tables <= 1, "crash point {point}");
            if acked {
                assert_eq!(
                    tables, 1,
                    "crash point {point}: an acknowledged edit was lost"
                );
            }
        }
    }
}
