//! [`OsFs`]: the real file system, through std and `rustix` (no `unsafe`).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use super::{Fs, FsFile, FsLock};

/// The operating system's file system: positional reads (`pread`), `fdatasync`, directory
/// sync, `fallocate`, and `flock`-style advisory locks.
///
/// Thread safety: all methods take `&self` and may be called from any thread.
#[derive(Debug, Clone)]
pub struct OsFs {
    mode: u32,
}

impl OsFs {
    /// An `OsFs` that creates files with mode 0644 (before the umask).
    pub fn new() -> Self {
        OsFs { mode: 0o644 }
    }

    /// An `OsFs` that creates files readable by their owner only (mode 0600).
    pub fn private() -> Self {
        OsFs { mode: 0o600 }
    }
}

impl Default for OsFs {
    fn default() -> Self {
        OsFs::new()
    }
}

impl Fs for OsFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        // std refuses `append` with `truncate`; O_APPEND is added by hand instead.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(rustix::fs::OFlags::APPEND.bits() as i32)
            .mode(self.mode)
            .open(path)?;
        Ok(Box::new(OsFile { file }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        Ok(Box::new(OsFile {
            file: File::open(path)?,
        }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new().read(true).append(true).open(path)?;
        Ok(Box::new(OsFile { file }))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)?.sync_all()
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(self.mode)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(OsLock { _file: file })),
            Err(TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is locked by another opener", path.display()),
            )),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    fn with_private_files(&self) -> Option<std::sync::Arc<dyn Fs>> {
        Some(std::sync::Arc::new(OsFs::private()))
    }
}

#[derive(Debug)]
struct OsFile {
    file: File,
}

impl FsFile for OsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn append(&self, data: &[u8]) -> io::Result<()> {
        // Opened with O_APPEND: every write lands at the current end.
        (&self.file).write_all(data)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        use rustix::fs::{FallocateFlags, fallocate};
        match fallocate(&self.file, FallocateFlags::KEEP_SIZE, 0, len) {
            Ok(()) => Ok(()),
            // Not every file system preallocates; it is an optimisation only.
            Err(e) if e == rustix::io::Errno::OPNOTSUPP => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Holds the `flock` on the LOCK file; closing the file releases it.
#[derive(Debug)]
struct OsLock {
    _file: File,
}

impl FsLock for OsLock {}
