//! Running one compaction: merge the inputs, keep what a reader may still see, write the
//! outputs.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::rate_limiter::RateLimiter;
use super::{Job, Visibility};
use crate::error::Result;
use crate::fs::Fs;
use crate::iter::InternalIterator;
use crate::iter::merge::{MergingIter, Source};
use crate::key::{self, ParsedKey, ValueKind};
use crate::listener::{Listeners, TableFileInfo, TableReason};
use crate::options::Options;
use crate::sst::builder::{TableBuilder, TableOptions};
use crate::version::edit::{FileMeta, VersionEdit};
use crate::version::set::Version;

/// How many tables' worth of grandparent overlap one output may have before it is cut
/// (as LevelDB): bounds the cost of compacting that output later.
const GRANDPARENT_OVERLAP_TABLES: u64 = 10;

/// Output bytes between two rate-limiter requests.
const RATE_LIMIT_CHUNK: u64 = 64 * 1024;

/// What a compaction produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The edit to commit: inputs deleted, outputs added.
    pub edit: VersionEdit,
    /// Bytes read from the inputs.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Entries dropped (shadowed versions and tombstones no one can see).
    pub dropped: u64,
    /// Time spent waiting for the rate limiter.
    pub throttled: Duration,
    /// Each output table's number, entries and tombstones.
    pub output_counts: Vec<(u64, u64, u64)>,
}

/// Everything a compaction needs besides its inputs.
pub struct Context<'a> {
    /// The file system.
    pub fs: &'a dyn Fs,
    /// The database directory.
    pub dir: &'a Path,
    /// The database's options (table format, output size).
    pub opts: &'a Options,
    /// The version the inputs come from.
    pub version: &'a Version,
    /// Which versions readers may still see.
    pub visibility: &'a Visibility,
    /// Hands out file numbers for the outputs.
    pub new_file_number: &'a mut dyn FnMut() -> u64,
    /// Paces output writes, if compaction writes are limited.
    pub rate_limiter: Option<&'a RateLimiter>,
    /// Told of each output table published, and of each removed when the job fails.
    pub(crate) listeners: &'a Listeners,
    /// Set when the database closes: the job stops (as failed) at the next key.
    pub cancel: &'a AtomicBool,
    /// The filter policy of the output tables (resolved for the output level).
    pub filter_policy: crate::FilterPolicy,
}

/// Runs `job`: merges its inputs (opened from `sources`), keeping of each key the newest
/// version in each visibility stripe, dropping tombstones every reader sees that no lower
/// level can be hiding data behind, and cutting outputs at
/// `target_file_size` or at too much grandparent overlap, always between user keys.
pub fn run(job: &Job, sources: Vec<Source>, ctx: &mut Context<'_>) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    let output_level = job.output_level();
    for (level, f) in job.inputs_by_level() {
        outcome.edit.deleted_files.push((level, f.number));
        outcome.bytes_read += f.size;
    }
    if job.is_trivial_move() {
        for file in job.all_inputs() {
            outcome
                .edit
                .new_files
                .push((output_level, FileMeta::clone(file)));
        }
        return Ok(outcome);
    }
    let merged = merge(job, sources, OutputWriter::new(job, ctx), &mut outcome);
    if let Err(e) = merged {
        // Nothing names the tables already written: remove them now rather than leave
        // them for the next open. (The edit is not logged yet, so no manifest can.)
        remove_abandoned(ctx.fs, ctx.dir, ctx.listeners, &outcome.edit);
        return Err(e);
    }
    outcome.bytes_written = outcome.edit.new_files.iter().map(|(_, f)| f.size).sum();
    Ok(outcome)
}

/// Merges `sources` into `writer`'s outputs, recording them in `outcome`.
fn merge(
    job: &Job,
    sources: Vec<Source>,
    mut writer: OutputWriter<'_, '_>,
    outcome: &mut Outcome,
) -> Result<()> {
    let output_level = job.output_level();
    let mut merged = MergingIter::new(sources);
    merged.seek_to_first();
    let mut last_user: Option<Vec<u8>> = None;
    // Stripe of the newer entry of the same user key, if one was seen.
    let mut newer_stripe: Option<usize> = None;
    while merged.valid() {
        let Some(parsed) = ParsedKey::parse(merged.key()) else {
            return Err(crate::Error::corruption(
                "compaction input holds an invalid internal key",
            ));
        };
        if last_user.as_deref() != Some(parsed.user_key) {
            if writer.ctx.cancel.load(Ordering::Relaxed) {
                return Err(crate::Error::closed());
            }
            // Cut the output only between user keys, so no key spans two tables of a level.
            writer.before_user_key(parsed.user_key, outcome)?;
            last_user = Some(parsed.user_key.to_vec());
            newer_stripe = None;
        }
        // A version is invisible to everyone when a newer version of its key is in the
        // same stripe: every reader that could see it sees that one instead.
        let visibility = writer.ctx.visibility;
        let stripe = visibility.stripe(parsed.sequence);
        let shadowed = newer_stripe == Some(stripe);
        let dead_tombstone = parsed.kind == ValueKind::Delete
            && parsed.sequence <= visibility.oldest()
            && is_bottom_for(writer.ctx.version, output_level, parsed.user_key);
        newer_stripe = Some(stripe);
        if shadowed || dead_tombstone {
            outcome.dropped += 1;
        } else {
            writer.add(merged.key(), merged.value(), outcome)?;
        }
        merged.next();
    }
    merged.status()?;
    writer.finish(outcome)
}

/// Removes the output tables of `edit`, which no manifest names (the job failed or was
/// not committed), telling the listeners.
pub(crate) fn remove_abandoned(fs: &dyn Fs, dir: &Path, listeners: &Listeners, edit: &VersionEdit) {
    for (_, table) in &edit.new_files {
        let path = dir.join(crate::db::files::table_name(table.number));
        if fs.remove(&path).is_ok() {
            listeners.notify(|l| {
                l.on_table_deleted(&TableFileInfo {
                    number: table.number,
                    bytes: table.size,
                    reason: TableReason::Abandoned,
                });
            });
        }
    }
}

/// Whether no level below `output_level` can hold `user_key` (a tombstone for it can go).
fn is_bottom_for(version: &Version, output_level: usize, user_key: &[u8]) -> bool {
    (output_level + 1..version.num_levels()).all(|level| {
        version
            .files(level)
            .iter()
            .all(|f| user_key < key::user_key(&f.smallest) || user_key > key::user_key(&f.largest))
    })
}

/// Writes a job's output tables: opens them on demand, cuts them at the size target or at
/// too much grandparent overlap, and paces the bytes written.
struct OutputWriter<'c, 'a> {
    ctx: &'c mut Context<'a>,
    level: usize,
    current: Option<(u64, TableBuilder<'a>)>,
    grandparents: &'c [Arc<FileMeta>],
    /// Grandparents wholly before the current key.
    grandparent_index: usize,
    /// Bytes of grandparents the current output overlaps.
    grandparent_overlap: u64,
    /// Output bytes not yet reported to the rate limiter.
    unpaced: u64,
    /// The current output's size at the last pacing.
    paced_size: u64,
}

impl<'c, 'a> OutputWriter<'c, 'a> {
    fn new(job: &'c Job, ctx: &'c mut Context<'a>) -> Self {
        OutputWriter {
            ctx,
            level: job.output_level(),
            current: None,
            grandparents: &job.grandparents,
            grandparent_index: 0,
            grandparent_overlap: 0,
            unpaced: 0,
            paced_size: 0,
        }
    }

    /// Called at each new user key: cuts the current output if it is full or overlaps too
    /// much of the level below its own.
    fn before_user_key(&mut self, user_key: &[u8], outcome: &mut Outcome) -> Result<()> {
        let started = self.current.is_some();
        while let Some(g) = self.grandparents.get(self.grandparent_index) {
            if user_key <= key::user_key(&g.largest) {
                break;
            }
            if started {
                self.grandparent_overlap += g.size;
            }
            self.grandparent_index += 1;
        }
        let target = self.ctx.opts.target_file_size;
        let full = self
            .current
            .as_ref()
            .is_some_and(|(_, b)| b.estimated_size() >= target);
        let overlaps_too_much =
            started && self.grandparent_overlap > target.saturating_mul(GRANDPARENT_OVERLAP_TABLES);
        if full || overlaps_too_much {
            self.finish_current(outcome)?;
        }
        Ok(())
    }

    fn add(&mut self, key: &[u8], value: &[u8], outcome: &mut Outcome) -> Result<()> {
        if self.current.is_none() {
            let number = (self.ctx.new_file_number)();
            let path = self.ctx.dir.join(crate::db::files::table_name(number));
            let builder = TableBuilder::create(
                self.ctx.fs,
                &path,
                number,
                TableOptions {
                    filter_policy: self.ctx.filter_policy,
                    ..TableOptions::from(self.ctx.opts)
                },
            )?;
            self.current = Some((number, builder));
            self.paced_size = 0;
            self.grandparent_overlap = 0;
        }
        if let Some((_, builder)) = self.current.as_mut() {
            builder.add(key, value)?;
            let size = builder.estimated_size();
            self.unpaced += size.saturating_sub(self.paced_size);
            self.paced_size = size;
        }
        if self.unpaced >= RATE_LIMIT_CHUNK {
            self.pace(outcome);
        }
        Ok(())
    }

    fn pace(&mut self, outcome: &mut Outcome) {
        if let Some(limiter) = self.ctx.rate_limiter {
            outcome.throttled += limiter.request(self.unpaced, self.ctx.cancel);
        }
        self.unpaced = 0;
    }

    fn finish_current(&mut self, outcome: &mut Outcome) -> Result<()> {
        let Some((number, builder)) = self.current.take() else {
            return Ok(());
        };
        let info = builder.finish()?;
        self.ctx.listeners.notify(|l| {
            l.on_table_created(&TableFileInfo {
                number,
                bytes: info.file_size,
                reason: TableReason::Compaction,
            });
        });
        self.unpaced += info.file_size.saturating_sub(self.paced_size);
        self.pace(outcome);
        outcome
            .output_counts
            .push((number, info.properties.entries, info.properties.deletions));
        outcome
            .edit
            .new_files
            .push((self.level, super::table_meta(number, &info)));
        Ok(())
    }

    fn finish(mut self, outcome: &mut Outcome) -> Result<()> {
        self.finish_current(outcome)
    }
}
