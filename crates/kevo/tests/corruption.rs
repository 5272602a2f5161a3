//! Corruption sweeps: a small database (one table of several data blocks with a filter,
//! index, properties block and footer; one WAL of five records; a manifest of ten edits;
//! `CURRENT`; the OPTIONS file) is built on MemFs, then every bit of each file is flipped
//! in turn, and each file is cut at every length. Each damaged image is checked with
//! `kevo::tools::check`, opened, and read in full (a `get` of every key written and of
//! some never written, a forward and a reverse scan). Each outcome is classified:
//!
//! - **detected**: the open or a read fails with `ErrorKind::Corruption` naming the damaged
//!   file (every answer given before is still right), and `check` reports the damage;
//! - **harmless**: every answer equals the model's;
//! - for the WAL only, under each of the four `WalRecoveryMode`s, **recovered as
//!   documented**: the state read back is exactly what the mode promises for damage in
//!   that record (the records before it; all but it under `SkipAnyCorrupted`), a prefix of
//!   the history, and `check` notes a dropped tail. Where the mode promises `Corruption`,
//!   nothing else is accepted.
//!
//! Anything else fails the test: a panic (in the test or on a background thread), an error
//! of another kind, a wrong value, a deleted key come back, a key never written, half a
//! batch, a scan that skips or invents an entry.
//!
//! Size knobs: `KEVO_CORRUPTION_BITS` — `all` (the default: the 8 bits of every byte) or
//! `one` (one bit per byte, rotating through the 8 positions); `KEVO_CORRUPTION_STRIDE` —
//! flip every N-th byte only (default 1: every byte). Truncations are always exhaustive.
//! The default, exhaustive run takes about 20 s in debug on 2 cores.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{DIR, Model, Op};
use kevo::fs::{Fs, MemFs, read_file};
use kevo::{Compression, Db, Error, ErrorKind, Options, WalRecoveryMode};

const MODES: [WalRecoveryMode; 4] = [
    WalRecoveryMode::TolerateCorruptedTail,
    WalRecoveryMode::AbsoluteConsistency,
    WalRecoveryMode::PointInTime,
    WalRecoveryMode::SkipAnyCorrupted,
];

fn path(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

/// Options of the database: small blocks (several data blocks in a table of a few dozen
/// entries), no compression (the stored bytes are the entries), a bloom filter, a memtable
/// large enough that nothing is flushed but what the build flushes, and no background
/// compaction (the damaged table is read by the test's reads only).
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

fn key(i: usize) -> Vec<u8> {
    format!("key{i:02}").into_bytes()
}

/// Values of varied lengths, different in each round.
fn value(i: usize, round: usize) -> Vec<u8> {
    format!("v{round}-{i}-")
        .into_bytes()
        .repeat(2 + (i * 7 + round * 3) % 6)
}

/// Keys written and deleted before the table was written; a compaction dropped them.
fn gone(i: usize) -> Vec<u8> {
    format!("gone{i}").into_bytes()
}

fn batch(entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Op {
    Op::Batch(entries.to_vec())
}

/// The operations that end up in the table: puts of 16 keys, then (while a snapshot holds
/// the older versions, so the table keeps them) overwrites, deletes, and a batch mixing
/// them with a new key and a delete of a key never written.
fn table_ops() -> (Vec<Op>, Vec<Op>) {
    let first = (0..16).map(|i| Op::Put(key(i), value(i, 0))).collect();
    let second = vec![
        Op::Put(key(1), value(1, 1)),
        Op::Put(key(2), value(2, 1)),
        Op::Delete(key(3)),
        Op::Delete(key(4)),
        batch(&[
            (key(5), Some(value(5, 1))),
            (key(6), None),
            (key(16), Some(value(16, 1))),
            (key(17), None),
        ]),
    ];
    (first, second)
}

/// The operations left in the WAL: one record each.
fn wal_ops() -> Vec<Op> {
    vec![
        Op::Put(key(7), value(7, 2)),
        batch(&[
            (key(8), Some(value(8, 2))),
            (key(9), None),
            (key(18), Some(value(18, 2))),
            (key(1), None),
        ]),
        Op::Delete(key(10)),
        Op::Put(key(3), value(3, 2)),
        batch(&[
            (key(18), None),
            (key(19), Some(value(19, 2))),
            (key(0), Some(value(0, 2))),
        ]),
    ]
}

/// The small database, as the bytes of its files, and what it must read back.
struct Image {
    files: BTreeMap<String, Vec<u8>>,
    table: String,
    wal: String,
    manifest: String,
    /// The state after the table's operations (the WAL's history starts here).
    before_wal: Model,
    /// `after_wal[i]`: the state after the first `i` WAL records.
    after_wal: Vec<Model>,
    /// `[start, end)` of each WAL record in the WAL file.
    records: Vec<(u64, u64)>,
    /// Every key to `get`: all written, and a few never written.
    keys: Vec<Vec<u8>>,
}

impl Image {
    fn build() -> Image {
        let fs = MemFs::new();
        let db = Db::open(DIR, options(&fs)).unwrap();
        // Keys put and deleted, flushed, then compacted away: their tombstones reach the
        // bottom and go (the manifest records a table added, then deleted).
        for i in 0..4 {
            db.put(gone(i), value(i, 9)).unwrap();
        }
        for i in 0..4 {
            db.delete(gone(i)).unwrap();
        }
        db.flush().unwrap();
        db.compact().unwrap();

        let mut model = Model::new();
        let (first, second) = table_ops();
        for op in &first {
            op.apply_to_db(&db).unwrap();
            op.apply_to_model(&mut model);
        }
        let snapshot = db.snapshot();
        for op in &second {
            op.apply_to_db(&db).unwrap();
            op.apply_to_model(&mut model);
        }
        db.flush().unwrap();
        drop(snapshot);
        let before_wal = model.clone();
        let mut after_wal = vec![model.clone()];
        for op in wal_ops() {
            op.apply_to_db(&db).unwrap();
            op.apply_to_model(&mut model);
            after_wal.push(model.clone());
        }
        db.close().unwrap();

        let mut files = BTreeMap::new();
        for name in fs.list(Path::new(DIR)).unwrap() {
            if name != "LOCK" {
                let bytes = read_file(&fs, &path(&name), 1 << 20).unwrap();
                files.insert(name, bytes);
            }
        }
        let only = |suffix: &str| {
            let names: Vec<&String> = files
                .keys()
                .filter(|n| n.ends_with(suffix) || n.starts_with(suffix))
                .collect();
            assert_eq!(names.len(), 1, "one {suffix} file: {:?}", files.keys());
            names[0].clone()
        };
        let table = only(".sst");
        let wal = only(".wal");
        let manifest = only("MANIFEST-");

        // The database is healthy, and holds what it should.
        let report = kevo::tools::check(&fs, Path::new(DIR)).unwrap();
        assert!(report.ok(), "{report}");
        let wal_dump = kevo::tools::dump_wal(&fs, &path(&wal)).unwrap();
        assert!(wal_dump.ok() && wal_dump.notes.is_empty(), "{wal_dump:?}");
        let records: Vec<(u64, u64)> = wal_dump
            .records
            .iter()
            .map(|r| (r.offset, r.offset + 7 + r.length))
            .collect();
        assert_eq!(records.len(), wal_ops().len(), "one record per write");
        // The records tile the file: every byte belongs to one.
        assert_eq!(records[0].0, 0);
        assert!(records.windows(2).all(|w| w[0].1 == w[1].0));
        assert_eq!(records.last().unwrap().1, files[&wal].len() as u64);

        let mut keys: Vec<Vec<u8>> = (0..22).map(key).collect();
        keys.extend((0..5).map(gone));
        keys.push(b"a-key-never-written".to_vec());
        keys.push(b"zzz".to_vec());
        Image {
            files,
            table,
            wal,
            manifest,
            before_wal,
            after_wal,
            records,
            keys,
        }
    }

    /// A fresh file system holding the image with `name` replaced by `bytes`.
    fn with(&self, name: &str, bytes: &[u8]) -> MemFs {
        let fs = MemFs::new();
        fs.create_dir_all(Path::new(DIR)).unwrap();
        for (n, content) in &self.files {
            let file = fs.create(&path(n)).unwrap();
            file.append(if n == name { bytes } else { content })
                .unwrap();
            file.sync().unwrap();
        }
        fs.sync_dir(Path::new(DIR)).unwrap();
        fs
    }

    fn model(&self) -> &Model {
        self.after_wal.last().unwrap()
    }
}

/// Panics on the engine's own threads (`kevo-*`), which a test thread would not see.
static BACKGROUND_PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_background_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("kevo-"))
            {
                BACKGROUND_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

/// What reading a damaged database gave, every answer having been checked against
/// `expect`: `Ok(None)` when everything was read and equal, `Ok(Some(e))` for the first
/// `Corruption` met (the open's, or a read's), `Err` for a forbidden outcome.
fn read_back(
    fs: &MemFs,
    mode: WalRecoveryMode,
    keys: &[Vec<u8>],
    expect: &Model,
) -> Result<Option<Error>, String> {
    let mut first = None;
    let mut corruption = |e: Error, what: &str| -> Result<(), String> {
        if e.kind() == ErrorKind::Corruption {
            first.get_or_insert(e);
            Ok(())
        } else {
            Err(format!(
                "{what} failed with {:?}, not Corruption: {e}",
                e.kind()
            ))
        }
    };
    let db = match Db::open(DIR, options(fs).wal_recovery_mode(mode)) {
        Ok(db) => db,
        Err(e) => {
            corruption(e, "open")?;
            return Ok(first);
        }
    };
    for k in keys {
        match db.get(k) {
            Ok(got) => {
                let got = got.map(|v| v.to_vec());
                if got.as_ref() != expect.get(k) {
                    return Err(format!(
                        "get {}: {:?}, expected {:?}",
                        String::from_utf8_lossy(k),
                        got.map(|v| String::from_utf8_lossy(&v).into_owned()),
                        expect
                            .get(k)
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                    ));
                }
            }
            Err(e) => corruption(e, "get")?,
        }
    }
    let expected: Vec<(&Vec<u8>, &Vec<u8>)> = expect.iter().collect();
    for reverse in [false, true] {
        let iter: Box<dyn Iterator<Item = kevo::Result<_>>> = if reverse {
            Box::new(db.iter().rev())
        } else {
            Box::new(db.iter())
        };
        let mut at = 0;
        for item in iter {
            match item {
                Ok((k, v)) => {
                    let want = if reverse {
                        expected.len().checked_sub(at + 1).map(|i| expected[i])
                    } else {
                        expected.get(at).copied()
                    };
                    if want != Some((&k.to_vec(), &v.to_vec())) {
                        return Err(format!(
                            "{} scan, entry {at}: {} = {}, expected {:?}",
                            if reverse { "reverse" } else { "forward" },
                            String::from_utf8_lossy(&k),
                            String::from_utf8_lossy(&v),
                            want.map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                        ));
                    }
                    at += 1;
                }
                Err(e) => {
                    corruption(e, "scan")?;
                    at = usize::MAX;
                    break;
                }
            }
        }
        if at != usize::MAX && at != expected.len() {
            return Err(format!(
                "{} scan ended after {at} of {} entries",
                if reverse { "reverse" } else { "forward" },
                expected.len()
            ));
        }
    }
    if let Err(e) = db.close() {
        corruption(e, "close")?;
    }
    Ok(first)
}

/// The verdict on one damaged image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Detected,
    Harmless,
    /// WAL only: recovery dropped the damaged tail (or record), as its mode documents.
    Dropped,
}

/// Tallies per file and kind of damage.
#[derive(Debug, Default)]
struct Tally {
    tried: usize,
    detected: usize,
    harmless: usize,
    dropped: usize,
    /// Damage `check` reported although every read was right.
    check_only: usize,
}

impl Tally {
    fn add(&mut self, verdict: Verdict) {
        self.tried += 1;
        match verdict {
            Verdict::Detected => self.detected += 1,
            Verdict::Harmless => self.harmless += 1,
            Verdict::Dropped => self.dropped += 1,
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tried, {} detected, {} harmless",
            self.tried, self.detected, self.harmless
        )?;
        if self.check_only > 0 {
            write!(f, " ({} of them reported by check)", self.check_only)?;
        }
        if self.dropped > 0 {
            write!(f, ", {} recovered as documented", self.dropped)?;
        }
        Ok(())
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// The (byte, bit) flips to try in a file of `len` bytes.
fn flips(len: usize) -> Vec<(usize, u8)> {
    let stride: usize = env_or("KEVO_CORRUPTION_STRIDE", "1").parse().unwrap();
    let all_bits = match env_or("KEVO_CORRUPTION_BITS", "all").as_str() {
        "all" => true,
        "one" => false,
        other => panic!("KEVO_CORRUPTION_BITS is `all` or `one`, not `{other}`"),
    };
    (0..len)
        .step_by(stride.max(1))
        .flat_map(|byte| {
            let bits: Vec<u8> = if all_bits {
                (0..8).collect()
            } else {
                vec![(byte % 8) as u8]
            };
            bits.into_iter().map(move |bit| (byte, bit))
        })
        .collect()
}

/// Runs `f` on one damaged image, turning a panic (here or on a background thread) into a
/// failure naming the damage.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    count_background_panics();
    let before = BACKGROUND_PANICS.load(Ordering::SeqCst);
    let out = std::panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| panic!("{what}: panicked (see above)"));
    assert_eq!(
        BACKGROUND_PANICS.load(Ordering::SeqCst),
        before,
        "{what}: a background thread panicked (see above)"
    );
    out
}

/// Whether a finding or error about `named`, saying `what`, blames damage to `file`: it
/// names `file`, or `file` is a manifest that lost the edit removing a table (the table,
/// deleted since, is reported missing).
fn blames(file: &str, named: &str, what: &str) -> bool {
    named == file
        || (file.starts_with("MANIFEST-") && named.ends_with(".sst") && what.contains("missing"))
}

/// Whether `check` reports the damage to `file`.
fn check_finds(fs: &MemFs, file: &str) -> (bool, kevo::tools::CheckReport) {
    let report = kevo::tools::check(fs, Path::new(DIR)).unwrap();
    let found = report
        .problems
        .iter()
        .any(|p| blames(file, &p.file, &p.what));
    (found, report)
}

/// One damaged table or manifest: detected, or harmless. `check` must report the damage
/// whenever a read did.
fn judge(image: &Image, file: &str, damaged: &[u8], what: &str, tally: &mut Tally) {
    let fs = image.with(file, damaged);
    let (found, report) = check_finds(&fs, file);
    let outcome = read_back(
        &fs,
        WalRecoveryMode::TolerateCorruptedTail,
        &image.keys,
        image.model(),
    )
    .unwrap_or_else(|why| panic!("{what}: {why}"));
    match outcome {
        Some(e) => {
            let named = e
                .file()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            assert!(
                blames(file, &named, e.message()),
                "{what}: the Corruption must name the damaged file: {e}"
            );
            assert!(
                found,
                "{what}: reads report {e}, check finds nothing: {report}"
            );
            tally.add(Verdict::Detected);
        }
        None => {
            if found {
                tally.check_only += 1;
            }
            tally.add(Verdict::Harmless);
        }
    }
}

/// Flips every bit (per the size knobs) of `file`, then cuts it at every length; judges
/// each image. Returns the tallies of the flips and of the cuts.
fn sweep(image: &Image, file: &str) -> (Tally, Tally) {
    let original = image.files[file].clone();
    let started = std::time::Instant::now();
    let mut flipped = Tally::default();
    for (byte, bit) in flips(original.len()) {
        let mut damaged = original.clone();
        damaged[byte] ^= 1 << bit;
        let what = format!("{file} byte {byte} bit {bit}");
        guarded(&what, || judge(image, file, &damaged, &what, &mut flipped));
    }
    let mut cut = Tally::default();
    for len in 0..original.len() {
        let what = format!("{file} cut to {len} bytes");
        guarded(&what, || {
            judge(image, file, &original[..len], &what, &mut cut)
        });
    }
    eprintln!(
        "{file} ({} bytes): flips: {flipped}; truncations: {cut} ({:.1?})",
        original.len(),
        started.elapsed()
    );
    assert!(flipped.tried > 0);
    (flipped, cut)
}

/// Every byte of a table is covered by a checksum that is verified before the byte is used
/// (the footer's, and the index, filter and properties blocks', when the table is opened;
/// each data block's when it is read): no flip and no cut goes unnoticed.
#[test]
fn every_bit_flip_and_truncation_of_the_table_is_detected_never_a_wrong_answer() {
    let image = Image::build();
    // The table's blocks (each with its 5-byte trailer) and its 64-byte footer tile the
    // file: there is no padding, no byte that nothing reads.
    let fs = image.with("", &[]);
    let dump = kevo::tools::dump_table(&fs, &path(&image.table)).unwrap();
    let footer = dump.footer.clone().unwrap();
    let filter = footer.filter.unwrap();
    let mut extents: Vec<(u64, u64, String)> = dump
        .blocks
        .iter()
        .map(|b| {
            (
                b.offset,
                b.size + 5,
                format!("data block of {}", b.entry_count),
            )
        })
        .collect();
    extents.push((filter.offset, filter.size + 5, "filter".into()));
    extents.push((footer.index.offset, footer.index.size + 5, "index".into()));
    extents.push((
        footer.properties.offset,
        footer.properties.size + 5,
        "properties".into(),
    ));
    extents.push((footer.offset, 64, "footer".into()));
    extents.sort();
    let layout: Vec<String> = extents
        .iter()
        .map(|(offset, len, what)| format!("{what} at {offset}+{len}"))
        .collect();
    eprintln!("{}: {}", image.table, layout.join(", "));
    assert!(dump.blocks.len() >= 3, "several data blocks: {layout:?}");
    let mut at = 0;
    for (offset, len, what) in &extents {
        assert_eq!(*offset, at, "a gap before the {what}: {layout:?}");
        at += len;
    }
    assert_eq!(at, dump.file_size);
    let (flipped, cut) = sweep(&image, &image.table);
    assert_eq!(flipped.detected, flipped.tried, "every byte is checksummed");
    assert_eq!(flipped.check_only, 0);
    assert_eq!(cut.detected, cut.tried);
}

/// Every manifest record is checksummed. A damaged record before a valid one, or a whole
/// last record that fails its checksum, is `Corruption`. A last record that seems cut
/// short (a cut, or its length flipped) is dropped as a torn append, and so is every
/// record after a cut between records: then the manifest still names the WAL that the
/// lost flush deleted, and recovery refuses it.
#[test]
fn every_bit_flip_and_truncation_of_the_manifest_is_detected() {
    let image = Image::build();
    let fs = image.with("", &[]);
    let dump = kevo::tools::dump_manifest(&fs, &path(&image.manifest)).unwrap();
    eprintln!("{dump}");
    let (flipped, cut) = sweep(&image, &image.manifest);
    assert_eq!(flipped.detected, flipped.tried);
    assert_eq!(cut.detected, cut.tried);
}

/// `CURRENT` and the OPTIONS file: each flip and cut is `Corruption` at open, except the
/// cut of the OPTIONS file's last byte: the newline ending its checksum line is optional,
/// and without it the file still says the same.
#[test]
fn every_bit_flip_and_truncation_of_current_and_options_is_detected() {
    let image = Image::build();
    let (flipped, cut) = sweep(&image, "CURRENT");
    assert_eq!(flipped.detected, flipped.tried);
    assert_eq!(cut.detected, cut.tried);
    let options_file = image
        .files
        .keys()
        .find(|n| n.starts_with("OPTIONS-"))
        .unwrap()
        .clone();
    let (flipped, cut) = sweep(&image, &options_file);
    assert_eq!(flipped.detected, flipped.tried);
    assert_eq!((cut.detected, cut.harmless), (cut.tried - 1, 1));
}

/// Where a damaged WAL is damaged: the record, whether no whole record follows it (a
/// torn tail), and how many records the file still holds whole.
#[derive(Debug, Clone, Copy)]
struct WalDamage {
    record: Option<usize>,
    tail: bool,
    whole: usize,
}

/// What recovery must give for `damage` under `mode`: `None` for `Corruption`, else the
/// state read back.
fn wal_expectation(image: &Image, mode: WalRecoveryMode, damage: WalDamage) -> Option<Model> {
    let WalDamage {
        record,
        tail,
        whole,
    } = damage;
    let Some(i) = record else {
        return Some(image.after_wal[whole].clone());
    };
    match mode {
        WalRecoveryMode::TolerateCorruptedTail if tail => Some(image.after_wal[i].clone()),
        WalRecoveryMode::TolerateCorruptedTail | WalRecoveryMode::AbsoluteConsistency => None,
        WalRecoveryMode::PointInTime => Some(image.after_wal[i].clone()),
        WalRecoveryMode::SkipAnyCorrupted => {
            // Every record but the damaged one, applied in order.
            let ops = wal_ops();
            let mut model = image.before_wal.clone();
            for (j, op) in ops.iter().enumerate().take(whole) {
                if j != i {
                    op.apply_to_model(&mut model);
                }
            }
            Some(model)
        }
    }
}

/// One damaged WAL under every recovery mode: exactly what the mode documents.
fn judge_wal(
    image: &Image,
    damaged: &[u8],
    damage: WalDamage,
    what: &str,
    tally: &mut BTreeMap<String, Tally>,
) {
    for mode in MODES {
        let what = format!("{what}, {mode:?}");
        let fs = image.with(&image.wal, damaged);
        let (found, report) = check_finds(&fs, &image.wal);
        let expect = wal_expectation(image, mode, damage);
        let probe = expect.clone().unwrap_or_else(|| image.model().clone());
        let outcome =
            read_back(&fs, mode, &image.keys, &probe).unwrap_or_else(|why| panic!("{what}: {why}"));
        let verdict = match (outcome, expect) {
            (Some(e), None) => {
                let named = e
                    .file()
                    .and_then(Path::file_name)
                    .map(|n| n.to_string_lossy());
                assert_eq!(named.as_deref(), Some(image.wal.as_str()), "{what}: {e}");
                Verdict::Detected
            }
            (Some(e), Some(_)) => panic!("{what}: the mode keeps a prefix, but: {e}"),
            (None, None) => panic!("{what}: the mode must refuse this damage"),
            (None, Some(state)) if state == *image.model() => Verdict::Harmless,
            (None, Some(_)) => Verdict::Dropped,
        };
        if mode == WalRecoveryMode::TolerateCorruptedTail {
            // check judges as the default mode recovers: a problem exactly when the open
            // fails; a dropped tail is a note.
            assert_eq!(
                found,
                verdict == Verdict::Detected,
                "{what}: check disagrees with recovery: {report}"
            );
            if verdict == Verdict::Dropped && damage.record.is_some() {
                assert!(
                    report.notes.iter().any(|n| n.file == image.wal),
                    "{what}: check must note the dropped tail: {report}"
                );
            }
        }
        tally.entry(format!("{mode:?}")).or_default().add(verdict);
    }
}

#[test]
fn every_bit_flip_and_truncation_of_the_wal_recovers_what_the_mode_documents() {
    let image = Image::build();
    let original = image.files[&image.wal].clone();
    let record_of = |byte: u64| {
        image
            .records
            .iter()
            .position(|&(s, e)| s <= byte && byte < e)
    };
    let started = std::time::Instant::now();
    let mut flipped = BTreeMap::new();
    for (byte, bit) in flips(original.len()) {
        let mut damaged = original.clone();
        damaged[byte] ^= 1 << bit;
        let what = format!("{} byte {byte} bit {bit}", image.wal);
        let record = record_of(byte as u64);
        let damage = WalDamage {
            record,
            tail: record == Some(image.records.len() - 1),
            whole: image.records.len(),
        };
        guarded(&what, || {
            judge_wal(&image, &damaged, damage, &what, &mut flipped);
        });
    }
    let mut cut = BTreeMap::new();
    for len in 0..original.len() {
        let what = format!("{} cut to {len} bytes", image.wal);
        let whole = image
            .records
            .iter()
            .take_while(|&&(_, e)| e <= len as u64)
            .count();
        // A cut inside a record damages it (the torn tail); a cut between records leaves
        // a shorter, undamaged log.
        let record = image
            .records
            .iter()
            .position(|&(s, e)| s < len as u64 && (len as u64) < e);
        let damage = WalDamage {
            record,
            tail: true,
            whole,
        };
        guarded(&what, || {
            judge_wal(&image, &original[..len], damage, &what, &mut cut);
        });
    }
    eprintln!(
        "WAL {} ({} bytes, {} records), {:.1?}:",
        image.wal,
        original.len(),
        image.records.len(),
        started.elapsed()
    );
    for (mode, tally) in &flipped {
        eprintln!("  flips, {mode}: {tally}");
    }
    for (mode, tally) in &cut {
        eprintln!("  truncations, {mode}: {tally}");
    }
}

/// Found by the manifest sweep: a manifest cut just before its last record (or inside it,
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
