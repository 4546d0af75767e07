//! Where the queue is: steps grouped by how much they wait under load against alone. When
//! some steps queue and others do not, the limit is specific to the queued ones, and what
//! they have in common (they send a password, or they are the slow steps) says what it is.

use super::{fmt_ms, Diagnosis};
use crate::scenario::{Body, JsonPart, Scenario};

/// A step waiting this share of its time under load queues...
const QUEUES: f64 = 0.5;
/// ...and one waiting less than this does not.
const FREE: f64 = 0.2;

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
    let q: Vec<String> = d
        .steps
        .iter()
        .filter(|s| s.waiting_fraction >= QUEUES)
        .map(|s| s.name.clone())
        .collect();
    let free = d.steps.iter().any(|s| s.waiting_fraction < FREE);
    if free && d.waiting_fraction.is_none_or(|w| w >= FREE) {
        q
    } else {
        Vec::new()
    }
}

fn names(v: &[&super::StepDiagnosis]) -> String {
    let n: Vec<String> = v.iter().map(|s| format!("`{}`", s.name)).collect();
    match n.len() {
        0 => String::new(),
        1 => n[0].clone(),
        k => format!("{} and {}", n[..k - 1].join(", "), n[k - 1]),
    }
}

fn span(v: &[&super::StepDiagnosis], f: impl Fn(&super::StepDiagnosis) -> f64) -> (f64, f64) {
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

pub(super) fn finding(d: &Diagnosis, hints: &StepHints) -> Option<String> {
    if d.queued_steps.is_empty() {
        return None;
    }
    let indexed: Vec<(usize, &super::StepDiagnosis)> = d.steps.iter().enumerate().collect();
    let q: Vec<(usize, &super::StepDiagnosis)> = indexed
        .iter()
        .filter(|(_, s)| s.waiting_fraction >= QUEUES)
        .copied()
        .collect();
    let free: Vec<(usize, &super::StepDiagnosis)> = indexed
        .iter()
        .filter(|(_, s)| s.waiting_fraction < FREE)
        .copied()
        .collect();
    let qs: Vec<&super::StepDiagnosis> = q.iter().map(|p| p.1).collect();
    let fs: Vec<&super::StepDiagnosis> = free.iter().map(|p| p.1).collect();
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    let (qw0, qw1) = span(&qs, |s| s.waiting_fraction);
    let (fw0, fw1) = span(&fs, |s| s.waiting_fraction);
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
        // Sending a password is not hashing one: without the timing to show it, the
        // finding names the steps and does not blame hashing.
        (true, false) => format!(
            "these steps (they send a password, but they are not the slow ones alone: {timing})"
        ),
        (false, true) => format!("the slow steps ({timing}), CPU-heavy work such as password hashing"),
        (false, false) => "these steps".to_string(),
    };
    let around = if by_timing { "hashing" } else { "their work" };
    let together: f64 = qs.iter().map(|s| s.effective_parallelism).sum();
    Some(format!(
        "{} wait {} under load, {} do not ({}): the limit is specific to {what}, which together kept {together:.1} requests busy at once: one lock, one thread or a small pool around {around}.",
        names(&qs),
        range(qw0, qw1, pct),
        names(&fs),
        range(fw0, fw1, pct),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two steps that send a password and queue, two that do not; `alone` is the queued
    /// steps' service time against 2.6 ms for the others.
    fn localised(alone: f64) -> String {
        let step = |name: &str, service: f64, waiting: f64| super::super::StepDiagnosis {
            name: name.into(),
            service_time_ms: service,
            loaded_p50_ms: service / (1.0 - waiting),
            waiting_fraction: waiting,
            effective_parallelism: 0.4,
        };
        let d = Diagnosis {
            calibration_flows: 3,
            steps: vec![
                step("register", alone, 0.9),
                step("login", alone, 0.9),
                step("verify", 2.6, 0.0),
                step("profile", 2.6, 0.0),
            ],
            flow_service_time_ms: 2.0 * alone + 5.2,
            flow_mean_ms: Some(100.0),
            waiting_fraction: Some(0.8),
            effective_parallelism: 1.2,
            concurrency: 20,
            server_cores: None,
            timeouts: 0,
            queued_steps: vec!["register".into(), "login".into()],
            syn_retransmitted_connects: 0,
            findings: vec![],
        };
        let hints = StepHints {
            password: vec![true, true, false, false],
        };
        finding(&d, &hints).expect("a localisation")
    }

    #[test]
    fn hashing_is_blamed_only_when_the_queued_steps_are_also_slower_alone() {
        let slow = localised(20.0);
        assert!(slow.contains("the password-hashing steps"), "{slow}");
        assert!(slow.ends_with("around hashing."), "{slow}");
        // Sending a password, but no slower alone (oidc-provider's token step): the steps
        // are named, hashing is not claimed.
        let same = localised(2.9);
        assert!(!same.contains("password-hashing"), "{same}");
        assert!(same.contains("not the slow ones alone"), "{same}");
        assert!(same.ends_with("around their work."), "{same}");
    }
}
