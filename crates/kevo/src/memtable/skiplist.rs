//! A skip list of internal keys, written for the memtable: nodes live in an [`Arena`], each
//! aligned to a 64-byte cache line; readers are lock-free; one writer at a time inserts
//! (writers are serialised by a mutex readers never take).
//!
//! Invariants:
//! - A node is fully written (key, value, its own links) before it is published by a
//!   `Release` store into its predecessor's link; readers load links with `Acquire`, so a
//!   reader that reaches a node sees it whole.
//! - Nodes are never removed or moved while the list lives, so a pointer a reader loaded
//!   stays valid until the list drops.
//! - Keys are unique (an internal key carries a unique sequence number).
//!
//! Thread safety: `insert` may be called from any thread (writers serialise on an internal
//! mutex); every read method is lock-free and may run concurrently with an insert.

use std::cmp::Ordering as CmpOrdering;
use std::ptr::{self, NonNull};
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use super::arena::Arena;
use crate::key;

/// Tallest tower; with branching 4, enough for ~4^12 = 16M entries at full speed.
pub const MAX_HEIGHT: usize = 12;
const BRANCHING: u32 = 4;

/// The start of every node in the arena: lengths, then `height` links, then key and value.
///
/// Nodes are only ever reached through [`NodePtr`], whose pointer carries the provenance of
/// the whole arena block, never through a `&Node` (which would cover the header only).
#[repr(C)]
struct Node {
    key_len: u32,
    value_len: u32,
    height: u32,
    _reserved: u32,
}

const HEADER: usize = std::mem::size_of::<Node>();
const LINK: usize = std::mem::size_of::<AtomicPtr<Node>>();

fn node_size(height: usize, key_len: usize, value_len: usize) -> usize {
    HEADER + height * LINK + key_len + value_len
}

/// A pointer to a published (fully written) node of a live list. Copy, compared by address.
///
/// The lifetimes its methods return are chosen by the caller; every caller ties them to a
/// borrow of the list, which owns the arena the node lives in.
#[derive(Clone, Copy, PartialEq, Eq)]
struct NodePtr(NonNull<Node>);

impl NodePtr {
    fn height(self) -> usize {
        // SAFETY: the header was written before the node was published (or is the head's).
        unsafe { (*self.0.as_ptr()).height as usize }
    }

    /// The link at `level`; `level` must be below the node's height.
    #[allow(clippy::cast_ptr_alignment)] // 8-byte alignment is argued below
    fn link<'a>(self, level: usize) -> &'a AtomicPtr<Node> {
        debug_assert!(level < self.height());
        // SAFETY: the node's allocation holds `height` links right after the header,
        // 8-byte aligned (the node is 64-byte aligned and HEADER is 16); the pointer has the
        // provenance of the arena block, which outlives every borrow of the list.
        unsafe {
            &*self
                .0
                .as_ptr()
                .cast::<u8>()
                .add(HEADER + level * LINK)
                .cast::<AtomicPtr<Node>>()
        }
    }

    fn next(self, level: usize) -> Option<NodePtr> {
        NonNull::new(self.link(level).load(Ordering::Acquire)).map(NodePtr)
    }

    fn data(self) -> *const u8 {
        // SAFETY: key and value follow the links inside the node's allocation.
        unsafe {
            self.0
                .as_ptr()
                .cast::<u8>()
                .add(HEADER + self.height() * LINK)
        }
    }

    fn key<'a>(self) -> &'a [u8] {
        // SAFETY: `key_len` bytes of key were written at `data()` before the node was
        // published and are never written again.
        unsafe { std::slice::from_raw_parts(self.data(), (*self.0.as_ptr()).key_len as usize) }
    }

    /// Compares this node's key with the internal key `(user, trailer)`.
    fn compare(self, user: &[u8], trailer: u64) -> CmpOrdering {
        let (node_user, node_trailer) = key::split(self.key());
        key::compare_parts(node_user, node_trailer, user, trailer)
    }

    fn value<'a>(self) -> &'a [u8] {
        // SAFETY: as for `key`; the value follows the key.
        unsafe {
            let header = &*self.0.as_ptr();
            std::slice::from_raw_parts(
                self.data().add(header.key_len as usize),
                header.value_len as usize,
            )
        }
    }
}

/// Allocation state and the height generator, touched by the writer only.
struct WriterState {
    arena: Arena,
    rng: u64,
}

/// A concurrent skip list ordered by [`key::compare`]. See the module docs.
pub struct SkipList {
    head: NodePtr,
    /// Height of the tallest tower so far (at least 1).
    height: AtomicUsize,
    len: AtomicUsize,
    /// Bytes of the arena holding nodes (the flush threshold counts these).
    memory: AtomicUsize,
    writer: Mutex<WriterState>,
}

// SAFETY: the list owns its nodes (in the arena inside `writer`); nodes are immutable once
// published except for their links, which are atomics. Sharing `&SkipList` across threads
// gives readers only atomic loads and immutable bytes, and writers the mutex.
unsafe impl Send for SkipList {}
// SAFETY: see `Send`.
unsafe impl Sync for SkipList {}

impl SkipList {
    /// An empty list.
    pub fn new() -> Self {
        let mut arena = Arena::new();
        let head = Self::alloc_node(&mut arena, MAX_HEIGHT, &[], None, &[]);
        SkipList {
            head,
            height: AtomicUsize::new(1),
            len: AtomicUsize::new(0),
            memory: AtomicUsize::new(arena.used()),
            writer: Mutex::new(WriterState {
                arena,
                rng: 0x2545_F491_4F6C_DD1D,
            }),
        }
    }

    /// Entries in the list.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the arena took from the allocator (what the list costs in memory).
    pub fn memory_reserved(&self) -> usize {
        lock_writer(&self.writer).arena.reserved()
    }

    /// Bytes of arena memory the nodes take (keys, values, links, alignment padding).
    pub fn memory_usage(&self) -> usize {
        self.memory.load(Ordering::Relaxed)
    }

    /// Allocates a node holding `user_key ++ trailer` (no trailer for the head) and `value`.
    fn alloc_node(
        arena: &mut Arena,
        height: usize,
        user_key: &[u8],
        trailer: Option<u64>,
        value: &[u8],
    ) -> NodePtr {
        let trailer = trailer.map(u64::to_le_bytes);
        let trailer: &[u8] = trailer.as_ref().map_or(&[], |t| &t[..]);
        let key_len = user_key.len() + trailer.len();
        let ptr = arena
            .allocate(node_size(height, key_len, value.len()))
            .cast::<Node>();
        // SAFETY: the allocation is zeroed (null links), aligned to 64 ≥ align_of::<Node>(),
        // and large enough for the header, `height` links, key and value. Nobody else can
        // see it yet.
        unsafe {
            let node = ptr.as_ptr();
            (*node).key_len = key_len as u32;
            (*node).value_len = value.len() as u32;
            (*node).height = height as u32;
            let data = node.cast::<u8>().add(HEADER + height * LINK);
            ptr::copy_nonoverlapping(user_key.as_ptr(), data, user_key.len());
            ptr::copy_nonoverlapping(trailer.as_ptr(), data.add(user_key.len()), trailer.len());
            ptr::copy_nonoverlapping(value.as_ptr(), data.add(key_len), value.len());
        }
        NodePtr(ptr)
    }

    /// Inserts the internal key `user_key ++ trailer` with `value`. Keys must be unique.
    pub fn insert(&self, user_key: &[u8], trailer: u64, value: &[u8]) {
        let mut writer = lock_writer(&self.writer);
        let height = random_height(&mut writer.rng);
        let mut prev = [self.head; MAX_HEIGHT];
        self.find_predecessors(user_key, trailer, &mut prev);
        let node = Self::alloc_node(&mut writer.arena, height, user_key, Some(trailer), value);
        self.memory.store(writer.arena.used(), Ordering::Relaxed);
        if height > self.height.load(Ordering::Relaxed) {
            self.height.store(height, Ordering::Release);
        }
        for (level, pred) in prev.iter().enumerate().take(height) {
            // Every predecessor has a tower taller than `level` (the head has MAX_HEIGHT,
            // others were found at this level).
            let pred = pred.link(level);
            node.link(level)
                .store(pred.load(Ordering::Relaxed), Ordering::Relaxed);
            // Publish: everything written to the node happens-before this store.
            pred.store(node.0.as_ptr(), Ordering::Release);
        }
        self.len.fetch_add(1, Ordering::Relaxed);
    }

    /// Fills `prev[level]` with the last node before the key at each level up to the
    /// current height (the levels above keep the head).
    fn find_predecessors(&self, user: &[u8], trailer: u64, prev: &mut [NodePtr; MAX_HEIGHT]) {
        let mut node = self.head;
        for level in (0..self.height.load(Ordering::Relaxed)).rev() {
            while let Some(next) = node.next(level) {
                if next.compare(user, trailer) == CmpOrdering::Less {
                    node = next;
                } else {
                    break;
                }
            }
            prev[level] = node;
        }
    }

    /// The first node with a key ≥ `(user, trailer)`.
    fn seek_node(&self, user: &[u8], trailer: u64) -> Option<NodePtr> {
        let mut node = self.head;
        let mut level = self.height.load(Ordering::Acquire) - 1;
        loop {
            match node.next(level) {
                Some(next) if next.compare(user, trailer) == CmpOrdering::Less => node = next,
                next if level == 0 => return next,
                _ => level -= 1,
            }
        }
    }

    /// The last node with a key < `key` (or the last node when `key` is `None`); `None`
    /// if there is none.
    fn last_before(&self, key: Option<&[u8]>) -> Option<NodePtr> {
        let mut node = self.head;
        let mut level = self.height.load(Ordering::Acquire) - 1;
        loop {
            match node.next(level) {
                Some(next)
                    if key.is_none_or(|k| key::compare(next.key(), k) == CmpOrdering::Less) =>
                {
                    node = next;
                }
                _ if level == 0 => return (node != self.head).then_some(node),
                _ => level -= 1,
            }
        }
    }

    /// A cursor over the list, initially not positioned.
    pub fn cursor(&self) -> Cursor<'_> {
        Cursor {
            list: self,
            node: None,
        }
    }
}

impl Default for SkipList {
    fn default() -> Self {
        SkipList::new()
    }
}

fn lock_writer(writer: &Mutex<WriterState>) -> std::sync::MutexGuard<'_, WriterState> {
    // A poisoned lock means a writer panicked between allocations, which leaves no node
    // half-published; the state is still consistent.
    writer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A height with P(h) = (1/4)^(h-1) · 3/4, from a xorshift generator.
fn random_height(state: &mut u64) -> usize {
    let mut height = 1;
    loop {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        if height >= MAX_HEIGHT || !(*state as u32).is_multiple_of(BRANCHING) {
            return height;
        }
        height += 1;
    }
}

/// A position in a [`SkipList`] that borrows nothing: valid as long as the list it came
/// from is alive (the owner keeps the list in an `Arc` next to the position).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Position(NodePtr);

// SAFETY: a position is an address of an immutable, published node; moving it between
// threads is as safe as sharing `&SkipList` (the owner keeps the list alive).
unsafe impl Send for Position {}
// SAFETY: see `Send`.
unsafe impl Sync for Position {}

impl SkipList {
    /// The first entry.
    pub fn first(&self) -> Option<Position> {
        self.head.next(0).map(Position)
    }

    /// The last entry.
    pub fn last(&self) -> Option<Position> {
        self.last_before(None).map(Position)
    }

    /// The first entry with key ≥ `key` (an encoded internal key).
    pub fn seek(&self, key: &[u8]) -> Option<Position> {
        let (user, trailer) = key::split(key);
        self.seek_node(user, trailer).map(Position)
    }

    /// The entry after `at` (a position of this list).
    pub fn next_of(&self, at: Position) -> Option<Position> {
        at.0.next(0).map(Position)
    }

    /// The entry before `at` (a position of this list).
    pub fn prev_of(&self, at: Position) -> Option<Position> {
        self.last_before(Some(at.0.key())).map(Position)
    }

    /// The key at `at` (a position of this list).
    pub fn key_at(&self, at: Position) -> &[u8] {
        at.0.key()
    }

    /// The value at `at` (a position of this list).
    pub fn value_at(&self, at: Position) -> &[u8] {
        at.0.value()
    }
}

/// A position in a [`SkipList`]: seek, step forward and back. Entries inserted while the
/// cursor lives may or may not be seen (the caller filters by sequence number).
pub struct Cursor<'a> {
    list: &'a SkipList,
    node: Option<NodePtr>,
}

impl<'a> Cursor<'a> {
    /// Whether the cursor is on an entry.
    pub fn valid(&self) -> bool {
        self.node.is_some()
    }

    /// The current entry's key; empty when not valid.
    pub fn key(&self) -> &'a [u8] {
        self.node.map_or(&[], NodePtr::key)
    }

    /// The current entry's value; empty when not valid.
    pub fn value(&self) -> &'a [u8] {
        self.node.map_or(&[], NodePtr::value)
    }

    /// Moves to the first entry with key ≥ `key` (an encoded internal key).
    pub fn seek(&mut self, key: &[u8]) {
        let (user, trailer) = key::split(key);
        self.seek_parts(user, trailer);
    }

    /// Moves to the first entry with key ≥ `user ++ trailer`, without building the key.
    pub fn seek_parts(&mut self, user: &[u8], trailer: u64) {
        self.node = self.list.seek_node(user, trailer);
    }

    /// Moves to the first entry.
    pub fn seek_to_first(&mut self) {
        self.node = self.list.head.next(0);
    }

    /// Moves to the last entry.
    pub fn seek_to_last(&mut self) {
        self.node = self.list.last_before(None);
    }

    /// Moves to the next entry.
    pub fn next(&mut self) {
        self.node = self.node.and_then(|n| n.next(0));
    }

    /// Moves to the previous entry (a search from the top: O(log n)).
    pub fn prev(&mut self) {
        self.node = self.node.and_then(|n| self.list.last_before(Some(n.key())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ValueKind, append_internal_key};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ikey(user: &[u8], seq: u64) -> Vec<u8> {
        let mut k = Vec::new();
        append_internal_key(&mut k, user, seq, ValueKind::Put);
        k
    }

    fn collect_forward(list: &SkipList) -> Vec<Vec<u8>> {
        let mut c = list.cursor();
        c.seek_to_first();
        let mut out = Vec::new();
        while c.valid() {
            out.push(c.key().to_vec());
            c.next();
        }
        out
    }

    #[test]
    fn an_empty_list_has_no_entries_in_any_direction() {
        let list = SkipList::new();
        let mut c = list.cursor();
        c.seek_to_first();
        assert!(!c.valid());
        c.seek_to_last();
        assert!(!c.valid());
        c.seek(&ikey(b"a", 1));
        assert!(!c.valid());
        assert!(list.is_empty());
    }

    #[test]
    fn nodes_are_cache_line_aligned_and_values_intact() {
        let list = SkipList::new();
        for i in 0..1000u32 {
            list.insert(
                &i.to_be_bytes(),
                key::pack_trailer(1, 1),
                &vec![i as u8; (i % 300) as usize],
            );
        }
        let mut c = list.cursor();
        c.seek_to_first();
        let mut i = 0u32;
        while let Some(node) = c.node {
            assert_eq!(node.0.as_ptr() as usize % 64, 0);
            assert_eq!(c.value(), &vec![i as u8; (i % 300) as usize][..]);
            c.next();
            i += 1;
        }
        assert_eq!(i, 1000);
        assert!(list.memory_usage() >= 1000 * 64);
    }

    proptest! {
        #[test]
        fn behaves_like_a_sorted_set(keys in proptest::collection::btree_set((proptest::collection::vec(0u8..4, 0..4), 1u64..50), 0..200),
                                     probes in proptest::collection::vec((proptest::collection::vec(0u8..4, 0..4), 0u64..60), 0..30)) {
            let list = SkipList::new();
            let mut model = BTreeSet::new();
            for (user, seq) in &keys {
                let k = ikey(user, *seq);
                list.insert(user, key::pack_trailer(*seq, ValueKind::Put as u8), user);
                model.insert(k);
            }
            let mut sorted: Vec<Vec<u8>> = model.into_iter().collect();
            sorted.sort_by(|a, b| key::compare(a, b));
            prop_assert_eq!(collect_forward(&list), sorted.clone());
            prop_assert_eq!(list.len(), sorted.len());
            // Backward from the last entry.
            let mut c = list.cursor();
            c.seek_to_last();
            let mut backward = Vec::new();
            while c.valid() { backward.push(c.key().to_vec()); c.prev(); }
            backward.reverse();
            prop_assert_eq!(backward, sorted.clone());
            // Seeks land on the first key ≥ the probe.
            for (user, seq) in probes {
                let probe = key::seek_key(&user, seq);
                let expected = sorted.iter().find(|k| key::compare(k, &probe) != CmpOrdering::Less);
                let mut c = list.cursor();
                c.seek(&probe);
                prop_assert_eq!(c.valid().then(|| c.key().to_vec()), expected.cloned());
            }
        }
    }

    #[test]
    fn readers_run_concurrently_with_a_writer_and_see_sorted_whole_entries() {
        let list = std::sync::Arc::new(SkipList::new());
        let writer = {
            let list = list.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    let user = (i.wrapping_mul(2_654_435_761)).to_be_bytes();
                    list.insert(
                        &user,
                        key::pack_trailer(u64::from(i) + 1, 1),
                        &user.repeat(4),
                    );
                }
            })
        };
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let list = list.clone();
                std::thread::spawn(move || {
                    let mut rounds = 0;
                    while rounds < 50 {
                        let mut c = list.cursor();
                        c.seek_to_first();
                        let mut prev: Option<Vec<u8>> = None;
                        while c.valid() {
                            let user = key::user_key(c.key());
                            assert_eq!(c.value(), &user.repeat(4)[..], "torn or mismatched value");
                            if let Some(p) = &prev {
                                assert_eq!(
                                    key::compare(p, c.key()),
                                    CmpOrdering::Less,
                                    "out of order"
                                );
                            }
                            prev = Some(c.key().to_vec());
                            c.next();
                        }
                        rounds += 1;
                    }
                })
            })
            .collect();
        writer.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(collect_forward(&list).len(), 20_000);
    }
}
