//! [`LevelIter`]: one cursor over a level of non-overlapping tables, opening only the table
//! it is in.
//!
//! A merge over a level needs one cursor, not one per table: the tables are sorted and
//! disjoint, so the level reads as one sorted run. A seek binary-searches the tables' key
//! ranges and opens one; stepping past a table's end opens the next. A database of a
//! thousand tables in seven levels then merges about ten cursors, not a thousand.

use std::sync::Arc;

use super::InternalIterator;
use super::merge::Source;
use crate::error::{Error, Result};
use crate::key;
use crate::version::edit::FileMeta;

/// Opens a cursor over one table.
pub type OpenTable = Arc<dyn Fn(&FileMeta) -> Result<Source> + Send + Sync>;

/// A cursor over the tables of one level (sorted by key, not overlapping).
pub struct LevelIter {
    files: Vec<Arc<FileMeta>>,
    open: OpenTable,
    /// The table `current` is over.
    index: usize,
    current: Option<Source>,
    error: Option<Error>,
}

impl LevelIter {
    /// A cursor over `files`, which must be sorted and disjoint; not yet positioned.
    pub fn new(files: Vec<Arc<FileMeta>>, open: OpenTable) -> Self {
        LevelIter {
            files,
            open,
            index: 0,
            current: None,
            error: None,
        }
    }

    /// Positions on table `index` (none past the end), or fails the cursor.
    fn open_table(&mut self, index: usize) -> bool {
        self.current = None;
        self.index = index;
        let Some(file) = self.files.get(index) else {
            return false;
        };
        match (self.open)(file) {
            Ok(cursor) => {
                self.current = Some(cursor);
                true
            }
            Err(e) => {
                self.error.get_or_insert(e);
                false
            }
        }
    }

    /// Whether the current table's cursor is on an entry; records its error if it stopped.
    fn current_valid(&mut self) -> bool {
        match &self.current {
            Some(cursor) if cursor.valid() => true,
            Some(cursor) => {
                if let Err(e) = cursor.status() {
                    self.error.get_or_insert(e);
                    self.current = None;
                }
                false
            }
            None => false,
        }
    }

    /// Moves forward to the first entry of the next tables while the current one is spent.
    fn skip_forward(&mut self) {
        while !self.current_valid() && self.error.is_none() && self.current.is_some() {
            if !self.open_table(self.index + 1) {
                return;
            }
            if let Some(cursor) = self.current.as_mut() {
                cursor.seek_to_first();
            }
        }
    }

    /// Moves back to the last entry of the previous tables while the current one is spent.
    fn skip_backward(&mut self) {
        while !self.current_valid() && self.error.is_none() && self.current.is_some() {
            if self.index == 0 || !self.open_table(self.index - 1) {
                self.current = None;
                return;
            }
            if let Some(cursor) = self.current.as_mut() {
                cursor.seek_to_last();
            }
        }
    }
}

impl InternalIterator for LevelIter {
    fn valid(&self) -> bool {
        self.error.is_none() && self.current.as_ref().is_some_and(|c| c.valid())
    }

    fn seek_to_first(&mut self) {
        if self.open_table(0)
            && let Some(cursor) = self.current.as_mut()
        {
            cursor.seek_to_first();
        }
        self.skip_forward();
    }

    fn seek_to_last(&mut self) {
        if let Some(last) = self.files.len().checked_sub(1)
            && self.open_table(last)
            && let Some(cursor) = self.current.as_mut()
        {
            cursor.seek_to_last();
        } else {
            self.current = None;
        }
        self.skip_backward();
    }

    fn seek(&mut self, target: &[u8]) {
        // The first table whose largest key is at or after the target holds the answer,
        // or the answer is the next table's first entry.
        let index = self
            .files
            .partition_point(|f| key::compare(&f.largest, target).is_lt());
        if self.open_table(index)
            && let Some(cursor) = self.current.as_mut()
        {
            cursor.seek(target);
        }
        self.skip_forward();
    }

    fn next(&mut self) {
        if let Some(cursor) = self.current.as_mut() {
            cursor.next();
        }
        self.skip_forward();
    }

    fn prev(&mut self) {
        if let Some(cursor) = self.current.as_mut() {
            cursor.prev();
        }
        self.skip_backward();
    }

    fn key(&self) -> &[u8] {
        match &self.current {
            Some(c) if self.error.is_none() => c.key(),
            _ => &[],
        }
    }

    fn value(&self) -> &[u8] {
        match &self.current {
            Some(c) if self.error.is_none() => c.value(),
            _ => &[],
        }
    }

    fn status(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(e.duplicate()),
            None => self.current.as_ref().map_or(Ok(()), |c| c.status()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ValueKind, append_internal_key};
    use crate::memtable::{MemTable, MemTableIter};
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn ikey(user: &[u8], seq: u64) -> Vec<u8> {
        let mut k = Vec::new();
        append_internal_key(&mut k, user, seq, ValueKind::Put);
        k
    }

    /// A level of `tables` (each a list of user keys, ascending and disjoint across
    /// tables), served from memtables; `broken` tables fail to open.
    fn level(tables: &[Vec<u8>], broken: Option<usize>) -> LevelIter {
        let mut files = Vec::new();
        let mut mems = HashMap::new();
        for (number, keys) in tables.iter().enumerate() {
            let mem = MemTable::new();
            for &k in keys {
                mem.add(u64::from(k) + 1, ValueKind::Put, &[k], &[k]);
            }
            let (first, last) = (keys[0], keys[keys.len() - 1]);
            files.push(Arc::new(FileMeta {
                number: number as u64,
                size: 1,
                smallest: ikey(&[first], u64::from(first) + 1),
                largest: ikey(&[last], u64::from(last) + 1),
                min_sequence: 0,
                max_sequence: 0,
            }));
            mems.insert(number as u64, Arc::new(mem));
        }
        let open: OpenTable = Arc::new(move |f: &FileMeta| {
            if Some(f.number as usize) == broken {
                return Err(Error::corruption("broken table"));
            }
            let mem = mems
                .get(&f.number)
                .cloned()
                .ok_or_else(|| Error::corruption("no table"))?;
            Ok(Box::new(MemTableIter::new(mem)) as Source)
        });
        LevelIter::new(files, open)
    }

    /// Splits sorted distinct keys into tables of the given sizes.
    fn split(keys: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
        let mut tables = Vec::new();
        let mut rest = keys;
        for &size in sizes {
            if rest.is_empty() {
                break;
            }
            let (head, tail) = rest.split_at(size.clamp(1, rest.len()));
            tables.push(head.to_vec());
            rest = tail;
        }
        if !rest.is_empty() {
            tables.push(rest.to_vec());
        }
        tables
    }

    proptest! {
        #[test]
        fn a_level_reads_as_the_sorted_run_of_its_tables_from_any_seek_in_both_directions(
            keys in proptest::collection::btree_set(0u8..200, 1..60),
            sizes in proptest::collection::vec(1usize..8, 1..12),
            target in 0u8..=255,
        ) {
            let keys: Vec<u8> = keys.into_iter().collect();
            let mut it = level(&split(&keys, &sizes), None);
            it.seek_to_first();
            let mut forward = Vec::new();
            while it.valid() { forward.push(it.key()[0]); it.next(); }
            prop_assert_eq!(&forward, &keys);
            it.seek_to_last();
            let mut backward = Vec::new();
            while it.valid() { backward.push(it.key()[0]); it.prev(); }
            backward.reverse();
            prop_assert_eq!(&backward, &keys);
            it.seek(&key::seek_key(&[target], key::MAX_SEQUENCE));
            prop_assert_eq!(it.valid().then(|| it.key()[0]), keys.iter().copied().find(|&k| k >= target));
            if it.valid() {
                it.prev();
                prop_assert_eq!(it.valid().then(|| it.key()[0]), keys.iter().copied().rev().find(|&k| k < target));
            }
            prop_assert!(it.status().is_ok());
        }
    }

    #[test]
    fn an_empty_level_is_never_valid() {
        let mut it = LevelIter::new(
            Vec::new(),
            Arc::new(|_: &FileMeta| Err(Error::corruption("unused"))),
        );
        it.seek_to_first();
        assert!(!it.valid());
        it.seek_to_last();
        assert!(!it.valid());
        it.seek(b"anything");
        assert!(!it.valid() && it.status().is_ok());
    }

    #[test]
    fn a_table_that_fails_to_open_stops_the_cursor_with_its_error() {
        let mut it = level(&[vec![1, 2], vec![3, 4], vec![5]], Some(1));
        it.seek_to_first();
        assert!(it.valid());
        it.next();
        assert_eq!(it.key(), ikey(&[2], 3));
        it.next();
        assert!(!it.valid());
        assert_eq!(
            it.status().map_err(|e| e.kind()),
            Err(crate::ErrorKind::Corruption)
        );
        // Seeking past the broken table works again.
        let mut it = level(&[vec![1, 2], vec![3, 4], vec![5]], Some(1));
        it.seek(&key::seek_key(&[5], key::MAX_SEQUENCE));
        assert!(it.valid() && it.status().is_ok());
    }
}
