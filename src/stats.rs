//! Measurements: the plain samples workers send, and the HDR histograms and counters the
//! collector folds them into.
//!
//! Nothing here stores a per-request record: memory depends on the number of steps and
//! distinct failure kinds, not on the number of requests. Histograms count microseconds,
//! keep 3 significant figures and resize themselves, so a 60-second request (or a
//! 60-minute one) is recorded, never dropped and never a panic.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Why a step failed. Details are bounded (they come from the scenario, not from the
/// response), so the set of distinct kinds in a run stays small.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureKind {
    /// No TCP connection could be made (refused, unreachable, DNS).
    Connect,
    /// The TLS handshake of a new connection failed.
    Tls,
    /// This machine had no local port left for a new connection (`EADDRNOTAVAIL`): the
    /// generator's limit, not the target's.
    Ports,
    /// This process had no file descriptor left for a new connection (`EMFILE`, `ENFILE`).
    Descriptors,
    /// The request or the connection attempt exceeded its timeout.
    Timeout,
    /// A response came with a status the step does not accept.
    Status(u16),
    /// The body was needed as JSON and is not JSON.
    NotJson,
    /// A value the step extracts is missing (a JSON pointer or a header).
    Missing(Arc<str>),
    /// A `check` on the body failed (the pointer is named).
    Check(Arc<str>),
    /// The server ended the connection (FIN, or RST when `reset`) before a response head
    /// came: it closed without answering. `reused`: the request went on a kept-alive
    /// connection (the classic keep-alive race), not on one opened for it.
    Closed { reused: bool, reset: bool },
    /// The connection broke mid-response or the server spoke invalid HTTP.
    Transport,
    /// The request could not be built (e.g. an extracted value is not a valid header).
    Request,
    /// A failure read back from a saved report (class and detail as written there).
    Loaded { class: Arc<str>, detail: Arc<str> },
}

impl FailureKind {
    /// The class of failure, a stable identifier for JSON and thresholds.
    pub fn class(&self) -> &str {
        match self {
            FailureKind::Loaded { class, .. } => class,
            FailureKind::Connect => "connect",
            FailureKind::Tls => "tls",
            FailureKind::Ports => "ports",
            FailureKind::Descriptors => "descriptors",
            FailureKind::Timeout => "timeout",
            FailureKind::Status(_) => "status",
            FailureKind::NotJson | FailureKind::Missing(_) => "bad_body",
            FailureKind::Check(_) => "check",
            FailureKind::Closed { .. } => "closed",
            FailureKind::Transport => "transport",
            FailureKind::Request => "request",
        }
    }

    /// What exactly went wrong, for the failure tables.
    pub fn detail(&self) -> String {
        match self {
            FailureKind::Connect => "connection failed".into(),
            FailureKind::Tls => "TLS handshake failed".into(),
            FailureKind::Ports => "no local port left on this machine (EADDRNOTAVAIL): widen \
                 net.ipv4.ip_local_port_range, set net.ipv4.tcp_tw_reuse=1, or spread \
                 connections over --source-addr"
                .into(),
            FailureKind::Descriptors => "no file descriptor left in authbench (EMFILE/ENFILE): \
                 raise its limit (ulimit -n; authbench raises the soft limit to the hard one) \
                 or lower the concurrency"
                .into(),
            FailureKind::Timeout => "no complete response in time".into(),
            FailureKind::Status(c) => format!("unexpected status {c}"),
            FailureKind::NotJson => "body is not JSON".into(),
            FailureKind::Missing(p) => format!("missing {p}"),
            FailureKind::Check(p) => format!("check failed at {p}"),
            FailureKind::Closed { reused, reset } => format!(
                "server {} a {} connection without answering",
                if *reset { "reset" } else { "closed" },
                if *reused { "kept-alive" } else { "new" }
            ),
            FailureKind::Transport => "connection broken or invalid HTTP".into(),
            FailureKind::Request => "request could not be built".into(),
            FailureKind::Loaded { detail, .. } => detail.to_string(),
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class(), self.detail())
    }
}

/// One measurement, sent by a worker to the collector.
#[derive(Debug, Clone)]
pub enum Sample {
    /// One step (HTTP request) of a flow finished.
    Step {
        /// Index of the step in the scenario.
        step: usize,
        /// From just before the request was handed to the HTTP client to the last byte of
        /// the response body (or to the failure).
        elapsed_us: u64,
        /// From the same start to the response's status line and headers (0 without one).
        ttfb_us: u64,
        /// Whether a complete response arrived (a status, whatever it was). Requests
        /// without one (connect errors, timeouts) are counted but not put into the
        /// latency histogram, whose figures would otherwise be the timeout setting.
        responded: bool,
        /// `None` when the step succeeded.
        failure: Option<FailureKind>,
    },
    /// A step's request opened a new connection, whose TCP connect took `us`. Requests
    /// on a kept-alive connection send none.
    Connect { step: usize, us: u64 },
    /// A step's request failed as [`FailureKind::Closed`]: how long its connection had been
    /// idle before the request (0 for a new one) and how long the request waited for the
    /// close. Sent beside the step's [`Sample::Step`].
    Closed {
        step: usize,
        reused: bool,
        idle_us: u64,
        waited_us: u64,
    },
    /// A connection probe, made while the target refused connections (closed loop: one
    /// worker probes with back-off while the others wait). An attempt, not a flow.
    Probe { ok: bool },
    /// That new connection's TLS handshake took `us` (`https://` targets).
    Tls { step: usize, us: u64 },
    /// A whole flow finished: all its steps succeeded, or one failed and ended it.
    Flow {
        /// From the start of the first step to the end of the last one (service time).
        elapsed_us: u64,
        /// How late the flow started against its schedule; `elapsed + lateness` is the
        /// latency from the intended start (corrected for coordinated omission).
        lateness_us: u64,
        /// Index of the step that failed, if any.
        failed_step: Option<usize>,
        /// False for warm-up flows: counted for progress only.
        measured: bool,
    },
}

/// What a flow sends the collector, once, when it ends (or is cut off): its steps'
/// samples, any connects, then its [`Sample::Flow`]. One message per flow rather than per
/// step halves the channel traffic on one-request flows. Two samples are inline (a
/// one-request flow allocates nothing); longer flows spill to the heap, since every move
/// through the channel copies the inline part (six inline samples cost more in copies
/// than one allocation per flow saves).
pub type Batch = smallvec::SmallVec<[Sample; 2]>;

/// A histogram in microseconds that grows as needed.
pub fn new_histogram() -> Histogram<u64> {
    // Three significant figures and auto-resize: `new` cannot fail for sigfig 3.
    Histogram::new(3).expect("3 significant figures is a valid histogram precision")
}

/// Records a value, growing the histogram as needed. `saturating_record` would *clamp*
/// to the current top instead of resizing (hdrhistogram checks the clamp first), which
/// silently turns a 20 ms request into 2 µs in a fresh histogram: use `record`, and clamp
/// only if growing is impossible (values near `u64::MAX`).
pub fn record(h: &mut Histogram<u64>, us: u64) {
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

/// Figures for one step.
#[derive(Debug, Clone)]
pub struct StepStats {
    pub name: String,
    /// Requests sent.
    pub attempts: u64,
    /// Requests that passed every check of the step.
    pub ok: u64,
    /// Latency of every request that got a complete response, in microseconds.
    pub latency: Histogram<u64>,
    /// Time to the response headers of the same requests.
    pub ttfb: Histogram<u64>,
    /// Time to open a connection, for the requests that opened one.
    pub connect: Histogram<u64>,
    /// TLS handshake time of those connections (`https://`); its count is the TLS
    /// connections opened.
    pub tls: Histogram<u64>,
    /// Failure counts by kind.
    pub failures: BTreeMap<FailureKind, u64>,
    /// Idle and waiting times of the requests whose connection the server closed.
    pub closed: ClosedTimes,
}

/// Times around connections the server closed without answering (sums and maxima, so
/// they merge exactly), in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClosedTimes {
    pub count: u64,
    /// Of them, on kept-alive (reused) connections.
    pub reused: u64,
    /// Time the connection had been idle in the pool before the request was sent.
    pub idle_sum_us: u64,
    pub idle_max_us: u64,
    /// Time from sending the request to the close.
    pub waited_sum_us: u64,
    pub waited_max_us: u64,
}

impl ClosedTimes {
    pub fn add(&mut self, o: &ClosedTimes) {
        self.count += o.count;
        self.reused += o.reused;
        self.idle_sum_us = self.idle_sum_us.saturating_add(o.idle_sum_us);
        self.idle_max_us = self.idle_max_us.max(o.idle_max_us);
        self.waited_sum_us = self.waited_sum_us.saturating_add(o.waited_sum_us);
        self.waited_max_us = self.waited_max_us.max(o.waited_max_us);
    }
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Stats {
    pub steps: Vec<StepStats>,
    /// Durations of successful flows, in microseconds.
    pub flow_ok: Histogram<u64>,
    /// Durations of failed flows, in microseconds.
    pub flow_failed: Histogram<u64>,
    /// Successful flows from their intended start (service time + lateness).
    pub flow_intended: Histogram<u64>,
    /// Warm-up flows run and not measured.
    pub warmup_flows: u64,
    /// Per-second figures over the run (filled in by the collector).
    pub timeline: crate::timeline::Timeline,
    /// Outage windows and the figures around them (filled in by the collector).
    pub availability: crate::outage::Availability,
}

impl Stats {
    pub fn new(step_names: &[String]) -> Self {
        Stats {
            steps: step_names
                .iter()
                .map(|n| StepStats {
                    name: n.clone(),
                    attempts: 0,
                    ok: 0,
                    latency: new_histogram(),
                    ttfb: new_histogram(),
                    connect: new_histogram(),
                    tls: new_histogram(),
                    failures: BTreeMap::new(),
                    closed: ClosedTimes::default(),
                })
                .collect(),
            flow_ok: new_histogram(),
            flow_failed: new_histogram(),
            flow_intended: new_histogram(),
            warmup_flows: 0,
            timeline: Default::default(),
            availability: Default::default(),
        }
    }

    pub fn record(&mut self, sample: Sample) {
        match sample {
            Sample::Step {
                step,
                elapsed_us,
                ttfb_us,
                responded,
                failure,
            } => {
                let Some(s) = self.steps.get_mut(step) else {
                    return;
                };
                s.attempts += 1;
                if responded {
                    record(&mut s.latency, elapsed_us);
                    record(&mut s.ttfb, ttfb_us);
                }
                match failure {
                    None => s.ok += 1,
                    Some(k) => *s.failures.entry(k).or_insert(0) += 1,
                }
            }
            Sample::Connect { step, us } => {
                if let Some(s) = self.steps.get_mut(step) {
                    record(&mut s.connect, us);
                }
            }
            Sample::Tls { step, us } => {
                if let Some(s) = self.steps.get_mut(step) {
                    record(&mut s.tls, us);
                }
            }
            Sample::Flow {
                elapsed_us,
                lateness_us,
                failed_step,
                measured,
            } => {
                if !measured {
                    self.warmup_flows += 1;
                } else if failed_step.is_none() {
                    record(&mut self.flow_ok, elapsed_us);
                    record(
                        &mut self.flow_intended,
                        elapsed_us.saturating_add(lateness_us),
                    );
                } else {
                    record(&mut self.flow_failed, elapsed_us);
                }
            }
            Sample::Closed {
                step,
                reused,
                idle_us,
                waited_us,
            } => {
                if let Some(s) = self.steps.get_mut(step) {
                    s.closed.add(&ClosedTimes {
                        count: 1,
                        reused: u64::from(reused),
                        idle_sum_us: idle_us,
                        idle_max_us: idle_us,
                        waited_sum_us: waited_us,
                        waited_max_us: waited_us,
                    });
                }
            }
            // Counted by the collector's outage tracker, not here.
            Sample::Probe { .. } => {}
        }
    }

    pub fn flows_ok(&self) -> u64 {
        self.flow_ok.len()
    }

    pub fn flows_failed(&self) -> u64 {
        self.flow_failed.len()
    }

    pub fn flows_total(&self) -> u64 {
        self.flows_ok() + self.flows_failed()
    }

    pub fn requests(&self) -> u64 {
        self.steps.iter().map(|s| s.attempts).sum()
    }

    /// Adds another run's figures (same scenario) to these: counts and histograms add
    /// exactly, so percentiles of the sum are exact, not averages of percentiles.
    pub fn merge(&mut self, other: &Stats) {
        for (a, b) in self.steps.iter_mut().zip(&other.steps) {
            a.attempts += b.attempts;
            a.ok += b.ok;
            // Both histograms auto-resize, so adding cannot fail for lack of range.
            let _ = a.latency.add(&b.latency);
            let _ = a.ttfb.add(&b.ttfb);
            let _ = a.connect.add(&b.connect);
            let _ = a.tls.add(&b.tls);
            for (k, n) in &b.failures {
                *a.failures.entry(k.clone()).or_insert(0) += n;
            }
            a.closed.add(&b.closed);
        }
        let _ = self.flow_ok.add(&other.flow_ok);
        let _ = self.flow_failed.add(&other.flow_failed);
        let _ = self.flow_intended.add(&other.flow_intended);
        self.warmup_flows += other.warmup_flows;
        self.timeline.merge(&other.timeline);
        self.availability.merge(&other.availability);
    }
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct LatencySummary {
    pub count: u64,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            min_ms: ms(h.min()),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_huge_values_without_panic() {
        let mut s = Stats::new(&["a".into()]);
        for us in [0, 1, 60_000_000, 3_600_000_000, u64::MAX / 4] {
            s.record(Sample::Step {
                step: 0,
                elapsed_us: us,
                ttfb_us: 0,
                responded: true,
                failure: None,
            });
        }
        // An out-of-range step index is ignored, not a panic.
        s.record(Sample::Step {
            step: 9,
            elapsed_us: 1,
            ttfb_us: 0,
            responded: true,
            failure: None,
        });
        assert_eq!(s.steps[0].latency.len(), 5);
        let sum = LatencySummary::of(&s.steps[0].latency);
        assert!(sum.max_ms >= 3_600_000.0);
    }

    #[test]
    fn counts_failures_and_flows() {
        let mut s = Stats::new(&["a".into(), "b".into()]);
        s.record(Sample::Step {
            step: 1,
            elapsed_us: 10,
            ttfb_us: 0,
            responded: true,
            failure: Some(FailureKind::Status(500)),
        });
        s.record(Sample::Step {
            step: 1,
            elapsed_us: 30_000_000,
            ttfb_us: 0,
            responded: false,
            failure: Some(FailureKind::Timeout),
        });
        s.record(Sample::Flow {
            elapsed_us: 5,
            lateness_us: 0,
            measured: true,
            failed_step: Some(1),
        });
        s.record(Sample::Flow {
            elapsed_us: 7,
            lateness_us: 0,
            measured: true,
            failed_step: None,
        });
        assert_eq!(s.steps[1].attempts, 2);
        assert_eq!(s.steps[1].ok, 0);
        assert_eq!(s.steps[1].latency.len(), 1, "timeouts are not latencies");
        assert_eq!(s.steps[1].failures[&FailureKind::Status(500)], 1);
        assert_eq!((s.flows_ok(), s.flows_failed()), (1, 1));
    }

    #[test]
    fn merge_adds_exactly() {
        let names = vec!["a".to_string()];
        let (mut a, mut b, mut all) = (Stats::new(&names), Stats::new(&names), Stats::new(&names));
        for i in 0..1000u64 {
            let smp = Sample::Step {
                step: 0,
                elapsed_us: i * 37 % 5000,
                ttfb_us: 0,
                responded: true,
                failure: None,
            };
            all.record(smp.clone());
            if i % 2 == 0 {
                a.record(smp)
            } else {
                b.record(smp)
            }
        }
        a.merge(&b);
        assert_eq!(
            LatencySummary::of(&a.steps[0].latency),
            LatencySummary::of(&all.steps[0].latency)
        );
        assert_eq!(a.steps[0].attempts, 1000);
    }
}
