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
//! Memory is bounded by the number of flows in flight, never by the number of flows run.

pub mod breaker;
pub mod flow;
pub mod transport;

/// The HTTP/1.1 client, at the path it had before [`transport`] existed.
pub use transport::http1;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::outage::OutageTracker;
use crate::plan::{Arrival, LoadModel, Plan};
use crate::scenario::Scenario;
use crate::stats::{new_histogram, record, Batch, Sample, Stats};
use crate::timeline::TimelineBuilder;
use breaker::Breaker;
use flow::{FlowContext, FlowEnd, FlowState, FlowTiming};
use transport::micros;

/// A flow that starts this much after its intended start is counted late.
pub const LATE_AFTER: Duration = Duration::from_millis(10);

/// The most flows' samples the collector takes from the channel at once.
const COLLECT_AT_ONCE: usize = 256;
/// How long the collector lets samples gather after a wake-up that found few.
const COLLECT_PAUSE: Duration = Duration::from_millis(1);

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
    pub base_url: String,
    pub api_key: String,
    pub plan: Plan,
    pub progress: bool,
    /// Colour in the progress bar (decided once per process by the command line).
    pub color: bool,
    pub grace: Duration,
    /// Connect timeout of the closed loop's connection probes (capped at 1 s).
    pub connect_timeout: Duration,
    /// Every thread that runs a flow joins it, so the generator's own CPU can be sampled.
    pub threads: Arc<crate::usage::ThreadSet>,
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
}

/// Counters shared by the driver and its flows.
#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    next_seq: AtomicU64,
    started: AtomicU64,
    late: AtomicU64,
    dropped: AtomicU64,
}

struct Driver {
    ctx: Arc<FlowContext>,
    per_flow_client: Option<ClientFactory>,
    plan: Plan,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Batch>,
    t0: tokio::time::Instant,
    /// Closed loop: where workers go when the target refuses connections.
    breaker: Option<Breaker>,
    threads: Arc<crate::usage::ThreadSet>,
}

impl breaker::Run for Driver {
    fn over(&self) -> bool {
        self.stopping() || self.plan.level_at(self.t0.elapsed()).is_none()
    }

    async fn probed(&self, ok: bool) {
        let mut b = Batch::new();
        b.push(Sample::Probe { ok });
        let _ = self.tx.send(b).await;
    }
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

    async fn flow(&self, seq: u64, timing: FlowTiming, state: &mut FlowState) -> Option<FlowEnd> {
        self.shared.started.fetch_add(1, Ordering::Relaxed);
        self.threads.join();
        match &self.per_flow_client {
            Some(make) => {
                let client = make();
                self.ctx
                    .run_flow(seq, &client, timing, &self.tx, state)
                    .await
            }
            None => {
                self.ctx
                    .run_flow(seq, &self.ctx.client, timing, &self.tx, state)
                    .await
            }
        }
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
        pool_connections: cfg.per_flow_client.is_none(),
    });
    // Bounded: if the collector ever fell behind, workers wait instead of memory growing.
    let (tx, rx) = mpsc::channel::<Batch>(4096);
    let stats = Stats::new(&cfg.scenario.step_names());
    let bar = progress_bar(cfg.progress, cfg.color, cfg.plan.planned_flows());
    let shared = Arc::new(Shared::default());
    let t0 = tokio::time::Instant::now();
    let collector = tokio::spawn(collect(rx, stats, bar, shared.clone(), t0));
    let breaker = match cfg.plan.model {
        LoadModel::Closed => Breaker::new(&cfg.base_url, cfg.connect_timeout),
        LoadModel::Open { .. } => None,
    };
    let driver = Arc::new(Driver {
        ctx,
        per_flow_client: cfg.per_flow_client,
        plan: cfg.plan,
        shared: shared.clone(),
        tx,
        t0,
        breaker,
        threads: cfg.threads,
    });
    let start = Instant::now();
    let mut handle = tokio::spawn({
        let d = driver.clone();
        async move {
            match d.plan.model {
                LoadModel::Closed => closed_loop(d).await,
                LoadModel::Open {
                    arrival,
                    max_in_flight,
                } => open_loop(d, arrival, max_in_flight).await,
            }
        }
    });
    // The driver holds its own sender clone through `driver`; drop ours once it ends.
    drop(driver);

    let interrupted = tokio::select! {
        _ = &mut handle => false,
        _ = stop => true,
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
    let stats = collector
        .await
        .unwrap_or_else(|_| Stats::new(&cfg.scenario.step_names()));
    let started = shared.started.load(Ordering::Relaxed);
    let abandoned = started.saturating_sub(stats.flows_total() + stats.warmup_flows);
    EngineOutcome {
        stats,
        wall,
        interrupted,
        abandoned,
        late: shared.late.load(Ordering::Relaxed),
        dropped: shared.dropped.load(Ordering::Relaxed),
    }
}

async fn closed_loop(d: Arc<Driver>) {
    let workers = d.plan.peak().max(0.0) as usize;
    let mut set = JoinSet::new();
    for k in 0..workers {
        let d = d.clone();
        set.spawn(async move {
            let mut state = FlowState::new();
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
                let Some(seq) = d.take_seq() else { break };
                let timing = FlowTiming {
                    lateness_us: 0,
                    measured: t >= d.plan.warmup,
                };
                match d.flow(seq, timing, &mut state).await {
                    None => break,
                    Some(FlowEnd::Refused) => {
                        if let Some(b) = &d.breaker {
                            b.refused(&*d).await;
                        }
                    }
                    Some(_) => {}
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
}

async fn open_loop(d: Arc<Driver>, arrival: Arrival, max_in_flight: usize) {
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
        let lateness = tokio::time::Instant::now().saturating_duration_since(intended);
        if lateness > LATE_AFTER {
            d.shared.late.fetch_add(1, Ordering::Relaxed);
        }
        let timing = FlowTiming {
            lateness_us: micros(lateness),
            measured: next >= d.plan.warmup,
        };
        let dd = d.clone();
        set.spawn(async move {
            let _slot = permit;
            dd.flow(seq, timing, &mut FlowState::new()).await;
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

/// The collector: folds samples into stats and the per-second timeline; updates the
/// progress bar with flows done, success rate and the p99 of the last few seconds.
async fn collect(
    mut rx: mpsc::Receiver<Batch>,
    mut stats: Stats,
    bar: ProgressBar,
    shared: Arc<Shared>,
    t0: tokio::time::Instant,
) -> Stats {
    let mut timeline = TimelineBuilder::default();
    let mut outages = OutageTracker::default();
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut window = new_histogram();
    let mut window_p99 = 0.0;
    // Everything waiting is taken at each wake-up, so the select (and its timer poll) is
    // paid once per wake-up rather than once per flow.
    let mut batches: Vec<Batch> = Vec::with_capacity(COLLECT_AT_ONCE);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batches, COLLECT_AT_ONCE) => if n == 0 {
                break;
            },
            _ = ticks.tick() => {
                timeline.tick(shared.started.load(Ordering::Relaxed));
                // The rolling p99 shown on the bar covers the last 5 seconds.
                if timeline.seconds() % 5 == 0 {
                    window_p99 = window.value_at_quantile(0.99) as f64 / 1e6;
                    window.reset();
                }
                continue;
            }
        };
        let full = batches.len() == COLLECT_AT_ONCE;
        // Samples arrive when their flow ends (within the pause below), so the time of
        // arrival is the time of the flow's end, to about a millisecond.
        let now_s = t0.elapsed().as_secs_f64();
        for batch in batches.drain(..) {
            observe(&mut outages, now_s, &batch);
            for s in batch {
                fold(&mut stats, &mut timeline, &bar, &mut window, window_p99, s);
            }
        }
        if !full {
            // Let samples gather for a moment: woken by every flow, the collector cost
            // about 5% of the harness's CPU in task switches alone at 80k flows/s. The
            // channel holds 4096 flows, so senders never wait on this pause below
            // ~4M flows/s; samples reach the stats at most a millisecond later.
            tokio::time::sleep(COLLECT_PAUSE).await;
        }
    }
    stats.timeline = timeline.finish(shared.started.load(Ordering::Relaxed));
    stats.availability = outages.finish(
        t0.elapsed().as_secs_f64(),
        stats.flows_total(),
        stats.flows_ok(),
    );
    crate::outage::latency_recovery(&mut stats.availability, &stats.timeline);
    bar.finish_and_clear();
    stats
}

/// Feeds one flow's (or probe's) end to the outage tracker; `now_s` is when it ended.
fn observe(outages: &mut OutageTracker, now_s: f64, batch: &Batch) {
    let mut failure = None;
    for s in batch {
        match s {
            Sample::Probe { ok } => outages.on_probe(now_s, *ok),
            Sample::Step {
                failure: Some(f), ..
            } => failure = Some(f),
            Sample::Flow {
                elapsed_us,
                failed_step,
                measured: true,
                ..
            } => {
                let started = now_s - *elapsed_us as f64 / 1e6;
                match (failed_step, failure) {
                    (None, _) => outages.on_ok_flow(started, now_s),
                    (Some(_), Some(f)) => outages.on_failed_flow(started, now_s, f),
                    (Some(_), None) => {}
                }
            }
            _ => {}
        }
    }
}

/// Folds one sample into the stats and the timeline, and moves the progress bar on for
/// a finished flow.
fn fold(
    stats: &mut Stats,
    timeline: &mut TimelineBuilder,
    bar: &ProgressBar,
    window: &mut hdrhistogram::Histogram<u64>,
    window_p99: f64,
    s: Sample,
) {
    let flow = match &s {
        Sample::Flow {
            elapsed_us,
            lateness_us,
            failed_step,
            measured: true,
        } => Some((
            elapsed_us.saturating_add(*lateness_us),
            failed_step.is_none(),
        )),
        Sample::Step {
            failure: Some(_), ..
        } => {
            timeline.on_error();
            None
        }
        _ => None,
    };
    let warmup_done = matches!(
        s,
        Sample::Flow {
            measured: false,
            ..
        }
    );
    stats.record(s);
    if let Some((us, ok)) = flow {
        timeline.on_flow(us, ok);
    }
    if (flow.is_some() || warmup_done) && !bar.is_hidden() {
        if let Some((us, _)) = flow {
            record(window, us);
        }
        bar.inc(1);
        let total = stats.flows_total();
        bar.set_message(format!(
            "ok {:.1}% | p99 (last 5s) {:.3}s",
            100.0 * stats.flows_ok() as f64 / total.max(1) as f64,
            if window_p99 > 0.0 {
                window_p99
            } else {
                window.value_at_quantile(0.99) as f64 / 1e6
            }
        ));
    }
}

/// The progress bar: drawn on stderr only when asked for and stdout is a terminal, so
/// piped or CI output carries no control codes.
pub fn progress_bar(wanted: bool, color: bool, total: Option<u64>) -> ProgressBar {
    use std::io::IsTerminal;
    if !wanted || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = match (total.is_some(), color) {
        (true, true) => {
            "{spinner:.green} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} flows {msg}"
        }
        (true, false) => "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} flows {msg}",
        (false, true) => "{spinner:.green} [{elapsed_precise}] {pos} flows {msg}",
        (false, false) => "{spinner} [{elapsed_precise}] {pos} flows {msg}",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
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
