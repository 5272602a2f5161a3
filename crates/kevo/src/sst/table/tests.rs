//! Table round trips, corruption sweeps and the filter's effect on block reads.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::ErrorKind;
use crate::fs::{MemFs, read_file};
use crate::key::append_internal_key;
use crate::options::{Compression, FilterPolicy};
use crate::sst::builder::{TableBuilder, TableOptions};

const PATH: &str = "/db/000009.sst";

/// Sorted (internal key, value) entries from (user key, sequence, is_put, value) tuples.
/// (user key, sequence) -> (is a put, value).
type RawEntries = BTreeMap<(Vec<u8>, u64), (bool, Vec<u8>)>;

/// Encoded (internal key, value) pairs in table order.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn entries_of(raw: &RawEntries) -> Entries {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = raw
        .iter()
        .map(|((user, seq), (put, value))| {
            let mut k = Vec::new();
            append_internal_key(
                &mut k,
                user,
                *seq,
                if *put {
                    ValueKind::Put
                } else {
                    ValueKind::Delete
                },
            );
            (k, if *put { value.clone() } else { Vec::new() })
        })
        .collect();
    out.sort_by(|a, b| key::compare(&a.0, &b.0));
    out
}

fn write_table(
    fs: &MemFs,
    entries: &[(Vec<u8>, Vec<u8>)],
    options: TableOptions,
) -> crate::sst::builder::TableInfo {
    fs.create_dir_all(Path::new("/db")).unwrap();
    let mut builder = TableBuilder::create(fs, Path::new(PATH), 9, options).unwrap();
    for (k, v) in entries {
        builder.add(k, v).unwrap();
    }
    builder.finish().unwrap()
}

fn options(block_size: usize, restart_interval: usize, compression: Compression) -> TableOptions {
    TableOptions {
        block_size,
        restart_interval,
        compression,
        filter_policy: FilterPolicy::BitsPerKey(10.0),
        prefix_extractor: None,
    }
}

/// The newest version of `user` at `seq` in `entries`, as the table should answer.
fn expected_get(entries: &[(Vec<u8>, Vec<u8>)], user: &[u8], seq: u64) -> Option<TableLookup> {
    let target = key::seek_key(user, seq);
    let (k, v) = entries
        .iter()
        .find(|(k, _)| key::compare(k, &target) != Ordering::Less)?;
    let parsed = ParsedKey::parse(k)?;
    (parsed.user_key == user).then(|| match parsed.kind {
        ValueKind::Put => TableLookup::Value(Bytes::copy_from_slice(v)),
        ValueKind::Delete => TableLookup::Deleted,
    })
}

fn compression_strategy() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Lz4),
        Just(Compression::Zstd(1))
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_table_reads_back_by_get_iteration_and_seek(
        raw in proptest::collection::btree_map(
            (proptest::collection::vec(0u8..5, 1..5), 1u64..20),
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40)),
            1..120,
        ),
        block_size in 64usize..2048,
        restart_interval in 1usize..17,
        compression in compression_strategy(),
        probes in proptest::collection::vec((proptest::collection::vec(0u8..5, 1..5), 0u64..25), 0..30),
    ) {
        let entries = entries_of(&raw);
        let fs = MemFs::new();
        let info = write_table(&fs, &entries, options(block_size, restart_interval, compression));
        prop_assert_eq!(info.properties.entries, entries.len() as u64);
        let table = Arc::new(Table::open(&fs, Path::new(PATH), 9, None).unwrap());
        prop_assert_eq!(table.properties(), &info.properties);

        let mut it = table.iter();
        it.seek_to_first();
        for (k, v) in &entries {
            prop_assert!(it.valid());
            prop_assert_eq!(it.key(), &k[..]);
            prop_assert_eq!(it.value(), &v[..]);
            it.next();
        }
        prop_assert!(!it.valid());
        it.status().unwrap();
        it.seek_to_last();
        for (k, _) in entries.iter().rev() {
            prop_assert!(it.valid());
            prop_assert_eq!(it.key(), &k[..]);
            it.prev();
        }
        prop_assert!(!it.valid());
        for (user, seq) in &probes {
            let target = key::seek_key(user, *seq);
            it.seek(&target);
            let expected = entries.iter().find(|(k, _)| key::compare(k, &target) != Ordering::Less);
            prop_assert_eq!(it.valid().then(|| it.key().to_vec()), expected.map(|e| e.0.clone()));
            prop_assert_eq!(table.get(user, *seq).unwrap(), expected_get(&entries, user, *seq));
        }
        for (user, seq) in raw.keys() {
            prop_assert_eq!(table.get(user, *seq).unwrap(), expected_get(&entries, user, *seq));
        }
    }
}

/// A small table over several blocks, and every answer it must give.
fn small_table(compression: Compression) -> (MemFs, Entries) {
    let raw: RawEntries = (0..24u64)
        .map(|i| {
            (
                (format!("key{:02}", i % 16).into_bytes(), i + 1),
                (i % 5 != 0, format!("value-{i}").into_bytes()),
            )
        })
        .collect();
    let entries = entries_of(&raw);
    let fs = MemFs::new();
    write_table(&fs, &entries, options(128, 4, compression));
    (fs, entries)
}

/// Opens the table in `bytes` and asks every question; Ok(true) if every answer was right,
/// Err if damage was reported. A wrong answer panics.
fn check_all_answers(bytes: &[u8], entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("/db")).unwrap();
    fs.create(Path::new(PATH)).unwrap().append(bytes).unwrap();
    let table = Arc::new(Table::open(&fs, Path::new(PATH), 9, None)?);
    let mut it = table.iter();
    it.seek_to_first();
    for (k, v) in entries {
        if !it.valid() {
            it.status()?;
            panic!("iteration ended early without an error");
        }
        assert_eq!(
            (it.key(), it.value()),
            (&k[..], &v[..]),
            "iteration returned different data"
        );
        it.next();
    }
    it.status()?;
    assert!(!it.valid(), "iteration returned an extra entry");
    for (k, _) in entries {
        let parsed = ParsedKey::parse(k).unwrap();
        for seq in [
            parsed.sequence,
            parsed.sequence.saturating_sub(1),
            u64::MAX >> 8,
        ] {
            let got = table.get(parsed.user_key, seq)?;
            assert_eq!(
                got,
                expected_get(entries, parsed.user_key, seq),
                "get returned a wrong answer"
            );
        }
    }
    Ok(())
}

#[test]
fn every_single_bit_flip_is_detected_or_harmless_never_a_wrong_answer() {
    for compression in [Compression::None, Compression::Lz4] {
        let (fs, entries) = small_table(compression);
        let bytes = read_file(&fs, Path::new(PATH), 1 << 20).unwrap();
        check_all_answers(&bytes, &entries).unwrap();
        let (mut detected, mut harmless) = (0, 0);
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            match check_all_answers(&damaged, &entries) {
                Ok(()) => harmless += 1,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Corruption, "bit {bit}: {e}");
                    assert!(e.file().is_some(), "bit {bit}: {e}");
                    detected += 1;
                }
            }
        }
        // Every byte is covered by a checksum: nothing is harmless.
        assert_eq!(
            (detected, harmless),
            (bytes.len() * 8, 0),
            "{compression:?}"
        );
    }
}

#[test]
fn truncated_empty_and_garbage_files_are_refused() {
    let (fs, entries) = small_table(Compression::Lz4);
    let bytes = read_file(&fs, Path::new(PATH), 1 << 20).unwrap();
    for len in 0..bytes.len() {
        let err = check_all_answers(&bytes[..len], &entries).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corruption, "cut at {len}");
    }
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    assert_eq!(
        check_all_answers(&garbage, &entries).unwrap_err().kind(),
        ErrorKind::Corruption
    );
    let zeros = vec![0u8; 4096];
    assert_eq!(
        check_all_answers(&zeros, &entries).unwrap_err().kind(),
        ErrorKind::Corruption
    );
}

fn many_keys_table(filter_policy: FilterPolicy) -> (MemFs, Arc<Table>) {
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..2000u32)
        .map(|i| {
            let mut k = Vec::new();
            append_internal_key(
                &mut k,
                format!("present{i:06}").as_bytes(),
                1,
                ValueKind::Put,
            );
            (k, vec![7u8; 20])
        })
        .collect();
    let fs = MemFs::new();
    write_table(
        &fs,
        &entries,
        TableOptions {
            filter_policy,
            ..options(1024, 16, Compression::None)
        },
    );
    let table = Arc::new(Table::open(&fs, Path::new(PATH), 9, None).unwrap());
    (fs, table)
}

#[test]
fn a_lookup_the_filter_excludes_reads_no_data_block() {
    let (_fs, with_filter) = many_keys_table(FilterPolicy::BitsPerKey(10.0));
    let (_fs2, without) = many_keys_table(FilterPolicy::None);
    for i in 0..1000u32 {
        // Absent keys that sort among the present ones, so the index alone cannot rule them out.
        let absent = format!("present{i:06}x");
        assert_eq!(with_filter.get(absent.as_bytes(), 10).unwrap(), None);
        assert_eq!(without.get(absent.as_bytes(), 10).unwrap(), None);
    }
    assert_eq!(
        without.block_reads(),
        1000,
        "without a filter every lookup reads a block"
    );
    assert!(
        with_filter.block_reads() <= 40,
        "10 bits/key lets ~1% through: {} block reads",
        with_filter.block_reads()
    );
    assert_eq!(
        with_filter.get(b"present000042", 10).unwrap(),
        Some(TableLookup::Value(Bytes::from_static(&[7u8; 20])))
    );
}

#[test]
fn the_block_cache_serves_repeated_reads() {
    let (fs, entries) = small_table(Compression::Lz4);
    let cache = Arc::new(TableBlockCache::new(1 << 20));
    let table = Table::open(&fs, Path::new(PATH), 9, Some(cache.clone())).unwrap();
    let user = key::user_key(&entries[3].0).to_vec();
    table.get(&user, u64::MAX >> 8).unwrap();
    let reads = table.block_reads();
    for _ in 0..10 {
        table.get(&user, u64::MAX >> 8).unwrap();
    }
    assert_eq!(table.block_reads(), reads, "repeated reads hit the cache");
    assert!(cache.hits() >= 10);
}

#[test]
fn a_table_written_with_one_filter_policy_reads_without_knowing_it() {
    for policy in [
        FilterPolicy::BitsPerKey(4.0),
        FilterPolicy::FalsePositiveRate(0.001),
        FilterPolicy::None,
    ] {
        let (_fs, table) = many_keys_table(policy);
        for i in (0..2000u32).step_by(97) {
            assert!(
                table
                    .get(format!("present{i:06}").as_bytes(), 5)
                    .unwrap()
                    .is_some(),
                "{policy:?}"
            );
        }
        assert_eq!(
            table.properties().filter_size == 0,
            policy == FilterPolicy::None
        );
    }
}

#[test]
fn keys_out_of_order_are_refused_and_an_unfinished_table_leaves_no_file() {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("/db")).unwrap();
    let mut builder = TableBuilder::create(
        &fs,
        Path::new(PATH),
        9,
        options(4096, 16, Compression::None),
    )
    .unwrap();
    let k = |u: &[u8], s| {
        let mut out = Vec::new();
        append_internal_key(&mut out, u, s, ValueKind::Put);
        out
    };
    builder.add(&k(b"b", 1), b"").unwrap();
    assert_eq!(
        builder.add(&k(b"a", 1), b"").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        builder.add(&k(b"b", 1), b"").unwrap_err().kind(),
        ErrorKind::InvalidArgument,
        "duplicate"
    );
    assert_eq!(
        builder.add(b"short", b"").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    builder.add(&k(b"c", 1), b"").unwrap();
    drop(builder);
    assert_eq!(
        fs.list(Path::new("/db")).unwrap(),
        Vec::<String>::new(),
        "the temporary file is removed"
    );
}

#[test]
fn a_finished_table_is_published_atomically() {
    let fs = MemFs::new();
    let (_, entries) = small_table(Compression::None);
    fs.create_dir_all(Path::new("/db")).unwrap();
    fs.start_trace();
    write_table(&fs, &entries, options(128, 4, Compression::None));
    let trace = fs.take_trace();
    let kinds: Vec<_> = trace.iter().map(|t| t.op.kind).collect();
    let sync = kinds
        .iter()
        .position(|k| *k == crate::fs::OpKind::Sync)
        .unwrap();
    let rename = kinds
        .iter()
        .position(|k| *k == crate::fs::OpKind::Rename)
        .unwrap();
    let sync_dir = kinds
        .iter()
        .position(|k| *k == crate::fs::OpKind::SyncDir)
        .unwrap();
    assert!(sync < rename && rename < sync_dir, "{kinds:?}");
    assert!(kinds[..sync].iter().all(|k| matches!(
        k,
        crate::fs::OpKind::CreateDir | crate::fs::OpKind::Create | crate::fs::OpKind::Append
    )));
    fs.crash(crate::fs::CrashMode::DropUnsynced);
    let bytes = read_file(&fs, Path::new(PATH), 1 << 20).unwrap();
    check_all_answers(&bytes, &entries).unwrap();
}

#[test]
fn sampled_bit_flips_in_a_large_table_are_detected_never_a_wrong_answer() {
    // A table of many blocks (~200 KiB); 3 000 flips at pseudo-random offsets, each
    // checked by a full iteration and a get of a sample of keys.
    let raw: RawEntries = (0..4000u64)
        .map(|i| {
            (
                (format!("user{i:06}").into_bytes(), i + 1),
                (i % 9 != 0, format!("value-{i}-").repeat(4).into_bytes()),
            )
        })
        .collect();
    let entries = entries_of(&raw);
    let fs = MemFs::new();
    write_table(&fs, &entries, options(4096, 16, Compression::Lz4));
    let bytes = read_file(&fs, Path::new(PATH), 1 << 22).unwrap();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut detected = 0;
    for _ in 0..3000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let bit = (state % (bytes.len() as u64 * 8)) as usize;
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        let fs = MemFs::new();
        fs.create_dir_all(Path::new("/db")).unwrap();
        fs.create(Path::new(PATH))
            .unwrap()
            .append(&damaged)
            .unwrap();
        let Ok(table) = Table::open(&fs, Path::new(PATH), 9, None) else {
            detected += 1;
            continue;
        };
        let table = Arc::new(table);
        let mut it = table.iter();
        it.seek_to_first();
        let mut i = 0;
        while it.valid() {
            assert_eq!(
                (it.key(), it.value()),
                (&entries[i].0[..], &entries[i].1[..]),
                "bit {bit}: wrong data"
            );
            i += 1;
            it.next();
        }
        match it.status() {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Corruption, "bit {bit}");
                detected += 1;
            }
            Ok(()) => panic!("bit {bit}: a flip passed a full iteration undetected"),
        }
    }
    assert_eq!(detected, 3000);
}
