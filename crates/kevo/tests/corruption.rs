//! Corruption of a database's files: damage is reported as `Corruption`, never served as
//! data.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::DIR;
use kevo::fs::{Fs, MemFs, read_file};
use kevo::{Compression, Db, ErrorKind, Options};

fn path(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

/// Options of the database: small blocks, no compression, a bloom filter, no background
/// compaction.
fn options(fs: &MemFs) -> Options {
    Options::default()
        .fs(Arc::new(fs.clone()))
        .memtable_size(64 << 10)
        .block_size(128)
        .restart_interval(4)
        .compression(Compression::None)
        .bloom_bits_per_key(10)
        .disable_auto_compactions(true)
        .background_threads(1)
        .block_cache_size(64 << 10)
}

/// Found by a manifest sweep: a manifest cut just before its last record (or inside it,
/// or with that record's length flipped so it seems to run past the end) read as a whole
/// shorter manifest, or as one ending in a torn append, and the open went on without the
/// flush edit. That flush's WAL was already deleted, so the flushed writes were silently
/// lost. The manifest names its oldest live WAL, which now must exist if a later one does.
#[test]
fn a_manifest_that_lost_a_flush_edit_is_corruption_and_repair_recovers_the_table() {
    let fs = MemFs::new();
    let db = Db::open(DIR, options(&fs)).unwrap();
    db.put(b"flushed", b"1").unwrap();
    db.flush().unwrap();
    db.put(b"in-the-wal", b"2").unwrap();
    db.close().unwrap();
    let manifest = kevo::tools::inspect(&fs, Path::new(DIR))
        .unwrap()
        .manifest
        .name;
    let original = read_file(&fs, &path(&manifest), 1 << 20).unwrap();
    let dump = kevo::tools::dump_manifest(&fs, &path(&manifest)).unwrap();
    let last = dump.edits.last().unwrap().offset as usize;
    assert_eq!(dump.edits.last().unwrap().added.len(), 1, "{dump}");
    let mut longer = original.clone();
    longer[last + 5] ^= 0x01; // the length's high byte: the record runs past the end
    for (what, bytes) in [
        ("cut before the last record", &original[..last]),
        (
            "cut inside the last record",
            &original[..original.len() - 3],
        ),
        ("last record's length flipped", &longer[..]),
    ] {
        let image = MemFs::new();
        fs.create_dir_all(Path::new(DIR)).unwrap();
        image.create_dir_all(Path::new(DIR)).unwrap();
        for name in fs.list(Path::new(DIR)).unwrap() {
            let content = if name == manifest {
                bytes.to_vec()
            } else {
                read_file(&fs, &path(&name), 1 << 20).unwrap()
            };
            let file = image.create(&path(&name)).unwrap();
            file.append(&content).unwrap();
            file.sync().unwrap();
        }
        image.sync_dir(Path::new(DIR)).unwrap();
        let err = Db::open(DIR, options(&image)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corruption, "{what}: {err}");
        assert!(
            err.file().is_some_and(|f| f.ends_with(&manifest)),
            "{what}: {err}"
        );
        let report = kevo::tools::check(&image, Path::new(DIR)).unwrap();
        assert!(
            report.problems.iter().any(|p| p.file == manifest),
            "{what}: {report}"
        );
        // `kevo repair` finds the table the lost edit named.
        kevo::tools::repair(&image, Path::new(DIR)).unwrap();
        let db = Db::open(DIR, options(&image)).unwrap();
        assert_eq!(
            db.get(b"flushed").unwrap().as_deref(),
            Some(&b"1"[..]),
            "{what}"
        );
        assert_eq!(
            db.get(b"in-the-wal").unwrap().as_deref(),
            Some(&b"2"[..]),
            "{what}"
        );
        db.close().unwrap();
    }
}
