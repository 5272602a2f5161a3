//! sled 0.34: a lock-free B-link tree with a log-structured store. `sync` writes call
//! `flush()` (sled's fsync of everything written so far); unsynced writes are flushed by
//! sled's own timer (500 ms by default). `--cache_size` sets `cache_capacity`; sled has no
//! memtable.

use std::path::Path;

use kevo::Result;

use super::{directory_bytes, peer_error, prepare};
use crate::bench::engine::{Engine, EngineConfig};

pub struct Sled {
    db: sled::Db,
    dir: std::path::PathBuf,
}

impl Sled {
    pub fn open(dir: &Path, config: &EngineConfig) -> Result<Self> {
        prepare(dir)?;
        let mut builder = sled::Config::new().path(dir.join("sled"));
        if let Some(size) = config.cache_size {
            builder = builder.cache_capacity(size as u64);
        }
        let db = builder.open().map_err(|e| peer_error("opening sled", e))?;
        Ok(Sled {
            db,
            dir: dir.to_path_buf(),
        })
    }

    fn sync(&self, sync: bool) -> Result<()> {
        if sync {
            self.db.flush().map_err(|e| peer_error("sled flush", e))?;
        }
        Ok(())
    }
}

impl Engine for Sled {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        self.db
            .insert(key, value)
            .map_err(|e| peer_error("sled insert", e))?;
        self.sync(sync)
    }

    fn get(&self, key: &[u8]) -> Result<Option<usize>> {
        let value = self.db.get(key).map_err(|e| peer_error("sled get", e))?;
        Ok(value.map(|v| v.len()))
    }

    fn delete(&self, key: &[u8], sync: bool) -> Result<()> {
        self.db
            .remove(key)
            .map_err(|e| peer_error("sled remove", e))?;
        self.sync(sync)
    }

    fn scan(&self, reverse: bool, visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let iter = self.db.iter();
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if reverse {
            Box::new(iter.rev())
        } else {
            Box::new(iter)
        };
        for entry in iter {
            let (k, v) = entry.map_err(|e| peer_error("sled iterate", e))?;
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn seek(&self, key: &[u8], visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        if let Some(entry) = self.db.range(key..).next() {
            let (k, v) = entry.map_err(|e| peer_error("sled seek", e))?;
            visit(&k, &v);
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
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
