//! `authbench completions SHELL` and `authbench man`: shell completion scripts
//! (clap_complete) and roff man pages (clap_mangen), both generated from the same clap
//! definition the binary parses with, so they cannot drift from the flags.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::shared::Ui;
use super::Cli;
use crate::error::exit;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `authbench.1` and one `authbench-<command>.1` per command into this directory
    /// instead of printing `authbench.1`.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub(super) fn completions(
    a: &CompletionsArgs,
    out: &mut dyn Write,
    _err: &mut dyn Write,
    _ui: Ui,
) -> u8 {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "authbench", out);
    exit::OK
}

pub(super) fn man(a: &ManArgs, out: &mut dyn Write, err: &mut dyn Write, ui: Ui) -> u8 {
    let cmd = Cli::command();
    let result = match &a.dir {
        None => clap_mangen::Man::new(cmd).render(out),
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(cmd, dir))
            .map(|()| {
                let _ = writeln!(out, "man pages: {}", dir.display());
            }),
    };
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            let what = match &a.dir {
                Some(d) => format!("could not write the man pages to '{}'", d.display()),
                None => "could not write the man page".to_string(),
            };
            ui.error(err, &*anyhow::Error::new(e).context(what));
            exit::FAILURE
        }
    }
}
