//! The `scenario.roles` probe: reports which steps the other probes inferred as the
//! register, login, protected and API-key steps, and warns when there is too little to
//! probe, so a run full of skips explains itself.

use super::result;
use crate::check::roles::Roles;
use crate::check::target::Target;
use crate::check::{Outcome, ProbeResult, Severity};

pub(super) fn roles_probe(t: &Target, roles: &Roles) -> ProbeResult {
    let s = roles.summary(&t.scenario);
    let got = format!(
        "register: {}, login: {}, protected: {}, API key on: {}{}",
        s.register.as_deref().unwrap_or("none"),
        s.login.as_deref().unwrap_or("none"),
        if s.protected.is_empty() {
            "none".into()
        } else {
            s.protected.join(", ")
        },
        if s.api_key.is_empty() {
            "none".into()
        } else {
            s.api_key.join(", ")
        },
        [
            s.refresh.as_ref().map(|r| format!(", refresh: {r}")),
            s.logout.as_ref().map(|r| format!(", logout: {r}")),
            s.session_cookie
                .as_ref()
                .map(|c| format!(", session cookie: {c}")),
        ]
        .into_iter()
        .flatten()
        .collect::<String>(),
    );
    result(
        "scenario.roles",
        Severity::Info,
        "steps the probes use",
        format!("scenario {}", t.scenario.name),
        "a register or login step and a protected step",
    )
    .judged(
        if roles.protected.is_empty() || (roles.register.is_none() && roles.login.is_none()) {
            Outcome::Warn
        } else {
            Outcome::Pass
        },
        got,
    )
    .note("`role = \"...\"` on a step decides, else inferred from the steps: `authbench check --explain-roles` says why")
}
