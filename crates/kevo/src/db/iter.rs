//! [`DbIter`]: the public iterator — a consistent view of the keys at one sequence number,
//! within bounds, forward and backward (`DoubleEndedIterator`).
//!
//! Each end has its own merging cursor over every source of the read view (memtables and
//! tables), so going forward and backward never disturb each other; the two ends stop when
//! they meet. The iterator owns its read view: the memtables and tables it reads stay alive
//! (and on disk) however long it lives, whatever flushes happen meanwhile.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::{DbInner, ReadView, Value};
use crate::compaction::in_range;
use crate::error::{Error, Result};
use crate::iter::InternalIterator;
use crate::iter::level::LevelIter;
use crate::iter::merge::{MergingIter, Source};
use crate::key::{self, MAX_SEQUENCE, ParsedKey, SequenceNumber, ValueKind};
use crate::memtable::MemTableIter;
use crate::options::PrefixExtractor;
use crate::sst::table::Table;

/// An iterator over `(key, value)` pairs in key order (and, with `.rev()`, reverse order),
/// as of one sequence number. Created by [`Db::iter`](super::Db::iter),
/// [`Db::range`](super::Db::range), [`Db::prefix`](super::Db::prefix) and their
/// [`Snapshot`](super::Snapshot) forms. Owned: `'static + Send`.
///
/// An I/O error or damaged data ends the iteration with one `Err` item.
pub struct DbIter {
    db: Arc<DbInner>,
    view: Arc<ReadView>,
    sequence: SequenceNumber,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    front: Option<MergingIter>,
    back: Option<MergingIter>,
    /// The last key each end returned; the ends stop when they meet.
    last_front: Option<Vec<u8>>,
    last_back: Option<Vec<u8>>,
    done: bool,
    /// The bounds admit no key: nothing to seek to either.
    empty: bool,
    /// An error to yield before anything else (the database was closed).
    pending_error: Option<Error>,
    /// A prefix every key in the bounds has: tables whose filters rule it out are skipped.
    prefix: Option<(PrefixExtractor, Vec<u8>)>,
}

impl std::fmt::Debug for DbIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbIter")
            .field("sequence", &self.sequence)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl DbIter {
    pub(super) fn new(
        db: Arc<DbInner>,
        view: Arc<ReadView>,
        sequence: SequenceNumber,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
    ) -> Self {
        // An empty or inverted range yields nothing.
        let empty = match (&lower, &upper) {
            (Bound::Included(l), Bound::Included(u)) => l > u,
            (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u))
            | (Bound::Excluded(l), Bound::Included(u)) => l >= u,
            _ => false,
        };
        DbIter {
            db,
            view,
            sequence,
            lower,
            upper,
            front: None,
            back: None,
            last_front: None,
            last_back: None,
            done: empty,
            empty,
            pending_error: None,
            prefix: None,
        }
    }

    /// Skips the tables whose filters say they hold no key with `prefix` (as `extractor`
    /// finds prefixes). Only for bounds within which every key has that prefix.
    pub(super) fn skipping_tables_without(
        mut self,
        extractor: PrefixExtractor,
        prefix: &[u8],
    ) -> Self {
        self.prefix = Some((extractor, prefix.to_vec()));
        self
    }

    /// Moves the front end: the next [`next`](Iterator::next) returns the first key at or
    /// after `key` (and within the iterator's bounds). Seeking back over keys already
    /// returned returns them again. The back end stays where it is, and the ends still
    /// stop where they meet.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let db = kevo::Db::open(dir.path(), kevo::Options::default())?;
    /// for k in ["a", "c", "e"] {
    ///     db.put(k, "v")?;
    /// }
    /// let mut iter = db.iter();
    /// iter.seek(b"b");
    /// assert_eq!(&iter.next().unwrap()?.0[..], b"c");
    /// iter.seek(b"a");
    /// assert_eq!(&iter.next().unwrap()?.0[..], b"a");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seek(&mut self, key: impl AsRef<[u8]>) {
        if self.empty || self.pending_error.is_some() {
            return;
        }
        let key = key.as_ref();
        let target = key::seek_key(key, MAX_SEQUENCE);
        if self.front.is_some() {
            // A new cursor counts its own first seek.
            self.db.stats.iter_seeks.add(1);
        }
        match self.front_cursor() {
            Ok(cursor) => cursor.seek(&target),
            Err(e) => {
                self.pending_error = Some(e);
                return;
            }
        }
        self.last_front = None;
        self.done = false;
    }

    /// Moves the back end: the next [`next_back`](DoubleEndedIterator::next_back) returns
    /// the last key at or before `key` (and within the iterator's bounds). The front end
    /// stays where it is.
    pub fn seek_for_prev(&mut self, key: impl AsRef<[u8]>) {
        if self.empty || self.pending_error.is_some() {
            return;
        }
        // Past every version of the key, then one back.
        let target = key::seek_key(key.as_ref(), 0);
        if self.back.is_some() {
            self.db.stats.iter_seeks.add(1);
        }
        match self.back_cursor() {
            Ok(cursor) => {
                cursor.seek(&target);
                if cursor.valid() {
                    cursor.prev();
                } else {
                    cursor.seek_to_last();
                }
            }
            Err(e) => {
                self.pending_error = Some(e);
                return;
            }
        }
        self.last_back = None;
        self.done = false;
    }

    /// An iterator that yields `error` once.
    pub(super) fn failed(mut self, error: Error) -> Self {
        self.pending_error = Some(error);
        self
    }

    /// A merge over every source of the view: each memtable, each L0 table, and one
    /// cursor per deeper level, leaving out tables outside the bounds and (with a prefix)
    /// tables whose filters rule the prefix out.
    fn merge(&self) -> Result<MergingIter> {
        let mut sources: Vec<Source> = Vec::new();
        sources.push(Box::new(MemTableIter::new(self.view.mem.clone())));
        for frozen in &self.view.imm {
            sources.push(Box::new(MemTableIter::new(frozen.mem.clone())));
        }
        let version = &self.view.version;
        let bounds = (self.lower.clone(), self.upper.clone());
        for file in version.files(0) {
            if in_range(file, &bounds) {
                let table = self.db.tables.table(file.number)?;
                if self.may_hold_prefix(&table) {
                    sources.push(Box::new(table.iter()));
                }
            }
        }
        // Deeper levels: the tables in range, each asked about the prefix only when the
        // cursor gets to it (a scan that stops early opens no more than it reads).
        let opener = match &self.prefix {
            Some((extractor, prefix)) => self.db.prefix_table_opener(*extractor, prefix.clone()),
            None => self.db.table_opener(),
        };
        // A deeper level is sorted and disjoint: its tables in range are one run, found by
        // a binary search for the first and a walk to the last.
        let from_lower = (self.lower.clone(), Bound::Unbounded);
        for level in 1..version.num_levels() {
            let level_files = version.files(level);
            let first = level_files.partition_point(|file| !in_range(file, &from_lower));
            let files: Vec<_> = level_files[first..]
                .iter()
                .take_while(|file| in_range(file, &bounds))
                .cloned()
                .collect();
            if !files.is_empty() {
                sources.push(Box::new(LevelIter::new(files, opener.clone())));
            }
        }
        Ok(MergingIter::new(sources))
    }

    /// Whether `table` may hold a key with the iterator's prefix (always, without one).
    fn may_hold_prefix(&self, table: &Table) -> bool {
        self.prefix
            .as_ref()
            .is_none_or(|(extractor, prefix)| table.may_contain_prefix(prefix, *extractor))
    }

    fn below_upper(&self, user: &[u8]) -> bool {
        match &self.upper {
            Bound::Included(u) => user <= u.as_slice(),
            Bound::Excluded(u) => user < u.as_slice(),
            Bound::Unbounded => true,
        }
    }

    fn above_lower(&self, user: &[u8]) -> bool {
        match &self.lower {
            Bound::Included(l) => user >= l.as_slice(),
            Bound::Excluded(l) => user > l.as_slice(),
            Bound::Unbounded => true,
        }
    }

    fn fail(&mut self, e: Error) -> Result<(Value, Value)> {
        self.done = true;
        Err(e)
    }

    fn front_cursor(&mut self) -> Result<&mut MergingIter> {
        if self.front.is_none() {
            self.db.stats.iter_seeks.add(1);
            let mut merged = self.merge()?;
            match &self.lower {
                Bound::Unbounded => merged.seek_to_first(),
                Bound::Included(k) | Bound::Excluded(k) => {
                    merged.seek(&key::seek_key(k, MAX_SEQUENCE))
                }
            }
            self.front = Some(merged);
        }
        self.front
            .as_mut()
            .ok_or_else(|| Error::corruption("iterator state"))
    }

    fn back_cursor(&mut self) -> Result<&mut MergingIter> {
        if self.back.is_none() {
            self.db.stats.iter_seeks.add(1);
            let mut merged = self.merge()?;
            match &self.upper {
                Bound::Unbounded => merged.seek_to_last(),
                Bound::Included(k) => {
                    // Past every version of k, then one back.
                    merged.seek(&key::seek_key(k, 0));
                    if merged.valid() {
                        merged.prev()
                    } else {
                        merged.seek_to_last()
                    }
                }
                Bound::Excluded(k) => {
                    merged.seek(&key::seek_key(k, MAX_SEQUENCE));
                    if merged.valid() {
                        merged.prev()
                    } else {
                        merged.seek_to_last()
                    }
                }
            }
            self.back = Some(merged);
        }
        self.back
            .as_mut()
            .ok_or_else(|| Error::corruption("iterator state"))
    }

    /// The next visible entry going forward.
    fn step_front(&mut self) -> Result<Option<(Value, Value)>> {
        let sequence = self.sequence;
        loop {
            let cursor = self.front_cursor()?;
            if !cursor.valid() {
                cursor.status()?;
                return Ok(None);
            }
            let Some(parsed) = ParsedKey::parse(cursor.key()) else {
                return Err(Error::corruption("an entry without a valid internal key"));
            };
            if parsed.sequence > sequence {
                cursor.next();
                continue;
            }
            // The newest visible version of this user key decides; older ones are skipped.
            let user = parsed.user_key.to_vec();
            let entry =
                (parsed.kind == ValueKind::Put).then(|| Bytes::copy_from_slice(cursor.value()));
            skip_versions(cursor, &user);
            if !self.above_lower(&user) {
                continue;
            }
            if !self.below_upper(&user) || self.last_back.as_ref().is_some_and(|b| &user >= b) {
                return Ok(None);
            }
            if let Some(value) = entry {
                self.last_front = Some(user.clone());
                return Ok(Some((Bytes::from(user), value)));
            }
        }
    }

    /// The next visible entry going backward.
    fn step_back(&mut self) -> Result<Option<(Value, Value)>> {
        let sequence = self.sequence;
        loop {
            let cursor = self.back_cursor()?;
            if !cursor.valid() {
                cursor.status()?;
                return Ok(None);
            }
            let user = key::user_key(cursor.key()).to_vec();
            // Backward, a key's versions come oldest first: the last visible one seen is
            // the newest, and it decides.
            let mut newest: Option<Option<Bytes>> = None;
            while cursor.valid() {
                let Some(parsed) = ParsedKey::parse(cursor.key()) else {
                    return Err(Error::corruption("an entry without a valid internal key"));
                };
                if parsed.user_key != user.as_slice() {
                    break;
                }
                if parsed.sequence <= sequence {
                    newest = Some(
                        (parsed.kind == ValueKind::Put)
                            .then(|| Bytes::copy_from_slice(cursor.value())),
                    );
                }
                cursor.prev();
            }
            let cursor_status = cursor.status();
            cursor_status?;
            if !self.below_upper(&user) {
                continue;
            }
            if !self.above_lower(&user) || self.last_front.as_ref().is_some_and(|f| &user <= f) {
                return Ok(None);
            }
            if let Some(Some(value)) = newest {
                self.last_back = Some(user.clone());
                return Ok(Some((Bytes::from(user), value)));
            }
        }
    }
}

impl Iterator for DbIter {
    type Item = Result<(Value, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.db.stats.iter_steps.add(1);
        if let Some(e) = self.pending_error.take() {
            return Some(self.fail(e));
        }
        if self.done {
            return None;
        }
        match self.step_front() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => Some(self.fail(e)),
        }
    }
}

impl DoubleEndedIterator for DbIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.db.stats.iter_steps.add(1);
        if let Some(e) = self.pending_error.take() {
            return Some(self.fail(e));
        }
        if self.done {
            return None;
        }
        match self.step_back() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => Some(self.fail(e)),
        }
    }
}

/// Moves `cursor` past the remaining (older) versions of `user`: a few steps forward, as
/// most keys have one or two versions, then one seek if there are more.
fn skip_versions(cursor: &mut MergingIter, user: &[u8]) {
    const STEPS_BEFORE_SEEK: usize = 8;
    for _ in 0..STEPS_BEFORE_SEEK {
        cursor.next();
        if !cursor.valid() || key::user_key(cursor.key()) != user {
            return;
        }
    }
    cursor.seek(&key::seek_key(user, 0));
}

/// The bounds of the keys starting with `prefix`.
pub(super) fn prefix_bounds(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let mut end = prefix.to_vec();
    // The smallest key after every key with this prefix: drop trailing 0xff, bump the last.
    while end.last() == Some(&0xff) {
        end.pop();
    }
    let upper = match end.last_mut() {
        Some(last) => {
            *last += 1;
            Bound::Excluded(end)
        }
        None => Bound::Unbounded,
    };
    (Bound::Included(prefix.to_vec()), upper)
}
