//! Driving a capacity search: per cost, start the target (the in-process reference server
//! at that cost, the user's service with `--spawn`, or nothing for a running `--target`),
//! ask [`Search`] for rates, run each as a [`step`](super::step) within the budget, and
//! gather the [`Capacity`] result. Renders nothing and writes no file.

use std::future::Future;
use std::time::Instant;

use tokio::sync::watch;

use super::search::{Bounds, End, Next, Search};
use super::step::{self, StepTarget};
use super::{
    Capacity, CapacityConfig, CapacityError, CapacityOptions, CostSearch, SCHEMA, SUSTAIN_FRACTION,
};
use crate::sweep::{spawn, SweepError, COST_RANGE};

/// Runs the search (once per cost with `costs`). `stop` resolving ends the current step
/// and the search; the result is then marked partial. `progress` gets a line per step.
pub async fn capacity(
    opts: &CapacityOptions,
    stop: impl Future<Output = ()>,
    progress: &mut dyn FnMut(&str),
) -> Result<Capacity, CapacityError> {
    check(opts)?;
    let (scenario_name, steps) =
        scenario_steps(&opts.scenario, &opts.vars).map_err(|e| CapacityError::Run {
            rate: 0.0,
            source: e,
        })?;
    for t in &opts.slo {
        t.check_steps(&steps)
            .map_err(|e| CapacityError::Config(format!("--slo: {e}")))?;
    }
    let (tx, rx) = watch::channel(false);
    let searches =
        crate::sweep::drive_with_stop(stop, tx, searches(opts, rx.clone(), progress)).await?;
    let partial = *rx.borrow() || searches.iter().any(|s| s.end == End::Interrupted);
    // The gate reads the weakest cost: a regression at any one of them fails it.
    let worst = searches
        .iter()
        .min_by(|a, b| a.sustainable_rate.total_cmp(&b.sustainable_rate));
    let sustainable_rate = worst.map_or(0.0, |s| s.sustainable_rate);
    let thresholds = opts
        .thresholds
        .iter()
        .map(|t| t.evaluate(sustainable_rate))
        .collect();
    Ok(Capacity {
        schema: SCHEMA.into(),
        tool: format!("authbench {}", env!("CARGO_PKG_VERSION")),
        generated_at: crate::sweep::now_rfc3339(),
        sustainable_rate,
        first_failing_rate: worst.and_then(|s| s.first_failing_rate),
        broken_by: worst.map(|s| s.broken_by.clone()).unwrap_or_default(),
        config: CapacityConfig {
            target: opts
                .target
                .clone()
                .unwrap_or_else(|| "in-process reference server".into()),
            in_process_server: opts.target.is_none(),
            scenario: scenario_name,
            slo: opts.slo_text.clone(),
            start_rate: opts.start_rate,
            max_rate: opts.max_rate,
            precision: opts.precision,
            warmup_s: opts.warmup.as_secs_f64(),
            hold_s: opts.hold.as_secs_f64(),
            hold_flows: opts.hold_flows,
            max_duration_s: opts.max_duration.as_secs_f64(),
            max_in_flight: opts.max_in_flight,
            sustain_fraction: SUSTAIN_FRACTION,
        },
        searches,
        thresholds,
        partial,
    })
}

/// The scenario's name and step names; a mix's steps are `scenario:step` (its SLO is the
/// whole's).
fn scenario_steps(
    src: &crate::options::ScenarioSource,
    vars: &[(String, String)],
) -> Result<(String, Vec<String>), crate::error::RunError> {
    if let crate::options::ScenarioSource::File(p) = src {
        if crate::mix::is_mix(src) {
            let m = crate::scenario::mix::load_with_vars(p, vars)?;
            let steps = m
                .parts
                .iter()
                .flat_map(|part| {
                    let name = part.scenario.name.clone();
                    part.scenario
                        .step_names()
                        .into_iter()
                        .map(move |s| format!("{name}:{s}"))
                })
                .collect();
            return Ok((m.name, steps));
        }
    }
    let s = crate::pipeline::load_scenario_with(src, vars)?;
    Ok((s.name.clone(), s.step_names()))
}

/// Everything that can be wrong before any load.
fn check(opts: &CapacityOptions) -> Result<(), CapacityError> {
    let bad = |m: &str| Err(CapacityError::Config(m.into()));
    if opts.slo.is_empty() {
        return bad("--slo is required: e.g. 'flow.p99<500ms,success>=99.9%'");
    }
    if !(opts.start_rate > 0.0 && opts.start_rate.is_finite()) {
        return bad("--start-rate must be above 0");
    }
    if opts.max_rate < opts.start_rate {
        return bad("--max-rate must be at least --start-rate");
    }
    if !(opts.precision > 0.0 && opts.precision < 1.0) {
        return bad("--precision must be between 0 and 100% (e.g. 5%)");
    }
    if opts.hold.is_zero() {
        return bad("--step must be longer than 0s");
    }
    if opts.spawn.is_some() && opts.costs.is_empty() {
        return bad("--spawn starts the service per cost: give --costs too");
    }
    if opts.target.is_some() && opts.spawn.is_none() && !opts.costs.is_empty() {
        return bad("--costs with --target needs --spawn: a running service's cost cannot change");
    }
    if let Some(c) = opts.costs.iter().find(|c| !COST_RANGE.contains(c)) {
        return bad(&format!("cost {c} is outside bcrypt's range 4..=31"));
    }
    if let Some(sp) = &opts.spawn {
        crate::sweep::check_spawn(sp).map_err(CapacityError::Sweep)?;
    }
    Ok(())
}

async fn searches(
    opts: &CapacityOptions,
    stop: watch::Receiver<bool>,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<CostSearch>, CapacityError> {
    let costs: Vec<Option<u32>> = match (&opts.target, opts.costs.is_empty()) {
        (Some(_), true) => vec![None],
        (None, true) => vec![Some(opts.cost)],
        (_, false) => opts.costs.iter().copied().map(Some).collect(),
    };
    let budget_start = Instant::now();
    let mut out = Vec::new();
    for cost in costs {
        if *stop.borrow() {
            break;
        }
        let search = match (&opts.target, &opts.spawn, cost) {
            (None, _, Some(cost)) => in_process(opts, cost, &stop, progress, budget_start).await?,
            (Some(_), Some(sp), Some(cost)) => {
                spawned(opts, sp, cost, &stop, progress, budget_start).await?
            }
            (Some(t), _, _) => {
                let target = StepTarget {
                    base_url: t.clone(),
                    api_key: opts.api_key.clone(),
                    tls: opts.tls.clone(),
                };
                search_at(opts, &target, None, None, &stop, progress, budget_start).await?
            }
            (None, _, None) => unreachable!("an in-process search always has a cost"),
        };
        let interrupted = search.end == End::Interrupted;
        out.push(search);
        if interrupted {
            break;
        }
    }
    Ok(out)
}

/// One search against the in-process reference server at `cost`, started for it.
async fn in_process(
    opts: &CapacityOptions,
    cost: u32,
    stop: &watch::Receiver<bool>,
    progress: &mut dyn FnMut(&str),
    budget_start: Instant,
) -> Result<CostSearch, CapacityError> {
    progress(&format!("cost {cost}: timing bcrypt alone"));
    // Measured before the load, never during it: both would compete for the cores.
    let hash_ms = crate::sweep::measure_hash_ms(cost).await.ok();
    let key = opts
        .api_key
        .clone()
        .unwrap_or_else(crate::pipeline::random_key);
    let server = crate::pipeline::start_reference_server(crate::server::ServerConfig::new(
        cost,
        key.clone(),
    ))
    .map_err(|source| CapacityError::Run { rate: 0.0, source })?;
    let target = StepTarget {
        base_url: server.base_url(),
        api_key: Some(key),
        tls: Default::default(),
    };
    let r = search_at(
        opts,
        &target,
        Some(cost),
        hash_ms,
        stop,
        progress,
        budget_start,
    )
    .await;
    server.shutdown();
    r
}

/// One search against the user's service, started at `cost` and stopped after it.
async fn spawned(
    opts: &CapacityOptions,
    sp: &spawn::SpawnOptions,
    cost: u32,
    stop: &watch::Receiver<bool>,
    progress: &mut dyn FnMut(&str),
    budget_start: Instant,
) -> Result<CostSearch, CapacityError> {
    let command = sp.command.replace("{cost}", &cost.to_string());
    progress(&format!("cost {cost}: starting `{command}`"));
    let spawn_err = |source| CapacityError::Sweep(SweepError::Spawn { cost, source });
    let tls = crate::tls::for_target(&sp.target, &sp.tls, &[])
        .map_err(|e| CapacityError::Config(e.to_string()))?;
    // The guard kills the whole process group on every way out of this function.
    let mut group = spawn::ProcessGroup::start(&command).map_err(spawn_err)?;
    let ready_url = format!(
        "{}/{}",
        sp.target.trim_end_matches('/'),
        sp.ready_path.trim_start_matches('/')
    );
    let mut stop_rx = stop.clone();
    let ready = spawn::wait_ready(
        &mut group,
        &ready_url,
        sp.ready_timeout,
        &mut stop_rx,
        tls.as_ref(),
    )
    .await
    .map_err(spawn_err)?;
    if ready == spawn::Readiness::Stopped {
        group.stop(spawn::STOP_GRACE).await;
        return Ok(empty(Some(cost), None, End::Interrupted, 0.0));
    }
    let target = StepTarget {
        base_url: sp.target.clone(),
        api_key: sp.api_key.clone(),
        tls: sp.tls.clone(),
    };
    let r = search_at(
        opts,
        &target,
        Some(cost),
        sp.hash_time_ms,
        stop,
        progress,
        budget_start,
    )
    .await;
    group.stop(spawn::STOP_GRACE).await;
    r
}

fn empty(cost: Option<u32>, hash_ms: Option<f64>, end: End, elapsed_s: f64) -> CostSearch {
    CostSearch {
        cost,
        hash_ms,
        sustainable_rate: 0.0,
        first_failing_rate: None,
        broken_by: Vec::new(),
        end,
        elapsed_s,
        steps: Vec::new(),
    }
}

/// The search at one target: steps until the search ends, the budget would be exceeded
/// by the next step, or `stop`.
async fn search_at(
    opts: &CapacityOptions,
    target: &StepTarget,
    cost: Option<u32>,
    hash_ms: Option<f64>,
    stop: &watch::Receiver<bool>,
    progress: &mut dyn FnMut(&str),
    budget_start: Instant,
) -> Result<CostSearch, CapacityError> {
    let started = Instant::now();
    let label = cost.map_or_else(String::new, |c| format!("cost {c}: "));
    let mut search = Search::new(Bounds {
        start: opts.start_rate,
        max: opts.max_rate,
        min: opts.start_rate / 64.0,
        growth: 2.0,
        precision: opts.precision,
    });
    let mut steps = Vec::new();
    let end = loop {
        if *stop.borrow() {
            break End::Interrupted;
        }
        let rate = match search.next() {
            Next::Done(end) => break end,
            Next::Try(r) => r,
        };
        if budget_start.elapsed() + step::step_expected(opts, rate) > opts.max_duration
            && !steps.is_empty()
        {
            break End::Budget;
        }
        progress(&format!(
            "{label}offering {}/s for {:.0}s",
            super::report::fmt_rate(rate),
            (opts.warmup + step::hold_for(opts, rate)).as_secs_f64()
        ));
        let Some(row) = step::run_step(opts, target, rate, stop).await? else {
            break End::Interrupted;
        };
        progress(&format!(
            "{label}{}/s: {}",
            super::report::fmt_rate(rate),
            if row.passed {
                format!(
                    "sustained ({}/s completed)",
                    super::report::fmt_rate(row.achieved)
                )
            } else {
                format!("broke: {}", row.broken_by.join("; "))
            }
        ));
        search.record(rate, row.passed);
        steps.push(row);
    };
    let sustainable_rate = search.pass.unwrap_or(0.0);
    let failing = search.fail;
    let broken_by = failing
        .and_then(|f| steps.iter().find(|s| s.offered == f && !s.passed))
        .map(|s| s.broken_by.clone())
        .unwrap_or_default();
    Ok(CostSearch {
        cost,
        hash_ms,
        sustainable_rate,
        first_failing_rate: failing,
        broken_by,
        end,
        elapsed_s: started.elapsed().as_secs_f64(),
        steps,
    })
}
