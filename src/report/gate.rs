//! The gate's results, as they are stored in a report: each threshold's outcome and a
//! baseline comparison's rows with their verdicts. Plain data; [`crate::gate`] computes
//! them.

use serde::{Deserialize, Serialize};

use crate::criteria::CompareOptions;

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

/// What a row's change means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Worse by more than the tolerance.
    Regression,
    /// Better by more than the tolerance.
    Improvement,
    /// Within the tolerance.
    Unchanged,
    /// One side has no data (a step absent, or no successful request to time).
    NoData,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Regression => "❌ regression",
            Verdict::Improvement => "✅ improvement",
            Verdict::Unchanged => "ok",
            Verdict::NoData => "no data",
        }
    }
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    /// `flow`, a step name, or a mix's scenario's flow (`scenario:flow`).
    pub scope: String,
    /// `p50_ms`, `p95_ms`, `p99_ms`, `mean_ms`, `success_rate`, `flows_per_s`.
    pub metric: String,
    pub base: Option<f64>,
    pub new: Option<f64>,
    /// new − base.
    pub delta: Option<f64>,
    /// (new − base) / base.
    pub relative: Option<f64>,
    pub verdict: Verdict,
}

/// A whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// What the base was (a path, and when it was generated).
    pub base: String,
    pub options: CompareOptions,
    pub rows: Vec<CompareRow>,
}

impl Comparison {
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.verdict == Verdict::Regression)
    }

    pub fn regressions(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regression)
            .count()
    }
}
