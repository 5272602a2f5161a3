//! [`VersionEdit`]: one change to the set of live files, as recorded in the manifest.
//!
//! ```text
//! edit  := field*
//! field := tag:varint payload            (payload by tag, below)
//! ```
//!
//! | tag | field | payload |
//! |---|---|---|
//! | 1 | key order | length-prefixed UTF-8 (`bytewise`) |
//! | 2 | log number | varint: WALs numbered below it are obsolete |
//! | 3 | next file number | varint |
//! | 4 | last sequence | varint |
//! | 5 | deleted file | varint level, varint file number |
//! | 6 | new file | varint level, varint number, varint size, length-prefixed smallest and largest internal keys, varint min and max sequence |
//!
//! The manifest stores each edit as one record of the log format (`wal::format`), so
//! every edit is checksummed and a torn last edit is detected. Decoding refuses unknown
//! tags (an edit is applied whole or not at all), levels beyond [`MAX_LEVELS`], and lengths
//! past the end of the record.

use crate::coding::{Decoder, put_length_prefixed, put_varint};
use crate::error::{Error, Result};
use crate::key::SequenceNumber;

/// The most levels a database can have (L0 included).
pub const MAX_LEVELS: usize = 16;

/// A live table, as the manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The table's file number (`NNNNNN.sst`).
    pub number: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Its smallest internal key.
    pub smallest: Vec<u8>,
    /// Its largest internal key.
    pub largest: Vec<u8>,
    /// The smallest sequence number in it.
    pub min_sequence: SequenceNumber,
    /// The largest sequence number in it.
    pub max_sequence: SequenceNumber,
}

/// A change to the database's files and counters. Fields left `None` are unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VersionEdit {
    /// The key order the database uses (recorded in the first edit).
    pub key_order: Option<String>,
    /// WALs with a smaller number hold nothing that is not in a table.
    pub log_number: Option<u64>,
    /// The next file number to hand out.
    pub next_file_number: Option<u64>,
    /// The last sequence number in a table or a WAL.
    pub last_sequence: Option<SequenceNumber>,
    /// Tables removed: (level, file number).
    pub deleted_files: Vec<(usize, u64)>,
    /// Tables added: (level, file).
    pub new_files: Vec<(usize, FileMeta)>,
}

const KEY_ORDER: u64 = 1;
const LOG_NUMBER: u64 = 2;
const NEXT_FILE_NUMBER: u64 = 3;
const LAST_SEQUENCE: u64 = 4;
const DELETED_FILE: u64 = 5;
const NEW_FILE: u64 = 6;

impl VersionEdit {
    /// Encodes the edit.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(order) = &self.key_order {
            put_varint(&mut out, KEY_ORDER);
            put_length_prefixed(&mut out, order.as_bytes());
        }
        for (tag, value) in [
            (LOG_NUMBER, self.log_number),
            (NEXT_FILE_NUMBER, self.next_file_number),
            (LAST_SEQUENCE, self.last_sequence),
        ] {
            if let Some(v) = value {
                put_varint(&mut out, tag);
                put_varint(&mut out, v);
            }
        }
        for &(level, number) in &self.deleted_files {
            put_varint(&mut out, DELETED_FILE);
            put_varint(&mut out, level as u64);
            put_varint(&mut out, number);
        }
        for (level, f) in &self.new_files {
            put_varint(&mut out, NEW_FILE);
            put_varint(&mut out, *level as u64);
            put_varint(&mut out, f.number);
            put_varint(&mut out, f.size);
            put_length_prefixed(&mut out, &f.smallest);
            put_length_prefixed(&mut out, &f.largest);
            put_varint(&mut out, f.min_sequence);
            put_varint(&mut out, f.max_sequence);
        }
        out
    }

    /// Decodes an edit; anything malformed or unknown is `Corruption`.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(bytes);
        let mut edit = VersionEdit::default();
        while !d.is_empty() {
            let at = bytes.len() - d.remaining().len();
            let bad = |what: &str| {
                Error::corruption(format!("version edit: {what}")).with_offset(at as u64)
            };
            let tag = d.varint().ok_or_else(|| bad("malformed tag"))?;
            match tag {
                KEY_ORDER => {
                    let raw = d
                        .length_prefixed()
                        .ok_or_else(|| bad("malformed key order"))?;
                    edit.key_order = Some(
                        String::from_utf8(raw.to_vec())
                            .map_err(|_| bad("key order is not UTF-8"))?,
                    );
                }
                LOG_NUMBER => {
                    edit.log_number = Some(d.varint().ok_or_else(|| bad("malformed log number"))?)
                }
                NEXT_FILE_NUMBER => {
                    edit.next_file_number = Some(
                        d.varint()
                            .ok_or_else(|| bad("malformed next file number"))?,
                    )
                }
                LAST_SEQUENCE => {
                    edit.last_sequence =
                        Some(d.varint().ok_or_else(|| bad("malformed last sequence"))?)
                }
                DELETED_FILE => {
                    let level =
                        decode_level(&mut d).ok_or_else(|| bad("malformed deleted file"))?;
                    let number = d.varint().ok_or_else(|| bad("malformed deleted file"))?;
                    edit.deleted_files.push((level, number));
                }
                NEW_FILE => {
                    let level = decode_level(&mut d).ok_or_else(|| bad("malformed new file"))?;
                    let file = decode_file(&mut d).ok_or_else(|| bad("malformed new file"))?;
                    edit.new_files.push((level, file));
                }
                other => return Err(bad(&format!("unknown field tag {other}"))),
            }
        }
        Ok(edit)
    }
}

fn decode_level(d: &mut Decoder<'_>) -> Option<usize> {
    usize::try_from(d.varint()?)
        .ok()
        .filter(|&l| l < MAX_LEVELS)
}

fn decode_file(d: &mut Decoder<'_>) -> Option<FileMeta> {
    let number = d.varint()?;
    let size = d.varint()?;
    let smallest = d.length_prefixed()?.to_vec();
    let largest = d.length_prefixed()?.to_vec();
    let min_sequence = d.varint()?;
    let max_sequence = d.varint()?;
    Some(FileMeta {
        number,
        size,
        smallest,
        largest,
        min_sequence,
        max_sequence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use proptest::prelude::*;

    fn sample() -> VersionEdit {
        VersionEdit {
            key_order: Some("bytewise".into()),
            log_number: Some(12),
            next_file_number: Some(40),
            last_sequence: Some(123_456),
            deleted_files: vec![(0, 7), (1, 9)],
            new_files: vec![(
                1,
                FileMeta {
                    number: 39,
                    size: 4096,
                    smallest: b"a\x01\x02\0\0\0\0\0\0".to_vec(),
                    largest: b"m\x01\x07\0\0\0\0\0\0".to_vec(),
                    min_sequence: 2,
                    max_sequence: 7,
                },
            )],
        }
    }

    #[test]
    fn edits_round_trip_and_empty_fields_stay_empty() {
        assert_eq!(VersionEdit::decode(&sample().encode()).unwrap(), sample());
        assert_eq!(
            VersionEdit::decode(&VersionEdit::default().encode()).unwrap(),
            VersionEdit::default()
        );
        assert!(VersionEdit::default().encode().is_empty());
    }

    #[test]
    fn truncated_unknown_or_out_of_range_fields_are_corruption() {
        let bytes = sample().encode();
        let mut boundaries = 0;
        for len in 0..bytes.len() {
            match VersionEdit::decode(&bytes[..len]) {
                Err(e) => assert_eq!(e.kind(), ErrorKind::Corruption),
                // A cut exactly between fields decodes as a shorter edit; the log record's
                // checksum is what catches a torn record.
                Ok(_) => boundaries += 1,
            }
        }
        assert!(boundaries <= 8, "{boundaries}");
        let mut unknown = bytes.clone();
        unknown.push(99);
        assert!(VersionEdit::decode(&unknown).is_err());
        let mut deep = Vec::new();
        put_varint(&mut deep, DELETED_FILE);
        put_varint(&mut deep, MAX_LEVELS as u64);
        put_varint(&mut deep, 1);
        assert!(VersionEdit::decode(&deep).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = VersionEdit::decode(&bytes);
        }
    }
}
