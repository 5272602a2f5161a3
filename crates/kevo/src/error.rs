//! Errors: one [`Error`] type with a coarse [`ErrorKind`] a caller can act on, plus the
//! context (operation, file, offset) and the underlying cause.
//!
//! Every fallible call in kevo returns [`Result`]. Match on [`Error::kind`] to decide what
//! to do; print the error (`Display`) to tell a person what happened. `docs/errors.md` says,
//! for each kind, when it occurs and what a caller should do.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The result type of every fallible kevo operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The boxed cause of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, in the categories a caller handles differently.
///
/// The set is closed for matching purposes only within kevo: it is `#[non_exhaustive]`, so
/// keep a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The operating system failed an I/O operation. The source `std::io::Error` is kept.
    /// Retrying may help if the cause was transient.
    Io,
    /// A checksum, magic number or structure check failed: stored data is damaged. The
    /// error names the file and offset. Do not retry; run `kevo check` / `kevo repair`.
    Corruption,
    /// Invalid options, or options incompatible with the database on disk (including a
    /// database written by a newer format version, or a directory that is not a kevo
    /// database). Fix the configuration.
    Config,
    /// A resource ran out: disk space, open files, memory, or a write stall timed out.
    /// Free the resource, then retry (or call `Db::resume` after a background error).
    Resource,
    /// A concurrency conflict: a transaction conflicted at commit, or the database is
    /// locked by another opener. Retry the transaction, or close the other opener.
    Concurrency,
    /// Something that must exist does not: the database directory with
    /// `create_if_missing(false)`, or a key an API requires. (`get` of a missing key is
    /// `Ok(None)`, not this.)
    NotFound,
    /// The caller passed a bad argument: empty key, key or value over its limit, a
    /// malformed range. Nothing was changed.
    InvalidArgument,
    /// The database was closed; open it again to continue.
    Closed,
}

impl ErrorKind {
    /// A short lowercase description of the kind, as used at the start of messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Io => "I/O error",
            ErrorKind::Corruption => "data corruption",
            ErrorKind::Config => "configuration error",
            ErrorKind::Resource => "resource exhausted",
            ErrorKind::Concurrency => "concurrency conflict",
            ErrorKind::NotFound => "not found",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Closed => "database closed",
        }
    }

    /// What a caller (or the person reading the message) should do about an error of this
    /// kind.
    pub fn advice(self) -> &'static str {
        match self {
            ErrorKind::Io => "check the device and permissions, then retry",
            ErrorKind::Corruption => {
                "stored data is damaged; run `kevo check` and, if needed, `kevo repair`"
            }
            ErrorKind::Config => "fix the options or point kevo at the right directory",
            ErrorKind::Resource => "free the resource (disk space, open files), then retry",
            ErrorKind::Concurrency => "retry the transaction, or close the other opener",
            ErrorKind::NotFound => "check the path or create the database first",
            ErrorKind::InvalidArgument => "fix the argument; nothing was changed",
            ErrorKind::Closed => "open the database again",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kevo error: a kind, a message saying what failed, optional context (the file and the
/// offset in it) and the underlying cause.
///
/// `Error` is one pointer wide so `Result<T>` stays small on hot paths.
///
/// # Example
///
/// ```
/// use kevo::{Error, ErrorKind};
///
/// let err = Error::corruption("block checksum mismatch")
///     .with_file("000012.sst")
///     .with_offset(4096);
/// assert_eq!(err.kind(), ErrorKind::Corruption);
/// assert_eq!(err.offset(), Some(4096));
/// assert!(err.to_string().contains("000012.sst"));
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: String,
    file: Option<PathBuf>,
    offset: Option<u64>,
    source: Option<BoxError>,
}

impl Error {
    /// A new error of `kind` with a message saying what failed.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                file: None,
                offset: None,
                source: None,
            }),
        }
    }

    /// An [`ErrorKind::Io`] error (or [`ErrorKind::Resource`] when the OS error means the
    /// disk, quota, memory or file descriptors ran out) while doing `operation`.
    pub fn io(operation: impl Into<String>, source: io::Error) -> Self {
        let kind = kind_of_io(&source);
        Error::new(kind, operation).with_source(source)
    }

    /// An [`ErrorKind::Corruption`] error.
    pub fn corruption(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Corruption, message)
    }

    /// An [`ErrorKind::Config`] error naming the offending option and why it is wrong.
    pub fn config(option: &str, reason: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Config, format!("option `{option}` {reason}"))
    }

    /// An [`ErrorKind::InvalidArgument`] error.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// An [`ErrorKind::Closed`] error.
    pub fn closed() -> Self {
        Error::new(ErrorKind::Closed, "the database is closed")
    }

    /// Names the file the error is about.
    #[must_use]
    pub fn with_file(mut self, file: impl AsRef<Path>) -> Self {
        self.inner.file = Some(file.as_ref().to_path_buf());
        self
    }

    /// Names the byte offset in the file the error is about.
    #[must_use]
    pub fn with_offset(mut self, offset: u64) -> Self {
        self.inner.offset = Some(offset);
        self
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// What failed, without the context.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The file the error is about, if known.
    pub fn file(&self) -> Option<&Path> {
        self.inner.file.as_deref()
    }

    /// The byte offset in [`Error::file`] the error is about, if known.
    pub fn offset(&self) -> Option<u64> {
        self.inner.offset
    }

    /// The underlying `std::io::Error`, if this error was caused by one.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.inner.source.as_ref().and_then(|s| s.downcast_ref())
    }
}

/// Maps an OS error to the kind a caller handles: running out of something is
/// [`ErrorKind::Resource`], everything else [`ErrorKind::Io`].
fn kind_of_io(err: &io::Error) -> ErrorKind {
    use rustix::io::Errno;
    match err.kind() {
        io::ErrorKind::StorageFull
        | io::ErrorKind::QuotaExceeded
        | io::ErrorKind::OutOfMemory
        | io::ErrorKind::FileTooLarge => return ErrorKind::Resource,
        _ => {}
    }
    match err.raw_os_error() {
        Some(code)
            if code == Errno::MFILE.raw_os_error() || code == Errno::NFILE.raw_os_error() =>
        {
            ErrorKind::Resource
        }
        _ => ErrorKind::Io,
    }
}

impl fmt::Display for Error {
    /// One sentence: kind, what failed, where, the cause, and what to do.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        write!(f, "{}: {}", inner.kind, inner.message)?;
        match (&inner.file, inner.offset) {
            (Some(file), Some(offset)) => write!(f, " (file {}, offset {offset})", file.display())?,
            (Some(file), None) => write!(f, " (file {})", file.display())?,
            (None, Some(offset)) => write!(f, " (offset {offset})")?,
            (None, None) => {}
        }
        if let Some(source) = &inner.source {
            write!(f, ": {source}")?;
        }
        write!(f, "; {}", inner.kind.advice())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        let mut s = f.debug_struct("Error");
        s.field("kind", &inner.kind)
            .field("message", &inner.message);
        if let Some(file) = &inner.file {
            s.field("file", file);
        }
        if let Some(offset) = inner.offset {
            s.field("offset", &offset);
        }
        if let Some(source) = &inner.source {
            s.field("source", source);
        }
        s.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Error::io("I/O operation failed", err)
    }
}

impl From<Error> for io::Error {
    /// Converts into the closest `std::io::ErrorKind`, keeping the kevo error as the inner
    /// error (recover it with `io::Error::get_ref` and `downcast_ref::<kevo::Error>()`).
    fn from(err: Error) -> Self {
        let kind = match err.kind() {
            ErrorKind::Io => err.io_error().map_or(io::ErrorKind::Other, io::Error::kind),
            ErrorKind::Corruption => io::ErrorKind::InvalidData,
            ErrorKind::Config | ErrorKind::InvalidArgument => io::ErrorKind::InvalidInput,
            ErrorKind::Resource => err
                .io_error()
                .map_or(io::ErrorKind::OutOfMemory, io::Error::kind),
            ErrorKind::Concurrency => io::ErrorKind::WouldBlock,
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            ErrorKind::Closed => io::ErrorKind::BrokenPipe,
        };
        io::Error::new(kind, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_KINDS: [ErrorKind; 8] = [
        ErrorKind::Io,
        ErrorKind::Corruption,
        ErrorKind::Config,
        ErrorKind::Resource,
        ErrorKind::Concurrency,
        ErrorKind::NotFound,
        ErrorKind::InvalidArgument,
        ErrorKind::Closed,
    ];

    fn os_error(errno: rustix::io::Errno) -> io::Error {
        io::Error::from_raw_os_error(errno.raw_os_error())
    }

    #[test]
    fn error_is_send_sync_static_and_one_pointer_wide() {
        fn assert_bounds<T: Send + Sync + 'static + std::error::Error>() {}
        assert_bounds::<Error>();
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn io_errors_map_to_io_unless_a_resource_ran_out() {
        use rustix::io::Errno;
        let cases = [
            (Errno::IO, ErrorKind::Io),
            (Errno::ACCESS, ErrorKind::Io),
            (Errno::NOENT, ErrorKind::Io),
            (Errno::NOSPC, ErrorKind::Resource),
            (Errno::DQUOT, ErrorKind::Resource),
            (Errno::NOMEM, ErrorKind::Resource),
            (Errno::FBIG, ErrorKind::Resource),
            (Errno::MFILE, ErrorKind::Resource),
            (Errno::NFILE, ErrorKind::Resource),
        ];
        for (errno, kind) in cases {
            let err = Error::io("appending to the WAL", os_error(errno));
            assert_eq!(err.kind(), kind, "{errno:?}");
            assert_eq!(
                err.io_error().and_then(io::Error::raw_os_error),
                Some(errno.raw_os_error())
            );
        }
        let plain: Error = io::Error::other("boom").into();
        assert_eq!(plain.kind(), ErrorKind::Io);
    }

    #[test]
    fn every_kind_converts_into_a_fitting_io_error_kind() {
        let expected = [
            io::ErrorKind::Other,
            io::ErrorKind::InvalidData,
            io::ErrorKind::InvalidInput,
            io::ErrorKind::OutOfMemory,
            io::ErrorKind::WouldBlock,
            io::ErrorKind::NotFound,
            io::ErrorKind::InvalidInput,
            io::ErrorKind::BrokenPipe,
        ];
        for (kind, io_kind) in ALL_KINDS.into_iter().zip(expected) {
            let converted: io::Error = Error::new(kind, "x").into();
            assert_eq!(converted.kind(), io_kind, "{kind:?}");
            let back = converted
                .get_ref()
                .and_then(|e| e.downcast_ref::<Error>())
                .expect("the kevo error is kept inside");
            assert_eq!(back.kind(), kind);
        }
        // An Io or Resource error keeps the OS error's own kind.
        let enospc: io::Error = Error::io("sync", os_error(rustix::io::Errno::NOSPC)).into();
        assert_eq!(enospc.kind(), io::ErrorKind::StorageFull);
        let denied: io::Error = Error::io("open", os_error(rustix::io::Errno::ACCESS)).into();
        assert_eq!(denied.kind(), io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn display_is_one_actionable_sentence_with_context_and_cause() {
        let err = Error::io("syncing the WAL", os_error(rustix::io::Errno::NOSPC))
            .with_file("000007.wal")
            .with_offset(512);
        let text = err.to_string();
        assert!(
            text.starts_with("resource exhausted: syncing the WAL (file 000007.wal, offset 512): "),
            "{text}"
        );
        assert!(text.ends_with(ErrorKind::Resource.advice()), "{text}");
        assert!(!text.contains('\n'));
        assert_eq!(err.file(), Some(Path::new("000007.wal")));
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn every_kind_has_its_own_description_and_advice() {
        let names: std::collections::HashSet<_> = ALL_KINDS.iter().map(|k| k.as_str()).collect();
        let advice: std::collections::HashSet<_> = ALL_KINDS.iter().map(|k| k.advice()).collect();
        assert_eq!(names.len(), ALL_KINDS.len());
        assert_eq!(advice.len(), ALL_KINDS.len());
    }

    #[test]
    fn config_errors_name_the_option() {
        let err = Error::config("block_size", "must be at least 64 bytes, got 3");
        assert_eq!(err.kind(), ErrorKind::Config);
        assert_eq!(
            err.message(),
            "option `block_size` must be at least 64 bytes, got 3"
        );
    }
}
