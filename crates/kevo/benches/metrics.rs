//! The cost of the instruments on the hot path: what one `Db::get` records (three counter
//! increments and a latency sample, with its two clock reads), with kevo's sharded counters
//! and histogram (timing every call, and timing one in eight as `Db::get` does), with one
//! shared atomic per counter (the naive design), and with nothing; by 1 and 2 threads at
//! once. Beside them, a `Db::get` served from the memtable, the cheapest read there is, so
//! the overhead can be read as a share of it.
//!
//! `cargo bench -p kevo --bench metrics`

use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use kevo::metrics::{Counter, Histogram};

/// What `Db::get` records per call, with kevo's instruments.
#[derive(Default)]
struct Sharded {
    gets: Counter,
    hits: Counter,
    bytes: Counter,
    latency: Histogram,
}

/// The same with one shared atomic per counter and an unsharded histogram.
#[derive(Default)]
struct Shared {
    gets: AtomicU64,
    hits: AtomicU64,
    bytes: AtomicU64,
    buckets: [AtomicU64; 32],
    count: AtomicU64,
    sum: AtomicU64,
}

trait Record: Sync {
    fn record(&self, started: Instant);
}

impl Record for Sharded {
    fn record(&self, started: Instant) {
        self.gets.add(1);
        self.hits.add(1);
        self.bytes.add(100);
        self.latency.record(started.elapsed());
    }
}

impl Record for Shared {
    fn record(&self, started: Instant) {
        let nanos = started.elapsed().as_nanos() as u64;
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.hits.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(100, Ordering::Relaxed);
        self.buckets[(64 - nanos.leading_zeros() as usize).min(31)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// What `Db::get` really records: the counters always, the latency one call in eight.
#[derive(Default)]
struct Sampled(Sharded);

impl Record for Sampled {
    fn record(&self, started: Instant) {
        self.0.gets.add(1);
        self.0.hits.add(1);
        self.0.bytes.add(100);
        if kevo::metrics::sample_latency() {
            self.0.latency.record(started.elapsed());
        }
    }
}

struct Nothing;

impl Record for Nothing {
    fn record(&self, started: Instant) {
        black_box(started);
    }
}

/// Time per operation with `threads` threads each doing `iters` operations at once.
fn per_op(threads: usize, iters: u64, op: &(dyn Fn() + Sync)) -> Duration {
    let barrier = Barrier::new(threads);
    let total: Duration = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let started = Instant::now();
                    for _ in 0..iters {
                        op();
                    }
                    started.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .max()
            .unwrap_or_default()
    });
    // Wall time per operation of one thread: what each caller pays.
    total
}

fn instruments(c: &mut Criterion) {
    let sharded = Sharded::default();
    let sampled = Sampled::default();
    let shared = Shared::default();
    let kinds: [(&str, &dyn Record); 4] = [
        ("sharded", &sharded),
        ("sharded_sampled", &sampled),
        ("shared", &shared),
        ("nothing", &Nothing),
    ];
    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("record_get/{threads}t"));
        for (name, instruments) in kinds {
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    per_op(threads, iters, &|| instruments.record(Instant::now()))
                });
            });
        }
        group.finish();
    }
}

fn memtable_get(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let db = kevo::Db::open(
        dir.path(),
        kevo::Options::default().sync_mode(kevo::SyncMode::None),
    )
    .unwrap_or_else(|e| panic!("open: {e}"));
    for i in 0..10_000u32 {
        db.put(format!("key{i:06}"), [7u8; 100])
            .unwrap_or_else(|e| panic!("put: {e}"));
    }
    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("db_get_memtable/{threads}t"));
        group.bench_function("get", |b| {
            b.iter_custom(|iters| {
                per_op(threads, iters, &|| {
                    black_box(db.get(b"key005000").ok());
                })
            });
        });
        group.finish();
    }
}

criterion_group!(benches, instruments, memtable_get);
criterion_main!(benches);
