//! `kevo get|put|delete DIR ...`: one operation on a database, for scripts.
//!
//! Exit codes: 0 success, 1 key not found (get), 2 error (message on stderr).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use kevo::{Db, Error, Health, LsmShape, Options, Result};

fn open_existing(dir: &Path) -> Result<Db> {
    Db::open(dir, Options::default().create_if_missing(false))
}

pub fn get(dir: &Path, key: &str) -> Result<ExitCode> {
    let db = open_existing(dir)?;
    let value = db.get(key)?;
    db.close()?;
    match value {
        Some(value) => {
            let mut out = std::io::stdout().lock();
            out.write_all(&value)
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|e| Error::io("writing to stdout", e))?;
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::from(1)),
    }
}

pub fn put(dir: &Path, key: &str, value: &str) -> Result<()> {
    let db = Db::open(dir, Options::default())?;
    db.put(key, value)?;
    db.close()
}

pub fn delete(dir: &Path, key: &str) -> Result<()> {
    let db = open_existing(dir)?;
    db.delete(key)?;
    db.close()
}

pub fn flush(dir: &Path) -> Result<()> {
    let db = open_existing(dir)?;
    db.flush()?;
    db.close()
}

pub fn stats(dir: &Path, json: bool) -> Result<()> {
    let db = open_existing(dir)?;
    let shape = db.lsm_shape();
    let health = db.health();
    db.close()?;
    write_stats(&mut std::io::stdout().lock(), &shape, &health, json)
        .map_err(|e| Error::io("writing to stdout", e))
}

/// What `kevo stats` (and the shell's `stats`) prints: a table, or JSON
/// (`{"lsm": LsmShape, "health": Health}`).
pub fn write_stats(
    out: &mut dyn Write,
    shape: &LsmShape,
    health: &Health,
    json: bool,
) -> std::io::Result<()> {
    if json {
        let doc = serde_json::json!({ "lsm": shape, "health": health });
        let text = serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?;
        return writeln!(out, "{text}");
    }
    writeln!(
        out,
        "level  tables        bytes  score  bits  fp seen/expected  key range"
    )?;
    for level in shape.levels.iter().filter(|l| l.tables > 0 || l.level == 0) {
        let score = level
            .compaction_score
            .map_or_else(|| "-".to_string(), |s| format!("{s:.2}"));
        let bits = level
            .filter_bits_per_key
            .map_or_else(|| "-".to_string(), |b| format!("{b:.1}"));
        let rates = match (level.filter_observed_fp_rate, level.filter_expected_fp_rate) {
            (Some(seen), Some(expected)) => {
                format!("{:.2}%/{:.2}%", seen * 100.0, expected * 100.0)
            }
            _ => "-".to_string(),
        };
        let range = level
            .key_range
            .as_ref()
            .map_or_else(String::new, |(lo, hi)| {
                format!("{} .. {}", escape(lo), escape(hi))
            });
        writeln!(
            out,
            "L{:<5} {:>6} {:>12} {:>6} {bits:>5} {rates:>17}  {range}",
            level.level, level.tables, level.bytes, score
        )?;
    }
    writeln!(
        out,
        "tables: {} bytes, pending compaction: {} bytes",
        shape.table_bytes, shape.pending_compaction_bytes
    )?;
    writeln!(
        out,
        "memtables: {} bytes ({} frozen), live WALs: {}, last sequence: {}",
        shape.memtable_bytes, shape.frozen_memtables, shape.live_wals, shape.last_sequence
    )?;
    let reasons = if health.reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", health.reasons.join("; "))
    };
    writeln!(out, "health: {:?}{reasons}", health.status)
}

/// What `kevo scan` prints.
pub struct ScanArgs {
    pub prefix: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub reverse: bool,
    pub limit: Option<usize>,
}

/// Prints `key<TAB>value` lines (text as is; other bytes escaped as \xNN).
pub fn scan(dir: &Path, args: &ScanArgs) -> Result<()> {
    use std::ops::Bound;
    let db = open_existing(dir)?;
    let iter = match (&args.prefix, &args.from, &args.to) {
        (Some(prefix), _, _) => db.prefix(prefix),
        (None, from, to) => {
            let lower = from
                .as_ref()
                .map_or(Bound::Unbounded, |f| Bound::Included(f.as_bytes().to_vec()));
            let upper = to
                .as_ref()
                .map_or(Bound::Unbounded, |t| Bound::Excluded(t.as_bytes().to_vec()));
            db.range::<Vec<u8>, _>((lower, upper))
        }
    };
    let iter: Box<dyn Iterator<Item = kevo::Result<(kevo::Value, kevo::Value)>>> = if args.reverse {
        Box::new(iter.rev())
    } else {
        Box::new(iter)
    };
    let mut out = std::io::stdout().lock();
    for item in iter.take(args.limit.unwrap_or(usize::MAX)) {
        let (k, v) = item?;
        writeln!(out, "{}\t{}", escape(&k), escape(&v))
            .map_err(|e| Error::io("writing to stdout", e))?;
    }
    drop(out);
    db.close()
}

/// Printable ASCII as is (backslash doubled), every other byte as `\xNN`.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\x");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
    out
}
