//! The command line: clap definitions, small value parsers, and the conversion into
//! [`crate::options`] types (clap's types stop here). [`main_with_args`] is the whole
//! program, so tests run it in-process with their own argument lists and output buffers.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::error::exit;
use crate::gate::Verdict;
use crate::options::{Connections, RunOptions, ScenarioSource, ServeOptions};
use crate::plan::{parse_stages, Arrival, LoadModel, Plan, Stage};
use crate::report::{junit::JUnit, markdown, terminal, terminal::Terminal, Exporter, Report};

#[derive(Debug, Parser)]
#[command(
    name = "authbench",
    version,
    about = "Load-test and benchmark authentication services",
    long_about = "Load-test and benchmark authentication services: concurrent register -> login -> verify -> profile flows with HDR latency per step, reports in Markdown and JSON.\n\nWith no --target, `run` starts an in-process reference server (axum, bcrypt, JWT) on a loopback port."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run flows against a target (or the in-process reference server) and write reports.
    Run(RunArgs),
    /// Run the reference auth server standalone until Ctrl-C.
    Serve(ServeArgs),
    /// Check scenario files without running them; errors name the file, line and column.
    Validate(ValidateArgs),
    /// Compare two JSON reports: per step and flow, p50/p95/p99, mean, success rate, throughput.
    Compare(CompareArgs),
    /// Add up the JSON reports of parallel runs exactly (histograms and counts) into one.
    Merge(MergeArgs),
    /// Re-render a saved JSON report (a run's or a merge's) as HTML, Markdown or JUnit.
    Report(ReportArgs),
    /// Probe a target's (or the reference server's) auth for conformance and security defects.
    Check(crate::check::cli::CheckArgs),
    /// Run the flows once per bcrypt cost: hash time, flow latency, throughput, capacity; table, Markdown, JSON, chart.
    Sweep(SweepArgs),
    /// Find the highest bcrypt cost (never below 10 without --allow-weak) that meets an SLO on this machine.
    Tune(TuneArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files (TOML).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
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
    /// Base URL of the service to test; without it an in-process reference server is started.
    #[arg(long, short = 't')]
    pub target: Option<String>,
    /// API key, sent where the scenario says (`{{api_key}}`, the X-API-Key header by default).
    #[arg(long, env = "AUTHBENCH_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Per-request timeout, from send to the last byte of the response (e.g. 30s, 500ms).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// TCP connect timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// bcrypt cost of the in-process server (4-31).
    #[arg(long, default_value = "12", value_parser = clap::value_parser!(u32).range(4..=31), conflicts_with = "target")]
    pub cost: u32,
    /// Scenario file (TOML) [default: the built-in scenarios/pyairtable.toml].
    #[arg(long, short = 's')]
    pub scenario: Option<PathBuf>,
    /// Directory for the Markdown and JSON reports.
    #[arg(long, default_value = "reports")]
    pub out_dir: PathBuf,
    /// Write no report files (the summary still prints).
    #[arg(long, conflicts_with = "out_dir")]
    pub no_reports: bool,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
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
    /// Flows run one at a time first, to measure service times for the diagnosis (0: none).
    #[arg(long, default_value = "3", value_name = "N")]
    pub calibration: u64,
    /// Where the in-process server hashes: `pool` (a blocking pool sized to the cores) or
    /// `inline` (on its single event-loop thread, as a one-worker async service does).
    #[arg(long, value_enum, default_value = "pool", conflicts_with = "target")]
    pub hash_mode: HashModeArg,
}

/// `--hash-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HashModeArg {
    /// Hash on a blocking pool sized to the cores, off the event loop.
    Pool,
    /// Hash inline on a single-threaded event loop (reproduces a one-worker async service).
    Inline,
}

impl From<HashModeArg> for crate::server::HashMode {
    fn from(a: HashModeArg) -> Self {
        match a {
            HashModeArg::Pool => crate::server::HashMode::Pool,
            HashModeArg::Inline => crate::server::HashMode::Inline,
        }
    }
}

#[derive(Debug, Args)]
pub struct ToleranceArgs {
    /// Relative latency/throughput change tolerated before a row is a regression.
    #[arg(long, default_value = "10%", value_parser = crate::gate::compare::parse_fraction)]
    pub max_regression: f64,
    /// Drop in success rate tolerated, in percentage points.
    #[arg(long, default_value = "1%", value_parser = crate::gate::compare::parse_fraction)]
    pub max_success_drop: f64,
    /// Latency changes smaller than this are noise, whatever their ratio.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    pub min_latency_delta: Duration,
}

impl ToleranceArgs {
    fn options(&self) -> crate::gate::CompareOptions {
        crate::gate::CompareOptions {
            max_regression: self.max_regression,
            max_success_drop: self.max_success_drop,
            min_latency_delta_ms: self.min_latency_delta.as_secs_f64() * 1000.0,
        }
    }
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline report (JSON).
    pub base: PathBuf,
    /// The new report (JSON).
    pub new: PathBuf,
    #[command(flatten)]
    pub tolerance: ToleranceArgs,
    /// Also write the comparison as Markdown here.
    #[arg(long, value_name = "PATH")]
    pub markdown: Option<PathBuf>,
    /// Also write the comparison as JSON here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Also write JUnit XML here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A saved JSON report.
    pub input: PathBuf,
    /// Write the self-contained HTML report here (`-` for stdout).
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Write the Markdown report here.
    #[arg(long, value_name = "PATH")]
    pub markdown: Option<PathBuf>,
    /// Write JUnit XML here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Reports (JSON) of runs of one scenario, e.g. one per generator.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Where to write the merged JSON; the Markdown goes beside it (.md).
    #[arg(long, short = 'o', value_name = "ALL.json")]
    pub output: PathBuf,
    /// Thresholds to check on the merged figures (repeatable); a failure exits 1.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8007")]
    pub addr: SocketAddr,
    /// bcrypt cost (4-31).
    #[arg(long, default_value = "12", value_parser = clap::value_parser!(u32).range(4..=31))]
    pub cost: u32,
    /// API key clients must send in X-API-Key [default: a random key, printed at start].
    #[arg(long, env = "AUTHBENCH_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Where bcrypt runs: `pool` (off the event loop) or `inline` (on a single event loop).
    #[arg(long, value_enum, default_value = "pool")]
    pub hash_mode: HashModeArg,
}

/// `--arrival` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArrivalArg {
    /// Exactly 1/rate apart.
    Constant,
    /// Exponential gaps (independent users arriving at random).
    Poisson,
}

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
            target: self.target,
            api_key: self.api_key,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout.min(self.timeout),
            cost: self.cost,
            scenario: self.scenario.map(ScenarioSource::File).unwrap_or_default(),
            out_dir: (!self.no_reports).then_some(self.out_dir),
            progress: !self.no_progress,
            thresholds: self.thresholds,
            baseline: self.baseline,
            compare: self.tolerance.options(),
            junit: self.junit,
            html: self.html,
            calibration_flows: self.calibration,
            hash_mode: self.hash_mode.into(),
            ..RunOptions::default()
        })
    }
}

/// `100`, `2.5` flows per second (a trailing `/s` is accepted).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let r: f64 = t
        .parse()
        .map_err(|_| format!("'{s}' is not a rate: use e.g. 100 or 100/s"))?;
    if !(r.is_finite() && r > 0.0 && r <= 10_000_000.0) {
        return Err(format!("'{s}' must be a rate above 0 (flows per second)"));
    }
    Ok(r)
}

/// `20`, `10k`, `2m` (×1000, ×1000000), `1_000`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let (num, mul) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
        _ => (t.as_str(), 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a count: use e.g. 20, 10k, 1m"))?;
    let v = n
        .checked_mul(mul)
        .ok_or_else(|| format!("'{s}' is too large"))?;
    if v == 0 {
        return Err("must be at least 1".into());
    }
    Ok(v)
}

/// `30s`, `500ms`, `1.5s`, `2m`, `1h`, `250us`; a bare number is seconds. Written by hand
/// because humantime rejects fractions ("1.5s"), which people type for timeouts.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("'{s}' is not a duration: use e.g. 30s, 500ms, 1.5s, 2m");
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 * 365.0 {
        return Err(format!("'{s}' must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The whole program: parses `args`, runs the command, writes to `out`/`err`, and returns
/// the exit code (see [`crate::error::exit`]).
pub fn main_with_args<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = if e.use_stderr() {
                write!(err, "{}", e.render().ansi())
            } else {
                write!(out, "{}", e.render().ansi())
            };
            return code;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "error: could not start the async runtime: {e}");
            return exit::FAILURE;
        }
    };
    match &cli.command {
        Command::Validate(a) => return cmd_validate(&a.paths, out, err),
        Command::Compare(a) => return report_errors(cmd_compare(a, out), err),
        Command::Merge(a) => return report_errors(cmd_merge(a, out), err),
        Command::Report(a) => return report_errors(cmd_report(a, out), err),
        _ => {}
    }
    match cli.command {
        Command::Validate(_) | Command::Compare(_) | Command::Merge(_) | Command::Report(_) => {
            exit::OK
        }
        Command::Run(a) => match a.into_options() {
            Ok(o) => runtime.block_on(cmd_run(o, out, err)),
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                exit::USAGE
            }
        },
        Command::Check(a) => runtime.block_on(crate::check::cli::cmd_check(a, out, err)),
        Command::Sweep(a) => runtime.block_on(cmd_sweep(a, out, err)),
        Command::Tune(a) => runtime.block_on(cmd_tune(a, out, err)),
        Command::Serve(a) => {
            let opts = ServeOptions {
                addr: a.addr,
                cost: a.cost,
                api_key: a.api_key,
                hash_mode: a.hash_mode.into(),
            };
            runtime.block_on(cmd_serve(opts, out, err))
        }
    }
}

async fn cmd_run(opts: RunOptions, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
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
    match crate::run(&opts, stop).await {
        Ok(result) => {
            if let Ok(bytes) = Terminal.render(&result.report) {
                let _ = out.write_all(&bytes);
            }
            for f in &result.files {
                let _ = writeln!(out, "report: {}", f.display());
            }
            if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
                if let Err(e) = append(&PathBuf::from(path), &markdown::summary(&result.report)) {
                    let _ = writeln!(err, "warning: GITHUB_STEP_SUMMARY: {e:#}");
                }
            }
            if result.report.partial {
                let _ = writeln!(err, "interrupted: the report is partial");
                exit::INTERRUPTED
            } else if !result.report.gate_passed() {
                let _ = writeln!(err, "gate failed: {}", gate_failures(&result.report));
                exit::GATE
            } else {
                exit::OK
            }
        }
        Err(e) => {
            let code = e.exit_code();
            let _ = writeln!(err, "error: {:#}", anyhow::Error::new(e));
            code
        }
    }
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

/// Commands that fail with an error message and a code.
struct CmdError(u8, anyhow::Error);

fn report_errors(r: Result<u8, CmdError>, err: &mut dyn Write) -> u8 {
    match r {
        Ok(code) => code,
        Err(CmdError(code, e)) => {
            let _ = writeln!(err, "error: {e:#}");
            code
        }
    }
}

fn usage(e: anyhow::Error) -> CmdError {
    CmdError(exit::USAGE, e)
}

fn cmd_compare(a: &CompareArgs, out: &mut dyn Write) -> Result<u8, CmdError> {
    let base = crate::read_report(&a.base).map_err(usage)?;
    let new = crate::read_report(&a.new).map_err(usage)?;
    let c = crate::gate::compare(
        &base,
        &new,
        &a.base.display().to_string(),
        a.tolerance.options(),
    );
    let _ = write!(out, "{}", terminal::comparison_table(&c));
    let mut shown = new.clone();
    shown.comparison = Some(c.clone());
    let fail = |e| CmdError(exit::FAILURE, e);
    if let Some(p) = &a.markdown {
        let mut md = String::new();
        let _ = markdown::write_gate(&mut md, &shown);
        crate::report::write_file(p, md.as_bytes()).map_err(fail)?;
    }
    if let Some(p) = &a.json {
        let bytes = serde_json::to_vec_pretty(&c).map_err(|e| fail(e.into()))?;
        crate::report::write_file(p, &bytes).map_err(fail)?;
    }
    if let Some(p) = &a.junit {
        let bytes = JUnit.render(&shown).map_err(fail)?;
        crate::report::write_file(p, &bytes).map_err(fail)?;
    }
    Ok(if c.regressed() { exit::GATE } else { exit::OK })
}

fn cmd_report(a: &ReportArgs, out: &mut dyn Write) -> Result<u8, CmdError> {
    // A check report renders as its own page; a run (or merge) report in every format.
    if let Some(check) = read_check_report(&a.input) {
        let Some(p) = &a.html else {
            return Err(usage(anyhow::anyhow!(
                "a check report re-renders as HTML only: give --html PATH"
            )));
        };
        crate::report::write_file(p, &crate::check::report::html(&check))
            .map_err(|e| CmdError(exit::FAILURE, e))?;
        let _ = writeln!(out, "report: {}", p.display());
        return Ok(exit::OK);
    }
    if let Some(sw) = read_sweep(&a.input) {
        let Some(p) = &a.html else {
            return Err(usage(anyhow::anyhow!(
                "a sweep report re-renders as HTML only: give --html PATH"
            )));
        };
        let svg = crate::sweep::chart::svg(&sw).map_err(|e| CmdError(exit::FAILURE, e))?;
        crate::report::write_file(p, &crate::sweep::report::html(&sw, &svg))
            .map_err(|e| CmdError(exit::FAILURE, e))?;
        let _ = writeln!(out, "report: {}", p.display());
        return Ok(exit::OK);
    }
    let r = crate::read_report(&a.input).map_err(usage)?;
    let fail = |e| CmdError(exit::FAILURE, e);
    let outputs: [(&Option<PathBuf>, &dyn Exporter); 3] = [
        (&a.html, &crate::report::html::Html),
        (&a.markdown, &markdown::Markdown),
        (&a.junit, &JUnit),
    ];
    let mut wrote = false;
    for (path, exporter) in outputs {
        if let Some(p) = path {
            let bytes = exporter.render(&r).map_err(fail)?;
            crate::report::write_file(p, &bytes).map_err(fail)?;
            if p.as_os_str() != "-" {
                let _ = writeln!(out, "report: {}", p.display());
            }
            wrote = true;
        }
    }
    if !wrote {
        return Err(usage(anyhow::anyhow!(
            "nothing to write: give --html PATH, --markdown PATH or --junit PATH"
        )));
    }
    Ok(exit::OK)
}

/// The file as a sweep report, if its schema says it is one.
fn read_sweep(path: &std::path::Path) -> Option<crate::sweep::Sweep> {
    let bytes = std::fs::read(path).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    if !v.get("schema")?.as_str()?.starts_with("authbench.sweep/") {
        return None;
    }
    serde_json::from_value(v).ok()
}

/// The file as a check report, if its schema says it is one.
fn read_check_report(path: &std::path::Path) -> Option<crate::check::CheckReport> {
    let bytes = std::fs::read(path).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let schema = v.get("schema")?.as_str()?;
    if !schema.starts_with("authbench.check/") {
        return None;
    }
    serde_json::from_value(v).ok()
}

fn cmd_merge(a: &MergeArgs, out: &mut dyn Write) -> Result<u8, CmdError> {
    let reports = a
        .inputs
        .iter()
        .map(|p| crate::read_report(p))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(usage)?;
    let mut merged = crate::report::merge::merge(&reports).map_err(usage)?;
    let steps: Vec<String> = merged.steps.iter().map(|s| s.name.clone()).collect();
    let thresholds = crate::gate::parse_all(&a.thresholds, &steps).map_err(|e| usage(e.into()))?;
    merged.thresholds = thresholds.iter().map(|t| t.evaluate(&merged)).collect();
    let files =
        crate::report::write_stem(&merged, &a.output).map_err(|e| CmdError(exit::FAILURE, e))?;
    if let Ok(bytes) = Terminal.render(&merged) {
        let _ = out.write_all(&bytes);
    }
    for f in files {
        let _ = writeln!(out, "report: {}", f.display());
    }
    Ok(if merged.gate_passed() {
        exit::OK
    } else {
        exit::GATE
    })
}

fn cmd_validate(paths: &[PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let mut code = exit::OK;
    for p in paths {
        match crate::scenario::Scenario::load(p) {
            Ok(s) => {
                let _ = writeln!(
                    out,
                    "ok: {}: scenario '{}', {} step{} ({})",
                    p.display(),
                    s.name,
                    s.steps.len(),
                    if s.steps.len() == 1 { "" } else { "s" },
                    s.step_names().join(" -> ")
                );
            }
            Err(e) => {
                let _ = writeln!(err, "{e}");
                code = exit::USAGE;
            }
        }
    }
    code
}

async fn cmd_serve(opts: ServeOptions, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let key_given = opts.api_key.is_some();
    let key = opts
        .api_key
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    let mut cfg = crate::server::ServerConfig::new(opts.cost, key.clone());
    cfg.hash_mode = opts.hash_mode;
    let handle = match crate::server::spawn(cfg, opts.addr) {
        Ok(h) => h,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return match e {
                crate::server::ServerError::InvalidCost(_) => exit::USAGE,
                _ => exit::FAILURE,
            };
        }
    };
    let _ = writeln!(
        out,
        "authbench reference server listening on {} (bcrypt cost {})",
        handle.base_url(),
        opts.cost
    );
    if !key_given {
        let _ = writeln!(out, "API key (X-API-Key): {key}");
    }
    let _ = out.flush();
    let _ = tokio::signal::ctrl_c().await;
    handle.shutdown();
    exit::OK
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// bcrypt costs: 4..=14, 4..14 (end excluded), 4,6,8 or 12 (each 4-31).
    #[arg(long, default_value = "4..=14", value_parser = crate::sweep::parse_costs)]
    pub costs: ::std::vec::Vec<u32>,
    /// Flows per cost (accepts 10k).
    #[arg(long, short = 'n', default_value = "20", value_parser = parse_count)]
    pub flows: u64,
    /// Flows in flight at once [default: all flows at once].
    #[arg(long, short = 'c', value_parser = parse_count)]
    pub concurrency: Option<u64>,
    /// Per-request timeout.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Scenario file (TOML) [default: the built-in scenarios/pyairtable.toml].
    #[arg(long, short = 's')]
    pub scenario: Option<PathBuf>,
    /// bcrypt operations per flow, for the capacity estimate (register hashes, login verifies).
    #[arg(long, default_value = "2")]
    pub hashes_per_flow: f64,
    /// Directory for <ts>-sweep.{md,json,svg,png}.
    #[arg(long, default_value = "reports")]
    pub out_dir: PathBuf,
    /// Start your service per cost instead of the in-process server: a shell command where {cost} is replaced.
    #[arg(long, value_name = "CMD", requires = "target")]
    pub spawn: Option<String>,
    /// Base URL of the spawned service.
    #[arg(long, short = 't', requires = "spawn")]
    pub target: Option<String>,
    /// Path polled with GET until the spawned service answers 2xx.
    #[arg(long, default_value = "/health", requires = "spawn")]
    pub ready: String,
    /// How long the spawned service may take to become ready.
    #[arg(long, default_value = "30s", value_parser = parse_duration, requires = "spawn")]
    pub ready_timeout: Duration,
    /// API key for the spawned service (sent as the scenario says).
    #[arg(long, env = "AUTHBENCH_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The spawned service's time per hash, in ms, if known (for the capacity estimate).
    #[arg(long, requires = "spawn")]
    pub hash_time_ms: Option<f64>,
}

#[derive(Debug, Args)]
pub struct TuneArgs {
    /// An SLO in the --threshold syntax, e.g. 'flow.p95<1s' (repeatable; all must hold).
    #[arg(long = "slo", value_name = "EXPR", required = true)]
    pub slos: Vec<String>,
    /// Flows per probe.
    #[arg(long, short = 'n', default_value = "20", value_parser = parse_count)]
    pub flows: u64,
    /// Flows in flight at once.
    #[arg(long, short = 'c', default_value = "20", value_parser = parse_count)]
    pub concurrency: u64,
    /// Per-request timeout.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Scenario file (TOML) [default: the built-in scenarios/pyairtable.toml].
    #[arg(long, short = 's')]
    pub scenario: Option<PathBuf>,
    /// Lowest cost to search (raised to 10, OWASP's minimum, without --allow-weak).
    #[arg(long, default_value = "4", value_parser = clap::value_parser!(u32).range(4..=31))]
    pub min_cost: u32,
    /// Highest cost to search.
    #[arg(long, default_value = "14", value_parser = clap::value_parser!(u32).range(4..=31))]
    pub max_cost: u32,
    /// Allow recommending a cost below 10.
    #[arg(long)]
    pub allow_weak: bool,
    /// bcrypt operations per flow, for the capacity arithmetic.
    #[arg(long, default_value = "2")]
    pub hashes_per_flow: f64,
    /// Directory for <ts>-tune.{md,json}.
    #[arg(long, default_value = "reports")]
    pub out_dir: PathBuf,
}

/// First Ctrl-C resolves the future (the command wraps up and writes a partial result);
/// a second one exits at once.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted twice: exiting at once");
            crate::sweep::spawn::kill_live_groups();
            std::process::exit(i32::from(exit::INTERRUPTED));
        }
    });
}

async fn cmd_sweep(a: SweepArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let flows = a.flows;
    let opts = crate::sweep::SweepOptions {
        costs: a.costs,
        flows,
        concurrency: a
            .concurrency
            .unwrap_or(flows)
            .try_into()
            .unwrap_or(usize::MAX),
        timeout: a.timeout,
        scenario: a.scenario.map(ScenarioSource::File).unwrap_or_default(),
        hashes_per_flow: a.hashes_per_flow,
        spawn: match (a.spawn, a.target) {
            (Some(command), Some(target)) => Some(crate::sweep::spawn::SpawnOptions {
                command,
                target,
                ready_path: a.ready,
                ready_timeout: a.ready_timeout,
                api_key: a.api_key,
                hash_time_ms: a.hash_time_ms,
            }),
            _ => None,
        },
        ..crate::sweep::SweepOptions::default()
    };
    let mut progress = |line: &str| {
        let _ = writeln!(err, "{line}");
    };
    let sweep = match crate::sweep::sweep(&opts, interrupted(), &mut progress).await {
        Ok(s) => s,
        Err(e) => {
            let code = e.exit_code();
            let _ = writeln!(err, "error: {:#}", anyhow::Error::new(e));
            return code;
        }
    };
    let _ = write!(out, "{}", crate::sweep::terminal_table(&sweep));
    match crate::sweep::write_sweep(&sweep, &a.out_dir) {
        Ok(w) => {
            for f in &w.files {
                let _ = writeln!(out, "report: {}", f.display());
            }
            if w.png_without_text {
                let _ = writeln!(err, "warning: no system font found, the PNG has no text (scripts/setup.sh installs fonts-dejavu-core)");
            }
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            return exit::FAILURE;
        }
    }
    if sweep.partial {
        let _ = writeln!(err, "interrupted: the sweep is partial");
        exit::INTERRUPTED
    } else {
        exit::OK
    }
}

async fn cmd_tune(a: TuneArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let opts = crate::sweep::tune::TuneOptions {
        slos: a.slos,
        flows: a.flows,
        concurrency: a.concurrency.try_into().unwrap_or(usize::MAX),
        timeout: a.timeout,
        scenario: a.scenario.map(ScenarioSource::File).unwrap_or_default(),
        min_cost: a.min_cost,
        max_cost: a.max_cost,
        allow_weak: a.allow_weak,
        hashes_per_flow: a.hashes_per_flow,
        ..crate::sweep::tune::TuneOptions::default()
    };
    let mut progress = |line: &str| {
        let _ = writeln!(err, "{line}");
    };
    let tune = match crate::sweep::tune::tune(&opts, interrupted(), &mut progress).await {
        Ok(t) => t,
        Err(e) => {
            let code = e.exit_code();
            let _ = writeln!(err, "error: {:#}", anyhow::Error::new(e));
            return code;
        }
    };
    let _ = write!(out, "{}", crate::sweep::tune::terminal(&tune));
    match crate::sweep::tune::write_tune(&tune, &a.out_dir) {
        Ok(files) => {
            for f in files {
                let _ = writeln!(out, "report: {}", f.display());
            }
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            return exit::FAILURE;
        }
    }
    if tune.partial {
        exit::INTERRUPTED
    } else if tune.recommended.is_some() {
        exit::OK
    } else {
        exit::GATE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("20"), Ok(20));
        assert_eq!(parse_count("10k"), Ok(10_000));
        assert_eq!(parse_count("1M"), Ok(1_000_000));
        assert_eq!(parse_count("1_000"), Ok(1000));
        assert!(parse_count("0").is_err());
        assert!(parse_count("-1").is_err());
        assert!(parse_count("k").is_err());
        assert!(parse_count("99999999999999999999k").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        for bad in ["", "s", "0s", "-1s", "1x", "1.2.3s", "inf"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
