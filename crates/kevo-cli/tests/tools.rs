//! `kevo inspect|check|repair` and `kevo dump-sst|dump-wal|dump-manifest` on real
//! directories: output, JSON, and exit codes (0 clean, 1 problems, 2 errors).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kevo::{Db, Options, SyncMode};

fn kevo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kevo"))
        .args(args)
        .output()
        .expect("run kevo")
}

fn kevo_in(args: &[&str], path: &Path) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.push(path.to_str().expect("utf-8 path"));
    kevo(&all)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Small tables, to get several of them and levels; no fsync per write (the test reads
/// the files back through the page cache).
fn options() -> Options {
    Options::default()
        .sync_mode(SyncMode::None)
        .memtable_size(4 << 10)
        .target_file_size(4 << 10)
        .block_size(512)
        .l0_compaction_trigger(2)
}

/// A closed database of 600 keys over several tables and levels, and 20 more keys in its
/// WAL.
fn build(dir: &Path) -> BTreeMap<String, String> {
    let db = Db::open(dir, options()).expect("open");
    let mut model = BTreeMap::new();
    for n in 0..620u64 {
        let i = (n * 7919) % 620;
        let (k, v) = (format!("key{i:04}"), format!("value {i} ").repeat(4));
        db.put(&k, &v).expect("put");
        model.insert(k, v);
        if n == 599 {
            db.flush().expect("flush");
        }
    }
    db.close().expect("close");
    model
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset as usize] ^= 0x40;
    std::fs::write(path, bytes).expect("write");
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

/// The live table with the most data blocks, and its dump (as JSON).
fn biggest_table(dir: &Path) -> (PathBuf, serde_json::Value) {
    let inspection = json(&kevo_in(&["inspect", "--json"], dir));
    inspection["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .flat_map(|l| l["tables"].as_array().expect("tables").clone())
        .map(|t| {
            let path = dir.join(t["name"].as_str().expect("name"));
            let dump = json(&kevo_in(&["dump-sst", "--json"], &path));
            (path, dump)
        })
        .max_by_key(|(_, d)| d["blocks"].as_array().map_or(0, Vec::len))
        .expect("a table")
}

fn offset(v: &serde_json::Value) -> u64 {
    v.as_u64().expect("an offset")
}

#[test]
fn check_exits_0_when_clean_and_1_naming_the_file_of_a_flipped_bit() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("db");
    build(&dir);
    let out = kevo_in(&["check"], &dir);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("no problems found"));

    let (table, dump) = biggest_table(&dir);
    let name = table.file_name().and_then(|n| n.to_str()).expect("name");
    let block = &dump["blocks"][1];
    let footer = &dump["footer"];
    for (what, at) in [
        ("data block", offset(&block["offset"]) + 5),
        ("index block", offset(&footer["index"]["offset"]) + 2),
        ("footer", offset(&footer["offset"]) + 3),
    ] {
        flip(&table, at);
        let out = kevo_in(&["check"], &dir);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stdout(&out));
        assert!(
            stdout(&out).contains(&format!("  {name}: offset")),
            "{what}: {}",
            stdout(&out)
        );
        let report = json(&kevo_in(&["check", "--json"], &dir));
        assert!(
            report["problems"]
                .as_array()
                .expect("problems")
                .iter()
                .all(|p| p["file"] == name),
            "{what}: {report}"
        );
        flip(&table, at);
    }
    assert_eq!(kevo_in(&["check"], &dir).status.code(), Some(0));

    let inspection = json(&kevo_in(&["inspect", "--json"], &dir));
    let manifest = inspection["manifest"]["name"].as_str().expect("manifest");
    flip(&dir.join(manifest), 10);
    let out = kevo_in(&["check"], &dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!("  {manifest}: offset 0")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn inspect_and_the_dumps_decode_real_files_as_text_and_json() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("db");
    build(&dir);
    let out = kevo_in(&["inspect"], &dir);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.contains("manifest MANIFEST-") && text.contains("L0:"),
        "{text}"
    );
    let inspection = json(&kevo_in(&["inspect", "--json"], &dir));
    let wal = inspection["wals"]
        .as_array()
        .expect("wals")
        .iter()
        .find(|w| w["size"].as_u64() > Some(0))
        .expect("a WAL with the last 20 keys");
    let wal = dir.join(wal["name"].as_str().expect("name"));

    let out = kevo_in(&["dump-wal"], &wal);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("batch at sequence"),
        "{}",
        stdout(&out)
    );
    let dump = json(&kevo_in(&["dump-wal", "--json"], &wal));
    assert_eq!(dump["records"].as_array().expect("records").len(), 20);

    let manifest = dir.join(inspection["manifest"]["name"].as_str().expect("name"));
    let out = kevo_in(&["dump-manifest"], &manifest);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("key order bytewise"),
        "{}",
        stdout(&out)
    );

    let (table, dump) = biggest_table(&dir);
    let out = kevo_in(&["dump-sst"], &table);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("data block at 0"), "{}", stdout(&out));
    let block = offset(&dump["blocks"][2]["offset"]);
    flip(&table, block + 1);
    let out = kevo_in(&["dump-sst"], &table);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "offset {block}: data block: block checksum mismatch"
        )),
        "{text}"
    );
    assert!(text.contains("DAMAGED"), "{text}");
}

#[test]
fn repair_makes_a_damaged_database_usable_and_check_clean() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("db");
    let model = build(&dir);
    let (table, dump) = biggest_table(&dir);
    let block = &dump["blocks"][1];
    let lost: Vec<String> = block["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["key"]["user_key"].as_str().expect("key").to_string())
        .collect();
    flip(&table, offset(&block["offset"]) + 9);

    let out = kevo_in(&["repair"], &dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(
        text.contains("rewritten") && text.contains("moved into lost/"),
        "{text}"
    );
    assert!(
        dir.join("lost")
            .join(table.file_name().expect("name"))
            .exists()
    );
    assert_eq!(kevo_in(&["check"], &dir).status.code(), Some(0));

    let out = kevo_in(&["scan"], &dir);
    assert_eq!(out.status.code(), Some(0));
    let scanned: BTreeMap<String, String> = stdout(&out)
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').expect("key<TAB>value");
            (k.to_string(), v.to_string())
        })
        .collect();
    let mut expected = model;
    for k in &lost {
        expected.remove(k);
    }
    assert_eq!(scanned, expected);
}

#[test]
fn usage_and_missing_paths_exit_2_with_one_line_on_stderr() {
    assert_eq!(kevo(&["check"]).status.code(), Some(2));
    assert_eq!(kevo(&["dump-sst"]).status.code(), Some(2));
    let tmp = tempfile::tempdir().expect("temp dir");
    for command in [
        "check",
        "inspect",
        "repair",
        "dump-sst",
        "dump-wal",
        "dump-manifest",
    ] {
        let out = kevo_in(&[command], &tmp.path().join("missing"));
        assert_eq!(out.status.code(), Some(2), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("kevo: "), "{command}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{command}: {err}");
    }
    // A WAL under another name needs --number to be verified.
    let renamed = tmp.path().join("log");
    std::fs::write(&renamed, b"").expect("write");
    assert_eq!(kevo_in(&["dump-wal"], &renamed).status.code(), Some(2));
    assert_eq!(
        kevo_in(&["dump-wal", "--number", "7"], &renamed)
            .status
            .code(),
        Some(0)
    );
}
