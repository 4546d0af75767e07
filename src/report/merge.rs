//! Merging reports of runs made in parallel (several generators, a CI matrix): counts and
//! histograms add exactly, so every percentile of the merge is exact, not an average of
//! percentiles. Throughput adds up because wall time is the longest run's.
//!
//! Before adding anything, the inputs are checked to be parts of one load: one scenario,
//! every shard of one split exactly once, and runs that overlapped in time. Reports with
//! different steps cannot be added at all; the other mismatches are refused unless forced,
//! and a forced merge says what it accepted.

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};

use super::{Report, ReportInput, RunConfig};
use crate::shard::{Shard, Start};

/// A merged report and what was accepted with `force`.
pub struct Merged {
    pub report: Report,
    /// The mismatches a forced merge let through (also in the report's notes).
    pub warnings: Vec<String>,
    /// Latest input start minus earliest, in milliseconds, when every input recorded one.
    pub start_skew_ms: Option<f64>,
}

/// Adds `reports` (at least one, all of the same scenario and steps) into one report,
/// refusing inputs that are not parts of one load. Inputs are named "report 1", ….
pub fn merge(reports: &[Report]) -> anyhow::Result<Report> {
    let named: Vec<(String, Report)> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("report {}", i + 1), r.clone()))
        .collect();
    merge_named(&named, false).map(|m| m.report)
}

/// [`merge`] with names for the messages (file names); with `force`, the mismatches that
/// do not stop the figures from adding up become warnings.
pub fn merge_named(reports: &[(String, Report)], force: bool) -> anyhow::Result<Merged> {
    let Some((first_name, first)) = reports.first() else {
        bail!("nothing to merge: give at least one report");
    };
    let names: Vec<&str> = first.steps.iter().map(|s| s.name.as_str()).collect();
    for (name, r) in &reports[1..] {
        let these: Vec<&str> = r.steps.iter().map(|s| s.name.as_str()).collect();
        if these != names {
            bail!(
                "{name} is of scenario '{}' with steps [{}], not '{}' with steps [{}] like {first_name}: only runs of one scenario can be merged",
                r.config.scenario,
                these.join(", "),
                first.config.scenario,
                names.join(", ")
            );
        }
    }
    let problems = problems(reports);
    if !problems.is_empty() && !force {
        bail!(
            "these reports are not the parts of one load: {} (merge them anyway with --force)",
            problems.join("; ")
        );
    }
    let starts: Option<Vec<DateTime<Utc>>> = reports
        .iter()
        .map(|(_, r)| r.config.start.as_ref().and_then(Start::actual_time))
        .collect();
    let start_skew_ms = starts.as_ref().and_then(|s| {
        let (lo, hi) = (s.iter().min()?, s.iter().max()?);
        Some(crate::shard::ms(*hi - *lo))
    });

    let mut stats = first.stats().with_context(|| first_name.clone())?;
    let mut wall = first.summary.wall_time_s;
    let mut cfg: RunConfig = first.config.clone();
    let mut abandoned = first.summary.abandoned_flows;
    for (name, r) in &reports[1..] {
        stats.merge(&r.stats().with_context(|| name.clone())?);
        wall = wall.max(r.summary.wall_time_s);
        cfg.flows_planned += r.config.flows_planned;
        cfg.concurrency += r.config.concurrency;
        cfg.generators += r.config.generators;
        if cfg.target != r.config.target {
            cfg.target = "several targets".into();
        }
        if cfg.bcrypt_cost != r.config.bcrypt_cost {
            cfg.bcrypt_cost = None;
        }
        cfg.insecure |= r.config.insecure;
        abandoned += r.summary.abandoned_flows;
        for n in &r.config.notes {
            if !cfg.notes.contains(n) {
                cfg.notes.push(n.clone());
            }
        }
    }
    cfg.shard = None;
    cfg.start = starts.as_ref().and_then(|s| {
        let earliest = *s.iter().min()?;
        let planned: Vec<Option<&String>> = reports
            .iter()
            .map(|(_, r)| r.config.start.as_ref().and_then(|s| s.planned.as_ref()))
            .collect();
        let common = planned
            .iter()
            .all(|p| p.is_some() && *p == planned[0])
            .then(|| planned[0].cloned())
            .flatten();
        Some(Start {
            actual: crate::shard::stamp(earliest),
            planned: common,
            skew_ms: start_skew_ms,
        })
    });
    for p in &problems {
        cfg.notes.push(format!("merged with --force: {p}"));
    }
    let mut report = Report::build(ReportInput {
        stats: &stats,
        config: cfg,
        wall: std::time::Duration::from_secs_f64(wall.max(0.0)),
        partial: reports.iter().any(|(_, r)| r.partial),
        abandoned,
        generated_at: chrono::Utc::now(),
    });
    report.mix = merge_mix(reports, force)?;
    Ok(Merged {
        report,
        warnings: problems,
        start_skew_ms,
    })
}

/// A mix's scenarios merged one by one (each input's scenario of that name), when the
/// inputs are runs of one mix (the same scenarios in the same order).
fn merge_mix(reports: &[(String, Report)], force: bool) -> anyhow::Result<Vec<super::MixPart>> {
    let first = &reports[0].1.mix;
    let names = |r: &Report| -> Vec<String> { r.mix.iter().map(|p| p.scenario.clone()).collect() };
    if first.is_empty() {
        return Ok(Vec::new());
    }
    if reports
        .iter()
        .any(|(_, r)| names(r) != names(&reports[0].1))
    {
        bail!("these reports are runs of different mixes: only runs of one mix can be merged");
    }
    let mut out = Vec::new();
    for (i, part) in first.iter().enumerate() {
        let inputs: Vec<(String, Report)> = reports
            .iter()
            .map(|(n, r)| (format!("{n} ({})", part.scenario), r.mix[i].report.clone()))
            .collect();
        out.push(super::MixPart {
            scenario: part.scenario.clone(),
            weight: part.weight,
            report: merge_named(&inputs, force)?.report,
        });
    }
    Ok(out)
}

/// Why `reports` are not the parts of one load (empty: they are).
fn problems(reports: &[(String, Report)]) -> Vec<String> {
    let mut out = Vec::new();
    let (first_name, first) = &reports[0];
    for (name, r) in &reports[1..] {
        if r.config.scenario != first.config.scenario {
            out.push(format!(
                "{name} ran scenario '{}' and {first_name} '{}'",
                r.config.scenario, first.config.scenario
            ));
        }
    }
    // Shards: all or none, one split, each index once.
    let shards: Vec<(&String, Option<Shard>)> =
        reports.iter().map(|(n, r)| (n, r.config.shard)).collect();
    let sharded: Vec<(&String, Shard)> = shards
        .iter()
        .filter_map(|(n, s)| s.map(|s| (*n, s)))
        .collect();
    if !sharded.is_empty() {
        if let Some((n, _)) = shards.iter().find(|(_, s)| s.is_none()) {
            out.push(format!(
                "{n} is not a shard, and {} is shard {}",
                sharded[0].0, sharded[0].1
            ));
        }
        let count = sharded[0].1.count;
        if let Some((n, s)) = sharded.iter().find(|(_, s)| s.count != count) {
            out.push(format!(
                "{n} is shard {s} and {} is shard {}: the shard totals differ",
                sharded[0].0, sharded[0].1
            ));
        } else {
            let mut seen: Vec<Vec<&String>> = vec![Vec::new(); count as usize];
            for (n, s) in &sharded {
                seen[s.index as usize].push(n);
            }
            for (i, by) in seen.iter().enumerate() {
                if by.len() > 1 {
                    let who: Vec<&str> = by.iter().map(|s| s.as_str()).collect();
                    out.push(format!(
                        "shard {i}/{count} is given {} times ({})",
                        by.len(),
                        who.join(", ")
                    ));
                }
            }
            let missing: Vec<String> = seen
                .iter()
                .enumerate()
                .filter(|(_, by)| by.is_empty())
                .map(|(i, _)| i.to_string())
                .collect();
            if !missing.is_empty() {
                out.push(format!(
                    "shard{} {} of {count} {} missing: the merge would hold less load than was asked for",
                    if missing.len() > 1 { "s" } else { "" },
                    missing.join(", "),
                    if missing.len() > 1 { "are" } else { "is" }
                ));
            }
        }
    }
    // Overlap in time: every run must have begun before the earliest one ended.
    let spans: Vec<(&String, DateTime<Utc>, DateTime<Utc>)> = reports
        .iter()
        .filter_map(|(n, r)| {
            let start = r.config.start.as_ref()?.actual_time()?;
            let wall = chrono::Duration::microseconds((r.summary.wall_time_s * 1e6) as i64);
            Some((n, start, start + wall))
        })
        .collect();
    if spans.len() == reports.len() && spans.len() > 1 {
        let late = spans.iter().max_by_key(|s| s.1);
        let early_end = spans.iter().min_by_key(|s| s.2);
        if let (Some(late), Some(end)) = (late, early_end) {
            if late.1 >= end.2 {
                out.push(format!(
                    "the runs did not overlap in time: {} ended at {} before {} began at {}, so their throughputs do not add up",
                    end.0,
                    crate::shard::stamp(end.2),
                    late.0,
                    crate::shard::stamp(late.1)
                ));
            }
        }
    }
    out
}
