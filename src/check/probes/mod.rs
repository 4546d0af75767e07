//! The probes. Each sends requests built from a scenario step with one thing changed and
//! judges the answer; every probe yields [`ProbeResult`]s, never an error: a probe that
//! cannot run (no login step, setup failed, no JWT) is a `skip` that says why.
//!
//! Order and isolation: every probe that creates an account does it with identities of
//! its own (fresh variables, its own prelude), so no probe sees another's account. The
//! probes that read collections (`users.list_public`) run before any probe that stores
//! oversized data (`register.large_body`), and read a list up to a generous cap, judged
//! on what was read, so they give the same verdict whatever came before. The
//! brute-force burst runs last but one (it locks an account on a rate-limited service,
//! so it gets its own), and the leak scans last, over every answer the others provoked.
//!
//! This module holds what the families share (the settings, building and judging a
//! result, replacing a request's JSON body) and [`run_all`], which fixes their order.
//! Each family lives in its own file, named after the prefix of its probe ids.

mod apikey;
mod code_flow;
mod errors;
mod leaks;
mod login;
mod prelude;
mod race;
mod register;
mod scenario;
mod session;
mod timing;
mod token;

use std::time::Duration;

use super::body::Fields;
use super::jwt::SigningKey;
use super::roles::Roles;
use super::target::{Probe, Reply, SendError, Session, SetupError, Target};
use super::{Outcome, ProbeResult, Severity};

/// Tunables of the probes.
#[derive(Clone)]
pub struct Settings {
    pub jwt_secret: Option<String>,
    /// `--jwt-private-key`: signs forged RS256/ES256 tokens.
    pub jwt_key: Option<SigningKey>,
    /// `--jwt-public-key`: the PEM text of the key RS256/ES256 tokens verify against,
    /// for the algorithm-confusion probe.
    pub jwt_public_key: Option<Vec<u8>>,
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
        request: None,
        response: None,
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
    /// No verdict: the answer meant nothing (`why`: rate limited, unreadable).
    fn inconclusive(self, got: impl Into<String>, why: impl Into<String>) -> Self {
        self.judged(Outcome::Inconclusive, got).note(why)
    }
    /// A rate-limited answer (also to the one retry): inconclusive, naming the limit.
    fn limited(self, rep: &Reply) -> Self {
        let why = format!(
            "{}; retried once after the advised wait (at most {} s): no verdict",
            rep.limited_reason(),
            super::target::MAX_RETRY_WAIT.as_secs()
        );
        self.inconclusive(rep.brief(), why)
    }
    /// A set-up that did not succeed: `error` when the service gave no answer on a fresh
    /// connection, else `skip`, with the reason either way.
    fn setup_failed(self, e: &SetupError) -> Self {
        match e {
            SetupError::NoAnswer { .. } => self.judged(Outcome::Error, e.to_string()),
            SetupError::RateLimited { got, .. } => {
                let _ = got;
                self.inconclusive("–", format!("{e} (after one retry): no verdict"))
            }
            _ => self.skip(e.to_string()),
        }
    }
    /// A request that could not be sent: `error` when no answer came, `skip` when it
    /// could not be built.
    fn unsent(self, e: &SendError) -> Self {
        match e {
            SendError::Transport(_) => self.judged(Outcome::Error, e.to_string()),
            SendError::Build(_) => self.skip(e.to_string()),
        }
    }
}

/// A reply to an altered request of step `step` (sent in `session`) judged by "must be
/// refused with a 4xx, never accepted, never a 5xx": accepted means what the step itself
/// counts as its success ([`Target::accepts`]: its `expect`, `check`s and extracts). The
/// `preferred` statuses pass, other 4xx pass too unless `strict` (then they warn), and a
/// refusal with another status (a 2xx the step's checks reject, a redirect) warns. A
/// rate-limited answer is inconclusive.
fn judge_rejection(
    t: &Target,
    step: usize,
    session: &Session,
    r: ProbeResult,
    reply: &Result<Reply, SendError>,
    preferred: &[u16],
    strict: bool,
) -> ProbeResult {
    match reply {
        Err(e) => r.unsent(e),
        Ok(rep) if rep.rate_limited() && !preferred.contains(&rep.status) => r.limited(rep),
        Ok(rep) if rep.is_server_error() => r
            .judged(Outcome::Fail, rep.brief())
            .note("a server error: client input must be answered with a 4xx"),
        Ok(rep) if t.accepts(step, session, rep) => r
            .judged(Outcome::Fail, rep.brief())
            .note("accepted: the request should have been refused"),
        Ok(rep) if preferred.contains(&rep.status) => r.judged(Outcome::Pass, rep.brief()),
        Ok(rep) if rep.is_client_error() && !strict => r.judged(Outcome::Pass, rep.brief()),
        Ok(rep) if rep.is_success() => {
            r.judged(Outcome::Warn, rep.brief()).note(format!(
            "refused (the answer fails step {}'s own expect or checks), but with a {}: {} says so",
            step_name(t, step),
            rep.status,
            if preferred.is_empty() { "a 4xx".to_string() } else { format!("a {}", preferred[0]) }
        ))
        }
        Ok(rep) => r.judged(Outcome::Warn, rep.brief()),
    }
}

/// Runs every probe, then gives each row the last request its probe sent and an
/// excerpt of the answer.
pub async fn run_all(t: &Target, roles: &Roles, s: &Settings) -> Vec<ProbeResult> {
    let mut out = vec![scenario::roles_probe(t, roles)];
    // Collections first: nothing oversized is stored yet (see the module's docs).
    out.push(leaks::user_list_probe(t, roles).await);
    out.extend(apikey::api_key_probes(t, roles).await);
    out.extend(token::token_probes(t, roles, s).await);
    out.extend(token::after_logout_probes(t, roles).await);
    out.extend(session::session_probes(t, roles).await);
    out.extend(code_flow::code_flow_probes(t).await);
    out.extend(register::register_probes(t, roles, s).await);
    out.extend(login::login_probes(t, roles).await);
    out.extend(token::token_content_probes(t, roles).await);
    out.extend(leaks::request_probes(t, roles).await);
    out.push(timing::timing_probe(t, roles, s).await);
    out.push(login::brute_force_probe(t, roles, s).await);
    out.extend(leaks::scan_probes(t, roles));
    out.push(errors::leak_probe(t));
    attach_exchanges(t, &mut out);
    out
}

/// Fills each row's `request` and `response` from the last exchange its probe sent.
fn attach_exchanges(t: &Target, out: &mut [ProbeResult]) {
    let log = t.exchanges();
    for r in out.iter_mut().filter(|r| r.request.is_none()) {
        if let Some(x) = log.iter().rev().find(|x| x.probe == r.id) {
            r.request = Some(x.request.clone());
            r.response = Some(x.response_excerpt(160));
        }
    }
}

/// Whether step `i` would count `rep`, an answer to a request sent in `session`, as its
/// success: its `expect`, `check`s and extracts ([`Target::accepts`]).
fn accepted(t: &Target, i: usize, session: &Session, rep: &Reply) -> bool {
    t.accepts(i, session, rep)
}

fn step_name(t: &Target, i: usize) -> String {
    t.step(i).name.to_string()
}

/// Step `i`'s body fields for `vars`, when it is a JSON object or a form.
fn fields_of(t: &Target, i: usize, vars: &[String]) -> Option<Fields> {
    t.step(i).body.as_ref().and_then(|b| Fields::of(b, vars))
}

/// A request of step `i` for `session` (its cookies too) with the body `fields`.
fn with_fields(
    t: &Target,
    i: usize,
    session: &Session,
    fields: &Fields,
) -> Result<Probe, SendError> {
    let (ct, bytes) = fields.render();
    t.build_in(i, session)
        .map(|p| p.header(reqwest::header::CONTENT_TYPE, ct).body(bytes))
}
