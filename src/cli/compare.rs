//! `authbench compare`: two saved reports side by side, per step and flow, with the gate's
//! verdict as the exit code.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::shared::{report_errors, usage, CmdError, ToleranceArgs, Ui};
use crate::error::exit;
use crate::render::{junit::JUnit, markdown, terminal, Exporter};

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline report (JSON).
    pub base: PathBuf,
    /// The new report (JSON).
    pub new: PathBuf,
    #[command(flatten)]
    pub tolerance: ToleranceArgs,
    /// Also write the comparison as Markdown here.
    #[arg(long, value_name = "PATH")]
    pub markdown: Option<PathBuf>,
    /// Also write the comparison as JSON here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Also write JUnit XML here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
}

pub(super) fn exec(a: &CompareArgs, out: &mut dyn Write, err: &mut dyn Write, ui: Ui) -> u8 {
    report_errors(compare(a, out, ui), err, ui)
}

fn compare(a: &CompareArgs, out: &mut dyn Write, ui: Ui) -> Result<u8, CmdError> {
    let base = crate::report::read(&a.base).map_err(usage)?;
    let new = crate::report::read(&a.new).map_err(usage)?;
    let c = crate::gate::compare(
        &base,
        &new,
        &a.base.display().to_string(),
        a.tolerance.options(),
    );
    let _ = write!(out, "{}", terminal::comparison_table(&c, ui.color_out));
    let mut shown = new.clone();
    shown.comparison = Some(c.clone());
    let fail = |e| CmdError(exit::FAILURE, e);
    if let Some(p) = &a.markdown {
        let mut md = String::new();
        let _ = markdown::write_gate(&mut md, &shown);
        crate::render::write_file(p, md.as_bytes()).map_err(fail)?;
    }
    if let Some(p) = &a.json {
        let bytes = serde_json::to_vec_pretty(&c).map_err(|e| fail(e.into()))?;
        crate::render::write_file(p, &bytes).map_err(fail)?;
    }
    if let Some(p) = &a.junit {
        let bytes = JUnit.render(&shown).map_err(fail)?;
        crate::render::write_file(p, &bytes).map_err(fail)?;
    }
    Ok(if c.regressed() { exit::GATE } else { exit::OK })
}
