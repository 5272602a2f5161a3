//! Pictures as SVG: the LSM's shape (`kevo inspect DIR --svg FILE`, in [`lsm`]) and a
//! benchmark's results (`kevo bench ... --svg FILE`, in [`bench`]).
//!
//! Plain string building: one self-contained document, no script, no external font, every
//! piece of text escaped.

mod bench;
mod lsm;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use kevo::{Error, Result};

pub use bench::{BenchBar, Mark, MarkKind, Series, bench_chart};
pub use lsm::lsm_shape;

const FONT: &str = "font-family=\"sans-serif\"";
const MONO: &str = "font-family=\"monospace\"";

/// Writes `svg` to `path`, or to stdout if `path` is `-`.
pub fn write(path: &Path, svg: &str) -> Result<()> {
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        return match out.write_all(svg.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(Error::io("writing to stdout", e))
            }
            _ => Ok(()),
        };
    }
    std::fs::write(path, svg).map_err(|e| Error::io("writing the SVG file", e).with_file(path))
}

/// `text` with the five XML special characters escaped (for text and attribute values).
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 text.
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Bytes in binary units, one decimal.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `n` and a noun, plural unless `n` is 1 ("entry": "entries", "flush": "flushes").
fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else if let Some(stem) = noun.strip_suffix('y') {
        format!("{n} {stem}ies")
    } else if ["s", "x", "sh", "ch"].iter().any(|end| noun.ends_with(end)) {
        format!("{n} {noun}es")
    } else {
        format!("{n} {noun}s")
    }
}

fn start(out: &mut String, width: u32, height: u32, title: &str) {
    let _ = writeln!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" {FONT} font-size=\"12\">\n\
         <title>{}</title>\n\
         <rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>",
        xml(title)
    );
}

fn text(out: &mut String, x: f64, y: f64, attrs: &str, content: &str) {
    let _ = writeln!(
        out,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" {attrs}>{}</text>",
        xml(content)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_formats_sizes() {
        assert_eq!(xml("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(
            [
                counted(1, "entry"),
                counted(2, "entry"),
                counted(0, "stall"),
                counted(3, "flush")
            ],
            ["1 entry", "2 entries", "0 stalls", "3 flushes"]
        );
    }
}
