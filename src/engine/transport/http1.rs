//! The hot path's HTTP/1.1 client for `http://` and `https://` targets: hyper's
//! connection-level API, one keep-alive connection per flow in flight, kept in a small pool
//! between flows. For `https://` a new connection is a TCP connect, then a TLS handshake
//! (tokio-rustls, the run's one rustls config), then the same HTTP/1.1 connection over the
//! encrypted stream: same pool, same timers, and the handshake timed on its own.
//!
//! reqwest (used by `check`, and when the target's host does not resolve up front) wraps
//! this same hyper client in URL conversion, redirect and retry layers and a connection
//! pool keyed by host; on the health scenario those cost about twice hyper's own
//! per-request CPU, enough to make the harness, not the server, the bottleneck. Here a
//! flow takes a connection, sends its requests on it in order, and gives it back: no
//! per-request URL parsing, no pool lookup. A request is never retried once sent; a pooled
//! connection found closed before sending is replaced (the request had not left). A
//! connection the server closes after the request left is [`FailureKind::Closed`], with
//! how long it had been idle.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderMap, HeaderValue, HOST};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;
use tokio_rustls::TlsConnector;

use super::micros;
use crate::scenario::Scenario;
use crate::stats::FailureKind;

/// A connection to the target, and since when it has been idle (its last response).
pub struct Conn {
    send: SendRequest<Full<Bytes>>,
    idle_since: Instant,
}

/// What one request measured and received.
pub struct Exchange {
    pub ttfb_us: u64,
    pub total_us: u64,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// One request's outcome, with the times that exist whether or not it got a response.
pub struct Attempt {
    /// From the start of the exchange to its end (response or failure).
    pub total_us: u64,
    /// Set when the request opened a new connection and the connect succeeded.
    pub connect_us: Option<u64>,
    /// Set when that connection's TLS handshake succeeded (`https://` only).
    pub tls_us: Option<u64>,
    /// Set when the request went on a kept-alive connection: how long it had been idle.
    pub idle_us: Option<u64>,
    pub result: Result<Exchange, FailureKind>,
}

/// TLS for an `https://` target: the connector and the name its certificate must carry.
struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

/// A new connection and what opening it took.
struct Opened {
    conn: Conn,
    connect_us: u64,
    tls_us: Option<u64>,
}

/// The target and the idle connections.
pub struct Http1 {
    addr: SocketAddr,
    host: HeaderValue,
    /// Path prefix of the target URL ("" or "/api"), prepended to every step's path.
    pub prefix: String,
    /// Per step, its request URI when its path has no variable.
    static_uris: Vec<Option<Uri>>,
    timeout: Duration,
    connect_timeout: Duration,
    /// Set for `https://` targets.
    tls: Option<Tls>,
    idle: Mutex<Vec<Conn>>,
    /// Keep at most this many idle connections.
    max_idle: usize,
}

impl Http1 {
    /// For an `http://` base URL, or an `https://` one given its TLS config, whose host
    /// resolves now; `None` otherwise (the caller then uses reqwest).
    pub async fn for_target(
        base_url: &str,
        scenario: &Scenario,
        timeout: Duration,
        connect_timeout: Duration,
        max_idle: usize,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Option<Http1> {
        let url = reqwest::Url::parse(base_url).ok()?;
        let host = url.host_str()?.to_string();
        let tls = match (url.scheme(), tls) {
            ("http", _) => None,
            ("https", Some(config)) => Some(Tls {
                connector: TlsConnector::from(config),
                name: crate::tls::server_name(&host)?,
            }),
            _ => return None,
        };
        let port = url.port_or_known_default()?;
        let addr = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .ok()?
            .next()?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        let prefix = url.path().trim_end_matches('/').to_string();
        // Paths without variables are parsed once here, not per request.
        let static_uris = scenario
            .steps
            .iter()
            .map(|s| Uri::try_from(format!("{prefix}{}", s.path.constant()?)).ok())
            .collect();
        Some(Http1 {
            addr,
            host: HeaderValue::from_str(&authority).ok()?,
            prefix,
            static_uris,
            timeout,
            connect_timeout,
            tls,
            idle: Mutex::new(Vec::new()),
            max_idle,
        })
    }

    /// Step `index`'s URI if its path is constant (a cheap clone of shared bytes).
    pub fn static_uri(&self, index: usize) -> Option<Uri> {
        self.static_uris.get(index).cloned().flatten()
    }

    /// An idle connection, if any.
    pub fn take(&self) -> Option<Conn> {
        self.idle.lock().ok()?.pop()
    }

    /// Gives a connection back for the next flow.
    pub fn give(&self, conn: Conn) {
        if conn.send.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
    }

    /// Opens a connection: the TCP connect (timed), then for `https://` the TLS handshake
    /// (timed on its own), then hyper's HTTP/1 handshake, which sends nothing.
    async fn connect(&self) -> Result<Opened, FailureKind> {
        let start = Instant::now();
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(self.addr),
        )
        .await
        .map_err(|_| FailureKind::Timeout)?
        .map_err(|_| FailureKind::Connect)?;
        let connect_us = micros(start.elapsed());
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Opened {
                conn: over(stream).await?,
                connect_us,
                tls_us: None,
            });
        };
        let start = Instant::now();
        let stream = tls
            .connector
            .connect(tls.name.clone(), stream)
            .await
            .map_err(|_| FailureKind::Tls)?;
        let tls_us = micros(start.elapsed());
        Ok(Opened {
            conn: over(stream).await?,
            connect_us,
            tls_us: Some(tls_us),
        })
    }

    /// Sends `req` on `conn` (connecting first if there is none or it has closed) and
    /// reads the whole response. Timed from just before the request is handed to the
    /// connection; the timeout covers the whole exchange, connecting included.
    pub async fn exchange(
        &self,
        conn: &mut Option<Conn>,
        mut req: hyper::Request<Full<Bytes>>,
        keep_headers: bool,
        mut timer: Pin<&mut Sleep>,
    ) -> Attempt {
        req.headers_mut().insert(HOST, self.host.clone());
        let start = Instant::now();
        timer
            .as_mut()
            .reset(tokio::time::Instant::from_std(start) + self.timeout);
        let (mut connect_us, mut tls_us) = (None, None);
        let mut idle_us = None;
        let work = async {
            let fresh = match conn.take() {
                Some(mut c) => match c.send.ready().await {
                    Ok(()) => {
                        idle_us = Some(micros(start.saturating_duration_since(c.idle_since)));
                        Ok(c)
                    }
                    // Closed while idle (the server's keep-alive ended): the request has
                    // not left, so a new connection is not a retry.
                    Err(_) => Err(()),
                },
                None => Err(()),
            };
            let mut sender = match fresh {
                Ok(c) => c,
                Err(()) => {
                    let opened = self.connect().await?;
                    connect_us = Some(opened.connect_us);
                    tls_us = opened.tls_us;
                    opened.conn
                }
            };
            let reused = connect_us.is_none();
            let resp = sender
                .send
                .send_request(req)
                .await
                .map_err(|e| closed_or_transport(&e, reused))?;
            let ttfb_us = micros(start.elapsed());
            let status = resp.status().as_u16();
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|_| FailureKind::Transport)?
                .to_bytes();
            sender.idle_since = Instant::now();
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
        let result = {
            let mut work = std::pin::pin!(work);
            std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = work.as_mut().poll(cx) {
                    return Poll::Ready(r);
                }
                timer.as_mut().poll(cx).map(|()| Err(FailureKind::Timeout))
            })
            .await
        };
        Attempt {
            total_us: micros(start.elapsed()),
            connect_us,
            tls_us,
            idle_us,
            result,
        }
    }
}

/// An HTTP/1 connection over `io` (plain TCP or TLS), its driver spawned.
async fn over<I>(io: I) -> Result<Conn, FailureKind>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|_| FailureKind::Connect)?;
    tokio::spawn(async move {
        // Ends when the connection closes; its errors surface on the sender.
        let _ = conn.await;
    });
    Ok(Conn {
        send: sender,
        idle_since: Instant::now(),
    })
}

/// A request that got no response head: the server closing the connection (an EOF, a
/// reset, or hyper cancelling the request because the connection closed under it) is
/// [`FailureKind::Closed`]; anything else (invalid HTTP, a too-large head) is transport.
fn closed_or_transport(e: &hyper::Error, reused: bool) -> FailureKind {
    use std::error::Error as _;
    let io_kind = e
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(|io| io.kind());
    let reset = matches!(
        io_kind,
        Some(std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe)
    );
    if reset || e.is_incomplete_message() || e.is_canceled() {
        FailureKind::Closed { reused, reset }
    } else {
        FailureKind::Transport
    }
}
