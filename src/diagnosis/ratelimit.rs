//! Rate limiting: requests the server refused for their rate (429, or 503 with
//! `Retry-After`: the `rate_limited` failure class). Named before anything else about the
//! server (which steps, from when in the run, what share, the `Retry-After` values seen),
//! left out of the parallelism and waiting figures (a refusal is not work), and a
//! calibration that was itself refused, or that used up the allowance, says so.

use super::{rate_limited, Diagnosis};
use crate::report::Report;
use crate::samples::RATE_LIMITED;

/// The share of the run's requests refused for their rate.
pub(super) fn share(run: &Report) -> f64 {
    let limited: u64 = run.steps.iter().map(rate_limited).sum();
    if run.summary.requests == 0 {
        0.0
    } else {
        limited as f64 / run.summary.requests as f64
    }
}

/// The `Retry-After` values of a report's refusals, as the failure rows name them.
fn retry_after(r: &Report) -> Vec<String> {
    let mut v: Vec<String> = r
        .failures
        .iter()
        .filter(|f| f.class == RATE_LIMITED)
        .filter_map(|f| f.detail.split("Retry-After: ").nth(1).map(str::to_string))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The rate-limit finding, when the run (or its calibration) had refusals.
pub(super) fn finding(d: &Diagnosis, run: &Report, calibration: Option<&Report>) -> Option<String> {
    let cal_limited: u64 = calibration
        .map(|c| c.steps.iter().map(rate_limited).sum())
        .unwrap_or(0);
    if d.rate_limited == 0 && cal_limited == 0 {
        return None;
    }
    let mut f = if d.rate_limited > 0 {
        let steps: Vec<String> = run
            .steps
            .iter()
            .filter(|s| rate_limited(s) > 0)
            .map(|s| {
                format!(
                    "`{}` {} of {} ({:.0}%)",
                    s.name,
                    rate_limited(s),
                    s.requests,
                    rate_limited(s) as f64 / s.requests.max(1) as f64 * 100.0
                )
            })
            .collect();
        let from = run
            .timeline
            .points
            .iter()
            .find(|p| p.rate_limited > 0)
            .map(|p| format!(", from second {:.0} of the run", p.t_s))
            .unwrap_or_default();
        let values = retry_after(run);
        format!(
            "Rate limited: the server refused {} of {} requests ({:.0}%) for their rate (429, or 503 with Retry-After){from}: {}; Retry-After {}. These are the service's limit, not its capacity: refused requests are left out of the parallelism and waiting figures, and a load test of capacity needs the limit raised or the accounts spread (a [data] file of users).",
            d.rate_limited,
            run.summary.requests,
            share(run) * 100.0,
            steps.join(", "),
            if values.is_empty() {
                "not sent".to_string()
            } else {
                format!("values seen: {}", values.join(", "))
            }
        )
    } else {
        String::new()
    };
    if cal_limited > 0 {
        f.push_str(&format!(
            "{}The calibration was itself rate-limited ({cal_limited} refusals in its {} flows): its service times are not the server's work alone.",
            if f.is_empty() { "" } else { " " },
            d.calibration_flows
        ));
    } else if d.calibration_flows > 0
        && run
            .timeline
            .points
            .first()
            .is_some_and(|p| p.rate_limited > 0)
    {
        f.push_str(&format!(
            " Refusals began in the run's first second, right after the {} calibration flows: the calibration may have used up the allowance.",
            d.calibration_flows
        ));
    }
    Some(f)
}
