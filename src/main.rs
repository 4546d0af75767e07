//! The `authbench` binary: everything happens in [`authbench::cli::main_with_args`].

use std::process::ExitCode;

fn main() -> ExitCode {
    // Unlocked handles: each write locks briefly. Holding the locks for the whole run
    // deadlocked the second-Ctrl-C handler (and any other thread writing to stderr).
    let code = authbench::cli::main_with_args(
        std::env::args_os(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    ExitCode::from(code)
}
