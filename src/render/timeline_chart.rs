//! The HTML report's "Over Time" chart: flows completed and errors per timeline bucket
//! (bars), p50/p99 of flow latency (lines) and outage windows (shaded). Inline SVG, like
//! the other charts; the CPU chart beside it is [`super::usage_chart`].

use std::fmt::Write;

use crate::report::Report;

/// The chart, or a line saying why there is none.
pub(super) fn chart(r: &Report) -> String {
    let t = &r.timeline;
    if t.points.is_empty() {
        return "<p>No timeline (the run was shorter than a second or recorded nothing).</p>"
            .into();
    }
    let (w, h, ml, mr, mt, mb) = (760.0, 300.0, 64.0, 64.0, 16.0, 40.0);
    let tmax = t.points.last().map(|p| p.t_s + t.bucket_s).unwrap_or(1.0);
    let lat_max = t
        .points
        .iter()
        .map(|p| p.p99_ms)
        .fold(0.0, f64::max)
        .max(1.0);
    let rate_max = t
        .points
        .iter()
        .map(|p| (p.completed.max(p.started) as f64) / t.bucket_s)
        .fold(0.0, f64::max)
        .max(1.0);
    let px = |s: f64| ml + s / tmax * (w - ml - mr);
    let py_lat = |ms: f64| mt + (1.0 - ms / lat_max) * (h - mt - mb);
    let py_rate = |n: f64| mt + (1.0 - n / rate_max) * (h - mt - mb);
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg class="chart" data-chart="timeline" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="latency and throughput over time">"#
    );
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let y = mt + (1.0 - f) * (h - mt - mb);
        let _ = write!(
            o,
            r##"<line x1="{ml}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{:.0}ms</text><text x="{:.1}" y="{:.1}" font-size="11" fill="#888">{:.0}/s</text>"##,
            w - mr,
            ml - 6.0,
            y + 4.0,
            lat_max * f,
            w - mr + 6.0,
            y + 4.0,
            rate_max * f
        );
    }
    // Outage windows, shaded behind the bars.
    for win in &r.availability.outages {
        let (x0, x1) = (px(win.start_s.min(tmax)), px(win.end_s.min(tmax)));
        let _ = write!(
            o,
            r##"<rect class="outage" x="{x0:.1}" y="{mt:.1}" width="{:.1}" height="{:.1}" fill="#f6d5d5" data-start="{:.3}" data-end="{:.3}"><title>outage {:.2}s to {:.2}s</title></rect>"##,
            (x1 - x0).max(1.0),
            h - mt - mb,
            win.start_s,
            win.end_s,
            win.start_s,
            win.end_s
        );
    }
    let bw = ((w - ml - mr) * t.bucket_s / tmax).max(1.0);
    for p in &t.points {
        let rate = p.completed as f64 / t.bucket_s;
        let err = p.errors as f64 / t.bucket_s;
        let _ = write!(
            o,
            r##"<rect class="completed" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#c7dcef" data-t="{}" data-completed="{}" data-started="{}" data-errors="{}"/>"##,
            px(p.t_s),
            py_rate(rate),
            (bw - 1.0).max(0.5),
            (h - mb) - py_rate(rate),
            p.t_s,
            p.completed,
            p.started,
            p.errors
        );
        if p.errors > 0 {
            let _ = write!(
                o,
                r##"<rect class="errors" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#d62728"/>"##,
                px(p.t_s),
                py_rate(err),
                (bw - 1.0).max(0.5),
                (h - mb) - py_rate(err)
            );
        }
    }
    for (name, color, get) in [
        (
            "p50",
            "#2ca02c",
            (|p: &crate::timeline::Point| p.p50_ms) as fn(&crate::timeline::Point) -> f64,
        ),
        ("p99", "#ff7f0e", |p| p.p99_ms),
    ] {
        let pts: Vec<String> = t
            .points
            .iter()
            .filter(|p| p.completed > 0)
            .map(|p| format!("{:.1},{:.1}", px(p.t_s + t.bucket_s / 2.0), py_lat(get(p))))
            .collect();
        let _ = write!(
            o,
            r#"<polyline data-series="{name}" fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
    }
    let _ = write!(
        o,
        r##"<text x="{ml}" y="{:.1}" font-size="11">0s</text><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{tmax:.0}s</text><text x="{:.1}" y="{:.1}" font-size="12" fill="#2ca02c">p50</text><text x="{:.1}" y="{:.1}" font-size="12" fill="#ff7f0e">p99</text><text x="{:.1}" y="{:.1}" font-size="12" fill="#5b8fc7">flows completed/s</text><text x="{:.1}" y="{:.1}" font-size="12" fill="#d62728">errors/s</text></svg>"##,
        h - mb + 16.0,
        w - mr,
        h - mb + 16.0,
        ml + 10.0,
        mt + 12.0,
        ml + 50.0,
        mt + 12.0,
        ml + 90.0,
        mt + 12.0,
        ml + 220.0,
        mt + 12.0
    );
    o
}
