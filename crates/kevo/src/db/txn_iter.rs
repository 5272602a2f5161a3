//! Range scans inside a transaction: the snapshot's entries merged with the transaction's
//! own buffered writes (which win), in both directions.
//!
//! A serializable transaction records the key ranges its scans covered; its commit fails if
//! any key in them changed after the snapshot, so a key inserted into a scanned range (a
//! phantom) is a conflict too.

use std::ops::Bound;

use super::{DbIter, Value};
use crate::error::Result;

/// A range of user keys.
pub(crate) type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// An iterator over a transaction's view of a key range (see [`Transaction::range`]): the
/// snapshot's entries with the transaction's own puts and deletes applied. Borrows the
/// transaction; a serializable transaction records the part of the range it went over
/// when the iterator drops.
///
/// [`Transaction::range`]: super::Transaction::range
pub struct TxnIter<'t> {
    snapshot: DbIter,
    /// The transaction's writes within the range, in key order: `None` is a delete.
    own: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// `own[own_front..own_back]` are not yet returned.
    own_front: usize,
    own_back: usize,
    /// Entries taken from `snapshot` but not yet returned, one per end.
    peek_front: Option<(Value, Value)>,
    peek_back: Option<(Value, Value)>,
    range: KeyRange,
    /// The last key each end returned, and whether each end ran out.
    last_front: Option<Vec<u8>>,
    last_back: Option<Vec<u8>>,
    front_done: bool,
    back_done: bool,
    /// Where the covered ranges go on drop (serializable transactions only).
    scanned: Option<&'t mut Vec<KeyRange>>,
}

impl<'t> TxnIter<'t> {
    pub(super) fn new(
        snapshot: DbIter,
        own: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        range: KeyRange,
        scanned: Option<&'t mut Vec<KeyRange>>,
    ) -> Self {
        TxnIter {
            snapshot,
            own_back: own.len(),
            own,
            own_front: 0,
            peek_front: None,
            peek_back: None,
            range,
            last_front: None,
            last_back: None,
            front_done: false,
            back_done: false,
            scanned,
        }
    }

    /// The snapshot's next entry from the front, taking the back end's held entry once the
    /// snapshot's ends have met.
    fn fill_front(&mut self) -> Result<()> {
        if self.peek_front.is_none() {
            self.peek_front = match self.snapshot.next() {
                Some(entry) => Some(entry?),
                None => self.peek_back.take(),
            };
        }
        Ok(())
    }

    fn fill_back(&mut self) -> Result<()> {
        if self.peek_back.is_none() {
            self.peek_back = match self.snapshot.next_back() {
                Some(entry) => Some(entry?),
                None => self.peek_front.take(),
            };
        }
        Ok(())
    }

    fn step_front(&mut self) -> Result<Option<(Value, Value)>> {
        loop {
            self.fill_front()?;
            let own = self.own[self.own_front..self.own_back].first();
            let take_own = match (&self.peek_front, own) {
                (None, None) => return Ok(None),
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((k, _)), Some((o, _))) => o.as_slice() <= &k[..],
            };
            if !take_own {
                return Ok(self.peek_front.take());
            }
            let (key, value) = self.own[self.own_front].clone();
            self.own_front += 1;
            // The transaction's write replaces the snapshot's version of the key.
            if self
                .peek_front
                .as_ref()
                .is_some_and(|(k, _)| k[..] == key[..])
            {
                self.peek_front = None;
            }
            if let Some(value) = value {
                return Ok(Some((Value::from(key), Value::from(value))));
            }
        }
    }

    fn step_back(&mut self) -> Result<Option<(Value, Value)>> {
        loop {
            self.fill_back()?;
            let own = self.own[self.own_front..self.own_back].last();
            let take_own = match (&self.peek_back, own) {
                (None, None) => return Ok(None),
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((k, _)), Some((o, _))) => o.as_slice() >= &k[..],
            };
            if !take_own {
                return Ok(self.peek_back.take());
            }
            self.own_back -= 1;
            let (key, value) = self.own[self.own_back].clone();
            if self
                .peek_back
                .as_ref()
                .is_some_and(|(k, _)| k[..] == key[..])
            {
                self.peek_back = None;
            }
            if let Some(value) = value {
                return Ok(Some((Value::from(key), Value::from(value))));
            }
        }
    }

    /// The parts of the range this iterator went over.
    fn covered(&self) -> Vec<KeyRange> {
        if self.front_done || self.back_done {
            return vec![self.range.clone()];
        }
        let mut covered = Vec::new();
        if let Some(last) = &self.last_front {
            covered.push((self.range.0.clone(), Bound::Included(last.clone())));
        }
        if let Some(last) = &self.last_back {
            covered.push((Bound::Included(last.clone()), self.range.1.clone()));
        }
        covered
    }
}

impl Iterator for TxnIter<'_> {
    type Item = Result<(Value, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.front_done {
            return None;
        }
        let item = self.step_front().transpose();
        match &item {
            Some(Ok((k, _))) => self.last_front = Some(k.to_vec()),
            _ => self.front_done = true,
        }
        item
    }
}

impl DoubleEndedIterator for TxnIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.back_done {
            return None;
        }
        let item = self.step_back().transpose();
        match &item {
            Some(Ok((k, _))) => self.last_back = Some(k.to_vec()),
            _ => self.back_done = true,
        }
        item
    }
}

impl Drop for TxnIter<'_> {
    fn drop(&mut self) {
        let covered = self.covered();
        if let Some(scanned) = self.scanned.as_mut() {
            scanned.extend(covered);
        }
    }
}

impl std::fmt::Debug for TxnIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnIter")
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// Whether `key` is within `range`.
pub(crate) fn contains(range: &KeyRange, key: &[u8]) -> bool {
    let above = match &range.0 {
        Bound::Included(l) => key >= l.as_slice(),
        Bound::Excluded(l) => key > l.as_slice(),
        Bound::Unbounded => true,
    };
    let below = match &range.1 {
        Bound::Included(u) => key <= u.as_slice(),
        Bound::Excluded(u) => key < u.as_slice(),
        Bound::Unbounded => true,
    };
    above && below
}
