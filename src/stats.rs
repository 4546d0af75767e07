//! The run's tally: the collector folds [`Sample`]s into per-step and per-flow HDR
//! histograms and counters ([`Stats`]), beside the per-second timeline and the outage
//! figures it fills in.
//!
//! Nothing here stores a per-request record: memory depends on the number of steps and
//! distinct failure kinds, not on the number of requests.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::samples::{new_histogram, record, FailureKind, Sample};

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
    /// Response body bytes received (kept or not).
    pub bytes: u64,
    /// Redirects followed (`follow = true` steps).
    pub redirects: u64,
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
                    bytes: 0,
                    redirects: 0,
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
                bytes,
                responded,
                failure,
            } => {
                let Some(s) = self.steps.get_mut(step) else {
                    return;
                };
                s.attempts += 1;
                s.bytes += bytes;
                // A refusal for the rate is not the step's work: its latency would hide
                // the work's (and the diagnosis's service and waiting times with it).
                let refused = matches!(failure, Some(FailureKind::RateLimited { .. }));
                if responded && !refused {
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
            Sample::Redirects { step, hops } => {
                if let Some(s) = self.steps.get_mut(step) {
                    s.redirects += hops;
                }
            }
            // Counted by the collector's outage tracker, not here.
            Sample::Probe { .. } => {}
        }
    }

    /// Back to zero, keeping the step names and the histograms' memory (the collector's
    /// interval tally is cleared this way after each interval).
    pub fn clear(&mut self) {
        for s in &mut self.steps {
            s.attempts = 0;
            s.ok = 0;
            s.latency.reset();
            s.ttfb.reset();
            s.connect.reset();
            s.tls.reset();
            s.failures.clear();
            s.closed = ClosedTimes::default();
            s.bytes = 0;
            s.redirects = 0;
        }
        self.flow_ok.reset();
        self.flow_failed.reset();
        self.flow_intended.reset();
        self.warmup_flows = 0;
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
            a.bytes += b.bytes;
            a.redirects += b.redirects;
        }
        let _ = self.flow_ok.add(&other.flow_ok);
        let _ = self.flow_failed.add(&other.flow_failed);
        let _ = self.flow_intended.add(&other.flow_intended);
        self.warmup_flows += other.warmup_flows;
        self.timeline.merge(&other.timeline);
        self.availability.merge(&other.availability);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::LatencySummary;

    #[test]
    fn records_huge_values_without_panic() {
        let mut s = Stats::new(&["a".into()]);
        for us in [0, 1, 60_000_000, 3_600_000_000, u64::MAX / 4] {
            s.record(Sample::Step {
                step: 0,
                elapsed_us: us,
                ttfb_us: 0,
                bytes: 0,
                responded: true,
                failure: None,
            });
        }
        // An out-of-range step index is ignored, not a panic.
        s.record(Sample::Step {
            step: 9,
            elapsed_us: 1,
            ttfb_us: 0,
            bytes: 0,
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
            bytes: 0,
            responded: true,
            failure: Some(FailureKind::Status(500)),
        });
        s.record(Sample::Step {
            step: 1,
            elapsed_us: 30_000_000,
            ttfb_us: 0,
            bytes: 0,
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
                bytes: 0,
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
