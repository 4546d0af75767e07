//! Login probes (`login.*`): whether an attacker can tell registered emails from unknown
//! ones by the answer (enumeration) or by the time it takes (timing), and whether a burst
//! of wrong passwords on one account is throttled (brute force).

use reqwest::header::RETRY_AFTER;
use tokio::task::JoinSet;

use super::{accepted, fields_of, result, step_name, with_fields, Settings};
use crate::check::jwt;
use crate::check::roles::{Fields, Roles};
use crate::check::target::{Probe, SendError, Session, SetupError, Target};
use crate::check::timing::{mann_whitney, median};
use crate::check::{Outcome, ProbeResult, Severity};

/// Wrong-password attempts per account in the timing probe: under the per-account login
/// limits services commonly use (5), so the probe measures hashing, not throttling.
const ATTEMPTS_PER_ACCOUNT: usize = 4;
/// Significance level of the timing test.
const ALPHA: f64 = 0.01;
/// A gap below this is noise on any network path, whatever the test says.
const GAP_FLOOR_MS: f64 = 0.5;

/// The login request for `session` with the password replaced.
fn wrong_password(
    t: &Target,
    login: usize,
    fields: &Fields,
    session: &Session,
) -> Result<Probe, SendError> {
    let mut b =
        fields_of(t, login, &session.vars).ok_or_else(|| SendError::Build(step_name(t, login)))?;
    b.set(&fields.password, &format!("Wrong-{}", jwt::garbage()));
    with_fields(t, login, session, &b)
}

/// Why the login probes cannot run: no login, or one without a password in its body.
fn no_login(roles: &Roles) -> &'static str {
    if roles.login.is_some() {
        "the login sends no password field in its body (HTTP Basic client credentials, say): there is no password to get wrong"
    } else {
        "no login step found in the scenario"
    }
}

/// A registered identity: a fresh identity with every step before `login` run.
async fn registered(t: &Target, login: usize) -> Result<Session, SetupError> {
    t.prefix(login).await
}

/// An identity that was never registered, with the other steps before `login` run (a
/// login form's CSRF token, say).
async fn unregistered(t: &Target, login: usize, register: usize) -> Result<Session, SetupError> {
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
    let got = format!("unknown: {}; wrong password: {}", a.brief(), b.brief());
    let same_body = match (a.json(), b.json()) {
        (Some(x), Some(y)) => x == y,
        _ => a.body == b.body,
    };
    vec![if accepted(t, login, &a) || accepted(t, login, &b) {
        r.judged(Outcome::Fail, got)
            .note("a login with bad credentials succeeded")
    } else if a.is_server_error() || b.is_server_error() {
        r.judged(Outcome::Fail, got)
    } else if a.status == 429 || b.status == 429 {
        r.judged(Outcome::Warn, got)
            .note("rate-limited before it could be compared")
    } else if a.status != b.status || !same_body {
        r.judged(Outcome::Fail, got)
            .note("the answers differ, so they tell an attacker which emails are registered")
    } else {
        r.judged(Outcome::Pass, got)
    }]
}

/// A fresh identity's variables, keeping what the steps before the login extracted
/// into `ctx` (a CSRF token) and the data row's columns.
fn fresh_identity(t: &Target, ctx: &Session) -> Vec<String> {
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

// ---- login timing -------------------------------------------------------------------

/// Interleaved login samples of three kinds: an unknown email, a known email with a
/// wrong password, and a request refused before any hashing (`{}`), whose median is
/// subtracted from the slower path's to estimate one hash time.
pub(super) async fn timing_probe(t: &Target, roles: &Roles, s: &Settings) -> ProbeResult {
    let n = s.timing_samples;
    let r = result(
        "login.timing",
        Severity::Medium,
        "login time does not reveal which emails exist",
        format!(
            "{n} logins as unknown emails and {n} with wrong passwords for known ones, interleaved"
        ),
        "no significant gap of half a hash time or more",
    );
    let (Some(login), Some(fields)) = (roles.login, &roles.login_fields) else {
        return r.skip(no_login(roles));
    };
    let Some(reg) = roles.register else {
        return r.skip("no register step to create known users");
    };
    // n + 2 wrong-password attempts (two warm-up), at most ATTEMPTS_PER_ACCOUNT each.
    let accounts = (n + 2).div_ceil(ATTEMPTS_PER_ACCOUNT);
    let mut known = Vec::with_capacity(accounts);
    for _ in 0..accounts {
        match registered(t, login).await {
            Ok(v) => known.push(v),
            Err(e) => return r.setup_failed(&e),
        }
    }
    // The steps before the login other than register (a login form), run once: their
    // context serves every unknown identity, whose variables are fresh each time.
    let unknown_ctx = match unregistered(t, login, reg).await {
        Ok(v) => v,
        Err(e) => return r.setup_failed(&e),
    };
    let Some(empty) = fields_of(t, login, &known[0].vars).map(|f| f.empty()) else {
        return r.skip("the login body is not a JSON object or a form");
    };
    let (mut unknown_ms, mut wrong_ms, mut base_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut limited, mut accepted_n, mut errors) = (0usize, 0usize, 0usize);
    // Two of each first, discarded: connection setup and cold caches.
    for i in 0..n + 2 {
        let mut kinds = [0u8, 1, 2];
        if rand::random::<bool>() {
            kinds.swap(0, 1);
        }
        for kind in kinds {
            let probe = match kind {
                0 => {
                    let mut unknown = unknown_ctx.clone();
                    unknown.vars = fresh_identity(t, &unknown_ctx);
                    t.build_in(login, &unknown)
                }
                1 => wrong_password(
                    t,
                    login,
                    fields,
                    &known[(i / ATTEMPTS_PER_ACCOUNT).min(accounts - 1)],
                ),
                _ => with_fields(t, login, &known[0], &empty),
            };
            let reply = match probe {
                Ok(p) => t.send("login.timing", p).await,
                Err(e) => return r.skip(e.to_string()),
            };
            let rep = match reply {
                Ok(rep) => rep,
                Err(_) => {
                    errors += 1;
                    continue;
                }
            };
            if rep.status == 429 {
                limited += 1;
                continue;
            }
            if kind < 2 && accepted(t, login, &rep) {
                accepted_n += 1;
            }
            if i < 2 {
                continue;
            }
            let ms = rep.elapsed.as_secs_f64() * 1000.0;
            match kind {
                0 => unknown_ms.push(ms),
                1 => wrong_ms.push(ms),
                _ => base_ms.push(ms),
            }
        }
    }
    if accepted_n > 0 {
        return r.judged(
            Outcome::Fail,
            format!("{accepted_n} logins with bad credentials succeeded"),
        );
    }
    let enough = n / 2;
    if unknown_ms.len() < enough || wrong_ms.len() < enough {
        return r
            .judged(
                Outcome::Warn,
                format!("only {} + {} usable samples ({limited} rate-limited, {errors} without a response)", unknown_ms.len(), wrong_ms.len()),
            )
            .note("too few samples to compare");
    }
    let (Some(mu), Some(mw)) = (median(&unknown_ms), median(&wrong_ms)) else {
        return r.skip("no samples");
    };
    let mb = median(&base_ms).unwrap_or(0.0);
    let (hash_ms, hash_src) = match s.hash_time {
        Some(h) => (h.as_secs_f64() * 1000.0, "given by --hash-time"),
        None => (
            (mu.max(mw) - mb).max(0.0),
            "estimated: slower median minus the median of a login refused before hashing",
        ),
    };
    let gap = (mw - mu).abs();
    let test = mann_whitney(&unknown_ms, &wrong_ms);
    let p = test.map_or(1.0, |t| t.p);
    let got = format!(
        "median unknown {mu:.2} ms, wrong password {mw:.2} ms, gap {gap:.2} ms, p = {p:.3}; hash ≈ {hash_ms:.2} ms"
    );
    let note = format!(
        "Mann–Whitney U, two-sided, over {} + {} interleaved samples; significant when p < {ALPHA}; hash time {hash_src}{}",
        unknown_ms.len(),
        wrong_ms.len(),
        if limited > 0 { format!("; {limited} rate-limited samples dropped") } else { String::new() }
    );
    let significant = p < ALPHA;
    let outcome = if significant && gap >= (0.5 * hash_ms).max(GAP_FLOOR_MS) {
        Outcome::Fail
    } else if significant && gap >= (0.25 * hash_ms).max(GAP_FLOOR_MS) {
        Outcome::Warn
    } else {
        Outcome::Pass
    };
    let r = r.judged(outcome, got).note(note);
    if outcome == Outcome::Fail {
        let mut r = r;
        r.note = Some(format!(
            "{}. One path skips (or adds) password hashing: verify against a dummy hash for unknown users",
            r.note.unwrap_or_default()
        ));
        r
    } else {
        r
    }
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
            Ok(Ok(rep)) if accepted(t, login, &rep) => ok += 1,
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
