//! Whole preludes: a sign-up in two steps, as Matrix's user-interactive auth does it. The
//! first `POST /register` (username and password) is answered 401 with a session id,
//! which keeps what it was sent; the second carries the session and completes the
//! sign-up. Replaying a completed session returns its result again (idempotent, not a
//! duplicate), and a field missing from the second request is taken from the session.
//! So `register.duplicate` must be a new attempt with the same user name, and
//! `register.missing_fields` must leave the field out of the first request too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use authbench::check::{check, CheckOptions, CheckReport, Outcome};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::probe;
use crate::support::{scenario_file, serve};

/// A sign-up session: what the first request sent, and the result once completed.
#[derive(Default, Clone)]
struct Uia {
    username: Option<String>,
    password: Option<String>,
    done: Option<Value>,
}

#[derive(Default)]
struct Db {
    users: HashMap<String, String>,
    sessions: HashMap<String, Uia>,
    tokens: HashMap<String, String>,
}

struct App {
    /// A new attempt with a user name in use creates another account.
    accepts_duplicate: bool,
    db: Mutex<Db>,
}

type S = State<Arc<App>>;

fn error(status: StatusCode, e: &str) -> Response {
    (status, Json(json!({ "error": e }))).into_response()
}

fn text(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

async fn register(State(app): S, Json(body): Json<Value>) -> Response {
    let mut db = app.db.lock().unwrap();
    let Some(sid) = body.pointer("/auth/session").and_then(Value::as_str) else {
        let sid = format!("{:016x}", rand::random::<u64>());
        let uia = Uia {
            username: text(&body, "username"),
            password: text(&body, "password"),
            done: None,
        };
        db.sessions.insert(sid.clone(), uia);
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"session": sid, "flows": [{"stages": ["m.login.dummy"]}]})),
        )
            .into_response();
    };
    let Some(uia) = db.sessions.get(sid).cloned() else {
        return error(StatusCode::BAD_REQUEST, "unknown session");
    };
    if let Some(done) = uia.done {
        return Json(done).into_response();
    }
    let username = text(&body, "username").or(uia.username);
    let password = text(&body, "password").or(uia.password);
    let (Some(username), Some(password)) = (username, password) else {
        return error(StatusCode::BAD_REQUEST, "missing username or password");
    };
    if password.len() < 8 || password.len() > 72 {
        return error(StatusCode::BAD_REQUEST, "bad password length");
    }
    if db.users.contains_key(&username) && !app.accepts_duplicate {
        return error(StatusCode::BAD_REQUEST, "user name in use");
    }
    db.users.insert(username.clone(), password);
    let result = json!({"user_id": format!("@{username}:example.org")});
    if let Some(s) = db.sessions.get_mut(sid) {
        s.done = Some(result.clone());
    }
    Json(result).into_response()
}

async fn login(State(app): S, Json(body): Json<Value>) -> Response {
    let (u, p) = (text(&body, "username"), text(&body, "password"));
    let mut db = app.db.lock().unwrap();
    match (u, p) {
        (Some(u), Some(p)) if db.users.get(&u) == Some(&p) => {
            let token = format!("{:032x}", rand::random::<u128>());
            db.tokens.insert(token.clone(), u);
            let mut r = Json(json!({"access_token": token})).into_response();
            r.headers_mut()
                .insert("cache-control", "no-store".parse().unwrap());
            r
        }
        _ => error(StatusCode::FORBIDDEN, "invalid username or password"),
    }
}

async fn whoami(State(app): S, h: HeaderMap) -> Response {
    let user = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| app.db.lock().unwrap().tokens.get(t).cloned());
    match user {
        Some(u) => Json(json!({"user_id": format!("@{u}:example.org")})).into_response(),
        None => {
            let mut r = error(StatusCode::UNAUTHORIZED, "unknown token");
            r.headers_mut()
                .insert("www-authenticate", "Bearer".parse().unwrap());
            r
        }
    }
}

const SCENARIO: &str = r#"
name = "two-step-signup"
[vars]
user = "u{{run_id}}x{{seq}}"
password = "Pw-{{random}}"
[[steps]]
name = "challenge"
method = "POST"
path = "/register"
body = { username = "{{user}}", password = "{{password}}" }
expect = 401
extract = { sid = "/session" }
[[steps]]
name = "register"
method = "POST"
path = "/register"
body = { username = "{{user}}", password = "{{password}}", auth = { type = "m.login.dummy", session = "{{sid}}" } }
expect = 200
role = "register"
[[steps]]
name = "login"
method = "POST"
path = "/login"
body = { username = "{{user}}", password = "{{password}}" }
expect = 200
extract = { token = "/access_token" }
[[steps]]
name = "whoami"
path = "/whoami"
headers = { Authorization = "Bearer {{token}}" }
expect = 200
"#;

async fn check_signup(accepts_duplicate: bool) -> CheckReport {
    let app = Arc::new(App {
        accepts_duplicate,
        db: Mutex::new(Db::default()),
    });
    let router = Router::new()
        .route("/register", post(register))
        .route("/login", post(login))
        .route("/whoami", get(whoami))
        .with_state(app);
    let (_dir, scenario) = scenario_file(SCENARIO);
    let opts = CheckOptions {
        target: Some(format!("http://{}", serve(router).await)),
        scenario,
        out_dir: None,
        timing_samples: 10,
        burst: 5,
        race: 4,
        ..CheckOptions::default()
    };
    check(&opts).await.expect("the check runs").report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_step_sign_up_is_replayed_whole() {
    let r = check_signup(false).await;
    assert_eq!(r.roles.register.as_deref(), Some("register"));
    for id in [
        "register.duplicate",
        "register.missing_fields",
        "register.short_password",
        "register.race",
    ] {
        assert_eq!(probe(&r, id).outcome, Outcome::Pass, "{:#?}", probe(&r, id));
    }
    // The duplicate is refused as a name in use, not answered as a finished session.
    assert!(
        probe(&r, "register.duplicate").got.contains("in use"),
        "{:#?}",
        probe(&r, "register.duplicate")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_step_sign_up_that_accepts_a_duplicate_fails() {
    let r = check_signup(true).await;
    let p = probe(&r, "register.duplicate");
    assert_eq!(p.outcome, Outcome::Fail, "{p:#?}");
    assert!(p.got.starts_with("200"), "{p:#?}");
    // Missing fields are still refused: that probe does not depend on the flaw.
    assert_eq!(
        probe(&r, "register.missing_fields").outcome,
        Outcome::Pass,
        "{:#?}",
        probe(&r, "register.missing_fields")
    );
}
