//! The `authbench` binary: everything happens in [`authbench::cli::main_with_args`].

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = authbench::cli::main_with_args(
        std::env::args_os(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    ExitCode::from(code)
}
