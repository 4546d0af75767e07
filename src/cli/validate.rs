//! `authbench validate`: loads scenario files without running them; every error names its
//! file, line and column.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::shared::Ui;
use crate::error::exit;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files (TOML).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub vars: super::shared::VarArgs,
}

pub(super) fn exec(a: &ValidateArgs, out: &mut dyn Write, err: &mut dyn Write, ui: Ui) -> u8 {
    let paths = &a.paths;
    let mut code = exit::OK;
    let vars = a.vars.vars();
    for p in paths {
        if std::fs::read_to_string(p).is_ok_and(|t| crate::scenario::mix::is_mix(&t)) {
            code = code.max(validate_mix(p, &vars, out, err, ui));
            continue;
        }
        match crate::scenario::Scenario::load_with_vars(p, &vars) {
            Ok(s) => {
                let _ = writeln!(
                    out,
                    "ok: {}: scenario '{}', {} step{} ({})",
                    p.display(),
                    s.name,
                    s.steps.len(),
                    if s.steps.len() == 1 { "" } else { "s" },
                    s.step_names().join(" -> ")
                );
            }
            Err(e) => {
                ui.error(err, &e);
                code = exit::USAGE;
            }
        }
    }
    code
}

/// A mix: its file and every scenario it names.
fn validate_mix(
    p: &std::path::Path,
    vars: &[(String, String)],
    out: &mut dyn Write,
    err: &mut dyn Write,
    ui: Ui,
) -> u8 {
    match crate::scenario::mix::load_with_vars(p, vars) {
        Ok(m) => {
            let parts: Vec<String> = m
                .parts
                .iter()
                .map(|part| format!("{} {}", part.scenario.name, part.weight))
                .collect();
            let _ = writeln!(
                out,
                "ok: {}: mix '{}' of {} scenario{} ({})",
                p.display(),
                m.name,
                m.parts.len(),
                if m.parts.len() == 1 { "" } else { "s" },
                parts.join(", ")
            );
            exit::OK
        }
        Err(e) => {
            ui.error(err, &e);
            exit::USAGE
        }
    }
}
