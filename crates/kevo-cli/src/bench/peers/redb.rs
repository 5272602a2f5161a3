//! redb 4: a copy-on-write B-tree in one file, one write transaction at a time. Each write
//! is its own transaction: `Durability::Immediate` when synced, `Durability::None`
//! otherwise (made durable by the next immediate commit, or at close). `--cache_size` sets
//! the page cache; redb has no memtable.

use std::path::Path;

use kevo::Result;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{directory_bytes, peer_error, prepare};
use crate::bench::engine::{Engine, EngineConfig};

const TABLE: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("bench");

pub struct Redb {
    db: redb::Database,
    dir: std::path::PathBuf,
}

impl Redb {
    pub fn open(dir: &Path, config: &EngineConfig) -> Result<Self> {
        prepare(dir)?;
        let mut builder = redb::Database::builder();
        if let Some(size) = config.cache_size {
            builder.set_cache_size(size);
        }
        let db = builder
            .create(dir.join("bench.redb"))
            .map_err(|e| peer_error("opening redb", e))?;
        // The table exists before the first read.
        let engine = Redb {
            db,
            dir: dir.to_path_buf(),
        };
        engine.write(true, |_| Ok(()))?;
        Ok(engine)
    }

    fn write(
        &self,
        sync: bool,
        change: impl FnOnce(
            &mut redb::Table<'_, &[u8], &[u8]>,
        ) -> std::result::Result<(), redb::StorageError>,
    ) -> Result<()> {
        let mut tx = self
            .db
            .begin_write()
            .map_err(|e| peer_error("redb begin_write", e))?;
        let durability = if sync {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        };
        tx.set_durability(durability)
            .map_err(|e| peer_error("redb set_durability", e))?;
        {
            let mut table = tx
                .open_table(TABLE)
                .map_err(|e| peer_error("redb open_table", e))?;
            change(&mut table).map_err(|e| peer_error("redb write", e))?;
        }
        tx.commit().map_err(|e| peer_error("redb commit", e))
    }

    fn read<T>(
        &self,
        read: impl FnOnce(
            &redb::ReadOnlyTable<&[u8], &[u8]>,
        ) -> std::result::Result<T, redb::StorageError>,
    ) -> Result<T> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| peer_error("redb begin_read", e))?;
        let table = tx
            .open_table(TABLE)
            .map_err(|e| peer_error("redb open_table", e))?;
        read(&table).map_err(|e| peer_error("redb read", e))
    }
}

impl Engine for Redb {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        self.write(sync, |t| t.insert(key, value).map(drop))
    }

    fn get(&self, key: &[u8]) -> Result<Option<usize>> {
        self.read(|t| Ok(t.get(key)?.map(|v| v.value().len())))
    }

    fn delete(&self, key: &[u8], sync: bool) -> Result<()> {
        self.write(sync, |t| t.remove(key).map(drop))
    }

    fn scan(&self, reverse: bool, visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        self.read(|t| {
            let range = t.iter()?;
            let range: Box<dyn Iterator<Item = _>> = if reverse {
                Box::new(range.rev())
            } else {
                Box::new(range)
            };
            for entry in range {
                let (k, v) = entry?;
                if !visit(k.value(), v.value()) {
                    break;
                }
            }
            Ok(())
        })
    }

    fn seek(&self, key: &[u8], visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        self.read(|t| {
            if let Some(entry) = t.range::<&[u8]>(key..)?.next() {
                let (k, v) = entry?;
                visit(k.value(), v.value());
            }
            Ok(())
        })
    }

    fn flush(&self) -> Result<()> {
        // An empty immediate commit makes every earlier non-durable commit durable.
        self.write(true, |_| Ok(()))
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
        self.flush()
    }
}
