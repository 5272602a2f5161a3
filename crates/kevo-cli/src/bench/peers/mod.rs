//! Peer engines for `kevo bench --engine`, each behind its own opt-in cargo feature
//! (`fjall`, `redb`, `sled`, `rocksdb`; `peers` for the first three). Never in the default
//! build or CI: see docs/performance.md for how to build and run them.
//!
//! Each peer is set up as close to kevo's configuration as its API allows (the same sync per
//! write, the same cache budget, the same memtable size where it has one); what differs is
//! written next to each. Space is measured as the bytes of every file in the database
//! directory, the same for all.

// Without a peer feature only `MARKER` is used.
#![cfg_attr(
    not(any(
        feature = "fjall",
        feature = "redb",
        feature = "sled",
        feature = "rocksdb"
    )),
    allow(dead_code)
)]

use std::path::Path;

use kevo::{Error, ErrorKind, Result};

#[cfg(feature = "fjall")]
pub mod fjall;
#[cfg(feature = "redb")]
pub mod redb;
#[cfg(feature = "rocksdb")]
pub mod rocksdb;
#[cfg(feature = "sled")]
pub mod sled;

/// A file each peer writes into its directory when it creates a database there, so that
/// `--db` never deletes a directory the benchmark did not make.
pub const MARKER: &str = "KEVO_BENCH_PEER";

/// Wraps a peer's error.
pub fn peer_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(ErrorKind::Io, what.to_string()).with_source(e)
}

/// Creates `dir` and the marker in it.
pub fn prepare(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the directory", e))?;
    std::fs::write(dir.join(MARKER), b"").map_err(|e| Error::io("writing the benchmark marker", e))
}

/// Bytes of every file under `dir`.
pub fn directory_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io("listing the database directory", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing the database directory", e))?;
        let meta = entry
            .metadata()
            .map_err(|e| Error::io("reading file metadata", e))?;
        total += if meta.is_dir() {
            directory_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
