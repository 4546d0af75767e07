//! `authbench sweep`: the flows once per bcrypt cost (in-process, or a service spawned per
//! cost), written as a table, Markdown, JSON and a chart.

use std::io::Write;

use clap::Args;

use super::shared::{interrupted, CommonArgs, TargetArgs, Ui};
use crate::error::exit;
use crate::units::parse_count;

#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// bcrypt costs: 4..=14, 4..14 (end excluded), 4,6,8 or 12 (each 4-31).
    #[arg(long, default_value = "4..=14", value_parser = crate::sweep::parse_costs)]
    pub costs: ::std::vec::Vec<u32>,
    /// Sweep one parameter of another algorithm on the in-process server instead of the
    /// bcrypt cost, its others at OWASP's minimum: argon2.m=8192..=65536 (a range doubles),
    /// argon2.t=1..=8, scrypt.n=16384..=131072, pbkdf2.iterations=100k,600k,1m.
    #[arg(long, value_name = "ALG.PARAM=VALUES", value_parser = crate::sweep::parse_param, conflicts_with = "spawn")]
    pub param: Option<crate::sweep::ParamSweep>,
    /// Flows per cost (accepts 10k).
    #[arg(long, short = 'n', default_value = "20", value_parser = parse_count)]
    pub flows: u64,
    /// Flows in flight at once [default: all flows at once].
    #[arg(long, short = 'c', value_parser = parse_count)]
    pub concurrency: Option<u64>,
    /// bcrypt operations per flow, for the capacity estimate [default: 2, register hashes and
    /// login verifies]. Given, it also divides a spawned service's fitted hashing per flow
    /// into the per-hash figure (otherwise: over the hashing steps the fit finds).
    #[arg(long, value_name = "N")]
    pub hashes_per_flow: Option<f64>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub spawn: super::shared::SpawnArgs,
    /// The spawned service's time per hash, in ms, if known (for the capacity estimate).
    #[arg(long, requires = "spawn")]
    pub hash_time_ms: Option<f64>,
}

pub(super) async fn exec(a: SweepArgs, out: &mut dyn Write, err: &mut dyn Write, ui: Ui) -> u8 {
    // `--target` is shared with `run` and `check`, so its pairing with `--spawn` is
    // checked here rather than by clap.
    match (&a.spawn.spawn, &a.target.target) {
        (Some(_), None) => {
            ui.error_msg(
                err,
                "--spawn needs --target URL: the base URL the spawned service listens on",
            );
            return exit::USAGE;
        }
        (None, Some(_)) => {
            ui.error_msg(err, "--target in a sweep names the service --spawn CMD starts per cost: give --spawn too (a running service's cost cannot change)");
            return exit::USAGE;
        }
        _ => {}
    }
    let flows = a.flows;
    let tls = a.target.tls();
    let opts = crate::sweep::SweepOptions {
        costs: a.costs,
        flows,
        concurrency: a
            .concurrency
            .unwrap_or(flows)
            .try_into()
            .unwrap_or(usize::MAX),
        timeout: a.common.timeouts.timeout,
        connect_timeout: a.common.timeouts.connect(),
        scenario: a.common.scenario.source(),
        vars: a.common.scenario.vars.vars(),
        hashes_per_flow: a.hashes_per_flow.unwrap_or(2.0),
        hashes_per_flow_given: a.hashes_per_flow.is_some(),
        spawn: match (a.spawn.spawn, a.target.target) {
            (Some(command), Some(target)) => Some(crate::sweep::spawn::SpawnOptions {
                command,
                target,
                ready_path: a.spawn.ready,
                ready_timeout: a.spawn.ready_timeout,
                api_key: a.target.api_key,
                hash_time_ms: a.hash_time_ms,
                tls,
            }),
            _ => None,
        },
        param: a.param,
        http: a.target.http.version(),
        ..crate::sweep::SweepOptions::default()
    };
    let mut progress = |line: &str| {
        if ui.progress {
            let _ = writeln!(err, "{line}");
        }
    };
    let sweep = match crate::sweep::sweep(&opts, interrupted(), &mut progress).await {
        Ok(s) => s,
        Err(e) => {
            ui.error(err, &e);
            return e.exit_code();
        }
    };
    let _ = write!(out, "{}", crate::sweep::terminal_table(&sweep));
    let written = match a.common.output.dir() {
        Some(dir) => crate::sweep::write_sweep(&sweep, &dir).map(Some),
        None => Ok(None),
    };
    match written {
        Ok(None) => {}
        Ok(Some(w)) => super::shared::written(&w, out, err, ui),
        Err(e) => {
            ui.error(err, e.as_ref());
            return exit::FAILURE;
        }
    }
    if sweep.partial {
        ui.verdict(err, "interrupted:", "the sweep is partial");
        exit::INTERRUPTED
    } else if let Some(why) = sweep.nothing_succeeded() {
        ui.verdict(err, "sweep failed:", &why);
        exit::FAILURE
    } else {
        exit::OK
    }
}
