//! The `OPTIONS-NNNNNN` file: the options a database was opened with, as JSON a person can
//! read, with a format version and a checksum line.
//!
//! ```text
//! {                                  <- JSON document (pretty printed), see OptionsFile
//!   "options_version": 1,
//!   "format_version": 1,
//!   "key_order": "bytewise",
//!   "options": { ... every persisted field of Options ... }
//! }
//! checksum xxh3-64 0123456789abcdef  <- xxh3-64 of every byte above this line, 16 hex digits
//! ```
//!
//! Encoding and decoding are pure functions over bytes; the Db does the I/O.
//! An older `options_version` is migrated (fields it lacks take their defaults); a newer one
//! is refused with [`ErrorKind::Config`](crate::ErrorKind::Config).

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};
use crate::options::Options;

/// Version of the OPTIONS file layout this build writes and the newest it reads.
pub const OPTIONS_VERSION: u32 = 1;
/// Version of the on-disk data format (WAL, tables, manifest) this build writes.
pub const FORMAT_VERSION: u32 = 1;
/// The only key order kevo has: keys compare as unsigned bytes.
pub const KEY_ORDER: &str = "bytewise";

/// Files larger than this are not OPTIONS files; refused before parsing.
const MAX_OPTIONS_FILE_SIZE: usize = 1 << 20;
const CHECKSUM_PREFIX: &str = "checksum xxh3-64 ";

/// The decoded content of an OPTIONS file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionsFile {
    /// Layout version of this file.
    pub options_version: u32,
    /// Data format version of the database.
    pub format_version: u32,
    /// Key ordering the database was written with.
    pub key_order: String,
    /// The options, as persisted.
    pub options: Options,
}

impl OptionsFile {
    /// The file content recording `options` with this build's versions.
    pub fn current(options: &Options) -> Self {
        OptionsFile {
            options_version: OPTIONS_VERSION,
            format_version: FORMAT_VERSION,
            key_order: KEY_ORDER.to_string(),
            options: options.clone(),
        }
    }

    /// Encodes the file: pretty JSON, then the checksum line.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        let mut out = serde_json::to_vec_pretty(self).expect("options serialize to JSON");
        out.push(b'\n');
        let sum = xxh3_64(&out);
        out.extend_from_slice(format!("{CHECKSUM_PREFIX}{sum:016x}\n").as_bytes());
        out
    }

    /// Decodes and verifies a file. A bad checksum or unparsable content is
    /// `Corruption`; a newer version than this build knows is `Config`.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_OPTIONS_FILE_SIZE {
            return Err(Error::corruption(format!(
                "OPTIONS file is {} bytes, larger than any this build writes",
                bytes.len()
            )));
        }
        let body = verify_checksum(bytes)?;
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| Error::corruption("OPTIONS file is not valid JSON").with_source(e))?;
        // Check the versions before the shape, so a newer file is reported as newer.
        let version = |field: &str| value.get(field).and_then(serde_json::Value::as_u64);
        let (Some(options_version), Some(format_version)) =
            (version("options_version"), version("format_version"))
        else {
            return Err(Error::corruption("OPTIONS file lacks its version fields"));
        };
        if options_version > u64::from(OPTIONS_VERSION) {
            return Err(Error::config(
                "options_version",
                format!(
                    "{options_version} on disk is newer than this build reads ({OPTIONS_VERSION}); upgrade kevo"
                ),
            ));
        }
        if format_version > u64::from(FORMAT_VERSION) {
            return Err(Error::config(
                "format_version",
                format!(
                    "{format_version} on disk is newer than this build reads ({FORMAT_VERSION}); upgrade kevo"
                ),
            ));
        }
        let mut file: OptionsFile = serde_json::from_value(value).map_err(|e| {
            Error::corruption("OPTIONS file has an unexpected shape").with_source(e)
        })?;
        // Migration: fields an older version lacked took their defaults while parsing.
        file.options_version = OPTIONS_VERSION;
        Ok(file)
    }

    /// Checks that a database recorded with `self` can be opened by this build. Only
    /// format-binding settings must match; other options may change between opens.
    pub fn check_compatible(&self) -> Result<()> {
        if self.key_order != KEY_ORDER {
            return Err(Error::config(
                "key_order",
                format!(
                    "`{}` on disk differs from this build's `{KEY_ORDER}`",
                    self.key_order
                ),
            ));
        }
        if self.format_version > FORMAT_VERSION {
            return Err(Error::config(
                "format_version",
                format!(
                    "{} on disk is newer than this build ({FORMAT_VERSION})",
                    self.format_version
                ),
            ));
        }
        Ok(())
    }
}

/// Splits off and verifies the checksum line; returns the body it covers.
fn verify_checksum(bytes: &[u8]) -> Result<&[u8]> {
    let trimmed = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let line_start = trimmed
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let stored = std::str::from_utf8(&trimmed[line_start..])
        .ok()
        .and_then(|line| line.strip_prefix(CHECKSUM_PREFIX))
        // Exactly as written (lowercase), so a flipped case bit is caught too.
        .filter(|hex| {
            hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
        .and_then(|hex| u64::from_str_radix(hex, 16).ok());
    let Some(stored) = stored else {
        return Err(Error::corruption("OPTIONS file lacks its checksum line")
            .with_offset(line_start as u64));
    };
    let body = &bytes[..line_start];
    let actual = xxh3_64(body);
    if actual != stored {
        return Err(Error::corruption(format!(
            "OPTIONS file checksum mismatch (stored {stored:016x}, computed {actual:016x})"
        ))
        .with_offset(0));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::options::{Compression, FilterPolicy, SyncMode};
    use std::time::Duration;

    fn reseal(body: &str) -> Vec<u8> {
        let mut out = body.as_bytes().to_vec();
        let sum = xxh3_64(&out);
        out.extend_from_slice(format!("{CHECKSUM_PREFIX}{sum:016x}\n").as_bytes());
        out
    }

    #[test]
    fn round_trips_every_persisted_option() {
        let opts = Options::default()
            .sync_mode(SyncMode::Interval(Duration::from_millis(250)))
            .compression(Compression::Zstd(-3))
            .filter_policy(FilterPolicy::FalsePositiveRate(0.02))
            .memtable_size(1 << 20)
            .compaction_rate_limit(Some(1 << 24))
            .write_stall_timeout(None)
            .private_files(true);
        let bytes = OptionsFile::current(&opts).encode();
        let decoded = OptionsFile::decode(&bytes).unwrap();
        assert_eq!(decoded, OptionsFile::current(&opts));
        assert_eq!(decoded.options, opts);
        decoded.check_compatible().unwrap();
        assert!(
            String::from_utf8(bytes)
                .unwrap()
                .contains("\"memtable_size\": 1048576")
        );
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let bytes = OptionsFile::current(&Options::default()).encode();
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let err = OptionsFile::decode(&damaged).expect_err("flip must be detected");
            assert_eq!(err.kind(), ErrorKind::Corruption, "bit {bit}: {err}");
        }
    }

    #[test]
    fn truncated_empty_and_garbage_files_are_corruption() {
        let bytes = OptionsFile::current(&Options::default()).encode();
        for len in [0, 1, bytes.len() / 2, bytes.len() - 2] {
            let err = OptionsFile::decode(&bytes[..len]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corruption, "len {len}");
        }
        let garbage = reseal("not json\n");
        assert_eq!(
            OptionsFile::decode(&garbage).unwrap_err().kind(),
            ErrorKind::Corruption
        );
        let no_versions = reseal("{\"options\": {}}\n");
        assert_eq!(
            OptionsFile::decode(&no_versions).unwrap_err().kind(),
            ErrorKind::Corruption
        );
        let huge = vec![b' '; MAX_OPTIONS_FILE_SIZE + 1];
        assert_eq!(
            OptionsFile::decode(&huge).unwrap_err().kind(),
            ErrorKind::Corruption
        );
    }

    #[test]
    fn newer_versions_are_refused_as_config() {
        let newer_layout = reseal(
            r#"{"options_version": 2, "format_version": 1, "key_order": "bytewise", "options": {}}
"#,
        );
        let err = OptionsFile::decode(&newer_layout).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("options_version"), "{err}");

        let newer_format = reseal(
            r#"{"options_version": 1, "format_version": 9, "key_order": "bytewise", "options": {}}
"#,
        );
        let err = OptionsFile::decode(&newer_format).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("format_version"), "{err}");
    }

    #[test]
    fn older_files_missing_fields_migrate_to_defaults() {
        let old = reseal(
            r#"{"options_version": 0, "format_version": 1, "key_order": "bytewise", "options": {"block_size": 4096}}
"#,
        );
        let file = OptionsFile::decode(&old).unwrap();
        assert_eq!(file.options_version, OPTIONS_VERSION);
        assert_eq!(file.options, Options::default().block_size(4096));
    }

    #[test]
    fn another_key_order_is_incompatible() {
        let mut file = OptionsFile::current(&Options::default());
        file.key_order = "reverse".into();
        let decoded = OptionsFile::decode(&file.encode()).unwrap();
        let err = decoded.check_compatible().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("key_order"));
    }
}
