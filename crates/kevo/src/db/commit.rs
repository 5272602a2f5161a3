//! Group commit: concurrent writers queue up; the writer at the front becomes the leader,
//! commits every queued batch with one WAL append and at most one sync, and hands each
//! follower the shared result.
//!
//! The queue lock is held only to enqueue, to pick a group and to hand out results, never
//! across I/O; readers never take it.
//!
//! The protocol is model-checked with shuttle (`shuttle_tests`, through [`crate::sync`]).

use std::collections::VecDeque;

use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use crate::sync::{Arc, AtomicBool, Condvar, Mutex, Ordering, PoisonError, lock, yield_now};

#[cfg(test)]
mod shuttle_tests;

/// Byte budget of one commit group; a small first batch gets a smaller group so its own
/// latency does not grow much (as LevelDB does).
const MAX_GROUP_BYTES: usize = 1 << 20;
const SMALL_BATCH: usize = 128 << 10;
/// Times a follower yields its core, checking for its result, before it blocks.
const SPIN_YIELDS: usize = 16;

/// One writer waiting in the queue.
pub(crate) struct PendingWrite {
    /// Taken by the leader when it commits the group.
    batch: Mutex<Option<WriteBatch>>,
    size: usize,
    /// Sync the WAL before acknowledging this write.
    pub sync: bool,
    /// What this writer waits for; each writer has its own, so a hand-off wakes only the
    /// threads it concerns.
    wait: Mutex<Wait>,
    wake: Condvar,
    /// Set (after `wait` changed) so a spinning waiter notices without taking the lock.
    signalled: AtomicBool,
    /// For a transaction: commit only if none of these keys changed after this sequence.
    pub conflict_check: Option<ConflictCheck>,
    /// Set by the leader when this write alone is refused (a transaction conflict).
    rejected: Mutex<Option<Error>>,
}

/// The keys a transaction read or wrote, and the sequence of its snapshot.
pub(crate) struct ConflictCheck {
    pub since: crate::key::SequenceNumber,
    pub keys: Vec<Vec<u8>>,
    /// Key ranges scanned: a change to any key within them is a conflict too.
    pub ranges: Vec<super::txn_iter::KeyRange>,
}

#[derive(Default)]
struct Wait {
    /// Set by the leader that committed this write.
    result: Option<Result<()>>,
    /// Set when this writer is at the front and must lead the next group.
    lead: bool,
}

impl PendingWrite {
    pub fn take_batch(&self) -> Option<WriteBatch> {
        lock(&self.batch).take()
    }

    /// Refuses this write alone; the rest of its group goes on.
    pub fn reject(&self, error: Error) {
        *lock(&self.rejected) = Some(error);
    }

    fn signal(&self, change: impl FnOnce(&mut Wait)) {
        change(&mut lock(&self.wait));
        self.signalled.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// The writers in line; the first one leads (or waits to) when `leader_active` is false.
struct QueueState {
    waiting: VecDeque<Arc<PendingWrite>>,
    leader_active: bool,
    /// The address of every write queued so far, in queue order: what the model checks
    /// compare the commit order with.
    #[cfg(test)]
    enqueued: Vec<usize>,
}

/// The write queue. See the module docs.
pub(crate) struct CommitQueue {
    state: Mutex<QueueState>,
}

impl CommitQueue {
    pub fn new() -> Self {
        CommitQueue {
            state: Mutex::new(QueueState {
                waiting: VecDeque::new(),
                leader_active: false,
                #[cfg(test)]
                enqueued: Vec::new(),
            }),
        }
    }

    /// Queues `batch` and returns once it is committed (by this thread as leader, or by
    /// another). `commit_group` commits a group; it runs with no queue lock held.
    pub fn write(
        &self,
        batch: WriteBatch,
        sync: bool,
        conflict_check: Option<ConflictCheck>,
        commit_group: impl FnOnce(&[Arc<PendingWrite>]) -> Result<()>,
    ) -> Result<()> {
        let me = Arc::new(PendingWrite {
            size: batch.approximate_size(),
            batch: Mutex::new(Some(batch)),
            sync,
            wait: Mutex::new(Wait::default()),
            wake: Condvar::new(),
            signalled: AtomicBool::new(false),
            conflict_check,
            rejected: Mutex::new(None),
        });
        let lead_now = {
            let mut state = lock(&self.state);
            state.waiting.push_back(me.clone());
            #[cfg(test)]
            state.enqueued.push(Arc::as_ptr(&me) as usize);
            let lead = !state.leader_active;
            state.leader_active = true;
            lead
        };
        if !lead_now {
            // Most groups commit in microseconds when they need no sync: yield a few times
            // before sleeping, which saves the wake-up of a blocked thread.
            for _ in 0..SPIN_YIELDS {
                if me.signalled.load(Ordering::Acquire) {
                    break;
                }
                yield_now();
            }
            let mut wait = lock(&me.wait);
            loop {
                if let Some(result) = wait.result.take() {
                    return result;
                }
                if wait.lead {
                    break;
                }
                wait = me.wake.wait(wait).unwrap_or_else(PoisonError::into_inner);
            }
        }
        // This writer is at the front and leads: nobody else leads until it hands over.
        let group = Self::take_group(&mut lock(&self.state).waiting);
        let result = commit_group(&group);
        let outcome = |member: &PendingWrite| match (lock(&member.rejected).take(), &result) {
            (Some(rejected), _) => Err(rejected),
            (None, Ok(())) => Ok(()),
            (None, Err(e)) => Err(e.duplicate()),
        };
        for member in group.iter().skip(1) {
            let own = outcome(member);
            member.signal(|w| w.result = Some(own));
        }
        let mine = outcome(&me);
        let mut state = lock(&self.state);
        match state.waiting.front() {
            Some(next) => next.signal(|w| w.lead = true),
            None => state.leader_active = false,
        }
        mine
    }

    /// Takes the leader (at the front) and the writers behind it, up to the byte budget.
    fn take_group(waiting: &mut VecDeque<Arc<PendingWrite>>) -> Vec<Arc<PendingWrite>> {
        let first = waiting.front().map_or(0, |w| w.size);
        let budget = if first <= SMALL_BATCH {
            first + SMALL_BATCH
        } else {
            MAX_GROUP_BYTES
        };
        let mut group = Vec::new();
        let mut bytes = 0;
        while let Some(next) = waiting.front() {
            if !group.is_empty() && bytes + next.size > budget {
                break;
            }
            bytes += next.size;
            group.extend(waiting.pop_front());
        }
        group
    }
}

impl Error {
    /// A copy for another waiter of the same failed group: same kind, message and context;
    /// the cause is carried as text.
    pub(crate) fn duplicate(&self) -> Error {
        let mut copy = Error::new(self.kind(), self.message());
        if let Some(file) = self.file() {
            copy = copy.with_file(file);
        }
        if let Some(offset) = self.offset() {
            copy = copy.with_offset(offset);
        }
        if let Some(source) = std::error::Error::source(self) {
            copy = copy.with_source(source.to_string());
        }
        copy
    }
}
