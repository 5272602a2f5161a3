//! Internal keys: a user key tagged with the sequence number that wrote it and the kind of
//! write.
//!
//! Encoding: `user_key ++ trailer`, where the trailer is 8 little-endian bytes of
//! `sequence << 8 | kind`. Order: user key ascending (bytewise), then trailer *descending*,
//! so the newest version of a key comes first and a seek to `(key, s)` lands on the newest
//! version with sequence ≤ `s`.

use std::cmp::Ordering;

/// The position of a write in the history of the database. 56 bits are usable; 0 means
/// "before any write".
pub type SequenceNumber = u64;

/// The largest sequence number a write can get.
pub const MAX_SEQUENCE: SequenceNumber = (1 << 56) - 1;

/// Bytes of the trailer after the user key.
pub const TRAILER_LEN: usize = 8;

/// What a write did to its key. The numeric values are part of the on-disk format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ValueKind {
    /// The key was deleted (a tombstone).
    Delete = 0,
    /// The key was set to a value.
    Put = 1,
    // 2 (RangeDelete) and 3 (Merge) are reserved.
}

impl ValueKind {
    /// The kind with this on-disk value, if any.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(ValueKind::Delete),
            1 => Some(ValueKind::Put),
            _ => None,
        }
    }
}

/// The kind byte used in search keys: greater than every real kind, so that with trailers
/// ordered descending a search key sorts before every entry of the same sequence.
const KIND_FOR_SEEK: u8 = 0xff;

/// Packs a sequence number and kind byte into a trailer value.
pub fn pack_trailer(sequence: SequenceNumber, kind: u8) -> u64 {
    debug_assert!(sequence <= MAX_SEQUENCE);
    (sequence << 8) | u64::from(kind)
}

/// Appends the internal key `(user_key, sequence, kind)` to `out`.
pub fn append_internal_key(
    out: &mut Vec<u8>,
    user_key: &[u8],
    sequence: SequenceNumber,
    kind: ValueKind,
) {
    out.extend_from_slice(user_key);
    out.extend_from_slice(&pack_trailer(sequence, kind as u8).to_le_bytes());
}

/// The internal key a lookup of `user_key` as of `sequence` seeks to: it sorts before every
/// version of `user_key` with sequence ≤ `sequence`, and after every newer one.
pub fn seek_key(user_key: &[u8], sequence: SequenceNumber) -> Vec<u8> {
    debug_assert_eq!(
        pack_trailer(sequence, KIND_FOR_SEEK),
        seek_trailer(sequence)
    );
    let mut key = Vec::with_capacity(user_key.len() + TRAILER_LEN);
    key.extend_from_slice(user_key);
    key.extend_from_slice(&pack_trailer(sequence, KIND_FOR_SEEK).to_le_bytes());
    key
}

/// The trailer of [`seek_key`]`(_, sequence)`.
pub fn seek_trailer(sequence: SequenceNumber) -> u64 {
    pack_trailer(sequence, KIND_FOR_SEEK)
}

/// An internal key borrowed from an encoding, split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    /// The key as the user wrote it.
    pub user_key: &'a [u8],
    /// The sequence number of the write.
    pub sequence: SequenceNumber,
    /// What the write did.
    pub kind: ValueKind,
}

impl<'a> ParsedKey<'a> {
    /// Splits an encoded internal key; `None` if it is shorter than a trailer or its kind is
    /// unknown.
    pub fn parse(encoded: &'a [u8]) -> Option<Self> {
        let split = encoded.len().checked_sub(TRAILER_LEN)?;
        let (user_key, trailer) = encoded.split_at(split);
        let trailer = u64::from_le_bytes(trailer.try_into().ok()?);
        Some(ParsedKey {
            user_key,
            sequence: trailer >> 8,
            kind: ValueKind::from_u8(trailer as u8)?,
        })
    }
}

/// The user key of an encoded internal key. Precondition: `encoded.len() >= TRAILER_LEN`
/// (every internal key kevo builds or accepts from disk has been checked for it).
pub fn user_key(encoded: &[u8]) -> &[u8] {
    split(encoded).0
}

/// Splits an encoded internal key into user key and trailer (`sequence << 8 | kind`).
/// A key shorter than a trailer (never built by kevo) splits as all user key, trailer 0.
#[inline]
pub fn split(encoded: &[u8]) -> (&[u8], u64) {
    match encoded.split_last_chunk::<TRAILER_LEN>() {
        Some((user, trailer)) => (user, u64::from_le_bytes(*trailer)),
        None => (encoded, 0),
    }
}

/// Compares internal keys given as parts: user key ascending, then trailer descending.
#[inline]
pub fn compare_parts(a_user: &[u8], a_trailer: u64, b_user: &[u8], b_trailer: u64) -> Ordering {
    a_user.cmp(b_user).then(b_trailer.cmp(&a_trailer))
}

/// Compares two encoded internal keys: user key ascending, then trailer descending.
#[inline]
pub fn compare(a: &[u8], b: &[u8]) -> Ordering {
    let ((a_user, a_trailer), (b_user, b_trailer)) = (split(a), split(b));
    compare_parts(a_user, a_trailer, b_user, b_trailer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ikey(user: &[u8], seq: u64, kind: ValueKind) -> Vec<u8> {
        let mut out = Vec::new();
        append_internal_key(&mut out, user, seq, kind);
        out
    }

    #[test]
    fn orders_by_user_key_then_newest_first() {
        let mut keys = [
            ikey(b"b", 1, ValueKind::Put),
            ikey(b"a", 1, ValueKind::Put),
            ikey(b"a", 7, ValueKind::Delete),
            ikey(b"ab", 3, ValueKind::Put),
            ikey(b"a", 5, ValueKind::Put),
            ikey(b"", 9, ValueKind::Put),
        ];
        keys.sort_by(|a, b| compare(a, b));
        let parsed: Vec<_> = keys
            .iter()
            .map(|k| ParsedKey::parse(k).map(|p| (p.user_key.to_vec(), p.sequence)))
            .collect();
        let expected: Vec<Option<(Vec<u8>, u64)>> = vec![
            Some((b"".to_vec(), 9)),
            Some((b"a".to_vec(), 7)),
            Some((b"a".to_vec(), 5)),
            Some((b"a".to_vec(), 1)),
            Some((b"ab".to_vec(), 3)),
            Some((b"b".to_vec(), 1)),
        ];
        assert_eq!(parsed, expected);
    }

    #[test]
    fn a_seek_key_lands_on_the_newest_visible_version() {
        let versions = [
            ikey(b"k", 9, ValueKind::Put),
            ikey(b"k", 5, ValueKind::Delete),
            ikey(b"k", 2, ValueKind::Put),
        ];
        for (read_seq, expected) in [
            (10, Some(9)),
            (9, Some(9)),
            (8, Some(5)),
            (5, Some(5)),
            (4, Some(2)),
            (1, None),
        ] {
            let seek = seek_key(b"k", read_seq);
            let hit = versions
                .iter()
                .find(|v| compare(v, &seek) != Ordering::Less);
            assert_eq!(
                hit.map(|v| ParsedKey::parse(v).unwrap().sequence),
                expected,
                "read at {read_seq}"
            );
        }
    }

    #[test]
    fn short_keys_and_unknown_kinds_do_not_parse() {
        assert_eq!(ParsedKey::parse(&[1, 2, 3]), None);
        let mut bad = ikey(b"k", 1, ValueKind::Put);
        let kind_byte = bad.len() - TRAILER_LEN;
        bad[kind_byte] = 7;
        assert_eq!(ParsedKey::parse(&bad), None);
        assert_eq!(
            ValueKind::from_u8(2),
            None,
            "RangeDelete is reserved, not yet accepted"
        );
    }

    proptest! {
        #[test]
        fn encoding_round_trips_and_order_matches_the_tuple_order(
            a in proptest::collection::vec(any::<u8>(), 0..8), sa in 0..=MAX_SEQUENCE, ka: bool,
            b in proptest::collection::vec(any::<u8>(), 0..8), sb in 0..=MAX_SEQUENCE, kb: bool,
        ) {
            let kind = |put: bool| if put { ValueKind::Put } else { ValueKind::Delete };
            let (ea, eb) = (ikey(&a, sa, kind(ka)), ikey(&b, sb, kind(kb)));
            let pa = ParsedKey::parse(&ea).unwrap();
            prop_assert_eq!((pa.user_key, pa.sequence, pa.kind), (&a[..], sa, kind(ka)));
            let expected = a.cmp(&b).then(sb.cmp(&sa)).then((kind(kb) as u8).cmp(&(kind(ka) as u8)));
            prop_assert_eq!(compare(&ea, &eb), expected);
        }
    }
}
