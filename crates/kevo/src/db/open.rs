//! Opening a database: check the directory, take the lock, create or recover, start a WAL.
//!
//! A new database gets its manifest, then `CURRENT` (which marks the directory as a kevo
//! database), then its OPTIONS file and first WAL, each published with a directory sync. A
//! crash before `CURRENT` leaves no database (the next open starts over); after it, a
//! complete one. Opening an existing database reads the manifest and replays the WALs
//! before it writes anything, so an open that fails changes no file.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex};

use arc_swap::ArcSwap;

use super::files::{self, FileKind};
use super::flush::FlushState;
use super::tables::TableCache;
use super::{CloseOnDrop, DbInner, ReadView, WriterState, spawn_interval_sync};
use crate::Db;
use crate::batch::WriteBatch;
use crate::error::{Error, ErrorKind, Result};
use crate::fs::{Fs, FsLock, read_file, write_file_atomic};
use crate::key::SequenceNumber;
use crate::memtable::MemTable;
use crate::options::{Options, SyncMode, WalRecoveryMode};
use crate::options_file::OptionsFile;
use crate::version::set::{RecoveredVersions, VersionSet};
use crate::wal::{self, LogWriter};

/// OPTIONS files are small; a larger one is refused before it is read.
const OPTIONS_FILE_LIMIT: u64 = 1 << 20;

/// What the directory holds, from its listing.
struct Listing {
    /// Files kevo owns, with their kinds.
    ours: Vec<(String, FileKind)>,
    /// Whether anything else is there.
    foreign: bool,
}

impl Listing {
    fn read(fs: &dyn Fs, dir: &Path) -> Result<Self> {
        let names = fs
            .list(dir)
            .map_err(|e| Error::io("listing the database directory", e).with_file(dir))?;
        let mut ours = Vec::new();
        let mut foreign = false;
        for name in names {
            match files::parse(&name) {
                Some(kind) => ours.push((name, kind)),
                None => foreign = true,
            }
        }
        Ok(Listing { ours, foreign })
    }

    /// CURRENT marks a database: it is written last when one is created.
    fn is_database(&self) -> bool {
        self.ours.iter().any(|(_, k)| *k == FileKind::Current)
    }

    /// Files that only a database would hold, beyond what an interrupted creation leaves
    /// (lock, OPTIONS, a manifest not yet named by CURRENT, temporary files).
    fn has_data(&self) -> bool {
        self.ours
            .iter()
            .any(|(_, k)| matches!(k, FileKind::Wal(_) | FileKind::Table(_)))
    }

    fn numbers(&self, kind: impl Fn(FileKind) -> Option<u64>) -> Vec<u64> {
        let mut numbers: Vec<u64> = self.ours.iter().filter_map(|(_, k)| kind(*k)).collect();
        numbers.sort_unstable();
        numbers
    }

    fn max_number(&self) -> u64 {
        self.ours
            .iter()
            .filter_map(|(_, k)| match *k {
                FileKind::Manifest(n)
                | FileKind::Wal(n)
                | FileKind::Table(n)
                | FileKind::Options(n) => Some(n),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }
}

pub(super) fn open(dir: &Path, opts: Options) -> Result<Db> {
    opts.validate()?;
    let fs = match opts.fs.with_private_files() {
        Some(private) if opts.private_files => private,
        _ => opts.fs.clone(),
    };
    prepare_directory(fs.as_ref(), dir, &opts)?;
    let lock = take_lock(fs.as_ref(), dir, "the database is locked by another opener")?;
    let listing = Listing::read(fs.as_ref(), dir)?;
    check_directory(&listing, dir, &opts)?;
    if listing.is_database() {
        check_options_file(fs.as_ref(), dir, &listing)?;
    } else {
        // A creation interrupted before CURRENT was written: start it over.
        remove_files(fs.as_ref(), dir, &listing, |k| {
            matches!(k, FileKind::Options(_) | FileKind::Manifest(_))
        })?;
    }
    remove_files(fs.as_ref(), dir, &listing, |k| k == FileKind::Temp)?;

    // Everything up to the WAL replay only reads, so an open that fails changes no file.
    let used: Vec<u64> = listing
        .ours
        .iter()
        .filter_map(|(_, k)| number_of(*k))
        .collect();
    let recovered = if listing.is_database() {
        Some(VersionSet::read(fs.as_ref(), dir, opts.max_levels, used)?)
    } else {
        None
    };
    if opts.paranoid_checks
        && let Some(recovered) = &recovered
    {
        check_tables_exist(fs.as_ref(), dir, recovered.version())?;
        check_oldest_wal_exists(&listing, recovered)?;
    }
    let log_number = recovered.as_ref().map_or(0, RecoveredVersions::log_number);
    let mem = MemTable::new();
    let wal_numbers = listing.numbers(|k| {
        if let FileKind::Wal(n) = k {
            (n >= log_number).then_some(n)
        } else {
            None
        }
    });
    let replayed = recover_wals(fs.as_ref(), dir, &wal_numbers, opts.wal_recovery_mode, &mem)?;
    let last_sequence = replayed.last_sequence.max(
        recovered
            .as_ref()
            .map_or(0, RecoveredVersions::last_sequence),
    );

    let mut state = recovered.unwrap_or_else(|| {
        RecoveredVersions::new_database(opts.max_levels, listing.max_number() + 1)
    });
    // The new WAL's number is taken first, so the manifest's snapshot can name the oldest
    // WAL that exists from now on: the oldest replayed one, or else the new one. Every
    // manifest then names a WAL that is there (see `check_oldest_wal_exists`).
    let wal_number = state.new_file_number();
    state.raise_log_number(replayed.live_wals.first().copied().unwrap_or(wal_number));
    let mut versions = VersionSet::install(fs.as_ref(), dir, state, opts.max_manifest_size)?;
    let version = versions.current();
    // Files no version or live WAL needs: WALs already flushed, tables of a flush that did
    // not commit, manifests CURRENT does not name.
    let manifest = versions.manifest_number();
    remove_files(fs.as_ref(), dir, &listing, |k| match k {
        FileKind::Wal(n) => n < log_number,
        FileKind::Table(n) => !version.file_numbers().any(|live| live == n),
        FileKind::Manifest(n) => n != manifest,
        _ => false,
    })?;

    publish_options(
        fs.as_ref(),
        dir,
        &opts,
        &listing,
        versions.new_file_number(),
    )?;
    let wal = LogWriter::create(
        fs.as_ref(),
        &dir.join(files::wal_name(wal_number)),
        wal_number,
        opts.memtable_size as u64,
    )?;
    fs.sync_dir(dir)
        .map_err(|e| Error::io("syncing the database directory", e).with_file(dir))?;

    let mut live_wals = replayed.live_wals;
    live_wals.push(wal_number);
    let parts = Parts {
        lock,
        versions,
        mem,
        wal,
        wal_number,
        live_wals,
        last_sequence,
    };
    start(dir, fs, opts, parts)
}

/// `paranoid_checks`: every table the manifest names is there with the size it records,
/// or the open fails with `Corruption` before any file is written (instead of the first
/// read that needs the table failing later).
fn check_tables_exist(
    fs: &dyn Fs,
    dir: &Path,
    version: &crate::version::set::Version,
) -> Result<()> {
    for level in 0..version.num_levels() {
        for table in version.files(level) {
            let path = dir.join(files::table_name(table.number));
            let size = fs.open(&path).and_then(|f| f.len()).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::corruption(format!(
                        "table {} (level {level}) that the manifest names is missing",
                        table.number
                    ))
                    .with_file(&path)
                } else {
                    Error::io("checking a table's size", e).with_file(&path)
                }
            })?;
            if size != table.size {
                return Err(Error::corruption(format!(
                    "table {} (level {level}) is {size} bytes, the manifest says {}",
                    table.number, table.size
                ))
                .with_file(&path));
            }
        }
    }
    Ok(())
}

/// `paranoid_checks`: the WAL the manifest names as the oldest live one (its log number)
/// is there, or no later WAL is. Every manifest names a WAL that exists (it may be empty):
/// the snapshot written at open names the oldest replayed WAL or the new one, a flush's
/// edit names the WAL after its memtable, and WALs are deleted only once an edit naming a
/// later one is durable. So if the named WAL is gone while a later one exists, edits are
/// missing from the manifest's end (it was cut short, or its last record damaged into what
/// reads as a torn append, or the cut fell between records): the writes of the deleted
/// WALs are in tables only those edits named, and opening would lose them silently.
/// (A log number of 0 names no WAL: manifests of databases created before this check.)
fn check_oldest_wal_exists(listing: &Listing, recovered: &RecoveredVersions) -> Result<()> {
    let log_number = recovered.log_number();
    let wals = listing.numbers(|k| match k {
        FileKind::Wal(n) => Some(n),
        _ => None,
    });
    if !oldest_wal_missing(log_number, &wals) {
        return Ok(());
    }
    let error = Error::corruption(oldest_wal_missing_message(log_number));
    Err(match recovered.manifest() {
        Some(manifest) => error.with_file(manifest),
        None => error,
    })
}

/// Whether the WAL numbered `log_number` (a manifest's oldest live one) is missing from
/// `wals` (the WAL numbers in the directory) while a later one is there: the manifest lost
/// edits (see `check_oldest_wal_exists`). `kevo check` asks the same.
pub(crate) fn oldest_wal_missing(log_number: u64, wals: &[u64]) -> bool {
    log_number != 0 && !wals.contains(&log_number) && wals.iter().any(|&n| n > log_number)
}

pub(crate) fn oldest_wal_missing_message(log_number: u64) -> String {
    format!(
        "the manifest names {} as the oldest live WAL, but it is gone while later WALs exist: \
         edits are missing from the manifest's end (cut short or damaged)",
        files::wal_name(log_number)
    )
}

/// The first read view: what the WALs replayed goes to the background flush at once (as
/// RocksDB flushes at recovery), so the replayed WALs go with it instead of piling up over
/// reopens; new writes go to a fresh memtable.
fn recovered_view(
    replayed: MemTable,
    wal_number: u64,
    version: Arc<crate::version::set::Version>,
) -> ReadView {
    if replayed.is_empty() {
        return ReadView {
            mem: Arc::new(replayed),
            imm: Vec::new(),
            version,
            floor: 0,
        };
    }
    ReadView {
        mem: Arc::new(MemTable::new()),
        imm: vec![super::FrozenMemTable {
            mem: Arc::new(replayed),
            next_log: wal_number,
        }],
        version,
        floor: 0,
    }
}

/// What a successful recovery hands to the running database.
struct Parts {
    lock: Box<dyn FsLock>,
    versions: VersionSet,
    mem: MemTable,
    wal: LogWriter,
    wal_number: u64,
    live_wals: Vec<u64>,
    last_sequence: u64,
}

/// Builds the running database and starts its background threads.
fn start(dir: &Path, fs: Arc<dyn Fs>, opts: Options, parts: Parts) -> Result<Db> {
    let interval = match opts.sync_mode {
        SyncMode::Interval(every) => Some(every),
        SyncMode::Always | SyncMode::None => None,
    };
    let version = parts.versions.current();
    let inner = Arc::new(DbInner {
        dir: dir.to_path_buf(),
        tables: Arc::new(TableCache::new(
            fs.clone(),
            dir,
            opts.block_cache_size,
            opts.max_open_files,
            opts.max_levels,
        )),
        fs,
        view: ArcSwap::from_pointee(recovered_view(parts.mem, parts.wal_number, version)),
        visible_sequence: AtomicU64::new(parts.last_sequence),
        commits: super::CommitQueue::new(),
        writer: Mutex::new(WriterState {
            wal: parts.wal,
            wal_good_len: 0,
            last_sequence: parts.last_sequence,
        }),
        background_error: Mutex::new(None),
        closed: AtomicBool::new(false),
        lock: Mutex::new(Some(parts.lock)),
        sync_thread: Arc::new((Mutex::new(false), Condvar::new())),
        versions: Mutex::new(parts.versions),
        view_change: Mutex::new(()),
        live_wals: Mutex::new(parts.live_wals),
        flush_state: Mutex::new(FlushState::default()),
        flush_signal: Condvar::new(),
        workers: Mutex::new(Vec::new()),
        snapshots: Mutex::new(std::collections::BTreeMap::new()),
        compactions: Mutex::new(super::background::CompactionState::default()),
        compaction_signal: Condvar::new(),
        manual_compaction: Mutex::new(()),
        rate_limiter: opts
            .compaction_rate_limit
            .map(crate::compaction::rate_limiter::RateLimiter::new),
        filter_tuning: super::filters::FilterTuning::new(opts.max_levels),
        level_stats: (0..opts.max_levels)
            .map(|_| crate::metrics::LevelCounters::default())
            .collect(),
        obsolete_tables: Mutex::new(Vec::new()),
        stats: crate::metrics::Counters::default(),
        listeners: crate::listener::Listeners::new(opts.listeners.clone()),
        health_window: Mutex::new(super::health::HealthWindow::new()),
        opts,
    });
    let workers = super::background::spawn_workers(&inner)?;
    *super::lock(&inner.workers) = workers;
    let db = Db {
        _close_on_drop: Arc::new(CloseOnDrop(inner.clone())),
        inner,
    };
    if let Some(every) = interval {
        spawn_interval_sync(
            Arc::downgrade(&db.inner),
            db.inner.sync_thread.clone(),
            every,
        )?;
    }
    Ok(db)
}

fn number_of(kind: FileKind) -> Option<u64> {
    match kind {
        FileKind::Manifest(n) | FileKind::Wal(n) | FileKind::Table(n) | FileKind::Options(n) => {
            Some(n)
        }
        _ => None,
    }
}

/// Removes the listed files of the kinds `which` selects.
fn remove_files(
    fs: &dyn Fs,
    dir: &Path,
    listing: &Listing,
    which: impl Fn(FileKind) -> bool,
) -> Result<()> {
    for (name, _) in listing.ours.iter().filter(|(_, k)| which(*k)) {
        let path = dir.join(name);
        match fs.remove(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing an obsolete file", e).with_file(&path)),
        }
    }
    Ok(())
}

/// Creates the directory if allowed, and refuses one that is not ours before anything is
/// written to it (the lock file included).
fn prepare_directory(fs: &dyn Fs, dir: &Path, opts: &Options) -> Result<()> {
    let exists = fs
        .exists(dir)
        .map_err(|e| Error::io("checking the database directory", e).with_file(dir))?;
    if !exists {
        if !opts.create_if_missing {
            return Err(Error::new(
                ErrorKind::NotFound,
                "no database directory (create_if_missing is false)",
            )
            .with_file(dir));
        }
        fs.create_dir_all(dir)
            .map_err(|e| Error::io("creating the database directory", e).with_file(dir))?;
    }
    check_directory(&Listing::read(fs, dir)?, dir, opts)
}

/// Takes the database's LOCK; `Concurrency` with `held` when another opener has it.
pub(crate) fn take_lock(fs: &dyn Fs, dir: &Path, held: &str) -> Result<Box<dyn FsLock>> {
    fs.lock(&dir.join(files::LOCK)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            Error::new(ErrorKind::Concurrency, held.to_string())
                .with_file(dir)
                .with_source(e)
        } else {
            Error::io("taking the database lock", e).with_file(dir)
        }
    })
}

/// Records the options of this open as `OPTIONS-<number>`, then drops older OPTIONS files.
fn publish_options(
    fs: &dyn Fs,
    dir: &Path,
    opts: &Options,
    listing: &Listing,
    number: u64,
) -> Result<()> {
    let path = dir.join(files::options_name(number));
    write_file_atomic(fs, &path, &OptionsFile::current(opts).encode())
        .map_err(|e| Error::io("writing the OPTIONS file", e).with_file(&path))?;
    for old in listing.numbers(|k| {
        if let FileKind::Options(n) = k {
            Some(n)
        } else {
            None
        }
    }) {
        let path = dir.join(files::options_name(old));
        fs.remove(&path)
            .map_err(|e| Error::io("removing an old OPTIONS file", e).with_file(&path))?;
    }
    Ok(())
}

/// Refuses directories that hold something other than a kevo database, and honours
/// `create_if_missing` / `error_if_exists`.
fn check_directory(listing: &Listing, dir: &Path, opts: &Options) -> Result<()> {
    if listing.is_database() {
        if opts.error_if_exists {
            return Err(Error::new(
                ErrorKind::Config,
                "a database already exists (error_if_exists is true)",
            )
            .with_file(dir));
        }
        return Ok(());
    }
    if listing.foreign || listing.has_data() {
        return Err(Error::new(
            ErrorKind::Config,
            "the directory holds other files and no CURRENT file: not a kevo database; nothing was changed",
        )
        .with_file(dir));
    }
    if !opts.create_if_missing {
        return Err(Error::new(
            ErrorKind::NotFound,
            "no database in the directory (create_if_missing is false)",
        )
        .with_file(dir));
    }
    Ok(())
}

/// Reads the newest OPTIONS file and checks that this build can open the database.
fn check_options_file(fs: &dyn Fs, dir: &Path, listing: &Listing) -> Result<()> {
    let numbers = listing.numbers(|k| {
        if let FileKind::Options(n) = k {
            Some(n)
        } else {
            None
        }
    });
    let Some(&newest) = numbers.last() else {
        return Ok(());
    };
    let path = dir.join(files::options_name(newest));
    let bytes = read_file(fs, &path, OPTIONS_FILE_LIMIT).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            Error::corruption("OPTIONS file is larger than any kevo writes").with_file(&path)
        } else {
            Error::io("reading the OPTIONS file", e).with_file(&path)
        }
    })?;
    let stored = OptionsFile::decode(&bytes).map_err(|e| e.with_file(&path))?;
    stored.check_compatible().map_err(|e| e.with_file(&path))
}

/// What WAL replay restored.
struct Recovered {
    last_sequence: SequenceNumber,
    /// WALs still holding data (all of them, until flush exists).
    live_wals: Vec<u64>,
}

/// Replays every WAL, oldest first, into `mem`, and syncs it: after a process crash its tail
/// may still sit unsynced in the OS cache, and the new log's synced writes must never
/// outlive it. Sequence numbers must increase from batch to batch across all logs. A tolerated torn tail is cut off (and synced) so it cannot be
/// mistaken later for damage in the middle of the history; point-in-time recovery also
/// removes every later log.
fn recover_wals(
    fs: &dyn Fs,
    dir: &Path,
    numbers: &[u64],
    mode: WalRecoveryMode,
    mem: &MemTable,
) -> Result<Recovered> {
    let mut last_sequence = 0;
    let mut live_wals = Vec::new();
    for (i, &number) in numbers.iter().enumerate() {
        let path = dir.join(files::wal_name(number));
        let outcome = wal::replay(fs, &path, number, mode, |payload, offset| {
            let batch =
                WriteBatch::decode(payload).map_err(|e| e.with_file(&path).with_offset(offset))?;
            if batch.is_empty() {
                return Ok(());
            }
            if batch.sequence() <= last_sequence {
                return Err(Error::corruption(format!(
                    "WAL batch at sequence {} does not follow sequence {last_sequence}",
                    batch.sequence()
                ))
                .with_file(&path)
                .with_offset(offset));
            }
            // The batch's last sequence must exist: checksummed but impossible data is
            // damage too (it would wrap into the trailer's kind byte).
            let last = batch
                .sequence()
                .checked_add(batch.len() as u64 - 1) // not empty: checked above
                .filter(|&l| l <= crate::key::MAX_SEQUENCE);
            let Some(batch_last) = last else {
                return Err(Error::corruption(format!(
                    "WAL batch at sequence {} runs past the largest sequence number",
                    batch.sequence()
                ))
                .with_file(&path)
                .with_offset(offset));
            };
            for (j, entry) in batch.iter().enumerate() {
                mem.add(
                    batch.sequence() + j as u64,
                    entry.kind,
                    entry.key,
                    entry.value,
                );
            }
            last_sequence = batch_last;
            Ok(())
        })?;
        live_wals.push(number);
        let Some((damage_at, reason)) = outcome.damage else {
            sync_log(fs, &path)?;
            continue;
        };
        let later = &numbers[i + 1..];
        if mode == WalRecoveryMode::TolerateCorruptedTail && any_nonempty(fs, dir, later)? {
            return Err(Error::corruption(format!(
                "WAL damaged ({reason}) and later logs hold writes"
            ))
            .with_file(&path)
            .with_offset(damage_at));
        }
        if matches!(
            mode,
            WalRecoveryMode::TolerateCorruptedTail | WalRecoveryMode::PointInTime
        ) {
            cut_tail(fs, &path, outcome.valid_end)?;
        }
        if outcome.stopped {
            for &n in later {
                let later_path = dir.join(files::wal_name(n));
                fs.remove(&later_path).map_err(|e| {
                    Error::io("removing a WAL past the recovery point", e).with_file(&later_path)
                })?;
            }
            fs.sync_dir(dir)
                .map_err(|e| Error::io("syncing the database directory", e).with_file(dir))?;
            break;
        }
    }
    Ok(Recovered {
        last_sequence,
        live_wals,
    })
}

fn any_nonempty(fs: &dyn Fs, dir: &Path, numbers: &[u64]) -> Result<bool> {
    for &n in numbers {
        let path = dir.join(files::wal_name(n));
        let file = fs
            .open(&path)
            .map_err(|e| Error::io("opening a WAL file", e).with_file(&path))?;
        if file
            .len()
            .map_err(|e| Error::io("reading a WAL file's length", e).with_file(&path))?
            > 0
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn sync_log(fs: &dyn Fs, path: &Path) -> Result<()> {
    let file = fs
        .open_append(path)
        .map_err(|e| Error::io("opening a replayed WAL to sync it", e).with_file(path))?;
    file.sync()
        .map_err(|e| Error::io("syncing a replayed WAL", e).with_file(path))
}

fn cut_tail(fs: &dyn Fs, path: &Path, len: u64) -> Result<()> {
    let file = fs
        .open_append(path)
        .map_err(|e| Error::io("opening a WAL to cut its torn tail", e).with_file(path))?;
    file.truncate(len).and_then(|()| file.sync()).map_err(|e| {
        Error::io("cutting a torn WAL tail", e)
            .with_file(path)
            .with_offset(len)
    })
}
