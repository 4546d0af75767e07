//! Live metrics in the Prometheus text format (`--metrics ADDR`): the collector publishes
//! the run's totals at the end of every interval, rendered once, and the endpoint serves
//! the last rendering. The counters are the totals the final report is built from, so the
//! last scrape after the run equals the report exactly.
//!
//! Names follow Prometheus' conventions: an `authbench_` prefix, `_total` counters,
//! durations in seconds as histograms with buckets chosen for auth latencies (0.5 ms to
//! 30 s; each bucket counted from the HDR histogram, to its 3 significant figures).

use std::fmt::Write;
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;

use crate::stats::Stats;
use crate::usage::ThreadSet;

/// Bucket bounds of the duration histograms, seconds.
pub const BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The shared page: written by the collector, read by the endpoint.
pub struct Live {
    text: Mutex<String>,
    threads: Arc<ThreadSet>,
    started: std::sync::atomic::AtomicU64,
}

impl Live {
    /// Before the run: every series at zero for `steps`.
    pub fn new(steps: &[String], threads: Arc<ThreadSet>) -> Live {
        let live = Live {
            text: Mutex::new(String::new()),
            threads,
            started: Default::default(),
        };
        live.publish(&Stats::new(steps), 0, 0.0);
        live
    }

    /// Flows started as of the last publication.
    pub fn started(&self) -> u64 {
        self.started.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The page as last published.
    pub fn page(&self) -> String {
        self.text.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Renders the totals: `started` flows started so far, `rate` flows started per second
    /// over the last interval.
    pub fn publish(&self, s: &Stats, started: u64, rate: f64) {
        self.started
            .store(started, std::sync::atomic::Ordering::Relaxed);
        let page = render(s, started, rate, self.threads.cpu_seconds());
        if let Ok(mut t) = self.text.lock() {
            *t = page;
        }
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn histogram(o: &mut String, name: &str, labels: &str, h: &Histogram<u64>) {
    let sep = if labels.is_empty() { "" } else { "," };
    for b in BUCKETS {
        // Values are µs; a bucket counts values <= its bound.
        let le_us = (b * 1e6) as u64;
        let n = if h.is_empty() {
            0
        } else {
            h.count_between(0, le_us)
        };
        let _ = writeln!(o, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {n}");
    }
    let _ = writeln!(o, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.len());
    let sum = if h.is_empty() {
        0.0
    } else {
        h.mean() * h.len() as f64 / 1e6
    };
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(o, "{name}_sum{braces} {sum}");
    let _ = writeln!(o, "{name}_count{braces} {}", h.len());
}

/// The whole page.
pub fn render(s: &Stats, started: u64, rate: f64, cpu_s: f64) -> String {
    let mut o = String::with_capacity(4096);
    let done = s.flows_total() + s.warmup_flows;
    let _ = writeln!(o, "# HELP authbench_flows_started_total Flows started.");
    let _ = writeln!(o, "# TYPE authbench_flows_started_total counter");
    let _ = writeln!(o, "authbench_flows_started_total {started}");
    let _ = writeln!(
        o,
        "# HELP authbench_flows_completed_total Measured flows that ended, by result."
    );
    let _ = writeln!(o, "# TYPE authbench_flows_completed_total counter");
    let _ = writeln!(
        o,
        "authbench_flows_completed_total{{result=\"ok\"}} {}",
        s.flows_ok()
    );
    let _ = writeln!(
        o,
        "authbench_flows_completed_total{{result=\"failed\"}} {}",
        s.flows_failed()
    );
    let _ = writeln!(o, "# HELP authbench_flows_failed_total Failed flows, by the class of the failure that ended them.");
    let _ = writeln!(o, "# TYPE authbench_flows_failed_total counter");
    let mut by_class: std::collections::BTreeMap<&str, u64> = Default::default();
    for st in &s.steps {
        for (k, n) in &st.failures {
            *by_class.entry(k.class()).or_insert(0) += n;
        }
    }
    for (c, n) in &by_class {
        let _ = writeln!(
            o,
            "authbench_flows_failed_total{{class=\"{}\"}} {n}",
            esc(c)
        );
    }
    let _ = writeln!(
        o,
        "# HELP authbench_warmup_flows_total Warm-up flows (run, not measured)."
    );
    let _ = writeln!(o, "# TYPE authbench_warmup_flows_total counter");
    let _ = writeln!(o, "authbench_warmup_flows_total {}", s.warmup_flows);
    let _ = writeln!(
        o,
        "# HELP authbench_flows_in_flight Flows started and not yet ended."
    );
    let _ = writeln!(o, "# TYPE authbench_flows_in_flight gauge");
    let _ = writeln!(
        o,
        "authbench_flows_in_flight {}",
        started.saturating_sub(done)
    );
    let _ = writeln!(
        o,
        "# HELP authbench_arrival_rate Flows started per second over the last interval."
    );
    let _ = writeln!(o, "# TYPE authbench_arrival_rate gauge");
    let _ = writeln!(o, "authbench_arrival_rate {rate}");
    let _ = writeln!(o, "# HELP authbench_requests_total Requests sent, by step.");
    let _ = writeln!(o, "# TYPE authbench_requests_total counter");
    for st in &s.steps {
        let _ = writeln!(
            o,
            "authbench_requests_total{{step=\"{}\"}} {}",
            esc(&st.name),
            st.attempts
        );
    }
    let _ = writeln!(
        o,
        "# HELP authbench_request_failures_total Failed requests, by step and class."
    );
    let _ = writeln!(o, "# TYPE authbench_request_failures_total counter");
    for st in &s.steps {
        let mut classes: std::collections::BTreeMap<&str, u64> = Default::default();
        for (k, n) in &st.failures {
            *classes.entry(k.class()).or_insert(0) += n;
        }
        for (c, n) in classes {
            let _ = writeln!(
                o,
                "authbench_request_failures_total{{step=\"{}\",class=\"{}\"}} {n}",
                esc(&st.name),
                esc(c)
            );
        }
    }
    let _ = writeln!(
        o,
        "# HELP authbench_response_bytes_total Response body bytes received, by step."
    );
    let _ = writeln!(o, "# TYPE authbench_response_bytes_total counter");
    for st in &s.steps {
        let _ = writeln!(
            o,
            "authbench_response_bytes_total{{step=\"{}\"}} {}",
            esc(&st.name),
            st.bytes
        );
    }
    let _ = writeln!(o, "# HELP authbench_request_duration_seconds Latency of requests that got a response, by step.");
    let _ = writeln!(o, "# TYPE authbench_request_duration_seconds histogram");
    for st in &s.steps {
        histogram(
            &mut o,
            "authbench_request_duration_seconds",
            &format!("step=\"{}\"", esc(&st.name)),
            &st.latency,
        );
    }
    let _ = writeln!(
        o,
        "# HELP authbench_flow_duration_seconds Duration of successful flows."
    );
    let _ = writeln!(o, "# TYPE authbench_flow_duration_seconds histogram");
    histogram(&mut o, "authbench_flow_duration_seconds", "", &s.flow_ok);
    let _ = writeln!(o, "# HELP authbench_generator_cpu_seconds_total CPU time of the threads that ran flows and the collector.");
    let _ = writeln!(o, "# TYPE authbench_generator_cpu_seconds_total counter");
    let _ = writeln!(o, "authbench_generator_cpu_seconds_total {cpu_s}");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::{FailureKind, Sample};

    #[test]
    fn buckets_count_exactly_and_the_names_are_prometheus_ones() {
        let mut s = Stats::new(&["login".into()]);
        for us in [400, 900, 20_000, 2_000_000] {
            s.record(Sample::Step {
                step: 0,
                elapsed_us: us,
                ttfb_us: us,
                bytes: 10,
                responded: true,
                failure: None,
            });
        }
        s.record(Sample::Step {
            step: 0,
            elapsed_us: 5,
            ttfb_us: 5,
            bytes: 0,
            responded: true,
            failure: Some(FailureKind::Status(429)),
        });
        let page = render(&s, 7, 2.5, 0.25);
        assert!(
            page.contains("authbench_requests_total{step=\"login\"} 5"),
            "{page}"
        );
        assert!(
            page.contains("authbench_request_failures_total{step=\"login\",class=\"status\"} 1")
        );
        assert!(
            page.contains(
                "authbench_request_duration_seconds_bucket{step=\"login\",le=\"0.001\"} 3"
            ),
            "{page}"
        );
        assert!(page
            .contains("authbench_request_duration_seconds_bucket{step=\"login\",le=\"+Inf\"} 5"));
        assert!(page.contains("authbench_response_bytes_total{step=\"login\"} 40"));
        assert!(page.contains("authbench_flows_started_total 7"));
        assert!(page.contains("authbench_arrival_rate 2.5"));
        // Every sample line parses as Prometheus text.
        let lines = page.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        assert!(scrape.samples.len() >= 12, "{}", scrape.samples.len());
    }
}
