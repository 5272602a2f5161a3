//! `kevo`: the command-line tool of the kevo storage engine.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod bench;
mod demo;
mod info;
mod kv;
mod shell;
mod svg;
mod tools;

/// kevo: an embedded, crash-safe LSM-tree key-value store.
///
/// `kevo DIR` opens the shell on the database in DIR (which must exist; `kevo shell DIR`
/// creates one).
#[derive(Parser)]
#[command(
    version,
    about,
    args_conflicts_with_subcommands = true,
    arg_required_else_help = true
)]
struct Cli {
    /// A database directory: open the shell on it (as `kevo shell DIR`, but DIR must
    /// already hold a database).
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open a database (in a temporary directory unless --dir is given), write, read back,
    /// reopen, verify, and print what happened.
    Demo {
        /// Database directory to use instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Measure the engine with LevelDB's db_bench workloads: throughput, latency
    /// percentiles, write and space amplification (in a temporary database unless --db).
    Bench(Box<bench::BenchArgs>),
    /// Report on a database directory: its files and the options it was opened with.
    Info {
        /// The database directory.
        dir: PathBuf,
    },
    /// Print the value of a key (exit code 1 if it is absent).
    Get {
        /// The database directory (must exist).
        dir: PathBuf,
        /// The key, as text.
        key: String,
    },
    /// Set a key to a value (creates the database if missing).
    Put {
        /// The database directory.
        dir: PathBuf,
        /// The key, as text.
        key: String,
        /// The value, as text.
        value: String,
    },
    /// Print keys and values in key order: all, those with a prefix, or a range.
    Scan {
        /// The database directory (must exist).
        dir: PathBuf,
        /// Only keys starting with this prefix.
        prefix: Option<String>,
        /// Only keys ≥ this (with --to: a range; ignored with a prefix).
        #[arg(long)]
        from: Option<String>,
        /// Only keys < this.
        #[arg(long)]
        to: Option<String>,
        /// Newest key first.
        #[arg(long)]
        reverse: bool,
        /// At most this many entries.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Write the memtable to a table and wait for it.
    Flush {
        /// The database directory (must exist).
        dir: PathBuf,
    },
    /// Print the shape of the tree: tables and bytes per level, memtables, WALs.
    Stats {
        /// The database directory (must exist).
        dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a key (deleting a missing key is not an error).
    Delete {
        /// The database directory (must exist).
        dir: PathBuf,
        /// The key, as text.
        key: String,
    },
    /// A shell on a database (created if missing): put, get, scan, range, transactions.
    ///
    /// Interactive at a terminal (history, tab completion); otherwise reads the commands
    /// from stdin, one a line (exit code 0; 1 if a command failed; 2 if the shell could not
    /// run). `help` in the shell lists the commands; docs/operations.md describes them.
    Shell {
        /// The database directory.
        dir: PathBuf,
    },
    /// Print the live version without opening the database (no lock, nothing written):
    /// tables per level with key and sequence ranges, live WALs, manifest and counters.
    Inspect {
        /// The database directory.
        dir: PathBuf,
        /// Also draw the live version as one SVG picture into FILE (`-`: to stdout,
        /// instead of the report): a row per level, each table placed by its key range.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        #[command(flatten)]
        format: ToolFormat,
    },
    /// Verify every checksum and cross-reference of the live files (exit code 0 if
    /// clean, 1 if problems were found, 2 on an error).
    Check {
        /// The database directory.
        dir: PathBuf,
        #[command(flatten)]
        format: ToolFormat,
    },
    /// Salvage what is readable into a consistent database; replaced files are moved
    /// into DIR/lost/. The database must not be open.
    Repair {
        /// The database directory.
        dir: PathBuf,
        #[command(flatten)]
        format: ToolFormat,
    },
    /// Decode a table file block by block, flagging damage with its offset (exit code 1
    /// if damaged).
    DumpSst {
        /// The table file (NNNNNN.sst).
        file: PathBuf,
        #[command(flatten)]
        format: ToolFormat,
    },
    /// Decode a WAL file record by record with its batches (exit code 1 if damaged; a
    /// torn tail is only noted).
    DumpWal {
        /// The WAL file (NNNNNN.wal).
        file: PathBuf,
        /// The log number (checksum seed), if the file was renamed.
        #[arg(long)]
        number: Option<u64>,
        #[command(flatten)]
        format: ToolFormat,
    },
    /// Decode a manifest edit by edit, and the state the edits add up to (exit code 1 if
    /// damaged or contradictory).
    DumpManifest {
        /// The manifest file (MANIFEST-NNNNNN).
        file: PathBuf,
        /// The manifest number (checksum seed), if the file was renamed.
        #[arg(long)]
        number: Option<u64>,
        #[command(flatten)]
        format: ToolFormat,
    },
}

/// Output options of the inspection tools.
#[derive(clap::Args, Clone, Copy)]
struct ToolFormat {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Print values whole instead of cut at 64 bytes.
    #[arg(long)]
    full: bool,
}

impl From<ToolFormat> for tools::Format {
    fn from(f: ToolFormat) -> Self {
        tools::Format {
            json: f.json,
            full: f.full,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match (cli.command, cli.dir) {
        (Some(command), _) => command,
        (None, Some(dir)) => return report(shell::run(&dir, shell::Create::Never)),
        (None, None) => {
            let _ = Cli::command().print_help();
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Demo { dir } => demo::run(dir).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench::run(&args),
        Command::Info { dir } => info::run(&dir).map(|()| ExitCode::SUCCESS),
        Command::Get { dir, key } => kv::get(&dir, &key),
        Command::Put { dir, key, value } => kv::put(&dir, &key, &value).map(|()| ExitCode::SUCCESS),
        Command::Delete { dir, key } => kv::delete(&dir, &key).map(|()| ExitCode::SUCCESS),
        Command::Scan {
            dir,
            prefix,
            from,
            to,
            reverse,
            limit,
        } => kv::scan(
            &dir,
            &kv::ScanArgs {
                prefix,
                from,
                to,
                reverse,
                limit,
            },
        )
        .map(|()| ExitCode::SUCCESS),
        Command::Flush { dir } => kv::flush(&dir).map(|()| ExitCode::SUCCESS),
        Command::Stats { dir, json } => kv::stats(&dir, json).map(|()| ExitCode::SUCCESS),
        Command::Shell { dir } => shell::run(&dir, shell::Create::IfMissing),
        Command::Inspect { dir, svg, format } => {
            tools::inspect(&dir, svg.as_deref(), format.into())
        }
        Command::Check { dir, format } => tools::check(&dir, format.into()),
        Command::Repair { dir, format } => tools::repair(&dir, format.into()),
        Command::DumpSst { file, format } => tools::dump_sst(&file, format.into()),
        Command::DumpWal {
            file,
            number,
            format,
        } => tools::dump_wal(&file, number, format.into()),
        Command::DumpManifest {
            file,
            number,
            format,
        } => tools::dump_manifest(&file, number, format.into()),
    };
    report(result)
}

/// The exit code of a command; an error is one line on stderr and exit code 2.
fn report(result: kevo::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kevo: {err}");
            ExitCode::from(2)
        }
    }
}
