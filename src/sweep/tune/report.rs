//! A tune's outputs: the verdict with the probes as a terminal table and as Markdown,
//! and [`write_tune`], which writes the Markdown and the JSON. Renderers return text and
//! do no I/O; nothing here runs or searches (that is the parent module's job).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{what_if_sentence, Probe, Tune, TuneMode};
use crate::sweep::report::OWASP_NOTE;
use crate::sweep::OWASP_MIN_COST;

/// The verdict and the probes, as plain text lines (terminal and Markdown share them).
fn verdict(t: &Tune) -> Vec<String> {
    let slos = t.slos.join(", ");
    let mut lines = Vec::new();
    let here = match t.mode {
        TuneMode::InProcess => "on this machine".to_string(),
        _ => format!("for {}", t.target.as_deref().unwrap_or("the service")),
    };
    if t.mode == TuneMode::Running {
        lines.push(match t.meets_up_to_concurrency {
            Some(c) => format!(
                "At its current cost, {} meets {slos} up to concurrency {c} (of {}; {} flows per level).",
                t.target.as_deref().unwrap_or("the service"),
                super::levels(t.concurrency)
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                t.flows
            ),
            None if t.partial => "Interrupted before any concurrency was shown to meet the SLO.".into(),
            None => format!(
                "At its current cost, {} misses {slos} even one flow at a time.",
                t.target.as_deref().unwrap_or("the service")
            ),
        });
        lines.push(hash_at_one_cost(t));
    } else {
        match t.recommended {
            Some(c) => {
                lines.push(format!(
                    "Recommended bcrypt cost: {c} (the highest in {}..={} that meets {slos} {here}, {} flows, {} at once).",
                    t.floor, t.max_cost, t.flows, t.concurrency
                ));
                match &t.confirmation {
                    Some(p) if p.passed => lines.push(format!(
                        "Confirmed: a second run at cost {c} met it too (flow p95 {}).",
                        p.flow_p95_ms.map_or("–".into(), |v| format!("{v:.1} ms"))
                    )),
                    Some(p) if !p.partial => lines.push(format!(
                        "Not confirmed: a second run at cost {c} missed it; the SLO sits on the edge of this cost, so {} is the safer choice.",
                        c.saturating_sub(1).max(t.floor)
                    )),
                    _ => {}
                }
                if c < OWASP_MIN_COST {
                    lines.push(format!(
                        "Warning: {c} is below the OWASP minimum of {OWASP_MIN_COST} (allowed by --allow-weak)."
                    ));
                }
                let at_c = t.probes.iter().find(|p| p.cost == c);
                if let (Some(p), Some(w)) = (at_c, at_c.and_then(what_if_sentence)) {
                    lines.push(format!(
                        "What-if ({} at cost {c}): {w}.",
                        p.verdict.map_or("no diagnosis", |v| v.short())
                    ));
                }
            }
            None if t.partial => lines.push("Interrupted before any cost was shown to meet the SLO.".into()),
            None if t.floor >= OWASP_MIN_COST && !t.allow_weak => lines.push(format!(
                "No recommendation: even cost {} (the OWASP minimum is {OWASP_MIN_COST}) misses {slos} {here}. \
                 Do not lower the cost below {OWASP_MIN_COST}; what would meet it instead:",
                t.floor
            )),
            None => lines.push(format!(
                "No recommendation: no cost in {}..={} meets {slos} {here}. What would:",
                t.floor, t.max_cost
            )),
        }
        if let Some(f) = &t.fit {
            lines.push(match &f.not_measurable {
                Some(why) => format!("Hash time of the service: not measurable ({why})."),
                None => format!(
                    "Hash time fitted over costs {:?}: floor {} per flow outside hashing, fit error {:.1}%.",
                    f.costs,
                    crate::diagnosis::fmt_ms(f.hashing_floor_ms()),
                    f.worst_error() * 100.0
                ),
            });
        }
    }
    if t.partial {
        lines.push("PARTIAL: the search was interrupted.".into());
    }
    lines
}

/// A running service's hash time: one cost cannot separate it from the floor, so the
/// hashing steps' service times alone are given as its upper bound.
fn hash_at_one_cost(t: &Tune) -> String {
    let Some(p) = t.probes.first() else {
        return "Hash time: not measured (no run finished).".into();
    };
    let steps: Vec<String> = p
        .steps
        .iter()
        .map(|s| format!("`{}` {}", s.name, crate::diagnosis::fmt_ms(s.service_ms)))
        .collect();
    format!(
        "Hash time at one cost: not separable from the floor (sweep --spawn over several costs separates them); each step's service time alone, an upper bound of its hash: {}.",
        steps.join(", ")
    )
}

fn probe_cells(t: &Tune, p: &Probe) -> [String; 9] {
    let ms = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1}"));
    let lower = p.capacity_flows_per_s.is_some()
        && t.mode != TuneMode::InProcess
        && !crate::sweep::conclude::saturated(p.verdict);
    [
        if t.mode == TuneMode::Running {
            p.concurrency.to_string()
        } else {
            p.cost.to_string()
        },
        p.hash_ms
            .map_or("not measurable".into(), |v| format!("{v:.1}")),
        ms(p.flow_p95_ms),
        format!("{:.1}%", p.success_rate * 100.0),
        p.effective_parallelism
            .map_or("–".into(), |v| format!("{v:.1}")),
        match p.capacity_flows_per_s {
            Some(c) if lower => format!("≥ {c:.1}"),
            c => ms(c),
        },
        ms(p.capacity_if_parallel_flows_per_s),
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
        } else {
            format!(
                "{}{}",
                if p.passed { "meets" } else { "misses" },
                p.verdict
                    .map(|v| format!(" ({})", v.short()))
                    .unwrap_or_default()
            )
        },
    ]
}

fn headers(t: &Tune) -> [&'static str; 9] {
    [
        if t.mode == TuneMode::Running {
            "concurrency"
        } else {
            "cost"
        },
        "hash (ms)",
        "flow p95 (ms)",
        "success",
        "parallelism",
        "capacity ≈ flows/s",
        "if hashing used every core",
        "SLOs",
        "verdict",
    ]
}

fn footer(t: &Tune) -> String {
    match t.mode {
        TuneMode::InProcess => format!(
            "In-process reference server, {} hashing threads ({} cores), {} hashes per flow.",
            t.hashing_threads, t.cores, t.hashes_per_flow
        ),
        TuneMode::Spawn => format!(
            "`{}` at {}, started per cost; capacity = measured effective parallelism / a flow's service time alone; {} cores.",
            t.spawn.as_deref().unwrap_or(""),
            t.target.as_deref().unwrap_or(""),
            t.cores
        ),
        TuneMode::Running => format!(
            "The running service at {}; capacity = measured effective parallelism / a flow's service time alone.",
            t.target.as_deref().unwrap_or("")
        ),
    }
}

/// The terminal text.
pub fn terminal(t: &Tune) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(headers(t));
    for p in &t.probes {
        table.add_row(probe_cells(t, p));
    }
    let mut out = format!("{table}\n");
    for l in verdict(t) {
        let _ = writeln!(out, "{l}");
    }
    for a in &t.advice {
        let _ = writeln!(out, "  - {a}");
    }
    let _ = writeln!(out, "{}\n{OWASP_NOTE}.", footer(t));
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
    let h = headers(t);
    let _ = writeln!(md, "| {} |", h.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(h.len()));
    for p in &t.probes {
        let _ = writeln!(md, "| {} |", probe_cells(t, p).join(" | "));
    }
    let _ = writeln!(
        md,
        "\n{} {OWASP_NOTE}. Generated {} by {}.",
        footer(t),
        t.generated_at,
        t.tool
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
    crate::render::write_file(&md, markdown(t).as_bytes())?;
    crate::render::write_file(
        &json,
        &serde_json::to_vec_pretty(t).context("could not serialize the tune result")?,
    )?;
    Ok(vec![md, json])
}
