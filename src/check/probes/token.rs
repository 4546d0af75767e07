//! Token probes (`token.*`). On every protected step: the request without a token and
//! with a garbage, forged-signature, `alg: none`, expired or truncated one, each of which
//! must get a 401 (after a control request shows the valid token works). On the step that
//! issues the token: `expires_in` agrees with the JWT's own lifetime, and neither the
//! token nor the response carries the password or a password hash.

use regex::Regex;
use reqwest::header::HeaderName;
use serde_json::Value;

use super::{fields_of, judge_rejection, result, step_name, Settings};
use crate::check::jwt::{self, Jwt};
use crate::check::roles::Roles;
use crate::check::target::{Reply, SendError, SetupError, Target};
use crate::check::{Outcome, ProbeResult, Severity};

pub(super) async fn token_probes(t: &Target, roles: &Roles, s: &Settings) -> Vec<ProbeResult> {
    let mut out = Vec::new();
    for p in &roles.protected {
        let Some((slot, header, _)) = p.token() else {
            continue;
        };
        let header: HeaderName = header.clone();
        let name = step_name(t, p.step);
        let method = t.step(p.step).method.clone();
        let mut cases = vec![
            ("none", "no credential header"),
            ("garbage", "a garbage token"),
            ("bad_signature", "a token with a forged signature"),
            ("alg_none", "a token with alg: none"),
            ("expired", "an expired, correctly signed token"),
            ("truncated", "a truncated token"),
        ];
        if s.jwt_public_key.is_some() {
            cases.push((
                "alg_confusion",
                "an HS256 token signed with the public key as its secret",
            ));
        }
        let ctx = t.prefix(p.step).await;
        // Control: the valid token must work, or refusing the bad ones proves nothing.
        let control = match &ctx {
            Ok(session) => t
                .send_step("control", p.step, session, |pr| pr)
                .await
                .map_err(Problem::Send),
            Err(e) => Err(Problem::Setup(e.clone())),
        };
        let control_problem = match (control, &ctx) {
            (Ok(r), Ok(session)) if t.accepts(p.step, session, &r) => None,
            (Ok(r), _) if r.rate_limited() => Some(Problem::Limited(r)),
            (Ok(r), _) => Some(Problem::Refused(format!(
                "the valid token itself was refused: {}",
                r.brief()
            ))),
            (Err(e), _) => Some(e),
        };
        for (case, what) in cases {
            let id = format!("token.{case}[{name}]");
            let r = result(
                id.clone(),
                Severity::High,
                &format!("{what} is refused"),
                format!("{method} {name} with {what}"),
                "401",
            );
            let session = match (&ctx, &control_problem) {
                (Ok(v), None) => v,
                (_, Some(pr)) => {
                    out.push(pr.judge(r));
                    continue;
                }
                (Err(e), None) => {
                    out.push(r.setup_failed(e));
                    continue;
                }
            };
            let token = session.vars.get(slot).cloned().unwrap_or_default();
            let parsed = Jwt::parse(&token);
            let bad = match case {
                "none" => None,
                "garbage" => Some(jwt::garbage()),
                "truncated" => Some(jwt::truncated(&token)),
                _ => {
                    let Some(j) = &parsed else {
                        out.push(r.skip("the token is not a JWT"));
                        continue;
                    };
                    match case {
                        "bad_signature" => Some(j.bad_signature()),
                        "alg_none" => Some(j.alg_none()),
                        "alg_confusion" => {
                            if j.alg().starts_with("HS") {
                                out.push(r.skip(format!(
                                    "the token is {}: algorithm confusion needs an RS256/ES256 service",
                                    j.alg()
                                )));
                                continue;
                            }
                            match s.jwt_public_key.as_deref().and_then(|k| j.alg_confusion(k)) {
                                Some(tok) => Some(tok),
                                None => {
                                    out.push(r.skip("the token's claims could not be re-signed"));
                                    continue;
                                }
                            }
                        }
                        _ => match forge_expired(j, s) {
                            Ok(tok) => Some(tok),
                            Err(why) => {
                                out.push(r.skip(why));
                                continue;
                            }
                        },
                    }
                }
            };
            let mut v = session.clone();
            let probe = match bad {
                None => t.build_in(p.step, &v).map(|pr| pr.remove_header(&header)),
                Some(b) => {
                    if let Some(x) = v.vars.get_mut(slot) {
                        *x = b;
                    }
                    t.build_in(p.step, &v)
                }
            };
            let reply = match probe {
                Ok(pr) => t.send(&id, pr).await,
                Err(e) => {
                    out.push(r.unsent(&e));
                    continue;
                }
            };
            out.push(judge_rejection(t, p.step, &v, r, &reply, &[401], true));
        }
    }
    out
}

/// Why the control request did not clear the way for the bad tokens.
enum Problem {
    Setup(SetupError),
    Send(SendError),
    Refused(String),
    Limited(Reply),
}

impl Problem {
    fn judge(&self, r: ProbeResult) -> ProbeResult {
        match self {
            Problem::Setup(e) => r.setup_failed(e),
            Problem::Send(e) => r.unsent(e),
            Problem::Refused(why) => r.skip(why.clone()),
            Problem::Limited(rep) => r.limited(rep),
        }
    }
}

/// An expired token signed as the target signs: with `--jwt-secret` (HS256) or
/// `--jwt-private-key` (RS256/ES256); `Err` says why it cannot be made.
fn forge_expired(j: &Jwt, s: &Settings) -> Result<String, String> {
    match j.alg() {
        "HS256" => match &s.jwt_secret {
            Some(secret) => j
                .expired(secret.as_bytes())
                .ok_or_else(|| "the token's claims are not an object".into()),
            None => Err("needs the target's signing secret: pass --jwt-secret to forge an expired HS256 token".into()),
        },
        alg => match &s.jwt_key {
            Some(key) => j.expired_with(key).ok_or_else(|| {
                format!("the token is {alg}, which the key given with --jwt-private-key cannot sign")
            }),
            None => Err(format!(
                "the token is {alg}: pass the private key the target signs with (--jwt-private-key, PEM) to forge an expired one"
            )),
        },
    }
}

/// `expires_in` against the token's own lifetime, and no secrets in token or response.
pub(super) async fn token_content_probes(t: &Target, roles: &Roles) -> Vec<ProbeResult> {
    let expiry = result(
        "token.expires_in",
        Severity::Low,
        "expires_in agrees with exp - iat",
        "the flow up to the step that returns the token",
        "|expires_in - (exp - iat)| <= 2 s",
    );
    let secrets = result(
        "token.no_secrets",
        Severity::High,
        "the token and response carry no password or hash",
        "the flow up to the step that returns the token",
        "no password, no password hash, no password field",
    );
    let Some(src) = &roles.token else {
        return vec![
            expiry.skip("no step returns a token (a protected step's, or the login's)"),
            secrets.skip("no step returns a token (a protected step's, or the login's)"),
        ];
    };
    let session = match t.prefix(src.step + 1).await {
        Ok(x) => x,
        Err(e) => return vec![expiry.setup_failed(&e), secrets.setup_failed(&e)],
    };
    let (vars, replies) = (&session.vars, &session.replies);
    let reply = &replies[src.step];
    let body = reply.json().unwrap_or(Value::Null);
    let token = vars.get(src.slot).cloned().unwrap_or_default();
    let jwt = Jwt::parse(&token);

    let expiry = {
        // `expires_in` next to the token, e.g. /access_token → /expires_in.
        let parent = src.pointer.rsplit_once('/').map_or("", |(p, _)| p);
        let expires_in = body
            .pointer(&format!("{parent}/expires_in"))
            .and_then(Value::as_f64);
        match (expires_in, jwt.as_ref().and_then(Jwt::lifetime)) {
            (None, _) => expiry.skip("the response has no expires_in next to the token"),
            (_, None) => expiry.skip("the token is not a JWT with numeric iat and exp"),
            (Some(e), Some(l)) => {
                let got = format!("expires_in {e}, exp - iat {l}");
                if (e - l as f64).abs() <= 2.0 {
                    expiry.judged(Outcome::Pass, got)
                } else {
                    expiry.judged(Outcome::Fail, got)
                }
            }
        }
    };

    let secrets = {
        let password = roles
            .login_fields
            .as_ref()
            .map(|f| (src.step, f))
            .or(roles.register_fields.as_ref().map(|f| (src.step, f)))
            .and_then(|(i, f)| fields_of(t, i, vars).and_then(|b| b.get(&f.password)))
            .unwrap_or_default();
        let claims = jwt
            .as_ref()
            .map(|j| j.claims.to_string())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        let hash = Regex::new(r"\$2[abxy]?\$\d{2}\$|\$argon2|pbkdf2_sha|\$scrypt\$")
            .map(|re| re.is_match(&claims) || re.is_match(&text))
            .unwrap_or(false);
        let mut keys = Vec::new();
        collect_secret_keys(&body, &mut keys);
        if let Some(j) = &jwt {
            collect_secret_keys(&j.claims, &mut keys);
        }
        let leaked_password =
            password.len() >= 4 && (claims.contains(&password) || text.contains(&password));
        let mut problems = Vec::new();
        if leaked_password {
            problems.push("the password itself".to_string());
        }
        if hash {
            problems.push("a password hash".to_string());
        }
        if !keys.is_empty() {
            problems.push(format!("fields named {}", keys.join(", ")));
        }
        if problems.is_empty() {
            secrets.judged(
                Outcome::Pass,
                format!(
                    "claims: {}",
                    jwt.as_ref()
                        .and_then(|j| j.claims.as_object().map(|o| o
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")))
                        .unwrap_or_else(|| "(not a JWT)".into())
                ),
            )
        } else {
            secrets.judged(Outcome::Fail, format!("found {}", problems.join("; ")))
        }
    };
    let mut out = vec![expiry, secrets];
    for r in &mut out {
        r.request = session.requests.get(src.step).cloned();
        r.response = Some(reply.excerpt(160)).map(|b| format!("{} {b}", reply.status));
    }
    out
}

/// Keys that name a password or its hash, anywhere in a JSON value.
fn collect_secret_keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let l = k.to_ascii_lowercase();
                if l.contains("password")
                    || l.contains("passwd")
                    || l == "hash"
                    || l.ends_with("_hash")
                {
                    out.push(k.clone());
                }
                collect_secret_keys(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_secret_keys(x, out)),
        _ => {}
    }
}

/// `token.after_logout[step]`: the flow run through its logout step, then the first
/// token-protected step sent with the token the logout ended (the one the logout sends
/// in the same header, else the step's own). Rows only when the scenario has a logout
/// after a token-protected step's login.
pub(super) async fn after_logout_probes(t: &Target, roles: &Roles) -> Vec<ProbeResult> {
    let Some(lo) = roles.logout else {
        return Vec::new();
    };
    let Some(p) = roles.protected.iter().find(|p| p.token().is_some()) else {
        return Vec::new();
    };
    let Some((slot, header, _)) = p.token() else {
        return Vec::new();
    };
    let header = header.clone();
    let name = step_name(t, p.step);
    let logout_slot = crate::check::roles::header_token(&t.scenario, lo)
        .filter(|(h, _)| *h == header)
        .map(|(_, s)| s);
    let r = result(
        format!("token.after_logout[{name}]"),
        Severity::Medium,
        "the token is refused after logout",
        format!(
            "{} {name} with the token after step {} logged it out",
            t.step(p.step).method,
            step_name(t, lo)
        ),
        "401",
    );
    let mut session = match t.prefix(lo + 1).await {
        Ok(s) => s,
        Err(e) => return vec![r.setup_failed(&e)],
    };
    if let Some(ls) = logout_slot {
        let value = session.vars.get(ls).cloned().unwrap_or_default();
        if let Some(x) = session.vars.get_mut(slot) {
            *x = value;
        }
    }
    let reply = t.send_step(&r.id, p.step, &session, |pr| pr).await;
    let j = judge_rejection(t, p.step, &session, r, &reply, &[401], false);
    vec![
        if j.outcome == Outcome::Fail && !reply.as_ref().is_ok_and(|x| x.is_server_error()) {
            j.note("the token still works after logout: revoke it (a deny list, or short-lived tokens with server-side sessions)")
        } else {
            j
        },
    ]
}
