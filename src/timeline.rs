//! Latency and throughput over time: one point per second of the run (flows started and
//! completed, errors, p50/p99 of flow latency from the intended start), so a stall or a
//! warm-up is visible. Bounded: past [`MAX_POINTS`] points, neighbours merge and the bucket
//! width doubles, so an hour-long run keeps at most a few hundred points.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::samples::{new_histogram, record};

/// The most points a timeline keeps.
pub const MAX_POINTS: usize = 600;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One bucket of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Point {
    /// Start of the bucket, seconds since the run began.
    pub t_s: f64,
    /// Flows started in the bucket.
    pub started: u64,
    /// Flows that ended in the bucket (measured ones; warm-up flows are not counted).
    pub completed: u64,
    pub ok: u64,
    pub failed: u64,
    /// Failed requests in the bucket.
    pub errors: u64,
    /// Of those, requests the server refused for their rate (`rate_limited`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rate_limited: u64,
    /// Flow latency (from the intended start) of flows that ended in the bucket, ms. For a
    /// merged bucket, p50 is the completion-weighted mean of the merged p50s and p99 their
    /// maximum (an upper bound).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// CPU and memory in the bucket, when sampled (see [`crate::usage`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsagePoint>,
}

/// The figures of one timeline bucket (averages over it; memory and descriptors: peaks).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct UsagePoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_cpu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_cpu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_rss_mb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_cpu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_rss_mb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_fds: Option<f64>,
}

impl UsagePoint {
    /// Two neighbouring buckets as one: CPU averaged, peaks kept.
    pub fn merge(&self, o: &UsagePoint) -> UsagePoint {
        let mean = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some((a + b) / 2.0),
            (a, b) => a.or(b),
        };
        let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        UsagePoint {
            generator_cpu: mean(self.generator_cpu, o.generator_cpu),
            machine_cpu: mean(self.machine_cpu, o.machine_cpu),
            server_cpu: mean(self.server_cpu, o.server_cpu),
            server_rss_mb: max(self.server_rss_mb, o.server_rss_mb),
            scrape_cpu: mean(self.scrape_cpu, o.scrape_cpu),
            scrape_rss_mb: max(self.scrape_rss_mb, o.scrape_rss_mb),
            scrape_fds: max(self.scrape_fds, o.scrape_fds),
        }
    }
}

/// The timeline of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Width of each bucket in seconds (1, or a power of two after long runs).
    pub bucket_s: f64,
    pub points: Vec<Point>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            bucket_s: 1.0,
            points: Vec::new(),
        }
    }
}

fn merge_into(a: &mut Point, b: &Point) {
    let n = a.completed + b.completed;
    a.p50_ms = if n > 0 {
        (a.p50_ms * a.completed as f64 + b.p50_ms * b.completed as f64) / n as f64
    } else {
        0.0
    };
    a.p99_ms = a.p99_ms.max(b.p99_ms);
    a.max_ms = a.max_ms.max(b.max_ms);
    a.started += b.started;
    a.completed = n;
    a.ok += b.ok;
    a.failed += b.failed;
    a.errors += b.errors;
    a.rate_limited += b.rate_limited;
    a.usage = match (&a.usage, &b.usage) {
        (Some(x), Some(y)) => Some(x.merge(y)),
        (x, y) => x.or(*y),
    };
}

impl Timeline {
    /// Appends a one-second point, merging and widening buckets to stay bounded.
    fn push(&mut self, p: Point) {
        if let Some(last) = self.points.last_mut() {
            if p.t_s < last.t_s + self.bucket_s {
                merge_into(last, &p);
                return;
            }
        }
        self.points.push(p);
        if self.points.len() > MAX_POINTS {
            let old = std::mem::take(&mut self.points);
            self.bucket_s *= 2.0;
            for pair in old.chunks(2) {
                let mut a = pair[0].clone();
                if let Some(b) = pair.get(1) {
                    merge_into(&mut a, b);
                }
                self.points.push(a);
            }
        }
    }

    /// Adds another run's timeline, bucket by bucket from the start (runs started together).
    pub fn merge(&mut self, other: &Timeline) {
        if other.points.is_empty() {
            return;
        }
        if self.points.is_empty() {
            *self = other.clone();
            return;
        }
        let width = self.bucket_s.max(other.bucket_s);
        let mut out = Timeline {
            bucket_s: width,
            points: Vec::new(),
        };
        let mut all: Vec<Point> = self.points.iter().chain(&other.points).cloned().collect();
        all.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        for p in all {
            let slot = (p.t_s / width).floor() * width;
            match out.points.iter_mut().find(|q| q.t_s == slot) {
                Some(q) => merge_into(q, &p),
                None => out.points.push(Point { t_s: slot, ..p }),
            }
        }
        *self = out;
    }
}

/// Builds a timeline as samples arrive; [`TimelineBuilder::tick`] closes a second.
pub struct TimelineBuilder {
    timeline: Timeline,
    second: u64,
    current: Point,
    latency: Histogram<u64>,
    started_seen: u64,
}

impl Default for TimelineBuilder {
    fn default() -> Self {
        TimelineBuilder {
            timeline: Timeline::default(),
            second: 0,
            current: Point::default(),
            latency: new_histogram(),
            started_seen: 0,
        }
    }
}

impl TimelineBuilder {
    pub fn on_flow(&mut self, latency_us: u64, ok: bool) {
        self.current.completed += 1;
        if ok {
            self.current.ok += 1;
        } else {
            self.current.failed += 1;
        }
        record(&mut self.latency, latency_us);
    }

    /// A failed request; `rate_limited` when the server refused it for its rate.
    pub fn on_error(&mut self, rate_limited: bool) {
        self.current.errors += 1;
        self.current.rate_limited += u64::from(rate_limited);
    }

    /// Closes the current second; `started_total` is the run's count of started flows.
    pub fn tick(&mut self, started_total: u64) {
        let mut p = std::mem::take(&mut self.current);
        p.t_s = self.second as f64;
        p.started = started_total.saturating_sub(self.started_seen);
        self.started_seen = started_total;
        if !self.latency.is_empty() {
            p.p50_ms = self.latency.value_at_quantile(0.5) as f64 / 1000.0;
            p.p99_ms = self.latency.value_at_quantile(0.99) as f64 / 1000.0;
            p.max_ms = self.latency.max() as f64 / 1000.0;
        }
        self.latency.reset();
        self.timeline.push(p);
        self.second += 1;
    }

    /// Seconds closed so far.
    pub fn seconds(&self) -> u64 {
        self.second
    }

    /// The timeline, with the last (partial) second closed.
    pub fn finish(mut self, started_total: u64) -> Timeline {
        if self.current.completed > 0
            || self.current.errors > 0
            || started_total > self.started_seen
        {
            self.tick(started_total);
        }
        self.timeline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_point_per_second_with_percentiles() {
        let mut b = TimelineBuilder::default();
        for i in 0..100 {
            b.on_flow(10_000 + i * 100, i % 10 != 0);
        }
        b.on_error(false);
        b.tick(100);
        b.tick(100); // a stalled second: nothing completes
        b.on_flow(5_000, true);
        let t = b.finish(101);
        assert_eq!(t.points.len(), 3);
        assert_eq!(
            (t.points[0].completed, t.points[0].ok, t.points[0].errors),
            (100, 90, 1)
        );
        assert_eq!(t.points[0].started, 100);
        assert!((t.points[0].p50_ms - 15.0).abs() < 0.1, "{:?}", t.points[0]);
        assert_eq!(t.points[1].completed, 0);
        assert_eq!((t.points[2].t_s, t.points[2].started), (2.0, 1));
    }

    #[test]
    fn long_runs_stay_bounded() {
        let mut b = TimelineBuilder::default();
        for s in 0..5000u64 {
            b.on_flow(1000, true);
            b.tick(s + 1);
        }
        let t = b.finish(5000);
        assert!(t.points.len() <= MAX_POINTS, "{}", t.points.len());
        assert_eq!(t.bucket_s, 16.0);
        assert_eq!(t.points.iter().map(|p| p.completed).sum::<u64>(), 5000);
        assert_eq!(t.points.iter().map(|p| p.started).sum::<u64>(), 5000);
    }
}
