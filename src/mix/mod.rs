//! Running a mix ([`crate::scenario::mix`]): every scenario of the mix runs at once
//! against one target, each with its own share of the load (k6's model: a scenario per
//! executor), its own feeder, variables, cookie jars, calibration and diagnosis; the
//! whole is then built from their histograms, exactly.
//!
//! The split is exact: flows (and, closed loop, workers; open loop, the rate and the cap on
//! flows in flight) are shared out by weight with the largest-remainder rule, so 1,000
//! flows at 80/15/5 are 800/150/50, and `--shard` then splits each scenario's share
//! exactly, so shards merged give the same split. A scenario with its own `rate` keeps it.
//! Every scenario gets at least one worker (one per shard under `--shard`).
//!
//! Thresholds naming a scenario (`login-only:flow.p99<500ms`) are that scenario's; the
//! others are the whole's, whose steps are named `scenario:step`. The whole is a
//! [`Report`] with the scenarios' reports in [`Report::mix`], so `report`, `compare`,
//! `merge` and the gate read it like any run's.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use tokio::sync::watch;

use crate::error::RunError;
use crate::options::{RunOptions, ScenarioSource};
use crate::plan::{LoadModel, Plan};
use crate::report::{MixPart, Report, ReportInput};
use crate::scenario::mix::{split, Mix};
use crate::stats::Stats;
use crate::RunResult;

/// Whether `src` names a mix file.
pub fn is_mix(src: &ScenarioSource) -> bool {
    match src {
        ScenarioSource::Builtin => false,
        ScenarioSource::File(p) => {
            std::fs::read_to_string(p).is_ok_and(|t| crate::scenario::mix::is_mix(&t))
        }
    }
}

/// [`crate::run`], or [`run_mix`] when the scenario is a mix.
pub async fn run(
    opts: &RunOptions,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<RunResult, RunError> {
    match &opts.scenario {
        ScenarioSource::File(p) if is_mix(&opts.scenario) => {
            let mix = crate::scenario::mix::load_with_vars(p, &opts.vars)?;
            run_mix(opts, &mix, stop).await
        }
        _ => crate::run(opts, stop).await,
    }
}

/// Thresholds split into each scenario's (by index, the prefix removed) and the whole's.
fn split_thresholds(
    mix: &Mix,
    exprs: &[String],
) -> Result<(Vec<Vec<String>>, Vec<String>), RunError> {
    let mut parts = vec![Vec::new(); mix.parts.len()];
    let mut whole = Vec::new();
    for e in exprs {
        let named = e.split_once(':').and_then(|(name, rest)| {
            mix.parts
                .iter()
                .position(|p| p.scenario.name == name.trim())
                .map(|i| (i, rest.trim().to_string()))
        });
        // `name:` before any metric: a scenario's name, which must be one of the mix's.
        let prefix = e
            .split_once(':')
            .map(|(p, _)| p.trim())
            .filter(|p| !p.contains(['.', '<', '>', '=', '!']));
        match named {
            Some((i, rest)) => parts[i].push(rest),
            None if prefix.is_some() => {
                return Err(RunError::Config(format!(
                    "threshold `{e}`: no scenario of the mix is named `{}` (its scenarios: {})",
                    prefix.unwrap_or(""),
                    names(mix).join(", ")
                )))
            }
            None => whole.push(e.clone()),
        }
    }
    Ok((parts, whole))
}

fn names(mix: &Mix) -> Vec<String> {
    mix.parts.iter().map(|p| p.scenario.name.clone()).collect()
}

/// Each scenario's share of `plan`; each gets at least `min_workers` workers (closed loop)
/// and flows in flight (open loop): one, or one per shard, which then splits it again.
fn share_plans(mix: &Mix, plan: &Plan, min_workers: u64) -> Vec<Plan> {
    let weights = mix.weights();
    let total_w: u64 = weights.iter().sum();
    let flows = plan.max_flows.map(|n| split(&weights, n));
    let model = |i: usize| match plan.model {
        LoadModel::Closed => LoadModel::Closed,
        LoadModel::Open {
            arrival,
            max_in_flight,
        } => LoadModel::Open {
            arrival,
            max_in_flight: (split(&weights, max_in_flight as u64)[i].max(min_workers)) as usize,
        },
    };
    (0..mix.parts.len())
        .map(|i| {
            let share = weights[i] as f64 / total_w as f64;
            let stages = plan
                .stages
                .iter()
                .map(|s| {
                    let level = match (plan.model, mix.parts[i].rate) {
                        (LoadModel::Open { .. }, Some(r)) => r,
                        (LoadModel::Open { .. }, None) => s.level * share,
                        // Workers: whole numbers, the largest remainder, at least one.
                        (LoadModel::Closed, _) => {
                            split(&weights, s.level.round() as u64)[i].max(min_workers) as f64
                        }
                    };
                    crate::plan::Stage { level, ..*s }
                })
                .collect();
            Plan {
                model: model(i),
                stages,
                max_flows: flows.as_ref().map(|f| f[i]),
                ..plan.clone()
            }
        })
        .collect()
}

/// Runs every scenario of `mix` at once against one target and builds the whole.
pub async fn run_mix(
    opts: &RunOptions,
    mix: &Mix,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<RunResult, RunError> {
    if opts.server_tls && opts.target.is_none() {
        return Err(RunError::Config(
            "--tls with a mix: not supported yet (serve with `authbench serve --tls` and give --target)".into(),
        ));
    }
    if opts.save_users.is_some() || opts.metrics.is_some() {
        return Err(RunError::Config(
            "--save-users and --metrics take one scenario, not a mix: run the scenario alone"
                .into(),
        ));
    }
    let baseline = match &opts.baseline {
        Some(p) => Some((
            crate::report::read(p).map_err(|e| RunError::Config(format!("{e:#}")))?,
            p.clone(),
        )),
        None => None,
    };
    let (part_thresholds, whole_thresholds) = split_thresholds(mix, &opts.thresholds)?;
    let mut prefixed = Vec::new();
    for p in &mix.parts {
        prefixed.extend(
            p.scenario
                .step_names()
                .into_iter()
                .map(|s| format!("{}:{s}", p.scenario.name)),
        );
    }
    for (i, t) in part_thresholds.iter().enumerate() {
        crate::gate::parse_all(t, &mix.parts[i].scenario.step_names())
            .map_err(|e| RunError::Config(format!("{}: {e}", mix.parts[i].scenario.name)))?;
    }
    let whole_gate = crate::gate::parse_all(&whole_thresholds, &prefixed)
        .map_err(|e| RunError::Config(e.to_string()))?;
    let plan = match &opts.plan {
        Some(p) => p.clone(),
        None => Plan::closed(
            opts.concurrency
                .min(usize::try_from(opts.flows).unwrap_or(usize::MAX)),
            opts.flows,
        ),
    };
    // One target for every scenario: the in-process server started once.
    let target = crate::pipeline::start_target(opts, &mix.parts[0].scenario)?;
    let (tx, rx) = watch::channel(false);
    let runs: Vec<_> = mix
        .parts
        .iter()
        .zip(share_plans(
            mix,
            &plan,
            opts.shard.map_or(1, |s| s.count.max(1)),
        ))
        .zip(part_thresholds)
        .map(|((part, plan), thresholds)| {
            let o = RunOptions {
                target: Some(target.base_url.clone()),
                api_key: Some(target.api_key.clone()),
                scenario: ScenarioSource::File(part.path.clone()),
                flows: plan.max_flows.unwrap_or(opts.flows).max(1),
                plan: Some(plan),
                thresholds,
                out_dir: None,
                html: None,
                junit: None,
                baseline: None,
                metrics: None,
                progress: false,
                save_users: None,
                ..opts.clone()
            };
            let stop = crate::sweep::stop_future(&rx);
            async move { crate::run(&o, stop).await }
        })
        .collect();
    let results = crate::sweep::drive_with_stop(stop, tx, join_all(runs)).await;
    target.shutdown();
    let mut parts = Vec::new();
    for (part, r) in mix.parts.iter().zip(results) {
        // The part's own error, so its exit code holds (an unreachable target is 3).
        let r = r.map_err(|e| match e {
            RunError::Other(a) => RunError::Other(a.context(format!(
                "the mix's scenario '{}' ({})",
                part.scenario.name,
                part.path.display()
            ))),
            other => other,
        })?;
        parts.push(MixPart {
            scenario: part.scenario.name.clone(),
            weight: part.weight,
            report: r.report,
        });
    }
    let mut report = whole(mix, &parts).map_err(RunError::Other)?;
    if opts.target.is_none() {
        report.config.in_process_server = true;
        report.config.bcrypt_cost = Some(opts.cost);
    }
    let mut results: Vec<_> = parts
        .iter()
        .flat_map(|p| {
            p.report.thresholds.iter().map(move |t| {
                let mut t = t.clone();
                t.expr = format!("{}:{}", p.scenario, t.expr);
                t
            })
        })
        .collect();
    results.extend(whole_gate.iter().map(|t| t.evaluate(&report)));
    report.thresholds = results;
    report.mix = parts;
    if let Some((base, path)) = &baseline {
        report.comparison = Some(crate::gate::compare(
            base,
            &report,
            &path.display().to_string(),
            opts.compare,
        ));
    }
    let files = crate::pipeline::export(opts, &report)?;
    Ok(RunResult { report, files })
}

/// The whole of a mix from its scenarios' reports: their histograms and counts added,
/// their steps side by side as `scenario:step`, throughput over the longest run.
pub fn whole(mix: &Mix, parts: &[MixPart]) -> anyhow::Result<Report> {
    let mut names = Vec::new();
    let mut stats_of = Vec::new();
    for p in parts {
        let s = p.report.stats()?;
        names.extend(
            s.steps
                .iter()
                .map(|st| format!("{}:{}", p.scenario, st.name)),
        );
        stats_of.push(s);
    }
    let mut total = Stats::new(&names);
    let mut offset = 0;
    for (p, s) in parts.iter().zip(stats_of) {
        let n = s.steps.len();
        let mut padded = Stats::new(&names);
        for (slot, mut st) in padded.steps[offset..offset + n].iter_mut().zip(s.steps) {
            st.name = format!("{}:{}", p.scenario, st.name);
            *slot = st;
        }
        padded.flow_ok = s.flow_ok;
        padded.flow_failed = s.flow_failed;
        padded.flow_intended = s.flow_intended;
        padded.warmup_flows = s.warmup_flows;
        padded.timeline = s.timeline;
        padded.availability = s.availability;
        total.merge(&padded);
        offset += n;
    }
    let first = &parts
        .first()
        .ok_or_else(|| anyhow::anyhow!("a mix with no scenario"))?
        .report;
    let wall = parts
        .iter()
        .map(|p| p.report.summary.wall_time_s)
        .fold(0.0, f64::max);
    let mut config = first.config.clone();
    config.scenario = mix.name.clone();
    config.scenario_source = mix.source.clone();
    config.flows_planned = parts.iter().map(|p| p.report.config.flows_planned).sum();
    config.concurrency = parts.iter().map(|p| p.report.config.concurrency).sum();
    config.load = parts
        .iter()
        .map(|p| format!("{} ({}): {}", p.scenario, p.weight, p.report.config.load))
        .collect::<Vec<_>>()
        .join("; ");
    config.think = None;
    config.data = None;
    let mut r = Report::build(ReportInput {
        stats: &total,
        config,
        wall: std::time::Duration::from_secs_f64(wall.max(0.0)),
        partial: parts.iter().any(|p| p.report.partial),
        abandoned: parts.iter().map(|p| p.report.summary.abandoned_flows).sum(),
        generated_at: chrono::Utc::now(),
    });
    r.summary.late_flows = parts.iter().map(|p| p.report.summary.late_flows).sum();
    r.summary.dropped_flows = parts.iter().map(|p| p.report.summary.dropped_flows).sum();
    Ok(r)
}

/// Drives every future to its end, side by side on this task; their outputs in order.
async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut outs: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(outs.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outs.into_iter().flatten().collect()
}

/// The per-scenario table of a mix run, for the terminal: each scenario's flows, success,
/// flow latency and throughput, and the whole.
pub fn scenario_table(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    if r.mix.is_empty() {
        return o;
    }
    let _ = writeln!(
        o,
        "\n{:<24} {:>6} {:>8} {:>9} {:>10} {:>10} {:>9}",
        "scenario", "weight", "flows", "success", "p50 ms", "p99 ms", "flows/s"
    );
    let row = |o: &mut String, name: &str, weight: String, r: &Report| {
        let _ = writeln!(
            o,
            "{:<24} {:>6} {:>8} {:>8.2}% {:>10.1} {:>10.1} {:>9.2}",
            name,
            weight,
            r.summary.total_flows,
            r.summary.success_rate * 100.0,
            r.flow.p50_ms,
            r.flow.p99_ms,
            r.summary.flows_per_s
        );
    };
    for p in &r.mix {
        row(&mut o, &p.scenario, p.weight.to_string(), &p.report);
    }
    row(&mut o, "(whole)", String::new(), r);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix_of(weights: &[u64]) -> (tempfile::TempDir, Mix) {
        let d = tempfile::tempdir().unwrap();
        let mut text = String::from("name = \"m\"\n");
        for (i, w) in weights.iter().enumerate() {
            std::fs::write(
                d.path().join(format!("s{i}.toml")),
                format!("name = \"s{i}\"\n[[steps]]\nname = \"a\"\npath = \"/a\"\n"),
            )
            .unwrap();
            text.push_str(&format!(
                "[[mix]]\nscenario = \"s{i}.toml\"\nweight = {w}\n"
            ));
        }
        let m = crate::scenario::mix::parse(&text, "m.toml", d.path()).unwrap();
        (d, m)
    }

    #[test]
    fn plans_are_shared_by_weight_exactly() {
        let (_d, m) = mix_of(&[80, 15, 5]);
        let plans = share_plans(&m, &Plan::closed(20, 1000), 1);
        let flows: Vec<u64> = plans.iter().map(|p| p.max_flows.unwrap()).collect();
        assert_eq!(flows, [800, 150, 50]);
        let workers: Vec<f64> = plans.iter().map(|p| p.stages[0].level).collect();
        assert_eq!(workers, [16.0, 3.0, 1.0]);
        // Too few workers to share: each scenario still gets one.
        let plans = share_plans(&m, &Plan::closed(2, 1000), 1);
        assert!(plans.iter().all(|p| p.stages[0].level >= 1.0));
        // Over 4 shards, each scenario has a worker for every shard.
        let plans = share_plans(&m, &Plan::closed(20, 1000), 4);
        let workers: Vec<f64> = plans.iter().map(|p| p.stages[0].level).collect();
        assert_eq!(workers, [16.0, 4.0, 4.0]);
    }

    #[test]
    fn thresholds_go_to_their_scenario_or_the_whole() {
        let (_d, m) = mix_of(&[1, 1]);
        let (parts, whole) = split_thresholds(
            &m,
            &[
                "s1:flow.p99<500ms".into(),
                "flow.p99<1s".into(),
                "s0: success_rate>=99%".into(),
            ],
        )
        .unwrap();
        assert_eq!(parts, [vec!["success_rate>=99%"], vec!["flow.p99<500ms"]]);
        assert_eq!(whole, ["flow.p99<1s"]);
        let e = split_thresholds(&m, &["s9:flow.p99<1s".into()]).unwrap_err();
        assert!(
            e.to_string()
                .contains("no scenario of the mix is named `s9`"),
            "{e}"
        );
    }
}
