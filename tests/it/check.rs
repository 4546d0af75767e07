//! `authbench check`: against the reference server every probe passes; against small
//! fake services with one deliberate flaw each, the probe for that flaw fails, for the
//! right reason, while the same probe passes on the fake without the flaw.

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
struct Flaws {
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

fn token_response(id: u64, email: &str) -> Response {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"sub": id.to_string(), "email": email, "iat": now, "exp": now + 3600});
    let token = jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap_or_default();
    Json(json!({
        "access_token": token, "token_type": "bearer", "expires_in": 3600,
        "user": {"id": id, "email": email}
    }))
    .into_response()
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
        return token_response(id, &email);
    }
    let mut users = app.users.lock().unwrap();
    if users.contains_key(&email) {
        return detail(StatusCode::BAD_REQUEST, "Email already registered");
    }
    let id = users.len() as u64 + 1;
    users.insert(email.clone(), (id, password));
    token_response(id, &email)
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
        None => detail(StatusCode::UNAUTHORIZED, "Invalid credentials"),
        Some((id, pw)) => {
            if app.flaws.slow_known_user {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            if pw == password {
                token_response(id, &email)
            } else if app.flaws.enumerating_messages {
                detail(StatusCode::UNAUTHORIZED, "Wrong password")
            } else {
                detail(StatusCode::UNAUTHORIZED, "Invalid credentials")
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
        return detail(StatusCode::UNAUTHORIZED, "Not authenticated");
    };
    match jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(SECRET),
        &Validation::default(),
    ) {
        Ok(data) => {
            let email = data.claims["email"].clone();
            Json(json!({"valid": true, "email": email, "user": {"email": email}})).into_response()
        }
        Err(_) if app.flaws.bad_token_500 => {
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
        }
        Err(_) => detail(StatusCode::UNAUTHORIZED, "Invalid token"),
    }
}

async fn fake(flaws: Flaws) -> String {
    let app = Arc::new(Fake {
        flaws,
        users: Mutex::new(HashMap::new()),
    });
    let router = Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/verify", get(me))
        .route("/auth/profile", get(me))
        .with_state(app);
    format!("http://{}", serve(router).await)
}

async fn check_fake(flaws: Flaws) -> CheckReport {
    let opts = CheckOptions {
        target: Some(fake(flaws).await),
        api_key: Some(KEY.into()),
        jwt_secret: Some(String::from_utf8_lossy(SECRET).into_owned()),
        out_dir: None,
        timing_samples: 20,
        burst: 10,
        ..CheckOptions::default()
    };
    check(&opts).await.expect("the check runs").report
}

fn probe<'a>(r: &'a CheckReport, id: &str) -> &'a ProbeResult {
    r.probes
        .iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("no probe {id} in {:#?}", r.probes))
}

fn assert_outcome(r: &CheckReport, id: &str, want: Outcome, got_contains: &str) {
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
