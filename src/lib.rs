//! authbench: load-test and benchmark authentication services.
//!
//! The library does all the work so tests can drive the whole tool in-process;
//! `main.rs` only calls [`cli::main_with_args`] and exits with its code.
//!
//! The pipeline of `authbench run`: [`options::RunOptions`] → load the
//! [`scenario::Scenario`] → start the in-process [`server`] when there is no target →
//! check the target is reachable → [`engine::run`] (workers send samples to a collector
//! that builds [`stats::Stats`]) → [`report::Report`] → exporters.

pub mod check;
pub mod cli;
pub mod diagnosis;
pub mod engine;
pub mod error;
pub mod gate;
pub mod options;
pub mod plan;
pub mod report;
pub mod scenario;
pub mod server;
pub mod stats;
pub mod sweep;
pub mod timeline;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use error::RunError;
use options::{RunOptions, ScenarioSource};
use report::{Report, ReportInput, RunConfig};
use scenario::Scenario;

/// What a run produced.
#[derive(Debug)]
pub struct RunResult {
    pub report: Report,
    /// Report files written, if any.
    pub files: Vec<PathBuf>,
}

/// Loads the scenario an options struct names.
pub fn load_scenario(src: &ScenarioSource) -> Result<Scenario, RunError> {
    Ok(match src {
        ScenarioSource::Builtin => Scenario::builtin(),
        ScenarioSource::File(p) => Scenario::load(p)?,
    })
}

/// Runs flows as `opts` says and writes the reports. `stop` resolving interrupts the run:
/// no new flow starts, in-flight ones get `opts.grace`, and the report is marked partial.
pub async fn run(
    opts: &RunOptions,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<RunResult, RunError> {
    if opts.flows == 0 {
        return Err(RunError::Config("--flows must be at least 1".into()));
    }
    if opts.concurrency == 0 {
        return Err(RunError::Config("--concurrency must be at least 1".into()));
    }
    let scenario = Arc::new(load_scenario(&opts.scenario)?);
    // Everything that can be wrong with the configuration fails before any load is sent.
    let mut exprs = scenario.thresholds.clone();
    exprs.extend(opts.thresholds.iter().cloned());
    let thresholds = gate::parse_all(&exprs, &scenario.step_names())
        .map_err(|e| RunError::Config(e.to_string()))?;
    let baseline = match &opts.baseline {
        Some(p) => Some((
            read_report(p).map_err(|e| RunError::Config(format!("{e:#}")))?,
            p,
        )),
        None => None,
    };

    // The in-process server runs on its own OS thread and tokio runtime with its own
    // bounded hashing pool, so it and the load generator cannot starve each other's executor.
    let (server, base_url, api_key) = match &opts.target {
        None => {
            let key = opts.api_key.clone().unwrap_or_else(random_key);
            let mut cfg = server::ServerConfig::new(opts.cost, key.clone());
            cfg.hash_mode = opts.hash_mode;
            let handle = server::spawn(cfg, ([127, 0, 0, 1], 0).into())?;
            let url = handle.base_url();
            (Some(handle), url, key)
        }
        Some(t) => {
            let url = check_target_url(t)?;
            let key = external_api_key(opts.api_key.as_deref(), &scenario)?;
            (None, url, key)
        }
    };
    preflight(&base_url, opts.connect_timeout).await?;

    let plan = match &opts.plan {
        Some(p) => p.clone(),
        None => plan::Plan::closed(
            opts.concurrency
                .min(usize::try_from(opts.flows).unwrap_or(usize::MAX)),
            opts.flows,
        ),
    };
    // Flows in flight at once: the closed loop's peak workers, or the open loop's cap.
    let concurrency = match plan.model {
        plan::LoadModel::Closed => plan.peak() as usize,
        plan::LoadModel::Open { max_in_flight, .. } => max_in_flight,
    };
    let (timeout, connect_timeout) = (opts.timeout, opts.connect_timeout);
    let build_client = move |pool: usize| {
        // A load tester measures what the server answers: no redirect is followed (a 302
        // is checked against the step's `expect` like any status) and no request is
        // retried behind the scenario's back.
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .pool_max_idle_per_host(pool)
            .build()
    };
    let client = build_client(concurrency.min(10_000))
        .map_err(|e| RunError::Other(anyhow::anyhow!("could not build the HTTP client: {e}")))?;
    let per_flow_client: Option<engine::ClientFactory> = match opts.connections {
        options::Connections::Shared => None,
        // Building a client cannot fail once the same settings built one above; if it
        // ever did, the flow falls back to the shared client rather than panicking.
        options::Connections::PerFlow => {
            let shared = client.clone();
            Some(Arc::new(move || {
                build_client(1).unwrap_or_else(|_| shared.clone())
            }))
        }
    };

    // The interrupt may come during the calibration or the run: a watch lets both see it.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_task = tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let fast = engine::http1::Http1::for_target(
        &base_url,
        &scenario,
        opts.timeout,
        opts.connect_timeout,
        concurrency.min(10_000),
    )
    .await
    .map(Arc::new);
    let engine_cfg = |plan: plan::Plan, progress: bool| engine::EngineConfig {
        scenario: scenario.clone(),
        client: client.clone(),
        per_flow_client: per_flow_client.clone(),
        fast: fast.clone(),
        base_url: base_url.clone(),
        api_key: api_key.clone(),
        plan,
        progress,
        grace: opts.grace,
    };
    // Calibration: a few flows alone, so the diagnosis knows each step's service time.
    let calibration = if opts.calibration_flows > 0 {
        let cal_plan = plan::Plan::closed(1, opts.calibration_flows);
        let out = engine::run(engine_cfg(cal_plan, false), stopped()).await;
        Some(out)
    } else {
        None
    };
    let (calibration, outcome) = match calibration {
        // Interrupted while calibrating: the calibration flows (run one at a time) are all
        // that was measured, and the partial report carries them rather than nothing.
        Some(cal) if cal.interrupted => (None, cal),
        cal => (
            cal,
            engine::run(engine_cfg(plan.clone(), opts.progress), stopped()).await,
        ),
    };
    stop_task.abort();
    let bcrypt_cost = server.as_ref().map(|_| opts.cost);
    if let Some(s) = server {
        s.shutdown();
    }

    let config = RunConfig {
        target: base_url,
        in_process_server: opts.target.is_none(),
        scenario: scenario.name.clone(),
        scenario_source: scenario.source.clone(),
        flows_planned: plan.planned_flows().unwrap_or(0),
        concurrency,
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
    };
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
    if let Some(cal) = &calibration {
        let cal_report = Report::build(ReportInput {
            stats: &cal.stats,
            config: config.clone(),
            wall: cal.wall,
            partial: false,
            abandoned: 0,
            generated_at: chrono::Utc::now(),
        });
        let server_cores = opts.target.is_none().then(cores);
        report.diagnosis = diagnosis::diagnose(&cal_report, &report, server_cores);
    }
    report.thresholds = thresholds.iter().map(|t| t.evaluate(&report)).collect();
    if let Some((base, path)) = &baseline {
        report.comparison = Some(gate::compare(
            base,
            &report,
            &path.display().to_string(),
            opts.compare,
        ));
    }
    let mut files = match &opts.out_dir {
        Some(dir) => report::write_reports(&report, dir)?,
        None => Vec::new(),
    };
    if let Some(path) = &opts.html {
        use report::Exporter;
        report::write_file(path, &report::html::Html.render(&report)?)?;
        files.push(path.clone());
    }
    if let Some(path) = &opts.junit {
        use report::Exporter;
        report::write_file(path, &report::junit::JUnit.render(&report)?)?;
        files.push(path.clone());
    }
    Ok(RunResult { report, files })
}

/// The API key for an external target: the one given, or an error naming the flag when
/// the scenario sends `{{api_key}}` and none was given.
pub(crate) fn external_api_key(
    given: Option<&str>,
    scenario: &Scenario,
) -> Result<String, RunError> {
    match given {
        Some(k) => Ok(k.to_string()),
        None if scenario.uses_api_key => Err(RunError::Config(format!(
            "the scenario '{}' sends {{{{api_key}}}}: pass --api-key KEY or set AUTHBENCH_API_KEY",
            scenario.name
        ))),
        None => Ok(String::new()),
    }
}

/// Reads a saved JSON report (a run's, or a merge's), checking its schema version.
pub fn read_report(path: &std::path::Path) -> anyhow::Result<Report> {
    use anyhow::Context;
    let bytes = std::fs::read(path)
        .with_context(|| format!("could not read the report '{}'", path.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("'{}' is not JSON", path.display()))?;
    let schema = value
        .get("schema")
        .and_then(|s| s.as_str())
        .unwrap_or("none");
    if schema != report::SCHEMA {
        anyhow::bail!(
            "'{}' has schema '{schema}'; this authbench reads '{}'",
            path.display(),
            report::SCHEMA
        );
    }
    serde_json::from_value(value)
        .with_context(|| format!("'{}' is not a complete authbench report", path.display()))
}

/// Accepts `http(s)://host[:port][/base]`; anything else is a configuration error.
pub(crate) fn check_target_url(t: &str) -> Result<String, RunError> {
    let url = reqwest::Url::parse(t).map_err(|e| {
        RunError::Config(format!(
            "--target '{t}' is not a URL ({e}): use e.g. http://127.0.0.1:8007"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(RunError::Config(format!(
            "--target '{t}' must be an http:// or https:// URL with a host"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Fails fast, with exit code 3, when nothing accepts a TCP connection at the target.
pub(crate) async fn preflight(base_url: &str, timeout: Duration) -> Result<(), RunError> {
    let unreachable = |cause: String| RunError::Unreachable {
        target: base_url.to_string(),
        cause,
    };
    let url = reqwest::Url::parse(base_url).map_err(|e| unreachable(e.to_string()))?;
    let host = url
        .host_str()
        .unwrap_or("")
        .trim_matches(['[', ']'])
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let attempt = async {
        let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot resolve '{host}': {e}"))?
            .collect();
        let mut last = format!("'{host}' resolved to no address");
        for a in addrs {
            match tokio::net::TcpStream::connect(a).await {
                Ok(_) => return Ok(()),
                Err(e) => last = format!("{a}: {e}"),
            }
        }
        Err(last)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(cause)) => Err(unreachable(cause)),
        Err(_) => Err(unreachable(format!(
            "no TCP connection within {} ms",
            millis(timeout)
        ))),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Cores available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(crate) fn random_key() -> String {
    format!("{:032x}", rand::random::<u128>())
}
