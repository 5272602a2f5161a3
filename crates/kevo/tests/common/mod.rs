//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kevo::fs::{Fs, FsFile, FsLock, MemFs};
use kevo::{Db, Options, WriteBatch};

/// The database directory used on MemFs.
pub const DIR: &str = "/db";

/// Options for a database on `fs`, with a tiny memtable and tiny tables so WAL rotation,
/// flushes and compactions (with several output tables) happen often.
pub fn memfs_options(fs: &MemFs) -> Options {
    Options::default()
        .fs(Arc::new(fs.clone()))
        .memtable_size(1 << 10)
        .target_file_size(1 << 10)
        .l0_compaction_trigger(2)
        .block_size(256)
}

/// One operation of a workload.
#[derive(Debug, Clone)]
pub enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    /// An optimistic transaction (`Db::transaction`) that reads each key it then writes or
    /// deletes, and commits: all or nothing, as a batch.
    Txn(Vec<(Vec<u8>, Option<Vec<u8>>)>),
}

impl Op {
    pub fn apply_to_db(&self, db: &Db) -> kevo::Result<()> {
        match self {
            Op::Put(k, v) => db.put(k, v),
            Op::Delete(k) => db.delete(k),
            Op::Batch(entries) => {
                let mut batch = WriteBatch::new();
                for (k, v) in entries {
                    match v {
                        Some(v) => batch.put(k, v),
                        None => batch.delete(k),
                    }
                }
                db.write(batch)
            }
            Op::Txn(entries) => {
                let mut tx = db.transaction();
                for (k, v) in entries {
                    tx.get(k)?;
                    match v {
                        Some(v) => tx.put(k, v),
                        None => tx.delete(k),
                    }
                }
                tx.commit()
            }
        }
    }

    pub fn apply_to_model(&self, model: &mut Model) {
        match self {
            Op::Put(k, v) => {
                model.insert(k.clone(), v.clone());
            }
            Op::Delete(k) => {
                model.remove(k);
            }
            Op::Batch(entries) | Op::Txn(entries) => {
                for (k, v) in entries {
                    match v {
                        Some(v) => model.insert(k.clone(), v.clone()),
                        None => model.remove(k),
                    };
                }
            }
        }
    }
}

/// The expected content of a database.
pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;

pub fn key(i: u64) -> Vec<u8> {
    format!("key{:03}", i % 1000).into_bytes()
}

/// A deterministic workload of puts, overwrites, deletes and multi-key batches over a small
/// key space, with values large enough to rotate a 1 KiB memtable every few writes.
pub fn workload(ops: usize, seed: u64) -> Vec<Op> {
    let mut state = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..ops)
        .map(|i| {
            let k = key(rand() % 12);
            match rand() % 6 {
                0 => Op::Delete(k),
                1 => Op::Batch(
                    (0..=rand() % 4)
                        .map(|j| {
                            let k = key(rand() % 12);
                            if rand() % 3 == 0 {
                                (k, None)
                            } else {
                                (k, Some(format!("batch{i}-{j}").into_bytes().repeat(8)))
                            }
                        })
                        .collect(),
                ),
                _ => Op::Put(
                    k,
                    format!("value{i}")
                        .into_bytes()
                        .repeat(1 + (rand() % 40) as usize),
                ),
            }
        })
        .collect()
}

/// Every key the workloads can touch.
pub fn all_keys() -> Vec<Vec<u8>> {
    (0..12).map(key).collect()
}

/// Reads the whole key space of the workloads from `db`.
pub fn read_state(db: &Db) -> Model {
    all_keys()
        .into_iter()
        .filter_map(|k| {
            db.get(&k)
                .expect("read during verification")
                .map(|v| (k, v.to_vec()))
        })
        .collect()
}

/// The file names in `dir` on `fs`.
pub fn listing(fs: &dyn kevo::fs::Fs, dir: &str) -> Vec<String> {
    fs.list(Path::new(dir)).unwrap_or_default()
}

/// MemFs counting opens of table files.
#[derive(Debug, Clone)]
pub struct Counting {
    pub inner: MemFs,
    pub table_opens: Arc<AtomicU64>,
}

impl Fs for Counting {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.inner.create(path)
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        if path.extension().is_some_and(|e| e == "sst") {
            self.table_opens.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.open(path)
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.inner.open_append(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>> {
        self.inner.lock(path)
    }
}

pub fn counting() -> (Counting, MemFs) {
    let fs = MemFs::new();
    (
        Counting {
            inner: fs.clone(),
            table_opens: Arc::default(),
        },
        fs,
    )
}
