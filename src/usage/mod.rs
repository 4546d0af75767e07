//! Who used the CPU during the measured run: authbench's own load-generating threads, the
//! whole machine (`/proc/stat`), a server process on this machine (`--server-pid`) and a
//! service's own Prometheus figures (`--scrape`). A [`Sampler`] looks once a second from a
//! thread of its own (so a saturated generator cannot delay it) and [`Sampler::finish`]
//! turns the looks into a [`Usage`] for the report and one [`UsagePoint`] per timeline
//! bucket. It only measures: what the figures mean is [`crate::diagnosis`]'s business.
//!
//! The generator is the set of threads that ran flows ([`ThreadSet`]), not the process:
//! the in-process reference server, and tests' servers, run in the same process on
//! threads of their own, and their CPU is the server's, not the generator's.

pub mod procfs;
pub mod scrape;
mod series;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use crate::timeline::UsagePoint;
use scrape::ScrapeSample;
use series::Series;

/// Above this share of a thread (or of the generator's cores), the generator may be the
/// bottleneck.
pub const GENERATOR_BUSY: f64 = 0.9;
/// Above this share of the machine's cores, a loopback run is CPU-bound.
pub const MACHINE_BUSY: f64 = 0.85;

/// The `usage` object of the JSON report: averages over the measured run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Usage {
    /// Seconds between the first and the last look.
    pub wall_s: f64,
    /// The target is on this machine (loopback), so the machine's CPU is the server's too.
    pub loopback: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<GeneratorUsage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<MachineUsage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_process: Option<ProcessUsage>,
    /// The in-process reference server's own threads (its runtime and hashing pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_threads: Option<ThreadsUsage>,
    /// The machine's CPU split between authbench, the server and everything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<CpuSplit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape: Option<ScrapeUsage>,
}

/// authbench's own load-generating threads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorUsage {
    /// Threads that ran flows.
    pub threads: usize,
    /// Cores the generator kept busy on average (CPU seconds / wall seconds).
    pub cpu_cores: f64,
    /// The busiest generator thread's share of the run on a core (1.0 = all the time).
    pub busiest_thread: f64,
    /// The same thread's share of the run runnable: on a core or waiting for one (a thread
    /// that always has work but shares its core with others is saturated too).
    #[serde(default)]
    pub busiest_thread_runnable: f64,
    /// Cores of this machine.
    pub cores: usize,
}

impl GeneratorUsage {
    /// Whether the generator itself may have been the bottleneck: one of its threads, or
    /// all the cores it can use, over [`GENERATOR_BUSY`]. Runnable time counts: a thread
    /// that always had work but shared its core was behind all the same (threads that only
    /// wake briefly, as they do against a slow server, stay far below it).
    pub fn saturated(&self) -> bool {
        let usable = self.threads.min(self.cores).max(1) as f64;
        self.busiest_thread.max(self.busiest_thread_runnable) >= GENERATOR_BUSY
            || self.cpu_cores >= GENERATOR_BUSY * usable
    }
}

/// The whole machine (`/proc/stat`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineUsage {
    pub cores: usize,
    /// Cores busy on average (any process).
    pub busy_cores: f64,
    /// busy_cores / cores.
    pub busy_fraction: f64,
}

/// `--server-pid`: the server's processes, each PID given and all its descendants (a
/// pre-fork server's master and workers), looked for again at every look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessUsage {
    /// The first PID given.
    pub pid: u32,
    /// Every PID given (`--server-pid` may be repeated).
    #[serde(default)]
    pub pids: Vec<u32>,
    /// Cores the processes kept busy on average, together.
    pub cpu_cores: f64,
    /// Peak of their resident memory added up, MB.
    pub peak_rss_mb: f64,
    /// Peak of their threads added up.
    pub peak_threads: u64,
    /// Every PID given exited (or vanished) before the run ended: figures stop there.
    pub exited: bool,
    /// The processes counted, busiest first.
    #[serde(default)]
    pub processes: Vec<CountedProcess>,
}

/// One process counted as the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountedProcess {
    pub pid: u32,
    /// Its command name.
    pub name: String,
    /// Cores it kept busy on average over the run.
    pub cpu_cores: f64,
}

/// A set of this process's threads (the in-process server's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadsUsage {
    pub threads: usize,
    /// Cores they kept busy on average.
    pub cpu_cores: f64,
}

/// The machine's busy cores over the run, split by who used them. `other_cores` is what
/// neither authbench's load generation nor the server used: other processes (a build, a
/// second service), or threads of this process that are neither.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuSplit {
    pub cores: usize,
    pub machine_busy_cores: f64,
    pub authbench_cores: f64,
    /// `None` when the server's CPU is not known (a loopback target without --server-pid).
    pub server_cores: Option<f64>,
    /// `None` when it cannot be told from the server's.
    pub other_cores: Option<f64>,
}

impl Usage {
    /// The server's CPU, in cores, and where the figure comes from, when authbench knows it:
    /// the in-process server's threads, `--server-pid`'s processes, or `--scrape`.
    pub fn server_cpu(&self) -> Option<(f64, String)> {
        if let Some(t) = &self.server_threads {
            return Some((
                t.cpu_cores,
                format!("the in-process server's {} threads", t.threads),
            ));
        }
        if let Some(p) = &self.server_process {
            return Some((p.cpu_cores, process_source(p)));
        }
        let s = self.scrape.as_ref()?;
        Some((s.cpu_cores?, format!("scraped from {}", s.url)))
    }
}

/// "--server-pid 41: 3 processes (41 gunicorn, 42 gunicorn 0.98 cores, ...)".
fn process_source(p: &ProcessUsage) -> String {
    let pids: Vec<String> = p.pids.iter().map(|x| x.to_string()).collect();
    let given = if pids.is_empty() {
        p.pid.to_string()
    } else {
        pids.join(", ")
    };
    let listed: Vec<String> = p
        .processes
        .iter()
        .take(6)
        .map(|c| format!("{} {} {:.2} cores", c.pid, c.name, c.cpu_cores))
        .collect();
    let more = p.processes.len().saturating_sub(listed.len());
    format!(
        "--server-pid {given}: {} process(es) counted: {}{}",
        p.processes.len(),
        listed.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}

/// `--scrape`: the service's own figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrapeUsage {
    pub url: String,
    /// From `process_cpu_seconds_total`.
    pub cpu_cores: Option<f64>,
    /// Peak of `process_resident_memory_bytes`.
    pub peak_rss_mb: Option<f64>,
    /// Peak of `process_open_fds`.
    pub peak_open_fds: Option<f64>,
    pub scrapes: u64,
    pub failed_scrapes: u64,
}

/// Cores available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

static NEXT_SET: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The last [`ThreadSet`] this thread joined, so joining again costs one comparison.
    static JOINED: Cell<u64> = const { Cell::new(0) };
}

/// The threads that ran a run's flows.
#[derive(Debug)]
pub struct ThreadSet {
    id: u64,
    tids: Mutex<Vec<i32>>,
}

impl Default for ThreadSet {
    fn default() -> Self {
        ThreadSet {
            id: NEXT_SET.fetch_add(1, Ordering::Relaxed),
            tids: Mutex::new(Vec::new()),
        }
    }
}

impl ThreadSet {
    /// Adds the calling thread (cheap when it is already in).
    pub fn join(&self) {
        if JOINED.with(|j| j.replace(self.id)) == self.id {
            return;
        }
        if let (Some(tid), Ok(mut tids)) = (procfs::current_tid(), self.tids.lock()) {
            if !tids.contains(&tid) {
                tids.push(tid);
            }
        }
    }

    /// CPU time the threads of this set have used since they started, seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let all = procfs::own_threads();
        self.tids()
            .iter()
            .filter_map(|t| all.get(t))
            .map(|t| t.cpu_s)
            .sum()
    }

    fn tids(&self) -> Vec<i32> {
        self.tids.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

/// What to sample besides the generator and the machine.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub loopback: bool,
    /// `--server-pid`: these processes and their descendants.
    pub server_pids: Vec<u32>,
    /// The in-process server's threads (ids as the server records them while it starts
    /// threads; read when the run ends).
    pub server_threads: Option<Arc<Mutex<Vec<i32>>>>,
    pub scrape: Option<String>,
    /// TLS for an `https://` scrape endpoint: the run's settings (`--cacert`, `--insecure`).
    pub scrape_tls: Option<Arc<rustls::ClientConfig>>,
}

/// One look.
#[derive(Debug, Clone)]
struct Look {
    /// Seconds since the sampler started.
    t: f64,
    threads: HashMap<i32, procfs::ThreadTimes>,
    machine: Option<(u64, u64, usize)>,
    server: Vec<procfs::Member>,
    scrape: Option<Result<ScrapeSample, String>>,
}

/// Samples on its own thread until [`Sampler::finish`].
pub struct Sampler {
    threads: Arc<ThreadSet>,
    targets: Targets,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<std::thread::JoinHandle<Vec<Look>>>,
}

/// How often the sampler looks.
const EVERY: Duration = Duration::from_secs(1);

impl Sampler {
    /// Starts looking now (the first look is the baseline).
    pub fn start(threads: Arc<ThreadSet>, targets: Targets) -> std::io::Result<Sampler> {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let t2 = targets.clone();
        let start = Instant::now();
        let handle = std::thread::Builder::new()
            .name("authbench-sampler".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return Vec::new();
                };
                rt.block_on(async move {
                    let client = scrape::client(t2.scrape_tls.as_ref()).ok();
                    let mut looks = Vec::new();
                    let mut next = tokio::time::Instant::from_std(start);
                    loop {
                        looks.push(look(start, &t2, client.as_ref()).await);
                        next += EVERY;
                        tokio::select! {
                            _ = &mut stopped => break,
                            _ = tokio::time::sleep_until(next) => {}
                        }
                    }
                    looks.push(look(start, &t2, client.as_ref()).await);
                    looks
                })
            })?;
        Ok(Sampler {
            threads,
            targets,
            stop: Some(stop),
            handle: Some(handle),
        })
    }

    /// Takes the last look and summarizes; `timeline` gets one [`UsagePoint`] per bucket.
    pub fn finish(mut self, timeline: &mut crate::timeline::Timeline) -> Usage {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let looks = self
            .handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let tids = self.threads.tids();
        let server_tids = self
            .targets
            .server_threads
            .as_ref()
            .and_then(|t| t.lock().ok().map(|t| t.clone()))
            .unwrap_or_default();
        let series = Series::new(&looks, &tids, &server_tids, &self.targets);
        for p in &mut timeline.points {
            p.usage = Some(series.point(p.t_s, p.t_s + timeline.bucket_s));
        }
        series.usage
    }
}

async fn look(start: Instant, targets: &Targets, client: Option<&reqwest::Client>) -> Look {
    let scrape = match (&targets.scrape, client) {
        (Some(url), Some(c)) => Some(scrape::fetch(c, url, Duration::from_millis(800)).await),
        _ => None,
    };
    Look {
        t: start.elapsed().as_secs_f64(),
        threads: procfs::own_threads(),
        machine: procfs::machine(),
        server: if targets.server_pids.is_empty() {
            Vec::new()
        } else {
            procfs::tree(&targets.server_pids)
        },
        scrape,
    }
}

/// The figures in one line, for the reports: "authbench 0.21 cores (...); machine ...".
pub fn describe(u: &Usage) -> String {
    let mut parts = Vec::new();
    if let Some(g) = &u.generator {
        parts.push(format!(
            "authbench {:.2} cores ({} generator thread(s), the busiest on a core {:.0}% of the run)",
            g.cpu_cores,
            g.threads,
            g.busiest_thread * 100.0
        ));
    }
    if let Some(m) = &u.machine {
        parts.push(format!(
            "this machine {:.2} of {} cores busy ({:.0}%{})",
            m.busy_cores,
            m.cores,
            m.busy_fraction * 100.0,
            if u.loopback {
                ", the target runs on it"
            } else {
                ""
            }
        ));
    }
    if let Some(p) = &u.server_process {
        parts.push(format!(
            "server {:.2} cores ({}), peak RSS {:.1} MB, up to {} threads",
            p.cpu_cores,
            process_source(p),
            p.peak_rss_mb,
            p.peak_threads
        ));
    }
    if let Some(t) = &u.server_threads {
        parts.push(format!(
            "in-process server {:.2} cores ({} threads)",
            t.cpu_cores, t.threads
        ));
    }
    if let Some(s) = u.split.as_ref().and_then(|s| Some((s, s.other_cores?))) {
        parts.push(format!("other processes {:.2} cores", s.1));
    }
    if let Some(s) = &u.scrape {
        let mut t = format!(
            "scraped {} ({} scrapes, {} failed)",
            s.url, s.scrapes, s.failed_scrapes
        );
        if let Some(c) = s.cpu_cores {
            t.push_str(&format!(": {c:.2} cores"));
        }
        if let Some(m) = s.peak_rss_mb {
            t.push_str(&format!(", peak RSS {m:.1} MB"));
        }
        if let Some(f) = s.peak_open_fds {
            t.push_str(&format!(", up to {f:.0} open files"));
        }
        parts.push(t);
    }
    if parts.is_empty() {
        "not measured".into()
    } else {
        parts.join("; ")
    }
}

/// Whether `base_url`'s host is this machine (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback(base_url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(base_url) else {
        return false;
    };
    let host = url.host_str().unwrap_or("").trim_matches(['[', ']']);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_saturation_is_a_thread_or_all_its_cores() {
        let g = |threads, cpu_cores, busiest_thread, busiest_thread_runnable| GeneratorUsage {
            threads,
            cpu_cores,
            busiest_thread,
            busiest_thread_runnable,
            cores: 2,
        };
        assert!(g(1, 0.95, 0.95, 0.95).saturated());
        assert!(g(4, 1.9, 0.6, 0.6).saturated());
        // Always runnable, on a core half the time: sharing its core, still saturated.
        assert!(g(1, 0.5, 0.5, 0.98).saturated());
        // Waking briefly on a machine busy with the server: not saturated.
        assert!(!g(2, 0.03, 0.02, 0.14).saturated());
        assert!(!g(2, 0.5, 0.3, 0.3).saturated());
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("http://127.0.0.1:8000"));
        assert!(is_loopback("http://localhost:8000/api"));
        assert!(is_loopback("http://[::1]:80"));
        assert!(!is_loopback("http://10.0.0.2:80"));
    }
}
