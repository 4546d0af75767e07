//! What several commands share: flag groups (`--max-regression` and friends, `--hash-mode`),
//! the error type of commands that fail with a message and a code, and Ctrl-C handling.

use std::io::Write;
use std::time::Duration;

use clap::Args;

use crate::error::exit;
use crate::units::parse_duration;

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
    pub(super) fn options(&self) -> crate::gate::CompareOptions {
        crate::gate::CompareOptions {
            max_regression: self.max_regression,
            max_success_drop: self.max_success_drop,
            min_latency_delta_ms: self.min_latency_delta.as_secs_f64() * 1000.0,
        }
    }
}

/// Commands that fail with an error message and a code.
pub(super) struct CmdError(pub(super) u8, pub(super) anyhow::Error);

pub(super) fn report_errors(r: Result<u8, CmdError>, err: &mut dyn Write) -> u8 {
    match r {
        Ok(code) => code,
        Err(CmdError(code, e)) => {
            let _ = writeln!(err, "error: {e:#}");
            code
        }
    }
}

pub(super) fn usage(e: anyhow::Error) -> CmdError {
    CmdError(exit::USAGE, e)
}

/// First Ctrl-C resolves the future (the command wraps up and writes a partial result);
/// a second one exits at once.
pub(super) async fn interrupted() {
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
