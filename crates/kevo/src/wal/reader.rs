//! Reads a log back, record by record, reporting damage instead of guessing past it.
//!
//! The reader reads one block at a time, so memory stays at one block plus the record being
//! assembled. It does not decide what damage means; the caller does, by recovery mode
//! (see [`crate::wal::replay`]). After damage it resynchronises at the next block boundary,
//! where a fragment always starts, so it can tell whether valid records follow.

use super::format::{BLOCK_SIZE, FragmentType, HEADER_SIZE, fragment_checksum};
use crate::fs::FsFile;

/// What the reader found next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// A whole, checksum-verified record starting at `offset`, ending at `end`.
    Record {
        /// File offset of the record's first fragment.
        offset: u64,
        /// File offset just past the record's last fragment.
        end: u64,
        /// The record's payload.
        payload: Vec<u8>,
    },
    /// Bytes from `offset` that are not a valid record (torn, garbled, zeroed or cut short).
    Damage {
        /// File offset where the damage starts.
        offset: u64,
        /// What was wrong.
        reason: &'static str,
    },
}

/// A streaming reader over one log file.
pub struct LogReader<'a> {
    file: &'a dyn FsFile,
    log_number: u64,
    file_len: u64,
    block: Vec<u8>,
    /// File offset of `block[0]`.
    block_start: u64,
    /// File offset of the next block to read.
    next_block: u64,
    /// Next unread byte in `block`.
    pos: usize,
    /// A record being assembled: its start offset and the bytes so far.
    partial: Option<(u64, Vec<u8>)>,
    /// After damage: looking byte by byte for the next valid fragment.
    resyncing: bool,
}

impl<'a> LogReader<'a> {
    /// A reader over `file`, which holds `file_len` bytes of the log numbered `log_number`.
    pub fn new(file: &'a dyn FsFile, log_number: u64, file_len: u64) -> Self {
        LogReader {
            file,
            log_number,
            file_len,
            block: Vec::new(),
            block_start: 0,
            next_block: 0,
            pos: 0,
            partial: None,
            resyncing: false,
        }
    }

    /// The next record or damage; `Ok(None)` at the end of the file. I/O errors are errors,
    /// not damage.
    pub fn next_event(&mut self) -> std::io::Result<Option<LogEvent>> {
        loop {
            let left = self.block.len() - self.pos;
            if left < HEADER_SIZE {
                // Only a full block ends in a trailer; a shorter rest at the end of the file
                // is a fragment header cut short.
                if left > 0 && self.block.len() < BLOCK_SIZE && !self.resyncing {
                    let offset = self.block_start + self.pos as u64;
                    return Ok(Some(self.damage(
                        offset,
                        "fragment header cut short by the end of the log",
                    )));
                }
                if !self.load_next_block()? {
                    return Ok(self.partial.take().map(|(offset, _)| LogEvent::Damage {
                        offset,
                        reason: "log ends inside a record",
                    }));
                }
                continue;
            }
            let frag_offset = self.block_start + self.pos as u64;
            let header = &self.block[self.pos..self.pos + HEADER_SIZE];
            let checksum = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let len = usize::from(u16::from_le_bytes([header[4], header[5]]));
            let kind = FragmentType::from_u8(header[6]);
            let end = self.pos + HEADER_SIZE + len;
            let verified = kind.filter(|_| {
                end <= self.block.len()
                    && fragment_checksum(
                        self.log_number,
                        &header[4..7],
                        &self.block[self.pos + HEADER_SIZE..end],
                    ) == checksum
            });
            let Some(kind) = verified else {
                if self.resyncing {
                    self.pos += 1;
                    continue;
                }
                let reason = if header.iter().all(|&b| b == 0) {
                    "zeroed bytes"
                } else if end > self.block.len() && self.block_start + end as u64 > self.file_len {
                    "fragment cut short by the end of the log"
                } else if end > self.block.len() {
                    "fragment length crosses a block boundary"
                } else if kind.is_none() {
                    "unknown fragment type"
                } else {
                    "fragment checksum mismatch"
                };
                return Ok(Some(self.damage(frag_offset, reason)));
            };
            self.resyncing = false;
            let payload = &self.block[self.pos + HEADER_SIZE..end];
            let frag_end = self.block_start + end as u64;
            match assemble(&mut self.partial, kind, frag_offset, frag_end, payload) {
                Assembled::Pending => self.pos = end,
                Assembled::Event(event) => {
                    self.pos = end;
                    return Ok(Some(event));
                }
                // Leave `pos` on this fragment: it is read again on the next call.
                Assembled::Unfinished(event) => return Ok(Some(event)),
            }
        }
    }

    /// Reports damage at `offset` (or at the start of the record in progress) and starts
    /// looking for the next valid fragment right after it: a valid record after damage must
    /// be found, even in the same block, to tell corruption from a torn tail.
    fn damage(&mut self, offset: u64, reason: &'static str) -> LogEvent {
        self.pos += 1;
        self.resyncing = true;
        let offset = self.partial.take().map_or(offset, |(start, _)| start);
        LogEvent::Damage { offset, reason }
    }

    /// Reads the next block; false at the end of the file.
    fn load_next_block(&mut self) -> std::io::Result<bool> {
        if self.next_block >= self.file_len {
            self.block.clear();
            self.pos = 0;
            return Ok(false);
        }
        let len = (self.file_len - self.next_block).min(BLOCK_SIZE as u64) as usize;
        self.block.resize(len, 0);
        self.file.read_exact_at(&mut self.block, self.next_block)?;
        self.block_start = self.next_block;
        self.next_block += BLOCK_SIZE as u64;
        self.pos = 0;
        Ok(true)
    }
}

/// What one verified fragment did to the record being assembled.
enum Assembled {
    /// The record goes on in a later fragment.
    Pending,
    /// A record completed, or the fragment was out of sequence (damage).
    Event(LogEvent),
    /// The record in progress never got its last fragment; the current fragment starts a new
    /// record and must be read again.
    Unfinished(LogEvent),
}

fn assemble(
    partial: &mut Option<(u64, Vec<u8>)>,
    kind: FragmentType,
    offset: u64,
    end: u64,
    payload: &[u8],
) -> Assembled {
    match kind {
        FragmentType::Full | FragmentType::First => {
            if let Some((start, _)) = partial.take() {
                return Assembled::Unfinished(LogEvent::Damage {
                    offset: start,
                    reason: "record missing its last fragment",
                });
            }
            if kind == FragmentType::Full {
                return Assembled::Event(LogEvent::Record {
                    offset,
                    end,
                    payload: payload.to_vec(),
                });
            }
            *partial = Some((offset, payload.to_vec()));
            Assembled::Pending
        }
        FragmentType::Middle | FragmentType::Last => {
            let Some((start, mut bytes)) = partial.take() else {
                return Assembled::Event(LogEvent::Damage {
                    offset,
                    reason: "fragment without its first fragment",
                });
            };
            bytes.extend_from_slice(payload);
            if kind == FragmentType::Last {
                return Assembled::Event(LogEvent::Record {
                    offset: start,
                    end,
                    payload: bytes,
                });
            }
            *partial = Some((start, bytes));
            Assembled::Pending
        }
    }
}
