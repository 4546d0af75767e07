//! The command line: the [`Cli`] enum, the flags every command shares (`--color`,
//! `--no-progress`), and the dispatch to one file per command (each holds its clap
//! arguments, their conversion into [`crate::options`] types, and its body; clap's types
//! stop in this module). [`main_with_args`] is the whole program, so tests run it
//! in-process with their own argument lists and output buffers.

mod capacity;
mod check;
mod compare;
mod docs;
mod merge;
mod report;
mod run;
mod serve;
mod shared;
mod sweep;
mod tune;
mod validate;

use std::ffi::OsString;
use std::io::Write;

use clap::{Args, Parser, Subcommand};

use crate::color::{self, When};
use crate::error::exit;

pub use capacity::CapacityArgs;
pub use check::CheckArgs;
pub use compare::CompareArgs;
pub use docs::{CompletionsArgs, ManArgs};
pub use merge::MergeArgs;
pub use report::ReportArgs;
pub use run::{
    ArrivalArg, ConnectionsArg, RunArgs, DEFAULT_MAX_IN_FLIGHT, MAX_DEFAULT_CONCURRENCY,
};
pub use serve::ServeArgs;
pub use shared::{
    CommonArgs, HashModeArg, OutputArgs, ScenarioArgs, TargetArgs, TimeoutArgs, ToleranceArgs, Ui,
};
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
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts, before or after its name.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// When to use colour: `auto` (on a terminal, unless NO_COLOR is set), `always`, `never`.
    #[arg(
        long,
        value_enum,
        default_value = "auto",
        global = true,
        value_name = "WHEN"
    )]
    pub color: ColorArg,
    /// No progress bar or progress lines (progress is only ever drawn on a terminal).
    #[arg(long, global = true)]
    pub no_progress: bool,
}

/// `--color` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorArg {
    /// On when the stream is a terminal and NO_COLOR is not set (CLICOLOR_FORCE forces it).
    Auto,
    /// Always, even into a pipe or a file.
    Always,
    /// Never.
    Never,
}

impl From<ColorArg> for When {
    fn from(c: ColorArg) -> Self {
        match c {
            ColorArg::Auto => When::Auto,
            ColorArg::Always => When::Always,
            ColorArg::Never => When::Never,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run flows against a target (or the in-process reference server) and write reports.
    Run(Box<RunArgs>),
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
    /// Find the highest open-loop rate the service sustains within an SLO (per cost with --costs); table, Markdown, JSON, chart.
    Capacity(Box<CapacityArgs>),
    /// Find the highest bcrypt cost (never below 10 without --allow-weak) that meets an SLO on this machine.
    Tune(TuneArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per command into a directory.
    Man(ManArgs),
}

/// Whether this process's stdout and stderr are terminals (the binary asks; tests say no).
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminals {
    pub out: bool,
    pub err: bool,
}

/// The whole program with no terminal attached: see [`main_with_terminals`].
pub fn main_with_args<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    main_with_terminals(args, out, err, Terminals::default())
}

/// The whole program: parses `args`, runs the command, writes to `out`/`err`, and returns
/// the exit code (see [`crate::error::exit`]). `terminals` says which of the two streams
/// are terminals, for the colour and progress decisions.
pub fn main_with_terminals<I, T>(
    args: I,
    out: &mut dyn Write,
    err: &mut dyn Write,
    terminals: Terminals,
) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            // The parse failed, so `--color` is read from the raw arguments for this message.
            let when = color_flag(&args);
            let on = color::decide_from_env(
                when,
                if e.use_stderr() {
                    terminals.err
                } else {
                    terminals.out
                },
            );
            let rendered = e.render();
            let text = if on {
                rendered.ansi().to_string()
            } else {
                rendered.to_string()
            };
            return if e.use_stderr() {
                let _ = err.write_all(text.as_bytes());
                exit::USAGE
            } else {
                let _ = out.write_all(text.as_bytes());
                exit::OK
            };
        }
    };
    let when = When::from(cli.global.color);
    let ui = Ui {
        color_out: color::decide_from_env(when, terminals.out),
        color_err: color::decide_from_env(when, terminals.err),
        progress: !cli.global.no_progress,
    };
    // tokio panics on a bad TOKIO_WORKER_THREADS; say what is wrong instead.
    if let Err(msg) = crate::engine::worker_threads_env() {
        ui.error_msg(err, &msg);
        return exit::USAGE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            ui.error(err, &e);
            return exit::FAILURE;
        }
    };
    match cli.command {
        Command::Validate(a) => validate::exec(&a, out, err, ui),
        Command::Compare(a) => compare::exec(&a, out, err, ui),
        Command::Merge(a) => merge::exec(&a, out, err, ui),
        Command::Report(a) => report::exec(&a, out, err, ui),
        Command::Completions(a) => docs::completions(&a, out, err, ui),
        Command::Man(a) => docs::man(&a, out, err, ui),
        Command::Run(a) => runtime.block_on(run::exec(*a, out, err, ui)),
        Command::Check(a) => runtime.block_on(check::exec(a, out, err, ui)),
        Command::Sweep(a) => runtime.block_on(sweep::exec(a, out, err, ui)),
        Command::Tune(a) => runtime.block_on(tune::exec(a, out, err, ui)),
        Command::Capacity(a) => runtime.block_on(capacity::exec(*a, out, err, ui)),
        Command::Serve(a) => runtime.block_on(serve::exec(a, out, err, ui)),
    }
}

/// The last `--color WHEN` / `--color=WHEN` among raw arguments (auto when absent or bad).
fn color_flag(args: &[OsString]) -> When {
    let mut when = When::Auto;
    let mut iter = args.iter().map(|a| a.to_string_lossy());
    while let Some(a) = iter.next() {
        if a == "--" {
            break;
        }
        let value = if a == "--color" {
            iter.next().map(|v| v.into_owned())
        } else {
            a.strip_prefix("--color=").map(String::from)
        };
        match value.as_deref() {
            Some("always") => when = When::Always,
            Some("never") => when = When::Never,
            Some("auto") => when = When::Auto,
            _ => {}
        }
    }
    when
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
    fn the_color_flag_is_read_from_raw_arguments() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            color_flag(&os(&["authbench", "--color", "always", "run"])),
            When::Always
        );
        assert_eq!(
            color_flag(&os(&["authbench", "run", "--color=never"])),
            When::Never
        );
        assert_eq!(
            color_flag(&os(&["authbench", "run", "--color=bogus"])),
            When::Auto
        );
        assert_eq!(
            color_flag(&os(&["authbench", "--", "--color=never"])),
            When::Auto
        );
    }
}
