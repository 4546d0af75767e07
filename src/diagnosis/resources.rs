//! Findings from who used the CPU ([`crate::usage`]): authbench's own threads (a saturated
//! generator is named before anything is said about the server), the machine when the
//! target is on it, and the server's own figures (`--server-pid`, `--scrape`).

use super::Diagnosis;
use crate::report::Report;
use crate::usage::{Usage, MACHINE_BUSY};

/// "authbench itself was out of CPU", when its threads were.
pub(super) fn generator_saturated(run: &Report) -> Option<String> {
    let u = run.usage.as_ref()?;
    let g = u.generator.as_ref().filter(|g| g.saturated())?;
    let machine = u
        .machine
        .as_ref()
        .map(|m| {
            format!(
                "; the machine's {} cores were {:.0}% busy",
                m.cores,
                m.busy_fraction * 100.0
            )
        })
        .unwrap_or_default();
    Some(format!(
        "authbench itself was out of CPU: its busiest load-generating thread wanted a core {:.0}% of the run and was on one {:.0}% ({} generator thread(s) used {:.2} cores in all{machine}). The latencies include waiting for the generator, so nothing is concluded about the server from this run: give authbench more cores or less load per process (several generators can be added up with `authbench merge`).",
        g.busiest_thread_runnable * 100.0,
        g.busiest_thread * 100.0,
        g.threads,
        g.cpu_cores
    ))
}

/// For a loopback target whose machine was busy: "2 cores were 97% busy (...)".
pub(super) fn busy_loopback_machine(run: &Report) -> Option<String> {
    let u = run.usage.as_ref().filter(|u| u.loopback)?;
    let m = u
        .machine
        .as_ref()
        .filter(|m| m.busy_fraction >= MACHINE_BUSY)?;
    Some(format!(
        "{} cores were {:.0}% busy over the run{}",
        m.cores,
        m.busy_fraction * 100.0,
        generator_share(u)
    ))
}

fn generator_share(u: &Usage) -> String {
    u.generator
        .as_ref()
        .map(|g| format!(" (authbench's own threads {:.2} cores)", g.cpu_cores))
        .unwrap_or_default()
}

/// Figures showing the server was not short of CPU, if there are any.
pub(super) fn idle_cpu_evidence(run: &Report) -> Option<String> {
    let u = run.usage.as_ref()?;
    if let Some(p) = &u.server_process {
        let cores = u
            .machine
            .as_ref()
            .map_or_else(crate::usage::cores, |m| m.cores);
        if p.cpu_cores < MACHINE_BUSY * cores as f64 {
            return Some(format!(
                "the server process used only {:.2} of this machine's {cores} cores",
                p.cpu_cores
            ));
        }
        return None;
    }
    if let Some(m) = u.machine.as_ref().filter(|_| u.loopback) {
        if m.busy_fraction < MACHINE_BUSY {
            return Some(format!(
                "this machine, which the target runs on, had its {} cores only {:.0}% busy",
                m.cores,
                m.busy_fraction * 100.0
            ));
        }
        return None;
    }
    let cpu = u.scrape.as_ref()?.cpu_cores?;
    (cpu < 0.85)
        .then(|| format!("the service reports {cpu:.2} cores of CPU (process_cpu_seconds_total)"))
}

/// The server's own CPU (and memory), and what it says while requests queued.
pub(super) fn server_findings(d: &Diagnosis, run: &Report) -> Vec<String> {
    let Some(u) = run.usage.as_ref() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let queued = d.waiting_fraction.is_some_and(|w| w >= 0.5);
    let mut say = |cpu: f64, source: String, cores: Option<usize>| {
        let meaning = if !queued {
            String::new()
        } else if cores.is_some_and(|n| cpu >= MACHINE_BUSY * n as f64) {
            format!(
                ": all {} cores of its machine while requests queued, so it is CPU-bound",
                cores.unwrap_or(0)
            )
        } else if (0.85..=1.15).contains(&cpu) && cores.is_none_or(|n| n >= 2) {
            format!(": {cpu:.2} of one core while requests queued, so its work runs on one thread at a time (single-threaded), whatever else its threads do")
        } else if cpu < 0.5 {
            ": little CPU while requests queued, so it waits on something other than its CPU (a lock, a pool, I/O or a downstream service)".to_string()
        } else {
            String::new()
        };
        out.push(format!(
            "The server process used {cpu:.2} cores on average ({source}){meaning}."
        ));
    };
    if let Some(p) = &u.server_process {
        let cores = u
            .machine
            .as_ref()
            .map_or_else(crate::usage::cores, |m| m.cores);
        say(
            p.cpu_cores,
            format!(
                "--server-pid {}: /proc, peak RSS {:.0} MB, up to {} threads{}",
                p.pid,
                p.peak_rss_mb,
                p.peak_threads,
                if p.exited {
                    "; it exited during the run"
                } else {
                    ""
                }
            ),
            Some(cores),
        );
    }
    if let Some(s) = &u.scrape {
        if let Some(cpu) = s.cpu_cores {
            let mut source = format!("scraped from {}", s.url);
            if let Some(rss) = s.peak_rss_mb {
                source.push_str(&format!(", peak RSS {rss:.0} MB"));
            }
            if let Some(fds) = s.peak_open_fds {
                source.push_str(&format!(", up to {fds:.0} open files"));
            }
            let cores = u
                .loopback
                .then(|| u.machine.as_ref().map(|m| m.cores))
                .flatten();
            say(cpu, source, cores);
        }
    }
    out
}
