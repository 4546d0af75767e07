//! The probes. Each sends requests built from a scenario step with one thing changed and
//! judges the answer; every probe yields [`ProbeResult`]s, never an error: a probe that
//! cannot run (no login step, setup failed, no JWT) is a `skip` that says why.
//!
//! Order matters a little: the brute-force burst runs last but one (it locks an account
//! on a rate-limited service, so it gets its own), and the leak scan last, over every
//! error body the others provoked.

use std::time::Duration;

use regex::Regex;
use reqwest::header::{HeaderName, CONTENT_TYPE, RETRY_AFTER};
use serde_json::Value;
use tokio::task::JoinSet;

use super::jwt::{self, Jwt};
use super::roles::{Fields, Roles};
use super::target::{send_with, Reply, SendError, Target};
use super::timing::{mann_whitney, median};
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

/// Wrong-password attempts per account in the timing probe: under the per-account login
/// limits services commonly use (5), so the probe measures hashing, not throttling.
const ATTEMPTS_PER_ACCOUNT: usize = 4;
/// Significance level of the timing test.
const ALPHA: f64 = 0.01;
/// A gap below this is noise on any network path, whatever the test says.
const GAP_FLOOR_MS: f64 = 0.5;

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
    let mut out = vec![roles_probe(t, roles)];
    out.extend(api_key_probes(t, roles).await);
    out.extend(token_probes(t, roles, s).await);
    out.extend(register_probes(t, roles, s).await);
    out.extend(login_probes(t, roles).await);
    out.extend(token_content_probes(t, roles).await);
    out.push(timing_probe(t, roles, s).await);
    out.push(brute_force_probe(t, roles, s).await);
    out.push(leak_probe(t));
    out
}

fn step_name(t: &Target, i: usize) -> String {
    t.step(i).name.to_string()
}

fn roles_probe(t: &Target, roles: &Roles) -> ProbeResult {
    let s = roles.summary(&t.scenario);
    let got = format!(
        "register: {}, login: {}, protected: {}, API key on: {}",
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
    .note("inferred from the steps: see docs/check.md")
}

// ---- API key ------------------------------------------------------------------------

async fn api_key_probes(t: &Target, roles: &Roles) -> Vec<ProbeResult> {
    let mut out = Vec::new();
    for (i, header) in &roles.api_key {
        let name = step_name(t, *i);
        // The register step gets a fresh identity per request, so an accepted request
        // cannot hide the next one behind "email already registered".
        let fresh = Some(*i) == roles.register;
        let ctx = if fresh {
            Ok(Vec::new())
        } else {
            t.prefix(*i).await.map(|p| p.0)
        };
        let cases: [(&str, &str, Option<&str>); 3] = [
            ("missing", "no API key header", None),
            ("wrong", "a wrong API key", Some("wrong")),
            ("empty", "an empty API key", Some("")),
        ];
        for (case, what, value) in cases {
            let id = format!("apikey.{case}[{name}]");
            let r = result(
                id.clone(),
                Severity::High,
                &format!("{what} is refused"),
                format!("{} {} with {what} ({header})", t.step(*i).method, name),
                "401 or 403",
            );
            let vars = match &ctx {
                Ok(_) if fresh => t.fresh_vars(),
                Ok(v) => v.clone(),
                Err(e) => {
                    out.push(r.skip(format!("setup failed: {e}")));
                    continue;
                }
            };
            let probe = match t.build(*i, &vars) {
                Ok(p) => p,
                Err(e) => {
                    out.push(r.skip(e.to_string()));
                    continue;
                }
            };
            let probe = match value {
                None => probe.remove_header(header),
                Some("wrong") => {
                    let mut v = vars.clone();
                    v[crate::scenario::SLOT_API_KEY] = format!("wrong-{}", jwt::garbage());
                    match t.build(*i, &v) {
                        Ok(p) => p,
                        Err(e) => {
                            out.push(r.skip(e.to_string()));
                            continue;
                        }
                    }
                }
                Some(v) => probe.header(header.clone(), v),
            };
            let reply = t.send(&id, probe).await;
            out.push(judge_rejection(r, &reply, &[401, 403], true));
        }
    }
    out
}

// ---- tokens on protected steps ------------------------------------------------------

async fn token_probes(t: &Target, roles: &Roles, s: &Settings) -> Vec<ProbeResult> {
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

// ---- registration -------------------------------------------------------------------

/// A register request for `vars` with its JSON body replaced by `body`.
fn with_body(
    t: &Target,
    i: usize,
    vars: &[String],
    body: &Value,
) -> Result<super::target::Probe, SendError> {
    t.build(i, vars).map(|p| p.json_body(body))
}

async fn register_probes(t: &Target, roles: &Roles, s: &Settings) -> Vec<ProbeResult> {
    let mut out = Vec::new();
    let titles: [(&str, Severity, &str, &str); 8] = [
        (
            "duplicate",
            Severity::High,
            "a duplicate email is refused",
            "4xx",
        ),
        (
            "race",
            Severity::High,
            "concurrent registrations of one email: one wins",
            "exactly one 2xx, no 5xx",
        ),
        (
            "short_password",
            Severity::Medium,
            "a 3-character password is refused",
            "4xx",
        ),
        (
            "missing_fields",
            Severity::Medium,
            "bodies missing a field are refused",
            "4xx for each",
        ),
        (
            "malformed_json",
            Severity::Medium,
            "malformed JSON is refused",
            "4xx",
        ),
        (
            "content_type",
            Severity::Low,
            "a non-JSON content type is refused",
            "4xx (415)",
        ),
        (
            "large_body",
            Severity::Medium,
            "a 1 MiB body is refused",
            "4xx (413)",
        ),
        (
            "long_password",
            Severity::High,
            "bcrypt's 72-byte limit is handled",
            "over-long refused, or both tails distinct",
        ),
    ];
    let (Some(reg), Some(fields)) = (roles.register, roles.register_fields.clone()) else {
        return titles
            .iter()
            .map(|(id, sev, title, exp)| {
                result(format!("register.{id}"), *sev, title, "–", exp)
                    .skip("no register step found in the scenario")
            })
            .collect();
    };
    let name = step_name(t, reg);
    let probe_result = |k: usize, sent: String| {
        let (id, sev, title, exp) = titles[k];
        result(format!("register.{id}"), sev, title, sent, exp)
    };

    // Duplicate.
    {
        let r = probe_result(0, format!("{name} twice with one email"));
        let mut vars = t.fresh_vars();
        match t.run_step(reg, &mut vars).await {
            Err(e) => out.push(r.skip(format!("the first registration failed: {e}"))),
            Ok(_) => {
                let reply = match t.build(reg, &vars) {
                    Ok(p) => t.send("register.duplicate", p).await,
                    Err(e) => Err(e),
                };
                out.push(judge_rejection(r, &reply, &[400, 409, 422], false));
            }
        }
    }

    // Race.
    {
        let r = probe_result(
            1,
            format!("{} concurrent {name} requests with one new email", s.race),
        );
        let vars = t.fresh_vars();
        let mut set = JoinSet::new();
        let mut build_error = None;
        for _ in 0..s.race {
            match t.build(reg, &vars) {
                Ok(p) => {
                    let client = t.client.clone();
                    set.spawn(async move { send_with(&client, p.request).await });
                }
                Err(e) => build_error = Some(e),
            }
        }
        if let Some(e) = build_error {
            set.abort_all();
            out.push(r.skip(e.to_string()));
        } else {
            let (mut ok, mut server_err, mut client_err, mut broken) = (0, 0, 0, 0);
            while let Some(j) = set.join_next().await {
                match j {
                    Ok(Ok(rep)) if rep.is_success() => ok += 1,
                    Ok(Ok(rep)) if rep.is_server_error() => server_err += 1,
                    Ok(Ok(_)) => client_err += 1,
                    _ => broken += 1,
                }
            }
            let got = format!(
                "{ok} × 2xx, {client_err} × 4xx, {server_err} × 5xx, {broken} without a response"
            );
            out.push(if ok == 1 && server_err == 0 && broken == 0 {
                r.judged(Outcome::Pass, got)
            } else if ok > 1 {
                r.judged(Outcome::Fail, got)
                    .note("several registrations of one email succeeded: the duplicate check races")
            } else {
                r.judged(Outcome::Fail, got)
            });
        }
    }

    let body_of = |vars: &[String]| t.json_body(reg, vars).filter(Value::is_object);

    // Short password.
    {
        let r = probe_result(2, format!("{name} with password \"a1!\""));
        let vars = t.fresh_vars();
        match body_of(&vars) {
            None => out.push(r.skip("the register body is not a JSON object")),
            Some(mut b) => {
                b[&fields.password] = "a1!".into();
                let reply = match with_body(t, reg, &vars, &b) {
                    Ok(p) => t.send("register.short_password", p).await,
                    Err(e) => Err(e),
                };
                out.push(judge_rejection(r, &reply, &[400, 422], false));
            }
        }
    }

    // Missing fields.
    {
        let mut drops: Vec<String> = vec![fields.password.clone()];
        drops.extend(fields.identity.clone());
        let sent = format!("{name} without {} and with {{}}", drops.join(", without "));
        let r = probe_result(3, sent);
        let vars = t.fresh_vars();
        match body_of(&vars) {
            None => out.push(r.skip("the register body is not a JSON object")),
            Some(b) => {
                let mut bodies: Vec<Value> = drops
                    .iter()
                    .map(|k| {
                        let mut b = b.clone();
                        if let Some(o) = b.as_object_mut() {
                            o.remove(k);
                        }
                        b
                    })
                    .collect();
                bodies.push(Value::Object(Default::default()));
                let mut worst: Option<ProbeResult> = None;
                let mut gots = Vec::new();
                for body in &bodies {
                    let reply = match with_body(t, reg, &vars, body) {
                        Ok(p) => t.send("register.missing_fields", p).await,
                        Err(e) => Err(e),
                    };
                    let j = judge_rejection(r.clone(), &reply, &[400, 422], false);
                    gots.push(j.got.clone());
                    if worst
                        .as_ref()
                        .is_none_or(|w| rank(j.outcome) > rank(w.outcome))
                    {
                        worst = Some(j);
                    }
                }
                if let Some(w) = worst {
                    let outcome = w.outcome;
                    let mut w = w.judged(outcome, gots.join("; "));
                    if outcome == Outcome::Pass {
                        w.note = None;
                    }
                    out.push(w);
                }
            }
        }
    }

    // Malformed JSON.
    {
        let r = probe_result(4, format!("{name} with the body cut in half"));
        let vars = t.fresh_vars();
        let text = body_of(&vars)
            .map(|b| b.to_string())
            .unwrap_or_else(|| "{\"a\":".into());
        let half = text.as_bytes()[..text.len() / 2].to_vec();
        let reply = match t.build(reg, &vars) {
            Ok(p) => {
                t.send(
                    "register.malformed_json",
                    p.header(CONTENT_TYPE, "application/json").body(half),
                )
                .await
            }
            Err(e) => Err(e),
        };
        out.push(judge_rejection(r, &reply, &[400, 422], false));
    }

    // Content type.
    {
        let r = probe_result(
            5,
            format!("{name} with a valid body as Content-Type: text/plain"),
        );
        let vars = t.fresh_vars();
        let reply = match t.build(reg, &vars) {
            Ok(p) => {
                t.send(
                    "register.content_type",
                    p.header(CONTENT_TYPE, "text/plain"),
                )
                .await
            }
            Err(e) => Err(e),
        };
        out.push(judge_rejection(r, &reply, &[415, 400, 422], false));
    }

    // Large body.
    {
        let r = probe_result(
            6,
            format!("{name} with a 1 MiB JSON body (a long extra field)"),
        );
        let vars = t.fresh_vars();
        let mut b = body_of(&vars).unwrap_or_else(|| Value::Object(Default::default()));
        b["padding"] = "a".repeat(1 << 20).into();
        let reply = match with_body(t, reg, &vars, &b) {
            Ok(p) => t.send("register.large_body", p).await,
            Err(e) => Err(e),
        };
        let j = judge_rejection(r, &reply, &[413], false);
        out.push(match &reply {
            Err(_) => {
                j.note("the server closed the connection instead of answering; a 413 is clearer")
            }
            Ok(rep) if rep.status != 413 && j.outcome == Outcome::Pass => {
                j.note("413 is the precise status")
            }
            _ => j,
        });
    }

    // Passwords over bcrypt's 72 bytes.
    out.push(long_password_probe(t, roles, reg, &fields, probe_result(7, String::new())).await);
    out
}

fn rank(o: Outcome) -> u8 {
    match o {
        Outcome::Pass => 0,
        Outcome::Skip => 1,
        Outcome::Warn => 2,
        Outcome::Fail => 3,
    }
}

async fn long_password_probe(
    t: &Target,
    roles: &Roles,
    reg: usize,
    fields: &Fields,
    mut r: ProbeResult,
) -> ProbeResult {
    let prefix: String = format!("Lp9-{}", "x".repeat(68));
    let (p1, p2) = (format!("{prefix}-tail-one"), format!("{prefix}-tail-two"));
    r.sent =
        "register with an 81-byte password, then log in with another sharing its first 72 bytes"
            .to_string();
    let vars = t.fresh_vars();
    let Some(mut b) = t.json_body(reg, &vars).filter(Value::is_object) else {
        return r.skip("the register body is not a JSON object");
    };
    b[&fields.password] = p1.into();
    let reply = match with_body(t, reg, &vars, &b) {
        Ok(p) => t.send("register.long_password", p).await,
        Err(e) => Err(e),
    };
    let rep = match reply {
        Err(e) => return r.judged(Outcome::Warn, e.to_string()),
        Ok(rep) => rep,
    };
    if rep.is_server_error() {
        return r.judged(Outcome::Fail, rep.brief());
    }
    if rep.is_client_error() {
        return r
            .judged(Outcome::Pass, format!("register: {}", rep.brief()))
            .note("over-long passwords are refused");
    }
    let (Some(login), Some(lf)) = (roles.login, &roles.login_fields) else {
        return r.skip("accepted the long password, and there is no login step to test it");
    };
    let Some(mut lb) = t.json_body(login, &vars).filter(Value::is_object) else {
        return r.skip("the login body is not a JSON object");
    };
    lb[&lf.password] = p2.into();
    let reply = match with_body(t, login, &vars, &lb) {
        Ok(p) => t.send("register.long_password", p).await,
        Err(e) => Err(e),
    };
    match reply {
        Err(e) => r.judged(Outcome::Warn, e.to_string()),
        Ok(l) if l.is_success() => r
            .judged(
                Outcome::Fail,
                format!(
                    "register: {}, login with the other password: {}",
                    rep.status,
                    l.brief()
                ),
            )
            .note("only the first 72 bytes count: reject longer passwords or pre-hash them"),
        Ok(l) if l.is_server_error() => r.judged(Outcome::Fail, l.brief()),
        Ok(l) if l.status == 429 => r
            .judged(Outcome::Warn, l.brief())
            .note("rate-limited before it could be tested"),
        Ok(l) => r
            .judged(
                Outcome::Pass,
                format!(
                    "register: {}, login with the other password: {}",
                    rep.status,
                    l.brief()
                ),
            )
            .note("long passwords are accepted and the bytes past 72 count"),
    }
}

// ---- login --------------------------------------------------------------------------

/// The login request for `vars` with the password replaced.
fn wrong_password(
    t: &Target,
    login: usize,
    fields: &Fields,
    vars: &[String],
) -> Result<super::target::Probe, SendError> {
    let mut b = t
        .json_body(login, vars)
        .filter(Value::is_object)
        .ok_or_else(|| SendError::Build(step_name(t, login)))?;
    b[&fields.password] = format!("Wrong-{}", jwt::garbage()).into();
    with_body(t, login, vars, &b)
}

/// A registered identity: a fresh identity with every step before `login` run.
async fn registered(t: &Target, login: usize) -> Result<Vec<String>, String> {
    t.prefix(login).await.map(|p| p.0)
}

async fn login_probes(t: &Target, roles: &Roles) -> Vec<ProbeResult> {
    let r = result(
        "login.enumeration",
        Severity::Medium,
        "unknown user and wrong password answer alike",
        "login as an unknown email; login as a registered user with a wrong password",
        "the same status and body",
    );
    let (Some(login), Some(fields)) = (roles.login, &roles.login_fields) else {
        return vec![r.skip("no login step found in the scenario")];
    };
    if roles.register.is_none() {
        return vec![r.skip("no register step to create a known user")];
    }
    let known = match registered(t, login).await {
        Ok(v) => v,
        Err(e) => return vec![r.skip(format!("setup failed: {e}"))],
    };
    let unknown = t.fresh_vars();
    let a = match t.build(login, &unknown) {
        Ok(p) => t.send("login.enumeration", p).await,
        Err(e) => Err(e),
    };
    let b = match wrong_password(t, login, fields, &known) {
        Ok(p) => t.send("login.enumeration", p).await,
        Err(e) => Err(e),
    };
    let (a, b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return vec![r.judged(Outcome::Warn, e.to_string())],
    };
    let got = format!("unknown: {}; wrong password: {}", a.brief(), b.brief());
    let same_body = match (a.json(), b.json()) {
        (Some(x), Some(y)) => x == y,
        _ => a.body == b.body,
    };
    vec![if a.is_success() || b.is_success() {
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

/// `expires_in` against the token's own lifetime, and no secrets in token or response.
async fn token_content_probes(t: &Target, roles: &Roles) -> Vec<ProbeResult> {
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

// ---- login timing -------------------------------------------------------------------

/// Interleaved login samples of three kinds: an unknown email, a known email with a
/// wrong password, and a request refused before any hashing (`{}`), whose median is
/// subtracted from the slower path's to estimate one hash time.
async fn timing_probe(t: &Target, roles: &Roles, s: &Settings) -> ProbeResult {
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
        return r.skip("no login step found in the scenario");
    };
    if roles.register.is_none() {
        return r.skip("no register step to create known users");
    }
    // n + 2 wrong-password attempts (two warm-up), at most ATTEMPTS_PER_ACCOUNT each.
    let accounts = (n + 2).div_ceil(ATTEMPTS_PER_ACCOUNT);
    let mut known = Vec::with_capacity(accounts);
    for _ in 0..accounts {
        match registered(t, login).await {
            Ok(v) => known.push(v),
            Err(e) => return r.skip(format!("setup failed: {e}")),
        }
    }
    let (mut unknown_ms, mut wrong_ms, mut base_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut limited, mut accepted, mut errors) = (0usize, 0usize, 0usize);
    // Two of each first, discarded: connection setup and cold caches.
    for i in 0..n + 2 {
        let mut kinds = [0u8, 1, 2];
        if rand::random::<bool>() {
            kinds.swap(0, 1);
        }
        for kind in kinds {
            let probe = match kind {
                0 => t.build(login, &t.fresh_vars()),
                1 => wrong_password(
                    t,
                    login,
                    fields,
                    &known[(i / ATTEMPTS_PER_ACCOUNT).min(accounts - 1)],
                ),
                _ => with_body(t, login, &known[0], &Value::Object(Default::default())),
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
            if kind < 2 && rep.is_success() {
                accepted += 1;
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
    if accepted > 0 {
        return r.judged(
            Outcome::Fail,
            format!("{accepted} logins with bad credentials succeeded"),
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

async fn brute_force_probe(t: &Target, roles: &Roles, s: &Settings) -> ProbeResult {
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
        return r.skip("no login step found in the scenario");
    };
    if roles.register.is_none() {
        return r.skip("no register step to create a known user");
    }
    let vars = match registered(t, login).await {
        Ok(v) => v,
        Err(e) => return r.skip(format!("setup failed: {e}")),
    };
    let mut set = JoinSet::new();
    for _ in 0..s.burst {
        match wrong_password(t, login, fields, &vars) {
            Ok(p) => {
                let client = t.client.clone();
                set.spawn(async move { send_with(&client, p.request).await });
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
        match j {
            Ok(Ok(rep)) if rep.status == 429 => {
                limited += 1;
                if rep.headers.contains_key(RETRY_AFTER) {
                    retry_after += 1;
                }
            }
            Ok(Ok(rep)) if rep.is_success() => ok += 1,
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

// ---- error bodies -------------------------------------------------------------------

/// Patterns of stack traces and internals in error bodies, with what each means.
const LEAKS: &[(&str, &str)] = &[
    (r"Traceback \(most recent call last\)", "a Python traceback"),
    (r#"File "[^"]+\.py", line \d+"#, "a Python source location"),
    (
        r"panicked at|stack backtrace:|RUST_BACKTRACE",
        "a Rust panic",
    ),
    (
        r"\bat [\w$.]+\([\w$]+\.(java|kt|scala):\d+\)",
        "a JVM stack trace",
    ),
    (
        r"\bat .+\(.+\.(js|ts|mjs|cjs):\d+:\d+\)|node_modules/",
        "a Node.js stack trace",
    ),
    (
        r"System\.[A-Za-z.]+Exception|Microsoft\.AspNetCore",
        "a .NET exception",
    ),
    (
        r"(?i)sqlalchemy|psycopg|sqlstate|syntax error at or near|ORA-\d{5}|SQLITE_ERROR|duplicate key value violates",
        "a database error",
    ),
    (r"\.(rs|go|py|rb|php|java):\d+", "a source file and line"),
    (
        r"(^|[\s\x22'(])/(home|usr|var|opt|srv|app)/[\w./-]+",
        "a server file path",
    ),
];

fn leak_probe(t: &Target) -> ProbeResult {
    let seen = t.seen_errors();
    let r = result(
        "errors.no_internals",
        Severity::Medium,
        "error bodies carry no stack trace or internal detail",
        format!(
            "the {} error responses the other probes provoked",
            seen.len()
        ),
        "no stack trace, source path, SQL or exception text",
    );
    let patterns: Vec<(Regex, &str)> = LEAKS
        .iter()
        .filter_map(|(p, what)| Regex::new(p).ok().map(|re| (re, *what)))
        .collect();
    let mut found = Vec::new();
    for e in &seen {
        for (re, what) in &patterns {
            if let Some(m) = re.find(&e.body) {
                found.push(format!(
                    "{what} in {} ({}): {}",
                    e.probe,
                    e.status,
                    super::target::excerpt(m.as_str(), 60)
                ));
                break;
            }
        }
    }
    if seen.is_empty() {
        r.skip("no error responses were seen")
    } else if found.is_empty() {
        r.judged(
            Outcome::Pass,
            format!("{} error bodies, none with internals", seen.len()),
        )
    } else {
        found.truncate(5);
        r.judged(Outcome::Fail, found.join("; "))
    }
}
