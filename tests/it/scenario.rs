//! Scenario files: validation errors with positions, other API shapes run for real,
//! checks and extraction failures counted under their step.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use authbench::options::{RunOptions, ScenarioSource};
use authbench::scenario::{Scenario, ScenarioError};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::support::{self, cli};

fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

fn errors(text: &str) -> Vec<ScenarioError> {
    Scenario::parse(text, "t.toml").unwrap_err().0
}

/// The single error of `text`, as (line, column, message).
fn one_error(text: &str) -> (usize, usize, String) {
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].file, "t.toml");
    (e[0].line, e[0].column, e[0].message.clone())
}

const HEAD: &str = "name = \"t\"\n[[steps]]\nname = \"a\"\npath = \"/x\"\n";

#[test]
fn every_shipped_scenario_is_valid() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&p).unwrap();
            if authbench::scenario::mix::is_mix(&text) {
                authbench::scenario::mix::load(&p).unwrap_or_else(|e| panic!("{e}"));
            } else {
                Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
            }
            n += 1;
        }
    }
    assert!(n >= 4);
    // The built-in default is the file's bytes.
    assert_eq!(
        authbench::scenario::DEFAULT_SCENARIO,
        std::fs::read_to_string(scenario_path("pyairtable.toml")).unwrap()
    );
}

#[test]
fn unknown_key_is_located() {
    let (l, c, m) = one_error(&format!("{HEAD}methd = \"GET\"\n"));
    assert_eq!((l, c), (5, 1));
    assert!(
        m.contains("unknown field `methd`") && m.contains("method"),
        "{m}"
    );
    let (l, c, m) = one_error("name = \"t\"\nsteps = []\ncolour = 1\n");
    assert_eq!((l, c), (3, 1), "{m}");
}

#[test]
fn wrong_type_is_located() {
    let (l, c, m) = one_error(&format!("{HEAD}expect = true\n"));
    assert_eq!((l, c), (5, 10), "{m}");
    let (l, c, m) = one_error("name = 3\nsteps = []\n");
    assert_eq!((l, c), (1, 8));
    assert!(m.contains("string"), "{m}");
}

#[test]
fn toml_syntax_error_is_located() {
    let (l, c, _) = one_error("name = \"t\"\n[[steps]\n");
    assert_eq!(l, 2, "col {c}");
}

#[test]
fn undefined_variable_is_located_at_its_name() {
    let (l, c, m) =
        one_error("name = \"t\"\n[[steps]]\nname = \"a\"\npath = \"/u/{{ nobody }}\"\n");
    assert_eq!((l, c), (4, 15));
    assert!(
        m.contains("undefined variable `nobody`") && m.contains("seq"),
        "{m}"
    );
    // In a body table and in a header.
    let e = errors(&format!(
        "{HEAD}body = {{ a = \"{{{{x1}}}}\" }}\nheaders = {{ H = \"{{{{x2}}}}\" }}\n"
    ));
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_eq!((e[0].line, e[0].column), (5, 17));
    assert_eq!((e[1].line, e[1].column), (6, 20));
}

#[test]
fn variable_from_a_later_step_is_an_error() {
    let text = "name = \"t\"\n\
[[steps]]\nname = \"a\"\npath = \"/a/{{token}}\"\n\
[[steps]]\nname = \"b\"\npath = \"/b\"\nextract = { token = \"/t\" }\n\
[[steps]]\nname = \"c\"\npath = \"/c/{{token}}\"\n";
    let (l, c, m) = one_error(text);
    assert_eq!((l, c), (4, 14));
    assert!(m.contains("only in later steps"), "{m}");
    // Nor in its own step's request.
    let (l, _, _) = one_error(
        "name = \"t\"\n[[steps]]\nname = \"a\"\npath = \"/{{v}}\"\nextract = { v = \"/v\" }\n",
    );
    assert_eq!(l, 4);
}

#[test]
fn duplicate_step_names_are_located() {
    let (l, c, m) = one_error(&format!("{HEAD}[[steps]]\nname = \"a\"\npath = \"/y\"\n"));
    assert_eq!((l, c), (6, 8));
    assert!(
        m.contains("duplicate step name `a`") && m.contains("line 3"),
        "{m}"
    );
}

#[test]
fn impossible_statuses_are_located() {
    for (expect, col, needle) in [
        ("\"299-200\"", 10, "empty"),
        ("700", 10, "100 to 599"),
        ("[200, 99]", 10, "100 to 599"),
        ("\"7xx\"", 10, "not a status"),
        ("[]", 10, "empty list"),
    ] {
        let (l, c, m) = one_error(&format!("{HEAD}expect = {expect}\n"));
        assert_eq!((l, c), (5, col), "{expect}: {m}");
        assert!(m.contains(needle), "{expect}: {m}");
    }
}

#[test]
fn other_errors_are_located() {
    let cases = [
        ("method = \"G T\"\n", "not an HTTP method"),
        (
            "check = [{ pointer = \"/a\", matches = \"(\" }]\n",
            "not a valid regular expression",
        ),
        (
            "check = [{ pointer = \"a\", exists = true }]\n",
            "not a JSON pointer",
        ),
        ("check = [{ pointer = \"/a\" }]\n", "exactly one of"),
        (
            "check = [{ pointer = \"/a\", exists = true, equals = 1 }]\n",
            "exactly one of",
        ),
        ("extract = { seq = \"/a\" }\n", "built-in"),
        ("extract = { t = \"a\" }\n", "not a JSON pointer"),
        (
            "headers = { \"Bad Header\" = \"v\" }\n",
            "not a valid HTTP header name",
        ),
        ("body = 3\n", "`body` must be"),
    ];
    for (line, needle) in cases {
        let (l, c, m) = one_error(&format!("{HEAD}{line}"));
        assert_eq!(l, 5, "{line}: {m}");
        assert!(c >= 1, "{line}");
        assert!(m.contains(needle), "{line}: {m}");
    }
    let (l, _, m) = one_error("name = \"t\"\n[[steps]]\nname = \"a\"\npath = \"x\"\n");
    assert_eq!(l, 4);
    assert!(m.contains("must start with `/`"), "{m}");
    let (_, _, m) = one_error("name = \"t\"\nsteps = []\n");
    assert!(m.contains("at least one"), "{m}");
    let (l, c, m) = one_error("name = \"t\"\n[[steps]]\nname = \"a\"\npath = \"/{{x\"\n");
    assert_eq!((l, c), (4, 10), "{m}");
}

#[test]
fn validate_command_reports_file_line_column_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!("{HEAD}[[steps]]\nname = \"a\"\npath = \"/{{{{ghost}}}}\"\n"),
    )
    .unwrap();
    let good = scenario_path("health.toml");
    let (code, out, err) = cli(&["validate", good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(out.contains("ok: ") && out.contains("health"), "{out}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(&format!(
            "error: {}:6:8: duplicate step name",
            bad.display()
        )),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "error: {}:7:12: undefined variable `ghost`",
            bad.display()
        )),
        "{err}"
    );

    let (code, out, _) = cli(&["validate", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    // `run` refuses the same file with the same message and exit 2.
    let (code, _, err) = cli(&["run", "--scenario", bad.to_str().unwrap(), "--no-reports"]);
    assert_eq!(code, 2);
    assert!(err.contains(":7:12:"), "{err}");
}

// ---- a service of another shape ------------------------------------------------------

#[derive(Default)]
struct V1 {
    users: Mutex<HashMap<String, String>>,
}

async fn v1_signup(State(s): State<Arc<V1>>, Json(b): Json<Value>) -> impl IntoResponse {
    let (Some(u), Some(p)) = (b["username"].as_str(), b["password"].as_str()) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            HeaderMap::new(),
            Json(json!({})),
        );
    };
    assert_eq!(b["tags"], json!(["load-test"]));
    s.users.lock().unwrap().insert(u.to_string(), p.to_string());
    let mut h = HeaderMap::new();
    h.insert("x-session-id", format!("sess-{u}").parse().unwrap());
    (StatusCode::CREATED, h, Json(json!({"created": u})))
}

async fn v1_login(State(s): State<Arc<V1>>, Json(b): Json<Value>) -> impl IntoResponse {
    let u = b["username"].as_str().unwrap_or_default();
    let ok = s.users.lock().unwrap().get(u).map(String::as_str) == b["password"].as_str()
        && b["session"].as_str() == Some(&format!("sess-{u}"));
    if ok {
        (StatusCode::OK, Json(json!({"token": format!("tok-{u}")})))
    } else {
        (StatusCode::UNAUTHORIZED, Json(json!({"error": "nope"})))
    }
}

async fn v1_me(Path(u): Path<String>, h: HeaderMap) -> impl IntoResponse {
    let want = format!("tok-{u}");
    if h.get("x-auth-token").and_then(|v| v.to_str().ok()) == Some(want.as_str()) {
        (StatusCode::OK, Json(json!({"username": u, "active": true})))
    } else {
        (StatusCode::UNAUTHORIZED, Json(json!({})))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_api_shape_runs_with_full_success() {
    let app = Router::new()
        .route("/api/v1/users", post(v1_signup))
        .route("/api/v1/login", post(v1_login))
        .route("/api/v1/users/{user}", get(v1_me))
        .with_state(Arc::new(V1::default()));
    let addr = support::serve(app).await;
    let o = RunOptions {
        target: Some(format!("http://{addr}")),
        scenario: ScenarioSource::File(scenario_path("api-v1-example.toml")),
        flows: 50,
        concurrency: 10,
        out_dir: None,
        ..RunOptions::default()
    };
    let r = authbench::run(&o, std::future::pending()).await.unwrap();
    assert_eq!(
        r.report.summary.successful_flows, 50,
        "{:#?}",
        r.report.failures
    );
    let names: Vec<&str> = r.report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["signup", "login", "me"]);
    assert_eq!(r.report.config.scenario, "api-v1-example");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_checks_and_missing_fields_count_under_their_step() {
    // verify answers {"valid": false}: a failed check at `verify`.
    let app = Router::new()
        .route(
            "/auth/register",
            post(|| async { Json(json!({"access_token": "t", "user": {"email": "other@x.y"}})) }),
        )
        .route(
            "/auth/login",
            post(|| async { Json(json!({"token": "t"})) }),
        );
    let addr = support::serve(app).await;
    let base = RunOptions {
        target: Some(format!("http://{addr}")),
        api_key: Some("k".into()),
        flows: 5,
        out_dir: None,
        ..RunOptions::default()
    };
    // The default scenario checks /user/email equals the flow's email: a check failure.
    let r = authbench::run(&base, std::future::pending()).await.unwrap();
    let reg = &r.report.steps[0];
    assert_eq!(reg.failures["check"], 5, "{:#?}", r.report.failures);
    // The failure says what was expected (the flow's email) and what came.
    let d = &r.report.failures[0].detail;
    assert!(
        d.starts_with("check failed at /user/email: expected \""),
        "{d}"
    );
    assert!(d.ends_with(", got \"other@x.y\""), "{d}");

    // register-token extracts /access_token and /user/id; the id is missing: bad body.
    let o = RunOptions {
        scenario: ScenarioSource::File(scenario_path("register-token.toml")),
        ..base.clone()
    };
    let r = authbench::run(&o, std::future::pending()).await.unwrap();
    assert_eq!(
        r.report.steps[0].failures["bad_body"], 5,
        "{:#?}",
        r.report.failures
    );
    assert_eq!(r.report.failures[0].detail, "missing /user/id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_scenarios_run_against_the_reference_server() {
    for name in ["register-token.toml", "health.toml"] {
        let o = RunOptions {
            scenario: ScenarioSource::File(scenario_path(name)),
            cost: 4,
            flows: 10,
            out_dir: None,
            ..RunOptions::default()
        };
        let r = authbench::run(&o, std::future::pending()).await.unwrap();
        assert_eq!(
            r.report.summary.successful_flows, 10,
            "{name}: {:#?}",
            r.report.failures
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_only_runs_on_the_accounts_save_users_wrote() {
    // A registration run saves its accounts; login-only (a copy next to that file) logs
    // every one of them in against the same server.
    let key = "login-only-key".to_string();
    let server = authbench::pipeline::start_reference_server(authbench::server::ServerConfig::new(
        4,
        key.clone(),
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("login-only-users.csv");
    let base = RunOptions {
        target: Some(server.base_url()),
        api_key: Some(key),
        flows: 12,
        concurrency: 4,
        out_dir: None,
        calibration_flows: 0,
        ..RunOptions::default()
    };
    let o = RunOptions {
        save_users: Some(users.clone()),
        ..base.clone()
    };
    let r = authbench::run(&o, std::future::pending()).await.unwrap();
    assert_eq!(r.report.summary.successful_flows, 12);
    std::fs::copy(
        scenario_path("login-only.toml"),
        dir.path().join("login-only.toml"),
    )
    .unwrap();
    let o = RunOptions {
        scenario: ScenarioSource::File(dir.path().join("login-only.toml")),
        flows: 24,
        ..base
    };
    let r = authbench::run(&o, std::future::pending()).await.unwrap();
    server.shutdown();
    assert_eq!(
        r.report.summary.successful_flows, 24,
        "{:#?}",
        r.report.failures
    );
    assert_eq!(r.report.config.scenario, "login-only");
}
