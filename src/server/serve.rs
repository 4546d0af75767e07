//! Serving [`app`](super::app) for real: on its own OS thread with its own
//! tokio runtime, so the server and a load generator in the same process
//! never compete for executor threads (a busy generator cannot delay the
//! server's accept loop, nor the reverse), plus a handle to stop it. With a
//! TLS identity in the config it serves HTTPS through
//! [`TlsListener`](super::tls::TlsListener), the same app behind it. HTTP/1.1 and
//! HTTP/2 both (axum's `http2`: h2 after ALPN, h2c with prior knowledge over TCP).
//!
//! Runtime per [`HashMode`]:
//!
//! * `Pool`: multi-thread with 2 workers. The workers only parse, route,
//!   sign and verify HMACs, which is cheap; bcrypt runs on the blocking
//!   pool. Two rather than one so a connection busy parsing never stalls
//!   accepting; not more, so the cores are left to the hash pool and to the
//!   load generator sharing the machine. The blocking pool is capped at
//!   `hash_threads` as well, although the hashing semaphore already bounds
//!   it, so nothing else can grow it either.
//! * `Inline`: current-thread, so hashing inside handlers serializes every
//!   request as a single event loop does.
//!
//! Shutdown is graceful (stop accepting, let in-flight requests finish) but
//! bounded by [`SHUTDOWN_GRACE`], so stopping never hangs on a stalled
//! client.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::runtime::{Builder, Runtime};
use tokio::sync::watch;

use super::config::{HashMode, ServerConfig};
use super::error::ServerError;
use super::state::AppState;

/// How long a stop waits for in-flight requests before cutting them off.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Async workers of the `Pool` runtime (see the module docs for why 2).
const POOL_WORKER_THREADS: usize = 2;

/// A running server. Dropping it stops the server and waits for its thread,
/// like [`ServerHandle::shutdown`]; use [`ServerHandle::wait`] to keep it
/// running until it is stopped some other way (Ctrl-C).
pub struct ServerHandle {
    addr: SocketAddr,
    /// Serving HTTPS.
    tls: bool,
    stop: Arc<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
    /// The ids of the threads the server runs on (its own, its runtime's workers and
    /// hashing pool), added as they start.
    tids: Tids,
}

/// Thread ids, shared with whoever samples the server's CPU.
type Tids = Arc<Mutex<Vec<i32>>>;

/// Adds the calling thread's id to `tids` (Linux; elsewhere there is no id to add).
fn record_tid(tids: &Tids) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no arguments and cannot fail.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        if let (Ok(tid), Ok(mut all)) = (i32::try_from(tid), tids.lock()) {
            if !all.contains(&tid) {
                all.push(tid);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = tids;
}

impl ServerHandle {
    /// The ids of the threads the server has run on so far (more start while it serves:
    /// read the list when its CPU is summed up), so that a sampler in the same process
    /// can tell the server's CPU from the rest.
    pub fn thread_ids(&self) -> Arc<Mutex<Vec<i32>>> {
        self.tids.clone()
    }

    /// The address actually bound (with the real port when given port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` (`https://` when serving TLS), without a trailing slash.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops the server gracefully and waits for its thread to end.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    /// Blocks until the server stops on its own, which only happens for a
    /// server started with [`spawn_with_ctrl_c`] when Ctrl-C is pressed.
    /// With [`spawn`], this blocks forever.
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn stop_and_join(&mut self) {
        self.stop.send_replace(true);
        if let Some(thread) = self.thread.take() {
            // The thread only panics if the runtime does; nothing to add.
            let _ = thread.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Starts the server on its OWN OS thread with its OWN tokio runtime (so it
/// never starves the load generator's runtime, nor the reverse), binds
/// `addr` (e.g. `127.0.0.1:0`), and returns once it is listening.
///
/// Config problems, bind failures and runtime failures are returned here.
/// All the work (including the startup bcrypt hash) happens on the server
/// thread, so this is safe to call from async code; it only blocks until
/// the server is ready.
pub fn spawn(cfg: ServerConfig, addr: SocketAddr) -> Result<ServerHandle, ServerError> {
    start(cfg, addr, false)
}

/// Like [`spawn`], and the server also stops gracefully on Ctrl-C (SIGINT),
/// after which [`ServerHandle::wait`] returns. For `authbench serve`:
/// `spawn_with_ctrl_c(cfg, addr)?.wait()`. The signal handler lives on the
/// server's runtime, so it replaces the default "kill the process" action
/// for the whole process while the server runs.
pub fn spawn_with_ctrl_c(cfg: ServerConfig, addr: SocketAddr) -> Result<ServerHandle, ServerError> {
    start(cfg, addr, true)
}

fn start(
    cfg: ServerConfig,
    addr: SocketAddr,
    stop_on_ctrl_c: bool,
) -> Result<ServerHandle, ServerError> {
    let tls = cfg.tls.is_some();
    let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<SocketAddr, ServerError>>(1);
    let (stop, stop_rx) = watch::channel(false);
    let stop = Arc::new(stop);
    let thread_stop = Arc::clone(&stop);
    let tids: Tids = Arc::default();
    let thread_tids = tids.clone();
    let thread = std::thread::Builder::new()
        .name("authbench-server".to_owned())
        .spawn(move || {
            record_tid(&thread_tids);
            let ready = match prepare(cfg, addr, thread_tids) {
                Ok(ready) => ready,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let Prepared {
                runtime,
                listener,
                state,
                tls,
            } = ready;
            runtime.block_on(run(
                listener,
                state,
                tls,
                thread_stop,
                stop_rx,
                stop_on_ctrl_c,
                ready_tx,
            ));
            // Hashes still running on the blocking pool get the same grace.
            runtime.shutdown_timeout(SHUTDOWN_GRACE);
        })
        .map_err(ServerError::Thread)?;

    match ready_rx.recv() {
        Ok(Ok(addr)) => Ok(ServerHandle {
            addr,
            tls,
            stop,
            thread: Some(thread),
            tids,
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(mpsc::RecvError) => {
            let _ = thread.join();
            Err(ServerError::ThreadExited)
        }
    }
}

struct Prepared {
    runtime: Runtime,
    listener: std::net::TcpListener,
    state: AppState,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// Everything that can fail at startup, in the order that fails cheapest:
/// config (before the runtime, whose builder panics on 0 threads), socket,
/// runtime.
fn prepare(cfg: ServerConfig, addr: SocketAddr, tids: Tids) -> Result<Prepared, ServerError> {
    let mode = cfg.hash_mode;
    let hash_threads = cfg.hash_threads;
    let tls = cfg.tls.as_ref().map(|t| t.server_config()).transpose()?;
    let state = AppState::new(cfg)?;
    let bind_error = |source| ServerError::Bind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let runtime = build_runtime(mode, hash_threads, tids).map_err(ServerError::Runtime)?;
    Ok(Prepared {
        runtime,
        listener,
        state,
        tls,
    })
}

fn build_runtime(mode: HashMode, hash_threads: usize, tids: Tids) -> std::io::Result<Runtime> {
    match mode {
        // Workers and the blocking (hashing) pool both start through this hook.
        HashMode::Pool => Builder::new_multi_thread()
            .worker_threads(POOL_WORKER_THREADS)
            .max_blocking_threads(hash_threads)
            .thread_name("authbench-server-worker")
            .on_thread_start(move || record_tid(&tids))
            .enable_all()
            .build(),
        HashMode::Inline => Builder::new_current_thread().enable_all().build(),
    }
}

async fn run(
    listener: std::net::TcpListener,
    state: AppState,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: Arc<watch::Sender<bool>>,
    stop_rx: watch::Receiver<bool>,
    stop_on_ctrl_c: bool,
    ready_tx: mpsc::SyncSender<Result<SocketAddr, ServerError>>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            let _ = ready_tx.send(Err(ServerError::Runtime(e)));
            return;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            let _ = ready_tx.send(Err(ServerError::Runtime(e)));
            return;
        }
    };
    if stop_on_ctrl_c {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.send_replace(true);
            }
        });
    }

    // A closed channel (every sender gone) also means stop.
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    // Connect info gives handlers the peer address, for per-IP rate limits.
    let app = super::app(state).into_make_service_with_connect_info::<SocketAddr>();
    let server: Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> = match tls {
        None => Box::pin(
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped(stop_rx.clone()))
                .into_future(),
        ),
        // `tap_io` is only there for the connect info: axum provides the peer address
        // for a `TcpListener` and for a tapped listener, not for any listener.
        Some(config) => match super::tls::TlsListener::new(listener, config) {
            Ok(l) => Box::pin(
                axum::serve(l.tap_io(|_| {}), app)
                    .with_graceful_shutdown(stopped(stop_rx.clone()))
                    .into_future(),
            ),
            Err(e) => {
                let _ = ready_tx.send(Err(ServerError::Runtime(e)));
                return;
            }
        },
    };
    let _ = ready_tx.send(Ok(addr));
    let deadline = async move {
        stopped(stop_rx).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        _ = server => {}
        _ = deadline => {}
    }
}
