//! Compaction: which tables to merge (the pickers, [`leveled`] and [`tiered`]) and merging
//! them ([`job`]).
//!
//! Policy and execution are apart: a picker looks only at a [`Version`], the options and
//! the set of tables other compactions are busy with; [`job::run`] merges the inputs it is
//! given, keeps what a reader may still see, and writes the outputs. The Db commits the
//! result in one version edit and schedules the work ([`rate_limiter`] paces it).
//!
//! Whatever the picker, a job keeps one rule that makes results correct: every table
//! holding a newer version of a key than some input lies above the output level, and every
//! table holding an older one lies below it (or is an input).

pub mod job;
pub mod leveled;
pub mod rate_limiter;
pub mod tiered;

use std::collections::HashSet;
use std::sync::Arc;

use crate::key;
use crate::options::{CompactionStyle, Options};
use crate::sst::builder::TableInfo;
use crate::version::edit::FileMeta;
use crate::version::set::Version;

pub use job::{Context, Outcome, run};

/// The tables of one level that a job merges.
#[derive(Debug, Clone)]
pub struct LevelInputs {
    /// The level they are in.
    pub level: usize,
    /// The tables.
    pub files: Vec<Arc<FileMeta>>,
}

/// A compaction to run: merge `inputs` (from one or more levels, newest level first) into
/// new tables on `output`.
#[derive(Debug, Clone)]
pub struct Job {
    /// The level the compaction starts from (the one the picker scored).
    pub level: usize,
    /// What is merged, by level, shallowest first.
    pub inputs: Vec<LevelInputs>,
    /// The level outputs go to: at least as deep as every input.
    pub output: usize,
    /// Tables of the level below `output` that the job's key range overlaps: outputs are
    /// cut early so no output overlaps too many of them (a later compaction of it would
    /// rewrite them all).
    pub grandparents: Vec<Arc<FileMeta>>,
}

impl Job {
    /// The level outputs go to.
    pub fn output_level(&self) -> usize {
        self.output
    }

    /// Whether the job can move its tables down without rewriting them: they all come from
    /// one level other than the output, nothing in the output level overlaps them, and they
    /// do not overlap each other (L0 tables may).
    pub fn is_trivial_move(&self) -> bool {
        let mut levels = self.inputs.iter().filter(|i| !i.files.is_empty());
        let (Some(only), None) = (levels.next(), levels.next()) else {
            return false;
        };
        if only.level == self.output {
            return false;
        }
        let mut ranges: Vec<(&[u8], &[u8])> = only
            .files
            .iter()
            .map(|f| (key::user_key(&f.smallest), key::user_key(&f.largest)))
            .collect();
        ranges.sort_unstable();
        ranges.windows(2).all(|w| w[0].1 < w[1].0)
    }

    /// Every input table.
    pub fn all_inputs(&self) -> impl Iterator<Item = &Arc<FileMeta>> {
        self.inputs.iter().flat_map(|i| i.files.iter())
    }

    /// Every input table with its level.
    pub fn inputs_by_level(&self) -> impl Iterator<Item = (usize, &Arc<FileMeta>)> {
        self.inputs
            .iter()
            .flat_map(|i| i.files.iter().map(move |f| (i.level, f)))
    }

    /// A rewrite of one table in place, in its own level: what drops the tombstones of a
    /// table that nothing below overlaps when they arrived without a rewrite (by a trivial
    /// move), which no other compaction would drop.
    pub fn rewrite_in_place(version: &Version, level: usize, file: Arc<FileMeta>) -> Job {
        Job::into_level(version, level, vec![file], level)
    }

    /// Builds a job from `level`'s `sources` into `output`, adding the tables of `output`
    /// they overlap and noting the grandparents.
    fn into_level(
        version: &Version,
        level: usize,
        sources: Vec<Arc<FileMeta>>,
        output: usize,
    ) -> Job {
        let mut inputs = vec![LevelInputs {
            level,
            files: sources,
        }];
        if output != level {
            let below = overlapping(version, output, &inputs[0].files);
            inputs.push(LevelInputs {
                level: output,
                files: below,
            });
        }
        let all: Vec<Arc<FileMeta>> = inputs.iter().flat_map(|i| i.files.clone()).collect();
        let grandparents = if output + 1 < version.num_levels() {
            overlapping(version, output + 1, &all)
        } else {
            Vec::new()
        };
        Job {
            level,
            inputs,
            output,
            grandparents,
        }
    }
}

/// Which versions some reader may still see, from the live snapshots and the visible
/// sequence number at the start of a flush or compaction.
///
/// The boundaries (the snapshots, then "now") cut the sequence numbers into stripes: the
/// stripe of a version is the first boundary at or above it. Every reader sees the same
/// version of a key among those in one stripe (the newest), so only that one is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visibility {
    /// Ascending; the last is the visible sequence number ("now").
    boundaries: Vec<crate::key::SequenceNumber>,
}

impl Visibility {
    /// Visibility for `snapshots` (ascending) and the visible sequence number `now`.
    pub fn new(snapshots: impl IntoIterator<Item = u64>, now: u64) -> Self {
        let mut boundaries: Vec<u64> = snapshots.into_iter().filter(|&s| s < now).collect();
        boundaries.push(now);
        Visibility { boundaries }
    }

    /// The stripe of `sequence` (versions in one stripe look the same to every reader).
    pub fn stripe(&self, sequence: u64) -> usize {
        self.boundaries.partition_point(|&b| b < sequence)
    }

    /// The oldest sequence number any reader reads at: a tombstone at or below it hides
    /// its key from everyone.
    pub fn oldest(&self) -> u64 {
        self.boundaries[0]
    }

    /// The visible sequence number when this was taken: a read at an older, unregistered
    /// sequence may need a version dropped here, and must take a newer one.
    pub fn now(&self) -> u64 {
        self.boundaries[self.boundaries.len() - 1]
    }
}

/// The table numbers that running compactions hold: a picker never hands them out again.
pub type Busy = HashSet<u64>;

/// The most urgent compaction under `opts.compaction_style`, avoiding `busy` tables; `None`
/// when nothing needs compacting (or what does is busy).
pub fn pick(version: &Version, opts: &Options, busy: &Busy) -> Option<Job> {
    match opts.compaction_style {
        CompactionStyle::Leveled => leveled::pick(version, opts, busy),
        CompactionStyle::Tiered => tiered::pick(version, opts, busy),
    }
}

/// Bytes compaction still has to move to bring the tree within its targets (an estimate
/// for operators: RocksDB's "pending compaction bytes"). Leveled: L0 once it reaches its
/// trigger, plus each deeper level's bytes over its target. Tiered: everything above the
/// oldest run once there are enough runs to compact.
pub fn pending_bytes(version: &Version, opts: &Options) -> u64 {
    match opts.compaction_style {
        CompactionStyle::Leveled => {
            let targets = leveled::targets(version, opts);
            let l0 = version.files(0);
            let l0_bytes = if l0.len() >= opts.l0_compaction_trigger {
                total_size(l0)
            } else {
                0
            };
            let last = version.num_levels() - 1;
            (1..last).fold(l0_bytes, |sum, level| {
                let bytes = total_size(version.files(level));
                sum + bytes.saturating_sub(targets.targets[level])
            })
        }
        CompactionStyle::Tiered => {
            let runs = tiered::runs(version);
            if runs.len() < opts.l0_compaction_trigger.max(2) {
                return 0;
            }
            runs[..runs.len() - 1].iter().map(|r| r.size).sum()
        }
    }
}

/// How urgent compacting `level` is (≥ 1: due), under the leveled style; `None` for the
/// last level and under tiered (which scores runs, not levels).
pub fn level_score(version: &Version, opts: &Options, level: usize) -> Option<f64> {
    if opts.compaction_style != CompactionStyle::Leveled || level + 1 >= version.num_levels() {
        return None;
    }
    let targets = leveled::targets(version, opts);
    Some(leveled::score(version, opts, &targets, level))
}

/// Bits per key for each of `sizes` (a level's entries, or anything proportional to them)
/// that spend `budget` bits per key on average and minimise the sum of the levels'
/// false-positive rates: the expected tables a lookup of a missing key reads (Monkey,
/// SIGMOD 2017). With `p_i = e^(-b_i ln²2)`, minimising `Σ p_i` subject to
/// `Σ N_i b_i = budget Σ N_i` gives `p_i ∝ N_i`, that is
/// `b_i = budget + Σ_j w_j ln(N_j / N_i) / ln²2` with `w_j = N_j / Σ N`. A level that would
/// get fewer than zero bits gets none, and the others share the budget again. Empty levels
/// get 0.
pub fn optimized_bits(sizes: &[u64], budget: f64) -> Vec<f64> {
    let ln2_sq = std::f64::consts::LN_2 * std::f64::consts::LN_2;
    let total: f64 = sizes.iter().map(|&n| n as f64).sum();
    let mut bits = vec![0.0; sizes.len()];
    let mut active: Vec<usize> = (0..sizes.len()).filter(|&i| sizes[i] > 0).collect();
    while !active.is_empty() {
        let n: f64 = active.iter().map(|&i| sizes[i] as f64).sum();
        // The whole budget goes to the levels still in: their average rises.
        let level_budget = budget * total / n;
        let mean_ln: f64 = active
            .iter()
            .map(|&i| sizes[i] as f64 / n * (sizes[i] as f64).ln())
            .sum();
        for &i in &active {
            bits[i] = level_budget + (mean_ln - (sizes[i] as f64).ln()) / ln2_sq;
        }
        let before = active.len();
        active.retain(|&i| bits[i] > 0.0);
        for (i, b) in bits.iter_mut().enumerate() {
            if !active.contains(&i) {
                *b = 0.0;
            }
        }
        if active.len() == before {
            break;
        }
    }
    bits
}

/// The filter policy a table written into `level` gets: `opts.filter_policy`, with
/// [`FilterPolicy::Optimized`](crate::FilterPolicy::Optimized) resolved to bits per key for
/// that level from the levels' actual sizes (the level written at least one memtable).
///
/// Actual sizes, not targets: a young database whose deeper levels are far below their
/// targets would otherwise be given the bits of a tree it does not have, spending up to
/// twice its budget (measured: 20 000 keys, 10 bits per key, 1.9x the memory of a fixed
/// 10 bits).
pub fn filter_policy_for_level(
    version: &Version,
    opts: &Options,
    level: usize,
) -> crate::FilterPolicy {
    let crate::FilterPolicy::Optimized { bits_per_key } = opts.filter_policy else {
        return opts.filter_policy;
    };
    let sizes: Vec<u64> = (0..version.num_levels())
        .map(|l| {
            let actual = total_size(version.files(l));
            if l == level {
                // What is being written: at least a memtable's worth.
                actual.max(opts.memtable_size as u64)
            } else {
                actual
            }
        })
        .collect();
    match optimized_bits(&sizes, bits_per_key).get(level) {
        Some(&bits) if bits >= 0.5 => crate::FilterPolicy::BitsPerKey(bits.min(64.0)),
        _ => crate::FilterPolicy::None,
    }
}

/// A range of user keys for manual compaction.
pub type UserKeyRange = (std::ops::Bound<Vec<u8>>, std::ops::Bound<Vec<u8>>);

/// Whether `file` may hold a user key within `range`.
pub(crate) fn in_range(file: &FileMeta, range: &UserKeyRange) -> bool {
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
/// one shadow it. Works for both styles: each level below L0 is one sorted run.
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
    let output = (level + 1).min(version.num_levels() - 1);
    Some(Job::into_level(version, level, sources, output))
}

/// The smallest and largest user keys of `files`.
fn user_key_hull(files: &[Arc<FileMeta>]) -> Option<(&[u8], &[u8])> {
    let lo = files.iter().map(|f| key::user_key(&f.smallest)).min()?;
    let hi = files.iter().map(|f| key::user_key(&f.largest)).max()?;
    Some((lo, hi))
}

/// The tables of `level` whose user-key ranges overlap the hull of `files`.
fn overlapping(version: &Version, level: usize, files: &[Arc<FileMeta>]) -> Vec<Arc<FileMeta>> {
    let Some((lo, hi)) = user_key_hull(files) else {
        return Vec::new();
    };
    version
        .files(level)
        .iter()
        .filter(|f| key::user_key(&f.largest) >= lo && key::user_key(&f.smallest) <= hi)
        .cloned()
        .collect()
}

/// Whether no level below `level` holds a key within `file`'s range: a rewrite of `file`
/// in place then drops every tombstone all readers see.
pub fn nothing_below(version: &Version, level: usize, file: &Arc<FileMeta>) -> bool {
    let (lo, hi) = (key::user_key(&file.smallest), key::user_key(&file.largest));
    (level + 1..version.num_levels()).all(|below| {
        // Each level below L0 is sorted and disjoint: the first table ending at or after
        // `lo` is the only one that may start at or before `hi`.
        let files = version.files(below);
        let i = files.partition_point(|f| key::user_key(&f.largest) < lo);
        files.get(i).is_none_or(|f| key::user_key(&f.smallest) > hi)
    })
}

/// The total size of `files`.
fn total_size(files: &[Arc<FileMeta>]) -> u64 {
    files.iter().map(|f| f.size).sum()
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

#[cfg(test)]
mod tests {
    use super::{Visibility, optimized_bits};

    #[test]
    fn optimized_filters_spend_the_budget_with_fewer_bits_on_larger_levels() {
        let sizes = [10, 100, 1_000, 10_000];
        let bits = optimized_bits(&sizes, 10.0);
        let total: f64 = sizes.iter().map(|&n| n as f64).sum();
        let spent: f64 = sizes.iter().zip(&bits).map(|(&n, b)| n as f64 * b).sum();
        assert!((spent / total - 10.0).abs() < 1e-9, "{bits:?}");
        assert!(bits.windows(2).all(|w| w[0] > w[1]), "{bits:?}");
        // Each factor of 10 in size costs ln(10)/ln²2 ≈ 4.79 bits.
        assert!((bits[0] - bits[1] - 10f64.ln() / (2f64.ln() * 2f64.ln())).abs() < 1e-9);
        // Equal levels share equally; empty levels get nothing.
        let equal = optimized_bits(&[5, 0, 5], 8.0);
        assert!(
            (equal[0] - 8.0).abs() < 1e-9 && equal[1] <= 0.0 && (equal[2] - 8.0).abs() < 1e-9,
            "{equal:?}"
        );
    }

    #[test]
    fn a_tight_budget_leaves_the_largest_level_without_a_filter() {
        // 0.1 bits per key: the big level's share would be negative (about -0.09).
        let sizes = [100, 100, 10_000];
        let bits = optimized_bits(&sizes, 0.1);
        assert!(
            bits[2] <= 0.0 && bits[..2].iter().all(|&b| b > 0.0),
            "{bits:?}"
        );
        let total: f64 = sizes.iter().map(|&n| n as f64).sum();
        let spent: f64 = sizes.iter().zip(&bits).map(|(&n, b)| n as f64 * b).sum();
        assert!(
            (spent - total * 0.1).abs() < 1e-6,
            "the whole budget, no more: {bits:?}"
        );
    }

    #[test]
    fn stripes_split_at_each_snapshot_and_end_at_now() {
        let v = Visibility::new([10, 20], 30);
        let stripes: Vec<usize> = [1, 10, 11, 20, 21, 30].map(|s| v.stripe(s)).to_vec();
        assert_eq!(stripes, [0, 0, 1, 1, 2, 2]);
        assert_eq!((v.oldest(), v.now()), (10, 30));
        let none = Visibility::new([], 7);
        assert_eq!((none.stripe(1), none.stripe(7), none.oldest()), (0, 0, 7));
        // A snapshot at "now" is no extra boundary.
        assert_eq!(Visibility::new([30], 30), Visibility::new([], 30));
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Versions built by hand for picker tests.

    use crate::key::{ValueKind, append_internal_key};
    use crate::version::edit::{FileMeta, VersionEdit};
    use crate::version::set::Version;

    fn ikey(user: &str, sequence: u64) -> Vec<u8> {
        let mut k = Vec::new();
        append_internal_key(&mut k, user.as_bytes(), sequence, ValueKind::Put);
        k
    }

    /// Table `number` holding `from..=to` in `size` bytes; its sequence is its number.
    pub fn meta(number: u64, from: &str, to: &str, size: u64) -> FileMeta {
        FileMeta {
            number,
            size,
            smallest: ikey(from, number),
            largest: ikey(to, number),
            min_sequence: number,
            max_sequence: number,
        }
    }

    /// A seven-level version holding `files`.
    pub fn version(files: Vec<(usize, FileMeta)>) -> Version {
        let edit = VersionEdit {
            new_files: files,
            ..VersionEdit::default()
        };
        Version::empty(7).apply(&edit).expect("a valid layout")
    }
}
