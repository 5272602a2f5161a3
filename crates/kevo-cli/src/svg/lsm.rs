//! The LSM's shape: one row per level, each table a rectangle placed by its key range.

use std::fmt::Write as _;

use kevo::tools::{Inspection, TableView, escape};
use kevo::{CompactionStyle, Options};

use super::{MONO, bytes, start, text, xml};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The shared key axis: a key's place in [0, 1].
///
/// Keys are compared by their first 8 bytes after the prefix every key shares (all keys
/// lie between the smallest and the largest, so they share those two's common prefix).
/// Each of those 8 byte positions counts in the radix of the byte values the tables'
/// boundary keys use there, not 256: zero-padded decimal keys (`kevo bench`'s) then map
/// linearly instead of jumping at every carry (`09999` → `10000` is one step, not the
/// 0x3039..→0x3130.. gap of a plain big-endian integer). The order of keys is kept.
struct KeyAxis {
    skip: usize,
    /// Per position: the sorted byte values boundary keys have there.
    alphabet: Vec<Vec<u16>>,
    lo: f64,
    hi: f64,
}

impl KeyAxis {
    const DEPTH: usize = 8;

    fn new<'a>(keys: impl Iterator<Item = &'a Vec<u8>> + Clone) -> Self {
        let min = keys.clone().min();
        let max = keys.clone().max();
        let skip = match (min, max) {
            (Some(a), Some(b)) => a.iter().zip(b).take_while(|(x, y)| x == y).count(),
            _ => 0,
        };
        let mut alphabet = vec![Vec::new(); Self::DEPTH];
        for key in keys {
            for (i, set) in alphabet.iter_mut().enumerate() {
                // A key that ends sorts before any byte: value 0 stands for "no byte".
                let b = key.get(skip + i).map_or(0, |&b| u16::from(b) + 1);
                if let Err(at) = set.binary_search(&b) {
                    set.insert(at, b);
                }
            }
        }
        let mut axis = KeyAxis {
            skip,
            alphabet,
            lo: 0.0,
            hi: 0.0,
        };
        axis.lo = min.map_or(0.0, |k| axis.raw(k));
        axis.hi = max.map_or(0.0, |k| axis.raw(k));
        axis
    }

    /// A mixed-radix fraction: digit i is the index of the key's byte among the values
    /// seen at position i.
    fn raw(&self, key: &[u8]) -> f64 {
        let (mut value, mut unit) = (0.0, 1.0);
        for (i, set) in self.alphabet.iter().enumerate() {
            let b = key.get(self.skip + i).map_or(0, |&b| u16::from(b) + 1);
            let radix = set.len().max(1) as f64;
            let index = match set.binary_search(&b) {
                Ok(i) | Err(i) => i as f64,
            };
            unit /= radix;
            value += index * unit;
        }
        value
    }

    fn pos(&self, key: &[u8]) -> f64 {
        if self.hi <= self.lo {
            return 0.0;
        }
        ((self.raw(key) - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
    }
}

/// A key as a short label: escaped, cut at `max` characters.
fn key_label(key: &[u8], max: usize) -> String {
    let text = escape(key);
    if text.chars().count() <= max {
        text
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// Byte targets and scores of a leveled tree, computed from the inspection's level sizes
/// with the formulas of `kevo::compaction::leveled::{targets, score}` (those take a live
/// `Version`, which an inspection is not; keep the two in step).
struct Leveled {
    base_level: usize,
    targets: Vec<u64>,
}

impl Leveled {
    fn new(level_bytes: &[u64], opts: &Options) -> Self {
        let levels = opts.max_levels.max(level_bytes.len()).max(2);
        let last = levels - 1;
        let base = opts
            .target_file_size
            .saturating_mul(opts.l0_compaction_trigger as u64);
        let ratio = u64::from(opts.level_size_ratio.max(1));
        let mut targets = vec![0; levels];
        let largest = level_bytes.iter().skip(1).copied().max().unwrap_or(0);
        targets[last] = largest.max(base);
        let mut base_level = last;
        while base_level > 1 && targets[base_level] > base {
            targets[base_level - 1] = targets[base_level] / ratio;
            base_level -= 1;
        }
        Leveled {
            base_level,
            targets,
        }
    }

    fn score(&self, level: usize, tables: usize, bytes: u64, opts: &Options) -> f64 {
        if level == 0 {
            return tables as f64 / opts.l0_compaction_trigger.max(1) as f64;
        }
        match self.targets.get(level).copied().unwrap_or(0) {
            0 if bytes > 0 => f64::from(u32::MAX),
            0 => 0.0,
            target => bytes as f64 / target as f64,
        }
    }
}

/// The fill of a table `size` bytes large when the largest is `max`: light for small,
/// dark for large.
fn shade(size: u64, max: u64) -> String {
    let t = if max == 0 {
        0.0
    } else {
        (size as f64 / max as f64).clamp(0.0, 1.0)
    };
    let lightness = 85.0 - 50.0 * t;
    format!("hsl(210,65%,{lightness:.0}%)")
}

/// The picture of an inspection: one row per level (L0 on top, one lane per L0 table as
/// they overlap), each table a rectangle placed by its key range; WALs and manifest beside.
/// `options` are those the database was last opened with (`None`: unknown, defaults used
/// for the targets, and said so).
#[allow(clippy::too_many_lines)]
pub fn lsm_shape(inspection: &Inspection, options: Option<&Options>) -> String {
    const WIDTH: u32 = 1200;
    const AXIS_X0: f64 = 260.0;
    const AXIS_X1: f64 = 900.0;
    const SIDE_X: f64 = 930.0;
    const LANE_H: f64 = 18.0;
    const ROW_GAP: f64 = 14.0;
    const TOP: f64 = 76.0;
    const MIN_W: f64 = 3.0;

    let defaults = Options::default();
    let opts = options.unwrap_or(&defaults);
    let tables: Vec<&TableView> = inspection.levels.iter().flat_map(|l| &l.tables).collect();
    let total_bytes: u64 = inspection.levels.iter().map(|l| l.bytes).sum();
    let max_size = tables.iter().map(|t| t.size).max().unwrap_or(0);
    let min_key = tables.iter().map(|t| &t.smallest.user_key).min();
    let max_key = tables.iter().map(|t| &t.largest.user_key).max();
    let axis = KeyAxis::new(
        tables
            .iter()
            .flat_map(|t| [&t.smallest.user_key, &t.largest.user_key]),
    );
    let pos = |key: &[u8]| axis.pos(key);
    let x_of = |f: f64| AXIS_X0 + f * (AXIS_X1 - AXIS_X0);

    let leveled = (opts.compaction_style == CompactionStyle::Leveled).then(|| {
        let sizes: Vec<u64> = inspection.levels.iter().map(|l| l.bytes).collect();
        Leveled::new(&sizes, opts)
    });

    // Row geometry first, to know the height.
    let mut rows = Vec::new();
    let mut y = TOP;
    for level in &inspection.levels {
        let h = match level.tables.len() {
            // An empty level: a thin row, its label on one line.
            0 => 22.0,
            n if level.level == 0 => (n as f64 * LANE_H).max(36.0),
            _ => 36.0,
        };
        rows.push((y, h));
        y += h + ROW_GAP;
    }
    let axis_y = y + 4.0;
    let mut side_lines = vec![(
        true,
        format!(
            "manifest {} ({})",
            inspection.manifest.name,
            bytes(inspection.manifest.size)
        ),
    )];
    side_lines.push((true, format!("live WALs ({}):", inspection.wals.len())));
    if inspection.wals.is_empty() {
        side_lines.push((false, "  none".to_string()));
    }
    for w in &inspection.wals {
        side_lines.push((false, format!("  {} ({})", w.name, bytes(w.size))));
    }
    if let Some(o) = &inspection.options_file {
        side_lines.push((true, format!("options {} ({})", o.name, bytes(o.size))));
    }
    side_lines.push((false, format!("last sequence {}", inspection.last_sequence)));
    side_lines.push((false, format!("next file {}", inspection.next_file_number)));
    side_lines.push((false, format!("log number {}", inspection.log_number)));
    if !inspection.problems.is_empty() {
        side_lines.push((
            true,
            format!(
                "{} problem(s) in the manifest: run kevo check",
                inspection.problems.len()
            ),
        ));
    }
    let side_h = TOP + 20.0 + side_lines.len() as f64 * 16.0;
    let legend_y = axis_y + 44.0;
    let height = (legend_y + 66.0).max(side_h + 20.0).ceil() as u32;

    let mut out = String::new();
    let title = format!(
        "kevo LSM shape: {}: {} tables, {} in tables ({} bytes)",
        inspection.dir,
        tables.len(),
        bytes(total_bytes),
        total_bytes
    );
    start(&mut out, WIDTH, height, &title);
    text(
        &mut out,
        16.0,
        26.0,
        "font-size=\"16\" font-weight=\"bold\"",
        &format!(
            "LSM shape: {} tables, {} in tables",
            tables.len(),
            bytes(total_bytes)
        ),
    );
    let style = match (opts.compaction_style, options.is_some()) {
        (CompactionStyle::Leveled, true) => "leveled compaction",
        (CompactionStyle::Tiered, true) => "tiered compaction",
        (_, false) => "no OPTIONS file: targets from the default options",
    };
    text(
        &mut out,
        16.0,
        46.0,
        &format!("{MONO} font-size=\"11\" fill=\"#444444\""),
        &format!("{}  ({style})", key_label(inspection.dir.as_bytes(), 90)),
    );
    text(
        &mut out,
        AXIS_X0,
        TOP - 8.0,
        "font-size=\"11\" fill=\"#444444\"",
        "tables placed by key range; L0: one lane per table, newest on top",
    );

    for (level, &(row_y, row_h)) in inspection.levels.iter().zip(&rows) {
        let _ = writeln!(
            out,
            "<g id=\"level-{}\">\n<rect x=\"{AXIS_X0:.1}\" y=\"{row_y:.1}\" width=\"{:.1}\" height=\"{row_h:.1}\" fill=\"#f4f4f4\" stroke=\"#dddddd\"/>",
            level.level,
            AXIS_X1 - AXIS_X0
        );
        let empty = level.tables.is_empty();
        let heading = if empty {
            format!("L{}: empty", level.level)
        } else {
            format!(
                "L{}: {} table{}, {}",
                level.level,
                level.tables.len(),
                if level.tables.len() == 1 { "" } else { "s" },
                bytes(level.bytes)
            )
        };
        text(
            &mut out,
            16.0,
            row_y + 15.0,
            "font-size=\"13\" font-weight=\"bold\"",
            &heading,
        );
        let detail = match &leveled {
            Some(lv) => {
                let score = lv.score(level.level, level.tables.len(), level.bytes, opts);
                let score = if score >= f64::from(u32::MAX) {
                    "above base level".to_string()
                } else {
                    format!("score {score:.2}")
                };
                if level.tables.is_empty() && level.level > 0 {
                    // Nothing to score: only the target matters.
                    match lv.targets.get(level.level).copied().unwrap_or(0) {
                        0 => format!("no target (base is L{})", lv.base_level),
                        t => format!("target {}", bytes(t)),
                    }
                } else if level.level == 0 {
                    format!("trigger {} tables, {score}", opts.l0_compaction_trigger)
                } else {
                    match lv.targets.get(level.level).copied().unwrap_or(0) {
                        0 => format!("no target (base L{}), {score}", lv.base_level),
                        t => format!("target {}, {score}", bytes(t)),
                    }
                }
            }
            None => String::new(),
        };
        if !detail.is_empty() {
            // An empty level's detail goes on its heading's line.
            let (x, y) = if empty {
                (100.0, row_y + 15.0)
            } else {
                (16.0, row_y + 30.0)
            };
            text(&mut out, x, y, "font-size=\"11\" fill=\"#444444\"", &detail);
        }
        for (lane, t) in level.tables.iter().enumerate() {
            let start = x_of(pos(&t.smallest.user_key));
            let w = (x_of(pos(&t.largest.user_key)) - start).max(MIN_W);
            // A tiny table at the far end stays inside the axis.
            let x = start.min(AXIS_X1 - w);
            let (ty, th) = if level.level == 0 {
                (row_y + lane as f64 * LANE_H + 2.0, LANE_H - 4.0)
            } else {
                (row_y + 4.0, row_h - 8.0)
            };
            let _ = writeln!(
                out,
                "<rect id=\"table-{:06}\" data-level=\"{}\" data-smallest=\"{}\" data-largest=\"{}\" data-size=\"{}\" x=\"{x:.2}\" y=\"{ty:.1}\" width=\"{w:.2}\" height=\"{th:.1}\" fill=\"{}\" stroke=\"#1f3b57\" stroke-width=\"0.6\"><title>{}</title></rect>",
                t.number,
                level.level,
                hex(&t.smallest.user_key),
                hex(&t.largest.user_key),
                t.size,
                shade(t.size, max_size),
                xml(&format!(
                    "{} L{} {}: {} .. {}, sequences {}..{}",
                    t.name,
                    level.level,
                    bytes(t.size),
                    key_label(&t.smallest.user_key, 40),
                    key_label(&t.largest.user_key, 40),
                    t.min_sequence,
                    t.max_sequence
                ))
            );
        }
        out.push_str("</g>\n");
    }

    // The key axis.
    let _ = writeln!(
        out,
        "<line x1=\"{AXIS_X0:.1}\" y1=\"{axis_y:.1}\" x2=\"{AXIS_X1:.1}\" y2=\"{axis_y:.1}\" stroke=\"#333333\"/>"
    );
    for f in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let x = x_of(f);
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{axis_y:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#333333\"/>",
            axis_y + 5.0
        );
    }
    if let (Some(min), Some(max)) = (min_key, max_key) {
        text(
            &mut out,
            AXIS_X0,
            axis_y + 18.0,
            &format!("{MONO} font-size=\"11\""),
            &format!("smallest key {}", key_label(min, 24)),
        );
        text(
            &mut out,
            AXIS_X1,
            axis_y + 18.0,
            &format!("{MONO} font-size=\"11\" text-anchor=\"end\""),
            &format!("largest key {}", key_label(max, 24)),
        );
    } else {
        text(
            &mut out,
            AXIS_X0,
            axis_y + 18.0,
            "font-size=\"11\"",
            "no tables",
        );
    }

    // The legend: the shade scale and what a rectangle is.
    text(
        &mut out,
        16.0,
        legend_y + 12.0,
        "font-size=\"11\" font-weight=\"bold\"",
        "legend",
    );
    let steps = 5u32;
    for i in 0..steps {
        let size = max_size / u64::from(steps - 1) * u64::from(i);
        let x = 70.0 + f64::from(i) * 26.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x:.1}\" y=\"{legend_y:.1}\" width=\"24\" height=\"14\" fill=\"{}\" stroke=\"#1f3b57\" stroke-width=\"0.6\"/>",
            shade(size, max_size)
        );
    }
    text(
        &mut out,
        70.0 + f64::from(steps) * 26.0 + 6.0,
        legend_y + 12.0,
        "font-size=\"11\"",
        &format!(
            "table size, 0 to {} (darker: larger); width: key range (at least {MIN_W} px); grey: a level's row",
            bytes(max_size)
        ),
    );
    text(
        &mut out,
        70.0,
        legend_y + 34.0,
        "font-size=\"11\" fill=\"#444444\"",
        "key axis: 8 bytes after the common prefix, each in the radix of the byte values used there. score: L0 tables / trigger,",
    );
    text(
        &mut out,
        70.0,
        legend_y + 50.0,
        "font-size=\"11\" fill=\"#444444\"",
        "deeper levels bytes / target; 1 or more: due for compaction. Generated by kevo inspect DIR --svg FILE.",
    );

    // Beside: manifest, WALs, counters.
    let _ = writeln!(
        out,
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#fbfbf4\" stroke=\"#dddddd\"/>",
        SIDE_X - 8.0,
        TOP,
        f64::from(WIDTH) - SIDE_X - 8.0,
        side_lines.len() as f64 * 16.0 + 14.0
    );
    for (i, (bold, line)) in side_lines.iter().enumerate() {
        let weight = if *bold { " font-weight=\"bold\"" } else { "" };
        text(
            &mut out,
            SIDE_X,
            TOP + 18.0 + i as f64 * 16.0,
            &format!("{MONO} font-size=\"11\"{weight}"),
            line,
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_axis_is_linear_for_zero_padded_decimal_keys() {
        let keys: Vec<Vec<u8>> = (0..=19_999u32)
            .step_by(7)
            .chain([19_999])
            .map(|i| format!("{i:016}").into_bytes())
            .collect();
        let axis = KeyAxis::new(keys.iter());
        let at = |i: u32| axis.pos(format!("{i:016}").as_bytes());
        assert!(at(0).abs() < 1e-9 && (at(19_999) - 1.0).abs() < 1e-9);
        // 9 999 -> 10 000 is one step, not a jump.
        assert!(
            (at(10_000) - at(9_999)).abs() < 1e-3,
            "{}",
            at(10_000) - at(9_999)
        );
        assert!((at(10_000) - 0.5).abs() < 0.01, "{}", at(10_000));
        let mut last = -1.0;
        for k in &keys {
            let p = axis.pos(k);
            assert!(p >= last);
            last = p;
        }
    }

    #[test]
    fn targets_match_the_leveled_formula() {
        let opts = Options::default()
            .target_file_size(1000)
            .l0_compaction_trigger(4);
        // Base size 4000: a 100 000-byte last level gives targets 100 000, 10 000 and 1000
        // (the first not above the base size: the base level).
        let mut sizes = vec![0; opts.max_levels];
        *sizes.last_mut().expect("levels") = 100_000;
        let lv = Leveled::new(&sizes, &opts);
        let last = opts.max_levels - 1;
        assert_eq!(lv.targets[last], 100_000);
        assert_eq!(lv.targets[last - 1], 10_000);
        assert_eq!(lv.targets[last - 2], 1000);
        assert_eq!(lv.base_level, last - 2);
    }
}
