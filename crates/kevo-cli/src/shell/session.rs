//! One shell session on an open database: the commands, parsed from a line's words and run
//! against the database, the open transaction or the held snapshot.

use std::fmt;
use std::io::Write;
use std::ops::Bound;

use kevo::{Db, ErrorKind, Snapshot, Transaction, Value};

use super::words::{self, Word, quote};

/// Every command: name, arguments and what it does (the `help` text, which leaves out
/// commands with no description, and tab completion).
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("put", "KEY VALUE", "set KEY to VALUE"),
    ("get", "KEY", "print the value of KEY, or (not found)"),
    ("delete", "KEY", "delete KEY (a missing key is fine)"),
    (
        "scan",
        "[PREFIX] [--reverse] [--limit N]",
        "KEY<TAB>VALUE lines in key order (with PREFIX)",
    ),
    (
        "range",
        "FROM TO [--reverse] [--limit N]",
        "the keys FROM <= key < TO (- for no bound)",
    ),
    (
        "begin",
        "",
        "open a transaction: reads and writes go through it",
    ),
    (
        "commit",
        "",
        "apply its writes at once; a conflict writes nothing",
    ),
    ("rollback", "", "discard its writes"),
    (
        "snapshot",
        "[release]",
        "read from a snapshot taken now / read live data again",
    ),
    ("flush", "", "write the memtable to a table"),
    ("compact", "", "compact the whole database"),
    (
        "stats",
        "[--json]",
        "tables and bytes per level, and health",
    ),
    ("help", "", "this text"),
    (
        "exit",
        "",
        "leave the shell (also quit, Ctrl-D, end of input)",
    ),
    ("quit", "", ""),
];

/// Options the scan-like commands take (tab completion).
pub const SCAN_OPTIONS: &[&str] = &["--reverse", "--limit"];

/// A parsed command.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Put(Vec<u8>, Vec<u8>),
    Get(Vec<u8>),
    Delete(Vec<u8>),
    Scan {
        prefix: Option<Vec<u8>>,
        listing: Listing,
    },
    Range {
        from: Option<Vec<u8>>,
        to: Option<Vec<u8>>,
        listing: Listing,
    },
    Begin,
    Commit,
    Rollback,
    Snapshot,
    SnapshotRelease,
    Flush,
    Compact,
    Stats {
        json: bool,
    },
    Help,
    Exit,
}

/// How a scan or range prints.
#[derive(Debug, Default, PartialEq, Eq)]
struct Listing {
    reverse: bool,
    limit: Option<usize>,
}

/// Whether the shell goes on after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Exit,
}

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// Bad input: unknown command, wrong arguments, bad escape or number. Nothing was done.
    Input(String),
    /// The database refused or failed the operation.
    Db {
        context: &'static str,
        error: kevo::Error,
    },
    /// Writing the output failed: the shell cannot go on.
    Output(std::io::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Input(message) => f.write_str(message),
            Failure::Db { context: "", error } => write!(f, "{error}"),
            Failure::Db { context, error } => write!(f, "{context}: {error}"),
            Failure::Output(error) => write!(f, "writing the output: {error}"),
        }
    }
}

impl From<kevo::Error> for Failure {
    fn from(error: kevo::Error) -> Self {
        Failure::Db { context: "", error }
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Failure::Output(error)
    }
}

/// The state of a shell: the database, the open transaction, the held snapshot.
pub struct Session {
    db: Db,
    /// While open, reads and writes go through it.
    txn: Option<Transaction>,
    /// While held (and no transaction is open), reads come from it.
    snapshot: Option<Snapshot>,
    /// Interactive sessions end scans with a count line.
    interactive: bool,
}

impl Session {
    pub fn new(db: Db, interactive: bool) -> Self {
        Session {
            db,
            txn: None,
            snapshot: None,
            interactive,
        }
    }

    /// The prompt, showing what reads go through.
    pub fn prompt(&self) -> &'static str {
        match (&self.txn, &self.snapshot) {
            (Some(_), _) => "kevo(tx)> ",
            (None, Some(_)) => "kevo(snapshot)> ",
            (None, None) => "kevo> ",
        }
    }

    /// Ends the session: an open transaction is rolled back; says so if there was one.
    pub fn end(&mut self) -> Option<&'static str> {
        self.snapshot = None;
        self.txn.take().map(|txn| {
            txn.rollback();
            "a transaction was still open: rolled back, its writes were not applied"
        })
    }

    /// Runs one line (blank lines and `#` comments do nothing), printing results to `out`.
    pub fn execute(&mut self, line: &[u8], out: &mut dyn Write) -> Result<Flow, Failure> {
        let words = words::split(line).map_err(Failure::Input)?;
        if words
            .first()
            .is_none_or(|w| w.plain && w.bytes.starts_with(b"#"))
        {
            return Ok(Flow::Continue);
        }
        let command = parse(&words).map_err(Failure::Input)?;
        self.run(command, out)
    }

    fn run(&mut self, command: Command, out: &mut dyn Write) -> Result<Flow, Failure> {
        match command {
            Command::Put(key, value) => self.write(key, Some(value), out)?,
            Command::Delete(key) => self.write(key, None, out)?,
            Command::Get(key) => self.get(&key, out)?,
            Command::Scan { prefix, listing } => self.scan(prefix, &listing, out)?,
            Command::Range { from, to, listing } => self.range(from, to, &listing, out)?,
            Command::Begin => {
                if self.txn.is_some() {
                    return Err(Failure::Input(
                        "a transaction is already open: commit or rollback first".into(),
                    ));
                }
                self.txn = Some(self.db.transaction());
                writeln!(out, "OK (transaction open)")?;
            }
            Command::Commit => self.commit(out)?,
            Command::Rollback => {
                self.txn.take().ok_or_else(no_transaction)?.rollback();
                writeln!(out, "OK (rolled back)")?;
            }
            Command::Snapshot => {
                let snapshot = self.db.snapshot();
                let sequence = snapshot.sequence();
                self.snapshot = Some(snapshot);
                writeln!(out, "OK (snapshot at sequence {sequence})")?;
            }
            Command::SnapshotRelease => {
                if self.snapshot.take().is_none() {
                    return Err(Failure::Input("no snapshot is held".into()));
                }
                writeln!(out, "OK (snapshot released)")?;
            }
            Command::Flush => {
                self.db.flush()?;
                writeln!(out, "OK")?;
            }
            Command::Compact => {
                self.db.compact()?;
                writeln!(out, "OK")?;
            }
            Command::Stats { json } => {
                crate::kv::write_stats(out, &self.db.lsm_shape(), &self.db.health(), json)?;
            }
            Command::Help => write_help(out)?,
            Command::Exit => return Ok(Flow::Exit),
        }
        Ok(Flow::Continue)
    }

    /// A put (`Some(value)`) or a delete (`None`), through the open transaction if any.
    fn write(
        &mut self,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        out: &mut dyn Write,
    ) -> Result<(), Failure> {
        match (&mut self.txn, value) {
            // The engine checks a transaction's keys at commit; refuse an empty one now.
            (Some(_), _) if key.is_empty() => {
                return Err(Failure::Input("keys must not be empty".into()));
            }
            (Some(txn), Some(value)) => txn.put(key, value),
            (Some(txn), None) => txn.delete(key),
            (None, Some(value)) => self.db.put(key, value)?,
            (None, None) => self.db.delete(key)?,
        }
        writeln!(out, "OK")?;
        Ok(())
    }

    fn get(&mut self, key: &[u8], out: &mut dyn Write) -> Result<(), Failure> {
        let value = match (&mut self.txn, &self.snapshot) {
            (Some(txn), _) => txn.get(key)?,
            (None, Some(snapshot)) => snapshot.get(key)?,
            (None, None) => self.db.get(key)?,
        };
        match value {
            Some(value) => writeln!(out, "{}", quote(&value))?,
            None => writeln!(out, "(not found)")?,
        }
        Ok(())
    }

    fn scan(
        &mut self,
        prefix: Option<Vec<u8>>,
        listing: &Listing,
        out: &mut dyn Write,
    ) -> Result<(), Failure> {
        let interactive = self.interactive;
        match (&mut self.txn, &self.snapshot, prefix) {
            (Some(txn), _, Some(p)) => list(txn.prefix(p), listing, interactive, out),
            (Some(txn), _, None) => list(txn.iter(), listing, interactive, out),
            (None, Some(s), Some(p)) => list(s.prefix(p), listing, interactive, out),
            (None, Some(s), None) => list(s.iter(), listing, interactive, out),
            (None, None, Some(p)) => list(self.db.prefix(p), listing, interactive, out),
            (None, None, None) => list(self.db.iter(), listing, interactive, out),
        }
    }

    fn range(
        &mut self,
        from: Option<Vec<u8>>,
        to: Option<Vec<u8>>,
        listing: &Listing,
        out: &mut dyn Write,
    ) -> Result<(), Failure> {
        let bounds = (
            from.map_or(Bound::Unbounded, Bound::Included),
            to.map_or(Bound::Unbounded, Bound::Excluded),
        );
        let interactive = self.interactive;
        match (&mut self.txn, &self.snapshot) {
            (Some(txn), _) => list(txn.range(bounds), listing, interactive, out),
            (None, Some(s)) => list(s.range(bounds), listing, interactive, out),
            (None, None) => list(self.db.range(bounds), listing, interactive, out),
        }
    }

    fn commit(&mut self, out: &mut dyn Write) -> Result<(), Failure> {
        let txn = self.txn.take().ok_or_else(no_transaction)?;
        txn.commit().map_err(|error| Failure::Db {
            context: if error.kind() == ErrorKind::Concurrency {
                "commit failed on a conflict, nothing was written (the transaction is closed; begin again to retry)"
            } else {
                "commit failed, nothing was written (the transaction is closed)"
            },
            error,
        })?;
        writeln!(out, "OK (committed)")?;
        Ok(())
    }
}

fn no_transaction() -> Failure {
    Failure::Input("no transaction is open (begin opens one)".into())
}

/// Prints `KEY<TAB>VALUE` lines, each a word the shell reads back as the same bytes.
fn list(
    iter: impl DoubleEndedIterator<Item = kevo::Result<(Value, Value)>>,
    listing: &Listing,
    interactive: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let limit = listing.limit.unwrap_or(usize::MAX);
    let iter: Box<dyn Iterator<Item = _>> = if listing.reverse {
        Box::new(iter.rev())
    } else {
        Box::new(iter)
    };
    let mut count = 0usize;
    for item in iter.take(limit) {
        let (key, value) = item?;
        writeln!(out, "{}\t{}", quote(&key), quote(&value))?;
        count += 1;
    }
    if interactive {
        let noun = if count == 1 { "entry" } else { "entries" };
        writeln!(out, "({count} {noun})")?;
    }
    Ok(())
}

fn write_help(out: &mut dyn Write) -> std::io::Result<()> {
    const WIDTH: usize = 20;
    writeln!(out, "Commands:")?;
    for (name, args, what) in COMMANDS.iter().filter(|(_, _, what)| !what.is_empty()) {
        let usage = if args.is_empty() {
            (*name).to_string()
        } else {
            format!("{name} {args}")
        };
        if usage.len() <= WIDTH {
            writeln!(out, "  {usage:<WIDTH$} {what}")?;
        } else {
            writeln!(out, "  {usage}\n  {:<WIDTH$} {what}", "")?;
        }
    }
    writeln!(
        out,
        "Keys and values are text; \"double quotes\" keep spaces; escapes: \\xNN \\n \\t\n\
         \\r \\0 \\\\ \\\"; b64:BASE64 for raw bytes. Output uses the same escapes, so it\n\
         reads back as the same bytes. Lines starting with # are comments."
    )
}

/// Parses a line's words (at least one) into a command.
fn parse(words: &[Word]) -> Result<Command, String> {
    let (first, args) = words.split_first().expect("a line with words");
    let Some(name) = first.plain_text() else {
        return Err(format!(
            "unknown command {} (try help)",
            quote(&first.bytes)
        ));
    };
    let name = name.to_ascii_lowercase();
    let data = |i: usize| args[i].data();
    let command = match name.as_str() {
        "put" => {
            arity(&name, args, 2, "KEY VALUE")?;
            Command::Put(data(0)?, data(1)?)
        }
        "get" => {
            arity(&name, args, 1, "KEY")?;
            Command::Get(data(0)?)
        }
        "delete" | "del" => {
            arity(&name, args, 1, "KEY")?;
            Command::Delete(data(0)?)
        }
        "scan" => {
            let (positional, listing) = listing_options(&name, args)?;
            if positional.len() > 1 {
                return Err(format!(
                    "scan takes at most one PREFIX, got {} words (quote a prefix with spaces)",
                    positional.len()
                ));
            }
            let prefix = positional.first().map(|w| w.data()).transpose()?;
            Command::Scan { prefix, listing }
        }
        "range" => {
            let (positional, listing) = listing_options(&name, args)?;
            if positional.len() != 2 {
                return Err(format!(
                    "range needs FROM and TO (- for no bound), got {} word{}",
                    positional.len(),
                    if positional.len() == 1 { "" } else { "s" }
                ));
            }
            let bound = |w: &Word| -> Result<Option<Vec<u8>>, String> {
                if w.plain_text() == Some("-") {
                    Ok(None)
                } else {
                    w.data().map(Some)
                }
            };
            Command::Range {
                from: bound(positional[0])?,
                to: bound(positional[1])?,
                listing,
            }
        }
        "begin" => no_args(&name, args, Command::Begin)?,
        "commit" => no_args(&name, args, Command::Commit)?,
        "rollback" => no_args(&name, args, Command::Rollback)?,
        "snapshot" => match args {
            [] => Command::Snapshot,
            [w] if w.plain_text() == Some("release") => Command::SnapshotRelease,
            _ => return Err("usage: snapshot, or snapshot release".into()),
        },
        "flush" => no_args(&name, args, Command::Flush)?,
        "compact" => no_args(&name, args, Command::Compact)?,
        "stats" => match args {
            [] => Command::Stats { json: false },
            [w] if w.plain_text() == Some("--json") => Command::Stats { json: true },
            _ => return Err("usage: stats [--json]".into()),
        },
        "help" | "?" => Command::Help,
        "exit" | "quit" => no_args(&name, args, Command::Exit)?,
        _ => {
            return Err(format!(
                "unknown command {} (try help)",
                quote(&first.bytes)
            ));
        }
    };
    Ok(command)
}

fn arity(name: &str, args: &[Word], wanted: usize, usage: &str) -> Result<(), String> {
    if args.len() == wanted {
        return Ok(());
    }
    let missing = if args.len() < wanted {
        "missing argument"
    } else {
        "too many arguments (quote words with spaces)"
    };
    Err(format!("{missing}: usage: {name} {usage}"))
}

fn no_args(name: &str, args: &[Word], command: Command) -> Result<Command, String> {
    if args.is_empty() {
        Ok(command)
    } else {
        Err(format!("{name} takes no arguments"))
    }
}

/// Takes `--reverse` and `--limit N` (plain words, anywhere) out of a scan's or range's
/// words; returns the other words.
fn listing_options<'w>(name: &str, args: &'w [Word]) -> Result<(Vec<&'w Word>, Listing), String> {
    let mut positional = Vec::new();
    let mut listing = Listing::default();
    let mut iter = args.iter();
    while let Some(word) = iter.next() {
        match word.plain_text() {
            Some("--reverse") => listing.reverse = true,
            Some("--limit") => {
                let Some(value) = iter.next() else {
                    return Err("missing argument: --limit takes a number".into());
                };
                let text = String::from_utf8_lossy(&value.bytes);
                let limit = text
                    .parse::<usize>()
                    .map_err(|_| format!("bad number for --limit: {}", quote(&value.bytes)))?;
                listing.limit = Some(limit);
            }
            Some(option) if option.starts_with("--") => {
                return Err(format!(
                    "unknown option {option} for {name} (--reverse, --limit N; quote a key that starts with --)"
                ));
            }
            _ => positional.push(word),
        }
    }
    Ok((positional, listing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kevo::Options;

    fn parse_line(line: &str) -> Result<Command, String> {
        parse(&words::split(line.as_bytes())?)
    }

    #[test]
    fn parses_commands_and_options() {
        assert_eq!(
            parse_line("PUT k v"),
            Ok(Command::Put(b"k".to_vec(), b"v".to_vec()))
        );
        assert_eq!(
            parse_line("scan --limit 2 p --reverse"),
            Ok(Command::Scan {
                prefix: Some(b"p".to_vec()),
                listing: Listing {
                    reverse: true,
                    limit: Some(2)
                }
            })
        );
        assert_eq!(
            parse_line(r#"range - "-""#),
            Ok(Command::Range {
                from: None,
                to: Some(b"-".to_vec()),
                listing: Listing::default()
            })
        );
        assert_eq!(
            parse_line(r#"scan "--reverse""#),
            Ok(Command::Scan {
                prefix: Some(b"--reverse".to_vec()),
                listing: Listing::default()
            })
        );
        assert_eq!(parse_line("snapshot release"), Ok(Command::SnapshotRelease));
    }

    #[test]
    fn bad_input_is_a_clear_message() {
        let err = |line: &str| parse_line(line).expect_err(line);
        assert!(err("fly k").starts_with("unknown command fly"));
        assert!(err("get").starts_with("missing argument: usage: get KEY"));
        assert!(err("put k v w").starts_with("too many arguments"));
        assert!(err("scan --limit x").starts_with("bad number for --limit: x"));
        assert!(err("scan --limit -1").starts_with("bad number for --limit"));
        assert!(err("scan --limit").contains("--limit takes a number"));
        assert!(err("scan --fast").starts_with("unknown option --fast"));
        assert!(err("range a").starts_with("range needs FROM and TO"));
        assert!(err("commit now").starts_with("commit takes no arguments"));
        assert!(err("snapshot take").starts_with("usage: snapshot"));
        assert!(err("get b64:!!").starts_with("bad base64 in b64:!!"));
    }

    fn run(session: &mut Session, line: &str) -> Result<String, String> {
        let mut out = Vec::new();
        session
            .execute(line.as_bytes(), &mut out)
            .map_err(|f| f.to_string())?;
        Ok(String::from_utf8(out).expect("utf-8 output"))
    }

    /// A second process cannot open the database while the shell holds it, so a conflict
    /// is provoked here: a write straight to the database between begin and commit.
    #[test]
    fn a_conflicting_commit_is_reported_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(dir.path(), Options::default()).expect("open");
        let mut session = Session::new(db.clone(), false);
        assert_eq!(run(&mut session, "put k 0").as_deref(), Ok("OK\n"));
        assert_eq!(
            run(&mut session, "begin").as_deref(),
            Ok("OK (transaction open)\n")
        );
        assert_eq!(session.prompt(), "kevo(tx)> ");
        run(&mut session, "put k 1").expect("buffered");
        run(&mut session, "put other 1").expect("buffered");
        db.put("k", "from elsewhere").expect("a concurrent write");
        let err = run(&mut session, "commit").expect_err("a conflict");
        assert!(
            err.starts_with("commit failed on a conflict, nothing was written"),
            "{err}"
        );
        assert!(err.contains("key \"k\" changed"), "{err}");
        assert_eq!(session.prompt(), "kevo> ", "the transaction is closed");
        assert_eq!(
            run(&mut session, "get k").as_deref(),
            Ok("\"from elsewhere\"\n")
        );
        assert_eq!(
            run(&mut session, "get other").as_deref(),
            Ok("(not found)\n")
        );
        let err = run(&mut session, "commit").expect_err("nothing open");
        assert!(err.starts_with("no transaction is open"), "{err}");
        // Begin again and retry: it commits.
        run(&mut session, "begin").expect("begin");
        run(&mut session, "put k 2").expect("buffered");
        assert_eq!(
            run(&mut session, "commit").as_deref(),
            Ok("OK (committed)\n")
        );
        assert_eq!(db.get("k").expect("get").as_deref(), Some(&b"2"[..]));
        assert!(session.end().is_none());
        db.close().expect("close");
    }

    #[test]
    fn transactions_see_their_own_writes_and_hide_them_until_commit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(dir.path(), Options::default()).expect("open");
        let mut session = Session::new(db.clone(), true);
        run(&mut session, "put a 1").expect("put");
        run(&mut session, "begin").expect("begin");
        run(&mut session, "put b 2").expect("put");
        run(&mut session, "delete a").expect("delete");
        assert_eq!(
            run(&mut session, "scan").as_deref(),
            Ok("b\t2\n(1 entry)\n")
        );
        assert_eq!(db.get("b").expect("get"), None, "not visible outside");
        let err = run(&mut session, "put \"\" v").expect_err("empty key");
        assert_eq!(err, "keys must not be empty");
        assert_eq!(
            session.end(),
            Some("a transaction was still open: rolled back, its writes were not applied")
        );
        assert_eq!(db.get("a").expect("get").as_deref(), Some(&b"1"[..]));
        db.close().expect("close");
    }
}
