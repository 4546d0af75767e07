//! The command line: the [`Cli`] enum and the dispatch to one file per command (each holds
//! its clap arguments, their conversion into [`crate::options`] types, and its body; clap's
//! types stop in this module). [`main_with_args`] is the whole program, so tests run it
//! in-process with their own argument lists and output buffers.

mod check;
mod compare;
mod merge;
mod report;
mod run;
mod serve;
mod shared;
mod sweep;
mod tune;
mod validate;

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::error::exit;

pub use check::CheckArgs;
pub use compare::CompareArgs;
pub use merge::MergeArgs;
pub use report::ReportArgs;
pub use run::{
    ArrivalArg, ConnectionsArg, RunArgs, DEFAULT_MAX_IN_FLIGHT, MAX_DEFAULT_CONCURRENCY,
};
pub use serve::ServeArgs;
pub use shared::{HashModeArg, ToleranceArgs};
pub use sweep::SweepArgs;
pub use tune::TuneArgs;
pub use validate::ValidateArgs;

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
    Check(CheckArgs),
    /// Run the flows once per bcrypt cost: hash time, flow latency, throughput, capacity; table, Markdown, JSON, chart.
    Sweep(SweepArgs),
    /// Find the highest bcrypt cost (never below 10 without --allow-weak) that meets an SLO on this machine.
    Tune(TuneArgs),
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
    match cli.command {
        Command::Validate(a) => validate::exec(&a, out, err),
        Command::Compare(a) => compare::exec(&a, out, err),
        Command::Merge(a) => merge::exec(&a, out, err),
        Command::Report(a) => report::exec(&a, out, err),
        Command::Run(a) => runtime.block_on(run::exec(a, out, err)),
        Command::Check(a) => runtime.block_on(check::exec(a, out, err)),
        Command::Sweep(a) => runtime.block_on(sweep::exec(a, out, err)),
        Command::Tune(a) => runtime.block_on(tune::exec(a, out, err)),
        Command::Serve(a) => runtime.block_on(serve::exec(a, out, err)),
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
}
