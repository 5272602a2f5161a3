//! The memtable: recent writes, in memory, ordered by internal key, until they are flushed
//! to a table.
//!
//! Entries are never updated in place: every write adds a new internal key (user key,
//! sequence, kind), so a reader at sequence `s` sees exactly the writes up to `s`, even
//! while later writes go in.

mod arena;
pub mod skiplist;

use bytes::Bytes;

use crate::iter::InternalIterator;
use crate::key::{self, ParsedKey, SequenceNumber, ValueKind};
use skiplist::SkipList;

/// What the memtable knows about a key at a sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The newest visible write set this value.
    Value(Bytes),
    /// The newest visible write deleted the key.
    Deleted,
}

/// A memtable. Thread safety: `add` may be called from any thread (adds serialise inside),
/// reads are lock-free and run concurrently with adds.
pub struct MemTable {
    list: SkipList,
}

impl MemTable {
    /// An empty memtable.
    pub fn new() -> Self {
        MemTable {
            list: SkipList::new(),
        }
    }

    /// Adds the write `(key, sequence, kind) -> value`.
    pub fn add(&self, sequence: SequenceNumber, kind: ValueKind, user_key: &[u8], value: &[u8]) {
        self.list
            .insert(user_key, key::pack_trailer(sequence, kind as u8), value);
    }

    /// The newest write of `user_key` with sequence ≤ `sequence`, if any.
    pub fn get(&self, user_key: &[u8], sequence: SequenceNumber) -> Option<Lookup> {
        let mut cursor = self.list.cursor();
        cursor.seek_parts(user_key, key::seek_trailer(sequence));
        if !cursor.valid() {
            return None;
        }
        let parsed = ParsedKey::parse(cursor.key())?;
        if parsed.user_key != user_key {
            return None;
        }
        Some(match parsed.kind {
            ValueKind::Put => Lookup::Value(Bytes::copy_from_slice(cursor.value())),
            ValueKind::Delete => Lookup::Deleted,
        })
    }

    /// Entries (every version counts).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the memtable holds nothing.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Bytes of memory held: what the flush threshold is compared with.
    pub fn memory_usage(&self) -> usize {
        self.list.memory_usage()
    }

    /// A cursor over the encoded internal keys and values, in order.
    pub fn cursor(&self) -> skiplist::Cursor<'_> {
        self.list.cursor()
    }
}

/// An owning cursor over a memtable, implementing [`InternalIterator`]. Sees every entry
/// inserted before it reaches it; the caller filters by sequence number.
pub struct MemTableIter {
    mem: std::sync::Arc<MemTable>,
    at: Option<skiplist::Position>,
}

impl MemTableIter {
    /// A cursor over `mem`, not yet positioned.
    pub fn new(mem: std::sync::Arc<MemTable>) -> Self {
        MemTableIter { mem, at: None }
    }
}

impl InternalIterator for MemTableIter {
    fn valid(&self) -> bool {
        self.at.is_some()
    }
    fn seek_to_first(&mut self) {
        self.at = self.mem.list.first();
    }
    fn seek_to_last(&mut self) {
        self.at = self.mem.list.last();
    }
    fn seek(&mut self, target: &[u8]) {
        self.at = self.mem.list.seek(target);
    }
    fn next(&mut self) {
        self.at = self.at.and_then(|p| self.mem.list.next_of(p));
    }
    fn prev(&mut self) {
        self.at = self.at.and_then(|p| self.mem.list.prev_of(p));
    }
    fn key(&self) -> &[u8] {
        self.at.map_or(&[], |p| self.mem.list.key_at(p))
    }
    fn value(&self) -> &[u8] {
        self.at.map_or(&[], |p| self.mem.list.value_at(p))
    }
    fn status(&self) -> crate::error::Result<()> {
        Ok(())
    }
}

impl Default for MemTable {
    fn default() -> Self {
        MemTable::new()
    }
}

impl std::fmt::Debug for MemTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemTable")
            .field("entries", &self.len())
            .field("memory", &self.memory_usage())
            .field("reserved", &self.list.memory_reserved())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_sees_the_newest_write_at_its_sequence() {
        let m = MemTable::new();
        m.add(1, ValueKind::Put, b"k", b"v1");
        m.add(3, ValueKind::Delete, b"k", b"");
        m.add(5, ValueKind::Put, b"k", b"v5");
        m.add(2, ValueKind::Put, b"j", b"other");
        assert_eq!(m.get(b"k", 0), None);
        assert_eq!(
            m.get(b"k", 1),
            Some(Lookup::Value(Bytes::from_static(b"v1")))
        );
        assert_eq!(
            m.get(b"k", 2),
            Some(Lookup::Value(Bytes::from_static(b"v1")))
        );
        assert_eq!(m.get(b"k", 4), Some(Lookup::Deleted));
        assert_eq!(
            m.get(b"k", 99),
            Some(Lookup::Value(Bytes::from_static(b"v5")))
        );
        assert_eq!(m.get(b"kk", 99), None);
        assert_eq!(m.get(b"", 99), None);
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn concurrent_readers_see_each_keys_versions_in_order_and_never_a_torn_value() {
        let m = std::sync::Arc::new(MemTable::new());
        let published = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let keys = 16u64;
        let writer = {
            let (m, published) = (m.clone(), published.clone());
            std::thread::spawn(move || {
                for seq in 1..=20_000u64 {
                    let k = (seq % keys).to_be_bytes();
                    // The value repeats the sequence number: a torn value would not.
                    m.add(seq, ValueKind::Put, &k, &seq.to_le_bytes().repeat(8));
                    published.store(seq, std::sync::atomic::Ordering::Release);
                }
            })
        };
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (m, published) = (m.clone(), published.clone());
                std::thread::spawn(move || {
                    let mut last_seen = vec![0u64; keys as usize];
                    loop {
                        let at = published.load(std::sync::atomic::Ordering::Acquire);
                        for k in 0..keys {
                            let Some(Lookup::Value(v)) = m.get(&k.to_be_bytes(), at) else {
                                continue;
                            };
                            let seq = u64::from_le_bytes(v[..8].try_into().unwrap());
                            assert_eq!(&v[..], &seq.to_le_bytes().repeat(8)[..], "torn value");
                            assert!(seq <= at && seq % keys == k, "a write not visible at {at}");
                            assert!(seq >= last_seen[k as usize], "a key went back in time");
                            // The newest version at `at` is exactly the last write of k ≤ at.
                            assert!(at - seq < keys, "missed a newer version");
                            last_seen[k as usize] = seq;
                        }
                        if at == 20_000 {
                            break;
                        }
                    }
                })
            })
            .collect();
        writer.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
    }
}
