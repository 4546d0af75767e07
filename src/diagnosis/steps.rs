//! Where the queue is: steps grouped by how much they wait under load against alone. When
//! some steps queue and others do not, the limit is specific to the queued ones, and what
//! they have in common (they send a password, or they are the slow steps) says what it is.

use super::{fmt_ms, Diagnosis, StepDiagnosis};
use crate::scenario::{Body, JsonPart, Scenario};

/// A step waiting this share of its time under load queues...
const QUEUES: f64 = 0.5;
/// ...and one waiting less than this does not.
const FREE: f64 = 0.2;
/// A queued step waits at least this share of the longest wait of any step (ms)...
const QUEUES_OF_LONGEST: f64 = 0.25;
/// ...and a step waiting less than this share of it does not queue, whatever its share of
/// its own time: a 0.5 ms step that waits 0.2 ms is not what hides a 400 ms queue, nor a
/// 20 ms step that waits 5 ms for a loaded machine's scheduler next to a 130 ms lock queue.
const FREE_OF_LONGEST: f64 = 0.1;

fn longest_wait(d: &Diagnosis) -> f64 {
    d.steps.iter().map(|s| s.waited_ms).fold(0.0, f64::max)
}

fn queues(s: &StepDiagnosis, longest: f64) -> bool {
    s.waiting_fraction >= QUEUES && s.waited_ms >= QUEUES_OF_LONGEST * longest
}

fn free(s: &StepDiagnosis, longest: f64) -> bool {
    s.waiting_fraction < FREE || s.waited_ms < FREE_OF_LONGEST * longest
}

/// What the scenario says about each step, for the diagnosis.
#[derive(Debug, Clone, Default)]
pub struct StepHints {
    /// The step sends a password (a JSON body with a `password` field, or a step named
    /// register, login, signup, signin or token): its server side most likely hashes one.
    pub password: Vec<bool>,
}

pub(super) fn hints(scenario: &Scenario) -> StepHints {
    StepHints {
        password: scenario
            .steps
            .iter()
            .map(|s| {
                let name = s.name.to_ascii_lowercase();
                let by_name = ["register", "login", "signup", "signin", "sign_in", "token"]
                    .iter()
                    .any(|n| name.contains(n));
                let by_body = match &s.body {
                    Some(Body::Json(parts)) => parts.iter().any(|p| {
                        matches!(p, JsonPart::Raw(r) if r.to_ascii_lowercase().contains("\"password\""))
                    }),
                    _ => false,
                };
                by_name || by_body
            })
            .collect(),
    }
}

/// The steps that queue while others do not (empty when all or none do).
pub(super) fn queued(d: &Diagnosis) -> Vec<String> {
    let longest = longest_wait(d);
    let q: Vec<String> = d
        .steps
        .iter()
        .filter(|s| queues(s, longest))
        .map(|s| s.name.clone())
        .collect();
    let any_free = d.steps.iter().any(|s| free(s, longest));
    if any_free && d.waiting_fraction.is_none_or(|w| w >= FREE) {
        q
    } else {
        Vec::new()
    }
}

fn names(v: &[&StepDiagnosis]) -> String {
    let n: Vec<String> = v.iter().map(|s| format!("`{}`", s.name)).collect();
    match n.len() {
        0 => String::new(),
        1 => n[0].clone(),
        k => format!("{} and {}", n[..k - 1].join(", "), n[k - 1]),
    }
}

fn span(v: &[&StepDiagnosis], f: impl Fn(&StepDiagnosis) -> f64) -> (f64, f64) {
    v.iter()
        .map(|s| f(s))
        .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)))
}

fn range(lo: f64, hi: f64, unit: impl Fn(f64) -> String) -> String {
    if (hi - lo).abs() < 1e-9 || unit(lo) == unit(hi) {
        unit(lo)
    } else {
        format!("{}–{}", unit(lo), unit(hi))
    }
}

/// What held the queued steps: the CPU (they kept the cores busy), one at a time, or a
/// plateau of k (a pool or a worker count of k).
fn limit(d: &Diagnosis, qs: &[&StepDiagnosis], cpu_bound: bool, around: &str) -> String {
    let together: f64 = qs.iter().map(|s| s.effective_parallelism).sum();
    let cores = d.server_cores;
    if cpu_bound || cores.is_some_and(|n| together >= 0.75 * n as f64) {
        return format!(
            "which together kept {together:.1} requests busy at once{}: the queue is for the CPU their work uses, not a lock or a small pool",
            cores.map(|n| format!(" on {n} cores")).unwrap_or_default()
        );
    }
    let one = qs.len() == 1;
    let what = if one {
        format!("`{}`", qs[0].name)
    } else {
        names(qs)
    };
    let k = together.round();
    // One at a time within the noise of a loaded machine (a lock held a few ms longer
    // under load than alone reads as 0.7); a plateau of k needs to be closer.
    if (together - 1.0).abs() <= 0.35 {
        format!(
            "{} {together:.1} requests busy at once: {what} {} one at a time, a lock or a single connection (one thread, one worker) held across {around}",
            if one { "which kept" } else { "which together kept" },
            if one { "runs" } else { "run" }
        )
    } else if k >= 2.0 && (together - k).abs() <= 0.25 && cores.is_none_or(|n| k < n as f64) {
        format!(
            "{} {together:.1} requests busy at once: at most about {k:.0} {what} at once, a pool or a worker count of {k:.0} around {around}",
            if one { "which kept" } else { "which together kept" },
        )
    } else {
        format!(
            "which together kept {together:.1} requests busy at once: a lock, a thread or a small pool around {around}"
        )
    }
}

pub(super) fn finding(d: &Diagnosis, hints: &StepHints, cpu_bound: bool) -> Option<String> {
    if d.queued_steps.is_empty() {
        return None;
    }
    let longest = longest_wait(d);
    let indexed: Vec<(usize, &StepDiagnosis)> = d.steps.iter().enumerate().collect();
    let q: Vec<(usize, &StepDiagnosis)> = indexed
        .iter()
        .filter(|(_, s)| queues(s, longest))
        .copied()
        .collect();
    let free: Vec<(usize, &StepDiagnosis)> = indexed
        .iter()
        .filter(|(_, s)| free(s, longest))
        .copied()
        .collect();
    let qs: Vec<&StepDiagnosis> = q.iter().map(|p| p.1).collect();
    let fs: Vec<&StepDiagnosis> = free.iter().map(|p| p.1).collect();
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    let (qw0, qw1) = span(&qs, |s| s.waiting_fraction);
    let (qm0, qm1) = span(&qs, |s| s.waited_ms);
    let (fw0, fw1) = span(&fs, |s| s.waiting_fraction);
    let (fm0, fm1) = span(&fs, |s| s.waited_ms);
    let (qs0, qs1) = span(&qs, |s| s.service_time_ms);
    let (_, fs1) = span(&fs, |s| s.service_time_ms);
    let password = |i: usize| hints.password.get(i).copied().unwrap_or(false);
    let by_role = q.iter().all(|(i, _)| password(*i)) && !free.iter().any(|(i, _)| password(*i));
    // Clearly slower alone: at least twice the slowest step that does not queue.
    let by_timing = qs0 >= 2.0 * fs1;
    let timing = format!(
        "{} alone vs at most {}",
        range(qs0, qs1, fmt_ms),
        fmt_ms(fs1)
    );
    let what = match (by_role, by_timing) {
        (true, true) => format!("the password-hashing steps (they send a password, and they are the slow ones: {timing})"),
        (true, false) => format!(
            "these steps (they send a password, but they are not the slow ones alone: {timing})"
        ),
        (false, true) => format!("the slow steps ({timing}), CPU-heavy work such as password hashing"),
        (false, false) => "these steps".to_string(),
    };
    let around = if by_timing { "hashing" } else { "their work" };
    Some(format!(
        "{} wait {} ({}) under load, {} do not ({}, {}): the limit is specific to {what}, {}.",
        names(&qs),
        range(qw0, qw1, pct),
        range(qm0, qm1, fmt_ms),
        names(&fs),
        range(fw0, fw1, pct),
        range(fm0, fm1, fmt_ms),
        limit(d, &qs, cpu_bound, around),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, service: f64, waiting: f64, parallelism: f64) -> StepDiagnosis {
        let loaded = service / (1.0 - waiting);
        StepDiagnosis {
            name: name.into(),
            service_time_ms: service,
            service_p25_ms: service,
            service_p75_ms: service,
            loaded_p50_ms: loaded,
            waiting_fraction: waiting,
            waited_ms: loaded - service,
            rate_limited: 0,
            effective_parallelism: parallelism,
        }
    }

    fn diagnosis(steps: Vec<StepDiagnosis>, cores: Option<usize>) -> Diagnosis {
        let mut d = Diagnosis {
            calibration_flows: 3,
            flow_service_time_ms: steps.iter().map(|s| s.service_time_ms).sum(),
            steps,
            flow_mean_ms: Some(100.0),
            waiting_fraction: Some(0.8),
            effective_parallelism: 1.2,
            effective_parallelism_low: 1.1,
            effective_parallelism_high: 1.3,
            concurrency: 20,
            server_cores: cores,
            timeouts: 0,
            queued_steps: vec![],
            syn_retransmitted_connects: 0,
            rate_limited: 0,
            verdict: None,
            inconclusive_between: None,
            findings: vec![],
        };
        d.queued_steps = queued(&d);
        d
    }

    fn hints() -> StepHints {
        StepHints {
            password: vec![true, true, false, false],
        }
    }

    /// Two steps that send a password and queue, two that do not; `alone` is the queued
    /// steps' service time against 2.6 ms for the others.
    fn localised(alone: f64) -> String {
        let d = diagnosis(
            vec![
                step("register", alone, 0.9, 0.5),
                step("login", alone, 0.9, 0.5),
                step("verify", 2.6, 0.0, 0.1),
                step("profile", 2.6, 0.0, 0.1),
            ],
            None,
        );
        finding(&d, &hints(), false).expect("a localisation")
    }

    #[test]
    fn hashing_is_blamed_only_when_the_queued_steps_are_also_slower_alone() {
        let slow = localised(20.0);
        assert!(slow.contains("the password-hashing steps"), "{slow}");
        assert!(slow.ends_with("held across hashing."), "{slow}");
        assert!(slow.contains("one at a time"), "{slow}");
        // Sending a password, but no slower alone (oidc-provider's token step): the steps
        // are named, hashing is not claimed.
        let same = localised(2.9);
        assert!(!same.contains("password-hashing"), "{same}");
        assert!(same.contains("not the slow ones alone"), "{same}");
        assert!(same.ends_with("held across their work."), "{same}");
    }

    #[test]
    fn a_fast_step_waiting_a_fraction_of_a_millisecond_does_not_hide_the_queue() {
        // verify waits 0.2 ms of its 0.5 ms (40%: between the two shares); register and
        // login wait 400 ms. By milliseconds verify does not queue.
        let d = diagnosis(
            vec![
                step("register", 100.0, 0.8, 0.5),
                step("login", 100.0, 0.8, 0.5),
                step("verify", 0.3, 0.4, 0.01),
                step("profile", 0.3, 0.4, 0.01),
            ],
            None,
        );
        assert_eq!(d.queued_steps, vec!["register", "login"]);
        let f = finding(&d, &hints(), false).unwrap();
        assert!(
            f.starts_with("`register` and `login` wait 80% (400.0 ms)"),
            "{f}"
        );
        assert!(f.contains("`verify` and `profile` do not"), "{f}");
    }

    #[test]
    fn steps_that_kept_the_cores_busy_are_not_called_a_lock() {
        let d = diagnosis(
            vec![
                step("register", 250.0, 0.9, 0.95),
                step("login", 250.0, 0.9, 0.95),
                step("verify", 1.0, 0.1, 0.01),
                step("profile", 1.0, 0.1, 0.01),
            ],
            Some(2),
        );
        let f = finding(&d, &hints(), false).unwrap();
        assert!(f.contains("1.9 requests busy at once on 2 cores"), "{f}");
        assert!(f.contains("not a lock or a small pool"), "{f}");
        assert!(!f.contains("one at a time"), "{f}");
    }

    #[test]
    fn one_step_at_a_time_and_a_plateau_are_named() {
        let hints = StepHints {
            password: vec![true, true, false],
        };
        let one = diagnosis(
            vec![
                step("signup", 20.0, 0.85, 1.0),
                step("signin", 20.0, 0.05, 1.0),
                step("verify", 1.0, 0.0, 0.05),
            ],
            Some(4),
        );
        let f = finding(&one, &hints, false).unwrap();
        assert!(f.starts_with("`signup` wait"), "{f}");
        assert!(f.contains("`signup` runs one at a time"), "{f}");
        assert!(f.contains("`signin` and `verify` do not"), "{f}");
        let five = diagnosis(
            vec![
                step("signup", 5.0, 0.1, 0.5),
                step("login", 20.0, 0.85, 4.9),
                step("verify", 1.0, 0.0, 0.05),
            ],
            Some(16),
        );
        let f = finding(&five, &hints, false).unwrap();
        assert!(
            f.contains("at most about 5 `login` at once, a pool or a worker count of 5"),
            "{f}"
        );
    }
}
