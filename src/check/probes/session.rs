//! Cookie-session probes (`session.*`), run when a protected step is authenticated by a
//! session cookie rather than a token: the step without the cookie, with a garbage
//! value, with the value's last characters changed (a forged signature), and with the
//! cookie after logout must all be refused; the cookie the login sets must be `HttpOnly`,
//! `Secure` over https and not `SameSite=None`; a cookie planted before login must not
//! become the session (fixation); and a state-changing request with the session and a
//! foreign `Origin` must be refused (CSRF).
//!
//! "Refused" is anything the scenario's step would not count as its success (its
//! `expect`, its `check`s and its extracts, as `run` judges it) and no 5xx: a 401, a
//! 403, the redirect to a login page that form-login frameworks answer, or a `200 null`
//! where the step checks `/user/email`. A rate-limited answer is inconclusive.

use reqwest::header::{ORIGIN, REFERER, SET_COOKIE};
use reqwest::Method;

use super::{accepted, result, step_name};
use crate::check::jwt;
use crate::check::roles::{Auth, Roles};
use crate::check::target::{Reply, SendError, Session, Target};
use crate::check::{Outcome, ProbeResult, Severity};

/// The session cookie as the login set it.
struct SessionCookie {
    name: String,
    value: String,
    /// The `Set-Cookie` header that set it, when the login's answer has one.
    set_cookie: Option<cookie::Cookie<'static>>,
}

/// Judges a request that must be refused: accepted or 5xx fails.
fn judge_refused(
    t: &Target,
    step: usize,
    session: &Session,
    r: ProbeResult,
    reply: &Result<Reply, SendError>,
) -> ProbeResult {
    match reply {
        Err(e) => r.unsent(e),
        Ok(rep) if rep.rate_limited() => r.limited(rep),
        Ok(rep) if rep.is_server_error() => r
            .judged(Outcome::Fail, rep.brief())
            .note("a server error: a bad session must be answered with a refusal"),
        Ok(rep) if accepted(t, step, session, rep) => r
            .judged(Outcome::Fail, rep.brief())
            .note("accepted: the step's own expect and checks pass, so the request got through"),
        Ok(rep) => r.judged(Outcome::Pass, rep.brief()),
    }
}

/// The value with its last (up to) 4 characters changed: a signed cookie's signature
/// no longer matches, an opaque id names no session.
fn tampered(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let keep = chars.len().saturating_sub(4);
    let mut out: String = chars[..keep].iter().collect();
    for c in &chars[keep..] {
        out.push(match c {
            'a' => 'b',
            'A' => 'B',
            '0' => '1',
            c if c.is_ascii_alphanumeric() => 'a',
            _ => 'x',
        });
    }
    if out == value {
        out.push('x');
    }
    out
}

/// The session cookie: the name the scenario gives, else the one the login set (one
/// whose name says session, else the first).
fn find_cookie(
    t: &Target,
    roles: &Roles,
    login: usize,
    session: &Session,
) -> Option<SessionCookie> {
    let set: Vec<cookie::Cookie<'static>> = session
        .replies
        .get(login)
        .map(|r| {
            r.headers
                .get_all(SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|s| cookie::Cookie::parse(s.to_string()).ok())
                .collect()
        })
        .unwrap_or_default();
    let name = match roles.session_cookie() {
        Some(n) => n.to_string(),
        None => set
            .iter()
            .find(|c| c.name().to_ascii_lowercase().contains("sess"))
            .or(set.first())?
            .name()
            .to_string(),
    };
    let url = t.url(login, &session.vars)?;
    let value = session.jar.value(&name, &url)?.to_string();
    let set_cookie = set.into_iter().find(|c| c.name() == name);
    Some(SessionCookie {
        name,
        value,
        set_cookie,
    })
}

pub(super) async fn session_probes(t: &Target, roles: &Roles) -> Vec<ProbeResult> {
    let Some(p) = roles
        .protected
        .iter()
        .find(|p| matches!(p.auth, Auth::Cookie { .. }))
    else {
        return Vec::new();
    };
    let step = p.step;
    let name = step_name(t, step);
    let method = t.step(step).method.clone();
    let mk = |id: &str, sev: Severity, title: &str, sent: String, expected: &str| {
        result(format!("session.{id}[{name}]"), sev, title, sent, expected)
    };
    let refused = "refused (401, 403 or a redirect to the login)";
    let rows = vec![
        mk(
            "none",
            Severity::High,
            "no session cookie is refused",
            format!("{method} {name} without the session cookie"),
            refused,
        ),
        mk(
            "garbage",
            Severity::High,
            "a garbage session cookie is refused",
            format!("{method} {name} with a garbage session cookie"),
            refused,
        ),
        mk(
            "tampered",
            Severity::High,
            "a session cookie with its last characters changed is refused",
            format!("{method} {name} with the session cookie's last 4 characters changed"),
            refused,
        ),
        mk(
            "after_logout",
            Severity::High,
            "the session cookie is refused after logout",
            format!("{method} {name} with the session cookie after logout"),
            refused,
        ),
        mk(
            "httponly",
            Severity::Medium,
            "the session cookie is HttpOnly",
            "the login's Set-Cookie".into(),
            "HttpOnly",
        ),
        mk(
            "secure",
            Severity::Medium,
            "the session cookie is Secure over https",
            "the login's Set-Cookie".into(),
            "Secure",
        ),
        mk(
            "samesite",
            Severity::Low,
            "the session cookie is not SameSite=None",
            "the login's Set-Cookie".into(),
            "SameSite Lax or Strict (or absent)",
        ),
        mk(
            "fixation",
            Severity::High,
            "a cookie planted before login does not become the session",
            "a session cookie set by the client before login, then the login".into(),
            "a new session id after login; the planted one refused",
        ),
        mk(
            "csrf",
            Severity::High,
            "a state-changing request with a foreign Origin is refused",
            "a state-changing step with the session cookie and a foreign Origin".into(),
            "refused (403)",
        ),
    ];
    let Some(login) = roles.login.filter(|&l| l < step) else {
        return rows
            .into_iter()
            .map(|r| r.skip("no login step before the cookie-protected step"))
            .collect();
    };
    let session = match t.prefix(step).await {
        Ok(s) => s,
        Err(e) => return rows.into_iter().map(|r| r.setup_failed(&e)).collect(),
    };
    let Some(cookie) = find_cookie(t, roles, login, &session) else {
        return rows
            .into_iter()
            .map(|r| r.skip("the login set no session cookie"))
            .collect();
    };
    let Some(url) = t.url(step, &session.vars) else {
        return rows
            .into_iter()
            .map(|r| r.skip("the step's URL is not valid"))
            .collect();
    };
    // Control: the session itself works, or refusing the bad ones proves nothing.
    let control = t.send_step("control", step, &session, |p| p).await;
    match &control {
        Ok(rep) if accepted(t, step, &session, rep) => {}
        Ok(rep) if rep.rate_limited() => {
            return rows.into_iter().map(|r| r.limited(rep)).collect();
        }
        Ok(rep) => {
            let why = format!("the valid session itself was refused: {}", rep.brief());
            return rows.into_iter().map(|r| r.skip(why.clone())).collect();
        }
        Err(e) => return rows.into_iter().map(|r| r.unsent(e)).collect(),
    }
    let mut out = Vec::new();
    let mut rows = rows.into_iter();

    // Missing, garbage and tampered cookies.
    for value in [None, Some(jwt::garbage()), Some(tampered(&cookie.value))] {
        let Some(r) = rows.next() else { break };
        let header = session
            .jar
            .header_replacing(&url, &cookie.name, value.as_deref());
        let reply = match t.build(step, &session.vars) {
            Ok(pr) => t.send(&r.id, pr.cookies(header)).await,
            Err(e) => Err(e),
        };
        out.push(judge_refused(t, step, &session, r, &reply));
    }

    // After logout.
    if let Some(r) = rows.next() {
        let row = match roles.logout {
            Some(lo) if lo > login => {
                let mut s = t.fresh();
                let setup = t.advance(&mut s, login + 1).await;
                let before = find_cookie(t, roles, login, &s).map(|c| c.value);
                let setup = match setup {
                    Ok(()) => t.advance(&mut s, lo + 1).await,
                    Err(e) => Err(e),
                };
                match (setup, before) {
                    (Err(e), _) => r.setup_failed(&e),
                    (Ok(()), None) => r.skip("the login set no session cookie"),
                    (Ok(()), Some(v)) => {
                        let header = s.jar.header_replacing(&url, &cookie.name, Some(&v));
                        let reply = match t.build(step, &s.vars) {
                            Ok(pr) => t.send(&r.id, pr.cookies(header)).await,
                            Err(e) => Err(e),
                        };
                        judge_refused(t, step, &s, r, &reply)
                    }
                }
            }
            _ => r.skip("no logout step after the login (set `role = \"logout\"` on one)"),
        };
        out.push(row);
    }

    // Attributes of the Set-Cookie.
    let attrs = cookie.set_cookie.as_ref();
    let set_text = attrs.map(|c| c.to_string()).unwrap_or_default();
    if let Some(r) = rows.next() {
        out.push(match attrs {
            None => r.skip("the session cookie was not set by the login's answer"),
            Some(c) if c.http_only() == Some(true) => r.judged(Outcome::Pass, set_text.clone()),
            Some(_) => r
                .judged(Outcome::Fail, set_text.clone())
                .note("without HttpOnly, any script injected into the site can steal the session"),
        });
    }
    if let Some(r) = rows.next() {
        out.push(match attrs {
            None => r.skip("the session cookie was not set by the login's answer"),
            Some(_) if !t.is_https() => r.skip("the target is http: Secure is checked over https"),
            Some(c) if c.secure() == Some(true) => r.judged(Outcome::Pass, set_text.clone()),
            Some(_) => r
                .judged(Outcome::Fail, set_text.clone())
                .note("without Secure, the session cookie is also sent over plain http"),
        });
    }
    if let Some(r) = rows.next() {
        out.push(match attrs {
            None => r.skip("the session cookie was not set by the login's answer"),
            Some(c) if c.same_site() == Some(cookie::SameSite::None) => r
                .judged(Outcome::Fail, set_text.clone())
                .note("SameSite=None sends the session with every cross-site request"),
            Some(_) => r.judged(Outcome::Pass, set_text.clone()),
        });
    }

    // Fixation.
    if let Some(r) = rows.next() {
        out.push(fixation(t, login, step, &cookie.name, &url, r).await);
    }

    // CSRF.
    if let Some(r) = rows.next() {
        out.push(csrf(t, roles, login, r).await);
    }
    finish(out, rows)
}

/// Rows not reached (a set-up failed part-way) are skipped, so each probe has its row.
fn finish(mut out: Vec<ProbeResult>, rest: impl Iterator<Item = ProbeResult>) -> Vec<ProbeResult> {
    out.extend(rest.map(|r| r.skip("not run: an earlier set-up failed")));
    out
}

async fn fixation(
    t: &Target,
    login: usize,
    step: usize,
    name: &str,
    url: &url::Url,
    r: ProbeResult,
) -> ProbeResult {
    let planted = format!("fixed{:032x}", rand::random::<u128>());
    let mut s = t.fresh();
    if let Some(u) = t.url(0, &s.vars) {
        s.jar.plant(&u, name, &planted);
    }
    if let Err(e) = t.advance(&mut s, login + 1).await {
        return r.setup_failed(&e);
    }
    let after = t
        .url(login, &s.vars)
        .and_then(|u| s.jar.value(name, &u).map(str::to_string));
    if after.as_deref() == Some(planted.as_str()) {
        return r
            .judged(
                Outcome::Fail,
                format!("after login the session cookie is still the planted {name}"),
            )
            .note("session fixation: issue a new session id at login");
    }
    // The planted id must not be a session now either.
    let header = s.jar.header_replacing(url, name, Some(&planted));
    let reply = match t.build(step, &s.vars) {
        Ok(pr) => t.send(&r.id, pr.cookies(header)).await,
        Err(e) => Err(e),
    };
    match reply {
        Err(e) => r.unsent(&e),
        Ok(rep) if rep.rate_limited() => r.limited(&rep),
        Ok(rep) if accepted(t, step, &s, &rep) => r
            .judged(
                Outcome::Fail,
                format!("the planted cookie opens the session: {}", rep.brief()),
            )
            .note("session fixation: issue a new session id at login"),
        Ok(rep) => r.judged(
            Outcome::Pass,
            format!(
                "a new session cookie after login; the planted one: {}",
                rep.brief()
            ),
        ),
    }
}

async fn csrf(t: &Target, roles: &Roles, login: usize, r: ProbeResult) -> ProbeResult {
    let state_changing = |i: usize| {
        !matches!(
            t.step(i).method,
            Method::GET | Method::HEAD | Method::OPTIONS
        )
    };
    let candidate = roles
        .protected
        .iter()
        .filter(|p| matches!(p.auth, Auth::Cookie { .. }))
        .map(|p| p.step)
        .chain(roles.logout)
        .find(|&i| i > login && state_changing(i));
    let Some(step) = candidate else {
        return r.skip(
            "no state-changing step (POST, PUT, PATCH, DELETE) is sent with the session cookie",
        );
    };
    let origin = super::leaks::foreign_origin();
    let r = ProbeResult {
        // Named after the step it sends.
        id: format!("session.csrf[{}]", step_name(t, step)),
        sent: format!(
            "{} {} with the session cookie and Origin: {origin}",
            t.step(step).method,
            step_name(t, step)
        ),
        ..r
    };
    let session = match t.prefix(step).await {
        Ok(s) => s,
        Err(e) => return r.setup_failed(&e),
    };
    let reply = t
        .send_step(&r.id, step, &session, |p| {
            p.header(ORIGIN, &origin)
                .header(REFERER, &format!("{origin}/"))
        })
        .await;
    judge_refused(t, step, &session, r, &reply)
}
