//! A sweep's outputs: the terminal table, the Markdown report, the HTML page (its body
//! in the shared page of [`crate::render::html`]), and [`write_sweep`], which writes
//! them with the JSON, SVG and PNG. Renderers return text or bytes and do no I/O.
//!
//! It runs nothing: the sweep's `runner` measures, this only shows what was measured.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{chart, HashSource, Sweep, SweepRow, OWASP_MIN_COST};
use crate::render::html::{esc, page};

fn fmt_ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "–".into(),
    }
}

fn fmt_hash(row: &SweepRow) -> String {
    match (row.hash_ms, row.hash_source) {
        (None, _) => "not measurable".into(),
        (Some(v), HashSource::Given) => format!("{} (given)", fmt_ms(Some(v))),
        (Some(v), HashSource::Fitted) => format!("{} (fitted)", fmt_ms(Some(v))),
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

fn fmt_capacity(row: &SweepRow) -> String {
    match row.capacity_flows_per_s {
        Some(c) if row.capacity_is_lower_bound => format!("≥ {}", fmt_rate(c)),
        Some(c) => fmt_rate(c),
        None => "n/a".into(),
    }
}

/// The row's verdict, with the mark on the row where hashing stops being the floor.
fn fmt_verdict(s: &Sweep, row: &SweepRow) -> String {
    if row.failure.is_some() {
        return "failed: no flow succeeded".into();
    }
    let v = row
        .verdict
        .map_or_else(|| "–".to_string(), |v| v.short().to_string());
    let crossover = s.conclusion.as_ref().and_then(|c| c.crossover_cost);
    if crossover == Some(row.cost) {
        format!("{v} ◀ hash > floor")
    } else {
        v
    }
}

const HEADERS: [&str; 12] = [
    "cost",
    "hash (ms)",
    "floor (ms/flow)",
    "flow p50 (ms)",
    "flow p95 (ms)",
    "flow p99 (ms)",
    "success",
    "flows/s",
    "parallelism",
    "capacity ≈ flows/s",
    "if hashing used every core",
    "verdict",
];

/// The headers, the first naming what was swept (`cost`, or `argon2.m`).
fn headers(s: &Sweep) -> Vec<String> {
    let mut h: Vec<String> = HEADERS.iter().map(|x| x.to_string()).collect();
    if let Some(p) = &s.config.param {
        h[0] = p.clone();
    }
    h
}

fn cells(s: &Sweep, row: &SweepRow) -> [String; 12] {
    let cost = if row.below_owasp {
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
        fmt_ms(row.floor_ms),
        fmt_ms(row.flow_p50_ms),
        fmt_ms(row.flow_p95_ms),
        fmt_ms(row.flow_p99_ms),
        format!("{:.1}%", row.success_rate * 100.0),
        fmt_rate(row.flows_per_s),
        row.effective_parallelism
            .map_or("–".into(), |p| format!("{p:.1}")),
        fmt_capacity(row),
        row.capacity_if_parallel_flows_per_s
            .map_or("–".into(), fmt_rate),
        fmt_verdict(s, row),
    ]
}

/// "bcrypt cost sweep", or "argon2.m sweep (argon2id m=19456,t=2,p=1)".
pub fn title(s: &Sweep) -> String {
    match (&s.config.param, &s.config.algorithm) {
        (Some(p), Some(a)) => format!("{p} sweep ({a}, the other parameters fixed)"),
        _ => "bcrypt cost sweep".into(),
    }
}

/// The OWASP Password Storage Cheat Sheet's minimum, cited.
pub const OWASP_NOTE: &str = "OWASP Password Storage Cheat Sheet minimums: bcrypt cost 10; \
     argon2id m=19456 KiB (19 MiB), t=2, p=1; scrypt N=2^17, r=8, p=1; \
     PBKDF2-HMAC-SHA256 600,000 iterations";

/// How the capacity was computed, with its inputs, one line.
pub fn capacity_note(s: &Sweep) -> String {
    let how = if s.config.spawn.is_some()
        && !s.rows.iter().any(|r| r.hash_source == HashSource::Given)
    {
        "capacity = effective parallelism measured in the run / a flow's service time alone (≥: the load did not saturate the service); \
         if hashing used every core = min(cores / hashing per flow, parallelism / floor per flow)"
            .to_string()
    } else {
        format!(
            "capacity ≈ hashing threads / (hashes per flow × time per hash) = {} / ({} × hash time)",
            s.config.hashing_threads, s.config.hashes_per_flow
        )
    };
    format!(
        "{how}; {} flows per cost, {} at once; {} cores",
        s.config.flows, s.config.concurrency, s.config.cores
    )
}

/// The hash fit in a line or two: per hashing step, floor, hash at the lowest cost and
/// the error; or why there is no number.
pub fn fit_note(s: &Sweep) -> Option<String> {
    // In-process, the hash is timed directly: the fit has nothing to add.
    s.config.spawn.as_ref()?;
    let f = s.fit.as_ref()?;
    if let Some(why) = &f.not_measurable {
        return Some(format!(
            "hash time fit t(cost) = a + b·2^cost: not measurable: {why}"
        ));
    }
    let lo = *f.costs.first()?;
    let hi = *f.costs.last()?;
    let steps: Vec<String> = f
        .hashing()
        .map(|st| {
            format!(
                "`{}`: floor a = {}, hash {} at cost {lo} to {} at cost {hi}, error {:.1}%",
                st.name,
                crate::diagnosis::fmt_ms(st.floor_ms),
                crate::diagnosis::fmt_ms(st.hash_ms(lo)),
                crate::diagnosis::fmt_ms(st.hash_ms(hi)),
                st.rms_error * 100.0
            )
        })
        .collect();
    Some(format!(
        "hash time fit t(cost) = a + b·2^cost over costs {lo}..={hi} (service times alone, {} calibration flows per cost): {}",
        super::runner::CALIBRATION_FLOWS,
        steps.join("; ")
    ))
}

/// The notes under the table: capacity, fit, conclusion, OWASP.
fn notes(s: &Sweep) -> Vec<String> {
    let mut v = vec![capacity_note(s)];
    v.extend(fit_note(s));
    if let Some(c) = &s.conclusion {
        v.push(c.text.clone());
    }
    v.push(OWASP_NOTE.to_string());
    v
}

/// The terminal table.
pub fn terminal_table(s: &Sweep) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(headers(s));
    for row in &s.rows {
        t.add_row(cells(s, row));
    }
    let mut out = format!("{t}\n");
    for n in notes(s) {
        out.push_str(&n);
        out.push('\n');
    }
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
        "# {}{}\n",
        title(s),
        if s.partial { " (PARTIAL)" } else { "" }
    );
    let target = match (&s.config.spawn, &s.config.target) {
        (Some(cmd), Some(t)) => format!("`{cmd}` at {t}, started per cost"),
        _ => "the in-process reference server (hashing on a pool of one thread per core)".into(),
    };
    let _ = writeln!(
        md,
        "Target: {target}{}. Scenario `{}`: {} flows per cost, {} at once, {} ms request timeout, {} cores.\n",
        protocols(s), s.config.scenario, s.config.flows, s.config.concurrency, s.config.timeout_ms, s.config.cores
    );
    if let Some(c) = &s.conclusion {
        let _ = writeln!(md, "**{}**\n", c.text);
    }
    let _ = writeln!(md, "| {} |", headers(s).join(" | "));
    let _ = writeln!(md, "|{}", "---:|".repeat(HEADERS.len()));
    for row in &s.rows {
        let _ = writeln!(md, "| {} |", cells(s, row).join(" | "));
    }
    let _ = writeln!(md);
    for n in notes(s) {
        let _ = writeln!(md, "{}.\n", n.trim_end_matches('.'));
    }
    let _ = writeln!(
        md,
        "Each +1 in cost doubles the time of a hash. Under load, flows queue for the hashing \
         threads, so flow latency grows with concurrency × cost, not with the cost alone. \
         Costs below {OWASP_MIN_COST} are marked weak.\n"
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
        "<p class=\"verdict\">{} flows at concurrency {} per cost{}. Rows marked weak are below the OWASP minimum.</p>",
        sw.config.flows,
        sw.config.concurrency,
        if sw.partial { " (PARTIAL: interrupted)" } else { "" }
    );
    if let Some(c) = &sw.conclusion {
        let _ = write!(
            o,
            "<p class=\"verdict\" id=\"conclusion\">{}</p>",
            esc(&c.text)
        );
    }
    let _ = write!(o, "<div class=\"sweep-chart\">{svg}</div>");
    o.push_str("<h2>Per cost</h2><table id=\"sweep\"><tr>");
    for h in headers(sw) {
        let _ = write!(o, "<th>{}</th>", esc(&h));
    }
    o.push_str("</tr>");
    let crossover = sw.conclusion.as_ref().and_then(|c| c.crossover_cost);
    for r in &sw.rows {
        let _ = write!(o, "<tr data-cost=\"{}\">", r.cost);
        let cells = cells(sw, r);
        let last = cells.len() - 1;
        for (i, c) in cells.iter().enumerate() {
            // The row where hashing stops being the floor: its verdict cell is marked.
            let mark = if i == last && crossover == Some(r.cost) {
                " class=\"crossover\""
            } else {
                ""
            };
            let _ = write!(o, "<td{mark}>{}</td>", esc(c));
        }
        o.push_str("</tr>");
    }
    o.push_str("</table>");
    for n in notes(sw) {
        let _ = write!(o, "<p class=\"note\">{}</p>", esc(&n));
    }
    let _ = write!(
        o,
        "<p class=\"note\">Generated {} by {}.</p>",
        esc(&sw.generated_at),
        esc(&sw.tool)
    );
    page(&title(sw), &o)
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

/// What [`write_charted`] wrote (a sweep's or a capacity search's files).
#[derive(Debug, Clone)]
pub struct Written {
    pub files: Vec<PathBuf>,
    /// The PNG was drawn without any system font, so it has no text.
    pub png_without_text: bool,
}

/// Writes `<dir>/<stamp>-sweep.{md,json,svg,png,html}`.
pub fn write_sweep(s: &Sweep, dir: &Path) -> anyhow::Result<Written> {
    let json = serde_json::to_vec_pretty(s).context("could not serialize the sweep")?;
    write_charted(
        dir,
        &s.generated_at,
        "sweep",
        chart::svg(s)?,
        |svg_name| markdown(s, svg_name),
        json,
        |svg| html(s, svg),
    )
}

/// Writes a charted result (a sweep's, a capacity search's) as
/// `<dir>/<stamp>-<kind>.{md,json,svg,png,html}`: its Markdown (given the SVG's file name
/// to link), its JSON, the chart as SVG and PNG, and its HTML (given the SVG to embed).
pub fn write_charted(
    dir: &Path,
    generated_at: &str,
    kind: &str,
    svg: String,
    markdown: impl FnOnce(Option<&str>) -> String,
    json: Vec<u8>,
    html: impl FnOnce(&str) -> Vec<u8>,
) -> anyhow::Result<Written> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("could not create the report directory '{}'", dir.display()))?;
    let stem = unique_stem(
        dir,
        generated_at,
        kind,
        &["md", "json", "svg", "png", "html"],
    );
    let path = |ext: &str| stem.with_extension(ext);
    let png = chart::png(&svg)?;
    let svg_name = path("svg")
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let files = vec![
        (path("md"), markdown(svg_name.as_deref()).into_bytes()),
        (path("json"), json),
        (path("svg"), svg.clone().into_bytes()),
        (path("png"), png.bytes),
        (path("html"), html(&svg)),
    ];
    let mut written = Vec::new();
    for (p, bytes) in files {
        crate::render::write_file(&p, &bytes)?;
        written.push(p);
    }
    Ok(Written {
        files: written,
        png_without_text: !png.had_fonts,
    })
}

/// `, over h2c`: the protocols the rows spoke, when they are known.
fn protocols(s: &Sweep) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for p in s.rows.iter().filter_map(|r| r.protocol.as_deref()) {
        if !seen.contains(&p) {
            seen.push(p);
        }
    }
    if seen.is_empty() {
        String::new()
    } else {
        format!(", over {}", seen.join(" and "))
    }
}
