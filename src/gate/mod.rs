//! The CI gate: threshold expressions (`flow.p95<500ms`, parsed in [`crate::criteria`])
//! checked against a report, and baseline comparisons (`compare BASE NEW`). Both work on
//! [`Report`]s, so they apply the same way to a fresh run, a saved JSON and a merged one;
//! their results are plain data in [`crate::report::gate`].

pub mod compare;

use crate::report::Report;

pub use crate::criteria::{
    parse_all, CompareOptions, Metric, Op, Stat, Threshold, ThresholdError, ERROR_CLASSES,
};
pub use crate::report::gate::{CompareRow, Comparison, ThresholdResult, Verdict};
pub use compare::{compare, parse_fraction};

use crate::criteria::format_value;

impl Threshold {
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
