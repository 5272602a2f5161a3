//! [`MergingIter`]: one ordered cursor over many sorted sources, by a binary heap of the
//! sources' current keys (smallest on top going forward, largest going backward).
//!
//! Changing direction repositions every other source around the current key, as LevelDB's
//! merger does; going one way costs O(log n) per step.

use std::cmp::Ordering;

use super::InternalIterator;
use crate::error::Result;
use crate::key;

/// A source of a merge.
pub type Source = Box<dyn InternalIterator + Send>;

/// Merges sorted sources into one sorted cursor. Keys equal across sources (which internal
/// keys never are) come out in source order. A source that fails (becomes invalid with an
/// error) ends the merge: it becomes invalid and `status` reports the error.
pub struct MergingIter {
    sources: Vec<Source>,
    /// Indexes of the valid sources, heap-ordered: the next entry is at `heap[0]`.
    heap: Vec<usize>,
    forward: bool,
}

impl MergingIter {
    /// A merge of `sources`, not yet positioned.
    pub fn new(sources: Vec<Source>) -> Self {
        MergingIter {
            heap: Vec::with_capacity(sources.len()),
            sources,
            forward: true,
        }
    }

    /// Whether source `a` should come out before source `b` in the current direction.
    fn before(&self, a: usize, b: usize) -> bool {
        let order = key::compare(self.sources[a].key(), self.sources[b].key()).then(a.cmp(&b));
        if self.forward {
            order == Ordering::Less
        } else {
            order == Ordering::Greater
        }
    }

    fn rebuild(&mut self) {
        self.heap.clear();
        if self
            .sources
            .iter()
            .any(|s| !s.valid() && s.status().is_err())
        {
            return; // a failed source ends the merge (see `fix_top`)
        }
        self.heap
            .extend((0..self.sources.len()).filter(|&i| self.sources[i].valid()));
        for i in (0..self.heap.len() / 2).rev() {
            self.sift_down(i);
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (left, right) = (2 * i + 1, 2 * i + 2);
            let mut best = i;
            if left < self.heap.len() && self.before(self.heap[left], self.heap[best]) {
                best = left;
            }
            if right < self.heap.len() && self.before(self.heap[right], self.heap[best]) {
                best = right;
            }
            if best == i {
                return;
            }
            self.heap.swap(i, best);
            i = best;
        }
    }

    /// After the top source moved: restore the heap.
    fn fix_top(&mut self) {
        let Some(&top) = self.heap.first() else {
            return;
        };
        if self.sources[top].valid() {
            self.sift_down(0);
        } else if self.sources[top].status().is_err() {
            // A source that stopped on an error ends the merge, which then reports the
            // error from `status`. Going on with the other sources would skip the failed
            // one's entries: a reader would see keys missing (or older versions) before it
            // learns of the damage.
            self.heap.clear();
        } else {
            let last = self.heap.len() - 1;
            self.heap.swap(0, last);
            self.heap.pop();
            self.sift_down(0);
        }
    }

    fn top(&self) -> Option<&Source> {
        self.heap.first().map(|&i| &self.sources[i])
    }
}

impl InternalIterator for MergingIter {
    fn valid(&self) -> bool {
        !self.heap.is_empty()
    }

    fn seek_to_first(&mut self) {
        self.sources.iter_mut().for_each(|s| s.seek_to_first());
        self.forward = true;
        self.rebuild();
    }

    fn seek_to_last(&mut self) {
        self.sources.iter_mut().for_each(|s| s.seek_to_last());
        self.forward = false;
        self.rebuild();
    }

    fn seek(&mut self, target: &[u8]) {
        self.sources.iter_mut().for_each(|s| s.seek(target));
        self.forward = true;
        self.rebuild();
    }

    fn next(&mut self) {
        let Some(&top) = self.heap.first() else {
            return;
        };
        if !self.forward {
            // Every other source moves to its first entry after the current key.
            let current = self.sources[top].key().to_vec();
            for (i, source) in self.sources.iter_mut().enumerate() {
                if i != top {
                    source.seek(&current);
                    if source.valid() && key::compare(source.key(), &current) == Ordering::Equal {
                        source.next();
                    }
                }
            }
            self.forward = true;
            self.sources[top].next();
            self.rebuild();
            return;
        }
        self.sources[top].next();
        self.fix_top();
    }

    fn prev(&mut self) {
        let Some(&top) = self.heap.first() else {
            return;
        };
        if self.forward {
            // Every other source moves to its last entry before the current key.
            let current = self.sources[top].key().to_vec();
            for (i, source) in self.sources.iter_mut().enumerate() {
                if i != top {
                    source.seek(&current);
                    if source.valid() {
                        source.prev();
                    } else {
                        source.seek_to_last();
                    }
                }
            }
            self.forward = false;
            self.sources[top].prev();
            self.rebuild();
            return;
        }
        self.sources[top].prev();
        self.fix_top();
    }

    fn key(&self) -> &[u8] {
        self.top().map_or(&[], |s| s.key())
    }

    fn value(&self) -> &[u8] {
        self.top().map_or(&[], |s| s.value())
    }

    fn status(&self) -> Result<()> {
        self.sources.iter().try_for_each(|s| s.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ValueKind, append_internal_key};
    use crate::memtable::{MemTable, MemTableIter};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn source(entries: &[(Vec<u8>, u64)]) -> Source {
        let mem = MemTable::new();
        for (user, seq) in entries {
            mem.add(*seq, ValueKind::Put, user, &seq.to_le_bytes());
        }
        Box::new(MemTableIter::new(Arc::new(mem)))
    }

    fn ikey(user: &[u8], seq: u64) -> Vec<u8> {
        let mut k = Vec::new();
        append_internal_key(&mut k, user, seq, ValueKind::Put);
        k
    }

    /// A source holding `entries` that fails when it would move past `fail_after` of them.
    struct Failing {
        entries: Vec<Vec<u8>>,
        fail_after: usize,
        at: Option<usize>,
        failed: bool,
    }

    impl Failing {
        fn go(&mut self, at: Option<usize>) {
            match at {
                Some(i) if i >= self.fail_after => {
                    self.failed = true;
                    self.at = None;
                }
                _ => self.at = at.filter(|&i| i < self.entries.len()),
            }
        }
    }

    impl InternalIterator for Failing {
        fn valid(&self) -> bool {
            self.at.is_some()
        }
        fn seek_to_first(&mut self) {
            self.go(Some(0));
        }
        fn seek_to_last(&mut self) {
            self.go(self.entries.len().checked_sub(1));
        }
        fn seek(&mut self, target: &[u8]) {
            let i = self
                .entries
                .iter()
                .position(|e| key::compare(e, target) != Ordering::Less);
            self.go(Some(i.unwrap_or(self.entries.len())));
        }
        fn next(&mut self) {
            self.go(self.at.map(|i| i + 1));
        }
        fn prev(&mut self) {
            self.go(self.at.and_then(|i| i.checked_sub(1)));
        }
        fn key(&self) -> &[u8] {
            self.at.map_or(&[], |i| &self.entries[i])
        }
        fn value(&self) -> &[u8] {
            &[]
        }
        fn status(&self) -> Result<()> {
            if self.failed {
                Err(crate::error::Error::corruption("damaged block"))
            } else {
                Ok(())
            }
        }
    }

    /// Found by `tests/corruption.rs`: a scan over a memtable and a table with a damaged
    /// second block went on with the memtable's keys, skipping the table's, and reported
    /// the damage only at the end.
    #[test]
    fn a_failing_source_ends_the_merge_instead_of_being_skipped() {
        let keys: Vec<Vec<u8>> = (0..6u8).map(|i| ikey(&[i], 1)).collect();
        let table = Failing {
            entries: keys.iter().step_by(2).cloned().collect(), // 0, 2, 4
            fail_after: 1,                                      // 2 is in a damaged block
            at: None,
            failed: false,
        };
        let mem = [(vec![1], 10), (vec![3], 11), (vec![5], 12)];
        let mut merged = MergingIter::new(vec![Box::new(table), source(&mem)]);
        merged.seek_to_first();
        let mut seen = Vec::new();
        while merged.valid() {
            seen.push(key::user_key(merged.key()).to_vec());
            merged.next();
        }
        // The table fails moving from 0 to 2: what lies between is unknown, so even the
        // memtable's 1 is not returned.
        assert_eq!(seen, [vec![0]], "nothing past the damage");
        assert!(merged.status().is_err());
        // A source failing at its first seek ends the merge at once.
        let table = Failing {
            entries: keys.clone(),
            fail_after: 0,
            at: None,
            failed: false,
        };
        let mut merged = MergingIter::new(vec![source(&mem), Box::new(table)]);
        merged.seek_to_first();
        assert!(!merged.valid());
        assert!(merged.status().is_err());
    }

    proptest! {
        #[test]
        fn a_merge_is_the_sorted_union_in_both_directions_and_across_turns(
            parts in proptest::collection::vec(proptest::collection::vec((proptest::collection::vec(0u8..4, 1..3), 0u64..1000), 0..20), 0..5),
            turns in proptest::collection::vec(any::<bool>(), 0..40),
        ) {
            // Unique sequences across sources, as internal keys are.
            let mut seq = 0;
            let parts: Vec<Vec<(Vec<u8>, u64)>> = parts.into_iter().map(|p| p.into_iter().map(|(u, _)| { seq += 1; (u, seq) }).collect()).collect();
            let mut all: Vec<Vec<u8>> = parts.iter().flatten().map(|(u, s)| ikey(u, *s)).collect();
            all.sort_by(|a, b| key::compare(a, b));
            let mut merged = MergingIter::new(parts.iter().map(|p| source(p)).collect());
            merged.seek_to_first();
            let mut forward = Vec::new();
            while merged.valid() { forward.push(merged.key().to_vec()); merged.next(); }
            prop_assert_eq!(&forward, &all);
            merged.seek_to_last();
            let mut backward = Vec::new();
            while merged.valid() { backward.push(merged.key().to_vec()); merged.prev(); }
            backward.reverse();
            prop_assert_eq!(&backward, &all);
            // Random walk with direction changes, checked against the position in `all`.
            if !all.is_empty() {
                merged.seek_to_first();
                let mut at = 0usize;
                for go_next in turns {
                    if go_next && at + 1 < all.len() { merged.next(); at += 1; }
                    else if !go_next && at > 0 { merged.prev(); at -= 1; }
                    prop_assert!(merged.valid());
                    prop_assert_eq!(merged.key(), &all[at][..]);
                }
            }
        }
    }
}
