//! `authbench tune`: searches for the highest bcrypt cost that meets an SLO on this
//! machine (in-process, or the user's service started per cost with `--spawn`), never
//! below OWASP's minimum without `--allow-weak`; or, with `--target` alone, the
//! concurrency at which a running service's current cost meets it.

use std::io::Write;

use clap::Args;

use super::shared::{interrupted, CommonArgs, TargetArgs, Ui};
use crate::error::exit;
use crate::sweep::tune::TuneTarget;
use crate::units::parse_count;

#[derive(Debug, Args)]
pub struct TuneArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// An SLO in the --threshold syntax, e.g. 'flow.p95<1s' (repeatable; all must hold).
    #[arg(long = "slo", value_name = "EXPR", required = true)]
    pub slos: Vec<String>,
    /// Flows per probe.
    #[arg(long, short = 'n', default_value = "20", value_parser = parse_count)]
    pub flows: u64,
    /// Flows in flight at once.
    #[arg(long, short = 'c', default_value = "20", value_parser = parse_count)]
    pub concurrency: u64,
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
    /// The service to tune: with --spawn, the URL the spawned service listens on; alone,
    /// a running service whose cost cannot change (probed at rising concurrency).
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub spawn: super::shared::SpawnArgs,
}

pub(super) async fn exec(a: TuneArgs, out: &mut dyn Write, err: &mut dyn Write, ui: Ui) -> u8 {
    let tls = a.target.tls();
    let target = match (a.spawn.spawn, a.target.target) {
        (Some(_), None) => {
            ui.error_msg(
                err,
                "--spawn needs --target URL: the base URL the spawned service listens on",
            );
            return exit::USAGE;
        }
        (Some(command), Some(target)) => TuneTarget::Spawn(crate::sweep::spawn::SpawnOptions {
            command,
            target,
            ready_path: a.spawn.ready,
            ready_timeout: a.spawn.ready_timeout,
            api_key: a.target.api_key,
            hash_time_ms: None,
            tls,
        }),
        (None, Some(target)) => TuneTarget::Running {
            target,
            api_key: a.target.api_key,
            tls,
        },
        (None, None) => TuneTarget::InProcess,
    };
    let opts = crate::sweep::tune::TuneOptions {
        target,
        slos: a.slos,
        flows: a.flows,
        concurrency: a.concurrency.try_into().unwrap_or(usize::MAX),
        timeout: a.common.timeouts.timeout,
        connect_timeout: a.common.timeouts.connect(),
        scenario: a.common.scenario.source(),
        vars: a.common.scenario.vars.vars(),
        min_cost: a.min_cost,
        max_cost: a.max_cost,
        allow_weak: a.allow_weak,
        hashes_per_flow: a.hashes_per_flow,
        http: a.target.http.version(),
        ..crate::sweep::tune::TuneOptions::default()
    };
    let mut progress = |line: &str| {
        if ui.progress {
            let _ = writeln!(err, "{line}");
        }
    };
    let tune = match crate::sweep::tune::tune(&opts, interrupted(), &mut progress).await {
        Ok(t) => t,
        Err(e) => {
            ui.error(err, &e);
            return e.exit_code();
        }
    };
    let _ = write!(out, "{}", crate::sweep::tune::terminal(&tune));
    let written = match a.common.output.dir() {
        Some(dir) => crate::sweep::tune::write_tune(&tune, &dir),
        None => Ok(Vec::new()),
    };
    match written {
        Ok(files) => {
            for f in files {
                let _ = writeln!(out, "report: {}", f.display());
            }
        }
        Err(e) => {
            ui.error(err, e.as_ref());
            return exit::FAILURE;
        }
    }
    if tune.partial {
        ui.verdict(err, "interrupted:", "the search is partial");
        exit::INTERRUPTED
    } else if tune.recommended.is_some() || tune.meets_up_to_concurrency.is_some() {
        exit::OK
    } else {
        exit::GATE
    }
}
