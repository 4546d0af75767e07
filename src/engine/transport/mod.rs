//! The transport: sends one request, already rendered, and reads its whole response,
//! timed from just before the request is handed to the client (time to first byte,
//! total, and the connect and TLS handshake times when the request opened a connection).
//! Three clients: [`http1`], hyper's connection-level HTTP/1.1 client with its own
//! keep-alive pool, for `http://` and `https://` targets (the hot path); [`http2`], the
//! `h2` crate's client, each request a stream on shared or per-flow connections
//! (`--http 2`, or `auto` when ALPN picks `h2`), with [`h2count`]'s counters; and reqwest
//! for the rest (`check`, a host that did not resolve up front), with the same TLS config.
//!
//! It knows nothing of flows: it renders no template, checks no status, extracts
//! nothing and records no sample (that is [`super::flow`]'s job), and it never retries a
//! request once sent.

pub mod h2count;
pub mod http1;
pub mod http2;
pub mod local;

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::HeaderMap;

use crate::samples::FailureKind;

/// One request's times, in µs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Times {
    /// From just before the request was handed to the client to the end of its body, or
    /// to its failure.
    pub total_us: u64,
    /// To the status line and headers; 0 when they did not come.
    pub ttfb_us: u64,
    /// Set when the request opened a connection (hyper path only).
    pub connect_us: Option<u64>,
    /// Set when that connection's TLS handshake succeeded (hyper path, `https://`).
    pub tls_us: Option<u64>,
    /// Set when the request went on a kept-alive connection: how long it had been idle
    /// (hyper path only).
    pub idle_us: Option<u64>,
    /// Response body bytes received, kept or not (0 without a response).
    pub body_bytes: u64,
}

pub use crate::options::DEFAULT_MAX_BODY;

/// A response, read to its end. `headers` is empty unless the caller asked to keep them;
/// `body` holds at most the limit it was read with (the rest was read and dropped).
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Body bytes received in all, kept or not.
    pub received: u64,
    /// The body was longer than the limit: `body` is only its first part.
    pub truncated: bool,
}

/// A body read to its end with at most `limit` bytes kept.
pub struct BoundedBody {
    pub body: Bytes,
    pub received: u64,
    pub truncated: bool,
}

/// Keeps the first `limit` bytes of the chunks `next` yields and counts the rest, so a
/// response of any size costs at most `limit` bytes of memory. A body of one chunk within
/// the limit is kept without a copy.
pub(crate) struct Keeper {
    limit: usize,
    one: Option<Bytes>,
    many: Vec<u8>,
    kept: usize,
    received: u64,
    truncated: bool,
}

impl Keeper {
    pub(crate) fn new(limit: usize) -> Keeper {
        Keeper {
            limit,
            one: None,
            many: Vec::new(),
            kept: 0,
            received: 0,
            truncated: false,
        }
    }

    pub(crate) fn push(&mut self, data: Bytes) {
        self.received += data.len() as u64;
        let room = self.limit - self.kept;
        if data.len() > room {
            self.truncated = true;
        }
        let take = data.len().min(room);
        if take == 0 {
            return;
        }
        self.kept += take;
        let piece = data.slice(..take);
        if self.one.is_none() && self.many.is_empty() {
            self.one = Some(piece);
        } else {
            if let Some(first) = self.one.take() {
                self.many.extend_from_slice(&first);
            }
            self.many.extend_from_slice(&piece);
        }
    }

    pub(crate) fn finish(self) -> BoundedBody {
        BoundedBody {
            body: match self.one {
                Some(b) => b,
                None => Bytes::from(self.many),
            },
            received: self.received,
            truncated: self.truncated,
        }
    }
}

/// Reads a hyper body to its end, keeping at most `limit` bytes.
pub async fn read_bounded<B>(mut body: B, limit: usize) -> Result<BoundedBody, B::Error>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    use http_body_util::BodyExt;
    let mut keeper = Keeper::new(limit);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            keeper.push(data);
        }
    }
    Ok(keeper.finish())
}

/// One request sent: its times, and its response or why there is none.
pub struct Sent {
    pub times: Times,
    pub response: Result<Response, FailureKind>,
}

impl From<http1::Attempt> for Sent {
    fn from(a: http1::Attempt) -> Sent {
        match a.result {
            Ok(ex) => Sent {
                times: Times {
                    total_us: ex.total_us,
                    ttfb_us: ex.ttfb_us,
                    connect_us: a.connect_us,
                    tls_us: a.tls_us,
                    idle_us: a.idle_us,
                    body_bytes: ex.received,
                },
                response: Ok(Response {
                    status: ex.status,
                    headers: ex.headers,
                    body: ex.body,
                    received: ex.received,
                    truncated: ex.truncated,
                }),
            },
            Err(k) => Sent {
                times: Times {
                    total_us: a.total_us,
                    ttfb_us: 0,
                    connect_us: a.connect_us,
                    tls_us: a.tls_us,
                    idle_us: a.idle_us,
                    body_bytes: 0,
                },
                response: Err(k),
            },
        }
    }
}

/// Sends `request` with reqwest and reads the whole body; keeps the response headers
/// only when `keep_headers`. The client's own timeout applies.
pub async fn send_reqwest(
    client: &reqwest::Client,
    request: reqwest::Request,
    keep_headers: bool,
) -> Sent {
    send_reqwest_bounded(client, request, keep_headers, usize::MAX).await
}

/// [`send_reqwest`] keeping at most `limit` bytes of the body (the rest is read and
/// dropped).
pub async fn send_reqwest_bounded(
    client: &reqwest::Client,
    request: reqwest::Request,
    keep_headers: bool,
    limit: usize,
) -> Sent {
    let start = Instant::now();
    let mut ttfb_us = 0;
    let result = async {
        let mut resp = client.execute(request).await?;
        // `execute` returns once the status line and headers are in: time to first byte.
        ttfb_us = micros(start.elapsed());
        let status = resp.status().as_u16();
        // Moved out, not cloned: the body is read without them.
        let headers = if keep_headers {
            std::mem::take(resp.headers_mut())
        } else {
            HeaderMap::new()
        };
        let mut keeper = Keeper::new(limit);
        while let Some(chunk) = resp.chunk().await? {
            keeper.push(chunk);
        }
        let read = keeper.finish();
        Ok::<_, reqwest::Error>(Response {
            status,
            headers,
            body: read.body,
            received: read.received,
            truncated: read.truncated,
        })
    }
    .await;
    // reqwest does not say whether a request opened a connection: no connect time.
    Sent {
        times: Times {
            total_us: micros(start.elapsed()),
            ttfb_us,
            connect_us: None,
            tls_us: None,
            idle_us: None,
            body_bytes: result.as_ref().map_or(0, |r| r.received),
        },
        response: result.map_err(|e| classify(&e)),
    }
}

/// Maps a client error to a failure kind. Timeouts first: a connect attempt that timed out
/// is a timeout, a refused one is a connect failure.
pub fn classify(e: &reqwest::Error) -> FailureKind {
    if e.is_timeout() {
        FailureKind::Timeout
    } else if e.is_connect() {
        // The generator's own limits (no port, no descriptor) are not the target's.
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                return local::classify_io(io);
            }
            source = s.source();
        }
        FailureKind::Connect
    } else if e.is_builder() || e.is_request() && e.url().is_none() {
        FailureKind::Request
    } else {
        FailureKind::Transport
    }
}

/// `work`'s result, or a timeout when `timer` fires first (HTTP/1.1 and HTTP/2 exchanges
/// alike: the timer covers the whole exchange, connecting included). The work is polled
/// first, so a response that is ready when the timer fires still counts.
pub(crate) async fn before_deadline<T>(
    work: impl std::future::Future<Output = Result<T, FailureKind>>,
    mut timer: std::pin::Pin<&mut tokio::time::Sleep>,
) -> Result<T, FailureKind> {
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(r) = work.as_mut().poll(cx) {
            return std::task::Poll::Ready(r);
        }
        std::future::Future::poll(timer.as_mut(), cx).map(|()| Err(FailureKind::Timeout))
    })
    .await
}

/// A duration in whole µs, saturating.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
