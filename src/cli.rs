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
use crate::options::{RunOptions, ScenarioSource, ServeOptions};
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
    /// Probe a target's (or the reference server's) auth for conformance and security defects.
    Check(crate::check::cli::CheckArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files (TOML).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Number of flows to run (accepts 10k, 1m).
    #[arg(long, short = 'n', default_value = "20", value_parser = parse_count)]
    pub flows: u64,
    /// Flows in flight at once [default: all flows at once].
    #[arg(long, short = 'c', value_parser = parse_count)]
    pub concurrency: Option<u64>,
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
}

impl RunArgs {
    pub fn into_options(self) -> RunOptions {
        RunOptions {
            concurrency: self
                .concurrency
                .map(|c| usize::try_from(c).unwrap_or(usize::MAX))
                .unwrap_or_else(|| usize::try_from(self.flows).unwrap_or(usize::MAX)),
            flows: self.flows,
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
            ..RunOptions::default()
        }
    }
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
        _ => {}
    }
    match cli.command {
        Command::Validate(_) | Command::Compare(_) | Command::Merge(_) => exit::OK,
        Command::Run(a) => runtime.block_on(cmd_run(a.into_options(), out, err)),
        Command::Check(a) => runtime.block_on(crate::check::cli::cmd_check(a, out, err)),
        Command::Serve(a) => {
            let opts = ServeOptions {
                addr: a.addr,
                cost: a.cost,
                api_key: a.api_key,
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
    let cfg = crate::server::ServerConfig::new(opts.cost, key.clone());
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
