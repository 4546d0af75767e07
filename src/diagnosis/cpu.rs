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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ReportInput;
    use crate::usage::{CpuSplit, ThreadsUsage, Usage};

    /// A run on a 2-core loopback machine whose flows waited `waiting`, with this split.
    fn run(authbench: f64, server: f64, others: f64) -> Report {
        let config = serde_json::from_value(serde_json::json!({
            "target": "http://127.0.0.1:1", "in_process_server": true, "scenario": "s",
            "scenario_source": "builtin", "flows_planned": 20, "concurrency": 20,
            "load_model": "closed", "load": "", "connections": "shared", "timeout_ms": 1000,
            "connect_timeout_ms": 1000, "cores": 2
        }))
        .unwrap();
        let mut r = Report::build(ReportInput {
            stats: &crate::stats::Stats::new(&[]),
            config,
            wall: std::time::Duration::from_secs(5),
            partial: false,
            abandoned: 0,
            generated_at: chrono::Utc::now(),
        });
        r.usage = Some(Usage {
            wall_s: 5.0,
            loopback: true,
            server_threads: Some(ThreadsUsage {
                threads: 4,
                cpu_cores: server,
            }),
            split: Some(CpuSplit {
                cores: 2,
                machine_busy_cores: authbench + server + others,
                authbench_cores: authbench,
                server_cores: Some(server),
                other_cores: Some(others),
            }),
            ..Usage::default()
        });
        r
    }

    fn queued(waiting: f64) -> Diagnosis {
        serde_json::from_value(serde_json::json!({
            "calibration_flows": 5, "steps": [], "flow_service_time_ms": 100.0,
            "flow_mean_ms": 100.0 / (1.0 - waiting), "waiting_fraction": waiting,
            "effective_parallelism": 1.0, "concurrency": 20, "server_cores": 2, "timeouts": 0,
            "findings": []
        }))
        .unwrap()
    }

    #[test]
    fn the_servers_cpu_concludes() {
        let d = queued(0.9);
        let v = |a, s, o| conclusion(&d, &run(a, s, o)).map(|c| c.verdict());
        // All the cores left to it (2 less authbench's 0.05 and others' 0.05).
        assert_eq!(v(0.05, 1.8, 0.05), Some(Verdict::UsesCores));
        assert_eq!(v(0.05, 0.97, 0.05), Some(Verdict::Serializes));
        assert_eq!(v(0.05, 0.2, 0.05), Some(Verdict::OtherLimit));
        // 1.4 cores of 1.9: neither; the parallelism decides.
        assert_eq!(v(0.05, 1.4, 0.05), None);
        // Little queueing: nothing is concluded from the CPU.
        assert!(conclusion(&queued(0.3), &run(0.05, 1.8, 0.05)).is_none());
    }

    #[test]
    fn a_figure_inside_its_own_noise_is_inconclusive() {
        // No CPU figures: the parallelism decides, with its band from the calibration.
        let mut r = run(0.0, 0.0, 0.0);
        r.usage = None;
        let mut d = queued(0.9);
        d.steps = vec![serde_json::from_value(serde_json::json!({
            "name": "login", "service_time_ms": 100.0, "loaded_p50_ms": 1000.0,
            "waiting_fraction": 0.9
        }))
        .unwrap()];
        let band = |d: &mut Diagnosis, lo: f64, p: f64, hi: f64| {
            (
                d.effective_parallelism_low,
                d.effective_parallelism,
                d.effective_parallelism_high,
            ) = (lo, p, hi);
            super::super::classify(d, &r)
        };
        // 0.45–0.55 straddles the 0.5 between idle and one at a time.
        assert_eq!(
            band(&mut d, 0.42, 0.48, 0.55),
            (
                Verdict::Inconclusive,
                Some([Verdict::Idle, Verdict::Serializes])
            )
        );
        assert_eq!(band(&mut d, 0.9, 1.0, 1.1), (Verdict::Serializes, None));
        // 1.3–1.5 straddles the 1.4 between one at a time and another limit.
        assert_eq!(
            band(&mut d, 1.3, 1.4, 1.5),
            (
                Verdict::Inconclusive,
                Some([Verdict::Serializes, Verdict::UsesCores])
            )
        );
    }

    #[test]
    fn other_processes_starve_the_server_and_no_verdict_is_drawn() {
        let d = queued(0.9);
        let r = run(0.02, 0.98, 0.95);
        assert_eq!(starved(&d, &r), Some(0.95));
        assert!(conclusion(&d, &r).is_none());
        let f = other_processes(&d, &r).unwrap();
        assert!(
            f.starts_with("Other processes used 0.95 of this machine's 2 cores (48%)"),
            "{f}"
        );
        assert!(f.contains("the server used 0.98"), "{f}");
        // A quarter of a core on two is not material.
        assert!(starved(&d, &run(0.02, 0.98, 0.4)).is_none());
    }
}
