//! The `kevo` binary as scripts use it: commands, output, exit codes.

use std::process::{Command, Output};

fn kevo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kevo"))
        .args(args)
        .output()
        .expect("run kevo")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn put_get_delete_round_trip_with_script_friendly_exit_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let db = db.to_str().expect("utf-8 path");
    assert!(
        kevo(&["put", db, "greeting", "hello world"])
            .status
            .success()
    );
    let out = kevo(&["get", db, "greeting"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "hello world\n");
    assert_eq!(kevo(&["get", db, "missing"]).status.code(), Some(1));
    assert!(kevo(&["delete", db, "greeting"]).status.success());
    assert_eq!(kevo(&["get", db, "greeting"]).status.code(), Some(1));
}

#[test]
fn errors_are_one_line_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope");
    let out = kevo(&["get", missing.to_str().expect("utf-8"), "k"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("kevo: not found:"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!missing.exists(), "get does not create a database");

    std::fs::write(dir.path().join("notes.txt"), "mine").expect("write");
    let out = kevo(&["put", dir.path().to_str().expect("utf-8"), "k", "v"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a kevo database"));

    let out = kevo(&[
        "put",
        dir.path().join("db").to_str().expect("utf-8"),
        "",
        "v",
    ]);
    assert_eq!(out.status.code(), Some(2), "an empty key is refused");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("kevo: invalid argument"));
}

#[test]
fn the_demo_writes_reads_and_verifies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("demo");
    let out = kevo(&["demo", "--dir", db.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("180000 keys present after reopen"), "{text}");
    let info = kevo(&["info", db.to_str().expect("utf-8")]);
    assert!(info.status.success());
    assert!(
        stdout(&info).contains("format version 1"),
        "{}",
        stdout(&info)
    );
}

#[test]
fn flush_moves_data_into_a_table_and_stats_shows_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let db = db.to_str().expect("utf-8 path");
    assert!(kevo(&["put", db, "k", "v"]).status.success());
    let before = stdout(&kevo(&["stats", db]));
    assert!(before.contains("L0          0"), "{before}");
    assert!(kevo(&["flush", db]).status.success());
    let after = stdout(&kevo(&["stats", db]));
    assert!(after.contains("L0          1"), "{after}");
    let json = stdout(&kevo(&["stats", db, "--json"]));
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["lsm"]["levels"][0]["tables"], 1);
    assert_eq!(value["health"]["status"], "Ok");
    assert!(after.contains("health: Ok"), "{after}");
    assert_eq!(stdout(&kevo(&["get", db, "k"])), "v\n");
}

#[test]
fn scan_prints_prefixes_ranges_in_either_order_with_a_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let db = db.to_str().expect("utf-8 path");
    for (k, v) in [
        ("user:1", "ann"),
        ("user:2", "bob"),
        ("user:3", "cy"),
        ("zone", "x"),
    ] {
        assert!(kevo(&["put", db, k, v]).status.success());
    }
    assert_eq!(
        stdout(&kevo(&["scan", db, "user:"])),
        "user:1\tann\nuser:2\tbob\nuser:3\tcy\n"
    );
    assert_eq!(
        stdout(&kevo(&["scan", db, "--reverse", "--limit", "2"])),
        "zone\tx\nuser:3\tcy\n"
    );
    assert_eq!(
        stdout(&kevo(&["scan", db, "--from", "user:2", "--to", "zone"])),
        "user:2\tbob\nuser:3\tcy\n"
    );
    assert!(kevo(&["flush", db]).status.success());
    assert_eq!(
        stdout(&kevo(&["scan", db])).lines().count(),
        4,
        "after a flush too"
    );
}
