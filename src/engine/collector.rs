//! The collector: the one task that receives the workers' samples, folds them into
//! [`Stats`], the per-second timeline and the outage tracker, and moves the progress bar.
//! Workers never print; this is the only place that touches the bar.
//!
//! Samples are folded into an interval tally; at the end of every interval
//! (`--interval`) the tally is streamed to disk when a stream is open ([`super::stream`])
//! and then added to the run's totals. The final figures are therefore the sum of the
//! intervals, streamed or not: one path.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

use super::Shared;
use crate::outage::OutageTracker;
use crate::samples::{Batch, Sample};
use crate::stats::Stats;
use crate::timeline::TimelineBuilder;

use super::metrics::Live;
use super::stream::Streamer;

/// The most flows' samples the collector takes from the channel at once.
const COLLECT_AT_ONCE: usize = 256;
/// How long the collector lets samples gather after a wake-up that found few.
const COLLECT_PAUSE: Duration = Duration::from_millis(1);

/// Where the collector's intervals go besides the totals.
pub(super) struct Outputs {
    /// The result stream on disk, when the run streams.
    pub stream: Option<Streamer>,
    /// The interval.
    pub every: Duration,
    /// `--metrics`: the page to publish at every interval.
    pub live: Option<Arc<Live>>,
    /// The generator's threads, whose CPU time each streamed interval records.
    pub threads: Arc<crate::usage::ThreadSet>,
}

/// The collector: folds samples into an interval tally, the per-second timeline and the
/// outage tracker; at the end of each interval streams the tally, adds it to the totals
/// and shows the interval's rate, success rate and flow p99 on the progress bar.
pub(super) async fn collect(
    mut rx: mpsc::Receiver<Batch>,
    mut stats: Stats,
    bar: ProgressBar,
    shared: Arc<Shared>,
    t0: tokio::time::Instant,
    mut outputs: Outputs,
) -> (Stats, Option<Streamer>) {
    let mut interval = stats.clone();
    interval.clear();
    let every = outputs.every;
    let mut flushes = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    flushes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flushed_s = 0.0;
    let mut timeline = TimelineBuilder::default();
    let mut outages = OutageTracker::default();
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Everything waiting is taken at each wake-up, so the select (and its timer poll) is
    // paid once per wake-up rather than once per flow.
    let mut batches: Vec<Batch> = Vec::with_capacity(COLLECT_AT_ONCE);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batches, COLLECT_AT_ONCE) => if n == 0 {
                break;
            },
            _ = ticks.tick() => {
                timeline.tick(shared.started.load(Ordering::Relaxed));
                continue;
            }
            _ = flushes.tick() => {
                let now_s = t0.elapsed().as_secs_f64();
                let extra = outages.snapshot();
                flush(&mut stats, &mut interval, &mut outputs, (flushed_s, now_s), &shared, &bar, extra);
                flushed_s = now_s;
                continue;
            }
        };
        let full = batches.len() == COLLECT_AT_ONCE;
        // Samples arrive when their flow ends (within the pause below), so the time of
        // arrival is the time of the flow's end, to about a millisecond.
        let now_s = t0.elapsed().as_secs_f64();
        for batch in batches.drain(..) {
            observe(&mut outages, now_s, &batch);
            for s in batch {
                fold(&mut interval, &mut timeline, &bar, s);
            }
        }
        if !full {
            // Let samples gather for a moment: woken by every flow, the collector cost
            // about 5% of the harness's CPU in task switches alone at 80k flows/s. The
            // channel holds 4096 flows, so senders never wait on this pause below
            // ~4M flows/s; samples reach the stats at most a millisecond later.
            tokio::time::sleep(COLLECT_PAUSE).await;
        }
    }
    let now_s = t0.elapsed().as_secs_f64();
    let extra = outages.snapshot();
    flush(
        &mut stats,
        &mut interval,
        &mut outputs,
        (flushed_s, now_s),
        &shared,
        &bar,
        extra,
    );
    stats.timeline = timeline.finish(shared.started.load(Ordering::Relaxed));
    stats.availability = outages.finish(
        t0.elapsed().as_secs_f64(),
        stats.flows_total(),
        stats.flows_ok(),
    );
    crate::outage::latency_recovery(&mut stats.availability, &stats.timeline);
    bar.finish_and_clear();
    (stats, outputs.stream)
}

/// The end of the interval `span` (seconds since the start): the tally goes to the
/// stream, then into the totals; the live page and the progress bar show it.
fn flush(
    stats: &mut Stats,
    interval: &mut Stats,
    out: &mut Outputs,
    span: (f64, f64),
    shared: &Shared,
    bar: &ProgressBar,
    outage: serde_json::Value,
) {
    let (from_s, to_s) = span;
    let len_s = to_s - from_s;
    let started = shared.started.load(Ordering::Relaxed);
    if let Some(s) = &mut out.stream {
        let extra = serde_json::json!({
            "outage": outage,
            "generator_cpu_s": out.threads.cpu_seconds(),
        });
        s.write(interval, from_s, len_s, started, extra);
    }
    if !bar.is_hidden() {
        bar.set_message(interval_message(interval, len_s));
    }
    stats.merge(interval);
    interval.clear();
    if let Some(l) = &out.live {
        let rate = if len_s > 0.0 {
            started.saturating_sub(l.started()) as f64 / len_s
        } else {
            0.0
        };
        l.publish(stats, started, rate);
    }
}

/// `last 1.0s: 48.0 flows/s, ok 100.0%, flow p99 0.231s` for the progress bar.
fn interval_message(interval: &Stats, len_s: f64) -> String {
    let done = interval.flows_total();
    if done == 0 {
        return format!("last {len_s:.1}s: no flow ended");
    }
    let p99 = interval.flow_intended.value_at_quantile(0.99) as f64 / 1e6;
    format!(
        "last {len_s:.1}s: {:.1} flows/s, ok {:.1}%, flow p99 {p99:.3}s",
        done as f64 / len_s.max(1e-9),
        100.0 * interval.flows_ok() as f64 / done as f64,
    )
}

/// Feeds one flow's (or probe's) end to the outage tracker; `now_s` is when it ended.
fn observe(outages: &mut OutageTracker, now_s: f64, batch: &Batch) {
    let mut failure = None;
    for s in batch {
        match s {
            Sample::Probe { ok } => outages.on_probe(now_s, *ok),
            Sample::Step {
                failure: Some(f), ..
            } => failure = Some(f),
            Sample::Flow {
                elapsed_us,
                failed_step,
                measured: true,
                ..
            } => {
                let started = now_s - *elapsed_us as f64 / 1e6;
                match (failed_step, failure) {
                    (None, _) => outages.on_ok_flow(started, now_s),
                    (Some(_), Some(f)) => outages.on_failed_flow(started, now_s, f),
                    (Some(_), None) => {}
                }
            }
            _ => {}
        }
    }
}

/// Folds one sample into the interval tally and the timeline, and moves the progress bar
/// on for a finished flow.
fn fold(stats: &mut Stats, timeline: &mut TimelineBuilder, bar: &ProgressBar, s: Sample) {
    let flow = match &s {
        Sample::Flow {
            elapsed_us,
            lateness_us,
            failed_step,
            measured: true,
        } => Some((
            elapsed_us.saturating_add(*lateness_us),
            failed_step.is_none(),
        )),
        Sample::Step {
            failure: Some(f), ..
        } => {
            timeline.on_error(matches!(f, crate::samples::FailureKind::RateLimited { .. }));
            None
        }
        _ => None,
    };
    let warmup_done = matches!(
        s,
        Sample::Flow {
            measured: false,
            ..
        }
    );
    stats.record(s);
    if let Some((us, ok)) = flow {
        timeline.on_flow(us, ok);
    }
    if flow.is_some() || warmup_done {
        bar.inc(1);
    }
}

/// The progress bar: drawn on stderr only when asked for and stdout is a terminal, so
/// piped or CI output carries no control codes.
pub fn progress_bar(wanted: bool, color: bool, total: Option<u64>) -> ProgressBar {
    use std::io::IsTerminal;
    if !wanted || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = match (total.is_some(), color) {
        (true, true) => {
            "{spinner:.green} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} flows {msg}"
        }
        (true, false) => "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} flows {msg}",
        (false, true) => "{spinner:.green} [{elapsed_precise}] {pos} flows {msg}",
        (false, false) => "{spinner} [{elapsed_precise}] {pos} flows {msg}",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
