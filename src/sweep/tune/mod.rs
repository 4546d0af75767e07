//! `authbench tune`: the highest bcrypt cost that meets an SLO on this machine.
//!
//! Each +1 in cost doubles the time of a hash, so whether a cost meets a latency or
//! throughput SLO is monotonic in the cost: a binary search over the range finds the
//! highest passing cost in about log2(range) probes, each a real run against the
//! in-process server. The search itself ([`Search`], [`find_highest`]) does no I/O, so it
//! is tested with a fake measurement.
//!
//! It never goes below OWASP's minimum of 10 unless `--allow-weak` says so: when 10 misses
//! the SLO, the answer is not a weaker hash but more hashing capacity, and [`advice`]
//! prints the arithmetic that says how much. Its `report` module renders and writes the
//! result ([`terminal`], [`markdown`], [`write_tune`]).

mod report;

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::runner::{drive_with_stop, in_process_run, stop_future};
use super::{capacity, SweepError, OWASP_MIN_COST};
use crate::gate::{Metric, Op, Threshold, ThresholdResult};
use crate::options::ScenarioSource;

pub use report::{markdown, terminal, write_tune};

/// The version of the tune JSON format.
pub const SCHEMA: &str = "authbench.tune/1";

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
    pub min_cost: u32,
    pub max_cost: u32,
    /// Allow recommending a cost below [`OWASP_MIN_COST`].
    pub allow_weak: bool,
    pub hashes_per_flow: f64,
    pub hashing_threads: usize,
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
            min_cost: 4,
            max_cost: 14,
            allow_weak: false,
            hashes_per_flow: 2.0,
            hashing_threads: crate::cores(),
        }
    }
}

/// The lowest cost the search may try: `min_cost`, raised to 10 without `allow_weak`.
/// An error when that leaves nothing to search.
pub fn search_range(min_cost: u32, max_cost: u32, allow_weak: bool) -> Result<(u32, u32), String> {
    if !super::COST_RANGE.contains(&min_cost) || !super::COST_RANGE.contains(&max_cost) {
        return Err("--min-cost and --max-cost must be within bcrypt's 4..=31".into());
    }
    let floor = if allow_weak {
        min_cost
    } else {
        min_cost.max(OWASP_MIN_COST)
    };
    if max_cost < floor {
        return Err(if !allow_weak && max_cost < OWASP_MIN_COST {
            format!(
                "--max-cost {max_cost} is below the OWASP minimum of {OWASP_MIN_COST}; pass --allow-weak to search below it"
            )
        } else {
            format!("--max-cost {max_cost} is below --min-cost {min_cost}")
        });
    }
    Ok((floor, max_cost))
}

/// One run at one cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub cost: u32,
    /// Median time of one hash at this cost here, ms.
    pub hash_ms: f64,
    /// Every SLO held.
    pub passed: bool,
    pub slos: Vec<ThresholdResult>,
    pub flow_p50_ms: Option<f64>,
    pub flow_p95_ms: Option<f64>,
    pub success_rate: f64,
    pub flows_per_s: f64,
    /// The run was interrupted.
    pub partial: bool,
}

/// A binary search for the highest passing cost in `lo..=hi`, as a state machine: ask
/// [`Search::next`] which cost to run, tell [`Search::record`] whether it passed.
#[derive(Debug, Clone)]
pub struct Search {
    lo: u32,
    hi: u32,
    best: Option<u32>,
}

impl Search {
    pub fn new(lo: u32, hi: u32) -> Search {
        Search { lo, hi, best: None }
    }

    /// The next cost to probe; `None` when the answer is known. Takes the lower middle:
    /// low costs are the cheap probes.
    pub fn next(&self) -> Option<u32> {
        (self.lo <= self.hi).then(|| self.lo + (self.hi - self.lo) / 2)
    }

    pub fn record(&mut self, cost: u32, passed: bool) {
        if passed {
            self.best = Some(self.best.map_or(cost, |b| b.max(cost)));
            self.lo = cost + 1;
        } else if cost == 0 {
            self.hi = 0;
            self.lo = 1;
        } else {
            self.hi = cost - 1;
        }
    }

    /// The highest cost that passed.
    pub fn best(&self) -> Option<u32> {
        self.best
    }
}

/// Runs the search with a synchronous `measure`; returns the highest passing cost and the
/// probes, by cost.
pub fn find_highest(
    lo: u32,
    hi: u32,
    mut measure: impl FnMut(u32) -> Probe,
) -> (Option<u32>, Vec<Probe>) {
    let mut search = Search::new(lo, hi);
    let mut probes = Vec::new();
    while let Some(cost) = search.next() {
        let p = measure(cost);
        search.record(cost, p.passed);
        probes.push(p);
    }
    probes.sort_by_key(|p| p.cost);
    (search.best(), probes)
}

fn secs(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0} s")
    } else if v >= 1.0 {
        format!("{v:.2} s")
    } else {
        format!("{v:.3} s")
    }
}

/// What would meet the SLOs when `probe` (the lowest cost allowed) does not: the capacity
/// arithmetic with the measured hash time, and the levers that change its inputs.
pub fn advice(
    probe: &Probe,
    slos: &[Threshold],
    threads: usize,
    hashes_per_flow: f64,
    concurrency: usize,
) -> Vec<String> {
    let t = probe.hash_ms / 1e3;
    let mut out = Vec::new();
    let Some(cap) = capacity(threads, hashes_per_flow, t) else {
        return out;
    };
    let burst = concurrency as f64 * hashes_per_flow * t / threads as f64;
    out.push(format!(
        "max flows/s ≈ hashing threads / (hashes per flow × time per hash) = {threads} thread{} / ({hashes_per_flow} × {}) ≈ {cap:.1} flows/s at cost {}; \
         {concurrency} flows at once need ≈ {} of hashing before the last completes",
        if threads == 1 { "" } else { "s" },
        secs(t),
        probe.cost,
        secs(burst),
    ));
    out.push(
        "hash off the event loop: if your service calls bcrypt inline on its event loop (one async worker), every request waits behind every hash in progress; \
         run hashing on a pool of about one thread per core (authbench's reference server does, so its figures already assume it)"
            .into(),
    );
    let one_flow = hashes_per_flow * t;
    for slo in slos {
        match (&slo.metric, slo.op) {
            (Metric::Latency { step: None, .. }, Op::Lt | Op::Le) => {
                let limit = slo.limit / 1e3;
                if one_flow >= limit {
                    out.push(format!(
                        "`{}`: one flow alone needs {hashes_per_flow} × {} = {} of hashing, more than the limit: no number of cores or instances meets it at cost {}; the SLO is tighter than a safe hash allows",
                        slo.expr, secs(t), secs(one_flow), probe.cost
                    ));
                    continue;
                }
                let need = (concurrency as f64 * one_flow / limit).ceil();
                let per_instance = (limit * threads as f64 / one_flow).floor();
                out.push(format!(
                    "`{}`: more cores or instances: {concurrency} flows within {} need ≈ {concurrency} × {} / {} ≈ {need:.0} hashing threads (this machine has {threads}), e.g. {:.0} instances like this one",
                    slo.expr,
                    secs(limit),
                    secs(one_flow),
                    secs(limit),
                    (need / threads as f64).ceil(),
                ));
                out.push(format!(
                    "`{}`: lower concurrency per instance: at most ≈ {threads} × {} / {} ≈ {per_instance:.0} flows in flight per instance (now {concurrency}); queue or spread the rest",
                    slo.expr,
                    secs(limit),
                    secs(one_flow),
                ));
            }
            (Metric::Throughput, Op::Gt | Op::Ge) => {
                let need = (slo.limit * one_flow).ceil();
                out.push(format!(
                    "`{}`: {} flows/s need ≈ {} × {hashes_per_flow} × {} ≈ {need:.0} hashing threads (this machine has {threads}): more cores or instances",
                    slo.expr,
                    slo.limit,
                    slo.limit,
                    secs(t),
                ));
            }
            _ => {}
        }
    }
    out
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
}

/// Runs the search against the in-process server. `stop` ends it early (partial).
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
    let scenario = crate::load_scenario(&opts.scenario).map_err(|e| SweepError::Run {
        cost: floor,
        source: e,
    })?;
    let slos = crate::gate::parse_all(&opts.slos, &scenario.step_names())
        .map_err(|e| SweepError::Config(e.to_string()))?;
    let (tx, rx) = watch::channel(false);
    let (search, mut probes, partial) =
        drive_with_stop(stop, tx, run_search(opts, &slos, floor, max, rx, progress)).await?;
    probes.sort_by_key(|p| p.cost);
    let advice = match (search.best(), probes.iter().find(|p| p.cost == floor)) {
        (None, Some(p)) if !partial => advice(
            p,
            &slos,
            opts.hashing_threads,
            opts.hashes_per_flow,
            opts.concurrency,
        ),
        _ => Vec::new(),
    };
    Ok(Tune {
        schema: SCHEMA.into(),
        tool: format!("authbench {}", env!("CARGO_PKG_VERSION")),
        generated_at: super::now_rfc3339(),
        partial,
        slos: opts.slos.clone(),
        flows: opts.flows,
        concurrency: opts.concurrency,
        min_cost: opts.min_cost,
        max_cost: opts.max_cost,
        allow_weak: opts.allow_weak,
        floor,
        hashing_threads: opts.hashing_threads,
        hashes_per_flow: opts.hashes_per_flow,
        cores: crate::cores(),
        probes,
        recommended: search.best(),
        advice,
    })
}

async fn run_search(
    opts: &TuneOptions,
    slos: &[Threshold],
    floor: u32,
    max: u32,
    stop: watch::Receiver<bool>,
    progress: &mut dyn FnMut(&str),
) -> Result<(Search, Vec<Probe>, bool), SweepError> {
    let mut search = Search::new(floor, max);
    let mut probes = Vec::new();
    while let Some(cost) = search.next() {
        if *stop.borrow() {
            return Ok((search, probes, true));
        }
        progress(&format!("cost {cost}: timing bcrypt alone"));
        let hash_ms = super::measure_hash_ms(cost).await?;
        if *stop.borrow() {
            return Ok((search, probes, true));
        }
        progress(&format!(
            "cost {cost}: {hash_ms:.1} ms per hash; running {} flows",
            opts.flows
        ));
        let run_opts = in_process_run(
            cost,
            opts.flows,
            opts.concurrency,
            (opts.timeout, opts.connect_timeout),
            &opts.scenario,
        );
        let r = crate::run(&run_opts, stop_future(&stop))
            .await
            .map_err(|e| SweepError::Run { cost, source: e })?
            .report;
        let results: Vec<ThresholdResult> = slos.iter().map(|s| s.evaluate(&r)).collect();
        let lat = |v: f64| (r.flow.count > 0).then_some(v);
        let probe = Probe {
            cost,
            hash_ms,
            passed: !r.partial && results.iter().all(|x| x.passed),
            slos: results,
            flow_p50_ms: lat(r.flow.p50_ms),
            flow_p95_ms: lat(r.flow.p95_ms),
            success_rate: r.summary.success_rate,
            flows_per_s: r.summary.flows_per_s,
            partial: r.partial,
        };
        progress(&format!(
            "cost {cost}: {}",
            if probe.passed {
                "meets the SLO"
            } else {
                "misses the SLO"
            }
        ));
        let interrupted = probe.partial;
        // An interrupted run proves nothing either way: it is kept, not recorded.
        if !interrupted {
            search.record(cost, probe.passed);
        }
        probes.push(probe);
        if interrupted {
            return Ok((search, probes, true));
        }
    }
    Ok((search, probes, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A probe whose flow p95 is what a queue of `flows × 2` hashes on 2 threads gives.
    fn fake(cost: u32, slo_ms: f64) -> Probe {
        let hash_ms = 0.8 * 2f64.powi(cost as i32 - 4);
        let p95 = 20.0 * 2.0 * hash_ms / 2.0;
        Probe {
            cost,
            hash_ms,
            passed: p95 < slo_ms,
            slos: Vec::new(),
            flow_p50_ms: Some(p95 / 2.0),
            flow_p95_ms: Some(p95),
            success_rate: 1.0,
            flows_per_s: 1.0,
            partial: false,
        }
    }

    #[test]
    fn search_visits_few_costs_and_finds_the_edge() {
        for edge in 4..=14 {
            let mut seen = Vec::new();
            let (best, probes) = find_highest(4, 14, |c| {
                seen.push(c);
                let mut p = fake(c, 0.0);
                p.passed = c <= edge;
                p
            });
            assert_eq!(best, Some(edge));
            assert!(probes.len() <= 4, "{seen:?}");
        }
    }

    #[test]
    fn lower_bound_edges() {
        assert_eq!(Search::new(5, 4).next(), None);
        let mut s = Search::new(0, 0);
        s.record(0, false);
        assert_eq!(s.next(), None);
    }

    #[test]
    fn range_respects_owasp() {
        assert_eq!(search_range(4, 14, false), Ok((10, 14)));
        assert_eq!(search_range(4, 14, true), Ok((4, 14)));
        assert_eq!(search_range(11, 14, false), Ok((11, 14)));
        assert!(search_range(4, 8, false)
            .unwrap_err()
            .contains("--allow-weak"));
        assert!(search_range(9, 8, true).is_err());
        assert!(search_range(3, 8, true).is_err());
        assert!(search_range(4, 32, true).is_err());
    }

    #[test]
    fn advice_has_the_arithmetic() {
        let slo = Threshold::parse("flow.p95<1s").unwrap();
        let mut p = fake(10, 0.0);
        p.hash_ms = 235.0;
        let a = advice(&p, &[slo], 2, 2.0, 20);
        let all = a.join("\n");
        assert!(
            all.contains("2 threads / (2 × 0.235 s) ≈ 4.3 flows/s"),
            "{all}"
        );
        assert!(all.contains("need ≈ 4.70 s of hashing"), "{all}");
        assert!(all.contains("hash off the event loop"), "{all}");
        assert!(all.contains("lower concurrency per instance"), "{all}");
        assert!(
            all.contains("hashing threads (this machine has 2)"),
            "{all}"
        );
        let tight = Threshold::parse("flow.p95<1us").unwrap();
        let all = advice(&p, &[tight], 2, 2.0, 20).join("\n");
        assert!(all.contains("no number of cores"), "{all}");
    }
}
