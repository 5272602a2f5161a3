//! The shell at a terminal: a prompt showing what reads go through, line editing, history
//! kept across sessions, and tab completion of command names and options.

use std::path::PathBuf;

use kevo::{Error, ErrorKind, Result};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{Config, Context, Editor, Helper};

use super::session::{COMMANDS, Failure, Flow, SCAN_OPTIONS, Session};

/// Reads commands from the terminal until `exit`, `quit` or Ctrl-D. A failed command prints
/// `error: ...` and the shell goes on; Ctrl-C clears the line.
pub fn run(session: &mut Session, banner: &str) -> Result<()> {
    let config = Config::builder()
        .auto_add_history(false)
        .history_ignore_space(true)
        .build();
    let mut editor: Editor<ShellHelper, FileHistory> =
        Editor::with_config(config).map_err(|e| terminal_error("setting up the terminal", e))?;
    editor.set_helper(Some(ShellHelper));
    let history = history_path();
    if let Some(path) = &history {
        // A missing or unreadable history file only means no history.
        let _ = editor.load_history(path);
    }
    println!("{banner}");
    let mut stdout = std::io::stdout();
    loop {
        match editor.readline(session.prompt()) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                match session.execute(line.as_bytes(), &mut stdout) {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Exit) => break,
                    Err(Failure::Output(e)) => return Err(Error::io("writing to stdout", e)),
                    Err(failure) => eprintln!("error: {failure}"),
                }
            }
            Err(ReadlineError::Interrupted) => {}
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(terminal_error("reading a line", e)),
        }
    }
    if let Some(note) = session.end() {
        eprintln!("note: {note}");
    }
    if let Some(path) = &history {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        // Best effort, as loading.
        let _ = editor.save_history(path);
    }
    Ok(())
}

fn terminal_error(what: &str, e: ReadlineError) -> Error {
    Error::new(ErrorKind::Io, format!("{what} on the terminal")).with_source(e)
}

/// Where history is kept: `$KEVO_HISTORY` (empty: none), else
/// `$XDG_STATE_HOME/kevo/history`, else `~/.kevo_history`; none if there is no home.
fn history_path() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(path) = std::env::var_os("KEVO_HISTORY") {
        return (!path.is_empty()).then(|| PathBuf::from(path));
    }
    if let Some(state) = var("XDG_STATE_HOME") {
        return Some(PathBuf::from(state).join("kevo").join("history"));
    }
    var("HOME").map(|home| PathBuf::from(home).join(".kevo_history"))
}

/// Completes the word under the cursor: a command name first, then `release` after
/// `snapshot`, and options after `scan`, `range` and `stats`. Returns where the completed
/// word starts and the candidates.
pub fn complete(line: &str, pos: usize) -> (usize, Vec<String>) {
    let before = &line[..pos];
    let start = before
        .rfind(|c: char| c.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let word = &before[start..];
    let mut earlier = before[..start].split_ascii_whitespace();
    let candidates: Vec<&str> = match earlier.next() {
        None => COMMANDS.iter().map(|(name, _, _)| *name).collect(),
        Some(command) => match command.to_ascii_lowercase().as_str() {
            "snapshot" if earlier.next().is_none() => vec!["release"],
            "scan" | "range" => SCAN_OPTIONS.to_vec(),
            "stats" => vec!["--json"],
            _ => Vec::new(),
        },
    };
    let matches = candidates
        .into_iter()
        .filter(|c| c.starts_with(word))
        .map(str::to_string)
        .collect();
    (start, matches)
}

struct ShellHelper;

impl Completer for ShellHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(complete(line, pos))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::complete;

    #[test]
    fn completes_commands_then_options() {
        let (start, words) = complete("co", 2);
        assert_eq!((start, words), (0, vec!["commit".into(), "compact".into()]));
        assert_eq!(complete("", 0).1.len(), super::COMMANDS.len());
        assert_eq!(complete("snapshot r", 10), (9, vec!["release".into()]));
        assert_eq!(complete("scan user: --l", 14), (11, vec!["--limit".into()]));
        assert_eq!(complete("range a b --", 12).1, ["--reverse", "--limit"]);
        assert!(complete("get k", 5).1.is_empty());
        // The cursor in the middle of the line: the word before it is completed.
        assert_eq!(complete("fl k", 2), (0, vec!["flush".into()]));
    }
}
