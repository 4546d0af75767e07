//! The sampler's looks turned into figures: cumulative counters (CPU seconds, clock
//! ticks) interpolated between looks, so an average over the whole run or over any
//! timeline bucket is a difference of two values.

use std::collections::HashMap;
use std::hash::Hash;

use super::scrape::ScrapeSample;
use super::{
    CountedProcess, CpuSplit, GeneratorUsage, Look, MachineUsage, ProcessUsage, ScrapeUsage,
    Targets, ThreadsUsage, Usage, UsagePoint,
};

/// Cumulative counters over time, for averages over any span.
pub(super) struct Series {
    /// (t, generator CPU s, machine busy ticks, machine total ticks, server CPU s)
    gen: Vec<(f64, f64)>,
    machine: Vec<(f64, f64, f64)>,
    cores: usize,
    /// The server's CPU seconds since the first look (its processes or its threads).
    server: Vec<(f64, f64)>,
    /// The server's processes' resident memory, MB.
    server_rss: Vec<(f64, f64)>,
    scrape: Vec<(f64, ScrapeSample)>,
    pub(super) usage: Usage,
}

/// The value of a cumulative counter at `t`, linear between looks.
fn at(points: &[(f64, f64)], t: f64) -> Option<f64> {
    let first = points.first()?;
    if t <= first.0 {
        return Some(first.1);
    }
    for w in points.windows(2) {
        let ((t0, v0), (t1, v1)) = (w[0], w[1]);
        if t <= t1 {
            let f = if t1 > t0 { (t - t0) / (t1 - t0) } else { 1.0 };
            return Some(v0 + f * (v1 - v0));
        }
    }
    points.last().map(|p| p.1)
}

/// The rate of a cumulative counter over `[a, b)`.
fn rate(points: &[(f64, f64)], a: f64, b: f64) -> Option<f64> {
    if points.len() < 2 || b <= a {
        return None;
    }
    Some(((at(points, b)? - at(points, a)?) / (b - a)).max(0.0))
}

impl Series {
    pub(super) fn new(
        looks: &[Look],
        tids: &[i32],
        server_tids: &[i32],
        targets: &Targets,
    ) -> Series {
        let base = looks.first();
        // A thread not seen at the first look was born during the run: all its CPU is in it.
        let gen: Vec<(f64, f64)> = looks
            .iter()
            .map(|l| {
                let cpu = tids
                    .iter()
                    .filter_map(|t| {
                        let now = l.threads.get(t)?.cpu_s;
                        let b = base.and_then(|b| b.threads.get(t)).map_or(0.0, |b| b.cpu_s);
                        Some(now - b)
                    })
                    .sum();
                (l.t, cpu)
            })
            .collect();
        let machine: Vec<(f64, f64, f64)> = looks
            .iter()
            .filter_map(|l| l.machine.map(|(b, t, _)| (l.t, b as f64, t as f64)))
            .collect();
        let cores = looks
            .iter()
            .find_map(|l| l.machine.map(|m| m.2))
            .unwrap_or_else(crate::usage::cores);
        let scrape: Vec<(f64, ScrapeSample)> = looks
            .iter()
            .filter_map(|l| Some((l.t, l.scrape.clone()?.ok()?)))
            .collect();
        let wall = match (looks.first(), looks.last()) {
            (Some(a), Some(b)) => b.t - a.t,
            _ => 0.0,
        };
        let span = |pts: &[(f64, f64)]| rate(pts, looks.first()?.t, looks.last()?.t);
        let mut s = Series {
            gen,
            machine,
            cores,
            server: Vec::new(),
            server_rss: Vec::new(),
            scrape,
            usage: Usage {
                wall_s: wall,
                loopback: targets.loopback,
                ..Usage::default()
            },
        };
        if wall > 0.0 && !tids.is_empty() && looks.len() >= 2 {
            let (first, last) = (&looks[0], &looks[looks.len() - 1]);
            // The busiest thread by CPU, and how long that thread was runnable.
            let (busiest, runnable) = tids
                .iter()
                .filter_map(|t| {
                    let b = first.threads.get(t).copied().unwrap_or_default();
                    let n = last.threads.get(t)?;
                    Some((
                        (n.cpu_s - b.cpu_s) / wall,
                        (n.runnable_s - b.runnable_s) / wall,
                    ))
                })
                .fold((0.0, 0.0), |a, x| if x.0 > a.0 { x } else { a });
            s.usage.generator = Some(GeneratorUsage {
                threads: tids.len(),
                cpu_cores: span(&s.gen).unwrap_or(0.0),
                busiest_thread: busiest,
                busiest_thread_runnable: runnable,
                cores,
            });
        }
        if let (Some(a), Some(b)) = (s.machine.first(), s.machine.last()) {
            if b.2 > a.2 {
                let f = (b.1 - a.1) / (b.2 - a.2);
                s.usage.machine = Some(MachineUsage {
                    cores,
                    busy_cores: f * cores as f64,
                    busy_fraction: f,
                });
            }
        }
        if !targets.server_pids.is_empty() {
            let per: Vec<(f64, Vec<(u32, f64)>)> = looks
                .iter()
                .map(|l| {
                    (
                        l.t,
                        l.server.iter().map(|m| (m.pid, m.sample.cpu_s)).collect(),
                    )
                })
                .collect();
            let (cpu, totals) = cumulative(&per);
            s.server = cpu;
            s.server_rss = looks
                .iter()
                .map(|l| {
                    let rss: u64 = l.server.iter().map(|m| m.sample.rss_bytes).sum();
                    (l.t, rss as f64 / 1e6)
                })
                .collect();
            let names: HashMap<u32, &str> = looks
                .iter()
                .flat_map(|l| l.server.iter().map(|m| (m.pid, m.name.as_str())))
                .collect();
            let seen_any = looks.iter().any(|l| !l.server.is_empty());
            if let (Some(c), true) = (span_of(&s.server), seen_any && wall > 0.0) {
                let mut processes: Vec<CountedProcess> = totals
                    .iter()
                    .map(|(pid, cpu_s)| CountedProcess {
                        pid: *pid,
                        name: names.get(pid).copied().unwrap_or("").to_string(),
                        cpu_cores: cpu_s / wall,
                    })
                    .collect();
                processes
                    .sort_by(|a, b| b.cpu_cores.total_cmp(&a.cpu_cores).then(a.pid.cmp(&b.pid)));
                let last = looks.last().map(|l| &l.server[..]).unwrap_or(&[]);
                s.usage.server_process = Some(ProcessUsage {
                    pid: targets.server_pids[0],
                    pids: targets.server_pids.clone(),
                    cpu_cores: c,
                    peak_rss_mb: s.server_rss.iter().map(|p| p.1).fold(0.0, f64::max),
                    peak_threads: looks
                        .iter()
                        .map(|l| l.server.iter().map(|m| m.sample.threads).sum::<u64>())
                        .max()
                        .unwrap_or(0),
                    exited: !targets
                        .server_pids
                        .iter()
                        .any(|p| last.iter().any(|m| m.pid == *p)),
                    processes,
                });
            }
        }
        if !server_tids.is_empty() {
            let per: Vec<(f64, Vec<(i32, f64)>)> = looks
                .iter()
                .map(|l| {
                    let v = server_tids
                        .iter()
                        .filter_map(|t| Some((*t, l.threads.get(t)?.cpu_s)))
                        .collect();
                    (l.t, v)
                })
                .collect();
            let (cpu, _) = cumulative(&per);
            s.server = cpu;
            if let (Some(c), true) = (span_of(&s.server), wall > 0.0) {
                s.usage.server_threads = Some(ThreadsUsage {
                    threads: server_tids.len(),
                    cpu_cores: c,
                });
            }
        }
        if let Some(m) = &s.usage.machine {
            let authbench = s.usage.generator.as_ref().map_or(0.0, |g| g.cpu_cores);
            let server = s
                .usage
                .server_threads
                .as_ref()
                .map(|t| t.cpu_cores)
                .or_else(|| s.usage.server_process.as_ref().map(|p| p.cpu_cores));
            // Off this machine the server's CPU is not in the machine's figure at all.
            let server_here = if targets.loopback { server } else { Some(0.0) };
            s.usage.split = Some(CpuSplit {
                cores: m.cores,
                machine_busy_cores: m.busy_cores,
                authbench_cores: authbench,
                server_cores: server,
                other_cores: server_here.map(|x| (m.busy_cores - authbench - x).max(0.0)),
            });
        }
        if let Some(url) = &targets.scrape {
            let cpu: Vec<(f64, f64)> = s
                .scrape
                .iter()
                .filter_map(|(t, x)| Some((*t, x.cpu_s?)))
                .collect();
            let peak = |f: fn(&ScrapeSample) -> Option<f64>| {
                s.scrape.iter().filter_map(|(_, x)| f(x)).reduce(f64::max)
            };
            s.usage.scrape = Some(ScrapeUsage {
                url: url.clone(),
                cpu_cores: span_of(&cpu),
                peak_rss_mb: peak(|x| x.rss_bytes).map(|b| b / 1e6),
                peak_open_fds: peak(|x| x.open_fds),
                scrapes: s.scrape.len() as u64,
                failed_scrapes: looks
                    .iter()
                    .filter(|l| matches!(l.scrape, Some(Err(_))))
                    .count() as u64,
            });
        }
        s
    }

    /// Averages (and peaks) over `[a, b)` seconds of the run.
    pub(super) fn point(&self, a: f64, b: f64) -> UsagePoint {
        let busy: Vec<(f64, f64)> = self.machine.iter().map(|m| (m.0, m.1)).collect();
        let total: Vec<(f64, f64)> = self.machine.iter().map(|m| (m.0, m.2)).collect();
        let machine = match (rate(&busy, a, b), rate(&total, a, b)) {
            (Some(x), Some(y)) if y > 0.0 => Some(x / y * self.cores as f64),
            _ => None,
        };
        let scrape_cpu: Vec<(f64, f64)> = self
            .scrape
            .iter()
            .filter_map(|(t, x)| Some((*t, x.cpu_s?)))
            .collect();
        // Gauges: the peak of the looks inside the bucket, else the nearest one before it.
        let gauge = |pts: Vec<(f64, f64)>| {
            pts.iter()
                .filter(|p| p.0 >= a && p.0 < b)
                .map(|p| p.1)
                .reduce(f64::max)
                .or_else(|| pts.iter().rev().find(|p| p.0 < a).map(|p| p.1))
        };
        UsagePoint {
            generator_cpu: self
                .usage
                .generator
                .as_ref()
                .and_then(|_| rate(&self.gen, a, b)),
            machine_cpu: machine,
            server_cpu: rate(&self.server, a, b),
            server_rss_mb: gauge(self.server_rss.clone()),
            scrape_cpu: rate(&scrape_cpu, a, b),
            scrape_rss_mb: gauge(
                self.scrape
                    .iter()
                    .filter_map(|(t, x)| Some((*t, x.rss_bytes? / 1e6)))
                    .collect(),
            ),
            scrape_fds: gauge(
                self.scrape
                    .iter()
                    .filter_map(|(t, x)| Some((*t, x.open_fds?)))
                    .collect(),
            ),
        }
    }
}

/// The CPU seconds of a changing set of members (threads or processes) since the first
/// look, as one cumulative series, and each member's total. A member counts from its value
/// at the first look, or from zero when it appears later (it was born during the run, as a
/// restarted worker is), up to the last value seen (one that exits keeps what it used).
fn cumulative<K: Hash + Eq + Copy>(
    looks: &[(f64, Vec<(K, f64)>)],
) -> (Vec<(f64, f64)>, HashMap<K, f64>) {
    let base: HashMap<K, f64> = looks
        .first()
        .map(|l| l.1.iter().copied().collect())
        .unwrap_or_default();
    let mut used: HashMap<K, f64> = HashMap::new();
    let mut out = Vec::with_capacity(looks.len());
    for (t, members) in looks {
        for (k, cpu) in members {
            let b = base.get(k).copied().unwrap_or(0.0);
            used.insert(*k, (cpu - b).max(0.0));
        }
        out.push((*t, used.values().sum()));
    }
    (out, used)
}

/// The average rate of a cumulative counter from its first to its last point.
fn span_of(pts: &[(f64, f64)]) -> Option<f64> {
    rate(pts, pts.first()?.0, pts.last()?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_interpolate_between_looks() {
        let pts = [(0.0, 0.0), (1.0, 0.5), (2.0, 1.5)];
        assert_eq!(rate(&pts, 0.0, 2.0), Some(0.75));
        assert_eq!(rate(&pts, 1.0, 2.0), Some(1.0));
        assert_eq!(rate(&pts, 0.5, 1.5), Some(0.75));
        assert_eq!(rate(&pts[..1], 0.0, 1.0), None);
    }

    #[test]
    fn members_born_or_gone_during_the_run_keep_their_cpu() {
        // Worker 2 exits after the second look; worker 3 is born before the third.
        let looks = vec![
            (0.0, vec![(1, 10.0), (2, 5.0)]),
            (1.0, vec![(1, 10.5), (2, 6.0)]),
            (2.0, vec![(1, 11.0), (3, 0.7)]),
        ];
        let (cpu, totals) = cumulative(&looks);
        assert_eq!(cpu, vec![(0.0, 0.0), (1.0, 1.5), (2.0, 2.7)]);
        assert_eq!(totals[&2], 1.0);
        assert_eq!(totals[&3], 0.7);
    }
}
