//! Fault-injection sweeps on MemFs: one I/O fault (EIO, then ENOSPC) at every file-system
//! operation index of a small workload in turn. The workload (puts, deletes, batches, point
//! reads, an explicit flush, a full compaction and a reopen; a 1 KiB memtable so WALs
//! rotate and background flushes and compactions run) goes on after the fault: every call
//! either succeeds or fails with the fault's kind (`Io` for EIO, `Resource` for ENOSPC), a
//! degraded database is resumed, and at the end the database (live, after a close and
//! reopen, and after a power loss) holds exactly the acknowledged writes, plus possibly the
//! one write that failed.
//!
//! `KEVO_FAULT_OPS` sets the workload length (default 48 operations, several hundred fault
//! points per fault kind); `KEVO_FAULT_SEED` the workload seed (default 11).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;
use kevo::fs::{CrashMode, Fault, MemFs};
use kevo::{Db, ErrorKind, Options};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One step of the fault workload.
#[derive(Debug, Clone)]
enum Step {
    Write(Op),
    Get(Vec<u8>),
    Flush,
    Compact,
    Reopen,
}

fn steps(ops: usize, seed: u64) -> Vec<Step> {
    let mut steps = Vec::new();
    for (i, op) in workload(ops, seed).into_iter().enumerate() {
        if i == ops / 3 {
            steps.push(Step::Flush);
        }
        if i == ops / 2 {
            steps.push(Step::Reopen);
        }
        if i == 2 * ops / 3 {
            steps.push(Step::Compact);
        }
        if i % 4 == 3 {
            steps.push(Step::Get(key(i as u64 % 12)));
        }
        steps.push(Step::Write(op));
    }
    steps.push(Step::Get(key(0)));
    steps
}

/// What one run observed.
struct Report {
    /// Calls that failed.
    errors: usize,
    /// Whether the fault fired at all.
    fired: bool,
}

/// The state of one run: the database, and the two possible models (the one write that
/// failed may or may not have applied).
struct Run<'a> {
    fs: &'a MemFs,
    options: Options,
    expected: ErrorKind,
    context: String,
    /// The model without the failed write.
    without: Model,
    /// The model with the failed write applied where it was issued.
    with: Model,
    failed_writes: usize,
    errors: usize,
}

impl Run<'_> {
    /// Checks an error's kind; clears the fault (it fired).
    fn check_error(&mut self, what: &str, err: &kevo::Error) {
        self.errors += 1;
        assert_eq!(
            err.kind(),
            self.expected,
            "{}: {what} failed with the wrong kind: {err}",
            self.context
        );
        self.fs.clear_faults();
    }

    /// Resumes a degraded database (its error must have the fault's kind).
    fn resume_if_degraded(&mut self, db: &Db) {
        if let Some(err) = db.background_error() {
            assert_eq!(
                err.kind(),
                self.expected,
                "{}: background error of the wrong kind: {err}",
                self.context
            );
            self.fs.clear_faults();
            if let Err(e) = db.resume() {
                // The one fault may hit resume itself; a second attempt must succeed.
                self.check_error("resume", &e);
                db.resume()
                    .unwrap_or_else(|e| panic!("{}: second resume failed: {e}", self.context));
            }
            assert!(
                db.background_error().is_none(),
                "{}: still degraded after resume",
                self.context
            );
        }
    }

    fn open(&mut self) -> Db {
        match Db::open(DIR, self.options.clone()) {
            Ok(db) => db,
            Err(e) => {
                self.check_error("open", &e);
                Db::open(DIR, self.options.clone()).unwrap_or_else(|e| {
                    panic!("{}: open after the fault failed: {e}", self.context)
                })
            }
        }
    }

    fn close(&mut self, db: Db) {
        if let Err(e) = db.close() {
            self.check_error("close", &e);
        }
        drop(db);
    }

    /// Reads the whole key space by `get` and by a scan (they must agree); a read the fault
    /// hits fails with its kind and is retried.
    fn read_all(&mut self, db: &Db, when: &str) -> Model {
        let attempt = || -> kevo::Result<Model> {
            let mut state = Model::new();
            for k in all_keys() {
                if let Some(v) = db.get(&k)? {
                    state.insert(k, v.to_vec());
                }
            }
            let mut scanned = Model::new();
            for kv in db {
                let (k, v) = kv?;
                scanned.insert(k.to_vec(), v.to_vec());
            }
            assert_eq!(state, scanned, "gets and scan differ");
            Ok(state)
        };
        match attempt() {
            Ok(state) => state,
            Err(e) => {
                self.check_error(&format!("read ({when})"), &e);
                attempt()
                    .unwrap_or_else(|e| panic!("{}: {when}: read failed again: {e}", self.context))
            }
        }
    }

    /// The database's whole key space must be one of the two models: returns whether the
    /// failed write is in it.
    fn check_state(&mut self, db: &Db, when: &str) -> bool {
        let state = self.read_all(db, when);
        if state == self.without {
            false
        } else if state == self.with {
            true
        } else {
            panic!(
                "{}: {when}: the state is neither the acknowledged writes nor them plus the \
                 failed write\n  state:   {state:?}\n  without: {:?}\n  with:    {:?}",
                self.context, self.without, self.with
            )
        }
    }
}

/// Runs `steps` on a fresh MemFs with `fault` at operation `point` (none if `None`).
fn run(steps: &[Step], fault: Option<(u64, Fault)>) -> (Report, u64) {
    let fs = MemFs::new();
    let expected = match fault {
        Some((_, Fault::Enospc)) => ErrorKind::Resource,
        _ => ErrorKind::Io,
    };
    let mut run = Run {
        fs: &fs,
        options: memfs_options(&fs),
        expected,
        context: format!("{fault:?}"),
        without: Model::new(),
        with: Model::new(),
        failed_writes: 0,
        errors: 0,
    };
    if let Some((point, fault)) = fault {
        fs.fail_nth(point, fault);
    }
    let mut db = run.open();
    for (i, step) in steps.iter().enumerate() {
        run.context = format!("{fault:?}, step {i} ({step:?})");
        match step {
            Step::Write(op) => match op.apply_to_db(&db) {
                Ok(()) => {
                    op.apply_to_model(&mut run.without);
                    op.apply_to_model(&mut run.with);
                }
                Err(e) => {
                    run.check_error("write", &e);
                    run.failed_writes += 1;
                    assert_eq!(
                        run.failed_writes, 1,
                        "{}: a second write failed after one fault",
                        run.context
                    );
                    op.apply_to_model(&mut run.with);
                }
            },
            Step::Get(k) => match db.get(k) {
                Ok(v) => {
                    let v = v.map(|v| v.to_vec());
                    assert!(
                        v == run.without.get(k).cloned() || v == run.with.get(k).cloned(),
                        "{}: get returned {v:?}",
                        run.context
                    );
                }
                Err(e) => run.check_error("get", &e),
            },
            Step::Flush => {
                if let Err(e) = db.flush() {
                    run.check_error("flush", &e);
                }
            }
            Step::Compact => {
                if let Err(e) = db.compact() {
                    run.check_error("compact", &e);
                }
            }
            Step::Reopen => {
                run.close(db);
                db = run.open();
            }
        }
        run.resume_if_degraded(&db);
    }
    run.context = format!("{fault:?}, at the end");
    // A background flush or compaction may still be failing: wait for them via flush.
    if let Err(e) = db.flush() {
        run.check_error("final flush", &e);
    }
    run.resume_if_degraded(&db);
    let live = run.check_state(&db, "live");
    run.close(db);

    let db = run.open();
    let reopened = run.check_state(&db, "after reopen");
    assert_eq!(
        live, reopened,
        "{}: the failed write's visibility changed across a clean reopen",
        run.context
    );
    run.close(db);

    // Everything acknowledged was synced (SyncMode::Always) and the close synced the rest:
    // a power loss now loses nothing acknowledged.
    fs.clear_faults();
    fs.crash(CrashMode::DropUnsynced);
    let db = Db::open(DIR, run.options.clone())
        .unwrap_or_else(|e| panic!("{}: open after a power loss failed: {e}", run.context));
    let after_crash = run.check_state(&db, "after a power loss");
    assert!(
        after_crash || !reopened,
        "{}: the failed write came back only after a power loss",
        run.context
    );
    db.close().unwrap();
    let report = Report {
        errors: run.errors,
        fired: fs.faults_injected() > 0,
    };
    (report, fs.op_count())
}

fn sweep(fault: Fault) {
    let steps = steps(
        env_usize("KEVO_FAULT_OPS", 48),
        env_usize("KEVO_FAULT_SEED", 11) as u64,
    );
    let (clean, total) = run(&steps, None);
    assert_eq!(clean.errors, 0);
    let (mut fired, mut failed_calls) = (0, 0);
    // Every fault point is run; the failures are collected and reported together.
    let mut failures = Vec::new();
    for point in 0..total {
        match std::panic::catch_unwind(|| run(&steps, Some((point, fault)))) {
            Ok((report, _)) => {
                fired += usize::from(report.fired);
                failed_calls += usize::from(report.errors > 0);
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(ToString::to_string))
                    .unwrap_or_default();
                failures.push(format!("point {point}: {message}"));
            }
        }
    }
    eprintln!(
        "{fault:?}: {total} fault points tried, {fired} fired, {failed_calls} reported an \
         error, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{fault:?}: {} of {total} fault points failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        total > 100,
        "the sweep must cover many operations ({total})"
    );
    assert!(
        fired > total as usize / 2,
        "most faults must fire ({fired} of {total})"
    );
}

#[test]
fn eio_at_every_operation_loses_nothing_acknowledged() {
    sweep(Fault::Eio);
}

#[test]
fn enospc_at_every_operation_loses_nothing_acknowledged() {
    sweep(Fault::Enospc);
}

/// Found by the ENOSPC sweep: `Db::flush` (and `Db::compact`, which flushes first) must
/// report a full disk while creating the new WAL as `Resource`, like every other ENOSPC.
#[test]
fn enospc_creating_the_wal_for_a_flush_is_a_resource_error() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs).memtable_size(1 << 20)).unwrap();
    db.put(b"a", b"1").unwrap();
    fs.fail_matching(Fault::Enospc, |op| {
        op.kind == kevo::fs::OpKind::Create && op.path.extension().is_some_and(|e| e == "wal")
    });
    let err = db.flush().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Resource, "{err}");
    fs.clear_faults();
    db.flush().unwrap();
    assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
}

/// Found by the ENOSPC sweep: when the old WAL's sync at a memtable switch fails with
/// ENOSPC, the database degrades with `Resource`, and the write that started the switch
/// must fail with that kind too (not `Io` "writing to a WAL after an earlier write or sync
/// failed").
#[test]
fn enospc_syncing_the_wal_at_a_memtable_switch_fails_the_write_with_resource() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    db.put(b"a", vec![b'x'; 2048]).unwrap(); // fills the 1 KiB memtable
    fs.fail_matching(Fault::Enospc, |op| {
        op.kind == kevo::fs::OpKind::Sync && op.path.extension().is_some_and(|e| e == "wal")
    });
    let err = db.put(b"b", b"2").unwrap_err();
    assert_eq!(
        db.background_error().map(|e| e.kind()),
        Some(ErrorKind::Resource)
    );
    assert_eq!(err.kind(), ErrorKind::Resource, "{err}");
}
