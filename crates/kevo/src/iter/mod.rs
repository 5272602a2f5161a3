//! The internal iterator: one seekable, bidirectional cursor interface over internal keys,
//! implemented by every sorted source (blocks, tables, memtables, merges), so merging and
//! the public iterators are written once.

use crate::error::Result;

/// A cursor over `(internal key, value)` entries in internal-key order.
///
/// When not [`valid`](InternalIterator::valid), `key` and `value` return empty slices.
/// An iterator that meets damage becomes invalid and reports it from
/// [`status`](InternalIterator::status); callers check `status` whenever `valid` turns false.
pub trait InternalIterator {
    /// Whether the cursor is on an entry.
    fn valid(&self) -> bool;
    /// Moves to the first entry.
    fn seek_to_first(&mut self);
    /// Moves to the last entry.
    fn seek_to_last(&mut self);
    /// Moves to the first entry with key ≥ `target` (an encoded internal key).
    fn seek(&mut self, target: &[u8]);
    /// Moves to the next entry. Requires `valid()`.
    fn next(&mut self);
    /// Moves to the previous entry. Requires `valid()`.
    fn prev(&mut self);
    /// The current internal key.
    fn key(&self) -> &[u8];
    /// The current value.
    fn value(&self) -> &[u8];
    /// The first error met, if any.
    fn status(&self) -> Result<()>;
}

pub mod level;
pub mod merge;

/// A cursor over nothing: what a source that cannot hold anything in range reads as.
#[derive(Debug, Default, Clone, Copy)]
pub struct Empty;

impl InternalIterator for Empty {
    fn valid(&self) -> bool {
        false
    }
    fn seek_to_first(&mut self) {}
    fn seek_to_last(&mut self) {}
    fn seek(&mut self, _target: &[u8]) {}
    fn next(&mut self) {}
    fn prev(&mut self) {}
    fn key(&self) -> &[u8] {
        &[]
    }
    fn value(&self) -> &[u8] {
        &[]
    }
    fn status(&self) -> Result<()> {
        Ok(())
    }
}
