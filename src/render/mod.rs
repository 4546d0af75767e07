//! The renderers: a report to bytes, in Markdown (the format of docs/report-format.md), JSON, HTML,
//! JUnit XML and a terminal summary, behind one [`Exporter`] trait that does no I/O, plus
//! the writers that put those bytes in `reports/` ([`write_reports`]). Renderers read the
//! results ([`crate::report`]) and the analyses' helpers; nothing below reads them.

pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod terminal;
mod timeline_chart;
pub mod usage_chart;

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::report::Report;

/// Renders a report to bytes. No I/O: the caller decides where the bytes go.
pub trait Exporter {
    /// File extension of this format, without the dot.
    fn extension(&self) -> &'static str;
    fn render(&self, report: &Report) -> anyhow::Result<Vec<u8>>;
}

/// Writes `<dir>/<UTC timestamp>-run.{md,json,html}` and returns the paths.
pub fn write_reports(report: &Report, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("could not create the report directory '{}'", dir.display()))?;
    let stamp = report_stamp(&report.generated_at);
    let exporters: [&dyn Exporter; 3] = [&markdown::Markdown, &json::Json, &html::Html];
    write_with(report, dir, &stamp, &exporters)
}

/// Writes the Markdown and JSON of `report` as `<stem>.md` and `<stem>.json` (for
/// `merge -o ALL.json`: the JSON where asked, the Markdown beside it).
pub fn write_stem(report: &Report, json_path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let md_path = json_path.with_extension("md");
    let html_path = json_path.with_extension("html");
    write_file(json_path, &json::Json.render(report)?)?;
    write_file(&md_path, &markdown::Markdown.render(report)?)?;
    write_file(&html_path, &html::Html.render(report)?)?;
    Ok(vec![json_path.to_path_buf(), md_path, html_path])
}

/// Writes one file per exporter as `<dir>/<stamp>-run.<ext>`, never overwriting.
fn write_with(
    report: &Report,
    dir: &Path,
    stamp: &str,
    exporters: &[&dyn Exporter],
) -> anyhow::Result<Vec<PathBuf>> {
    // Never overwrite an earlier report: two runs in the same second get a suffix.
    let mut base = format!("{stamp}-run");
    let mut n = 1;
    while exporters
        .iter()
        .any(|e| dir.join(format!("{base}.{}", e.extension())).exists())
    {
        n += 1;
        base = format!("{stamp}-run-{n}");
    }
    let mut paths = Vec::new();
    for e in exporters {
        let path = dir.join(format!("{base}.{}", e.extension()));
        write_file(&path, &e.render(report)?)?;
        paths.push(path);
    }
    Ok(paths)
}

/// Writes bytes to a file (`-` is stdout), with the path in any error.
pub fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if path.as_os_str() == "-" {
        use std::io::Write;
        return std::io::stdout()
            .write_all(bytes)
            .context("could not write to stdout");
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("could not create the directory '{}'", parent.display()))?;
    }
    std::fs::write(path, bytes)
        .with_context(|| format!("could not write the file '{}'", path.display()))
}

/// `2026-11-25T12:00:00Z` → `20261125T120000Z` (safe in file names everywhere).
/// `20261125T120000Z` for a time: the stamp of the files a run writes.
pub fn file_stamp(t: &chrono::DateTime<chrono::Utc>) -> String {
    report_stamp(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn report_stamp(rfc3339: &str) -> String {
    rfc3339.chars().filter(|c| *c != '-' && *c != ':').collect()
}
