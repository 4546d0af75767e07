//! The cookie-session probes against a small form-login service: register and log in
//! with forms, a session cookie, a page that needs it, a state-changing POST and a
//! logout. The correct service passes every `session.*` probe; each flaw fails its own.
//! It also shows the inference: form logins and cookie-protected steps need no `role`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use authbench::check::{check, CheckOptions, CheckReport, Outcome};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::json;

use super::{assert_outcome, probe};
use crate::support::{scenario_file, serve};

#[derive(Clone, Copy, Default)]
struct CookieFlaws {
    /// The session cookie lacks HttpOnly.
    no_httponly: bool,
    /// `SameSite=None` on the session cookie.
    samesite_none: bool,
    /// Login keeps a session id the client sent.
    fixation: bool,
    /// Logout does not end the session.
    logout_keeps_session: bool,
    /// A POST with a foreign Origin is accepted.
    no_csrf_check: bool,
    /// Any session cookie value is accepted.
    any_cookie: bool,
    /// Not a flaw: the session page answers `200 null` without a session (and
    /// `{"user": {"email": ...}}` with one), as session endpoints of SPAs do.
    null_when_signed_out: bool,
}

struct Site {
    flaws: CookieFlaws,
    users: Mutex<HashMap<String, String>>,
    sessions: Mutex<HashSet<String>>,
    /// Whose each session is.
    owners: Mutex<HashMap<String, String>>,
}

type S = State<Arc<Site>>;

fn sid(h: &HeaderMap) -> Option<String> {
    h.get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("sid="))
        .map(str::to_string)
        .next()
}

fn signed_in(site: &Site, h: &HeaderMap) -> bool {
    match sid(h) {
        Some(s) => site.flaws.any_cookie || site.sessions.lock().unwrap().contains(&s),
        None => false,
    }
}

fn refused() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"detail": "not signed in"})),
    )
        .into_response()
}

async fn register(State(site): S, Form(f): Form<HashMap<String, String>>) -> Response {
    let (Some(u), Some(p)) = (f.get("username"), f.get("password")) else {
        return (StatusCode::BAD_REQUEST, "missing field").into_response();
    };
    if p.len() < 8 || p.len() > 72 {
        return (StatusCode::BAD_REQUEST, "bad password").into_response();
    }
    let mut users = site.users.lock().unwrap();
    if users.contains_key(u) {
        return (StatusCode::CONFLICT, "taken").into_response();
    }
    users.insert(u.clone(), p.clone());
    (StatusCode::CREATED, Json(json!({"username": u}))).into_response()
}

async fn login(State(site): S, h: HeaderMap, Form(f): Form<HashMap<String, String>>) -> Response {
    let ok = match (f.get("username"), f.get("password")) {
        (Some(u), Some(p)) => site.users.lock().unwrap().get(u) == Some(p),
        _ => false,
    };
    if !ok {
        return (StatusCode::OK, "<form>wrong username or password</form>").into_response();
    }
    let id = match sid(&h) {
        Some(s) if site.flaws.fixation => s,
        _ => format!("{:032x}", rand::random::<u128>()),
    };
    site.sessions.lock().unwrap().insert(id.clone());
    if let Some(u) = f.get("username") {
        site.owners.lock().unwrap().insert(id.clone(), u.clone());
    }
    let mut cookie = format!("sid={id}; Path=/");
    if !site.flaws.no_httponly {
        cookie.push_str("; HttpOnly");
    }
    cookie.push_str(if site.flaws.samesite_none {
        "; SameSite=None"
    } else {
        "; SameSite=Lax"
    });
    (
        StatusCode::FOUND,
        [("location", "/me".to_string()), ("set-cookie", cookie)],
    )
        .into_response()
}

async fn me(State(site): S, h: HeaderMap) -> Response {
    if site.flaws.null_when_signed_out {
        return if signed_in(&site, &h) {
            let user = sid(&h).and_then(|s| site.owners.lock().unwrap().get(&s).cloned());
            Json(json!({"user": {"email": format!("{}@example.com", user.unwrap_or_default())}}))
                .into_response()
        } else {
            Json(serde_json::Value::Null).into_response()
        };
    }
    if !signed_in(&site, &h) {
        return (StatusCode::FOUND, [("location", "/login")]).into_response();
    }
    Json(json!({"ok": true})).into_response()
}

async fn note(State(site): S, h: HeaderMap) -> Response {
    if !signed_in(&site, &h) {
        return refused();
    }
    let foreign = h
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| !o.starts_with("http://127.0.0.1"));
    if foreign && !site.flaws.no_csrf_check {
        return (StatusCode::FORBIDDEN, "CSRF check failed").into_response();
    }
    Json(json!({"saved": true})).into_response()
}

async fn logout(State(site): S, h: HeaderMap) -> Response {
    if let (Some(s), false) = (sid(&h), site.flaws.logout_keeps_session) {
        site.sessions.lock().unwrap().remove(&s);
    }
    (
        StatusCode::OK,
        [("set-cookie", "sid=; Path=/; Max-Age=0")],
        "bye",
    )
        .into_response()
}

async fn site(flaws: CookieFlaws) -> String {
    let site = Arc::new(Site {
        flaws,
        users: Mutex::new(HashMap::new()),
        sessions: Mutex::new(HashSet::new()),
        owners: Mutex::new(HashMap::new()),
    });
    let router = Router::new()
        .route("/register", post(register))
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/notes", post(note))
        .route("/logout", post(logout))
        .with_state(site);
    format!("http://{}", serve(router).await)
}

/// No `role` anywhere: a form register and login, then cookie-authenticated steps.
const SCENARIO: &str = r#"
name = "form-session"
[vars]
user = "u{{run_id}}{{seq}}"
password = "Pw-{{random}}"
[[steps]]
name = "register"
method = "POST"
path = "/register"
form = { username = "{{user}}", password = "{{password}}" }
expect = 201
[[steps]]
name = "login"
method = "POST"
path = "/login"
form = { username = "{{user}}", password = "{{password}}" }
expect = 302
[[steps]]
name = "me"
path = "/me"
expect = 200
[[steps]]
name = "note"
method = "POST"
path = "/notes"
body = "text=hello"
expect = 200
[[steps]]
name = "logout"
method = "POST"
path = "/logout"
expect = 200
"#;

async fn check_site(flaws: CookieFlaws) -> CheckReport {
    check_site_with(flaws, SCENARIO).await
}

async fn check_site_with(flaws: CookieFlaws, scenario: &str) -> CheckReport {
    let (_dir, scenario) = scenario_file(scenario);
    let opts = CheckOptions {
        target: Some(site(flaws).await),
        scenario,
        out_dir: None,
        timing_samples: 10,
        burst: 5,
        ..CheckOptions::default()
    };
    check(&opts).await.expect("the check runs").report
}

const SESSION_PROBES: [&str; 8] = [
    "session.none[me]",
    "session.garbage[me]",
    "session.tampered[me]",
    "session.after_logout[me]",
    "session.httponly[me]",
    "session.samesite[me]",
    "session.fixation[me]",
    "session.csrf[note]",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_cookie_site_passes_the_session_probes() {
    let r = check_site(CookieFlaws::default()).await;
    assert_eq!(r.roles.login.as_deref(), Some("login"), "{:#?}", r.roles);
    assert_eq!(r.roles.register.as_deref(), Some("register"));
    assert_eq!(r.roles.protected, ["me", "note"]);
    assert_eq!(r.roles.logout.as_deref(), Some("logout"));
    for id in SESSION_PROBES {
        assert_eq!(probe(&r, id).outcome, Outcome::Pass, "{:#?}", probe(&r, id));
    }
    // Over http, Secure is not judged.
    assert_eq!(probe(&r, "session.secure[me]").outcome, Outcome::Skip);
    // The form login is probed too: a wrong password answers 200 with the form again,
    // which is not the login's success (302).
    assert_eq!(
        probe(&r, "login.enumeration").outcome,
        Outcome::Pass,
        "{:#?}",
        probe(&r, "login.enumeration")
    );
    assert_eq!(probe(&r, "register.duplicate").outcome, Outcome::Pass);
    // Nothing was skipped because a set-up failed.
    for p in &r.probes {
        assert!(
            !p.got.contains("setup failed")
                && !p.note.as_deref().unwrap_or("").contains("setup failed"),
            "{p:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cookie_flaw_fails_its_probe() {
    let cases: [(CookieFlaws, &str, &str); 5] = [
        (
            CookieFlaws {
                no_httponly: true,
                ..Default::default()
            },
            "session.httponly[me]",
            "sid=",
        ),
        (
            CookieFlaws {
                samesite_none: true,
                ..Default::default()
            },
            "session.samesite[me]",
            "SameSite=None",
        ),
        (
            CookieFlaws {
                fixation: true,
                ..Default::default()
            },
            "session.fixation[me]",
            "planted",
        ),
        (
            CookieFlaws {
                logout_keeps_session: true,
                ..Default::default()
            },
            "session.after_logout[me]",
            "200",
        ),
        (
            CookieFlaws {
                no_csrf_check: true,
                ..Default::default()
            },
            "session.csrf[note]",
            "200",
        ),
    ];
    for (flaws, id, got) in cases {
        let r = check_site(flaws).await;
        assert_outcome(&r, id, Outcome::Fail, got);
        // The other session probes still pass.
        for other in SESSION_PROBES.iter().filter(|o| **o != id) {
            assert_eq!(
                probe(&r, other).outcome,
                Outcome::Pass,
                "{id}: {:#?}",
                probe(&r, other)
            );
        }
    }
    let r = check_site(CookieFlaws {
        any_cookie: true,
        ..Default::default()
    })
    .await;
    for id in ["session.garbage[me]", "session.tampered[me]"] {
        assert_outcome(&r, id, Outcome::Fail, "200");
    }
}

#[test]
fn explain_roles_says_why() {
    let (_dir, scenario) = scenario_file(SCENARIO);
    let path = match &scenario {
        authbench::options::ScenarioSource::File(p) => p.display().to_string(),
        _ => unreachable!("a file"),
    };
    let (code, out, err) = crate::support::cli(&["check", "--explain-roles", "--scenario", &path]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("login      login: expects success and sends a password"),
        "{out}"
    );
    assert!(
        out.contains("protected  me:") && out.contains("session cookie"),
        "{out}"
    );
    assert!(out.contains("logout     logout:"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optional_register_field_is_not_required() {
    // Register also sends an email the site ignores; the login sends the username. Only
    // the username and the password must be required.
    let scenario = SCENARIO.replace(
        "form = { username = \"{{user}}\", password = \"{{password}}\" }\nexpect = 201",
        "form = { email = \"{{user}}@example.com\", username = \"{{user}}\", password = \"{{password}}\" }\nexpect = 201",
    );
    assert_ne!(scenario, SCENARIO);
    let (_dir, scenario) = scenario_file(&scenario);
    let opts = CheckOptions {
        target: Some(site(CookieFlaws::default()).await),
        scenario,
        out_dir: None,
        timing_samples: 10,
        burst: 5,
        ..CheckOptions::default()
    };
    let r = check(&opts).await.unwrap().report;
    let p = probe(&r, "register.missing_fields");
    assert_eq!(p.outcome, Outcome::Pass, "{p:#?}");
    assert!(
        p.sent.contains("without password, without username"),
        "{p:#?}"
    );
    assert!(!p.sent.contains("email"), "{p:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_page_answering_200_null_is_judged_by_the_steps_checks() {
    // The session page answers 200 to everyone; the scenario's check on /user/email is
    // what tells a session from none.
    let scenario = SCENARIO.replace(
        "path = \"/me\"\nexpect = 200",
        "path = \"/me\"\nexpect = 200\ncheck = [{ pointer = \"/user/email\", equals = \"{{user}}@example.com\" }]",
    );
    assert_ne!(scenario, SCENARIO);
    let flaws = CookieFlaws {
        null_when_signed_out: true,
        ..Default::default()
    };
    let r = check_site_with(flaws, &scenario).await;
    for id in SESSION_PROBES {
        assert_eq!(probe(&r, id).outcome, Outcome::Pass, "{:#?}", probe(&r, id));
    }
    assert!(probe(&r, "session.none[me]").got.starts_with("200"));
    // With sessions that outlive logout, the same 200 with the user in it is a failure.
    let flaws = CookieFlaws {
        null_when_signed_out: true,
        logout_keeps_session: true,
        ..Default::default()
    };
    let r = check_site_with(flaws, &scenario).await;
    assert_outcome(&r, "session.after_logout[me]", Outcome::Fail, "200");
}
