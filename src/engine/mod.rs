//! The load engine: runs a [`Plan`] (closed or open loop, stages, warm-up), collects the
//! workers' samples into [`Stats`], and handles interruption. Workers never print; the
//! collector is the only place that touches the progress bar.
//!
//! - Closed loop: `level` workers each run a flow, then the next. A worker whose index is at
//!   or above the current stage's level waits, so stages change the number of active workers.
//! - Open loop: a scheduler computes each flow's *intended* start from the rate (constant or
//!   Poisson gaps) and starts it then, if a slot under `max_in_flight` is free; otherwise the
//!   arrival waits for one and starts late. Its latency is counted from the intended start,
//!   so a stalled server shows up in the figures instead of silently slowing the load
//!   (coordinated omission). Arrivals still waiting when the plan ends are counted dropped.
//! - A refused connection in the closed loop sends its worker to the [`breaker`]: one
//!   worker probes with back-off, the others wait, so a dead port is not hammered.
//! - The collector also finds outage windows ([`crate::outage`]) as flows end.
//!
//!
//! A flow asks the [`feed::Feed`] for its `[data]` row as it starts; when `unique` rows
//! run out, no new flow starts and the run ends once the flows in flight have.
//!
//! Memory is bounded by the number of flows in flight, never by the number of flows run.

pub mod breaker;
pub mod claims;
mod collector;
pub mod cookies;
pub mod feed;
pub mod flow;
mod lanes;
pub mod metrics;
pub mod redirect;
mod request;
mod response;
pub mod seen;
pub mod stream;
pub mod transport;

/// The HTTP/1.1 client, at the path it had before [`transport`] existed.
pub use transport::http1;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::plan::{Arrival, LoadModel, Plan};
use crate::samples::Batch;
use crate::scenario::Scenario;
use crate::stats::Stats;
use breaker::Breaker;
use collector::collect;
pub use collector::progress_bar;
use flow::{FlowContext, FlowEnd, FlowState, FlowTiming};
pub use lanes::worker_threads_env;
use lanes::Lanes;
use transport::micros;

/// How many lanes (current-thread runtimes) a run's flows go on: the default number of
/// shared HTTP/2 connections.
pub fn worker_lanes() -> usize {
    Lanes::default_count()
}

/// A flow that starts this much after its intended start is counted late.
pub const LATE_AFTER: Duration = Duration::from_millis(10);

/// Makes a fresh HTTP client, for `--connections per-flow` (a new user, new connections).
pub type ClientFactory = Arc<dyn Fn() -> reqwest::Client + Send + Sync>;

/// How the engine should run.
pub struct EngineConfig {
    pub scenario: Arc<Scenario>,
    /// The shared client (its pool is shared by all flows).
    pub client: reqwest::Client,
    /// When set, each flow gets its own client from this factory instead.
    pub per_flow_client: Option<ClientFactory>,
    /// hyper's connection-level client for `http://` targets (the hot path); reqwest
    /// serves when it is `None`.
    pub fast: Option<Arc<http1::Http1>>,
    /// The HTTP/2 client, when the run speaks HTTP/2; it then serves every request.
    pub h2: Option<Arc<transport::http2::Http2>>,
    pub base_url: String,
    pub api_key: String,
    pub plan: Plan,
    pub progress: bool,
    /// Colour in the progress bar (decided once per process by the command line).
    pub color: bool,
    pub grace: Duration,
    /// Connect timeout of the closed loop's connection probes (capped at 1 s).
    pub connect_timeout: Duration,
    /// The scenario's `[data]` rows, shared with the calibration run.
    pub feed: Option<Arc<feed::Feed>>,
    /// `--save-users`: where successful flows' accounts go.
    pub users: Option<Arc<feed::UserSink>>,
    /// Every thread that runs a flow joins it, so the generator's own CPU can be sampled.
    pub threads: Arc<crate::usage::ThreadSet>,
    /// `run --shard`: flow `k` is `{{seq}}` number `k·N + i` (see [`crate::shard`]).
    pub shard: Option<crate::shard::Shard>,
    /// `--max-body`: the most bytes of one response body kept.
    pub max_body: usize,
    /// Stream the results to disk as the run goes (the measured run, not the calibration).
    pub stream: Option<stream::StreamSpec>,
    /// `--metrics`: the page the endpoint serves, published at every interval.
    pub live: Option<Arc<metrics::Live>>,
}

/// What the engine measured.
pub struct EngineOutcome {
    pub stats: Stats,
    /// From the start to the last flow's end (or the interrupt's settling).
    pub wall: Duration,
    /// The run was interrupted; `stats` holds what finished before.
    pub interrupted: bool,
    /// Flows that were started but cut off by an interrupt (not in `stats`).
    pub abandoned: u64,
    /// Open loop: flows that started more than [`LATE_AFTER`] after their intended start.
    pub late: u64,
    /// Open loop: flows due before the plan ended that never started.
    pub dropped: u64,
    /// `unique` data rows ran out (the run ended there): how many rows there were.
    pub feeder_exhausted: Option<u64>,
    /// Why the results were not (or not wholly) streamed to disk, when they were asked to be.
    pub stream_note: Option<String>,
    /// Hosts and tokens of the first successful flow.
    pub facts: Option<seen::FlowFacts>,
}

/// Counters shared by the driver and its flows.
#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    next_seq: AtomicU64,
    started: AtomicU64,
    late: AtomicU64,
    dropped: AtomicU64,
    /// Set by the first flow that succeeds.
    facts: std::sync::OnceLock<seen::FlowFacts>,
}

struct Driver {
    ctx: Arc<FlowContext>,
    per_flow_client: Option<ClientFactory>,
    feed: Option<Arc<feed::Feed>>,
    users: Option<Arc<feed::UserSink>>,
    plan: Plan,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Batch>,
    t0: tokio::time::Instant,
    /// Closed loop: where workers go when the target refuses connections.
    breaker: Option<Arc<Breaker>>,
    threads: Arc<crate::usage::ThreadSet>,
    shard: Option<crate::shard::Shard>,
}

impl Driver {
    /// Takes the next flow number, or `None` when the plan's flow count is reached.
    fn take_seq(&self) -> Option<u64> {
        let seq = self.shared.next_seq.fetch_add(1, Ordering::Relaxed);
        match self.plan.max_flows {
            Some(max) if seq >= max => None,
            _ => Some(seq),
        }
    }

    /// The data row for a flow about to start: `Some(None)` without `[data]`, `None` when
    /// `unique` rows have run out (no flow may start any more).
    fn take_row(&self) -> Option<Option<usize>> {
        match &self.feed {
            None => Some(None),
            Some(f) => f.take().map(Some),
        }
    }

    async fn flow(
        &self,
        seq: u64,
        row: Option<usize>,
        timing: FlowTiming,
        state: &mut FlowState,
    ) -> Option<FlowEnd> {
        self.shared.started.fetch_add(1, Ordering::Relaxed);
        self.threads.join();
        let seq = self.shard.map_or(seq, |s| s.seq(seq));
        let ok = match &self.per_flow_client {
            // The hot path opens its own connection per flow: a reqwest client per flow
            // only for the targets it does not serve.
            Some(make) if self.ctx.fast.is_none() && self.ctx.h2.is_none() => {
                let client = make();
                self.ctx
                    .run_flow(seq, row, &client, timing, &self.tx, state)
                    .await
            }
            _ => {
                self.ctx
                    .run_flow(seq, row, &self.ctx.client, timing, &self.tx, state)
                    .await
            }
        };
        if let (Some(FlowEnd::Ok), Some(users)) = (ok, &self.users) {
            users.save(state.vars());
        }
        if ok == Some(FlowEnd::Ok) && self.shared.facts.get().is_none() {
            let _ = self
                .shared
                .facts
                .set(seen::observe(&self.ctx, state.vars(), state.reached()));
        }
        ok
    }

    fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Relaxed)
    }
}

/// Runs the plan; when `stop` resolves, starts no new flow, gives in-flight ones `grace`
/// to finish, then cuts them off.
pub async fn run(cfg: EngineConfig, stop: impl Future<Output = ()>) -> EngineOutcome {
    let ctx = Arc::new(FlowContext {
        scenario: cfg.scenario.clone(),
        client: cfg.client,
        base_url: cfg.base_url.trim_end_matches('/').to_string(),
        api_key: cfg.api_key,
        run_id: random_run_id(),
        static_urls: Default::default(),
        fast: cfg.fast.clone(),
        h2: cfg.h2.clone(),
        pool_connections: cfg.per_flow_client.is_none(),
        max_body: cfg.max_body,
    });
    // Bounded: if the collector ever fell behind, workers wait instead of memory growing.
    let (tx, rx) = mpsc::channel::<Batch>(4096);
    let stats = Stats::new(&cfg.scenario.step_names());
    let bar = progress_bar(cfg.progress, cfg.color, cfg.plan.planned_flows());
    let shared = Arc::new(Shared::default());
    let t0 = tokio::time::Instant::now();
    let lanes = Lanes::for_run();
    // On the first lane: a flow's samples reach it without waking another thread.
    let (streamer, stream_note) = match &cfg.stream {
        Some(spec) => match stream::Streamer::create(spec, &cfg.scenario.step_names()) {
            Ok(s) => (Some(s), None),
            Err(e) => (
                None,
                Some(format!(
                    "results were not streamed: could not write '{}': {e}",
                    spec.dir.display()
                )),
            ),
        },
        None => (None, None),
    };
    let every = cfg
        .stream
        .as_ref()
        .map_or(Duration::from_secs(1), |s| s.interval);
    let outputs = collector::Outputs {
        stream: streamer,
        every,
        live: cfg.live.clone(),
        threads: cfg.threads.clone(),
    };
    let collector = lanes.spawn(0, collect(rx, stats, bar, shared.clone(), t0, outputs));
    let breaker = match cfg.plan.model {
        LoadModel::Closed => {
            let (shared, plan) = (shared.clone(), cfg.plan.clone());
            let over: breaker::Over = Arc::new(move || {
                shared.stopping.load(Ordering::Relaxed)
                    || plan.level_at(t0.elapsed()).is_none()
                    || plan
                        .max_flows
                        .is_some_and(|m| shared.next_seq.load(Ordering::Relaxed) >= m)
            });
            Breaker::new(&cfg.base_url, cfg.connect_timeout, tx.clone(), over)
        }
        LoadModel::Open { .. } => None,
    };
    let feed = cfg.feed.clone();
    let driver = Arc::new(Driver {
        ctx,
        per_flow_client: cfg.per_flow_client,
        feed: cfg.feed,
        users: cfg.users,
        plan: cfg.plan,
        shared: shared.clone(),
        tx,
        t0,
        breaker,
        threads: cfg.threads,
        shard: cfg.shard,
    });
    // Stopped already (Ctrl-C while waiting for `--start-at`): start no flow at all. The
    // driver and its lanes run on other threads, and a flow could begin before the
    // select below saw the stop.
    let mut stop = std::pin::pin!(stop);
    let stopped_before =
        std::future::poll_fn(|cx| std::task::Poll::Ready(stop.as_mut().poll(cx).is_ready())).await;
    if stopped_before {
        shared.stopping.store(true, Ordering::Relaxed);
    }
    let start = Instant::now();
    let mut handle = tokio::spawn({
        let d = driver.clone();
        let lanes = lanes.clone();
        async move {
            match d.plan.model {
                LoadModel::Closed => closed_loop(d, &lanes).await,
                LoadModel::Open {
                    arrival,
                    max_in_flight,
                } => open_loop(d, &lanes, arrival, max_in_flight).await,
            }
        }
    });
    // The driver holds its own sender clone through `driver`; drop ours once it ends.
    drop(driver);

    // (A stop that has resolved is not polled again.)
    let interrupted = stopped_before
        || tokio::select! {
            _ = &mut handle => false,
            _ = &mut stop => true,
        };
    if interrupted {
        shared.stopping.store(true, Ordering::Relaxed);
        // In-flight flows get a short grace period, then are cut off (aborting the driver
        // drops its JoinSet, which aborts every flow): their partial results are not
        // counted as flows, they never finished.
        if tokio::time::timeout(cfg.grace, &mut handle).await.is_err() {
            handle.abort();
            let _ = handle.await;
        }
    }
    let wall = start.elapsed();
    // All senders are gone once the driver and its flows are: the collector drains.
    let (stats, mut streamer) = collector
        .await
        .unwrap_or_else(|_| (Stats::new(&cfg.scenario.step_names()), None));
    let stream_note = stream_note.or_else(|| streamer.as_ref().and_then(|s| s.failed.clone()));
    if let Some(s) = &mut streamer {
        s.end(wall.as_secs_f64(), interrupted);
    }
    let started = shared.started.load(Ordering::Relaxed);
    let abandoned = started.saturating_sub(stats.flows_total() + stats.warmup_flows);
    EngineOutcome {
        stats,
        wall,
        interrupted,
        abandoned,
        late: shared.late.load(Ordering::Relaxed),
        dropped: shared.dropped.load(Ordering::Relaxed),
        feeder_exhausted: feed.and_then(|f| f.exhausted_after()),
        stream_note,
        facts: shared.facts.get().cloned(),
    }
}

async fn closed_loop(d: Arc<Driver>, lanes: &Lanes) {
    let workers = d.plan.peak().max(0.0) as usize;
    let mut set = JoinSet::new();
    for k in 0..workers {
        let d = d.clone();
        lanes.spawn_on(&mut set, k, async move {
            let mut state = FlowState::new();
            let mut backoff = breaker::Backoff::default();
            loop {
                if d.stopping() {
                    break;
                }
                let t = d.t0.elapsed();
                match d.plan.level_at(t) {
                    None => break,
                    // Not this worker's stage yet (or any more): wait for the level to change.
                    Some(level) if k as f64 >= level => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    Some(_) => {}
                }
                // Let the other flows the same reactor poll woke finish their turn first:
                // the next flows' connects then go out together, after the last batch's
                // responses and closes, as in oha, instead of interleaved with them, and
                // kernel paths run back to back stay warm. One binary with the yield
                // switched on and off: 0.93x oha's CPU per new connection with it, 1.01x
                // without (16 interleaved rounds of 10,000 per-flow flows).
                tokio::task::yield_now().await;
                let Some(seq) = d.take_seq() else { break };
                let Some(row) = d.take_row() else { break };
                let timing = FlowTiming {
                    lateness_us: 0,
                    measured: t >= d.plan.warmup,
                };
                match (d.flow(seq, row, timing, &mut state).await, &d.breaker) {
                    (None, _) => break,
                    (Some(FlowEnd::Refused), Some(b)) => b.refused(&mut backoff).await,
                    // Out of local ports or descriptors: they come back as TIME_WAITs
                    // expire or connections close; no hot loop meanwhile.
                    (Some(FlowEnd::Starved), _) => backoff.wait().await,
                    (Some(_), Some(b)) => {
                        backoff.reset();
                        b.through();
                    }
                    (Some(_), None) => {}
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    if let Some(b) = &d.breaker {
        b.shutdown();
    }
}

async fn open_loop(d: Arc<Driver>, lanes: &Lanes, arrival: Arrival, max_in_flight: usize) {
    let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let mut set = JoinSet::new();
    let mut rng = rand::rngs::StdRng::from_entropy();
    let end = d.plan.end();
    // The intended start of the next arrival, as an offset from t0.
    let mut next = Duration::ZERO;
    loop {
        if d.stopping() {
            break;
        }
        let Some(rate) = d.plan.level_at(next) else {
            break;
        };
        if rate <= 0.0 {
            // A stage at 0/s is a pause: jump to the next stage's start.
            next = next_stage_start(&d.plan, next);
            continue;
        }
        let intended = d.t0 + next;
        tokio::time::sleep_until(intended).await;
        // Wait for a free slot. Arrivals wait here when the server falls behind, and their
        // latency still counts from `intended`: nothing is silently skipped.
        let permit = match end {
            Some(end) => tokio::select! {
                p = slots.clone().acquire_owned() => p,
                _ = tokio::time::sleep_until(d.t0 + end) => {
                    // The plan ended with this arrival (and any due after it) still waiting.
                    let due = 1 + count_arrivals(&d.plan, next, end, rate, arrival, &mut rng);
                    d.shared.dropped.fetch_add(due, Ordering::Relaxed);
                    break;
                }
            },
            None => slots.clone().acquire_owned().await,
        };
        let Ok(permit) = permit else { break };
        if d.stopping() {
            break;
        }
        let Some(seq) = d.take_seq() else { break };
        let Some(row) = d.take_row() else { break };
        let lateness = tokio::time::Instant::now().saturating_duration_since(intended);
        if lateness > LATE_AFTER {
            d.shared.late.fetch_add(1, Ordering::Relaxed);
        }
        let timing = FlowTiming {
            lateness_us: micros(lateness),
            measured: next >= d.plan.warmup,
        };
        let dd = d.clone();
        lanes.spawn_next(&mut set, async move {
            let _slot = permit;
            dd.flow(seq, row, timing, &mut FlowState::new()).await;
        });
        // Reap finished flows so the set holds only those in flight.
        while set.try_join_next().is_some() {}
        next += gap(rate, arrival, &mut rng);
    }
    while set.join_next().await.is_some() {}
}

/// The time to the next arrival at `rate` per second.
fn gap(rate: f64, arrival: Arrival, rng: &mut impl rand::Rng) -> Duration {
    let mean = 1.0 / rate;
    let secs = match arrival {
        Arrival::Constant => mean,
        // Inverse transform sampling of the exponential distribution; 1 - u is in (0, 1].
        Arrival::Poisson => -(1.0 - rng.gen::<f64>()).ln() * mean,
    };
    Duration::from_secs_f64(secs.clamp(0.0, 3600.0))
}

/// Arrivals the schedule would have made in `(from, end)` (for the dropped count); the
/// same walk as the scheduler's, without waiting.
fn count_arrivals(
    plan: &Plan,
    from: Duration,
    end: Duration,
    rate: f64,
    arrival: Arrival,
    rng: &mut impl rand::Rng,
) -> u64 {
    let mut t = from + gap(rate, arrival, rng);
    let mut n = 0u64;
    while t < end && n < 100_000_000 {
        match plan.level_at(t) {
            Some(r) if r > 0.0 => {
                n += 1;
                t += gap(r, arrival, rng);
            }
            Some(_) => t = next_stage_start(plan, t),
            None => break,
        }
    }
    n
}

fn next_stage_start(plan: &Plan, t: Duration) -> Duration {
    let mut end = Duration::ZERO;
    for s in &plan.stages {
        end = end.saturating_add(s.duration);
        if t < end {
            return end;
        }
    }
    Duration::MAX
}

fn random_run_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_gaps_have_the_right_mean() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let n = 20_000;
        let total: f64 = (0..n)
            .map(|_| gap(100.0, Arrival::Poisson, &mut rng).as_secs_f64())
            .sum();
        let mean = total / n as f64;
        assert!((mean - 0.01).abs() < 0.0005, "{mean}");
        assert_eq!(
            gap(4.0, Arrival::Constant, &mut rng),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn dropped_arrivals_are_counted_to_the_end() {
        let (stages, _) = crate::plan::parse_stages("10/s:1s,0/s:1s,20/s:1s").unwrap();
        let plan = Plan {
            model: LoadModel::Open {
                arrival: Arrival::Constant,
                max_in_flight: 1,
            },
            stages,
            max_flows: None,
            duration: None,
            warmup: Duration::ZERO,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        // From t=0.5s at 10/s: 4 more in the first second, none in the pause, ~20 after.
        let n = count_arrivals(
            &plan,
            Duration::from_millis(500),
            Duration::from_secs(3),
            10.0,
            Arrival::Constant,
            &mut rng,
        );
        assert!((23..=25).contains(&n), "{n}");
    }
}
