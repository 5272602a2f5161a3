//! The file system layer. Every byte kevo reads or writes goes through [`Fs`], so tests can
//! swap the real file system ([`OsFs`]) for an in-memory one that crashes, fails and tears
//! writes on demand ([`MemFs`]).
//!
//! The trait speaks `std::io::Result`: it is the boundary to the operating system, and
//! implementations (including users' own) should report what the OS reports. The engine
//! adds context (file, offset, operation) when it turns these into [`crate::Error`]s.
//!
//! # Semantics every implementation keeps
//!
//! - Data written by [`FsFile::append`] is durable only after [`FsFile::sync`] returns `Ok`.
//! - A new name (from [`Fs::create`] or [`Fs::rename`]) or a removal is durable only after
//!   [`Fs::sync_dir`] of its directory returns `Ok`.
//! - A failed sync leaves the outcome unknown: some, all or none of the data may be durable,
//!   and a later successful sync does not prove the earlier data durable.
//! - [`Fs::lock`] is exclusive across processes and within one process, and is released
//!   when the returned guard drops or the process dies.

use std::fmt;
use std::io;
use std::path::Path;

mod mem;
mod os;

pub use mem::{CrashMode, Fault, MemFs, Op, OpKind, SyncFailure, TraceEntry};
pub use os::OsFs;

/// A file system: the only way kevo touches files.
///
/// Implementations must be usable from many threads at once.
pub trait Fs: Send + Sync + fmt::Debug {
    /// Creates `dir` and any missing parents; succeeds if it exists.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates `path` (truncating it if it exists), open for reading and appending.
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Opens an existing file for reading only.
    fn open(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Opens an existing file for reading and appending at its end.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Whether `path` names an existing file or directory.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// The names (not paths) of the entries of `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Atomically renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes the exclusive advisory lock on `path` (created if missing). Fails with
    /// `io::ErrorKind::WouldBlock` if another opener, in this or another process, holds it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>>;

    /// This file system creating new files readable by their owner only (mode 0600), if it
    /// has file modes; used for `Options::private_files`. The default has none.
    fn with_private_files(&self) -> Option<std::sync::Arc<dyn Fs>> {
        None
    }
}

/// An open file. Reads are positional, so one handle serves many readers at once; appends
/// need no seek.
#[allow(clippy::len_without_is_empty)] // a file's length is an I/O call, not a collection size
pub trait FsFile: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Appends `data` at the end of the file.
    fn append(&self, data: &[u8]) -> io::Result<()>;
    /// The file's current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Sets the file's length, cutting or zero-extending it.
    fn truncate(&self, len: u64) -> io::Result<()>;
    /// Reserves space for the file to grow to `len` bytes without changing its length, so
    /// later appends do not have to allocate (and their syncs need not update metadata).
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// Makes every appended byte durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;

    /// Reads exactly `buf.len()` bytes at `offset`, or fails with
    /// `io::ErrorKind::UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A held lock; dropping it releases the lock.
pub trait FsLock: Send + Sync + fmt::Debug {}

/// Reads a whole file, refusing files longer than `limit` bytes (sizes read from disk are
/// bounded before anything is allocated).
pub fn read_file(fs: &dyn Fs, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = fs.open(path)?;
    let len = file.len()?;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is {len} bytes, over the limit of {limit}",
                path.display()
            ),
        ));
    }
    let mut buf = vec![0; len as usize];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

/// Writes `data` to `path` atomically: to `path.tmp`, synced, renamed over `path`, and the
/// directory synced. After a crash either the old or the new content is there, whole.
pub fn write_file_atomic(fs: &dyn Fs, path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let file = fs.create(&tmp)?;
    file.append(data)?;
    file.sync()?;
    drop(file);
    fs.rename(&tmp, path)?;
    fs.sync_dir(dir)
}

#[cfg(test)]
mod tests;
