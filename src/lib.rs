//! authbench: load-test and benchmark authentication services.
//!
//! The library does all the work so tests can drive the whole tool in-process;
//! `main.rs` only calls [`cli::main_with_args`] and exits with its code.
//!
//! The pipeline of `authbench run` ([`run`], its stages in [`pipeline`]):
//! [`pipeline::prepare`] (options, [`scenario::Scenario`], thresholds, baseline: all that
//! can fail before load) → [`pipeline::start_target`] (the in-process [`server`] when there
//! is no target) → `preflight` (is the target reachable) → [`pipeline::sampling`] (what
//! [`usage`] watches) → calibrate and execute
//! ([`engine::run`]: workers send samples to a collector that builds [`stats::Stats`]) →
//! [`pipeline::report`] ([`report::Report`], diagnosis, gate) → [`pipeline::export`].

pub mod capacity;
pub mod check;
pub mod cli;
pub mod color;
pub mod criteria;
pub mod crypto;
pub mod diagnosis;
pub mod engine;
pub mod error;
pub mod gate;
pub mod mix;
pub mod options;
pub mod outage;
pub mod password;
pub mod pipeline;
pub mod plan;
pub mod render;
pub mod report;
pub mod samples;
pub mod scenario;
pub mod server;
pub mod shard;
pub mod stats;
pub mod sweep;
pub mod timeline;
pub mod tls;
pub mod units;
pub mod usage;

use std::future::Future;
use std::path::PathBuf;

use error::RunError;
use options::RunOptions;
use report::Report;

/// What a run produced.
#[derive(Debug)]
pub struct RunResult {
    pub report: Report,
    /// Report files written, if any.
    pub files: Vec<PathBuf>,
}

/// Runs flows as `opts` says and writes the reports. `stop` resolving interrupts the run:
/// no new flow starts, in-flight ones get `opts.grace`, and the report is marked partial.
///
/// The stages are in [`pipeline`]; this function only chains them.
pub async fn run(
    opts: &RunOptions,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<RunResult, RunError> {
    let prepared = pipeline::prepare(opts)?;
    let target = pipeline::start_target(opts, &prepared.scenario)?;
    let addr =
        pipeline::preflight(&target.base_url, opts.connect_timeout, target.tls.as_ref()).await?;
    engine::transport::local::check_sources(&opts.source_addrs, addr).map_err(RunError::Config)?;
    let sample = pipeline::sampling(opts, &target).await?;
    let load = pipeline::Load::new(opts, &prepared, &target, stop).await?;
    let measured = load.calibrate_and_execute(opts, &prepared, sample).await;
    load.finish_users()?;
    let bcrypt_cost = target.server.as_ref().map(|_| opts.cost);
    target.shutdown();
    let report = pipeline::report(
        opts,
        &prepared,
        &load.base_url,
        load.notes.clone(),
        bcrypt_cost,
        measured,
    );
    let files = pipeline::export(opts, &report)?;
    if !report.partial {
        load.finish_metrics(opts).await;
    }
    Ok(RunResult { report, files })
}
