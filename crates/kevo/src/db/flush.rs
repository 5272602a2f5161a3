//! Flush: a background worker writes the oldest frozen memtable to an L0 table, records it
//! in the manifest, swaps it into the read view, and deletes the WALs it made obsolete.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{DbInner, FrozenMemTable, ReadView, files, lock};
use crate::error::{Error, ErrorKind, Result};
use crate::listener::{FlushInfo, StallCause, StallInfo, TableFileInfo, TableReason};
use crate::sst::builder::{TableBuilder, TableOptions};
use crate::version::edit::VersionEdit;

/// What the background workers are told, and whether one is flushing. Guarded by
/// `DbInner::flush_state`; `DbInner::flush_signal` wakes the workers and every waiter.
#[derive(Debug, Default)]
pub(crate) struct FlushState {
    /// The database is closing: the workers exit.
    pub stop: bool,
    /// A worker is flushing. One at a time: memtables must reach L0 oldest first.
    pub flushing: bool,
}

impl DbInner {
    /// Wakes the flush worker and everyone waiting on flush progress.
    pub(crate) fn signal_flush(&self) {
        let _state = lock(&self.flush_state);
        self.flush_signal.notify_all();
    }

    /// Flushes the oldest frozen memtable unless another worker is flushing; returns
    /// whether it did.
    pub(crate) fn try_flush(&self) -> Result<bool> {
        {
            let mut state = lock(&self.flush_state);
            if state.flushing || self.view.load().imm.is_empty() {
                return Ok(false);
            }
            state.flushing = true;
        }
        let flushed = self.flush_oldest();
        lock(&self.flush_state).flushing = false;
        flushed
    }

    /// Flushes the oldest frozen memtable, if any; returns whether it did.
    fn flush_oldest(&self) -> Result<bool> {
        let Some(frozen) = self.view.load().imm.last().cloned() else {
            return Ok(false);
        };
        let started = Instant::now();
        let number = lock(&self.versions).new_file_number();
        let mut event = FlushInfo {
            table: number,
            entries: 0,
            bytes: 0,
            duration: Duration::ZERO,
        };
        self.listeners.notify(|l| l.on_flush_begin(&event));
        let path = self.dir.join(files::table_name(number));
        let mut builder = TableBuilder::create(
            self.fs.as_ref(),
            &path,
            number,
            TableOptions {
                filter_policy: self.filter_policy_for(&self.view.load().version, 0),
                ..TableOptions::from(&self.opts)
            },
        )?;
        // Versions hidden behind a newer version in the same visibility stripe are seen by
        // no reader and are not written (tombstones are: older data may sit below).
        let visibility = self.visibility();
        let mut cursor = frozen.mem.cursor();
        cursor.seek_to_first();
        let mut newer: Option<(Vec<u8>, usize)> = None;
        while cursor.valid() {
            let (user, trailer) = crate::key::split(cursor.key());
            let stripe = visibility.stripe(trailer >> 8);
            let shadowed = newer
                .as_ref()
                .is_some_and(|(k, s)| k.as_slice() == user && *s == stripe);
            if !shadowed {
                builder.add(cursor.key(), cursor.value())?;
            }
            match &mut newer {
                Some((k, s)) if k.as_slice() == user => *s = stripe,
                _ => newer = Some((user.to_vec(), stripe)),
            }
            cursor.next();
        }
        let info = builder.finish()?;
        self.listeners.notify(|l| {
            l.on_table_created(&TableFileInfo {
                number,
                bytes: info.file_size,
                reason: TableReason::Flush,
            });
        });
        crate::metrics::add(&self.stats.flushes, 1);
        crate::metrics::add(&self.stats.flush_bytes, info.file_size);
        self.level_stats[0].record_flush(info.file_size, started.elapsed());
        self.tables
            .note_counts(number, info.properties.entries, info.properties.deletions);
        let meta = crate::compaction::table_meta(number, &info);
        let edit = VersionEdit {
            log_number: Some(frozen.next_log),
            last_sequence: Some(self.visible_sequence.load(Ordering::Acquire)),
            new_files: vec![(0, meta)],
            ..VersionEdit::default()
        };
        {
            // Committed and installed under the versions lock, so version changes reach the
            // read view in the order the manifest records them.
            let mut versions = lock(&self.versions);
            let version = versions.log_and_apply(self.fs.as_ref(), edit)?;
            // The table replaces the memtable in one swap: a reader sees one or the other.
            let _guard = lock(&self.view_change);
            let old = self.view.load();
            let imm = old
                .imm
                .iter()
                .filter(|f| !Arc::ptr_eq(&f.mem, &frozen.mem))
                .cloned()
                .collect();
            self.view.store(Arc::new(ReadView {
                mem: old.mem.clone(),
                imm,
                version,
                // Unregistered reads older than the flush retry: versions they need may
                // be gone.
                floor: old.floor.max(visibility.now()),
            }));
        }
        self.remove_obsolete_wals(frozen.next_log);
        event.entries = info.properties.entries;
        event.bytes = info.file_size;
        event.duration = started.elapsed();
        self.stats.flush_latency.record(event.duration);
        self.listeners.notify(|l| l.on_flush_end(&event));
        Ok(true)
    }

    /// Deletes WALs numbered below `log_number`: their writes are all in tables now.
    fn remove_obsolete_wals(&self, log_number: u64) {
        let obsolete: Vec<u64> = {
            let mut wals = lock(&self.live_wals);
            let (old, live): (Vec<u64>, Vec<u64>) = wals.iter().partition(|&&n| n < log_number);
            *wals = live;
            old
        };
        for number in obsolete {
            // A WAL that cannot be removed now is obsolete by the manifest's log number and
            // is removed on the next open.
            let _ = self.fs.remove(&self.dir.join(files::wal_name(number)));
        }
    }

    /// Waits until fewer than `max_memtables` memtables are frozen, up to the stall timeout.
    pub(crate) fn wait_for_room(&self) -> Result<()> {
        self.stall_until(
            |view| view.imm.len() < self.opts.max_memtables,
            StallCause::Memtables,
            "memtables wait for flush",
        )
    }

    /// Waits until L0 holds fewer than `l0_stop_trigger` tables, up to the stall timeout.
    /// Called by writers before they queue, holding no lock.
    pub(crate) fn wait_for_l0(&self) -> Result<()> {
        self.stall_until(
            |view| view.version.files(0).len() < self.opts.l0_stop_trigger,
            StallCause::L0Tables,
            "L0 tables wait for compaction",
        )
    }

    /// Blocks the writer until `ready` holds for the current view (flushes and compactions
    /// signal their progress), counting the stall; `Resource` after `write_stall_timeout`.
    fn stall_until(
        &self,
        ready: impl Fn(&ReadView) -> bool,
        cause: StallCause,
        what: &str,
    ) -> Result<()> {
        if ready(&self.view.load()) {
            return Ok(());
        }
        let started = Instant::now();
        self.stats.write_stalls.add(1);
        let mut info = StallInfo {
            cause,
            duration: Duration::ZERO,
        };
        self.listeners.notify(|l| l.on_stall_begin(&info));
        let result = self.stall_wait(&ready, what);
        info.duration = started.elapsed();
        let micros = u64::try_from(info.duration.as_micros()).unwrap_or(u64::MAX);
        self.stats.write_stall_micros.add(micros);
        self.listeners.notify(|l| l.on_stall_end(&info));
        result
    }

    fn stall_wait(&self, ready: &impl Fn(&ReadView) -> bool, what: &str) -> Result<()> {
        let deadline = self.opts.write_stall_timeout.map(|t| Instant::now() + t);
        let mut state = lock(&self.flush_state);
        loop {
            if ready(&self.view.load()) {
                return Ok(());
            }
            if let Some(cause) = lock(&self.background_error).as_ref() {
                return Err(Error::new(
                    cause.kind(),
                    format!(
                        "writes stalled ({what}) and background work failed: {}",
                        cause.message()
                    ),
                ));
            }
            if state.stop {
                return Err(Error::closed());
            }
            let wait = match deadline {
                None => Duration::from_millis(100),
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) => left,
                    None => {
                        return Err(Error::new(
                            ErrorKind::Resource,
                            format!("write stalled: {what} past write_stall_timeout"),
                        ));
                    }
                },
            };
            state = self
                .flush_signal
                .wait_timeout(state, wait)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until every memtable frozen now is flushed (or flushing fails).
    pub(crate) fn wait_for_flushes(&self) -> Result<()> {
        let mut state = lock(&self.flush_state);
        loop {
            if let Some(cause) = lock(&self.background_error).as_ref() {
                return Err(cause.duplicate());
            }
            // A flush in progress finishes (its listeners told) before this returns.
            if self.view.load().imm.is_empty() && !state.flushing {
                return Ok(());
            }
            if state.stop {
                return Err(Error::closed());
            }
            state = self
                .flush_signal
                .wait_timeout(state, Duration::from_millis(100))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

/// Freezes `mem`: it joins the frozen memtables (newest first) with the WAL number that
/// starts after it.
pub(crate) fn freeze(
    view: &ReadView,
    next_log: u64,
    new_mem: Arc<crate::memtable::MemTable>,
) -> ReadView {
    let mut imm = Vec::with_capacity(view.imm.len() + 1);
    imm.push(FrozenMemTable {
        mem: view.mem.clone(),
        next_log,
    });
    imm.extend(view.imm.iter().cloned());
    ReadView {
        mem: new_mem,
        imm,
        version: view.version.clone(),
        floor: view.floor,
    }
}
