//! What a finished sweep says: the fitted hash time put into each row (with the floor and
//! the capacity from the measured parallelism), the what-if capacity if hashing used
//! every core, and one conclusion for the whole sweep.
//!
//! Every figure here is computed from figures in the rows; nothing is measured and
//! nothing is rendered (that is [`report`](super::report)'s job).

use serde::{Deserialize, Serialize};

use super::fit::HashFit;
use super::{HashSource, SweepRow};
use crate::diagnosis::Verdict;

/// The sweep's conclusion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conclusion {
    /// The verdict every cost's run got, when they all got the same one.
    pub verdict: Option<Verdict>,
    /// The lowest cost where hashing takes more of a flow than the floor; `null` when it
    /// never does (or the hash time is unknown).
    pub crossover_cost: Option<u32>,
    /// Plain words, citing the figures.
    pub text: String,
}

/// Whether a verdict says the load saturated the service (so its parallelism is its
/// limit, not the offered load).
pub(crate) fn saturated(v: Option<Verdict>) -> bool {
    matches!(
        v,
        Some(Verdict::Serializes | Verdict::UsesCores | Verdict::MachineCpu | Verdict::OtherLimit)
    )
}

/// Fills each row's hash time (fitted, for a spawned service), floor, capacity and what-if
/// capacity. `cores`: the machine's, for the what-if.
/// `per_hash`: `--hashes-per-flow` as given, which divides a fitted service's hashing per
/// flow into the per-hash figure (otherwise: the mean over the hashing steps found).
pub fn apply(
    rows: &mut [SweepRow],
    fit: &HashFit,
    hashes_per_flow: f64,
    per_hash: Option<f64>,
    cores: usize,
) {
    for r in rows.iter_mut() {
        if r.hash_source == HashSource::External {
            let fitted = match per_hash.filter(|n| *n > 0.0) {
                Some(n) => fit.flow_hash_ms(r.cost).map(|f| f / n),
                None => fit.hash_ms(r.cost),
            };
            if let Some(h) = fitted {
                r.hash_ms = Some(h);
                r.hash_source = HashSource::Fitted;
            }
        }
        r.flow_hash_ms = match r.hash_source {
            HashSource::Fitted => fit.flow_hash_ms(r.cost),
            HashSource::Measured | HashSource::Given => r.hash_ms.map(|h| h * hashes_per_flow),
            HashSource::External => None,
        };
        r.floor_ms = match (r.flow_service_ms, r.flow_hash_ms) {
            (Some(s), Some(h)) => Some((s - h).max(0.0)),
            _ => None,
        };
        let spawned = matches!(r.hash_source, HashSource::Fitted | HashSource::External);
        if !spawned || r.failure.is_some() {
            continue;
        }
        // A spawned service's thread count is unknown: its capacity is what it showed,
        // requests at once over a flow's service time.
        r.capacity_flows_per_s = match (r.effective_parallelism, r.flow_service_ms) {
            (Some(p), Some(s)) if p > 0.0 && s > 0.0 => Some(p / (s / 1e3)),
            _ => None,
        };
        r.capacity_is_lower_bound = r.capacity_flows_per_s.is_some() && !saturated(r.verdict);
        r.capacity_if_parallel_flows_per_s = what_if(r, cores);
    }
}

/// The capacity if hashing ran on every core while the floor kept the parallelism the run
/// measured: `min(cores / hash per flow, parallelism / floor per flow)`.
fn what_if(r: &SweepRow, cores: usize) -> Option<f64> {
    what_if_capacity(
        r.verdict,
        r.flow_hash_ms?,
        r.floor_ms?,
        r.effective_parallelism?,
        r.capacity_flows_per_s,
        cores,
    )
}

/// `min(cores / hash per flow, parallelism / floor per flow)` (times in ms), never below
/// the measured `capacity`; `None` unless the run saturated the service.
pub(crate) fn what_if_capacity(
    verdict: Option<Verdict>,
    flow_hash_ms: f64,
    floor_ms: f64,
    parallelism: f64,
    capacity: Option<f64>,
    cores: usize,
) -> Option<f64> {
    if !saturated(verdict) || flow_hash_ms <= 0.0 {
        return None;
    }
    let hashing = cores as f64 / (flow_hash_ms / 1e3);
    let floor = if floor_ms > 0.0 {
        parallelism / (floor_ms / 1e3)
    } else {
        f64::INFINITY
    };
    // Hashing that already uses the cores gains nothing.
    Some(hashing.min(floor).max(capacity.unwrap_or(0.0)))
}

fn ms(v: f64) -> String {
    crate::diagnosis::fmt_ms(v)
}

fn rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The sweep's conclusion, from rows [`apply`] filled.
pub fn conclude(rows: &[SweepRow], fit: &HashFit) -> Option<Conclusion> {
    conclude_as(rows, fit, "cost")
}

/// [`conclude`], naming the swept value `what` ("cost", "pbkdf2.iterations").
pub fn conclude_as(rows: &[SweepRow], fit: &HashFit, what: &str) -> Option<Conclusion> {
    // Costs at which no flow succeeded come first, and say nothing about capacity.
    let failed: Vec<String> = rows
        .iter()
        .filter_map(|r| Some(format!("{what} {}: {}", r.cost, r.failure.as_deref()?)))
        .collect();
    let ok: Vec<SweepRow> = rows
        .iter()
        .filter(|r| r.failure.is_none())
        .cloned()
        .collect();
    if !failed.is_empty() {
        let head = format!(
            "{} of {} {what}s had no successful flow, and no capacity or verdict figure ({})",
            failed.len(),
            rows.len(),
            failed.join("; ")
        );
        if ok.is_empty() {
            return Some(Conclusion {
                verdict: None,
                crossover_cost: None,
                text: format!("{head}: fix what failed and sweep again."),
            });
        }
        let rest = conclude_ok(&ok, fit, what)?;
        return Some(Conclusion {
            text: format!("{head}. Over the others: {}", rest.text),
            ..rest
        });
    }
    conclude_ok(rows, fit, what)
}

fn conclude_ok(rows: &[SweepRow], fit: &HashFit, what: &str) -> Option<Conclusion> {
    let first = rows.first()?;
    let all_same = rows
        .iter()
        .all(|r| r.verdict.is_some() && r.verdict == first.verdict);
    let verdict = if all_same { first.verdict } else { None };
    let crossover = rows
        .iter()
        .find(|r| matches!((r.flow_hash_ms, r.floor_ms), (Some(h), Some(f)) if h > f))
        .map(|r| r.cost);
    let mut parts = Vec::new();
    let p_range = {
        let ps: Vec<f64> = rows
            .iter()
            .filter_map(|r| r.effective_parallelism)
            .collect();
        let lo = ps.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ps.iter().copied().fold(0.0, f64::max);
        if ps.is_empty() {
            String::new()
        } else if format!("{lo:.1}") == format!("{hi:.1}") {
            format!("effective parallelism {lo:.1}")
        } else {
            format!("effective parallelism {lo:.1}–{hi:.1}")
        }
    };
    let unsaturated = |v: Option<Verdict>| {
        matches!(
            v,
            Some(Verdict::KeptUp | Verdict::Idle | Verdict::NotSaturated)
        )
    };
    // Kept up at one cost and queued a little at another is one finding: no saturation.
    let class = if verdict.is_none() && rows.iter().all(|r| unsaturated(r.verdict)) {
        Some(Verdict::NotSaturated)
    } else {
        verdict
    };
    match class {
        Some(Verdict::Serializes) => {
            let top = rows
                .iter()
                .rev()
                .find(|r| r.capacity_if_parallel_flows_per_s.is_some());
            let gain = top.and_then(|r| {
                let (m, f) = (r.capacity_flows_per_s?, r.capacity_if_parallel_flows_per_s?);
                (m > 0.0).then(|| {
                    format!(
                        "changes capacity by ×{:.1} (at {what} {}: ~{} flows/s as it is, ~{} fixed)",
                        f / m,
                        r.cost,
                        rate(m),
                        rate(f)
                    )
                })
            });
            parts.push(format!(
                "This service serializes its work at every {what} ({p_range}): raising workers or moving hashing off the event loop {}",
                gain.unwrap_or_else(|| "would raise capacity (the gain needs a measured hash time)".into())
            ));
            let floor = rows.first().and_then(|r| Some((r.cost, r.floor_ms?, r.flow_service_ms?)));
            parts.push(match floor {
                Some((c, f, s)) => format!(
                    "lowering the cost removes the hash time but leaves the floor: {} of a flow's {} of service alone at {what} {c} is not hashing",
                    ms(f),
                    ms(s)
                ),
                None => "lowering the cost removes the hash time but not the serialization".into(),
            });
        }
        Some(Verdict::KeptUp | Verdict::Idle | Verdict::NotSaturated) => parts.push(format!(
            "The load did not saturate the service at any {what} ({p_range}): its capacity is above what was offered; raise --concurrency to find it"
        )),
        Some(Verdict::UsesCores | Verdict::MachineCpu) => parts.push(format!(
            "The service used the machine's cores at every {what} ({p_range}): capacity follows the hash time; only a lower cost, more cores or more instances raise it"
        )),
        Some(v) => parts.push(format!("Every cost's run: {} ({p_range})", v.short())),
        None => {
            let per: Vec<String> = rows
                .iter()
                .map(|r| {
                    format!(
                        "{}: {}",
                        r.cost,
                        r.verdict.map_or("no diagnosis", |v| v.short())
                    )
                })
                .collect();
            parts.push(format!("The verdict changes with the {what} ({})", per.join(", ")));
        }
    }
    match (fit.measurable(), crossover) {
        (true, Some(c)) => {
            let r = rows.iter().find(|r| r.cost == c)?;
            parts.push(format!(
                "hashing is the larger part of a flow from {what} {c} ({} of hashing vs {} of floor)",
                ms(r.flow_hash_ms.unwrap_or(0.0)),
                ms(r.floor_ms.unwrap_or(0.0))
            ));
        }
        (true, None) if fit.hashing().count() > 0 => {
            parts.push("the floor outweighs the hash at every cost swept".into())
        }
        (false, _) if rows.iter().any(|r| r.hash_source == HashSource::External) => {
            parts.push(format!(
                "hash time not measurable: {}",
                fit.not_measurable.as_deref().unwrap_or("unknown")
            ))
        }
        _ => {}
    }
    Some(Conclusion {
        verdict,
        crossover_cost: crossover,
        text: format!("{}.", parts.join("; ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::fit::{fit, StepService};

    fn row(cost: u32, p: f64, v: Verdict, truth: impl Fn(u32) -> Vec<f64>) -> SweepRow {
        let steps: Vec<StepService> = truth(cost)
            .into_iter()
            .enumerate()
            .map(|(i, ms)| StepService {
                name: format!("s{i}"),
                service_ms: ms,
            })
            .collect();
        SweepRow {
            cost,
            hash_ms: None,
            hash_source: HashSource::External,
            flow_p50_ms: Some(100.0),
            flow_p95_ms: Some(100.0),
            flow_p99_ms: Some(100.0),
            success_rate: 1.0,
            successful_flows: 10,
            total_flows: 10,
            flows_per_s: 1.0,
            capacity_flows_per_s: None,
            partial: false,
            flow_service_ms: Some(steps.iter().map(|s| s.service_ms).sum()),
            steps,
            effective_parallelism: Some(p),
            verdict: Some(v),
            flow_hash_ms: None,
            floor_ms: None,
            protocol: None,
            capacity_is_lower_bound: false,
            capacity_if_parallel_flows_per_s: None,
            below_owasp: false,
            failure: None,
        }
    }

    #[test]
    fn a_serializing_service_gets_the_gain_and_the_floor() {
        let truth = |c: u32| {
            vec![
                30.0 + 2f64.powi(c as i32 - 4),
                30.0 + 2f64.powi(c as i32 - 4),
            ]
        };
        let mut rows: Vec<SweepRow> = (4..=10)
            .map(|c| row(c, 1.0, Verdict::Serializes, truth))
            .collect();
        let f = fit(&rows
            .iter()
            .map(|r| (r.cost, r.steps.clone()))
            .collect::<Vec<_>>());
        apply(&mut rows, &f, 2.0, None, 2);
        let top = rows.last().unwrap();
        assert_eq!(top.hash_source, HashSource::Fitted);
        assert!((top.hash_ms.unwrap() - 64.0).abs() < 1e-6);
        assert!((top.floor_ms.unwrap() - 60.0).abs() < 1e-6);
        // 1 request at a time over 188 ms per flow.
        assert!((top.capacity_flows_per_s.unwrap() - 1e3 / 188.0).abs() < 1e-6);
        // Fixed: min(2 cores / 128 ms, 1 / 60 ms) = 15.6 flows/s.
        assert!((top.capacity_if_parallel_flows_per_s.unwrap() - 15.625).abs() < 1e-6);
        let c = conclude(&rows, &f).unwrap();
        assert_eq!(c.verdict, Some(Verdict::Serializes));
        // 2 × 32 ms of hashing > 60 ms of floor from cost 9 on.
        assert_eq!(c.crossover_cost, Some(9));
        assert!(
            c.text.contains("serializes its work at every cost"),
            "{}",
            c.text
        );
        assert!(c.text.contains("×2.9"), "{}", c.text);
        assert!(c.text.contains("leaves the floor"), "{}", c.text);
        // --hashes-per-flow 4 (the service hashes twice per step): the flow's 128 ms of
        // hashing at cost 10 is four hashes of 32 ms.
        let mut given: Vec<SweepRow> = (4..=10)
            .map(|c| row(c, 1.0, Verdict::Serializes, truth))
            .collect();
        apply(&mut given, &f, 4.0, Some(4.0), 2);
        let top = given.last().unwrap();
        assert!((top.hash_ms.unwrap() - 32.0).abs() < 1e-6, "{top:?}");
    }

    #[test]
    fn mixed_verdicts_are_listed_and_unsaturated_capacity_is_a_lower_bound() {
        let truth = |_| vec![5.0];
        let mut rows = vec![
            row(4, 3.0, Verdict::KeptUp, truth),
            row(5, 1.0, Verdict::Serializes, truth),
        ];
        let f = fit(&[]);
        apply(&mut rows, &f, 2.0, None, 2);
        assert!(rows[0].capacity_is_lower_bound);
        assert!(!rows[1].capacity_is_lower_bound);
        assert_eq!(rows[0].capacity_if_parallel_flows_per_s, None);
        let c = conclude(&rows, &f).unwrap();
        assert_eq!(c.verdict, None);
        assert!(c.text.contains("4: kept up, 5: serializes"), "{}", c.text);
        assert!(c.text.contains("not measurable"), "{}", c.text);
    }
}
