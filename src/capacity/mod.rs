//! `authbench capacity`: the highest open-loop arrival rate a service sustains within an
//! SLO. Each step offers one constant rate (a warm-up, then a hold of at least N flows or
//! D seconds, latency from each flow's intended start); [`search`] brackets then bisects on
//! the verdicts until the precision is reached or the budget (`--max-duration`,
//! `--max-rate`) runs out. With `--costs` the search runs once per bcrypt cost, against the
//! in-process server started at that cost or the user's service started per cost with
//! `--spawn` (the sweep's [`crate::sweep::spawn`]).
//!
//! This file holds the options, the result (which *is* the JSON format) and the SLO and
//! gate expressions; `step` runs and judges one rate, `run` drives the search, and
//! [`report`] renders the table, Markdown, HTML and chart. Nothing here prints.

pub mod chart;
pub mod report;
mod run;
pub mod search;
mod step;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::criteria::{Metric, Threshold};
use crate::error::{exit, RunError};
use crate::options::{HttpVersion, ScenarioSource, TlsOptions};
use crate::report::gate::ThresholdResult;

pub use report::{markdown, terminal_table, write_capacity};
pub use run::capacity;
pub use search::End;

/// The version of the capacity JSON format.
pub const SCHEMA: &str = "authbench.capacity/1";

/// A step sustains its rate when it completes at least this fraction of it (see
/// `step::achieved_rate`): below it the queue grows, whatever the latency says so far.
pub const SUSTAIN_FRACTION: f64 = 0.95;

/// Options of `authbench capacity`.
#[derive(Debug, Clone)]
pub struct CapacityOptions {
    /// The SLO every step must meet (`flow.p99<500ms`, `success>=99.9%`), parsed by
    /// [`parse_slo`]: `flow.*` latency is from the intended start.
    pub slo: Vec<Threshold>,
    /// The SLO as the user wrote it.
    pub slo_text: String,
    /// A running service; `None` starts the in-process reference server (per cost).
    pub target: Option<String>,
    pub api_key: Option<String>,
    pub tls: TlsOptions,
    pub http: HttpVersion,
    pub scenario: ScenarioSource,
    /// `--var` / `AUTHBENCH_VAR_*`: variables for every template of the scenario.
    pub vars: Vec<(String, String)>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// The first rate offered, flows/s.
    pub start_rate: f64,
    /// The highest rate ever offered.
    pub max_rate: f64,
    /// Stop when the first failing rate is within this fraction of the sustained one.
    pub precision: f64,
    /// Each step's warm-up (not measured).
    pub warmup: Duration,
    /// Each step holds its rate at least this long after the warm-up...
    pub hold: Duration,
    /// ...and long enough to start at least this many measured flows.
    pub hold_flows: u64,
    /// The whole search starts no step expected to end past this (a step that overloads
    /// the service may overrun it by its drain time).
    pub max_duration: Duration,
    /// Arrivals beyond this many flows in flight wait (and count from their intended start).
    pub max_in_flight: usize,
    /// Flows run alone before each step, for the diagnosis (effective parallelism, headline).
    pub calibration_flows: u64,
    /// bcrypt costs: the search runs once per cost (in-process server, or `--spawn`).
    /// Empty: once, at `cost`.
    pub costs: Vec<u32>,
    /// The in-process server's cost when `costs` is empty.
    pub cost: u32,
    /// Start the user's service per cost (needs `target`).
    pub spawn: Option<crate::sweep::spawn::SpawnOptions>,
    /// `capacity>=20/s`: checked against the sustainable rate.
    pub thresholds: Vec<CapacityThreshold>,
}

impl Default for CapacityOptions {
    fn default() -> Self {
        CapacityOptions {
            slo: Vec::new(),
            slo_text: String::new(),
            target: None,
            api_key: None,
            tls: TlsOptions::default(),
            http: HttpVersion::Auto,
            scenario: ScenarioSource::Builtin,
            vars: Vec::new(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            start_rate: 1.0,
            max_rate: 10_000.0,
            precision: 0.05,
            warmup: Duration::from_secs(1),
            hold: Duration::from_secs(5),
            hold_flows: 30,
            max_duration: Duration::from_secs(300),
            max_in_flight: 1000,
            calibration_flows: 3,
            costs: Vec::new(),
            cost: 12,
            spawn: None,
            thresholds: Vec::new(),
        }
    }
}

/// Parses an SLO: threshold expressions separated by commas (`flow.p99<500ms,
/// success>=99.9%`). `success` is accepted for `success_rate`. A `flow.*` latency is read
/// from each flow's *intended* start (the step is open loop, so this is the latency
/// without coordinated omission); step latencies are from the request's send.
pub fn parse_slo(s: &str) -> Result<Vec<Threshold>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let expr = match part.strip_prefix("success") {
            Some(rest) if !rest.starts_with('_') && !rest.starts_with('.') => {
                format!("success_rate{rest}")
            }
            _ => part.to_string(),
        };
        let mut t = Threshold::parse(&expr).map_err(|e| format!("--slo '{part}': {e}"))?;
        if let Metric::Latency { step: None, stat } = t.metric {
            t.metric = Metric::IntendedLatency(stat);
        }
        t.expr = part.to_string();
        out.push(t);
    }
    if out.is_empty() {
        return Err("--slo is empty: give e.g. 'flow.p99<500ms,success>=99.9%'".into());
    }
    Ok(out)
}

/// `capacity>=20/s`: a floor (or ceiling) on the sustainable rate, for CI.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityThreshold {
    pub expr: String,
    pub op: crate::criteria::Op,
    /// flows/s
    pub limit: f64,
}

/// Parses `capacity>=20/s` (also `600/m`, as throughput thresholds are).
pub fn parse_capacity_threshold(s: &str) -> Result<CapacityThreshold, String> {
    let t = s.trim();
    let rest = t.strip_prefix("capacity").ok_or_else(|| {
        format!("'{s}': a capacity threshold reads capacity>=20/s (the sustainable rate)")
    })?;
    // The same operators and rate units as `throughput`, parsed by the criteria module.
    let as_throughput = format!("throughput{rest}");
    let th = Threshold::parse(&as_throughput).map_err(|e| format!("'{s}': {}", e.message))?;
    Ok(CapacityThreshold {
        expr: t.to_string(),
        op: th.op,
        limit: th.limit,
    })
}

impl CapacityThreshold {
    pub fn evaluate(&self, sustainable: f64) -> ThresholdResult {
        ThresholdResult {
            expr: self.expr.clone(),
            observed: Some(sustainable),
            observed_text: format!("{}/s", report::fmt_rate(sustainable)),
            passed: self.op.holds(sustainable, self.limit),
        }
    }
}

/// Why a capacity search could not complete.
#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    #[error("{0}")]
    Config(String),
    /// A run failed: the step at `rate` (0: setting the search up, before any step).
    #[error("{}", run_context(*rate))]
    Run {
        rate: f64,
        #[source]
        source: RunError,
    },
    #[error(transparent)]
    Sweep(#[from] crate::sweep::SweepError),
}

impl CapacityError {
    /// The process exit code: a run's own (an unreachable target, a bad scenario), or a
    /// usage error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CapacityError::Config(_) => exit::USAGE,
            CapacityError::Run { source, .. } => source.exit_code(),
            CapacityError::Sweep(e) => e.exit_code(),
        }
    }
}

/// Where a failed run stood: its step's rate, or the set-up before any step (the cause,
/// an unreachable target or a missing `--api-key`, follows in the error chain).
fn run_context(rate: f64) -> String {
    if rate > 0.0 {
        format!("the step at {rate:.2} flows/s")
    } else {
        "setting the search up".into()
    }
}

/// The result of `authbench capacity`: this struct is the JSON format.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Capacity {
    pub schema: String,
    pub tool: String,
    pub generated_at: String,
    /// The highest rate that met the SLO, flows/s (0 when none did). With several costs,
    /// the lowest of them, so that a gate on it fails when any cost regresses.
    pub sustainable_rate: f64,
    /// The lowest rate that broke the SLO, if one did (of the search behind
    /// `sustainable_rate`).
    pub first_failing_rate: Option<f64>,
    /// What broke it there.
    pub broken_by: Vec<String>,
    pub config: CapacityConfig,
    /// One search per cost (one in all without `--costs`).
    pub searches: Vec<CostSearch>,
    /// `--threshold capacity>=…` results.
    #[serde(default)]
    pub thresholds: Vec<ThresholdResult>,
    /// Interrupted: the figures are what was measured so far.
    pub partial: bool,
}

/// How the search was set up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapacityConfig {
    pub target: String,
    pub in_process_server: bool,
    pub scenario: String,
    pub slo: String,
    pub start_rate: f64,
    pub max_rate: f64,
    pub precision: f64,
    pub warmup_s: f64,
    pub hold_s: f64,
    pub hold_flows: u64,
    pub max_duration_s: f64,
    pub max_in_flight: usize,
    /// Achieved over offered that a step must reach to count as sustained.
    pub sustain_fraction: f64,
}

/// One search: at one cost (or at the running service's unknown cost).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CostSearch {
    /// The bcrypt cost, when the search set it (in-process server or `--spawn`).
    pub cost: Option<u32>,
    /// One hash at this cost, measured here before the search (in-process only), ms.
    pub hash_ms: Option<f64>,
    pub sustainable_rate: f64,
    pub first_failing_rate: Option<f64>,
    pub broken_by: Vec<String>,
    pub end: End,
    /// Seconds the search took.
    pub elapsed_s: f64,
    /// Every step, in the order run.
    pub steps: Vec<StepRow>,
}

/// One step: a constant rate held, and its verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRow {
    /// flows/s offered.
    pub offered: f64,
    /// flows/s completed successfully (see [`SUSTAIN_FRACTION`]).
    pub achieved: f64,
    /// Measured flows (the warm-up's excluded).
    pub flows: u64,
    pub success_rate: f64,
    /// Flow latency from the intended start, ms (`None`: no flow succeeded).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// The server's average busy count, from the diagnosis.
    pub effective_parallelism: Option<f64>,
    /// The diagnosis's verdict, in a few words.
    pub headline: Option<String>,
    pub passed: bool,
    /// What failed, in words (the SLO term and its value, or the throughput).
    pub broken_by: Vec<String>,
    /// Flows still in flight when the step's drain time ran out (a backlog).
    pub abandoned: u64,
}

impl Capacity {
    /// Whether every `--threshold` passed.
    pub fn gate_passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slo_terms_parse_and_flow_latency_is_intended() {
        let slo = parse_slo("flow.p99<500ms, success>=99.9%,login.p95<1s").unwrap();
        assert_eq!(slo.len(), 3);
        assert!(matches!(slo[0].metric, Metric::IntendedLatency(_)));
        assert_eq!(slo[0].expr, "flow.p99<500ms");
        assert!(matches!(slo[1].metric, Metric::SuccessRate));
        assert!((slo[1].limit - 0.999).abs() < 1e-9);
        assert!(matches!(
            slo[2].metric,
            Metric::Latency { step: Some(_), .. }
        ));
        let e = parse_slo("flow.p99<500").unwrap_err();
        assert!(e.contains("flow.p99<500") && e.contains("unit"), "{e}");
        assert!(parse_slo(" , ").is_err());
    }

    #[test]
    fn capacity_thresholds_parse_and_hold() {
        let t = parse_capacity_threshold("capacity>=20/s").unwrap();
        assert!(t.evaluate(20.0).passed && !t.evaluate(19.9).passed);
        let t = parse_capacity_threshold("capacity>=600/m").unwrap();
        assert!((t.limit - 10.0).abs() < 1e-9);
        assert!(parse_capacity_threshold("capacity>=20")
            .unwrap_err()
            .contains("unit"));
        assert!(parse_capacity_threshold("flow.p99<1s").is_err());
    }
}
