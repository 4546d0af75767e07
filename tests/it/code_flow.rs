//! The OAuth 2.0 authorization code flow with PKCE against a provider written here, which
//! recomputes the S256 challenge from the verifier (so a flow passes only if authbench
//! generated a matching pair), issues single-use codes and an HS256 access token with a
//! 24-hour lifetime: the run, the JWT claims extracted and checked, the report's token
//! line; and `check`'s `code.*` probes, which pass on this provider and fail on a copy
//! broken on purpose (no PKCE check, codes reusable, any redirect_uri, `state` changed).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authbench::check::{check, CheckOptions, Outcome};
use authbench::options::RunOptions;
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::json;

use crate::support;

const REGISTERED: &str = "http://127.0.0.1:9/cb";
const SECRET: &[u8] = b"code-flow-test-secret";

#[derive(Default)]
struct Provider {
    /// Broken on purpose: no PKCE check, codes reusable, any redirect_uri, `state` changed.
    broken: bool,
    /// code -> (challenge, redirect_uri)
    codes: Mutex<HashMap<String, (String, String)>>,
}

type P = Arc<Provider>;

async fn authorize(State(p): State<P>, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let redirect = get("redirect_uri");
    if !p.broken && redirect != REGISTERED {
        return (StatusCode::BAD_REQUEST, "unregistered redirect_uri").into_response();
    }
    if get("code_challenge_method") != "S256" || get("code_challenge").len() != 43 {
        return (StatusCode::BAD_REQUEST, "S256 challenge required").into_response();
    }
    let code = format!("c{}", rand_u64());
    p.codes
        .lock()
        .unwrap()
        .insert(code.clone(), (get("code_challenge"), redirect.clone()));
    let state = match p.broken {
        true => format!("{}x", get("state")),
        false => get("state"),
    };
    let to = format!("{redirect}?code={code}&state={state}");
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

fn rand_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn token(State(p): State<P>, Form(f): Form<HashMap<String, String>>) -> Response {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let bad = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "invalid_grant", "why": why })),
        )
            .into_response()
    };
    let entry = {
        let mut codes = p.codes.lock().unwrap();
        match p.broken {
            true => codes.get(&get("code")).cloned(),
            false => codes.remove(&get("code")),
        }
    };
    let Some((challenge, redirect)) = entry else {
        return bad("unknown or used code");
    };
    if !p.broken {
        let digest = ring::digest::digest(&ring::digest::SHA256, get("code_verifier").as_bytes());
        let s256 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
        if s256 != challenge {
            return bad("code_verifier does not match");
        }
        if redirect != get("redirect_uri") {
            return bad("redirect_uri differs");
        }
    }
    let now = chrono::Utc::now().timestamp();
    let claims = json!({ "sub": "u1", "iss": "http://provider", "aud": "spa", "iat": now, "exp": now + 86_400 });
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    Json(json!({ "access_token": jwt, "token_type": "Bearer", "id": 42 })).into_response()
}

async fn me(h: HeaderMap) -> Response {
    let token = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&["spa"]);
    match jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET),
        &v,
    ) {
        Ok(t) => Json(json!({ "sub": t.claims["sub"] })).into_response(),
        Err(_) => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn provider(broken: bool) -> SocketAddr {
    let p = Arc::new(Provider {
        broken,
        ..Provider::default()
    });
    let app = Router::new()
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/me", get(me))
        .with_state(p);
    support::serve(app).await
}

/// The flow, with the verifier the token step sends as `verifier`.
fn scenario(verifier: &str) -> String {
    keyed(verifier, "code-flow-test-secret")
}

/// The flow, the access token's signature verified with `key`.
fn keyed(verifier: &str, key: &str) -> String {
    format!(
        r#"
name = "code-flow"
[vars]
redirect_uri = "{REGISTERED}"
[[steps]]
name = "authorize"
path = "/authorize?client_id=spa&response_type=code&redirect_uri={{{{redirect_uri|urlencode}}}}&state={{{{state}}}}&code_challenge={{{{pkce_challenge}}}}&code_challenge_method=S256"
expect = 302
extract = {{ code = {{ header = "location", regex = '[?&]code=([^&]+)', group = 1 }} }}
[[steps]]
name = "token"
method = "POST"
path = "/token"
form = {{ grant_type = "authorization_code", code = "{{{{code}}}}", redirect_uri = "{{{{redirect_uri}}}}", code_verifier = "{verifier}", client_id = "spa" }}
extract = {{ token = "/access_token", exp = {{ jwt = "token", claim = "exp" }} }}
check = [
  {{ jwt = "token", claim = "sub", equals = "u1", key = "{key}" }},
  {{ jwt = "token", claim = "exp", equals = "{{{{exp}}}}" }},
  {{ pointer = "/id", equals = "42" }},
]
[[steps]]
name = "me"
path = "/me"
headers = {{ Authorization = "Bearer {{{{token}}}}" }}
check = [{{ pointer = "/sub", equals = "u1" }}]
"#
    )
}

fn run_opts(addr: SocketAddr, text: &str) -> (tempfile::TempDir, RunOptions) {
    let (dir, scenario) = support::scenario_file(text);
    let o = RunOptions {
        target: Some(format!("http://{addr}")),
        scenario,
        flows: 6,
        concurrency: 3,
        timeout: Duration::from_secs(10),
        calibration_flows: 0,
        out_dir: None,
        ..RunOptions::default()
    };
    (dir, o)
}

#[tokio::test]
async fn pkce_pairs_pass_a_provider_that_recomputes_s256_and_the_token_line_is_reported() {
    let addr = provider(false).await;
    let (_d, o) = run_opts(addr, &scenario("{{pkce_verifier}}"));
    let r = support::report(&o).await;
    assert_eq!(r.summary.successful_flows, 6, "{:#?}", r.failures);
    assert_eq!(r.tokens.len(), 1, "{:?}", r.tokens);
    let t = &r.tokens[0];
    assert_eq!((t.var.as_str(), t.alg.as_str()), ("token", "HS256"));
    assert_eq!(t.lifetime_s, Some(86_400));
    assert_eq!(t.issuer.as_deref(), Some("http://provider"));
    assert_eq!(t.audience.as_deref(), Some("spa"));
    let md = String::from_utf8(
        authbench::render::Exporter::render(&authbench::render::markdown::Markdown, &r).unwrap(),
    )
    .unwrap();
    assert!(
        md.contains(
            "| JWT | token: HS256, lifetime 24h (86400 s), issuer http://provider, audience spa |"
        ),
        "{md}"
    );

    // A verifier that does not match the challenge is refused by the provider.
    let (_d, o) = run_opts(addr, &scenario("{{state}}"));
    let r = support::report(&o).await;
    assert_eq!(r.summary.successful_flows, 0);
    assert_eq!(r.failures[0].step, "token");
    assert_eq!(r.failures[0].detail, "unexpected status 400");

    // A key the token was not signed with: the claim is not trusted.
    let (_d, o) = run_opts(addr, &keyed("{{pkce_verifier}}", "another-key"));
    let r = support::report(&o).await;
    assert_eq!(r.summary.successful_flows, 0);
    assert_eq!(
        r.failures[0].detail,
        "check failed at jwt token: the signature does not verify with the given key"
    );
}

async fn code_probes(broken: bool) -> Vec<(String, Outcome)> {
    let addr = provider(broken).await;
    let (_d, scenario) = support::scenario_file(&scenario("{{pkce_verifier}}"));
    let opts = CheckOptions {
        target: Some(format!("http://{addr}")),
        scenario,
        out_dir: None,
        timing_samples: 10,
        burst: 5,
        ..CheckOptions::default()
    };
    let r = check(&opts).await.expect("the check runs").report;
    r.probes
        .iter()
        .filter(|p| p.id.starts_with("code."))
        .map(|p| (p.id.clone(), p.outcome))
        .collect()
}

#[tokio::test]
async fn code_probes_pass_on_a_correct_provider_and_fail_on_a_broken_one() {
    let ids = [
        "code.pkce_missing",
        "code.pkce_wrong",
        "code.redirect_uri",
        "code.reuse",
        "code.redirect_uri_authorize",
        "code.state",
    ];
    let good = code_probes(false).await;
    let got: Vec<&str> = good.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(got, ids, "{good:?}");
    assert!(good.iter().all(|(_, o)| *o == Outcome::Pass), "{good:?}");
    let bad = code_probes(true).await;
    assert!(bad.iter().all(|(_, o)| *o == Outcome::Fail), "{bad:?}");
}
