//! The tiered picker (size-tiered, as RocksDB's universal compaction).
//!
//! The database is a list of sorted runs, newest first: each L0 table is one, and each
//! non-empty deeper level is one. Nothing happens while there are fewer than
//! `l0_compaction_trigger` runs. Past it, in this order:
//! 1. Space: when the runs above the oldest hold more than `max_space_amplification_percent`
//!    of its size, everything is merged into the last level (this bounds the disk used by
//!    overwritten and deleted data).
//! 2. Size ratio: the first window of adjacent runs, each no larger than the runs before it
//!    in the window together plus `tiered_size_ratio_percent`, is merged (runs of similar
//!    size merge; a small new run does not rewrite a large old one).
//! 3. Count: otherwise the newest runs are merged until `l0_compaction_trigger - 1` remain.
//!
//! Outputs go to the deepest level above the next older run, so age still grows with depth.
//! A window holding an L0 table takes every older L0 table too: a table moved below an
//! older L0 table would be shadowed by it.

use std::sync::Arc;

use super::{Busy, Job, LevelInputs, total_size};
use crate::options::Options;
use crate::version::edit::FileMeta;
use crate::version::set::Version;

/// One sorted run.
#[derive(Debug, Clone)]
pub struct Run {
    /// The level holding it.
    pub level: usize,
    /// Its tables (one for an L0 run).
    pub files: Vec<Arc<FileMeta>>,
    /// Their total size.
    pub size: u64,
}

/// The sorted runs of `version`, newest first.
pub fn runs(version: &Version) -> Vec<Run> {
    let l0 = version.files(0).iter().map(|f| Run {
        level: 0,
        files: vec![Arc::clone(f)],
        size: f.size,
    });
    let deeper = (1..version.num_levels())
        .filter(|&l| !version.files(l).is_empty())
        .map(|l| Run {
            level: l,
            files: version.files(l).to_vec(),
            size: total_size(version.files(l)),
        });
    l0.chain(deeper).collect()
}

/// The job the tiered rules call for, if any. One tiered compaction runs at a time: `None`
/// while any table is busy.
pub fn pick(version: &Version, opts: &Options, busy: &Busy) -> Option<Job> {
    if !busy.is_empty() {
        return None;
    }
    let runs = runs(version);
    let window = choose_window(&runs, opts)?;
    job_for_window(version, &runs, window)
}

/// The runs to merge, as a range of indexes into `runs` (newest first).
fn choose_window(runs: &[Run], opts: &Options) -> Option<std::ops::Range<usize>> {
    let n = runs.len();
    if n < opts.l0_compaction_trigger.max(2) {
        return None;
    }
    let above_oldest: u64 = runs[..n - 1].iter().map(|r| r.size).sum();
    let oldest = runs[n - 1].size;
    if u128::from(above_oldest) * 100
        > u128::from(oldest) * u128::from(opts.max_space_amplification_percent)
    {
        return Some(0..n);
    }
    let ratio = u128::from(100 + opts.tiered_size_ratio_percent);
    for start in 0..n - 1 {
        let mut window_size = u128::from(runs[start].size);
        let mut end = start + 1;
        while end < n && u128::from(runs[end].size) * 100 <= window_size * ratio {
            window_size += u128::from(runs[end].size);
            end += 1;
        }
        if end - start >= 2 {
            return Some(start..end);
        }
    }
    Some(
        0..(n + 2)
            .saturating_sub(opts.l0_compaction_trigger)
            .clamp(2, n),
    )
}

/// The job merging `runs[window]`: widened to every older L0 table, output to the last
/// level when it holds the oldest run, else to the level just above the next older run
/// (widened by that run when no level is free between).
fn job_for_window(version: &Version, runs: &[Run], window: std::ops::Range<usize>) -> Option<Job> {
    let l0_runs = runs.iter().take_while(|r| r.level == 0).count();
    let start = window.start;
    let mut end = window.end;
    if start < l0_runs {
        end = end.max(l0_runs);
    }
    let last = version.num_levels() - 1;
    let output = loop {
        match runs.get(end) {
            None => break last,
            // Deeper than every run in the window (the next run is older, so deeper), and
            // not L0.
            Some(next) if next.level >= 2 => break next.level - 1,
            Some(_) => end += 1,
        }
    };
    let inputs: Vec<LevelInputs> =
        runs[start..end]
            .iter()
            .fold(Vec::new(), |mut acc: Vec<LevelInputs>, run| {
                match acc.last_mut() {
                    Some(last) if last.level == run.level => last.files.extend(run.files.clone()),
                    _ => acc.push(LevelInputs {
                        level: run.level,
                        files: run.files.clone(),
                    }),
                }
                acc
            });
    Some(Job {
        level: inputs.first()?.level,
        inputs,
        output,
        grandparents: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compaction::testing::{meta, version};

    fn opts(trigger: usize) -> Options {
        Options::default()
            .l0_compaction_trigger(trigger)
            .tiered_size_ratio_percent(1)
            .max_space_amplification_percent(200)
    }

    fn levels(job: &Job) -> Vec<(usize, Vec<u64>)> {
        job.inputs
            .iter()
            .map(|i| (i.level, i.files.iter().map(|f| f.number).collect()))
            .collect()
    }

    #[test]
    fn fewer_runs_than_the_trigger_wait() {
        let v = version(vec![(0, meta(9, "a", "b", 10)), (6, meta(1, "a", "z", 10))]);
        assert!(pick(&v, &opts(4), &Busy::new()).is_none());
        assert!(pick(&v, &opts(2), &Busy::new()).is_some());
    }

    #[test]
    fn too_much_data_above_the_oldest_run_merges_everything_into_the_last_level() {
        let v = version(vec![
            (0, meta(12, "a", "b", 100)),
            (0, meta(11, "a", "b", 100)),
            (0, meta(10, "a", "b", 100)),
            (6, meta(1, "a", "z", 100)),
        ]);
        let job = pick(&v, &opts(4), &Busy::new()).expect("a job");
        assert_eq!(job.output, 6);
        assert_eq!(levels(&job), [(0, vec![12, 11, 10]), (6, vec![1])]);
    }

    #[test]
    fn runs_of_similar_size_merge_above_the_next_older_run() {
        let v = version(vec![
            (0, meta(12, "a", "b", 10)),
            (0, meta(11, "a", "b", 10)),
            (0, meta(10, "a", "b", 10)),
            (5, meta(2, "a", "z", 1000)),
            (6, meta(1, "a", "z", 10000)),
        ]);
        let job = pick(&v, &opts(4), &Busy::new()).expect("a job");
        assert_eq!(levels(&job), [(0, vec![12, 11, 10])]);
        assert_eq!(job.output, 4);
    }

    #[test]
    fn without_similar_runs_the_newest_merge_until_under_the_trigger() {
        let v = version(vec![
            (0, meta(12, "a", "b", 10)),
            (0, meta(11, "a", "b", 100)),
            (3, meta(3, "a", "z", 1000)),
            (4, meta(2, "a", "z", 10_000)),
            (6, meta(1, "a", "z", 100_000)),
        ]);
        let job = pick(&v, &opts(4), &Busy::new()).expect("a job");
        assert_eq!(levels(&job), [(0, vec![12, 11]), (3, vec![3])]);
        assert_eq!(job.output, 3, "in place: the next run is on L4");
    }

    #[test]
    fn a_window_takes_every_older_l0_table_and_the_run_on_l1_when_no_level_is_free() {
        let v = version(vec![
            (0, meta(12, "a", "b", 10)),
            (0, meta(11, "a", "b", 10)),
            (0, meta(10, "a", "b", 5000)),
            (1, meta(3, "a", "z", 10_000)),
            (6, meta(1, "a", "z", 100_000)),
        ]);
        let job = pick(&v, &opts(3), &Busy::new()).expect("a job");
        assert_eq!(levels(&job), [(0, vec![12, 11, 10]), (1, vec![3])]);
        assert_eq!(job.output, 5);
    }

    #[test]
    fn one_tiered_compaction_at_a_time() {
        let v = version(vec![(0, meta(9, "a", "b", 10)), (6, meta(1, "a", "z", 10))]);
        assert!(pick(&v, &opts(2), &Busy::from([9])).is_none());
    }
}
