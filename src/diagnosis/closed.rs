//! The finding on `closed` failures: connections the server closed without answering,
//! and, when they came while requests waited, the keep-alive race behind them.

use super::{fmt_ms, Diagnosis};
use crate::report::Report;

/// A close this long after the request was sent, while the run queued, is a keep-alive
/// timeout firing in a blocked server rather than a crash.
const BLOCKED_CLOSE_MS: f64 = 500.0;

pub(super) fn finding(d: &Diagnosis, run: &Report) -> Option<String> {
    let (mut count, mut reused) = (0u64, 0u64);
    let (mut idle, mut waited) = (0.0, 0.0);
    let mut at = Vec::new();
    let mut slow_close = false;
    for (st, sd) in run.steps.iter().zip(&d.steps) {
        let Some(c) = &st.closed else { continue };
        count += c.count;
        reused += c.reused;
        idle += c.idle_mean_ms * c.count as f64;
        waited += c.waited_mean_ms * c.count as f64;
        at.push(format!("`{}` ×{}", st.name, c.count));
        slow_close |=
            c.reused > 0 && c.waited_mean_ms >= BLOCKED_CLOSE_MS.max(5.0 * sd.service_time_ms);
    }
    if count == 0 {
        return None;
    }
    let (idle, waited) = (idle / count as f64, waited / count as f64);
    let mut f = format!(
        "{count} requests failed as `closed` ({}): the server closed the connection without answering; {reused} of them went on kept-alive connections (idle {} on average before the request, closed {} on average after it was sent). They never got an answer; `authbench run` retries nothing, so clients that do not retry POSTs see the same failure.",
        at.join(", "),
        fmt_ms(idle),
        fmt_ms(waited)
    );
    let queued = d.waiting_fraction.is_none_or(|w| w >= 0.5);
    if slow_close && queued {
        f.push_str(&format!(
            " They came while requests waited ({}): the server was blocked longer than its keep-alive timeout and then closed kept-alive connections that already carried the next request (typical keep-alive timeouts: uvicorn 5 s, gunicorn 2 s, Node 5 s). This is a server-side failure: unblock the server (hashing off the event loop, more workers) or set its keep-alive timeout above its longest stall.",
            d.waiting_fraction
                .map(|w| format!("flow time {:.0}% waiting", w * 100.0))
                .unwrap_or_else(|| "no flow succeeded".into())
        ));
    }
    Some(f)
}
