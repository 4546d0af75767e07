//! The `code.*` probes, for a scenario with an OAuth 2.0 authorization code flow: a step
//! in the role `authorize` (its request carries `code_challenge` or `response_type=code`)
//! and one in the role `token` (its form sends `grant_type=authorization_code`), each
//! declared with `role = "..."` or inferred from those parameters.
//!
//! Each probe gets a code of its own (the flow replayed up to the token step: a code is
//! single use), then sends the token request with one thing changed:
//!
//! * `code.pkce_missing`, `code.pkce_wrong`: no `code_verifier`, or another one, must be
//!   refused (RFC 7636 section 4.6; accepting them is a PKCE downgrade);
//! * `code.reuse`: the same code a second time must be refused (RFC 6749 section 4.1.2);
//! * `code.redirect_uri`: a `redirect_uri` other than the one the code was issued for
//!   must be refused at the token endpoint (RFC 6749 section 4.1.3), and an authorization
//!   request with an unregistered one must not redirect there (section 3.1.2.4);
//! * `code.state`: the redirect that carries the code returns `state` unchanged (section
//!   4.1.2).

use url::Url;

use super::{fields_of, judge_rejection, result, with_fields};
use crate::check::target::{Reply, Session, Target};
use crate::check::{Outcome, ProbeResult, Severity};
use crate::scenario::{Role, Step};

/// A `redirect_uri` no client registers.
const FOREIGN_REDIRECT: &str = "https://authbench-attacker.invalid/cb";

/// The authorize and token steps, when the scenario has a code flow.
pub(crate) fn code_steps(t: &Target) -> Option<(usize, usize)> {
    let steps = &t.scenario.steps;
    let declared = |r: Role| steps.iter().position(|s| s.role == Some(r));
    let vars = t.fresh_vars();
    let authorize = declared(Role::Authorize).or_else(|| {
        (0..steps.len()).find(|&i| {
            steps[i].role.is_none()
                && t.url(i, &vars).is_some_and(|u| {
                    u.query_pairs().any(|(k, v)| {
                        k == "code_challenge" || (k == "response_type" && v == "code")
                    })
                })
        })
    })?;
    let token = declared(Role::Token).or_else(|| {
        (authorize + 1..steps.len()).find(|&i| {
            steps[i].role.is_none()
                && fields_of(t, i, &vars)
                    .is_some_and(|f| f.get("grant_type").as_deref() == Some("authorization_code"))
        })
    })?;
    (token > authorize).then_some((authorize, token))
}

pub(super) async fn code_flow_probes(t: &Target) -> Vec<ProbeResult> {
    let Some((authorize, token)) = code_steps(t) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let missing = result(
        "code.pkce_missing",
        Severity::High,
        "token request without the PKCE code_verifier",
        "the token step without `code_verifier`",
        "refused (4xx): a code issued for a challenge needs its verifier",
    );
    out.push(altered_token(t, token, missing, |f| f.remove("code_verifier")).await);
    let wrong = result(
        "code.pkce_wrong",
        Severity::High,
        "token request with a wrong PKCE code_verifier",
        "the token step with another valid-looking verifier",
        "refused (4xx): the verifier must match the challenge",
    );
    let other = crate::scenario::functions::pkce_verifier();
    out.push(altered_token(t, token, wrong, |f| f.set("code_verifier", &other)).await);
    let redirect = result(
        "code.redirect_uri",
        Severity::High,
        "token request with another redirect_uri",
        format!("the token step with redirect_uri={FOREIGN_REDIRECT}"),
        "refused (4xx): the code was issued for another redirect_uri",
    );
    out.push(
        altered_token(t, token, redirect, |f| {
            f.set("redirect_uri", FOREIGN_REDIRECT)
        })
        .await,
    );
    out.push(reuse_probe(t, token).await);
    out.push(foreign_redirect_probe(t, authorize).await);
    out.push(state_probe(t, authorize, token).await);
    out
}

/// A fresh code (the steps before `token` run), then the token request with `alter`
/// applied to its form, judged as a request that must be refused.
async fn altered_token(
    t: &Target,
    token: usize,
    r: ProbeResult,
    alter: impl FnOnce(&mut crate::check::body::Fields),
) -> ProbeResult {
    let session = match t.prefix(token).await {
        Ok(s) => s,
        Err(e) => return r.setup_failed(&e),
    };
    let Some(mut fields) = fields_of(t, token, &session.vars) else {
        return r.skip("the token step's body is not a form or a JSON object");
    };
    alter(&mut fields);
    let reply = match with_fields(t, token, &session, &fields) {
        Ok(p) => t.send(&r.id, p).await,
        Err(e) => Err(e),
    };
    judge_rejection(t, token, &session, r, &reply, &[400], false)
}

/// The token request twice with one code: the second must be refused.
async fn reuse_probe(t: &Target, token: usize) -> ProbeResult {
    let r = result(
        "code.reuse",
        Severity::High,
        "authorization code used twice",
        "the token step, then the same request again",
        "the second refused (4xx): a code is single use (RFC 6749 4.1.2)",
    );
    let mut session = match t.prefix(token).await {
        Ok(s) => s,
        Err(e) => return r.setup_failed(&e),
    };
    let vars_before = session.vars.clone();
    if let Err(e) = t.run_step(token, &mut session).await {
        return r.setup_failed(&e);
    }
    // The same request: the variables as they were when the code was exchanged.
    let again = Session {
        vars: vars_before,
        ..session.clone()
    };
    let reply = t.send_step(&r.id, token, &again, |p| p).await;
    judge_rejection(t, token, &again, r, &reply, &[400], false)
}

/// The authorization request with an unregistered `redirect_uri`: it must not redirect
/// there (the provider shows an error instead).
async fn foreign_redirect_probe(t: &Target, authorize: usize) -> ProbeResult {
    let r = result(
        "code.redirect_uri_authorize",
        Severity::High,
        "authorization request with an unregistered redirect_uri",
        format!("the authorize step with redirect_uri={FOREIGN_REDIRECT}"),
        "an error, never a redirect to that URI (RFC 6749 3.1.2.4)",
    );
    let session = match t.prefix(authorize).await {
        Ok(s) => s,
        Err(e) => return r.setup_failed(&e),
    };
    let mut probe = match t.build_in(authorize, &session) {
        Ok(p) => p,
        Err(e) => return r.unsent(&e),
    };
    let url = probe.request.url().clone();
    if !url.query_pairs().any(|(k, _)| k == "redirect_uri") {
        return r.skip("the authorize step sends no redirect_uri");
    }
    *probe.request.url_mut() = with_query(&url, "redirect_uri", FOREIGN_REDIRECT);
    match t.send(&r.id, probe).await {
        Err(e) => r.unsent(&e),
        Ok(rep) if rep.rate_limited() => r.limited(&rep),
        Ok(rep) => {
            let loc = location(&rep);
            if loc
                .as_deref()
                .is_some_and(|l| l.starts_with(FOREIGN_REDIRECT))
            {
                r.judged(Outcome::Fail, rep.brief())
                    .note("redirected to an unregistered redirect_uri: codes (or errors) go to whoever names one")
            } else if rep.is_client_error()
                || (rep.is_success() && !accepted_authorize(t.step(authorize), &rep))
            {
                r.judged(Outcome::Pass, rep.brief())
            } else {
                r.judged(Outcome::Warn, rep.brief())
                    .note("not refused with a 4xx, though not redirected to that URI either")
            }
        }
    }
}

/// Whether an answer to the authorize step looks like its usual success (a login page
/// it extracts from): a 200 to an unregistered redirect_uri is then suspicious.
fn accepted_authorize(step: &Step, rep: &Reply) -> bool {
    step.expect.contains(rep.status) && rep.status < 300
}

/// The redirect carrying the code returns the `state` the authorize step sent.
async fn state_probe(t: &Target, authorize: usize, token: usize) -> ProbeResult {
    let r = result(
        "code.state",
        Severity::Medium,
        "state returned unchanged",
        "the flow up to the token step",
        "the redirect with `code` carries the `state` sent, unchanged (RFC 6749 4.1.2)",
    );
    let session = match t.prefix(token).await {
        Ok(s) => s,
        Err(e) => return r.setup_failed(&e),
    };
    let sent = t
        .url(authorize, &session.vars)
        .and_then(|u| query(&u, "state"));
    let Some(sent) = sent else {
        return r.skip("the authorize step sends no `state`");
    };
    let back = session.replies.iter().find_map(|rep| {
        let loc = location(rep)?;
        let u = Url::parse(&loc)
            .or_else(|_| Url::parse("http://x/")?.join(&loc))
            .ok()?;
        query(&u, "code").map(|_| query(&u, "state"))
    });
    match back {
        None => r.skip("no answer of the flow redirected with a `code` (the scenario's redirect is followed, or the code comes otherwise)"),
        Some(Some(s)) if s == sent => r.judged(Outcome::Pass, format!("state={s}")),
        Some(Some(s)) => r.judged(Outcome::Fail, format!("state={s}, sent {sent}")),
        Some(None) => r
            .judged(Outcome::Fail, "no state in the redirect")
            .note(format!("sent state={sent}")),
    }
}

fn location(rep: &Reply) -> Option<String> {
    rep.headers
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()
        .map(str::to_string)
}

fn query(u: &Url, key: &str) -> Option<String> {
    u.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// `url` with the query parameter `key` set to `value` (the others kept in order).
fn with_query(url: &Url, key: &str, value: &str) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == key {
                value.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(pairs);
    out
}
