//! `kevo`: the command-line tool of the kevo storage engine.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;
mod info;

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
    /// and print what happened.
    Demo {
        /// Database directory to use instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Report on a database directory: its files and the options it was created with.
    Info {
        /// The database directory.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { dir } => demo::run(dir),
        Command::Info { dir } => info::run(&dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kevo: {err}");
            ExitCode::FAILURE
        }
    }
}
