//! The CI gate: threshold expressions (`flow.p95<500ms`) checked against a report, and
//! baseline comparisons (`compare BASE NEW`). Both work on [`Report`]s, so they apply the
//! same way to a fresh run, a saved JSON and a merged one.

pub mod compare;

use serde::{Deserialize, Serialize};

use crate::report::Report;
use crate::stats::LatencySummary;

pub use compare::{compare, CompareOptions, CompareRow, Comparison, Verdict};

/// Failure classes a `errors.<class>` threshold can name.
pub const ERROR_CLASSES: &[&str] = &[
    "connect",
    "tls",
    "timeout",
    "status",
    "bad_body",
    "check",
    "transport",
    "closed",
    "request",
    "ports",
    "descriptors",
];

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Op::Lt => observed < limit,
            Op::Le => observed <= limit,
            Op::Gt => observed > limit,
            Op::Ge => observed >= limit,
            Op::Eq => observed == limit,
            Op::Ne => observed != limit,
        }
    }
}

/// A latency statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Min,
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
    Mean,
}

impl Stat {
    fn parse(s: &str) -> Option<Stat> {
        Some(match s {
            "min" => Stat::Min,
            "p50" | "median" => Stat::P50,
            "p90" => Stat::P90,
            "p95" => Stat::P95,
            "p99" => Stat::P99,
            "p999" | "p99.9" => Stat::P999,
            "max" => Stat::Max,
            "mean" | "avg" => Stat::Mean,
            _ => return None,
        })
    }

    pub fn of(self, l: &LatencySummary) -> f64 {
        match self {
            Stat::Min => l.min_ms,
            Stat::P50 => l.p50_ms,
            Stat::P90 => l.p90_ms,
            Stat::P95 => l.p95_ms,
            Stat::P99 => l.p99_ms,
            Stat::P999 => l.p999_ms,
            Stat::Max => l.max_ms,
            Stat::Mean => l.mean_ms,
        }
    }
}

/// What a threshold measures, and so which unit its limit takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// Successful flows / flows (a ratio; `0.99` or `99%`).
    SuccessRate,
    /// Finished flows per second (`10/s`, `600/m`).
    Throughput,
    /// Requests per second.
    RequestRate,
    /// Failed flows (a count).
    FailedFlows,
    /// Failed requests, all or of one class (a count).
    Errors(Option<String>),
    /// A latency statistic of the successful flows (`scope = None`) or of one step.
    Latency { step: Option<String>, stat: Stat },
    /// A latency statistic of successful flows from their intended start (open loop:
    /// corrected for coordinated omission; closed loop: the same as `flow`).
    IntendedLatency(Stat),
    /// A step's success ratio.
    StepSuccessRate(String),
    /// A step's failed requests (a count).
    StepErrors(String),
    /// The sum of the outage windows' durations (0 without an outage).
    OutageTotal,
    /// The longest outage window (0 without an outage).
    OutageMax,
    /// The longest time from an outage's end to the next successful flow (0 without an
    /// outage; no data, so failing, when the target never came back within the run).
    Recovery,
    /// The success rate of the flows outside outage windows.
    Availability,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Latency,
    Ratio,
    Rate,
    Count,
}

impl Metric {
    fn kind(&self) -> Kind {
        match self {
            Metric::SuccessRate | Metric::StepSuccessRate(_) | Metric::Availability => Kind::Ratio,
            Metric::OutageTotal | Metric::OutageMax | Metric::Recovery => Kind::Latency,
            Metric::Throughput | Metric::RequestRate => Kind::Rate,
            Metric::FailedFlows | Metric::Errors(_) | Metric::StepErrors(_) => Kind::Count,
            Metric::Latency { .. } | Metric::IntendedLatency(_) => Kind::Latency,
        }
    }

    fn step(&self) -> Option<&str> {
        match self {
            Metric::Latency { step, .. } => step.as_deref(),
            Metric::StepSuccessRate(s) | Metric::StepErrors(s) => Some(s),
            _ => None,
        }
    }
}

/// A parsed threshold: `metric op limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as written.
    pub expr: String,
    pub metric: Metric,
    pub op: Op,
    /// In the metric's base unit: ms, a 0..1 ratio, per second, or a count.
    pub limit: f64,
}

/// A malformed or unknown threshold expression, with the byte position of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("threshold `{expr}`: at column {}: {message}", .offset + 1)]
pub struct ThresholdError {
    pub expr: String,
    pub offset: usize,
    pub message: String,
}

/// The outcome of one threshold after a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    pub expr: String,
    /// The measured value in the metric's base unit; `null` when there was nothing to
    /// measure (e.g. no successful flow for a latency), which fails the threshold.
    pub observed: Option<f64>,
    /// The measured value with its unit, as shown in tables.
    pub observed_text: String,
    pub passed: bool,
}

fn err(expr: &str, offset: usize, message: impl Into<String>) -> ThresholdError {
    ThresholdError {
        expr: expr.to_string(),
        offset,
        message: message.into(),
    }
}

impl Threshold {
    /// Parses `metric op value`, e.g. `login.p99<=250ms`, `success_rate>=99%`,
    /// `throughput>=10/s`, `errors.timeout==0`.
    pub fn parse(expr: &str) -> Result<Threshold, ThresholdError> {
        let ops = ["<=", ">=", "==", "!=", "<", ">"];
        let Some((at, op_text)) = expr.char_indices().find_map(|(i, _)| {
            ops.iter()
                .find(|o| expr[i..].starts_with(**o))
                .map(|o| (i, *o))
        }) else {
            return Err(err(
                expr,
                expr.len(),
                "no comparison: write METRIC OP VALUE with OP one of < <= > >= == != (e.g. flow.p95<500ms)",
            ));
        };
        let op = match op_text {
            "<=" => Op::Le,
            ">=" => Op::Ge,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            _ => Op::Gt,
        };
        let lhs = &expr[..at];
        let metric_start = lhs.len() - lhs.trim_start().len();
        let metric_text = lhs.trim();
        if metric_text.is_empty() {
            return Err(err(expr, at, "missing metric before the operator"));
        }
        let metric = parse_metric(expr, metric_text, metric_start)?;
        let rhs_start = at + op_text.len();
        let rhs = &expr[rhs_start..];
        let value_start = rhs_start + (rhs.len() - rhs.trim_start().len());
        let value_text = rhs.trim();
        if value_text.is_empty() {
            return Err(err(expr, value_start, "missing value after the operator"));
        }
        if ops.iter().any(|o| value_text.starts_with(o)) {
            return Err(err(expr, value_start, "two operators in a row"));
        }
        let limit = parse_value(expr, value_text, value_start, metric.kind())?;
        Ok(Threshold {
            expr: expr.trim().to_string(),
            metric,
            op,
            limit,
        })
    }

    /// Checks that every step the threshold names exists in the run.
    pub fn check_steps(&self, steps: &[String]) -> Result<(), ThresholdError> {
        match self.metric.step() {
            Some(s) if !steps.iter().any(|n| n == s) => Err(err(
                &self.expr,
                self.expr.find(s).unwrap_or(0),
                format!(
                    "unknown step `{s}`: this scenario's steps are {}, and `flow` is the whole flow",
                    steps.join(", ")
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The metric's value in a report, if there is one.
    pub fn observe(&self, r: &Report) -> Option<f64> {
        let step = |name: &str| r.steps.iter().find(|s| s.name == name);
        match &self.metric {
            Metric::SuccessRate => (r.summary.total_flows > 0).then_some(r.summary.success_rate),
            Metric::Throughput => Some(r.summary.flows_per_s),
            Metric::RequestRate => Some(r.summary.requests_per_s),
            Metric::FailedFlows => Some(r.summary.failed_flows as f64),
            Metric::Errors(None) => Some(r.steps.iter().map(|s| s.failed).sum::<u64>() as f64),
            Metric::Errors(Some(class)) => Some(
                r.steps
                    .iter()
                    .filter_map(|s| s.failures.get(class))
                    .sum::<u64>() as f64,
            ),
            Metric::IntendedLatency(stat) => {
                (r.flow_intended.count > 0).then(|| stat.of(&r.flow_intended))
            }
            Metric::Latency { step: None, stat } => (r.flow.count > 0).then(|| stat.of(&r.flow)),
            Metric::Latency {
                step: Some(s),
                stat,
            } => step(s)
                .filter(|s| s.latency.count > 0)
                .map(|s| stat.of(&s.latency)),
            Metric::StepSuccessRate(s) => step(s)
                .filter(|s| s.requests > 0)
                .map(|s| s.ok as f64 / s.requests as f64),
            Metric::StepErrors(s) => step(s).map(|s| s.failed as f64),
            Metric::OutageTotal => Some(r.availability.total_outage_ms),
            Metric::OutageMax => Some(r.availability.max_outage_ms),
            Metric::Recovery => {
                let a = &r.availability;
                if a.outages.iter().any(|w| w.recovery_ms.is_none()) {
                    None
                } else {
                    Some(a.max_recovery_ms.unwrap_or(0.0))
                }
            }
            Metric::Availability => {
                (r.summary.total_flows > 0).then_some(r.availability.success_rate_outside)
            }
        }
    }

    pub fn evaluate(&self, r: &Report) -> ThresholdResult {
        let observed = self.observe(r);
        ThresholdResult {
            expr: self.expr.clone(),
            observed,
            observed_text: observed
                .map(|v| format_value(v, self.metric.kind()))
                .unwrap_or_else(|| "no data".into()),
            passed: observed.is_some_and(|v| self.op.holds(v, self.limit)),
        }
    }
}

fn parse_metric(expr: &str, m: &str, at: usize) -> Result<Metric, ThresholdError> {
    let known = "success_rate, throughput, request_rate, failed_flows, errors, errors.CLASS, flow.STAT, flow_intended.STAT, STEP.STAT, STEP.success_rate, STEP.errors (STAT: min p50 p90 p95 p99 p999 max mean), outage.total, outage.max, recovery, availability";
    if let Some(bad) = m
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(err(
            expr,
            at + bad.0,
            format!("unexpected {:?} in the metric", bad.1),
        ));
    }
    let simple = match m {
        "success_rate" => Some(Metric::SuccessRate),
        "throughput" => Some(Metric::Throughput),
        "request_rate" | "rps" => Some(Metric::RequestRate),
        "failed_flows" => Some(Metric::FailedFlows),
        "errors" => Some(Metric::Errors(None)),
        "outage.total" => Some(Metric::OutageTotal),
        "outage.max" => Some(Metric::OutageMax),
        "recovery" => Some(Metric::Recovery),
        "availability" => Some(Metric::Availability),
        _ => None,
    };
    if let Some(s) = simple {
        return Ok(s);
    }
    let Some((scope, field)) = m.rsplit_once('.') else {
        return Err(err(
            expr,
            at,
            format!("unknown metric `{m}`: known metrics are {known}"),
        ));
    };
    let field_at = at + scope.len() + 1;
    if scope.is_empty() {
        return Err(err(expr, at, "missing scope before `.`"));
    }
    if scope == "errors" {
        return if ERROR_CLASSES.contains(&field) {
            Ok(Metric::Errors(Some(field.to_string())))
        } else {
            Err(err(
                expr,
                field_at,
                format!(
                    "unknown error class `{field}`: classes are {}",
                    ERROR_CLASSES.join(", ")
                ),
            ))
        };
    }
    if scope == "flow_intended" {
        return Stat::parse(field).map(Metric::IntendedLatency).ok_or_else(|| {
            err(
                expr,
                field_at,
                format!("unknown statistic `{field}`: use min, p50, p90, p95, p99, p999, max or mean"),
            )
        });
    }
    let step = (scope != "flow").then(|| scope.to_string());
    if let Some(stat) = Stat::parse(field) {
        return Ok(Metric::Latency { step, stat });
    }
    match (field, step) {
        ("success_rate", Some(s)) => Ok(Metric::StepSuccessRate(s)),
        ("success_rate", None) => Ok(Metric::SuccessRate),
        ("errors", Some(s)) => Ok(Metric::StepErrors(s)),
        ("errors", None) => Ok(Metric::FailedFlows),
        _ => Err(err(
            expr,
            field_at,
            format!("unknown statistic `{field}`: use min, p50, p90, p95, p99, p999, max, mean, success_rate or errors"),
        )),
    }
}

fn parse_value(expr: &str, v: &str, at: usize, kind: Kind) -> Result<f64, ThresholdError> {
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(v.len());
    let (num_text, unit) = v.split_at(split);
    let unit_at = at + split;
    let num: f64 = num_text
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite())
        .ok_or_else(|| err(expr, at, format!("`{num_text}` is not a number")))?;
    let unit = unit.trim();
    match kind {
        Kind::Latency => {
            let ms = match unit {
                "us" | "µs" => num / 1000.0,
                "ms" => num,
                "s" => num * 1000.0,
                "m" | "min" => num * 60_000.0,
                "" => {
                    return Err(err(
                        expr,
                        unit_at,
                        "a latency needs a unit: us, ms, s or m (e.g. 500ms)",
                    ))
                }
                _ => {
                    return Err(err(
                        expr,
                        unit_at,
                        format!("unknown time unit `{unit}`: use us, ms, s or m"),
                    ))
                }
            };
            if ms < 0.0 {
                return Err(err(expr, at, "a latency cannot be negative"));
            }
            Ok(ms)
        }
        Kind::Ratio => {
            let r = match unit {
                "%" => num / 100.0,
                "" => num,
                _ => {
                    return Err(err(
                        expr,
                        unit_at,
                        format!("unknown unit `{unit}` for a rate of success: write 0.99 or 99%"),
                    ))
                }
            };
            if !(0.0..=1.0).contains(&r) {
                return Err(err(
                    expr,
                    at,
                    "a success rate is between 0 and 1 (or 0% and 100%)",
                ));
            }
            Ok(r)
        }
        Kind::Rate => match unit {
            "/s" => Ok(num),
            "/m" | "/min" => Ok(num / 60.0),
            "" => Err(err(
                expr,
                unit_at,
                "a throughput needs a unit: /s or /m (e.g. 10/s)",
            )),
            _ => Err(err(
                expr,
                unit_at,
                format!("unknown rate unit `{unit}`: use /s or /m"),
            )),
        },
        Kind::Count => {
            if !unit.is_empty() {
                return Err(err(
                    expr,
                    unit_at,
                    format!("a count takes no unit, found `{unit}`"),
                ));
            }
            if num < 0.0 || num.fract() != 0.0 {
                return Err(err(expr, at, "a count is a whole number, 0 or more"));
            }
            Ok(num)
        }
    }
}

fn format_value(v: f64, kind: Kind) -> String {
    match kind {
        Kind::Latency if v >= 1000.0 => format!("{:.3}s", v / 1000.0),
        Kind::Latency => format!("{v:.1}ms"),
        Kind::Ratio => format!("{:.2}%", v * 100.0),
        Kind::Rate => format!("{v:.2}/s"),
        Kind::Count => format!("{v}"),
    }
}

/// Parses every expression, and checks step names against `steps`.
pub fn parse_all(exprs: &[String], steps: &[String]) -> Result<Vec<Threshold>, ThresholdError> {
    exprs
        .iter()
        .map(|e| {
            let t = Threshold::parse(e)?;
            t.check_steps(steps)?;
            Ok(t)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_and_unit_parses() {
        let cases: &[(&str, Op, f64)] = &[
            ("success_rate>=0.99", Op::Ge, 0.99),
            ("success_rate >= 99%", Op::Ge, 0.99),
            ("flow.p95<500ms", Op::Lt, 500.0),
            ("login.p99<=250ms", Op::Le, 250.0),
            ("register.mean<1s", Op::Lt, 1000.0),
            ("verify.p50>100us", Op::Gt, 0.1),
            ("verify.p50>100µs", Op::Gt, 0.1),
            ("flow.max<2m", Op::Lt, 120_000.0),
            ("flow.p999 < 1.5s", Op::Lt, 1500.0),
            ("flow_intended.p99<2s", Op::Lt, 2000.0),
            ("errors.timeout==0", Op::Eq, 0.0),
            ("errors!=3", Op::Ne, 3.0),
            ("throughput>=10/s", Op::Ge, 10.0),
            ("throughput>=600/m", Op::Ge, 10.0),
            ("request_rate>1/s", Op::Gt, 1.0),
            ("failed_flows<=2", Op::Le, 2.0),
            ("login.success_rate>=100%", Op::Ge, 1.0),
            ("login.errors==0", Op::Eq, 0.0),
        ];
        for (e, op, limit) in cases {
            let t = Threshold::parse(e).unwrap_or_else(|x| panic!("{e}: {x}"));
            assert_eq!(t.op, *op, "{e}");
            assert!((t.limit - limit).abs() < 1e-9, "{e}: {}", t.limit);
        }
    }

    #[test]
    fn malformed_expressions_name_the_position() {
        let cases: &[(&str, usize, &str)] = &[
            ("flow.p95 500ms", 14, "no comparison"),
            ("flow.p95<500", 12, "needs a unit"),
            ("flow.p95<500parsecs", 12, "unknown time unit"),
            ("flow.p42<1s", 5, "unknown statistic"),
            ("lateness<1s", 0, "unknown metric"),
            ("<1s", 0, "missing metric"),
            ("flow.p95<", 9, "missing value"),
            ("flow.p95<<1s", 9, "two operators"),
            ("success_rate>=1.5", 14, "between 0 and 1"),
            ("throughput>=10", 14, "needs a unit"),
            ("errors.timeout==0.5", 16, "whole number"),
            ("errors.slow==0", 7, "unknown error class"),
            ("errors==3ms", 9, "takes no unit"),
            ("flow.p95<abc", 9, "not a number"),
            ("fl ow.p95<1s", 2, "unexpected"),
        ];
        for (e, offset, needle) in cases {
            let x = Threshold::parse(e).unwrap_err();
            assert_eq!(x.offset, *offset, "{e}: {x}");
            assert!(x.message.contains(needle), "{e}: {x}");
            assert!(x.to_string().contains(&format!("column {}", offset + 1)));
        }
    }

    #[test]
    fn unknown_steps_are_named() {
        let steps = vec!["register".to_string(), "login".to_string()];
        let e = parse_all(&["logon.p99<1s".into()], &steps).unwrap_err();
        assert!(
            e.message.contains("unknown step `logon`") && e.message.contains("register, login")
        );
        assert!(parse_all(&["login.p99<1s".into(), "flow.p50<1s".into()], &steps).is_ok());
    }
}
