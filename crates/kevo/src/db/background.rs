//! Background work: a pool of `background_threads` workers sharing one queue of duties.
//!
//! Each worker, each time round: a flush if a memtable is frozen and no other worker is
//! flushing (flushes free the memory writers stall on, and must reach L0 oldest first),
//! else the most urgent compaction the picker finds among tables no running compaction
//! holds (L0 before deeper levels). Compactions on disjoint tables run at once; a manual
//! compaction waits for running ones and keeps the workers from starting new ones.

use std::sync::Arc;
use std::time::Duration;

use super::{DbInner, lock};
use crate::compaction::Busy;
use crate::error::{Error, Result};

/// The compactions in progress. Guarded by `DbInner::compactions`;
/// `DbInner::compaction_signal` announces each one's end.
#[derive(Debug, Default)]
pub(crate) struct CompactionState {
    /// Tables that running compactions read (and will delete).
    pub busy: Busy,
    /// Background compactions running.
    pub running: usize,
    /// Manual compactions waiting or running: the workers start none meanwhile.
    pub manual: usize,
}

/// Starts the workers. The public `Db` handle closes the database when its last clone
/// drops, so their strong references never keep a dropped database open; `close` joins
/// them.
pub(crate) fn spawn_workers(db: &Arc<DbInner>) -> Result<Vec<std::thread::JoinHandle<()>>> {
    (0..db.opts.background_threads)
        .map(|i| {
            let db = Arc::clone(db);
            std::thread::Builder::new()
                .name(format!("kevo-bg-{i}"))
                .spawn(move || db.work_until_closed())
                .map_err(|e| Error::io("starting a background thread", e))
        })
        .collect()
}

impl DbInner {
    fn work_until_closed(&self) {
        loop {
            if lock(&self.flush_state).stop {
                return;
            }
            let healthy = lock(&self.background_error).is_none();
            let (worked, failed) = if healthy {
                match self.background_step() {
                    Ok(worked) => (worked, false),
                    // Closing cancels compactions: not a failure.
                    Err(e) if e.kind() == crate::ErrorKind::Closed => (false, false),
                    Err(e) => {
                        self.degrade(e);
                        (false, true)
                    }
                }
            } else {
                (false, false)
            };
            self.delete_obsolete_tables();
            let state = lock(&self.flush_state);
            if worked || failed {
                // News for stalled writers, waiters and idle workers. Only then: idle
                // workers that woke each other would spin forever.
                self.flush_signal.notify_all();
            }
            if worked || state.stop {
                continue;
            }
            drop(
                self.flush_signal
                    .wait_timeout(state, Duration::from_millis(200))
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
        }
    }

    /// One unit of background work; returns whether there was any.
    fn background_step(&self) -> Result<bool> {
        if self.try_flush()? {
            return Ok(true);
        }
        if self.opts.disable_auto_compactions {
            return Ok(false);
        }
        self.try_background_compaction()
    }

    /// Picks, runs and commits one compaction, unless nothing is due or a manual one is in
    /// charge.
    fn try_background_compaction(&self) -> Result<bool> {
        let (job, version) = {
            let mut state = lock(&self.compactions);
            if state.manual > 0 {
                return Ok(false);
            }
            // Read under the lock: a job commits its version before it releases its
            // tables, so this version and `busy` agree.
            let version = self.view.load().version.clone();
            // The tombstone rewrite only when nothing at all runs: `pick` finding nothing
            // may mean due work is waiting for busy tables.
            let Some(job) = crate::compaction::pick(&version, &self.opts, &state.busy)
                .or_else(|| (state.running == 0).then(|| self.tombstone_job(&version))?)
            else {
                return Ok(false);
            };
            state.busy.extend(job.all_inputs().map(|f| f.number));
            state.running += 1;
            (job, version)
        };
        let reservation = Reservation {
            db: self,
            job: &job,
        };
        let result = self.run_compaction(&job, &version, false);
        drop(reservation);
        result.map(|()| true)
    }

    /// When nothing else is due: a table below L0 that is at least
    /// `tombstone_compaction_ratio` tombstones, that nothing below overlaps, and all of whose
    /// entries every reader sees (its newest is at or below the oldest snapshot), rewritten
    /// in place so its tombstones go. Tombstones that arrive by a trivial move where nothing
    /// lies below are otherwise kept forever, and so is the space of what they shadow in
    /// the same table. Deepest levels first. No I/O: the counts come from the tables
    /// written since open and those opened (`TableCache::counts`).
    fn tombstone_job(
        &self,
        version: &Arc<crate::version::set::Version>,
    ) -> Option<crate::compaction::Job> {
        let ratio = self.opts.tombstone_compaction_ratio;
        if ratio <= 0.0 {
            return None;
        }
        let seen_by_all = lock(&self.snapshots)
            .keys()
            .next()
            .copied()
            .unwrap_or(u64::MAX);
        let tombstone_heavy = |file: &Arc<crate::version::edit::FileMeta>| {
            self.tables
                .counts(file.number)
                .is_some_and(|(entries, deletions)| {
                    deletions > 0 && deletions as f64 >= ratio * entries as f64
                })
        };
        (1..version.num_levels()).rev().find_map(|level| {
            let file = version.files(level).iter().find(|file| {
                file.max_sequence <= seen_by_all
                    && crate::compaction::nothing_below(version, level, file)
                    && tombstone_heavy(file)
            })?;
            Some(crate::compaction::Job::rewrite_in_place(
                version,
                level,
                file.clone(),
            ))
        })
    }

    /// Waits until no background compaction runs and keeps new ones from starting until
    /// the returned guard drops.
    pub(crate) fn exclusive_compaction(&self) -> ManualCompaction<'_> {
        // Manual compactions run one after another.
        let one_at_a_time = lock(&self.manual_compaction);
        let mut state = lock(&self.compactions);
        state.manual += 1;
        while state.running > 0 {
            state = self
                .compaction_signal
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        ManualCompaction {
            db: self,
            _one_at_a_time: one_at_a_time,
        }
    }
}

/// A running background job's hold on its tables, released when it ends, even by a panic
/// (a job that never released them would leave `Db::compact` waiting forever).
struct Reservation<'a> {
    db: &'a DbInner,
    job: &'a crate::compaction::Job,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.db.compactions);
        for file in self.job.all_inputs() {
            state.busy.remove(&file.number);
        }
        state.running -= 1;
        self.db.compaction_signal.notify_all();
    }
}

/// Held while a manual compaction runs (see [`DbInner::exclusive_compaction`]).
pub(crate) struct ManualCompaction<'a> {
    db: &'a DbInner,
    _one_at_a_time: std::sync::MutexGuard<'a, ()>,
}

impl Drop for ManualCompaction<'_> {
    fn drop(&mut self) {
        lock(&self.db.compactions).manual -= 1;
        // Background compaction may resume: wake the workers.
        self.db.signal_flush();
    }
}
