//! Table properties: what a table holds, recorded when it is written.
//!
//! ```text
//! properties := field*
//! field      := tag:varint length:varint payload[length]
//! ```
//!
//! Numbers are varint payloads, keys are raw bytes, text is UTF-8. Unknown tags are skipped,
//! so a newer writer can add fields; the known fields below are all required.

use crate::coding::{Decoder, put_length_prefixed, put_varint};
use crate::error::{Error, Result};

/// What a table holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableProperties {
    /// Entries (every version and tombstone counts).
    pub entries: u64,
    /// Tombstones among the entries.
    pub deletions: u64,
    /// Data blocks.
    pub data_blocks: u64,
    /// Bytes of keys (internal keys) before compression.
    pub raw_key_bytes: u64,
    /// Bytes of values before compression.
    pub raw_value_bytes: u64,
    /// Bytes of data blocks as stored (trailers included).
    pub data_size: u64,
    /// Bytes of the index block as stored.
    pub index_size: u64,
    /// Bytes of the filter block as stored (0 without a filter).
    pub filter_size: u64,
    /// The smallest internal key.
    pub smallest_key: Vec<u8>,
    /// The largest internal key.
    pub largest_key: Vec<u8>,
    /// The smallest sequence number of any entry.
    pub min_sequence: u64,
    /// The largest sequence number of any entry.
    pub max_sequence: u64,
    /// Compression of the data blocks, as configured ("none", "lz4", "zstd:3").
    pub compression: String,
    /// The filter policy, as configured ("none", "bits_per_key:10", "fp_rate:0.01").
    pub filter_policy: String,
    /// When the table was written, in seconds since the Unix epoch.
    pub created_at: u64,
    /// The prefix extractor whose prefixes the filter also holds (`fixed:4`), empty for
    /// none. Optional: older tables lack it.
    pub prefix_extractor: String,
    /// Hashes the filter was sized for: distinct user keys plus distinct prefixes.
    /// Optional: 0 when unknown (older tables).
    pub filter_keys: u64,
}

const ENTRIES: u64 = 1;
const DELETIONS: u64 = 2;
const DATA_BLOCKS: u64 = 3;
const RAW_KEY_BYTES: u64 = 4;
const RAW_VALUE_BYTES: u64 = 5;
const DATA_SIZE: u64 = 6;
const INDEX_SIZE: u64 = 7;
const FILTER_SIZE: u64 = 8;
const SMALLEST_KEY: u64 = 9;
const LARGEST_KEY: u64 = 10;
const MIN_SEQUENCE: u64 = 11;
const MAX_SEQUENCE: u64 = 12;
const COMPRESSION: u64 = 13;
const FILTER_POLICY: u64 = 14;
const CREATED_AT: u64 = 15;
const PREFIX_EXTRACTOR: u64 = 16;
const FILTER_KEYS: u64 = 17;
/// Tags 1 to 15 are required; later ones are optional (tables written before them lack them).
const REQUIRED: u64 = (1 << 16) - 2;

impl TableProperties {
    /// Encodes the properties.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let number = |out: &mut Vec<u8>, tag: u64, v: u64| {
            let mut payload = Vec::with_capacity(10);
            put_varint(&mut payload, v);
            put_varint(out, tag);
            put_length_prefixed(out, &payload);
        };
        number(&mut out, ENTRIES, self.entries);
        number(&mut out, DELETIONS, self.deletions);
        number(&mut out, DATA_BLOCKS, self.data_blocks);
        number(&mut out, RAW_KEY_BYTES, self.raw_key_bytes);
        number(&mut out, RAW_VALUE_BYTES, self.raw_value_bytes);
        number(&mut out, DATA_SIZE, self.data_size);
        number(&mut out, INDEX_SIZE, self.index_size);
        number(&mut out, FILTER_SIZE, self.filter_size);
        number(&mut out, MIN_SEQUENCE, self.min_sequence);
        number(&mut out, MAX_SEQUENCE, self.max_sequence);
        number(&mut out, CREATED_AT, self.created_at);
        number(&mut out, FILTER_KEYS, self.filter_keys);
        // A required field comes last, so a cut at any field boundary loses one and is seen.
        for (tag, bytes) in [
            (PREFIX_EXTRACTOR, self.prefix_extractor.as_bytes()),
            (SMALLEST_KEY, &self.smallest_key[..]),
            (LARGEST_KEY, &self.largest_key[..]),
            (COMPRESSION, self.compression.as_bytes()),
            (FILTER_POLICY, self.filter_policy.as_bytes()),
        ] {
            put_varint(&mut out, tag);
            put_length_prefixed(&mut out, bytes);
        }
        out
    }

    /// Decodes properties; malformed or missing fields are `Corruption`.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut p = TableProperties::default();
        let mut seen = 0u64;
        let mut d = Decoder::new(bytes);
        let malformed = || Error::corruption("malformed table properties");
        while !d.is_empty() {
            let tag = d.varint().ok_or_else(malformed)?;
            let payload = d.length_prefixed().ok_or_else(malformed)?;
            let number = || {
                let mut pd = Decoder::new(payload);
                pd.varint().filter(|_| pd.is_empty()).ok_or_else(malformed)
            };
            let text = || String::from_utf8(payload.to_vec()).map_err(|_| malformed());
            match tag {
                ENTRIES => p.entries = number()?,
                DELETIONS => p.deletions = number()?,
                DATA_BLOCKS => p.data_blocks = number()?,
                RAW_KEY_BYTES => p.raw_key_bytes = number()?,
                RAW_VALUE_BYTES => p.raw_value_bytes = number()?,
                DATA_SIZE => p.data_size = number()?,
                INDEX_SIZE => p.index_size = number()?,
                FILTER_SIZE => p.filter_size = number()?,
                SMALLEST_KEY => p.smallest_key = payload.to_vec(),
                LARGEST_KEY => p.largest_key = payload.to_vec(),
                MIN_SEQUENCE => p.min_sequence = number()?,
                MAX_SEQUENCE => p.max_sequence = number()?,
                COMPRESSION => p.compression = text()?,
                FILTER_POLICY => p.filter_policy = text()?,
                CREATED_AT => p.created_at = number()?,
                PREFIX_EXTRACTOR => p.prefix_extractor = text()?,
                FILTER_KEYS => p.filter_keys = number()?,
                _ => continue, // a field of a newer writer
            }
            seen |= 1 << tag;
        }
        if seen & REQUIRED != REQUIRED {
            return Err(Error::corruption("table properties lack required fields"));
        }
        if p.deletions > p.entries || p.min_sequence > p.max_sequence {
            return Err(Error::corruption("table properties are inconsistent"));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> TableProperties {
        TableProperties {
            entries: 1000,
            deletions: 10,
            data_blocks: 7,
            raw_key_bytes: 24_000,
            raw_value_bytes: 100_000,
            data_size: 90_000,
            index_size: 300,
            filter_size: 1250,
            smallest_key: b"a\x01\0\0\0\0\0\0\0".to_vec(),
            largest_key: b"z\x01\0\0\0\0\0\0\0".to_vec(),
            min_sequence: 5,
            max_sequence: 1004,
            compression: "lz4".into(),
            filter_policy: "bits_per_key:10".into(),
            created_at: 1_790_000_000,
            prefix_extractor: "fixed:4".into(),
            filter_keys: 990,
        }
    }

    #[test]
    fn properties_of_older_tables_without_the_optional_fields_decode() {
        let mut old = sample();
        old.prefix_extractor.clear();
        old.filter_keys = 0;
        // An older writer wrote neither field; this one writes an empty prefix extractor
        // and a zero count, which read back the same.
        let encoded = sample().encode();
        let mut d = Decoder::new(&encoded);
        let mut bytes = Vec::new();
        while !d.is_empty() {
            let tag = d.varint().unwrap();
            let payload = d.length_prefixed().unwrap();
            if tag < PREFIX_EXTRACTOR {
                put_varint(&mut bytes, tag);
                put_length_prefixed(&mut bytes, payload);
            }
        }
        assert_eq!(TableProperties::decode(&bytes).unwrap(), old);
        assert_eq!(TableProperties::decode(&old.encode()).unwrap(), old);
    }

    #[test]
    fn properties_round_trip_and_unknown_fields_are_skipped() {
        let mut bytes = sample().encode();
        assert_eq!(TableProperties::decode(&bytes).unwrap(), sample());
        put_varint(&mut bytes, 40);
        put_length_prefixed(&mut bytes, b"from the future");
        assert_eq!(TableProperties::decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn truncated_or_inconsistent_properties_are_corruption() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(
                TableProperties::decode(&bytes[..len]).is_err(),
                "cut at {len}"
            );
        }
        let bad = TableProperties {
            deletions: 2000,
            ..sample()
        };
        assert!(TableProperties::decode(&bad.encode()).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = TableProperties::decode(&bytes);
        }
    }
}
