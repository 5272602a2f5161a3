//! The inspection and repair tools (`kevo::tools`) on MemFs: `check` passes on healthy
//! databases and names the file and offset of a single flipped bit; `dump_*` decode real
//! files and go on past damage; `inspect` reads a database another handle has open without
//! changing a byte; `repair` salvages exactly what is readable into a database that opens
//! and checks clean.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use kevo::fs::{CrashMode, Fault, Fs, MemFs, read_file};
use kevo::tools::{self, EntryKind, TableAction};
use kevo::{Db, ErrorKind, WriteBatch};

fn user_key(i: u64) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

fn value(i: u64) -> Vec<u8> {
    format!("value-{i:05}-").repeat(3).into_bytes()
}

/// A closed database holding `count` keys, each written once (in a scattered order, so
/// flushed tables overlap and compactions merge them), spread over several levels.
fn build(fs: &MemFs, count: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let db = Db::open(DIR, memfs_options(fs)).unwrap();
    let mut model = BTreeMap::new();
    for n in 0..count {
        let i = (n * 7919) % count;
        db.put(user_key(i), value(i)).unwrap();
        model.insert(user_key(i), value(i));
    }
    db.flush().unwrap();
    db.close().unwrap();
    model
}

fn path(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

fn flip_bit(fs: &MemFs, name: &str, offset: u64) {
    let p = path(name);
    let mut bytes = read_file(fs, &p, 1 << 30).unwrap();
    bytes[offset as usize] ^= 0x08;
    let file = fs.create(&p).unwrap();
    file.append(&bytes).unwrap();
    file.sync().unwrap();
}

/// Every file of the directory with its length and a digest of its content.
fn snapshot(fs: &MemFs) -> Vec<(String, usize, u64)> {
    listing(fs, DIR)
        .into_iter()
        .filter(|n| n != tools::LOST_DIR)
        .map(|n| {
            let bytes = read_file(fs, &path(&n), 1 << 30).unwrap();
            let mut hasher = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(&bytes, &mut hasher);
            (n, bytes.len(), std::hash::Hasher::finish(&hasher))
        })
        .collect()
}

/// The table with the most data blocks, and its dump.
fn biggest_table(fs: &MemFs) -> (String, tools::TableDump) {
    let inspection = tools::inspect(fs, Path::new(DIR)).unwrap();
    inspection
        .levels
        .iter()
        .flat_map(|l| &l.tables)
        .map(|t| {
            (
                t.name.clone(),
                tools::dump_table(fs, &path(&t.name)).unwrap(),
            )
        })
        .max_by_key(|(_, d)| d.blocks.len())
        .unwrap()
}

fn read_all(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
    db.iter()
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

fn assert_problem(report: &tools::CheckReport, file: &str, offset: Option<u64>) {
    assert!(!report.ok(), "the damage must be found: {report}");
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.file == file && (offset.is_none() || p.offset == offset)),
        "expected a problem in {file} at {offset:?}: {report}"
    );
}

#[test]
fn check_passes_on_a_healthy_database_with_several_levels_and_inspect_agrees_with_it() {
    let fs = MemFs::new();
    let mut model = build(&fs, 400);
    // Where background compaction had got to at close varies: make sure of two levels, a
    // compacted last level and a newer L0 table (new keys, so each key is stored once).
    let db = Db::open(DIR, memfs_options(&fs).disable_auto_compactions(true)).unwrap();
    db.compact().unwrap();
    for i in 400..420 {
        db.put(user_key(i), value(i)).unwrap();
        model.insert(user_key(i), value(i));
    }
    db.flush().unwrap();
    db.close().unwrap();
    let inspection = tools::inspect(&fs, Path::new(DIR)).unwrap();
    let levels = inspection
        .levels
        .iter()
        .filter(|l| !l.tables.is_empty())
        .count();
    assert!(levels >= 2, "several levels expected: {inspection}");
    assert!(inspection.problems.is_empty(), "{inspection}");
    let report = tools::check(&fs, Path::new(DIR)).unwrap();
    assert!(report.ok(), "{report}");
    let tables: usize = inspection.levels.iter().map(|l| l.tables.len()).sum();
    assert_eq!(report.tables, tables as u64);
    assert_eq!(
        report.entries,
        model.len() as u64,
        "each key once: {report}"
    );
    // Below L0 the tables of a level are sorted and disjoint.
    for level in inspection.levels.iter().skip(1) {
        for pair in level.tables.windows(2) {
            assert!(pair[0].largest.user_key < pair[1].smallest.user_key);
        }
    }
    // The text and JSON forms hold the same tables.
    let json = serde_json::to_value(&inspection).unwrap();
    assert_eq!(
        json["levels"].as_array().unwrap().len(),
        inspection.levels.len()
    );
    assert!(inspection.to_string().contains(&inspection.manifest.name));
}

#[test]
fn check_names_the_file_and_offset_of_a_bit_flipped_in_a_data_block_index_footer_or_manifest() {
    let fs = MemFs::new();
    build(&fs, 400);
    let (name, dump) = biggest_table(&fs);
    assert!(dump.ok() && dump.blocks.len() >= 3, "{dump}");
    let footer = dump.footer.clone().unwrap();
    let block = &dump.blocks[1];
    for (what, offset, reported_at) in [
        ("data block", block.offset + block.size / 2, block.offset),
        ("index block", footer.index.offset + 3, footer.index.offset),
        ("footer", footer.offset + 20, footer.offset),
    ] {
        flip_bit(&fs, &name, offset);
        let report = tools::check(&fs, Path::new(DIR)).unwrap();
        assert_problem(&report, &name, Some(reported_at));
        assert!(
            report.problems.iter().all(|p| p.file == name),
            "{what}: only {name} is damaged: {report}"
        );
        flip_bit(&fs, &name, offset);
        assert!(
            tools::check(&fs, Path::new(DIR)).unwrap().ok(),
            "{what} restored"
        );
    }

    let manifest = tools::inspect(&fs, Path::new(DIR)).unwrap().manifest.name;
    flip_bit(&fs, &manifest, 9); // inside the first record's payload: the snapshot
    let report = tools::check(&fs, Path::new(DIR)).unwrap();
    assert_problem(&report, &manifest, Some(0));
    let err = Db::open(DIR, memfs_options(&fs)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
}

#[test]
fn check_reports_missing_and_resized_tables_and_a_damaged_options_file() {
    let fs = MemFs::new();
    build(&fs, 200);
    let inspection = tools::inspect(&fs, Path::new(DIR)).unwrap();
    let tables: Vec<&tools::TableView> = inspection.levels.iter().flat_map(|l| &l.tables).collect();
    fs.remove(&path(&tables[0].name)).unwrap();
    let grown = path(&tables[1].name);
    fs.open_append(&grown).unwrap().append(b"x").unwrap();
    let options = inspection.options_file.unwrap().name;
    flip_bit(&fs, &options, 5);
    let report = tools::check(&fs, Path::new(DIR)).unwrap();
    assert_problem(&report, &tables[0].name, None);
    assert_problem(&report, &tables[1].name, None);
    assert_problem(&report, &options, None);
}

#[test]
fn a_torn_wal_tail_is_a_note_but_damage_before_valid_records_is_a_problem() {
    let fs = MemFs::new();
    let db = Db::open(DIR, memfs_options(&fs).memtable_size(1 << 20)).unwrap();
    for i in 0..20 {
        let mut batch = WriteBatch::new();
        batch.put(user_key(i), value(i));
        batch.put(user_key(i + 100), value(i + 100));
        batch.delete(user_key(i + 200));
        db.write(batch).unwrap();
    }
    db.close().unwrap();
    let inspection = tools::inspect(&fs, Path::new(DIR)).unwrap();
    let wal = inspection
        .wals
        .iter()
        .find(|w| w.size > 0)
        .unwrap()
        .name
        .clone();

    let dump = tools::dump_wal(&fs, &path(&wal)).unwrap();
    assert!(dump.ok(), "{dump}");
    assert_eq!(dump.records.len(), 20);
    let first = dump.records[0].batch.as_ref().unwrap();
    assert_eq!(first.entries.len(), 3);
    assert_eq!(first.entries[0].key.user_key, user_key(0));
    assert_eq!(first.entries[0].value, value(0));
    assert_eq!(first.entries[1].key.sequence, first.sequence + 1);
    assert_eq!(first.entries[2].key.kind, EntryKind::Delete);

    // Cut the last record short: a torn tail, which recovery drops.
    let bytes = read_file(&fs, &path(&wal), 1 << 20).unwrap();
    let file = fs.create(&path(&wal)).unwrap();
    file.append(&bytes[..bytes.len() - 10]).unwrap();
    let report = tools::check(&fs, Path::new(DIR)).unwrap();
    assert!(report.ok(), "{report}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.file == wal && n.what.contains("torn tail")),
        "{report}"
    );

    // A flipped bit in the fifth record, with valid records after it: corruption.
    let fifth = dump.records[4].offset;
    flip_bit(&fs, &wal, fifth + 12);
    let report = tools::check(&fs, Path::new(DIR)).unwrap();
    assert_problem(&report, &wal, Some(fifth));
    let dump = tools::dump_wal(&fs, &path(&wal)).unwrap();
    assert!(!dump.ok());
    assert_eq!(dump.problems[0].offset, Some(fifth));
    assert_eq!(
        dump.records.len(),
        18,
        "the records after the damage still decode"
    );

    // Repair skips the damaged record and keeps the others.
    assert_eq!(
        Db::open(DIR, memfs_options(&fs)).unwrap_err().kind(),
        ErrorKind::Corruption
    );
    let repaired = tools::repair(&fs, Path::new(DIR)).unwrap();
    assert_eq!(repaired.wal_records, 18, "{repaired}");
    assert!(tools::check(&fs, Path::new(DIR)).unwrap().ok());
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    for i in 0..19 {
        let expected = (i != 4).then(|| value(i));
        assert_eq!(
            db.get(user_key(i)).unwrap().map(|v| v.to_vec()),
            expected,
            "key {i}"
        );
    }
}

#[test]
fn dump_table_decodes_every_entry_and_goes_on_past_a_damaged_block() {
    let fs = MemFs::new();
    let model = build(&fs, 300);
    let (name, dump) = biggest_table(&fs);
    let props = dump.properties.clone().unwrap();
    let entries: Vec<&tools::EntryView> = dump.blocks.iter().flat_map(|b| &b.entries).collect();
    assert_eq!(entries.len() as u64, props.entries);
    assert_eq!(dump.index.len(), dump.blocks.len());
    assert_eq!(entries[0].key, props.smallest_key);
    for e in &entries {
        assert_eq!(e.key.kind, EntryKind::Put);
        assert_eq!(Some(&e.value), model.get(&e.key.user_key));
    }
    assert!(
        entries
            .windows(2)
            .all(|w| w[0].key.user_key < w[1].key.user_key),
        "each key once, in order"
    );
    // The index key of each block is its last entry.
    for (index, block) in dump.index.iter().zip(&dump.blocks) {
        assert_eq!(Some(&index.key), block.entries.last().map(|e| &e.key));
    }
    assert!(dump.to_string().contains("no problems found"));

    let damaged = dump.blocks[1].clone();
    flip_bit(&fs, &name, damaged.offset + 7);
    let after = tools::dump_table(&fs, &path(&name)).unwrap();
    assert!(!after.ok());
    assert_eq!(after.problems[0].offset, Some(damaged.offset), "{after}");
    assert!(after.blocks[1].error.is_some());
    let readable: usize = after.blocks.iter().map(|b| b.entries.len()).sum();
    assert_eq!(readable, entries.len() - damaged.entries.len());
    assert!(
        after
            .to_string()
            .contains(&format!("offset {}", damaged.offset))
    );
}

#[test]
fn dump_manifest_decodes_every_edit_into_the_live_version() {
    let fs = MemFs::new();
    build(&fs, 200);
    let inspection = tools::inspect(&fs, Path::new(DIR)).unwrap();
    let dump = tools::dump_manifest(&fs, &path(&inspection.manifest.name)).unwrap();
    assert!(dump.ok(), "{dump}");
    assert_eq!(dump.edits[0].key_order.as_deref(), Some("bytewise"));
    let live: Vec<u64> = dump.live.iter().map(|t| t.number).collect();
    let inspected: Vec<u64> = inspection
        .levels
        .iter()
        .flat_map(|l| l.tables.iter().map(|t| t.number))
        .collect();
    assert_eq!(live, inspected);
    assert_eq!(dump.last_sequence, inspection.last_sequence);
    // A file named otherwise needs its number; a wrong one verifies nothing.
    let copy = path("copy-of-manifest");
    let bytes = read_file(&fs, &path(&inspection.manifest.name), 1 << 20).unwrap();
    fs.create(&copy).unwrap().append(&bytes).unwrap();
    assert_eq!(
        tools::dump_manifest(&fs, &copy).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert!(
        !tools::dump_manifest_numbered(&fs, &copy, dump.number + 1)
            .unwrap()
            .ok()
    );
    assert!(
        tools::dump_manifest_numbered(&fs, &copy, dump.number)
            .unwrap()
            .ok()
    );
    // A flipped bit in the third edit: reported at its offset, the edits after it decode.
    let third = dump.edits[2].offset;
    flip_bit(&fs, &inspection.manifest.name, third + 8);
    let damaged = tools::dump_manifest(&fs, &path(&inspection.manifest.name)).unwrap();
    assert!(!damaged.ok());
    assert_eq!(damaged.problems[0].offset, Some(third), "{damaged}");
    assert_eq!(damaged.edits.len(), dump.edits.len() - 1);
}

#[test]
fn a_flipped_bit_in_the_last_manifest_edit_is_a_problem_and_repair_recovers_its_tables() {
    // Recovery takes a last record that fails its checksum for a torn write and drops
    // it: the tables that edit added would be deleted as leftovers by the next open.
    let fs = MemFs::new();
    let model = build(&fs, 200);
    let manifest = tools::inspect(&fs, Path::new(DIR)).unwrap().manifest.name;
    let dump = tools::dump_manifest(&fs, &path(&manifest)).unwrap();
    let last = dump.edits.last().unwrap().clone();
    assert!(!last.added.is_empty(), "the last edit adds a table: {dump}");
    flip_bit(&fs, &manifest, last.offset + 9);
    let report = tools::check(&fs, Path::new(DIR)).unwrap();
    assert_problem(&report, &manifest, Some(last.offset));

    let repaired = tools::repair(&fs, Path::new(DIR)).unwrap();
    assert!(repaired.manifest_used.is_none(), "{repaired}");
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    assert_eq!(
        read_all(&db),
        model,
        "the tables of the damaged edit are recovered"
    );
}

#[test]
fn inspect_reads_a_database_open_in_another_handle_and_changes_no_file() {
    let fs = MemFs::new();
    // A memtable large enough that the last writes stay in it: no background work runs
    // while the files are compared.
    let db = Db::open(DIR, memfs_options(&fs).memtable_size(64 << 10)).unwrap();
    for round in 0..3 {
        for i in round * 70..(round + 1) * 70 {
            db.put(user_key(i), value(i)).unwrap();
        }
        db.flush().unwrap();
    }
    db.compact().unwrap();
    for i in 210..220 {
        db.put(user_key(i), value(i)).unwrap(); // in the WAL and memtable only
    }
    let before = snapshot(&fs);
    let inspection = tools::inspect(&fs, Path::new(DIR)).unwrap();
    let report = tools::check(&fs, Path::new(DIR)).unwrap();
    assert_eq!(snapshot(&fs), before, "inspect and check write nothing");
    assert!(report.ok(), "{report}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.what.contains("open elsewhere")),
        "{report}"
    );
    let shape = db.lsm_shape();
    for level in &inspection.levels {
        assert_eq!(
            level.tables.len(),
            shape.levels[level.level].tables,
            "{inspection}"
        );
    }
    assert!(!inspection.wals.is_empty());
    // What the open database holds in its memtable, read from its WAL.
    let in_wals: u64 = inspection
        .wals
        .iter()
        .map(|w| w.contents.as_ref().unwrap().entries)
        .sum();
    assert_eq!(in_wals, 10, "{inspection}");
    assert!(
        inspection
            .levels
            .iter()
            .flat_map(|l| &l.tables)
            .all(|t| t.entries.is_some() && t.created_at.is_some()),
        "{inspection}"
    );
    assert_eq!(
        tools::repair(&fs, Path::new(DIR)).unwrap_err().kind(),
        ErrorKind::Concurrency,
        "repair refuses an open database"
    );
    assert_eq!(snapshot(&fs), before);
    assert_eq!(read_all(&db).len(), 220);
}

#[test]
fn inspect_reads_each_tables_tombstones_and_age_and_the_writes_of_each_live_wal() {
    let fs = MemFs::new();
    let opts = memfs_options(&fs)
        .memtable_size(1 << 20)
        .disable_auto_compactions(true);
    let db = Db::open(DIR, opts).unwrap();
    for i in 0..30 {
        db.put(user_key(i), value(i)).unwrap();
    }
    // Tombstones of keys never written: a flush keeps them (older data may sit below).
    for i in 100..112 {
        db.delete(user_key(i)).unwrap();
    }
    db.flush().unwrap();
    // In the WAL only (closed without a flush): 5 puts and 2 deletes.
    for i in 200..205 {
        db.put(user_key(i), value(i)).unwrap();
    }
    db.delete(user_key(0)).unwrap();
    db.delete(user_key(1)).unwrap();
    db.close().unwrap();

    let inspection = tools::inspect(&fs, Path::new(DIR)).unwrap();
    assert!(inspection.problems.is_empty(), "{inspection}");
    let tables: Vec<&tools::TableView> = inspection.levels.iter().flat_map(|l| &l.tables).collect();
    assert_eq!(tables.len(), 1, "{inspection}");
    let table = tables[0];
    assert_eq!((table.entries, table.deletions), (Some(42), Some(12)));
    assert!((table.tombstone_share().unwrap() - 12.0 / 42.0).abs() < 1e-9);
    let age = table.age_secs(inspection.inspected_at).unwrap();
    assert!(age < 3600, "written just now: {age} s");
    assert_eq!(inspection.table_entries(), (42, 12));

    let written: Vec<&tools::WalContents> = inspection
        .wals
        .iter()
        .filter_map(|w| w.contents.as_ref())
        .filter(|c| c.entries > 0)
        .collect();
    assert_eq!(written.len(), 1, "{inspection}");
    let wal = written[0];
    assert_eq!((wal.records, wal.entries, wal.deletions), (7, 7, 2));
    assert_eq!(wal.bytes, 5 * (6 + 36) + 2 * 6, "keys and values");
    assert_eq!(
        wal.max_sequence.unwrap() - wal.min_sequence.unwrap(),
        6,
        "seven sequence numbers"
    );
    assert!(wal.min_sequence.unwrap() > table.max_sequence);
    let text = inspection.to_string();
    assert!(text.contains("42 entries (12 tombstones)"), "{text}");
    assert!(text.contains("7 entries (2 tombstones)"), "{text}");

    // A table whose properties block is damaged is a problem of the inspection, not an
    // error: the table is still shown, from the manifest.
    let dump = tools::dump_table(&fs, &path(&table.name)).unwrap();
    let properties = dump.footer.unwrap().properties.offset;
    flip_bit(&fs, &table.name, properties + 2);
    let damaged = tools::inspect(&fs, Path::new(DIR)).unwrap();
    let shown = damaged
        .levels
        .iter()
        .flat_map(|l| &l.tables)
        .next()
        .unwrap();
    assert_eq!((shown.number, shown.entries), (table.number, None));
    assert!(
        damaged
            .problems
            .iter()
            .any(|p| p.file == table.name && p.what.contains("properties")),
        "{damaged}"
    );
}

#[test]
fn repair_recovers_every_key_outside_a_damaged_data_block_and_checks_clean() {
    let fs = MemFs::new();
    let model = build(&fs, 400);
    let (name, dump) = biggest_table(&fs);
    let block = &dump.blocks[dump.blocks.len() / 2];
    let lost: Vec<Vec<u8>> = block
        .entries
        .iter()
        .map(|e| e.key.user_key.clone())
        .collect();
    assert!(!lost.is_empty());
    flip_bit(&fs, &name, block.offset + block.size / 3);
    assert!(!tools::check(&fs, Path::new(DIR)).unwrap().ok());

    let report = tools::repair(&fs, Path::new(DIR)).unwrap();
    assert!(report.manifest_used.is_some(), "{report}");
    assert_eq!(report.blocks_lost, 1, "{report}");
    assert_eq!(report.entries_lost, lost.len() as u64, "{report}");
    let outcome = report.tables.iter().find(|t| t.name == name).unwrap();
    assert_eq!(outcome.action, TableAction::Rewritten);
    assert!(
        report
            .tables
            .iter()
            .filter(|t| t.name != name)
            .all(|t| t.action == TableAction::Kept),
        "healthy tables stay: {report}"
    );
    assert!(
        report.moved_to_lost.contains(&name),
        "the original is kept in lost/"
    );
    assert!(fs.exists(&path(tools::LOST_DIR).join(&name)).unwrap());

    let check = tools::check(&fs, Path::new(DIR)).unwrap();
    assert!(check.ok(), "{check}");
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    let mut expected = model;
    for k in &lost {
        expected.remove(k);
    }
    assert_eq!(read_all(&db), expected);
    db.close().unwrap();
    assert!(tools::check(&fs, Path::new(DIR)).unwrap().ok());
}

#[test]
fn repair_salvages_every_block_of_a_table_whose_footer_or_index_is_damaged() {
    for damage in ["footer", "index"] {
        let fs = MemFs::new();
        let model = build(&fs, 300);
        let (name, dump) = biggest_table(&fs);
        let footer = dump.footer.unwrap();
        let offset = match damage {
            "footer" => footer.offset + 1,
            _ => footer.index.offset + footer.index.size / 2,
        };
        flip_bit(&fs, &name, offset);
        let scanned = tools::dump_table(&fs, &path(&name)).unwrap();
        assert!(scanned.located_by_scan, "{damage}: {scanned}");
        assert_eq!(
            scanned.blocks.len(),
            dump.blocks.len(),
            "{damage}: {scanned}"
        );
        let report = tools::repair(&fs, Path::new(DIR)).unwrap();
        assert_eq!(report.blocks_lost, 0, "{damage}: {report}");
        assert!(tools::check(&fs, Path::new(DIR)).unwrap().ok());
        let db = Db::open(DIR, memfs_options(&fs)).unwrap();
        assert_eq!(read_all(&db), model, "{damage}: nothing lost");
    }
}

#[test]
fn repair_of_a_database_whose_manifest_is_damaged_recovers_everything() {
    let fs = MemFs::new();
    let mut model = Model::new();
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    for op in workload(300, 7) {
        op.apply_to_db(&db).unwrap();
        op.apply_to_model(&mut model);
    }
    db.close().unwrap();
    let manifest = tools::inspect(&fs, Path::new(DIR)).unwrap().manifest.name;
    flip_bit(&fs, &manifest, 9);
    assert!(Db::open(DIR, memfs_options(&fs)).is_err());

    let report = tools::repair(&fs, Path::new(DIR)).unwrap();
    assert!(
        report.manifest_used.is_none() && report.manifest_problem.is_some(),
        "{report}"
    );
    assert_eq!(
        (report.blocks_lost, report.entries_lost),
        (0, 0),
        "{report}"
    );
    assert!(report.moved_to_lost.contains(&manifest));
    assert!(tools::check(&fs, Path::new(DIR)).unwrap().ok());
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    assert_eq!(
        read_state(&db),
        model,
        "overwrites and deletes resolve as before"
    );
    // New writes get sequence numbers above every recovered one.
    db.put(key(1), b"after repair").unwrap();
    assert_eq!(
        db.get(key(1)).unwrap().as_deref(),
        Some(&b"after repair"[..])
    );
    db.close().unwrap();
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    assert_eq!(
        db.get(key(1)).unwrap().as_deref(),
        Some(&b"after repair"[..])
    );
}

#[test]
fn repair_rebuilds_a_lost_current_file() {
    let fs = MemFs::new();
    let model = build(&fs, 150);
    fs.remove(&path("CURRENT")).unwrap();
    let report = tools::check(&fs, Path::new(DIR)).unwrap();
    assert_problem(&report, "CURRENT", None);
    tools::repair(&fs, Path::new(DIR)).unwrap();
    let db = Db::open(DIR, memfs_options(&fs)).unwrap();
    assert_eq!(read_all(&db), model);
}

#[test]
fn the_tools_refuse_what_is_not_a_database() {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("/empty")).unwrap();
    for dir in ["/missing", "/empty"] {
        let dir = Path::new(dir);
        assert_eq!(
            tools::check(&fs, dir).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            tools::inspect(&fs, dir).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            tools::repair(&fs, dir).unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
    assert!(listing(&fs, "/empty").is_empty(), "nothing was created");
    let garbage = Path::new("/empty/000001.sst");
    fs.create(garbage).unwrap().append(&[7u8; 100]).unwrap();
    let dump = tools::dump_table(&fs, garbage).unwrap();
    assert!(!dump.ok() && dump.blocks.is_empty(), "{dump}");
}

#[test]
fn any_single_flipped_bit_is_found_or_harmless_and_repair_never_returns_wrong_data() {
    let mut state = 0x5eed_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..12 {
        let fs = MemFs::new();
        let model = build(&fs, 120);
        let files: Vec<(String, usize)> = snapshot(&fs)
            .into_iter()
            .filter(|(n, len, _)| n != "LOCK" && *len > 0)
            .map(|(n, len, _)| (n, len))
            .collect();
        let (name, len) = &files[next() as usize % files.len()];
        let offset = next() % *len as u64;
        flip_bit(&fs, name, offset);
        let report = tools::check(&fs, Path::new(DIR)).unwrap();
        if name.ends_with(".sst") || name.starts_with("MANIFEST") || name.starts_with("OPTIONS") {
            assert!(!report.ok(), "round {round}: {name} at {offset} not found");
        }
        let repaired = tools::repair(&fs, Path::new(DIR)).unwrap();
        let check = tools::check(&fs, Path::new(DIR)).unwrap();
        assert!(
            check.ok(),
            "round {round}, {name} at {offset}: {repaired}\n{check}"
        );
        let db = Db::open(DIR, memfs_options(&fs)).unwrap();
        for (k, v) in read_all(&db) {
            assert_eq!(
                model.get(&k),
                Some(&v),
                "round {round}: wrong data after repair"
            );
        }
    }
}

/// A copy of the database directory of `from` on a fresh MemFs, durable.
fn copy_db(from: &MemFs) -> MemFs {
    let to = MemFs::new();
    to.create_dir_all(Path::new(DIR)).unwrap();
    for name in listing(from, DIR) {
        let bytes = read_file(from, &path(&name), 1 << 30).unwrap();
        let file = to.create(&path(&name)).unwrap();
        file.append(&bytes).unwrap();
        file.sync().unwrap();
    }
    to.sync_dir(Path::new(DIR)).unwrap();
    to
}

#[test]
fn a_crash_at_any_point_of_a_repair_loses_nothing_a_second_repair_cannot_recover() {
    let base = MemFs::new();
    let model = build(&base, 150);
    let (name, dump) = biggest_table(&base);
    let block = &dump.blocks[1];
    flip_bit(&base, &name, block.offset + 3);
    let mut expected = model;
    for e in &block.entries {
        expected.remove(&e.key.user_key);
    }
    let clean = copy_db(&base);
    let start = clean.op_count();
    tools::repair(&clean, Path::new(DIR)).unwrap();
    let total = clean.op_count() - start;
    for point in 0..total {
        let fs = copy_db(&base);
        fs.fail_nth(fs.op_count() + point, Fault::Halt);
        let _ = tools::repair(&fs, Path::new(DIR));
        fs.crash(CrashMode::DropUnsynced);
        fs.clear_faults();
        let report = tools::repair(&fs, Path::new(DIR))
            .unwrap_or_else(|e| panic!("crash at operation {point} of {total}: {e}"));
        let check = tools::check(&fs, Path::new(DIR)).unwrap();
        assert!(check.ok(), "crash at {point}: {report}\n{check}");
        let db = Db::open(DIR, memfs_options(&fs)).unwrap();
        assert_eq!(
            read_all(&db),
            expected,
            "crash at operation {point} of {total}"
        );
    }
}

/// A bit flipped in the manifest's last (acknowledged) edit was once taken for a torn tail:
/// the edit was dropped and the next open deleted the table it named. Now the open refuses
/// with `Corruption`, changes nothing, and `repair` brings every key back.
#[test]
fn a_damaged_last_manifest_edit_fails_the_open_and_repair_recovers_every_key() {
    let fs = MemFs::new();
    let opts = memfs_options(&fs).memtable_size(1 << 20);
    let db = Db::open(DIR, opts.clone()).unwrap();
    for i in 0..100u32 {
        db.put(format!("k{i:03}"), [7u8; 40]).unwrap();
    }
    db.flush().unwrap();
    db.close().unwrap();
    let manifest = listing(&fs, DIR)
        .into_iter()
        .find(|n| n.starts_with("MANIFEST-"))
        .unwrap();
    let len = read_file(&fs, &path(&manifest), 1 << 30).unwrap().len() as u64;
    // Two bytes before the end: inside the last edit's payload.
    flip_bit(&fs, &manifest, len - 2);
    let before = snapshot(&fs);
    let err = Db::open(DIR, opts.clone()).unwrap_err();
    assert_eq!(err.kind(), kevo::ErrorKind::Corruption, "{err}");
    assert_eq!(snapshot(&fs), before, "a refused open changes nothing");
    tools::repair(&fs, Path::new(DIR)).unwrap();
    let db = Db::open(DIR, opts).unwrap();
    for i in 0..100u32 {
        assert!(db.get(format!("k{i:03}")).unwrap().is_some(), "k{i:03}");
    }
}
