//! `kevo demo`: exercise what the engine has, in a temporary or given directory, and say
//! what happened.

use std::path::{Path, PathBuf};
use std::time::Instant;

use kevo::fs::{CrashMode, Fs, MemFs, OsFs, read_file, write_file_atomic};
use kevo::options_file::OptionsFile;
use kevo::{Error, Options, Result, SyncMode};

pub fn run(dir: Option<PathBuf>) -> Result<()> {
    let temp;
    let dir = match dir {
        Some(dir) => dir,
        None => {
            temp =
                tempfile::tempdir().map_err(|e| Error::io("creating a temporary directory", e))?;
            temp.path().to_path_buf()
        }
    };
    options_round_trip(&dir)?;
    crash_simulation()?;
    Ok(())
}

/// Validates options, persists them atomically through the real file system, reads back.
fn options_round_trip(dir: &Path) -> Result<()> {
    let started = Instant::now();
    let opts = Options::default()
        .sync_mode(SyncMode::Always)
        .memtable_size(4 << 20);
    opts.validate()?;
    let fs = OsFs::new();
    fs.create_dir_all(dir)
        .map_err(|e| Error::io("creating the directory", e).with_file(dir))?;
    let path = dir.join("OPTIONS-000001");
    let encoded = OptionsFile::current(&opts).encode();
    write_file_atomic(&fs, &path, &encoded)
        .map_err(|e| Error::io("writing", e).with_file(&path))?;
    let back =
        read_file(&fs, &path, 1 << 20).map_err(|e| Error::io("reading", e).with_file(&path))?;
    let decoded = OptionsFile::decode(&back)?;
    decoded.check_compatible()?;
    if decoded.options != opts {
        return Err(
            Error::corruption("the options read back differ from those written").with_file(&path),
        );
    }
    println!(
        "wrote {} ({} bytes, checksummed) atomically in {}, read it back and verified it in {:?}",
        path.display(),
        encoded.len(),
        dir.display(),
        started.elapsed()
    );
    Ok(())
}

/// Shows the crash model every engine test runs on: synced bytes survive, unsynced do not.
fn crash_simulation() -> Result<()> {
    let fs = MemFs::new();
    let dir = Path::new("/db");
    let io = |e| Error::io("in-memory file system", e);
    fs.create_dir_all(dir).map_err(io)?;
    let wal = fs.create(&dir.join("000001.wal")).map_err(io)?;
    wal.append(b"acknowledged write;").map_err(io)?;
    wal.sync().map_err(io)?;
    fs.sync_dir(dir).map_err(io)?;
    wal.append(b"unsynced write;").map_err(io)?;
    fs.crash(CrashMode::DropUnsynced);
    let after = read_file(&fs, &dir.join("000001.wal"), 1 << 20).map_err(io)?;
    println!(
        "simulated a power loss on MemFs after {} file operations: the log holds {:?}",
        fs.op_count(),
        String::from_utf8_lossy(&after)
    );
    Ok(())
}
