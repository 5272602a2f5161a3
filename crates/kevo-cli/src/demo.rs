//! `kevo demo`: open a database (in a temporary directory unless one is given), write, read
//! back, reopen, verify, and say what happened and how fast.

use std::path::PathBuf;
use std::time::Instant;

use kevo::{Db, Error, Options, Result, WriteBatch};

/// Keys the demo writes.
const KEYS: u64 = 200_000;
/// Writes per batch (each batch is one synced WAL record).
const BATCH: u64 = 100;
/// Every this many keys one is deleted.
const DELETE_EVERY: u64 = 10;
/// Threads deleting at once.
const THREADS: u64 = 8;

pub fn run(dir: Option<PathBuf>) -> Result<()> {
    let temp;
    let dir = match dir {
        Some(dir) => dir,
        None => {
            temp =
                tempfile::tempdir().map_err(|e| Error::io("creating a temporary directory", e))?;
            temp.path().join("demo-db")
        }
    };
    let options = Options::default().memtable_size(8 << 20);
    println!("kevo demo: database in {}", dir.display());

    let started = Instant::now();
    let db = Db::open(&dir, options.clone())?;
    println!("  opened in {:.1?}", started.elapsed());

    let started = Instant::now();
    for first in (0..KEYS).step_by(BATCH as usize) {
        let mut batch = WriteBatch::new();
        for i in first..first + BATCH {
            batch.put(key(i), value(i));
        }
        db.write(batch)?;
    }
    report(
        "wrote",
        KEYS,
        started,
        &format!("in batches of {BATCH}, each synced to disk before it was acknowledged"),
    );

    let started = Instant::now();
    delete_concurrently(&db)?;
    report(
        "deleted",
        KEYS / DELETE_EVERY,
        started,
        &format!(
            "(every {DELETE_EVERY}th key, one at a time from {THREADS} threads; group commit shares each sync)"
        ),
    );

    let started = Instant::now();
    let found = verify(&db)?;
    report(
        "read",
        KEYS,
        started,
        &format!("{found} present, as expected"),
    );
    db.close()?;

    let started = Instant::now();
    let db = Db::open(&dir, options)?;
    let reopened = started.elapsed();
    let started = Instant::now();
    let found = verify(&db)?;
    println!(
        "  reopened in {reopened:.1?} (manifest read, write-ahead log replayed); every key checked again in {:.1?}",
        started.elapsed()
    );
    println!(
        "  {found} keys present after reopen, {} deleted keys stay deleted",
        KEYS - found
    );
    let shape = db.lsm_shape();
    let levels: Vec<String> = shape
        .levels
        .iter()
        .filter(|l| l.tables > 0)
        .map(|l| {
            format!(
                "L{}: {} tables, {:.1} MiB",
                l.level,
                l.tables,
                l.bytes as f64 / f64::from(1 << 20)
            )
        })
        .collect();
    println!(
        "  on disk: {}; in memtables: {:.1} MiB",
        if levels.is_empty() {
            "no tables yet".to_string()
        } else {
            levels.join(", ")
        },
        shape.memtable_bytes as f64 / f64::from(1 << 20)
    );
    db.close()
}

fn key(i: u64) -> String {
    format!("user:{i:08}")
}

fn value(i: u64) -> String {
    format!(
        "{{\"id\":{i},\"name\":\"user number {i}\",\"balance\":{}}}",
        i * 7 % 1000
    )
}

/// Deletes every `DELETE_EVERY`th key, each delete its own synced write, from `THREADS`
/// threads at once.
fn delete_concurrently(db: &Db) -> Result<()> {
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || -> Result<()> {
                    for i in (t * DELETE_EVERY..KEYS).step_by((THREADS * DELETE_EVERY) as usize) {
                        db.delete(key(i))?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    })
}

/// Checks every key: deleted keys are absent, the others hold their value. Returns how
/// many are present.
fn verify(db: &Db) -> Result<u64> {
    let mut present = 0;
    for i in 0..KEYS {
        let got = db.get(key(i))?;
        let expected = (i % DELETE_EVERY != 0).then(|| value(i));
        if got.as_deref() != expected.as_ref().map(String::as_bytes) {
            return Err(Error::corruption(format!(
                "key {} read back wrong: {got:?}",
                key(i)
            )));
        }
        present += u64::from(got.is_some());
    }
    Ok(present)
}

fn report(what: &str, count: u64, started: Instant, detail: &str) {
    let elapsed = started.elapsed();
    let rate = count as f64 / elapsed.as_secs_f64();
    println!("  {what} {count} keys in {elapsed:.2?} ({rate:.0} per second) {detail}");
}
