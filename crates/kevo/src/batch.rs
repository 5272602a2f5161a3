//! [`WriteBatch`]: writes applied atomically, and their byte encoding, which is also the
//! payload of a WAL record.
//!
//! ```text
//! batch   := sequence:u64 count:u32 entry*      (little-endian; header is 12 bytes)
//! entry   := kind:u8 key_len:varint key        (kind 0 = Delete)
//!          | kind:u8 key_len:varint key value_len:varint value   (kind 1 = Put)
//! ```
//!
//! `sequence` is the batch's base sequence number, assigned at commit: entry `i` gets
//! `sequence + i` everywhere (the log, the memtable, recovery).

use crate::coding::{Decoder, put_length_prefixed};
use crate::error::{Error, Result};
use crate::key::{SequenceNumber, ValueKind};

const HEADER_LEN: usize = 12;

/// A group of puts and deletes applied atomically: after a crash, or to a concurrent reader,
/// either all of them are visible or none.
///
/// Entries apply in the order they were added; a later entry for the same key wins.
///
/// ```
/// use kevo::WriteBatch;
///
/// let mut batch = WriteBatch::new();
/// batch.put(b"alice", b"10");
/// batch.put(b"bob", b"20");
/// batch.delete(b"carol");
/// assert_eq!(batch.len(), 3);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct WriteBatch {
    /// The encoding, header included, kept up to date by every change.
    rep: Vec<u8>,
    count: usize,
}

/// One entry of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchEntry<'a> {
    /// Put or Delete.
    pub kind: ValueKind,
    /// The user key.
    pub key: &'a [u8],
    /// The value (empty for a delete).
    pub value: &'a [u8],
}

impl Default for WriteBatch {
    fn default() -> Self {
        WriteBatch::new()
    }
}

impl std::fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("len", &self.count)
            .field("bytes", &self.rep.len())
            .finish()
    }
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch {
            rep: vec![0; HEADER_LEN],
            count: 0,
        }
    }

    /// Adds a put of `value` under `key`.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.rep.push(ValueKind::Put as u8);
        put_length_prefixed(&mut self.rep, key.as_ref());
        put_length_prefixed(&mut self.rep, value.as_ref());
        self.bump_count();
    }

    /// Adds a delete of `key`.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.rep.push(ValueKind::Delete as u8);
        put_length_prefixed(&mut self.rep, key.as_ref());
        self.bump_count();
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.rep.clear();
        self.rep.resize(HEADER_LEN, 0);
        self.count = 0;
    }

    /// Entries in the batch.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the batch has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the batch takes in the log (its encoding).
    pub fn approximate_size(&self) -> usize {
        self.rep.len()
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = BatchEntry<'_>> {
        let mut decoder = Decoder::new(&self.rep[HEADER_LEN..]);
        // Every batch was built by put/delete or checked by `decode`, so entries parse.
        std::iter::from_fn(move || {
            if decoder.is_empty() {
                None
            } else {
                decode_entry(&mut decoder)
            }
        })
    }

    fn bump_count(&mut self) {
        self.count += 1;
        let header_count = u32::try_from(self.count).unwrap_or(u32::MAX);
        self.rep[8..12].copy_from_slice(&header_count.to_le_bytes());
    }

    /// The base sequence number (0 until committed).
    pub(crate) fn sequence(&self) -> SequenceNumber {
        u64::from_le_bytes(self.rep[..8].try_into().unwrap_or_default())
    }

    /// Sets the base sequence number, when the batch is committed.
    pub(crate) fn set_sequence(&mut self, sequence: SequenceNumber) {
        self.rep[..8].copy_from_slice(&sequence.to_le_bytes());
    }

    /// The encoding: the WAL record payload.
    pub(crate) fn encoded(&self) -> &[u8] {
        &self.rep
    }

    /// Decodes and fully checks an encoding: header, every entry, the count, no trailing
    /// bytes. Damage is `Corruption` with the offset of the bad entry.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < HEADER_LEN {
            return Err(Error::corruption(format!(
                "write batch of {} bytes is shorter than its header",
                bytes.len()
            )));
        }
        let declared = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let mut decoder = Decoder::new(&bytes[HEADER_LEN..]);
        let mut count = 0;
        while !decoder.is_empty() {
            let offset = bytes.len() - decoder.remaining().len();
            if decode_entry(&mut decoder).is_none() {
                return Err(
                    Error::corruption("malformed write batch entry").with_offset(offset as u64)
                );
            }
            count += 1;
        }
        if count != declared {
            return Err(Error::corruption(format!(
                "write batch declares {declared} entries but holds {count}"
            )));
        }
        Ok(WriteBatch {
            rep: bytes.to_vec(),
            count,
        })
    }
}

fn decode_entry<'a>(decoder: &mut Decoder<'a>) -> Option<BatchEntry<'a>> {
    let kind = ValueKind::from_u8(decoder.u8()?)?;
    let key = decoder.length_prefixed()?;
    let value = match kind {
        ValueKind::Put => decoder.length_prefixed()?,
        ValueKind::Delete => &[],
    };
    Some(BatchEntry { kind, key, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use proptest::prelude::*;

    #[test]
    fn entries_come_back_in_order_with_their_kinds() {
        let mut batch = WriteBatch::new();
        batch.put(b"a", b"1");
        batch.delete(b"b");
        batch.put(b"a", b"");
        let entries: Vec<_> = batch
            .iter()
            .map(|e| (e.kind, e.key.to_vec(), e.value.to_vec()))
            .collect();
        assert_eq!(
            entries,
            vec![
                (ValueKind::Put, b"a".to_vec(), b"1".to_vec()),
                (ValueKind::Delete, b"b".to_vec(), vec![]),
                (ValueKind::Put, b"a".to_vec(), vec![]),
            ]
        );
        assert_eq!(batch.len(), 3);
        batch.clear();
        assert!(batch.is_empty());
        assert_eq!(batch.iter().count(), 0);
        assert_eq!(batch.approximate_size(), HEADER_LEN);
    }

    #[test]
    fn the_sequence_is_part_of_the_encoding() {
        let mut batch = WriteBatch::new();
        batch.put(b"k", b"v");
        batch.set_sequence(42);
        let decoded = WriteBatch::decode(batch.encoded()).unwrap();
        assert_eq!(decoded.sequence(), 42);
        assert_eq!(decoded, batch);
    }

    #[test]
    fn damaged_encodings_are_corruption_never_a_panic() {
        let mut batch = WriteBatch::new();
        batch.put(b"key", b"value");
        batch.delete(b"gone");
        let bytes = batch.encoded().to_vec();
        for len in 0..bytes.len() {
            let err = WriteBatch::decode(&bytes[..len]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corruption, "truncated to {len}");
        }
        let mut wrong_count = bytes.clone();
        wrong_count[8] = 3;
        assert_eq!(
            WriteBatch::decode(&wrong_count).unwrap_err().kind(),
            ErrorKind::Corruption
        );
        let mut bad_kind = bytes.clone();
        bad_kind[HEADER_LEN] = 9;
        assert_eq!(
            WriteBatch::decode(&bad_kind).unwrap_err().kind(),
            ErrorKind::Corruption
        );
        let mut trailing = bytes;
        trailing.push(0);
        assert_eq!(
            WriteBatch::decode(&trailing).unwrap_err().kind(),
            ErrorKind::Corruption
        );
    }

    proptest! {
        #[test]
        fn any_batch_round_trips(ops in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..20), proptest::collection::vec(any::<u8>(), 0..40)), 0..20), seq in 0u64..1 << 56) {
            let mut batch = WriteBatch::new();
            for (is_put, k, v) in &ops {
                if *is_put { batch.put(k, v) } else { batch.delete(k) }
            }
            batch.set_sequence(seq);
            let decoded = WriteBatch::decode(batch.encoded()).unwrap();
            prop_assert_eq!(decoded.len(), ops.len());
            prop_assert_eq!(decoded.sequence(), seq);
            for (entry, (is_put, k, v)) in decoded.iter().zip(&ops) {
                prop_assert_eq!(entry.kind == ValueKind::Put, *is_put);
                prop_assert_eq!(entry.key, &k[..]);
                prop_assert_eq!(entry.value, if *is_put { &v[..] } else { &[][..] });
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = WriteBatch::decode(&bytes);
        }
    }
}
