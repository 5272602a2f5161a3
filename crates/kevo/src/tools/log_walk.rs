//! Walking a log file (a WAL or a manifest) record by record, keeping every damaged region
//! and whether a valid record follows it: damage in the middle of a log is corruption,
//! damage at its end may be a write torn by a crash.

use std::path::Path;

use crate::db::files::{self, FileKind};
use crate::error::{Error, ErrorKind, Result};
use crate::fs::Fs;
use crate::wal::reader::{LogEvent, LogReader};

/// A damaged region of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogDamage {
    /// Where it starts.
    pub offset: u64,
    /// What the reader found there.
    pub reason: &'static str,
    /// Whether a valid record follows it.
    pub followed: bool,
}

impl LogDamage {
    /// Whether the damage looks like a write cut short by a crash (the log ends inside a
    /// record, or in zeroed bytes) rather than bytes that changed after they were written
    /// (a checksum that does not match a whole fragment).
    pub fn is_truncation(&self) -> bool {
        matches!(
            self.reason,
            "fragment header cut short by the end of the log"
                | "log ends inside a record"
                | "fragment cut short by the end of the log"
                | "zeroed bytes"
        )
    }
}

/// What a walk over a log found.
#[derive(Debug, Default)]
pub(crate) struct LogWalk {
    /// The file's length.
    pub size: u64,
    /// Valid records.
    pub records: u64,
    /// Damaged regions, in file order.
    pub damage: Vec<LogDamage>,
}

/// Receives each valid record of a log: its offset, its end and its payload.
pub(crate) type RecordSink<'a> = &'a mut dyn FnMut(u64, u64, &[u8]) -> Result<()>;

/// Reads the log `path` (file number `number`, the checksum seed), calling `on_record`
/// with each valid record's offset, end and payload. Errors are I/O failures or errors from
/// `on_record`; damage is in the result.
pub(crate) fn walk_log(
    fs: &dyn Fs,
    path: &Path,
    number: u64,
    on_record: RecordSink<'_>,
) -> Result<LogWalk> {
    let file = fs
        .open(path)
        .map_err(|e| Error::io("opening a log file", e).with_file(path))?;
    let size = file
        .len()
        .map_err(|e| Error::io("reading a log file's length", e).with_file(path))?;
    let mut reader = LogReader::new(file.as_ref(), number, size);
    let mut walk = LogWalk {
        size,
        ..LogWalk::default()
    };
    // Damage from here on has no valid record after it (yet).
    let mut unfollowed = 0;
    loop {
        let event = reader
            .next_event()
            .map_err(|e| Error::io("reading a log file", e).with_file(path))?;
        match event {
            None => return Ok(walk),
            Some(LogEvent::Damage { offset, reason }) => walk.damage.push(LogDamage {
                offset,
                reason,
                followed: false,
            }),
            Some(LogEvent::Record {
                offset,
                end,
                payload,
            }) => {
                for d in &mut walk.damage[unfollowed..] {
                    d.followed = true;
                }
                unfollowed = walk.damage.len();
                on_record(offset, end, &payload)?;
                walk.records += 1;
            }
        }
    }
}

/// The log number of a WAL or manifest, from its file name (its checksum seed).
pub(crate) fn log_number(path: &Path, manifest: bool) -> Result<u64> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match files::parse(name) {
        Some(FileKind::Wal(n)) if !manifest => Ok(n),
        Some(FileKind::Manifest(n)) if manifest => Ok(n),
        _ => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "cannot tell the log number (the checksum seed) from the file name `{name}`: \
                 expected {}; give the number explicitly",
                if manifest {
                    "MANIFEST-NNNNNN"
                } else {
                    "NNNNNN.wal"
                }
            ),
        )
        .with_file(path)),
    }
}
