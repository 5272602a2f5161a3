//! How new tables' filters are sized: the configured policy, resolved per level
//! ([`FilterPolicy::Optimized`]), plus the bits a level's observed false positives call for
//! (`Options::adaptive_filters`).
//!
//! # Adapting to observed false positives
//!
//! Each level counts the lookups its filters answered for keys their tables lacked
//! (`useful + false_positives`), the false positives among them, and the false positives
//! expected: each probed filter's expected rate, from its real size ([`expected_fp_rate`],
//! computed once when the table opens), summed over the lookups. So over a level, `F` false
//! positives were observed where `E = Σ expected rate of the filter probed` were expected.
//! The counters are sharded per thread, like every metric, and exact. Adaptation reads them
//! as a window: the differences since the level was last judged (or since 2^20 lookups
//! ago), so it follows the workload as it is now, and a wrap of the sums does not matter.
//! (A lookup at a snapshot older than a table's newest entry that finds nothing counts as
//! neither: the key may be among the newer entries, and the filter then was right.) The ratio
//! `R = F / E` is how much worse than the arithmetic the level's keys and lookups behave (a
//! few absent keys looked up again and again that happen to pass, a hash that suits the
//! data badly). It does not depend on how many bits the tables have, so the correction is a
//! set-point, not a step that compounds: new tables get the bits whose expected rate is
//! `target / R`, where `target` is the rate the configured policy aims for.
//!
//! A level is judged only on enough evidence: at least [`MIN_LOOKUPS`] lookups and
//! [`MIN_FALSE_POSITIVES`] false positives, `F` above `E` by [`MARGIN`] and by three
//! standard deviations of a Poisson count (`3√E`). Bits only grow, by at most
//! [`MAX_EXTRA_BITS`] per key, and only for tables written from then on.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{DbInner, lock};
use crate::FilterPolicy;
use crate::listener::FilterAdjustInfo;
use crate::sst::filter::{self, expected_fp_rate};
use crate::version::set::Version;

/// Lookups of absent keys a level needs before its rate is judged.
pub const MIN_LOOKUPS: u64 = 1000;
/// False positives a level needs before its rate is judged.
pub const MIN_FALSE_POSITIVES: u64 = 10;
/// How far above its expected rate a level's observed rate must be (0.5: 50%).
pub const MARGIN: f64 = 0.5;
/// The most bits per key adaptation adds to a level's configured bits.
pub const MAX_EXTRA_BITS: f64 = 16.0;
/// Extra bits smaller than this are not worth an adjustment.
const MIN_STEP_BITS: f64 = 0.5;

/// Lookups of absent keys after which a level's observation window starts over, so
/// adaptation follows the workload as it is now.
const WINDOW_LOOKUPS: u64 = 1 << 20;

/// Per-level extra bits per key, where each level's observation window started, and how
/// many adjustments were made.
pub(crate) struct FilterTuning {
    extra_bits: Mutex<Vec<f64>>,
    /// Each level's counters (useful, false positives, expected ppm) when its window began.
    windows: Mutex<Vec<(u64, u64, u64)>>,
    adjustments: AtomicU64,
}

impl FilterTuning {
    pub fn new(levels: usize) -> Self {
        FilterTuning {
            extra_bits: Mutex::new(vec![0.0; levels]),
            windows: Mutex::new(vec![(0, 0, 0); levels]),
            adjustments: AtomicU64::new(0),
        }
    }

    /// Bits per key adaptation adds to `level`'s new tables.
    pub fn extra_bits(&self, level: usize) -> f64 {
        lock(&self.extra_bits).get(level).copied().unwrap_or(0.0)
    }

    /// Adjustments made since open.
    pub fn adjustments(&self) -> u64 {
        self.adjustments.load(Ordering::Relaxed)
    }
}

/// What a level's open tables' filters did: lookups of keys they lacked, false positives,
/// and false positives expected from their sizes.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Observation {
    pub lookups: u64,
    pub false_positives: u64,
    pub expected: f64,
}

impl Observation {
    /// `F / E`, when the evidence says the level does worse than its filters' sizes
    /// predict.
    pub fn excess_ratio(&self) -> Option<f64> {
        let (f, e) = (self.false_positives as f64, self.expected);
        let enough = self.lookups >= MIN_LOOKUPS && self.false_positives >= MIN_FALSE_POSITIVES;
        (enough && e > 0.0 && f > e * (1.0 + MARGIN) && f - e > 3.0 * e.sqrt()).then(|| f / e)
    }

    /// The observed rate, if any lookup was observed.
    pub fn observed_rate(&self) -> Option<f64> {
        (self.lookups > 0).then(|| self.false_positives as f64 / self.lookups as f64)
    }
}

impl DbInner {
    /// The filter policy of a table written into `level` of `version` now.
    pub(crate) fn filter_policy_for(&self, version: &Version, level: usize) -> FilterPolicy {
        let base = crate::compaction::filter_policy_for_level(version, &self.opts, level);
        if !self.opts.adaptive_filters {
            return base;
        }
        let Some((base_bits, _)) = filter::parameters(base) else {
            return base;
        };
        self.adapt(level, base_bits);
        let extra = self.filter_tuning.extra_bits(level);
        if extra > 0.0 {
            FilterPolicy::BitsPerKey((base_bits + extra).min(filter::MAX_BITS_PER_KEY))
        } else {
            base
        }
    }

    /// Bits per key a table written into `level` would get now, without adapting.
    pub(crate) fn filter_bits_now(&self, version: &Version, level: usize) -> Option<f64> {
        let base = crate::compaction::filter_policy_for_level(version, &self.opts, level);
        let (bits, _) = filter::parameters(base)?;
        let extra = if self.opts.adaptive_filters {
            self.filter_tuning.extra_bits(level)
        } else {
            0.0
        };
        Some((bits + extra).min(filter::MAX_BITS_PER_KEY))
    }

    /// What the filters of `level` did since open.
    pub(crate) fn observe_filters(&self, level: usize) -> Observation {
        let (_, useful, false_positives) = self.tables.filter_counts(level);
        Observation {
            lookups: useful + false_positives,
            false_positives,
            expected: self.tables.filter_expected_false_positives(level),
        }
    }

    /// What `level`'s filters did in its current window: differences of the counters,
    /// which stay right across a wrap of the (u64) sums. Starts a new window once this
    /// one is judged on `WINDOW_LOOKUPS` lookups, or `restart` says so.
    fn window(&self, level: usize, restart: bool) -> Observation {
        let now = self.tables.filter_raw(level);
        let mut windows = lock(&self.filter_tuning.windows);
        let Some(start) = windows.get_mut(level) else {
            return Observation::default();
        };
        let useful = now.0.wrapping_sub(start.0);
        let false_positives = now.1.wrapping_sub(start.1);
        let seen = Observation {
            lookups: useful.wrapping_add(false_positives),
            false_positives,
            expected: now.2.wrapping_sub(start.2) as f64 / 1e6,
        };
        if restart || seen.lookups >= WINDOW_LOOKUPS {
            *start = now;
        }
        seen
    }

    /// Raises `level`'s extra bits if the false positives observed in its current window
    /// call for it, and tells the listeners.
    fn adapt(&self, level: usize, base_bits: f64) {
        let seen = self.window(level, false);
        let Some(ratio) = seen.excess_ratio() else {
            return;
        };
        // Judged: the next window starts now.
        self.window(level, true);
        let target = expected_fp_rate(base_bits, best_probes_at(base_bits));
        let wanted = filter::bits_for_rate(target / ratio).min(filter::MAX_BITS_PER_KEY);
        let extra = (wanted - base_bits).clamp(0.0, MAX_EXTRA_BITS);
        let mut extras = lock(&self.filter_tuning.extra_bits);
        let Some(current) = extras.get_mut(level) else {
            return;
        };
        if extra < *current + MIN_STEP_BITS {
            return;
        }
        let before = base_bits + *current;
        *current = extra;
        drop(extras);
        self.filter_tuning
            .adjustments
            .fetch_add(1, Ordering::Relaxed);
        let info = FilterAdjustInfo {
            level,
            lookups: seen.lookups,
            observed_rate: seen.observed_rate().unwrap_or(0.0),
            expected_rate: seen.expected / seen.lookups as f64,
            bits_per_key_before: before,
            bits_per_key_after: base_bits + extra,
        };
        self.listeners.notify(|l| l.on_filter_adjusted(&info));
    }
}

/// The probe count a filter of `bits` per key uses.
fn best_probes_at(bits: f64) -> u32 {
    filter::parameters(FilterPolicy::BitsPerKey(bits)).map_or(1, |(_, probes)| probes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(lookups: u64, false_positives: u64, expected: f64) -> Observation {
        Observation {
            lookups,
            false_positives,
            expected,
        }
    }

    #[test]
    fn a_level_is_judged_only_on_enough_evidence_of_excess() {
        // 1% expected over 10k lookups: 100 expected.
        assert_eq!(seen(10_000, 100, 100.0).excess_ratio(), None);
        assert_eq!(
            seen(10_000, 140, 100.0).excess_ratio(),
            None,
            "within the margin"
        );
        assert_eq!(seen(10_000, 300, 100.0).excess_ratio(), Some(3.0));
        assert_eq!(seen(999, 300, 10.0).excess_ratio(), None, "too few lookups");
        assert_eq!(
            seen(5000, 9, 0.5).excess_ratio(),
            None,
            "too few false positives"
        );
        // 1.6x the expected count but within 3 standard deviations.
        assert_eq!(seen(2000, 16, 10.0).excess_ratio(), None);
        assert_eq!(seen(2000, 20, 10.0).excess_ratio(), Some(2.0));
        assert_eq!(seen(0, 0, 0.0).observed_rate(), None);
        assert_eq!(seen(200, 2, 2.0).observed_rate(), Some(0.01));
    }
}
