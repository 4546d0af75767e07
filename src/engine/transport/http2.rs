//! The hot path's HTTP/2 client (`--http 2`, or `auto` when a TLS server picks `h2` in
//! ALPN): the `h2` crate's connection-level client, each request a stream, timed like
//! [`super::http1`]'s (from just before the request is handed to the client to the last
//! byte of its body; connect and TLS handshake on their own).
//!
//! Connections. With `--connections shared` the flows share `--h2-connections` connections
//! (default one per lane), opened on first use and again when one goes away; a request
//! takes the next in turn. With `per-flow` a flow opens its own and drops it at its end.
//! A new connection is usable once the server's `SETTINGS` are in: the client sends a
//! `PING` after its preface, and the server's `SETTINGS` (its first frame) come before
//! the `PING`'s ack, so the stream limit is known before the first request.
//!
//! Streams. Each connection has as many stream slots as its server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS` (at most [`MAX_SLOTS`]); a request waits for a free
//! one, and that wait is counted ([`H2Counts::waited`]), outside its latency only in the
//! sense that it is part of it: the request was handed to the client and waited.
//!
//! Failures in HTTP/2 terms ([`super::h2count::classify`]): a request whose connection had
//! received `GOAWAY` before the request left is sent on a new connection (it had not
//! left, so this is not a retry); a stream the `GOAWAY` took is [`FailureKind::GoAway`];
//! `REFUSED_STREAM` is sent once more on a new connection (RFC 9113 §8.7: the server did
//! not process it), and counted; another reset is [`FailureKind::StreamReset`]; a body
//! that waited for window until the timeout is [`FailureKind::FlowControl`].

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use hyper::header::HeaderMap;
use hyper::{Method, Uri};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_rustls::TlsConnector;

use super::h2count::{classify, H2Counts, HttpSummary};
use super::http1::{Attempt, Exchange};
use super::local::{classify_io, Sources};
use super::micros;
use crate::options::HttpVersion;
use crate::samples::FailureKind;
use crate::scenario::Scenario;

/// Stream slots of a connection whose server sets a higher limit, or none.
pub const MAX_SLOTS: usize = 1024;

/// One HTTP/2 connection: its request handle, its stream slots, and whether it has gone
/// away (its task ended, or the server sent `GOAWAY`).
pub struct H2Conn {
    send: SendRequest<Bytes>,
    slots: Arc<Semaphore>,
    gone: Arc<AtomicBool>,
    /// Whether this connection's end has been looked at (its `GOAWAY` counted).
    counted: AtomicBool,
}

impl H2Conn {
    fn usable(&self) -> bool {
        !self.gone.load(Ordering::Relaxed)
    }

    /// Marks the connection gone; counts a `GOAWAY` the first time `e` says it was one.
    fn retire(&self, e: Option<&h2::Error>, counts: &H2Counts) {
        self.gone.store(true, Ordering::Relaxed);
        if e.is_some_and(|e| e.is_go_away() && e.is_remote())
            && !self.counted.swap(true, Ordering::Relaxed)
        {
            counts.goaway.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection found gone before a request: whether the server had said `GOAWAY`
    /// (a graceful one ends the connection once its streams are done, so no request
    /// sees it fail) is asked of the connection's handle, and counted once.
    async fn count_end(&self, counts: &H2Counts) {
        if self.counted.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.send.clone().ready().await {
            self.retire(Some(&e), counts);
        }
        self.counted.store(true, Ordering::Relaxed);
    }
}

/// A request for [`Http2::exchange`]: its parts, kept so that a refused stream can be
/// sent again.
pub struct H2Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// TLS for an `https://` target.
struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

/// A shared connection slot: the connection, and a lock held while one is being opened
/// (so that a burst of flows opens one connection, not one each).
#[derive(Default)]
struct Shared {
    conn: Mutex<Option<Arc<H2Conn>>>,
    opening: tokio::sync::Mutex<()>,
}

/// The target, its shared connections, and the run's HTTP/2 counters.
pub struct Http2 {
    addr: SocketAddr,
    /// `https://host:port` or `http://host:port`, with the target's path prefix: every
    /// request URI starts with it (HTTP/2 sends scheme and authority as pseudo-headers).
    pub base: String,
    static_uris: Vec<Option<Uri>>,
    timeout: Duration,
    connect_timeout: Duration,
    tls: Option<Tls>,
    sources: Sources,
    shared: Vec<Shared>,
    next: AtomicUsize,
    pub counts: H2Counts,
    /// Keep at most this many bytes of a body (`--max-body`); the rest is read and dropped.
    max_body: usize,
}

/// Why no HTTP/2 client was made for a target.
#[derive(Debug, thiserror::Error)]
pub enum H2Setup {
    /// `auto`, and the target is not HTTPS, or its server chose HTTP/1.1 over ALPN
    /// (`true`): the HTTP/1.1 client serves.
    #[error("the target speaks HTTP/1.1")]
    Http1 { alpn_chose_http1: bool },
    /// `--http 2` over TLS and the server did not agree to `h2` in ALPN.
    #[error("--http 2: {0} did not agree to h2 in the TLS handshake (ALPN); try --http auto")]
    NoH2(String),
    /// The URL or its host could not be used (the caller falls back to reqwest).
    #[error("the target URL cannot be reached by the HTTP/2 client")]
    Unusable,
}

impl Http2 {
    /// Keeps at most `limit` bytes of each body (`--max-body`).
    pub fn with_max_body(mut self, limit: usize) -> Http2 {
        self.max_body = limit;
        self
    }

    /// The HTTP/2 client for `base_url` under `version`, with `connections` shared
    /// connections. Over TLS, one connection is opened now to learn what ALPN picks
    /// (kept as the first shared connection when it is `h2`).
    #[allow(clippy::too_many_arguments)]
    pub async fn for_target(
        base_url: &str,
        scenario: &Scenario,
        version: HttpVersion,
        timeout: Duration,
        connect_timeout: Duration,
        connections: usize,
        tls: Option<Arc<rustls::ClientConfig>>,
        sources: Sources,
    ) -> Result<Http2, H2Setup> {
        let url = reqwest::Url::parse(base_url).map_err(|_| H2Setup::Unusable)?;
        let host = url.host_str().ok_or(H2Setup::Unusable)?.to_string();
        let tls = match (url.scheme(), version, tls) {
            (_, HttpVersion::Http1, _) | ("http", HttpVersion::Auto, _) => {
                return Err(H2Setup::Http1 {
                    alpn_chose_http1: false,
                })
            }
            ("http", HttpVersion::Http2, _) => None,
            ("https", _, Some(config)) => Some(Tls {
                connector: TlsConnector::from(crate::tls::with_alpn(&config, version)),
                name: crate::tls::server_name(&host).ok_or(H2Setup::Unusable)?,
            }),
            _ => return Err(H2Setup::Unusable),
        };
        let port = url.port_or_known_default().ok_or(H2Setup::Unusable)?;
        let addr = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or(H2Setup::Unusable)?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        let base = format!(
            "{}://{authority}{}",
            url.scheme(),
            url.path().trim_end_matches('/')
        );
        let static_uris = scenario
            .steps
            .iter()
            .map(|s| Uri::try_from(format!("{base}{}", s.path.constant()?)).ok())
            .collect();
        let client = Http2 {
            addr,
            base,
            static_uris,
            timeout,
            connect_timeout,
            tls,
            sources,
            shared: (0..connections.max(1)).map(|_| Shared::default()).collect(),
            next: AtomicUsize::new(0),
            counts: H2Counts::default(),
            max_body: super::DEFAULT_MAX_BODY,
        };
        if client.tls.is_some() {
            match client.tls_connect().await {
                // Only ALPN's answer is wanted: the connection is not kept. Kept, its
                // driver would run on the runtime this is called from, not on the lanes
                // the flows run on, and every request on it would wake another thread
                // (measured: 1.6x h2load's CPU per request on one connection).
                Ok((stream, _, _)) if negotiated_h2(&stream) => drop(stream),
                Ok(_) if version == HttpVersion::Http2 => {
                    return Err(H2Setup::NoH2(url.to_string()))
                }
                Ok(_) => {
                    return Err(H2Setup::Http1 {
                        alpn_chose_http1: true,
                    })
                }
                Err(Refusal::Alpn) => return Err(H2Setup::NoH2(url.to_string())),
                // Not reachable now: under `auto`, HTTP/1.1 (as before this client
                // existed); under `2`, the run's requests will say why.
                Err(Refusal::Other(_)) if version == HttpVersion::Auto => {
                    return Err(H2Setup::Http1 {
                        alpn_chose_http1: false,
                    })
                }
                Err(Refusal::Other(_)) => {}
            }
        }
        Ok(client)
    }

    /// `h2` or `h2c`.
    pub fn protocol(&self) -> &'static str {
        if self.tls.is_some() {
            "h2"
        } else {
            "h2c"
        }
    }

    /// The run's figures so far.
    pub fn summary(&self) -> HttpSummary {
        self.counts.summary(self.protocol())
    }

    /// Step `index`'s URI if its path is constant.
    pub fn static_uri(&self, index: usize) -> Option<Uri> {
        self.static_uris.get(index).cloned().flatten()
    }

    /// The TCP connect, timed.
    async fn tcp(&self) -> Result<(tokio::net::TcpStream, u64), FailureKind> {
        let start = Instant::now();
        let stream = tokio::time::timeout(self.connect_timeout, self.sources.connect(self.addr))
            .await
            .map_err(|_| FailureKind::Timeout)?
            .map_err(|e| classify_io(&e))?;
        let _ = stream.set_nodelay(true);
        Ok((stream, micros(start.elapsed())))
    }

    /// TCP, then the TLS handshake (timed on its own), whatever ALPN picked.
    async fn tls_connect(&self) -> Result<(TlsStream, u64, u64), Refusal> {
        let (stream, connect_us) = self.tcp().await.map_err(Refusal::Other)?;
        let tls = self.tls.as_ref().ok_or(Refusal::Other(FailureKind::Tls))?;
        let start = Instant::now();
        match tls.connector.connect(tls.name.clone(), stream).await {
            Ok(s) => Ok((s, connect_us, micros(start.elapsed()))),
            // rustls's server ends the handshake so when it speaks none of the offered
            // protocols.
            Err(e) if format!("{e:?}").contains("NoApplicationProtocol") => Err(Refusal::Alpn),
            Err(_) => Err(Refusal::Other(FailureKind::Tls)),
        }
    }

    /// Opens a connection: TCP, TLS with `h2` in ALPN (`https://`), the HTTP/2 preface,
    /// then a `PING` round trip so the server's `SETTINGS` are known.
    async fn open(&self) -> Result<Opened, FailureKind> {
        if self.tls.is_none() {
            let (stream, connect_us) = self.tcp().await?;
            let conn = self.handshake(stream).await?;
            return Ok(Opened {
                conn,
                connect_us,
                tls_us: None,
            });
        }
        let (stream, connect_us, tls_us) = self.tls_connect().await.map_err(|r| match r {
            Refusal::Alpn => FailureKind::Tls,
            Refusal::Other(k) => k,
        })?;
        if !negotiated_h2(&stream) {
            return Err(FailureKind::Tls);
        }
        let conn = self.handshake(stream).await?;
        Ok(Opened {
            conn,
            connect_us,
            tls_us: Some(tls_us),
        })
    }

    async fn handshake<I>(&self, io: I) -> Result<Arc<H2Conn>, FailureKind>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (send, mut conn) = h2::client::Builder::new()
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|_| FailureKind::Connect)?;
        let ping = conn.ping_pong();
        let gone = Arc::new(AtomicBool::new(false));
        let flag = gone.clone();
        tokio::spawn(Box::pin(async move {
            let _ = conn.await;
            flag.store(true, Ordering::Relaxed);
        }));
        if let Some(mut ping) = ping {
            ping.ping(h2::Ping::opaque())
                .await
                .map_err(|_| FailureKind::Connect)?;
        }
        let max = send.current_max_send_streams();
        let limited = (max < MAX_SLOTS).then_some(max as u64);
        self.counts.connection(limited);
        Ok(Arc::new(H2Conn {
            send,
            slots: Arc::new(Semaphore::new(max.clamp(1, MAX_SLOTS))),
            gone,
            counted: AtomicBool::new(false),
        }))
    }

    /// The connection a request goes on: the flow's own (`own`, per-flow) or the next
    /// shared one, opened when there is none usable; with the times of opening it.
    async fn conn_for(
        &self,
        own: Option<&mut Option<Arc<H2Conn>>>,
    ) -> Result<(Arc<H2Conn>, Option<(u64, Option<u64>)>), FailureKind> {
        if let Some(own) = own {
            match own.as_ref() {
                Some(c) if c.usable() => return Ok((c.clone(), None)),
                Some(c) => c.count_end(&self.counts).await,
                None => {}
            }
            // Boxed, here and below: opening is rare, and its state (TCP, TLS, the h2
            // handshake) inline would make every exchange's future, moved several times
            // per request, 11x larger (measured: 7.9 KB, 0.7 KB boxed; memmove was 12% of
            // the CPU at 8 connections x 32 streams).
            let o = Box::pin(self.open()).await?;
            *own = Some(o.conn.clone());
            return Ok((o.conn, Some((o.connect_us, o.tls_us))));
        }
        let n = self.shared.len();
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let i = match crate::engine::lanes::current_lane() {
            // A connection's driver runs on the lane that opened it: lane k's flows take
            // slots k, k + lanes, ..., so a request and its connection never wake another
            // thread (when there are at least as many connections as lanes).
            Some((k, lanes)) if n >= lanes && k < lanes => {
                k + lanes * (turn % (n - k).div_ceil(lanes))
            }
            _ => turn % n,
        };
        let slot = &self.shared[i];
        let current = |slot: &Shared| {
            slot.conn
                .lock()
                .ok()
                .and_then(|c| c.as_ref().filter(|c| c.usable()).cloned())
        };
        if let Some(c) = current(slot) {
            return Ok((c, None));
        }
        let _opening = slot.opening.lock().await;
        if let Some(c) = current(slot) {
            return Ok((c, None));
        }
        let old = slot.conn.lock().ok().and_then(|c| c.clone());
        if let Some(old) = old {
            old.count_end(&self.counts).await;
        }
        let o = Box::pin(self.open()).await?;
        if let Ok(mut c) = slot.conn.lock() {
            *c = Some(o.conn.clone());
        }
        Ok((o.conn, Some((o.connect_us, o.tls_us))))
    }

    /// Sends `req` and reads the whole response, within the timeout (connecting and
    /// waiting for a stream included). `own` is the flow's connection under per-flow
    /// connections, `None` for the shared ones.
    pub async fn exchange(
        &self,
        mut own: Option<&mut Option<Arc<H2Conn>>>,
        req: H2Request,
        keep_headers: bool,
        mut timer: Pin<&mut Sleep>,
    ) -> Attempt {
        let start = Instant::now();
        timer
            .as_mut()
            .reset(tokio::time::Instant::from_std(start) + self.timeout);
        let (mut connect_us, mut tls_us) = (None, None);
        let mut waiting_for_window = false;
        let work = async {
            let mut refused = false;
            // A connection that turned out gone before the request left is replaced;
            // bounded, so a server that sends GOAWAY on every connection cannot loop us.
            let mut replaced = 0;
            loop {
                let (conn, opened) = self.conn_for(own.as_deref_mut()).await?;
                if let Some((c, t)) = opened {
                    connect_us = Some(c);
                    tls_us = t;
                }
                let reused = opened.is_none();
                let slot = match conn.slots.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        let t = Instant::now();
                        let p = conn
                            .slots
                            .clone()
                            .acquire_owned()
                            .await
                            .map_err(|_| FailureKind::Transport)?;
                        self.counts.waited(micros(t.elapsed()));
                        p
                    }
                };
                let mut head = hyper::Request::new(());
                *head.method_mut() = req.method.clone();
                *head.uri_mut() = req.uri.clone();
                *head.headers_mut() = req.headers.clone();
                let sent = match conn.send.clone().ready().await {
                    Ok(mut s) => s.send_request(head, req.body.is_empty()),
                    Err(e) => Err(e),
                };
                let (response, mut body) = match sent {
                    Ok(s) => s,
                    Err(e) => {
                        // The request has not left: a new connection is not a retry.
                        conn.retire(Some(&e), &self.counts);
                        replaced += 1;
                        if replaced > 2 {
                            return Err(classify(&e, &self.counts, reused));
                        }
                        continue;
                    }
                };
                let open = self.counts.stream();
                if !req.body.is_empty() {
                    send_body(&mut body, req.body.clone(), &mut waiting_for_window)
                        .await
                        .map_err(|e| classify(&e, &self.counts, reused))?;
                }
                let resp = match response.await {
                    Ok(r) => r,
                    Err(e) => {
                        let refused_now = e.reason() == Some(h2::Reason::REFUSED_STREAM)
                            && e.is_reset()
                            && e.is_remote();
                        let kind = classify(&e, &self.counts, reused);
                        if e.is_go_away() {
                            conn.retire(Some(&e), &self.counts);
                        }
                        if refused_now && !refused {
                            // RFC 9113 §8.7: not processed; once more, on a new connection.
                            refused = true;
                            self.counts.refused_retried.fetch_add(1, Ordering::Relaxed);
                            conn.retire(None, &self.counts);
                            drop(open);
                            drop(slot);
                            continue;
                        }
                        return Err(kind);
                    }
                };
                let ttfb_us = micros(start.elapsed());
                let (parts, mut recv) = resp.into_parts();
                let mut keeper = super::Keeper::new(self.max_body);
                while let Some(chunk) = recv.data().await {
                    let chunk = chunk.map_err(|e| classify(&e, &self.counts, reused))?;
                    let _ = recv.flow_control().release_capacity(chunk.len());
                    keeper.push(chunk);
                }
                let read = keeper.finish();
                // The stream is closed (both ends) before its slot is free.
                drop(recv);
                drop(open);
                drop(slot);
                return Ok(Exchange {
                    ttfb_us,
                    total_us: micros(start.elapsed()),
                    status: parts.status.as_u16(),
                    headers: if keep_headers {
                        parts.headers
                    } else {
                        HeaderMap::new()
                    },
                    body: read.body,
                    received: read.received,
                    truncated: read.truncated,
                });
            }
        };
        let result = super::before_deadline(work, timer.as_mut()).await;
        let result = match result {
            Err(FailureKind::Timeout) if waiting_for_window => Err(FailureKind::FlowControl),
            r => r,
        };
        Attempt {
            total_us: micros(start.elapsed()),
            connect_us,
            tls_us,
            idle_us: None,
            result,
        }
    }
}

/// A connection just opened and what opening it took.
struct Opened {
    conn: Arc<H2Conn>,
    connect_us: u64,
    tls_us: Option<u64>,
}

type TlsStream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// Why a TLS connection could not be had.
enum Refusal {
    /// The server speaks none of the protocols offered in ALPN.
    Alpn,
    Other(FailureKind),
}

fn negotiated_h2(stream: &TlsStream) -> bool {
    stream.get_ref().1.alpn_protocol() == Some(b"h2")
}

/// Sends `body` on `stream` as the window allows, ending the stream with it;
/// `waiting` is set while the window is closed (a timeout then is a flow-control stall).
async fn send_body(
    stream: &mut h2::SendStream<Bytes>,
    mut body: Bytes,
    waiting: &mut bool,
) -> Result<(), h2::Error> {
    stream.reserve_capacity(body.len());
    while !body.is_empty() {
        *waiting = stream.capacity() == 0;
        let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx)).await;
        *waiting = false;
        let n = match granted {
            Some(n) => n?,
            // The stream went away; its response says why.
            None => return Ok(()),
        };
        let chunk = body.split_to(n.min(body.len()));
        stream.send_data(chunk, body.is_empty())?;
    }
    Ok(())
}
