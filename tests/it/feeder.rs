//! `[data]` feeders in their three orders, `run --save-users`, think time, and the
//! validation errors of every new scenario key, against axum servers over real sockets.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use authbench::options::ScenarioSource;
use authbench::plan::{Arrival, LoadModel, Plan, Stage};
use authbench::scenario::{Scenario, ScenarioError};
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;

use crate::session::opts;
use crate::support::{self, cli};

/// A login endpoint that accepts `password == "pw-" + email` and records every email it
/// is sent, in order.
fn login_app(seen: Arc<Mutex<Vec<String>>>) -> Router {
    Router::new()
        .route(
            "/login",
            post(
                |State(seen): State<Arc<Mutex<Vec<String>>>>,
                 Form(f): Form<HashMap<String, String>>| async move {
                    let email = f.get("email").cloned().unwrap_or_default();
                    let ok = f.get("password") == Some(&format!("pw-{email}"));
                    seen.lock().unwrap().push(email);
                    if ok {
                        StatusCode::OK
                    } else {
                        StatusCode::UNAUTHORIZED
                    }
                },
            ),
        )
        .with_state(seen)
}

/// `rows` accounts `u0@x.y`.. as CSV, and a login scenario feeding from them in `order`.
fn login_files(dir: &Path, rows: usize, order: &str) -> ScenarioSource {
    let mut csv = String::from("email,password\n");
    for i in 0..rows {
        csv.push_str(&format!("u{i}@x.y,pw-u{i}@x.y\n"));
    }
    std::fs::write(dir.join("users.csv"), csv).unwrap();
    let path = dir.join("login.toml");
    std::fs::write(
        &path,
        format!(
            r#"
name = "login"
[data]
file = "users.csv"
order = "{order}"
[[steps]]
name = "login"
method = "POST"
path = "/login"
form = {{ email = "{{{{email}}}}", password = "{{{{password}}}}" }}
"#
        ),
    )
    .unwrap();
    ScenarioSource::File(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_rows_wrap_around() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let addr = support::serve(login_app(seen.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let src = login_files(dir.path(), 3, "sequential");
    let r = support::report(&opts(addr, src, 7, 1)).await;
    assert_eq!(r.summary.successful_flows, 7, "{:#?}", r.failures);
    assert_eq!(
        *seen.lock().unwrap(),
        ["u0@x.y", "u1@x.y", "u2@x.y", "u0@x.y", "u1@x.y", "u2@x.y", "u0@x.y"]
    );
    assert_eq!(r.summary.feeder_exhausted_after, None);
    assert_eq!(
        r.config.data.as_deref(),
        Some("3 rows (email, password), order sequential")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_rows_cover_the_file() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let addr = support::serve(login_app(seen.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let src = login_files(dir.path(), 4, "random");
    let r = support::report(&opts(addr, src, 200, 4)).await;
    assert_eq!(r.summary.successful_flows, 200, "{:#?}", r.failures);
    let distinct: HashSet<String> = seen.lock().unwrap().iter().cloned().collect();
    // Each row missed by 200 uniform draws has probability (3/4)^200, about 1e-25.
    assert_eq!(distinct.len(), 4, "{distinct:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_rows_never_repeat_and_end_the_run_cleanly() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let addr = support::serve(login_app(seen.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let src = login_files(dir.path(), 5, "unique");
    // Closed loop, 3 workers, 2 calibration flows: the calibration takes its rows from
    // the same feed, so the five rows go to five flows in all.
    let mut o = opts(addr, src.clone(), 50, 3);
    o.calibration_flows = 2;
    let r = support::report(&o).await;
    assert_eq!(r.summary.total_flows, 3, "{:#?}", r.failures);
    assert_eq!(r.summary.successful_flows, 3);
    assert!(!r.partial);
    assert_eq!(r.summary.feeder_exhausted_after, Some(5));
    assert!(
        r.verdict().contains("feeder exhausted after 5 rows"),
        "{}",
        r.verdict()
    );
    let all = seen.lock().unwrap().clone();
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (5, 5), "{all:?}");

    // Open loop: arrivals stop when the rows do, and none is counted dropped.
    seen.lock().unwrap().clear();
    let mut o = opts(addr, src.clone(), 40, 1);
    o.plan = Some(Plan {
        model: LoadModel::Open {
            arrival: Arrival::Constant,
            max_in_flight: 10,
        },
        stages: vec![Stage {
            level: 200.0,
            duration: std::time::Duration::MAX,
        }],
        max_flows: Some(40),
        duration: None,
        warmup: std::time::Duration::ZERO,
    });
    let r = support::report(&o).await;
    assert_eq!(r.summary.total_flows, 5);
    assert_eq!(r.summary.dropped_flows, 0);
    assert_eq!(r.summary.feeder_exhausted_after, Some(5));

    // The CLI: exit 0, and every report says so.
    let out_dir = dir.path().join("reports");
    let ScenarioSource::File(path) = &src else {
        unreachable!()
    };
    let args = [
        "run".to_string(),
        "--target".into(),
        format!("http://{addr}"),
        "--scenario".into(),
        path.display().to_string(),
        "-n".into(),
        "20".into(),
        "--calibration".into(),
        "0".into(),
        "--out-dir".into(),
        out_dir.display().to_string(),
    ];
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("feeder exhausted after 5 rows"), "{out}");
    let mut kinds = 0;
    for f in std::fs::read_dir(&out_dir).unwrap() {
        let p = f.unwrap().path();
        if p.is_dir() {
            continue; // the run's result stream (<stamp>-run.stream/)
        }
        let text = std::fs::read_to_string(&p).unwrap();
        match p.extension().and_then(|e| e.to_str()) {
            Some("md") => assert!(text.contains("feeder exhausted after 5 rows"), "{text}"),
            Some("json") => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["summary"]["feeder_exhausted_after"], 5);
            }
            _ => continue,
        }
        kinds += 1;
    }
    assert_eq!(kinds, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_feed_like_csv() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let addr = support::serve(login_app(seen.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.jsonl"),
        "{\"email\": \"a@x.y\", \"password\": \"pw-a@x.y\"}\n\n{\"password\": \"pw-b@x.y\", \"email\": \"b@x.y\"}\n",
    )
    .unwrap();
    let text = "name = \"l\"\n[data]\nfile = \"users.jsonl\"\n[[steps]]\nname = \"login\"\nmethod = \"POST\"\npath = \"/login\"\nform = { email = \"{{email}}\", password = \"{{password}}\" }\n";
    let path = dir.path().join("s.toml");
    std::fs::write(&path, text).unwrap();
    let r = support::report(&opts(addr, ScenarioSource::File(path), 4, 1)).await;
    assert_eq!(r.summary.successful_flows, 4, "{:#?}", r.failures);
    assert_eq!(*seen.lock().unwrap(), ["a@x.y", "b@x.y", "a@x.y", "b@x.y"]);
}

// ---- --save-users ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_users_writes_exactly_the_successful_flows_then_feeds_a_login_run() {
    // Registration fails for every third request; the server keeps the accounts it made.
    #[derive(Default)]
    struct Reg {
        n: Mutex<u64>,
        accounts: Mutex<HashMap<String, String>>,
    }
    let reg = Arc::new(Reg::default());
    let app = Router::new()
        .route(
            "/register",
            post(
                |State(r): State<Arc<Reg>>, Form(f): Form<HashMap<String, String>>| async move {
                    let mut n = r.n.lock().unwrap();
                    *n += 1;
                    if *n % 3 == 0 {
                        return StatusCode::CONFLICT;
                    }
                    r.accounts
                        .lock()
                        .unwrap()
                        .insert(f["email"].clone(), f["password"].clone());
                    StatusCode::CREATED
                },
            ),
        )
        .route(
            "/login",
            post(
                |State(r): State<Arc<Reg>>, Form(f): Form<HashMap<String, String>>| async move {
                    match r.accounts.lock().unwrap().get(&f["email"]) {
                        Some(p) if *p == f["password"] => StatusCode::OK,
                        _ => StatusCode::UNAUTHORIZED,
                    }
                },
            ),
        )
        .with_state(reg.clone());
    let addr = support::serve(app).await;
    let dir = tempfile::tempdir().unwrap();
    let register = dir.path().join("register.toml");
    std::fs::write(
        &register,
        r#"
name = "register"
[vars]
email = "ab-{{run_id}}-{{seq}}@example.com"
password = "Pw-{{random}}"
[[steps]]
name = "register"
method = "POST"
path = "/register"
form = { email = "{{email}}", password = "{{password}}" }
expect = 201
"#,
    )
    .unwrap();
    let users = dir.path().join("users.csv");
    let mut o = opts(addr, ScenarioSource::File(register), 30, 3);
    o.save_users = Some(users.clone());
    let r = support::report(&o).await;
    assert_eq!(
        (r.summary.successful_flows, r.summary.failed_flows),
        (20, 10)
    );

    let text = std::fs::read_to_string(&users).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("email,password"));
    let saved: HashMap<String, String> = lines
        .map(|l| {
            let (e, p) = l.split_once(',').unwrap();
            (e.to_string(), p.to_string())
        })
        .collect();
    assert_eq!(saved, *reg.accounts.lock().unwrap());

    // A login-only run from the saved accounts, each used once.
    let login = dir.path().join("login.toml");
    std::fs::write(
        &login,
        "name = \"login\"\n[data]\nfile = \"users.csv\"\norder = \"unique\"\n[[steps]]\nname = \"login\"\nmethod = \"POST\"\npath = \"/login\"\nform = { email = \"{{email}}\", password = \"{{password}}\" }\n",
    )
    .unwrap();
    let r = support::report(&opts(addr, ScenarioSource::File(login.clone()), 100, 4)).await;
    assert_eq!(r.summary.successful_flows, 20, "{:#?}", r.failures);
    assert_eq!(r.summary.feeder_exhausted_after, Some(20));

    // A feeder's columns are saved too.
    let again = dir.path().join("again.csv");
    let mut o = opts(addr, ScenarioSource::File(login), 5, 1);
    o.save_users = Some(again.clone());
    support::report(&o).await;
    let text = std::fs::read_to_string(&again).unwrap();
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(text.starts_with("email,password\n"), "{text}");

    // Nothing to save is a configuration error (exit 2), before any load.
    let again_s = again.display().to_string();
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        cli(&[
            "run",
            "--scenario",
            support_health(),
            "--save-users",
            &again_s,
            "--no-reports",
        ])
    })
    .await
    .unwrap();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no [vars] and no [data]"), "{err}");
}

fn support_health() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/health.toml")
}

// ---- think time ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn think_time_is_in_flow_time_not_step_latency() {
    let app = Router::new()
        .route("/a", axum::routing::get(|| async { "{}" }))
        .route("/b", axum::routing::get(|| async { "{}" }));
    let addr = support::serve(app).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(
        &path,
        "name = \"think\"\n[[steps]]\nname = \"a\"\npath = \"/a\"\nthink = { min = \"400ms\", max = \"500ms\" }\n[[steps]]\nname = \"b\"\npath = \"/b\"\nthink = \"10s\"\n",
    )
    .unwrap();
    let r = support::report(&opts(addr, ScenarioSource::File(path), 3, 3)).await;
    assert_eq!(r.summary.successful_flows, 3, "{:#?}", r.failures);
    // Every flow slept at least 400 ms (the histogram's precision is 0.1%)...
    assert!(r.flow.min_ms >= 399.0, "{:?}", r.flow);
    // ...which no request's latency includes: had it, none could be under 400 ms.
    assert!(
        r.steps[0].latency.min_ms < r.flow.min_ms,
        "{:?}",
        r.steps[0]
    );
    // The last step's think is not slept: the flows took well under 10 s.
    assert!(r.flow.max_ms < 10_000.0, "{:?}", r.flow);
    assert_eq!(r.config.think.as_deref(), Some("a 400ms-500ms, b 10000ms"));
    let md = String::from_utf8(
        authbench::render::Exporter::render(&authbench::render::markdown::Markdown, &r).unwrap(),
    )
    .unwrap();
    assert!(md.contains("| think time | a 400ms-500ms"), "{md}");
}

// ---- validation ------------------------------------------------------------------------

fn errors_in(dir: &Path, text: &str) -> Vec<ScenarioError> {
    let path = dir.join("t.toml");
    std::fs::write(&path, text).unwrap();
    Scenario::load(&path).unwrap_err().0
}

/// The single error of `text`, as (line, column, message).
fn one_error(dir: &Path, text: &str) -> (usize, usize, String) {
    let e = errors_in(dir, text);
    assert_eq!(e.len(), 1, "{e:#?}");
    (e[0].line, e[0].column, e[0].message.clone())
}

const STEP: &str = "[[steps]]\nname = \"a\"\npath = \"/x\"\n";

#[test]
fn every_new_key_misuse_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: &[(&str, (usize, usize), &str)] = &[
        (
            "body = \"x\"\nform = { a = \"b\" }\n",
            (6, 8),
            "`body` and `form`",
        ),
        ("form = { a = [1] }\n", (5, 14), "form field `a`"),
        ("form = \"a=b\"\n", (5, 8), "invalid type"),
        (
            "basic = { user = \"u\", password = \"p\" }\nheaders = { authorization = \"x\" }\n",
            (5, 9),
            "`basic` sets the Authorization header",
        ),
        (
            "basic = { user = \"u\" }\n",
            (5, 9),
            "missing field `password`",
        ),
        (
            "basic = { user = \"{{who}}\", password = \"p\" }\n",
            (5, 21),
            "undefined variable `who`",
        ),
        ("think = \"soon\"\n", (5, 9), "not a duration"),
        (
            "think = { min = \"2s\", max = \"1s\" }\n",
            (5, 9),
            "`min` is above `max`",
        ),
        (
            "think = { min = \"1s\" }\n",
            (5, 9),
            "`think` is a duration",
        ),
        ("think = 3\n", (5, 9), "`think` is a duration"),
        (
            "extract = { v = { regex = '(' } }\n",
            (5, 17),
            "not a valid regular expression",
        ),
        (
            "extract = { v = { regex = 'a(b)', group = 2 } }\n",
            (5, 17),
            "has 1 capture group(s)",
        ),
        (
            "extract = { v = { regex = 'ab' } }\n",
            (5, 17),
            "`group = 0` for the whole match",
        ),
        (
            "extract = { v = { regex = 'a(b)', group = -1 } }\n",
            (5, 17),
            "capture group number",
        ),
        (
            "extract = { v = { group = 1 } }\n",
            (5, 17),
            "needs a `regex`",
        ),
        (
            "extract = { v = { headr = \"x\" } }\n",
            (5, 17),
            "unknown key `headr`",
        ),
        (
            "extract = { v = { header = \"a b\", regex = 'x' } }\n",
            (5, 17),
            "not a valid HTTP header name",
        ),
        (
            "extract = { v = { cookie = \"sid\", header = \"x\" } }\n",
            (5, 17),
            "takes no other key",
        ),
        (
            "extract = { v = { cookie = \"a b\" } }\n",
            (5, 17),
            "not a cookie name",
        ),
        ("extract = { v = {} }\n", (5, 17), "empty table"),
        ("extract = { v = 3 }\n", (5, 17), "must be a JSON pointer"),
    ];
    for (line, (l, c), needle) in cases {
        let (el, ec, m) = one_error(d, &format!("name = \"t\"\n{STEP}{line}"));
        assert_eq!((el, ec), (*l, *c), "{line}: {m}");
        assert!(m.contains(needle), "{line}: {m}");
    }
    // The jar is off: a cookie cannot be extracted.
    let (l, c, m) = one_error(
        d,
        &format!(
            "name = \"t\"\ncookies = false\n{STEP}extract = {{ s = {{ cookie = \"sid\" }} }}\n"
        ),
    );
    assert_eq!((l, c), (6, 17));
    assert!(m.contains("`cookies = false`"), "{m}");
    let (l, c, m) = one_error(d, &format!("name = \"t\"\ncookies = \"yes\"\n{STEP}"));
    assert_eq!((l, c), (2, 11), "{m}");
}

#[test]
fn data_file_problems_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv_path = d.join("users.csv");
    let shown = csv_path.display().to_string();
    let with = |order: &str| {
        format!("name = \"t\"\n[data]\nfile = \"users.csv\"\n{order}{STEP}form = {{ e = \"{{{{email}}}}\" }}\n")
    };

    std::fs::write(&csv_path, "").unwrap();
    let (l, c, m) = one_error(d, &with(""));
    assert_eq!((l, c), (3, 8), "{m}");
    assert!(m.contains(&shown) && m.contains("empty"), "{m}");

    std::fs::write(&csv_path, "email,password\n").unwrap();
    let (l, _, m) = one_error(d, &with(""));
    assert!(l == 3 && m.contains("no rows"), "{m}");

    std::fs::write(&csv_path, "email,password\na,b\nc,d,e\n").unwrap();
    let e = errors_in(d, &with(""));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!((e[0].file.as_str(), e[0].line), (shown.as_str(), 3));
    assert!(
        e[0].message.contains("3 values, the header has 2"),
        "{e:#?}"
    );

    std::fs::write(&csv_path, "e-mail,password\na,b\n").unwrap();
    let e = errors_in(d, &with(""));
    assert_eq!(
        (e[0].file.as_str(), e[0].line),
        (shown.as_str(), 1),
        "{e:#?}"
    );
    assert!(e[0]
        .message
        .contains("`e-mail` is not a valid variable name"));

    // A template naming a column the file lacks: undefined, at the variable.
    std::fs::write(&csv_path, "mail,password\na,b\n").unwrap();
    let (l, c, m) = one_error(d, &with(""));
    assert_eq!((l, c), (7, 17), "{m}");
    assert!(
        m.contains("undefined variable `email`") && m.contains("mail"),
        "{m}"
    );

    std::fs::write(&csv_path, "email,password\na,b\n").unwrap();
    let (l, c, m) = one_error(d, &with("order = \"shuffled\"\n"));
    assert_eq!((l, c), (4, 9));
    assert!(m.contains("\"unique\""), "{m}");

    let (l, _, m) = one_error(
        d,
        "name = \"t\"\n[data]\nfile = \"nowhere.csv\"\n[[steps]]\nname = \"a\"\npath = \"/\"\n",
    );
    assert!(l == 3 && m.contains("cannot read"), "{m}");

    // A [vars] entry cannot redefine a column; [vars] may read one.
    let (l, _, m) = one_error(
        d,
        "name = \"t\"\n[data]\nfile = \"users.csv\"\n[vars]\nemail = \"x\"\nlower = \"{{email}}-1\"\n[[steps]]\nname = \"a\"\npath = \"/{{lower}}\"\n",
    );
    assert!(l == 5 && m.contains("column of the [data] file"), "{m}");
    assert!(errors_in(d, "name = \"t\"\n[data]\nfile = \"users.csv\"\nextra = 1\n[[steps]]\nname = \"a\"\npath = \"/\"\n")[0]
        .message
        .contains("unknown field `extra`"));
}
