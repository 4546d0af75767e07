//! `authbench merge`: adds up the JSON reports of parallel runs exactly (histograms and
//! counts) and checks thresholds on the merged figures.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::shared::{report_errors, usage, CmdError, Ui};
use crate::error::exit;
use crate::render::{terminal::Terminal, Exporter};

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Reports (JSON) of runs of one scenario, e.g. one per generator. A directory stands
    /// for every run report (`*-run.json`) in it and in its subdirectories, so a container
    /// without a shell can merge `/reports`.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Where to write the merged JSON; the Markdown goes beside it (.md).
    #[arg(long, short = 'o', value_name = "ALL.json")]
    pub output: PathBuf,
    /// Thresholds to check on the merged figures (repeatable); a failure exits 1.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
    /// Merge even inputs that are not the parts of one load (different scenario names,
    /// shard totals, a missing or repeated shard, runs that did not overlap in time); the
    /// merged report lists what was accepted.
    #[arg(long)]
    pub force: bool,
}

pub(super) fn exec(a: &MergeArgs, out: &mut dyn Write, err: &mut dyn Write, ui: Ui) -> u8 {
    let code = merge(a, out, err, ui);
    report_errors(code, err, ui)
}

fn merge(a: &MergeArgs, out: &mut dyn Write, err: &mut dyn Write, ui: Ui) -> Result<u8, CmdError> {
    let reports = inputs(&a.inputs)
        .map_err(usage)?
        .iter()
        .map(|p| Ok((p.display().to_string(), crate::report::read(p)?)))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(usage)?;
    let crate::report::merge::Merged {
        report: mut merged,
        warnings,
        start_skew_ms,
    } = crate::report::merge::merge_named(&reports, a.force).map_err(usage)?;
    for w in &warnings {
        ui.warning(err, &format!("merged with --force: {w}"));
    }
    let steps: Vec<String> = merged.steps.iter().map(|s| s.name.clone()).collect();
    let thresholds = crate::gate::parse_all(&a.thresholds, &steps).map_err(|e| usage(e.into()))?;
    merged.thresholds = thresholds.iter().map(|t| t.evaluate(&merged)).collect();
    let files =
        crate::render::write_stem(&merged, &a.output).map_err(|e| CmdError(exit::FAILURE, e))?;
    if let Ok(bytes) = (Terminal {
        color: ui.color_out,
    })
    .render(&merged)
    {
        let _ = out.write_all(&bytes);
    }
    if let Some(skew) = start_skew_ms {
        let _ = writeln!(
            out,
            "start skew: the {} inputs began within {skew:.0} ms of each other",
            reports.len()
        );
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

/// The report files `given` names: files as they are, directories expanded to the run
/// reports (`*-run.json`) in them and their subdirectories, in name order.
fn inputs(given: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    use anyhow::Context;
    fn walk(dir: &std::path::Path, depth: u32, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("could not read the directory '{}'", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() && depth < 4 {
                walk(&p, depth + 1, out)?;
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("-run.json"))
            {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in given {
        if p.is_dir() {
            let before = out.len();
            walk(p, 0, &mut out)?;
            if out.len() == before {
                anyhow::bail!(
                    "no run report (*-run.json) in the directory '{}'",
                    p.display()
                );
            }
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}
