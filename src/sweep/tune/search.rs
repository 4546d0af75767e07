//! The part of `tune` that does no I/O: the range a search may cover (never below OWASP's
//! minimum without `--allow-weak`), the binary search over costs as a state machine
//! ([`Search`], [`find_highest`]), the concurrency levels a running service is probed at,
//! and the advice printed when even the lowest allowed cost misses the SLOs. Tested with a
//! fake measurement.

use super::Probe;
use crate::gate::{Metric, Op, Threshold};
use crate::sweep::conclude::saturated;
use crate::sweep::{capacity, OWASP_MIN_COST};

/// The lowest cost the search may try: `min_cost`, raised to 10 without `allow_weak`.
/// An error when that leaves nothing to search.
pub fn search_range(min_cost: u32, max_cost: u32, allow_weak: bool) -> Result<(u32, u32), String> {
    if !crate::sweep::COST_RANGE.contains(&min_cost)
        || !crate::sweep::COST_RANGE.contains(&max_cost)
    {
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
    let mut out = Vec::new();
    let Some((t, cap)) = probe
        .hash_ms
        .map(|h| h / 1e3)
        .and_then(|t| Some((t, capacity(threads, hashes_per_flow, t)?)))
    else {
        return measured_advice(probe, slos, threads, concurrency);
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

/// What would meet the SLOs when the hash time is not known: from what `probe` measured
/// (the SLO it does meet, the what-if with hashing on every core, the instances and cores
/// the missing factor takes). Never empty.
fn measured_advice(
    probe: &Probe,
    slos: &[Threshold],
    threads: usize,
    concurrency: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    for r in probe.slos.iter().filter(|r| !r.passed) {
        let Some(observed) = r.observed else {
            out.push(format!(
                "`{}`: not measured at cost {} ({})",
                r.expr, probe.cost, r.observed_text
            ));
            continue;
        };
        // How far off: observed / limit for an upper bound, limit / observed for a floor.
        let factor = slos.iter().find(|s| s.expr == r.expr).and_then(|s| {
            let f = match s.op {
                Op::Lt | Op::Le => observed / s.limit,
                _ => s.limit / observed,
            };
            (f.is_finite() && f > 0.0).then_some(f)
        });
        out.push(format!(
            "`{}`: the SLO cost {} does meet here is {} ({}, observed at concurrency {concurrency})",
            r.expr,
            probe.cost,
            r.expr
                .split(['<', '>'])
                .next()
                .map(|m| format!("`{m} ≤ {}`", r.observed_text))
                .unwrap_or_else(|| r.observed_text.clone()),
            r.observed_text
        ));
        if let Some(factor) = factor.map(|f| f.max(1.0)) {
            let instances = factor.ceil();
            out.push(format!(
                "`{}`: about ×{factor:.1} the capacity: {instances:.0} instances like this one, or ≈ {:.0} cores where it now has {threads}, or ≈ {:.0} flows in flight per instance instead of {concurrency}",
                r.expr,
                (instances * threads as f64).ceil(),
                (concurrency as f64 / factor).floor().max(1.0)
            ));
        }
    }
    if let Some(w) = what_if_sentence(probe) {
        out.push(format!("what-if: {w}"));
    } else if let (Some(p), Some(v)) = (probe.effective_parallelism, probe.verdict) {
        out.push(format!(
            "at cost {} the service worked on {p:.1} requests at once ({}): {}",
            probe.cost,
            v.short(),
            if p < threads as f64 * 0.75 {
                "hashing on a pool of one thread per core (or more workers) would raise that before any cost change"
            } else {
                "it already uses the cores: more cores or instances"
            }
        ));
    }
    if out.is_empty() {
        out.push(format!(
            "cost {} measured no figure to advise from (success rate {:.0}%): fix the failures first",
            probe.cost,
            probe.success_rate * 100.0
        ));
    }
    out
}

/// The concurrencies a running service is probed at: 1, 2, 4, … up to `max` (included).
pub fn levels(max: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut c = 1;
    while c < max {
        v.push(c);
        c *= 2;
    }
    v.push(max.max(1));
    v
}

/// The sentence of a probe's capacities: "at cost 12, fixed: ~N flows/s; as it is: M".
pub fn what_if_sentence(p: &Probe) -> Option<String> {
    let (now, fixed) = (p.capacity_flows_per_s?, p.capacity_if_parallel_flows_per_s?);
    saturated(p.verdict).then(|| {
        format!(
            "at cost {}, fixed (hashing on every core): ~{fixed:.1} flows/s; as it is: {now:.1} flows/s",
            p.cost
        )
    })
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
            hash_ms: Some(hash_ms),
            passed: p95 < slo_ms,
            flow_p50_ms: Some(p95 / 2.0),
            flow_p95_ms: Some(p95),
            success_rate: 1.0,
            flows_per_s: 1.0,
            ..Probe::default()
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
    fn levels_double_up_to_the_concurrency() {
        assert_eq!(levels(1), [1]);
        assert_eq!(levels(8), [1, 2, 4, 8]);
        assert_eq!(levels(20), [1, 2, 4, 8, 16, 20]);
        assert_eq!(levels(0), [1]);
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
        p.hash_ms = Some(235.0);
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
