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

/// mimalloc rather than the system allocator: a new connection allocates and frees its
/// buffers, futures and headers, and glibc's malloc took 4–5% of the generator's CPU with
/// `--connections per-flow` (oha uses jemalloc for the same reason). CPU per new
/// connection, median of 25 interleaved rounds: 1.13x oha's with glibc, 1.09x with this.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
