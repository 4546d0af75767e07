//! The server's CPU, when authbench knows it (the in-process server's threads,
//! `--server-pid`'s process tree, `--scrape`), set against the machine's: every busy core is
//! authbench's, the server's or another process's. Other processes using a material share
//! while requests queued starve the server, and then no verdict on how it scales is drawn;
//! otherwise the server's CPU concludes: CPU-bound at all the cores left to it,
//! single-threaded at about one, waiting on something else at little.

use super::{Diagnosis, Verdict};
use crate::report::Report;

/// Other processes using at least this share of the cores while requests queued starve
/// the server.
pub(super) const OTHERS_MATERIAL: f64 = 0.25;
/// The server is CPU-bound when it used this share of the cores left to it.
const ALL_CORES: f64 = 0.85;
/// About one core: a single thread of work.
const ONE_CORE: std::ops::RangeInclusive<f64> = 0.8..=1.2;
/// Below this many cores, the server was mostly waiting.
const LITTLE: f64 = 0.5;

/// Requests queued: half the flow time waiting, or no flow got through at all.
fn queued(d: &Diagnosis) -> bool {
    d.waiting_fraction.is_none_or(|w| w >= 0.5)
}

/// The machine's split: (cores, authbench, server, other processes), cores each.
fn split(run: &Report) -> Option<(usize, f64, f64, f64)> {
    let s = run.usage.as_ref()?.split.as_ref()?;
    Some((s.cores, s.authbench_cores, s.server_cores?, s.other_cores?))
}

/// Other processes' cores, when they were a material share while requests queued.
pub(super) fn starved(d: &Diagnosis, run: &Report) -> Option<f64> {
    let (cores, _, _, others) = split(run)?;
    (queued(d) && others >= OTHERS_MATERIAL * cores as f64).then_some(others)
}

/// The finding that names other processes, first among the server's.
pub(super) fn other_processes(d: &Diagnosis, run: &Report) -> Option<String> {
    let others = starved(d, run)?;
    let (cores, authbench, server, _) = split(run)?;
    let busy = run.usage.as_ref()?.split.as_ref()?.machine_busy_cores;
    let source = run
        .usage
        .as_ref()
        .and_then(|u| u.server_cpu())
        .map(|s| s.1)
        .unwrap_or_default();
    Some(format!(
        "Other processes used {others:.2} of this machine's {cores} cores ({:.0}%) while requests queued{}: of {busy:.2} busy cores, the server used {server:.2} ({source}) and authbench {authbench:.2}. The server was short of CPU, so no verdict on how it scales (one at a time, a lock, a pool) is drawn from these figures: rerun on a quiet machine, or give the server its own cores.",
        others / cores as f64 * 100.0,
        d.waiting_fraction
            .map(|w| format!(" (flow time {:.0}% waiting)", w * 100.0))
            .unwrap_or_default()
    ))
}

/// What the server's CPU says while requests queued.
#[derive(Debug, Clone)]
pub(super) enum Conclusion {
    /// It used the cores left to it (the machine's, less authbench's and others').
    CpuBound { cpu: f64, left: f64, cores: usize },
    /// About one core: its work runs on one thread at a time.
    SingleThreaded { cpu: f64 },
    /// Little CPU: it waits on something else.
    Waits { cpu: f64 },
}

/// The conclusion the server's CPU draws, when it is known, requests queued and the
/// machine was not shared with other processes' work.
pub(super) fn conclusion(d: &Diagnosis, run: &Report) -> Option<Conclusion> {
    if !queued(d) || starved(d, run).is_some() {
        return None;
    }
    let u = run.usage.as_ref()?;
    let (cpu, _) = u.server_cpu()?;
    // The cores the server could use: the machine's less what authbench and others used
    // (known when the server runs on this machine).
    let left = split(run)
        .filter(|_| u.loopback)
        .map(|(cores, a, _, o)| (cores, (cores as f64 - a - o).max(1.0)));
    if let Some((cores, left)) = left.filter(|(_, l)| *l >= 1.5) {
        if cpu >= ALL_CORES * left {
            return Some(Conclusion::CpuBound { cpu, left, cores });
        }
    }
    let several = left.is_none_or(|(cores, _)| cores >= 2);
    if ONE_CORE.contains(&cpu) && several {
        return Some(Conclusion::SingleThreaded { cpu });
    }
    (cpu < LITTLE).then_some(Conclusion::Waits { cpu })
}

impl Conclusion {
    pub(super) fn verdict(&self) -> Verdict {
        match self {
            Conclusion::CpuBound { .. } => Verdict::UsesCores,
            Conclusion::SingleThreaded { .. } => Verdict::Serializes,
            Conclusion::Waits { .. } => Verdict::OtherLimit,
        }
    }

    /// The capacity finding, from the CPU (`at`: "at concurrency 20"; `wait`: the flow's
    /// waiting in words; `p`: the effective parallelism).
    pub(super) fn capacity(&self, at: &str, wait: &str, p: f64) -> String {
        match self {
            Conclusion::CpuBound { cpu, left, cores } => format!(
                "The server was CPU-bound: it used {cpu:.2} cores, all of the {left:.2} left to it of this machine's {cores} (effective parallelism {p:.1} {at}); {wait}. Waiting is queueing for CPU, not for a lock or a pool: capacity grows only with cores or instances (or a cheaper hash)."
            ),
            Conclusion::SingleThreaded { cpu } => format!(
                "Requests are processed one at a time: the server used {cpu:.2} cores, about one, while requests queued (effective parallelism {p:.1} {at}); {wait}. Its work runs on one thread at a time (one worker or one event loop doing CPU-bound work such as hashing inline); more workers or hashing off the event loop would raise capacity, a lower bcrypt cost only hides it."
            ),
            Conclusion::Waits { cpu } => format!(
                "The server waits on something other than its CPU: it used only {cpu:.2} cores while requests queued (effective parallelism {p:.1} {at}); {wait}. A limit other than CPU (a lock, a connection pool, a worker count, I/O or a downstream service) is holding it back."
            ),
        }
    }
}
