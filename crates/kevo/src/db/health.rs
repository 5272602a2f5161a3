//! [`Db::health`]: one verdict an operator (or a load balancer) can act on, from the
//! figures that predict trouble: a background error, write stalls, compaction debt and L0
//! tables piling up.

use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Serialize;

use super::{Db, lock};

/// The verdict of [`Db::health`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HealthStatus {
    /// Working normally.
    Ok,
    /// Working, but falling behind: see the reasons.
    Degraded,
    /// Reads work, writes fail: a background error (call `Db::resume` once its cause is
    /// fixed), or the database is closed.
    ReadOnly,
}

/// Limits past which [`Db::health_with`] reports [`HealthStatus::Degraded`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthThresholds {
    /// Share of wall time writes spent stalled since the previous health check (or since
    /// open). Default 0.1.
    pub max_stall_ratio: f64,
    /// Bytes compaction may owe before the database counts as behind. Default 64 GiB (as
    /// RocksDB's soft pending-compaction limit).
    pub max_pending_compaction_bytes: u64,
    /// L0 tables past which reads slow down. Default: the database's
    /// `l0_slowdown_trigger` (`None`).
    pub max_l0_tables: Option<usize>,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        HealthThresholds {
            max_stall_ratio: 0.1,
            max_pending_compaction_bytes: 64 << 30,
            max_l0_tables: None,
        }
    }
}

/// A database's health at one moment (see [`Db::health`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// The verdict.
    pub status: HealthStatus,
    /// Why it is not `Ok`, one line each.
    pub reasons: Vec<String>,
    /// Share of wall time writes stalled since the previous health check (or open).
    pub stall_ratio: f64,
    /// Bytes compaction owes (see `LsmShape::pending_compaction_bytes`).
    pub pending_compaction_bytes: u64,
    /// Tables in L0.
    pub l0_tables: usize,
}

/// Where the previous health check left the stall clock.
pub(crate) struct HealthWindow {
    at: Instant,
    stall_micros: u64,
}

impl HealthWindow {
    pub fn new() -> Self {
        HealthWindow {
            at: Instant::now(),
            stall_micros: 0,
        }
    }
}

impl Db {
    /// The database's health under the default [`HealthThresholds`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let db = kevo::Db::open(dir.path(), kevo::Options::default())?;
    /// assert_eq!(db.health().status, kevo::HealthStatus::Ok);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn health(&self) -> Health {
        self.health_with(&HealthThresholds::default())
    }

    /// The database's health under `thresholds`. Each call also starts a new window for
    /// the stall ratio.
    pub fn health_with(&self, thresholds: &HealthThresholds) -> Health {
        let inner = &self.inner;
        let shape = self.lsm_shape();
        let l0_tables = shape.levels.first().map_or(0, |l| l.tables);
        let stall_ratio = self.stall_ratio_since_last_check();
        let mut read_only = Vec::new();
        if inner.closed.load(Ordering::Acquire) {
            read_only.push("the database is closed".to_string());
        }
        if let Some(cause) = lock(&inner.background_error).as_ref() {
            read_only.push(format!("background error: {cause}"));
        }
        let mut degraded = Vec::new();
        if stall_ratio > thresholds.max_stall_ratio {
            degraded.push(format!(
                "writes stalled {:.1}% of the time (limit {:.1}%)",
                stall_ratio * 100.0,
                thresholds.max_stall_ratio * 100.0
            ));
        }
        if shape.pending_compaction_bytes > thresholds.max_pending_compaction_bytes {
            degraded.push(format!(
                "compaction owes {} bytes (limit {})",
                shape.pending_compaction_bytes, thresholds.max_pending_compaction_bytes
            ));
        }
        let max_l0 = thresholds
            .max_l0_tables
            .unwrap_or(inner.opts.l0_slowdown_trigger);
        if l0_tables >= max_l0 {
            degraded.push(format!("{l0_tables} L0 tables (limit {max_l0})"));
        }
        let status = if !read_only.is_empty() {
            HealthStatus::ReadOnly
        } else if !degraded.is_empty() {
            HealthStatus::Degraded
        } else {
            HealthStatus::Ok
        };
        read_only.extend(degraded);
        Health {
            status,
            reasons: read_only,
            stall_ratio,
            pending_compaction_bytes: shape.pending_compaction_bytes,
            l0_tables,
        }
    }

    fn stall_ratio_since_last_check(&self) -> f64 {
        let now = Instant::now();
        let stalled = crate::metrics::read(&self.inner.stats.write_stall_micros);
        let mut window = lock(&self.inner.health_window);
        let elapsed = now.duration_since(window.at).as_micros() as f64;
        let ratio = if elapsed > 0.0 {
            (stalled.saturating_sub(window.stall_micros) as f64 / elapsed).min(1.0)
        } else {
            0.0
        };
        *window = HealthWindow {
            at: now,
            stall_micros: stalled,
        };
        ratio
    }
}
