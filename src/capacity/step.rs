//! One step of a capacity search: a constant open-loop rate held against the target
//! (through [`crate::run`], or [`crate::mix::run`] for a mix, so every figure is the run's
//! own), and its verdict: the SLO met, the rate achieved, the backlog drained.

use std::time::Duration;

use tokio::sync::watch;

use super::{CapacityError, CapacityOptions, StepRow, SUSTAIN_FRACTION};
use crate::options::{RunOptions, TlsOptions};
use crate::plan::{Arrival, LoadModel, Plan, Stage};
use crate::report::Report;

/// Where the steps of one search send their load.
#[derive(Debug, Clone)]
pub(super) struct StepTarget {
    pub base_url: String,
    pub api_key: Option<String>,
    pub tls: TlsOptions,
}

/// How long a step holds its rate after the warm-up: `hold`, or longer when that many
/// seconds would start fewer than `hold_flows` flows.
pub(super) fn hold_for(opts: &CapacityOptions, rate: f64) -> Duration {
    let for_flows = Duration::from_secs_f64((opts.hold_flows as f64 / rate).min(3600.0));
    opts.hold.max(for_flows)
}

/// After arrivals stop, how long flows in flight may take to finish: a backlog that
/// outlasts this means the rate was not sustained.
fn drain_for(opts: &CapacityOptions, hold: Duration) -> Duration {
    hold.max(Duration::from_secs(5))
        .min(opts.timeout + Duration::from_secs(1))
}

/// The most one step may take (its deadline), calibration included: past it, the flows
/// still in flight are cut off and counted as a backlog.
pub(super) fn step_bound(opts: &CapacityOptions, rate: f64) -> Duration {
    let hold = hold_for(opts, rate);
    calibration_allowance(opts) + opts.warmup + hold + drain_for(opts, hold)
}

/// What one step is expected to take when it sustains its rate (for the budget): the
/// warm-up, the hold and a second for the calibration and the last flows.
pub(super) fn step_expected(opts: &CapacityOptions, rate: f64) -> Duration {
    opts.warmup + hold_for(opts, rate) + Duration::from_secs(1)
}

fn calibration_allowance(opts: &CapacityOptions) -> Duration {
    opts.timeout.min(Duration::from_secs(5)) * opts.calibration_flows as u32
}

/// The run options of one step at `rate`.
fn run_options(opts: &CapacityOptions, target: &StepTarget, rate: f64) -> RunOptions {
    let hold = hold_for(opts, rate);
    RunOptions {
        target: Some(target.base_url.clone()),
        api_key: target.api_key.clone(),
        tls: target.tls.clone(),
        http: opts.http,
        scenario: opts.scenario.clone(),
        vars: opts.vars.clone(),
        timeout: opts.timeout,
        connect_timeout: opts.connect_timeout.min(opts.timeout),
        out_dir: None,
        progress: false,
        calibration_flows: opts.calibration_flows,
        grace: Duration::from_millis(200),
        plan: Some(Plan {
            model: LoadModel::Open {
                arrival: Arrival::Constant,
                max_in_flight: opts.max_in_flight,
            },
            stages: vec![Stage {
                level: rate,
                duration: Duration::MAX,
            }],
            max_flows: None,
            duration: Some(opts.warmup + hold),
            warmup: opts.warmup,
        }),
        ..RunOptions::default()
    }
}

/// Runs one step. `None` when the search was interrupted during it.
pub(super) async fn run_step(
    opts: &CapacityOptions,
    target: &StepTarget,
    rate: f64,
    stop: &watch::Receiver<bool>,
) -> Result<Option<StepRow>, CapacityError> {
    let run_opts = run_options(opts, target, rate);
    let deadline = step_bound(opts, rate);
    let mut user_stop = stop.clone();
    let stop_fut = async move {
        let user = async {
            // The sender gone: nobody can ask to stop any more; the deadline holds.
            if user_stop.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(deadline) => {}
            _ = user => {}
        }
    };
    let result = crate::mix::run(&run_opts, stop_fut)
        .await
        .map_err(|source| CapacityError::Run { rate, source })?;
    if *stop.borrow() {
        return Ok(None);
    }
    Ok(Some(judge(opts, rate, &result.report)))
}

/// Flows per second completed successfully by a step offered `rate` for `hold` after a
/// warm-up: the measured flows over the time from the end of the warm-up to the last
/// completion, less one flow's fastest time (the last arrival's own service time, which a
/// step pays even when nothing queues). Below capacity this is the rate offered; above it,
/// the backlog's drain lengthens the time and the figure is the service's rate.
pub fn achieved_rate(r: &Report, warmup: Duration) -> f64 {
    let service_s = if r.flow.count > 0 {
        r.flow.min_ms / 1e3
    } else {
        0.0
    };
    let span = (r.summary.wall_time_s - warmup.as_secs_f64() - service_s).max(1e-3);
    r.summary.successful_flows as f64 / span
}

/// The verdict of a step from its report.
fn judge(opts: &CapacityOptions, rate: f64, r: &Report) -> StepRow {
    let mut broken_by = Vec::new();
    for t in &opts.slo {
        let res = t.evaluate(r);
        if !res.passed {
            broken_by.push(format!("{} (was {})", t.expr, res.observed_text));
        }
    }
    let achieved = achieved_rate(r, opts.warmup);
    if achieved < SUSTAIN_FRACTION * rate {
        broken_by.push(format!(
            "throughput: {}/s completed of {}/s offered",
            super::report::fmt_rate(achieved),
            super::report::fmt_rate(rate)
        ));
    }
    let abandoned = r.summary.abandoned_flows;
    if abandoned > 0 {
        broken_by.push(format!(
            "backlog: {abandoned} flows still in flight when the step's drain time ran out"
        ));
    }
    if r.summary.dropped_flows > 0 {
        broken_by.push(format!(
            "{} arrivals dropped (--max-in-flight {} reached)",
            r.summary.dropped_flows, opts.max_in_flight
        ));
    }
    if r.summary.total_flows == 0 && broken_by.is_empty() {
        broken_by.push("no measured flow completed".into());
    }
    let lat = |v: f64| (r.flow_intended.count > 0).then_some(v);
    let d = r.diagnosis.as_ref();
    StepRow {
        offered: rate,
        achieved,
        flows: r.summary.total_flows,
        success_rate: r.summary.success_rate,
        p50_ms: lat(r.flow_intended.p50_ms),
        p99_ms: lat(r.flow_intended.p99_ms),
        effective_parallelism: d.map(|d| d.effective_parallelism),
        headline: d.map(|d| crate::diagnosis::verdict(d, r).short().to_string()),
        passed: broken_by.is_empty(),
        broken_by,
        abandoned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_holds_long_enough_for_its_flows() {
        let o = CapacityOptions {
            hold: Duration::from_secs(5),
            hold_flows: 30,
            ..CapacityOptions::default()
        };
        assert_eq!(hold_for(&o, 100.0), Duration::from_secs(5));
        assert_eq!(hold_for(&o, 2.0), Duration::from_secs(15));
        assert!(step_bound(&o, 2.0) > Duration::from_secs(16));
    }
}
