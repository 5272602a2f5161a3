//! fjall 3: an LSM-tree in Rust (one keyspace). `sync` writes are followed by
//! `persist(SyncData)` (fdatasync of the journal, as kevo's WAL sync); unsynced writes stay
//! in the OS buffers as kevo's do. `--cache_size` sets the block cache; `--write_buffer_size`
//! the keyspace's memtable size.

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use kevo::Result;

use super::{directory_bytes, peer_error, prepare};
use crate::bench::engine::{Engine, EngineConfig};

pub struct Fjall {
    db: Database,
    keyspace: Keyspace,
    dir: std::path::PathBuf,
}

impl Fjall {
    pub fn open(dir: &Path, config: &EngineConfig) -> Result<Self> {
        prepare(dir)?;
        let mut builder = Database::builder(dir.join("fjall"));
        if let Some(size) = config.cache_size {
            builder = builder.cache_size(size as u64);
        }
        let db = builder.open().map_err(|e| peer_error("opening fjall", e))?;
        let memtable = config.write_buffer_size;
        let keyspace = db
            .keyspace("bench", || {
                let options = KeyspaceCreateOptions::default();
                match memtable {
                    Some(size) => options.max_memtable_size(size as u64),
                    None => options,
                }
            })
            .map_err(|e| peer_error("opening the fjall keyspace", e))?;
        Ok(Fjall {
            db,
            keyspace,
            dir: dir.to_path_buf(),
        })
    }

    fn sync(&self, sync: bool) -> Result<()> {
        if sync {
            self.db
                .persist(PersistMode::SyncData)
                .map_err(|e| peer_error("fjall persist", e))?;
        }
        Ok(())
    }
}

impl Engine for Fjall {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        self.keyspace
            .insert(key, value)
            .map_err(|e| peer_error("fjall insert", e))?;
        self.sync(sync)
    }

    fn get(&self, key: &[u8]) -> Result<Option<usize>> {
        let value = self
            .keyspace
            .get(key)
            .map_err(|e| peer_error("fjall get", e))?;
        Ok(value.map(|v| v.len()))
    }

    fn delete(&self, key: &[u8], sync: bool) -> Result<()> {
        self.keyspace
            .remove(key)
            .map_err(|e| peer_error("fjall remove", e))?;
        self.sync(sync)
    }

    fn scan(&self, reverse: bool, visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let iter = self.keyspace.iter();
        let iter: Box<dyn Iterator<Item = fjall::Guard>> = if reverse {
            Box::new(iter.rev())
        } else {
            Box::new(iter)
        };
        for guard in iter {
            let (k, v) = guard
                .into_inner()
                .map_err(|e| peer_error("fjall iterate", e))?;
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn seek(&self, key: &[u8], visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        if let Some(guard) = self.keyspace.range(key..).next() {
            let (k, v) = guard
                .into_inner()
                .map_err(|e| peer_error("fjall seek", e))?;
            visit(&k, &v);
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.keyspace
            .rotate_memtable_and_wait()
            .map_err(|e| peer_error("fjall flush", e))?;
        self.sync(true)
    }

    fn table_bytes(&self) -> Result<u64> {
        directory_bytes(&self.dir)
    }

    fn table_bytes_written(&self) -> Option<u64> {
        None
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    fn close(&self) -> Result<()> {
        self.sync(true)
    }
}
