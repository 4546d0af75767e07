//! Baseline comparison: per step and per flow, p50/p95/p99/mean latency, success rate and
//! throughput of a new report against a base one, with absolute and relative deltas and a
//! verdict per row. A change counts as a regression only past the tolerance. Two mixes are
//! also compared scenario by scenario (`scenario:flow`).

use super::{CompareOptions, CompareRow, Comparison, Stat, Verdict};
use crate::report::Report;
use crate::samples::LatencySummary;

#[derive(Clone, Copy)]
enum Better {
    Lower,
    Higher,
}

fn row(
    scope: &str,
    metric: &str,
    base: Option<f64>,
    new: Option<f64>,
    better: Better,
    o: &CompareOptions,
) -> CompareRow {
    let (Some(b), Some(n)) = (base, new) else {
        return CompareRow {
            scope: scope.into(),
            metric: metric.into(),
            base,
            new,
            delta: None,
            relative: None,
            verdict: Verdict::NoData,
        };
    };
    let delta = n - b;
    let relative = (b != 0.0).then(|| delta / b);
    // "worse" as a positive number in the metric's own terms.
    let worse = match better {
        Better::Lower => delta,
        Better::Higher => -delta,
    };
    let verdict = if metric == "success_rate" {
        if worse > o.max_success_drop + 1e-12 {
            Verdict::Regression
        } else if -worse > o.max_success_drop + 1e-12 {
            Verdict::Improvement
        } else {
            Verdict::Unchanged
        }
    } else {
        let floor = if metric.ends_with("_ms") {
            o.min_latency_delta_ms
        } else {
            0.0
        };
        let rel_worse = match relative {
            Some(r) => match better {
                Better::Lower => r,
                Better::Higher => -r,
            },
            // From zero: any real change is infinitely relative.
            None if worse > 0.0 => f64::INFINITY,
            None if worse < 0.0 => f64::NEG_INFINITY,
            None => 0.0,
        };
        if rel_worse > o.max_regression && worse > floor {
            Verdict::Regression
        } else if -rel_worse > o.max_regression && -worse > floor {
            Verdict::Improvement
        } else {
            Verdict::Unchanged
        }
    };
    CompareRow {
        scope: scope.into(),
        metric: metric.into(),
        base: Some(b),
        new: Some(n),
        delta: Some(delta),
        relative,
        verdict,
    }
}

fn latency_rows(
    scope: &str,
    base: Option<&LatencySummary>,
    new: Option<&LatencySummary>,
    o: &CompareOptions,
    rows: &mut Vec<CompareRow>,
) {
    for (name, stat) in [
        ("p50_ms", Stat::P50),
        ("p95_ms", Stat::P95),
        ("p99_ms", Stat::P99),
        ("mean_ms", Stat::Mean),
    ] {
        let get = |l: Option<&LatencySummary>| l.filter(|l| l.count > 0).map(|l| stat.of(l));
        rows.push(row(scope, name, get(base), get(new), Better::Lower, o));
    }
}

/// The flow's latency, success rate and throughput under `scope`; a side that is absent
/// (a scenario one mix does not have) gives "no data" rows.
fn flow_rows(
    scope: &str,
    base: Option<&Report>,
    new: Option<&Report>,
    o: &CompareOptions,
    rows: &mut Vec<CompareRow>,
) {
    latency_rows(scope, base.map(|r| &r.flow), new.map(|r| &r.flow), o, rows);
    let rate = |r: Option<&Report>| {
        r.filter(|r| r.summary.total_flows > 0)
            .map(|r| r.summary.success_rate)
    };
    rows.push(row(
        scope,
        "success_rate",
        rate(base),
        rate(new),
        Better::Higher,
        o,
    ));
    let tput = |r: Option<&Report>| r.map(|r| r.summary.flows_per_s);
    rows.push(row(
        scope,
        "flows_per_s",
        tput(base),
        tput(new),
        Better::Higher,
        o,
    ));
}

/// A mix's scenario's own report, by name.
fn part<'a>(r: &'a Report, name: &str) -> Option<&'a Report> {
    r.mix.iter().find(|p| p.scenario == name).map(|p| &p.report)
}

/// Compares `new` with `base`, step by step (matched by name) and for the whole flow.
/// When both are mixes, each scenario's flow too, as `scenario:flow` (matched by scenario
/// name; its steps are already the whole's `scenario:step`); a scenario only one side has
/// gives "no data" rows.
pub fn compare(base: &Report, new: &Report, base_name: &str, o: CompareOptions) -> Comparison {
    let mut rows = Vec::new();
    flow_rows("flow", Some(base), Some(new), &o, &mut rows);
    if !base.mix.is_empty() && !new.mix.is_empty() {
        let mut names: Vec<&str> = new.mix.iter().map(|p| p.scenario.as_str()).collect();
        for p in &base.mix {
            if !names.contains(&p.scenario.as_str()) {
                names.push(&p.scenario);
            }
        }
        for name in names {
            let scope = format!("{name}:flow");
            flow_rows(&scope, part(base, name), part(new, name), &o, &mut rows);
        }
    }
    let mut names: Vec<&str> = new.steps.iter().map(|s| s.name.as_str()).collect();
    for s in &base.steps {
        if !names.contains(&s.name.as_str()) {
            names.push(&s.name);
        }
    }
    for name in names {
        let b = base.steps.iter().find(|s| s.name == name);
        let n = new.steps.iter().find(|s| s.name == name);
        latency_rows(
            name,
            b.map(|s| &s.latency),
            n.map(|s| &s.latency),
            &o,
            &mut rows,
        );
        let sr = |s: Option<&crate::report::StepReport>| {
            s.filter(|s| s.requests > 0)
                .map(|s| s.ok as f64 / s.requests as f64)
        };
        rows.push(row(name, "success_rate", sr(b), sr(n), Better::Higher, &o));
    }
    Comparison {
        base: format!("{base_name} (generated {})", base.generated_at),
        options: o,
        rows,
    }
}

/// Parses `10%` or `0.1` as a fraction.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("'{s}' is not a percentage: use e.g. 10% or 0.1"))?;
    if !(0.0..=10.0).contains(&v) {
        return Err(format!("'{s}' is out of range (0% to 1000%)"));
    }
    Ok(v)
}
