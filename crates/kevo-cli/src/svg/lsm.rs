//! The LSM's shape: one row per level, each table a rectangle placed by its key range.

use std::fmt::Write as _;

use kevo::compaction::leveled::{self, LevelTargets};
use kevo::tools::{Inspection, LevelView, TableView, WalView, escape};
use kevo::{CompactionStyle, Options};

use super::{MONO, bytes, counted, start, text, xml};

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

/// The picture's geometry: the key axis between `AXIS_X0` and `AXIS_X1`, the level labels
/// left of it, the memtables and the counters in a column right of it.
const WIDTH: u32 = 1200;
const AXIS_X0: f64 = 260.0;
const AXIS_X1: f64 = 900.0;
/// The right column: boxes from `SIDE_X0`, `SIDE_W` wide; text from `SIDE_X0 + 8`.
const SIDE_X0: f64 = 922.0;
const SIDE_W: f64 = 262.0;
const LANE_H: f64 = 18.0;
const ROW_GAP: f64 = 14.0;
const TOP: f64 = 76.0;
/// Narrowest table rectangle, so a tiny table stays visible.
const MIN_W: f64 = 3.0;
/// Lowest tombstone band on a table that has any tombstone.
const MIN_BAND: f64 = 1.5;
/// Height of one WAL's box in the memtable column, and the gap below it.
const WAL_BOX_H: f64 = 66.0;
const WAL_GAP: f64 = 8.0;
/// WAL boxes drawn at most (a database rarely has more than `max_memtables` + 1).
const MAX_WAL_BOXES: usize = 6;
/// The hatch of tombstone bands: red stripes on light red.
const HATCH: &str = "<defs><pattern id=\"tombstone-hatch\" width=\"4\" height=\"4\" \
    patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
    <rect width=\"4\" height=\"4\" fill=\"#f7c4bf\"/>\
    <line x1=\"1\" y1=\"0\" x2=\"1\" y2=\"4\" stroke=\"#c0392b\" stroke-width=\"2\"/>\
    </pattern></defs>";

/// An age in seconds, in the unit that reads best.
fn age(secs: u64) -> String {
    let s = secs as f64;
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{:.0} min", s / 60.0),
        7200..172_800 => format!("{:.1} h", s / 3600.0),
        _ => format!("{:.1} d", s / 86_400.0),
    }
}

/// `part` of `whole` as a percentage with one decimal.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0%".to_string()
    } else {
        format!("{:.1}%", part as f64 / whole as f64 * 100.0)
    }
}

/// What every table rectangle is drawn against.
struct Scene<'a> {
    inspection: &'a Inspection,
    axis: KeyAxis,
    /// The largest table's size (the darkest shade).
    max_size: u64,
}

impl Scene<'_> {
    fn x_of(&self, key: &[u8]) -> f64 {
        AXIS_X0 + self.axis.pos(key) * (AXIS_X1 - AXIS_X0)
    }

    /// A table's rectangle at height `ty`..`ty + th`, its tombstone band along its bottom
    /// edge, and a tooltip on both.
    fn table(&self, out: &mut String, t: &TableView, ty: f64, th: f64) {
        let start = self.x_of(&t.smallest.user_key);
        let w = (self.x_of(&t.largest.user_key) - start).max(MIN_W);
        // A tiny table at the far end stays inside the axis.
        let x = start.min(AXIS_X1 - w);
        let now = self.inspection.inspected_at;
        let sequence_age = self.inspection.last_sequence.saturating_sub(t.max_sequence);
        let mut tip = format!(
            "{} L{} {}: {} .. {}, sequences {}..{}",
            t.name,
            t.level,
            bytes(t.size),
            key_label(&t.smallest.user_key, 40),
            key_label(&t.largest.user_key, 40),
            t.min_sequence,
            t.max_sequence
        );
        let mut data = String::new();
        if let (Some(entries), Some(deletions)) = (t.entries, t.deletions) {
            let _ = write!(
                tip,
                "; {entries} entries, {deletions} tombstones ({})",
                percent(deletions, entries)
            );
            let _ = write!(
                data,
                " data-entries=\"{entries}\" data-tombstones=\"{deletions}\""
            );
        } else {
            tip.push_str("; properties unread");
        }
        if let (Some(created_at), Some(age_secs)) = (t.created_at, t.age_secs(now)) {
            let _ = write!(tip, "; written {} ago", age(age_secs));
            let _ = write!(
                data,
                " data-created-at=\"{created_at}\" data-age-secs=\"{age_secs}\""
            );
        }
        let _ = write!(
            tip,
            ", {sequence_age} sequence numbers before the last ({})",
            self.inspection.last_sequence
        );
        let _ = writeln!(
            out,
            "<rect id=\"table-{:06}\" data-level=\"{}\" data-smallest=\"{}\" data-largest=\"{}\" data-size=\"{}\"{data} data-sequence-age=\"{sequence_age}\" x=\"{x:.2}\" y=\"{ty:.1}\" width=\"{w:.2}\" height=\"{th:.1}\" fill=\"{}\" stroke=\"#1f3b57\" stroke-width=\"0.6\"><title>{}</title></rect>",
            t.number,
            t.level,
            hex(&t.smallest.user_key),
            hex(&t.largest.user_key),
            t.size,
            shade(t.size, self.max_size),
            xml(&tip)
        );
        if let Some(share) = t.tombstone_share().filter(|&s| s > 0.0) {
            let band = (share * th).max(MIN_BAND).min(th);
            let _ = writeln!(
                out,
                "<rect class=\"tombstones\" data-table=\"{:06}\" x=\"{x:.2}\" y=\"{:.2}\" width=\"{w:.2}\" height=\"{band:.2}\" fill=\"url(#tombstone-hatch)\" stroke=\"#c0392b\" stroke-width=\"0.4\"><title>{}</title></rect>",
                t.number,
                ty + th - band,
                xml(&tip)
            );
        }
    }

    /// A level's row: its heading and detail on the left, its tables on the axis.
    fn level(&self, out: &mut String, level: &LevelView, row: (f64, f64), detail: &str) {
        let (row_y, row_h) = row;
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
            out,
            16.0,
            row_y + 15.0,
            "font-size=\"13\" font-weight=\"bold\"",
            &heading,
        );
        if !detail.is_empty() {
            // An empty level's detail goes on its heading's line.
            let (x, y) = if empty {
                (100.0, row_y + 15.0)
            } else {
                (16.0, row_y + 30.0)
            };
            text(out, x, y, "font-size=\"11\" fill=\"#444444\"", detail);
        }
        for (lane, t) in level.tables.iter().enumerate() {
            let (ty, th) = if level.level == 0 {
                (row_y + lane as f64 * LANE_H + 2.0, LANE_H - 4.0)
            } else {
                (row_y + 4.0, row_h - 8.0)
            };
            self.table(out, t, ty, th);
        }
        out.push_str("</g>\n");
    }
}

/// A level's target and score, as its row's detail line (empty without a leveled tree).
fn level_detail(level: &LevelView, targets: Option<&LevelTargets>, opts: &Options) -> String {
    let Some(lv) = targets else {
        return String::new();
    };
    let score = leveled::score_for(lv, opts, level.level, level.tables.len(), level.bytes);
    let score = if score >= f64::from(u32::MAX) {
        "above base level".to_string()
    } else {
        format!("score {score:.2}")
    };
    let target = lv.targets.get(level.level).copied().unwrap_or(0);
    if level.tables.is_empty() && level.level > 0 {
        // Nothing to score: only the target matters.
        match target {
            0 => format!("no target (base is L{})", lv.base_level),
            t => format!("target {}", bytes(t)),
        }
    } else if level.level == 0 {
        format!("trigger {} tables, {score}", opts.l0_compaction_trigger)
    } else {
        match target {
            0 => format!("no target (base L{}), {score}", lv.base_level),
            t => format!("target {}, {score}", bytes(t)),
        }
    }
}

/// The memtable column: a box per live WAL (what replaying it puts in a memtable), from
/// `top`; returns where the column ends.
fn memtables(out: &mut String, inspection: &Inspection, memtable_size: usize, top: f64) -> f64 {
    text(
        out,
        SIDE_X0,
        top - 8.0,
        "font-size=\"11\" fill=\"#444444\"",
        "memtables: the live WALs, replayed on open",
    );
    let mut y = top;
    if inspection.wals.is_empty() {
        text(
            out,
            SIDE_X0 + 8.0,
            y + 14.0,
            "font-size=\"11\"",
            "no live WAL",
        );
        return y + 24.0;
    }
    let newest = inspection.wals.len() - 1;
    for (i, w) in inspection.wals.iter().enumerate().take(MAX_WAL_BOXES) {
        wal_box(out, w, y, i == newest && newest > 0, memtable_size);
        y += WAL_BOX_H + WAL_GAP;
    }
    if inspection.wals.len() > MAX_WAL_BOXES {
        text(
            out,
            SIDE_X0 + 8.0,
            y + 10.0,
            "font-size=\"11\"",
            &format!(
                "and {} more WALs (kevo inspect lists them)",
                inspection.wals.len() - MAX_WAL_BOXES
            ),
        );
        y += 20.0;
    }
    y
}

/// One WAL's box at `y`: its name, size, records, entries, tombstones and sequences, and a
/// bar of its key and value bytes over `memtable_size` (the memtable charges a little more
/// per entry, so it switches somewhat before the bar is full).
fn wal_box(out: &mut String, w: &WalView, y: f64, newest: bool, memtable_size: usize) {
    let x = SIDE_X0 + 8.0;
    let (lines, tip) = match &w.contents {
        Some(c) if c.records == 0 => (
            [format!("{}, empty", bytes(w.size)), String::new()],
            format!("{}: {} bytes, no records", w.name, w.size),
        ),
        Some(c) => {
            let sequences = match (c.min_sequence, c.max_sequence) {
                (Some(lo), Some(hi)) => format!("sequences {lo}..{hi}"),
                _ => "no entries".to_string(),
            };
            (
                [
                    format!(
                        "{}, {}, {}",
                        bytes(w.size),
                        counted(c.records, "record"),
                        counted(c.entries, "entry")
                    ),
                    format!("{}, {sequences}", counted(c.deletions, "tombstone")),
                ],
                format!(
                    "{}: {} bytes, {} records, {} entries ({} tombstones), {} key and value bytes, {sequences}",
                    w.name, w.size, c.records, c.entries, c.deletions, c.bytes
                ),
            )
        }
        None => (
            [bytes(w.size), "does not read: run kevo check".to_string()],
            format!("{}: {} bytes, does not read", w.name, w.size),
        ),
    };
    let data = w.contents.as_ref().map_or_else(String::new, |c| {
        format!(
            " data-records=\"{}\" data-entries=\"{}\" data-tombstones=\"{}\" data-bytes=\"{}\"",
            c.records, c.entries, c.deletions, c.bytes
        )
    });
    let _ = writeln!(
        out,
        "<g id=\"wal-{:06}\" class=\"memtable\" data-wal=\"{}\" data-size=\"{}\"{data}>\n<title>{}</title>\n<rect x=\"{SIDE_X0:.1}\" y=\"{y:.1}\" width=\"{SIDE_W:.1}\" height=\"{WAL_BOX_H:.1}\" fill=\"#eef5ec\" stroke=\"#8aa986\"/>",
        w.number,
        xml(&w.name),
        w.size,
        xml(&tip)
    );
    text(
        out,
        x,
        y + 15.0,
        &format!("{MONO} font-size=\"11\" font-weight=\"bold\""),
        &format!(
            "{} → memtable{}",
            w.name,
            if newest { " (newest)" } else { "" }
        ),
    );
    for (j, line) in lines.iter().enumerate() {
        text(out, x, y + 30.0 + 14.0 * j as f64, "font-size=\"11\"", line);
    }
    if let Some(c) = &w.contents {
        const BAR_W: f64 = 60.0;
        let fill = (c.bytes as f64 / memtable_size.max(1) as f64).clamp(0.0, 1.0);
        let bar_y = y + WAL_BOX_H - 12.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x:.1}\" y=\"{bar_y:.1}\" width=\"{BAR_W:.1}\" height=\"6\" fill=\"#ffffff\" stroke=\"#8aa986\" stroke-width=\"0.6\"/>\n<rect class=\"memtable-fill\" x=\"{x:.1}\" y=\"{bar_y:.1}\" width=\"{:.1}\" height=\"6\" fill=\"#5b9a55\"/>",
            BAR_W * fill
        );
        text(
            out,
            x + BAR_W + 6.0,
            bar_y + 6.0,
            "font-size=\"10\" fill=\"#444444\"",
            &format!(
                "{} of {} memtable_size",
                bytes(c.bytes),
                bytes(memtable_size as u64)
            ),
        );
    }
    out.push_str("</g>\n");
}

/// The lines of the counters panel: (bold, text).
fn counter_lines(inspection: &Inspection, tables: &[&TableView]) -> Vec<(bool, String)> {
    let mut lines = vec![(
        true,
        format!(
            "manifest {} ({})",
            inspection.manifest.name,
            bytes(inspection.manifest.size)
        ),
    )];
    if let Some(o) = &inspection.options_file {
        lines.push((true, format!("options {} ({})", o.name, bytes(o.size))));
    }
    lines.push((false, format!("last sequence {}", inspection.last_sequence)));
    lines.push((false, format!("next file {}", inspection.next_file_number)));
    lines.push((false, format!("log number {}", inspection.log_number)));
    let (entries, deletions) = inspection.table_entries();
    lines.push((
        false,
        format!(
            "tombstones {deletions}/{entries} ({})",
            percent(deletions, entries)
        ),
    ));
    let ages = tables
        .iter()
        .filter_map(|t| t.age_secs(inspection.inspected_at));
    if let (Some(young), Some(old)) = (ages.clone().min(), ages.max()) {
        lines.push((false, format!("table ages {} to {}", age(young), age(old))));
    }
    let unread = tables.iter().filter(|t| t.entries.is_none()).count();
    if unread > 0 {
        lines.push((true, format!("{unread} table(s) without properties")));
    }
    if !inspection.problems.is_empty() {
        lines.push((
            true,
            format!("{} problem(s): run kevo check", inspection.problems.len()),
        ));
    }
    lines
}

/// The legend below the key axis, from `y`.
fn legend(out: &mut String, y: f64, max_size: u64) {
    text(
        out,
        16.0,
        y + 12.0,
        "font-size=\"11\" font-weight=\"bold\"",
        "legend",
    );
    let steps = 5u32;
    for i in 0..steps {
        let size = max_size / u64::from(steps - 1) * u64::from(i);
        let x = 70.0 + f64::from(i) * 26.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"24\" height=\"14\" fill=\"{}\" stroke=\"#1f3b57\" stroke-width=\"0.6\"/>",
            shade(size, max_size)
        );
    }
    text(
        out,
        70.0 + f64::from(steps) * 26.0 + 6.0,
        y + 12.0,
        "font-size=\"11\"",
        &format!(
            "table size, 0 to {} (darker: larger); width: key range (at least {MIN_W} px); grey: a level's row",
            bytes(max_size)
        ),
    );
    let band_y = y + 22.0;
    let _ = writeln!(
        out,
        "<rect x=\"70\" y=\"{band_y:.1}\" width=\"128\" height=\"14\" fill=\"{}\" stroke=\"#1f3b57\" stroke-width=\"0.6\"/>\n<rect x=\"70\" y=\"{:.1}\" width=\"128\" height=\"5\" fill=\"url(#tombstone-hatch)\" stroke=\"#c0392b\" stroke-width=\"0.4\"/>",
        shade(max_size / 2, max_size),
        band_y + 9.0
    );
    text(
        out,
        70.0 + f64::from(steps) * 26.0 + 6.0,
        band_y + 12.0,
        "font-size=\"11\"",
        &format!(
            "tombstones: the hatched band's height is their share of the table's entries (at least {MIN_BAND} px when any)"
        ),
    );
    for (i, line) in [
        "key axis: 8 bytes after the common prefix, each in the radix of the byte values used there. score: L0 tables / trigger,",
        "deeper levels bytes / target; 1 or more: due for compaction. A table's tooltip has its keys, sequences, entries and age.",
        "Generated by kevo inspect DIR --svg FILE.",
    ]
    .into_iter()
    .enumerate()
    {
        text(
            out,
            70.0,
            band_y + 34.0 + 16.0 * i as f64,
            "font-size=\"11\" fill=\"#444444\"",
            line,
        );
    }
}

/// The key axis at `y`, from the smallest key to the largest.
fn key_axis(out: &mut String, axis_y: f64, tables: &[&TableView]) {
    let _ = writeln!(
        out,
        "<line x1=\"{AXIS_X0:.1}\" y1=\"{axis_y:.1}\" x2=\"{AXIS_X1:.1}\" y2=\"{axis_y:.1}\" stroke=\"#333333\"/>"
    );
    for f in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let x = AXIS_X0 + f * (AXIS_X1 - AXIS_X0);
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{axis_y:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#333333\"/>",
            axis_y + 5.0
        );
    }
    let min_key = tables.iter().map(|t| &t.smallest.user_key).min();
    let max_key = tables.iter().map(|t| &t.largest.user_key).max();
    if let (Some(min), Some(max)) = (min_key, max_key) {
        text(
            out,
            AXIS_X0,
            axis_y + 18.0,
            &format!("{MONO} font-size=\"11\""),
            &format!("smallest key {}", key_label(min, 24)),
        );
        text(
            out,
            AXIS_X1,
            axis_y + 18.0,
            &format!("{MONO} font-size=\"11\" text-anchor=\"end\""),
            &format!("largest key {}", key_label(max, 24)),
        );
    } else {
        text(out, AXIS_X0, axis_y + 18.0, "font-size=\"11\"", "no tables");
    }
}

/// The counters panel, its first line at `y`.
fn counter_panel(out: &mut String, y: f64, lines: &[(bool, String)]) {
    let _ = writeln!(
        out,
        "<rect x=\"{SIDE_X0:.1}\" y=\"{:.1}\" width=\"{SIDE_W:.1}\" height=\"{:.1}\" fill=\"#fbfbf4\" stroke=\"#dddddd\"/>",
        y - 14.0,
        lines.len() as f64 * 16.0 + 12.0
    );
    for (i, (bold, line)) in lines.iter().enumerate() {
        let weight = if *bold { " font-weight=\"bold\"" } else { "" };
        text(
            out,
            SIDE_X0 + 8.0,
            y + 2.0 + i as f64 * 16.0,
            &format!("{MONO} font-size=\"11\"{weight}"),
            line,
        );
    }
}

/// The picture of an inspection: one row per level (L0 on top, one lane per L0 table as
/// they overlap), each table a rectangle placed by its key range with its tombstone share
/// as a hatched band; beside, a box per live WAL (the memtables recovery rebuilds) and the
/// manifest's counters. `options` are those the database was last opened with (`None`:
/// unknown, defaults used for the targets and the memtable size, and said so).
pub fn lsm_shape(inspection: &Inspection, options: Option<&Options>) -> String {
    let defaults = Options::default();
    let opts = options.unwrap_or(&defaults);
    let tables: Vec<&TableView> = inspection.levels.iter().flat_map(|l| &l.tables).collect();
    let total_bytes: u64 = inspection.levels.iter().map(|l| l.bytes).sum();
    let scene = Scene {
        inspection,
        axis: KeyAxis::new(
            tables
                .iter()
                .flat_map(|t| [&t.smallest.user_key, &t.largest.user_key]),
        ),
        max_size: tables.iter().map(|t| t.size).max().unwrap_or(0),
    };
    let targets = (opts.compaction_style == CompactionStyle::Leveled).then(|| {
        let mut sizes: Vec<u64> = inspection.levels.iter().map(|l| l.bytes).collect();
        sizes.resize(sizes.len().max(opts.max_levels), 0);
        leveled::targets_for_sizes(&sizes, opts)
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
    let legend_y = axis_y + 44.0;
    let mut side = String::new();
    let memtables_end = memtables(&mut side, inspection, opts.memtable_size, TOP);
    let counters = counter_lines(inspection, &tables);
    let counters_y = memtables_end + 16.0;
    let side_bottom = counters_y + counters.len() as f64 * 16.0 + 14.0;
    let height = (legend_y + 100.0).max(side_bottom + 20.0).ceil() as u32;

    let (entries, deletions) = inspection.table_entries();
    let mut out = String::new();
    let title = format!(
        "kevo LSM shape: {}: {} tables, {} in tables ({} bytes), {entries} entries, {deletions} tombstones",
        inspection.dir,
        tables.len(),
        bytes(total_bytes),
        total_bytes
    );
    start(&mut out, WIDTH, height, &title);
    out.push_str(HATCH);
    out.push('\n');
    text(
        &mut out,
        16.0,
        26.0,
        "font-size=\"16\" font-weight=\"bold\"",
        &format!(
            "LSM shape: {} tables, {} in tables; {entries} entries, {deletions} tombstones ({})",
            tables.len(),
            bytes(total_bytes),
            percent(deletions, entries)
        ),
    );
    let style = match (opts.compaction_style, options.is_some()) {
        (CompactionStyle::Leveled, true) => "leveled compaction",
        (CompactionStyle::Tiered, true) => "tiered compaction",
        (_, false) => "no OPTIONS file: targets and memtable size from the default options",
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

    for (level, &row) in inspection.levels.iter().zip(&rows) {
        let detail = level_detail(level, targets.as_ref(), opts);
        scene.level(&mut out, level, row, &detail);
    }

    key_axis(&mut out, axis_y, &tables);
    legend(&mut out, legend_y, scene.max_size);

    // Beside: the memtables, then the manifest's counters.
    out.push_str(&side);
    counter_panel(&mut out, counters_y, &counters);
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
        let lv = leveled::targets_for_sizes(&sizes, &opts);
        let last = opts.max_levels - 1;
        assert_eq!(lv.targets[last], 100_000);
        assert_eq!(lv.targets[last - 1], 10_000);
        assert_eq!(lv.targets[last - 2], 1000);
        assert_eq!(lv.base_level, last - 2);
    }
}
