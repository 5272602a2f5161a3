//! `kevo`: the command-line tool of the kevo storage engine.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod demo;
mod info;
mod kv;

/// kevo: an embedded, crash-safe LSM-tree key-value store.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
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
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kevo: {err}");
            ExitCode::from(2)
        }
    }
}
