//! `authbench tune`: the highest bcrypt cost that meets an SLO on this machine.
//!
//! Each +1 in cost doubles the time of a hash, so whether a cost meets a latency or
//! throughput SLO is monotonic in the cost: a binary search over the range finds the
//! highest passing cost in about log2(range) probes, each a real run against the
//! in-process server or the user's service started at that cost (`--spawn`, with the
//! sweep's process-group handling); the recommendation is then confirmed by one more run.
//! A running service whose cost cannot change (`--target` alone) is probed at rising
//! concurrency instead: the answer is the concurrency at which its current cost meets
//! the SLO. The search itself ([`Search`], [`find_highest`]) does no I/O, so it
//! is tested with a fake measurement.
//!
//! It never goes below OWASP's minimum of 10 unless `--allow-weak` says so: when 10 misses
//! the SLO, the answer is not a weaker hash but more hashing capacity, and [`advice`]
//! prints the arithmetic that says how much. Its `report` module renders and writes the
//! result ([`terminal`], [`markdown`], [`write_tune`]).

mod report;
mod search;

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::conclude::what_if_capacity;
use super::fit::{self, HashFit, StepService};
use super::runner::{
    check_spawn, check_target, drive_with_stop, in_process_run, run_spawned, stop_future,
};
use super::{capacity, spawn, SweepError};
use crate::diagnosis::Verdict;
use crate::gate::{Threshold, ThresholdResult};
use crate::options::{RunOptions, ScenarioSource, TlsOptions};
use crate::report::Report;

pub use report::{markdown, terminal, write_tune};
pub use search::{advice, find_highest, levels, search_range, what_if_sentence, Search};

/// The version of the tune JSON format.
/// `/2`: the target (in-process, spawned, running), the probes' measured service times,
/// parallelism, verdict and capacities, the hash fit, the confirming run, and the
/// concurrency levels of a running service.
pub const SCHEMA: &str = "authbench.tune/2";

/// Where the probes run.
#[derive(Debug, Clone, Default)]
pub enum TuneTarget {
    /// The in-process reference server, started per probe at the probe's cost.
    #[default]
    InProcess,
    /// The user's service, started per probe at the probe's cost (`--spawn CMD --target URL`).
    Spawn(spawn::SpawnOptions),
    /// A running service whose cost cannot change (`--target URL` alone).
    Running {
        target: String,
        api_key: Option<String>,
        tls: TlsOptions,
    },
}

/// Which kind of target a tune ran against, in its JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TuneMode {
    InProcess,
    Spawn,
    Running,
}

/// Options of `authbench tune`.
#[derive(Debug, Clone)]
pub struct TuneOptions {
    /// SLO expressions, the `--threshold` syntax; all must hold.
    pub slos: Vec<String>,
    pub flows: u64,
    pub concurrency: usize,
    pub timeout: Duration,
    /// TCP connect timeout (capped at `timeout`).
    pub connect_timeout: Duration,
    pub scenario: ScenarioSource,
    /// `--var` / `AUTHBENCH_VAR_*`: variables for every template of the scenario.
    pub vars: Vec<(String, String)>,
    pub min_cost: u32,
    pub max_cost: u32,
    /// Allow recommending a cost below [`OWASP_MIN_COST`](crate::sweep::OWASP_MIN_COST).
    pub allow_weak: bool,
    pub hashes_per_flow: f64,
    pub hashing_threads: usize,
    /// Where the probes run.
    pub target: TuneTarget,
    /// `--http`: the HTTP version of every probe.
    pub http: crate::options::HttpVersion,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            slos: Vec::new(),
            flows: 20,
            concurrency: 20,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            scenario: ScenarioSource::Builtin,
            vars: Vec::new(),
            min_cost: 4,
            max_cost: 14,
            allow_weak: false,
            hashes_per_flow: 2.0,
            hashing_threads: crate::usage::cores(),
            target: TuneTarget::InProcess,
            http: crate::options::HttpVersion::Auto,
        }
    }
}

/// One run at one cost (or, for a running service, at one concurrency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Probe {
    /// The cost; 0 for a running service (its cost is not known).
    pub cost: u32,
    /// Flows in flight at once.
    #[serde(default)]
    pub concurrency: usize,
    /// Time of one hash at this cost, ms: measured here (in-process) or fitted from the
    /// probes' service times (spawned); `null` when not measurable.
    pub hash_ms: Option<f64>,
    /// Every SLO held.
    pub passed: bool,
    pub slos: Vec<ThresholdResult>,
    pub flow_p50_ms: Option<f64>,
    pub flow_p95_ms: Option<f64>,
    pub success_rate: f64,
    pub flows_per_s: f64,
    /// The run was interrupted.
    pub partial: bool,
    /// Each step's service time alone (the run's calibration flows).
    #[serde(default)]
    pub steps: Vec<StepService>,
    /// A flow's service time alone, ms.
    #[serde(default)]
    pub flow_service_ms: Option<f64>,
    /// Requests the service worked on at once (Little's law).
    #[serde(default)]
    pub effective_parallelism: Option<f64>,
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// In-process: hashing threads / (hashes per flow × hash time). Otherwise: effective
    /// parallelism / flow service time (a lower bound when the run did not saturate).
    #[serde(default)]
    pub capacity_flows_per_s: Option<f64>,
    /// What-if: the capacity if hashing used every core (spawned services that serialize).
    #[serde(default)]
    pub capacity_if_parallel_flows_per_s: Option<f64>,
}

/// The outcome of a tune; this struct is the JSON format (`authbench.tune/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tune {
    pub schema: String,
    pub tool: String,
    pub generated_at: String,
    /// Interrupted before the search ended: `recommended` is only the best seen so far.
    pub partial: bool,
    pub slos: Vec<String>,
    pub flows: u64,
    pub concurrency: usize,
    pub min_cost: u32,
    pub max_cost: u32,
    pub allow_weak: bool,
    /// The lowest cost searched: `min_cost`, or 10 without `allow_weak`.
    pub floor: u32,
    pub hashing_threads: usize,
    pub hashes_per_flow: f64,
    pub cores: usize,
    /// Every run, by cost.
    pub probes: Vec<Probe>,
    /// The highest cost that met every SLO; `null` when none did.
    pub recommended: Option<u32>,
    /// When nothing met the SLOs: what would, with the arithmetic.
    pub advice: Vec<String>,
    pub mode: TuneMode,
    /// The service's URL; `null` in-process.
    pub target: Option<String>,
    /// The `--spawn` template; `null` unless spawned.
    pub spawn: Option<String>,
    /// The fit of the spawned probes' service times to `a + b·2^cost`.
    pub fit: Option<HashFit>,
    /// A second run at the recommended cost: the recommendation holds when it passes too.
    pub confirmation: Option<Probe>,
    /// A running service: the highest concurrency probed at which every SLO held.
    pub meets_up_to_concurrency: Option<usize>,
}

/// Runs the tune: a cost search (in-process or spawned) or, for a running service, a
/// concurrency search. `stop` ends it early (partial).
pub async fn tune(
    opts: &TuneOptions,
    stop: impl Future<Output = ()>,
    progress: &mut dyn FnMut(&str),
) -> Result<Tune, SweepError> {
    if opts.slos.is_empty() {
        return Err(SweepError::Config(
            "give at least one --slo, e.g. --slo 'flow.p95<1s'".into(),
        ));
    }
    let (floor, max) =
        search_range(opts.min_cost, opts.max_cost, opts.allow_weak).map_err(SweepError::Config)?;
    match &opts.target {
        TuneTarget::InProcess => {}
        TuneTarget::Spawn(sp) => check_spawn(sp)?,
        TuneTarget::Running { target, .. } => check_target(target)?,
    }
    let scenario = crate::pipeline::load_scenario_with(&opts.scenario, &opts.vars)
        .map_err(SweepError::Prepare)?;
    let slos = crate::gate::parse_all(&opts.slos, &scenario.step_names())
        .map_err(|e| SweepError::Config(e.to_string()))?;
    let (tx, rx) = watch::channel(false);
    let mut outcome = drive_with_stop(stop, tx, async {
        match &opts.target {
            TuneTarget::Running { .. } => run_levels(opts, &slos, rx, progress).await,
            _ => run_search(opts, &slos, floor, max, rx, progress).await,
        }
    })
    .await?;
    outcome.probes.sort_by_key(|p| (p.cost, p.concurrency));
    let fit = match opts.target {
        TuneTarget::Spawn(_) => {
            let f = fit::fit(
                &outcome
                    .probes
                    .iter()
                    .filter(|p| !p.partial)
                    .map(|p| (p.cost, p.steps.clone()))
                    .collect::<Vec<_>>(),
            );
            for p in outcome
                .probes
                .iter_mut()
                .chain(outcome.confirmation.as_mut())
            {
                fill_spawned(p, &f);
            }
            Some(f)
        }
        _ => None,
    };
    let running = matches!(opts.target, TuneTarget::Running { .. });
    let advice = match (
        outcome.best,
        outcome.probes.iter().find(|p| p.cost == floor),
    ) {
        (None, Some(p)) if !outcome.partial && !running => {
            // A spawned service's threads are what it showed, not an assumption.
            let threads = match opts.target {
                TuneTarget::Spawn(_) => p
                    .effective_parallelism
                    .map_or(1, |x| (x.round() as usize).max(1)),
                _ => opts.hashing_threads,
            };
            advice(p, &slos, threads, opts.hashes_per_flow, opts.concurrency)
        }
        _ => Vec::new(),
    };
    let (mode, target, spawn) = match &opts.target {
        TuneTarget::InProcess => (TuneMode::InProcess, None, None),
        TuneTarget::Spawn(sp) => (
            TuneMode::Spawn,
            Some(sp.target.clone()),
            Some(match sp.api_key.as_deref() {
                Some(k) if !k.is_empty() => sp.command.replace(k, "<api-key>"),
                _ => sp.command.clone(),
            }),
        ),
        TuneTarget::Running { target, .. } => (TuneMode::Running, Some(target.clone()), None),
    };
    Ok(Tune {
        schema: SCHEMA.into(),
        tool: format!("authbench {}", env!("CARGO_PKG_VERSION")),
        generated_at: super::now_rfc3339(),
        partial: outcome.partial,
        slos: opts.slos.clone(),
        flows: opts.flows,
        concurrency: opts.concurrency,
        min_cost: opts.min_cost,
        max_cost: opts.max_cost,
        allow_weak: opts.allow_weak,
        floor,
        hashing_threads: opts.hashing_threads,
        hashes_per_flow: opts.hashes_per_flow,
        cores: crate::usage::cores(),
        probes: outcome.probes,
        recommended: if running { None } else { outcome.best },
        advice,
        mode,
        target,
        spawn,
        fit,
        confirmation: outcome.confirmation,
        meets_up_to_concurrency: if running {
            outcome.best.map(|c| c as usize)
        } else {
            None
        },
    })
}

/// A spawned probe's hash time (fitted), capacity from its parallelism, and what-if.
fn fill_spawned(p: &mut Probe, f: &HashFit) {
    p.hash_ms = f.hash_ms(p.cost);
    p.capacity_flows_per_s = match (p.effective_parallelism, p.flow_service_ms) {
        (Some(x), Some(s)) if x > 0.0 && s > 0.0 => Some(x / (s / 1e3)),
        _ => None,
    };
    p.capacity_if_parallel_flows_per_s = match (
        f.flow_hash_ms(p.cost),
        p.flow_service_ms,
        p.effective_parallelism,
    ) {
        (Some(h), Some(s), Some(x)) => what_if_capacity(
            p.verdict,
            h,
            (s - h).max(0.0),
            x,
            p.capacity_flows_per_s,
            crate::usage::cores(),
        ),
        _ => None,
    };
}

/// What a search found: the best passing value (a cost, or a running service's
/// concurrency), the probes, the confirming run, whether it was interrupted.
struct Outcome {
    best: Option<u32>,
    probes: Vec<Probe>,
    confirmation: Option<Probe>,
    partial: bool,
}

/// One run at `cost` and `concurrency` against the tune's target, turned into a probe.
/// `None` when stopped before the run started.
async fn probe(
    opts: &TuneOptions,
    slos: &[Threshold],
    cost: u32,
    concurrency: usize,
    stop: &watch::Receiver<bool>,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<Probe>, SweepError> {
    let run_opts = in_process_run(
        cost,
        opts.flows,
        concurrency,
        (opts.timeout, opts.connect_timeout),
        (&opts.scenario, &opts.vars),
        opts.http,
    );
    let (report, hash_ms): (Report, Option<f64>) = match &opts.target {
        TuneTarget::InProcess => {
            progress(&format!("cost {cost}: timing bcrypt alone"));
            let hash_ms = super::measure_hash_ms(cost).await?;
            if *stop.borrow() {
                return Ok(None);
            }
            progress(&format!(
                "cost {cost}: {hash_ms:.1} ms per hash; running {} flows",
                opts.flows
            ));
            let r = crate::run(&run_opts, stop_future(stop))
                .await
                .map_err(|e| SweepError::Run { cost, source: e })?
                .report;
            (r, Some(hash_ms))
        }
        TuneTarget::Spawn(sp) => match run_spawned(sp, cost, run_opts, stop, progress).await? {
            Some(r) => (r, None),
            None => return Ok(None),
        },
        TuneTarget::Running {
            target,
            api_key,
            tls,
        } => {
            progress(&format!(
                "concurrency {concurrency}: running {} flows",
                opts.flows
            ));
            let o = RunOptions {
                target: Some(target.clone()),
                api_key: api_key.clone(),
                tls: tls.clone(),
                ..run_opts
            };
            let r = crate::run(&o, stop_future(stop))
                .await
                .map_err(|e| SweepError::Level {
                    concurrency,
                    source: e,
                })?
                .report;
            (r, None)
        }
    };
    let results: Vec<ThresholdResult> = slos.iter().map(|s| s.evaluate(&report)).collect();
    let lat = |v: f64| (report.flow.count > 0).then_some(v);
    let d = report.diagnosis.as_ref();
    let verdict = d.map(|d| crate::diagnosis::verdict(d, &report));
    let effective_parallelism = d.map(|d| d.effective_parallelism);
    let flow_service_ms = d.map(|d| d.flow_service_time_ms);
    let capacity_flows_per_s = match (hash_ms, effective_parallelism, flow_service_ms) {
        (Some(h), _, _) => capacity(opts.hashing_threads, opts.hashes_per_flow, h / 1e3),
        (None, Some(x), Some(s)) if x > 0.0 && s > 0.0 => Some(x / (s / 1e3)),
        _ => None,
    };
    let p = Probe {
        cost,
        concurrency,
        hash_ms,
        passed: !report.partial && results.iter().all(|x| x.passed),
        slos: results,
        flow_p50_ms: lat(report.flow.p50_ms),
        flow_p95_ms: lat(report.flow.p95_ms),
        success_rate: report.summary.success_rate,
        flows_per_s: report.summary.flows_per_s,
        partial: report.partial,
        steps: d
            .map(|d| {
                d.steps
                    .iter()
                    .map(|s| StepService {
                        name: s.name.clone(),
                        service_ms: s.service_time_ms,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        flow_service_ms,
        effective_parallelism,
        verdict,
        capacity_flows_per_s,
        capacity_if_parallel_flows_per_s: None,
    };
    let at = match opts.target {
        TuneTarget::Running { .. } => format!("concurrency {concurrency}"),
        _ => format!("cost {cost}"),
    };
    progress(&format!(
        "{at}: {}",
        if p.passed {
            "meets the SLO"
        } else {
            "misses the SLO"
        }
    ));
    Ok(Some(p))
}

async fn run_search(
    opts: &TuneOptions,
    slos: &[Threshold],
    floor: u32,
    max: u32,
    stop: watch::Receiver<bool>,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, SweepError> {
    let mut search = Search::new(floor, max);
    let mut probes = Vec::new();
    let stopped = |search: &Search, probes: Vec<Probe>| Outcome {
        best: search.best(),
        probes,
        confirmation: None,
        partial: true,
    };
    while let Some(cost) = search.next() {
        if *stop.borrow() {
            return Ok(stopped(&search, probes));
        }
        let Some(p) = probe(opts, slos, cost, opts.concurrency, &stop, progress).await? else {
            return Ok(stopped(&search, probes));
        };
        let interrupted = p.partial;
        // An interrupted run proves nothing either way: it is kept, not recorded.
        if !interrupted {
            search.record(cost, p.passed);
        }
        probes.push(p);
        if interrupted {
            return Ok(stopped(&search, probes));
        }
    }
    // No cost met the SLO: the advice needs the hash time, and a spawned service's is
    // fitted over the costs probed, which takes at least three (fit::MIN_COSTS).
    if search.best().is_none() && matches!(opts.target, TuneTarget::Spawn(_)) {
        let extra: Vec<u32> = (floor..=max)
            .filter(|c| !probes.iter().any(|p: &Probe| p.cost == *c))
            .collect();
        let mut extra = extra.into_iter();
        while probes.iter().filter(|p| !p.partial).count() < fit::MIN_COSTS {
            let Some(cost) = extra.next() else { break };
            if *stop.borrow() {
                return Ok(stopped(&search, probes));
            }
            progress(&format!(
                "cost {cost}: measured for the hash time (the fit needs {} costs)",
                fit::MIN_COSTS
            ));
            let Some(p) = probe(opts, slos, cost, opts.concurrency, &stop, progress).await? else {
                return Ok(stopped(&search, probes));
            };
            let interrupted = p.partial;
            probes.push(p);
            if interrupted {
                return Ok(stopped(&search, probes));
            }
        }
    }
    // The recommendation is run once more: a pass on the edge by noise shows here.
    let confirmation = match search.best() {
        Some(c) if !*stop.borrow() => {
            progress(&format!("cost {c}: confirming"));
            probe(opts, slos, c, opts.concurrency, &stop, progress).await?
        }
        _ => None,
    };
    let partial = *stop.borrow() || confirmation.as_ref().is_some_and(|p| p.partial);
    Ok(Outcome {
        best: search.best(),
        probes,
        confirmation,
        partial,
    })
}

/// A running service: the SLOs at rising concurrency, until one misses.
async fn run_levels(
    opts: &TuneOptions,
    slos: &[Threshold],
    stop: watch::Receiver<bool>,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, SweepError> {
    let mut probes = Vec::new();
    let mut best = None;
    for c in levels(opts.concurrency) {
        if *stop.borrow() {
            break;
        }
        let Some(p) = probe(opts, slos, 0, c, &stop, progress).await? else {
            break;
        };
        let (passed, partial) = (p.passed, p.partial);
        probes.push(p);
        if partial || !passed {
            break;
        }
        best = Some(u32::try_from(c).unwrap_or(u32::MAX));
    }
    Ok(Outcome {
        best,
        probes,
        confirmation: None,
        partial: *stop.borrow(),
    })
}
