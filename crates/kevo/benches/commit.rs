//! Write throughput through the WAL and group commit, per sync mode and writer threads, on
//! the real file system (a temporary directory).
//!
//! `cargo bench -p kevo --bench commit`
//!
//! With `SyncMode::Always` every acknowledged write is synced; group commit should make the
//! synced throughput rise with the number of concurrent writers.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kevo::{Db, Options, SyncMode};

const WRITES_PER_THREAD: u64 = 200;

fn run_writers(db: &Db, threads: u64, writes: u64, round: u64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in 0..writes {
                    let key = format!("r{round}-t{t}-{i:08}");
                    db.put(key.as_bytes(), [0x42u8; 100]).expect("put");
                }
            });
        }
    });
    start.elapsed()
}

fn commit(c: &mut Criterion) {
    let modes = [
        ("always", SyncMode::Always),
        (
            "interval_10ms",
            SyncMode::Interval(Duration::from_millis(10)),
        ),
        ("none", SyncMode::None),
    ];
    for (name, mode) in modes {
        let mut group = c.benchmark_group(format!("put_100b_sync_{name}"));
        group.sample_size(10);
        for threads in [1u64, 4, 16] {
            let writes = if mode == SyncMode::Always {
                WRITES_PER_THREAD
            } else {
                WRITES_PER_THREAD * 20
            };
            group.throughput(Throughput::Elements(threads * writes));
            let dir = tempfile::tempdir().expect("temp dir");
            let db = Db::open(dir.path(), Options::default().sync_mode(mode)).expect("open");
            let mut round = 0;
            group.bench_function(format!("{threads}_threads"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        round += 1;
                        total += run_writers(&db, threads, writes, round);
                    }
                    total
                });
            });
            db.close().expect("close");
        }
        group.finish();
    }
}

criterion_group!(benches, commit);
criterion_main!(benches);
