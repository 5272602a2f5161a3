//! A benchmark's results: ops/s and latency percentiles per workload.

use std::fmt::Write as _;

use super::{MONO, start, text, xml};

/// What the bench chart shows of one workload.
pub struct BenchBar {
    pub name: String,
    pub ops_per_sec: f64,
    /// Latency percentiles in µs.
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
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
    let height = top2 + CHART_H + 90.0;
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
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_are_tidy() {
        assert!((nice_ceiling(3.2e5) - 5e5).abs() < 1e-6);
    }
}
