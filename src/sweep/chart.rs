//! The sweep chart: flow latency (p50, p95) in the top panel and capacity estimate vs.
//! measured throughput (and the what-if capacity if hashing used every core) in the
//! bottom one, both against the bcrypt cost, with OWASP's
//! minimum cost marked. Drawn as SVG with plotters (SVG text needs no font files), and
//! rasterized to PNG with resvg, which finds the system's fonts itself: without any font
//! installed the PNG simply has no text (`scripts/setup.sh` installs DejaVu).
//!
//! Both y axes are logarithmic: each +1 in cost doubles the time of a hash, so on a log
//! scale the expected curves are straight lines and a deviation (queueing, a timeout
//! wall) stands out.

use anyhow::Context;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use resvg::{tiny_skia, usvg};

use super::{Sweep, OWASP_MIN_COST};

const WIDTH: u32 = 900;
const HEIGHT: u32 = 760;
const FONT: &str = "sans-serif";
const OWASP_LABEL: &str = "OWASP minimum (10)";

/// Where a row's value goes on the x axis: the bcrypt cost itself, or log2 of a swept
/// parameter (its values double from one row to the next, as a cost does).
fn xval(s: &Sweep, value: u32) -> f64 {
    match s.config.param {
        Some(_) => f64::from(value.max(1)).log2(),
        None => f64::from(value),
    }
}

/// The OWASP line's x.
fn owasp_x(s: &Sweep) -> f64 {
    xval(s, s.config.owasp_value.unwrap_or(OWASP_MIN_COST))
}

/// The x range: every swept value and the OWASP line, with half a step of margin.
fn x_range(s: &Sweep) -> std::ops::Range<f64> {
    let xs = s.rows.iter().map(|r| xval(s, r.cost)).chain([owasp_x(s)]);
    let lo = xs.clone().fold(f64::INFINITY, f64::min);
    let hi = xs.fold(f64::NEG_INFINITY, f64::max);
    (lo - 0.5)..(hi + 0.5)
}

/// A log-scale y range around the positive values, with some headroom for the labels.
fn y_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if hi <= 0.0 {
        return 0.1..1000.0;
    }
    (lo / 2.0)..(hi * 4.0)
}

fn points(s: &Sweep, f: impl Fn(&super::SweepRow) -> Option<f64>) -> Vec<(f64, f64)> {
    s.rows
        .iter()
        .filter_map(|r| {
            f(r).filter(|v| v.is_finite() && *v > 0.0)
                .map(|v| (xval(s, r.cost), v))
        })
        .collect()
}

fn cost_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 {
        format!("{}", x.round())
    } else {
        String::new()
    }
}

/// A latency axis label, ms: whole above 1, two decimals below (the log scale's low end).
pub(crate) fn ms_label(v: &f64) -> String {
    if *v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn draw_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("could not draw the sweep chart: {e}")
}

/// One line of a panel.
struct Series {
    label: &'static str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// The x axis: what it shows, whether it is log2 of the values, where OWASP's line is.
struct XAxis {
    desc: String,
    log2: bool,
    owasp: f64,
    owasp_label: String,
}

fn x_axis(s: &Sweep) -> XAxis {
    match &s.config.param {
        Some(p) => XAxis {
            desc: format!("{p} (log scale)"),
            log2: true,
            owasp: owasp_x(s),
            owasp_label: format!(
                "OWASP minimum ({})",
                s.config.owasp_value.unwrap_or_default()
            ),
        },
        None => XAxis {
            desc: "bcrypt cost".into(),
            log2: false,
            owasp: owasp_x(s),
            owasp_label: OWASP_LABEL.into(),
        },
    }
}

/// One panel: a series per `(label, color, points)`, plus the OWASP line.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    y_desc: &str,
    (x, axis): (std::ops::Range<f64>, &XAxis),
    series: &[Series],
    legend: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let y = y_range(series.iter().flat_map(|s| s.points.iter().map(|(_, v)| *v)));
    let (y_lo, y_hi) = (y.start, y.end);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x.clone(), y.log_scale())
        .map_err(draw_err)?;
    let span = (x.end - x.start).ceil() as usize;
    chart
        .configure_mesh()
        .x_desc(axis.desc.as_str())
        .y_desc(y_desc)
        .x_labels(span * 2 + 2)
        .x_label_formatter(&|v| {
            if axis.log2 && !cost_label(v).is_empty() {
                format!("{}", 2f64.powf(v.round()))
            } else {
                cost_label(v)
            }
        })
        .y_label_formatter(&ms_label)
        .light_line_style(WHITE.mix(0.0))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(draw_err)?;
    let owasp = axis.owasp;
    chart
        .draw_series(LineSeries::new(
            [(owasp, y_lo), (owasp, y_hi)],
            RED.stroke_width(2),
        ))
        .map_err(draw_err)?;
    // The label goes on the side of the line with more room, so it is never clipped.
    let on_left = owasp > (x.start + x.end) / 2.0;
    let (label_x, hpos) = if on_left {
        (owasp - 0.08, HPos::Right)
    } else {
        (owasp + 0.08, HPos::Left)
    };
    chart
        .draw_series(std::iter::once(Text::new(
            axis.owasp_label.clone(),
            (label_x, y_hi / 1.3),
            (FONT, 14)
                .into_font()
                .color(&RED)
                .pos(Pos::new(hpos, VPos::Top)),
        )))
        .map_err(draw_err)?;
    for Series {
        label,
        color,
        points: pts,
    } in series
    {
        let color = *color;
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(draw_err)?
            .label(*label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .map_err(draw_err)?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

/// The chart as an SVG document.
pub fn svg(s: &Sweep) -> anyhow::Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let title = format!(
            "{}: {} flows, {} at once, {} hashing threads{}",
            super::report::title(s),
            s.config.flows,
            s.config.concurrency,
            s.config.hashing_threads,
            if s.partial { " (PARTIAL)" } else { "" }
        );
        let root = root.titled(&title, (FONT, 20)).map_err(draw_err)?;
        let (top, bottom) = root.split_vertically((HEIGHT - 40) / 2);
        let x = x_range(s);
        let axis = x_axis(s);
        panel(
            &top,
            "Flow latency (log scale)",
            "flow time (ms)",
            (x.clone(), &axis),
            &[
                Series {
                    label: "flow p50",
                    color: BLUE,
                    points: points(s, |r| r.flow_p50_ms),
                },
                Series {
                    label: "flow p95",
                    color: RGBColor(230, 120, 0),
                    points: points(s, |r| r.flow_p95_ms),
                },
            ],
            // Latency rises with cost: the upper left stays empty.
            SeriesLabelPosition::UpperLeft,
        )?;
        panel(
            &bottom,
            "Capacity estimate and measured throughput (log scale)",
            "flows/s",
            (x, &axis),
            &[
                Series {
                    label: if s.config.spawn.is_some() {
                        "capacity = parallelism / service time alone"
                    } else {
                        "capacity ≈ threads / (hashes per flow × hash time)"
                    },
                    color: RGBColor(0, 140, 60),
                    points: points(s, |r| r.capacity_flows_per_s),
                },
                Series {
                    label: "if hashing used every core",
                    color: RGBColor(150, 60, 180),
                    points: points(s, |r| r.capacity_if_parallel_flows_per_s),
                },
                Series {
                    label: "measured throughput",
                    color: BLACK,
                    points: points(s, |r| Some(r.flows_per_s)),
                },
            ],
            // Capacity falls with cost: the lower left stays empty.
            SeriesLabelPosition::LowerLeft,
        )?;
        root.present().map_err(draw_err)?;
    }
    Ok(buf)
}

/// A rendered PNG.
pub struct Png {
    pub bytes: Vec<u8>,
    /// A system font was found; without one the PNG has no text.
    pub had_fonts: bool,
}

/// Renders an SVG to PNG with the system's fonts.
pub fn png(svg: &str) -> anyhow::Result<Png> {
    let mut opt = usvg::Options::default();
    let family = {
        let db = opt.fontdb_mut();
        db.load_system_fonts();
        // "sans-serif" resolves to Arial by default, which Linux rarely has: name a
        // family that is installed, preferring the common ones.
        let installed: Vec<String> = db
            .faces()
            .filter_map(|f| f.families.first().map(|(name, _)| name.clone()))
            .collect();
        let family = ["DejaVu Sans", "Liberation Sans", "Arial", "Noto Sans"]
            .iter()
            .find(|p| installed.iter().any(|n| n == *p))
            .map(|p| p.to_string())
            .or_else(|| installed.first().cloned());
        if let Some(f) = &family {
            db.set_sans_serif_family(f.clone());
        }
        family
    };
    let had_fonts = family.is_some();
    if let Some(f) = family {
        opt.font_family = f;
    }
    let tree = usvg::Tree::from_str(svg, &opt).context("could not read the chart SVG")?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .context("could not allocate the chart image")?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    let bytes = pixmap
        .encode_png()
        .map_err(|e| anyhow::anyhow!("could not encode the chart PNG: {e}"))?;
    Ok(Png { bytes, had_fonts })
}
