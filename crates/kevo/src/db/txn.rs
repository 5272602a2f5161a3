//! Optimistic transactions: reads from a snapshot taken at begin (and the transaction's own
//! writes), writes buffered, and a commit that applies them atomically only if no key the
//! transaction wrote (and, when serializable, read) changed after its snapshot.
//!
//! The check runs in the commit leader, at the moment sequence numbers are assigned, so no
//! write can slip between the check and the commit; transactions that do not conflict
//! commit together in one group. Nothing is locked while a transaction is open.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use super::commit::{ConflictCheck, PendingWrite};
use super::txn_iter::{KeyRange, TxnIter, contains};
use super::{Db, DbInner, Snapshot, Value};
use crate::batch::WriteBatch;
use crate::error::{Error, ErrorKind, Result};
use crate::iter::InternalIterator;
use crate::key::{self, MAX_SEQUENCE, ParsedKey, SequenceNumber};
use crate::memtable::MemTableIter;

/// An optimistic transaction (see [`Db::transaction`]). Dropping it without `commit` rolls
/// it back.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let db = kevo::Db::open(dir.path(), kevo::Options::default())?;
/// db.put(b"balance", b"10")?;
/// let mut tx = db.transaction();
/// let balance: u32 = std::str::from_utf8(&tx.get(b"balance")?.unwrap())?.parse()?;
/// tx.put(b"balance", (balance + 5).to_string());
/// tx.commit()?; // ErrorKind::Concurrency if another write changed "balance" meanwhile
/// assert_eq!(db.get(b"balance")?.as_deref(), Some(&b"15"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Transaction {
    db: Db,
    snapshot: Snapshot,
    /// Buffered writes: `None` is a delete.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Keys read (checked at commit when serializable).
    reads: BTreeSet<Vec<u8>>,
    /// Key ranges scans went over (recorded and checked when serializable).
    scanned: Vec<KeyRange>,
    serializable: bool,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("snapshot", &self.snapshot.sequence())
            .field("writes", &self.writes.len())
            .field("serializable", &self.serializable)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Begins a transaction with snapshot isolation: its reads see the database as of now
    /// plus its own writes; `commit` fails with [`ErrorKind::Concurrency`] if another write
    /// changed a key it writes after it began. (Write skew — two transactions each reading
    /// what the other writes — is allowed; use [`Db::serializable_transaction`] to prevent
    /// it.)
    pub fn transaction(&self) -> Transaction {
        self.begin(false)
    }

    /// Begins a serializable transaction: as [`Db::transaction`], and `commit` also fails
    /// if a key it read changed after it began.
    pub fn serializable_transaction(&self) -> Transaction {
        self.begin(true)
    }

    fn begin(&self, serializable: bool) -> Transaction {
        Transaction {
            db: self.clone(),
            snapshot: self.snapshot(),
            writes: BTreeMap::new(),
            reads: BTreeSet::new(),
            scanned: Vec::new(),
            serializable,
        }
    }
}

impl Transaction {
    /// The value of `key`: the transaction's own write if any, else as of its snapshot.
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        let key = key.as_ref();
        if let Some(own) = self.writes.get(key) {
            return Ok(own.as_ref().map(|v| Value::copy_from_slice(v)));
        }
        self.reads.insert(key.to_vec());
        self.snapshot.get(key)
    }

    /// Every key and value the transaction sees, in key order (`.rev()` for reverse): the
    /// snapshot with the transaction's own writes applied. Under
    /// [`Db::serializable_transaction`], the keys the scan went over count as read: a
    /// commit fails if any key there, present or not at the snapshot, changed since.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let db = kevo::Db::open(dir.path(), kevo::Options::default())?;
    /// db.put(b"a", b"1")?;
    /// db.put(b"b", b"2")?;
    /// let mut tx = db.transaction();
    /// tx.delete(b"a");
    /// tx.put(b"c", b"3");
    /// let keys: Vec<_> = tx.iter().map(|kv| kv.map(|(k, _)| k)).collect::<Result<_, _>>()?;
    /// assert_eq!(keys, [&b"b"[..], &b"c"[..]]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&mut self) -> TxnIter<'_> {
        self.scan((Bound::Unbounded, Bound::Unbounded))
    }

    /// The keys within `range` as the transaction sees them (see [`Transaction::iter`]).
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&mut self, range: R) -> TxnIter<'_> {
        self.scan(super::owned_bounds(&range))
    }

    /// The keys starting with `prefix` as the transaction sees them (see
    /// [`Transaction::iter`]).
    pub fn prefix(&mut self, prefix: impl AsRef<[u8]>) -> TxnIter<'_> {
        self.scan(super::iter::prefix_bounds(prefix.as_ref()))
    }

    fn scan(&mut self, range: KeyRange) -> TxnIter<'_> {
        let snapshot = self.snapshot.range(range.clone());
        let own = self
            .writes
            .iter()
            .filter(|(k, _)| contains(&range, k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let scanned = self.serializable.then_some(&mut self.scanned);
        TxnIter::new(snapshot, own, range, scanned)
    }

    /// Buffers a put of `value` under `key`.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.writes
            .insert(key.as_ref().to_vec(), Some(value.as_ref().to_vec()));
    }

    /// Buffers a delete of `key`.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.writes.insert(key.as_ref().to_vec(), None);
    }

    /// Applies every buffered write atomically, unless a conflicting write committed after
    /// the transaction began: then nothing is applied and the error is
    /// [`ErrorKind::Concurrency`]; retry with a new transaction.
    pub fn commit(self) -> Result<()> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        for (k, v) in &self.writes {
            match v {
                Some(v) => batch.put(k, v),
                None => batch.delete(k),
            }
        }
        let mut keys: Vec<Vec<u8>> = self.writes.keys().cloned().collect();
        if self.serializable {
            keys.extend(
                self.reads
                    .iter()
                    .filter(|k| !self.writes.contains_key(*k))
                    .cloned(),
            );
        }
        let check = ConflictCheck {
            since: self.snapshot.sequence(),
            keys,
            ranges: self.scanned.clone(),
        };
        let inner = &self.db.inner;
        inner.check_open()?;
        inner.validate_batch(&batch)?;
        inner.wait_for_l0()?;
        let started = std::time::Instant::now();
        let (puts, deletes, bytes) = super::batch_counts(&batch);
        inner
            .commits
            .write(batch, false, Some(check), |group| inner.commit_group(group))?;
        inner.count_write(puts, deletes, bytes, started);
        Ok(())
    }

    /// Discards every buffered write (as dropping the transaction does).
    pub fn rollback(self) {}
}

impl DbInner {
    /// Applies the conflict checks of a commit group, in order: a transaction whose keys
    /// changed after its snapshot, or were written by an earlier member of this group, is
    /// rejected alone. Returns the batches to commit.
    pub(super) fn admit(&self, group: &[Arc<PendingWrite>]) -> Result<Vec<WriteBatch>> {
        let mut written: HashSet<Vec<u8>> = HashSet::new();
        let checks = group.iter().any(|p| p.conflict_check.is_some());
        let mut batches = Vec::with_capacity(group.len());
        for member in group {
            let Some(batch) = member.take_batch() else {
                continue;
            };
            if let Some(check) = &member.conflict_check {
                if let Some(key) = self.first_conflict(check, &written)? {
                    member.reject(Error::new(
                        ErrorKind::Concurrency,
                        format!(
                            "transaction conflict: key {} changed after the transaction began",
                            show(&key)
                        ),
                    ));
                    self.stats.transaction_conflicts.add(1);
                    continue;
                }
                self.stats.transaction_commits.add(1);
            }
            if checks {
                written.extend(batch.iter().map(|e| e.key.to_vec()));
            }
            batches.push(batch);
        }
        Ok(batches)
    }

    fn first_conflict(
        &self,
        check: &ConflictCheck,
        written: &HashSet<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>> {
        for key in &check.keys {
            if written.contains(key) || self.newest_sequence(key)?.is_some_and(|s| s > check.since)
            {
                return Ok(Some(key.clone()));
            }
        }
        for range in &check.ranges {
            if let Some(key) = written.iter().find(|k| contains(range, k)) {
                return Ok(Some(key.clone()));
            }
            if let Some(key) = self.changed_in_range(range, check.since)? {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    /// A key within `range` with a version newer than `since`, if any. Each memtable and
    /// each table that holds writes after `since` is searched on its own (no merge: any
    /// newer version is a change).
    fn changed_in_range(&self, range: &KeyRange, since: SequenceNumber) -> Result<Option<Vec<u8>>> {
        let view = self.view.load_full();
        let mut sources: Vec<Box<dyn InternalIterator>> = Vec::new();
        for mem in std::iter::once(&view.mem).chain(view.imm.iter().map(|f| &f.mem)) {
            sources.push(Box::new(MemTableIter::new(mem.clone())));
        }
        for level in 0..view.version.num_levels() {
            for file in view.version.files(level) {
                if file.max_sequence > since && crate::compaction::in_range(file, range) {
                    sources.push(Box::new(self.tables.table(file.number)?.iter()));
                }
            }
        }
        for mut source in sources {
            match &range.0 {
                Bound::Included(k) | Bound::Excluded(k) => {
                    source.seek(&key::seek_key(k, MAX_SEQUENCE));
                }
                Bound::Unbounded => source.seek_to_first(),
            }
            while source.valid() {
                let Some(parsed) = ParsedKey::parse(source.key()) else {
                    return Err(Error::corruption("an entry without a valid internal key"));
                };
                if !contains(&(Bound::Unbounded, range.1.clone()), parsed.user_key) {
                    break;
                }
                if parsed.sequence > since && contains(range, parsed.user_key) {
                    return Ok(Some(parsed.user_key.to_vec()));
                }
                source.next();
            }
            source.status()?;
        }
        Ok(None)
    }

    /// The sequence of the newest committed version (put or delete) of `user_key`, if any.
    /// Runs in the commit leader, so every committed write is visible.
    fn newest_sequence(&self, user_key: &[u8]) -> Result<Option<SequenceNumber>> {
        let view = self.view.load_full();
        let target = key::seek_key(user_key, MAX_SEQUENCE);
        let mems = std::iter::once(&view.mem).chain(view.imm.iter().map(|f| &f.mem));
        for mem in mems {
            let mut cursor = MemTableIter::new(mem.clone());
            cursor.seek(&target);
            if let Some(parsed) = cursor
                .valid()
                .then(|| ParsedKey::parse(cursor.key()))
                .flatten()
                && parsed.user_key == user_key
            {
                return Ok(Some(parsed.sequence));
            }
        }
        // Tables hold older data than memtables; the newest table holding the key decides.
        self.tables.newest_sequence(&view.version, user_key)
    }
}

/// A key for an error message: text as is, otherwise hex.
pub(crate) fn show(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) if !text.chars().any(char::is_control) => format!("{text:?}"),
        _ => key
            .iter()
            .fold(String::with_capacity(2 * key.len()), |mut out, b| {
                use std::fmt::Write as _;
                let _ = write!(out, "{b:02x}"); // writing to a String cannot fail
                out
            }),
    }
}
