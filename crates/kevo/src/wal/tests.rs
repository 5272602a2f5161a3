//! WAL tests: round trips, torn tails at every length, every single-bit flip, recovery modes.

use std::path::{Path, PathBuf};

use super::format::{BLOCK_SIZE, HEADER_SIZE};
use super::*;
use crate::ErrorKind;
use crate::fs::{Fault, MemFs};

const NUMBER: u64 = 7;

fn wal_path() -> PathBuf {
    PathBuf::from("/db/000007.wal")
}

/// Payloads that exercise every fragment shape: empty, small, exactly filling a block,
/// leaving less than a header, and spanning several blocks.
fn tricky_payloads() -> Vec<Vec<u8>> {
    let fill = |len: usize, seed: u8| {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>()
    };
    vec![
        fill(0, 1),
        fill(10, 2),
        fill(BLOCK_SIZE - 3 * HEADER_SIZE - 10, 3), // ends the first block exactly
        fill(100, 4),
        fill(BLOCK_SIZE - 2 * HEADER_SIZE - 100 - 3, 5), // leaves 3 bytes: a trailer
        fill(3 * BLOCK_SIZE + 17, 6),
        fill(1, 7),
    ]
}

fn write_log(fs: &MemFs, payloads: &[Vec<u8>]) -> Vec<u8> {
    fs.create_dir_all(Path::new("/db")).unwrap();
    let mut writer = LogWriter::create(fs, &wal_path(), NUMBER, 1 << 20).unwrap();
    for chunk in payloads.chunks(2) {
        writer.add_records(chunk.iter().map(Vec::as_slice)).unwrap();
    }
    writer.sync().unwrap();
    crate::fs::read_file(fs, &wal_path(), 1 << 30).unwrap()
}

fn replay_bytes(bytes: &[u8], mode: WalRecoveryMode) -> Result<(Vec<Vec<u8>>, ReplayOutcome)> {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("/db")).unwrap();
    let f = fs.create(&wal_path()).unwrap();
    f.append(bytes).unwrap();
    let mut records = Vec::new();
    let outcome = replay(&fs, &wal_path(), NUMBER, mode, |payload, _| {
        records.push(payload.to_vec());
        Ok(())
    })?;
    Ok((records, outcome))
}

#[test]
fn records_of_every_shape_round_trip() {
    let payloads = tricky_payloads();
    let bytes = write_log(&MemFs::new(), &payloads);
    let (records, outcome) = replay_bytes(&bytes, WalRecoveryMode::AbsoluteConsistency).unwrap();
    assert!(records == payloads, "{} records", records.len());
    assert_eq!(outcome.damage, None);
    assert_eq!(outcome.valid_end, bytes.len() as u64);
}

#[test]
fn a_torn_tail_at_every_length_recovers_the_complete_records_before_it() {
    let payloads: Vec<Vec<u8>> = (0..6u8)
        .map(|i| vec![i; 40 + 30 * usize::from(i)])
        .collect();
    let bytes = write_log(&MemFs::new(), &payloads);
    let mut ends = Vec::new();
    let (_, full) = replay_bytes(&bytes, WalRecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(full.records, 6);
    // Record ends, to know how many whole records each prefix holds.
    let mut end = 0;
    for p in &payloads {
        end += HEADER_SIZE + p.len();
        ends.push(end);
    }
    for len in 0..bytes.len() {
        let whole = ends.iter().filter(|&&e| e <= len).count();
        let (records, outcome) =
            replay_bytes(&bytes[..len], WalRecoveryMode::TolerateCorruptedTail).unwrap();
        assert_eq!(records, payloads[..whole], "cut at {len}");
        let cut_mid_record = !ends.contains(&len) && len != 0;
        assert_eq!(outcome.damage.is_some(), cut_mid_record, "cut at {len}");
        assert_eq!(
            outcome.valid_end as usize,
            if whole == 0 { 0 } else { ends[whole - 1] }
        );
        let strict = replay_bytes(&bytes[..len], WalRecoveryMode::AbsoluteConsistency);
        assert_eq!(strict.is_err(), cut_mid_record, "cut at {len}");
    }
}

#[test]
fn a_torn_multi_block_record_is_dropped_whole() {
    let payloads = tricky_payloads();
    let bytes = write_log(&MemFs::new(), &payloads);
    let big_start = 2 * BLOCK_SIZE; // the first five records fill exactly two blocks
    for cut in [
        big_start + 10,
        big_start + BLOCK_SIZE,
        big_start + 2 * BLOCK_SIZE + 5,
    ] {
        let (records, outcome) =
            replay_bytes(&bytes[..cut], WalRecoveryMode::TolerateCorruptedTail).unwrap();
        assert!(
            records == payloads[..5],
            "cut at {cut}: {} records",
            records.len()
        );
        assert!(outcome.damage.is_some());
    }
}

/// Every single-bit flip is either a torn tail (only damage in the last record) or
/// Corruption; the records replayed are always a prefix of what was written.
#[test]
fn every_single_bit_flip_is_a_tail_loss_or_corruption_never_different_data() {
    let payloads: Vec<Vec<u8>> = (0..5u8)
        .map(|i| vec![i ^ 0x5a; 20 + 7 * usize::from(i)])
        .collect();
    let bytes = write_log(&MemFs::new(), &payloads);
    let last_start = bytes.len() - HEADER_SIZE - payloads[4].len();
    let (mut detected, mut tails) = (0, 0);
    for bit in 0..bytes.len() * 8 {
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        match replay_bytes(&damaged, WalRecoveryMode::TolerateCorruptedTail) {
            Ok((records, outcome)) => {
                assert!(
                    bit / 8 >= last_start,
                    "bit {bit}: a flip before the last record must not pass as a tail"
                );
                assert_eq!(records, payloads[..4], "bit {bit}");
                assert!(outcome.damage.is_some(), "bit {bit}");
                tails += 1;
            }
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::Corruption, "bit {bit}");
                assert!(bit / 8 < last_start, "bit {bit}");
                detected += 1;
            }
        }
    }
    assert_eq!(detected + tails, bytes.len() * 8);
    assert_eq!(tails, (bytes.len() - last_start) * 8);
}

#[test]
fn corruption_in_the_middle_is_handled_per_recovery_mode() {
    // Records big enough that each sits in its own block, so resync finds the next one.
    let payloads: Vec<Vec<u8>> = (0..3u8)
        .map(|i| vec![i; BLOCK_SIZE - HEADER_SIZE])
        .collect();
    let mut bytes = write_log(&MemFs::new(), &payloads);
    bytes[BLOCK_SIZE + HEADER_SIZE + 5] ^= 0xff; // inside the second record

    let err = replay_bytes(&bytes, WalRecoveryMode::TolerateCorruptedTail).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption);
    assert_eq!(err.offset(), Some(BLOCK_SIZE as u64));
    assert_eq!(err.file(), Some(wal_path().as_path()));

    let err = replay_bytes(&bytes, WalRecoveryMode::AbsoluteConsistency).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption);

    let (records, outcome) = replay_bytes(&bytes, WalRecoveryMode::PointInTime).unwrap();
    assert_eq!(records, payloads[..1]);
    assert!(outcome.stopped);

    let (records, outcome) = replay_bytes(&bytes, WalRecoveryMode::SkipAnyCorrupted).unwrap();
    assert_eq!(records, vec![payloads[0].clone(), payloads[2].clone()]);
    assert_eq!(outcome.damage.map(|d| d.0), Some(BLOCK_SIZE as u64));
}

#[test]
fn zeroed_tails_and_records_of_another_log_are_not_replayed() {
    let payloads = vec![b"one".to_vec(), b"two".to_vec()];
    let mut bytes = write_log(&MemFs::new(), &payloads);
    bytes.extend_from_slice(&[0; 100]);
    let (records, outcome) = replay_bytes(&bytes, WalRecoveryMode::TolerateCorruptedTail).unwrap();
    assert_eq!(records, payloads);
    assert_eq!(outcome.damage.map(|d| d.1), Some("zeroed bytes"));

    // The same bytes read as log number 8 (a recycled file) check out nowhere.
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("/db")).unwrap();
    fs.create(&wal_path()).unwrap().append(&bytes).unwrap();
    let outcome = replay(
        &fs,
        &wal_path(),
        NUMBER + 1,
        WalRecoveryMode::TolerateCorruptedTail,
        |_, _| panic!("no record of another log may be applied"),
    )
    .unwrap();
    assert_eq!(outcome.records, 0);
}

#[test]
fn a_failed_append_or_sync_retires_the_writer() {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("/db")).unwrap();
    let mut writer = LogWriter::create(&fs, &wal_path(), NUMBER, 0).unwrap();
    writer.add_records([&b"ok"[..]]).unwrap();
    fs.fail_nth(fs.op_count(), Fault::Torn { keep: 4 });
    let err = writer.add_records([&b"torn record"[..]]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(err.offset(), Some(HEADER_SIZE as u64 + 2));
    assert!(
        writer.add_records([&b"after"[..]]).is_err(),
        "no record may follow a torn one"
    );
    assert!(writer.sync().is_err());
    let (records, outcome) = replay_bytes(
        &crate::fs::read_file(&fs, &wal_path(), 1 << 20).unwrap(),
        WalRecoveryMode::TolerateCorruptedTail,
    )
    .unwrap();
    assert_eq!(records, vec![b"ok".to_vec()]);
    assert!(outcome.damage.is_some());

    let mut writer = LogWriter::create(&fs, Path::new("/db/000008.wal"), 8, 0).unwrap();
    writer.add_records([&b"x"[..]]).unwrap();
    fs.fail_nth(fs.op_count(), Fault::Eio);
    assert!(writer.sync().is_err());
    assert!(writer.add_records([&b"y"[..]]).is_err());
}

#[test]
fn enospc_on_append_is_a_resource_error() {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("/db")).unwrap();
    let mut writer = LogWriter::create(&fs, &wal_path(), NUMBER, 0).unwrap();
    fs.fail_nth(fs.op_count(), Fault::Enospc);
    assert_eq!(
        writer.add_records([&b"x"[..]]).unwrap_err().kind(),
        ErrorKind::Resource
    );
}
