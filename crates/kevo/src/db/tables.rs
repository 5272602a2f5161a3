//! The open tables of a database, and point lookups across a [`Version`]'s levels.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{files, lock};
use crate::error::Result;
use crate::fs::Fs;
use crate::key::{self, SequenceNumber};
use crate::sst::table::{Table, TableBlockCache, TableLookup};
use crate::version::edit::FileMeta;
use crate::version::set::Version;

/// Opens tables on first use and keeps them open (their index and filter pinned), sharing
/// one block cache.
///
/// Thread safety: every method takes `&self`; the map is behind a mutex held only to look up
/// or insert a handle, never during I/O of a lookup.
pub(crate) struct TableCache {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    blocks: Option<Arc<TableBlockCache>>,
    /// Open tables by file number.
    open: Mutex<HashMap<u64, Arc<Table>>>,
}

impl TableCache {
    pub fn new(fs: Arc<dyn Fs>, dir: &Path, block_cache_size: usize) -> Self {
        let blocks =
            (block_cache_size > 0).then(|| Arc::new(TableBlockCache::new(block_cache_size)));
        TableCache {
            fs,
            dir: dir.to_path_buf(),
            blocks,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The open table `number`, opening it if needed.
    pub fn table(&self, number: u64) -> Result<Arc<Table>> {
        if let Some(table) = lock(&self.open).get(&number) {
            return Ok(table.clone());
        }
        let path = self.dir.join(files::table_name(number));
        let table = Arc::new(Table::open(
            self.fs.as_ref(),
            &path,
            number,
            self.blocks.clone(),
        )?);
        lock(&self.open)
            .entry(number)
            .or_insert_with(|| table.clone());
        Ok(table)
    }

    /// The newest version of `user_key` at `sequence` in the tables of `version`: L0 newest
    /// first, then one table per deeper level, found by binary search on key ranges.
    pub fn get(
        &self,
        version: &Version,
        user_key: &[u8],
        sequence: SequenceNumber,
    ) -> Result<Option<TableLookup>> {
        for file in version.files(0) {
            if covers(file, user_key)
                && let Some(found) = self.table(file.number)?.get(user_key, sequence)?
            {
                return Ok(Some(found));
            }
        }
        for level in 1..version.num_levels() {
            let files = version.files(level);
            let i = files.partition_point(|f| key::user_key(&f.largest) < user_key);
            if let Some(file) = files.get(i).filter(|f| covers(f, user_key))
                && let Some(found) = self.table(file.number)?.get(user_key, sequence)?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

fn covers(file: &FileMeta, user_key: &[u8]) -> bool {
    key::user_key(&file.smallest) <= user_key && user_key <= key::user_key(&file.largest)
}
