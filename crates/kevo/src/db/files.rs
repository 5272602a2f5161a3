//! The names kevo gives its files, and parsing them back. Only names of these shapes are ever
//! created, opened or deleted; anything else in the directory is left alone.

/// What a file in the database directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    /// `LOCK`
    Lock,
    /// `CURRENT`
    Current,
    /// `MANIFEST-NNNNNN`
    Manifest(u64),
    /// `NNNNNN.wal`
    Wal(u64),
    /// `NNNNNN.sst`
    Table(u64),
    /// `OPTIONS-NNNNNN`
    Options(u64),
    /// `*.tmp`: a file being written, removed on open.
    Temp,
}

/// The name of the LOCK file.
pub const LOCK: &str = "LOCK";

/// The name of a WAL segment.
pub fn wal_name(number: u64) -> String {
    format!("{number:06}.wal")
}

/// The name of a table.
pub fn table_name(number: u64) -> String {
    format!("{number:06}.sst")
}

/// The name of an OPTIONS file.
pub fn options_name(number: u64) -> String {
    format!("OPTIONS-{number:06}")
}

/// Parses a directory entry name; `None` for names kevo does not own.
pub fn parse(name: &str) -> Option<FileKind> {
    match name {
        "LOCK" => return Some(FileKind::Lock),
        "CURRENT" => return Some(FileKind::Current),
        _ => {}
    }
    if name.ends_with(".tmp") && parse(&name[..name.len() - 4]).is_some() {
        return Some(FileKind::Temp);
    }
    if let Some(n) = name.strip_prefix("MANIFEST-") {
        return number(n).map(FileKind::Manifest);
    }
    if let Some(n) = name.strip_prefix("OPTIONS-") {
        return number(n).map(FileKind::Options);
    }
    if let Some(n) = name.strip_suffix(".wal") {
        return number(n).map(FileKind::Wal);
    }
    if let Some(n) = name.strip_suffix(".sst") {
        return number(n).map(FileKind::Table);
    }
    None
}

/// A file number: decimal digits only (at least six, as written), no sign, no overflow.
fn number(digits: &str) -> Option<u64> {
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_foreign_names_are_not_ours() {
        assert_eq!(parse(&wal_name(7)), Some(FileKind::Wal(7)));
        assert_eq!(parse(&wal_name(1_234_567)), Some(FileKind::Wal(1_234_567)));
        assert_eq!(parse(&options_name(3)), Some(FileKind::Options(3)));
        assert_eq!(parse("000012.sst"), Some(FileKind::Table(12)));
        assert_eq!(parse("MANIFEST-000002"), Some(FileKind::Manifest(2)));
        assert_eq!(parse("LOCK"), Some(FileKind::Lock));
        assert_eq!(parse("CURRENT"), Some(FileKind::Current));
        assert_eq!(parse("000012.sst.tmp"), Some(FileKind::Temp));
        assert_eq!(parse("CURRENT.tmp"), Some(FileKind::Temp));
        for foreign in [
            "notes.txt",
            "12.wal",
            "+00012.wal",
            "00001a.sst",
            "../000001.wal",
            "x.tmp",
            "99999999999999999999999.wal",
            "",
        ] {
            assert_eq!(parse(foreign), None, "{foreign}");
        }
    }
}
