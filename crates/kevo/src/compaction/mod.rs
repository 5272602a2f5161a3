//! Compaction: which tables to merge (the picker, leveled) and merging them (the job).
//!
//! Policy and execution are apart: [`pick`] looks only at a [`Version`] and the options;
//! [`run`] merges the inputs it is given, keeps what a reader may still see, and writes the
//! outputs. The Db commits the result in one version edit.

use std::path::Path;
use std::sync::Arc;

use crate::error::Result;
use crate::fs::Fs;
use crate::iter::InternalIterator;
use crate::iter::merge::{MergingIter, Source};
use crate::key::{self, ParsedKey, SequenceNumber, ValueKind};
use crate::options::Options;
use crate::sst::builder::{TableBuilder, TableInfo, TableOptions};
use crate::version::edit::{FileMeta, VersionEdit};
use crate::version::set::Version;

/// A compaction to run: `inputs[0]` from `level`, `inputs[1]` from `level + 1`, outputs to
/// `output` (`level + 1`, or `level` itself when the last level is rewritten).
#[derive(Debug, Clone)]
pub struct Job {
    /// The level the compaction starts from.
    pub level: usize,
    /// Tables of `level` and of `level + 1` that overlap them.
    pub inputs: [Vec<Arc<FileMeta>>; 2],
    /// The level outputs go to.
    pub output: usize,
}

impl Job {
    /// The level outputs go to.
    pub fn output_level(&self) -> usize {
        self.output
    }

    /// Whether the job can move one table down without rewriting it.
    pub fn is_trivial_move(&self) -> bool {
        self.inputs[0].len() == 1 && self.inputs[1].is_empty() && self.output != self.level
    }

    /// Every input table.
    pub fn all_inputs(&self) -> impl Iterator<Item = &Arc<FileMeta>> {
        self.inputs.iter().flatten()
    }
}

/// The byte target of `level` (≥ 1): L1 holds `l0_compaction_trigger` tables' worth, each
/// deeper level `level_size_ratio` times more.
pub fn level_target(opts: &Options, level: usize) -> u64 {
    let base = opts
        .target_file_size
        .saturating_mul(opts.l0_compaction_trigger as u64);
    let ratio = u64::from(opts.level_size_ratio);
    (1..level).fold(base, |target, _| target.saturating_mul(ratio))
}

/// How urgent compacting `level` is: ≥ 1 means over its trigger or target.
pub fn score(version: &Version, opts: &Options, level: usize) -> f64 {
    if level == 0 {
        return version.files(0).len() as f64 / opts.l0_compaction_trigger as f64;
    }
    let bytes: u64 = version.files(level).iter().map(|f| f.size).sum();
    bytes as f64 / level_target(opts, level) as f64
}

/// The most urgent compaction, if any level is over its trigger. The last level is never a
/// source.
pub fn pick(version: &Version, opts: &Options) -> Option<Job> {
    let last = version.num_levels().saturating_sub(1);
    let (level, best) = (0..last)
        .map(|l| (l, score(version, opts, l)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    (best >= 1.0).then(|| job_for_level(version, level))
}

/// A job compacting `level` into `level + 1`: every L0 table (they overlap each other), or
/// the deeper level's table holding the smallest keys, plus what overlaps them below.
pub fn job_for_level(version: &Version, level: usize) -> Job {
    let sources: Vec<Arc<FileMeta>> = if level == 0 {
        version.files(0).to_vec()
    } else {
        version.files(level).iter().take(1).cloned().collect()
    };
    let below = overlapping(version, level + 1, &sources);
    Job {
        level,
        inputs: [sources, below],
        output: level + 1,
    }
}

/// A range of user keys for manual compaction.
pub type UserKeyRange = (std::ops::Bound<Vec<u8>>, std::ops::Bound<Vec<u8>>);

/// Whether `file` holds any user key within `range`.
fn in_range(file: &FileMeta, range: &UserKeyRange) -> bool {
    use std::ops::Bound;
    let (smallest, largest) = (key::user_key(&file.smallest), key::user_key(&file.largest));
    let after_start = match &range.0 {
        Bound::Included(s) => largest >= s.as_slice(),
        Bound::Excluded(s) => largest > s.as_slice(),
        Bound::Unbounded => true,
    };
    let before_end = match &range.1 {
        Bound::Included(e) => smallest <= e.as_slice(),
        Bound::Excluded(e) => smallest < e.as_slice(),
        Bound::Unbounded => true,
    };
    after_start && before_end
}

/// A job moving `level`'s tables that hold keys in `range` (all of them for `None`) into
/// `level + 1`, or rewriting them in place on the last level (dropping what no reader can
/// see); `None` if there are none. On L0, where tables overlap, it takes every table as
/// soon as one is in range: moving a newer L0 table below an older one would let the older
/// one shadow it.
pub fn whole_level(version: &Version, level: usize, range: Option<&UserKeyRange>) -> Option<Job> {
    let files = version.files(level);
    let sources: Vec<Arc<FileMeta>> = match range {
        None => files.to_vec(),
        Some(r) if level == 0 => {
            if files.iter().any(|f| in_range(f, r)) {
                files.to_vec()
            } else {
                Vec::new()
            }
        }
        Some(r) => files.iter().filter(|f| in_range(f, r)).cloned().collect(),
    };
    if sources.is_empty() {
        return None;
    }
    if level + 1 >= version.num_levels() {
        return Some(Job {
            level,
            inputs: [sources, Vec::new()],
            output: level,
        });
    }
    let below = overlapping(version, level + 1, &sources);
    Some(Job {
        level,
        inputs: [sources, below],
        output: level + 1,
    })
}

/// The tables of `level` whose user-key ranges overlap any of `files`.
fn overlapping(version: &Version, level: usize, files: &[Arc<FileMeta>]) -> Vec<Arc<FileMeta>> {
    let Some(lo) = files.iter().map(|f| key::user_key(&f.smallest)).min() else {
        return Vec::new();
    };
    let Some(hi) = files.iter().map(|f| key::user_key(&f.largest)).max() else {
        return Vec::new();
    };
    version
        .files(level)
        .iter()
        .filter(|f| key::user_key(&f.largest) >= lo && key::user_key(&f.smallest) <= hi)
        .cloned()
        .collect()
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

/// What a compaction produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The edit to commit: inputs deleted, outputs added.
    pub edit: VersionEdit,
    /// Bytes read from the inputs and written to the outputs.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Entries dropped (shadowed versions and tombstones no one can see).
    pub dropped: u64,
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
    /// The oldest sequence number any reader may still read at.
    pub oldest_snapshot: SequenceNumber,
    /// Hands out file numbers for the outputs.
    pub new_file_number: &'a mut dyn FnMut() -> u64,
}

/// Runs `job`: merges its inputs (opened from `sources`), keeping the newest version of each
/// key plus every version a snapshot at or after `oldest_snapshot` can see, dropping
/// tombstones no lower level can be hiding data behind, and cutting outputs at
/// `target_file_size` on user-key boundaries.
pub fn run(job: &Job, sources: Vec<Source>, ctx: &mut Context<'_>) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    let output_level = job.output_level();
    for (i, files) in job.inputs.iter().enumerate() {
        for f in files {
            outcome.edit.deleted_files.push((job.level + i, f.number));
            outcome.bytes_read += f.size;
        }
    }
    if job.is_trivial_move() {
        outcome
            .edit
            .new_files
            .push((output_level, FileMeta::clone(&job.inputs[0][0])));
        return Ok(outcome);
    }
    let mut merged = MergingIter::new(sources);
    merged.seek_to_first();
    let mut output: Option<(u64, TableBuilder<'_>)> = None;
    let mut last_user: Option<Vec<u8>> = None;
    // Sequence of the newer entry of the same user key, if one was seen.
    let mut newer_sequence: Option<SequenceNumber> = None;
    while merged.valid() {
        let Some(parsed) = ParsedKey::parse(merged.key()) else {
            return Err(crate::Error::corruption(
                "compaction input holds an invalid internal key",
            ));
        };
        let new_user = last_user.as_deref() != Some(parsed.user_key);
        if new_user {
            // Cut the output only between user keys, so no key spans two tables of a level.
            if output
                .as_ref()
                .is_some_and(|(_, b)| b.estimated_size() >= ctx.opts.target_file_size)
            {
                finish_output(output.take(), output_level, &mut outcome)?;
            }
            last_user = Some(parsed.user_key.to_vec());
            newer_sequence = None;
        }
        // A version is invisible to everyone when a newer version of its key is already
        // visible to the oldest reader.
        let shadowed = newer_sequence.is_some_and(|newer| newer <= ctx.oldest_snapshot);
        let dead_tombstone = parsed.kind == ValueKind::Delete
            && parsed.sequence <= ctx.oldest_snapshot
            && is_bottom_for(ctx.version, output_level, parsed.user_key);
        newer_sequence = Some(parsed.sequence);
        if shadowed || dead_tombstone {
            outcome.dropped += 1;
        } else {
            if output.is_none() {
                let number = (ctx.new_file_number)();
                let path = ctx.dir.join(format!("{number:06}.sst"));
                output = Some((
                    number,
                    TableBuilder::create(ctx.fs, &path, number, TableOptions::from(ctx.opts))?,
                ));
            }
            if let Some((_, builder)) = output.as_mut() {
                builder.add(merged.key(), merged.value())?;
            }
        }
        merged.next();
    }
    merged.status()?;
    finish_output(output.take(), output_level, &mut outcome)?;
    outcome.bytes_written = outcome.edit.new_files.iter().map(|(_, f)| f.size).sum();
    Ok(outcome)
}

/// The manifest's description of table `number`, from what its builder reported.
pub fn table_meta(number: u64, info: &TableInfo) -> FileMeta {
    FileMeta {
        number,
        size: info.file_size,
        smallest: info.properties.smallest_key.clone(),
        largest: info.properties.largest_key.clone(),
        min_sequence: info.properties.min_sequence,
        max_sequence: info.properties.max_sequence,
    }
}

fn finish_output(
    output: Option<(u64, TableBuilder<'_>)>,
    level: usize,
    outcome: &mut Outcome,
) -> Result<()> {
    let Some((number, builder)) = output else {
        return Ok(());
    };
    let info = builder.finish()?;
    outcome
        .edit
        .new_files
        .push((level, table_meta(number, &info)));
    Ok(())
}
