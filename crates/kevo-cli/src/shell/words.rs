//! The words of a shell line: splitting at blanks, double quotes, backslash escapes and
//! `b64:` words; and the reverse, [`quote`], which prints bytes as a word that reads back
//! as the same bytes.
//!
//! Input rules:
//! - words are separated by blanks; `"..."` keeps blanks (and may be part of a word:
//!   `a"b c"` is `ab c`);
//! - escapes, inside quotes or not: `\\` `\"` `\n` `\t` `\r` `\0` `\xNN` (two hex digits);
//! - other text is taken as its UTF-8 bytes;
//! - a *plain* word (no quotes, no escapes) may be special: a command name, an option
//!   (`--limit`), `-` (an open range bound) or `b64:BASE64` (raw bytes). Quoting a word
//!   makes it literal text: `"-"` is the one-byte key `-`.

/// One word of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The bytes, with quotes removed and escapes applied.
    pub bytes: Vec<u8>,
    /// Written without quotes or escapes.
    pub plain: bool,
}

impl Word {
    /// The word as text if it is plain (a command name, an option, `-`).
    pub fn plain_text(&self) -> Option<&str> {
        if self.plain {
            std::str::from_utf8(&self.bytes).ok()
        } else {
            None
        }
    }

    /// The bytes the word stands for as a key or value: a plain `b64:...` decoded.
    pub fn data(&self) -> Result<Vec<u8>, String> {
        if self.plain
            && let Some(encoded) = self.bytes.strip_prefix(b"b64:")
        {
            return base64_decode(encoded).map_err(|e| {
                format!(
                    "bad base64 in {}: {e}",
                    String::from_utf8_lossy(&self.bytes)
                )
            });
        }
        Ok(self.bytes.clone())
    }
}

/// Splits a line into words. Errors name the 1-based column (in bytes).
pub fn split(line: &[u8]) -> Result<Vec<Word>, String> {
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Ok(words);
        }
        let mut bytes = Vec::new();
        let mut plain = true;
        let mut quote_start = None;
        while i < line.len() {
            let b = line[i];
            if quote_start.is_none() && b.is_ascii_whitespace() {
                break;
            }
            match b {
                b'"' => {
                    plain = false;
                    quote_start = match quote_start {
                        Some(_) => None,
                        None => Some(i),
                    };
                    i += 1;
                }
                b'\\' => {
                    plain = false;
                    let (byte, len) = unescape(line, i)?;
                    bytes.push(byte);
                    i += len;
                }
                _ => {
                    bytes.push(b);
                    i += 1;
                }
            }
        }
        if let Some(start) = quote_start {
            return Err(format!(
                "unterminated quote: the \" at column {} has no closing \"",
                start + 1
            ));
        }
        words.push(Word { bytes, plain });
    }
}

/// The byte an escape at `line[at]` (a backslash) stands for, and the escape's length.
fn unescape(line: &[u8], at: usize) -> Result<(u8, usize), String> {
    let column = at + 1;
    let Some(&code) = line.get(at + 1) else {
        return Err(format!(
            "bad escape at column {column}: a \\ ends the line (write \\\\ for a backslash)"
        ));
    };
    let byte = match code {
        b'\\' => b'\\',
        b'"' => b'"',
        b'n' => b'\n',
        b't' => b'\t',
        b'r' => b'\r',
        b'0' => 0,
        b'x' => {
            let hex = |i: usize| line.get(at + i).and_then(|&c| char::from(c).to_digit(16));
            return match (hex(2), hex(3)) {
                (Some(hi), Some(lo)) => Ok(((hi * 16 + lo) as u8, 4)),
                _ => Err(format!(
                    "bad escape at column {column}: \\x takes two hex digits (\\x00 to \\xff)"
                )),
            };
        }
        other => {
            let shown = if other.is_ascii_graphic() {
                char::from(other).to_string()
            } else {
                format!("\\x{other:02x}")
            };
            return Err(format!(
                "bad escape \\{shown} at column {column}: use \\\\ \\\" \\n \\t \\r \\0 or \\xNN"
            ));
        }
    };
    Ok((byte, 2))
}

/// `bytes` as a word [`split`] reads back as the same bytes: printable ASCII as is,
/// `\\` `\"` `\n` `\t` `\r` and `\xNN` for the rest; in double quotes if it is empty, holds a
/// space, or would otherwise read as special (`-`, `--...`, `b64:...`).
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    let quoted = bytes.is_empty()
        || bytes.contains(&b' ')
        || bytes == b"-"
        || bytes.starts_with(b"--")
        || bytes.starts_with(b"b64:");
    if quoted {
        out.push('"');
    }
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\x");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
    if quoted {
        out.push('"');
    }
    out
}

/// Decodes base64: the standard alphabet (`+/`) or the URL-safe one (`-_`), padding
/// optional. Written here rather than taken from a crate: the shell needs only this dozen
/// lines.
pub fn base64_decode(text: &[u8]) -> Result<Vec<u8>, String> {
    let body = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    if body.len() != text.len() && !text.len().is_multiple_of(4) {
        return Err("padding (=) must make the length a multiple of 4".to_string());
    }
    if body.len() % 4 == 1 {
        return Err("the length is not that of any base64 text".to_string());
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    let (mut acc, mut bits) = (0u32, 0u32);
    for (i, &c) in body.iter().enumerate() {
        let six = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => {
                return Err(format!(
                    "{:?} at position {} is not a base64 character",
                    char::from(c),
                    i + 1
                ));
            }
        };
        acc = (acc << 6) | u32::from(six);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if acc != 0 {
        return Err("the last character has bits set past the end of the data".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Vec<u8>> {
        split(line.as_bytes())
            .expect("valid line")
            .into_iter()
            .map(|w| w.bytes)
            .collect()
    }

    #[test]
    fn splits_at_blanks_and_keeps_quoted_blanks() {
        assert_eq!(words("  put  a   b "), [&b"put"[..], b"a", b"b"]);
        assert_eq!(
            words(r#"put "a b" c"d e"f"#),
            [&b"put"[..], b"a b", b"cd ef"]
        );
        assert_eq!(words(r#"put k """#), [&b"put"[..], b"k", b""]);
        assert_eq!(words("put\tk\tv"), [&b"put"[..], b"k", b"v"]);
        assert!(words("   ").is_empty());
    }

    #[test]
    fn escapes() {
        assert_eq!(
            words(r#"\x00\xFFa \n\t\r\0 \\\" "q\"x""#),
            [&b"\x00\xffa"[..], b"\n\t\r\0", b"\\\"", b"q\"x"]
        );
        assert_eq!(words("café"), ["café".as_bytes()]);
    }

    #[test]
    fn bad_input_is_reported_with_its_column() {
        let err = split(br"put k\q").expect_err("bad escape");
        assert!(err.contains("bad escape \\q at column 6"), "{err}");
        let err = split(br"put \x4").expect_err("short hex");
        assert!(
            err.contains("column 5") && err.contains("two hex digits"),
            "{err}"
        );
        let err = split(br"put \xzz").expect_err("bad hex");
        assert!(err.contains("two hex digits"), "{err}");
        let err = split(br"put k\").expect_err("trailing backslash");
        assert!(err.contains("ends the line"), "{err}");
        let err = split(br#"put "k v"#).expect_err("open quote");
        assert!(
            err.contains("unterminated quote") && err.contains("column 5"),
            "{err}"
        );
    }

    #[test]
    fn plain_words_only_are_special() {
        let w = split(br#"- "-" b64:aGk= "b64:aGk=" b\x36\x34:aGk="#).expect("valid");
        assert_eq!(w[0].plain_text(), Some("-"));
        assert_eq!(w[1].plain_text(), None);
        assert_eq!(w[2].data().expect("b64"), b"hi");
        assert_eq!(w[3].data().expect("literal"), b"b64:aGk=");
        assert_eq!(w[4].data().expect("literal"), b"b64:aGk=");
        let bad = split(b"b64:a*").expect("valid")[0]
            .data()
            .expect_err("bad base64");
        assert!(bad.contains("not a base64 character"), "{bad}");
    }

    #[test]
    fn quote_reads_back_as_the_same_bytes() {
        let cases: [&[u8]; 12] = [
            b"plain",
            b"",
            b"with space",
            b"-",
            b"--reverse",
            b"b64:xyz",
            b"tab\there\nnew\rline",
            b"\\ and \"",
            b"\x00\x01\x7f\x80\xff",
            "café".as_bytes(),
            b"#hash",
            b"'single'",
        ];
        for bytes in cases {
            let text = quote(bytes);
            let back = split(text.as_bytes()).expect("quote output splits");
            assert_eq!(back.len(), 1, "{text}");
            assert_eq!(back[0].data().expect("data"), bytes, "{text}");
        }
        assert_eq!(quote(b"a\x00b"), r"a\x00b");
        assert_eq!(quote(b"a b"), r#""a b""#);
    }

    /// The reverse of [`base64_decode`] (standard alphabet, padded), for the tests.
    fn base64_encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn base64_round_trips_and_refuses_bad_text() {
        for len in 0..40usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 97 + 13) as u8).collect();
            let text = base64_encode(&bytes);
            assert_eq!(base64_decode(text.as_bytes()).expect("decodes"), bytes);
            let unpadded = text.trim_end_matches('=');
            assert_eq!(base64_decode(unpadded.as_bytes()).expect("decodes"), bytes);
        }
        assert_eq!(base64_decode(b"SGVsbG8=").expect("decodes"), b"Hello");
        assert_eq!(base64_decode(b"-_8").expect("url-safe"), [0xfb, 0xff]);
        assert!(base64_decode(b"A").is_err(), "one character is no byte");
        assert!(base64_decode(b"SGVsbG8==").is_err(), "too much padding");
        assert!(base64_decode(b"SG=s").is_err(), "padding in the middle");
        assert!(
            base64_decode(b"SGVsbG9=").is_err(),
            "non-zero trailing bits"
        );
    }
}
