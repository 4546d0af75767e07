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
//!
//! Who closes first: the side that closes a TCP connection first keeps it in TIME_WAIT for
//! 60 s, holding a local port on the generator's side (see [`super::local`]). So when
//! authbench knows a connection is done (the last request of a flow under `--connections
//! per-flow`) that request says `Connection: close`; the response is read whole, then the
//! connection's task waits for the server's FIN (over TLS, its `close_notify`), answers with
//! its own (`close_notify`, then FIN) and closes: the TIME_WAIT lands on the server. A
//! server that ignores `Connection: close` is closed by authbench after [`LINGER`]. Idle
//! pooled connections retired at the end of a run (at most one per flow in flight) and
//! connections of a flow that failed are closed by authbench at once.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderMap, HeaderValue, CONNECTION, HOST};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_rustls::TlsConnector;

use super::local::{classify_io, Sources};
use super::micros;
use crate::samples::FailureKind;
use crate::scenario::Scenario;

/// How long a connection whose last request said `Connection: close` waits for the
/// server's FIN before authbench closes it itself.
pub const LINGER: Duration = Duration::from_millis(500);

/// A connection to the target: hyper's sender, and whether its task should wait for the
/// server to close it once hyper is done with it, and since when it has been idle (its
/// last response).
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    server_closes: Arc<AtomicBool>,
    idle_since: Instant,
}

/// What one request measured and received.
pub struct Exchange {
    pub ttfb_us: u64,
    pub total_us: u64,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Body bytes received in all, kept or not.
    pub received: u64,
    /// The body was longer than the limit: `body` is its first part.
    pub truncated: bool,
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
    /// Where new connections leave from (`--source-addr`).
    sources: Sources,
    /// Keep at most this many bytes of a body (`--max-body`); the rest is read and dropped.
    max_body: usize,
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
        sources: Sources,
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
            sources,
            max_body: super::DEFAULT_MAX_BODY,
        })
    }

    /// Keeps at most `limit` bytes of each body (`--max-body`).
    pub fn with_max_body(mut self, limit: usize) -> Http1 {
        self.max_body = limit;
        self
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
        if conn.sender.is_closed() {
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
        let stream = tokio::time::timeout(self.connect_timeout, self.sources.connect(self.addr))
            .await
            .map_err(|_| FailureKind::Timeout)?
            .map_err(|e| classify_io(&e))?;
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
    /// connection; the timeout covers the whole exchange, connecting included. With
    /// `last`, the request is the connection's last: it says `Connection: close` (unless
    /// the step sets its own `Connection`) and the server is left to close first.
    pub async fn exchange(
        &self,
        conn: &mut Option<Conn>,
        mut req: hyper::Request<Full<Bytes>>,
        keep_headers: bool,
        last: bool,
        mut timer: Pin<&mut Sleep>,
    ) -> Attempt {
        req.headers_mut().insert(HOST, self.host.clone());
        let last = last && !req.headers().contains_key(CONNECTION);
        if last {
            req.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let start = Instant::now();
        timer
            .as_mut()
            .reset(tokio::time::Instant::from_std(start) + self.timeout);
        let (mut connect_us, mut tls_us) = (None, None);
        let mut idle_us = None;
        let work = async {
            let fresh = match conn.take() {
                Some(mut c) => match c.sender.ready().await {
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
                    // Boxed: opening is rare, and its state (TCP, TLS) would
                    // otherwise make every exchange's future, moved per request, 4x larger.
                    let opened = Box::pin(self.connect()).await?;
                    connect_us = Some(opened.connect_us);
                    tls_us = opened.tls_us;
                    opened.conn
                }
            };
            let reused = connect_us.is_none();
            if last {
                sender.server_closes.store(true, Ordering::Relaxed);
            }
            let resp = sender
                .sender
                .send_request(req)
                .await
                .map_err(|e| closed_or_transport(&e, reused))?;
            let ttfb_us = micros(start.elapsed());
            if closes(&resp) {
                // The server said it closes this connection: let it.
                sender.server_closes.store(true, Ordering::Relaxed);
            }
            let status = resp.status().as_u16();
            let (parts, body) = resp.into_parts();
            let read = super::read_bounded(body, self.max_body)
                .await
                .map_err(|_| FailureKind::Transport)?;
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
                body: read.body,
                received: read.received,
                truncated: read.truncated,
            })
        };
        let result = super::before_deadline(work, timer.as_mut()).await;
        Attempt {
            total_us: micros(start.elapsed()),
            connect_us,
            tls_us,
            idle_us,
            result,
        }
    }
}

/// Whether the server said it closes the connection after this response: `Connection:
/// close`, or HTTP/1.0 without `keep-alive`.
fn closes<B>(resp: &hyper::Response<B>) -> bool {
    let has = |token: &str| {
        resp.headers().get_all(CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has("close") || (resp.version() == hyper::Version::HTTP_10 && !has("keep-alive"))
}

/// An HTTP/1 connection over `io` (plain TCP or TLS), its task spawned.
async fn over<I: ServerClose>(io: I) -> Result<Conn, FailureKind> {
    let (sender, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|_| FailureKind::Connect)?;
    let server_closes = Arc::new(AtomicBool::new(false));
    let flag = server_closes.clone();
    // Boxed: hyper's connection is large, and the task would otherwise copy it whole
    // into its cell and through each change of stage (a fifth of a new connection's
    // memcpy in callgrind); this way those copies are of a pointer.
    tokio::spawn(Box::pin(async move {
        // Ends when hyper is done with the connection (errors surface on the sender);
        // without shutting it down, so that the server may close first.
        if let Ok(parts) = conn.without_shutdown().await {
            if flag.load(Ordering::Relaxed) {
                linger(parts.io.into_inner()).await;
            }
        }
    }));
    Ok(Conn {
        sender,
        server_closes,
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

/// Waits up to [`LINGER`] for the server to close `io`, then closes our side
/// (`close_notify` and FIN over TLS, FIN over TCP), both after the server's, so the
/// TIME_WAIT is the server's.
async fn linger<I: ServerClose>(mut io: I) {
    // One timer for both halves: a server that never closes, or never reads our
    // close_notify, costs at most LINGER.
    let _ = tokio::time::timeout(LINGER, async {
        io.server_closed().await;
        io.close_ours().await;
    })
    .await;
}

/// A stream that can tell when the server has closed its side.
trait ServerClose: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Resolves once the server has closed (or reset) the connection, dropping whatever
    /// it still sends.
    fn server_closed(&mut self) -> impl Future<Output = ()> + Send;

    /// Closes our side once the server has closed its own; the drop that follows
    /// releases the descriptor.
    fn close_ours(&mut self) -> impl Future<Output = ()> + Send {
        async {
            let _ = self.shutdown().await;
        }
    }
}

impl ServerClose for TcpStream {
    /// The server's FIN usually comes with its response, and the reactor already knows
    /// (`EPOLLRDHUP`): no read call is made for it, as reading to EOF would.
    async fn server_closed(&mut self) {
        let mut buf = [0u8; 256];
        loop {
            match self.ready(Interest::READABLE).await {
                Ok(r) if r.is_read_closed() => return,
                Ok(_) => match self.try_read(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                },
                Err(_) => return,
            }
        }
    }

    /// Nothing: the `close()` of the drop that follows sends the FIN that a `shutdown()`
    /// would, one system call fewer per new connection.
    async fn close_ours(&mut self) {}
}

impl ServerClose for tokio_rustls::client::TlsStream<TcpStream> {
    /// Over TLS the server's `close_notify` comes first: read up to it (or to EOF).
    async fn server_closed(&mut self) {
        let mut buf = [0u8; 256];
        while let Ok(1..) = self.read(&mut buf).await {}
    }
}
