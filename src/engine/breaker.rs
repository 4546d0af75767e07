//! No hot loop against a dead port: in a closed loop, when a flow's connection is refused,
//! one worker probes the target with bare TCP connects under a capped exponential
//! back-off with jitter ([`FIRST_DELAY`] doubling to [`MAX_DELAY`]), while the other workers
//! wait; all resume when a probe connects. Probes are attempts, reported as such, never
//! flows. Without this, C workers retry refused connects as fast as the CPU allows (273,023
//! attempts in 3 s were seen), which drowns the real flows in the figures and is a small
//! SYN flood against a remote target.
//!
//! Why one prober rather than a back-off per worker: the probing rate then does not grow
//! with the concurrency (1,000 workers backing off alone still send 1,000 SYNs per cap),
//! and the cap can be short enough to place the end of an outage within ~50 ms.
//!
//! The open loop keeps its schedule: arrivals during an outage fail and are counted.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;

/// The first probe waits this long after the refusal.
pub const FIRST_DELAY: Duration = Duration::from_millis(10);
/// The longest wait between probes.
pub const MAX_DELAY: Duration = Duration::from_millis(50);

/// The closed loop's shared view of whether the target accepts connections.
pub struct Breaker {
    host: String,
    port: u16,
    connect_timeout: Duration,
    down: Mutex<bool>,
    up: Notify,
}

/// What the breaker needs from its run.
pub trait Run {
    /// The run is over or interrupted: stop probing or waiting.
    fn over(&self) -> bool;
    /// A probe was made.
    fn probed(&self, ok: bool) -> impl std::future::Future<Output = ()> + Send;
}

impl Breaker {
    /// For the target at `base_url` (its host and port).
    pub fn new(base_url: &str, connect_timeout: Duration) -> Option<Breaker> {
        let url = reqwest::Url::parse(base_url).ok()?;
        Some(Breaker {
            host: url.host_str()?.trim_matches(['[', ']']).to_string(),
            port: url.port_or_known_default()?,
            connect_timeout: connect_timeout.min(Duration::from_secs(1)),
            down: Mutex::new(false),
            up: Notify::new(),
        })
    }

    /// Called by a worker whose flow's connection was refused; returns when the target
    /// accepts connections again (or the run is over).
    pub async fn refused(&self, run: &impl Run) {
        let probe = {
            let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
            !std::mem::replace(&mut *down, true)
        };
        if probe {
            self.probe_until_up(run).await;
            *self.down.lock().unwrap_or_else(|e| e.into_inner()) = false;
            self.up.notify_waiters();
        } else {
            loop {
                let notified = self.up.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if !*self.down.lock().unwrap_or_else(|e| e.into_inner()) || run.over() {
                    return;
                }
                // Woken by the prober; the timeout only notices the end of the run.
                let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
            }
        }
    }

    async fn probe_until_up(&self, run: &impl Run) {
        let mut delay = FIRST_DELAY;
        let mut addr: Option<SocketAddr> = None;
        while !run.over() {
            // Equal jitter: between half the delay and the whole of it.
            let d = delay.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
            tokio::time::sleep(d).await;
            if run.over() {
                return;
            }
            let ok = self.connect(&mut addr).await;
            run.probed(ok).await;
            if ok {
                return;
            }
            delay = (delay * 2).min(MAX_DELAY);
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
