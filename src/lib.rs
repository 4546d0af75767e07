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

pub mod check;
pub mod cli;
pub mod color;
pub mod diagnosis;
pub mod engine;
pub mod error;
pub mod gate;
pub mod options;
pub mod outage;
pub mod pipeline;
pub mod plan;
pub mod report;
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
use std::time::Duration;

use error::RunError;
use options::{RunOptions, ScenarioSource};
use report::Report;
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
///
/// The stages are in [`pipeline`]; this function only chains them.
pub async fn run(
    opts: &RunOptions,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<RunResult, RunError> {
    let prepared = pipeline::prepare(opts)?;
    let target = pipeline::start_target(opts, &prepared.scenario)?;
    let addr = preflight(&target.base_url, opts.connect_timeout, target.tls.as_ref()).await?;
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

/// Fails fast, with exit code 3, when nothing accepts a TCP connection at the target, or,
/// for `https://`, when a TLS handshake with `tls` fails (an untrusted certificate, a name
/// mismatch, a protocol failure): one line names the cause and the flag that fixes it.
/// Returns the address that accepted the connection.
pub(crate) async fn preflight(
    base_url: &str,
    timeout: Duration,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
) -> Result<std::net::SocketAddr, RunError> {
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
                Ok(_) => return Ok(a),
                Err(e) => last = format!("{a}: {e}"),
            }
        }
        Err(last)
    };
    let addr = match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(a)) => a,
        Ok(Err(cause)) => return Err(unreachable(cause)),
        Err(_) => {
            return Err(unreachable(format!(
                "no TCP connection within {} ms",
                millis(timeout)
            )))
        }
    };
    match tls {
        Some(config) if url.scheme() == "https" => {
            tls::diagnose::probe(addr, &host, config, timeout)
                .await
                .map_err(unreachable)?;
            Ok(addr)
        }
        _ => Ok(addr),
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Cores available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(crate) fn random_key() -> String {
    format!("{:032x}", rand::random::<u128>())
}
