//! Throughput over time: while a workload runs, a sampler thread reads the count of
//! completed operations every 100 ms; the engine's background events (flushes, compactions,
//! write stalls), timestamped by an event listener, go on the same clock.
//!
//! Recording stays cheap: each measuring thread adds its count to one shared atomic every
//! 1024 operations or 5 ms (see `report::Recorder`), the sampler wakes ten times a second,
//! and the listener takes a lock only when a background job ends.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kevo::{CompactionInfo, EventListener, FlushInfo, StallCause, StallInfo};
use serde::Serialize;

use super::report::progress_ops;

/// How often the sampler reads the operation count.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// Operations completed by a moment of the workload.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Seconds since the workload started.
    pub secs: f64,
    /// Operations completed by then (cumulative).
    pub ops: u64,
}

/// What kind of background work an event was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A memtable written to an L0 table.
    Flush,
    /// A compaction that rewrote tables (trivial moves are left out: they write nothing).
    Compaction,
    /// Writes waiting for a flush or a compaction.
    Stall,
}

/// One background event during a workload.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub kind: EventKind,
    /// When it began and ended, in seconds since the workload started, clipped to the
    /// workload's span.
    pub start_secs: f64,
    pub end_secs: f64,
    /// What it did, for people ("compaction L0 -> L1: 4 tables in, 2 out, ...").
    pub detail: String,
}

/// A workload's throughput samples and the background events that overlapped it.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// The sampling interval (the last sample is taken when the workload ends).
    pub interval_secs: f64,
    pub samples: Vec<Sample>,
    /// Empty for engines without an event listener (the peers).
    pub events: Vec<Event>,
    /// When the workload started and ended, to place the events.
    #[serde(skip)]
    pub span: Option<(Instant, Instant)>,
}

/// Seconds rounded to 0.1 ms (enough for the picture; keeps the JSON short).
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 1e4
}

/// A thread that reads [`progress_ops`] every [`INTERVAL`] while a workload runs.
pub struct Sampler {
    started: Instant,
    base: u64,
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<Vec<Sample>>>,
}

impl Sampler {
    /// Starts sampling; the workload starts now.
    pub fn start() -> Self {
        let started = Instant::now();
        let base = progress_ops();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kevo-bench-sampler".into())
            .spawn(move || {
                let mut samples = Vec::new();
                let mut next = started + INTERVAL;
                loop {
                    let wait = next.saturating_duration_since(Instant::now());
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {
                            // The time of the reading, not of the schedule: a late wake-up
                            // (a loaded machine) makes a longer interval, not a false rate.
                            let now = Instant::now();
                            samples.push(Sample {
                                secs: secs(now - started),
                                ops: progress_ops().saturating_sub(base),
                            });
                            next += INTERVAL;
                            if next <= now {
                                next = now + INTERVAL;
                            }
                        }
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return samples,
                    }
                }
            })
            .ok();
        Sampler {
            started,
            base,
            stop,
            thread,
        }
    }

    /// Stops sampling once the workload's threads are done (and have reported every
    /// operation): the samples, with a last one now, and the span they cover (events are
    /// added later, once background work has had its say). Without a sampler thread (the
    /// system refused one) only the last sample is there.
    pub fn finish(mut self) -> Timeline {
        let _ = self.stop.send(());
        let mut samples = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        let ended = Instant::now();
        let last = Sample {
            // Never 0: a workload that did anything took some time.
            secs: secs(ended - self.started).max(1e-4),
            ops: progress_ops().saturating_sub(self.base),
        };
        samples.retain(|s| s.secs < last.secs);
        samples.push(last);
        Timeline {
            interval_secs: INTERVAL.as_secs_f64(),
            samples,
            events: Vec::new(),
            span: Some((self.started, ended)),
        }
    }
}

/// An event as the listener saw it, on the monotonic clock.
struct Logged {
    kind: EventKind,
    start: Instant,
    end: Instant,
    detail: String,
}

/// The event listener the benchmark registers with kevo: it logs each flush, compaction
/// and stall when it ends, with the instant it began (its end less its duration).
#[derive(Default)]
pub struct EventLog {
    events: Mutex<Vec<Logged>>,
}

impl EventLog {
    fn log(&self, kind: EventKind, duration: Duration, detail: String) {
        let end = Instant::now();
        let start = end.checked_sub(duration).unwrap_or(end);
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Logged {
                kind,
                start,
                end,
                detail,
            });
    }

    /// Takes every event logged so far and keeps those that overlap `from..to`, in seconds
    /// since `from` and clipped to the span.
    pub fn drain(&self, from: Instant, to: Instant) -> Vec<Event> {
        let logged =
            std::mem::take(&mut *self.events.lock().unwrap_or_else(PoisonError::into_inner));
        let at = |i: Instant| secs(i.min(to).saturating_duration_since(from));
        let mut events: Vec<Event> = logged
            .into_iter()
            .filter(|e| e.end >= from && e.start <= to)
            .map(|e| Event {
                kind: e.kind,
                start_secs: at(e.start),
                end_secs: at(e.end),
                detail: e.detail,
            })
            .collect();
        events.sort_by(|a, b| a.start_secs.total_cmp(&b.start_secs));
        events
    }
}

impl EventListener for EventLog {
    fn on_flush_end(&self, info: &FlushInfo) {
        self.log(
            EventKind::Flush,
            info.duration,
            format!(
                "flush to table {:06}: {} entries, {} bytes",
                info.table, info.entries, info.bytes
            ),
        );
    }

    fn on_compaction_end(&self, info: &CompactionInfo) {
        if info.trivial_move {
            return;
        }
        self.log(
            EventKind::Compaction,
            info.duration,
            format!(
                "compaction L{} -> L{}: {} tables in, {} out, {} bytes read, {} written",
                info.level,
                info.output_level,
                info.inputs.len(),
                info.outputs.len(),
                info.bytes_read,
                info.bytes_written
            ),
        );
    }

    fn on_stall_end(&self, info: &StallInfo) {
        let cause = match info.cause {
            StallCause::Memtables => "memtables wait for flush",
            StallCause::L0Tables => "L0 tables wait for compaction",
        };
        self.log(
            EventKind::Stall,
            info.duration,
            format!("write stall: {cause}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_kept_when_they_overlap_the_span_and_clipped_to_it() {
        let log = EventLog::default();
        log.log(EventKind::Flush, Duration::ZERO, "before".into());
        std::thread::sleep(Duration::from_millis(5));
        let from = Instant::now();
        log.log(
            EventKind::Compaction,
            Duration::from_secs(1),
            "began before".into(),
        );
        std::thread::sleep(Duration::from_millis(5));
        log.log(EventKind::Stall, Duration::from_millis(1), "inside".into());
        let to = Instant::now();
        std::thread::sleep(Duration::from_millis(5));
        log.log(EventKind::Flush, Duration::ZERO, "after".into());
        let events = log.drain(from, to);
        let details: Vec<&str> = events.iter().map(|e| e.detail.as_str()).collect();
        assert_eq!(details, ["began before", "inside"]);
        assert!(events[0].start_secs.abs() < 1e-9, "clipped to the start");
        assert!(events.iter().all(|e| e.end_secs >= e.start_secs));
        assert!(log.drain(from, to).is_empty(), "drained");
    }

    #[test]
    fn the_sampler_ends_with_every_operation_counted() {
        let sampler = Sampler::start();
        std::thread::sleep(Duration::from_millis(250));
        let timeline = sampler.finish();
        let samples = &timeline.samples;
        assert!(samples.len() >= 2, "{samples:?}");
        assert!(samples.windows(2).all(|w| w[0].secs < w[1].secs));
        let last = samples.last().expect("a last sample");
        let (from, to) = timeline.span.expect("a span");
        assert!((last.secs - secs(to - from)).abs() < 1e-3);
    }
}
