//! The table's framing: block handles, the per-block trailer (compression and checksum),
//! block compression, and the fixed-size footer. Pure functions over bytes.
//!
//! ```text
//! table   := (block trailer)*  footer
//! trailer := compression:u8 checksum:u32        (5 bytes after every block)
//! footer  := filter:handle16 index:handle16 properties:handle16
//!            format_version:u32 footer_checksum:u32 magic:u64        (64 bytes)
//! handle16:= offset:u64 size:u64                (size excludes the trailer; 0/0 = absent)
//! ```
//!
//! The block checksum is the low 32 bits of XXH3-64 seeded with the block's file offset,
//! over the stored block bytes and the compression byte: a block read from the wrong place
//! does not verify. The footer checksum is the low 32 bits of XXH3-64 (seed 0) over the 52
//! footer bytes before it.

use bytes::Bytes;
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::coding::{Decoder, put_varint};
use crate::error::{Error, Result};
use crate::options::Compression;

/// Bytes after every block: compression type and checksum.
pub const TRAILER_LEN: usize = 5;
/// Size of the footer at the end of every table.
pub const FOOTER_LEN: usize = 64;
/// Identifies a kevo table (the last 8 bytes of the file): "kevo.sst" read as a
/// little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"kevo.sst");
/// The table format this build writes and the newest it reads.
pub const TABLE_FORMAT_VERSION: u32 = 1;
/// A block never decompresses to more than this: the largest entry (1 GiB value, 16 MiB
/// key) and change. Checked before anything is allocated.
pub const MAX_BLOCK_SIZE: u64 = (1 << 30) + (32 << 20);

/// Where a block sits in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockHandle {
    /// File offset of the block's first byte.
    pub offset: u64,
    /// Stored size of the block, without its trailer.
    pub size: u64,
}

impl BlockHandle {
    /// Appends the handle as two varints (the index block's value format).
    pub fn encode_varint(&self, out: &mut Vec<u8>) {
        put_varint(out, self.offset);
        put_varint(out, self.size);
    }

    /// Decodes a varint handle; `None` if malformed or followed by other bytes.
    pub fn decode_varint(bytes: &[u8]) -> Option<BlockHandle> {
        let mut d = Decoder::new(bytes);
        let handle = BlockHandle {
            offset: d.varint()?,
            size: d.varint()?,
        };
        d.is_empty().then_some(handle)
    }

    /// Whether the handle (trailer included) lies inside `[0, limit)`.
    pub fn fits_before(&self, limit: u64) -> bool {
        self.offset
            .checked_add(self.size)
            .and_then(|end| end.checked_add(TRAILER_LEN as u64))
            .is_some_and(|end| end <= limit)
    }
}

/// Compression byte values. Part of the format.
const NO_COMPRESSION: u8 = 0;
const LZ4: u8 = 1;
const ZSTD: u8 = 2;

fn block_checksum(offset: u64, stored: &[u8], compression: u8) -> u32 {
    let mut hasher = Xxh3::with_seed(offset);
    hasher.update(stored);
    hasher.update(&[compression]);
    hasher.digest() as u32
}

/// Encodes `raw` for storage at file offset `offset`: compressed if that makes it smaller,
/// followed by its trailer. Returns the bytes to write and the stored size (without trailer).
pub fn encode_block(raw: &[u8], compression: Compression, offset: u64, out: &mut Vec<u8>) -> u64 {
    let start = out.len();
    let kind = match compression {
        Compression::None => NO_COMPRESSION,
        Compression::Lz4 => {
            put_varint(out, raw.len() as u64);
            out.extend_from_slice(&lz4_flex::block::compress(raw));
            LZ4
        }
        Compression::Zstd(level) => match zstd::bulk::compress(raw, level) {
            Ok(compressed) => {
                put_varint(out, raw.len() as u64);
                out.extend_from_slice(&compressed);
                ZSTD
            }
            // Compression failing is not fatal: the block is stored raw.
            Err(_) => NO_COMPRESSION,
        },
    };
    let kind = if kind != NO_COMPRESSION && out.len() - start >= raw.len() {
        // Not smaller: store raw, readers skip decompression.
        out.truncate(start);
        NO_COMPRESSION
    } else {
        kind
    };
    if kind == NO_COMPRESSION {
        out.extend_from_slice(raw);
    }
    let stored = out.len() - start;
    let checksum = block_checksum(offset, &out[start..], kind);
    out.push(kind);
    out.extend_from_slice(&checksum.to_le_bytes());
    stored as u64
}

/// Verifies a block read from `offset` (its stored bytes followed by the trailer) and
/// returns its decompressed content. Damage is `Corruption` (the caller adds the file).
pub fn decode_block(with_trailer: &Bytes, offset: u64) -> Result<Bytes> {
    let Some(stored_len) = with_trailer.len().checked_sub(TRAILER_LEN) else {
        return Err(Error::corruption("block shorter than its trailer").with_offset(offset));
    };
    let trailer = &with_trailer[stored_len..];
    let kind = trailer[0];
    let checksum = u32::from_le_bytes([trailer[1], trailer[2], trailer[3], trailer[4]]);
    if block_checksum(offset, &with_trailer[..stored_len], kind) != checksum {
        return Err(Error::corruption("block checksum mismatch").with_offset(offset));
    }
    let stored = with_trailer.slice(..stored_len);
    match kind {
        NO_COMPRESSION => Ok(stored),
        LZ4 | ZSTD => decompress(&stored, kind).map_err(|e| e.with_offset(offset)),
        other => Err(
            Error::corruption(format!("unknown block compression type {other}"))
                .with_offset(offset),
        ),
    }
}

fn decompress(stored: &[u8], kind: u8) -> Result<Bytes> {
    let mut d = Decoder::new(stored);
    let raw_len = d.varint().filter(|&n| n <= MAX_BLOCK_SIZE);
    let Some(raw_len) = raw_len else {
        return Err(Error::corruption(
            "compressed block declares an impossible size",
        ));
    };
    let raw_len = raw_len as usize;
    let compressed = d.remaining();
    let out = if kind == LZ4 {
        lz4_flex::block::decompress(compressed, raw_len)
            .map_err(|e| Error::corruption("LZ4 block does not decompress").with_source(e))?
    } else {
        zstd::bulk::decompress(compressed, raw_len)
            .map_err(|e| Error::corruption("Zstd block does not decompress").with_source(e))?
    };
    if out.len() != raw_len {
        return Err(Error::corruption(
            "block decompressed to another size than declared",
        ));
    }
    Ok(Bytes::from(out))
}

/// The fixed-size footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// The filter block; `size == 0 && offset == 0` when the table has none.
    pub filter: BlockHandle,
    /// The index block.
    pub index: BlockHandle,
    /// The properties block.
    pub properties: BlockHandle,
    /// Table format version.
    pub format_version: u32,
}

impl Footer {
    /// Encodes the footer (exactly [`FOOTER_LEN`] bytes).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        for handle in [self.filter, self.index, self.properties] {
            out.extend_from_slice(&handle.offset.to_le_bytes());
            out.extend_from_slice(&handle.size.to_le_bytes());
        }
        out.extend_from_slice(&self.format_version.to_le_bytes());
        let checksum = xxh3_64(&out[start..]) as u32;
        out.extend_from_slice(&checksum.to_le_bytes());
        out.extend_from_slice(&MAGIC.to_le_bytes());
    }

    /// Decodes and checks a footer: magic (else "not a kevo table"), checksum, version
    /// (newer is `Config`), and that every handle lies before the footer.
    pub fn decode(bytes: &[u8], file_len: u64) -> Result<Footer> {
        let Ok(bytes) = <&[u8; FOOTER_LEN]>::try_from(bytes) else {
            return Err(Error::corruption("file too short to be a kevo table"));
        };
        let magic = u64::from_le_bytes(bytes[56..64].try_into().unwrap_or_default());
        if magic != MAGIC {
            return Err(Error::corruption("not a kevo table (bad magic number)"));
        }
        let checksum = u32::from_le_bytes(bytes[52..56].try_into().unwrap_or_default());
        if xxh3_64(&bytes[..52]) as u32 != checksum {
            return Err(Error::corruption("table footer checksum mismatch"));
        }
        let word =
            |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let handle = |i: usize| BlockHandle {
            offset: word(2 * i),
            size: word(2 * i + 1),
        };
        let footer = Footer {
            filter: handle(0),
            index: handle(1),
            properties: handle(2),
            format_version: u32::from_le_bytes(bytes[48..52].try_into().unwrap_or_default()),
        };
        if footer.format_version > TABLE_FORMAT_VERSION {
            return Err(Error::config(
                "table format_version",
                format!(
                    "{} on disk is newer than this build reads ({TABLE_FORMAT_VERSION}); upgrade kevo",
                    footer.format_version
                ),
            ));
        }
        let limit = file_len.saturating_sub(FOOTER_LEN as u64);
        let filter_ok = footer.filter == BlockHandle::default() || footer.filter.fits_before(limit);
        if !(filter_ok && footer.index.fits_before(limit) && footer.properties.fits_before(limit)) {
            return Err(Error::corruption("table footer points outside the file"));
        }
        Ok(footer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn round_trip(raw: &[u8], compression: Compression) -> (usize, Bytes) {
        let mut out = vec![0xEE; 3]; // the block need not start the buffer
        let stored = encode_block(raw, compression, 4096, &mut out) as usize;
        assert_eq!(out.len(), 3 + stored + TRAILER_LEN);
        let decoded = decode_block(&Bytes::copy_from_slice(&out[3..]), 4096).unwrap();
        (stored, decoded)
    }

    #[test]
    fn blocks_round_trip_with_every_compression_and_shrink_when_they_can() {
        let compressible: Vec<u8> = b"user:000001 value value value ".repeat(200);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let random: Vec<u8> = (0..4000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        for compression in [
            Compression::None,
            Compression::Lz4,
            Compression::Zstd(3),
            Compression::Zstd(-1),
        ] {
            let (stored, back) = round_trip(&compressible, compression);
            assert_eq!(&back[..], &compressible[..]);
            if compression != Compression::None {
                assert!(stored < compressible.len() / 4, "{compression:?}: {stored}");
            }
            let (stored, back) = round_trip(&random, compression);
            assert_eq!(&back[..], &random[..]);
            assert_eq!(
                stored,
                random.len(),
                "{compression:?}: incompressible blocks are stored raw"
            );
            let (_, back) = round_trip(&[], compression);
            assert!(back.is_empty());
        }
    }

    #[test]
    fn every_bit_flip_of_a_stored_block_is_detected() {
        let raw: Vec<u8> = b"some block content ".repeat(20);
        for compression in [Compression::None, Compression::Lz4] {
            let mut out = Vec::new();
            encode_block(&raw, compression, 77, &mut out);
            for bit in 0..out.len() * 8 {
                let mut damaged = out.clone();
                damaged[bit / 8] ^= 1 << (bit % 8);
                let err =
                    decode_block(&Bytes::from(damaged), 77).expect_err("flip must be detected");
                assert_eq!(err.kind(), ErrorKind::Corruption);
                assert_eq!(err.offset(), Some(77));
            }
            assert!(
                decode_block(&Bytes::from(out.clone()), 78).is_err(),
                "a block read from another offset fails"
            );
        }
    }

    #[test]
    fn footers_round_trip_and_every_bit_flip_is_refused() {
        let footer = Footer {
            filter: BlockHandle {
                offset: 100,
                size: 20,
            },
            index: BlockHandle {
                offset: 125,
                size: 30,
            },
            properties: BlockHandle {
                offset: 160,
                size: 40,
            },
            format_version: TABLE_FORMAT_VERSION,
        };
        let mut out = Vec::new();
        footer.encode(&mut out);
        assert_eq!(out.len(), FOOTER_LEN);
        let file_len = 205 + FOOTER_LEN as u64;
        assert_eq!(Footer::decode(&out, file_len).unwrap(), footer);
        for bit in 0..out.len() * 8 {
            let mut damaged = out.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(Footer::decode(&damaged, file_len).is_err(), "bit {bit}");
        }
        assert!(
            Footer::decode(&out, 100).is_err(),
            "handles past a shorter file"
        );
        assert!(Footer::decode(&out[1..], file_len).is_err());
    }

    #[test]
    fn a_newer_table_version_is_config() {
        let footer = Footer {
            filter: BlockHandle::default(),
            index: BlockHandle::default(),
            properties: BlockHandle::default(),
            format_version: 9,
        };
        let mut out = Vec::new();
        footer.encode(&mut out);
        assert_eq!(
            Footer::decode(&out, 1000).unwrap_err().kind(),
            ErrorKind::Config
        );
    }

    #[test]
    fn a_compressed_block_with_an_impossible_size_is_refused_before_allocating() {
        let mut stored = Vec::new();
        put_varint(&mut stored, MAX_BLOCK_SIZE + 1);
        stored.extend_from_slice(b"xx");
        let checksum = block_checksum(0, &stored, LZ4);
        stored.push(LZ4);
        stored.extend_from_slice(&checksum.to_le_bytes());
        assert_eq!(
            decode_block(&Bytes::from(stored), 0).unwrap_err().kind(),
            ErrorKind::Corruption
        );
    }
}
