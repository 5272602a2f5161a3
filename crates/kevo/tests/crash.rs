//! Crash-point sweeps on MemFs: a workload is cut off at every file-system operation in
//! turn (the machine "halts"), the file system loses what a power cut may lose, and the
//! database is reopened and checked against the history of acknowledged writes.
//!
//! Some of the workload's writes (every second multi-key batch, every fourth put) are
//! optimistic transactions.
//!
//! `KEVO_CRASH_OPS` sets the workload length (default 40 operations, which gives a few
//! hundred crash points per mode); `KEVO_CRASH_SEEDS` the number of random crash images
//! per point (default 2); `KEVO_CRASH_SEED` the workload seed (default 7).
//!
//! The large sweep samples instead: `KEVO_CRASH_LARGE_OPS` operations (default 400, some
//! thousands of crash points) crashed at `KEVO_CRASH_SAMPLE` points drawn at random
//! (default 100).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;
use kevo::fs::{CrashMode, Fault, MemFs};
use kevo::{CompactionStyle, Db, Options, SyncMode};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The result of running a workload until the machine halts.
struct Run {
    /// Operations acknowledged before the halt.
    acked: usize,
    /// Whether an operation was in flight (started, not acknowledged) at the halt.
    in_flight: bool,
}

/// Opens a database on `fs` and applies `ops` until one fails (the halt).
fn run_until_halt(fs: &MemFs, options: &Options, ops: &[Op]) -> Run {
    let Ok(db) = Db::open(DIR, options.clone()) else {
        return Run {
            acked: 0,
            in_flight: false,
        };
    };
    for (i, op) in ops.iter().enumerate() {
        if op.apply_to_db(&db).is_err() {
            return Run {
                acked: i,
                in_flight: true,
            };
        }
    }
    drop(db);
    let _ = fs; // the halt may come after the workload (in close): nothing in flight then
    Run {
        acked: ops.len(),
        in_flight: false,
    }
}

/// The workload with every second multi-key batch, and every fourth put, committed as an
/// optimistic transaction instead (which reads each key before writing it): a committed
/// transaction must survive as its mode promises and be all or nothing, as a batch is.
fn with_transactions(ops: Vec<Op>) -> Vec<Op> {
    let (mut batches, mut puts) = (0, 0);
    ops.into_iter()
        .map(|op| match op {
            Op::Batch(entries) => {
                batches += 1;
                if batches % 2 == 0 {
                    Op::Txn(entries)
                } else {
                    Op::Batch(entries)
                }
            }
            Op::Put(k, v) => {
                puts += 1;
                if puts % 4 == 0 {
                    Op::Txn(vec![(k, Some(v))])
                } else {
                    Op::Put(k, v)
                }
            }
            other => other,
        })
        .collect()
}

/// Model states after each prefix of `ops`: `states[i]` is the state after `i` operations.
fn prefix_states(ops: &[Op]) -> Vec<Model> {
    let mut model = Model::new();
    let mut states = vec![model.clone()];
    for op in ops {
        op.apply_to_model(&mut model);
        states.push(model.clone());
    }
    states
}

/// Reopens after a crash and returns the recovered state; the reopened database must also
/// take new writes and survive another reopen (sequence numbers continue).
fn recover(options: &Options, point: u64) -> Model {
    let db = match Db::open(DIR, options.clone()) {
        Ok(db) => db,
        // A crash in the middle of a manifest append can leave a whole record of garbage
        // at its end (the `Random` image: pages written out of order). That cannot be told
        // from an acknowledged edit damaged since, so the open refuses it (as LevelDB does)
        // and `kevo repair` must bring the database back, losing nothing acknowledged.
        Err(e)
            if e.kind() == kevo::ErrorKind::Corruption
                && e.to_string().contains("manifest damaged at its end") =>
        {
            kevo::tools::repair(options.fs.as_ref(), std::path::Path::new(DIR))
                .unwrap_or_else(|e| panic!("crash point {point}: repair failed: {e}"));
            Db::open(DIR, options.clone())
                .unwrap_or_else(|e| panic!("crash point {point}: reopen after repair failed: {e}"))
        }
        Err(e) => panic!("crash point {point}: reopen failed: {e}"),
    };
    let state = read_state(&db);
    db.put(b"after-crash", b"x").unwrap();
    db.close().unwrap();
    let db = Db::open(DIR, options.clone())
        .unwrap_or_else(|e| panic!("crash point {point}: second reopen failed: {e}"));
    assert_eq!(
        db.get(b"after-crash").unwrap().as_deref(),
        Some(&b"x"[..]),
        "crash point {point}"
    );
    db.close().unwrap();
    assert_no_leaked_files(options, point);
    // Every checksum of every live file verifies, and the manifest agrees with the tables.
    let report = kevo::tools::check(options.fs.as_ref(), std::path::Path::new(DIR))
        .unwrap_or_else(|e| panic!("crash point {point}: check failed to run: {e}"));
    assert!(report.ok(), "crash point {point}: {:?}", report.problems);
    state
}

/// After an open, the directory holds exactly the tables the manifest lists: the outputs
/// of a compaction or flush cut short by the crash, and inputs it replaced, are gone.
/// (Compaction is off, and the flush of what the open replayed is waited for, so no table
/// is being written while the directory is listed.)
fn assert_no_leaked_files(options: &Options, point: u64) {
    let db = Db::open(DIR, options.clone().disable_auto_compactions(true)).unwrap();
    db.flush().unwrap();
    let live: usize = db.lsm_shape().levels.iter().map(|l| l.tables).sum();
    let files = listing(options.fs.as_ref(), DIR);
    let tables = files.iter().filter(|f| f.ends_with(".sst")).count();
    assert_eq!(tables, live, "crash point {point}: {files:?}");
    assert!(
        !files.iter().any(|f| f.ends_with(".tmp")),
        "crash point {point}: {files:?}"
    );
    db.close().unwrap();
}

/// Runs the sweep: for every operation index, halt there, crash with each mode, recover,
/// and check `verdict(recovered, run)`. Returns the number of crash images checked.
fn sweep(
    sync_mode: SyncMode,
    verdict: impl Fn(&Model, &Run, &[Model]) -> Result<(), String>,
) -> usize {
    sweep_with(sync_mode, CompactionStyle::Leveled, verdict)
}

fn sweep_with(
    sync_mode: SyncMode,
    style: CompactionStyle,
    verdict: impl Fn(&Model, &Run, &[Model]) -> Result<(), String>,
) -> usize {
    sweep_points(
        sync_mode,
        style,
        env_usize("KEVO_CRASH_OPS", 40),
        None,
        verdict,
    )
}

/// The sweep over a workload of `workload_ops` operations: at every crash point, or at
/// `sample` of them drawn at random.
fn sweep_points(
    sync_mode: SyncMode,
    style: CompactionStyle,
    workload_ops: usize,
    sample: Option<usize>,
    verdict: impl Fn(&Model, &Run, &[Model]) -> Result<(), String>,
) -> usize {
    let ops = with_transactions(workload(
        workload_ops,
        env_usize("KEVO_CRASH_SEED", 7) as u64,
    ));
    let states = prefix_states(&ops);
    let seeds = env_usize("KEVO_CRASH_SEEDS", 2) as u64;
    let options_for = |fs: &MemFs| {
        memfs_options(fs)
            .sync_mode(sync_mode)
            .compaction_style(style)
    };

    // A clean run counts the operations to crash at.
    let clean = MemFs::new();
    assert_eq!(
        run_until_halt(&clean, &options_for(&clean), &ops).acked,
        ops.len()
    );
    let total_ops = clean.op_count();
    let points: Vec<u64> = match sample {
        Some(n) if (n as u64) < total_ops => sample_points(total_ops, n),
        _ => (0..total_ops).collect(),
    };

    let mut images = 0;
    for &point in &points {
        let modes = std::iter::once(CrashMode::DropUnsynced)
            .chain((0..seeds).map(|s| CrashMode::Random(point * 1000 + s)));
        for mode in modes {
            let fs = MemFs::new();
            let options = options_for(&fs);
            fs.fail_nth(point, Fault::Halt);
            let run = run_until_halt(&fs, &options, &ops);
            // The halt may not have come (the run ended first): it must not hit recovery.
            fs.clear_faults();
            fs.crash(mode);
            let recovered = recover(&options, point);
            if let Err(why) = verdict(&recovered, &run, &states) {
                panic!(
                    "crash point {point} of {total_ops} ({mode:?}), {} acked: {why}",
                    run.acked
                );
            }
            images += 1;
        }
    }
    let txns = ops.iter().filter(|op| matches!(op, Op::Txn(_))).count();
    assert!(txns > 0, "the workload commits transactions");
    eprintln!(
        "{sync_mode:?}, {style:?}: {} operations ({txns} transactions), {} of {total_ops} \
         crash points, {images} images checked",
        ops.len(),
        points.len()
    );
    images
}

/// `n` distinct crash points of `0..total`, drawn by a fixed generator (a run repeats),
/// always including the last (the close).
fn sample_points(total: u64, n: usize) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ env_usize("KEVO_CRASH_SEED", 7) as u64;
    let mut points = std::collections::BTreeSet::from([total - 1]);
    while points.len() < n {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        points.insert(x.wrapping_mul(0x2545_F491_4F6C_DD1D) % total);
    }
    points.into_iter().collect()
}

/// A workload ten times the exhaustive sweeps' (some thousands of crash points), crashed at
/// a sample of them: the long histories (many flushes, compactions into deeper levels,
/// manifest rollovers) the short workload does not reach.
#[test]
fn a_large_workload_survives_crashes_at_sampled_points() {
    let images = sweep_points(
        SyncMode::Always,
        CompactionStyle::Leveled,
        env_usize("KEVO_CRASH_LARGE_OPS", 400),
        Some(env_usize("KEVO_CRASH_SAMPLE", 100)),
        exact_verdict,
    );
    assert!(images >= 100, "{images}");
}

/// Exactly the acknowledged history, or that plus the one write in flight.
fn exact_verdict(recovered: &Model, run: &Run, states: &[Model]) -> Result<(), String> {
    if *recovered == states[run.acked] || (run.in_flight && *recovered == states[run.acked + 1]) {
        Ok(())
    } else {
        Err(
            "recovered state is neither the acknowledged history nor it plus the write in flight"
                .into(),
        )
    }
}

#[test]
fn with_sync_always_every_acknowledged_write_survives_every_crash_point() {
    let images = sweep(SyncMode::Always, exact_verdict);
    assert!(
        images > 100,
        "the sweep must cover many crash points ({images})"
    );
}

/// Tiered compaction merges several runs into one and rewrites the last level in place:
/// a crash anywhere in it loses and resurrects nothing.
#[test]
fn with_tiered_compaction_every_acknowledged_write_survives_every_crash_point() {
    let images = sweep_with(SyncMode::Always, CompactionStyle::Tiered, exact_verdict);
    assert!(
        images > 100,
        "the sweep must cover many crash points ({images})"
    );
}

fn prefix_verdict(recovered: &Model, run: &Run, states: &[Model]) -> Result<(), String> {
    let limit = run.acked + usize::from(run.in_flight);
    if states[..=limit].contains(recovered) {
        Ok(())
    } else {
        Err("recovered state is not a prefix of the history (a torn batch or a hole)".into())
    }
}

#[test]
fn with_sync_none_every_crash_recovers_a_prefix_of_the_history() {
    sweep(SyncMode::None, prefix_verdict);
}

/// An interval far longer than the test, so the interval-sync thread never runs: what is
/// checked is the mode's own path (no sync per commit, syncs at WAL switches and close).
/// The flush thread still runs beside the workload, so crash-point counts vary a little
/// from run to run.
#[test]
fn with_sync_interval_every_crash_recovers_a_prefix_of_the_history() {
    sweep(
        SyncMode::Interval(std::time::Duration::from_hours(1)),
        prefix_verdict,
    );
}

/// A process crash leaves the old log's unsynced tail in the OS cache; the reopened database
/// syncs new writes into a new log. A power loss then must not keep the new writes and lose
/// the old tail (recovery syncs the logs it replays).
#[test]
fn a_power_loss_after_a_process_crash_still_recovers_a_prefix() {
    for mode in [
        SyncMode::None,
        SyncMode::Interval(std::time::Duration::from_hours(1)),
    ] {
        let fs = MemFs::new();
        let options = memfs_options(&fs).memtable_size(1 << 20).sync_mode(mode);
        let db = Db::open(DIR, options.clone()).unwrap();
        db.put(b"first", b"1").unwrap();
        fs.crash(CrashMode::KeepUnsynced);
        drop(db);
        let db = Db::open(DIR, options.clone()).unwrap();
        db.put_opt(b"second", b"2", &kevo::WriteOptions { sync: true })
            .unwrap();
        fs.crash(CrashMode::DropUnsynced);
        drop(db);
        let db = Db::open(DIR, options).unwrap();
        let first = db.get(b"first").unwrap().is_some();
        let second = db.get(b"second").unwrap().is_some();
        assert!(
            first || !second,
            "{mode:?}: the second write survived without the first"
        );
        assert!(second, "{mode:?}: a synced write was lost");
    }
}
