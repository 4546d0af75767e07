//! Lanes: the threads flows run on. Each lane is a current-thread tokio runtime on a thread
//! of its own, one per worker thread the multi-thread runtime would have had (as oha runs
//! its workers). A flow, its connection's task and its timers stay on one lane and are
//! woken in the order the lane's reactor reported them. The collector runs on the first
//! lane, so that a flow's samples reach it without waking another thread.
//!
//! Why not the multi-thread runtime the rest of the command runs on: its LIFO slot runs a
//! woken task at once, ahead of the others the same reactor poll made ready, so one
//! flow's connect, request and close interleave with the others' instead of going out
//! together. Measured against nginx with `--connections per-flow` (25 interleaved rounds
//! of 10,000 flows, one core each): nginx woke 1.41 times per new connection under the
//! multi-thread runtime and 0.71 times under a lane, and the generator's CPU per new
//! connection went from 1.22x oha's to 1.13x. The open-loop scheduler and the stop signal
//! stay on the multi-thread runtime.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::runtime::{Builder, Handle, RuntimeFlavor};
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinSet};

thread_local! {
    /// On a lane's thread: its index and how many lanes its set has.
    static LANE: std::cell::Cell<Option<(usize, usize)>> = const { std::cell::Cell::new(None) };
}

/// The lane this thread is (its index, and how many lanes there are); `None` off the lanes
/// (a test's current-thread runtime, the multi-thread runtime).
pub(crate) fn current_lane() -> Option<(usize, usize)> {
    LANE.with(|l| l.get())
}

/// A set of lanes (the process keeps one for its runs: [`Lanes::for_run`]); dropping them
/// stops their threads and any task still on them.
pub struct Lanes {
    handles: Vec<Handle>,
    _stops: Vec<oneshot::Sender<()>>,
    next: AtomicUsize,
}

impl Lanes {
    /// Starts `n` lanes (at least one).
    pub fn start(n: usize) -> std::io::Result<Lanes> {
        let n = n.max(1);
        let mut handles = Vec::with_capacity(n);
        let mut stops = Vec::with_capacity(n);
        for k in 0..n {
            let rt = Builder::new_current_thread().enable_all().build()?;
            handles.push(rt.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            std::thread::Builder::new()
                .name(format!("authbench-lane-{k}"))
                .spawn(move || {
                    LANE.with(|l| l.set(Some((k, n))));
                    // Runs the lane's tasks until the lanes are dropped; dropping the
                    // runtime then drops whatever is left on it.
                    let _ = rt.block_on(stopped);
                })?;
        }
        Ok(Lanes {
            handles,
            _stops: stops,
            next: AtomicUsize::new(0),
        })
    }

    /// As many lanes as the multi-thread runtime has workers: `TOKIO_WORKER_THREADS` when
    /// set (the CLI refuses a bad value before any runtime starts), else the CPUs this
    /// process may run on.
    pub fn default_count() -> usize {
        worker_threads_env()
            .ok()
            .flatten()
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
    }

    /// The lanes a run's flows go on. On a current-thread runtime (a test's), that runtime
    /// is already a lane: flows stay on it. Otherwise the process's lanes, started on first
    /// use and kept to the end: a connection kept alive from one run (calibration, then
    /// the measured run; one sweep level, then the next) has its task on a lane that is
    /// still there. Falls back to the caller's runtime if no thread can be started.
    pub fn for_run() -> Arc<Lanes> {
        static SHARED: OnceLock<Arc<Lanes>> = OnceLock::new();
        if Handle::current().runtime_flavor() == RuntimeFlavor::CurrentThread {
            return Arc::new(Lanes::current());
        }
        if let Some(lanes) = SHARED.get() {
            return lanes.clone();
        }
        match Lanes::start(Lanes::default_count()) {
            // Two first runs at once: one set is kept, the other stops with its drop.
            Ok(lanes) => SHARED.get_or_init(|| Arc::new(lanes)).clone(),
            // Not kept: the caller's runtime may not outlive the process's next run.
            Err(_) => Arc::new(Lanes::current()),
        }
    }

    /// One "lane" that is the runtime the caller is on.
    pub fn current() -> Lanes {
        Lanes {
            handles: vec![Handle::current()],
            _stops: Vec::new(),
            next: AtomicUsize::new(0),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.handles.len()
    }

    /// Spawns `task` into `set` on lane `k` (modulo the number of lanes).
    pub fn spawn_on<F>(&self, set: &mut JoinSet<F::Output>, k: usize, task: F) -> AbortHandle
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        set.spawn_on(task, &self.handles[k % self.handles.len()])
    }

    /// Spawns `task` on lane `k` (modulo the number of lanes).
    pub fn spawn<F>(&self, k: usize, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handles[k % self.handles.len()].spawn(task)
    }

    /// Spawns `task` into `set` on the next lane, round robin.
    pub fn spawn_next<F>(&self, set: &mut JoinSet<F::Output>, task: F) -> AbortHandle
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        self.spawn_on(set, k, task)
    }
}

/// `TOKIO_WORKER_THREADS`: `Ok(None)` when unset, the count when it is a positive integer,
/// else the message (tokio itself would panic on it).
pub fn worker_threads_env() -> Result<Option<usize>, String> {
    match std::env::var("TOKIO_WORKER_THREADS") {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!(
                "TOKIO_WORKER_THREADS={v:?}: the number of worker threads must be a positive integer (or unset: one per core)"
            )),
        },
        Err(std::env::VarError::NotUnicode(v)) => Err(format!(
            "TOKIO_WORKER_THREADS={v:?}: the number of worker threads must be a positive integer (or unset: one per core)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_run_on_the_lanes_round_robin_and_stop_with_them() {
        let lanes = Lanes::start(3).unwrap();
        assert_eq!(lanes.len(), 3);
        let mut set = JoinSet::new();
        for _ in 0..6 {
            lanes.spawn_next(&mut set, async {
                std::thread::current().name().unwrap_or("").to_string()
            });
        }
        let mut names = Vec::new();
        while let Some(n) = set.join_next().await {
            names.push(n.unwrap());
        }
        names.sort();
        assert_eq!(
            names,
            [
                "authbench-lane-0",
                "authbench-lane-0",
                "authbench-lane-1",
                "authbench-lane-1",
                "authbench-lane-2",
                "authbench-lane-2"
            ]
        );
        // A task still pending when the lanes go is dropped with them, not leaked.
        let mut set = JoinSet::new();
        lanes.spawn_on(&mut set, 0, std::future::pending::<()>());
        drop(lanes);
        let r = set.join_next().await.unwrap();
        assert!(r.unwrap_err().is_cancelled());
    }

    #[test]
    fn zero_lanes_means_one() {
        assert_eq!(Lanes::start(0).unwrap().len(), 1);
    }
}
