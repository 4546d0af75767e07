//! Sessions as real auth services keep them, over real sockets against axum servers
//! written here: the cookie jar per flow (several cookies, expiry, path scope, `Secure`,
//! `cookies = false`, cookie extraction), form bodies, basic auth, regex extraction from
//! HTML and headers, and a CSRF-protected login as Django does it. The cookie and CSRF
//! flows run through both transports (hyper's fast path and reqwest).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authbench::engine::{self, EngineConfig, EngineOutcome};
use authbench::options::{RunOptions, ScenarioSource};
use authbench::plan::Plan;
use authbench::report::Report;
use authbench::scenario::Scenario;
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::support;

/// Writes `text` as a scenario file in a new temporary directory (kept alive by the
/// returned guard) and returns its source.
pub fn scenario_file(text: &str) -> (tempfile::TempDir, ScenarioSource) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, text).unwrap();
    (dir, ScenarioSource::File(path))
}

/// `flows` flows of `scenario` against `addr`, `concurrency` at once, no calibration.
pub fn opts(
    addr: std::net::SocketAddr,
    scenario: ScenarioSource,
    flows: u64,
    concurrency: usize,
) -> RunOptions {
    RunOptions {
        target: Some(format!("http://{addr}")),
        scenario,
        flows,
        concurrency,
        timeout: Duration::from_secs(10),
        calibration_flows: 0,
        out_dir: None,
        ..RunOptions::default()
    }
}

/// Runs `text` as a scenario: the whole tool, hyper's fast path.
async fn run_text(addr: std::net::SocketAddr, text: &str, flows: u64) -> Report {
    let (_dir, src) = scenario_file(text);
    support::report(&opts(addr, src, flows, 2)).await
}

/// Runs `text` through the engine with the chosen transport: hyper's connection-level
/// client (`fast`), or reqwest (what `https://` targets use).
async fn run_engine(
    addr: std::net::SocketAddr,
    text: &str,
    flows: u64,
    fast: bool,
) -> EngineOutcome {
    let scenario = Arc::new(Scenario::parse(text, "t.toml").unwrap());
    let base_url = format!("http://{addr}");
    let http1 = match fast {
        true => engine::http1::Http1::for_target(
            &base_url,
            &scenario,
            Duration::from_secs(10),
            Duration::from_secs(5),
            4,
            None,
            Default::default(),
        )
        .await
        .map(Arc::new),
        false => None,
    };
    assert_eq!(http1.is_some(), fast);
    let cfg = EngineConfig {
        scenario,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        per_flow_client: None,
        fast: http1,
        h2: None,
        base_url,
        api_key: String::new(),
        plan: Plan::closed(2, flows),
        progress: false,
        color: false,
        grace: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        feed: None,
        users: None,
        threads: Default::default(),
        max_body: authbench::options::DEFAULT_MAX_BODY,
        stream: None,
        live: None,
        shard: None,
    };
    engine::run(cfg, std::future::pending()).await
}

fn failures(r: &Report) -> String {
    format!("{:#?}", r.failures)
}

// ---- the cookie jar ------------------------------------------------------------------

/// What the cookie server saw: per path, the `Cookie` header of each request.
#[derive(Default)]
struct Seen {
    cookies: Mutex<Vec<(String, Option<String>)>>,
    /// Problems the server found (a cookie from another flow, a wrong extracted value).
    wrong: Mutex<Vec<String>>,
}

impl Seen {
    fn record(&self, path: &str, h: &HeaderMap) -> Option<String> {
        let c = h
            .get(header::COOKIE)
            .map(|v| v.to_str().unwrap().to_string());
        self.cookies.lock().unwrap().push((path.into(), c.clone()));
        c
    }

    /// The distinct cookie sets sent to `path`, each sorted.
    fn sent_to(&self, path: &str) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = Vec::new();
        for (p, c) in self.cookies.lock().unwrap().iter() {
            if p != path {
                continue;
            }
            let mut names: Vec<String> = c
                .as_deref()
                .unwrap_or("")
                .split("; ")
                .filter(|s| !s.is_empty())
                .map(|s| s.split('=').next().unwrap().to_string())
                .collect();
            names.sort();
            if !out.contains(&names) {
                out.push(names);
            }
        }
        out
    }
}

/// `/set` sets four cookies (one per flow, one scoped to `/scoped`, one `Secure`, one to
/// be expired); `/expire` expires one; the others only record what they were sent.
fn cookie_app(seen: Arc<Seen>) -> Router {
    async fn set(State(s): State<Arc<Seen>>, h: HeaderMap) -> Response {
        if let Some(c) = s.record("/set", &h) {
            s.wrong
                .lock()
                .unwrap()
                .push(format!("/set got cookies {c}"));
        }
        let flow = h["x-flow"].to_str().unwrap().to_string();
        let mut r = "{}".into_response();
        for c in [
            format!("flow={flow}; Path=/"),
            "scoped=1; Path=/scoped".into(),
            "sec=1; Path=/; Secure; HttpOnly".into(),
            "gone=1; Path=/".into(),
        ] {
            r.headers_mut()
                .append(header::SET_COOKIE, c.parse().unwrap());
        }
        r
    }
    async fn expire(State(s): State<Arc<Seen>>, h: HeaderMap) -> Response {
        s.record("/expire", &h);
        let mut r = "{}".into_response();
        r.headers_mut().append(
            header::SET_COOKIE,
            "gone=; Path=/; Max-Age=0".parse().unwrap(),
        );
        r
    }
    async fn scoped(State(s): State<Arc<Seen>>, h: HeaderMap) -> &'static str {
        s.record("/scoped/page", &h);
        "{}"
    }
    async fn echo(State(s): State<Arc<Seen>>, h: HeaderMap) -> &'static str {
        let c = s.record("/echo", &h).unwrap_or_default();
        let flow = h["x-flow"].to_str().unwrap();
        let extracted = h["x-extracted"].to_str().unwrap();
        if !c.contains(&format!("flow={flow}")) || extracted != flow {
            s.wrong
                .lock()
                .unwrap()
                .push(format!("flow {flow}: cookies {c}, extracted {extracted}"));
        }
        "{}"
    }
    Router::new()
        .route("/set", get(set))
        .route("/expire", get(expire))
        .route("/scoped/page", get(scoped))
        .route("/echo", get(echo))
        .with_state(seen)
}

fn cookie_scenario(cookies: bool) -> String {
    let (extract, extracted) = if cookies {
        ("extract = { f = { cookie = \"flow\" } }\n", "{{f}}")
    } else {
        ("", "{{seq}}")
    };
    format!(
        r#"
name = "cookies"
cookies = {cookies}
[headers]
X-Flow = "{{{{seq}}}}"
[[steps]]
name = "set"
path = "/set"
{extract}
[[steps]]
name = "expire"
path = "/expire"
[[steps]]
name = "scoped"
path = "/scoped/page"
[[steps]]
name = "echo"
path = "/echo"
headers = {{ X-Extracted = "{extracted}" }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_jar_follows_rfc_6265_per_flow_on_both_transports() {
    for fast in [true, false] {
        let seen = Arc::new(Seen::default());
        let addr = support::serve(cookie_app(seen.clone())).await;
        let out = run_engine(addr, &cookie_scenario(true), 20, fast).await;
        assert_eq!(out.stats.flows_ok(), 20, "fast={fast}");
        assert!(seen.wrong.lock().unwrap().is_empty(), "{:?}", seen.wrong);
        // Before the expiry: every live cookie of the path, but not the Secure one (http).
        assert_eq!(seen.sent_to("/expire"), [["flow", "gone"]], "fast={fast}");
        // After Max-Age=0: `gone` is gone; the `/scoped` cookie goes only under its path.
        assert_eq!(seen.sent_to("/scoped/page"), [["flow", "scoped"]]);
        assert_eq!(seen.sent_to("/echo"), [["flow"]]);
        // A new flow starts with an empty jar.
        assert_eq!(seen.sent_to("/set"), [Vec::<String>::new()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_false_sends_none() {
    let seen = Arc::new(Seen::default());
    let addr = support::serve(cookie_app(seen.clone())).await;
    let r = run_text(addr, &cookie_scenario(false), 6).await;
    assert_eq!(r.summary.successful_flows, 6, "{}", failures(&r));
    for path in ["/set", "/expire", "/scoped/page"] {
        assert_eq!(seen.sent_to(path), [Vec::<String>::new()], "{path}");
    }
    // `/echo` finds no cookie of its flow: the server reports each one.
    assert_eq!(seen.wrong.lock().unwrap().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_cookie_is_a_bad_body_naming_the_variable() {
    let app = Router::new().route("/", get(|| async { "{}" }));
    let addr = support::serve(app).await;
    let r = run_text(
        addr,
        "name = \"t\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nextract = { sid = { cookie = \"sessionid\" } }\n",
        3,
    )
    .await;
    assert_eq!(r.steps[0].failures["bad_body"], 3, "{}", failures(&r));
    assert!(
        r.failures[0].detail.contains("sessionid") && r.failures[0].detail.contains("`sid`"),
        "{}",
        failures(&r)
    );
}

// ---- forms and basic auth ---------------------------------------------------------------

/// Values with every character form encoding must escape.
const TRICKY: &str = "a b&c=d+e@f%g/h?i#j ü€😀";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_bodies_are_encoded_and_basic_auth_is_sent() {
    let raw_bodies = Arc::new(Mutex::new(Vec::<String>::new()));
    let app = Router::new()
        .route(
            "/form",
            post(
                |State(raw): State<Arc<Mutex<Vec<String>>>>, h: HeaderMap, body: String| async move {
                    raw.lock().unwrap().push(body.clone());
                    let ct = h[header::CONTENT_TYPE].to_str().unwrap();
                    let fields: HashMap<String, String> =
                        form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                    let ok = ct == "application/x-www-form-urlencoded"
                        && fields.get("email").map(String::as_str) == Some("user+tag@example.com")
                        && fields.get("tricky").map(String::as_str) == Some(TRICKY)
                        && fields.get("n").map(String::as_str) == Some("42")
                        && fields.get("spaced key").map(String::as_str) == Some("lit & eral");
                    if ok { StatusCode::OK } else { StatusCode::BAD_REQUEST }
                },
            ),
        )
        .route(
            "/basic",
            post(|h: HeaderMap| async move {
                use base64::Engine;
                let v = h[header::AUTHORIZATION].to_str().unwrap();
                let decoded = v
                    .strip_prefix("Basic ")
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .and_then(|b| String::from_utf8(b).ok());
                let body_form = h[header::CONTENT_TYPE] == "text/plain";
                match (decoded.as_deref(), body_form) {
                    (Some("client-7:s3cr3t:with colon ü"), true) => StatusCode::OK,
                    _ => StatusCode::UNAUTHORIZED,
                }
            }),
        )
        .with_state(raw_bodies.clone());
    let addr = support::serve(app).await;
    let text = format!(
        r#"
name = "forms"
[headers]
Authorization = "Bearer replaced-by-basic"
[vars]
email = "user+tag@example.com"
tricky = "{TRICKY}"
[[steps]]
name = "form"
method = "POST"
path = "/form"
form = {{ email = "{{{{email}}}}", tricky = "{{{{tricky}}}}", n = 42, "spaced key" = "lit & eral" }}
[[steps]]
name = "basic"
method = "POST"
path = "/basic"
headers = {{ Content-Type = "text/plain" }}
form = {{ grant_type = "client_credentials" }}
basic = {{ user = "client-7", password = "s3cr3t:with colon ü" }}
"#
    );
    let r = run_text(addr, &text, 4).await;
    assert_eq!(r.summary.successful_flows, 4, "{}", failures(&r));
    let raw = raw_bodies.lock().unwrap()[0].clone();
    // Space as `+`; `@ & = +` and non-ASCII percent-encoded.
    assert!(raw.contains("email=user%2Btag%40example.com"), "{raw}");
    assert!(
        raw.contains("tricky=a+b%26c%3Dd%2Be%40f%25g%2Fh%3Fi%23j+%C3%BC"),
        "{raw}"
    );
    assert!(raw.contains("spaced+key=lit+%26+eral"), "{raw}");
}

// ---- regex extraction and a CSRF-protected login ---------------------------------------

/// Django's login shape: the form page sets `csrftoken` and repeats it in a hidden input;
/// the POST must carry both (and the credentials) and answers 302 with `sessionid`; the
/// home page needs the session. Tokens are random per request, so only a flow that
/// carries its own values through succeeds.
#[derive(Default)]
struct Django {
    sessions: Mutex<HashMap<String, String>>,
}

fn cookie_value(h: &HeaderMap, name: &str) -> Option<String> {
    let all = h.get(header::COOKIE)?.to_str().ok()?;
    all.split("; ")
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn django_app() -> Router {
    async fn form_page() -> Response {
        let token = format!("{:032x}", rand::random::<u128>());
        let html = format!(
            "<html><form method=\"post\"><input type=\"hidden\" name=\"csrfmiddlewaretoken\" value=\"{token}\"><input name=\"username\"></form></html>"
        );
        let mut r = html.into_response();
        r.headers_mut().insert(
            header::SET_COOKIE,
            format!("csrftoken={token}; Path=/; SameSite=Lax")
                .parse()
                .unwrap(),
        );
        r
    }
    async fn login(
        State(s): State<Arc<Django>>,
        h: HeaderMap,
        Form(f): Form<HashMap<String, String>>,
    ) -> Response {
        let cookie = cookie_value(&h, "csrftoken");
        if cookie.is_none() || cookie != f.get("csrfmiddlewaretoken").cloned() {
            return (StatusCode::FORBIDDEN, "CSRF verification failed").into_response();
        }
        let user = f.get("username").cloned().unwrap_or_default();
        if f.get("password").map(String::as_str) != Some("pw") {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let sid = format!("{:032x}", rand::random::<u128>());
        s.sessions.lock().unwrap().insert(sid.clone(), user.clone());
        let mut r = (StatusCode::FOUND, "").into_response();
        let h = r.headers_mut();
        h.insert(
            header::LOCATION,
            format!("/users/{user}/home").parse().unwrap(),
        );
        h.insert(
            header::SET_COOKIE,
            format!("sessionid={sid}; Path=/; HttpOnly")
                .parse()
                .unwrap(),
        );
        r
    }
    async fn home(State(s): State<Arc<Django>>, h: HeaderMap) -> Response {
        let user = cookie_value(&h, "sessionid")
            .and_then(|sid| s.sessions.lock().unwrap().get(&sid).cloned());
        match user {
            Some(u) => format!("<p>Welcome, {u}</p>").into_response(),
            None => StatusCode::FORBIDDEN.into_response(),
        }
    }
    Router::new()
        .route("/accounts/login/", get(form_page).post(login))
        .route("/users/{user}/home", get(home))
        .with_state(Arc::new(Django::default()))
}

const DJANGO: &str = r#"
name = "django-login"
[vars]
user = "u{{seq}}"
[[steps]]
name = "form"
path = "/accounts/login/"
extract = { csrf = { regex = 'name="csrfmiddlewaretoken" value="([^"]+)"' } }
[[steps]]
name = "login"
method = "POST"
path = "/accounts/login/"
form = { csrfmiddlewaretoken = "{{csrf}}", username = "{{user}}", password = "pw" }
expect = 302
extract = { tail = { header = "location", regex = 'home$', group = 0 }, who = { header = "location", regex = '/users/(\w+)/', group = 1 }, sid = { cookie = "sessionid" } }
[[steps]]
name = "home"
path = "/users/{{who}}/{{tail}}"
headers = { X-Sid = "{{sid}}" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_protected_login_works_on_both_transports() {
    for fast in [true, false] {
        let addr = support::serve(django_app()).await;
        let out = run_engine(addr, DJANGO, 10, fast).await;
        assert_eq!(out.stats.flows_ok(), 10, "fast={fast}");
    }
    // Without the jar the POST has no csrftoken cookie: 403 at `login`.
    let addr = support::serve(django_app()).await;
    let no_jar = DJANGO
        .replace(
            "name = \"django-login\"",
            "name = \"no-jar\"\ncookies = false",
        )
        .replace(", sid = { cookie = \"sessionid\" }", "")
        .replace("headers = { X-Sid = \"{{sid}}\" }\n", "");
    let r = run_text(addr, &no_jar, 3).await;
    assert_eq!(r.steps[1].failures["status"], 3, "{}", failures(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_without_a_match_is_a_bad_body_naming_the_variable() {
    let app = Router::new().route("/accounts/login/", get(|| async { "<html>no form</html>" }));
    let addr = support::serve(app).await;
    let r = run_text(addr, DJANGO, 3).await;
    assert_eq!(r.steps[0].failures["bad_body"], 3, "{}", failures(&r));
    assert_eq!(
        r.failures[0].detail,
        "missing a match of the regex of `csrf`"
    );
    assert_eq!(r.steps[1].requests, 0);
}
