//! The `closed` object of a step in the JSON report: times around the requests whose
//! connection the server closed without answering ([`crate::samples::FailureKind::Closed`]),
//! summarised from [`ClosedTimes`] and read back into them for `compare` and `merge`.

use serde::{Deserialize, Serialize};

use crate::stats::{ClosedTimes, StepStats};

/// Times around the `closed` failures of a step, ms.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ClosedSummary {
    pub count: u64,
    /// Of them, on kept-alive (reused) connections.
    pub reused: u64,
    pub idle_mean_ms: f64,
    pub idle_max_ms: f64,
    pub waited_mean_ms: f64,
    pub waited_max_ms: f64,
}

impl ClosedSummary {
    /// `None` when the step had no `closed` failure.
    pub(super) fn of(st: &StepStats) -> Option<ClosedSummary> {
        let c = &st.closed;
        let mean = |sum: u64| sum as f64 / c.count.max(1) as f64 / 1000.0;
        (c.count > 0).then(|| ClosedSummary {
            count: c.count,
            reused: c.reused,
            idle_mean_ms: mean(c.idle_sum_us),
            idle_max_ms: c.idle_max_us as f64 / 1000.0,
            waited_mean_ms: mean(c.waited_sum_us),
            waited_max_ms: c.waited_max_us as f64 / 1000.0,
        })
    }

    /// The counters this summary was made from (sums rebuilt from the means).
    pub(super) fn times(&self) -> ClosedTimes {
        let us = |ms: f64| (ms * 1000.0).round() as u64;
        ClosedTimes {
            count: self.count,
            reused: self.reused,
            idle_sum_us: us(self.idle_mean_ms * self.count as f64),
            idle_max_us: us(self.idle_max_ms),
            waited_sum_us: us(self.waited_mean_ms * self.count as f64),
            waited_max_us: us(self.waited_max_ms),
        }
    }
}
