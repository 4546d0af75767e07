//! The load engine: starts workers that run flows, collects their samples into [`Stats`],
//! and handles interruption. Workers never print; the collector is the only place that
//! touches the progress bar.
//!
//! The load shape here is a closed loop: `concurrency` workers each take the next flow
//! number from a shared counter until `flows` have been started, so at most
//! `concurrency` flows are in flight and a new one starts only when one ends.

pub mod flow;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::scenario::Scenario;
use crate::stats::{Sample, Stats};
use flow::FlowContext;

/// How the engine should run.
pub struct EngineConfig {
    pub scenario: Arc<Scenario>,
    pub client: reqwest::Client,
    pub base_url: String,
    pub api_key: String,
    pub flows: u64,
    pub concurrency: usize,
    pub progress: bool,
    pub grace: Duration,
}

/// What the engine measured.
pub struct EngineOutcome {
    pub stats: Stats,
    /// From the first flow's start to the last flow's end (or the interrupt's settling).
    pub wall: Duration,
    /// The run was interrupted; `stats` holds what finished before.
    pub interrupted: bool,
    /// Flows that were started but cut off by an interrupt (not in `stats`).
    pub abandoned: u64,
}

/// Runs the flows; when `stop` resolves, starts no new flow, gives in-flight ones `grace`
/// to finish, then cuts them off.
pub async fn run(cfg: EngineConfig, stop: impl Future<Output = ()>) -> EngineOutcome {
    let workers = cfg
        .concurrency
        .clamp(1, usize::try_from(cfg.flows.max(1)).unwrap_or(usize::MAX));
    let ctx = Arc::new(FlowContext {
        scenario: cfg.scenario.clone(),
        client: cfg.client,
        base_url: cfg.base_url.trim_end_matches('/').to_string(),
        api_key: cfg.api_key,
        run_id: random_run_id(),
    });
    // Bounded: if the collector ever fell behind, workers wait instead of memory growing.
    let (tx, rx) = mpsc::channel::<Sample>(4096);
    let stats = Stats::new(&cfg.scenario.step_names());
    let bar = progress_bar(cfg.progress, cfg.flows);
    let collector = tokio::spawn(collect(rx, stats, bar));

    let next = Arc::new(AtomicU64::new(0));
    let stopping = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let (ctx, tx, next, stopping, started) = (
            ctx.clone(),
            tx.clone(),
            next.clone(),
            stopping.clone(),
            started.clone(),
        );
        let flows = cfg.flows;
        set.spawn(async move {
            loop {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= flows {
                    break;
                }
                started.fetch_add(1, Ordering::Relaxed);
                if ctx.run_flow(seq, &tx).await.is_none() {
                    break;
                }
            }
        });
    }
    drop(tx);

    let interrupted = tokio::select! {
        _ = join_all(&mut set) => false,
        _ = stop => true,
    };
    if interrupted {
        stopping.store(true, Ordering::Relaxed);
        // In-flight flows get a short grace period, then are cut off: their partial
        // results are not counted as flows (they never finished).
        if tokio::time::timeout(cfg.grace, join_all(&mut set))
            .await
            .is_err()
        {
            set.abort_all();
            join_all(&mut set).await;
        }
    }
    let wall = start.elapsed();
    // All senders are gone once the workers are: the collector drains and returns.
    let stats = collector
        .await
        .unwrap_or_else(|_| Stats::new(&cfg.scenario.step_names()));
    let abandoned = started
        .load(Ordering::Relaxed)
        .saturating_sub(stats.flows_total());
    EngineOutcome {
        stats,
        wall,
        interrupted,
        abandoned,
    }
}

/// Waits for every worker; cancel-safe, so it can be raced and resumed.
async fn join_all(set: &mut JoinSet<()>) {
    while set.join_next().await.is_some() {}
}

async fn collect(mut rx: mpsc::Receiver<Sample>, mut stats: Stats, bar: ProgressBar) -> Stats {
    while let Some(s) = rx.recv().await {
        let flow_done = matches!(s, Sample::Flow { .. });
        stats.record(s);
        if flow_done && !bar.is_hidden() {
            bar.inc(1);
            let total = stats.flows_total();
            let p99 = stats.flow_ok.value_at_quantile(0.99) as f64 / 1e6;
            bar.set_message(format!(
                "ok {:.1}% | flow p99 {:.3}s",
                100.0 * stats.flows_ok() as f64 / total.max(1) as f64,
                p99
            ));
        }
    }
    bar.finish_and_clear();
    stats
}

/// The progress bar: drawn on stderr only when asked for and stdout is a terminal, so
/// piped or CI output carries no control codes.
pub fn progress_bar(wanted: bool, total: u64) -> ProgressBar {
    use std::io::IsTerminal;
    if !wanted || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} flows {msg}",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn random_run_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}
