//! Errors of a run, typed by how the CLI must answer them (each maps to an exit code).

use crate::scenario::ScenarioErrors;

/// Exit codes, stable and documented in the README.
pub mod exit {
    /// The run completed (failed flows are reported, not fatal).
    pub const OK: u8 = 0;
    /// A threshold or a baseline comparison failed.
    pub const GATE: u8 = 1;
    /// Something else went wrong (I/O writing reports, the in-process server failed).
    /// Shares code 1 with [`GATE`]: both mean "do not ship"; stderr says which.
    pub const FAILURE: u8 = 1;
    /// Usage or configuration error: bad flags, a malformed scenario.
    pub const USAGE: u8 = 2;
    /// The target could not be reached at all.
    pub const UNREACHABLE: u8 = 3;
    /// Interrupted (Ctrl-C); a partial report was written.
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An impossible or invalid combination of options.
    #[error("{0}")]
    Config(String),
    /// Each scenario error is its own line, naming the file (and line and column).
    #[error(transparent)]
    Scenario(#[from] ScenarioErrors),
    #[error("cannot reach the target {target}: {cause}")]
    Unreachable { target: String, cause: String },
    /// The in-process reference server did not start; `usage` when the cause is a
    /// setting (an invalid cost) rather than the machine.
    #[error("could not start the in-process reference server: {cause}")]
    Server { cause: String, usage: bool },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// An error as the lines printed after `error: `: its cause chain joined once with `: `
/// (a cause whose text the message already contains is not repeated), and one line per
/// error when the message holds several (a scenario's errors, one per `file:line:col`).
pub fn lines(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut text = e.to_string();
    for cause in std::iter::successors(e.source(), |c| c.source()) {
        let m = cause.to_string();
        if !m.is_empty() && !text.contains(&m) {
            text.push_str(": ");
            text.push_str(&m);
        }
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Config(_) | RunError::Scenario(_) => exit::USAGE,
            RunError::Unreachable { .. } => exit::UNREACHABLE,
            RunError::Server { usage: true, .. } => exit::USAGE,
            RunError::Server { .. } | RunError::Other(_) => exit::FAILURE,
        }
    }
}
