//! Compaction in the running database: pick or take a job, run it, commit its edit, swap the
//! new version in, and delete input tables once no reader holds them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{DbInner, ReadView, lock};
use crate::compaction::{self, Context, UserKeyRange};
use crate::error::Result;
use crate::iter::merge::Source;
use crate::key::SequenceNumber;

impl DbInner {
    /// The oldest sequence number a reader may read at: the oldest snapshot, or now.
    pub(super) fn oldest_snapshot(&self) -> SequenceNumber {
        let snapshots = lock(&self.snapshots);
        snapshots
            .keys()
            .next()
            .copied()
            .unwrap_or_else(|| self.visible_sequence.load(Ordering::Acquire))
    }

    /// Runs the picker's most urgent job (`level` `None`), or moves all of `level` down;
    /// returns whether anything ran.
    pub(crate) fn compact_once(
        &self,
        level: Option<(usize, Option<&UserKeyRange>)>,
    ) -> Result<bool> {
        // One compaction at a time: the background worker and `Db::compact` share this. The
        // job is chosen under it, from the current version, so it is never stale.
        let _running = lock(&self.compaction_lock);
        let view = self.view.load_full();
        let job = match level {
            None => compaction::pick(&view.version, &self.opts),
            Some((level, range)) => compaction::whole_level(&view.version, level, range),
        };
        let Some(job) = job else { return Ok(false) };
        let mut sources: Vec<Source> = Vec::new();
        for file in job.all_inputs() {
            sources.push(Box::new(self.tables.table(file.number)?.iter()));
        }
        let cutoff = self.oldest_snapshot();
        let mut new_file_number = || lock(&self.versions).new_file_number();
        let mut ctx = Context {
            fs: self.fs.as_ref(),
            dir: &self.dir,
            opts: &self.opts,
            version: &view.version,
            oldest_snapshot: cutoff,
            new_file_number: &mut new_file_number,
        };
        let outcome = compaction::run(&job, sources, &mut ctx)?;
        crate::metrics::add(&self.stats.compactions, 1);
        crate::metrics::add(&self.stats.compaction_bytes_written, outcome.bytes_written);
        if !job.is_trivial_move() {
            crate::metrics::add(&self.stats.compaction_bytes_read, outcome.bytes_read);
        }
        {
            let mut versions = lock(&self.versions);
            let version = versions.log_and_apply(self.fs.as_ref(), outcome.edit)?;
            let _guard = lock(&self.view_change);
            let old = self.view.load();
            // Readers whose sequence is below the cut-off must not read this version: the
            // versions they would see may be gone (see `DbInner::read_point`).
            let floor = old.floor.max(cutoff);
            self.view.store(Arc::new(ReadView {
                mem: old.mem.clone(),
                imm: old.imm.clone(),
                version,
                floor,
            }));
        }
        let replaced: Vec<_> = if job.is_trivial_move() {
            Vec::new()
        } else {
            job.all_inputs().cloned().collect()
        };
        // Let go of this function's own references, so inputs no reader holds go now.
        drop(job);
        drop(view);
        lock(&self.obsolete_tables).extend(replaced);
        self.delete_obsolete_tables();
        Ok(true)
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
            let _ = self
                .fs
                .remove(&self.dir.join(super::files::table_name(file.number)));
            false
        });
    }

    /// `Db::compact`: flushes, then moves every level down into the next and rewrites the
    /// last.
    pub(crate) fn compact_all(&self, range: Option<&UserKeyRange>) -> Result<()> {
        self.freeze_for_flush()?;
        self.wait_for_flushes()?;
        let levels = self.view.load().version.num_levels();
        for level in 0..levels {
            self.compact_once(Some((level, range)))?;
        }
        Ok(())
    }
}
