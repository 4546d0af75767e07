//! No hot loop against a dead port. In a closed loop, a worker whose flow's connection was
//! refused waits before its next flow: a capped exponential back-off with jitter
//! ([`FIRST_DELAY`] doubling to [`MAX_DELAY`], reset when a flow gets through). Meanwhile one
//! background prober connects to the port with bare TCP connects every [`PROBE_DELAY`] at
//! most; when one connects, every waiting worker resumes at once. Probes are attempts,
//! reported as such, never flows. Without this, C workers retried refused connects as fast
//! as the CPU allowed (273,023 attempts in 3 s were seen), which drowned the real flows in
//! the figures and is a small SYN flood against a remote target.
//!
//! Why both: the workers' back-off bounds the failed flows (a few per second per worker at
//! the most, so `--flows N` against a port that never comes back still ends), and the
//! prober's short period places the end of an outage within ~50 ms and wakes the workers
//! as soon as the port is back, at a probing rate that does not grow with the concurrency.
//!
//! The open loop keeps its schedule: arrivals during an outage fail and are counted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::samples::{Batch, Sample};

/// A worker's first wait after a refused connection.
pub const FIRST_DELAY: Duration = Duration::from_millis(10);
/// A worker's longest wait between refused flows.
pub const MAX_DELAY: Duration = Duration::from_secs(1);
/// The prober's longest wait between connection probes.
pub const PROBE_DELAY: Duration = Duration::from_millis(50);

/// Whether the run is over (interrupted, out of time or out of flows): the prober stops.
pub type Over = Arc<dyn Fn() -> bool + Send + Sync>;

/// The closed loop's shared view of whether the target accepts connections.
pub struct Breaker {
    host: String,
    port: u16,
    connect_timeout: Duration,
    tx: mpsc::Sender<Batch>,
    over: Over,
    state: Mutex<State>,
    /// `state.down`, readable without the lock (checked after every flow).
    down: AtomicBool,
    up: Notify,
}

#[derive(Default)]
struct State {
    down: bool,
    prober: Option<JoinHandle<()>>,
}

/// A worker's back-off: how long to wait after its next refused flow.
#[derive(Debug, Clone, Copy)]
pub struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(FIRST_DELAY)
    }
}

impl Backoff {
    /// The next wait (equal jitter: between half the delay and all of it), doubling the
    /// delay up to [`MAX_DELAY`].
    fn next(&mut self) -> Duration {
        let d = jitter(self.0);
        self.0 = (self.0 * 2).min(MAX_DELAY);
        d
    }

    /// Waits the next delay (a failure that is this machine's, not the target's: no prober).
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next()).await;
    }

    /// A flow got through: the next refusal starts from the first delay again.
    pub fn reset(&mut self) {
        self.0 = FIRST_DELAY;
    }
}

fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

impl Breaker {
    /// For the target at `base_url` (its host and port). Probes are sent on `tx`.
    pub fn new(
        base_url: &str,
        connect_timeout: Duration,
        tx: mpsc::Sender<Batch>,
        over: Over,
    ) -> Option<Arc<Breaker>> {
        let url = reqwest::Url::parse(base_url).ok()?;
        Some(Arc::new(Breaker {
            host: url.host_str()?.trim_matches(['[', ']']).to_string(),
            port: url.port_or_known_default()?,
            connect_timeout: connect_timeout.min(Duration::from_secs(1)),
            tx,
            over,
            state: Mutex::new(State::default()),
            down: AtomicBool::new(false),
            up: Notify::new(),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A worker's flow was refused: starts the prober if it is not running, then waits
    /// for the worker's back-off or until the port accepts connections, whichever is first.
    pub async fn refused(self: &Arc<Self>, backoff: &mut Backoff) {
        let wait = backoff.next();
        {
            let mut s = self.state();
            if !s.down {
                s.down = true;
                self.down.store(true, Ordering::Relaxed);
                s.prober = Some(tokio::spawn(self.clone().probe()));
            }
        }
        let notified = self.up.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.state().down {
            return;
        }
        let _ = tokio::time::timeout(wait, notified).await;
    }

    /// A worker's flow got through: the port is up (the prober, if any, stops).
    pub fn through(&self) {
        if !self.down.load(Ordering::Relaxed) {
            return;
        }
        let mut s = self.state();
        if s.down {
            s.down = false;
            self.down.store(false, Ordering::Relaxed);
            if let Some(p) = s.prober.take() {
                p.abort();
            }
            drop(s);
            self.up.notify_waiters();
        }
    }

    /// The run ended: the prober stops.
    pub fn shutdown(&self) {
        if let Some(p) = self.state().prober.take() {
            p.abort();
        }
    }

    async fn probe(self: Arc<Self>) {
        let mut delay = FIRST_DELAY;
        let mut addr: Option<SocketAddr> = None;
        loop {
            tokio::time::sleep(jitter(delay)).await;
            if (self.over)() {
                return;
            }
            let ok = self.connect(&mut addr).await;
            let mut b = Batch::new();
            b.push(Sample::Probe { ok });
            if self.tx.send(b).await.is_err() {
                return;
            }
            if ok {
                let mut s = self.state();
                s.down = false;
                self.down.store(false, Ordering::Relaxed);
                s.prober = None;
                drop(s);
                self.up.notify_waiters();
                return;
            }
            delay = (delay * 2).min(PROBE_DELAY);
        }
    }

    async fn connect(&self, addr: &mut Option<SocketAddr>) -> bool {
        if addr.is_none() {
            *addr = tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .ok()
                .and_then(|mut a| a.next());
        }
        let Some(a) = *addr else { return false };
        matches!(
            tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(a)).await,
            Ok(Ok(_))
        )
    }
}
