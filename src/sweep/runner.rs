//! Running a sweep: per cost, time bcrypt alone, start the target at that cost (the
//! in-process server, or the user's service with `--spawn`), run the flows, and turn the
//! run's report into a [`SweepRow`]. Also the stop plumbing [`tune`](super::tune) shares.
//!
//! It renders nothing and writes no file: that is [`report`](super::report)'s job.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;

use super::{
    capacity, conclude, fit, now_rfc3339, spawn, HashSource, Sweep, SweepConfig, SweepError,
    SweepOptions, SweepRow, COST_RANGE, SCHEMA,
};
use crate::options::{RunOptions, ScenarioSource};
use crate::password::Algorithm;
use crate::report::Report;

/// Median time of a few `bcrypt::hash` calls at `cost`, in ms, on a blocking thread (so
/// the caller's executor keeps running). Fewer samples at high costs, where one hash is
/// already long enough to be stable.
pub async fn measure_hash_ms(cost: u32) -> anyhow::Result<f64> {
    measure_algorithm_ms(Algorithm::Bcrypt { cost }).await
}

/// Median time of a few hashes with `algorithm`, in ms, on a blocking thread. One hash
/// first, untimed (allocator and cache warm-up); fewer samples when a hash is long.
pub async fn measure_algorithm_ms(algorithm: Algorithm) -> anyhow::Result<f64> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
        let once = || -> anyhow::Result<f64> {
            let start = Instant::now();
            algorithm
                .hash(b"authbench-sweep-password")
                .with_context(|| format!("{algorithm} could not hash"))?;
            Ok(start.elapsed().as_secs_f64() * 1e3)
        };
        let first = once()?;
        let samples = if first < 60.0 { 5 } else { 3 };
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            times.push(once()?);
        }
        Ok(median(&mut times))
    })
    .await
    .context("the hashing thread failed")?
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A shared "stop now" flag built from a one-shot stop future, so each cost's run gets its
/// own stop future and the flag can be checked between costs.
pub(crate) fn stop_future(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + 'static {
    let mut rx = rx.clone();
    async move {
        // An error means the sender is gone: nobody can ask to stop any more.
        if rx.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Drives `body` until it ends; when `stop` resolves first, sets the flag `tx` feeds
/// (`body` holds its receiver) and keeps driving `body`, so it can wrap up and return
/// what it has.
pub(crate) async fn drive_with_stop<T>(
    stop: impl Future<Output = ()>,
    tx: watch::Sender<bool>,
    body: impl Future<Output = T>,
) -> T {
    tokio::pin!(body);
    tokio::pin!(stop);
    tokio::select! {
        r = &mut body => return r,
        () = &mut stop => { tx.send_replace(true); }
    }
    body.await
}

/// OWASP's value of the parameter `p` sweeps (19456 for `argon2.m`).
fn owasp_value(p: &super::ParamSweep) -> Option<u32> {
    use crate::password::Algorithm as A;
    match (Algorithm::owasp(p.base.kind()), p.name.as_str()) {
        (A::Bcrypt { cost }, "cost") => Some(cost),
        (A::Argon2id { m, .. }, "m") => Some(m),
        (A::Argon2id { t, .. }, "t") => Some(t),
        (A::Argon2id { p, .. } | A::Scrypt { p, .. }, "p") => Some(p),
        (A::Scrypt { n, .. }, "n") => Some(n),
        (A::Scrypt { r, .. }, "r") => Some(r),
        (A::Pbkdf2 { iterations }, "iterations") => Some(iterations),
        _ => None,
    }
}

/// Checks `--target` before anything is started: a typo must not cost a service start.
pub(crate) fn check_target(target: &str) -> Result<(), SweepError> {
    match reqwest::Url::parse(target) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err(SweepError::Config(format!(
            "--target '{target}' must be an http:// or https:// URL, e.g. http://127.0.0.1:8007"
        ))),
    }
}

/// Checks a `--spawn` command and its target before anything is started.
pub(crate) fn check_spawn(sp: &spawn::SpawnOptions) -> Result<(), SweepError> {
    check_target(&sp.target)?;
    if !sp.command.contains("{cost}") {
        return Err(SweepError::Config(format!(
            "--spawn '{}' has no {{cost}}: every cost would start the same service",
            sp.command
        )));
    }
    Ok(())
}

/// Runs the sweep. `stop` resolving interrupts the current cost's run (it is recorded as
/// partial), stops a spawned service, and ends the sweep; the result is marked partial.
/// `progress` gets one line per step, for the terminal.
pub async fn sweep(
    opts: &SweepOptions,
    stop: impl Future<Output = ()>,
    progress: &mut dyn FnMut(&str),
) -> Result<Sweep, SweepError> {
    if let Some(p) = &opts.param {
        if opts.spawn.is_some() {
            return Err(SweepError::Config(
                "--param sweeps the in-process server; with --spawn, put the parameter in the command with {cost}".into(),
            ));
        }
        if p.values.is_empty() {
            return Err(SweepError::Config("--param names no value".into()));
        }
        for v in &p.values {
            p.at(*v).map_err(SweepError::Config)?;
        }
    } else if opts.costs.is_empty() {
        return Err(SweepError::Config("--costs names no cost".into()));
    }
    if let Some(bad) = opts
        .costs
        .iter()
        .find(|c| opts.param.is_none() && !COST_RANGE.contains(c))
    {
        return Err(SweepError::Config(format!(
            "cost {bad} is outside bcrypt's range 4..=31"
        )));
    }
    if !(opts.hashes_per_flow.is_finite() && opts.hashes_per_flow > 0.0) {
        return Err(SweepError::Config(
            "--hashes-per-flow must be a positive number".into(),
        ));
    }
    if let Some(sp) = &opts.spawn {
        check_spawn(sp)?;
    }
    let values = match &opts.param {
        Some(p) => p.values.clone(),
        None => opts.costs.clone(),
    };
    let scenario =
        crate::pipeline::load_scenario_with(&opts.scenario, &opts.vars).map_err(|e| {
            SweepError::Run {
                cost: values[0],
                source: e,
            }
        })?;
    let config = SweepConfig {
        costs: values.clone(),
        param: opts.param.as_ref().map(|p| p.label()),
        owasp_value: opts.param.as_ref().and_then(owasp_value),
        algorithm: opts.param.as_ref().map(|p| p.base.to_string()),
        flows: opts.flows,
        concurrency: opts.concurrency,
        timeout_ms: u64::try_from(opts.timeout.as_millis()).unwrap_or(u64::MAX),
        scenario: scenario.name.clone(),
        hashes_per_flow: opts.hashes_per_flow,
        hashing_threads: opts.hashing_threads,
        cores: crate::usage::cores(),
        target: opts.spawn.as_ref().map(|s| s.target.clone()),
        // The key may be spelled out in the command; reports never hold it.
        spawn: opts.spawn.as_ref().map(|s| match s.api_key.as_deref() {
            Some(k) if !k.is_empty() => s.command.replace(k, "<api-key>"),
            _ => s.command.clone(),
        }),
    };
    let (tx, rx) = watch::channel(false);
    let (mut rows, partial) = drive_with_stop(stop, tx, sweep_costs(opts, rx, progress)).await?;
    let axis = match &opts.param {
        Some(p) if p.name != "cost" => fit::Axis::Linear,
        _ => fit::Axis::Pow2,
    };
    let fit = fit::fit_on(
        &rows
            .iter()
            .filter(|r| !r.partial)
            .map(|r| (r.cost, r.steps.clone()))
            .collect::<Vec<_>>(),
        axis,
    );
    let per_hash = opts.hashes_per_flow_given.then_some(opts.hashes_per_flow);
    conclude::apply(
        &mut rows,
        &fit,
        opts.hashes_per_flow,
        per_hash,
        crate::usage::cores(),
    );
    let what = opts
        .param
        .as_ref()
        .map_or_else(|| "cost".to_string(), |p| p.label());
    let conclusion = conclude::conclude_as(&rows, &fit, &what);
    Ok(Sweep {
        schema: SCHEMA.into(),
        tool: format!("authbench {}", env!("CARGO_PKG_VERSION")),
        generated_at: now_rfc3339(),
        partial,
        config,
        rows,
        fit: Some(fit),
        conclusion,
    })
}

async fn sweep_costs(
    opts: &SweepOptions,
    stop: watch::Receiver<bool>,
    progress: &mut dyn FnMut(&str),
) -> Result<(Vec<SweepRow>, bool), SweepError> {
    let mut rows = Vec::new();
    let values = match &opts.param {
        Some(p) => p.values.clone(),
        None => opts.costs.clone(),
    };
    for cost in values {
        if *stop.borrow() {
            return Ok((rows, true));
        }
        let row = match &opts.spawn {
            None => sweep_in_process(opts, cost, &stop, progress).await?,
            Some(sp) => sweep_spawned(opts, sp, cost, &stop, progress).await?,
        };
        let Some(mut row) = row else {
            return Ok((rows, true));
        };
        row.below_owasp = match &opts.param {
            Some(p) => p.at(cost).is_ok_and(|a| a.below_owasp()),
            None => cost < super::OWASP_MIN_COST,
        };
        let interrupted = row.partial;
        rows.push(row);
        if interrupted {
            return Ok((rows, true));
        }
    }
    Ok((rows, *stop.borrow()))
}

fn run_options(opts: &SweepOptions, cost: u32) -> RunOptions {
    in_process_run(
        cost,
        opts.flows,
        opts.concurrency,
        (opts.timeout, opts.connect_timeout),
        (&opts.scenario, &opts.vars),
        opts.http,
    )
}

/// Flows run alone before each cost's run: the median of their steps is the service time
/// the hash fit and the diagnosis rest on.
pub(crate) const CALIBRATION_FLOWS: u64 = 5;

/// The options of one quiet run against the in-process server at `cost` (sweep and tune).
pub(crate) fn in_process_run(
    cost: u32,
    flows: u64,
    concurrency: usize,
    (timeout, connect_timeout): (Duration, Duration),
    (scenario, vars): (&ScenarioSource, &[(String, String)]),
    http: crate::options::HttpVersion,
) -> RunOptions {
    RunOptions {
        http,
        cost,
        target: None,
        out_dir: None,
        flows,
        concurrency,
        timeout,
        connect_timeout: connect_timeout.min(timeout),
        scenario: scenario.clone(),
        vars: vars.to_vec(),
        progress: false,
        calibration_flows: CALIBRATION_FLOWS,
        ..RunOptions::default()
    }
}

/// One cost against the in-process server. `None` when stopped before the run started.
async fn sweep_in_process(
    opts: &SweepOptions,
    cost: u32,
    stop: &watch::Receiver<bool>,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<SweepRow>, SweepError> {
    let (algorithm, label) = match &opts.param {
        Some(p) => (
            p.at(cost).map_err(SweepError::Config)?,
            format!("{} {cost}", p.label()),
        ),
        None => (Algorithm::Bcrypt { cost }, format!("cost {cost}")),
    };
    progress(&format!("{label}: timing {algorithm} alone"));
    // Measured before the load run, never during it: both would compete for the cores.
    let hash_ms = measure_algorithm_ms(algorithm).await?;
    if *stop.borrow() {
        return Ok(None);
    }
    progress(&format!(
        "{label}: {hash_ms:.1} ms per hash; running {} flows",
        opts.flows
    ));
    let run_opts = match &opts.param {
        // The row's "cost" is the parameter's value: the server's bcrypt cost stays valid.
        Some(_) => RunOptions {
            algorithm: Some(algorithm),
            ..run_options(opts, crate::server::DEFAULT_COST)
        },
        None => run_options(opts, cost),
    };
    let result = crate::run(&run_opts, stop_future(stop))
        .await
        .map_err(|e| SweepError::Run { cost, source: e })?;
    Ok(Some(row_of(
        cost,
        Some(hash_ms),
        HashSource::Measured,
        &result.report,
        opts,
    )))
}

/// Starts the user's service at `cost`, waits until it answers, runs `run_opts` (aimed at
/// it here) and stops its whole process group on every way out. `None` when stopped
/// before the run started. Shared by sweep and tune.
pub(crate) async fn run_spawned(
    sp: &spawn::SpawnOptions,
    cost: u32,
    run_opts: RunOptions,
    stop: &watch::Receiver<bool>,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<Report>, SweepError> {
    let command = sp.command.replace("{cost}", &cost.to_string());
    progress(&format!("cost {cost}: starting `{command}`"));
    let spawn_err = |source| SweepError::Spawn { cost, source };
    let tls = crate::tls::for_target(&sp.target, &sp.tls, &[])
        .map_err(|e| SweepError::Config(e.to_string()))?;
    // The guard kills the whole process group on every way out of this function.
    let mut group = spawn::ProcessGroup::start(&command).map_err(spawn_err)?;
    let ready_url = format!(
        "{}/{}",
        sp.target.trim_end_matches('/'),
        sp.ready_path.trim_start_matches('/')
    );
    let mut stop_rx = stop.clone();
    match spawn::wait_ready(
        &mut group,
        &ready_url,
        sp.ready_timeout,
        &mut stop_rx,
        tls.as_ref(),
    )
    .await
    .map_err(spawn_err)?
    {
        spawn::Readiness::Ready => {}
        spawn::Readiness::Stopped => {
            group.stop(spawn::STOP_GRACE).await;
            return Ok(None);
        }
    }
    progress(&format!(
        "cost {cost}: ready; running {} flows",
        run_opts.flows
    ));
    let run_opts = RunOptions {
        target: Some(sp.target.clone()),
        api_key: sp.api_key.clone(),
        tls: sp.tls.clone(),
        ..run_opts
    };
    let result = crate::run(&run_opts, stop_future(stop)).await;
    group.stop(spawn::STOP_GRACE).await;
    Ok(Some(
        result
            .map_err(|e| SweepError::Run { cost, source: e })?
            .report,
    ))
}

/// One cost against the user's service, started for this cost and stopped after it.
async fn sweep_spawned(
    opts: &SweepOptions,
    sp: &spawn::SpawnOptions,
    cost: u32,
    stop: &watch::Receiver<bool>,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<SweepRow>, SweepError> {
    let Some(report) = run_spawned(sp, cost, run_options(opts, cost), stop, progress).await? else {
        return Ok(None);
    };
    let source = if sp.hash_time_ms.is_some() {
        HashSource::Given
    } else {
        HashSource::External
    };
    Ok(Some(row_of(cost, sp.hash_time_ms, source, &report, opts)))
}

fn row_of(
    cost: u32,
    hash_ms: Option<f64>,
    hash_source: HashSource,
    r: &Report,
    opts: &SweepOptions,
) -> SweepRow {
    let lat = |v: f64| (r.flow.count > 0).then_some(v);
    let failure = (r.summary.successful_flows == 0).then(|| match r.failures.first() {
        Some(f) => format!(
            "no flow succeeded: {} at `{}` ×{}",
            f.detail, f.step, f.count
        ),
        None => "no flow succeeded".to_string(),
    });
    // A cost whose flows all failed has no capacity or verdict to show.
    let d = r.diagnosis.as_ref().filter(|_| failure.is_none());
    SweepRow {
        cost,
        hash_ms,
        hash_source,
        protocol: Some(
            r.http
                .as_ref()
                .map_or_else(|| "http/1.1".to_string(), |h| h.protocol.clone()),
        ),
        flow_p50_ms: lat(r.flow.p50_ms),
        flow_p95_ms: lat(r.flow.p95_ms),
        flow_p99_ms: lat(r.flow.p99_ms),
        success_rate: r.summary.success_rate,
        successful_flows: r.summary.successful_flows,
        total_flows: r.summary.total_flows,
        flows_per_s: r.summary.flows_per_s,
        capacity_flows_per_s: hash_ms
            .filter(|_| failure.is_none())
            .and_then(|ms| capacity(opts.hashing_threads, opts.hashes_per_flow, ms / 1e3)),
        partial: r.partial,
        steps: d
            .map(|d| {
                d.steps
                    .iter()
                    .map(|s| fit::StepService {
                        name: s.name.clone(),
                        service_ms: s.service_time_ms,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        flow_service_ms: d.map(|d| d.flow_service_time_ms),
        effective_parallelism: d.map(|d| d.effective_parallelism),
        verdict: d.map(|d| crate::diagnosis::verdict(d, r)),
        // Filled by `conclude::apply` once every cost has run.
        flow_hash_ms: None,
        floor_ms: None,
        capacity_is_lower_bound: false,
        capacity_if_parallel_flows_per_s: None,
        below_owasp: false,
        failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
