//! A sweep's outputs: the terminal table, the Markdown report, the HTML page (its body
//! in the shared page of [`crate::report::html`]), and [`write_sweep`], which writes
//! them with the JSON, SVG and PNG. Renderers return text or bytes and do no I/O.
//!
//! It runs nothing: the sweep's `runner` measures, this only shows what was measured.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{chart, HashSource, Sweep, SweepRow, OWASP_MIN_COST};
use crate::report::html::{esc, page};

fn fmt_ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "–".into(),
    }
}

fn fmt_hash(row: &SweepRow) -> String {
    match (row.hash_ms, row.hash_source) {
        (None, _) => "n/a (external)".into(),
        (Some(v), HashSource::Given) => format!("{} (given)", fmt_ms(Some(v))),
        (Some(v), _) => fmt_ms(Some(v)),
    }
}

fn fmt_rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

const HEADERS: [&str; 8] = [
    "cost",
    "hash (ms)",
    "flow p50 (ms)",
    "flow p95 (ms)",
    "flow p99 (ms)",
    "success",
    "flows/s",
    "capacity ≈ flows/s",
];

fn cells(row: &SweepRow) -> [String; 8] {
    let cost = if row.cost < OWASP_MIN_COST {
        format!("{} (weak)", row.cost)
    } else {
        row.cost.to_string()
    };
    [
        if row.partial {
            format!("{cost} partial")
        } else {
            cost
        },
        fmt_hash(row),
        fmt_ms(row.flow_p50_ms),
        fmt_ms(row.flow_p95_ms),
        fmt_ms(row.flow_p99_ms),
        format!("{:.1}%", row.success_rate * 100.0),
        fmt_rate(row.flows_per_s),
        row.capacity_flows_per_s.map_or("n/a".into(), fmt_rate),
    ]
}

/// The formula and its inputs, one line.
pub fn capacity_note(s: &Sweep) -> String {
    format!(
        "capacity ≈ hashing threads / (hashes per flow × time per hash) = {} / ({} × hash time); \
         {} flows per cost, {} at once; OWASP minimum cost: {OWASP_MIN_COST}",
        s.config.hashing_threads, s.config.hashes_per_flow, s.config.flows, s.config.concurrency
    )
}

/// The terminal table.
pub fn terminal_table(s: &Sweep) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(HEADERS);
    for row in &s.rows {
        t.add_row(cells(row));
    }
    let mut out = format!("{t}\n{}\n", capacity_note(s));
    if s.partial {
        out.push_str("PARTIAL: the sweep was interrupted\n");
    }
    out
}

/// The Markdown report; `chart` is the SVG's file name, shown as an image.
pub fn markdown(s: &Sweep, chart: Option<&str>) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# bcrypt cost sweep{}\n",
        if s.partial { " (PARTIAL)" } else { "" }
    );
    let target = match (&s.config.spawn, &s.config.target) {
        (Some(cmd), Some(t)) => format!("`{cmd}` at {t}, started per cost"),
        _ => "the in-process reference server (hashing on a pool of one thread per core)".into(),
    };
    let _ = writeln!(
        md,
        "Target: {target}. Scenario `{}`: {} flows per cost, {} at once, {} ms request timeout, {} cores.\n",
        s.config.scenario, s.config.flows, s.config.concurrency, s.config.timeout_ms, s.config.cores
    );
    let _ = writeln!(md, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(md, "|{}", "---:|".repeat(HEADERS.len()));
    for row in &s.rows {
        let _ = writeln!(md, "| {} |", cells(row).join(" | "));
    }
    let _ = writeln!(md, "\n{}.\n", capacity_note(s));
    let _ = writeln!(
        md,
        "Each +1 in cost doubles the time of a hash. Under load, flows queue for the hashing \
         threads, so flow latency grows with concurrency × cost, not with the cost alone. \
         Costs below {OWASP_MIN_COST} are marked weak (OWASP Password Storage Cheat Sheet).\n"
    );
    if let Some(c) = chart {
        let _ = writeln!(md, "![latency and capacity against cost]({c})\n");
    }
    let _ = writeln!(md, "Generated {} by {}.", s.generated_at, s.tool);
    md
}

/// The HTML page of `authbench sweep`: the chart of latency and capacity against cost
/// (with the OWASP minimum of 10 marked), inline, and the table per cost.
pub fn html(sw: &Sweep, chart_svg: &str) -> Vec<u8> {
    let mut o = String::new();
    let svg = chart_svg
        .trim_start()
        .strip_prefix("<?xml")
        .and_then(|rest| rest.split_once("?>").map(|(_, r)| r))
        .unwrap_or(chart_svg);
    let _ = write!(
        o,
        "<p class=\"verdict\">{} flows at concurrency {} per cost{}. Costs under 10 are below the OWASP minimum for bcrypt.</p><div class=\"sweep-chart\">{svg}</div>",
        sw.config.flows,
        sw.config.concurrency,
        if sw.partial { " (PARTIAL: interrupted)" } else { "" }
    );
    let ms = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into());
    o.push_str("<h2>Per cost</h2><table id=\"sweep\"><tr><th>cost</th><th>hash (ms)</th><th>flow p50 (ms)</th><th>p95</th><th>p99</th><th>success</th><th>flows/s</th><th>capacity ≈ flows/s</th></tr>");
    for r in &sw.rows {
        let _ = write!(
            o,
            "<tr data-cost=\"{c}\"><td>{c}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}%</td><td>{:.2}</td><td>{}</td></tr>",
            if r.cost < 10 { " (weak)" } else { "" },
            ms(r.hash_ms),
            ms(r.flow_p50_ms),
            ms(r.flow_p95_ms),
            ms(r.flow_p99_ms),
            r.success_rate * 100.0,
            r.flows_per_s,
            ms(r.capacity_flows_per_s),
            c = r.cost
        );
    }
    let _ = write!(
        o,
        "</table><p class=\"note\">{}</p><p class=\"note\">Generated {} by {}.</p>",
        esc(&capacity_note(sw)),
        esc(&sw.generated_at),
        esc(&sw.tool)
    );
    page("bcrypt Cost Sweep", &o)
}

/// `<dir>/<stamp>-<kind>` with a suffix when any of `exts` exists already (never overwrite).
pub(crate) fn unique_stem(dir: &Path, generated_at: &str, kind: &str, exts: &[&str]) -> PathBuf {
    let stamp: String = generated_at
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let mut base = format!("{stamp}-{kind}");
    let mut n = 1;
    while exts
        .iter()
        .any(|e| dir.join(format!("{base}.{e}")).exists())
    {
        n += 1;
        base = format!("{stamp}-{kind}-{n}");
    }
    dir.join(base)
}

/// What [`write_sweep`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub files: Vec<PathBuf>,
    /// The PNG was drawn without any system font, so it has no text.
    pub png_without_text: bool,
}

/// Writes `<dir>/<stamp>-sweep.{md,json,svg,png,html}`.
pub fn write_sweep(s: &Sweep, dir: &Path) -> anyhow::Result<Written> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("could not create the report directory '{}'", dir.display()))?;
    let stem = unique_stem(
        dir,
        &s.generated_at,
        "sweep",
        &["md", "json", "svg", "png", "html"],
    );
    let path = |ext: &str| stem.with_extension(ext);
    let svg = chart::svg(s)?;
    let png = chart::png(&svg)?;
    let svg_name = path("svg")
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let json = serde_json::to_vec_pretty(s).context("could not serialize the sweep")?;
    let files = vec![
        (path("md"), markdown(s, svg_name.as_deref()).into_bytes()),
        (path("json"), json),
        (path("svg"), svg.clone().into_bytes()),
        (path("png"), png.bytes),
        (path("html"), html(s, &svg)),
    ];
    let mut written = Vec::new();
    for (p, bytes) in files {
        crate::report::write_file(&p, &bytes)?;
        written.push(p);
    }
    Ok(Written {
        files: written,
        png_without_text: !png.had_fonts,
    })
}
