//! The stages of `authbench run`, each a function with a typed input and output, in the
//! order [`crate::run`] chains them: [`prepare`] → [`start_target`] → preflight →
//! [`sampling`] → [`Load::new`] → [`Load::calibrate_and_execute`] (the [`usage`] sampler
//! runs alongside the measured run) → [`report()`] → [`export`]. A new stage (a
//! synchronized start) goes between two of these. Nothing here prints.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::{self, EngineOutcome};
use crate::error::RunError;
use crate::gate::{self, Threshold};
use crate::options::{self, RunOptions};
use crate::plan::{self, Plan};
use crate::report::Report;
use crate::scenario::Scenario;
use crate::usage::{self, Usage};

mod outputs;
mod recover;
mod target;
pub use outputs::{export, report, run_config};
use outputs::{serve_metrics, stream_dir};
pub use recover::recover;
pub use target::{
    check_target_url, external_api_key, load_scenario, load_scenario_with, preflight, random_key,
    sampling, start_reference_server, start_reference_server_with_tls, start_target, Target,
};

/// Everything that can be wrong with the configuration, checked before any load is sent.
pub struct Prepared {
    pub scenario: Arc<Scenario>,
    /// The scenario's `[thresholds]` and the `--threshold` flags, parsed.
    pub thresholds: Vec<Threshold>,
    /// A saved report to compare with, and where it came from.
    pub baseline: Option<(Report, PathBuf)>,
    /// The load shape (the simple flags become a closed loop).
    pub plan: Plan,
    /// Flows in flight at once: the closed loop's peak workers, or the open loop's cap.
    pub concurrency: usize,
    /// The scenario's `[data]` rows, handed out across the calibration and the run.
    pub feed: Option<Arc<engine::feed::Feed>>,
    /// `--save-users`: the file, created with its header row.
    pub users: Option<Arc<engine::feed::UserSink>>,
}

/// Stage 1: options, scenario, thresholds, baseline and plan.
pub fn prepare(opts: &RunOptions) -> Result<Prepared, RunError> {
    if opts.flows == 0 {
        return Err(RunError::Config("--flows must be at least 1".into()));
    }
    if opts.concurrency == 0 {
        return Err(RunError::Config("--concurrency must be at least 1".into()));
    }
    let scenario = Arc::new(load_scenario_with(&opts.scenario, &opts.vars)?);
    let mut exprs = scenario.thresholds.clone();
    exprs.extend(opts.thresholds.iter().cloned());
    let thresholds = gate::parse_all(&exprs, &scenario.step_names())
        .map_err(|e| RunError::Config(e.to_string()))?;
    let baseline = match &opts.baseline {
        Some(p) => Some((
            crate::report::read(p).map_err(|e| RunError::Config(format!("{e:#}")))?,
            p.clone(),
        )),
        None => None,
    };
    let plan = match &opts.plan {
        Some(p) => p.clone(),
        None => Plan::closed(
            opts.concurrency
                .min(usize::try_from(opts.flows).unwrap_or(usize::MAX)),
            opts.flows,
        ),
    };
    let plan = match opts.shard {
        Some(s) => s.split_plan(&plan).map_err(RunError::Config)?,
        None => plan,
    };
    let concurrency = match plan.model {
        plan::LoadModel::Closed => plan.peak() as usize,
        plan::LoadModel::Open { max_in_flight, .. } => max_in_flight,
    };
    let feed = match scenario.data.clone() {
        Some(d) => Some(Arc::new(
            engine::feed::Feed::for_shard(d, opts.shard).map_err(RunError::Config)?,
        )),
        None => None,
    };
    let users = match &opts.save_users {
        Some(path) => Some(Arc::new(
            engine::feed::UserSink::create(path, &scenario)
                .map_err(|e| RunError::Config(format!("{e:#}")))?,
        )),
        None => None,
    };
    Ok(Prepared {
        scenario,
        thresholds,
        baseline,
        plan,
        concurrency,
        feed,
        users,
    })
}

/// What the load measured: the calibration, the run, and who used the CPU during it.
pub struct Measured {
    pub calibration: Option<EngineOutcome>,
    pub outcome: EngineOutcome,
    pub usage: Option<Usage>,
    /// When the measured load began (wall clock).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The protocol spoken, and HTTP/2's streams, when the run asked for or got HTTP/2.
    pub http: Option<engine::transport::h2count::HttpSummary>,
}

/// Stages 4 and 5: the clients and the interrupt, ready to run the calibration and the
/// measured load.
pub struct Load {
    client: reqwest::Client,
    per_flow_client: Option<engine::ClientFactory>,
    fast: Option<Arc<engine::http1::Http1>>,
    /// The HTTP/2 client, when the run speaks HTTP/2 (see [`h2_client`]).
    h2: Option<Arc<engine::transport::http2::Http2>>,
    /// `--http auto` over TLS and the server chose HTTP/1.1 in ALPN.
    alpn_chose_http1: bool,
    pub base_url: String,
    api_key: String,
    feed: Option<Arc<engine::feed::Feed>>,
    users: Option<Arc<engine::feed::UserSink>>,
    stop_rx: tokio::sync::watch::Receiver<bool>,
    stop_task: tokio::task::JoinHandle<()>,
    /// The threads that run flows (the generator), for the sampler.
    threads: Arc<usage::ThreadSet>,
    /// What the set-up did to or found about this machine (the descriptor limit raised,
    /// ports short of the planned rate), for the report's configuration.
    pub notes: Vec<String>,
    /// `--metrics`: the endpoint and the page it serves.
    metrics: Option<(Arc<engine::metrics::Live>, tokio::task::JoinHandle<()>)>,
}

/// The HTTP/2 client under `--http 2`, or `auto` over TLS when the server picks `h2`;
/// `None` (HTTP/1.1) otherwise, with whether ALPN chose HTTP/1.1.
async fn h2_client(
    opts: &RunOptions,
    prepared: &Prepared,
    target: &Target,
) -> Result<(Option<Arc<engine::transport::http2::Http2>>, bool), RunError> {
    use engine::transport::http2::{H2Setup, Http2};
    let connections = opts
        .h2_connections
        .unwrap_or_else(engine::worker_lanes)
        .min(prepared.concurrency.max(1));
    match Http2::for_target(
        &target.base_url,
        &prepared.scenario,
        opts.http,
        opts.timeout,
        opts.connect_timeout,
        connections,
        target.tls.clone(),
        engine::transport::local::Sources::new(opts.source_addrs.clone()),
    )
    .await
    {
        Ok(h2) => Ok((Some(Arc::new(h2.with_max_body(opts.max_body))), false)),
        Err(H2Setup::Http1 { alpn_chose_http1 }) => Ok((None, alpn_chose_http1)),
        Err(e @ H2Setup::NoH2(_)) => Err(RunError::Unreachable {
            target: target.base_url.clone(),
            cause: e.to_string(),
        }),
        Err(H2Setup::Unusable) if opts.http == options::HttpVersion::Http2 => Err(
            RunError::Other(anyhow::anyhow!("--http 2: {} cannot be reached over HTTP/2 (no http:// or https:// host that resolves)", target.base_url)),
        ),
        Err(H2Setup::Unusable) => Ok((None, false)),
    }
}

/// Descriptors kept free for everything but connections (files, the runtime, the server).
const FD_RESERVE: u64 = 64;

/// The generator's own limits against the load asked for: raises the descriptor limit and
/// refuses a concurrency it cannot hold; notes a planned new-connection rate that would
/// outrun the ephemeral ports of a client that closes first.
fn generator_limits(opts: &RunOptions, prepared: &Prepared) -> Result<Vec<String>, RunError> {
    use engine::transport::local;
    let mut notes = Vec::new();
    // The in-process server holds the other end of every connection in this process.
    let per_conn = if opts.target.is_none() { 2 } else { 1 };
    let needed = prepared.concurrency as u64 * per_conn + FD_RESERVE;
    if let Some(l) = local::raise_fd_limit() {
        if l.now > l.before {
            notes.push(format!(
                "descriptor limit raised from {} to {} (the hard limit)",
                l.before, l.now
            ));
        }
        if needed > l.now {
            return Err(RunError::Config(format!(
                "{} flows at once need about {needed} file descriptors and this process may \
                 open {} (its hard limit): raise it (ulimit -n, LimitNOFILE=) or lower \
                 --concurrency",
                prepared.concurrency, l.now
            )));
        }
    }
    let peak_rate = match prepared.plan.model {
        plan::LoadModel::Open { .. } => prepared.plan.peak(),
        plan::LoadModel::Closed => 0.0,
    };
    if let (options::Connections::PerFlow, Some((lo, hi))) =
        (opts.connections, local::ephemeral_ports())
    {
        let ports = u64::from(hi - lo + 1) * opts.source_addrs.len().max(1) as u64;
        let per_minute = (peak_rate * 60.0) as u64;
        if per_minute > ports {
            notes.push(format!(
                "{peak_rate:.0} new connections/s for 60 s is {per_minute} connections, more \
                 than the {ports} local ports they can use: fine while the server closes first \
                 (authbench asks it to); if it does not, connects fail as class 'ports' \
                 (spread them with --source-addr, or widen net.ipv4.ip_local_port_range)"
            ));
        }
    }
    Ok(notes)
}

impl Load {
    /// Builds the clients for the target and arms the interrupt.
    pub async fn new(
        opts: &RunOptions,
        prepared: &Prepared,
        target: &Target,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Load, RunError> {
        let notes = generator_limits(opts, prepared)?;
        let threads: Arc<usage::ThreadSet> = Arc::default();
        let metrics = match opts.metrics {
            None => None,
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    RunError::Config(format!("--metrics {addr}: cannot listen there: {e}"))
                })?;
                let live = Arc::new(engine::metrics::Live::new(
                    &prepared.scenario.step_names(),
                    threads.clone(),
                ));
                Some((live.clone(), serve_metrics(listener, live)))
            }
        };
        let concurrency = prepared.concurrency;
        let (timeout, connect_timeout) = (opts.timeout, opts.connect_timeout);
        // Steps on other hosts (`url`, redirects followed) go over reqwest: they get the
        // run's TLS flags and roots even when the target itself is plain http.
        let other_hosts = prepared.scenario.steps.iter().any(|s| s.general());
        let tls = crate::tls::for_other_hosts(target.tls.clone(), &opts.tls, other_hosts)?;
        // reqwest leaves from one address: the first (the hot path takes them in turn).
        let local_address = opts.source_addrs.first().copied();
        let build_client = move |pool: usize| {
            // A load tester measures what the server answers: no redirect is followed (a 302
            // is checked against the step's `expect` like any status) and no request is
            // retried behind the scenario's back.
            crate::tls::reqwest_tls(reqwest::Client::builder(), tls.as_ref())
                .timeout(timeout)
                .connect_timeout(connect_timeout)
                .tcp_nodelay(true)
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .retry(reqwest::retry::never())
                .local_address(local_address)
                .pool_max_idle_per_host(pool)
                .build()
        };
        let client = build_client(concurrency.min(10_000)).map_err(|e| {
            RunError::Other(anyhow::anyhow!("could not build the HTTP client: {e}"))
        })?;
        let per_flow_client: Option<engine::ClientFactory> = match opts.connections {
            options::Connections::Shared => None,
            // Building a client cannot fail once the same settings built one above; if it
            // ever did, the flow falls back to the shared client rather than panicking.
            options::Connections::PerFlow => {
                let shared = client.clone();
                Some(Arc::new(move || {
                    build_client(1).unwrap_or_else(|_| shared.clone())
                }))
            }
        };
        // The interrupt may come during the calibration or the run: a watch lets both see it.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stop_task = tokio::spawn(async move {
            stop.await;
            let _ = stop_tx.send(true);
        });
        let fast = engine::http1::Http1::for_target(
            &target.base_url,
            &prepared.scenario,
            opts.timeout,
            opts.connect_timeout,
            concurrency.min(10_000),
            target.tls.clone(),
            engine::transport::local::Sources::new(opts.source_addrs.clone()),
        )
        .await
        .map(|h| Arc::new(h.with_max_body(opts.max_body)));
        let (h2, alpn_chose_http1) = h2_client(opts, prepared, target).await?;
        Ok(Load {
            client,
            per_flow_client,
            fast,
            h2,
            alpn_chose_http1,
            base_url: target.base_url.clone(),
            api_key: target.api_key.clone(),
            feed: prepared.feed.clone(),
            users: prepared.users.clone(),
            stop_rx,
            stop_task,
            threads,
            notes,
            metrics,
        })
    }

    fn engine_config(
        &self,
        opts: &RunOptions,
        scenario: &Arc<Scenario>,
        plan: Plan,
        progress: bool,
    ) -> engine::EngineConfig {
        engine::EngineConfig {
            scenario: scenario.clone(),
            client: self.client.clone(),
            per_flow_client: self.per_flow_client.clone(),
            fast: self.fast.clone(),
            h2: self.h2.clone(),
            base_url: self.base_url.clone(),
            api_key: self.api_key.clone(),
            plan,
            progress,
            color: opts.color,
            grace: opts.grace,
            connect_timeout: opts.connect_timeout,
            feed: self.feed.clone(),
            users: self.users.clone(),
            threads: self.threads.clone(),
            shard: opts.shard,
            max_body: opts.max_body,
            stream: None,
            live: None,
        }
    }

    /// `--metrics`: keeps the endpoint up `opts.metrics_linger` longer (so a scraper sees
    /// the final totals), then stops it.
    pub async fn finish_metrics(&self, opts: &RunOptions) {
        if let Some((_, task)) = &self.metrics {
            tokio::time::sleep(opts.metrics_linger).await;
            task.abort();
        }
    }

    /// The report's protocol figures: HTTP/2's, or HTTP/1.1 when ALPN chose it.
    fn http_summary(&self) -> Option<engine::transport::h2count::HttpSummary> {
        match &self.h2 {
            Some(h2) => Some(h2.summary()),
            None => self
                .alpn_chose_http1
                .then(|| engine::transport::h2count::HttpSummary {
                    protocol: "http/1.1".into(),
                    ..Default::default()
                }),
        }
    }

    /// Flushes the `--save-users` file (also after an interrupt: it holds the flows that
    /// succeeded until then).
    pub fn finish_users(&self) -> Result<(), RunError> {
        match &self.users {
            Some(u) => u.finish().map_err(RunError::Other),
            None => Ok(()),
        }
    }

    fn stopped(&self) -> impl Future<Output = ()> {
        let mut rx = self.stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Calibration (a few flows alone, so the diagnosis knows each step's service time),
    /// then the measured run, sampled by a [`usage::Sampler`] (started just before it, so
    /// the calibration is not in its figures). Interrupted while calibrating, the
    /// calibration flows (run one at a time) are all that was measured, and they become the
    /// (partial) outcome.
    pub async fn calibrate_and_execute(
        &self,
        opts: &RunOptions,
        prepared: &Prepared,
        sample: usage::Targets,
    ) -> Measured {
        let scenario = &prepared.scenario;
        let calibration = if opts.calibration_flows > 0 {
            let cal_plan = Plan::closed(1, opts.calibration_flows);
            let cfg = self.engine_config(opts, scenario, cal_plan, false);
            Some(engine::run(cfg, self.stopped()).await)
        } else {
            None
        };
        let out = match calibration {
            Some(cal) if cal.interrupted => Measured {
                calibration: None,
                outcome: cal,
                usage: None,
                started_at: chrono::Utc::now(),
                http: self.http_summary(),
            },
            cal => {
                // `--start-at`: the calibration is done; wait for the time the generators
                // agreed on (an interrupt ends the wait, and the run starts no flow).
                if let Some(at) = opts.start_at {
                    if let Ok(wait) = (at - chrono::Utc::now()).to_std() {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = self.stopped() => {}
                        }
                    }
                }
                let started_at = chrono::Utc::now();
                if let Some(h2) = &self.h2 {
                    h2.counts.reset();
                }
                let mut cfg =
                    self.engine_config(opts, scenario, prepared.plan.clone(), opts.progress);
                cfg.live = self.metrics.as_ref().map(|m| m.0.clone());
                cfg.stream = opts.out_dir.as_ref().map(|dir| {
                    let start = crate::shard::Start::of(started_at, opts.start_at);
                    let cost = opts.target.is_none().then_some(opts.cost);
                    let config = run_config(
                        opts,
                        prepared,
                        &self.base_url,
                        self.notes.clone(),
                        cost,
                        start,
                    );
                    engine::stream::StreamSpec {
                        dir: stream_dir(dir, &started_at),
                        interval: opts.interval,
                        config: serde_json::to_value(config).unwrap_or_default(),
                    }
                });
                // A sampler that cannot start (no thread) leaves the run unsampled.
                let sampler = usage::Sampler::start(self.threads.clone(), sample).ok();
                let mut outcome = engine::run(cfg, self.stopped()).await;
                let usage = sampler.map(|s| s.finish(&mut outcome.stats.timeline));
                Measured {
                    calibration: cal,
                    outcome,
                    usage,
                    started_at,
                    http: self.http_summary(),
                }
            }
        };
        self.stop_task.abort();
        out
    }
}
