//! Process crashes on the real file system: `kevo shell DIR` (script mode, the default
//! `SyncMode::Always`) takes puts, deletes, flushes and compactions from a pipe and prints `OK` after each
//! acknowledged one; the test reads the acknowledgements and kills the shell with SIGKILL
//! at a different moment each round. The database is then opened in this process: every
//! acknowledged write must be there, nothing that was never sent may be, and the writes in
//! flight (sent, not acknowledged) may have applied only as a prefix. The rounds share
//! one database, so each also checks that the earlier rounds survived.
//!
//! `KEVO_KILL_ROUNDS` sets the number of rounds (default 5).

#![cfg(unix)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kevo::{Db, Options};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Commands sent ahead of the acknowledgements at most.
const WINDOW: usize = 32;
/// Commands per round at most (a round is normally killed long before).
const MAX_OPS: usize = 200_000;

/// One command sent to the shell.
enum Cmd {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Flush,
    Compact,
}

/// Command `i` of round `round`: a put of key `i`; every sixth deletes the key put three
/// commands before; every 97th flushes the memtable to a table and every 401st compacts
/// (both answer `OK`), so kills also land in flushes and compactions. Keys repeat across
/// rounds, so later rounds overwrite.
fn operation(round: usize, i: usize) -> Cmd {
    if i % 401 == 400 {
        Cmd::Compact
    } else if i % 97 == 96 {
        Cmd::Flush
    } else if i % 6 == 5 {
        Cmd::Delete(format!("k{:06}", i - 3).into_bytes())
    } else {
        let mut value = format!("r{round}x{i}x").into_bytes();
        value.resize(value.len() + (i * 37) % 150, b'a' + (round % 26) as u8);
        Cmd::Put(format!("k{i:06}").into_bytes(), value)
    }
}

fn command(cmd: &Cmd) -> String {
    match cmd {
        Cmd::Put(k, v) => format!(
            "put {} {}\n",
            String::from_utf8_lossy(k),
            String::from_utf8_lossy(v)
        ),
        Cmd::Delete(k) => format!("delete {}\n", String::from_utf8_lossy(k)),
        Cmd::Flush => "flush\n".to_string(),
        Cmd::Compact => "compact\n".to_string(),
    }
}

fn apply(model: &mut Model, cmd: &Cmd) {
    match cmd {
        Cmd::Put(k, v) => {
            model.insert(k.clone(), v.clone());
        }
        Cmd::Delete(k) => {
            model.remove(k);
        }
        Cmd::Flush | Cmd::Compact => {}
    }
}

/// What a round saw before the kill.
struct Round {
    /// Commands completely written to the pipe.
    sent: usize,
    /// `OK` lines read.
    acked: usize,
    stderr: String,
}

/// Runs `kevo shell DIR`, feeds it round `round`'s commands and kills it `delay` after the
/// first acknowledgement (or right after the spawn when `delay` is `None`).
fn run_and_kill(dir: &Path, round: usize, delay: Option<Duration>) -> Round {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kevo"))
        .args(["shell", dir.to_str().expect("utf-8 path")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kevo shell");
    let sent = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let writer = {
        let mut stdin = child.stdin.take().expect("stdin");
        let (sent, acked, stop) = (sent.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            for i in 0..MAX_OPS {
                while i >= acked.load(Ordering::Acquire) + WINDOW {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
                // One short line is one write of less than PIPE_BUF: it reaches the pipe
                // whole or not at all.
                if stdin
                    .write_all(command(&operation(round, i)).as_bytes())
                    .is_err()
                {
                    return; // the shell is gone
                }
                sent.store(i + 1, Ordering::Release);
            }
        })
    };
    let reader = {
        let stdout = child.stdout.take().expect("stdout");
        let acked = acked.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                assert_eq!(line, "OK", "every command is acknowledged with OK");
                acked.fetch_add(1, Ordering::AcqRel);
            }
        })
    };
    let errors = {
        let mut stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        })
    };

    if let Some(delay) = delay {
        let start = Instant::now();
        while acked.load(Ordering::Acquire) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the shell acknowledged nothing"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(delay);
    }
    child.kill().expect("SIGKILL the shell");
    let status = child.wait().expect("wait for the shell");
    assert!(!status.success(), "the shell was killed: {status:?}");
    stop.store(true, Ordering::Release);
    reader.join().expect("reader thread");
    writer.join().expect("writer thread");
    Round {
        sent: sent.load(Ordering::Acquire),
        acked: acked.load(Ordering::Acquire),
        stderr: errors.join().expect("stderr thread"),
    }
}

fn read_all(db: &Db) -> Model {
    db.iter()
        .map(|kv| {
            let (k, v) = kv.expect("scan after the kill");
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

#[test]
fn every_acknowledged_write_survives_sigkill() {
    let rounds: usize = std::env::var("KEVO_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("temp dir");
    let db_dir = dir.path().join("db");
    // The first round creates the database; the second kills the shell while it opens
    // (and recovers) it; the others kill it after different stretches of writing.
    let delays_ms: [Option<u64>; 5] = [Some(40), None, Some(5), Some(150), Some(400)];
    let mut model = Model::new();
    let mut total_acked = 0;
    for round in 0..rounds {
        let jitter = (round as u64 * 7_919) % 23;
        let delay = delays_ms[round % delays_ms.len()].map(|ms| Duration::from_millis(ms + jitter));
        let started = Instant::now();
        let seen = run_and_kill(&db_dir, round, delay);
        assert!(
            seen.acked <= seen.sent,
            "more acknowledgements than commands"
        );
        assert_eq!(
            seen.stderr, "",
            "round {round}: the shell reported a failure"
        );

        // A kill before the database was created leaves nothing to open.
        let created = db_dir.join("CURRENT").exists();
        if !created {
            assert_eq!(
                seen.acked, 0,
                "round {round}: acknowledged without a database"
            );
            eprintln!("round {round}: killed before the database was created");
            continue;
        }
        let db = Db::open(&db_dir, Options::default().create_if_missing(false))
            .unwrap_or_else(|e| panic!("round {round}: open after SIGKILL failed: {e}"));
        let recovered = read_all(&db);
        // The recovered state is the model after some n operations, acked <= n <= sent.
        let mut state = model.clone();
        for i in 0..seen.acked {
            apply(&mut state, &operation(round, i));
        }
        let mut applied = seen.acked;
        while state != recovered && applied < seen.sent {
            apply(&mut state, &operation(round, applied));
            applied += 1;
        }
        if state != recovered {
            let missing: Vec<_> = state
                .iter()
                .filter(|(k, v)| recovered.get(*k) != Some(*v))
                .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                .take(5)
                .collect();
            let extra: Vec<_> = recovered
                .iter()
                .filter(|(k, v)| state.get(*k) != Some(*v))
                .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                .take(5)
                .collect();
            panic!(
                "round {round}: {} acknowledged, {} sent: the recovered database is not the \
                 acknowledged history plus a prefix of the writes in flight (first keys \
                 missing or different: {missing:?}; unexpected: {extra:?})",
                seen.acked, seen.sent
            );
        }
        for (k, v) in &state {
            assert_eq!(
                db.get(k).expect("get after the kill").as_deref(),
                Some(&v[..]),
                "round {round}: get {}",
                String::from_utf8_lossy(k)
            );
        }
        db.close().expect("close");
        eprintln!(
            "round {round}: killed after {delay:?} ({:.0?} in all): {} acknowledged, {} sent, \
             {} recovered",
            started.elapsed(),
            seen.acked,
            seen.sent,
            applied
        );
        model = state;
        total_acked += seen.acked;
    }
    assert!(total_acked > 0, "no round acknowledged a write");
}
