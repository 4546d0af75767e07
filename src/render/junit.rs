//! JUnit XML for CI systems: one test case per threshold, per step, and per regressed or
//! compared baseline row, so a CI shows a failing gate natively. Written with `quick-junit`
//! (the crate nextest uses), which handles escaping and the schema's attribute names.

use std::time::Duration;

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};

use super::Exporter;
use crate::gate::Verdict;
use crate::report::Report;

pub struct JUnit;

fn failed(message: String) -> TestCaseStatus {
    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
    s.set_message(message);
    s
}

impl Exporter for JUnit {
    fn extension(&self) -> &'static str {
        "xml"
    }

    fn render(&self, r: &Report) -> anyhow::Result<Vec<u8>> {
        let mut report = quick_junit::Report::new(format!("authbench {}", r.config.scenario));
        report.set_time(Duration::from_secs_f64(r.summary.wall_time_s.max(0.0)));

        if !r.thresholds.is_empty() {
            let mut suite = TestSuite::new("authbench.thresholds");
            for t in &r.thresholds {
                let status = if t.passed {
                    TestCaseStatus::success()
                } else {
                    failed(format!("{} failed: observed {}", t.expr, t.observed_text))
                };
                let mut case = TestCase::new(t.expr.clone(), status);
                case.set_classname("authbench.thresholds");
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }

        let mut steps = TestSuite::new("authbench.steps");
        for s in &r.steps {
            let status = if s.requests > 0 && s.failed == 0 {
                TestCaseStatus::success()
            } else {
                let causes: Vec<String> = r
                    .failures
                    .iter()
                    .filter(|f| f.step == s.name)
                    .map(|f| format!("{} ×{}", f.detail, f.count))
                    .collect();
                failed(format!(
                    "{} of {} requests failed: {}",
                    s.failed,
                    s.requests,
                    if causes.is_empty() {
                        "never ran".to_string()
                    } else {
                        causes.join(", ")
                    }
                ))
            };
            let mut case = TestCase::new(s.name.clone(), status);
            case.set_classname("authbench.steps");
            case.set_time(Duration::from_secs_f64(s.latency.mean_ms.max(0.0) / 1000.0));
            steps.add_test_case(case);
        }
        report.add_test_suite(steps);

        if let Some(c) = &r.comparison {
            let mut suite = TestSuite::new("authbench.baseline");
            for row in &c.rows {
                let name = format!("{}.{}", row.scope, row.metric);
                let status = if row.verdict == Verdict::Regression {
                    failed(format!(
                        "{name} regressed: {:.3} -> {:.3} ({:+.1}%)",
                        row.base.unwrap_or(f64::NAN),
                        row.new.unwrap_or(f64::NAN),
                        row.relative.unwrap_or(f64::NAN) * 100.0
                    ))
                } else {
                    TestCaseStatus::success()
                };
                let mut case = TestCase::new(name, status);
                case.set_classname("authbench.baseline");
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        Ok(report.to_string()?.into_bytes())
    }
}
