//! `kevo shell DIR` (and `kevo DIR`): commands on an open database, typed at a prompt with
//! history and tab completion when stdin is a terminal, or read line by line from stdin
//! (script mode: no prompt, no banner) when it is not.
//!
//! Exit codes (docs/operations.md, "Shell"): 0 every command succeeded; 1 a command failed
//! (script mode: each failure is reported on stderr with its line number, and the run goes
//! on; a transaction still open at the end of input counts as a failure); 2 the shell could
//! not run: the database could not be opened, or reading the input or writing the output
//! failed. Interactive sessions exit 0 unless the shell could not run.

mod interactive;
mod session;
mod words;

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use kevo::{Db, Error, ErrorKind, Options, Result};

use session::{Failure, Flow, Session};

/// Whether a missing database is created.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// `kevo shell DIR`: as `kevo put`, create the database if the directory is missing or
    /// empty.
    IfMissing,
    /// `kevo DIR`: the directory must hold a database (a mistyped subcommand must not
    /// create one).
    Never,
}

pub fn run(dir: &Path, create: Create) -> Result<ExitCode> {
    let existed = dir.join("CURRENT").exists();
    let options = Options::default().create_if_missing(create == Create::IfMissing);
    let db = match Db::open(dir, options) {
        Ok(db) => db,
        Err(e) if create == Create::Never && e.kind() == ErrorKind::NotFound => {
            return Err(Error::new(
                ErrorKind::NotFound,
                "no kevo database here (`kevo shell DIR` creates one; `kevo --help` lists the commands)",
            )
            .with_file(dir));
        }
        Err(e) => return Err(e),
    };
    let interactive = std::io::stdin().is_terminal();
    let mut session = Session::new(db.clone(), interactive);
    let result = if interactive {
        let banner = format!(
            "kevo shell on {} ({}). Type help for the commands, exit or Ctrl-D to leave.",
            dir.display(),
            if existed { "opened" } else { "a new database" }
        );
        interactive::run(&mut session, &banner).map(|()| ExitCode::SUCCESS)
    } else {
        script(
            &mut session,
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr(),
        )
    };
    // The database closes whatever happened; a failure to close is reported after the
    // failure that stopped the run, if any.
    let closed = db.close();
    let code = result?;
    closed?;
    Ok(code)
}

/// Script mode: every line of `input` is a command; results go to `out`, failures to `err`
/// as `kevo: line N: ...`, and the run goes on. Exit code 0, or 1 if any command failed.
fn script(
    session: &mut Session,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode> {
    let mut failed = false;
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io("reading commands from stdin", e))?;
        if read == 0 {
            break;
        }
        number += 1;
        while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            line.pop();
        }
        let flow = session.execute(&line, out);
        // Flushed after every command: a program driving the shell through a pipe sees
        // each answer as it comes, and stdout and stderr interleave in order.
        out.flush().map_err(|e| Error::io("writing to stdout", e))?;
        match flow {
            Ok(Flow::Continue) => {}
            Ok(Flow::Exit) => break,
            Err(Failure::Output(e)) => return Err(Error::io("writing to stdout", e)),
            Err(failure) => {
                failed = true;
                // Reporting is best effort: the failure already decides the exit code.
                let _ = writeln!(err, "kevo: line {number}: {failure}");
            }
        }
    }
    if let Some(note) = session.end() {
        failed = true;
        let _ = writeln!(err, "kevo: end of input: {note}");
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
