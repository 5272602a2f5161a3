//! RocksDB 11 (the `rocksdb` crate 0.25): set up as kevo is: LZ4 blocks, a 10-bit bloom
//! filter, the same block cache and memtable sizes when given, `sync` per write through
//! `WriteOptions::set_sync`, leveled compaction with dynamic level sizing (RocksDB's
//! default), two background jobs (kevo's `background_threads`).

use std::path::Path;

use kevo::Result;
use rocksdb::{BlockBasedOptions, Cache, DB, DBCompressionType, Options, WriteOptions};

use super::{directory_bytes, peer_error, prepare};
use crate::bench::engine::{Engine, EngineConfig};

pub struct RocksDb {
    db: DB,
    dir: std::path::PathBuf,
}

impl RocksDb {
    pub fn open(dir: &Path, config: &EngineConfig, create: bool) -> Result<Self> {
        prepare(dir)?;
        let mut options = Options::default();
        options.create_if_missing(create);
        options.set_compression_type(DBCompressionType::Lz4);
        options.set_max_background_jobs(2);
        options.set_level_compaction_dynamic_level_bytes(true);
        if let Some(size) = config.write_buffer_size {
            options.set_write_buffer_size(size);
        }
        if let Some(size) = config.target_file_size {
            options.set_target_file_size_base(size);
        }
        let mut table = BlockBasedOptions::default();
        let cache = Cache::new_lru_cache(config.cache_size.unwrap_or(64 << 20));
        table.set_block_cache(&cache);
        match config.bloom_bits {
            Some(0) => {}
            Some(bits) => table.set_bloom_filter(f64::from(bits), false),
            None => table.set_bloom_filter(10.0, false),
        }
        table.set_block_size(config.block_size.unwrap_or(16 << 10));
        options.set_block_based_table_factory(&table);
        let db = DB::open(&options, dir.join("rocksdb"))
            .map_err(|e| peer_error("opening RocksDB", e))?;
        Ok(RocksDb {
            db,
            dir: dir.to_path_buf(),
        })
    }
}

fn write_options(sync: bool) -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(sync);
    options
}

impl Engine for RocksDb {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        self.db
            .put_opt(key, value, &write_options(sync))
            .map_err(|e| peer_error("RocksDB put", e))
    }

    fn get(&self, key: &[u8]) -> Result<Option<usize>> {
        let value = self
            .db
            .get_pinned(key)
            .map_err(|e| peer_error("RocksDB get", e))?;
        Ok(value.map(|v| v.len()))
    }

    fn delete(&self, key: &[u8], sync: bool) -> Result<()> {
        self.db
            .delete_opt(key, &write_options(sync))
            .map_err(|e| peer_error("RocksDB delete", e))
    }

    fn scan(&self, reverse: bool, visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let mut it = self.db.raw_iterator();
        if reverse {
            it.seek_to_last();
        } else {
            it.seek_to_first();
        }
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !visit(k, v) {
                break;
            }
            if reverse {
                it.prev();
            } else {
                it.next();
            }
        }
        it.status().map_err(|e| peer_error("RocksDB iterate", e))
    }

    fn seek(&self, key: &[u8], visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        let mut it = self.db.raw_iterator();
        it.seek(key);
        if let (Some(k), Some(v)) = (it.key(), it.value()) {
            visit(k, v);
        }
        it.status().map_err(|e| peer_error("RocksDB seek", e))
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(|e| peer_error("RocksDB flush", e))
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
        self.db
            .flush_wal(true)
            .map_err(|e| peer_error("RocksDB sync", e))
    }
}
