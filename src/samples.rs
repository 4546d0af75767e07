//! What workers record: the plain samples they send to the collector ([`Sample`], with
//! [`FailureKind`] naming why a request failed), the HDR histograms those samples are
//! counted into, and the percentile summary of a histogram.
//!
//! Histograms count microseconds, keep 3 significant figures and resize themselves, so a
//! 60-second request (or a 60-minute one) is recorded, never dropped and never a panic.
//! Ground floor: of the crate it uses only `units` (to word a size).

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
    /// The server refused the request for its rate: 429, or 503 with `Retry-After`, that
    /// the step does not accept; `retry_after` is the header's value as sent.
    RateLimited {
        status: u16,
        retry_after: Option<Arc<str>>,
    },
    /// The body was needed as JSON and is not JSON.
    NotJson,
    /// A value the step extracts is missing (a JSON pointer or a header).
    Missing(Arc<str>),
    /// A `check` on the body failed (the pointer is named).
    Check(Arc<str>),
    /// The step reads the body (a JSON check or extract, a regex over the body) and the
    /// body was longer than `--max-body`, so what it needs may lie past the part kept.
    BodyTooLarge { limit: u64 },
    /// The server ended the connection (FIN, or RST when `reset`) before a response head
    /// came: it closed without answering. `reused`: the request went on a kept-alive
    /// connection (the classic keep-alive race), not on one opened for it.
    Closed { reused: bool, reset: bool },
    /// The connection broke mid-response or the server spoke invalid HTTP.
    Transport,
    /// The request could not be built (e.g. an extracted value is not a valid header).
    Request,
    /// HTTP/2: the server sent `GOAWAY` and the request's stream was above its last
    /// stream id (not processed), or the connection went away with it.
    GoAway,
    /// HTTP/2: the server reset the request's stream (`RST_STREAM`, with this reason
    /// code); a `REFUSED_STREAM` here was refused again after its one retry.
    StreamReset(u32),
    /// HTTP/2: the request body waited for flow-control window (the server granted none)
    /// until the timeout.
    FlowControl,
    /// A failure read back from a saved report (class and detail as written there).
    Loaded { class: Arc<str>, detail: Arc<str> },
}

/// The failure class of requests the server refused for their rate.
pub const RATE_LIMITED: &str = "rate_limited";

impl FailureKind {
    /// The failure for an unaccepted `status`: rate limited when the status says so (429,
    /// or 503 with `Retry-After`), else [`FailureKind::Status`].
    pub fn of_status(status: u16, retry_after: Option<&str>) -> FailureKind {
        if status == 429 || (status == 503 && retry_after.is_some()) {
            FailureKind::RateLimited {
                status,
                retry_after: retry_after.map(|r| r.trim().into()),
            }
        } else {
            FailureKind::Status(status)
        }
    }

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
            FailureKind::RateLimited { .. } => RATE_LIMITED,
            FailureKind::NotJson | FailureKind::Missing(_) => "bad_body",
            FailureKind::Check(_) => "check",
            FailureKind::BodyTooLarge { .. } => "body_too_large",
            FailureKind::Closed { .. } => "closed",
            FailureKind::Transport => "transport",
            FailureKind::Request => "request",
            FailureKind::GoAway => "goaway",
            FailureKind::StreamReset(_) => "stream_reset",
            FailureKind::FlowControl => "flow_control",
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
            FailureKind::RateLimited {
                status,
                retry_after,
            } => match retry_after {
                Some(r) => format!("rate limited: status {status}, Retry-After: {r}"),
                None => format!("rate limited: status {status}, no Retry-After"),
            },
            FailureKind::NotJson => "body is not JSON".into(),
            FailureKind::Missing(p) => format!("missing {p}"),
            FailureKind::Check(p) => format!("check failed at {p}"),
            FailureKind::BodyTooLarge { limit } => format!(
                "body longer than --max-body {}: the step reads it and only the first {} were kept",
                crate::units::bytes_text(*limit),
                crate::units::bytes_text(*limit)
            ),
            FailureKind::Closed { reused, reset } => format!(
                "server {} a {} connection without answering",
                if *reset { "reset" } else { "closed" },
                if *reused { "kept-alive" } else { "new" }
            ),
            FailureKind::Transport => "connection broken or invalid HTTP".into(),
            FailureKind::Request => "request could not be built".into(),
            FailureKind::GoAway => "the server sent GOAWAY before answering the stream".into(),
            FailureKind::StreamReset(code) => {
                format!(
                    "the server reset the stream (RST_STREAM {})",
                    h2_reason(*code)
                )
            }
            FailureKind::FlowControl => {
                "flow-control stall: the server granted no window for the request body".into()
            }
            FailureKind::Loaded { detail, .. } => detail.to_string(),
        }
    }
}

/// An HTTP/2 error code's name (RFC 9113 §7), or its number.
fn h2_reason(code: u32) -> String {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    match NAMES.get(code as usize) {
        Some(n) => n.to_string(),
        None => format!("0x{code:x}"),
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
        /// Response body bytes received (kept or not; 0 without a response).
        bytes: u64,
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
    /// A `follow = true` step followed `hops` redirects (sent only when it followed any).
    Redirects { step: usize, hops: u64 },
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
