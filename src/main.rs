//! The `authbench` binary: everything happens in [`authbench::cli::main_with_terminals`];
//! this only tells it which of its streams are terminals (for colour and progress).

use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let terminals = authbench::cli::Terminals {
        out: std::io::stdout().is_terminal(),
        err: std::io::stderr().is_terminal(),
    };
    // Unlocked handles: each write locks briefly. Holding the locks for the whole run
    // deadlocked the second-Ctrl-C handler (and any other thread writing to stderr).
    let code = authbench::cli::main_with_terminals(
        std::env::args_os(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
        terminals,
    );
    ExitCode::from(code)
}
