//! Login probes (`login.*`): whether an attacker can tell registered emails from unknown
//! ones by the answer (enumeration), and whether a burst of wrong passwords on one
//! account is throttled (brute force). The timing probe is in [`super::timing`]; the
//! helpers it shares with these (registered and unregistered identities, a login with
//! a given password) are here.

use reqwest::header::RETRY_AFTER;
use tokio::task::JoinSet;

use super::{accepted, fields_of, result, step_name, with_fields, Settings};
use crate::check::jwt;
use crate::check::roles::{Fields, Roles};
use crate::check::target::{Probe, SendError, Session, SetupError, Target};
use crate::check::{Outcome, ProbeResult, Severity};

/// The login request for `session` with the password replaced by a new wrong one.
fn wrong_password(
    t: &Target,
    login: usize,
    fields: &Fields,
    session: &Session,
) -> Result<Probe, SendError> {
    with_password(
        t,
        login,
        fields,
        session,
        &format!("Wrong-{}", jwt::garbage()),
    )
}

/// The login request for `session` with the password `password`.
pub(super) fn with_password(
    t: &Target,
    login: usize,
    fields: &Fields,
    session: &Session,
    password: &str,
) -> Result<Probe, SendError> {
    let mut b =
        fields_of(t, login, &session.vars).ok_or_else(|| SendError::Build(step_name(t, login)))?;
    b.set(&fields.password, password);
    with_fields(t, login, session, &b)
}

/// Why the login probes cannot run: no login, or one without a password in its body.
pub(super) fn no_login(roles: &Roles) -> &'static str {
    if roles.login.is_some() {
        "the login sends no password field in its body (HTTP Basic client credentials, say): there is no password to get wrong"
    } else {
        "no login step found in the scenario"
    }
}

/// A registered identity: a fresh identity with every step before `login` run.
pub(super) async fn registered(t: &Target, login: usize) -> Result<Session, SetupError> {
    t.prefix(login).await
}

/// An identity that was never registered, with the other steps before `login` run (a
/// login form's CSRF token, say).
pub(super) async fn unregistered(
    t: &Target,
    login: usize,
    register: usize,
) -> Result<Session, SetupError> {
    t.prefix_skipping(login, Some(register)).await
}

pub(super) async fn login_probes(t: &Target, roles: &Roles) -> Vec<ProbeResult> {
    let r = result(
        "login.enumeration",
        Severity::Medium,
        "unknown user and wrong password answer alike",
        "login as an unknown email; login as a registered user with a wrong password",
        "the same status and body",
    );
    let (Some(login), Some(fields)) = (roles.login, &roles.login_fields) else {
        return vec![r.skip(no_login(roles))];
    };
    let Some(reg) = roles.register else {
        return vec![r.skip("no register step to create a known user")];
    };
    let known = match registered(t, login).await {
        Ok(v) => v,
        Err(e) => return vec![r.setup_failed(&e)],
    };
    let unknown = match unregistered(t, login, reg).await {
        Ok(v) => v,
        Err(e) => return vec![r.setup_failed(&e)],
    };
    let a = t
        .send_step("login.enumeration", login, &unknown, |p| p)
        .await;
    let b = match wrong_password(t, login, fields, &known) {
        Ok(p) => t.send("login.enumeration", p).await,
        Err(e) => Err(e),
    };
    let (a, b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return vec![r.unsent(&e)],
    };
    if let Some(limited) = [&a, &b].into_iter().find(|x| x.rate_limited()) {
        return vec![r.limited(limited)];
    }
    let got = format!("unknown: {}; wrong password: {}", a.brief(), b.brief());
    let same_body = match (a.json(), b.json()) {
        (Some(x), Some(y)) => x == y,
        _ => a.body == b.body,
    };
    vec![
        if accepted(t, login, &unknown, &a) || accepted(t, login, &known, &b) {
            r.judged(Outcome::Fail, got)
                .note("a login with bad credentials succeeded")
        } else if a.is_server_error() || b.is_server_error() {
            r.judged(Outcome::Fail, got)
        } else if a.status != b.status || !same_body {
            r.judged(Outcome::Fail, got)
                .note("the answers differ, so they tell an attacker which emails are registered")
        } else {
            r.judged(Outcome::Pass, got)
        },
    ]
}

/// A fresh identity's variables, keeping what the steps before the login extracted
/// into `ctx` (a CSRF token) and the data row's columns.
pub(super) fn fresh_identity(t: &Target, ctx: &Session) -> Vec<String> {
    let mut vars = t.fresh_vars();
    for (i, st) in t.scenario.steps.iter().enumerate() {
        if ctx.replies.len() > i {
            for e in &st.extract {
                if let (Some(slot), Some(v)) = (vars.get_mut(e.slot), ctx.vars.get(e.slot)) {
                    slot.clone_from(v);
                }
            }
        }
    }
    vars
}

// ---- brute force --------------------------------------------------------------------

pub(super) async fn brute_force_probe(t: &Target, roles: &Roles, s: &Settings) -> ProbeResult {
    let r = result(
        "login.brute_force",
        Severity::Medium,
        "a burst of wrong logins on one account is throttled",
        format!(
            "{} concurrent logins with wrong passwords for one account",
            s.burst
        ),
        "429 with Retry-After (warn when absent)",
    );
    let (Some(login), Some(fields)) = (roles.login, &roles.login_fields) else {
        return r.skip(no_login(roles));
    };
    if roles.register.is_none() {
        return r.skip("no register step to create a known user");
    }
    let session = match registered(t, login).await {
        Ok(v) => v,
        Err(e) => return r.setup_failed(&e),
    };
    let mut set = JoinSet::new();
    for _ in 0..s.burst {
        match wrong_password(t, login, fields, &session) {
            Ok(p) => {
                let (request, fut) = t.detached(p);
                set.spawn(async move { (request, fut.await) });
            }
            Err(e) => {
                set.abort_all();
                return r.skip(e.to_string());
            }
        }
    }
    let (mut limited, mut retry_after, mut ok, mut server_err, mut other, mut broken) =
        (0, 0, 0, 0, 0, 0);
    while let Some(j) = set.join_next().await {
        let j = j.map(|(request, result)| {
            t.record("login.brute_force", request, &result);
            result
        });
        match j {
            Ok(Ok(rep)) if rep.status == 429 => {
                limited += 1;
                if rep.headers.contains_key(RETRY_AFTER) {
                    retry_after += 1;
                }
            }
            Ok(Ok(rep)) if accepted(t, login, &session, &rep) => ok += 1,
            Ok(Ok(rep)) if rep.is_server_error() => server_err += 1,
            Ok(Ok(_)) => other += 1,
            _ => broken += 1,
        }
    }
    let got = format!(
        "{limited} × 429 ({retry_after} with Retry-After), {other} other 4xx, {ok} × 2xx, {server_err} × 5xx, {broken} without a response"
    );
    if ok > 0 || server_err > 0 {
        r.judged(Outcome::Fail, got)
    } else if limited == 0 {
        r.judged(Outcome::Warn, got)
            .note("no rate limiting: passwords can be guessed as fast as the server hashes")
    } else if retry_after < limited {
        r.judged(Outcome::Warn, got).note("429 without Retry-After")
    } else {
        r.judged(Outcome::Pass, got)
    }
}
