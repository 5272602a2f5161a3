//! `kevo info DIR`: what a database directory holds.

use std::path::Path;

use kevo::fs::{Fs, OsFs, read_file};
use kevo::options_file::OptionsFile;
use kevo::{Error, ErrorKind, Result};

/// OPTIONS files are small; anything larger is refused before it is read.
const OPTIONS_LIMIT: u64 = 1 << 20;

pub fn run(dir: &Path) -> Result<()> {
    let fs = OsFs::new();
    if !fs
        .exists(dir)
        .map_err(|e| Error::io("checking the directory", e).with_file(dir))?
    {
        return Err(Error::new(ErrorKind::NotFound, "no such database directory").with_file(dir));
    }
    let names = fs
        .list(dir)
        .map_err(|e| Error::io("listing the directory", e).with_file(dir))?;
    println!("database {}: {} files", dir.display(), names.len());
    for name in &names {
        println!("  {name}");
    }
    let Some(options_name) = names
        .iter()
        .filter(|n| n.starts_with("OPTIONS-") && !n.ends_with(".tmp"))
        .max()
    else {
        println!("no OPTIONS file: not a kevo database (yet)");
        return Ok(());
    };
    let path = dir.join(options_name);
    let bytes = read_file(&fs, &path, OPTIONS_LIMIT)
        .map_err(|e| Error::io("reading", e).with_file(&path))?;
    let file = OptionsFile::decode(&bytes).map_err(|e| e.with_file(&path))?;
    println!(
        "{options_name}: format version {}, key order {}",
        file.format_version, file.key_order
    );
    println!("{:#?}", file.options);
    Ok(())
}
