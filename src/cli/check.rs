//! `authbench check` on the command line: its flags, their conversion into
//! [`CheckOptions`], and the command itself (print the table, say where the reports
//! went, return the exit code). The probes themselves live in [`crate::check`].

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::check::CheckOptions;
use crate::options::ScenarioSource;
use crate::units::{parse_count, parse_duration};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Base URL of the service to check; without it the in-process reference server is checked.
    #[arg(long, short = 't')]
    pub target: Option<String>,
    /// API key, sent where the scenario says (`{{api_key}}`).
    #[arg(long, env = "AUTHBENCH_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Scenario whose steps the probes use [default: the built-in scenarios/pyairtable.toml].
    #[arg(long, short = 's')]
    pub scenario: Option<PathBuf>,
    /// The target's HS256 signing secret, to forge an expired token (else that probe is skipped).
    #[arg(long, env = "AUTHBENCH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// bcrypt cost of the in-process server (4-31).
    #[arg(long, default_value = "12", value_parser = clap::value_parser!(u32).range(4..=31), conflicts_with = "target")]
    pub cost: u32,
    /// Per-request timeout.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// TCP connect timeout, also the reachability check.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Login timing samples per group (unknown user, wrong password); at least 10.
    #[arg(long, default_value = "30", value_parser = parse_count)]
    pub timing_samples: u64,
    /// One password hash's duration [default: estimated from the login latencies].
    #[arg(long, value_parser = parse_duration)]
    pub hash_time: Option<Duration>,
    /// Concurrent wrong logins in the brute-force probe.
    #[arg(long, default_value = "50", value_parser = parse_count)]
    pub burst: u64,
    /// Directory for the Markdown and JSON reports.
    #[arg(long, default_value = "reports")]
    pub out_dir: PathBuf,
    /// Write no report files (the table still prints).
    #[arg(long, conflicts_with = "out_dir")]
    pub no_reports: bool,
    /// Also write a JUnit XML file, one test case per probe.
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

impl CheckArgs {
    pub fn into_options(self) -> CheckOptions {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        CheckOptions {
            target: self.target,
            api_key: self.api_key,
            scenario: self.scenario.map(ScenarioSource::File).unwrap_or_default(),
            jwt_secret: self.jwt_secret,
            cost: self.cost,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout.min(self.timeout),
            out_dir: (!self.no_reports).then_some(self.out_dir),
            junit: self.junit,
            timing_samples: size(self.timing_samples),
            hash_time: self.hash_time,
            burst: size(self.burst),
            ..CheckOptions::default()
        }
    }
}

/// Runs the check and prints the table; returns the exit code.
pub(super) async fn exec(args: CheckArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match crate::check::check(&args.into_options()).await {
        Ok(result) => {
            let _ = out.write_all(&crate::check::report::terminal(&result.report));
            for f in &result.files {
                let _ = writeln!(out, "report: {}", f.display());
            }
            let code = result.report.exit_code();
            if code != crate::error::exit::OK {
                let _ = writeln!(
                    err,
                    "check failed: {} high or medium probe(s) failed",
                    result.report.summary.blocking_failures
                );
            }
            code
        }
        Err(e) => {
            let code = e.exit_code();
            let _ = writeln!(err, "error: {:#}", anyhow::Error::new(e));
            code
        }
    }
}
