//! Outages during a run: spans where every attempt failed because the target was not
//! serving (refused, broken or closed-without-answer connections, 5xx; not request
//! timeouts, which a queueing server gives while it is up), found as the collector sees
//! flows end, and the availability figures around them (success rate outside the
//! windows, time to recover). Streaming and bounded: it keeps the windows found and one
//! pending span, never a record per flow.
//!
//! A window opens at the first such failure and closes at the last one before the target
//! answered again (a success, or any answer that is not a 5xx). It counts only when at
//! least [`MIN_ATTEMPTS`] attempts failed in a row: one 503 in a busy run is not an outage.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::samples::FailureKind;

/// Failed attempts in a row, with nothing answered between, that make an outage.
pub const MIN_ATTEMPTS: u64 = 3;

/// One outage window. Times are seconds since the run started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    /// When the first failed attempt of the window failed.
    pub start_s: f64,
    /// When the last failed attempt before the target answered again failed.
    pub end_s: f64,
    pub duration_ms: f64,
    /// The most frequent failure in the window (`connect: connection failed`,
    /// `status: unexpected status 503`, ...).
    pub cause: String,
    /// Failed attempts in the window: flows and connection probes.
    pub attempts: u64,
    /// Of those, flows (each counted once in the report's totals).
    pub failed_flows: u64,
    /// Flows that had started before the window and broke in it (cut off in flight).
    pub in_flight: u64,
    /// From the end of the window to the end of the first successful flow after it, ms
    /// (`null` when no flow succeeded after it).
    pub recovery_ms: Option<f64>,
    /// How long that first successful flow took, ms.
    pub first_flow_ms: Option<f64>,
    /// From the end of the window to the first second whose median flow latency is within
    /// 10% of its level before the window, ms (`null`: not within the run, or no level).
    #[serde(default)]
    pub latency_recovery_ms: Option<f64>,
}

/// The availability figures of a run, with its outage windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Availability {
    pub outages: Vec<Outage>,
    /// Sum of the windows' durations, ms.
    pub total_outage_ms: f64,
    /// The longest window, ms.
    pub max_outage_ms: f64,
    /// Successful flows / flows that did not fail inside a window (1 when there were none).
    pub success_rate_outside: f64,
    /// Flows that failed inside a window.
    pub flows_in_outages: u64,
    /// The longest time from a window's end to the next successful flow, ms.
    pub max_recovery_ms: Option<f64>,
    /// Connection probes made while the target refused connections (closed loop).
    pub connection_probes: u64,
}

impl Availability {
    /// Recomputes the figures that depend on the run's flow counts and the windows.
    pub fn recount(&mut self, total_flows: u64, ok_flows: u64) {
        let outside = total_flows.saturating_sub(self.flows_in_outages);
        self.success_rate_outside = if outside > 0 {
            (ok_flows as f64 / outside as f64).min(1.0)
        } else {
            1.0
        };
        self.total_outage_ms = self.outages.iter().map(|w| w.duration_ms).sum();
        self.max_outage_ms = self
            .outages
            .iter()
            .map(|w| w.duration_ms)
            .fold(0.0, f64::max);
        self.max_recovery_ms = self
            .outages
            .iter()
            .filter_map(|w| w.recovery_ms)
            .reduce(f64::max);
    }

    /// Adds another generator's windows and counts (runs started together); call
    /// [`Availability::recount`] with the merged flow counts afterwards.
    pub fn merge(&mut self, other: &Availability) {
        self.outages.extend(other.outages.iter().cloned());
        self.outages.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        self.flows_in_outages += other.flows_in_outages;
        self.connection_probes += other.connection_probes;
    }
}

/// A failure that means the target was not serving, rather than serving wrongly. A
/// timeout is not one: a server that queues (one event loop hashing inline) times requests
/// out while it is up and working, and calling that an outage would hide the diagnosis.
pub fn is_outage(kind: &FailureKind) -> bool {
    match kind {
        FailureKind::Connect | FailureKind::Transport | FailureKind::Closed { .. } => true,
        FailureKind::Status(code) => (500..=599).contains(code),
        FailureKind::Loaded { class, .. } => matches!(&**class, "connect" | "transport" | "closed"),
        _ => false,
    }
}

#[derive(Debug)]
struct Pending {
    start: f64,
    last: f64,
    attempts: u64,
    flows: u64,
    in_flight: u64,
    causes: BTreeMap<String, u64>,
}

/// Builds the windows as events arrive, in (about) time order.
#[derive(Debug, Default)]
pub struct OutageTracker {
    windows: Vec<Outage>,
    pending: Option<Pending>,
    flows_in_outages: u64,
    probes: u64,
    /// When the target answered and closed the last window.
    closed_at: f64,
}

impl OutageTracker {
    /// A flow failed at `at_s` (it started at `started_s`) with `kind`.
    pub fn on_failed_flow(&mut self, started_s: f64, at_s: f64, kind: &FailureKind) {
        if is_outage(kind) {
            let broken = !matches!(kind, FailureKind::Connect);
            self.fail(at_s, Some((started_s, broken)), &kind.to_string());
        } else {
            // The target answered (a 4xx, a wrong body): it is serving.
            self.answered(started_s, at_s);
        }
    }

    /// A flow succeeded: it started at `started_s` and ended at `at_s`.
    pub fn on_ok_flow(&mut self, started_s: f64, at_s: f64) {
        self.answered(started_s, at_s);
        if let Some(w) = self.windows.last_mut() {
            if w.recovery_ms.is_none() && at_s > w.end_s {
                w.recovery_ms = Some((at_s - w.end_s) * 1000.0);
                w.first_flow_ms = Some((at_s - started_s) * 1000.0);
            }
        }
    }

    /// Where the tracker stands, for the result stream: outage windows closed so far, the
    /// start of the one still open (if any), and the connection probes made.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "windows": self.windows.len(),
            "open_since_s": self.pending.as_ref().map(|p| p.start),
            "probes": self.probes,
        })
    }

    /// A connection probe (made while the target refused connections) at `at_s`.
    pub fn on_probe(&mut self, at_s: f64, ok: bool) {
        self.probes += 1;
        if !ok {
            self.fail(at_s, None, &FailureKind::Connect.to_string());
        }
    }

    /// `flow`: when the attempt was a flow, when it started and whether it was cut off
    /// (a broken connection or a timeout, rather than a refused one).
    fn fail(&mut self, at_s: f64, flow: Option<(f64, bool)>, cause: &str) {
        if self.merge_late(at_s, flow) {
            return;
        }
        let p = self.pending.get_or_insert_with(|| Pending {
            start: at_s,
            last: at_s,
            attempts: 0,
            flows: 0,
            in_flight: 0,
            causes: BTreeMap::new(),
        });
        p.last = p.last.max(at_s);
        p.start = p.start.min(at_s);
        p.attempts += 1;
        if let Some((started, broken)) = flow {
            p.flows += 1;
            if broken && started < p.start {
                p.in_flight += 1;
            }
        }
        *p.causes.entry(cause.to_string()).or_default() += 1;
    }

    /// A failure that reached the collector after the answer that closed the last window,
    /// though it happened before that answer (flows end on several threads, and their
    /// samples arrive in about, not exactly, time order): it is part of that window.
    /// Counted on its own it would start a span too short to be an outage, and the failed
    /// flow would count as a failure outside any window.
    fn merge_late(&mut self, at_s: f64, flow: Option<(f64, bool)>) -> bool {
        let Some(w) = self.windows.last_mut() else {
            return false;
        };
        if at_s >= self.closed_at {
            return false;
        }
        let recovered_at = w.recovery_ms.map(|r| w.end_s + r / 1000.0);
        w.attempts += 1;
        w.start_s = w.start_s.min(at_s);
        w.end_s = w.end_s.max(at_s);
        w.duration_ms = (w.end_s - w.start_s) * 1000.0;
        if let Some((started, broken)) = flow {
            w.failed_flows += 1;
            self.flows_in_outages += 1;
            if broken && started < w.start_s {
                w.in_flight += 1;
            }
        }
        match recovered_at {
            // The window now ends after the flow that measured recovery: the next one will.
            Some(t) if t <= w.end_s => {
                w.recovery_ms = None;
                w.first_flow_ms = None;
            }
            Some(t) => w.recovery_ms = Some((t - w.end_s) * 1000.0),
            None => {}
        }
        true
    }

    /// A flow that started at `started_s` got an answer at `at_s`. One already in flight
    /// when the pending span's first failure came says nothing of the target since: its
    /// answer may have been sent just before the target went away (a server that dies
    /// answers what it was writing; measured: one such answer 2.5 ms after six dropped
    /// connections split a 1 s outage in two). The first flow started after the span
    /// began and answered ends it.
    fn answered(&mut self, started_s: f64, at_s: f64) {
        if self.pending.as_ref().is_some_and(|p| started_s < p.start) {
            return;
        }
        self.close(at_s);
    }

    /// The target answered at `at_s`: a pending span becomes a window if it is long enough.
    fn close(&mut self, at_s: f64) {
        let Some(p) = &self.pending else { return };
        // A flow that ended before the span began arrived late: it says nothing of it.
        if at_s <= p.start {
            return;
        }
        let Some(p) = self.pending.take() else { return };
        if p.attempts < MIN_ATTEMPTS {
            return;
        }
        self.flows_in_outages += p.flows;
        self.closed_at = at_s;
        let cause = p
            .causes
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(c, _)| c.clone())
            .unwrap_or_default();
        self.windows.push(Outage {
            start_s: p.start,
            end_s: p.last,
            duration_ms: (p.last - p.start) * 1000.0,
            cause,
            attempts: p.attempts,
            failed_flows: p.flows,
            in_flight: p.in_flight,
            recovery_ms: None,
            first_flow_ms: None,
            latency_recovery_ms: None,
        });
    }

    /// The windows (one still open at the end counts, unrecovered), and the availability
    /// figures given the run's flow counts.
    pub fn finish(mut self, end_s: f64, total_flows: u64, ok_flows: u64) -> Availability {
        // A span still open at the end: the target never came back within the run.
        self.close(end_s.max(self.pending.as_ref().map_or(0.0, |p| p.last) + 1e-9));
        let mut a = Availability {
            flows_in_outages: self.flows_in_outages,
            connection_probes: self.probes,
            outages: self.windows,
            ..Availability::default()
        };
        a.recount(total_flows, ok_flows);
        a
    }
}

/// The policy, in words, for the reports' load-model line.
pub const POLICY: &str = "A refused connection is not retried at once: in a closed loop its worker waits before its next flow (back-off 10 ms doubling to 1 s, with jitter, reset when a flow gets through) while one prober tries the port every 50 ms at most (probes are attempts, not flows); an open loop keeps its schedule and counts every arrival. Nothing is ever retried once sent.";

/// One plain-words sentence per window, and one on the flows outside them, each with the
/// figures it rests on. Empty when there was no outage.
pub fn findings(a: &Availability) -> Vec<String> {
    let mut out = Vec::new();
    for w in &a.outages {
        let what = if w.cause.starts_with("connect") {
            "the target refused connections"
        } else if w.cause.starts_with("status") {
            "the target answered only 5xx"
        } else {
            "every attempt failed"
        };
        let mut s = format!(
            "Outage: {what} from {:.2} s to {:.2} s ({}; {}, {} failed attempts, {} of them flows, {} cut off in flight)",
            w.start_s,
            w.end_s,
            ms_text(w.duration_ms),
            w.cause,
            w.attempts,
            w.failed_flows,
            w.in_flight
        );
        match (w.recovery_ms, w.first_flow_ms) {
            (Some(r), Some(f)) => s.push_str(&format!(
                "; the first successful flow after it ended {} later and took {}",
                ms_text(r),
                ms_text(f)
            )),
            _ => s.push_str("; no flow succeeded after it within the run"),
        }
        if let Some(l) = w.latency_recovery_ms {
            s.push_str(&format!(
                "; latency was back within 10% of its level before by {} after it",
                ms_text(l)
            ));
        }
        s.push('.');
        out.push(s);
    }
    if !a.outages.is_empty() {
        out.push(if a.success_rate_outside >= 1.0 {
            "No flow failed outside the outage windows.".to_string()
        } else {
            format!(
                "Outside the outage windows, {:.2}% of flows succeeded.",
                a.success_rate_outside * 100.0
            )
        });
    }
    out
}

/// `412 ms`, `2.95 s`.
pub fn ms_text(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

/// Fills each window's `latency_recovery_ms` from the per-second timeline: the level is the
/// completion-weighted median latency of up to 5 buckets before the window; recovery is the
/// end of the first bucket after the window whose median is within 10% of it.
pub fn latency_recovery(a: &mut Availability, t: &crate::timeline::Timeline) {
    for w in &mut a.outages {
        let before: Vec<_> = t
            .points
            .iter()
            .filter(|p| p.t_s + t.bucket_s <= w.start_s && p.completed > 0)
            .collect();
        let before = &before[before.len().saturating_sub(5)..];
        let n: u64 = before.iter().map(|p| p.ok).sum();
        if n == 0 {
            continue;
        }
        let level = before.iter().map(|p| p.p50_ms * p.ok as f64).sum::<f64>() / n as f64;
        w.latency_recovery_ms = t
            .points
            .iter()
            .find(|p| p.t_s >= w.end_s && p.ok > 0 && p.p50_ms <= level * 1.1)
            .map(|p| ((p.t_s + t.bucket_s - w.end_s) * 1000.0).max(0.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> FailureKind {
        FailureKind::Connect
    }

    #[test]
    fn a_span_of_failures_between_successes_is_one_window() {
        let mut t = OutageTracker::default();
        t.on_ok_flow(0.9, 1.0);
        t.on_failed_flow(0.95, 1.1, &FailureKind::Transport); // in flight when it began
        t.on_failed_flow(1.12, 1.12, &refused());
        t.on_probe(1.2, false);
        t.on_probe(1.9, false);
        t.on_probe(2.0, true);
        t.on_ok_flow(2.0, 2.05);
        t.on_ok_flow(2.1, 2.2);
        let a = t.finish(3.0, 10, 8);
        assert_eq!(a.outages.len(), 1, "{a:?}");
        let w = &a.outages[0];
        assert_eq!((w.start_s, w.end_s), (1.1, 1.9));
        assert_eq!((w.attempts, w.failed_flows, w.in_flight), (4, 2, 1));
        assert!((w.recovery_ms.unwrap() - 150.0).abs() < 1e-6);
        assert!((w.first_flow_ms.unwrap() - 50.0).abs() < 1e-6);
        assert_eq!(a.flows_in_outages, 2);
        assert_eq!(a.success_rate_outside, 1.0);
        assert_eq!(a.connection_probes, 3);
    }

    #[test]
    fn timeouts_of_a_queueing_server_are_not_an_outage() {
        let mut t = OutageTracker::default();
        t.on_ok_flow(0.0, 0.5);
        for i in 0..10 {
            t.on_failed_flow(0.0, 1.0 + f64::from(i) * 0.01, &FailureKind::Timeout);
        }
        t.on_ok_flow(0.9, 1.5);
        let a = t.finish(2.0, 12, 2);
        assert!(a.outages.is_empty(), "{a:?}");
    }

    #[test]
    fn connections_closed_without_an_answer_are_outage_class_like_transport() {
        let closed = FailureKind::Closed {
            reused: true,
            reset: false,
        };
        assert!(is_outage(&closed));
        assert!(is_outage(&FailureKind::Transport));
        assert!(!is_outage(&FailureKind::Timeout));
        let loaded = |class: &str| FailureKind::Loaded {
            class: class.into(),
            detail: "x".into(),
        };
        assert!(is_outage(&loaded("closed")));
        assert!(!is_outage(&loaded("timeout")));
    }

    #[test]
    fn isolated_failures_and_client_errors_are_not_outages() {
        let mut t = OutageTracker::default();
        t.on_failed_flow(0.0, 0.1, &FailureKind::Status(503));
        t.on_failed_flow(0.0, 0.2, &FailureKind::Status(503));
        t.on_ok_flow(0.2, 0.3);
        t.on_failed_flow(0.3, 0.4, &FailureKind::Status(404));
        t.on_failed_flow(0.3, 0.5, &FailureKind::Check("/x".into()));
        let a = t.finish(1.0, 6, 1);
        assert!(a.outages.is_empty(), "{a:?}");
        assert!((a.success_rate_outside - 1.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn a_window_still_open_at_the_end_counts_unrecovered() {
        let mut t = OutageTracker::default();
        t.on_ok_flow(0.0, 0.5);
        for i in 0..5 {
            t.on_failed_flow(1.0, 1.0 + f64::from(i) * 0.1, &FailureKind::Status(502));
        }
        let a = t.finish(2.0, 6, 1);
        assert_eq!(a.outages.len(), 1);
        assert!((a.outages[0].duration_ms - 400.0).abs() < 1e-6);
        assert_eq!(a.outages[0].recovery_ms, None);
        assert_eq!(a.success_rate_outside, 1.0);
    }

    #[test]
    fn a_failure_that_arrives_after_the_closing_answer_belongs_to_the_window() {
        let mut t = OutageTracker::default();
        t.on_failed_flow(1.0, 1.0, &refused());
        t.on_failed_flow(1.1, 1.1, &refused());
        t.on_failed_flow(1.2, 1.2, &refused());
        t.on_ok_flow(2.0, 2.05);
        // Failed before that answer, reported after it (another lane's sample).
        t.on_failed_flow(1.9, 2.01, &FailureKind::Transport);
        t.on_ok_flow(2.1, 2.2);
        // A failure after the answer is not part of the window.
        t.on_failed_flow(2.3, 2.3, &refused());
        let a = t.finish(3.0, 7, 3);
        assert_eq!(a.outages.len(), 1, "{a:?}");
        let w = &a.outages[0];
        assert_eq!((w.start_s, w.end_s), (1.0, 2.01));
        assert_eq!((w.attempts, w.failed_flows), (4, 4));
        assert_eq!(a.flows_in_outages, 4);
        // Recovery moves to the first flow that ended after the window's new end.
        assert!((w.recovery_ms.unwrap() - 40.0).abs() < 1e-6, "{w:?}");
        assert!((w.first_flow_ms.unwrap() - 50.0).abs() < 1e-6, "{w:?}");
    }

    #[test]
    fn an_answer_to_a_flow_in_flight_when_the_failures_began_does_not_end_them() {
        let mut t = OutageTracker::default();
        // The server dies at 1.0: six kept-alive connections drop at once...
        for _ in 0..6 {
            t.on_failed_flow(0.998, 1.0, &FailureKind::Transport);
        }
        // ...and a response it wrote as it died reaches its flow just after.
        t.on_ok_flow(0.997, 1.0025);
        for k in 0..90 {
            t.on_failed_flow(1.003 + k as f64 * 0.01, 1.003 + k as f64 * 0.01, &refused());
        }
        // Back at 2.0: the first flow started after the failures began ends the window.
        t.on_ok_flow(2.0, 2.01);
        let a = t.finish(3.0, 100, 4);
        assert_eq!(a.outages.len(), 1, "{a:?}");
        let w = &a.outages[0];
        assert_eq!((w.start_s, w.attempts), (1.0, 96));
        assert!((w.end_s - 1.893).abs() < 1e-9, "{w:?}");
    }

    #[test]
    fn a_late_success_does_not_close_a_window_it_precedes() {
        let mut t = OutageTracker::default();
        t.on_failed_flow(1.0, 1.0, &refused());
        t.on_ok_flow(0.5, 0.9); // arrived after, ended before
        t.on_failed_flow(1.1, 1.1, &refused());
        t.on_failed_flow(1.2, 1.2, &refused());
        t.on_ok_flow(1.3, 1.4);
        let a = t.finish(2.0, 5, 2);
        assert_eq!(a.outages.len(), 1);
        assert_eq!(a.outages[0].attempts, 3);
    }
}
