//! Stages 6 and 7, and what a run gives out while it goes: the configuration every report
//! (and the result stream's header) states, the report with its diagnosis, thresholds and
//! comparison, its files; the place of the result stream and the `--metrics` endpoint.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Measured, Prepared};
use crate::diagnosis;
use crate::engine;
use crate::error::RunError;
use crate::gate;
use crate::options::{self, RunOptions};
use crate::plan;
use crate::report::{Report, ReportInput, RunConfig};
use crate::server;
use crate::units::millis;
use crate::usage::cores;

/// Serves `live` at `/metrics` on `listener` until aborted.
pub(super) fn serve_metrics(
    listener: tokio::net::TcpListener,
    live: Arc<engine::metrics::Live>,
) -> tokio::task::JoinHandle<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let live = live.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    live.page(),
                )
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

/// `<out-dir>/<start stamp>-run.stream`, never an earlier run's: two runs started in the
/// same second get a suffix, as their reports do.
pub(super) fn stream_dir(
    out: &std::path::Path,
    started_at: &chrono::DateTime<chrono::Utc>,
) -> PathBuf {
    let stamp = crate::render::file_stamp(started_at);
    let mut dir = out.join(format!("{stamp}-run.stream"));
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = out.join(format!("{stamp}-run-{n}.stream"));
    }
    dir
}

/// How the run was set up, as every report and the result stream's header say it.
pub fn run_config(
    opts: &RunOptions,
    prepared: &Prepared,
    base_url: &str,
    notes: Vec<String>,
    bcrypt_cost: Option<u32>,
    start: crate::shard::Start,
) -> RunConfig {
    let plan = &prepared.plan;
    RunConfig {
        target: base_url.to_string(),
        in_process_server: opts.target.is_none(),
        scenario: prepared.scenario.name.clone(),
        scenario_source: prepared.scenario.source.clone(),
        flows_planned: plan.planned_flows().unwrap_or(0),
        concurrency: prepared.concurrency,
        load_model: match plan.model {
            plan::LoadModel::Closed => "closed".into(),
            plan::LoadModel::Open { .. } => "open".into(),
        },
        load: plan.describe(),
        connections: match opts.connections {
            options::Connections::Shared => "shared".into(),
            options::Connections::PerFlow => "per-flow".into(),
        },
        timeout_ms: millis(opts.timeout),
        connect_timeout_ms: millis(opts.connect_timeout),
        bcrypt_cost,
        cores: cores(),
        generators: 1,
        hash_mode: opts.target.is_none().then(|| {
            match opts.hash_mode {
                server::HashMode::Pool => "pool",
                server::HashMode::Inline => "inline",
            }
            .to_string()
        }),
        think: prepared.scenario.think_description(),
        data: prepared.scenario.data.as_ref().map(|d| {
            format!(
                "{} rows ({}), order {}",
                d.feeder.len(),
                d.feeder.columns().join(", "),
                d.order.as_str()
            )
        }),
        // Only where there was a certificate to skip: --insecure on http:// changes nothing.
        insecure: opts.tls.insecure && base_url.starts_with("https://"),
        source_addrs: opts.source_addrs.iter().map(|a| a.to_string()).collect(),
        notes,
        start: Some(start),
        shard: opts.shard,
    }
}

/// Stage 6: the report, its diagnosis (from the calibration), thresholds and comparison.
#[allow(clippy::too_many_arguments)]
pub fn report(
    opts: &RunOptions,
    prepared: &Prepared,
    base_url: &str,
    notes: Vec<String>,
    bcrypt_cost: Option<u32>,
    measured: Measured,
) -> Report {
    let Measured {
        calibration,
        outcome,
        usage,
        started_at,
        http,
    } = measured;
    let start = crate::shard::Start::of(started_at, opts.start_at);
    let mut notes = notes;
    match opts.start_at {
        Some(at) if outcome.interrupted && started_at < at => notes.push(format!(
            "interrupted while waiting for --start-at {}: the measured load never began",
            crate::shard::stamp(at)
        )),
        _ => notes.extend(start.late_warning()),
    }
    if let Some(n) = &outcome.stream_note {
        notes.push(n.clone());
    }
    let config = run_config(opts, prepared, base_url, notes, bcrypt_cost, start);
    let mut report = Report::build(ReportInput {
        stats: &outcome.stats,
        config: config.clone(),
        wall: outcome.wall,
        partial: outcome.interrupted,
        abandoned: outcome.abandoned,
        generated_at: chrono::Utc::now(),
    });
    report.summary.late_flows = outcome.late;
    report.summary.dropped_flows = outcome.dropped;
    report.summary.feeder_exhausted_after = outcome.feeder_exhausted;
    report.usage = usage;
    report.http = http;
    if let Some(f) = &outcome.facts {
        report.hosts = f.hosts.clone();
        report.tokens = f.tokens.clone();
    }
    let cal_report = calibration.as_ref().map(|cal| {
        Report::build(ReportInput {
            stats: &cal.stats,
            config: config.clone(),
            wall: cal.wall,
            partial: false,
            abandoned: 0,
            generated_at: chrono::Utc::now(),
        })
    });
    // The server's cores are this machine's when it runs here and authbench watches it.
    let here = report.usage.as_ref().is_some_and(|u| u.loopback)
        && (!opts.server_pids.is_empty() || opts.target.is_none());
    let server_cores = here.then(cores);
    let hints = diagnosis::StepHints::of(&prepared.scenario);
    // Outages come first in the diagnosis: they explain the failures before anything else.
    let outages = crate::outage::findings(&report.availability);
    report.diagnosis =
        diagnosis::diagnose(cal_report.as_ref(), &report, server_cores, &hints, outages);
    report.thresholds = prepared
        .thresholds
        .iter()
        .map(|t| t.evaluate(&report))
        .collect();
    if let Some((base, path)) = &prepared.baseline {
        report.comparison = Some(gate::compare(
            base,
            &report,
            &path.display().to_string(),
            opts.compare,
        ));
    }
    report
}

/// Stage 7: the report files (Markdown, JSON and HTML in the output directory, and the
/// extra HTML and JUnit paths asked for).
pub fn export(opts: &RunOptions, report: &Report) -> Result<Vec<PathBuf>, RunError> {
    use crate::render::{self, Exporter};
    let mut files = match &opts.out_dir {
        Some(dir) => render::write_reports(report, dir)?,
        None => Vec::new(),
    };
    if let Some(path) = &opts.html {
        render::write_file(path, &render::html::Html.render(report)?)?;
        files.push(path.clone());
    }
    if let Some(path) = &opts.junit {
        render::write_file(path, &render::junit::JUnit.render(report)?)?;
        files.push(path.clone());
    }
    Ok(files)
}
