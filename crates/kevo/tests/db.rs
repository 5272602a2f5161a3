//! The Db through its public API: persistence across reopen, bad input, locking, degraded
//! state after write failures, WAL recovery modes.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use kevo::fs::{CrashMode, Fault, Fs, MemFs, OpKind};
use kevo::{Db, ErrorKind, Options, SyncMode, WalRecoveryMode, WriteBatch, WriteOptions};

#[test]
fn writes_survive_reopen_on_the_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.put(b"a", b"1").unwrap();
    db.put(b"b", b"2").unwrap();
    db.delete(b"a").unwrap();
    db.put_opt(b"c", b"3", &WriteOptions { sync: true })
        .unwrap();
    db.close().unwrap();
    assert_eq!(db.get(b"b").unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(db.put(b"x", b"y").unwrap_err().kind(), ErrorKind::Closed);

    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get(b"a").unwrap(), None);
    assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(db.get(b"c").unwrap().as_deref(), Some(&b"3"[..]));
}

#[test]
fn many_memtables_of_writes_read_back_after_many_restarts() {
    let fs = MemFs::new();
    let mut model = Model::new();
    for round in 0..8 {
        let db = Db::open(DIR, memfs_options(&fs)).unwrap();
        assert_eq!(read_state(&db), model, "after reopen {round}");
        for op in workload(60, round) {
            op.apply_to_db(&db).unwrap();
            op.apply_to_model(&mut model);
        }
        assert_eq!(read_state(&db), model, "before close {round}");
        if round % 2 == 0 {
            db.close().unwrap();
        } // else: dropped without close, as a process that just exits
    }
    let files = listing(&fs, DIR);
    let wals = files.iter().filter(|n| n.ends_with(".wal")).count();
    let tables = files.iter().filter(|n| n.ends_with(".sst")).count();
    assert!(tables >= 1, "a 1 KiB memtable is flushed often: {files:?}");
    assert!(wals <= 4, "flushed WALs are deleted: {files:?}");
}

#[test]
fn bad_keys_and_values_are_invalid_arguments_and_change_nothing() {
    let fs = MemFs::new();
    let opts = memfs_options(&fs).max_key_size(8).max_value_size(16);
    let db = Db::open(DIR, opts.clone()).unwrap();
    db.put(b"ok", b"fine").unwrap();
    let cases: Vec<(&[u8], &[u8])> = vec![(b"", b"v"), (b"123456789", b"v"), (b"k", &[0; 17])];
    for (k, v) in cases {
        assert_eq!(
            db.put(k, v).unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "{k:?}"
        );
    }
    assert_eq!(
        db.delete(b"").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(db.get(b"").unwrap_err().kind(), ErrorKind::InvalidArgument);
    let mut batch = WriteBatch::new();
    batch.put(b"good", b"v");
    batch.put(b"", b"bad");
    assert_eq!(
        db.write(batch).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        db.get(b"good").unwrap(),
        None,
        "a rejected batch applies nothing"
    );
    drop(db);
    let db = Db::open(DIR, opts).unwrap();
    assert_eq!(
        read_state_of(&db, &[b"ok", b"good"]),
        vec![Some(b"fine".to_vec()), None]
    );
}

fn read_state_of(db: &Db, keys: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
    keys.iter()
        .map(|k| db.get(k).unwrap().map(|v| v.to_vec()))
        .collect()
}

#[test]
fn a_second_open_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let err = Db::open(dir.path(), Options::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Concurrency, "{err}");
    let clone = db.clone();
    drop(db);
    assert_eq!(
        Db::open(dir.path(), Options::default()).unwrap_err().kind(),
        ErrorKind::Concurrency,
        "a clone keeps it open"
    );
    clone.close().unwrap();
    Db::open(dir.path(), Options::default()).unwrap();
}

#[test]
fn a_missing_database_with_create_if_missing_false_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = Db::open(&missing, Options::default().create_if_missing(false)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(!missing.exists(), "nothing was created");
    let err = Db::open(dir.path(), Options::default().create_if_missing(false)).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::NotFound,
        "an empty directory holds no database"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_directory_of_other_files_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let err = Db::open(dir.path(), Options::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("notes.txt")],
        "no LOCK, no OPTIONS written"
    );
}

#[test]
fn error_if_exists_refuses_an_existing_database() {
    let fs = MemFs::new();
    Db::open(DIR, memfs_options(&fs)).unwrap().close().unwrap();
    let err = Db::open(DIR, memfs_options(&fs).error_if_exists(true)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}

#[test]
fn a_database_of_a_newer_format_is_refused_as_config() {
    let fs = MemFs::new();
    Db::open(DIR, memfs_options(&fs)).unwrap().close().unwrap();
    let options = listing(&fs, DIR)
        .into_iter()
        .find(|n| n.starts_with("OPTIONS-"))
        .unwrap();
    let body = "{\"options_version\": 1, \"format_version\": 2, \"key_order\": \"bytewise\", \"options\": {}}\n";
    let sum = xxhash_rust::xxh3::xxh3_64(body.as_bytes());
    kevo::fs::write_file_atomic(
        &fs,
        &Path::new(DIR).join(options),
        format!("{body}checksum xxh3-64 {sum:016x}\n").as_bytes(),
    )
    .unwrap();
    let err = Db::open(DIR, memfs_options(&fs)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

#[test]
fn enospc_on_the_wal_makes_the_db_read_only_until_resume() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs).memtable_size(1 << 20)).unwrap();
    db.put(b"before", b"1").unwrap();
    fs.fail_matching(Fault::Enospc, |op| {
        op.kind == OpKind::Append && op.path.extension().is_some_and(|e| e == "wal")
    });
    let err = db.put(b"failed", b"2").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Resource, "{err}");
    assert_eq!(
        db.background_error().map(|e| e.kind()),
        Some(ErrorKind::Resource)
    );
    assert_eq!(
        db.put(b"later", b"3").unwrap_err().kind(),
        ErrorKind::Resource,
        "read-only"
    );
    assert_eq!(
        db.get(b"before").unwrap().as_deref(),
        Some(&b"1"[..]),
        "reads go on"
    );
    assert_eq!(db.get(b"failed").unwrap(), None);

    fs.clear_faults();
    db.resume().unwrap();
    assert!(db.background_error().is_none());
    db.put(b"after", b"4").unwrap();
    drop(db);
    fs.crash(CrashMode::DropUnsynced);
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    assert_eq!(
        read_state_of(&db, &[b"before", b"failed", b"later", b"after"]),
        vec![Some(b"1".to_vec()), None, None, Some(b"4".to_vec())]
    );
}

#[test]
fn a_torn_append_is_cut_back_by_resume_and_history_stays_consistent() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs).memtable_size(1 << 20)).unwrap();
    db.put(b"a", b"1").unwrap();
    fs.fail_nth(fs.op_count(), Fault::Torn { keep: 5 });
    assert_eq!(db.put(b"b", b"2").unwrap_err().kind(), ErrorKind::Io);
    db.resume().unwrap();
    db.put(b"c", b"3").unwrap();
    drop(db);
    // Default recovery mode: a torn record followed by valid ones would be an error; resume
    // cut it away, so the history reads back whole.
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    assert_eq!(
        read_state_of(&db, &[b"a", b"b", b"c"]),
        vec![Some(b"1".to_vec()), None, Some(b"3".to_vec())]
    );
}

#[test]
fn a_failed_sync_is_never_acknowledged_and_degrades_the_db() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs).memtable_size(1 << 20)).unwrap();
    db.put(b"a", b"1").unwrap();
    fs.fail_matching(Fault::Eio, |op| op.kind == OpKind::Sync);
    assert_eq!(db.put(b"b", b"2").unwrap_err().kind(), ErrorKind::Io);
    assert_eq!(
        db.get(b"b").unwrap(),
        None,
        "a write whose sync failed is not visible"
    );
    fs.clear_faults();
    db.resume().unwrap();
    db.put(b"c", b"3").unwrap();
    drop(db);
    fs.crash(CrashMode::DropUnsynced);
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    assert_eq!(
        read_state_of(&db, &[b"a", b"b", b"c"]),
        vec![Some(b"1".to_vec()), None, Some(b"3".to_vec())]
    );
}

/// Damages one byte in the middle of the oldest WAL.
fn damage_middle_of_first_wal(fs: &MemFs) {
    let wal = listing(fs, DIR)
        .into_iter()
        .find(|n| n.ends_with(".wal"))
        .unwrap();
    let path = Path::new(DIR).join(&wal);
    let mut bytes = kevo::fs::read_file(fs, &path, 1 << 30).unwrap();
    bytes[20] ^= 0x40;
    kevo::fs::write_file_atomic(fs, &path, &bytes).unwrap();
}

#[test]
fn corruption_in_the_middle_of_the_wal_fails_the_open_by_default() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs).memtable_size(1 << 20)).unwrap();
    for i in 0..20u32 {
        db.put(i.to_be_bytes(), [7u8; 100]).unwrap();
    }
    db.close().unwrap();
    damage_middle_of_first_wal(&fs);
    let before = listing(&fs, DIR);
    let err = Db::open(DIR, memfs_options(&fs)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
    assert!(err.file().is_some() && err.offset().is_some(), "{err}");
    assert_eq!(listing(&fs, DIR), before, "a failed open changes no file");

    let err = Db::open(
        DIR,
        memfs_options(&fs).wal_recovery_mode(WalRecoveryMode::AbsoluteConsistency),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption);

    let db = Db::open(
        DIR,
        memfs_options(&fs).wal_recovery_mode(WalRecoveryMode::SkipAnyCorrupted),
    )
    .unwrap();
    let survivors = (0..20u32)
        .filter(|i| db.get(i.to_be_bytes()).unwrap().is_some())
        .count();
    assert_eq!(survivors, 19, "exactly the damaged record is skipped");
}

#[test]
fn point_in_time_recovery_keeps_the_history_before_the_damage() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs).memtable_size(1 << 20)).unwrap();
    for i in 0..20u32 {
        db.put(i.to_be_bytes(), [7u8; 100]).unwrap();
    }
    db.close().unwrap();
    damage_middle_of_first_wal(&fs);
    let db = Db::open(
        DIR,
        memfs_options(&fs).wal_recovery_mode(WalRecoveryMode::PointInTime),
    )
    .unwrap();
    let present: Vec<bool> = (0..20u32)
        .map(|i| db.get(i.to_be_bytes()).unwrap().is_some())
        .collect();
    let kept = present.iter().take_while(|p| **p).count();
    assert!(
        present[kept..].iter().all(|p| !p),
        "a prefix of the history: {present:?}"
    );
    assert!(kept < 20);
    db.put(b"new", b"write").unwrap();
    drop(db);
    // The damage was cut away: the default mode now opens cleanly.
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    assert_eq!(db.get(b"new").unwrap().as_deref(), Some(&b"write"[..]));
}

#[test]
fn interval_sync_makes_writes_durable_in_the_background() {
    let fs = MemFs::new();
    let opts = memfs_options(&fs)
        .memtable_size(1 << 20)
        .sync_mode(SyncMode::Interval(Duration::from_millis(5)));
    let db = Db::open(DIR, opts.clone()).unwrap();
    db.put(b"k", b"v").unwrap();
    // Wait (bounded) for the background sync to cover the write.
    let wal = listing(&fs, DIR)
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .max()
        .unwrap();
    let path = Path::new(DIR).join(wal);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fs.durable_content(&path).is_none_or(|d| d.is_empty())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    fs.crash(CrashMode::DropUnsynced);
    drop(db);
    let db = Db::open(DIR, opts).unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn sync_mode_none_still_syncs_on_explicit_sync_and_close() {
    let fs = MemFs::new();
    let opts = memfs_options(&fs)
        .memtable_size(1 << 20)
        .sync_mode(SyncMode::None);
    let db = Db::open(DIR, opts.clone()).unwrap();
    db.put(b"a", b"1").unwrap();
    db.sync().unwrap();
    db.put(b"b", b"2").unwrap();
    fs.crash(CrashMode::DropUnsynced);
    drop(db);
    let db = Db::open(DIR, opts.clone()).unwrap();
    assert_eq!(
        read_state_of(&db, &[b"a", b"b"]),
        vec![Some(b"1".to_vec()), None]
    );
    db.put(b"c", b"3").unwrap();
    db.close().unwrap();
    fs.crash(CrashMode::DropUnsynced);
    let db = Db::open(DIR, opts).unwrap();
    assert_eq!(db.get(b"c").unwrap().as_deref(), Some(&b"3"[..]));
}

#[test]
fn readers_never_see_half_a_batch() {
    // Each writer owns a pair of keys and writes the same increasing version to both in one
    // batch. A reader that reads the first key and then the second must find the second at
    // least as new: seeing it older would mean the batch was visible in part.
    let fs = MemFs::new();
    let db = Db::open(
        DIR,
        memfs_options(&fs)
            .memtable_size(64 << 10)
            .sync_mode(SyncMode::None),
    )
    .unwrap();
    let pairs = 4u64;
    let pair_key = |p: u64, second: bool| format!("pair{p}-{}", u8::from(second)).into_bytes();
    let version = |db: &Db, k: &[u8]| {
        db.get(k)
            .unwrap()
            .map_or(0, |v| u64::from_be_bytes(v[..].try_into().unwrap()))
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..pairs)
        .map(|p| {
            let db = db.clone();
            std::thread::spawn(move || {
                for v in 1..=500u64 {
                    let mut batch = WriteBatch::new();
                    batch.put(pair_key(p, false), v.to_be_bytes());
                    batch.put(pair_key(p, true), v.to_be_bytes());
                    db.write(batch).unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut checks = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for p in 0..pairs {
                        let first = version(&db, &pair_key(p, false));
                        let second = version(&db, &pair_key(p, true));
                        assert!(
                            second >= first,
                            "pair {p}: second key at {second}, first at {first}"
                        );
                        checks += 1;
                    }
                }
                checks
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    for p in 0..pairs {
        assert_eq!(
            (
                version(&db, &pair_key(p, false)),
                version(&db, &pair_key(p, true))
            ),
            (500, 500)
        );
    }
}

#[test]
fn a_rejected_open_of_a_locked_memfs_database_changes_nothing() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    db.put(b"k", b"v").unwrap();
    let before = listing(&fs, DIR);
    assert_eq!(
        Db::open(DIR, memfs_options(&fs)).unwrap_err().kind(),
        ErrorKind::Concurrency
    );
    assert_eq!(listing(&fs, DIR), before);
    assert!(fs.exists(Path::new("/db/LOCK")).unwrap());
}

#[test]
fn private_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default().private_files(true)).unwrap();
    db.put(b"k", b"v").unwrap();
    db.close().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{:?}", entry.file_name());
    }
}

#[test]
fn later_entries_of_a_batch_win_in_the_memtable_and_after_recovery() {
    // Entry i of a batch gets sequence base + i in the log and the memtable alike, so two
    // writes of one key in one batch keep their order everywhere.
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs).memtable_size(1 << 20)).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(b"k", b"first");
    batch.delete(b"k");
    batch.put(b"k", b"last");
    batch.put(b"gone", b"x");
    batch.delete(b"gone");
    db.write(batch).unwrap();
    assert_eq!(
        read_state_of(&db, &[b"k", b"gone"]),
        vec![Some(b"last".to_vec()), None]
    );
    drop(db);
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    assert_eq!(
        read_state_of(&db, &[b"k", b"gone"]),
        vec![Some(b"last".to_vec()), None]
    );
}

/// A file system that delegates to MemFs but holds every file sync until released, so a
/// test can act while a commit is in the middle of its fsync.
#[derive(Debug, Clone)]
struct GatedSyncFs {
    inner: MemFs,
    gate: Arc<(std::sync::Mutex<GateState>, std::sync::Condvar)>,
    only: Option<&'static str>,
}

#[derive(Debug, Default)]
struct GateState {
    closed: bool,
    waiting: usize,
}

impl GatedSyncFs {
    fn new(inner: MemFs) -> Self {
        GatedSyncFs {
            inner,
            gate: Arc::default(),
            only: None,
        }
    }

    /// Gates only the syncs of files whose path contains `part`.
    fn only(inner: MemFs, part: &'static str) -> Self {
        GatedSyncFs {
            inner,
            gate: Arc::default(),
            only: Some(part),
        }
    }

    fn gates(&self, path: &Path) -> bool {
        self.only
            .is_none_or(|part| path.to_string_lossy().contains(part))
    }

    fn close_gate(&self) {
        self.gate.0.lock().unwrap().closed = true;
    }

    fn open_gate(&self) {
        self.gate.0.lock().unwrap().closed = false;
        self.gate.1.notify_all();
    }

    /// Waits until `n` syncs are held at the gate.
    fn wait_for_held_syncs(&self, n: usize) {
        let mut state = self.gate.0.lock().unwrap();
        while state.waiting < n {
            state = self.gate.1.wait(state).unwrap();
        }
    }
}

#[derive(Debug)]
struct GatedFile {
    inner: Box<dyn kevo::fs::FsFile>,
    gate: Arc<(std::sync::Mutex<GateState>, std::sync::Condvar)>,
    /// Whether this file's syncs wait at the gate.
    gated: bool,
}

impl kevo::fs::FsFile for GatedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn append(&self, data: &[u8]) -> std::io::Result<()> {
        self.inner.append(data)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn truncate(&self, len: u64) -> std::io::Result<()> {
        self.inner.truncate(len)
    }
    fn allocate(&self, len: u64) -> std::io::Result<()> {
        self.inner.allocate(len)
    }
    fn sync(&self) -> std::io::Result<()> {
        if !self.gated {
            return self.inner.sync();
        }
        let (lock, wake) = &*self.gate;
        let mut state = lock.lock().unwrap();
        state.waiting += 1;
        wake.notify_all();
        while state.closed {
            state = wake.wait(state).unwrap();
        }
        state.waiting -= 1;
        drop(state);
        self.inner.sync()
    }
}

impl Fs for GatedSyncFs {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn kevo::fs::FsFile>> {
        Ok(Box::new(GatedFile {
            inner: self.inner.create(path)?,
            gate: self.gate.clone(),
            gated: self.gates(path),
        }))
    }
    fn open(&self, path: &Path) -> std::io::Result<Box<dyn kevo::fs::FsFile>> {
        Ok(Box::new(GatedFile {
            inner: self.inner.open(path)?,
            gate: self.gate.clone(),
            gated: self.gates(path),
        }))
    }
    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn kevo::fs::FsFile>> {
        Ok(Box::new(GatedFile {
            inner: self.inner.open_append(path)?,
            gate: self.gate.clone(),
            gated: self.gates(path),
        }))
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        self.inner.exists(path)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn lock(&self, path: &Path) -> std::io::Result<Box<dyn kevo::fs::FsLock>> {
        self.inner.lock(path)
    }
}

#[test]
fn reads_do_not_wait_for_a_commit_that_is_syncing() {
    let fs = GatedSyncFs::new(MemFs::new());
    let db = Db::open(DIR, Options::default().fs(Arc::new(fs.clone()))).unwrap();
    db.put(b"old", b"1").unwrap();
    fs.close_gate();
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || db.put(b"new", b"2"))
    };
    fs.wait_for_held_syncs(1);
    // The commit is stuck in its fsync; reads go on and do not see the unacknowledged write.
    for _ in 0..100 {
        assert_eq!(db.get(b"old").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(db.get(b"new").unwrap(), None);
    }
    fs.open_gate();
    writer.join().unwrap().unwrap();
    assert_eq!(db.get(b"new").unwrap().as_deref(), Some(&b"2"[..]));
}

#[test]
fn writers_queued_behind_a_sync_share_the_next_one() {
    let mem = MemFs::new();
    let fs = GatedSyncFs::new(mem.clone());
    let db = Db::open(DIR, Options::default().fs(Arc::new(fs.clone()))).unwrap();
    fs.close_gate();
    let first = {
        let db = db.clone();
        std::thread::spawn(move || db.put(b"first", b"x"))
    };
    fs.wait_for_held_syncs(1);
    mem.start_trace();
    // Eight more writers queue while the first group's fsync is held.
    let queued: Vec<_> = (0..8)
        .map(|i| {
            let db = db.clone();
            std::thread::spawn(move || db.put(format!("queued{i}"), b"y"))
        })
        .collect();
    // Give them time to reach the queue (they cannot commit while the gate is closed).
    std::thread::sleep(Duration::from_millis(200));
    fs.open_gate();
    first.join().unwrap().unwrap();
    for q in queued {
        q.join().unwrap().unwrap();
    }
    let trace = mem.take_trace();
    let syncs = trace.iter().filter(|t| t.op.kind == OpKind::Sync).count();
    let appends = trace.iter().filter(|t| t.op.kind == OpKind::Append).count();
    // The held group's sync, then one append and one sync per later group. Without group
    // commit the eight queued writers would take eight groups; with it they share one (or,
    // on a very slow machine, a few).
    assert_eq!(
        syncs,
        appends + 1,
        "one sync per commit group ({syncs} syncs, {appends} appends)"
    );
    assert!(
        appends < 8,
        "the queued writers were committed in {appends} groups"
    );
    for i in 0..8 {
        assert!(db.get(format!("queued{i}")).unwrap().is_some());
    }
}

#[test]
fn flush_writes_a_table_deletes_the_wal_and_reads_come_from_tables_after_reopen() {
    let fs = MemFs::new();
    // No compaction: the test counts the tables flushes write.
    let opts = memfs_options(&fs)
        .memtable_size(1 << 20)
        .disable_auto_compactions(true);
    let db = Db::open(DIR, opts.clone()).unwrap();
    for i in 0..100u32 {
        db.put(format!("k{i:03}"), format!("v{i}")).unwrap();
    }
    db.delete(b"k007").unwrap();
    db.flush().unwrap();
    let files = listing(&fs, DIR);
    assert_eq!(
        files.iter().filter(|n| n.ends_with(".sst")).count(),
        1,
        "{files:?}"
    );
    assert_eq!(
        files.iter().filter(|n| n.ends_with(".wal")).count(),
        1,
        "only the new WAL is left: {files:?}"
    );
    // A newer write shadows the table; a delete in a newer table shadows an older one.
    db.put(b"k001", b"newer").unwrap();
    db.flush().unwrap();
    db.delete(b"k002").unwrap();
    db.flush().unwrap();
    db.flush().unwrap(); // nothing to flush: no empty table
    assert_eq!(
        listing(&fs, DIR)
            .iter()
            .filter(|n| n.ends_with(".sst"))
            .count(),
        3
    );
    drop(db);
    fs.crash(CrashMode::DropUnsynced);
    let db = Db::open(DIR, opts).unwrap();
    assert_eq!(db.get(b"k000").unwrap().as_deref(), Some(&b"v0"[..]));
    assert_eq!(db.get(b"k001").unwrap().as_deref(), Some(&b"newer"[..]));
    assert_eq!(db.get(b"k002").unwrap(), None);
    assert_eq!(db.get(b"k007").unwrap(), None);
    assert_eq!(db.get(b"k099").unwrap().as_deref(), Some(&b"v99"[..]));
    assert_eq!(db.get(b"k100").unwrap(), None);
}

#[test]
fn enospc_during_flush_degrades_the_db_reads_go_on_and_resume_retries() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs).memtable_size(1 << 20)).unwrap();
    for i in 0..50u32 {
        db.put(format!("k{i:03}"), [1u8; 64]).unwrap();
    }
    fs.fail_matching(Fault::Enospc, |op| {
        op.kind == OpKind::Append && op.path.to_string_lossy().contains(".sst")
    });
    let err = db.flush().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Resource, "{err}");
    assert_eq!(
        db.background_error().map(|e| e.kind()),
        Some(ErrorKind::Resource)
    );
    assert_eq!(
        db.put(b"x", b"y").unwrap_err().kind(),
        ErrorKind::Resource,
        "read-only"
    );
    assert_eq!(
        db.get(b"k010").unwrap().as_deref(),
        Some(&[1u8; 64][..]),
        "reads go on from the frozen memtable"
    );
    assert!(
        listing(&fs, DIR).iter().all(|n| !n.ends_with(".sst")),
        "no half-written table is published"
    );
    fs.clear_faults();
    db.resume().unwrap();
    db.flush().unwrap();
    assert_eq!(
        listing(&fs, DIR)
            .iter()
            .filter(|n| n.ends_with(".sst"))
            .count(),
        1
    );
    db.put(b"x", b"y").unwrap();
    drop(db);
    fs.crash(CrashMode::DropUnsynced);
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    assert_eq!(db.get(b"k049").unwrap().as_deref(), Some(&[1u8; 64][..]));
    assert_eq!(db.get(b"x").unwrap().as_deref(), Some(&b"y"[..]));
}

#[test]
fn eio_on_the_manifest_during_flush_degrades_and_nothing_is_lost() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs).memtable_size(1 << 20)).unwrap();
    db.put(b"a", b"1").unwrap();
    fs.fail_matching(Fault::Eio, |op| {
        op.kind == OpKind::Sync && op.path.to_string_lossy().contains("MANIFEST")
    });
    assert_eq!(db.flush().unwrap_err().kind(), ErrorKind::Io);
    assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    fs.clear_faults();
    db.resume().unwrap();
    db.flush().unwrap();
    drop(db);
    fs.crash(CrashMode::DropUnsynced);
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn writers_and_readers_with_flushes_running_never_see_a_value_go_back() {
    let fs = MemFs::new();
    let db = Db::open(
        DIR,
        memfs_options(&fs)
            .memtable_size(4 << 10)
            .sync_mode(SyncMode::None),
    )
    .unwrap();
    let keys = 16u64;
    let writers: Vec<_> = (0..8u64)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                // Writer t owns keys t and t + 8; values count up.
                for v in 1..=300u64 {
                    for k in [t, t + 8] {
                        db.put(k.to_be_bytes(), v.to_be_bytes()).unwrap();
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut seen = vec![0u64; keys as usize];
                for _ in 0..300 {
                    for k in 0..keys {
                        let v = db
                            .get(k.to_be_bytes())
                            .unwrap()
                            .map_or(0, |v| u64::from_be_bytes(v[..].try_into().unwrap()));
                        assert!(
                            v >= seen[k as usize],
                            "key {k} went back from {} to {v}",
                            seen[k as usize]
                        );
                        seen[k as usize] = v;
                    }
                }
            })
        })
        .collect();
    for t in writers.into_iter().chain(readers) {
        t.join().unwrap();
    }
    for k in 0..keys {
        assert_eq!(
            db.get(k.to_be_bytes()).unwrap().as_deref(),
            Some(&300u64.to_be_bytes()[..])
        );
    }
    let tables: usize = db.lsm_shape().levels.iter().map(|l| l.tables).sum();
    assert!(tables >= 1, "flushes ran meanwhile");
}

#[test]
fn a_write_stalled_behind_flushes_fails_with_resource_after_the_timeout() {
    // Table syncs hang, so flushes never finish; with one frozen memtable allowed, the
    // write that needs to freeze another waits, then gives up.
    let fs = GatedSyncFs::only(MemFs::new(), ".sst");
    let opts = Options::default()
        .fs(Arc::new(fs.clone()))
        .memtable_size(1 << 10)
        .max_memtables(1)
        .sync_mode(SyncMode::None)
        .write_stall_timeout(Some(Duration::from_millis(100)));
    let db = Db::open(DIR, opts).unwrap();
    fs.close_gate();
    let mut result = Ok(());
    for i in 0..100u32 {
        result = db.put(i.to_be_bytes(), [0u8; 200]);
        if result.is_err() {
            break;
        }
    }
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Resource, "{err}");
    assert!(err.to_string().contains("stall"), "{err}");
    assert!(
        db.background_error().is_none(),
        "a stall is not a failure of the database"
    );
    fs.open_gate();
    db.flush().unwrap();
    db.put(b"after", b"the stall").unwrap();
}

/// The tables in the directory: file name and properties.
fn tables(fs: &MemFs) -> Vec<(String, kevo::sst::properties::TableProperties)> {
    listing(fs, DIR)
        .into_iter()
        .filter(|n| n.ends_with(".sst"))
        .map(|n| {
            let number = n.trim_end_matches(".sst").parse().unwrap();
            let table =
                kevo::sst::table::Table::open(fs, &Path::new(DIR).join(&n), number, None).unwrap();
            (n, table.properties().clone())
        })
        .collect()
}

/// The properties of every table in the directory.
fn table_properties(fs: &MemFs) -> Vec<kevo::sst::properties::TableProperties> {
    tables(fs).into_iter().map(|(_, p)| p).collect()
}

#[test]
fn a_deleted_key_stays_deleted_through_compactions_and_tombstones_go_at_the_bottom() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    for i in 0..200u32 {
        db.put(format!("k{i:04}"), [7u8; 40]).unwrap();
    }
    db.compact().unwrap();
    let deepest = db
        .lsm_shape()
        .levels
        .iter()
        .rposition(|l| l.tables > 0)
        .unwrap();
    assert_eq!(
        deepest, 6,
        "a full compaction moves everything to the last level"
    );
    for i in (0..200u32).step_by(3) {
        db.delete(format!("k{i:04}")).unwrap();
    }
    // Tombstones go down through the levels with automatic compactions, then all the way.
    db.flush().unwrap();
    for i in 0..200u32 {
        assert_eq!(
            db.get(format!("k{i:04}")).unwrap().is_some(),
            i % 3 != 0,
            "k{i:04}"
        );
    }
    db.compact().unwrap();
    for i in 0..200u32 {
        assert_eq!(
            db.get(format!("k{i:04}")).unwrap().is_some(),
            i % 3 != 0,
            "k{i:04} after compaction"
        );
    }
    let props = table_properties(&fs);
    assert_eq!(
        props.iter().map(|p| p.deletions).sum::<u64>(),
        0,
        "no tombstone survives a full compaction"
    );
    assert_eq!(
        props.iter().map(|p| p.entries).sum::<u64>(),
        133,
        "one version per live key"
    );
    drop(db);
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    assert_eq!(db.iter().count(), 133);
}

#[test]
fn a_snapshot_keeps_the_versions_it_sees_through_compaction() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    db.put(b"k", b"v1").unwrap();
    db.put(b"gone", b"here").unwrap();
    let snap = db.snapshot();
    db.put(b"k", b"v2").unwrap();
    db.delete(b"gone").unwrap();
    db.compact().unwrap();
    assert_eq!(snap.get(b"k").unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(snap.get(b"gone").unwrap().as_deref(), Some(&b"here"[..]));
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v2"[..]));
    assert_eq!(db.get(b"gone").unwrap(), None);
    drop(snap);
    db.compact().unwrap();
    let entries: u64 = table_properties(&fs).iter().map(|p| p.entries).sum();
    assert_eq!(entries, 1, "without the snapshot only k=v2 remains");
}

#[test]
fn an_overwrite_workload_keeps_disk_use_near_the_live_data() {
    let fs = MemFs::new();
    let db = Db::open(
        DIR,
        memfs_options(&fs)
            .target_file_size(4 << 10)
            .memtable_size(4 << 10),
    )
    .unwrap();
    let live_bytes: u64 = 100 * (8 + 8 + 100);
    let mut worst = 0.0f64;
    for round in 0..60u64 {
        for k in 0..100u64 {
            db.put(k.to_be_bytes(), [round as u8; 100]).unwrap();
        }
        let on_disk: u64 = db.lsm_shape().levels.iter().map(|l| l.bytes).sum();
        worst = worst.max(on_disk as f64 / live_bytes as f64);
    }
    // 6 000 writes of 100 keys: without compaction the tables would hold ~60x the live data.
    assert!(worst < 8.0, "space amplification reached {worst:.1}x");
    db.compact().unwrap();
    let on_disk: u64 = db.lsm_shape().levels.iter().map(|l| l.bytes).sum();
    assert!(
        (on_disk as f64) < 3.0 * live_bytes as f64,
        "after a full compaction: {on_disk} bytes for {live_bytes} live"
    );
    // Background compaction may start again as soon as `compact` returns: count the
    // files with it off (and what the reopen replayed flushed).
    db.close().unwrap();
    let db = Db::open(
        DIR,
        memfs_options(&fs)
            .target_file_size(4 << 10)
            .memtable_size(4 << 10)
            .disable_auto_compactions(true),
    )
    .unwrap();
    db.flush().unwrap();
    let files = listing(&fs, DIR)
        .into_iter()
        .filter(|n| n.ends_with(".sst"))
        .count();
    let tables: usize = db.lsm_shape().levels.iter().map(|l| l.tables).sum();
    assert_eq!(files, tables, "replaced tables are deleted");
}

#[test]
fn l0_tables_slow_writes_then_stop_them_until_compaction_catches_up() {
    let fs = MemFs::new();
    let opts = memfs_options(&fs)
        .memtable_size(1 << 20)
        .disable_auto_compactions(true)
        .l0_compaction_trigger(1)
        .l0_slowdown_trigger(2)
        .l0_stop_trigger(3)
        .write_stall_timeout(Some(Duration::from_millis(100)));
    let db = Db::open(DIR, opts).unwrap();
    for i in 0..3u32 {
        db.put(i.to_be_bytes(), b"v").unwrap();
        db.flush().unwrap();
    }
    let before = db.metrics();
    assert_eq!(before.lsm.levels[0].tables, 3, "no background compaction");
    assert_eq!(
        (before.write_slowdowns, before.write_stalls),
        (1, 0),
        "the third write was slowed at 2 L0 tables"
    );
    let err = db.put(b"blocked", b"v").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Resource, "{err}");
    assert!(err.to_string().contains("L0"), "{err}");
    let stalled = db.metrics();
    assert_eq!(stalled.write_stalls, 1);
    assert!(
        stalled.write_stall_micros >= 100_000,
        "{}",
        stalled.write_stall_micros
    );
    db.compact().unwrap();
    assert_eq!(db.metrics().lsm.levels[0].tables, 0);
    db.put(b"after", b"compaction").unwrap();
    assert_eq!(
        db.get(b"blocked").unwrap(),
        None,
        "the stalled write applied nothing"
    );
}

#[test]
fn metrics_count_every_operation_exactly_and_export_as_prometheus_and_json() {
    let fs = MemFs::new();
    let db = Db::open(
        DIR,
        memfs_options(&fs)
            .memtable_size(1 << 20)
            .disable_auto_compactions(true),
    )
    .unwrap();
    for i in 0..10u32 {
        db.put(format!("k{i}"), b"value").unwrap();
    }
    let mut batch = WriteBatch::new();
    batch.put(b"b1", b"x");
    batch.put(b"b2", b"y");
    batch.delete(b"k0");
    db.write(batch).unwrap();
    db.delete(b"k1").unwrap();
    for i in 0..10u32 {
        db.get(format!("k{i}")).unwrap();
    }
    db.get(b"missing").unwrap();
    db.flush().unwrap();
    db.compact().unwrap();
    let m = db.metrics();
    assert_eq!((m.puts, m.deletes, m.writes), (12, 2, 12));
    assert_eq!(m.bytes_written, 10 * (2 + 5) + (2 + 1) * 2 + 2 + 2);
    assert_eq!((m.gets, m.get_hits, m.bytes_read), (11, 8, 8 * 5));
    assert_eq!(m.commit_groups, 12, "one writer: one group per write");
    assert_eq!(m.wal_syncs, 12, "SyncMode::Always syncs every group");
    assert_eq!(m.flushes, 1);
    assert!(m.compactions >= 1 && m.compaction_bytes_written > 0);
    assert!(m.write_amplification > 0.0);
    // One get in 8 per thread is timed: 11 calls give 1 or 2 samples, whatever the phase.
    assert!(
        (1..=2).contains(&m.get_latency.count),
        "{}",
        m.get_latency.count
    );
    assert_eq!(m.write_latency.count, 12);
    assert!(
        m.get_latency.p50_nanos <= m.get_latency.p99_nanos
            && m.get_latency.p99_nanos <= m.get_latency.max_nanos
    );
    assert!(m.get_latency.max_nanos > 0);

    let text = m.to_prometheus();
    let mut samples = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            assert!(
                rest.starts_with("HELP kevo_") || rest.starts_with("TYPE kevo_"),
                "{line}"
            );
            continue;
        }
        // name{labels} value, with a name of [a-zA-Z_:][a-zA-Z0-9_:]* and a float value.
        let (series, value) = line.rsplit_once(' ').unwrap();
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.starts_with("kevo_")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty()
                    || (labels.starts_with('{') && labels.ends_with('}') && labels.contains("=\"")),
                "{line}"
            );
        }
        samples += 1;
    }
    assert!(samples > 30, "{text}");
    assert!(text.contains("kevo_puts_total 12\n"), "{text}");
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["gets"], 11);
    assert_eq!(json["lsm"]["levels"][0]["tables"], 0);
}

#[test]
fn a_flush_drops_overwritten_versions_unless_a_snapshot_sees_them() {
    let fs = MemFs::new();
    let db = Db::open(
        DIR,
        memfs_options(&fs)
            .memtable_size(1 << 20)
            .disable_auto_compactions(true),
    )
    .unwrap();
    db.put(b"k", b"v1").unwrap();
    db.put(b"k", b"v2").unwrap();
    db.put(b"k", b"v3").unwrap();
    db.delete(b"gone").unwrap();
    db.flush().unwrap();
    let entries: u64 = table_properties(&fs).iter().map(|p| p.entries).sum();
    assert_eq!(
        entries, 2,
        "k=v3 and the tombstone (older data may sit below)"
    );

    db.put(b"s", b"old").unwrap();
    let snap = db.snapshot();
    db.put(b"s", b"new").unwrap();
    db.flush().unwrap();
    let entries: u64 = table_properties(&fs).iter().map(|p| p.entries).sum();
    assert_eq!(entries, 4, "both versions of s are kept for the snapshot");
    assert_eq!(snap.get(b"s").unwrap().as_deref(), Some(&b"old"[..]));
    assert_eq!(db.get(b"s").unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v3"[..]));
}

/// Table file names with the smallest user key of each.
fn tables_by_smallest_key(fs: &MemFs) -> Vec<(String, Vec<u8>)> {
    tables(fs)
        .into_iter()
        .map(|(n, p)| (n, kevo::key::user_key(&p.smallest_key).to_vec()))
        .collect()
}

#[test]
fn compact_range_rewrites_only_the_tables_holding_the_range() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs).disable_auto_compactions(true)).unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..200u32 {
        // Incompressible values, so the 1 KiB target cuts the bottom level into many tables.
        let value: Vec<u8> = (0..30)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        db.put(format!("k{i:03}"), value).unwrap();
    }
    db.compact().unwrap();
    let untouched: Vec<String> = tables_by_smallest_key(&fs)
        .into_iter()
        .filter(|(_, smallest)| smallest.as_slice() >= &b"k060"[..])
        .map(|(n, _)| n)
        .collect();
    assert!(
        untouched.len() >= 2,
        "the test needs several bottom tables: {untouched:?} of {:?}",
        tables_by_smallest_key(&fs)
    );
    for i in 0..50u32 {
        db.delete(format!("k{i:03}")).unwrap();
    }
    db.compact_range(&b"k000"[..]..&b"k050"[..]).unwrap();
    let after: Vec<String> = listing(&fs, DIR)
        .into_iter()
        .filter(|n| n.ends_with(".sst"))
        .collect();
    for name in &untouched {
        assert!(
            after.contains(name),
            "{name} holds no key of the range and must not be rewritten"
        );
    }
    let deletions: u64 = table_properties(&fs).iter().map(|p| p.deletions).sum();
    assert_eq!(
        deletions, 0,
        "the range's tombstones reached the bottom and went"
    );
    for i in 0..200u32 {
        assert_eq!(
            db.get(format!("k{i:03}")).unwrap().is_some(),
            i >= 50,
            "k{i:03}"
        );
    }
}

/// Table files in the directory, sorted.
fn table_files(fs: &MemFs) -> Vec<String> {
    let mut names: Vec<String> = listing(fs, DIR)
        .into_iter()
        .filter(|n| n.ends_with(".sst") || n.ends_with(".tmp"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_compaction_that_fails_midway_loses_nothing_and_leaves_no_table_behind() {
    let fs = MemFs::new();
    // A bulk load: no background compaction, and no L0 stall either.
    let options = memfs_options(&fs)
        .disable_auto_compactions(true)
        .l0_slowdown_trigger(1000)
        .l0_stop_trigger(1000);
    let db = Db::open(DIR, options).unwrap();
    let expected: Vec<(String, Vec<u8>)> = (0..300u32)
        .map(|i| (format!("k{i:04}"), vec![(i % 251) as u8; 40]))
        .collect();
    for (k, v) in &expected {
        db.put(k, v).unwrap();
    }
    db.flush().unwrap();
    let before = table_files(&fs);
    assert!(before.len() > 4, "many L0 tables to merge: {before:?}");
    // The 41st table append from now fails: several outputs are already written by then.
    let appends = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = appends.clone();
    fs.fail_matching(Fault::Enospc, move |op| {
        op.kind == OpKind::Append
            && op.path.to_string_lossy().contains(".sst")
            && counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 40
    });
    let err = db.compact().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Resource, "{err}");
    assert!(appends.load(std::sync::atomic::Ordering::Relaxed) > 40);
    assert_eq!(
        table_files(&fs),
        before,
        "outputs of the failed job are gone"
    );
    let check = |db: &Db| {
        for (k, v) in &expected {
            assert_eq!(db.get(k).unwrap().as_deref(), Some(&v[..]), "{k}");
        }
        assert_eq!(db.iter().count(), expected.len());
    };
    check(&db);
    fs.clear_faults();
    db.compact().unwrap();
    check(&db);
    let after = table_files(&fs);
    assert!(after.iter().all(|n| !before.contains(n)), "all rewritten");
    drop(db);
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    check(&db);
}

/// A writer stalled at `l0_stop_trigger` once held the writer lock while it waited, so the
/// `Db::compact` that would free it could not start: the stall could only time out.
#[test]
fn a_manual_compaction_ends_a_write_stall() {
    let fs = MemFs::new();
    let opts = memfs_options(&fs)
        .memtable_size(1 << 20)
        .disable_auto_compactions(true)
        .l0_compaction_trigger(1)
        .l0_slowdown_trigger(2)
        .l0_stop_trigger(3)
        .write_stall_timeout(Some(Duration::from_secs(30)));
    let db = Db::open(DIR, opts).unwrap();
    for i in 0..3u32 {
        db.put(i.to_be_bytes(), b"v").unwrap();
        db.flush().unwrap();
    }
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || db.put(b"stalled", b"v"))
    };
    // Let the writer reach the stall (if it has not, it simply does not stall).
    std::thread::sleep(Duration::from_millis(50));
    db.compact().unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(db.get(b"stalled").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(db.lsm_shape().levels[0].tables, 0);
}

/// A checksummed WAL batch whose sequence numbers run past the largest one is damage, not a
/// batch to apply (it once reached a debug assertion, and in release builds wrapped).
#[test]
fn a_wal_batch_past_the_largest_sequence_number_is_corruption() {
    let fs = MemFs::new();
    let opts = memfs_options(&fs).memtable_size(1 << 20);
    let db = Db::open(DIR, opts.clone()).unwrap();
    db.put(b"a", b"1").unwrap();
    db.close().unwrap();
    // sequence 2^60 (u64 LE), one entry (u32 LE): put "k" = "v".
    let mut payload = (1u64 << 60).to_le_bytes().to_vec();
    payload.extend_from_slice(&1u32.to_le_bytes());
    payload.extend_from_slice(&[1, 1, b'k', 1, b'v']);
    let path = Path::new(DIR).join("999999.wal");
    let mut wal = kevo::wal::LogWriter::create(&fs, &path, 999_999, 0).unwrap();
    wal.add_records([payload.as_slice()]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let err = Db::open(DIR, opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
    assert!(err.to_string().contains("largest sequence"), "{err}");
}

/// Each open once added a WAL, preallocated to `memtable_size` (64 MiB by default), that
/// stayed until the next flush: a database opened for one write at a time piled up
/// hundreds of megabytes. Measured on the real file system, where preallocation takes
/// blocks.
#[cfg(unix)]
#[test]
fn reopening_again_and_again_does_not_pile_up_wal_space() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let wal_blocks = |dir: &Path| -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
            .map(|e| e.metadata().unwrap().blocks() * 512)
            .sum()
    };
    for i in 0..6u32 {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        db.put(format!("k{i}"), b"v").unwrap();
        db.close().unwrap();
    }
    // Six opens at 64 MiB each would be 384 MiB.
    let bytes = wal_blocks(dir.path());
    assert!(bytes < 8 << 20, "{bytes} bytes of WAL on disk");
    let db = Db::open(dir.path(), Options::default()).unwrap();
    // What the open replayed is flushed, and its WALs go with it.
    db.flush().unwrap();
    let wals = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".wal")
        })
        .count();
    assert_eq!(wals, 1);
    for i in 0..6u32 {
        assert_eq!(db.get(format!("k{i}")).unwrap().as_deref(), Some(&b"v"[..]));
    }
}

/// `paranoid_checks` (the default): a table the manifest names that is missing or has
/// another size fails the open with `Corruption` and changes nothing; without it the open
/// goes on and the first read of that table reports the damage.
#[test]
fn paranoid_checks_find_a_missing_or_truncated_table_at_open() {
    for damage in ["missing", "truncated"] {
        let fs = MemFs::new();
        let opts = memfs_options(&fs)
            .memtable_size(1 << 20)
            .disable_auto_compactions(true);
        let db = Db::open(DIR, opts.clone()).unwrap();
        for i in 0..50u32 {
            db.put(format!("k{i:02}"), [1u8; 30]).unwrap();
        }
        db.flush().unwrap();
        db.close().unwrap();
        let table = listing(&fs, DIR)
            .into_iter()
            .find(|n| n.ends_with(".sst"))
            .unwrap();
        let path = Path::new(DIR).join(&table);
        if damage == "missing" {
            fs.remove(&path).unwrap();
        } else {
            let file = fs.open_append(&path).unwrap();
            file.truncate(100).unwrap();
            file.sync().unwrap();
        }
        let before = listing(&fs, DIR);
        let err = Db::open(DIR, opts.clone()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corruption, "{damage}: {err}");
        assert!(err.to_string().contains(&table[..6]), "{damage}: {err}");
        assert_eq!(listing(&fs, DIR), before, "{damage}: nothing changed");
        // Without the check the open goes on; the read that needs the table fails.
        let db = Db::open(DIR, opts.paranoid_checks(false)).unwrap();
        assert!(db.get(b"k01").is_err(), "{damage}");
    }
}

/// `FilterPolicy::Optimized`: tables of small, shallow levels get more bits per key than
/// tables of the large last level, and reads stay correct.
#[test]
fn optimized_filters_give_shallow_tables_more_bits_than_the_last_level() {
    let fs = MemFs::new();
    let opts = memfs_options(&fs)
        .filter_policy(kevo::FilterPolicy::Optimized { bits_per_key: 8.0 })
        .memtable_size(16 << 10)
        .disable_auto_compactions(true)
        .l0_slowdown_trigger(1000)
        .l0_stop_trigger(1000);
    let db = Db::open(DIR, opts).unwrap();
    // The last level ends up about 20 times the memtable.
    for i in 0..4000u32 {
        db.put(format!("k{i:04}"), [3u8; 40]).unwrap();
    }
    db.compact().unwrap();
    for i in 0..20u32 {
        db.put(format!("k{i:04}"), [4u8; 40]).unwrap();
    }
    db.flush().unwrap();
    let bits = |p: &kevo::sst::properties::TableProperties| -> f64 {
        p.filter_policy
            .strip_prefix("bits_per_key:")
            .map_or(0.0, |b| b.parse().unwrap())
    };
    let shape = db.lsm_shape();
    let l0 = shape.levels[0].tables;
    assert!(l0 >= 1 && shape.levels[6].tables >= 1, "{shape:?}");
    let all = table_properties(&fs);
    // The newest tables (largest sequences) are the L0 ones.
    let mut by_age = all.clone();
    by_age.sort_by_key(|p| std::cmp::Reverse(p.max_sequence));
    let (newest, oldest) = by_age.split_at(l0);
    let min_l0 = newest.iter().map(bits).fold(f64::MAX, f64::min);
    let max_last = oldest.iter().map(bits).fold(0.0, f64::max);
    assert!(min_l0 > max_last, "L0 {min_l0} bits, last level {max_last}");
    for i in 0..4000u32 {
        let want: &[u8] = if i < 20 { &[4u8; 40] } else { &[3u8; 40] };
        assert_eq!(db.get(format!("k{i:04}")).unwrap().as_deref(), Some(want));
    }
    assert_eq!(db.get(b"absent").unwrap(), None);
}
