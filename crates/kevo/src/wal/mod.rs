//! The write-ahead log: every batch is appended here before it reaches the memtable, so a
//! crash loses nothing that was synced.
//!
//! [`format`] holds the byte layout (shared with the manifest), [`LogWriter`] appends and
//! syncs through [`Fs`], [`reader`] reads records back, and [`replay`] applies a
//! [`WalRecoveryMode`] to what the reader finds.

pub mod format;
pub mod reader;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fs::{Fs, FsFile};
use crate::options::WalRecoveryMode;
use format::LogEncoder;
use reader::{LogEvent, LogReader};

/// Appends records to one log file.
///
/// After a failed append or sync the writer refuses further work: the file may hold a
/// partial record, and records written after it would look like corruption in the middle of
/// the log. The caller starts a new log instead.
///
/// Thread safety: requires external synchronization (the commit leader owns it).
#[derive(Debug)]
pub struct LogWriter {
    file: Arc<dyn FsFile>,
    path: PathBuf,
    encoder: LogEncoder,
    len: u64,
    buf: Vec<u8>,
    failed: bool,
}

impl LogWriter {
    /// Creates the log file `path` with file number `number`, reserving `preallocate` bytes
    /// so appends do not have to grow the file (syncs that only overwrite are faster).
    pub fn create(fs: &dyn Fs, path: &Path, number: u64, preallocate: u64) -> Result<Self> {
        let file = fs
            .create(path)
            .map_err(|e| Error::io("creating a WAL file", e).with_file(path))?;
        if preallocate > 0 {
            file.allocate(preallocate)
                .map_err(|e| Error::io("preallocating a WAL file", e).with_file(path))?;
        }
        Ok(LogWriter {
            file: Arc::from(file),
            path: path.to_path_buf(),
            encoder: LogEncoder::new(number, 0),
            len: 0,
            buf: Vec::new(),
            failed: false,
        })
    }

    /// Appends one record per payload, with a single write.
    pub fn add_records<'a>(&mut self, payloads: impl IntoIterator<Item = &'a [u8]>) -> Result<()> {
        self.check_usable()?;
        self.buf.clear();
        for payload in payloads {
            self.encoder.encode(payload, &mut self.buf);
        }
        if let Err(e) = self.file.append(&self.buf) {
            self.failed = true;
            return Err(Error::io("appending to the WAL", e)
                .with_file(&self.path)
                .with_offset(self.len));
        }
        self.len += self.buf.len() as u64;
        Ok(())
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> Result<()> {
        self.check_usable()?;
        if let Err(e) = self.file.sync() {
            // After a failed fsync the kernel may have dropped the dirty pages: nothing in
            // this file since the last good sync can be trusted to be durable.
            self.failed = true;
            return Err(Error::io("syncing the WAL", e).with_file(&self.path));
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether an append or sync failed (the writer refuses further work).
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The open file, for a sync from another thread (interval sync) that must not hold the
    /// writer's lock while it waits for the disk.
    pub fn file_handle(&self) -> Arc<dyn FsFile> {
        self.file.clone()
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(Error::io(
                "writing to a WAL after an earlier write or sync failed",
                std::io::Error::other("the log is no longer usable; a new one must be started"),
            )
            .with_file(&self.path));
        }
        Ok(())
    }
}

/// What replaying one log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// Records applied.
    pub records: u64,
    /// File offset just past the last applied record: where a torn tail starts.
    pub valid_end: u64,
    /// The first damage found and tolerated, if any: (offset, reason).
    pub damage: Option<(u64, &'static str)>,
    /// Point-in-time recovery stopped at damage: later logs must not be replayed.
    pub stopped: bool,
}

/// Replays the log `path` (file number `number`), calling `apply` with each record's
/// payload and offset in order, and applying `mode` to damage:
///
/// - `TolerateCorruptedTail`: damage with no valid record after it is a torn tail (reported
///   in the outcome, not applied); damage followed by a valid record is `Corruption`.
/// - `AbsoluteConsistency`: any damage is `Corruption`.
/// - `PointInTime`: replay stops at the first damage (`stopped`).
/// - `SkipAnyCorrupted`: damaged records are skipped.
pub fn replay(
    fs: &dyn Fs,
    path: &Path,
    number: u64,
    mode: WalRecoveryMode,
    mut apply: impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<ReplayOutcome> {
    let file = fs
        .open(path)
        .map_err(|e| Error::io("opening a log file (WAL or manifest)", e).with_file(path))?;
    let len = file
        .len()
        .map_err(|e| Error::io("reading a log file's length", e).with_file(path))?;
    let mut reader = LogReader::new(file.as_ref(), number, len);
    let mut outcome = ReplayOutcome {
        records: 0,
        valid_end: 0,
        damage: None,
        stopped: false,
    };
    loop {
        let event = reader
            .next_event()
            .map_err(|e| Error::io("reading a log file", e).with_file(path))?;
        match event {
            None => return Ok(outcome),
            Some(LogEvent::Damage { offset, reason }) => {
                let corruption = || {
                    Error::corruption(format!("WAL damaged: {reason}"))
                        .with_file(path)
                        .with_offset(offset)
                };
                match mode {
                    WalRecoveryMode::AbsoluteConsistency => return Err(corruption()),
                    WalRecoveryMode::PointInTime => {
                        outcome.damage = Some((offset, reason));
                        outcome.stopped = true;
                        return Ok(outcome);
                    }
                    WalRecoveryMode::TolerateCorruptedTail | WalRecoveryMode::SkipAnyCorrupted => {
                        outcome.damage.get_or_insert((offset, reason));
                    }
                }
            }
            Some(LogEvent::Record {
                offset,
                end,
                payload,
            }) => {
                if let (Some((at, reason)), WalRecoveryMode::TolerateCorruptedTail) =
                    (outcome.damage, mode)
                {
                    return Err(Error::corruption(format!(
                        "WAL damaged in the middle ({reason}): a valid record follows at offset {offset}"
                    ))
                    .with_file(path)
                    .with_offset(at));
                }
                apply(&payload, offset)?;
                outcome.records += 1;
                outcome.valid_end = end;
            }
        }
    }
}

#[cfg(test)]
mod tests;
