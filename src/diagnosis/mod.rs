//! Diagnosis: what the figures of a run say about the server, in plain words.
//!
//! A short calibration at concurrency 1 measures each step's service time (the server alone,
//! no queue), with its spread (25th to 75th percentile). The concurrent run is then compared
//! with it: how much of a flow was waiting, and how many requests the server worked on at
//! once (effective parallelism, by Little's law: busy workers = Σ requests/s × service time).
//! Where the server's CPU is known (the in-process server's threads, `--server-pid`'s
//! processes, `--scrape`), the verdict follows from it; otherwise from the parallelism, and
//! when the threshold between two causes lies inside that figure's own spread, the verdict
//! says "inconclusive between" them rather than pick one. Every sentence printed is
//! computed from figures printed beside it; where the figures do not support a conclusion,
//! none is drawn.
//!
//! The order of the findings is the order of suspicion: authbench itself out of CPU first
//! (then nothing is said about the server), rate limiting (`ratelimit`), other processes
//! using the cores (`cpu`), connection setup (`connect`), the server's capacity, which
//! steps share the queue (`steps`), the server's own figures (`resources`), connections
//! closed without an answer (`closed`), timeouts.

mod closed;
mod connect;
mod cpu;
mod ratelimit;
mod resources;
mod steps;
mod streams;

use crate::report::{histogram, Report, StepReport};
use crate::samples::RATE_LIMITED;
use crate::scenario::Scenario;

pub use crate::report::diagnosis::{Diagnosis, StepDiagnosis, Verdict};
pub use steps::StepHints;

/// A run in which the server refused at least this share of the requests for their rate
/// says nothing about its capacity.
const RATE_LIMITED_SHARE: f64 = 0.2;

/// The least spread assumed around a service time (and so the parallelism): ±10%.
const MIN_SPREAD: f64 = 0.1;

fn rate_limited(st: &StepReport) -> u64 {
    st.failures.get(RATE_LIMITED).copied().unwrap_or(0)
}

/// The calibration's 25th and 75th percentiles of a step, ms (the median twice when the
/// histogram cannot be read).
fn quartiles(st: &StepReport) -> (f64, f64) {
    histogram::decode(&st.histogram)
        .ok()
        .filter(|h| !h.is_empty())
        .map(|h| {
            (
                h.value_at_quantile(0.25) as f64 / 1000.0,
                h.value_at_quantile(0.75) as f64 / 1000.0,
            )
        })
        .unwrap_or((st.latency.p50_ms, st.latency.p50_ms))
}

/// Compares a run with its calibration; `first` are findings made elsewhere that come
/// before all others (outages). Without a calibration (`--calibration 0`), or one that
/// measured nothing usable (its flows failed), the diagnosis keeps the findings that need
/// none (`first`, rate limits, other processes, the server's CPU); `None` when there are
/// none of those either.
pub fn diagnose(
    calibration: Option<&Report>,
    run: &Report,
    server_cores: Option<usize>,
    hints: &StepHints,
    first: Vec<String>,
) -> Option<Diagnosis> {
    let mut steps = Vec::new();
    let mut flow_service = 0.0;
    let (mut parallelism, mut low, mut high) = (0.0, 0.0, 0.0);
    let wall = run.summary.wall_time_s;
    let usable = calibration.filter(|c| {
        c.steps.len() == run.steps.len() && c.steps.iter().all(|s| s.latency.count > 0)
    });
    if let Some(cal) = usable {
        for (cal, st) in cal.steps.iter().zip(&run.steps) {
            let service = cal.latency.p50_ms;
            let (q1, q3) = quartiles(cal);
            flow_service += service;
            let limited = rate_limited(st);
            let rate = if wall > 0.0 {
                st.requests.saturating_sub(limited) as f64 / wall
            } else {
                0.0
            };
            let step_parallelism = rate * service / 1000.0;
            parallelism += step_parallelism;
            low += rate * q1.min(service * (1.0 - MIN_SPREAD)) / 1000.0;
            high += rate * q3.max(service * (1.0 + MIN_SPREAD)) / 1000.0;
            // No answered request of this step: it did not wait, it was refused or failed.
            let loaded = if st.latency.count > 0 {
                st.latency.p50_ms
            } else {
                service
            };
            steps.push(StepDiagnosis {
                effective_parallelism: step_parallelism,
                name: st.name.clone(),
                service_time_ms: service,
                service_p25_ms: q1,
                service_p75_ms: q3,
                loaded_p50_ms: loaded,
                waiting_fraction: if loaded > 0.0 {
                    (1.0 - service / loaded).max(0.0)
                } else {
                    0.0
                },
                waited_ms: (loaded - service).max(0.0),
                rate_limited: limited,
            });
        }
    }
    let calibrated = usable.is_some();
    let flow_mean = (run.flow.count > 0).then_some(run.flow.mean_ms);
    let waiting = flow_mean
        .filter(|m| *m > 0.0 && calibrated)
        .map(|m| (1.0 - flow_service / m).max(0.0));
    let timeouts = run
        .steps
        .iter()
        .filter_map(|s| s.failures.get("timeout"))
        .sum();
    let mut d = Diagnosis {
        calibration_flows: calibration.map_or(0, |c| c.summary.total_flows),
        steps,
        flow_service_time_ms: flow_service,
        flow_mean_ms: flow_mean,
        waiting_fraction: waiting,
        effective_parallelism: parallelism,
        effective_parallelism_low: low,
        effective_parallelism_high: high,
        concurrency: run.config.concurrency,
        server_cores,
        timeouts,
        queued_steps: Vec::new(),
        syn_retransmitted_connects: 0,
        rate_limited: run.steps.iter().map(rate_limited).sum(),
        verdict: None,
        inconclusive_between: None,
        findings: Vec::new(),
    };
    let (v, between) = classify(&d, run);
    d.verdict = Some(v);
    d.inconclusive_between = between;
    let rest = if calibrated {
        d.queued_steps = steps::queued(&d);
        d.syn_retransmitted_connects = connect::syn_retransmits(run).0;
        findings(&d, run, hints, calibration)
    } else {
        uncalibrated_findings(&d, run, calibration)
    };
    d.findings = first;
    d.findings.extend(rest);
    (calibrated || !d.findings.is_empty()).then_some(d)
}

/// `0.47 ms`, `12.3 ms`, `1.234s`.
pub(crate) fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.3}s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

fn findings(
    d: &Diagnosis,
    run: &Report,
    hints: &StepHints,
    calibration: Option<&Report>,
) -> Vec<String> {
    // A generator out of CPU measured itself as much as the server: nothing more is said.
    if let Some(f) = resources::generator_saturated(run) {
        return vec![f];
    }
    let v = d.verdict.unwrap_or(Verdict::NotCalibrated);
    let mut out: Vec<String> = ratelimit::finding(d, run, calibration)
        .into_iter()
        .collect();
    if v == Verdict::OtherProcesses {
        out.extend(cpu::other_processes(d, run));
    }
    out.extend(connect::findings(d, run));
    out.push(capacity(d, run));
    // Starved or refused, the queues say nothing about a lock or a pool.
    if !matches!(v, Verdict::OtherProcesses | Verdict::RateLimited) {
        let cpu_bound = matches!(
            cpu::conclusion(d, run),
            Some(cpu::Conclusion::CpuBound { .. })
        );
        out.extend(steps::finding(d, hints, cpu_bound));
    }
    out.extend(resources::server_findings(d, run));
    out.extend(closed::finding(d, run));
    out.extend(streams::findings(d, run));
    out.extend(tail(d, run));
    out
}

/// Without a calibration: what needs none.
fn uncalibrated_findings(d: &Diagnosis, run: &Report, calibration: Option<&Report>) -> Vec<String> {
    if let Some(f) = resources::generator_saturated(run) {
        return vec![f];
    }
    let mut out: Vec<String> = ratelimit::finding(d, run, calibration)
        .into_iter()
        .collect();
    if cpu::starved(d, run).is_some() {
        out.extend(cpu::other_processes(d, run));
    }
    out.extend(resources::server_findings(d, run));
    out.extend(closed::finding(d, run));
    out
}

/// The classification of `d`'s run (the same one its main finding states).
pub fn verdict(d: &Diagnosis, run: &Report) -> Verdict {
    d.verdict.unwrap_or_else(|| classify(d, run).0)
}

/// The verdict, and for [`Verdict::Inconclusive`] the two causes it lies between.
fn classify(d: &Diagnosis, run: &Report) -> (Verdict, Option<[Verdict; 2]>) {
    if resources::generator_saturated(run).is_some() {
        return (Verdict::GeneratorBound, None);
    }
    if ratelimit::share(run) >= RATE_LIMITED_SHARE {
        return (Verdict::RateLimited, None);
    }
    if d.steps.is_empty() {
        return (Verdict::NotCalibrated, None);
    }
    let waiting_pct = d.waiting_fraction.map(|w| w * 100.0);
    if !waiting_pct.is_none_or(|w| w >= 20.0) {
        return (Verdict::KeptUp, None);
    }
    if streams::stream_bound(d, run) {
        return (Verdict::StreamLimit, None);
    }
    if cpu::starved(d, run).is_some() {
        return (Verdict::OtherProcesses, None);
    }
    if let Some(c) = cpu::conclusion(d, run) {
        return (c.verdict(), None);
    }
    let at = |p: f64| by_parallelism(d, run, p);
    let (lo, hi) = (
        at(d.effective_parallelism_low),
        at(d.effective_parallelism_high),
    );
    if lo == hi {
        (lo, None)
    } else {
        (Verdict::Inconclusive, Some([lo, hi]))
    }
}

/// The verdict the parallelism `p` gives, all other figures as measured.
fn by_parallelism(d: &Diagnosis, run: &Report, p: f64) -> Verdict {
    let waiting_pct = d.waiting_fraction.map(|w| w * 100.0);
    if p < 0.5 {
        Verdict::Idle
    } else if waiting_pct.is_some_and(|w| w < 50.0) {
        Verdict::NotSaturated
    } else if d.server_cores.is_some_and(|n| p >= 0.75 * n as f64) {
        Verdict::UsesCores
    } else if d.concurrency >= 2 && p < 1.4 {
        Verdict::Serializes
    } else if resources::busy_loopback_machine(run).is_some() {
        Verdict::MachineCpu
    } else {
        Verdict::OtherLimit
    }
}

/// The main claim: how busy the server was, and with what.
fn capacity(d: &Diagnosis, run: &Report) -> String {
    let p = d.effective_parallelism;
    let c = d.concurrency;
    let waiting_pct = d.waiting_fraction.map(|w| w * 100.0);
    let wait_text = match (waiting_pct, d.flow_mean_ms) {
        (Some(w), Some(m)) => format!(
            "flow time is {w:.0}% waiting (mean flow {} vs {} of service time alone)",
            fmt_ms(m),
            fmt_ms(d.flow_service_time_ms)
        ),
        _ => format!(
            "no flow succeeded, so waiting cannot be measured (service time alone: {} per flow)",
            fmt_ms(d.flow_service_time_ms)
        ),
    };
    let at = if run.config.load_model == "open" {
        format!("with up to {c} flows in flight")
    } else {
        format!("at concurrency {c}")
    };
    let at = match streams::at(run) {
        Some(s) => format!("{at} ({s})"),
        None => at,
    };
    let band = format!(
        "effective parallelism {p:.2} ({:.2}–{:.2} over the calibration's spread)",
        d.effective_parallelism_low, d.effective_parallelism_high
    );
    let v = verdict(d, run);
    if let Some(text) = cpu::conclusion(d, run)
        .filter(|c| c.verdict() == v)
        .map(|c| c.capacity(&at, &wait_text, p))
    {
        return text;
    }
    match v {
        // Only reached when the generator check in `findings` was skipped; say the rest.
        Verdict::GeneratorBound | Verdict::OtherLimit => {
            let fewer = format!(
                "Effective parallelism {p:.1} {at}; {wait_text}. The server works on about {p:.1} requests at once, fewer than it is offered{}",
                d.server_cores
                    .map(|n| format!(" and fewer than its {n} cores"))
                    .unwrap_or_default()
            );
            match resources::idle_cpu_evidence(run) {
                Some(evidence) => format!(
                    "{fewer}, while {evidence}: a limit other than CPU (a lock, a connection pool, a worker count) is likely."
                ),
                None if run.usage.as_ref().and_then(|u| u.server_cpu()).is_some() => format!("{fewer}."),
                None => format!(
                    "{fewer}. authbench cannot see the server's CPU (not on this machine, no --server-pid or --scrape), so whether that limit is its CPU or a lock, a pool or a worker count is not known."
                ),
            }
        }
        Verdict::StreamLimit => streams::capacity(d, run),
        Verdict::KeptUp => {
            format!("Little queueing: {wait_text} {at}; the server kept up with this load.")
        }
        Verdict::Idle => format!(
            "The server was mostly idle: {band} {at}; {wait_text}, and with the server this idle that waiting is not a queue for its work: it lies in the client, the network or connection setup, or is noise at these small service times."
        ),
        // Below saturation the busy count reflects the offered load, not the server's
        // capacity: no conclusion about serialization or CPU can be drawn from it.
        Verdict::NotSaturated => format!(
            "Some queueing, no saturation: {wait_text} {at}; the server was busy with {p:.1} requests at a time on average, which here reflects the offered load rather than a limit."
        ),
        Verdict::UsesCores => format!(
            "The server used its {} cores: effective parallelism {p:.1} {at}; {wait_text}. Waiting is queueing for CPU: capacity grows only with cores or instances (or a cheaper hash).",
            d.server_cores.unwrap_or(0)
        ),
        Verdict::Serializes => {
            // On a busy loopback machine a server short of CPU looks like one that
            // serializes: without the server's CPU the figures cannot tell them apart.
            let known = run.usage.as_ref().and_then(|u| u.server_cpu()).is_some();
            let caveat = match resources::busy_loopback_machine(run).filter(|_| !known) {
                Some(m) => format!(
                    " But this machine runs the target too, and its {m}: if the server itself used those cores, it is CPU-bound rather than serialized; these figures cannot tell which (--server-pid can)."
                ),
                None => String::new(),
            };
            format!(
                "Requests are processed one at a time: {band} {at}; {wait_text}. The server serializes its work (one worker or one event loop doing CPU-bound work such as hashing inline); more workers or hashing off the event loop would raise capacity, a lower bcrypt cost only hides it.{caveat}"
            )
        }
        // The machine's CPU is known, the server's is not: who used the cores cannot be
        // told, so both readings are given (and authbench's share, never more than it used).
        Verdict::MachineCpu => format!(
            "This machine's CPU was the limit: effective parallelism {p:.1} {at}; {wait_text}. The target runs on this machine (loopback) and its {}: if the server used those cores it is CPU-bound here, and capacity grows only with cores (or a cheaper hash); if other processes did, it was starved of CPU. authbench cannot see the server's CPU: --server-pid (or --scrape) tells which.",
            resources::busy_loopback_machine(run).unwrap_or_default()
        ),
        Verdict::Inconclusive => {
            let [a, b] = d.inconclusive_between.unwrap_or([Verdict::Inconclusive; 2]);
            format!(
                "Inconclusive between \"{}\" and \"{}\": {band} {at}; {wait_text}. The threshold between the two lies inside the spread of the service times measured alone, so neither is claimed: calibrate with more flows (--calibration), run longer, or give authbench the server's CPU (--server-pid, --scrape).",
                a.short(),
                b.short()
            )
        }
        Verdict::RateLimited => format!(
            "Nothing is concluded about the server's capacity: it refused {:.0}% of the requests for their rate ({} of {}), and refusals are not work ({band} {at} over the requests it served).",
            ratelimit::share(run) * 100.0,
            d.rate_limited,
            run.summary.requests
        ),
        Verdict::OtherProcesses => format!(
            "No verdict on how the server scales: it was short of CPU, not of anything of its own ({band} {at}; {wait_text})."
        ),
        Verdict::NotCalibrated => format!("Not calibrated: {wait_text}."),
    }
}

/// Timeouts and the slowest step.
fn tail(d: &Diagnosis, run: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let p = d.effective_parallelism;
    if d.timeouts > 0 {
        let timeout_s = run.config.timeout_ms as f64 / 1000.0;
        let service_s = d.flow_service_time_ms / 1000.0;
        out.push(format!(
            "{} requests timed out after {timeout_s:.1}s while a whole flow needs {} of service: the timeouts are {} (effective parallelism {p:.1}).",
            d.timeouts,
            fmt_ms(d.flow_service_time_ms),
            if service_s < timeout_s { "waiting in a queue, not slow work" } else { "slow work itself" }
        ));
    }
    // Steps with no answered request have no latency under load to compare.
    if let Some(worst) = d
        .steps
        .iter()
        .zip(&run.steps)
        .filter(|(_, st)| st.latency.count > 0)
        .map(|(s, _)| s)
        .max_by(|a, b| a.loaded_p50_ms.total_cmp(&b.loaded_p50_ms))
        .filter(|s| s.loaded_p50_ms > 0.0)
    {
        out.push(format!(
            "The slowest step is `{}`: median {:.1} ms under load vs {:.1} ms alone ({:.0}% waiting).",
            worst.name,
            worst.loaded_p50_ms,
            worst.service_time_ms,
            worst.waiting_fraction * 100.0
        ));
    }
    out
}

impl StepHints {
    /// What the scenario says about each step.
    pub fn of(scenario: &Scenario) -> StepHints {
        steps::hints(scenario)
    }
}
