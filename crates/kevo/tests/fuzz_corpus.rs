//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) and a sweep of mutations of
//! each seed through every decoder, as a plain test: a regression found by fuzzing stays
//! fixed. Long fuzzing runs by hand with cargo-fuzz (docs/reliability.md).

use std::path::Path;

#[test]
fn every_corpus_file_and_its_mutations_decode_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut files = 0;
    for target in kevo::fuzzing::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            panic!("no corpus for {target}: run `cargo run -p kevo --example fuzz_seeds`");
        };
        for entry in entries {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            kevo::fuzzing::run(target, &data);
            // Truncations and byte flips of every corpus file, across the whole file.
            let step = (data.len() / 64).max(1);
            for at in (0..data.len()).step_by(step) {
                kevo::fuzzing::run(target, &data[..at]);
                let mut flipped = data.clone();
                flipped[at] ^= 0xa5;
                kevo::fuzzing::run(target, &flipped);
            }
            files += 1;
        }
    }
    assert!(files >= kevo::fuzzing::TARGETS.len());
}
