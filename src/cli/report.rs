//! `authbench report`: re-renders a saved JSON report (a run's, a merge's, a check's or a
//! sweep's) as HTML, Markdown or JUnit; with `--recover`, rebuilds the reports of a run
//! that was killed from the results it streamed.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::shared::{report_errors, usage, CmdError, Ui};
use crate::error::exit;
use crate::render::{junit::JUnit, markdown, Exporter};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A saved JSON report.
    #[arg(required_unless_present = "recover")]
    pub input: Option<PathBuf>,
    /// Rebuild the reports (JSON, Markdown, HTML, written beside the stream) of a run that
    /// stopped without finishing, from its result stream: PATH is the out-dir (its newest
    /// stream) or a `<stamp>-run.stream` directory.
    #[arg(long, value_name = "PATH", conflicts_with = "input")]
    pub recover: Option<PathBuf>,
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

/// `--recover`: the usual reports of a killed run, beside its stream (and in any format
/// also asked for with `--html`, `--markdown`, `--junit`).
fn recover(a: &ReportArgs, path: &std::path::Path, out: &mut dyn Write) -> Result<u8, CmdError> {
    let r = crate::pipeline::recover(path).map_err(|e| usage(anyhow::anyhow!(e)))?;
    let fail = |e| CmdError(exit::FAILURE, e);
    let dir = crate::engine::stream::locate(path).map_err(|e| usage(anyhow::anyhow!(e)))?;
    let out_dir = dir.parent().unwrap_or(std::path::Path::new("."));
    let mut written = crate::render::write_reports(&r, out_dir).map_err(fail)?;
    let extra: [(&Option<PathBuf>, &dyn Exporter); 3] = [
        (&a.html, &crate::render::html::Html),
        (&a.markdown, &markdown::Markdown),
        (&a.junit, &JUnit),
    ];
    for (p, e) in extra {
        if let Some(p) = p {
            crate::render::write_file(p, &e.render(&r).map_err(fail)?).map_err(fail)?;
            written.push(p.clone());
        }
    }
    let _ = writeln!(out, "{}", r.metrics_block());
    for p in written {
        let _ = writeln!(out, "report: {}", p.display());
    }
    Ok(exit::OK)
}

pub(super) fn exec(a: &ReportArgs, out: &mut dyn Write, err: &mut dyn Write, ui: Ui) -> u8 {
    report_errors(render(a, out, ui), err, ui)
}

fn render(a: &ReportArgs, out: &mut dyn Write, _ui: Ui) -> Result<u8, CmdError> {
    if let Some(path) = &a.recover {
        return recover(a, path, out);
    }
    let Some(input) = &a.input else {
        return Err(usage(anyhow::anyhow!(
            "give a saved JSON report, or --recover PATH"
        )));
    };
    // A check report renders as its own page; a run (or merge) report in every format.
    if let Some(check) = read_check_report(input) {
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
    if let Some(sw) = read_sweep(input) {
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
    let r = crate::report::read(input).map_err(usage)?;
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
