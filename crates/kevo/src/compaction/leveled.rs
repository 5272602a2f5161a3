//! The leveled picker (RocksDB style, with dynamic level sizing).
//!
//! L0 holds flushed tables that overlap each other; each deeper level is one sorted run of
//! non-overlapping tables. Level byte targets are derived from the last level's size, each
//! level above it `level_size_ratio` times smaller, so the last level holds about
//! `ratio / (ratio + 1)` of the data (≈ 90% at 10) however large the database is. Levels
//! whose target would fall below the base size (`target_file_size × l0_compaction_trigger`)
//! stay empty and L0 compacts straight into the first level that has a target: a small
//! database has two levels, not seven.

use std::sync::Arc;

use super::{Busy, Job, overlapping, total_size};
use crate::options::Options;
use crate::version::edit::FileMeta;
use crate::version::set::Version;

/// Byte targets of every level and the level L0 compacts into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelTargets {
    /// The shallowest level with a target: where L0 compacts to.
    pub base_level: usize,
    /// `targets[level]` for levels ≥ `base_level`; 0 above it (those levels should be
    /// empty) and for L0 (scored by table count).
    pub targets: Vec<u64>,
}

/// The size L0's compactions produce at the base level: `l0_compaction_trigger` tables.
pub fn base_bytes(opts: &Options) -> u64 {
    opts.target_file_size
        .saturating_mul(opts.l0_compaction_trigger as u64)
}

/// Level targets for `version`: the last level's target is the size of the largest level
/// below L0 (at least the base size; the last level is normally the largest, and when it
/// is not, the oversized level above it scores high and drains into it), each level above
/// `level_size_ratio` times smaller, up to the first level whose target fits in the base
/// size.
pub fn targets(version: &Version, opts: &Options) -> LevelTargets {
    let sizes: Vec<u64> = (0..version.num_levels())
        .map(|l| total_size(version.files(l)))
        .collect();
    targets_for_sizes(&sizes, opts)
}

/// [`targets`] from the levels' sizes in bytes (L0 first; at least two levels are
/// assumed), for tools that have an inspection rather than a live version.
pub fn targets_for_sizes(level_bytes: &[u64], opts: &Options) -> LevelTargets {
    let levels = level_bytes.len().max(2);
    let last = levels - 1;
    let base = base_bytes(opts);
    // Options read from a file are not validated: a ratio of 0 must not divide.
    let ratio = u64::from(opts.level_size_ratio.max(1));
    let mut targets = vec![0; levels];
    let largest = level_bytes.iter().skip(1).copied().max().unwrap_or(0);
    targets[last] = largest.max(base);
    let mut base_level = last;
    while base_level > 1 && targets[base_level] > base {
        targets[base_level - 1] = targets[base_level] / ratio;
        base_level -= 1;
    }
    LevelTargets {
        base_level,
        targets,
    }
}

/// How urgent compacting `level` is: ≥ 1 means over its trigger (L0) or target. A level
/// above the base level that holds anything is urgent: its data belongs further down.
pub fn score(version: &Version, opts: &Options, targets: &LevelTargets, level: usize) -> f64 {
    let files = version.files(level);
    score_for(targets, opts, level, files.len(), total_size(files))
}

/// [`score`] of a level holding `tables` tables of `bytes` bytes in all.
pub fn score_for(
    targets: &LevelTargets,
    opts: &Options,
    level: usize,
    tables: usize,
    bytes: u64,
) -> f64 {
    if level == 0 {
        return tables as f64 / opts.l0_compaction_trigger.max(1) as f64;
    }
    match targets.targets.get(level).copied().unwrap_or(0) {
        0 if bytes > 0 => f64::from(u32::MAX),
        0 => 0.0,
        target => bytes as f64 / target as f64,
    }
}

/// The most urgent job: the level with the highest score ≥ 1, L0 winning ties, and L0
/// first whatever the scores once it reaches `l0_slowdown_trigger` (writes are being
/// slowed for it). L0 does not always go first: its compactions hold the base level's
/// tables, so an overfull base level could then never drain. The last level is never a
/// source.
pub fn pick(version: &Version, opts: &Options, busy: &Busy) -> Option<Job> {
    let targets = targets(version, opts);
    let last = version.num_levels() - 1;
    let mut candidates: Vec<(usize, f64)> = (0..last)
        .map(|level| (level, score(version, opts, &targets, level)))
        .filter(|&(_, s)| s >= 1.0)
        .collect();
    let l0_stalls = version.files(0).len() >= opts.l0_slowdown_trigger;
    candidates.sort_by(|a, b| {
        let urgent = |(level, _): &(usize, f64)| level == &0 && l0_stalls;
        urgent(b)
            .cmp(&urgent(a))
            .then(b.1.total_cmp(&a.1))
            .then(a.0.cmp(&b.0))
    });
    candidates.into_iter().find_map(|(level, _)| {
        if level == 0 {
            l0_job(version, &targets, busy)
        } else {
            level_job(version, level, busy)
        }
    })
}

/// Every L0 table into the base level, or into a shallower level if one holds data (L0
/// must never go below older data). `None` while any L0 table is busy: one L0 compaction
/// at a time.
fn l0_job(version: &Version, targets: &LevelTargets, busy: &Busy) -> Option<Job> {
    let files = version.files(0);
    if files.is_empty() || files.iter().any(|f| busy.contains(&f.number)) {
        return None;
    }
    let output = (1..targets.base_level)
        .find(|&l| !version.files(l).is_empty())
        .unwrap_or(targets.base_level);
    let job = Job::into_level(version, 0, files.to_vec(), output);
    let free = !job.all_inputs().any(|f| busy.contains(&f.number));
    free.then_some(job)
}

/// The table of `level` that is cheapest to push down: the least overlap below per byte it
/// moves (a table overlapping nothing moves without a rewrite). Tables busy themselves or
/// overlapping busy tables below are skipped.
fn level_job(version: &Version, level: usize, busy: &Busy) -> Option<Job> {
    let mut best: Option<(u128, &Arc<FileMeta>)> = None;
    for file in version.files(level) {
        if busy.contains(&file.number) {
            continue;
        }
        let below = overlapping(version, level + 1, std::slice::from_ref(file));
        if below.iter().any(|f| busy.contains(&f.number)) {
            continue;
        }
        // Overlap per byte moved, scaled to stay an integer.
        let cost = u128::from(total_size(&below)) * 1024 / u128::from(file.size.max(1));
        if best.is_none_or(|(c, _)| cost < c) {
            best = Some((cost, file));
        }
    }
    let (_, file) = best?;
    Some(Job::into_level(
        version,
        level,
        vec![Arc::clone(file)],
        level + 1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compaction::testing::{meta, version};

    fn opts() -> Options {
        Options::default()
            .target_file_size(100)
            .l0_compaction_trigger(4)
            .level_size_ratio(10)
    }

    #[test]
    fn a_small_database_compacts_l0_straight_into_the_last_level() {
        let v = version(vec![(6, meta(1, "a", "z", 300))]);
        let t = targets(&v, &opts());
        assert_eq!(t.base_level, 6);
        assert_eq!(t.targets[6], 400, "at least the base size");
    }

    #[test]
    fn levels_are_added_above_the_last_as_it_grows() {
        // 400 000 bytes at the bottom: L5 40 000, L4 4 000, L3 400 (fits the base of 400).
        let v = version(vec![(6, meta(1, "a", "z", 400_000))]);
        let t = targets(&v, &opts());
        assert_eq!(t.base_level, 3);
        assert_eq!(t.targets[3..], [400, 4_000, 40_000, 400_000]);
        assert_eq!(t.targets[1..3], [0, 0]);
    }

    #[test]
    fn l0_goes_to_the_base_level_but_never_below_older_data_above_it() {
        let l0 = || (0, meta(9, "c", "d", 10));
        let v = version(vec![l0(), (6, meta(1, "a", "z", 100))]);
        let job = l0_job(&v, &targets(&v, &opts()), &Busy::new()).expect("a job");
        assert_eq!(job.output, 6);
        let v = version(vec![
            l0(),
            (2, meta(2, "a", "b", 10)),
            (6, meta(1, "a", "z", 100)),
        ]);
        let job = l0_job(&v, &targets(&v, &opts()), &Busy::new()).expect("a job");
        assert_eq!(job.output, 2);
        // Data above the base level is the most urgent thing after L0.
        assert!(score(&v, &opts(), &targets(&v, &opts()), 2) > 1000.0);
    }

    #[test]
    fn the_table_with_the_least_overlap_below_is_pushed_down_and_busy_ones_are_skipped() {
        let v = version(vec![
            (5, meta(1, "a", "c", 100)),
            (5, meta(2, "d", "f", 100)),
            (5, meta(3, "x", "y", 100)),
            (6, meta(4, "a", "b", 1000)),
            (6, meta(5, "e", "e", 10)),
        ]);
        let job = level_job(&v, 5, &Busy::new()).expect("a job");
        assert_eq!(job.inputs[0].files[0].number, 3, "overlaps nothing");
        assert!(job.is_trivial_move());
        let job = level_job(&v, 5, &Busy::from([3])).expect("a job");
        assert_eq!(job.inputs[0].files[0].number, 2, "10 bytes below beat 1000");
        assert_eq!(job.inputs[1].files[0].number, 5);
        assert!(level_job(&v, 5, &Busy::from([3, 5, 4])).is_none());
    }

    #[test]
    fn disjoint_tables_with_nothing_below_move_without_a_rewrite() {
        let disjoint = version(vec![(0, meta(9, "a", "b", 10)), (0, meta(8, "c", "d", 10))]);
        let job = l0_job(&disjoint, &targets(&disjoint, &opts()), &Busy::new()).expect("a job");
        assert!(job.is_trivial_move());
        let overlapping = version(vec![(0, meta(9, "a", "c", 10)), (0, meta(8, "c", "d", 10))]);
        let job = l0_job(&overlapping, &targets(&overlapping, &opts()), &Busy::new());
        assert!(
            !job.expect("a job").is_trivial_move(),
            "L0 tables sharing a key"
        );
        let below = version(vec![
            (0, meta(9, "a", "b", 10)),
            (6, meta(1, "b", "z", 100)),
        ]);
        let job = l0_job(&below, &targets(&below, &opts()), &Busy::new()).expect("a job");
        assert!(!job.is_trivial_move(), "a table below overlaps");
    }

    #[test]
    fn l0_waits_while_any_of_its_tables_or_their_overlap_is_busy() {
        let v = version(vec![
            (0, meta(9, "c", "d", 10)),
            (6, meta(1, "a", "z", 100)),
        ]);
        let t = targets(&v, &opts());
        assert!(l0_job(&v, &t, &Busy::from([9])).is_none());
        assert!(l0_job(&v, &t, &Busy::from([1])).is_none());
    }
}
