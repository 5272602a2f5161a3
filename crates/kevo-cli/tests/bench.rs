//! `kevo bench` as scripts use it: the JSON report, read checks, and refusals.

use std::process::{Command, Output};

use serde_json::Value;

fn kevo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kevo"))
        .args(args)
        .output()
        .expect("run kevo")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

fn workload<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["workloads"]
        .as_array()
        .expect("workloads")
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("{name} is reported"))
}

fn count(w: &Value, field: &str) -> u64 {
    w[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{}: {field}", w["name"]))
}

#[test]
fn a_short_run_reports_every_workload_in_json() {
    let names = [
        "fillseq",
        "readrandom",
        "readseq",
        "readreverse",
        "seekrandom",
        "deleterandom",
        "readmissing",
    ];
    let doc = json(&kevo(&[
        "bench",
        "--num",
        "2000",
        "--benchmarks",
        &names.join(","),
        "--json",
    ]));
    assert_eq!(doc["engine"], "kevo");
    assert_eq!(doc["workloads"].as_array().map(Vec::len), Some(names.len()));
    for name in names {
        let w = workload(&doc, name);
        assert!(count(w, "ops") > 0, "{w}");
        assert!(w["ops_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{w}");
        let latency = &w["latency_us"];
        assert!(latency["p50"].as_f64() <= latency["max"].as_f64(), "{w}");
    }
    let fill = workload(&doc, "fillseq");
    assert_eq!(count(fill, "ops"), 2000);
    let amp = &fill["amplification"];
    assert!(amp["write_amp"].as_f64().is_some_and(|a| a > 0.0), "{fill}");
    assert!(amp["space_amp"].as_f64().is_some_and(|a| a > 0.0), "{fill}");
    assert_eq!(amp["live_bytes"].as_u64(), Some(2000 * (16 + 100)));
    assert!(workload(&doc, "readrandom")["amplification"].is_null());

    let reads = workload(&doc, "readrandom");
    assert_eq!(count(reads, "found"), count(reads, "ops"), "{reads}");
    assert_eq!(count(reads, "not_found"), 0);
    for scan in ["readseq", "readreverse"] {
        assert_eq!(count(workload(&doc, scan), "found"), 2000);
    }
    assert_eq!(
        count(workload(&doc, "seekrandom"), "found"),
        2000,
        "every key exists before deleterandom"
    );
    let missing = workload(&doc, "readmissing");
    assert_eq!(count(missing, "found"), 0, "{missing}");
    for name in names {
        let mismatches = &workload(&doc, name)["mismatches"];
        assert!(
            mismatches.is_null() || mismatches == 0,
            "{name}: {mismatches}"
        );
    }
    assert!(doc["peak_rss_bytes"].as_u64().is_some_and(|b| b > 0));
}

#[test]
fn reads_first_fill_the_database_as_setup_and_threads_share_the_work() {
    let doc = json(&kevo(&[
        "bench",
        "--num",
        "1000",
        "--threads",
        "2",
        "--benchmarks",
        "readrandom,readwhilewriting,fillsync",
        "--json",
    ]));
    assert_eq!(doc["setup"][0]["name"], "fillrandom");
    let reads = workload(&doc, "readrandom");
    assert_eq!((count(reads, "ops"), count(reads, "threads")), (1000, 2));
    assert!(count(reads, "found") > 0);
    let rww = workload(&doc, "readwhilewriting");
    assert_eq!(count(rww, "ops"), 1000);
    assert!(count(rww, "writer_ops") > 0, "{rww}");
    assert_eq!(count(workload(&doc, "fillsync"), "ops"), 1000);
}

#[test]
fn an_existing_database_is_reused_and_foreign_files_are_never_deleted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let db = db.to_str().expect("utf-8");
    let base = ["bench", "--num", "500", "--json", "--db", db];
    json(&kevo(&[&base[..], &["--benchmarks", "fillseq"]].concat()));
    let doc = json(&kevo(
        &[
            &base[..],
            &["--use_existing_db", "--benchmarks", "readrandom,readseq"],
        ]
        .concat(),
    ));
    let reads = workload(&doc, "readrandom");
    assert_eq!(count(reads, "found"), 500, "{reads}");
    assert_eq!(count(reads, "mismatches"), 0);
    assert_eq!(count(workload(&doc, "readseq"), "found"), 500);

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "mine").expect("write");
    let out = kevo(&[
        "bench",
        "--num",
        "10",
        "--benchmarks",
        "fillseq",
        "--db",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to delete"));
    assert!(notes.exists());
}

#[test]
fn bad_flags_exit_2_with_a_one_line_error() {
    for (args, message) in [
        (
            &["--benchmarks", "fillseq,nosuchbench"][..],
            "kevo: invalid argument: unknown benchmark `nosuchbench`",
        ),
        (&["--num", "0"][..], "kevo: invalid argument: --num"),
        (
            &["--num", "100000", "--key_size", "4"][..],
            "kevo: invalid argument: --key_size",
        ),
        (
            &["--compression_ratio", "0"][..],
            "kevo: invalid argument: --compression_ratio",
        ),
        (
            &["--use_existing_db"][..],
            "kevo: invalid argument: --use_existing_db",
        ),
        (
            &["--prefix_len", "17"][..],
            "kevo: invalid argument: --prefix_len",
        ),
    ] {
        let out = kevo(&[&["bench"][..], args].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with(message), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// Blocks per op of `name` in a run of fillrandom and `name` with `flags`.
fn blocks_per_op(name: &str, flags: &[&str]) -> (f64, Value) {
    let doc = json(&kevo(
        &[
            &[
                "bench",
                "--num",
                "20000",
                "--reads",
                "2000",
                "--write_buffer_size",
                "65536",
                "--benchmarks",
                &format!("fillrandom,{name}"),
                "--json",
            ][..],
            flags,
        ]
        .concat(),
    ));
    let w = workload(&doc, name).clone();
    assert_eq!(count(&w, "mismatches"), 0, "{w}");
    let blocks = w["blocks_per_op"].as_f64().expect("kevo counts blocks");
    (blocks, w)
}

#[test]
fn prefix_scans_are_checked_and_a_prefix_extractor_saves_block_reads_on_missing_prefixes() {
    let (scan, w) = blocks_per_op("prefixscan", &["--prefix_len", "14"]);
    assert!(
        count(&w, "found") > 2000,
        "each scan finds its prefix's keys: {w}"
    );
    assert!(scan > 0.0);
    let (with_extractor, w) = blocks_per_op("prefixmissing", &["--prefix_len", "14"]);
    assert_eq!(count(&w, "found"), 0);
    let (without, _) = blocks_per_op("prefixmissing", &[]);
    assert!(
        with_extractor * 10.0 < without,
        "with a prefix extractor {with_extractor} blocks per scan, without {without}"
    );
}

#[test]
fn filter_policies_trade_memory_for_block_reads_of_missing_keys() {
    let (none, w) = blocks_per_op("readmissing", &["--filter_policy", "none"]);
    assert_eq!(w["filter_memory_bytes"].as_u64(), Some(0));
    let (bits, w) = blocks_per_op("readmissing", &["--filter_policy", "bits:10"]);
    assert!(count(&w, "filter_memory_bytes") > 10000, "{w}");
    assert!(
        bits * 10.0 < none,
        "10 bits per key: {bits} blocks per lookup, none: {none}"
    );
    let (optimized, _) = blocks_per_op("readmissing", &["--filter_policy", "optimized:10"]);
    assert!(optimized * 10.0 < none, "{optimized} against {none}");
}
