//! HTTP/2 in the diagnosis: concurrency is streams, not connections. A few connections
//! carry every request in flight, the server's `SETTINGS_MAX_CONCURRENT_STREAMS` caps how
//! many it ever sees at once, and a request that waited for a stream waited in authbench,
//! not in the server.

use super::{fmt_ms, Diagnosis};
use crate::engine::transport::h2count::HttpSummary;
use crate::report::Report;

/// The run's HTTP/2 figures; `None` for HTTP/1.1 (no HTTP/2 connection opened).
pub(super) fn h2(run: &Report) -> Option<&HttpSummary> {
    run.http.as_ref().filter(|h| h.connections > 0)
}

/// `as streams on 2 HTTP/2 connections (h2)`, for the capacity finding's "at concurrency".
pub(super) fn at(run: &Report) -> Option<String> {
    let h = h2(run)?;
    Some(if run.config.connections == "per-flow" {
        format!(
            "as streams on a new HTTP/2 connection per flow ({})",
            h.protocol
        )
    } else {
        format!(
            "as streams on {} HTTP/2 connection(s) ({}): the server saw that many connections, not one per flow",
            h.connections, h.protocol
        )
    })
}

/// The time requests waited for a stream, as a share of all the waiting of the run (the
/// loaded mean of each step above its service time, over its requests). `None` without
/// HTTP/2, stream waits or waiting.
fn stream_share(d: &Diagnosis, run: &Report) -> Option<f64> {
    let h = h2(run).filter(|h| h.stream_waits > 0)?;
    let queued: f64 = run
        .steps
        .iter()
        .zip(&d.steps)
        .map(|(st, sd)| st.requests as f64 * (st.latency.mean_ms - sd.service_time_ms).max(0.0))
        .sum();
    (queued > 0.0).then(|| (h.stream_wait_ms_total / queued).min(1.0))
}

/// The stream limit held the run below its concurrency, and most of its waiting was for a
/// stream: the server never saw the load offered, so nothing is said about its capacity.
pub(super) fn stream_bound(d: &Diagnosis, run: &Report) -> bool {
    let Some(h) = h2(run) else { return false };
    (h.peak_open_streams as usize) < d.concurrency && stream_share(d, run).is_some_and(|s| s >= 0.5)
}

/// The main claim of a stream-bound run.
pub(super) fn capacity(d: &Diagnosis, run: &Report) -> String {
    let h = h2(run).expect("stream_bound holds");
    let share = stream_share(d, run).unwrap_or(0.0) * 100.0;
    format!(
        "The HTTP/2 stream limit was the limit: {} flows were offered, but at most {} streams were open at once ({}), and {share:.0}% of the waiting was for a stream ({} requests, {} in all, {} at most). Those requests waited in authbench, not in the server, which saw at most {} at once and worked on {:.1} on average: nothing here measures its capacity. Raise the server's SETTINGS_MAX_CONCURRENT_STREAMS or --h2-connections, or use --connections per-flow.",
        d.concurrency,
        h.peak_open_streams,
        limit(h),
        h.stream_waits,
        fmt_ms(h.stream_wait_ms_total),
        fmt_ms(h.stream_wait_ms_max),
        h.peak_open_streams,
        d.effective_parallelism,
    )
}

fn limit(h: &HttpSummary) -> String {
    match h.server_max_concurrent_streams {
        Some(m) => format!(
            "the server allows {m} per connection, on {} connection(s)",
            h.connections
        ),
        None => "the server announced no limit".into(),
    }
}

/// Stream waits that did not decide the run, and `GOAWAY`s.
pub(super) fn findings(d: &Diagnosis, run: &Report) -> Vec<String> {
    let Some(h) = h2(run) else { return Vec::new() };
    let mut out = Vec::new();
    if h.stream_waits > 0 && !stream_bound(d, run) {
        out.push(format!(
            "{} requests waited for an HTTP/2 stream ({} in all, {} at most; {}): {:.0}% of the run's waiting, spent in authbench before the server saw the request.",
            h.stream_waits,
            fmt_ms(h.stream_wait_ms_total),
            fmt_ms(h.stream_wait_ms_max),
            limit(h),
            stream_share(d, run).unwrap_or(0.0) * 100.0
        ));
    }
    if h.goaway > 0 {
        let lost: u64 = run
            .steps
            .iter()
            .filter_map(|s| s.failures.get("goaway"))
            .sum();
        out.push(format!(
            "The server sent GOAWAY on {} of {} HTTP/2 connections; {lost} requests it had not processed failed as `goaway`, and later requests went on new connections. Servers do this after a number of requests per connection (nginx keepalive_requests, 1000 by default) or when they shut down; each one costs a new handshake.",
            h.goaway, h.connections
        ));
    }
    out
}
