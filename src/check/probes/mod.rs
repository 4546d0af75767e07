//! The probes. Each sends requests built from a scenario step with one thing changed and
//! judges the answer; every probe yields [`ProbeResult`]s, never an error: a probe that
//! cannot run (no login step, setup failed, no JWT) is a `skip` that says why.
//!
//! Order matters a little: the brute-force burst runs last but one (it locks an account
//! on a rate-limited service, so it gets its own), and the leak scan last, over every
//! error body the others provoked.
//!
//! This module holds what the families share (the settings, building and judging a
//! result, replacing a request's JSON body) and [`run_all`], which fixes their order.
//! Each family lives in its own file, named after the prefix of its probe ids.

mod apikey;
mod errors;
mod login;
mod register;
mod scenario;
mod token;

use std::time::Duration;

use serde_json::Value;

use super::roles::Roles;
use super::target::{Probe, Reply, SendError, Target};
use super::{Outcome, ProbeResult, Severity};

/// Tunables of the probes.
#[derive(Debug, Clone)]
pub struct Settings {
    pub jwt_secret: Option<String>,
    pub timing_samples: usize,
    pub hash_time: Option<Duration>,
    pub burst: usize,
    pub race: usize,
}

fn result(
    id: impl Into<String>,
    severity: Severity,
    title: &str,
    sent: impl Into<String>,
    expected: &str,
) -> ProbeResult {
    ProbeResult {
        id: id.into(),
        severity,
        title: title.into(),
        sent: sent.into(),
        expected: expected.into(),
        got: String::new(),
        outcome: Outcome::Skip,
        note: None,
    }
}

impl ProbeResult {
    fn judged(mut self, outcome: Outcome, got: impl Into<String>) -> Self {
        self.outcome = outcome;
        self.got = got.into();
        self
    }
    fn skip(self, why: impl Into<String>) -> Self {
        self.judged(Outcome::Skip, "–").note(why)
    }
    fn note(mut self, n: impl Into<String>) -> Self {
        self.note = Some(n.into());
        self
    }
}

/// A reply judged by "must be a 4xx, never 2xx or 5xx", with `preferred` statuses
/// passing and other 4xx passing too unless `strict` (then they warn).
fn judge_rejection(
    r: ProbeResult,
    reply: &Result<Reply, SendError>,
    preferred: &[u16],
    strict: bool,
) -> ProbeResult {
    match reply {
        Err(e) => r.judged(Outcome::Warn, e.to_string()),
        Ok(rep) if rep.is_success() => r
            .judged(Outcome::Fail, rep.brief())
            .note("accepted: the request should have been refused"),
        Ok(rep) if rep.is_server_error() => r
            .judged(Outcome::Fail, rep.brief())
            .note("a server error: client input must be answered with a 4xx"),
        Ok(rep) if preferred.contains(&rep.status) => r.judged(Outcome::Pass, rep.brief()),
        Ok(rep) if rep.is_client_error() && !strict => r.judged(Outcome::Pass, rep.brief()),
        Ok(rep) => r.judged(Outcome::Warn, rep.brief()),
    }
}

/// Runs every probe.
pub async fn run_all(t: &Target, roles: &Roles, s: &Settings) -> Vec<ProbeResult> {
    let mut out = vec![scenario::roles_probe(t, roles)];
    out.extend(apikey::api_key_probes(t, roles).await);
    out.extend(token::token_probes(t, roles, s).await);
    out.extend(register::register_probes(t, roles, s).await);
    out.extend(login::login_probes(t, roles).await);
    out.extend(token::token_content_probes(t, roles).await);
    out.push(login::timing_probe(t, roles, s).await);
    out.push(login::brute_force_probe(t, roles, s).await);
    out.push(errors::leak_probe(t));
    out
}

fn step_name(t: &Target, i: usize) -> String {
    t.step(i).name.to_string()
}

/// A request of step `i` for `vars` with its JSON body replaced by `body` (register and
/// login probes both send edited bodies).
fn with_body(t: &Target, i: usize, vars: &[String], body: &Value) -> Result<Probe, SendError> {
    t.build(i, vars).map(|p| p.json_body(body))
}
