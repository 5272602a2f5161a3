//! Inspection, checking, dumping and repair of a database directory: the library half of
//! `kevo inspect`, `kevo check`, `kevo dump-sst|dump-wal|dump-manifest` and `kevo repair`.
//! The command-line tool and the tests call the same functions.
//!
//! - [`inspect`]: the live version (from `CURRENT` and the manifest), what each table holds
//!   (from its properties block) and each live WAL (walked record by record), read-only and
//!   without the lock, so it works while another process has the database open.
//! - [`dump_table`], [`dump_wal`], [`dump_manifest`]: decode one file entry by entry,
//!   flagging damage with its offset and going on where the format allows.
//! - [`check`]: verify every checksum and every cross-reference of the live files.
//! - [`repair`]: salvage what is readable into a consistent database, keeping every
//!   original file (replaced ones are moved into `lost/`).
//!
//! Every function does its I/O through the [`Fs`](crate::fs::Fs) passed in, and never
//! panics on damaged input: damage becomes a [`Finding`] (file, offset, what), and only
//! failures to do I/O at all are errors. Every report is `serde::Serialize` (keys and values
//! as text, escaped as by [`escape`]) and `Display` (text for people; the alternate form
//! `{:#}` prints values in full instead of cut at [`VALUE_PREVIEW`] bytes).

mod check;
mod dump;
mod inspect;
mod log_walk;
mod manifest_state;
mod repair;
mod table_walk;

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::key::{self, ValueKind};

pub use check::{CheckReport, check};
pub use dump::{
    BatchEntryView, BatchView, BlockView, DeletedTableView, EditView, EntryView, FilterView,
    FooterView, HandleView, IndexEntryView, ManifestDump, PropertiesView, RecordView, TableDump,
    WalDump, dump_manifest, dump_manifest_numbered, dump_table, dump_wal, dump_wal_numbered,
};
pub use inspect::{FileView, Inspection, LevelView, TableView, WalContents, WalView, inspect};
pub use repair::{RepairReport, TableAction, TableOutcome, WalOutcome, repair};

/// The subdirectory `repair` moves replaced files into.
pub const LOST_DIR: &str = "lost";

/// How many bytes of a value the text form of a dump shows (the alternate form, `{:#}`,
/// shows all of it).
pub const VALUE_PREVIEW: usize = 64;

/// Something wrong (or worth knowing) about one file: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The file, by its name in the database directory (or the path given to a dump).
    pub file: String,
    /// The byte offset in the file, when the finding has one.
    pub offset: Option<u64>,
    /// What is wrong.
    pub what: String,
}

impl Finding {
    /// A finding about `file` at `offset`.
    pub fn new(file: impl Into<String>, offset: Option<u64>, what: impl Into<String>) -> Self {
        Finding {
            file: file.into(),
            offset,
            what: what.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(offset) => write!(f, "{}: offset {offset}: {}", self.file, self.what),
            None => write!(f, "{}: {}", self.file, self.what),
        }
    }
}

/// What an entry did to its key, as a dump shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A value was set.
    Put,
    /// The key was deleted (a tombstone).
    Delete,
    /// Not a valid internal key (too short, or an unknown kind byte).
    Invalid,
}

/// An internal key split into its parts, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyView {
    /// The user key (for an invalid key: its raw bytes).
    #[serde(serialize_with = "serialize_escaped")]
    pub user_key: Vec<u8>,
    /// The sequence number (0 for an invalid key).
    pub sequence: u64,
    /// Put, delete, or invalid.
    pub kind: EntryKind,
}

impl KeyView {
    /// Splits an encoded internal key; a key that does not parse is shown whole as
    /// [`EntryKind::Invalid`].
    pub fn parse(encoded: &[u8]) -> KeyView {
        match key::ParsedKey::parse(encoded) {
            Some(parsed) => KeyView {
                user_key: parsed.user_key.to_vec(),
                sequence: parsed.sequence,
                kind: match parsed.kind {
                    ValueKind::Put => EntryKind::Put,
                    ValueKind::Delete => EntryKind::Delete,
                },
            },
            None => KeyView {
                user_key: encoded.to_vec(),
                sequence: 0,
                kind: EntryKind::Invalid,
            },
        }
    }
}

impl fmt::Display for KeyView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            EntryKind::Put => write!(f, "{} @{} put", escape(&self.user_key), self.sequence),
            EntryKind::Delete => write!(f, "{} @{} del", escape(&self.user_key), self.sequence),
            EntryKind::Invalid => write!(f, "<invalid internal key {}>", escape(&self.user_key)),
        }
    }
}

/// Bytes as text: printable ASCII as is (a backslash doubled), every other byte as `\xNN`.
/// The mapping is reversible, so a key printed by a dump identifies it exactly.
pub fn escape(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                out.push_str("\\x");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
    out
}

/// A value for the text form of a dump: escaped, cut at [`VALUE_PREVIEW`] bytes unless
/// `full`.
fn preview(value: &[u8], full: bool) -> String {
    if full || value.len() <= VALUE_PREVIEW {
        escape(value)
    } else {
        format!(
            "{}... ({} bytes)",
            escape(&value[..VALUE_PREVIEW]),
            value.len()
        )
    }
}

fn serialize_escaped<S: serde::Serializer>(
    bytes: &[u8],
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&escape(bytes))
}

/// The name of `path` for findings: its file name, or the whole path if it has none.
fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The last sequence number of a batch at `base` with `len` entries, if it is one a write
/// can have (a damaged or hostile log may hold anything).
fn batch_last_sequence(base: u64, len: usize) -> Option<u64> {
    base.checked_add(len.saturating_sub(1) as u64)
        .filter(|&last| base > 0 && last <= key::MAX_SEQUENCE)
}

/// Internal keys in order: user key ascending, then sequence descending.
fn key_less(a: &[u8], b: &[u8]) -> bool {
    key::compare(a, b) == std::cmp::Ordering::Less
}
