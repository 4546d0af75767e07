//! Merging reports of runs made in parallel (several generators, a CI matrix): counts and
//! histograms add exactly, so every percentile of the merge is exact, not an average of
//! percentiles. Throughput adds up because wall time is the longest run's.

use anyhow::{bail, Context};

use super::{Report, ReportInput, RunConfig};

/// Adds `reports` (at least one, all of the same scenario and steps) into one report.
pub fn merge(reports: &[Report]) -> anyhow::Result<Report> {
    let Some(first) = reports.first() else {
        bail!("nothing to merge: give at least one report");
    };
    let names: Vec<&str> = first.steps.iter().map(|s| s.name.as_str()).collect();
    let mut stats = first.stats().context("report 1")?;
    let mut wall = first.summary.wall_time_s;
    let mut cfg: RunConfig = first.config.clone();
    let mut abandoned = first.summary.abandoned_flows;
    for (i, r) in reports.iter().enumerate().skip(1) {
        let these: Vec<&str> = r.steps.iter().map(|s| s.name.as_str()).collect();
        if these != names || r.config.scenario != first.config.scenario {
            bail!(
                "report {} is of scenario '{}' with steps [{}], not '{}' with steps [{}]: only runs of one scenario can be merged",
                i + 1,
                r.config.scenario,
                these.join(", "),
                first.config.scenario,
                names.join(", ")
            );
        }
        stats.merge(&r.stats().with_context(|| format!("report {}", i + 1))?);
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
    }
    Ok(Report::build(ReportInput {
        stats: &stats,
        config: cfg,
        wall: std::time::Duration::from_secs_f64(wall.max(0.0)),
        partial: reports.iter().any(|r| r.partial),
        abandoned,
        generated_at: chrono::Utc::now(),
    }))
}
