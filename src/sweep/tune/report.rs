//! A tune's outputs: the verdict with the probes as a terminal table and as Markdown,
//! and [`write_tune`], which writes the Markdown and the JSON. Renderers return text and
//! do no I/O; nothing here runs or searches (that is the parent module's job).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{Probe, Tune};
use crate::sweep::OWASP_MIN_COST;

/// The verdict and the probes, as plain text lines (terminal and Markdown share them).
fn verdict(t: &Tune) -> Vec<String> {
    let slos = t.slos.join(", ");
    let mut lines = Vec::new();
    match t.recommended {
        Some(c) => {
            lines.push(format!(
                "Recommended bcrypt cost: {c} (the highest in {}..={} that meets {slos} on this machine, {} flows, {} at once).",
                t.floor, t.max_cost, t.flows, t.concurrency
            ));
            if c < OWASP_MIN_COST {
                lines.push(format!(
                    "Warning: {c} is below the OWASP minimum of {OWASP_MIN_COST} (allowed by --allow-weak)."
                ));
            }
        }
        None if t.partial => lines.push("Interrupted before any cost was shown to meet the SLO.".into()),
        None if t.floor >= OWASP_MIN_COST && !t.allow_weak => lines.push(format!(
            "No recommendation: even cost {} (the OWASP minimum is {OWASP_MIN_COST}) misses {slos} on this machine. \
             Do not lower the cost below {OWASP_MIN_COST}; what would meet it instead:",
            t.floor
        )),
        None => lines.push(format!(
            "No recommendation: no cost in {}..={} meets {slos} on this machine. What would:",
            t.floor, t.max_cost
        )),
    }
    if t.partial {
        lines.push("PARTIAL: the search was interrupted.".into());
    }
    lines
}

fn probe_cells(p: &Probe) -> [String; 6] {
    let ms = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1}"));
    [
        p.cost.to_string(),
        format!("{:.1}", p.hash_ms),
        ms(p.flow_p95_ms),
        format!("{:.1}%", p.success_rate * 100.0),
        p.slos
            .iter()
            .map(|r| {
                format!(
                    "{} {} (observed {})",
                    r.expr,
                    if r.passed { "✅" } else { "❌" },
                    r.observed_text
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        if p.partial {
            "interrupted".into()
        } else if p.passed {
            "meets".into()
        } else {
            "misses".into()
        },
    ]
}

const PROBE_HEADERS: [&str; 6] = [
    "cost",
    "hash (ms)",
    "flow p95 (ms)",
    "success",
    "SLOs",
    "verdict",
];

/// The terminal text.
pub fn terminal(t: &Tune) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(PROBE_HEADERS);
    for p in &t.probes {
        table.add_row(probe_cells(p));
    }
    let mut out = format!("{table}\n");
    for l in verdict(t) {
        let _ = writeln!(out, "{l}");
    }
    for a in &t.advice {
        let _ = writeln!(out, "  - {a}");
    }
    out
}

/// The Markdown report.
pub fn markdown(t: &Tune) -> String {
    let mut md = format!(
        "# bcrypt cost tuning{}\n\n",
        if t.partial { " (PARTIAL)" } else { "" }
    );
    for l in verdict(t) {
        let _ = writeln!(md, "{l}\n");
    }
    for a in &t.advice {
        let _ = writeln!(md, "- {a}");
    }
    if !t.advice.is_empty() {
        md.push('\n');
    }
    let _ = writeln!(md, "| {} |", PROBE_HEADERS.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(PROBE_HEADERS.len()));
    for p in &t.probes {
        let _ = writeln!(md, "| {} |", probe_cells(p).join(" | "));
    }
    let _ = writeln!(
        md,
        "\nIn-process reference server, {} hashing threads ({} cores), {} hashes per flow. Generated {} by {}.",
        t.hashing_threads, t.cores, t.hashes_per_flow, t.generated_at, t.tool
    );
    md
}

/// Writes `<dir>/<stamp>-tune.{md,json}`.
pub fn write_tune(t: &Tune, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("could not create the report directory '{}'", dir.display()))?;
    let stem = crate::sweep::report::unique_stem(dir, &t.generated_at, "tune", &["md", "json"]);
    let md = stem.with_extension("md");
    let json = stem.with_extension("json");
    crate::report::write_file(&md, markdown(t).as_bytes())?;
    crate::report::write_file(
        &json,
        &serde_json::to_vec_pretty(t).context("could not serialize the tune result")?,
    )?;
    Ok(vec![md, json])
}
