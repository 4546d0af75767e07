//! `authbench report`: re-renders a saved JSON report (a run's, a merge's, a check's or a
//! sweep's) as HTML, Markdown or JUnit.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::shared::{report_errors, usage, CmdError, Ui};
use crate::error::exit;
use crate::render::{junit::JUnit, markdown, Exporter};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A saved JSON report.
    pub input: PathBuf,
    /// Write the self-contained HTML report here (`-` for stdout).
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Write the Markdown report here.
    #[arg(long, value_name = "PATH")]
    pub markdown: Option<PathBuf>,
    /// Write JUnit XML here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
}

pub(super) fn exec(a: &ReportArgs, out: &mut dyn Write, err: &mut dyn Write, ui: Ui) -> u8 {
    report_errors(render(a, out, ui), err, ui)
}

fn render(a: &ReportArgs, out: &mut dyn Write, _ui: Ui) -> Result<u8, CmdError> {
    // A check report renders as its own page; a run (or merge) report in every format.
    if let Some(check) = read_check_report(&a.input) {
        let Some(p) = &a.html else {
            return Err(usage(anyhow::anyhow!(
                "a check report re-renders as HTML only: give --html PATH"
            )));
        };
        crate::render::write_file(p, &crate::check::report::html(&check))
            .map_err(|e| CmdError(exit::FAILURE, e))?;
        let _ = writeln!(out, "report: {}", p.display());
        return Ok(exit::OK);
    }
    if let Some(sw) = read_sweep(&a.input) {
        let Some(p) = &a.html else {
            return Err(usage(anyhow::anyhow!(
                "a sweep report re-renders as HTML only: give --html PATH"
            )));
        };
        let svg = crate::sweep::chart::svg(&sw).map_err(|e| CmdError(exit::FAILURE, e))?;
        crate::render::write_file(p, &crate::sweep::report::html(&sw, &svg))
            .map_err(|e| CmdError(exit::FAILURE, e))?;
        let _ = writeln!(out, "report: {}", p.display());
        return Ok(exit::OK);
    }
    let r = crate::report::read(&a.input).map_err(usage)?;
    let fail = |e| CmdError(exit::FAILURE, e);
    let outputs: [(&Option<PathBuf>, &dyn Exporter); 3] = [
        (&a.html, &crate::render::html::Html),
        (&a.markdown, &markdown::Markdown),
        (&a.junit, &JUnit),
    ];
    let mut wrote = false;
    for (path, exporter) in outputs {
        if let Some(p) = path {
            let bytes = exporter.render(&r).map_err(fail)?;
            crate::render::write_file(p, &bytes).map_err(fail)?;
            if p.as_os_str() != "-" {
                let _ = writeln!(out, "report: {}", p.display());
            }
            wrote = true;
        }
    }
    if !wrote {
        return Err(usage(anyhow::anyhow!(
            "nothing to write: give --html PATH, --markdown PATH or --junit PATH"
        )));
    }
    Ok(exit::OK)
}

/// The file as a sweep report, if its schema says it is one.
fn read_sweep(path: &std::path::Path) -> Option<crate::sweep::Sweep> {
    let bytes = std::fs::read(path).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    if !v.get("schema")?.as_str()?.starts_with("authbench.sweep/") {
        return None;
    }
    serde_json::from_value(v).ok()
}

/// The file as a check report, if its schema says it is one.
fn read_check_report(path: &std::path::Path) -> Option<crate::check::CheckReport> {
    let bytes = std::fs::read(path).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let schema = v.get("schema")?.as_str()?;
    if !schema.starts_with("authbench.check/") {
        return None;
    }
    serde_json::from_value(v).ok()
}
