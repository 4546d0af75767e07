//! The HTML report's CPU chart: cores busy over the run, per timeline bucket, for
//! authbench itself, the whole machine and the server (`--server-pid`, `--scrape`), from
//! the timeline's [`crate::usage::UsagePoint`]s. Inline SVG, like the other charts.

use std::fmt::Write;

use super::html::esc;
use crate::report::Report;
use crate::usage::UsagePoint;

type Get = fn(&UsagePoint) -> Option<f64>;

/// The chart and its note, or nothing when the run was not sampled.
pub fn chart(r: &Report) -> String {
    let Some(u) = &r.usage else {
        return String::new();
    };
    let t = &r.timeline;
    let series: [(&str, &str, Get); 4] = [
        ("authbench", "#1f77b4", |p| p.generator_cpu),
        ("machine", "#7f7f7f", |p| p.machine_cpu),
        ("server (--server-pid)", "#d62728", |p| p.server_cpu),
        ("server (--scrape)", "#9467bd", |p| p.scrape_cpu),
    ];
    let points: Vec<(f64, &UsagePoint)> = t
        .points
        .iter()
        .filter_map(|p| Some((p.t_s, p.usage.as_ref()?)))
        .collect();
    if points.is_empty() {
        return String::new();
    }
    let (w, h, ml, mr, mt, mb) = (760.0, 200.0, 64.0, 64.0, 16.0, 40.0);
    let tmax = t.points.last().map(|p| p.t_s + t.bucket_s).unwrap_or(1.0);
    let cores = u
        .machine
        .as_ref()
        .map_or_else(crate::usage::cores, |m| m.cores) as f64;
    let ymax = points
        .iter()
        .flat_map(|(_, p)| series.iter().filter_map(|s| (s.2)(p)))
        .fold(cores, f64::max);
    let px = |s: f64| ml + s / tmax * (w - ml - mr);
    let py = |c: f64| mt + (1.0 - c / ymax) * (h - mt - mb);
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg class="chart" data-chart="cpu" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="CPU over time">"#
    );
    for i in 0..=4 {
        let c = ymax * i as f64 / 4.0;
        let _ = write!(
            o,
            r##"<line x1="{ml}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{c:.1}</text>"##,
            w - mr,
            ml - 6.0,
            py(c) + 4.0,
            y = py(c)
        );
    }
    let mut legend = ml + 10.0;
    for (name, color, get) in series {
        let pts: Vec<String> = points
            .iter()
            .filter_map(|(ts, p)| {
                Some(format!(
                    "{:.1},{:.1}",
                    px(ts + t.bucket_s / 2.0),
                    py(get(p)?)
                ))
            })
            .collect();
        if pts.is_empty() {
            continue;
        }
        let _ = write!(
            o,
            r#"<polyline data-series="{}" fill="none" stroke="{color}" stroke-width="2" points="{}"/><text x="{legend:.1}" y="{:.1}" font-size="12" fill="{color}">{}</text>"#,
            esc(name),
            pts.join(" "),
            mt + 12.0,
            esc(name)
        );
        legend += 40.0 + 7.0 * name.len() as f64;
    }
    let _ = write!(
        o,
        r##"<text x="{ml}" y="{:.1}" font-size="11">0s</text><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{tmax:.0}s</text></svg><p class="note">CPU in cores busy per bucket (the machine has {cores:.0}): {}.</p>"##,
        h - mb + 16.0,
        w - mr,
        h - mb + 16.0,
        esc(&crate::usage::describe(u))
    );
    o
}
