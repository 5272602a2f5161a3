//! The manifest: a log of [`VersionEdit`]s in the WAL's record format, and `CURRENT`, the
//! one-line file naming the live manifest.
//!
//! A manifest starts with one edit holding the whole state (a snapshot), followed by the
//! edits applied since. Rolling over writes a new manifest with a fresh snapshot, syncs it,
//! then points `CURRENT` at it atomically (temporary file, sync, rename, directory sync);
//! only then is the old manifest removed.

use std::path::{Path, PathBuf};

use super::edit::VersionEdit;
use crate::error::{Error, Result};
use crate::fs::{Fs, read_file, write_file_atomic};
use crate::options::WalRecoveryMode;
use crate::wal::{self, LogWriter};

/// The name of the file naming the live manifest.
pub const CURRENT: &str = "CURRENT";
/// `CURRENT` is one short line; anything longer is not ours.
const CURRENT_LIMIT: u64 = 64;

/// The name of manifest number `number`.
pub fn manifest_name(number: u64) -> String {
    format!("MANIFEST-{number:06}")
}

/// Reads `CURRENT` and returns the manifest it names and its number. The name must be a
/// plain `MANIFEST-NNNNNN` (no path separators, no `..`): a database directory may come from
/// someone else, and kevo never opens a path outside it. Anything else is `Corruption`.
pub fn read_current(fs: &dyn Fs, dir: &Path) -> Result<(PathBuf, u64)> {
    let path = dir.join(CURRENT);
    let bytes = read_file(fs, &path, CURRENT_LIMIT).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            Error::corruption("CURRENT is longer than a manifest name").with_file(&path)
        } else {
            Error::io("reading CURRENT", e).with_file(&path)
        }
    })?;
    let name = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|s| s.strip_suffix('\n'));
    let number = name
        .and_then(|n| n.strip_prefix("MANIFEST-"))
        .filter(|digits| digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit()));
    let (Some(name), Some(number)) = (name, number.and_then(|d| d.parse::<u64>().ok())) else {
        return Err(Error::corruption(
            "CURRENT does not name a manifest (expected MANIFEST-NNNNNN and a newline)",
        )
        .with_file(&path));
    };
    Ok((dir.join(name), number))
}

/// The error for a `CURRENT` in `dir` naming `manifest`, which is not there. No crash
/// leaves that (`CURRENT` names a manifest only once it is durable, and the previous one
/// is removed after): `CURRENT` is damaged, or the manifest was removed by hand.
pub fn missing_manifest(dir: &Path, manifest: &Path) -> Error {
    let name = manifest.file_name().map_or_else(
        || manifest.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Error::corruption(format!("CURRENT names {name}, which does not exist"))
        .with_file(dir.join(CURRENT))
}

/// Points `CURRENT` at manifest `number`, atomically and durably.
pub fn set_current(fs: &dyn Fs, dir: &Path, number: u64) -> Result<()> {
    let path = dir.join(CURRENT);
    write_file_atomic(fs, &path, format!("{}\n", manifest_name(number)).as_bytes())
        .map_err(|e| Error::io("updating CURRENT", e).with_file(&path))
}

/// Replays a manifest: every edit in order. A last record cut short by the end of the file,
/// or zeroed (a crash while an edit was being appended, before it was synced and
/// acknowledged), is ignored. Any other damage is `Corruption`, at the tail too: a whole
/// record that fails its checksum may be an acknowledged edit damaged since, and dropping it
/// would lose the tables it names (their WALs are gone). `kevo repair` salvages such a
/// database.
pub fn read_edits(fs: &dyn Fs, path: &Path, number: u64) -> Result<Vec<VersionEdit>> {
    let mut edits = Vec::new();
    let outcome = wal::replay(
        fs,
        path,
        number,
        WalRecoveryMode::TolerateCorruptedTail,
        |payload, offset| {
            edits.push(
                VersionEdit::decode(payload).map_err(|e| e.with_file(path).with_offset(offset))?,
            );
            Ok(())
        },
    )?;
    if let Some((offset, reason)) = outcome.damage
        && !TORN_TAIL.contains(&reason)
    {
        return Err(
            Error::corruption(format!("manifest damaged at its end: {reason}"))
                .with_file(path)
                .with_offset(offset),
        );
    }
    Ok(edits)
}

/// The damage a crash in the middle of an unsynced append leaves at a manifest's end.
const TORN_TAIL: [&str; 3] = [
    "fragment cut short by the end of the log",
    "log ends inside a record",
    "zeroed bytes",
];

/// Appends edits to the live manifest, each synced before it counts.
#[derive(Debug)]
pub struct ManifestWriter {
    log: LogWriter,
    number: u64,
}

impl ManifestWriter {
    /// Creates manifest `number` in `dir` holding `snapshot` (synced). `CURRENT` is not
    /// touched: the caller points it here once the manifest is durable.
    pub fn create(fs: &dyn Fs, dir: &Path, number: u64, snapshot: &VersionEdit) -> Result<Self> {
        let path = dir.join(manifest_name(number));
        let mut log = LogWriter::create(fs, &path, number, 0)?;
        log.add_records([snapshot.encode().as_slice()])?;
        log.sync()?;
        fs.sync_dir(dir)
            .map_err(|e| Error::io("syncing the database directory", e).with_file(dir))?;
        Ok(ManifestWriter { log, number })
    }

    /// Appends `edit` and syncs it. After an error the writer is unusable (the caller
    /// rolls over to a new manifest).
    pub fn append(&mut self, edit: &VersionEdit) -> Result<()> {
        self.log.add_records([edit.encode().as_slice()])?;
        self.log.sync()
    }

    /// The manifest's file number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Bytes written so far (the rollover trigger).
    pub fn len(&self) -> u64 {
        self.log.len()
    }

    /// Whether nothing was written (never true after `create`).
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    /// Whether an append or sync failed.
    pub fn is_failed(&self) -> bool {
        self.log.is_failed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::fs::MemFs;

    fn setup() -> (MemFs, PathBuf) {
        let fs = MemFs::new();
        fs.create_dir_all(Path::new("/db")).unwrap();
        (fs, PathBuf::from("/db"))
    }

    #[test]
    fn current_names_the_manifest_and_survives_a_crash_once_set() {
        let (fs, dir) = setup();
        let snapshot = VersionEdit {
            next_file_number: Some(5),
            ..VersionEdit::default()
        };
        let mut m = ManifestWriter::create(&fs, &dir, 4, &snapshot).unwrap();
        set_current(&fs, &dir, 4).unwrap();
        let edit = VersionEdit {
            last_sequence: Some(99),
            ..VersionEdit::default()
        };
        m.append(&edit).unwrap();
        fs.crash(crate::fs::CrashMode::DropUnsynced);
        let (path, number) = read_current(&fs, &dir).unwrap();
        assert_eq!((path, number), (dir.join("MANIFEST-000004"), 4));
        assert_eq!(
            read_edits(&fs, &dir.join("MANIFEST-000004"), 4).unwrap(),
            vec![snapshot, edit]
        );
    }

    #[test]
    fn a_current_naming_anything_but_a_manifest_is_corruption() {
        let (fs, dir) = setup();
        for bad in [
            "",
            "\n",
            "MANIFEST-000004",
            "../MANIFEST-000004\n",
            "/etc/passwd\n",
            "MANIFEST-12\n",
            "MANIFEST-00000x\n",
            "MANIFEST-000004\nextra\n",
        ] {
            write_file_atomic(&fs, &dir.join(CURRENT), bad.as_bytes()).unwrap();
            let err = read_current(&fs, &dir).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corruption, "{bad:?}");
        }
        write_file_atomic(&fs, &dir.join(CURRENT), &[b'M'; 100]).unwrap();
        assert_eq!(
            read_current(&fs, &dir).unwrap_err().kind(),
            ErrorKind::Corruption
        );
    }

    #[test]
    fn a_torn_last_edit_is_ignored_but_damage_before_a_valid_edit_is_not() {
        let (fs, dir) = setup();
        let mut m = ManifestWriter::create(&fs, &dir, 2, &VersionEdit::default()).unwrap();
        for seq in 1..=3 {
            m.append(&VersionEdit {
                last_sequence: Some(seq),
                ..VersionEdit::default()
            })
            .unwrap();
        }
        let path = dir.join("MANIFEST-000002");
        let bytes = read_file(&fs, &path, 1 << 20).unwrap();
        let rewrite = |data: &[u8]| write_file_atomic(&fs, &path, data).unwrap();
        rewrite(&bytes[..bytes.len() - 2]);
        assert_eq!(
            read_edits(&fs, &path, 2).unwrap().len(),
            3,
            "the torn fourth record is dropped"
        );
        let mut damaged = bytes.clone();
        damaged[9] ^= 1; // inside the first record
        rewrite(&damaged);
        assert_eq!(
            read_edits(&fs, &path, 2).unwrap_err().kind(),
            ErrorKind::Corruption
        );
    }
}
