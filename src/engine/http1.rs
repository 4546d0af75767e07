//! The hot path's HTTP/1.1 client for `http://` targets: hyper's connection-level API, one
//! keep-alive connection per flow in flight, kept in a small pool between flows.
//!
//! reqwest (used for `https://` targets and by `check`) wraps this same hyper client in
//! URL conversion, redirect and retry layers and a connection pool keyed by host; on the
//! health scenario those cost about twice hyper's own per-request CPU, enough to make the
//! harness, not the server, the bottleneck. Here a flow takes a connection, sends its
//! requests on it in order, and gives it back: no per-request URL parsing, no pool lookup.
//! A request is never retried once sent; a pooled connection found closed before sending
//! is replaced (the request had not left).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderMap, HeaderValue, HOST};
use hyper_util::rt::TokioIo;

use crate::stats::FailureKind;

/// A connection to the target.
pub type Conn = SendRequest<Full<Bytes>>;

/// What one request measured and received.
pub struct Exchange {
    pub ttfb_us: u64,
    pub total_us: u64,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The target and the idle connections.
pub struct Http1 {
    addr: SocketAddr,
    host: HeaderValue,
    /// Path prefix of the target URL ("" or "/api"), prepended to every step's path.
    pub prefix: String,
    timeout: Duration,
    connect_timeout: Duration,
    idle: Mutex<Vec<Conn>>,
    /// Keep at most this many idle connections.
    max_idle: usize,
}

impl Http1 {
    /// For an `http://` base URL whose host resolves now; `None` otherwise (the caller then
    /// uses reqwest).
    pub async fn for_target(
        base_url: &str,
        timeout: Duration,
        connect_timeout: Duration,
        max_idle: usize,
    ) -> Option<Http1> {
        let url = reqwest::Url::parse(base_url).ok()?;
        if url.scheme() != "http" {
            return None;
        }
        let host = url.host_str()?.to_string();
        let port = url.port_or_known_default()?;
        let addr = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .ok()?
            .next()?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        Some(Http1 {
            addr,
            host: HeaderValue::from_str(&authority).ok()?,
            prefix: url.path().trim_end_matches('/').to_string(),
            timeout,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
            max_idle,
        })
    }

    /// An idle connection, if any.
    pub fn take(&self) -> Option<Conn> {
        self.idle.lock().ok()?.pop()
    }

    /// Gives a connection back for the next flow.
    pub fn give(&self, conn: Conn) {
        if conn.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
    }

    async fn connect(&self) -> Result<Conn, FailureKind> {
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(self.addr),
        )
        .await
        .map_err(|_| FailureKind::Timeout)?
        .map_err(|_| FailureKind::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| FailureKind::Connect)?;
        tokio::spawn(async move {
            // Ends when the connection closes; its errors surface on the sender.
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends `req` on `conn` (connecting first if there is none or it has closed) and
    /// reads the whole response. Timed from just before the request is handed to the
    /// connection; the timeout covers the whole exchange, connecting included.
    pub async fn exchange(
        &self,
        conn: &mut Option<Conn>,
        mut req: hyper::Request<Full<Bytes>>,
        keep_headers: bool,
    ) -> (u64, Result<Exchange, FailureKind>) {
        req.headers_mut().insert(HOST, self.host.clone());
        let start = Instant::now();
        let work = async {
            let mut sender = match conn.take() {
                Some(mut c) => match c.ready().await {
                    Ok(()) => c,
                    // Closed while idle (the server's keep-alive ended): the request has
                    // not left, so a new connection is not a retry.
                    Err(_) => self.connect().await?,
                },
                None => self.connect().await?,
            };
            let resp = sender
                .send_request(req)
                .await
                .map_err(|_| FailureKind::Transport)?;
            let ttfb_us = micros(start.elapsed());
            let status = resp.status().as_u16();
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|_| FailureKind::Transport)?
                .to_bytes();
            *conn = Some(sender);
            Ok(Exchange {
                ttfb_us,
                total_us: micros(start.elapsed()),
                status,
                headers: if keep_headers {
                    parts.headers
                } else {
                    HeaderMap::new()
                },
                body,
            })
        };
        let out = match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(FailureKind::Timeout),
        };
        (micros(start.elapsed()), out)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
