//! The capacity chart: flow latency (p50, p99, from the intended start) against the
//! offered rate, one line per cost, steps that broke the SLO drawn hollow, and the
//! sustainable rate marked: the knee. SVG with plotters, PNG through the sweep's
//! rasterizer ([`crate::sweep::chart::png`]). Returns text; writes nothing.

use plotters::prelude::*;

use super::{Capacity, CostSearch};

const WIDTH: u32 = 900;
const HEIGHT: u32 = 560;
const FONT: &str = "sans-serif";

fn draw_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("could not draw the capacity chart: {e}")
}

const COLORS: [RGBColor; 6] = [
    BLUE,
    RGBColor(230, 120, 0),
    RGBColor(0, 140, 60),
    RGBColor(150, 60, 180),
    RGBColor(200, 0, 0),
    BLACK,
];

fn label(s: &CostSearch) -> String {
    s.cost
        .map_or_else(|| "flow".into(), |c| format!("cost {c}"))
}

/// `(offered, ms, passed)` of a search's steps in rate order, for one statistic.
fn points(s: &CostSearch, stat: fn(&super::StepRow) -> Option<f64>) -> Vec<(f64, f64, bool)> {
    let mut v: Vec<(f64, f64, bool)> = s
        .steps
        .iter()
        .filter_map(|r| {
            stat(r)
                .filter(|v| *v > 0.0 && v.is_finite())
                .map(|v| (r.offered, v, r.passed))
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// The chart as an SVG document.
pub fn svg(c: &Capacity) -> anyhow::Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let title = format!(
            "Latency against offered rate: {} (SLO {}){}",
            c.config.scenario,
            c.config.slo,
            if c.partial { " (PARTIAL)" } else { "" }
        );
        let root = root.titled(&title, (FONT, 18)).map_err(draw_err)?;
        let all: Vec<(f64, f64)> = c
            .searches
            .iter()
            .flat_map(|s| {
                let mut p = points(s, |r| r.p50_ms);
                p.extend(points(s, |r| r.p99_ms));
                p.into_iter().map(|(x, y, _)| (x, y))
            })
            .collect();
        let x_hi = all.iter().map(|p| p.0).fold(1e-3, f64::max) * 1.1;
        let y_lo = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let y_hi = all.iter().map(|p| p.1).fold(1.0, f64::max);
        let y_lo = if y_lo.is_finite() { y_lo / 1.5 } else { 0.1 };
        let mut chart = ChartBuilder::on(&root)
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_hi, (y_lo..y_hi * 1.5).log_scale())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("offered rate (flows/s)")
            .y_desc("flow latency from the intended start (ms, log scale)")
            .y_label_formatter(&crate::sweep::chart::ms_label)
            .light_line_style(WHITE.mix(0.0))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(draw_err)?;
        for (i, s) in c.searches.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            for (stat, name, width) in [
                (
                    (|r: &super::StepRow| r.p50_ms) as fn(&super::StepRow) -> Option<f64>,
                    "p50",
                    1,
                ),
                (|r: &super::StepRow| r.p99_ms, "p99", 3),
            ] {
                let pts = points(s, stat);
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().map(|p| (p.0, p.1)),
                        color.stroke_width(width),
                    ))
                    .map_err(draw_err)?
                    .label(format!("{} {name}", label(s)))
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 20, y)], color.stroke_width(width))
                    });
                // Filled: the step met the SLO; hollow: it broke it.
                chart
                    .draw_series(pts.iter().map(|p| {
                        let style = if p.2 {
                            color.filled()
                        } else {
                            color.stroke_width(2)
                        };
                        Circle::new((p.0, p.1), 4, style)
                    }))
                    .map_err(draw_err)?;
            }
            if s.sustainable_rate > 0.0 {
                chart
                    .draw_series(LineSeries::new(
                        [(s.sustainable_rate, y_lo), (s.sustainable_rate, y_hi * 1.5)],
                        color.mix(0.6).stroke_width(1),
                    ))
                    .map_err(draw_err)?
                    .label(format!(
                        "{} sustainable: {}/s",
                        label(s),
                        super::report::fmt_rate(s.sustainable_rate)
                    ))
                    .legend(move |(x, y)| {
                        PathElement::new([(x + 10, y - 6), (x + 10, y + 6)], color.stroke_width(1))
                    });
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(buf)
}
