//! Model checks of the group-commit protocol with shuttle: the queue alone, with a model
//! log standing in for the WAL and memtable (no `Db`, no I/O). Shuttle runs each scenario
//! under many schedules of its threads; every lock, wait, notification, atomic access and
//! yield of [`CommitQueue`] is a point where it may switch threads.
//!
//! Checked in every schedule:
//! - each write returns exactly once, with the result its group earned: `Ok` if the group
//!   committed, the group's error (same kind and message) if its commit failed, and its
//!   own rejection if the leader refused it alone (a transaction conflict);
//! - the groups, taken together, are the queue: every queued write in exactly one group,
//!   in queue order, each group led by its first member and within the byte budget;
//! - only one leader commits at a time, and each batch is taken once;
//! - every acknowledged write is in the log exactly once, nothing else is, and the log is
//!   in queue order (so a writer's own writes are in its program order);
//! - a write that asked for sync was acknowledged only by a group that synced;
//! - afterwards the queue is empty and has no leader, and a new write leads at once;
//! - no deadlock, and no writer left waiting (shuttle fails a schedule in which every
//!   remaining thread is blocked).
//!
//! Run: `cargo test --workspace --features kevo/shuttle --lib shuttle`
//! (`KEVO_SHUTTLE_ITERATIONS`, `KEVO_SHUTTLE_SEED`: see [`crate::sync::model_check`]).

use shuttle::thread;

use super::{CommitQueue, ConflictCheck, MAX_GROUP_BYTES, PendingWrite, SMALL_BATCH};
use crate::batch::WriteBatch;
use crate::error::{Error, ErrorKind, Result};
use crate::sync::{Arc, AtomicBool, Mutex, Ordering, lock, model_check, yield_now};

/// Schedules per scheduler by default: 1.0–1.5 s per test in debug on 2 shared cores.
const ITERATIONS: usize = 10_000;

/// What one write of a scenario is.
#[derive(Clone, Copy, Default)]
struct Spec {
    sync: bool,
    /// The leader's commit of this write's group fails (as a WAL append would).
    fails: bool,
    /// A transaction that the leader rejects alone, as a conflict.
    conflicts: bool,
    /// A value big enough (200 KiB) that a small leader's group cannot take it.
    big: bool,
}

const PLAIN: Spec = Spec {
    sync: false,
    fails: false,
    conflicts: false,
    big: false,
};

/// The message of the failed commit, which every member of its group must get.
const FAILURE: &str = "model WAL append failed";

/// One group as its leader committed it.
struct Group {
    members: Vec<Arc<PendingWrite>>,
    keys: Vec<Vec<u8>>,
    rejected: Vec<bool>,
    failed: bool,
    synced: bool,
}

/// The WAL and memtable stand-in: what the leaders committed, in commit order.
#[derive(Default)]
struct ModelLog {
    /// Set while a leader commits: two at once is a protocol failure.
    committing: AtomicBool,
    groups: Mutex<Vec<Group>>,
    /// The keys of committed writes, in log order.
    log: Mutex<Vec<Vec<u8>>>,
}

impl ModelLog {
    /// What `DbInner::commit_group` does, reduced to the model: runs on the leader, with
    /// no queue lock held.
    fn commit(&self, leader: &[u8], group: &[Arc<PendingWrite>]) -> Result<()> {
        assert!(
            !self.committing.swap(true, Ordering::SeqCst),
            "two leaders commit at once"
        );
        let mut keys = Vec::new();
        let mut rejected = Vec::new();
        let mut fails = false;
        for member in group {
            let batch = member.take_batch().expect("a batch is taken only once");
            let key = batch.iter().next().expect("one entry").key.to_vec();
            let spec = decode_spec(&key);
            // Like `DbInner::admit`: refused alone, the rest of the group goes on.
            if spec.conflicts {
                assert!(member.conflict_check.is_some());
                member.reject(Error::new(ErrorKind::Concurrency, "model conflict"));
            }
            fails |= spec.fails;
            rejected.push(spec.conflicts);
            keys.push(key);
        }
        assert_eq!(keys[0], leader, "the leader commits a group it heads");
        // The WAL append and sync take time: let the others run (and queue) meanwhile.
        yield_now();
        if !fails {
            let mut log = lock(&self.log);
            for (key, &rejected) in keys.iter().zip(&rejected) {
                if !rejected {
                    log.push(key.clone());
                }
            }
        }
        lock(&self.groups).push(Group {
            members: group.to_vec(),
            synced: !fails && group.iter().any(|p| p.sync),
            keys,
            rejected,
            failed: fails,
        });
        self.committing.store(false, Ordering::SeqCst);
        if fails {
            Err(Error::new(ErrorKind::Io, FAILURE))
        } else {
            Ok(())
        }
    }
}

/// The key of writer `writer`'s write number `n`, which also carries its spec (so the
/// leader, which sees only batches, knows what to do with it).
fn key_of(writer: usize, n: usize, spec: Spec) -> Vec<u8> {
    let flag = |on: bool, c: char| if on { c } else { '-' };
    format!(
        "w{writer}.{n}:{}{}{}",
        flag(spec.sync, 's'),
        flag(spec.fails, 'f'),
        flag(spec.conflicts, 'c')
    )
    .into_bytes()
}

fn decode_spec(key: &[u8]) -> Spec {
    let flags = &key[key.len() - 3..];
    Spec {
        sync: flags[0] == b's',
        fails: flags[1] == b'f',
        conflicts: flags[2] == b'c',
        big: false,
    }
}

/// Queues one write of `key` as `spec` says and returns what the queue answered.
fn write(queue: &CommitQueue, model: &ModelLog, key: &[u8], spec: Spec) -> Result<()> {
    let mut batch = WriteBatch::new();
    let value = if spec.big {
        vec![0u8; 200 << 10]
    } else {
        b"v".to_vec()
    };
    batch.put(key, value);
    let check = spec.conflicts.then(|| ConflictCheck {
        since: 0,
        keys: vec![key.to_vec()],
        ranges: Vec::new(),
    });
    queue.write(batch, spec.sync, check, |group| model.commit(key, group))
}

/// Runs one schedule of `writers` (each thread writes its specs one after another), then
/// checks everything the module docs list.
fn run_scenario(writers: &[Vec<Spec>]) {
    let queue = Arc::new(CommitQueue::new());
    let model = Arc::new(ModelLog::default());
    let handles: Vec<_> = writers
        .iter()
        .enumerate()
        .map(|(w, specs)| {
            let (queue, model, specs) = (queue.clone(), model.clone(), specs.clone());
            thread::spawn(move || {
                let mut results = Vec::new();
                for (n, &spec) in specs.iter().enumerate() {
                    let key = key_of(w, n, spec);
                    let result = write(&queue, &model, &key, spec);
                    results.push((key, result));
                }
                results
            })
        })
        .collect();
    let mut results: Vec<(Vec<u8>, Result<()>)> = Vec::new();
    for handle in handles {
        results.extend(handle.join().expect("a writer panicked"));
    }

    let groups = lock(&model.groups);
    // The groups are the queue, in order: each queued write in exactly one group.
    {
        let state = lock(&queue.state);
        // (The model keeps every member alive, so no two have the same address.)
        let grouped: Vec<usize> = groups
            .iter()
            .flat_map(|g| &g.members)
            .map(|m| Arc::as_ptr(m) as usize)
            .collect();
        assert_eq!(
            grouped, state.enqueued,
            "every queued write in exactly one group, in queue order"
        );
        assert!(
            state.waiting.is_empty() && !state.leader_active,
            "queue idle"
        );
    }
    for group in groups.iter() {
        let sizes: Vec<usize> = group.members.iter().map(|m| m.size).collect();
        let total: usize = sizes.iter().sum();
        let budget = if sizes[0] <= SMALL_BATCH {
            sizes[0] + SMALL_BATCH
        } else {
            MAX_GROUP_BYTES
        };
        assert!(sizes.len() == 1 || total <= budget, "group within budget");
    }
    // Each write answered once, as its group decided.
    let all_keys: Vec<&Vec<u8>> = groups.iter().flat_map(|g| &g.keys).collect();
    assert_eq!(results.len(), all_keys.len());
    for (key, result) in &results {
        let (group, i) = groups
            .iter()
            .find_map(|g| g.keys.iter().position(|k| k == key).map(|i| (g, i)))
            .expect("every write was in a group");
        match result {
            Ok(()) => {
                assert!(!group.rejected[i] && !group.failed, "acknowledged wrongly");
                assert!(
                    !decode_spec(key).sync || group.synced,
                    "sync acknowledged unsynced"
                );
            }
            Err(e) if group.rejected[i] => assert_eq!(e.kind(), ErrorKind::Concurrency),
            Err(e) => {
                assert!(group.failed, "an error from a committed group: {e}");
                assert_eq!((e.kind(), e.message()), (ErrorKind::Io, FAILURE));
            }
        }
    }
    // The log is exactly the acknowledged writes, once each, in queue order.
    let acknowledged: Vec<Vec<u8>> = groups
        .iter()
        .filter(|g| !g.failed)
        .flat_map(|g| g.keys.iter().zip(&g.rejected))
        .filter(|&(_, &rejected)| !rejected)
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(*lock(&model.log), acknowledged);
    let ok = results.iter().filter(|(_, r)| r.is_ok()).count();
    assert_eq!(ok, acknowledged.len());
    drop(groups);

    // The queue is still usable: a new write leads at once and commits alone.
    let key = key_of(writers.len(), 0, PLAIN);
    write(&queue, &model, &key, PLAIN).expect("a later write commits");
    assert_eq!(
        lock(&model.groups).last().map(|g| g.keys.clone()),
        Some(vec![key])
    );
}

fn spec(f: impl FnOnce(&mut Spec)) -> Spec {
    let mut spec = PLAIN;
    f(&mut spec);
    spec
}

#[test]
#[cfg_attr(not(feature = "shuttle"), ignore = "needs --features shuttle")]
fn shuttle_every_write_commits_once_in_queue_order() {
    model_check(
        "commit queue: plain, sync and big writes",
        ITERATIONS,
        || {
            run_scenario(&[
                vec![spec(|s| s.sync = true)],
                vec![PLAIN, spec(|s| s.sync = true)],
                vec![spec(|s| s.big = true)],
            ]);
        },
    );
}

#[test]
#[cfg_attr(not(feature = "shuttle"), ignore = "needs --features shuttle")]
fn shuttle_a_failed_commit_fails_its_whole_group_and_later_writes_commit() {
    model_check("commit queue: a failed group", ITERATIONS, || {
        run_scenario(&[
            vec![PLAIN, PLAIN],
            vec![spec(|s| s.fails = true)],
            vec![spec(|s| s.sync = true)],
        ]);
    });
}

#[test]
#[cfg_attr(not(feature = "shuttle"), ignore = "needs --features shuttle")]
fn shuttle_a_rejected_transaction_fails_alone() {
    model_check("commit queue: a rejected transaction", ITERATIONS, || {
        run_scenario(&[
            vec![PLAIN],
            vec![spec(|s| s.conflicts = true), PLAIN],
            vec![spec(|s| s.sync = true)],
        ]);
    });
}

#[test]
#[cfg_attr(not(feature = "shuttle"), ignore = "needs --features shuttle")]
fn shuttle_four_writers_with_every_outcome() {
    model_check(
        "commit queue: four writers, every outcome",
        ITERATIONS,
        || {
            run_scenario(&[
                vec![PLAIN],
                vec![spec(|s| s.conflicts = true)],
                vec![spec(|s| s.fails = true)],
                vec![spec(|s| s.sync = true), spec(|s| s.big = true)],
            ]);
        },
    );
}
