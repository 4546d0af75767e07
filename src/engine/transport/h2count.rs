//! What the HTTP/2 client counts while a run goes (connections, streams, the wait for a
//! stream under the server's `SETTINGS_MAX_CONCURRENT_STREAMS`, `GOAWAY`s, `RST_STREAM`s
//! and `REFUSED_STREAM` retries), the plain summary a report keeps of it
//! ([`HttpSummary`], part of the JSON format), and how an `h2` error becomes a
//! [`FailureKind`].
//!
//! Counters are atomics bumped once per stream, never a lock on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::samples::FailureKind;

/// The HTTP/2 figures of one run (or of what was run since the last [`H2Counts::reset`]).
#[derive(Debug, Default)]
pub struct H2Counts {
    pub connections: AtomicU64,
    pub streams: AtomicU64,
    open: AtomicU64,
    peak_open: AtomicU64,
    /// The smallest `SETTINGS_MAX_CONCURRENT_STREAMS` a connection was given (0: none
    /// seen yet; `u64::MAX`: the server set no limit).
    server_max: AtomicU64,
    stream_waits: AtomicU64,
    stream_wait_us: AtomicU64,
    stream_wait_max_us: AtomicU64,
    pub goaway: AtomicU64,
    pub rst_stream: AtomicU64,
    pub refused_retried: AtomicU64,
}

impl H2Counts {
    /// Forgets the streams' figures (the calibration's are not the measured run's); the
    /// connections opened and the server's stream limit stay, as those connections are
    /// the ones the run goes on.
    pub fn reset(&self) {
        for c in [
            &self.streams,
            &self.peak_open,
            &self.stream_waits,
            &self.stream_wait_us,
            &self.stream_wait_max_us,
            &self.goaway,
            &self.rst_stream,
            &self.refused_retried,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.peak_open
            .store(self.open.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// A connection opened whose server allows `max` concurrent streams (`None`: no limit).
    pub fn connection(&self, max: Option<u64>) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        let max = max.unwrap_or(u64::MAX);
        let _ = self
            .server_max
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                (m == 0 || max < m).then_some(max)
            });
    }

    /// A stream opened; returns a guard that closes it when dropped.
    pub fn stream(&self) -> OpenStream<'_> {
        self.streams.fetch_add(1, Ordering::Relaxed);
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_open.fetch_max(open, Ordering::Relaxed);
        OpenStream(self)
    }

    /// A request waited `us` for a stream of its connection.
    pub fn waited(&self, us: u64) {
        self.stream_waits.fetch_add(1, Ordering::Relaxed);
        self.stream_wait_us.fetch_add(us, Ordering::Relaxed);
        self.stream_wait_max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// The summary a report keeps, for `protocol` (`h2` over TLS, `h2c` over TCP).
    pub fn summary(&self, protocol: &str) -> HttpSummary {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let connections = get(&self.connections);
        let streams = get(&self.streams);
        HttpSummary {
            protocol: protocol.to_string(),
            connections,
            streams,
            streams_per_connection: match connections {
                0 => 0.0,
                c => streams as f64 / c as f64,
            },
            server_max_concurrent_streams: match get(&self.server_max) {
                0 | u64::MAX => None,
                m => Some(m),
            },
            peak_open_streams: get(&self.peak_open),
            stream_waits: get(&self.stream_waits),
            stream_wait_ms_total: get(&self.stream_wait_us) as f64 / 1000.0,
            stream_wait_ms_max: get(&self.stream_wait_max_us) as f64 / 1000.0,
            goaway: get(&self.goaway),
            rst_stream: get(&self.rst_stream),
            refused_stream_retried: get(&self.refused_retried),
        }
    }
}

/// A stream counted open until dropped.
pub struct OpenStream<'a>(&'a H2Counts);

impl Drop for OpenStream<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The protocol a run spoke and, for HTTP/2, how its streams went (the report's `http`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpSummary {
    /// `h2` (negotiated by ALPN), `h2c` (prior knowledge over TCP) or `http/1.1`.
    pub protocol: String,
    /// HTTP/2 connections opened (0 for HTTP/1.1).
    pub connections: u64,
    /// Streams opened, one per request sent (a `REFUSED_STREAM` retry is a second).
    pub streams: u64,
    pub streams_per_connection: f64,
    /// The smallest stream limit a server connection announced; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_max_concurrent_streams: Option<u64>,
    /// The most streams open at once, over all connections.
    pub peak_open_streams: u64,
    /// Requests that waited for a stream (their connection was at the server's limit).
    pub stream_waits: u64,
    pub stream_wait_ms_total: f64,
    pub stream_wait_ms_max: f64,
    /// Connections the server sent a `GOAWAY` on.
    pub goaway: u64,
    /// Streams the server reset (`RST_STREAM`), `REFUSED_STREAM` included.
    pub rst_stream: u64,
    /// Requests refused (`REFUSED_STREAM`) and sent again on a new connection.
    pub refused_stream_retried: u64,
}

impl HttpSummary {
    /// One line for the text reports.
    pub fn describe(&self) -> String {
        if self.connections == 0 && self.protocol.starts_with("http/1") {
            return format!("{} (the server chose it over ALPN)", self.protocol);
        }
        let limit = match self.server_max_concurrent_streams {
            Some(m) => format!("server allows {m} at once"),
            None => "server sets no stream limit".to_string(),
        };
        format!(
            "{}: {} connection(s), {} streams ({:.1} per connection), at most {} open at once \
             ({limit}); {} request(s) waited for a stream ({:.1} ms in all, {:.1} ms at most); \
             GOAWAY {}, RST_STREAM {}, REFUSED_STREAM retried {}",
            self.protocol,
            self.connections,
            self.streams,
            self.streams_per_connection,
            self.peak_open_streams,
            self.stream_waits,
            self.stream_wait_ms_total,
            self.stream_wait_ms_max,
            self.goaway,
            self.rst_stream,
            self.refused_stream_retried,
        )
    }
}

/// A stream's error in HTTP/2 terms: a `GOAWAY` that took the stream with it, a stream
/// the server reset (with its reason code), a broken connection; counted in `counts`.
pub fn classify(e: &h2::Error, counts: &H2Counts, reused: bool) -> FailureKind {
    if e.is_go_away() {
        FailureKind::GoAway
    } else if e.is_reset() && e.is_remote() {
        counts.rst_stream.fetch_add(1, Ordering::Relaxed);
        FailureKind::StreamReset(e.reason().map_or(0, u32::from))
    } else if e.is_io() {
        let reset = e.get_io().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            )
        });
        FailureKind::Closed { reused, reset }
    } else {
        FailureKind::Transport
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_counted_open_until_dropped() {
        let c = H2Counts::default();
        let a = c.stream();
        let b = c.stream();
        drop(a);
        let _d = c.stream();
        drop(b);
        c.connection(Some(4));
        c.connection(Some(8));
        c.waited(1500);
        let s = c.summary("h2");
        assert_eq!((s.streams, s.peak_open_streams), (3, 2));
        assert_eq!(s.server_max_concurrent_streams, Some(4));
        assert_eq!(s.stream_waits, 1);
        assert!((s.stream_wait_ms_max - 1.5).abs() < 1e-9);
        assert!(s.describe().contains("server allows 4"), "{}", s.describe());
        c.reset();
        assert_eq!(c.summary("h2").peak_open_streams, 1);
        assert_eq!(c.summary("h2").streams, 0);
        assert_eq!(c.summary("h2").connections, 2);
    }

    #[test]
    fn no_limit_is_none() {
        let c = H2Counts::default();
        c.connection(None);
        assert_eq!(c.summary("h2c").server_max_concurrent_streams, None);
    }
}
