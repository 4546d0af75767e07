//! Token probes (`token.*`). On every protected step: the request without a token and
//! with a garbage, forged-signature, `alg: none`, expired or truncated one, each of which
//! must get a 401 (after a control request shows the valid token works). On the step that
//! issues the token: `expires_in` agrees with the JWT's own lifetime, and neither the
//! token nor the response carries the password or a password hash.

use regex::Regex;
use reqwest::header::HeaderName;
use serde_json::Value;

use super::{judge_rejection, result, step_name, Settings};
use crate::check::jwt::{self, Jwt};
use crate::check::roles::Roles;
use crate::check::target::Target;
use crate::check::{Outcome, ProbeResult, Severity};

pub(super) async fn token_probes(t: &Target, roles: &Roles, s: &Settings) -> Vec<ProbeResult> {
    let mut out = Vec::new();
    for p in &roles.protected {
        let name = step_name(t, p.step);
        let header = HeaderName::from_static("authorization");
        let method = t.step(p.step).method.clone();
        let cases = [
            ("none", "no Authorization header"),
            ("garbage", "a garbage token"),
            ("bad_signature", "a token with a forged signature"),
            ("alg_none", "a token with alg: none"),
            ("expired", "an expired, correctly signed token"),
            ("truncated", "a truncated token"),
        ];
        let ctx = t.prefix(p.step).await;
        // Control: the valid token must work, or refusing the bad ones proves nothing.
        let control = match &ctx {
            Ok((vars, _)) => match t.build(p.step, vars) {
                Ok(pr) => t.send("control", pr).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(format!("setup failed: {e}")),
        };
        let control_problem = match &control {
            Ok(r) if r.is_success() => None,
            Ok(r) => Some(format!("the valid token itself was refused: {}", r.brief())),
            Err(e) => Some(e.clone()),
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
            let (vars, problem) = match (&ctx, &control_problem) {
                (Ok((v, _)), None) => (v, None),
                (_, Some(pr)) => (&Vec::new(), Some(pr.clone())),
                (Err(e), None) => (&Vec::new(), Some(e.clone())),
            };
            if let Some(pr) = problem {
                out.push(r.skip(pr));
                continue;
            }
            let token = vars.get(p.slot).cloned().unwrap_or_default();
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
                        _ => match (&s.jwt_secret, j.expired(b"")) {
                            (None, _) => {
                                out.push(r.skip(
                                    "needs the target's signing secret: pass --jwt-secret to forge an expired token",
                                ));
                                continue;
                            }
                            (Some(_), None) => {
                                out.push(r.skip(format!(
                                    "the token is {}, --jwt-secret forges HS256 only",
                                    j.alg()
                                )));
                                continue;
                            }
                            (Some(secret), Some(_)) => j.expired(secret.as_bytes()),
                        },
                    }
                }
            };
            let mut v = vars.clone();
            let probe = match bad {
                None => t.build(p.step, &v).map(|pr| pr.remove_header(&header)),
                Some(b) => {
                    v[p.slot] = b;
                    t.build(p.step, &v)
                }
            };
            let reply = match probe {
                Ok(pr) => t.send(&id, pr).await,
                Err(e) => {
                    out.push(r.skip(e.to_string()));
                    continue;
                }
            };
            out.push(judge_rejection(r, &reply, &[401], true));
        }
    }
    out
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
            expiry.skip("no step returns a token a protected step uses"),
            secrets.skip("no step returns a token a protected step uses"),
        ];
    };
    let (vars, replies) = match t.prefix(src.step + 1).await {
        Ok(x) => x,
        Err(e) => {
            return vec![
                expiry.skip(format!("setup failed: {e}")),
                secrets.skip(format!("setup failed: {e}")),
            ]
        }
    };
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
            .and_then(|(i, f)| {
                t.json_body(i, &vars)
                    .and_then(|b| b[&f.password].as_str().map(str::to_string))
            })
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
    vec![expiry, secrets]
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
