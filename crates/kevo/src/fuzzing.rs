//! Entry points for fuzzing every decoder of bytes kevo reads from disk: each takes
//! arbitrary bytes, decodes them, and exercises whatever decodes. None may panic, hang or
//! allocate without bound on any input. The cargo-fuzz targets in `fuzz/` call these, and
//! the test suite replays the committed corpus through them (`tests/fuzz_corpus.rs`).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::fs::{Fs, MemFs};
use crate::iter::InternalIterator;
use crate::options::WalRecoveryMode;

/// The decoders, by the name of their fuzz target.
pub const TARGETS: [&str; 8] = [
    "wal",
    "write_batch",
    "block",
    "table",
    "filter",
    "properties",
    "version_edit",
    "options_file",
];

/// Runs the decoder named `target` over `data`. Unknown names do nothing.
pub fn run(target: &str, data: &[u8]) {
    match target {
        "wal" => wal(data),
        "write_batch" => write_batch(data),
        "block" => block(data),
        "table" => table(data),
        "filter" => filter(data),
        "properties" => properties(data),
        "version_edit" => version_edit(data),
        "options_file" => options_file(data),
        _ => {}
    }
}

/// A file on a fresh MemFs holding `data`.
fn file_with(data: &[u8]) -> (MemFs, &'static Path) {
    let fs = MemFs::new();
    let path = Path::new("/f");
    // Writing to a fresh in-memory file system cannot fail.
    if let Ok(f) = fs.create(path) {
        let _ = f.append(data);
    }
    (fs, path)
}

/// The WAL reader under every recovery mode.
pub fn wal(data: &[u8]) {
    let (fs, path) = file_with(data);
    for mode in [
        WalRecoveryMode::TolerateCorruptedTail,
        WalRecoveryMode::AbsoluteConsistency,
        WalRecoveryMode::PointInTime,
        WalRecoveryMode::SkipAnyCorrupted,
    ] {
        let _ = crate::wal::replay(&fs, path, 7, mode, |payload, _| {
            let _ = crate::batch::WriteBatch::decode(payload);
            Ok(())
        });
    }
}

/// The write batch decoder, and iteration over what decodes.
pub fn write_batch(data: &[u8]) {
    if let Ok(batch) = crate::batch::WriteBatch::decode(data) {
        let _ = batch.iter().count();
    }
}

/// A data block: decode, then walk it both ways and seek.
pub fn block(data: &[u8]) {
    let Ok(block) = crate::sst::block::Block::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let mut it = block.iter();
    it.seek_to_first();
    let mut steps = 0;
    while it.valid() && steps < 10_000 {
        it.next();
        steps += 1;
    }
    it.seek_to_last();
    while it.valid() && steps < 20_000 {
        it.prev();
        steps += 1;
    }
    it.seek(data.get(..data.len().min(16)).unwrap_or_default());
    let _ = it.status();
}

/// A whole table file: open (footer, index, filter, properties), iterate, look up.
pub fn table(data: &[u8]) {
    let (fs, path) = file_with(data);
    let Ok(table) = crate::sst::table::Table::open(&fs, path, 1, None) else {
        return;
    };
    let table = Arc::new(table);
    let mut it = table.iter();
    it.seek_to_first();
    let mut steps = 0;
    while it.valid() && steps < 10_000 {
        let _ = table.get(crate::key::user_key(it.key()), u64::MAX >> 8);
        it.next();
        steps += 1;
    }
    let _ = it.status();
}

/// A bloom filter block.
pub fn filter(data: &[u8]) {
    if let Ok(filter) = crate::sst::filter::Filter::decode(Bytes::copy_from_slice(data)) {
        let _ = filter.may_contain(data);
    }
}

/// Table properties.
pub fn properties(data: &[u8]) {
    let _ = crate::sst::properties::TableProperties::decode(data);
}

/// A manifest record, applied to an empty version.
pub fn version_edit(data: &[u8]) {
    if let Ok(edit) = crate::version::edit::VersionEdit::decode(data) {
        let _ = crate::version::set::Version::empty(7).apply(&edit);
    }
}

/// An OPTIONS file.
pub fn options_file(data: &[u8]) {
    if let Ok(file) = crate::options_file::OptionsFile::decode(data) {
        let _ = file.check_compatible();
        let _ = file.options.validate();
    }
}

/// Valid encodings of every format, to seed the corpus (`kevo-fuzz-seeds` writes them).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let mut batch = crate::batch::WriteBatch::new();
    batch.put(b"key", b"value");
    batch.delete(b"gone");
    batch.set_sequence(5);
    out.push(("write_batch", batch.encoded().to_vec()));
    let mut wal = Vec::new();
    let mut encoder = crate::wal::format::LogEncoder::new(7, 0);
    encoder.encode(batch.encoded(), &mut wal);
    encoder.encode(&vec![0u8; 40_000], &mut wal); // spans two blocks
    out.push(("wal", wal));
    let mut builder = crate::sst::block::BlockBuilder::new(4);
    for i in 0..20u32 {
        let mut k = Vec::new();
        crate::key::append_internal_key(
            &mut k,
            format!("k{i:03}").as_bytes(),
            1,
            crate::key::ValueKind::Put,
        );
        builder.add(&k, b"v");
    }
    out.push(("block", builder.finish().to_vec()));
    let fs = MemFs::new();
    let path = Path::new("/t.sst");
    let options =
        crate::sst::builder::TableOptions::from(&crate::Options::default().block_size(256));
    if let Ok(mut table) = crate::sst::builder::TableBuilder::create(&fs, path, 1, options) {
        for i in 0..50u32 {
            let mut k = Vec::new();
            crate::key::append_internal_key(
                &mut k,
                format!("key{i:04}").as_bytes(),
                u64::from(i) + 1,
                crate::key::ValueKind::Put,
            );
            let _ = table.add(&k, b"some value");
        }
        if table.finish().is_ok()
            && let Ok(bytes) = crate::fs::read_file(&fs, path, 1 << 20)
        {
            out.push(("table", bytes));
        }
    }
    if let Some(mut f) =
        crate::sst::filter::FilterBuilder::new(crate::FilterPolicy::BitsPerKey(10.0))
    {
        for i in 0..100u32 {
            f.add_key(&i.to_le_bytes());
        }
        out.push(("filter", f.finish()));
    }
    let props = crate::sst::properties::TableProperties {
        entries: 3,
        max_sequence: 3,
        ..Default::default()
    };
    out.push(("properties", props.encode()));
    let edit = crate::version::edit::VersionEdit {
        key_order: Some("bytewise".into()),
        log_number: Some(3),
        ..Default::default()
    };
    out.push(("version_edit", edit.encode()));
    out.push((
        "options_file",
        crate::options_file::OptionsFile::current(&crate::Options::default()).encode(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_a_seed_and_runs_it() {
        let seeds = seeds();
        for target in TARGETS {
            assert!(
                seeds.iter().any(|(t, _)| *t == target),
                "no seed for {target}"
            );
        }
        for (target, data) in seeds {
            run(target, &data);
        }
    }
}
