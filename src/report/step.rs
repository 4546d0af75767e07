//! The figures of one step of the scenario ([`StepReport`]), as the JSON report holds
//! them, and the cells the connect and first-byte tables show of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ClosedSummary;
use crate::samples::LatencySummary;

/// Figures of one step of the scenario.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepReport {
    pub name: String,
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    /// Latency of requests that got a complete response (timeouts and connection errors
    /// are counted in `failures`, not here; nor are `rate_limited` refusals).
    pub latency: LatencySummary,
    /// Time to the response headers of the same requests. For a request that opened a
    /// connection it includes the connect.
    #[serde(default)]
    pub ttfb: LatencySummary,
    /// TCP connect time, for the requests of this step that opened a connection (its
    /// `count` is the number of connections opened).
    #[serde(default)]
    pub connect: LatencySummary,
    /// TLS handshake time of those connections (`https://` targets; its `count` is the
    /// TLS connections opened), after the TCP connect and before the request is sent.
    #[serde(default)]
    pub tls: LatencySummary,
    /// Failure counts by class (`connect`, `timeout`, `status`, `bad_body`, `check`,
    /// `closed`, `transport`, ...).
    pub failures: BTreeMap<String, u64>,
    /// Response body bytes received by this step's requests, kept or not (a body is
    /// kept up to `--max-body`; the rest is read and dropped).
    #[serde(default)]
    pub bytes_received: u64,
    /// Redirects followed by the step's requests (`follow = true`), counted in its time.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redirects: u64,
    /// Requests whose connection the server closed without answering (`closed` failures):
    /// how long the connection had been idle, and how long the request waited for the close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<ClosedSummary>,
    /// The full latency histogram (microseconds), see [`super::histogram::ENCODING`].
    pub histogram: String,
    /// The full time-to-first-byte histogram.
    #[serde(default)]
    pub ttfb_histogram: String,
    /// The full connect-time histogram.
    #[serde(default)]
    pub connect_histogram: String,
    /// The full TLS handshake-time histogram.
    #[serde(default)]
    pub tls_histogram: String,
}

impl StepReport {
    /// The row of the connect and first-byte tables (Markdown and HTML): connections
    /// opened, connect p50 and p99, with `tls` the TLS handshake p50 and p99, then first
    /// byte p50 and p99, in ms; "–" where nothing was measured.
    pub fn connect_ttfb_cells(&self, tls: bool) -> Vec<String> {
        let cell = |l: &LatencySummary, v: f64| {
            if l.count == 0 {
                "–".to_string()
            } else {
                format!("{v:.2}")
            }
        };
        let mut cells = vec![
            self.connect.count.to_string(),
            cell(&self.connect, self.connect.p50_ms),
            cell(&self.connect, self.connect.p99_ms),
        ];
        if tls {
            cells.push(cell(&self.tls, self.tls.p50_ms));
            cells.push(cell(&self.tls, self.tls.p99_ms));
        }
        cells.push(cell(&self.ttfb, self.ttfb.p50_ms));
        cells.push(cell(&self.ttfb, self.ttfb.p99_ms));
        cells
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
