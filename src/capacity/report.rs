//! A capacity search's outputs: the terminal table, the Markdown report, the HTML page (in
//! the shared page of [`crate::render::html`]) and [`write_capacity`], which writes them
//! with the JSON, SVG and PNG. Renderers return text or bytes; only `write_capacity`
//! touches the disk.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use super::{chart, Capacity, CostSearch, StepRow};
use crate::render::html::{esc, page};

/// A rate for a table: one decimal below 100/s, none above.
pub fn fmt_rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn fmt_ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "–".into(),
    }
}

const HEADERS: [&str; 9] = [
    "offered/s",
    "achieved/s",
    "flows",
    "success",
    "p50 ms",
    "p99 ms",
    "parallelism",
    "diagnosis",
    "verdict",
];

fn cells(r: &StepRow) -> [String; 9] {
    [
        fmt_rate(r.offered),
        fmt_rate(r.achieved),
        r.flows.to_string(),
        format!("{:.1}%", r.success_rate * 100.0),
        fmt_ms(r.p50_ms),
        fmt_ms(r.p99_ms),
        r.effective_parallelism
            .map_or_else(|| "–".into(), |p| format!("{p:.1}")),
        r.headline.clone().unwrap_or_else(|| "–".into()),
        if r.passed {
            "sustained".into()
        } else {
            format!("broke: {}", r.broken_by.join("; "))
        },
    ]
}

/// The heading of one search.
fn heading(s: &CostSearch) -> String {
    let mut h = match s.cost {
        Some(c) => format!("cost {c}"),
        None => "the target".into(),
    };
    if let Some(ms) = s.hash_ms {
        let _ = write!(h, " ({} ms per hash)", fmt_ms(Some(ms)));
    }
    h
}

/// The conclusion of one search, in a sentence.
pub fn conclusion(s: &CostSearch) -> String {
    let mut t = if s.sustainable_rate > 0.0 {
        format!("sustainable rate: {}/s", fmt_rate(s.sustainable_rate))
    } else {
        "no rate tried met the SLO".into()
    };
    if let Some(f) = s.first_failing_rate {
        let _ = write!(
            t,
            "; first rate that broke the SLO: {}/s ({})",
            fmt_rate(f),
            s.broken_by.join("; ")
        );
    }
    let _ = write!(t, " [{}, {:.0}s]", s.end.describe(), s.elapsed_s);
    t
}

/// Plain-text table per search, for the terminal.
pub fn terminal_table(c: &Capacity) -> String {
    let mut o = String::new();
    for s in &c.searches {
        let _ = writeln!(o, "{}: SLO {}", heading(s), c.config.slo);
        let rows: Vec<[String; 9]> = s.steps.iter().map(cells).collect();
        let mut w: Vec<usize> = HEADERS.iter().map(|h| h.chars().count()).collect();
        for r in &rows {
            for (i, c) in r.iter().enumerate().take(8) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |cells: &[&str]| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i < 8 {
                    let pad = w[i].saturating_sub(c.chars().count());
                    let _ = write!(l, "{}{}  ", " ".repeat(pad), c);
                } else {
                    l.push_str(c);
                }
            }
            l.trim_end().to_string()
        };
        let _ = writeln!(o, "{}", line(&HEADERS));
        for r in &rows {
            let refs: Vec<&str> = r.iter().map(String::as_str).collect();
            let _ = writeln!(o, "{}", line(&refs));
        }
        let _ = writeln!(o, "{}\n", conclusion(s));
    }
    let _ = writeln!(
        o,
        "sustainable rate: {}/s{}",
        fmt_rate(c.sustainable_rate),
        if c.searches.len() > 1 {
            " (the lowest of the costs)"
        } else {
            ""
        }
    );
    for t in &c.thresholds {
        let _ = writeln!(
            o,
            "threshold {}: {} (was {})",
            t.expr,
            if t.passed { "passed" } else { "FAILED" },
            t.observed_text
        );
    }
    o
}

/// The Markdown report; `chart` names the SVG written next to it.
pub fn markdown(c: &Capacity, chart: Option<&str>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Capacity: {}\n", c.config.scenario);
    let _ = writeln!(
        o,
        "Target {}; SLO `{}`; steps of {}s after a {}s warm-up (at least {} flows), constant arrivals, latency from the intended start; sustained means the SLO held and at least {:.0}% of the offered rate completed; precision {:.0}%.{}\n",
        c.config.target,
        c.config.slo,
        c.config.hold_s,
        c.config.warmup_s,
        c.config.hold_flows,
        c.config.sustain_fraction * 100.0,
        c.config.precision * 100.0,
        if c.partial { " **PARTIAL: interrupted.**" } else { "" }
    );
    let _ = writeln!(
        o,
        "**Sustainable rate: {}/s**\n",
        fmt_rate(c.sustainable_rate)
    );
    if let Some(name) = chart {
        let _ = writeln!(o, "![latency against offered rate]({name})\n");
    }
    for s in &c.searches {
        let _ = writeln!(o, "## {}\n\n{}\n", heading(s), conclusion(s));
        let _ = writeln!(o, "| {} |", HEADERS.join(" | "));
        let _ = writeln!(o, "|{}", "---|".repeat(HEADERS.len()));
        for r in &s.steps {
            let _ = writeln!(o, "| {} |", cells(r).join(" | "));
        }
        o.push('\n');
    }
    if !c.thresholds.is_empty() {
        let _ = writeln!(o, "## Thresholds\n");
        for t in &c.thresholds {
            let _ = writeln!(
                o,
                "- `{}`: {} (was {})",
                t.expr,
                if t.passed { "passed" } else { "FAILED" },
                t.observed_text
            );
        }
    }
    o
}

/// The HTML page, with the chart inline.
pub fn html(c: &Capacity, chart_svg: &str) -> Vec<u8> {
    let mut o = String::new();
    let svg = chart_svg
        .trim_start()
        .strip_prefix("<?xml")
        .and_then(|rest| rest.split_once("?>").map(|(_, r)| r))
        .unwrap_or(chart_svg);
    let _ = write!(
        o,
        "<p class=\"verdict\" id=\"sustainable\">Sustainable rate: {}/s (SLO {}){}</p>",
        fmt_rate(c.sustainable_rate),
        esc(&c.config.slo),
        if c.partial {
            " (PARTIAL: interrupted)"
        } else {
            ""
        }
    );
    let _ = write!(o, "<div class=\"capacity-chart\">{svg}</div>");
    for s in &c.searches {
        let _ = write!(
            o,
            "<h2>{}</h2><p>{}</p><table><tr>",
            esc(&heading(s)),
            esc(&conclusion(s))
        );
        for h in HEADERS {
            let _ = write!(o, "<th>{}</th>", esc(h));
        }
        o.push_str("</tr>");
        for r in &s.steps {
            o.push_str("<tr>");
            for cell in cells(r) {
                let _ = write!(o, "<td>{}</td>", esc(&cell));
            }
            o.push_str("</tr>");
        }
        o.push_str("</table>");
    }
    page(&format!("Capacity: {}", c.config.scenario), &o)
}

pub use crate::sweep::report::Written;

/// Writes the Markdown, JSON, SVG, PNG and HTML of a search into `dir`.
pub fn write_capacity(c: &Capacity, dir: &Path) -> anyhow::Result<Written> {
    let json = serde_json::to_vec_pretty(c).context("could not serialize the capacity result")?;
    crate::sweep::report::write_charted(
        dir,
        &c.generated_at,
        "capacity",
        chart::svg(c)?,
        |svg_name| markdown(c, svg_name),
        json,
        |svg| html(c, svg),
    )
}
