//! `authbench run`: its flags, their conversion into [`RunOptions`] (every load-flag
//! combination becomes one [`Plan`]), and the command body: run, print the summary, say
//! where the reports went, and answer with the gate's exit code.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::shared::{CommonArgs, HashModeArg, TargetArgs, ToleranceArgs, Ui};
use crate::error::exit;
use crate::gate::Verdict;
use crate::options::{Connections, RunOptions};
use crate::plan::{parse_stages, Arrival, LoadModel, Plan, Stage};
use crate::render::{markdown, terminal::Terminal, Exporter};
use crate::report::Report;

/// `--source-addr`'s value: one argument holding the whole list (an alias, so that clap
/// does not read a `Vec` as a repeated flag).
type SourceAddrs = Vec<std::net::IpAddr>;
use crate::units::{parse_count, parse_duration, parse_rate};

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Number of flows to run (accepts 10k, 1m) [default: 20, or unbounded with
    /// --duration/--stages].
    #[arg(long, short = 'n', value_parser = parse_count)]
    pub flows: Option<u64>,
    /// Closed loop: flows in flight at once [default: all flows at once, up to 10000].
    #[arg(long, short = 'c', value_parser = parse_count, conflicts_with = "rate")]
    pub concurrency: Option<u64>,
    /// Open loop: start flows at this rate per second, whatever the server does.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Open loop: spacing of arrivals.
    #[arg(long, value_enum, default_value = "constant")]
    pub arrival: ArrivalArg,
    /// Open loop: at most this many flows in flight; arrivals beyond wait and start late.
    #[arg(long, value_parser = parse_count)]
    pub max_in_flight: Option<u64>,
    /// Load stages, rates ("10/s:30s,50/s:60s", open loop) or workers ("10:30s,50:60s").
    #[arg(long, value_name = "STAGES")]
    pub stages: Option<String>,
    /// Stop starting flows after this long (e.g. 60s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Run but do not measure the flows that start in this first period (e.g. 10s).
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// `shared`: one keep-alive pool for all flows; `per-flow`: new connections per flow,
    /// like new users.
    #[arg(long, value_enum, default_value = "shared")]
    pub connections: ConnectionsArg,
    /// HTTP/2 connections the flows share under `--connections shared` (default: one per
    /// core); each request is a stream on one of them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub h2_connections: Option<u32>,
    /// Local addresses new connections leave from, in turn: each has its own ~28,000
    /// ephemeral ports (e.g. 127.0.0.2,127.0.0.3 or 127.0.0.0/29).
    #[arg(long, value_name = "ADDRS", value_parser = crate::units::parse_source_addrs)]
    pub source_addr: Option<SourceAddrs>,
    /// Keep at most this much of each response body (e.g. 1MiB, 64k): the rest is read,
    /// counted and dropped, so no response can exhaust memory. A step that reads the body
    /// (a JSON check or extract, a regex) fails as `body_too_large` when it was longer.
    #[arg(long, default_value = "1MiB", value_parser = crate::units::parse_size, value_name = "SIZE")]
    pub max_body: u64,
    /// How often results are streamed to the out-dir (an HdrHistogram interval log and a
    /// JSON line per interval, in `<stamp>-run.stream/`), so a killed run can be recovered
    /// with `authbench report --recover DIR`.
    #[arg(long, default_value = "1s", value_parser = crate::units::parse_duration, value_name = "DURATION")]
    pub interval: Duration,
    /// Serve live metrics in the Prometheus text format at http://ADDR/metrics during the
    /// run (e.g. 127.0.0.1:9464); the counters end equal to the report's totals.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// With --metrics: how long the endpoint stays up after the reports are written, so a
    /// scraper sees the final totals.
    #[arg(long, default_value = "5s", value_parser = crate::units::parse_wait, value_name = "DURATION", requires = "metrics")]
    pub metrics_linger: Duration,
    #[command(flatten)]
    pub target: TargetArgs,
    /// bcrypt cost of the in-process server (4-31).
    #[arg(long, default_value = "12", value_parser = clap::value_parser!(u32).range(4..=31), conflicts_with = "target")]
    pub cost: u32,
    /// A threshold the run must meet, e.g. 'success_rate>=0.99', 'flow.p95<2s' (repeatable).
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
    /// A saved JSON report to compare with; a regression past the tolerance exits 1.
    #[arg(long, value_name = "BASE.json")]
    pub baseline: Option<PathBuf>,
    #[command(flatten)]
    pub tolerance: ToleranceArgs,
    /// Write JUnit XML here (one test case per threshold, per step, per baseline row).
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Also write the self-contained HTML report here (one is always written next to the
    /// Markdown report).
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Flows run one at a time first, to measure service times (and their spread) for the
    /// diagnosis (0: none; the findings that need no calibration are kept).
    #[arg(long, default_value = "5", value_name = "N")]
    pub calibration: u64,
    /// Where the in-process server hashes: `pool` (a blocking pool sized to the cores) or
    /// `inline` (on its single event-loop thread, as a one-worker async service does).
    #[arg(long, value_enum, default_value = "pool", conflicts_with = "target")]
    pub hash_mode: HashModeArg,
    /// Write the `[vars]` (and `[data]` columns) of the flows that succeeded to this CSV file,
    /// e.g. the accounts a registration run created, to feed a later login run.
    #[arg(long, value_name = "FILE")]
    pub save_users: Option<PathBuf>,
    /// The in-process server serves HTTPS with a self-signed certificate generated at
    /// start, which this run trusts.
    #[arg(long, conflicts_with = "target")]
    pub tls: bool,
    /// The server's process id on this machine: it and all its descendants (a pre-fork
    /// server's workers, restarted ones too) are sampled from /proc during the run and used
    /// by the diagnosis. Repeat it for a server made of several process trees.
    #[arg(long, value_name = "PID", requires = "target")]
    pub server_pid: Vec<u32>,
    /// The service's Prometheus endpoint (e.g. http://127.0.0.1:8000/metrics): its
    /// process CPU, memory and open files are scraped during the run.
    #[arg(long, value_name = "URL")]
    pub scrape: Option<String>,
    /// Run shard I of N (0-based) of the load asked for: flows, concurrency, rates and
    /// unique data rows are split so the N shards add up to it; `auto` reads
    /// JOB_COMPLETION_INDEX and AUTHBENCH_SHARDS (a Kubernetes Indexed Job).
    #[arg(long, value_name = "I/N|auto", value_parser = crate::shard::parse_shard, requires = "target")]
    pub shard: Option<crate::shard::ShardSpec>,
    /// Begin the measured load at this time (RFC 3339, e.g. 2026-11-30T12:00:00Z, or
    /// +30s from now), so generators started apart load the service together.
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn parse_start_at(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    crate::shard::parse_start_at(s, chrono::Utc::now())
}

/// `--arrival` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArrivalArg {
    /// Exactly 1/rate apart.
    Constant,
    /// Exponential gaps (independent users arriving at random).
    Poisson,
}

/// `--http` values.
/// `--connections` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConnectionsArg {
    /// One keep-alive pool shared by all flows.
    Shared,
    /// A new client (new connections) per flow.
    PerFlow,
}

/// Default cap on flows in flight in open loop.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1000;
/// Default closed-loop concurrency is "all flows at once", up to this many workers.
pub const MAX_DEFAULT_CONCURRENCY: u64 = 10_000;

impl RunArgs {
    /// Turns the load flags into a plan; every combination becomes one [`Plan`].
    fn plan(&self) -> Result<Option<Plan>, String> {
        let stages = self.stages.as_deref().map(parse_stages).transpose()?;
        let open = self.rate.is_some() || stages.as_ref().is_some_and(|(_, rates)| *rates);
        if self.rate.is_some() && stages.is_some() {
            return Err("--rate and --stages both set the rate: give one (a single rate is --stages R/s:DURATION)".into());
        }
        if !open && self.max_in_flight.is_some() {
            return Err("--max-in-flight caps an open-loop run: use it with --rate or rate --stages (a closed loop is capped by --concurrency)".into());
        }
        if !open && self.arrival != ArrivalArg::Constant {
            return Err(
                "--arrival applies to an open-loop run: use it with --rate or rate --stages".into(),
            );
        }
        if open && self.concurrency.is_some() {
            return Err("--concurrency sets a closed loop's workers: an open-loop run (--rate, rate --stages) is capped by --max-in-flight instead".into());
        }
        if let (Some(w), Some(d)) = (self.warmup, self.duration) {
            if w >= d {
                return Err(format!(
                    "--warmup ({}s) must be shorter than --duration ({}s): nothing would be measured",
                    w.as_secs_f64(),
                    d.as_secs_f64()
                ));
            }
        }
        let simple = self.rate.is_none()
            && stages.is_none()
            && self.duration.is_none()
            && self.warmup.is_none();
        if simple {
            return Ok(None);
        }
        let bounded = self.flows.is_some() || self.duration.is_some() || stages.is_some();
        let model = if open {
            if !bounded {
                return Err("an open-loop run needs a bound: --flows N or --duration D".into());
            }
            LoadModel::Open {
                arrival: match self.arrival {
                    ArrivalArg::Constant => Arrival::Constant,
                    ArrivalArg::Poisson => Arrival::Poisson,
                },
                max_in_flight: self
                    .max_in_flight
                    .map(|m| usize::try_from(m).unwrap_or(usize::MAX))
                    .unwrap_or(DEFAULT_MAX_IN_FLIGHT),
            }
        } else {
            LoadModel::Closed
        };
        let stages = match (stages, self.rate) {
            (Some((st, _)), _) => st,
            (None, Some(rate)) => vec![Stage {
                level: rate,
                duration: Duration::MAX,
            }],
            (None, None) => {
                let workers = match (self.concurrency, self.flows) {
                    (Some(c), _) => c,
                    (None, Some(n)) => n.min(MAX_DEFAULT_CONCURRENCY),
                    (None, None) => {
                        return Err("a closed-loop --duration run needs --concurrency C (or use --rate for an open loop)".into())
                    }
                };
                vec![Stage {
                    level: workers as f64,
                    duration: Duration::MAX,
                }]
            }
        };
        Ok(Some(Plan {
            model,
            stages,
            max_flows: self.flows,
            duration: self.duration,
            warmup: self.warmup.unwrap_or_default(),
        }))
    }

    pub fn into_options(self) -> Result<RunOptions, String> {
        let plan = self.plan()?;
        if self.interval < Duration::from_millis(10) {
            return Err(format!(
                "--interval {:?} is too short: results are streamed at most every 10ms (1s is the default)",
                self.interval
            ));
        }
        let shard = match self.shard {
            None => None,
            Some(crate::shard::ShardSpec::Fixed(s)) => Some(s),
            Some(crate::shard::ShardSpec::Auto) => {
                Some(crate::shard::Shard::from_env(|k| std::env::var(k).ok())?)
            }
        };
        let flows = self.flows.unwrap_or(20);
        Ok(RunOptions {
            concurrency: self
                .concurrency
                .unwrap_or_else(|| flows.min(MAX_DEFAULT_CONCURRENCY))
                .try_into()
                .unwrap_or(usize::MAX),
            flows,
            plan,
            connections: match self.connections {
                ConnectionsArg::Shared => Connections::Shared,
                ConnectionsArg::PerFlow => Connections::PerFlow,
            },
            http: self.target.http.version(),
            h2_connections: self.h2_connections.map(|n| n as usize),
            source_addrs: self.source_addr.unwrap_or_default(),
            max_body: usize::try_from(self.max_body).unwrap_or(usize::MAX),
            interval: self.interval,
            metrics: self.metrics,
            metrics_linger: self.metrics_linger,
            connect_timeout: self.common.timeouts.connect(),
            timeout: self.common.timeouts.timeout,
            tls: self.target.tls(),
            server_tls: self.tls,
            target: self.target.target,
            api_key: self.target.api_key,
            cost: self.cost,
            scenario: self.common.scenario.source(),
            vars: self.common.scenario.vars.vars(),
            out_dir: self.common.output.dir(),
            progress: true,
            thresholds: self.thresholds,
            baseline: self.baseline,
            compare: self.tolerance.options(),
            junit: self.junit,
            html: self.html,
            calibration_flows: self.calibration,
            hash_mode: self.hash_mode.into(),
            save_users: self.save_users,
            server_pids: self.server_pid,
            scrape: self.scrape,
            shard,
            start_at: self.start_at,
            ..RunOptions::default()
        })
    }
}

pub(super) async fn exec(args: RunArgs, out: &mut dyn Write, err: &mut dyn Write, ui: Ui) -> u8 {
    let opts = match args.into_options() {
        Ok(o) => RunOptions {
            progress: ui.progress,
            color: ui.color_err,
            ..o
        },
        Err(e) => {
            ui.error_msg(err, &e);
            return exit::USAGE;
        }
    };
    // First Ctrl-C: stop starting flows and write a partial report. Second: exit at once.
    let stop = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handling available: never interrupt.
            std::future::pending::<()>().await;
        }
        tokio::spawn(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted twice: exiting without a report");
                std::process::exit(i32::from(exit::INTERRUPTED));
            }
        });
    };
    match crate::mix::run(&opts, stop).await {
        Ok(result) => {
            if let Ok(bytes) = (Terminal {
                color: ui.color_out,
            })
            .render(&result.report)
            {
                let _ = out.write_all(&bytes);
            }
            let _ = out.write_all(crate::mix::scenario_table(&result.report).as_bytes());
            for f in &result.files {
                let _ = writeln!(out, "report: {}", f.display());
            }
            if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
                if let Err(e) = append(&PathBuf::from(path), &markdown::summary(&result.report)) {
                    ui.warning(err, &format!("GITHUB_STEP_SUMMARY: {e:#}"));
                }
            }
            if result.report.partial {
                ui.verdict(err, "interrupted:", "the report is partial");
                exit::INTERRUPTED
            } else if !result.report.gate_passed() {
                ui.verdict(err, "gate failed:", &gate_failures(&result.report));
                exit::GATE
            } else if let Some(why) = nothing_succeeded(&result.report) {
                ui.verdict(err, "no flow succeeded:", &why);
                exit::FAILURE
            } else {
                exit::OK
            }
        }
        Err(e) => {
            ui.error(err, &e);
            e.exit_code()
        }
    }
}

/// Why a run in which no flow succeeded fails, unless thresholds or a baseline decide
/// the exit (they are the user's own definition of failure): the most frequent failure.
fn nothing_succeeded(r: &Report) -> Option<String> {
    let decided = !r.thresholds.is_empty() || r.comparison.is_some();
    if decided || r.summary.successful_flows > 0 {
        return None;
    }
    Some(match r.failures.first() {
        Some(f) => format!(
            "{} of {} flows failed; the most frequent failure: {} at `{}` ({}×)",
            r.summary.failed_flows, r.summary.total_flows, f.detail, f.step, f.count
        ),
        None => format!("{} flows ran and none completed", r.summary.total_flows),
    })
}

/// One line naming what failed the gate.
fn gate_failures(r: &Report) -> String {
    let mut parts: Vec<String> = r
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| format!("{} (observed {})", t.expr, t.observed_text))
        .collect();
    if let Some(c) = &r.comparison {
        for row in c.rows.iter().filter(|r| r.verdict == Verdict::Regression) {
            parts.push(format!(
                "{}.{} regressed {:+.1}%",
                row.scope,
                row.metric,
                row.relative.unwrap_or(f64::NAN) * 100.0
            ));
        }
    }
    parts.join("; ")
}

fn append(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("could not open '{}'", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("could not write '{}'", path.display()))
}
