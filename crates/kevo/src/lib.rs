//! kevo: an embedded, crash-safe LSM-tree key-value storage engine.
//!
//! This crate is being built up in layers (see `docs/architecture.md`). Today it holds the
//! foundation every later layer stands on:
//!
//! - [`Error`] and [`ErrorKind`]: the eight kinds of error a caller handles;
//! - [`Options`]: every tunable, validated, and persisted with the database
//!   ([`options_file`]);
//! - [`fs`]: the file system layer — the real one ([`fs::OsFs`]) and an in-memory one that
//!   simulates crashes and injects faults ([`fs::MemFs`]).
//! - [`tools`]: inspect, check, dump and repair a database directory (what `kevo inspect`,
//!   `kevo check`, `kevo dump-*` and `kevo repair` run).
//!
//! ```
//! use kevo::{Options, SyncMode};
//!
//! let opts = Options::default().sync_mode(SyncMode::Always).memtable_size(4 << 20);
//! opts.validate()?;
//! # Ok::<(), kevo::Error>(())
//! ```
#![warn(missing_docs)]

mod batch;
mod coding;
#[doc(hidden)] // internal; public for the benchmarks
pub mod compaction;
mod db;
mod error;
pub mod fs;
#[doc(hidden)] // entry points for the fuzz targets and the corpus replay test
pub mod fuzzing;
#[doc(hidden)] // internal; public for the benchmarks
pub mod iter;
pub mod key;
mod listener;
#[doc(hidden)] // internal; public for the benchmarks
pub mod memtable;
pub mod metrics;
mod options;
pub mod options_file;
#[doc(hidden)] // internal; public for the benchmarks
pub mod sst;
mod sync;
pub mod tools;
#[doc(hidden)] // internal; public for the format tools
pub mod version;
#[doc(hidden)] // internal; public for the benchmarks and format tools
pub mod wal;

pub use batch::{BatchEntry, WriteBatch};
pub use db::{
    Db, DbIter, Health, HealthStatus, HealthThresholds, LevelShape, LsmShape, Metrics, ReadOptions,
    Snapshot, TableStats, Transaction, TxnIter, Value,
};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use listener::{
    CompactionInfo, EventListener, FilterAdjustInfo, FlushInfo, StallCause, StallInfo,
    TableFileInfo, TableReason,
};
pub use options::{
    CompactionStyle, Compression, FilterPolicy, Options, PrefixExtractor, SyncMode,
    WalRecoveryMode, WriteOptions,
};
