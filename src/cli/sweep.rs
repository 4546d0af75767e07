//! `authbench sweep`: the flows once per bcrypt cost (in-process, or a service spawned per
//! cost), written as a table, Markdown, JSON and a chart.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::shared::interrupted;
use crate::error::exit;
use crate::options::ScenarioSource;
use crate::units::{parse_count, parse_duration};

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

pub(super) async fn exec(a: SweepArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
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
