//! Verdicts that rest only on answers that mean something (issue 28), against a small
//! JSON service with opaque tokens in a configurable `Authorization` scheme: a rate limit
//! on sign-ups makes rows inconclusive (never a pass), a public user list fails whatever
//! the other probes stored, a race that shows in one burst of five is found, a `JWT`
//! scheme is challenged like `Bearer`, and a token that survives logout fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authbench::check::{check, CheckOptions, CheckReport, Outcome};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{assert_outcome, probe};
use crate::support::{scenario_file, serve};

/// How the mini service behaves.
#[derive(Clone, Copy)]
struct Mini {
    /// `Authorization: <scheme> <token>`, and the scheme of its `WWW-Authenticate`.
    scheme: &'static str,
    /// At most this many sign-up requests per 10 s, then 429 with `Retry-After: 10`.
    register_limit: Option<usize>,
    /// `GET /users` lists every stored body (hash and all) without credentials.
    public_list: bool,
    /// Logout forgets the token.
    logout_revokes: bool,
    /// The losers of the second burst of concurrent sign-ups (an identifier tried 5 or
    /// more times) get a 500: a unique-constraint error surfacing, once in five bursts.
    race_500_once: bool,
    /// Logins verify a bcrypt cost-4 hash (about 0.9 ms here) for known users only:
    /// unknown ones are refused without hashing.
    bcrypt_known_only: bool,
}

impl Default for Mini {
    fn default() -> Self {
        Mini {
            scheme: "Bearer",
            register_limit: None,
            public_list: false,
            logout_revokes: true,
            race_500_once: false,
            bcrypt_known_only: false,
        }
    }
}

#[derive(Default)]
struct Db {
    users: HashMap<String, Value>,
    tokens: HashMap<String, String>,
    attempts: HashMap<String, usize>,
    /// Identifiers tried 5 or more times, in order.
    burst_emails: Vec<String>,
    register_times: Vec<Instant>,
}

struct App {
    mini: Mini,
    db: Mutex<Db>,
}

type S = State<Arc<App>>;

fn detail(status: StatusCode, d: &str) -> Response {
    (status, Json(json!({ "detail": d }))).into_response()
}

/// A bcrypt-shaped hash, as a careless service would store and list it.
const HASH: &str = "$2b$04$abcdefghijklmnopqrstuuOPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";

/// Rate limit first (an edge limiter), then the content type, then the body.
async fn register(State(app): S, h: HeaderMap, bytes: axum::body::Bytes) -> Response {
    let mut db = app.db.lock().unwrap();
    if let Some(limit) = app.mini.register_limit {
        let now = Instant::now();
        db.register_times
            .retain(|t| now.duration_since(*t) < Duration::from_secs(10));
        if db.register_times.len() >= limit {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "10")],
                Json(json!({"error": "rate limited", "limit": "3 per 10 s"})),
            )
                .into_response();
        }
        db.register_times.push(now);
    }
    let json_type = h
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type {
        return detail(StatusCode::UNSUPPORTED_MEDIA_TYPE, "JSON only");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&bytes) else {
        return detail(StatusCode::BAD_REQUEST, "malformed JSON");
    };
    let email = body
        .get("email")
        .and_then(Value::as_str)
        .map(str::to_string);
    let password = body.get("password").and_then(Value::as_str);
    let (Some(email), Some(password)) = (email, password) else {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "email and password required",
        );
    };
    if password.len() < 8 || password.len() > 72 {
        return detail(StatusCode::UNPROCESSABLE_ENTITY, "bad password length");
    }
    let n = {
        let a = db.attempts.entry(email.clone()).or_insert(0);
        *a += 1;
        *a
    };
    if n == 5 {
        db.burst_emails.push(email.clone());
    }
    if db.users.contains_key(&email) {
        if app.mini.race_500_once && n >= 5 && db.burst_emails.get(1) == Some(&email) {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNIQUE constraint failed",
            )
                .into_response();
        }
        return detail(StatusCode::CONFLICT, "email already registered");
    }
    let mut stored = body.clone();
    stored["password"] = HASH.into();
    stored["plain"] = password.into();
    if app.mini.bcrypt_known_only {
        stored["bcrypt"] = bcrypt::hash(password, 4).unwrap_or_default().into();
    }
    db.users.insert(email.clone(), stored);
    (StatusCode::CREATED, Json(json!({"email": email}))).into_response()
}

async fn list(State(app): S) -> Response {
    if !app.mini.public_list {
        return detail(StatusCode::UNAUTHORIZED, "not authenticated");
    }
    let users: Vec<Value> = app.db.lock().unwrap().users.values().cloned().collect();
    Json(Value::Array(users)).into_response()
}

async fn login(State(app): S, Json(body): Json<Value>) -> Response {
    let email = body.get("email").and_then(Value::as_str).unwrap_or("");
    let password = body.get("password").and_then(Value::as_str).unwrap_or("");
    let user = app.db.lock().unwrap().users.get(email).cloned();
    let ok = match &user {
        Some(u) if app.mini.bcrypt_known_only => {
            bcrypt::verify(password, u["bcrypt"].as_str().unwrap_or("")).unwrap_or(false)
        }
        Some(u) => u["plain"].as_str() == Some(password),
        None => false,
    };
    let mut db = app.db.lock().unwrap();
    if !ok {
        return detail(StatusCode::UNAUTHORIZED, "bad credentials");
    }
    let token = format!("{:032x}", rand::random::<u128>());
    db.tokens.insert(token.clone(), email.to_string());
    let mut r = Json(json!({"token": token})).into_response();
    r.headers_mut()
        .insert("cache-control", "no-store".parse().unwrap());
    r
}

/// The email of the request's token, or the 401 challenge in the service's scheme.
fn who(app: &App, h: &HeaderMap) -> Result<(String, String), Box<Response>> {
    let token = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(app.mini.scheme))
        .and_then(|v| v.strip_prefix(' '))
        .map(str::to_string);
    let email = token
        .as_ref()
        .and_then(|t| app.db.lock().unwrap().tokens.get(t).cloned());
    match (token, email) {
        (Some(t), Some(e)) => Ok((t, e)),
        _ => {
            let mut r = detail(StatusCode::UNAUTHORIZED, "invalid token");
            let challenge = format!("{} realm=\"api\"", app.mini.scheme);
            r.headers_mut()
                .insert("www-authenticate", challenge.parse().unwrap());
            Err(Box::new(r))
        }
    }
}

async fn me(State(app): S, h: HeaderMap) -> Response {
    match who(&app, &h) {
        Ok((_, email)) => Json(json!({"email": email})).into_response(),
        Err(r) => *r,
    }
}

async fn logout(State(app): S, h: HeaderMap) -> Response {
    match who(&app, &h) {
        Ok((token, _)) => {
            if app.mini.logout_revokes {
                app.db.lock().unwrap().tokens.remove(&token);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => *r,
    }
}

/// Serves the mini service, its database seeded with `seed` (stored bodies by email).
async fn mini(m: Mini, seed: Vec<(String, Value)>) -> String {
    let app = Arc::new(App {
        mini: m,
        db: Mutex::new(Db {
            users: seed.into_iter().collect(),
            ..Db::default()
        }),
    });
    let router = Router::new()
        .route("/users", post(register).get(list))
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .layer(axum::extract::DefaultBodyLimit::max(4 << 20))
        .with_state(app);
    format!("http://{}", serve(router).await)
}

fn scenario(scheme: &str) -> String {
    format!(
        r#"
name = "mini"
[vars]
email = "u{{{{run_id}}}}-{{{{seq}}}}@example.com"
password = "Pw-{{{{random}}}}"
[[steps]]
name = "register"
method = "POST"
path = "/users"
body = {{ email = "{{{{email}}}}", password = "{{{{password}}}}" }}
expect = 201
[[steps]]
name = "login"
method = "POST"
path = "/login"
body = {{ email = "{{{{email}}}}", password = "{{{{password}}}}" }}
expect = 200
extract = {{ token = "/token" }}
[[steps]]
name = "me"
path = "/me"
headers = {{ Authorization = "{scheme} {{{{token}}}}" }}
expect = 200
check = [{{ pointer = "/email", equals = "{{{{email}}}}" }}]
[[steps]]
name = "logout"
method = "POST"
path = "/logout"
headers = {{ Authorization = "{scheme} {{{{token}}}}" }}
expect = 204
role = "logout"
"#
    )
}

async fn check_mini(m: Mini, seed: Vec<(String, Value)>) -> CheckReport {
    let (_dir, scenario) = scenario_file(&scenario(m.scheme));
    let opts = CheckOptions {
        target: Some(mini(m, seed).await),
        scenario,
        out_dir: None,
        timing_samples: 10,
        burst: 5,
        race: 6,
        // The retry waits this long (not the advised 10 s) and is still limited.
        rate_limit_wait: Duration::from_millis(50),
        ..CheckOptions::default()
    };
    check(&opts).await.expect("the check runs").report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_sign_up_is_inconclusive_never_a_pass() {
    let r = check_mini(
        Mini {
            register_limit: Some(3),
            ..Mini::default()
        },
        Vec::new(),
    )
    .await;
    // No row passes on a 429.
    for p in &r.probes {
        let limited = p.response.as_deref().unwrap_or("").starts_with("429");
        assert!(!(limited && p.outcome == Outcome::Pass), "{p:#?}");
    }
    for id in [
        "register.short_password",
        "register.missing_fields",
        "register.content_type",
        "register.long_password",
    ] {
        let p = probe(&r, id);
        assert_eq!(p.outcome, Outcome::Inconclusive, "{p:#?}");
        assert!(
            p.note.as_deref().unwrap_or("").contains("rate limited"),
            "{p:#?}"
        );
    }
    assert!(r.summary.inconclusive >= 4, "{:#?}", r.summary);
    // Every format shows the kind; JUnit as skipped with the reason.
    let md = String::from_utf8(authbench::check::report::markdown(&r)).unwrap();
    assert!(md.contains("inconclusive"), "{md}");
    let text = String::from_utf8(authbench::check::report::terminal(&r, false)).unwrap();
    assert!(
        text.contains("inconclusive register.short_password: rate limited"),
        "{text}"
    );
    let html = String::from_utf8(authbench::check::report::html(&r)).unwrap();
    assert!(html.contains("data-outcome=\"inconclusive\""), "{html}");
    let json = String::from_utf8(authbench::check::report::json(&r).unwrap()).unwrap();
    assert!(json.contains("\"outcome\": \"inconclusive\""), "{json}");
    let xml = String::from_utf8(authbench::check::report::junit(&r).unwrap()).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let case = doc
        .descendants()
        .find(|n| n.attribute("name") == Some("register.short_password"))
        .unwrap();
    let skipped = case
        .children()
        .find(|c| c.has_tag_name("skipped"))
        .expect("skipped");
    assert!(
        skipped
            .attribute("message")
            .unwrap_or("")
            .starts_with("inconclusive: rate limited"),
        "{xml}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_user_list_fails_whatever_the_probes_stored() {
    // A 1.2 MiB user from an earlier run's large-body probe is already stored: the list
    // is over the 1 MiB most answers are read to.
    let big =
        json!({"email": "big@example.com", "password": HASH, "padding": "a".repeat(1_200_000)});
    let m = Mini {
        public_list: true,
        ..Mini::default()
    };
    let target = mini(m, vec![("big@example.com".into(), big)]).await;
    let (_dir, scenario) = scenario_file(&scenario("Bearer"));
    let opts = CheckOptions {
        target: Some(target),
        scenario,
        out_dir: None,
        timing_samples: 10,
        burst: 5,
        race: 4,
        ..CheckOptions::default()
    };
    // Twice: the second run also sees what the first one's probes stored.
    for _ in 0..2 {
        let r = check(&opts).await.unwrap().report;
        assert_outcome(&r, "users.list_public", Outcome::Fail, "200");
        // The large body itself was accepted: stored, and listed the next time.
        assert_eq!(probe(&r, "register.large_body").outcome, Outcome::Fail);
    }
    // Without the public list, the same service passes the probe.
    let r = check_mini(Mini::default(), Vec::new()).await;
    assert_eq!(probe(&r, "users.list_public").outcome, Outcome::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_race_in_one_burst_of_five_is_found() {
    let r = check_mini(
        Mini {
            race_500_once: true,
            ..Mini::default()
        },
        Vec::new(),
    )
    .await;
    let p = probe(&r, "register.race");
    assert_eq!(p.outcome, Outcome::Fail, "{p:#?}");
    assert!(p.got.starts_with("1 of 5 bursts raced"), "{p:#?}");
    assert!(p.note.as_deref().unwrap_or("").contains("races"), "{p:#?}");
    // Sequential duplicates are refused: only the bursts show it.
    assert_eq!(probe(&r, "register.duplicate").outcome, Outcome::Pass);
    let r = check_mini(Mini::default(), Vec::new()).await;
    assert_outcome(&r, "register.race", Outcome::Pass, "0 of 5 bursts raced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_scheme_service_is_probed_and_challenged_in_its_scheme() {
    let r = check_mini(
        Mini {
            scheme: "JWT",
            ..Mini::default()
        },
        Vec::new(),
    )
    .await;
    let p = probe(&r, "token.www_authenticate");
    assert_eq!(p.outcome, Outcome::Pass, "{p:#?}");
    assert!(p.sent.contains("Authorization: JWT"), "{p:#?}");
    for id in ["token.none[me]", "token.garbage[me]", "token.truncated[me]"] {
        assert_eq!(probe(&r, id).outcome, Outcome::Pass, "{:#?}", probe(&r, id));
    }
    assert_eq!(probe(&r, "token.after_logout[me]").outcome, Outcome::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_accepted_after_logout_fails() {
    let r = check_mini(
        Mini {
            logout_revokes: false,
            ..Mini::default()
        },
        Vec::new(),
    )
    .await;
    let p = probe(&r, "token.after_logout[me]");
    assert_eq!(p.outcome, Outcome::Fail, "{p:#?}");
    assert_eq!(p.severity.as_str(), "medium");
    assert!(p.got.starts_with("200"), "{p:#?}");
    assert_eq!(r.exit_code(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_cost_4_hash_is_found_without_hash_time() {
    let m = Mini {
        bcrypt_known_only: true,
        ..Mini::default()
    };
    let (_dir, scenario) = scenario_file(&scenario(m.scheme));
    let opts = CheckOptions {
        target: Some(mini(m, Vec::new()).await),
        scenario,
        out_dir: None,
        timing_samples: 40,
        burst: 5,
        race: 4,
        hash_time: None,
        ..CheckOptions::default()
    };
    let r = check(&opts).await.unwrap().report;
    let p = probe(&r, "login.timing");
    assert_eq!(p.outcome, Outcome::Fail, "{p:#?}");
    assert!(p.got.contains("hash + lookup ≤"), "{p:#?}");
}

#[test]
fn the_reference_server_passes_the_refresh_scenario_with_its_logout() {
    // Steps that expect a 401 (a spent refresh token) are not "accepted" by a 401 to a
    // request without the API key, and the logout adds the after-logout probe.
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/refresh.toml");
    let (code, out, err) = crate::support::cli(&[
        "check",
        "--cost",
        "4",
        "--scenario",
        scenario,
        "--no-reports",
        "--timing-samples",
        "10",
        "--burst",
        "5",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("token.after_logout[profile]"), "{out}");
    assert!(out.contains("0 failed"), "{out}");
}
