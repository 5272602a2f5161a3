//! The log format shared by the WAL and the manifest: records split into fragments that never
//! cross a 32 KiB block boundary, each fragment framed and checksummed.
//!
//! ```text
//! block    := fragment* trailer            (BLOCK_SIZE bytes, except the file's last block)
//! fragment := checksum:u32 length:u16 type:u8 payload[length]
//! trailer  := 0..6 zero bytes              (a block end too short for a header)
//! ```
//!
//! `checksum` is the low 32 bits of XXH3-64, seeded with the log's file number, over the
//! bytes `length`, `type` and `payload`. The seed means a fragment left over from another
//! log (a recycled file) never checks out in this one.
//!
//! A record that fits the rest of the block is one `Full` fragment; otherwise it is a
//! `First`, zero or more `Middle`s and a `Last`, in consecutive blocks.

use xxhash_rust::xxh3::Xxh3;

/// Size of a log block.
pub const BLOCK_SIZE: usize = 32 * 1024;
/// Size of a fragment header.
pub const HEADER_SIZE: usize = 7;

/// The fragment types. Their values are part of the on-disk format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FragmentType {
    /// A whole record.
    Full = 1,
    /// The first fragment of a record.
    First = 2,
    /// A fragment inside a record.
    Middle = 3,
    /// The last fragment of a record.
    Last = 4,
}

impl FragmentType {
    /// The type with this on-disk value (0 and above 4 are invalid).
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(FragmentType::Full),
            2 => Some(FragmentType::First),
            3 => Some(FragmentType::Middle),
            4 => Some(FragmentType::Last),
            _ => None,
        }
    }
}

/// The checksum of a fragment: `length_and_type` is the header's last 3 bytes.
pub fn fragment_checksum(log_number: u64, length_and_type: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = Xxh3::with_seed(log_number);
    hasher.update(length_and_type);
    hasher.update(payload);
    hasher.digest() as u32
}

/// Splits records into fragments. Pure: it appends bytes to a buffer the caller writes.
#[derive(Debug, Clone)]
pub struct LogEncoder {
    log_number: u64,
    /// Offset inside the current block where the next fragment goes.
    block_offset: usize,
}

impl LogEncoder {
    /// An encoder for the log with file number `log_number`, whose file already holds
    /// `file_len` bytes.
    pub fn new(log_number: u64, file_len: u64) -> Self {
        LogEncoder {
            log_number,
            block_offset: (file_len % BLOCK_SIZE as u64) as usize,
        }
    }

    /// Appends the fragments of one record holding `payload` to `out`.
    pub fn encode(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let mut rest = payload;
        let mut first = true;
        loop {
            let left_in_block = BLOCK_SIZE - self.block_offset;
            if left_in_block < HEADER_SIZE {
                out.resize(out.len() + left_in_block, 0);
                self.block_offset = 0;
                continue;
            }
            let room = left_in_block - HEADER_SIZE;
            let take = rest.len().min(room);
            let last = take == rest.len();
            let kind = match (first, last) {
                (true, true) => FragmentType::Full,
                (true, false) => FragmentType::First,
                (false, false) => FragmentType::Middle,
                (false, true) => FragmentType::Last,
            };
            self.emit(kind, &rest[..take], out);
            rest = &rest[take..];
            first = false;
            if last {
                return;
            }
        }
    }

    fn emit(&mut self, kind: FragmentType, fragment: &[u8], out: &mut Vec<u8>) {
        // A fragment never exceeds a block, so its length fits in u16.
        let len = fragment.len() as u16;
        let [l0, l1] = len.to_le_bytes();
        let length_and_type = [l0, l1, kind as u8];
        let checksum = fragment_checksum(self.log_number, &length_and_type, fragment);
        out.extend_from_slice(&checksum.to_le_bytes());
        out.extend_from_slice(&length_and_type);
        out.extend_from_slice(fragment);
        self.block_offset += HEADER_SIZE + fragment.len();
    }
}
