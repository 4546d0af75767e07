//! Browser-style flows over real sockets against axum servers written here: one flow
//! across two hosts (127.0.0.1 and 127.0.0.2, cookies kept apart by domain), redirects
//! of each status code followed on request, checks that compare numbers as numbers and
//! say what they expected, and variables from `--var` and `AUTHBENCH_VAR_*` (taken by
//! every command that sends requests: run, check, sweep, tune, capacity).

use std::net::SocketAddr;
use std::time::Duration;

use authbench::options::RunOptions;
use authbench::report::Report;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::json;

use crate::support;

/// Serves `router` on `ip` (any loopback address), port chosen by the OS.
async fn serve_on(ip: &str, router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

fn opts(addr: SocketAddr, text: &str, vars: &[(&str, String)]) -> (tempfile::TempDir, RunOptions) {
    let (dir, scenario) = support::scenario_file(text);
    let o = RunOptions {
        target: Some(format!("http://{addr}")),
        scenario,
        vars: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        flows: 4,
        concurrency: 2,
        timeout: Duration::from_secs(10),
        calibration_flows: 0,
        out_dir: None,
        ..RunOptions::default()
    };
    (dir, o)
}

fn failures(r: &Report) -> String {
    format!("{:#?}", r.failures)
}

/// A host that sets the cookie `name=value` at `/start` and echoes the `Cookie` header
/// it receives at `/echo`.
fn cookie_host(name: &'static str, value: &'static str) -> Router {
    Router::new()
        .route(
            "/start",
            get(move || async move {
                (
                    [(header::SET_COOKIE, format!("{name}={value}; Path=/"))],
                    Json(json!({ "ok": true })),
                )
            }),
        )
        .route(
            "/echo",
            get(|h: HeaderMap| async move {
                let c = h.get(header::COOKIE).and_then(|v| v.to_str().ok());
                Json(json!({ "cookie": c.unwrap_or("") }))
            }),
        )
}

#[tokio::test]
async fn a_flow_crosses_two_hosts_with_cookies_kept_apart_by_domain() {
    let app = serve_on("127.0.0.1", cookie_host("app", "1")).await;
    let idp = serve_on("127.0.0.2", cookie_host("idp", "2")).await;
    let text = r#"
name = "two-hosts"
cookies = true
[[steps]]
name = "app-start"
path = "/start"
[[steps]]
name = "idp-start"
url = "{{idp}}/start"
[[steps]]
name = "app-echo"
url = "{{target}}/echo"
check = [{ pointer = "/cookie", equals = "app=1" }]
[[steps]]
name = "idp-echo"
url = "{{idp}}/echo"
check = [{ pointer = "/cookie", equals = "idp=2" }]
"#;
    let (_d, o) = opts(app, text, &[("idp", format!("http://{idp}"))]);
    let r = support::report(&o).await;
    assert_eq!(r.summary.successful_flows, 4, "{}", failures(&r));
    let origins: Vec<&str> = r.hosts.iter().map(|h| h.origin.as_str()).collect();
    assert_eq!(
        origins,
        [format!("http://{app}"), format!("http://{idp}")],
        "{:?}",
        r.hosts
    );
    assert_eq!(r.hosts[1].steps, ["idp-start", "idp-echo"]);
    // Every step has its own figures, whatever host it went to.
    assert!(r.steps.iter().all(|s| s.ok == 4), "{:#?}", r.steps);
}

/// `/r/{code}` answers `code` with `Location: /landing` and a cookie `hop`; `/landing`
/// says what it got: the method, the body and the cookies.
fn redirector(other: Option<SocketAddr>) -> Router {
    Router::new()
        .route(
            "/r/{code}",
            any(|Path(code): Path<u16>| async move {
                Response::builder()
                    .status(code)
                    .header(header::LOCATION, "/landing")
                    .header(header::SET_COOKIE, format!("hop={code}; Path=/"))
                    .body(axum::body::Body::empty())
                    .unwrap()
            }),
        )
        .route(
            "/chain/{n}",
            any(|Path(n): Path<u32>| async move {
                let to = match n {
                    0 => "/landing".to_string(),
                    n => format!("/chain/{}", n - 1),
                };
                (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
            }),
        )
        .route(
            "/away",
            get(move || async move {
                let to = format!("http://{}/landing", other.expect("a second host"));
                (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
            }),
        )
        .route(
            "/landing",
            any(|m: Method, h: HeaderMap, body: Bytes| async move {
                let cookie = h.get(header::COOKIE).and_then(|v| v.to_str().ok());
                let auth = h.contains_key(header::AUTHORIZATION);
                Json(json!({
                    "method": m.as_str(),
                    "body": String::from_utf8_lossy(&body),
                    "cookie": cookie.unwrap_or(""),
                    "authorization": auth,
                }))
            }),
        )
}

#[tokio::test]
async fn redirects_are_followed_as_browsers_follow_them() {
    let other = serve_on("127.0.0.2", redirector(None)).await;
    let addr = serve_on("127.0.0.1", redirector(Some(other))).await;
    // (status, method sent, method expected after, body expected after)
    let cases = [
        (303, "POST", "GET", ""),
        (302, "POST", "GET", ""),
        (301, "POST", "GET", ""),
        (302, "PUT", "PUT", "x=1"),
        (307, "POST", "POST", "x=1"),
        (308, "POST", "POST", "x=1"),
    ];
    let mut text = String::from("name = \"redirects\"\ncookies = true\n");
    for (i, (code, method, after, body)) in cases.iter().enumerate() {
        text.push_str(&format!(
            "[[steps]]\nname = \"s{i}-{code}\"\nmethod = \"{method}\"\npath = \"/r/{code}\"\nbody = \"x=1\"\nfollow = true\ncheck = [{{ pointer = \"/method\", equals = \"{after}\" }}, {{ pointer = \"/body\", equals = \"{body}\" }}, {{ pointer = \"/cookie\", equals = \"hop={code}\" }}]\n"
        ));
    }
    // Not followed: the redirect itself is the answer, and its Location is read.
    text.push_str("[[steps]]\nname = \"unfollowed\"\npath = \"/r/302\"\nexpect = 302\nextract = { to = { header = \"location\" } }\n");
    // Ten redirects are followed; to another host, without the step's Authorization.
    text.push_str("[[steps]]\nname = \"ten\"\npath = \"/chain/9\"\nfollow = true\ncheck = [{ pointer = \"/method\", equals = \"GET\" }]\n");
    text.push_str("[[steps]]\nname = \"away\"\npath = \"/away\"\nheaders = { Authorization = \"Bearer t\" }\nfollow = true\ncheck = [{ pointer = \"/authorization\", equals = false }]\n");
    let (_d, o) = opts(addr, &text, &[]);
    let r = support::report(&o).await;
    assert_eq!(r.summary.successful_flows, 4, "{}", failures(&r));
    // Each hop is counted, per step: one per redirect step, ten for the chain.
    let hops = |name: &str| r.steps.iter().find(|s| s.name == name).unwrap().redirects;
    assert_eq!((hops("s0-303"), hops("ten"), hops("away")), (4, 40, 4));
    assert_eq!(hops("unfollowed"), 0);
    // The host the redirect led to is one the flow touched, reached by the step `away`.
    let origins: Vec<&str> = r.hosts.iter().map(|h| h.origin.as_str()).collect();
    let away = format!("http://{other}");
    assert_eq!(
        origins,
        [format!("http://{addr}"), away.clone()],
        "{:#?}",
        r.hosts
    );
    assert_eq!(r.hosts[1].steps, ["away"]);
    assert!(
        r.hosts[0].steps.iter().any(|s| s == "away"),
        "{:#?}",
        r.hosts
    );

    // An eleventh redirect is not followed: the step sees a 302.
    let (_d, o) = opts(
        addr,
        "name = \"r\"\n[[steps]]\nname = \"eleven\"\npath = \"/chain/10\"\nfollow = true\n",
        &[],
    );
    let r = support::report(&o).await;
    assert_eq!(r.summary.successful_flows, 0);
    assert_eq!(
        r.failures[0].detail,
        "unexpected status 302",
        "{}",
        failures(&r)
    );
}

fn numbers() -> Router {
    Router::new().route(
        "/n",
        get(|| async { Json(json!({ "id": 42, "ratio": 0.5, "ok": true, "name": "42" })) }),
    )
}

#[tokio::test]
async fn equals_compares_by_the_json_type_and_failures_say_both_values() {
    let addr = serve_on("127.0.0.1", numbers()).await;
    let text = r#"
name = "numbers"
[[steps]]
name = "n"
path = "/n"
check = [
  { pointer = "/id", equals = "{{id}}" },
  { pointer = "/ratio", equals = "0.50" },
  { pointer = "/ok", equals = "true" },
  { pointer = "/name", equals = "{{id}}" },
  { pointer = "/id", equals = 42.0 },
]
"#;
    let (_d, o) = opts(addr, text, &[("id", "42".into())]);
    let r = support::report(&o).await;
    assert_eq!(r.summary.successful_flows, 4, "{}", failures(&r));

    let (_d, o) = opts(addr, text, &[("id", "41".into())]);
    let r = support::report(&o).await;
    assert_eq!(r.summary.successful_flows, 0);
    assert_eq!(r.failures[0].class, "check");
    assert_eq!(
        r.failures[0].detail,
        "check failed at /id: expected \"41\", got 42",
        "{}",
        failures(&r)
    );
}

#[test]
fn vars_come_from_the_flag_and_the_environment_and_validate_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.toml");
    std::fs::write(
        &path,
        "name = \"v\"\n[vars]\nrealm = \"default\"\n[[steps]]\nname = \"s\"\nurl = \"{{idp}}/realms/{{realm}}\"\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    // Without `idp`, the scenario does not load: the error is at its line and column.
    let (code, _, err) = support::cli(&["validate", p]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("v.toml:6:"), "{err}");
    assert!(err.contains("undefined variable `idp`"), "{err}");
    let (code, out, err) = support::cli(&["validate", p, "--var", "idp=http://127.0.0.1:1"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = support::cli(&["validate", p, "--var", "no-dash=1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a variable name"), "{err}");

    // The environment form, through the real binary.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authbench"))
        .args(["validate", p])
        .env("AUTHBENCH_VAR_idp", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_var_replaces_the_files_value() {
    use authbench::scenario::Scenario;
    let text = "name = \"v\"\n[vars]\nrealm = \"a\"\n[[steps]]\nname = \"s\"\npath = \"/{{realm}}/{{extra}}\"\n";
    let vars = [
        ("realm".to_string(), "b".to_string()),
        ("extra".to_string(), "x y".to_string()),
    ];
    let s = Scenario::parse_with_vars(text, "v.toml", &vars).unwrap();
    let mut table = vec![String::new(); s.slot_count];
    for (slot, t) in &s.vars {
        table[*slot] = t.render(&table);
    }
    assert_eq!(s.steps[0].path.render(&table), "/b/x y");
}

/// A health flow that sends `{{realm}}`: it does not load without `--var realm=...`.
const REALM_HEALTH: &str = r#"
name = "realm-health"
[[steps]]
name = "health"
path = "/health"
headers = { X-Realm = "{{realm}}" }
expect = 200
"#;

/// Runs `args` (a command against the in-process server) without the variable, which
/// must fail naming it, then with `--var realm=r`, which must pass.
fn needs_realm(args: &[&str]) {
    let (code, out, err) = support::cli(args);
    assert_ne!(code, 0, "{args:?}: {out}{err}");
    assert!(
        err.contains("undefined variable `realm`"),
        "{args:?}: {err}"
    );
    let mut with = args.to_vec();
    with.extend(["--var", "realm=r"]);
    let (code, out, err) = support::cli(&with);
    assert_eq!(code, 0, "{args:?}: {out}{err}");
}

#[test]
fn sweep_takes_vars() {
    let (_d, src) = support::scenario_file(REALM_HEALTH);
    let authbench::options::ScenarioSource::File(p) = src else {
        unreachable!()
    };
    let p = p.to_str().unwrap();
    needs_realm(&[
        "sweep",
        "-s",
        p,
        "--costs",
        "4..=5",
        "--flows",
        "2",
        "--no-reports",
    ]);
}

#[test]
fn tune_takes_vars() {
    let (_d, src) = support::scenario_file(REALM_HEALTH);
    let authbench::options::ScenarioSource::File(p) = src else {
        unreachable!()
    };
    let p = p.to_str().unwrap();
    needs_realm(&[
        "tune",
        "-s",
        p,
        "--slo",
        "flow.p95<10s",
        "--min-cost",
        "4",
        "--max-cost",
        "4",
        "--allow-weak",
        "--flows",
        "2",
        "--concurrency",
        "2",
        "--no-reports",
    ]);
}

#[test]
fn capacity_takes_vars() {
    let (_d, src) = support::scenario_file(REALM_HEALTH);
    let authbench::options::ScenarioSource::File(p) = src else {
        unreachable!()
    };
    let p = p.to_str().unwrap();
    needs_realm(&[
        "capacity",
        "-s",
        p,
        "--cost",
        "4",
        "--slo",
        "flow.p99<5s,success>=99%",
        "--start-rate",
        "5",
        "--max-rate",
        "10",
        "--step",
        "1s",
        "--step-flows",
        "5",
        "--warmup",
        "200ms",
        "--calibration-flows",
        "0",
        "--max-duration",
        "30s",
        "--no-reports",
    ]);
}
