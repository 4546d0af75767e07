//! `authbench capacity`: the highest open-loop arrival rate a service sustains within an
//! SLO (in-process reference server, a running `--target`, or a service spawned per cost),
//! written as a table, Markdown, JSON, HTML and a chart; `--threshold capacity>=N/s`
//! gates it.

use std::io::Write;
use std::time::Duration;

use clap::Args;

use super::shared::{interrupted, CommonArgs, TargetArgs, Ui};
use crate::error::exit;
use crate::units::{parse_count, parse_duration, parse_rate};

#[derive(Debug, Args)]
pub struct CapacityArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The SLO every step must meet: threshold expressions separated by commas, e.g.
    /// 'flow.p99<500ms,success>=99.9%' (flow latency is from the intended start;
    /// repeatable, all must hold).
    #[arg(long, value_name = "EXPRS", value_parser = crate::capacity::parse_slo)]
    pub slo: Vec<Vec<crate::criteria::Threshold>>,
    /// The first rate offered (flows/s); rates double from it until one breaks the SLO.
    #[arg(long, default_value = "1", value_parser = parse_rate, value_name = "RATE")]
    pub start_rate: f64,
    /// Never offer more than this (flows/s).
    #[arg(long, default_value = "10000", value_parser = parse_rate, value_name = "RATE")]
    pub max_rate: f64,
    /// Stop when the first failing rate is within this of the sustained one (5%, 0.05).
    #[arg(long, default_value = "5%", value_parser = parse_precision, value_name = "FRACTION")]
    pub precision: f64,
    /// Each step's hold after its warm-up (at least; longer when --step-flows needs it).
    #[arg(long = "step", default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub step: Duration,
    /// Each step holds long enough to start at least this many measured flows.
    #[arg(long, default_value = "30", value_parser = parse_count, value_name = "N")]
    pub step_flows: u64,
    /// Each step's warm-up (flows started then are not measured).
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub warmup: Duration,
    /// The whole search's budget: no step starts that could end past it.
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub max_duration: Duration,
    /// Arrivals beyond this many flows in flight wait (and count from their intended start).
    #[arg(long, default_value = "1000", value_parser = parse_count, value_name = "N")]
    pub max_in_flight: u64,
    /// Flows run alone before each step, for the diagnosis column (0: none).
    #[arg(long, default_value = "3", value_name = "N")]
    pub calibration_flows: u64,
    /// bcrypt cost of the in-process server.
    #[arg(long, default_value = "12", value_parser = clap::value_parser!(u32).range(4..=31), conflicts_with = "costs")]
    pub cost: u32,
    /// Search once per bcrypt cost: 10..=13, 10,12 (in-process server, or --spawn per cost).
    #[arg(long, value_parser = crate::sweep::parse_costs)]
    pub costs: Option<::std::vec::Vec<u32>>,
    /// A gate on the sustainable rate, e.g. 'capacity>=20/s' (repeatable); exit 1 when one fails.
    #[arg(long = "threshold", value_name = "EXPR", value_parser = crate::capacity::parse_capacity_threshold)]
    pub thresholds: Vec<crate::capacity::CapacityThreshold>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub spawn: super::shared::SpawnArgs,
}

/// `5%` or `0.05`, strictly between 0 and 1.
pub fn parse_precision(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("'{s}' is not a fraction: use e.g. 5% or 0.05"))?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(format!("'{s}' must be between 0 and 100%"))
    }
}

pub(super) async fn exec(a: CapacityArgs, out: &mut dyn Write, err: &mut dyn Write, ui: Ui) -> u8 {
    if a.slo.is_empty() {
        ui.error_msg(
            err,
            "--slo is required: e.g. --slo 'flow.p99<500ms,success>=99.9%'",
        );
        return exit::USAGE;
    }
    if a.spawn.spawn.is_some() && a.target.target.is_none() {
        ui.error_msg(
            err,
            "--spawn needs --target URL: the base URL the spawned service listens on",
        );
        return exit::USAGE;
    }
    let slo: Vec<crate::criteria::Threshold> = a.slo.into_iter().flatten().collect();
    let slo_text = slo
        .iter()
        .map(|t| t.expr.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let tls = a.target.tls();
    let opts = crate::capacity::CapacityOptions {
        slo,
        slo_text,
        spawn: match (a.spawn.spawn, &a.target.target) {
            (Some(command), Some(target)) => Some(crate::sweep::spawn::SpawnOptions {
                command,
                target: target.clone(),
                ready_path: a.spawn.ready,
                ready_timeout: a.spawn.ready_timeout,
                api_key: a.target.api_key.clone(),
                hash_time_ms: None,
                tls: tls.clone(),
            }),
            _ => None,
        },
        target: a.target.target,
        api_key: a.target.api_key,
        tls,
        http: a.target.http.version(),
        scenario: a.common.scenario.source(),
        vars: a.common.scenario.vars.vars(),
        timeout: a.common.timeouts.timeout,
        connect_timeout: a.common.timeouts.connect(),
        start_rate: a.start_rate,
        max_rate: a.max_rate,
        precision: a.precision,
        warmup: a.warmup,
        hold: a.step,
        hold_flows: a.step_flows,
        max_duration: a.max_duration,
        max_in_flight: usize::try_from(a.max_in_flight).unwrap_or(usize::MAX),
        calibration_flows: a.calibration_flows,
        costs: a.costs.unwrap_or_default(),
        cost: a.cost,
        thresholds: a.thresholds,
    };
    let mut progress = |line: &str| {
        if ui.progress {
            let _ = writeln!(err, "{line}");
        }
    };
    let c = match crate::capacity::capacity(&opts, interrupted(), &mut progress).await {
        Ok(c) => c,
        Err(e) => {
            ui.error(err, &e);
            return e.exit_code();
        }
    };
    let _ = write!(out, "{}", crate::capacity::terminal_table(&c));
    if let Some(dir) = a.common.output.dir() {
        match crate::capacity::write_capacity(&c, &dir) {
            Ok(w) => super::shared::written(&w, out, err, ui),
            Err(e) => {
                ui.error(err, e.as_ref());
                return exit::FAILURE;
            }
        }
    }
    if c.partial {
        ui.verdict(err, "interrupted:", "the search is partial");
        exit::INTERRUPTED
    } else if !c.gate_passed() {
        ui.verdict(
            err,
            "FAILED:",
            "the sustainable rate is below a --threshold",
        );
        exit::GATE
    } else {
        exit::OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_takes_percent_or_fraction() {
        assert_eq!(parse_precision("5%"), Ok(0.05));
        assert_eq!(parse_precision("0.1"), Ok(0.1));
        assert!(parse_precision("0").is_err());
        assert!(parse_precision("150%").is_err());
        assert!(parse_precision("five").is_err());
    }
}
