//! What a run is judged by, as the user wrote it: threshold expressions
//! (`flow.p95<500ms`, `success_rate>=99%`) parsed into [`Threshold`]s with the column of
//! any mistake, and the tolerances of a baseline comparison ([`CompareOptions`]).
//!
//! An input: it is read by the scenario (its `[thresholds]`) and the options, and knows
//! nothing of reports; evaluating a threshold against a report is [`crate::gate`]'s work.

use serde::{Deserialize, Serialize};

use crate::samples::LatencySummary;

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

    pub(crate) fn holds(self, observed: f64, limit: f64) -> bool {
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
    pub(crate) fn parse(s: &str) -> Option<Stat> {
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
pub(crate) enum Kind {
    Latency,
    Ratio,
    Rate,
    Count,
}

impl Metric {
    pub(crate) fn kind(&self) -> Kind {
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

pub(crate) fn format_value(v: f64, kind: Kind) -> String {
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

/// Tolerances of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompareOptions {
    /// Relative change of latency or throughput tolerated (0.10 = 10%).
    pub max_regression: f64,
    /// Drop of success rate tolerated, in absolute terms (0.01 = one percentage point):
    /// success rates live near 100%, where a relative tolerance would hide real failures.
    pub max_success_drop: f64,
    /// Latency changes smaller than this many ms are noise whatever their ratio
    /// (0.2 ms → 0.3 ms is +50% and means nothing for an auth flow).
    pub min_latency_delta_ms: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            max_regression: 0.10,
            max_success_drop: 0.01,
            min_latency_delta_ms: 1.0,
        }
    }
}
