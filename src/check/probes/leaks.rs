//! Leaks real services have, all derived from the scenario's own steps:
//!
//! * `leak.password_hash`: a password hash (bcrypt, Argon2, PBKDF2, scrypt, Werkzeug's
//!   formats) in any body or header of any answer the probes saw (high);
//! * `token.cache_control`: the answer that carries the token is cacheable, where RFC 6749
//!   §5.1 requires `Cache-Control: no-store` (medium);
//! * `token.www_authenticate`: a 401 to a token request (any scheme: `Bearer`, `JWT`,
//!   `Token`, a custom header) without a `WWW-Authenticate` challenge (RFC 9110 §15.5.2,
//!   RFC 6750 §3) (low);
//! * `cors.credentials`: a foreign `Origin` reflected with
//!   `Access-Control-Allow-Credentials: true`, which lets any site read the answers with
//!   the user's credentials (high);
//! * `users.list_public`: when register is `POST /x`, `GET /x` without credentials must
//!   not answer a list (high). It runs first of all probes, reads up to 16 MiB and judges
//!   a body it cannot parse on what it read (a hash in it, or the start of a JSON list,
//!   is a failure; anything else unreadable is inconclusive, never a pass).
//!
//! [`request_probes`] send their own requests; [`scan_probes`] run last, over the
//! exchange log.

use regex::Regex;
use reqwest::header::{
    HeaderName, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN, AUTHORIZATION,
    CACHE_CONTROL, COOKIE, ORIGIN, PRAGMA, WWW_AUTHENTICATE,
};
use reqwest::Method;
use serde_json::Value;

use super::{result, step_name};
use crate::check::roles::Roles;
use crate::check::target::{excerpt, Target};
use crate::check::{Outcome, ProbeResult, Severity};

/// Password hash formats, with their names.
const HASHES: &[(&str, &str)] = &[
    (r"\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{20,}", "a bcrypt hash"),
    (r"\$argon2(id|i|d)\$", "an Argon2 hash"),
    (r"pbkdf2_sha(1|256|512)\$\d+\$", "a Django PBKDF2 hash"),
    (r"\$pbkdf2(-sha\d+)?\$\d+\$", "a PBKDF2 hash"),
    (r"pbkdf2:sha\d+:\d+\$", "a Werkzeug PBKDF2 hash"),
    (r"\$scrypt\$|scrypt:\d+:\d+:\d+\$", "an scrypt hash"),
    (
        r"\bsha(1|256|512)\$[A-Za-z0-9]{4,}\$[0-9a-f]{32,}",
        "a salted SHA hash",
    ),
    (
        r"\$[56]\$[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{43,}",
        "a crypt(3) SHA hash",
    ),
];

/// A random origin no service trusts.
pub(super) fn foreign_origin() -> String {
    format!("https://evil-{:08x}.example", rand::random::<u32>())
}

pub(super) async fn request_probes(t: &Target, roles: &Roles) -> Vec<ProbeResult> {
    vec![
        cache_control_probe(t, roles).await,
        cors_probe(t, roles).await,
    ]
}

pub(super) fn scan_probes(t: &Target, roles: &Roles) -> Vec<ProbeResult> {
    vec![password_hash_probe(t), www_authenticate_probe(t, roles)]
}

/// The step whose answer carries the token: the token source, else a login that
/// extracts a value from its JSON answer.
fn token_step(t: &Target, roles: &Roles) -> Option<usize> {
    roles.token.as_ref().map(|s| s.step).or_else(|| {
        roles.login.filter(|&l| {
            t.step(l)
                .extract
                .iter()
                .any(|e| matches!(e.source, crate::scenario::ExtractSource::Pointer(_)))
        })
    })
}

async fn cache_control_probe(t: &Target, roles: &Roles) -> ProbeResult {
    let r = result(
        "token.cache_control",
        Severity::Medium,
        "the answer carrying the token is not cacheable",
        "the flow up to the step that returns the token",
        "Cache-Control: no-store (RFC 6749 §5.1)",
    );
    let Some(step) = token_step(t, roles) else {
        return r.skip("no step returns a token");
    };
    let r = ProbeResult {
        sent: format!("the flow up to {}", step_name(t, step)),
        ..r
    };
    let session = match t.prefix(step + 1).await {
        Ok(s) => s,
        Err(e) => return r.setup_failed(&e),
    };
    let reply = &session.replies[step];
    let cc: Vec<String> = reply
        .headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    let no_store = cc
        .iter()
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-store"));
    let got = if cc.is_empty() {
        "no Cache-Control".to_string()
    } else {
        format!("Cache-Control: {}", cc.join(", "))
    };
    let mut r = if no_store {
        r.judged(Outcome::Pass, got)
    } else {
        r.judged(Outcome::Fail, got)
            .note("a shared cache or the browser may keep the token: send Cache-Control: no-store")
    };
    if let Some(p) = reply.headers.get(PRAGMA).and_then(|v| v.to_str().ok()) {
        r.got.push_str(&format!("; Pragma: {p}"));
    }
    r.request = session.requests.get(step).cloned();
    r.response = Some(reply.brief());
    r
}

async fn cors_probe(t: &Target, roles: &Roles) -> ProbeResult {
    let r = result(
        "cors.credentials",
        Severity::High,
        "a foreign Origin is not granted credentialed access",
        "the first protected step (else login) with a foreign Origin",
        "no Access-Control-Allow-Origin for that origin with Allow-Credentials: true",
    );
    let Some(step) = roles.protected.first().map(|p| p.step).or(roles.login) else {
        return r.skip("no protected or login step");
    };
    let origin = foreign_origin();
    let r = ProbeResult {
        sent: format!(
            "{} {} with Origin: {origin}",
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
        .send_step("cors.credentials", step, &session, |p| {
            p.header(ORIGIN, &origin)
        })
        .await;
    let rep = match reply {
        Ok(rep) if rep.rate_limited() => return r.limited(&rep),
        Ok(rep) => rep,
        Err(e) => return r.unsent(&e),
    };
    let h = |n: HeaderName| {
        rep.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let allow = h(ACCESS_CONTROL_ALLOW_ORIGIN);
    let creds = h(ACCESS_CONTROL_ALLOW_CREDENTIALS).is_some_and(|v| v.trim() == "true");
    let got = format!(
        "{}; Access-Control-Allow-Origin: {}; Allow-Credentials: {}",
        rep.status,
        allow.as_deref().unwrap_or("none"),
        if creds { "true" } else { "no" }
    );
    let reflected = allow.as_deref().is_some_and(|a| a.trim() == origin);
    if reflected && creds {
        r.judged(Outcome::Fail, got)
            .note("any site can read this service's answers with its users' credentials: allow listed origins only")
    } else {
        r.judged(Outcome::Pass, got)
    }
}

/// Whether a JSON body is a list: an array, or an object with an array at its top level.
fn is_list(v: &Value) -> bool {
    match v {
        Value::Array(_) => true,
        Value::Object(o) => o.values().any(Value::is_array),
        _ => false,
    }
}

pub(super) async fn user_list_probe(t: &Target, roles: &Roles) -> ProbeResult {
    let r = result(
        "users.list_public",
        Severity::High,
        "the user collection is not readable without credentials",
        "GET on the register step's path without credentials",
        "401, 403, 404 or 405, or no list",
    );
    let Some(reg) = roles.register else {
        return r.skip("no register step");
    };
    if t.step(reg).method != Method::POST {
        return r.skip("the register step is not a POST to a collection");
    }
    let session = match t.prefix(reg).await {
        Ok(s) => s,
        Err(e) => return r.setup_failed(&e),
    };
    let probe = match t.build(reg, &session.vars) {
        Ok(p) => p,
        Err(e) => return r.unsent(&e),
    };
    let mut request = probe.request;
    *request.method_mut() = Method::GET;
    *request.body_mut() = None;
    for h in [AUTHORIZATION, COOKIE, reqwest::header::CONTENT_TYPE] {
        request.headers_mut().remove(h);
    }
    let path = request.url().path().to_string();
    let r = ProbeResult {
        sent: format!("GET {path} without credentials"),
        ..r
    };
    let rep = match t
        .send_capped(
            "users.list_public",
            crate::check::target::Probe { request },
            LIST_CAP,
        )
        .await
    {
        Ok(rep) => rep,
        Err(e) => return r.unsent(&e),
    };
    let listed = || {
        r.clone()
            .judged(Outcome::Fail, rep.brief())
            .note("anyone can list the accounts: require credentials (and an admin) for it")
    };
    if rep.rate_limited() {
        return r.limited(&rep);
    }
    if !rep.is_success() {
        return r.judged(Outcome::Pass, rep.brief());
    }
    if let Some(v) = rep.json() {
        return if is_list(&v) {
            listed()
        } else {
            r.judged(Outcome::Pass, rep.brief())
        };
    }
    // Not parseable (cut at the cap, or not JSON): judged on what was read.
    let text = String::from_utf8_lossy(&rep.body);
    let read = format!(
        "{} bytes read{}",
        rep.body.len(),
        if rep.truncated {
            ", cut at the cap"
        } else {
            ""
        }
    );
    if let Some(what) = hash_in(&text) {
        let mut f = listed();
        f.got = format!("{} ({read}): {what} in it", rep.status);
        return f;
    }
    let head = text.trim_start();
    if rep.truncated && starts_a_list(head) {
        let mut f = listed();
        f.got = format!("{} ({read}): a JSON list", rep.status);
        return f;
    }
    if head.is_empty() || head.starts_with('<') {
        return r.judged(
            Outcome::Pass,
            format!("{} (not JSON: no list)", rep.brief()),
        );
    }
    r.inconclusive(
        format!("{} ({read})", rep.status),
        if rep.truncated {
            format!("the answer is over the {} MiB cap and what was read is not the start of a JSON list: no verdict", LIST_CAP >> 20)
        } else {
            "the answer is not JSON: it cannot be told whether it lists the accounts".to_string()
        },
    )
}

/// Bytes of a collection read by `users.list_public`: lists grow with every account,
/// so more than other answers, and judged on what was read when cut.
pub(super) const LIST_CAP: usize = 16 << 20;

/// Whether `head` (trimmed) opens a JSON array, or an object whose first non-scalar
/// member is an array (`{"count": 3, "results": [`).
fn starts_a_list(head: &str) -> bool {
    static RE: std::sync::OnceLock<Option<Regex>> = std::sync::OnceLock::new();
    if head.starts_with('[') {
        return true;
    }
    RE.get_or_init(|| {
        Regex::new(r#"^\{\s*("[^"]*"\s*:\s*("[^"]*"|[-+0-9.eE]+|true|false|null)\s*,\s*)*"[^"]*"\s*:\s*\["#).ok()
    })
    .as_ref()
    .is_some_and(|re| re.is_match(head))
}

/// The first password hash format found in `text`.
fn hash_in(text: &str) -> Option<&'static str> {
    HASHES
        .iter()
        .find(|(p, _)| Regex::new(p).is_ok_and(|re| re.is_match(text)))
        .map(|(_, what)| *what)
}

fn password_hash_probe(t: &Target) -> ProbeResult {
    let log = t.exchanges();
    let r = result(
        "leak.password_hash",
        Severity::High,
        "no answer carries a password hash",
        format!(
            "the {} answers the probes received",
            log.iter().filter(|x| x.status.is_some()).count()
        ),
        "no bcrypt, Argon2, PBKDF2, scrypt or salted-SHA hash in any body or header",
    );
    let patterns: Vec<(Regex, &str)> = HASHES
        .iter()
        .filter_map(|(p, what)| Regex::new(p).ok().map(|re| (re, *what)))
        .collect();
    let mut found = Vec::new();
    for x in log.iter().filter(|x| x.status.is_some()) {
        let headers: String = x
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        for (text, place) in [(&x.body, "body"), (&headers, "headers")] {
            if let Some((re, what)) = patterns.iter().find(|(re, _)| re.is_match(text)) {
                let m = re.find(text).map(|m| m.as_str()).unwrap_or("");
                found.push((
                    x.probe.clone(),
                    x.request.clone(),
                    format!(
                        "{what} in the {place} of {} ({}): {}…",
                        x.request,
                        x.probe,
                        excerpt(m, 12)
                    ),
                ));
                break;
            }
        }
    }
    if found.is_empty() {
        return r.judged(Outcome::Pass, "none found");
    }
    let (_, request, _) = found[0].clone();
    let n = found.len();
    let mut r = r
        .judged(
            Outcome::Fail,
            found
                .iter()
                .take(3)
                .map(|f| f.2.clone())
                .collect::<Vec<_>>()
                .join("; "),
        )
        .note(format!(
            "{n} answer(s) carry a password hash: never serialize the hash field"
        ));
    r.request = Some(request);
    r
}

fn www_authenticate_probe(t: &Target, roles: &Roles) -> ProbeResult {
    let r = result(
        "token.www_authenticate",
        Severity::Low,
        "a 401 to a token request carries WWW-Authenticate",
        "the token probes' requests to token-protected steps",
        "WWW-Authenticate on every 401 (RFC 9110 §15.5.2; RFC 6750 §3 for Bearer)",
    );
    // Every token-protected step, whatever its scheme (Bearer, JWT, Token, a custom
    // header): a 401 must say how to authenticate.
    let token_steps: Vec<(String, String)> = roles
        .protected
        .iter()
        .filter_map(|p| {
            let (_, header, scheme) = p.token()?;
            let shown = if *header == AUTHORIZATION {
                "Authorization".to_string()
            } else {
                header.to_string()
            };
            let how = match scheme {
                Some(sc) => format!("{shown}: {sc}"),
                None => shown,
            };
            Some((format!("[{}]", step_name(t, p.step)), how))
        })
        .collect();
    if token_steps.is_empty() {
        return r.skip("no step is protected by a token in a header");
    }
    let schemes: Vec<&str> = token_steps.iter().map(|(_, h)| h.as_str()).collect();
    let r = ProbeResult {
        sent: format!(
            "the token probes' requests to token-protected steps ({})",
            schemes.join(", ")
        ),
        ..r
    };
    let log = t.exchanges();
    let unauthorized: Vec<_> = log
        .iter()
        .filter(|x| {
            x.status == Some(401)
                && x.probe.starts_with("token.")
                && token_steps
                    .iter()
                    .any(|(s, _)| x.probe.ends_with(s.as_str()))
        })
        .collect();
    if unauthorized.is_empty() {
        return r.skip("no 401 was seen from a token-protected step");
    }
    let missing: Vec<_> = unauthorized
        .iter()
        .filter(|x| !x.headers.contains_key(WWW_AUTHENTICATE))
        .collect();
    let mut r = if missing.is_empty() {
        r.judged(
            Outcome::Pass,
            format!("{} × 401, all with WWW-Authenticate", unauthorized.len()),
        )
    } else {
        let names: Vec<&str> = missing.iter().take(4).map(|x| x.probe.as_str()).collect();
        r.judged(
            Outcome::Fail,
            format!(
                "{} of {} × 401 without WWW-Authenticate ({})",
                missing.len(),
                unauthorized.len(),
                names.join(", ")
            ),
        )
        .note("answer 401 with `WWW-Authenticate: <the scheme the service expects>` (for Bearer, error=\"invalid_token\" on a bad one)")
    };
    let x = missing.first().copied().copied().unwrap_or(unauthorized[0]);
    r.request = Some(x.request.clone());
    r.response = Some(x.response_excerpt(160));
    r
}
