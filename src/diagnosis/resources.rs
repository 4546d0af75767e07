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
                "the server's processes used only {:.2} of this machine's {cores} cores",
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

/// The server's own CPU (and memory) with where the figure comes from (the processes
/// counted, the in-process server's threads, the scraped endpoint). What it means is the
/// capacity finding's to say ([`super::cpu`]): this one only states it, so the two never
/// disagree.
pub(super) fn server_findings(d: &Diagnosis, run: &Report) -> Vec<String> {
    let Some(u) = run.usage.as_ref() else {
        return Vec::new();
    };
    let concluded = super::cpu::conclusion(d, run).is_some();
    let mut out = Vec::new();
    let mut say = |cpu: f64, source: String| {
        let offered = !concluded && d.waiting_fraction.is_some_and(|w| w < 0.5);
        out.push(format!(
            "The server used {cpu:.2} cores on average ({source}){}.",
            if offered {
                ": requests queued little, so this reflects the load offered"
            } else {
                ""
            }
        ));
    };
    if let Some(t) = &u.server_threads {
        say(
            t.cpu_cores,
            format!("the in-process server's {} threads", t.threads),
        );
    }
    if let Some(p) = &u.server_process {
        let listed: Vec<String> = p
            .processes
            .iter()
            .take(8)
            .map(|c| format!("{} `{}` {:.2}", c.pid, c.name, c.cpu_cores))
            .collect();
        let given: Vec<String> = p.pids.iter().map(|x| x.to_string()).collect();
        say(
            p.cpu_cores,
            format!(
                "--server-pid {} and {} descendants: {} process(es) counted ({}{}), /proc, peak RSS {:.0} MB, up to {} threads{}",
                given.join(", --server-pid "),
                if given.len() > 1 { "their" } else { "its" },
                p.processes.len(),
                listed.join(", "),
                if p.processes.len() > listed.len() { ", …" } else { "" },
                p.peak_rss_mb,
                p.peak_threads,
                if p.exited {
                    "; it exited during the run"
                } else {
                    ""
                }
            ),
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
            say(cpu, source);
        }
    }
    out
}
