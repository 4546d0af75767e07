//! `authbench check`: against the reference server every probe passes; against small
//! fake services with one deliberate flaw each, the probe for that flaw fails, for the
//! right reason, while the same probe passes on the fake without the flaw.
//!
//! `connections` puts the fake behind proxies that mishandle connections; `leaks` and
//! `cookies` cover the leak and cookie-session probes.

mod connections;
mod cookies;
mod leaks;
mod preludes;
mod verdicts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authbench::check::{check, CheckOptions, CheckReport, Outcome, ProbeResult};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};

use crate::support::{cli, dead_port, serve};

const KEY: &str = "fake-key";
const SECRET: &[u8] = b"fake-secret";

/// The flaws a fake service can have; `Flaws::default()` is a correct (if minimal) one.
#[derive(Clone, Copy, Default)]
pub(crate) struct Flaws {
    /// Token answers without `Cache-Control: no-store`.
    cacheable_token: bool,
    /// 401s to bearer requests without `WWW-Authenticate`.
    no_challenge: bool,
    /// Any Origin reflected, with credentials allowed.
    cors_any_origin: bool,
    /// The profile carries the password hash.
    hash_in_profile: bool,
    /// Refused logins answer Django's debug page.
    html_debug_errors: bool,
    /// `GET /auth/register` lists the users.
    public_user_list: bool,
    /// Expired tokens are accepted.
    ignore_exp: bool,
    /// An ES256 fake that verifies an HS256 token with its public key as the secret.
    alg_confusion: bool,
    /// Tokens are ES256, signed with this PKCS#8 PEM key (else HS256 with SECRET).
    es256: Option<&'static EsKey>,
    /// 500 instead of 401 for a token that does not verify.
    bad_token_500: bool,
    /// Requests without an API key are let through.
    missing_key_accepted: bool,
    /// "User not found" vs "Wrong password".
    enumerating_messages: bool,
    /// A slow path (a password check) only for existing users.
    slow_known_user: bool,
    /// Checks for a duplicate, then awaits, then inserts.
    racy_register: bool,
}

/// An ES256 key pair, PEM.
pub(crate) struct EsKey {
    pub private_pem: String,
    pub public_pem: String,
}

struct Fake {
    flaws: Flaws,
    users: Mutex<HashMap<String, (u64, String)>>,
}

type App = State<Arc<Fake>>;

fn detail(status: StatusCode, d: &str) -> Response {
    (status, Json(json!({ "detail": d }))).into_response()
}

fn key_ok(app: &Fake, h: &HeaderMap) -> bool {
    match h.get("x-api-key") {
        Some(v) => v.as_bytes() == KEY.as_bytes(),
        None => app.flaws.missing_key_accepted,
    }
}

fn token_response(app: &Fake, id: u64, email: &str) -> Response {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"sub": id.to_string(), "email": email, "iat": now, "exp": now + 3600});
    let token = match app.flaws.es256 {
        Some(k) => jsonwebtoken::encode(
            &Header::new(jsonwebtoken::Algorithm::ES256),
            &claims,
            &EncodingKey::from_ec_pem(k.private_pem.as_bytes()).unwrap(),
        ),
        None => jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET),
        ),
    }
    .unwrap_or_default();
    let mut r = Json(json!({
        "access_token": token, "token_type": "bearer", "expires_in": 3600,
        "user": {"id": id, "email": email}
    }))
    .into_response();
    if !app.flaws.cacheable_token {
        r.headers_mut()
            .insert("cache-control", "no-store".parse().unwrap());
    }
    r
}

/// A 401 to a bearer request: with the RFC 6750 challenge unless the fake lacks it.
fn bearer_401(app: &Fake, d: &str) -> Response {
    let mut r = detail(StatusCode::UNAUTHORIZED, d);
    if !app.flaws.no_challenge {
        r.headers_mut()
            .insert("www-authenticate", "Bearer".parse().unwrap());
    }
    r
}

const DJANGO_DEBUG: &str = "<!DOCTYPE html><html><head><title>AuthenticationFailed at /auth/login</title></head><body><div id=\"summary\"><h1>AuthenticationFailed</h1><pre class=\"exception_value\">Invalid credentials</pre></div><div id=\"explanation\"><p>You're seeing this error because you have <code>DEBUG = True</code> in your Django settings file.</p></div></body></html>";

/// A refused login: JSON, or Django's debug page.
fn login_refused(app: &Fake, d: &str) -> Response {
    if app.flaws.html_debug_errors {
        return (
            StatusCode::UNAUTHORIZED,
            [("content-type", "text/html; charset=utf-8")],
            DJANGO_DEBUG,
        )
            .into_response();
    }
    detail(StatusCode::UNAUTHORIZED, d)
}

fn creds(body: &Value) -> Option<(String, String)> {
    Some((
        body.get("email")?.as_str()?.to_lowercase(),
        body.get("password")?.as_str()?.to_string(),
    ))
}

async fn register(State(app): App, h: HeaderMap, Json(body): Json<Value>) -> Response {
    if !key_ok(&app, &h) {
        return detail(StatusCode::UNAUTHORIZED, "Invalid API key");
    }
    let Some((email, password)) = creds(&body) else {
        return detail(StatusCode::UNPROCESSABLE_ENTITY, "Missing field");
    };
    if password.len() < 8 || password.len() > 72 {
        return detail(StatusCode::BAD_REQUEST, "Bad password length");
    }
    if app.flaws.racy_register {
        let exists = app.users.lock().unwrap().contains_key(&email);
        if exists {
            return detail(StatusCode::BAD_REQUEST, "Email already registered");
        }
        // "Hashing" between the check and the insert: the race window.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut users = app.users.lock().unwrap();
        let id = users.len() as u64 + 1;
        users.insert(email.clone(), (id, password));
        return token_response(&app, id, &email);
    }
    let mut users = app.users.lock().unwrap();
    if users.contains_key(&email) {
        return detail(StatusCode::BAD_REQUEST, "Email already registered");
    }
    let id = users.len() as u64 + 1;
    users.insert(email.clone(), (id, password));
    drop(users);
    token_response(&app, id, &email)
}

async fn login(State(app): App, h: HeaderMap, Json(body): Json<Value>) -> Response {
    if !key_ok(&app, &h) {
        return detail(StatusCode::UNAUTHORIZED, "Invalid API key");
    }
    let Some((email, password)) = creds(&body) else {
        return detail(StatusCode::UNPROCESSABLE_ENTITY, "Missing field");
    };
    let user = app.users.lock().unwrap().get(&email).cloned();
    match user {
        None if app.flaws.enumerating_messages => {
            detail(StatusCode::UNAUTHORIZED, "User not found")
        }
        None => login_refused(&app, "Invalid credentials"),
        Some((id, pw)) => {
            if app.flaws.slow_known_user {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            if pw == password {
                token_response(&app, id, &email)
            } else if app.flaws.enumerating_messages {
                detail(StatusCode::UNAUTHORIZED, "Wrong password")
            } else {
                login_refused(&app, "Invalid credentials")
            }
        }
    }
}

async fn me(State(app): App, h: HeaderMap) -> Response {
    if !key_ok(&app, &h) {
        return detail(StatusCode::UNAUTHORIZED, "Invalid API key");
    }
    let Some(token) = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return bearer_401(&app, "Not authenticated");
    };
    let validation = |alg| {
        let mut v = Validation::new(alg);
        v.validate_exp = !app.flaws.ignore_exp;
        v
    };
    let header_alg = jsonwebtoken::decode_header(token).map(|h| h.alg).ok();
    let decoded = match app.flaws.es256 {
        Some(k)
            if app.flaws.alg_confusion && header_alg == Some(jsonwebtoken::Algorithm::HS256) =>
        {
            jsonwebtoken::decode::<Value>(
                token,
                &DecodingKey::from_secret(k.public_pem.as_bytes()),
                &validation(jsonwebtoken::Algorithm::HS256),
            )
        }
        Some(k) => jsonwebtoken::decode::<Value>(
            token,
            &DecodingKey::from_ec_pem(k.public_pem.as_bytes()).unwrap(),
            &validation(jsonwebtoken::Algorithm::ES256),
        ),
        None => jsonwebtoken::decode::<Value>(
            token,
            &DecodingKey::from_secret(SECRET),
            &validation(jsonwebtoken::Algorithm::HS256),
        ),
    };
    let mut r = match decoded {
        Ok(data) => {
            let email = data.claims["email"].clone();
            let mut body = json!({"valid": true, "email": email, "user": {"email": email}});
            if app.flaws.hash_in_profile {
                body["user"]["password_hash"] =
                    "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW".into();
            }
            Json(body).into_response()
        }
        Err(_) if app.flaws.bad_token_500 => {
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
        }
        Err(_) => bearer_401(&app, "Invalid token"),
    };
    if app.flaws.cors_any_origin {
        if let Some(origin) = h.get("origin").cloned() {
            r.headers_mut()
                .insert("access-control-allow-origin", origin);
            r.headers_mut()
                .insert("access-control-allow-credentials", "true".parse().unwrap());
        }
    }
    r
}

/// `GET /auth/register`: 405, or the user list when the fake has that flaw.
async fn list_users(State(app): App) -> Response {
    if !app.flaws.public_user_list {
        return detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    let users: Vec<Value> = app
        .users
        .lock()
        .unwrap()
        .iter()
        .map(|(email, (id, _))| json!({"id": id, "email": email}))
        .collect();
    Json(Value::Array(users)).into_response()
}

/// The fake's router (not yet served).
pub(crate) fn fake_router(flaws: Flaws) -> Router {
    let app = Arc::new(Fake {
        flaws,
        users: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/auth/register", post(register).get(list_users))
        .route("/auth/login", post(login))
        .route("/auth/verify", get(me))
        .route("/auth/profile", get(me))
        .with_state(app)
}

async fn fake(flaws: Flaws) -> String {
    format!("http://{}", serve(fake_router(flaws)).await)
}

/// The options `check` runs with against a fake at `target`.
pub(crate) fn fake_opts(target: String) -> CheckOptions {
    CheckOptions {
        target: Some(target),
        api_key: Some(KEY.into()),
        jwt_secret: Some(String::from_utf8_lossy(SECRET).into_owned()),
        out_dir: None,
        timing_samples: 20,
        burst: 10,
        ..CheckOptions::default()
    }
}

pub(crate) async fn check_fake(flaws: Flaws) -> CheckReport {
    check(&fake_opts(fake(flaws).await))
        .await
        .expect("the check runs")
        .report
}

pub(crate) fn probe<'a>(r: &'a CheckReport, id: &str) -> &'a ProbeResult {
    r.probes
        .iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("no probe {id} in {:#?}", r.probes))
}

pub(crate) fn assert_outcome(r: &CheckReport, id: &str, want: Outcome, got_contains: &str) {
    let p = probe(r, id);
    assert_eq!(p.outcome, want, "{p:#?}");
    assert!(
        p.got.contains(got_contains),
        "{id}: {:?} lacks {got_contains:?}",
        p.got
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_fake_passes_the_probes_the_flaws_target() {
    let r = check_fake(Flaws::default()).await;
    for id in [
        "token.garbage[verify]",
        "token.bad_signature[profile]",
        "token.alg_none[verify]",
        "token.expired[verify]",
        "apikey.missing[login]",
        "login.enumeration",
        "login.timing",
        "register.race",
        "register.duplicate",
        "token.no_secrets",
        "token.expires_in",
        "token.cache_control",
        "token.www_authenticate",
        "cors.credentials",
        "users.list_public",
        "leak.password_hash",
        "errors.no_internals",
        "register.missing_fields",
    ] {
        assert_eq!(probe(&r, id).outcome, Outcome::Pass, "{:#?}", probe(&r, id));
    }
    // No rate limiting in the fake: a warning, which does not fail the run.
    assert_eq!(probe(&r, "login.brute_force").outcome, Outcome::Warn);
    // Its 1 MiB body is accepted (axum's Json allows 2 MB): that fails.
    assert_outcome(&r, "register.large_body", Outcome::Fail, "200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_on_a_bad_token_fails_the_token_probes() {
    let r = check_fake(Flaws {
        bad_token_500: true,
        ..Flaws::default()
    })
    .await;
    for id in [
        "token.garbage[verify]",
        "token.alg_none[profile]",
        "token.truncated[verify]",
    ] {
        assert_outcome(&r, id, Outcome::Fail, "500");
        assert!(probe(&r, id)
            .note
            .as_deref()
            .unwrap_or("")
            .contains("server error"));
    }
    // No header at all is still a clean 401.
    assert_eq!(probe(&r, "token.none[verify]").outcome, Outcome::Pass);
    assert!(r.exit_code() == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_missing_key_fails_the_key_probes() {
    let r = check_fake(Flaws {
        missing_key_accepted: true,
        ..Flaws::default()
    })
    .await;
    for step in ["register", "login", "verify", "profile"] {
        assert_outcome(&r, &format!("apikey.missing[{step}]"), Outcome::Fail, "200");
        // A wrong key is still refused.
        assert_eq!(
            probe(&r, &format!("apikey.wrong[{step}]")).outcome,
            Outcome::Pass
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_messages_fail_the_enumeration_probe() {
    let r = check_fake(Flaws {
        enumerating_messages: true,
        ..Flaws::default()
    })
    .await;
    let p = probe(&r, "login.enumeration");
    assert_eq!(p.outcome, Outcome::Fail, "{p:#?}");
    assert!(
        p.got.contains("User not found") && p.got.contains("Wrong password"),
        "{p:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_path_for_known_users_fails_the_timing_probe() {
    let r = check_fake(Flaws {
        slow_known_user: true,
        ..Flaws::default()
    })
    .await;
    let p = probe(&r, "login.timing");
    assert_eq!(p.outcome, Outcome::Fail, "{p:#?}");
    // The report names the medians and the test used.
    assert!(
        p.got.contains("median unknown") && p.got.contains("p = "),
        "{p:#?}"
    );
    assert!(
        p.note.as_deref().unwrap_or("").contains("Mann–Whitney"),
        "{p:#?}"
    );
    // Same status and body, so only timing gives it away.
    assert_eq!(probe(&r, "login.enumeration").outcome, Outcome::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_racy_duplicate_check_fails_the_race_probe() {
    let r = check_fake(Flaws {
        racy_register: true,
        ..Flaws::default()
    })
    .await;
    let p = probe(&r, "register.race");
    assert_eq!(p.outcome, Outcome::Fail, "{p:#?}");
    assert!(p.note.as_deref().unwrap_or("").contains("races"), "{p:#?}");
    // Sequential duplicates are still caught: only the race gives it away.
    assert_eq!(probe(&r, "register.duplicate").outcome, Outcome::Pass);
}

#[test]
fn the_reference_server_passes_every_probe_with_reports_and_junit() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("check.xml");
    let out_dir = dir.path().join("reports");
    let (code, out, err) = cli(&[
        "check",
        "--cost",
        "4",
        "--out-dir",
        out_dir.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("0 failed") && out.contains("0 warned") && out.contains("PASS"),
        "{out}"
    );

    // The JSON report is the CheckReport struct; every probe passed.
    let json_path = std::fs::read_dir(&out_dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a JSON report");
    let report: CheckReport = serde_json::from_slice(&std::fs::read(json_path).unwrap()).unwrap();
    assert_eq!(report.schema, "authbench.check/1");
    let not_passed: Vec<_> = report
        .probes
        .iter()
        .filter(|p| p.outcome != Outcome::Pass)
        .collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}");
    assert!(report.probes.len() >= 35);

    // Every row that sent a request names it, with an excerpt of the answer, in each
    // format.
    let p = report
        .probes
        .iter()
        .find(|p| p.id == "token.garbage[verify]")
        .unwrap();
    assert_eq!(
        p.request.as_deref(),
        Some("GET /auth/verify [x-api-key; Authorization: Bearer]")
    );
    assert!(
        p.response.as_deref().unwrap_or("").starts_with("401 {"),
        "{p:#?}"
    );
    for id in [
        "register.race",
        "login.brute_force",
        "login.timing",
        "session.none[verify]",
    ] {
        if let Some(p) = report.probes.iter().find(|p| p.id == id) {
            assert!(p.request.is_some(), "{p:#?}");
        }
    }
    let md = std::fs::read_dir(&out_dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .unwrap();
    assert!(
        md.contains("| `GET /auth/verify [x-api-key; Authorization: Bearer]` | 401 {"),
        "{md}"
    );
    assert!(
        out.contains("GET /auth/verify [x-api-key; Authorization: Bearer]"),
        "{out}"
    );

    // JUnit: one suite, one case per probe, no failures.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("a testsuite");
    assert_eq!(
        suite.attribute("tests"),
        Some(report.probes.len().to_string().as_str())
    );
    assert_eq!(suite.attribute("failures"), Some("0"));
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), report.probes.len());
    assert!(cases
        .iter()
        .any(|c| c.attribute("name") == Some("token.alg_none[verify]")));
    assert!(cases
        .iter()
        .all(|c| !c.children().any(|x| x.has_tag_name("failure"))));
    assert!(xml.contains("request: GET /auth/verify"), "{xml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_junit_failures() {
    let r = check_fake(Flaws {
        missing_key_accepted: true,
        ..Flaws::default()
    })
    .await;
    let xml = String::from_utf8(authbench::check::report::junit(&r).unwrap()).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failed: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase") && n.children().any(|c| c.has_tag_name("failure")))
        .filter_map(|n| n.attribute("name"))
        .collect();
    assert!(failed.contains(&"apikey.missing[login]"), "{failed:?}");
    assert_eq!(failed.len(), r.summary.failed);
}

#[test]
fn usage_and_unreachable_exit_codes() {
    let (code, _, err) = cli(&["check", "--target", "http://127.0.0.1:1", "--cost", "4"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = cli(&["check", "--timing-samples", "3", "--no-reports"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("timing-samples"), "{err}");
    let url = format!("http://127.0.0.1:{}", dead_port());
    let (code, _, err) = cli(&["check", "--target", &url, "--api-key", "k", "--no-reports"]);
    assert_eq!(code, 3, "{err}");
}
