//! `authbench sweep` and `authbench tune`: how the bcrypt cost of a service turns into
//! flow latency and capacity on this machine.
//!
//! A sweep runs the same flows once per cost, against the in-process reference server
//! (started by [`crate::run`] at that cost) or against the user's own service started
//! per cost with `--spawn` ([`spawn`]). Next to the measured figures it prints the
//! capacity estimate `max flows/s ≈ hashing threads / (hashes per flow × time per hash)`,
//! because the point of the exercise is to see that latency under load is queueing for
//! the hashing threads, not the cost alone. [`tune`] searches for the highest cost that
//! still meets an SLO. [`chart`] draws the sweep as SVG and PNG.
//!
//! This file holds the sweep's types (its JSON format), its options and the capacity
//! arithmetic; `runner` runs the costs and [`report`] renders and writes the results.

pub mod chart;
pub mod conclude;
pub mod fit;
pub mod report;
mod runner;
pub mod spawn;
pub mod tune;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{exit, RunError};
use crate::options::ScenarioSource;

pub use report::{capacity_note, markdown, terminal_table, write_sweep, Written};
pub(crate) use runner::{check_spawn, drive_with_stop, stop_future};
pub use runner::{measure_hash_ms, sweep};

/// The version of the sweep JSON format.
/// `/2` added the per-step service times, the hash fit, the per-cost verdict, the
/// what-if capacity and the conclusion.
pub const SCHEMA: &str = "authbench.sweep/2";

/// OWASP's Password Storage Cheat Sheet: bcrypt work factor 10 or more.
pub const OWASP_MIN_COST: u32 = 10;

/// The costs bcrypt accepts.
pub const COST_RANGE: std::ops::RangeInclusive<u32> = 4..=31;

/// Parses `4..=14`, `4..14` (end excluded), `4,6,8` or `12` into sorted, distinct costs,
/// each within bcrypt's 4..=31.
pub fn parse_costs(s: &str) -> Result<Vec<u32>, String> {
    let t = s.trim();
    let num = |p: &str| -> Result<u32, String> {
        p.trim().parse::<u32>().map_err(|_| {
            format!("'{s}' is not a list of costs: use e.g. 4..=14, 4..14, 4,6,8 or 12")
        })
    };
    let mut costs: Vec<u32> = if let Some((a, b)) = t.split_once("..") {
        let start = num(a)?;
        let (end, inclusive) = match b.strip_prefix('=') {
            Some(b) => (num(b)?, true),
            None => (num(b)?, false),
        };
        let end = if inclusive {
            Some(end)
        } else {
            end.checked_sub(1)
        };
        match end {
            Some(end) if end >= start => (start..=end).collect(),
            _ => return Err(format!("'{s}' is an empty range")),
        }
    } else {
        t.split(',').map(num).collect::<Result<_, _>>()?
    };
    costs.sort_unstable();
    costs.dedup();
    if let Some(bad) = costs.iter().find(|c| !COST_RANGE.contains(c)) {
        return Err(format!(
            "cost {bad} is outside bcrypt's range {}..={}",
            COST_RANGE.start(),
            COST_RANGE.end()
        ));
    }
    Ok(costs)
}

/// `sweep --param`: one parameter of one algorithm swept on the in-process server, the
/// others at OWASP's minimum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSweep {
    /// The algorithm with its other parameters.
    pub base: crate::password::Algorithm,
    /// The parameter's name in [`Algorithm::with`](crate::password::Algorithm::with).
    pub name: String,
    /// The values, ascending.
    pub values: Vec<u32>,
}

impl ParamSweep {
    /// `argon2.m`, as the user wrote it.
    pub fn label(&self) -> String {
        format!("{}.{}", self.base.kind_name(), self.name)
    }

    /// The algorithm at `value`.
    pub fn at(&self, value: u32) -> Result<crate::password::Algorithm, String> {
        self.base.with(&self.name, value)
    }
}

/// Parses `argon2.m=8192..=65536` (a range doubles from its start: 8192, 16384, 32768,
/// 65536), `pbkdf2.iterations=100k,600k,1m`, `scrypt.n=16384..=131072`,
/// `bcrypt.cost=4..=12` (a bcrypt range counts up by one, like `--costs`).
pub fn parse_param(s: &str) -> Result<ParamSweep, String> {
    use crate::password::{Algorithm, AlgorithmKind};
    let example = "e.g. argon2.m=8192..=65536, scrypt.n=16384..=131072, pbkdf2.iterations=100k,600k or bcrypt.cost=4..=12";
    let (key, values) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}': expected ALGORITHM.PARAMETER=VALUES, {example}"))?;
    let (alg, name) = key
        .trim()
        .split_once('.')
        .ok_or_else(|| format!("'{key}': expected ALGORITHM.PARAMETER, {example}"))?;
    let kind = match alg.to_ascii_lowercase().as_str() {
        "bcrypt" => AlgorithmKind::Bcrypt,
        "argon2" | "argon2id" => AlgorithmKind::Argon2id,
        "scrypt" => AlgorithmKind::Scrypt,
        "pbkdf2" => AlgorithmKind::Pbkdf2,
        other => {
            return Err(format!(
                "unknown algorithm '{other}': bcrypt, argon2, scrypt or pbkdf2"
            ))
        }
    };
    let base = Algorithm::owasp(kind);
    let name = name.trim().to_ascii_lowercase();
    let num = |p: &str| -> Result<u32, String> {
        crate::units::parse_count(p.trim())
            .ok()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| format!("'{}' is not a whole number ({example})", p.trim()))
    };
    let mut v: Vec<u32> = if let Some((a, b)) = values.split_once("..") {
        let (a, b) = (num(a)?, num(b.trim_start_matches('='))?);
        if a == 0 || b < a {
            return Err(format!("'{values}' is an empty range"));
        }
        if kind == AlgorithmKind::Bcrypt {
            (a..=b).collect()
        } else {
            std::iter::successors(Some(u64::from(a)), |x| Some(x * 2))
                .take_while(|x| *x <= u64::from(b))
                .map(|x| x as u32)
                .collect()
        }
    } else {
        values.split(',').map(num).collect::<Result<_, _>>()?
    };
    v.sort_unstable();
    v.dedup();
    let sweep = ParamSweep {
        base,
        name,
        values: v,
    };
    for &x in &sweep.values {
        sweep.at(x)?;
    }
    if sweep.values.is_empty() {
        return Err(format!("'{s}' names no value"));
    }
    Ok(sweep)
}

/// Options of `authbench sweep`.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The costs to run, ascending.
    pub costs: Vec<u32>,
    /// Flows per cost.
    pub flows: u64,
    /// Flows in flight at once.
    pub concurrency: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// TCP connect timeout (capped at `timeout`).
    pub connect_timeout: Duration,
    /// The flow definition.
    pub scenario: ScenarioSource,
    /// `--var` / `AUTHBENCH_VAR_*`: variables for every template of the scenario.
    pub vars: Vec<(String, String)>,
    /// bcrypt operations per flow (the default scenario: register hashes, login verifies).
    pub hashes_per_flow: f64,
    /// `--hashes-per-flow` was given: a fitted service's per-hash figure is its hashing per
    /// flow over this count, not the mean over the hashing steps found.
    pub hashes_per_flow_given: bool,
    /// Threads that hash at once on the server; the in-process server uses one per core.
    pub hashing_threads: usize,
    /// Start the user's service per cost instead of the in-process server.
    pub spawn: Option<spawn::SpawnOptions>,
    /// Sweep one parameter of an algorithm instead of the bcrypt cost (in-process);
    /// `costs` is then ignored.
    pub param: Option<ParamSweep>,
    /// `--http`: the HTTP version of every run.
    pub http: crate::options::HttpVersion,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            costs: (4..=14).collect(),
            flows: 20,
            concurrency: 20,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            scenario: ScenarioSource::Builtin,
            vars: Vec::new(),
            hashes_per_flow: 2.0,
            hashes_per_flow_given: false,
            hashing_threads: crate::usage::cores(),
            spawn: None,
            param: None,
            http: crate::options::HttpVersion::Auto,
        }
    }
}

/// Why a sweep (or a tune) could not complete.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{0}")]
    Config(String),
    #[error("the run at cost {cost} failed")]
    Run {
        cost: u32,
        #[source]
        source: RunError,
    },
    /// `tune --target` of a running service: its cost is not known, the level is.
    #[error("the run at concurrency {concurrency} failed")]
    Level {
        concurrency: usize,
        #[source]
        source: RunError,
    },
    /// Before any run (the scenario).
    #[error(transparent)]
    Prepare(RunError),
    #[error("at cost {cost}")]
    Spawn {
        cost: u32,
        #[source]
        source: spawn::SpawnError,
    },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl SweepError {
    pub fn exit_code(&self) -> u8 {
        match self {
            SweepError::Config(_) => exit::USAGE,
            SweepError::Run { source, .. }
            | SweepError::Level { source, .. }
            | SweepError::Prepare(source) => source.exit_code(),
            SweepError::Spawn { .. } | SweepError::Other(_) => exit::FAILURE,
        }
    }
}

/// Where a row's hash time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashSource {
    /// Median of a few `bcrypt::hash` calls here, before the load run.
    Measured,
    /// `--hash-time-ms`, as the user stated it for their service.
    Given,
    /// A spawned service whose hash time could not be measured ([`fit`] says why).
    External,
    /// A spawned service's hash time, fitted from its service times over the costs.
    Fitted,
}

/// The figures of one cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    pub cost: u32,
    /// Time of one hash in ms; `null` for an external service without `--hash-time-ms`.
    pub hash_ms: Option<f64>,
    pub hash_source: HashSource,
    /// Successful flows' latency percentiles (ms); `null` when no flow succeeded.
    pub flow_p50_ms: Option<f64>,
    pub flow_p95_ms: Option<f64>,
    pub flow_p99_ms: Option<f64>,
    /// Successful / finished flows, 0..=1.
    pub success_rate: f64,
    pub successful_flows: u64,
    pub total_flows: u64,
    /// Finished flows per second of wall time.
    pub flows_per_s: f64,
    /// In-process (or `--hash-time-ms`): `hashing_threads / (hashes_per_flow × hash
    /// time)`. A spawned service: measured effective parallelism / flow service time.
    /// `null` when neither is known.
    pub capacity_flows_per_s: Option<f64>,
    /// This cost's run was interrupted.
    pub partial: bool,
    /// Each step's service time alone (the run's calibration flows), in scenario order.
    #[serde(default)]
    pub steps: Vec<fit::StepService>,
    /// A flow's service time alone (the sum of `steps`), ms.
    #[serde(default)]
    pub flow_service_ms: Option<f64>,
    /// Requests the service worked on at once in the run (Little's law).
    #[serde(default)]
    pub effective_parallelism: Option<f64>,
    /// What limited the service in this cost's run.
    #[serde(default)]
    pub verdict: Option<crate::diagnosis::Verdict>,
    /// Hashing per flow (hashes per flow × hash time), ms.
    #[serde(default)]
    pub flow_hash_ms: Option<f64>,
    /// The rest of a flow's service time: the floor a lower cost cannot remove, ms.
    #[serde(default)]
    pub floor_ms: Option<f64>,
    /// The protocol the run spoke (`--http`): `http/1.1`, `h2` (ALPN) or `h2c`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// The capacity is a lower bound: the load did not saturate the service.
    #[serde(default)]
    pub capacity_is_lower_bound: bool,
    /// What-if: the capacity if hashing used every core of this machine and the rest of
    /// the work kept its measured parallelism; `null` when not computable.
    #[serde(default)]
    pub capacity_if_parallel_flows_per_s: Option<f64>,
    /// Below the OWASP Password Storage Cheat Sheet's minimum for the algorithm.
    #[serde(default)]
    pub below_owasp: bool,
    /// No flow succeeded at this cost: what failed (the most frequent failure). Such a row
    /// has no capacity, verdict or what-if figure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl Sweep {
    /// Why the sweep failed as a whole: no cost had a successful flow.
    pub fn nothing_succeeded(&self) -> Option<String> {
        if self.rows.is_empty() || self.rows.iter().any(|r| r.failure.is_none()) {
            return None;
        }
        let first = &self.rows[0];
        Some(format!(
            "no flow succeeded at any of the {} values swept (at {}: {})",
            self.rows.len(),
            first.cost,
            first.failure.as_deref().unwrap_or_default()
        ))
    }
}

/// How the sweep was set up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepConfig {
    pub costs: Vec<u32>,
    pub flows: u64,
    pub concurrency: usize,
    pub timeout_ms: u64,
    pub scenario: String,
    pub hashes_per_flow: f64,
    pub hashing_threads: usize,
    pub cores: usize,
    /// The spawned service's URL; `null` for the in-process server.
    pub target: Option<String>,
    /// The `--spawn` command template (with `{cost}`); `null` for the in-process server.
    pub spawn: Option<String>,
    /// `sweep --param`: the parameter swept (`argon2.m`); each row's `cost` is then its
    /// value. `null`: the bcrypt cost.
    #[serde(default)]
    pub param: Option<String>,
    /// `sweep --param`: the algorithm at its other parameters (`argon2id m=19456,t=2,p=1`).
    #[serde(default)]
    pub algorithm: Option<String>,
    /// `sweep --param`: OWASP's minimum value of the parameter swept.
    #[serde(default)]
    pub owasp_value: Option<u32>,
}

/// A whole sweep: this struct is the JSON format (`authbench.sweep/2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// Always [`SCHEMA`].
    pub schema: String,
    pub tool: String,
    /// When the sweep ended, RFC 3339 UTC.
    pub generated_at: String,
    /// Interrupted: rows cover only the costs that ran (the last one maybe partly).
    pub partial: bool,
    pub config: SweepConfig,
    /// One row per cost that ran, ascending.
    pub rows: Vec<SweepRow>,
    /// The fit of each step's service time to `a + b·2^cost`.
    #[serde(default)]
    pub fit: Option<fit::HashFit>,
    /// What the sweep says as a whole.
    #[serde(default)]
    pub conclusion: Option<conclude::Conclusion>,
}

/// `threads / (hashes_per_flow × hash_s)`: the flows per second the hashing threads can
/// sustain when hashing is all the server does. `None` when an input is not positive.
pub fn capacity(threads: usize, hashes_per_flow: f64, hash_s: f64) -> Option<f64> {
    let work = hashes_per_flow * hash_s;
    (threads > 0 && work.is_finite() && work > 0.0).then(|| threads as f64 / work)
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs() {
        assert_eq!(parse_costs("4..=6"), Ok(vec![4, 5, 6]));
        assert_eq!(parse_costs("4..6"), Ok(vec![4, 5]));
        assert_eq!(parse_costs(" 8, 4,6,4 "), Ok(vec![4, 6, 8]));
        assert_eq!(parse_costs("12"), Ok(vec![12]));
        assert_eq!(parse_costs("31"), Ok(vec![31]));
        for bad in [
            "", "3", "32", "4..=32", "2..5", "6..4", "5..5", "a", "4..", "..4", "4,,5", "-1",
            "4..=x",
        ] {
            assert!(parse_costs(bad).is_err(), "{bad}");
        }
        assert!(parse_costs("3..=5").unwrap_err().contains("outside"));
    }

    #[test]
    fn params() {
        let p = parse_param("argon2.m=8192..=65536").unwrap();
        assert_eq!(p.values, [8192, 16384, 32768, 65536]);
        assert_eq!(p.label(), "argon2.m");
        let p = parse_param("pbkdf2.iterations=100k,600k").unwrap();
        assert_eq!(p.values, [100_000, 600_000]);
        assert_eq!(parse_param("bcrypt.cost=4..=6").unwrap().values, [4, 5, 6]);
        assert_eq!(
            parse_param("scrypt.n=16384..=131072").unwrap().values,
            [16384, 32768, 65536, 131072]
        );
        for bad in [
            "argon2",
            "argon2.m",
            "md5.rounds=1",
            "argon2.x=1",
            "argon2.m=9..=1",
            "scrypt.n=1000",
            "bcrypt.cost=40",
            "pbkdf2.iterations=abc",
        ] {
            assert!(parse_param(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn capacity_arithmetic() {
        let c = capacity(2, 2.0, 0.235).unwrap();
        assert!((c - 4.255).abs() < 0.01, "{c}");
        assert_eq!(capacity(0, 2.0, 0.2), None);
        assert_eq!(capacity(2, 2.0, 0.0), None);
        assert_eq!(capacity(2, f64::NAN, 0.2), None);
    }
}
