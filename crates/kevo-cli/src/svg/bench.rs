//! A benchmark's results: ops/s and latency percentiles per workload, and each workload's
//! throughput over time with the engine's flushes, compactions and write stalls.

use std::fmt::Write as _;

use super::{MONO, counted, start, text, xml};

/// What the bench chart shows of one workload.
pub struct BenchBar {
    pub name: String,
    pub ops_per_sec: f64,
    /// Latency percentiles in µs.
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    /// Its throughput over time (`None`: not recorded, no line drawn).
    pub series: Option<Series>,
}

/// A workload's completed operations over time, and the background events meanwhile.
pub struct Series {
    /// The sampling interval in seconds.
    pub interval: f64,
    /// (seconds since the start, operations completed by then), in time order.
    pub samples: Vec<(f64, u64)>,
    pub marks: Vec<Mark>,
}

/// What kind of background work a mark shows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    Flush,
    Compaction,
    Stall,
}

impl MarkKind {
    /// The mark's class in the document, and its colour.
    fn class(self) -> (&'static str, &'static str) {
        match self {
            MarkKind::Flush => ("flush-mark", "#59a14f"),
            MarkKind::Compaction => ("compaction-mark", "#f28e2b"),
            MarkKind::Stall => ("stall-mark", "#e15759"),
        }
    }
}

/// A background event on a workload's time axis.
pub struct Mark {
    pub kind: MarkKind,
    /// Seconds since the workload started.
    pub start: f64,
    pub end: f64,
    /// Its tooltip.
    pub label: String,
}

/// A tidy axis maximum at or above `v`: 1, 2 or 5 times a power of ten.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * power >= v {
            return m * power;
        }
    }
    10.0 * power
}

/// A count with thousands as k and millions as M.
fn count(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn micros(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1} s", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} ms", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0} µs")
    } else if v >= 0.1 {
        format!("{v:.1} µs")
    } else {
        format!("{v:.2} µs")
    }
}

/// Two charts, one above the other: ops/s per workload, and p50/p99/p99.9 latency per
/// workload on a log scale.
#[allow(clippy::too_many_lines)]
pub fn bench_chart(engine: &str, subtitle: &str, bars: &[BenchBar]) -> String {
    const LEFT: f64 = 80.0;
    const SLOT: f64 = 96.0;
    const CHART_H: f64 = 200.0;
    const TOP1: f64 = 96.0;
    const COLORS: [&str; 3] = ["#4e79a7", "#f28e2b", "#e15759"];
    /// Smallest latency drawn, in µs (the report's resolution).
    const FLOOR: f64 = 0.01;

    let n = bars.len().max(1);
    let plot_w = SLOT * n as f64;
    let width = (LEFT + plot_w + 40.0).max(640.0).ceil();
    let top2 = TOP1 + CHART_H + 100.0;
    let top3 = top2 + CHART_H + 90.0;
    let height = top3 + timelines_height(bars.len(), width);
    let mut out = String::new();
    start(
        &mut out,
        width as u32,
        height as u32,
        &format!("kevo bench: {engine}"),
    );
    text(
        &mut out,
        16.0,
        26.0,
        "font-size=\"16\" font-weight=\"bold\"",
        &format!("kevo bench: {engine} engine, {} workloads", bars.len()),
    );
    text(
        &mut out,
        16.0,
        46.0,
        "font-size=\"11\" fill=\"#444444\"",
        subtitle,
    );
    let slot_x = |i: usize| LEFT + SLOT * i as f64;
    let labels = |out: &mut String, base: f64| {
        for (i, b) in bars.iter().enumerate() {
            text(
                out,
                slot_x(i) + SLOT / 2.0,
                base + 16.0,
                &format!("{MONO} font-size=\"11\" text-anchor=\"middle\""),
                &b.name,
            );
        }
    };
    let frame = |out: &mut String, top: f64| {
        let base = top + CHART_H;
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{top:.1}\" x2=\"{LEFT}\" y2=\"{base:.1}\" stroke=\"#333333\"/>\n\
             <line x1=\"{LEFT}\" y1=\"{base:.1}\" x2=\"{:.1}\" y2=\"{base:.1}\" stroke=\"#333333\"/>",
            LEFT + plot_w
        );
    };
    let grid = |out: &mut String, y: f64, label: &str| {
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/>",
            LEFT + plot_w
        );
        text(
            out,
            LEFT - 6.0,
            y + 4.0,
            "font-size=\"10\" text-anchor=\"end\"",
            label,
        );
    };

    // Throughput.
    text(
        &mut out,
        16.0,
        TOP1 - 16.0,
        "font-size=\"13\" font-weight=\"bold\"",
        "throughput (operations per second, higher is better)",
    );
    let max_ops = nice_ceiling(bars.iter().map(|b| b.ops_per_sec).fold(0.0, f64::max));
    for k in 0..=4 {
        let v = max_ops * f64::from(k) / 4.0;
        grid(
            &mut out,
            TOP1 + CHART_H - CHART_H * f64::from(k) / 4.0,
            &count(v),
        );
    }
    frame(&mut out, TOP1);
    for (i, b) in bars.iter().enumerate() {
        let h = (b.ops_per_sec / max_ops * CHART_H).max(0.0);
        let x = slot_x(i) + SLOT * 0.2;
        let y = TOP1 + CHART_H - h;
        let _ = writeln!(
            out,
            "<rect id=\"ops-{i}\" class=\"ops-bar\" data-workload=\"{}\" data-ops-per-sec=\"{:.0}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{}</title></rect>",
            xml(&b.name),
            b.ops_per_sec,
            SLOT * 0.6,
            COLORS[0],
            xml(&format!("{}: {:.0} ops/s", b.name, b.ops_per_sec))
        );
        text(
            &mut out,
            slot_x(i) + SLOT / 2.0,
            y - 4.0,
            "font-size=\"10\" text-anchor=\"middle\"",
            &count(b.ops_per_sec),
        );
    }
    labels(&mut out, TOP1 + CHART_H);

    // Latency, log scale.
    text(
        &mut out,
        16.0,
        top2 - 16.0,
        "font-size=\"13\" font-weight=\"bold\"",
        "latency per operation (log scale, lower is better)",
    );
    // The report rounds latencies to 0.01 µs: a 0 is below that, drawn as that.
    let values = bars
        .iter()
        .flat_map(|b| [b.p50, b.p99, b.p999])
        .map(|v| v.max(FLOOR));
    let values_min = values.clone().fold(f64::INFINITY, f64::min);
    let lo_exp = values
        .clone()
        .filter(|v| *v > 0.0)
        .map(|v| v.log10().floor())
        .fold(f64::INFINITY, f64::min);
    let hi_exp = values
        .filter(|v| *v > 0.0)
        .map(|v| v.log10().ceil())
        .fold(f64::NEG_INFINITY, f64::max);
    let (lo_exp, hi_exp) = if lo_exp.is_finite() && hi_exp.is_finite() {
        // A bar at the very bottom of the axis would not show: leave a decade below it.
        let lowest = values_min.log10();
        let lo_exp = if lowest - lo_exp < 0.15 {
            lo_exp - 1.0
        } else {
            lo_exp
        };
        (lo_exp.min(0.0), hi_exp.max(lo_exp + 1.0))
    } else {
        (0.0, 1.0)
    };
    let scale = |v: f64| -> f64 {
        if v <= 0.0 {
            return 0.0;
        }
        ((v.log10() - lo_exp) / (hi_exp - lo_exp)).clamp(0.0, 1.0) * CHART_H
    };
    let mut e = lo_exp;
    while e <= hi_exp + 1e-9 {
        grid(
            &mut out,
            top2 + CHART_H - scale(10f64.powf(e)),
            &micros(10f64.powf(e)),
        );
        e += 1.0;
    }
    frame(&mut out, top2);
    let bar_w = SLOT * 0.7 / 3.0;
    for (i, b) in bars.iter().enumerate() {
        for (j, (label, v)) in [("p50", b.p50), ("p99", b.p99), ("p99.9", b.p999)]
            .into_iter()
            .enumerate()
        {
            let h = scale(v.max(FLOOR));
            let x = slot_x(i) + SLOT * 0.15 + bar_w * j as f64;
            let shown = if v < FLOOR {
                "< 0.01 µs".to_string()
            } else {
                micros(v)
            };
            let _ = writeln!(
                out,
                "<rect class=\"latency-bar\" data-workload=\"{}\" data-percentile=\"{label}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{}</title></rect>",
                xml(&b.name),
                top2 + CHART_H - h,
                bar_w - 1.0,
                COLORS[j],
                xml(&format!("{} {label}: {shown}", b.name))
            );
        }
    }
    labels(&mut out, top2 + CHART_H);
    let legend_y = top2 + CHART_H + 44.0;
    for (j, label) in ["p50", "p99", "p99.9"].into_iter().enumerate() {
        let x = LEFT + j as f64 * 80.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>",
            legend_y - 10.0,
            COLORS[j]
        );
        text(&mut out, x + 16.0, legend_y, "font-size=\"11\"", label);
    }
    text(
        &mut out,
        LEFT + 260.0,
        legend_y,
        "font-size=\"11\" fill=\"#444444\"",
        "Generated by kevo bench ... --svg FILE.",
    );
    timelines(&mut out, bars, top3, width);
    out.push_str("</svg>\n");
    out
}

/// The panels of the throughput timelines: as many columns as fit.
struct Panels {
    columns: usize,
    width: f64,
}

impl Panels {
    const MARGIN: f64 = 16.0;
    const GAP: f64 = 16.0;
    const HEIGHT: f64 = 124.0;
    /// Room for the section's heading above the panels and the legend below.
    const HEADING: f64 = 40.0;
    const LEGEND: f64 = 64.0;

    fn new(chart_width: f64) -> Self {
        let room = chart_width - 2.0 * Self::MARGIN;
        let columns = ((room + Self::GAP) / (260.0 + Self::GAP))
            .floor()
            .clamp(1.0, 4.0);
        Panels {
            columns: columns as usize,
            width: (room - (columns - 1.0) * Self::GAP) / columns,
        }
    }

    fn rows(&self, panels: usize) -> usize {
        panels.div_ceil(self.columns)
    }

    /// The top-left corner of panel `i` of a section starting at `top`.
    fn at(&self, i: usize, top: f64) -> (f64, f64) {
        let (row, column) = (i / self.columns, i % self.columns);
        (
            Self::MARGIN + column as f64 * (self.width + Self::GAP),
            top + Self::HEADING + row as f64 * (Self::HEIGHT + Self::GAP),
        )
    }
}

/// The height the timelines of `n` workloads take in a chart `width` wide.
fn timelines_height(n: usize, width: f64) -> f64 {
    let panels = Panels::new(width);
    let rows = panels.rows(n) as f64;
    Panels::HEADING + rows * (Panels::HEIGHT + Panels::GAP) + Panels::LEGEND
}

/// Per interval between samples: (start, end, operations per second). A last interval
/// shorter than half the sampling interval is merged into the one before, so the line does
/// not end on a noisy sliver.
fn rates(series: &Series) -> Vec<(f64, f64, f64)> {
    let mut rates: Vec<(f64, f64, f64)> = Vec::new();
    let (mut t0, mut n0) = (0.0, 0u64);
    for &(t, n) in &series.samples {
        if t <= t0 {
            continue;
        }
        rates.push((t0, t, n.saturating_sub(n0) as f64 / (t - t0)));
        (t0, n0) = (t, n);
    }
    if let [.., before, last] = rates[..]
        && last.1 - last.0 < series.interval / 2.0
    {
        let ops = before.2 * (before.1 - before.0) + last.2 * (last.1 - last.0);
        rates.pop();
        rates.pop();
        rates.push((before.0, last.1, ops / (last.1 - before.0)));
    }
    rates
}

/// One small chart per workload: its throughput in each sampling interval as a step line
/// (each workload on its own scale), compactions as shaded spans, flushes as a strip along
/// the bottom, write stalls as a strip and a marker along the top.
fn timelines(out: &mut String, bars: &[BenchBar], top: f64, width: f64) {
    let panels = Panels::new(width);
    text(
        out,
        16.0,
        top + 16.0,
        "font-size=\"13\" font-weight=\"bold\"",
        "throughput over time (ops/s in each 100 ms, each on its own scale)",
    );
    for (i, bar) in bars.iter().enumerate() {
        let (x, y) = panels.at(i, top);
        timeline_panel(out, bar, x, y, panels.width);
    }
    let legend_y = top + timelines_height(bars.len(), width) - Panels::LEGEND + 18.0;
    let mut x = 16.0;
    for (kind, label) in [
        (MarkKind::Compaction, "compaction (span)"),
        (MarkKind::Flush, "flush (bottom strip)"),
        (MarkKind::Stall, "write stall (top strip, ▼ at its start)"),
    ] {
        let (_, color) = kind.class();
        let opacity = if kind == MarkKind::Compaction {
            "0.35"
        } else {
            "1"
        };
        let _ = writeln!(
            out,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{color}\" fill-opacity=\"{opacity}\"/>",
            legend_y - 10.0
        );
        text(out, x + 16.0, legend_y, "font-size=\"11\"", label);
        x += 16.0 + 7.0 * label.chars().count() as f64 + 20.0;
    }
    text(
        out,
        16.0,
        legend_y + 20.0,
        "font-size=\"11\" fill=\"#444444\"",
        "Events: kevo's event listener, logged as they end (trivial moves left out);",
    );
    text(
        out,
        16.0,
        legend_y + 34.0,
        "font-size=\"11\" fill=\"#444444\"",
        "other engines show the line only.",
    );
}

/// A panel's plot area: `x0..x1` covers 0 to `span` seconds, `y1..y0` 0 to `max` ops/s.
struct Plot {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    span: f64,
    max: f64,
}

impl Plot {
    fn x(&self, t: f64) -> f64 {
        self.x0 + (t / self.span).clamp(0.0, 1.0) * (self.x1 - self.x0)
    }

    fn y(&self, rate: f64) -> f64 {
        self.y1 - (rate / self.max).clamp(0.0, 1.0) * (self.y1 - self.y0)
    }

    /// The frame, the rate labels (0, half, max) and the time labels (0, span).
    fn frame(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#fafafa\" stroke=\"#cccccc\"/>",
            self.x0,
            self.y0,
            self.x1 - self.x0,
            self.y1 - self.y0
        );
        for v in [self.max, self.max / 2.0, 0.0] {
            text(
                out,
                self.x0 - 4.0,
                self.y(v) + 3.5,
                "font-size=\"9\" text-anchor=\"end\"",
                &count(v),
            );
        }
        text(out, self.x0, self.y1 + 12.0, "font-size=\"9\"", "0 s");
        text(
            out,
            self.x1,
            self.y1 + 12.0,
            "font-size=\"9\" text-anchor=\"end\"",
            &format!("{:.2} s", self.span),
        );
    }

    /// The events: compactions as spans behind the line (drawn first), flushes as a strip
    /// along the bottom, stalls as a strip and a marker along the top.
    fn marks(&self, out: &mut String, workload: &str, marks: &[Mark]) {
        let mut ordered: Vec<&Mark> = marks.iter().collect();
        ordered.sort_by_key(|m| m.kind != MarkKind::Compaction);
        for m in ordered {
            let (class, color) = m.kind.class();
            let mx = self.x(m.start);
            let mw = (self.x(m.end) - mx).max(1.5).min(self.x1 - mx);
            let (my, mh, opacity) = match m.kind {
                MarkKind::Compaction => (self.y0, self.y1 - self.y0, 0.22),
                MarkKind::Flush => (self.y1 - 5.0, 5.0, 0.9),
                MarkKind::Stall => (self.y0, 5.0, 0.9),
            };
            let _ = writeln!(
                out,
                "<rect class=\"{class}\" data-workload=\"{}\" x=\"{mx:.2}\" y=\"{my:.1}\" width=\"{mw:.2}\" height=\"{mh:.1}\" fill=\"{color}\" fill-opacity=\"{opacity}\"><title>{}</title></rect>",
                xml(workload),
                xml(&format!("{:.3}–{:.3} s: {}", m.start, m.end, m.label))
            );
            if m.kind == MarkKind::Stall {
                let _ = writeln!(
                    out,
                    "<path d=\"M {mx:.2} {:.1} l -3.5 -6 l 7 0 z\" fill=\"{color}\"/>",
                    self.y0 - 0.5
                );
            }
        }
    }
}

/// One workload's panel, its top-left corner at (`x`, `y`), `w` wide.
fn timeline_panel(out: &mut String, bar: &BenchBar, x: f64, y: f64, w: f64) {
    let Some(series) = &bar.series else {
        text(
            out,
            x,
            y + 14.0,
            "font-size=\"11\"",
            &format!("{}: not recorded", bar.name),
        );
        return;
    };
    let rates = rates(series);
    let peak = rates.iter().map(|r| r.2).fold(0.0, f64::max);
    let plot = Plot {
        x0: x + 40.0,
        x1: x + w - 6.0,
        y0: y + 24.0,
        y1: y + Panels::HEIGHT - 22.0,
        span: series.samples.last().map_or(1.0, |s| s.0).max(1e-4),
        // Headroom above the peak, so the line does not run along the frame.
        max: nice_ceiling(peak * 1.1),
    };
    let count_of = |kind| series.marks.iter().filter(|m| m.kind == kind).count() as u64;
    text(
        out,
        x,
        y + 14.0,
        &format!("{MONO} font-size=\"11\" font-weight=\"bold\""),
        &bar.name,
    );
    text(
        out,
        plot.x1,
        y + 14.0,
        "font-size=\"10\" fill=\"#444444\" text-anchor=\"end\"",
        &format!(
            "{}, {}, {}",
            counted(count_of(MarkKind::Flush), "flush"),
            counted(count_of(MarkKind::Compaction), "compaction"),
            counted(count_of(MarkKind::Stall), "stall")
        ),
    );
    plot.frame(out);
    plot.marks(out, &bar.name, &series.marks);
    // A step per interval: its rate from its start to its end.
    let mut points = String::new();
    for &(a, b, r) in &rates {
        let _ = write!(
            points,
            "{:.2},{:.2} {:.2},{:.2} ",
            plot.x(a),
            plot.y(r),
            plot.x(b),
            plot.y(r)
        );
    }
    let _ = writeln!(
        out,
        "<polyline class=\"throughput-line\" data-workload=\"{}\" data-intervals=\"{}\" points=\"{}\" fill=\"none\" stroke=\"#4e79a7\" stroke-width=\"1.6\"><title>{}</title></polyline>",
        xml(&bar.name),
        rates.len(),
        points.trim_end(),
        xml(&format!(
            "{}: {} samples every {:.0} ms, peak {} ops/s",
            bar.name,
            series.samples.len(),
            series.interval * 1e3,
            count(peak)
        ))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_are_tidy() {
        assert!((nice_ceiling(3.2e5) - 5e5).abs() < 1e-6);
    }

    #[test]
    fn rates_are_per_interval_and_a_short_tail_joins_the_interval_before() {
        let series = Series {
            interval: 0.1,
            samples: vec![(0.1, 100), (0.2, 300), (0.21, 310)],
            marks: Vec::new(),
        };
        let steps = rates(&series);
        assert_eq!(steps.len(), 2);
        assert!((steps[0].2 - 1000.0).abs() < 1e-6);
        let (a, b, r) = steps[1];
        assert!((a - 0.1).abs() < 1e-9 && (b - 0.21).abs() < 1e-9);
        assert!((r - 210.0 / 0.11).abs() < 1e-6, "{r}");
        let one = Series {
            interval: 0.1,
            samples: vec![(0.02, 50)],
            marks: Vec::new(),
        };
        assert_eq!(rates(&one).len(), 1, "a short workload still has its line");
    }
}
