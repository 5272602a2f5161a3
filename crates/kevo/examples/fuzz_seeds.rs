//! Writes a valid encoding of every on-disk format into `fuzz/corpus/<target>/seed`, the
//! seed corpus of the fuzz targets: `cargo run -p kevo --example fuzz_seeds`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (target, data) in kevo::fuzzing::seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("seed"), data)?;
        println!("{target}: seed written");
    }
    Ok(())
}
