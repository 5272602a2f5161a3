//! The workloads of LevelDB's db_bench, run against an [`Engine`].
//!
//! Each workload's operations are split among `--threads` threads (db_bench instead gives
//! every thread the full count), so a run's size does not grow with the thread count.

use std::ops::Range;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use kevo::Result;

use super::Params;
use super::data::{Rng, Values, parse_key, write_key};
use super::engine::Engine;
use super::report::{Outcome, Recorder};
use super::timeline::Sampler;

/// db_bench's fill100K value size.
pub const FILL100K_VALUE: usize = 100 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    FillSeq,
    FillRandom,
    Overwrite,
    FillSync,
    Fill100K,
    ReadRandom,
    ReadMissing,
    ReadSeq,
    ReadReverse,
    SeekRandom,
    PrefixScan,
    PrefixMissing,
    DeleteRandom,
    ReadWhileWriting,
}

/// What a workload needs of the database before it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Builds the main database from scratch.
    Fill,
    /// Writes a few keys in a database of its own (fillsync, fill100K), so the main one
    /// stays whole for the reads after it.
    SideFill,
    /// Works on the data a fill left.
    Uses,
}

impl Workload {
    pub const ALL: [Workload; 14] = [
        Workload::FillSeq,
        Workload::FillRandom,
        Workload::Overwrite,
        Workload::FillSync,
        Workload::Fill100K,
        Workload::ReadRandom,
        Workload::ReadMissing,
        Workload::ReadSeq,
        Workload::ReadReverse,
        Workload::SeekRandom,
        Workload::PrefixScan,
        Workload::PrefixMissing,
        Workload::DeleteRandom,
        Workload::ReadWhileWriting,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::FillSeq => "fillseq",
            Workload::FillRandom => "fillrandom",
            Workload::Overwrite => "overwrite",
            Workload::FillSync => "fillsync",
            Workload::Fill100K => "fill100K",
            Workload::ReadRandom => "readrandom",
            Workload::ReadMissing => "readmissing",
            Workload::ReadSeq => "readseq",
            Workload::ReadReverse => "readreverse",
            Workload::SeekRandom => "seekrandom",
            Workload::PrefixScan => "prefixscan",
            Workload::PrefixMissing => "prefixmissing",
            Workload::DeleteRandom => "deleterandom",
            Workload::ReadWhileWriting => "readwhilewriting",
        }
    }

    pub fn parse(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    pub fn kind(self) -> Kind {
        match self {
            Workload::FillSeq | Workload::FillRandom => Kind::Fill,
            Workload::FillSync | Workload::Fill100K => Kind::SideFill,
            _ => Kind::Uses,
        }
    }

    /// Whether the workload's figures include write and space amplification.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Workload::FillSeq
                | Workload::FillRandom
                | Workload::Overwrite
                | Workload::FillSync
                | Workload::Fill100K
                | Workload::DeleteRandom
        )
    }

    /// The largest value the workload writes.
    pub fn value_size(self, params: &Params) -> usize {
        match self {
            Workload::Fill100K => FILL100K_VALUE,
            _ => params.value_size,
        }
    }
}

/// Which keys the database holds and their value lengths, as the benchmark wrote them:
/// what reads are checked against.
pub struct KeyState {
    /// Value length + 1 per key index; 0 for absent.
    sizes: Vec<AtomicU32>,
    key_size: usize,
    /// Entries whose keys are not ours (an existing database made by someone else).
    foreign_entries: u64,
    foreign_bytes: u64,
}

impl KeyState {
    pub fn new(num: u64, key_size: usize) -> Self {
        KeyState {
            sizes: (0..num).map(|_| AtomicU32::new(0)).collect(),
            key_size,
            foreign_entries: 0,
            foreign_bytes: 0,
        }
    }

    /// Learns what an existing database holds, by scanning it (not timed).
    pub fn load(engine: &dyn Engine, num: u64, key_size: usize) -> Result<Self> {
        let mut state = KeyState::new(num, key_size);
        engine.scan(false, &mut |k, v| {
            match parse_key(k, key_size).filter(|&i| i < num) {
                Some(i) => state.set(i, v.len()),
                None => {
                    state.foreign_entries += 1;
                    state.foreign_bytes += (k.len() + v.len()) as u64;
                }
            }
            true
        })?;
        Ok(state)
    }

    // Release/acquire: a reader that sees a key marked present also sees the put that
    // came before the mark (readwhilewriting checks reads against a live writer).
    fn set(&self, i: u64, len: usize) {
        self.sizes[i as usize].store(len as u32 + 1, Ordering::Release);
    }

    fn clear(&self, i: u64) {
        self.sizes[i as usize].store(0, Ordering::Release);
    }

    fn get(&self, i: u64) -> Option<usize> {
        match self.sizes[i as usize].load(Ordering::Acquire) {
            0 => None,
            n => Some(n as usize - 1),
        }
    }

    /// Keys present among those sharing the first `prefix_len` bytes with key `i`.
    fn live_with_prefix(&self, i: u64, prefix_len: usize) -> u64 {
        let span = u32::try_from(self.key_size.saturating_sub(prefix_len))
            .ok()
            .and_then(|digits| 10u64.checked_pow(digits))
            .unwrap_or(u64::MAX);
        let first = i / span * span;
        let end = first.saturating_add(span).min(self.sizes.len() as u64);
        (first..end).filter(|&j| self.get(j).is_some()).count() as u64
    }

    /// Entries present and their key and value bytes.
    pub fn live(&self) -> (u64, u64) {
        let (mut count, mut bytes) = (self.foreign_entries, self.foreign_bytes);
        for size in &self.sizes {
            let n = u64::from(size.load(Ordering::Acquire));
            if n > 0 {
                count += 1;
                bytes += self.key_size as u64 + n - 1;
            }
        }
        (count, bytes)
    }
}

/// What a workload runs against.
pub struct Ctx<'a> {
    pub engine: &'a dyn Engine,
    pub state: &'a KeyState,
    pub values: &'a Values,
    pub params: &'a Params,
    /// This workload's place in the run: each gets its own random sequences.
    pub stream: u64,
}

impl Ctx<'_> {
    fn rng(&self, thread: usize) -> Rng {
        Rng::new(self.params.seed, (self.stream << 16) + thread as u64)
    }
}

pub fn run(w: Workload, ctx: &Ctx<'_>) -> Result<Outcome> {
    let p = ctx.params;
    match w {
        Workload::FillSeq => write(ctx, w, p.num, true, p.sync),
        Workload::FillRandom | Workload::Overwrite => write(ctx, w, p.num, false, p.sync),
        Workload::FillSync => write(ctx, w, fillsync_ops(p.num), false, true),
        Workload::Fill100K => write(ctx, w, (p.num / 1000).max(1), false, p.sync),
        Workload::DeleteRandom => delete(ctx, w),
        Workload::ReadRandom | Workload::ReadMissing => {
            let (elapsed, rec) = parallel(p.threads, |t, rec| lookups(ctx, w, t, rec, false))?;
            Ok(reads(w, p.threads, elapsed, &rec))
        }
        Workload::SeekRandom => seeks(ctx, w),
        Workload::PrefixScan | Workload::PrefixMissing => prefix_scans(ctx, w),
        Workload::ReadSeq | Workload::ReadReverse => scan(ctx, w),
        Workload::ReadWhileWriting => read_while_writing(ctx, w),
    }
}

/// db_bench's fillsync count: num/1000, but at least 1000 (or num if smaller).
pub fn fillsync_ops(num: u64) -> u64 {
    (num / 1000).max(num.min(1000))
}

/// Thread `t`'s share of `0..total`.
fn share(total: u64, threads: usize, t: usize) -> Range<u64> {
    let (threads, t) = (threads as u64, t as u64);
    total * t / threads..total * (t + 1) / threads
}

/// Runs `body` on `threads` threads started together; returns the wall time from the start
/// until the last finished, and their merged measurements with the throughput timeline.
fn parallel(
    threads: usize,
    body: impl Fn(usize, &mut Recorder) -> Result<()> + Sync,
) -> Result<(Duration, Recorder)> {
    let recorders = (0..threads)
        .map(|_| Recorder::new())
        .collect::<Result<Vec<_>>>()?;
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let workers: Vec<_> = recorders
            .into_iter()
            .enumerate()
            .map(|(t, mut rec)| {
                let (barrier, body) = (&barrier, &body);
                s.spawn(move || -> Result<Recorder> {
                    barrier.wait();
                    rec.start();
                    let done = body(t, &mut rec);
                    rec.report();
                    done.map(|()| rec)
                })
            })
            .collect();
        barrier.wait();
        let sampler = Sampler::start();
        let results: Vec<Result<Recorder>> = workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect();
        let timeline = sampler.finish();
        let elapsed = timeline.span.map_or(Duration::ZERO, |(from, to)| to - from);
        let mut total = Recorder::new()?;
        for rec in results {
            total.merge(&rec?)?;
        }
        total.timeline = Some(timeline);
        Ok((elapsed, total))
    })
}

fn write(ctx: &Ctx<'_>, w: Workload, ops: u64, sequential: bool, sync: bool) -> Result<Outcome> {
    let p = ctx.params;
    let value_size = w.value_size(p);
    let (elapsed, rec) = parallel(p.threads, |t, rec| {
        let mut rng = ctx.rng(t);
        let mut key = Vec::with_capacity(p.key_size);
        let mut pos = ctx.values.start(t, p.threads);
        for i in share(ops, p.threads, t) {
            let k = if sequential { i } else { rng.below(p.num) };
            write_key(&mut key, k, p.key_size);
            let value = ctx.values.next(&mut pos, value_size);
            ctx.engine.put(&key, value, sync)?;
            ctx.state.set(k, value.len());
            rec.op((key.len() + value.len()) as u64);
        }
        Ok(())
    })?;
    Ok(Outcome::new(w.name(), p.threads, elapsed, &rec))
}

fn delete(ctx: &Ctx<'_>, w: Workload) -> Result<Outcome> {
    let p = ctx.params;
    let (elapsed, rec) = parallel(p.threads, |t, rec| {
        let mut rng = ctx.rng(t);
        let mut key = Vec::with_capacity(p.key_size);
        for _ in share(p.num, p.threads, t) {
            let k = rng.below(p.num);
            write_key(&mut key, k, p.key_size);
            ctx.engine.delete(&key, p.sync)?;
            ctx.state.clear(k);
            rec.op(key.len() as u64);
        }
        Ok(())
    })?;
    Ok(Outcome::new(w.name(), p.threads, elapsed, &rec))
}

/// Point lookups of random keys; readmissing's keys get a `.` appended (db_bench's way), so
/// they fall between existing keys and are never found. With a `writer` running, only keys
/// known present are checked (others may appear meanwhile).
fn lookups(ctx: &Ctx<'_>, w: Workload, t: usize, rec: &mut Recorder, writer: bool) -> Result<()> {
    let p = ctx.params;
    let missing = w == Workload::ReadMissing;
    let mut rng = ctx.rng(t);
    let mut key = Vec::with_capacity(p.key_size + 1);
    for _ in share(p.reads, p.threads, t) {
        let k = rng.below(p.num);
        write_key(&mut key, k, p.key_size);
        if missing {
            key.push(b'.');
        }
        let expected = if missing { None } else { ctx.state.get(k) };
        let got = ctx.engine.get(&key)?;
        rec.found += u64::from(got.is_some());
        if got != expected && !(writer && expected.is_none()) {
            rec.mismatches += 1;
        }
        rec.op(got.map_or(0, |len| (key.len() + len) as u64));
    }
    Ok(())
}

fn reads(w: Workload, threads: usize, elapsed: Duration, rec: &Recorder) -> Outcome {
    let mut outcome = Outcome::new(w.name(), threads, elapsed, rec);
    outcome.found = Some(rec.found);
    outcome.not_found = Some(rec.ops - rec.found);
    outcome.mismatches = Some(rec.mismatches);
    outcome
}

/// db_bench's seekrandom: position at a random key and read the entry there; found when it
/// is the key itself.
fn seeks(ctx: &Ctx<'_>, w: Workload) -> Result<Outcome> {
    let p = ctx.params;
    let (elapsed, rec) = parallel(p.threads, |t, rec| {
        let mut rng = ctx.rng(t);
        let mut key = Vec::with_capacity(p.key_size);
        for _ in share(p.reads, p.threads, t) {
            let k = rng.below(p.num);
            write_key(&mut key, k, p.key_size);
            let (mut hit, mut bytes) = (None, 0);
            ctx.engine.seek(&key, &mut |found, value| {
                bytes = (found.len() + value.len()) as u64;
                if found == key.as_slice() {
                    hit = Some(value.len());
                }
            })?;
            rec.found += u64::from(hit.is_some());
            rec.mismatches += u64::from(hit != ctx.state.get(k));
            rec.op(bytes);
        }
        Ok(())
    })?;
    Ok(reads(w, p.threads, elapsed, &rec))
}

/// prefixscan: every entry whose key starts with the first `--prefix_len` bytes of a
/// random key (checked against what was written). prefixmissing: the same prefixes with
/// their last byte made `.`, which no key has: inside the key range, so only a filter lets
/// a scan skip a table. `found` counts entries visited.
fn prefix_scans(ctx: &Ctx<'_>, w: Workload) -> Result<Outcome> {
    let p = ctx.params;
    let missing = w == Workload::PrefixMissing;
    let (elapsed, rec) = parallel(p.threads, |t, rec| {
        let mut rng = ctx.rng(t);
        let mut prefix = Vec::with_capacity(p.key_size);
        for _ in share(p.reads, p.threads, t) {
            let k = rng.below(p.num);
            write_key(&mut prefix, k, p.key_size);
            prefix.truncate(p.prefix_len);
            if missing && let Some(last) = prefix.last_mut() {
                *last = b'.';
            }
            let (mut entries, mut bytes) = (0u64, 0u64);
            ctx.engine.prefix(&prefix, &mut |key, value| {
                entries += 1;
                bytes += (key.len() + value.len()) as u64;
            })?;
            let expected = if missing {
                0
            } else {
                ctx.state.live_with_prefix(k, p.prefix_len)
            };
            rec.found += entries;
            rec.mismatches += u64::from(entries != expected);
            rec.op(bytes);
        }
        Ok(())
    })?;
    let mut outcome = Outcome::new(w.name(), p.threads, elapsed, &rec);
    outcome.found = Some(rec.found);
    outcome.mismatches = Some(rec.mismatches);
    Ok(outcome)
}

/// A full scan (at most `--reads` entries), on one thread: one iterator is one thread's work.
fn scan(ctx: &Ctx<'_>, w: Workload) -> Result<Outcome> {
    let p = ctx.params;
    let reverse = w == Workload::ReadReverse;
    let (elapsed, mut rec) = parallel(1, |_, rec| {
        ctx.engine.scan(reverse, &mut |k, v| {
            rec.op((k.len() + v.len()) as u64);
            rec.ops < p.reads
        })
    })?;
    rec.found = rec.ops;
    let (live, _) = ctx.state.live();
    // A scan that ran out before its limit must have seen every live entry.
    if rec.ops < p.reads {
        rec.mismatches = rec.ops.abs_diff(live);
    }
    let mut outcome = reads(w, 1, elapsed, &rec);
    outcome.not_found = None;
    Ok(outcome)
}

/// `--threads` readers do readrandom while one writer overwrites random keys until they are
/// done; the figures are the readers'.
fn read_while_writing(ctx: &Ctx<'_>, w: Workload) -> Result<Outcome> {
    let p = ctx.params;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| -> Result<u64> {
            let mut rng = ctx.rng(usize::from(u16::MAX));
            let mut key = Vec::with_capacity(p.key_size);
            // Halfway into the values: not those a one-thread fill wrote.
            let (mut pos, mut writes) = (ctx.values.start(1, 2), 0);
            // At least one write, even when the readers are done before this thread gets
            // a core (a short run on a busy machine).
            loop {
                let k = rng.below(p.num);
                write_key(&mut key, k, p.key_size);
                let value = ctx.values.next(&mut pos, p.value_size);
                ctx.engine.put(&key, value, p.sync)?;
                ctx.state.set(k, value.len());
                writes += 1;
                if stop.load(Ordering::Relaxed) {
                    return Ok(writes);
                }
            }
        });
        let readers = parallel(p.threads, |t, rec| {
            lookups(ctx, Workload::ReadRandom, t, rec, true)
        });
        stop.store(true, Ordering::Relaxed);
        let writes = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let (elapsed, rec) = readers?;
        let mut outcome = reads(w, p.threads, elapsed, &rec);
        outcome.writer_ops = Some(writes?);
        Ok(outcome)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for w in Workload::ALL {
            assert_eq!(Workload::parse(w.name()), Some(w));
        }
        assert_eq!(Workload::parse("fillsequential"), None);
    }

    #[test]
    fn shares_cover_the_range_once() {
        for threads in 1..6 {
            let mut next = 0;
            for t in 0..threads {
                let r = share(1001, threads, t);
                assert_eq!(r.start, next);
                next = r.end;
            }
            assert_eq!(next, 1001);
        }
        assert_eq!(fillsync_ops(200_000), 1000);
        assert_eq!(fillsync_ops(5_000_000), 5000);
        assert_eq!(fillsync_ops(300), 300);
    }

    #[test]
    fn key_state_tracks_presence_and_live_bytes() {
        let state = KeyState::new(10, 16);
        state.set(3, 100);
        state.set(4, 0);
        state.set(3, 50);
        state.clear(9);
        assert_eq!(
            (state.get(3), state.get(4), state.get(9)),
            (Some(50), Some(0), None)
        );
        assert_eq!(state.live(), (2, 16 + 50 + 16));
    }
}
