//! `kevo inspect|check|repair DIR` and `kevo dump-sst|dump-wal|dump-manifest FILE`: thin
//! wrappers over `kevo::tools`, printing text (or JSON with `--json`).
//!
//! Exit codes: 0 nothing wrong; 1 problems found (check, the dumps, inspect) ; 2 an error
//! (bad usage, no such directory or file, I/O failure), one line on stderr. `repair` exits
//! 0 once the database is repaired, whatever it lost (the report says what).

use std::fmt::Display;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use kevo::fs::OsFs;
use kevo::tools;
use kevo::{Error, ErrorKind, Result};
use serde::Serialize;

/// How to print a report.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    /// JSON instead of text.
    pub json: bool,
    /// Values whole instead of cut (text only; JSON always has them whole).
    pub full: bool,
}

/// `svg`: also draw the live version into this file (`-`: to stdout, instead of the
/// report).
pub fn inspect(dir: &Path, svg: Option<&Path>, format: Format) -> Result<ExitCode> {
    let fs = OsFs::new();
    let report = tools::inspect(&fs, dir)?;
    if let Some(path) = svg {
        let options = read_options(&fs, dir, &report);
        crate::svg::write(path, &crate::svg::lsm_shape(&report, options.as_ref()))?;
    }
    if svg.is_none_or(|p| p.as_os_str() != "-") {
        print(&report, format)?;
    }
    Ok(code(report.problems.is_empty()))
}

/// The options in the inspection's OPTIONS file, for the picture's level targets; `None`
/// if there is none or it does not read (the picture says so and uses the defaults).
fn read_options(fs: &OsFs, dir: &Path, report: &tools::Inspection) -> Option<kevo::Options> {
    let file = report.options_file.as_ref()?;
    let bytes = kevo::fs::read_file(fs, &dir.join(&file.name), 1 << 20).ok()?;
    kevo::options_file::OptionsFile::decode(&bytes)
        .ok()
        .map(|f| f.options)
}

pub fn check(dir: &Path, format: Format) -> Result<ExitCode> {
    let report = tools::check(&OsFs::new(), dir)?;
    print(&report, format)?;
    Ok(code(report.ok()))
}

pub fn repair(dir: &Path, format: Format) -> Result<ExitCode> {
    let report = tools::repair(&OsFs::new(), dir)?;
    print(&report, format)?;
    Ok(ExitCode::SUCCESS)
}

pub fn dump_sst(file: &Path, format: Format) -> Result<ExitCode> {
    let dump = tools::dump_table(&OsFs::new(), file)?;
    print(&dump, format)?;
    Ok(code(dump.ok()))
}

pub fn dump_wal(file: &Path, number: Option<u64>, format: Format) -> Result<ExitCode> {
    let fs = OsFs::new();
    let dump = match number {
        Some(n) => tools::dump_wal_numbered(&fs, file, n)?,
        None => tools::dump_wal(&fs, file)?,
    };
    print(&dump, format)?;
    Ok(code(dump.ok()))
}

pub fn dump_manifest(file: &Path, number: Option<u64>, format: Format) -> Result<ExitCode> {
    let fs = OsFs::new();
    let dump = match number {
        Some(n) => tools::dump_manifest_numbered(&fs, file, n)?,
        None => tools::dump_manifest(&fs, file)?,
    };
    print(&dump, format)?;
    Ok(code(dump.ok()))
}

fn code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print<T: Serialize + Display>(report: &T, format: Format) -> Result<()> {
    let text = if format.json {
        let mut text = serde_json::to_string_pretty(report)
            .map_err(|e| Error::new(ErrorKind::Io, "encoding JSON").with_source(e))?;
        text.push('\n');
        text
    } else if format.full {
        format!("{report:#}")
    } else {
        report.to_string()
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("writing to stdout", e))
        }
        _ => Ok(()),
    }
}
