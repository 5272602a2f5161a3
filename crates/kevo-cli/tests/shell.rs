//! `kevo shell DIR` and `kevo DIR` in script mode: commands piped to stdin, results on
//! stdout, failures on stderr with their line number, and the exit codes scripts rely on.
//! (A transaction conflict cannot be provoked from outside: a second process cannot open the
//! database while the shell holds it, as `the_shell_holds_the_database_lock` shows; the
//! shell's conflict report is tested in `src/shell/session.rs`.)

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn kevo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kevo"))
        .args(args)
        .output()
        .expect("run kevo")
}

/// Runs `kevo ARGS` with `script` on stdin.
fn kevo_with_input(args: &[&str], script: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kevo"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kevo");
    let written = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes());
    // A shell that failed to start exits without reading its input.
    if let Err(e) = written {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().expect("wait for kevo")
}

fn shell(db: &Path, script: &str) -> Output {
    kevo_with_input(&["shell", db.to_str().expect("utf-8 path")], script)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_session_of_puts_gets_deletes_scans_and_ranges() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let out = shell(
        &db,
        "# a comment, then a blank line\n\
         \n\
         put user:1 ann\n\
         put user:2 \"bob smith\"\n\
         put user:3 cy\n\
         put zone x\n\
         get user:2\n\
         get missing\n\
         scan user:\n\
         scan --reverse --limit 2\n\
         range user:2 zone\n\
         range - user:2\n\
         range user:3 - --reverse\n\
         delete user:1\n\
         delete never-there\n\
         get user:1\n\
         scan --limit 1\n\
         flush\n\
         compact\n\
         scan\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(
        stdout(&out),
        "OK\nOK\nOK\nOK\n\
         \"bob smith\"\n\
         (not found)\n\
         user:1\tann\nuser:2\t\"bob smith\"\nuser:3\tcy\n\
         zone\tx\nuser:3\tcy\n\
         user:2\t\"bob smith\"\nuser:3\tcy\n\
         user:1\tann\n\
         zone\tx\nuser:3\tcy\n\
         OK\nOK\n\
         (not found)\n\
         user:2\t\"bob smith\"\n\
         OK\nOK\n\
         user:2\t\"bob smith\"\nuser:3\tcy\nzone\tx\n"
    );
    // The shell's writes are in the database for the other commands.
    let db = db.to_str().expect("utf-8 path");
    assert_eq!(stdout(&kevo(&["get", db, "zone"])), "x\n");
    let stats = shell(Path::new(db), "stats\nstats --json\n");
    assert_eq!(stats.status.code(), Some(0), "{}", stderr(&stats));
    let text = stdout(&stats);
    assert!(text.contains("health: Ok"), "{text}");
    let json = &text[text.find('{').expect("JSON after the table")..];
    let value: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
    assert_eq!(value["health"]["status"], "Ok");
}

#[test]
fn kevo_dir_without_a_subcommand_runs_the_shell_on_an_existing_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let db = db.to_str().expect("utf-8 path");
    assert!(kevo(&["put", db, "k", "v"]).status.success());
    let out = kevo_with_input(&[db], "get k\nput k2 v2\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "v\nOK\n");
    assert_eq!(stdout(&kevo(&["get", db, "k2"])), "v2\n");

    // Unlike `kevo shell`, it does not create a database (a mistyped subcommand would).
    let missing = dir.path().join("stat");
    let out = kevo_with_input(&[missing.to_str().expect("utf-8")], "get k\n");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("kevo: not found: no kevo database here"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!missing.exists());

    // `kevo` alone prints the usage, with exit code 2.
    let out = kevo(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Usage: kevo [DIR]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn transactions_commit_and_roll_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let out = shell(
        &db,
        "put a 1\n\
         begin\n\
         put a 2\n\
         put b 2\n\
         delete c\n\
         get a\n\
         scan\n\
         commit\n\
         get a\n\
         begin\n\
         put a 3\n\
         delete b\n\
         scan\n\
         rollback\n\
         scan\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "OK\n\
         OK (transaction open)\nOK\nOK\nOK\n\
         2\n\
         a\t2\nb\t2\n\
         OK (committed)\n\
         2\n\
         OK (transaction open)\nOK\nOK\n\
         a\t3\n\
         OK (rolled back)\n\
         a\t2\nb\t2\n"
    );
}

#[test]
fn transaction_mistakes_fail_and_an_open_transaction_at_the_end_is_rolled_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let out = shell(
        &db,
        "commit\n\
         rollback\n\
         begin\n\
         begin\n\
         put k v\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "OK (transaction open)\nOK\n",
        "failed lines print nothing on stdout"
    );
    assert_eq!(
        stderr(&out),
        "kevo: line 1: no transaction is open (begin opens one)\n\
         kevo: line 2: no transaction is open (begin opens one)\n\
         kevo: line 4: a transaction is already open: commit or rollback first\n\
         kevo: end of input: a transaction was still open: rolled back, its writes were not applied\n"
    );
    let db = db.to_str().expect("utf-8 path");
    assert_eq!(
        kevo(&["get", db, "k"]).status.code(),
        Some(1),
        "not written"
    );
}

#[test]
fn a_snapshot_reads_the_past_until_released() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let out = shell(
        &db,
        "put a 1\n\
         put b 1\n\
         snapshot\n\
         put a 2\n\
         delete b\n\
         put c 2\n\
         get a\n\
         get c\n\
         scan\n\
         range b -\n\
         flush\n\
         compact\n\
         get b\n\
         snapshot\n\
         scan\n\
         snapshot release\n\
         put d 3\n\
         scan\n\
         snapshot release\n",
    );
    assert_eq!(out.status.code(), Some(1), "the last release had none");
    assert_eq!(
        stdout(&out),
        "OK\nOK\n\
         OK (snapshot at sequence 2)\n\
         OK\nOK\nOK\n\
         1\n\
         (not found)\n\
         a\t1\nb\t1\n\
         b\t1\n\
         OK\nOK\n\
         1\n\
         OK (snapshot at sequence 5)\n\
         a\t2\nc\t2\n\
         OK (snapshot released)\n\
         OK\n\
         a\t2\nc\t2\nd\t3\n"
    );
    assert_eq!(stderr(&out), "kevo: line 19: no snapshot is held\n");
}

#[test]
fn binary_keys_and_values_round_trip_through_escapes_and_base64() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let out = shell(
        &db,
        "put \\x00\\x01\\xff \"tab\\there\\nand \\\"quotes\\\" \\\\\"\n\
         put b64:AAH/AA== b64:aGVsbG8gd29ybGQ=\n\
         put - b64:\n\
         put \"b64:not decoded\" \"\"\n\
         scan\n\
         get b64:AAH/\n\
         get \\x00\\x01\\xff\\x00\n\
         range \\x00 \\x01\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = stdout(&out);
    assert_eq!(
        printed,
        "OK\nOK\nOK\nOK\n\
         \\x00\\x01\\xff\t\"tab\\there\\nand \\\"quotes\\\" \\\\\"\n\
         \\x00\\x01\\xff\\x00\t\"hello world\"\n\
         \"-\"\t\"\"\n\
         \"b64:not decoded\"\t\"\"\n\
         \"tab\\there\\nand \\\"quotes\\\" \\\\\"\n\
         \"hello world\"\n\
         \\x00\\x01\\xff\t\"tab\\there\\nand \\\"quotes\\\" \\\\\"\n\
         \\x00\\x01\\xff\\x00\t\"hello world\"\n"
    );
    // What scan prints reads back as the same bytes: put every line again into a second
    // database, and it scans the same.
    let scan: Vec<&str> = printed.lines().skip(4).take(4).collect();
    let script: String = scan
        .iter()
        .map(|line| format!("put {}\n", line.replace('\t', " ")))
        .chain(std::iter::once("scan\n".to_string()))
        .collect();
    let copy = shell(&dir.path().join("copy"), &script);
    assert_eq!(copy.status.code(), Some(0), "{}", stderr(&copy));
    let copied: Vec<String> = stdout(&copy).lines().skip(4).map(str::to_string).collect();
    assert_eq!(copied, scan);
    // And the bytes are the ones meant: `kevo get` prints values raw.
    let db = db.to_str().expect("utf-8 path");
    assert_eq!(
        kevo(&["get", db, "-"]).stdout,
        b"\n",
        "the key - holds the empty value"
    );
}

#[test]
fn bad_input_is_one_line_with_its_line_number_and_the_script_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let out = shell(
        &db,
        "fly away\n\
         get\n\
         put k\n\
         put k v extra\n\
         put k \\q\n\
         put k \\x4\n\
         put k \"open\n\
         get b64:***\n\
         scan --limit ten\n\
         scan --limit\n\
         scan --fast\n\
         range a\n\
         put \"\" v\n\
         put k v\n\
         get k\n",
    );
    assert_eq!(out.status.code(), Some(1), "a command failed");
    assert_eq!(stdout(&out), "OK\nv\n", "the good lines ran");
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 13, "{err}");
    let expected = [
        "kevo: line 1: unknown command fly (try help)",
        "kevo: line 2: missing argument: usage: get KEY",
        "kevo: line 3: missing argument: usage: put KEY VALUE",
        "kevo: line 4: too many arguments (quote words with spaces): usage: put KEY VALUE",
        "kevo: line 5: bad escape \\q at column 7",
        "kevo: line 6: bad escape at column 7: \\x takes two hex digits",
        "kevo: line 7: unterminated quote",
        "kevo: line 8: bad base64 in b64:***",
        "kevo: line 9: bad number for --limit: ten",
        "kevo: line 10: missing argument: --limit takes a number",
        "kevo: line 11: unknown option --fast for scan",
        "kevo: line 12: range needs FROM and TO",
        "kevo: line 13: invalid argument: keys must not be empty",
    ];
    for (line, prefix) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(prefix),
            "{line:?} should start with {prefix:?}"
        );
    }
}

#[test]
fn exit_stops_reading_and_an_empty_script_succeeds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let out = shell(&db, "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "", "no banner, no prompt");
    let out = shell(&db, "put a 1\r\nquit\nput b 2\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "OK\n");
    let out = shell(&db, "scan\nhelp\n");
    let text = stdout(&out);
    assert!(text.starts_with("a\t1\nCommands:\n"), "{text}");
    assert!(
        text.contains("range FROM TO [--reverse] [--limit N]"),
        "{text}"
    );
}

#[test]
fn a_directory_that_is_not_a_database_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("notes.txt"), "mine").expect("write");
    let out = shell(dir.path(), "put k v\n");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with("kevo: configuration error:"), "{err}");
    assert!(err.contains("not a kevo database"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert_eq!(stdout(&out), "");
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["notes.txt"], "nothing was written");
}

/// While a shell has the database open, another process cannot open it (the lock is
/// per open file description): `kevo put` fails with exit code 2 and says why.
#[test]
fn the_shell_holds_the_database_lock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("db");
    let db = db.to_str().expect("utf-8 path");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kevo"))
        .args(["shell", db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kevo shell");
    let mut answers = BufReader::new(child.stdout.take().expect("stdout"));
    {
        let mut stdin = child.stdin.take().expect("stdin");
        let mut ask = |line: &str| {
            writeln!(stdin, "{line}").expect("write a command");
            stdin.flush().expect("flush");
            let mut answer = String::new();
            answers.read_line(&mut answer).expect("read the answer");
            answer
        };
        assert_eq!(ask("begin"), "OK (transaction open)\n");
        assert_eq!(ask("put k mine"), "OK\n");
        let other = kevo(&["put", db, "k", "theirs"]);
        assert_eq!(other.status.code(), Some(2));
        let err = stderr(&other);
        assert!(err.contains("locked by another opener"), "{err}");
        assert_eq!(ask("commit"), "OK (committed)\n");
        assert_eq!(ask("get k"), "mine\n");
    }
    // stdin is closed: at the end of its input the shell closes the database and exits.
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        stdout(&kevo(&["get", db, "k"])),
        "mine\n",
        "the lock is gone"
    );
}
