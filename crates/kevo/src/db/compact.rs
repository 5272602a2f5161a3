//! Compaction in the running database: run a job, commit its edit, swap the new version
//! in, and delete input tables once no reader holds them. Scheduling is in
//! [`super::background`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{DbInner, ReadView, lock};
use crate::compaction::{self, Context, Job, UserKeyRange, Visibility};
use crate::error::Result;
use crate::iter::level::{LevelIter, OpenTable};
use crate::iter::merge::Source;
use crate::listener::{CompactionInfo, TableFileInfo, TableReason};
use crate::metrics::LevelWork;
use crate::sst::table::BlockReads;
use crate::version::edit::FileMeta;
use crate::version::set::Version;

impl DbInner {
    /// The live snapshots and the visible sequence number, read together under the lock
    /// `Db::snapshot` registers under, so no snapshot is taken in between unseen.
    pub(super) fn visibility(&self) -> Visibility {
        let snapshots = lock(&self.snapshots);
        let now = self.visible_sequence.load(Ordering::Acquire);
        Visibility::new(snapshots.keys().copied(), now)
    }

    /// Runs `job` (picked from `version`, its inputs reserved for it), commits the result
    /// and swaps it into the read view. `manual`: asked for by `Db::compact`.
    pub(super) fn run_compaction(
        &self,
        job: &Job,
        version: &Arc<Version>,
        manual: bool,
    ) -> Result<()> {
        let started = Instant::now();
        let mut event = CompactionInfo {
            level: job.level,
            output_level: job.output,
            inputs: job.all_inputs().map(|f| f.number).collect(),
            outputs: Vec::new(),
            bytes_read: job.all_inputs().map(|f| f.size).sum(),
            bytes_written: 0,
            trivial_move: job.is_trivial_move(),
            manual,
            duration: Duration::ZERO,
        };
        self.listeners.notify(|l| l.on_compaction_begin(&event));
        let sources = self.compaction_sources(job)?;
        let visibility = self.visibility();
        let mut new_file_number = || lock(&self.versions).new_file_number();
        let mut ctx = Context {
            fs: self.fs.as_ref(),
            dir: &self.dir,
            opts: &self.opts,
            version,
            visibility: &visibility,
            new_file_number: &mut new_file_number,
            rate_limiter: self.rate_limiter.as_ref(),
            listeners: &self.listeners,
            cancel: &self.closed,
            filter_policy: self.filter_policy_for(version, job.output),
        };
        let outcome = compaction::run(job, sources, &mut ctx)?;
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            // Closing: the directory is about to be another opener's. `close` waits for
            // this job, so nothing is logged after this check.
            self.abandon_outputs(&outcome.edit, job);
            return Err(crate::Error::closed());
        }
        event.outputs = outcome
            .edit
            .new_files
            .iter()
            .map(|(_, f)| f.number)
            .collect();
        for &(number, entries, deletions) in &outcome.output_counts {
            self.tables.note_counts(number, entries, deletions);
        }
        // Unregistered readers older than the job must not read its version: the versions
        // they would see may be gone (see `DbInner::read_point`).
        self.install_edit(outcome.edit, visibility.now())?;
        self.count_compaction(job, outcome.bytes_written, outcome.throttled, started);
        if !job.is_trivial_move() {
            lock(&self.obsolete_tables).extend(job.all_inputs().cloned());
        }
        event.bytes_written = outcome.bytes_written;
        event.duration = started.elapsed();
        self.listeners.notify(|l| l.on_compaction_end(&event));
        Ok(())
    }

    /// Removes the tables a job wrote but did not commit.
    fn abandon_outputs(&self, edit: &crate::version::edit::VersionEdit, job: &Job) {
        if !job.is_trivial_move() {
            compaction::job::remove_abandoned(self.fs.as_ref(), &self.dir, &self.listeners, edit);
        }
    }

    /// A cursor per L0 input table, one per deeper input level (a sorted run, whose
    /// tables it opens in turn).
    fn compaction_sources(&self, job: &Job) -> Result<Vec<Source>> {
        let mut sources: Vec<Source> = Vec::new();
        for input in &job.inputs {
            if input.level == 0 {
                for file in &input.files {
                    sources.push(Box::new(
                        self.tables
                            .table(file.number)?
                            .iter_with(BlockReads::compaction()),
                    ));
                }
            } else if !input.files.is_empty() {
                sources.push(Box::new(LevelIter::new(
                    input.files.clone(),
                    self.table_opener_with(BlockReads::compaction()),
                )));
            }
        }
        Ok(sources)
    }

    /// Logs `edit` to the manifest and swaps the resulting version into the read view,
    /// raising its floor to `floor`.
    fn install_edit(&self, edit: crate::version::edit::VersionEdit, floor: u64) -> Result<()> {
        let mut versions = lock(&self.versions);
        // If this fails the outputs stay: the edit may have reached the disk all the same,
        // and then they are live. The next open keeps or removes them by what the manifest
        // says.
        let version = versions.log_and_apply(self.fs.as_ref(), edit)?;
        let _guard = lock(&self.view_change);
        let old = self.view.load();
        self.view.store(Arc::new(ReadView {
            mem: old.mem.clone(),
            imm: old.imm.clone(),
            version,
            floor: old.floor.max(floor),
        }));
        Ok(())
    }

    fn count_compaction(
        &self,
        job: &Job,
        bytes_written: u64,
        throttled: std::time::Duration,
        started: Instant,
    ) {
        let (mut bytes_in, mut bytes_rewritten) = (0, 0);
        for (level, file) in job.inputs_by_level() {
            if level == job.output {
                bytes_rewritten += file.size;
            } else {
                bytes_in += file.size;
            }
        }
        let work = LevelWork {
            bytes_in,
            bytes_rewritten,
            bytes_written,
            ..LevelWork::default()
        };
        if let Some(level) = self.level_stats.get(job.output) {
            level.record_compaction(work, started.elapsed());
        }
        self.stats.compaction_latency.record(started.elapsed());
        let stats = &self.stats;
        crate::metrics::add(&stats.compactions, 1);
        crate::metrics::add(&stats.compaction_bytes_written, bytes_written);
        let micros = u64::try_from(throttled.as_micros()).unwrap_or(u64::MAX);
        crate::metrics::add(&stats.compaction_throttled_micros, micros);
        if !job.is_trivial_move() {
            crate::metrics::add(&stats.compaction_bytes_read, bytes_in + bytes_rewritten);
        }
    }

    /// Opens cursors over tables through the table cache, for a [`LevelIter`].
    pub(super) fn table_opener(&self) -> OpenTable {
        self.table_opener_with(BlockReads::default())
    }

    /// [`DbInner::table_opener`] for cursors reading with `reads`.
    pub(super) fn table_opener_with(&self, reads: BlockReads) -> OpenTable {
        let tables = Arc::clone(&self.tables);
        Arc::new(move |file: &FileMeta| {
            Ok(Box::new(tables.table(file.number)?.iter_with(reads)) as Source)
        })
    }

    /// [`DbInner::table_opener`] for a prefix scan: a table whose filter rules out
    /// `prefix` (as `extractor` finds prefixes) reads as empty. Asked as each table is
    /// reached, so a scan opens only the tables it gets to.
    pub(super) fn prefix_table_opener(
        &self,
        extractor: crate::options::PrefixExtractor,
        prefix: Vec<u8>,
    ) -> OpenTable {
        let tables = Arc::clone(&self.tables);
        Arc::new(move |file: &FileMeta| {
            let table = tables.table(file.number)?;
            Ok(if table.may_contain_prefix(&prefix, extractor) {
                Box::new(table.iter()) as Source
            } else {
                Box::new(crate::iter::Empty) as Source
            })
        })
    }

    /// Deletes replaced tables that no read view holds any more (their only reference is
    /// the list of obsolete tables itself).
    pub(crate) fn delete_obsolete_tables(&self) {
        let mut obsolete = lock(&self.obsolete_tables);
        obsolete.retain(|file| {
            if Arc::strong_count(file) > 1 {
                return true;
            }
            self.tables.evict(file.number);
            // A table that cannot be removed now is not in the manifest; the next open
            // removes it.
            let removed = self
                .fs
                .remove(&self.dir.join(super::files::table_name(file.number)));
            if removed.is_ok() {
                self.listeners.notify(|l| {
                    l.on_table_deleted(&TableFileInfo {
                        number: file.number,
                        bytes: file.size,
                        reason: TableReason::Obsolete,
                    });
                });
            }
            false
        });
    }

    /// `Db::compact` and `Db::compact_range`: flushes, then (with background compaction
    /// paused) moves every level's tables in `range` down into the next level and rewrites
    /// the last.
    pub(crate) fn compact_all(&self, range: Option<&UserKeyRange>) -> Result<()> {
        self.freeze_for_flush()?;
        self.wait_for_flushes()?;
        let _exclusive = self.exclusive_compaction();
        let levels = self.view.load().version.num_levels();
        for level in 0..levels {
            let version = self.view.load().version.clone();
            if let Some(job) = compaction::whole_level(&version, level, range) {
                self.run_compaction(&job, &version, true)?;
                // Let go of this function's own references, so the inputs can go now.
                drop((job, version));
                self.delete_obsolete_tables();
            }
        }
        Ok(())
    }
}
