//! The run's results as plain data: one serializable struct that *is* the JSON format,
//! with its parts (step and flow figures, failures, the gate's results in [`gate`], the
//! diagnosis in [`diagnosis`], outage windows, the timeline and usage), built from the
//! collector's [`Stats`], read back from a saved JSON ([`read`]) and added up ([`merge`]).
//!
//! Nothing here analyses or renders: the analyses (`outage`, `diagnosis`, `gate`) fill the
//! parts in, and the renderers (`render`) read them.

mod closed;
mod config;
pub mod diagnosis;
pub mod gate;
pub mod histogram;
pub mod merge;
mod saved;
mod step;

pub use config::RunConfig;

use std::collections::BTreeMap;

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub use closed::ClosedSummary;
pub use saved::read;
pub use step::StepReport;

use crate::samples::{FailureKind, LatencySummary};
use crate::stats::Stats;
use gate::{Comparison, ThresholdResult};

/// The version of the JSON report format; bumped on any incompatible change.
pub const SCHEMA: &str = "authbench.report/1";

/// Everything a run report says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// `authbench <version>`.
    pub tool: String,
    /// When the run ended, RFC 3339 UTC.
    pub generated_at: String,
    /// The run was interrupted; figures cover only the flows that finished.
    pub partial: bool,
    pub config: RunConfig,
    pub summary: Summary,
    /// Duration of successful flows.
    pub flow: LatencySummary,
    /// Duration of failed flows (up to and including the failing step).
    pub flow_failed: LatencySummary,
    /// Successful flows timed from their *intended* start (open loop: corrected for
    /// coordinated omission; closed loop: equal to `flow`).
    #[serde(default)]
    pub flow_intended: LatencySummary,
    pub steps: Vec<StepReport>,
    /// Every failure, by step and kind, most frequent first.
    pub failures: Vec<FailureRow>,
    /// Thresholds checked after the run (`--threshold`, the scenario's `[thresholds]`).
    #[serde(default)]
    pub thresholds: Vec<ThresholdResult>,
    /// The comparison with `--baseline`, if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// What the figures say about the server (calibration vs the run), when calibrated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<diagnosis::Diagnosis>,
    /// Per-second figures over the run (bounded; see [`crate::timeline`]).
    #[serde(default)]
    pub timeline: crate::timeline::Timeline,
    /// CPU and memory of the generator, the machine and the server during the measured
    /// run, when sampled (see [`crate::usage`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::usage::Usage>,
    /// The protocol spoken, with HTTP/2's connections, streams, stream waits, `GOAWAY`s
    /// and resets; absent for plain HTTP/1.1 runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<crate::engine::transport::h2count::HttpSummary>,
    /// Outage windows (spans where every attempt failed to reach a serving target) and the
    /// availability figures around them (see [`crate::outage`]).
    #[serde(default)]
    pub availability: crate::outage::Availability,
    /// The hosts the first successful flow's steps, and the redirects they followed, went to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<crate::engine::seen::HostSeen>,
    /// The JWTs the first successful flow's variables held, as seen (not verified).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<crate::engine::claims::TokenFacts>,
    /// How the `*_histogram` fields are encoded: [`histogram::ENCODING`].
    pub histogram_encoding: String,
    /// The full histogram of successful flow durations (microseconds).
    pub flow_histogram: String,
    /// The full histogram of failed flow durations (microseconds).
    pub flow_failed_histogram: String,
    /// The full histogram of successful flows from their intended start.
    #[serde(default)]
    pub flow_intended_histogram: String,
    /// A mix's scenarios, each with its own report (the figures above are then the whole:
    /// every scenario's flows, its steps named `scenario:step`). Absent for one scenario.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mix: Vec<MixPart>,
}

/// One scenario of a mix run: its weight and its own report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MixPart {
    pub scenario: String,
    pub weight: u64,
    pub report: Report,
}

/// The report format's "Final Performance Metrics" (docs/report-format.md), and a few more.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Flows that ran to an end (success or a failed step).
    pub total_flows: u64,
    pub successful_flows: u64,
    pub failed_flows: u64,
    /// Successful / total, 0..=1 (0 when no flow ran).
    pub success_rate: f64,
    /// Mean duration of successful flows in seconds (`null` when none succeeded).
    pub average_flow_time_s: Option<f64>,
    /// From the first flow's start to the last flow's end.
    pub wall_time_s: f64,
    /// Finished flows per second of wall time.
    pub flows_per_s: f64,
    /// HTTP requests sent.
    pub requests: u64,
    /// Requests per second of wall time.
    pub requests_per_s: f64,
    /// Flows started but cut off by an interrupt (not counted above).
    pub abandoned_flows: u64,
    /// Warm-up flows: run, not measured.
    #[serde(default)]
    pub warmup_flows: u64,
    /// Open loop: flows that started more than 10 ms after their intended start.
    #[serde(default)]
    pub late_flows: u64,
    /// Open loop: flows due before the end that could not start at all.
    #[serde(default)]
    pub dropped_flows: u64,
    /// Raw attempts: flows, plus the connection probes made while the target refused
    /// connections (closed loop), which are not flows.
    #[serde(default)]
    pub attempts: u64,
    /// `order = "unique"` data rows ran out after this many rows, and the run ended there
    /// (by design, not an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feeder_exhausted_after: Option<u64>,
}

/// One kind of failure at one step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailureRow {
    pub step: String,
    pub class: String,
    pub detail: String,
    pub count: u64,
}

/// What [`Report::build`] needs besides the stats.
pub struct ReportInput<'a> {
    pub stats: &'a Stats,
    pub config: RunConfig,
    pub wall: std::time::Duration,
    pub partial: bool,
    pub abandoned: u64,
    pub generated_at: chrono::DateTime<chrono::Utc>,
}

impl Report {
    pub fn build(input: ReportInput<'_>) -> Report {
        let s = input.stats;
        let total = s.flows_total();
        let ok = s.flows_ok();
        let wall_s = input.wall.as_secs_f64();
        let per_s = |n: u64| if wall_s > 0.0 { n as f64 / wall_s } else { 0.0 };
        let mut failures: Vec<FailureRow> = s
            .steps
            .iter()
            .flat_map(|st| {
                st.failures.iter().map(|(k, n)| FailureRow {
                    step: st.name.clone(),
                    class: k.class().to_string(),
                    detail: k.detail(),
                    count: *n,
                })
            })
            .collect();
        failures.sort_by_key(|f| std::cmp::Reverse(f.count));
        Report {
            schema: SCHEMA.to_string(),
            tool: format!("authbench {}", env!("CARGO_PKG_VERSION")),
            generated_at: input
                .generated_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            partial: input.partial,
            config: input.config,
            summary: Summary {
                total_flows: total,
                successful_flows: ok,
                failed_flows: s.flows_failed(),
                success_rate: if total > 0 {
                    ok as f64 / total as f64
                } else {
                    0.0
                },
                average_flow_time_s: (ok > 0).then(|| s.flow_ok.mean() / 1e6),
                wall_time_s: wall_s,
                flows_per_s: per_s(total),
                requests: s.requests(),
                requests_per_s: per_s(s.requests()),
                abandoned_flows: input.abandoned,
                warmup_flows: s.warmup_flows,
                late_flows: 0,
                dropped_flows: 0,
                attempts: total + s.availability.connection_probes,
                feeder_exhausted_after: None,
            },
            flow: LatencySummary::of(&s.flow_ok),
            flow_failed: LatencySummary::of(&s.flow_failed),
            flow_intended: LatencySummary::of(&s.flow_intended),
            steps: s
                .steps
                .iter()
                .map(|st| {
                    let mut by_class = BTreeMap::new();
                    for (k, n) in &st.failures {
                        *by_class.entry(k.class().to_string()).or_insert(0) += n;
                    }
                    StepReport {
                        name: st.name.clone(),
                        requests: st.attempts,
                        ok: st.ok,
                        failed: st.attempts - st.ok,
                        latency: LatencySummary::of(&st.latency),
                        ttfb: LatencySummary::of(&st.ttfb),
                        connect: LatencySummary::of(&st.connect),
                        tls: LatencySummary::of(&st.tls),
                        failures: by_class,
                        closed: ClosedSummary::of(st),
                        bytes_received: st.bytes,
                        redirects: st.redirects,
                        histogram: histogram::encode(&st.latency),
                        ttfb_histogram: histogram::encode(&st.ttfb),
                        connect_histogram: histogram::encode(&st.connect),
                        tls_histogram: histogram::encode(&st.tls),
                    }
                })
                .collect(),
            failures,
            thresholds: Vec::new(),
            comparison: None,
            diagnosis: None,
            usage: None,
            http: None,
            hosts: Vec::new(),
            tokens: Vec::new(),
            timeline: s.timeline.clone(),
            availability: {
                let mut a = s.availability.clone();
                a.recount(total, ok);
                a
            },
            histogram_encoding: histogram::ENCODING.to_string(),
            flow_histogram: histogram::encode(&s.flow_ok),
            flow_failed_histogram: histogram::encode(&s.flow_failed),
            flow_intended_histogram: histogram::encode(&s.flow_intended),
            mix: Vec::new(),
        }
    }

    /// The measurements behind a saved report, histograms included, so figures can be
    /// recomputed or added to another run's.
    pub fn stats(&self) -> anyhow::Result<Stats> {
        let names: Vec<String> = self.steps.iter().map(|s| s.name.clone()).collect();
        let mut stats = Stats::new(&names);
        for (st, rep) in stats.steps.iter_mut().zip(&self.steps) {
            st.attempts = rep.requests;
            st.ok = rep.ok;
            st.bytes = rep.bytes_received;
            st.redirects = rep.redirects;
            st.latency = histogram::decode(&rep.histogram)
                .with_context(|| format!("the histogram of step '{}'", rep.name))?;
            if !rep.ttfb_histogram.is_empty() {
                st.ttfb = histogram::decode(&rep.ttfb_histogram)
                    .with_context(|| format!("the ttfb histogram of step '{}'", rep.name))?;
            }
            if let Some(c) = &rep.closed {
                st.closed = c.times();
            }
            if !rep.connect_histogram.is_empty() {
                st.connect = histogram::decode(&rep.connect_histogram)
                    .with_context(|| format!("the connect histogram of step '{}'", rep.name))?;
            }
            if !rep.tls_histogram.is_empty() {
                st.tls = histogram::decode(&rep.tls_histogram)
                    .with_context(|| format!("the TLS histogram of step '{}'", rep.name))?;
            }
        }
        for f in &self.failures {
            if let Some(st) = stats.steps.iter_mut().find(|s| s.name == f.step) {
                let k = FailureKind::Loaded {
                    class: f.class.as_str().into(),
                    detail: f.detail.as_str().into(),
                };
                *st.failures.entry(k).or_insert(0) += f.count;
            }
        }
        stats.flow_ok = histogram::decode(&self.flow_histogram).context("the flow histogram")?;
        stats.flow_failed =
            histogram::decode(&self.flow_failed_histogram).context("the failed-flow histogram")?;
        stats.flow_intended = if self.flow_intended_histogram.is_empty() {
            stats.flow_ok.clone()
        } else {
            histogram::decode(&self.flow_intended_histogram)
                .context("the intended-start flow histogram")?
        };
        stats.warmup_flows = self.summary.warmup_flows;
        stats.timeline = self.timeline.clone();
        stats.availability = self.availability.clone();
        Ok(stats)
    }

    /// Whether the run was over TLS: any step has TLS handshakes, or the target is
    /// `https://` (the connect tables then get TLS columns).
    pub fn over_tls(&self) -> bool {
        self.config.target.starts_with("https://") || self.steps.iter().any(|s| s.tls.count > 0)
    }

    /// Whether every threshold passed and no baseline row regressed.
    pub fn gate_passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed)
            && self.comparison.as_ref().is_none_or(|c| !c.regressed())
    }

    /// The "Final Performance Metrics" block of docs/report-format.md, line for line.
    pub fn metrics_block(&self) -> String {
        let s = &self.summary;
        let avg = match s.average_flow_time_s {
            Some(t) => format!("{t:.3}s"),
            None => "n/a (no successful flow)".to_string(),
        };
        format!(
            "Total Tests Executed: {}\nSuccessful Flows: {}\nFailed Flows: {}\nSuccess Rate: {:.2}%\nAverage Flow Time: {}\n",
            s.total_flows,
            s.successful_flows,
            s.failed_flows,
            s.success_rate * 100.0,
            avg
        )
    }

    /// One line: what happened.
    pub fn verdict(&self) -> String {
        let s = &self.summary;
        let what = if self.config.in_process_server {
            match self.config.bcrypt_cost {
                Some(c) => format!("the in-process reference server (bcrypt cost {c})"),
                None => "the in-process reference server".to_string(),
            }
        } else {
            self.config.target.clone()
        };
        let failed_thresholds = self.thresholds.iter().filter(|t| !t.passed).count();
        let regressions = self.comparison.as_ref().map_or(0, |c| c.regressions());
        let head = if self.partial {
            "⚠️ PARTIAL (interrupted)".to_string()
        } else if failed_thresholds > 0 || regressions > 0 {
            "❌ GATE FAILED".to_string()
        } else if s.total_flows > 0 && s.failed_flows == 0 {
            "✅ ALL FLOWS SUCCEEDED".to_string()
        } else {
            "❌ FLOWS FAILED".to_string()
        };
        let load = if self.config.load_model == "open" {
            format!(
                "in an open loop at {:.2} flows/s (at most {} in flight)",
                s.flows_per_s, self.config.concurrency
            )
        } else {
            format!("at concurrency {}", self.config.concurrency)
        };
        let mut line = format!(
            "**{head}**: {} of {} flows succeeded ({:.2}%) against {what} {load}",
            s.successful_flows,
            s.total_flows,
            s.success_rate * 100.0,
        );
        if let Some(t) = s.average_flow_time_s {
            line.push_str(&format!("; average flow time {t:.3}s"));
        }
        if let Some(f) = self.failures.first() {
            line.push_str(&format!(
                "; most frequent failure: {} at `{}` ({}×)",
                f.detail, f.step, f.count
            ));
        }
        if !self.thresholds.is_empty() {
            line.push_str(&format!(
                "; thresholds: {} of {} passed",
                self.thresholds.len() - failed_thresholds,
                self.thresholds.len()
            ));
        }
        if self.comparison.is_some() {
            line.push_str(&format!("; baseline: {regressions} regression(s)"));
        }
        if self.partial {
            line.push_str(&format!(
                "; {} of {} planned flows finished",
                s.total_flows, self.config.flows_planned
            ));
        }
        if let Some(n) = s.feeder_exhausted_after {
            line.push_str(&format!("; feeder exhausted after {n} rows"));
        }
        line.push('.');
        line
    }
}
