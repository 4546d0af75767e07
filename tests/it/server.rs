//! The reference server, driven through `app(state)` with `oneshot` (no
//! network, bcrypt cost 4 for speed), plus one test over a real socket via
//! `spawn`.

use std::net::SocketAddr;
use std::time::Duration;

use authbench::server::{app, spawn, AppState, HashMode, ServerConfig, ServerError};
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};
use tower::ServiceExt;

const KEY: &str = "test-api-key-0123456789";
const SECRET: &[u8] = b"test-jwt-secret-0123456789abcdef";
const PASSWORD: &str = "correct horse battery";

fn config() -> ServerConfig {
    let mut cfg = ServerConfig::new(4, KEY);
    cfg.jwt_secret = SECRET.to_vec();
    cfg
}

fn router() -> Router {
    app(AppState::new(config()).expect("valid config"))
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    /// The body as JSON, or `Value::Null` when it is not JSON.
    json: Value,
}

impl Reply {
    fn detail(&self) -> &str {
        self.json["detail"].as_str().unwrap_or("<no detail>")
    }
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        json,
    }
}

fn request(
    method: Method,
    path: &str,
    api_key: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(key) = api_key {
        builder = builder.header("x-api-key", key);
    }
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    builder.body(body.into()).expect("valid request")
}

fn post_json(path: &str, body: &Value) -> Request<Body> {
    post_raw(path, body.to_string())
}

fn post_raw(path: &str, body: impl Into<Body>) -> Request<Body> {
    request(
        Method::POST,
        path,
        Some(KEY),
        Some("application/json"),
        body,
    )
}

fn get_with_token(path: &str, authorization: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("x-api-key", KEY);
    if let Some(value) = authorization {
        builder = builder.header(header::AUTHORIZATION, value);
    }
    builder.body(Body::empty()).expect("valid request")
}

async fn register(app: &Router, email: &str, password: &str) -> Reply {
    send(
        app,
        post_json(
            "/auth/register",
            &json!({ "email": email, "password": password }),
        ),
    )
    .await
}

/// Registers a user and returns its access token.
async fn token_for(app: &Router, email: &str) -> String {
    let reply = register(app, email, PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    reply.json["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

fn forge(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("encode")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn assert_detail(reply: &Reply, status: StatusCode, detail: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.json);
    assert_eq!(reply.detail(), detail, "body: {}", reply.json);
}

fn assert_unprocessable(reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "body: {}",
        reply.json
    );
    let detail = reply.detail();
    assert!(
        !detail.is_empty() && detail != "<no detail>",
        "422 needs a detail: {}",
        reply.json
    );
}

#[tokio::test]
async fn register_returns_a_token_and_the_user() {
    let app = router();
    let reply = send(
        &app,
        post_json(
            "/auth/register",
            &json!({ "email": "Alice@Example.com", "password": PASSWORD, "first_name": "Alice" }),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let body = &reply.json;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 86400);
    let user = &body["user"];
    assert!(user["id"].as_u64().is_some_and(|id| id >= 1));
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["first_name"], "Alice");
    assert_eq!(user["last_name"], Value::Null);
    assert_eq!(user["is_active"], true);
    let created = user["created_at"].as_str().expect("created_at");
    chrono::DateTime::parse_from_rfc3339(created).expect("ISO 8601 created_at");

    let token = body["access_token"].as_str().expect("token");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "HS256");

    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    let claims =
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(SECRET), &validation)
            .expect("token signed with the configured secret")
            .claims;
    assert_eq!(claims["sub"], user["id"].to_string());
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["type"], "access");
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert_eq!(exp - iat, 86400);
    assert!((iat - now()).abs() <= 5);
}

#[tokio::test]
async fn ids_are_distinct() {
    let app = router();
    let a = register(&app, "a@example.com", PASSWORD).await;
    let b = register(&app, "b@example.com", PASSWORD).await;
    assert_ne!(a.json["user"]["id"], b.json["user"]["id"]);
}

#[tokio::test]
async fn duplicate_email_is_400_case_insensitively() {
    let app = router();
    assert_eq!(
        register(&app, "bob@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
    let again = register(&app, "bob@example.com", "another password").await;
    assert_detail(&again, StatusCode::BAD_REQUEST, "Email already registered");
    let upper = register(&app, "BOB@EXAMPLE.COM", PASSWORD).await;
    assert_detail(&upper, StatusCode::BAD_REQUEST, "Email already registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_one_email_have_one_winner() {
    // Without rate limits, so all 20 reach the store: this is the store's race test (with
    // limits, 10 would be turned away with 429 before they got there).
    let mut cfg = config();
    cfg.rate_limit.enabled = false;
    let state = AppState::new(cfg).unwrap();
    let app = app(state.clone());
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let app = app.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                register(&app, "race@example.com", &format!("password-{i}")).await
            })
        })
        .collect();
    let mut ok = 0;
    let mut taken = 0;
    for task in tasks {
        let reply = task.await.expect("task");
        match reply.status {
            StatusCode::OK => ok += 1,
            StatusCode::BAD_REQUEST => {
                assert_eq!(reply.detail(), "Email already registered");
                taken += 1;
            }
            other => panic!("unexpected {other}: {}", reply.json),
        }
    }
    assert_eq!((ok, taken), (1, 19));
    assert_eq!(state.user_count(), 1);
}

#[tokio::test]
async fn password_length_rules() {
    let app = router();
    let short = register(&app, "short@example.com", "1234567").await;
    assert_detail(
        &short,
        StatusCode::BAD_REQUEST,
        "Password must be at least 8 characters",
    );
    // Characters, not bytes: 7 two-byte characters are still too short...
    let short = register(&app, "short2@example.com", &"é".repeat(7)).await;
    assert_detail(
        &short,
        StatusCode::BAD_REQUEST,
        "Password must be at least 8 characters",
    );
    // ...and 8 of them are enough.
    assert_eq!(
        register(&app, "eight@example.com", &"é".repeat(8))
            .await
            .status,
        StatusCode::OK
    );

    let long = register(&app, "long@example.com", &"a".repeat(73)).await;
    assert_detail(
        &long,
        StatusCode::BAD_REQUEST,
        "Password must be at most 72 bytes",
    );
    // Bytes, not characters: 37 two-byte characters are 74 bytes.
    let long = register(&app, "long2@example.com", &"é".repeat(37)).await;
    assert_detail(
        &long,
        StatusCode::BAD_REQUEST,
        "Password must be at most 72 bytes",
    );
    assert_eq!(
        register(&app, "max@example.com", &"a".repeat(72))
            .await
            .status,
        StatusCode::OK
    );

    let nul = register(&app, "nul@example.com", "password\0").await;
    assert_detail(
        &nul,
        StatusCode::BAD_REQUEST,
        "Password must not contain NUL characters",
    );

    // A rejected registration stores nothing and reserves nothing.
    assert_eq!(
        register(&app, "long@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_registration_gives_its_email_back() {
    // One hashing slot, kept busy by a slow hash, so the next registration
    // is parked (email reserved) waiting for it.
    let mut cfg = config();
    cfg.cost = 13;
    cfg.hash_threads = 1;
    let app = app(AppState::new(cfg).unwrap());
    let spawn_register = |email: &'static str| {
        let app = app.clone();
        tokio::spawn(async move { register(&app, email, PASSWORD).await })
    };
    let busy = spawn_register("busy@example.com");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let abandoned = spawn_register("gone@example.com");
    tokio::time::sleep(Duration::from_millis(30)).await;

    let during = register(&app, "gone@example.com", PASSWORD).await;
    assert_detail(&during, StatusCode::BAD_REQUEST, "Email already registered");
    // The client goes away: its handler future is dropped mid-flight.
    abandoned.abort();
    assert!(abandoned.await.expect_err("still waiting").is_cancelled());
    let after = register(&app, "gone@example.com", PASSWORD).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.json);
    assert_eq!(busy.await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_bodies_are_422() {
    let app = router();
    for body in [
        "{",
        "{\"email\": \"a@example.com\", \"password\": }",
        "not json",
        "{\"email\": \"a@example.com\" \"password\": \"x\"}",
        "\u{FEFF}{}",
    ] {
        let reply = send(&app, post_raw("/auth/register", body)).await;
        assert_unprocessable(&reply);
        assert!(
            reply.detail().starts_with("Malformed JSON"),
            "{body}: {}",
            reply.json
        );
    }
    // Not UTF-8.
    let reply = send(
        &app,
        post_raw("/auth/register", vec![b'{', 0xff, 0xfe, b'}']),
    )
    .await;
    assert_unprocessable(&reply);
    // Empty and non-object bodies.
    assert_detail(
        &send(&app, post_raw("/auth/register", "")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Request body is empty",
    );
    for body in ["[]", "\"a@example.com\"", "42", "null", "true"] {
        assert_detail(
            &send(&app, post_raw("/auth/login", body)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Request body must be a JSON object",
        );
    }
}

#[tokio::test]
async fn missing_fields_are_422_naming_the_field() {
    let app = router();
    let reply = send(
        &app,
        post_json("/auth/register", &json!({ "email": "a@example.com" })),
    )
    .await;
    assert_detail(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Missing field: password",
    );
    let reply = send(
        &app,
        post_json("/auth/register", &json!({ "password": PASSWORD })),
    )
    .await;
    assert_detail(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Missing field: email",
    );
    let reply = send(&app, post_json("/auth/login", &json!({}))).await;
    assert_detail(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Missing field: email",
    );
    let reply = send(
        &app,
        post_json(
            "/auth/register",
            &json!({ "email": null, "password": PASSWORD }),
        ),
    )
    .await;
    assert_detail(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Missing field: email",
    );
}

#[tokio::test]
async fn wrong_field_types_are_422() {
    let app = router();
    let cases = [
        (
            json!({ "email": 42, "password": PASSWORD }),
            "Field 'email' must be a string",
        ),
        (
            json!({ "email": "a@example.com", "password": 12345678 }),
            "Field 'password' must be a string",
        ),
        (
            json!({ "email": ["a@example.com"], "password": PASSWORD }),
            "Field 'email' must be a string",
        ),
        (
            json!({ "email": "a@example.com", "password": PASSWORD, "first_name": {"x": 1} }),
            "Field 'first_name' must be a string or null",
        ),
        (
            json!({ "email": "a@example.com", "password": PASSWORD, "last_name": false }),
            "Field 'last_name' must be a string or null",
        ),
    ];
    for (body, detail) in cases {
        let reply = send(&app, post_json("/auth/register", &body)).await;
        assert_detail(&reply, StatusCode::UNPROCESSABLE_ENTITY, detail);
    }
    let reply = send(
        &app,
        post_json(
            "/auth/login",
            &json!({ "email": "a@example.com", "password": true }),
        ),
    )
    .await;
    assert_detail(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Field 'password' must be a string",
    );
}

#[tokio::test]
async fn bad_emails_are_422() {
    let app = router();
    let too_long = format!("{}@example.com", "a".repeat(250));
    let bad = [
        "",
        "plain",
        "no-dot@localhost",
        "@example.com",
        "two@@example.com",
        "a@b@example.com",
        "a@.example.com",
        "a@example..com",
        "a@example.com.",
        "with space@example.com",
        "tab\t@example.com",
        " lead@example.com",
        "ctrl\u{7}@example.com",
        too_long.as_str(),
    ];
    for email in bad {
        let reply = register(&app, email, PASSWORD).await;
        assert_unprocessable(&reply);
        assert!(
            reply.detail().starts_with("Invalid email"),
            "{email:?}: {}",
            reply.json
        );
    }
    // Email problems are reported before password problems.
    assert_unprocessable(&register(&app, "bad", "short").await);
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = router();
    let body = json!({ "email": "ct@example.com", "password": PASSWORD }).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        Some("json"),
    ] {
        let reply = send(
            &app,
            request(
                Method::POST,
                "/auth/register",
                Some(KEY),
                content_type,
                body.clone(),
            ),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert!(reply.json["detail"].is_string(), "{content_type:?}");
    }
    // Parameters and case do not matter, and +json types are JSON.
    for (i, content_type) in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.api+json",
    ]
    .into_iter()
    .enumerate()
    {
        let body =
            json!({ "email": format!("ct{i}@example.com"), "password": PASSWORD }).to_string();
        let reply = send(
            &app,
            request(
                Method::POST,
                "/auth/register",
                Some(KEY),
                Some(content_type),
                body,
            ),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{content_type}: {}",
            reply.json
        );
    }
}

#[tokio::test]
async fn huge_body_is_413() {
    let app = router();
    let huge = format!(
        "{{\"email\": \"big@example.com\", \"password\": \"{}\"}}",
        "a".repeat(70 * 1024)
    );
    // Without Content-Length: caught while reading.
    let reply = send(&app, post_raw("/auth/register", huge.clone())).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.json["detail"].is_string());
    // With Content-Length: caught before reading.
    let mut req = post_raw("/auth/login", huge.clone());
    req.headers_mut().insert(
        header::CONTENT_LENGTH,
        huge.len().to_string().parse().unwrap(),
    );
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.json["detail"].is_string());
    // Just under the limit is read (and then rejected for what it is).
    let padded = format!(
        "{{\"email\": \"big@example.com\", \"password\": \"{PASSWORD}\", \"pad\": \"{}\"}}",
        "a".repeat(60 * 1024)
    );
    assert_eq!(
        send(&app, post_raw("/auth/register", padded)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn api_key_is_required_on_every_auth_route() {
    let app = router();
    let token = token_for(&app, "key@example.com").await;
    let routes = [
        (Method::POST, "/auth/register"),
        (Method::POST, "/auth/login"),
        (Method::GET, "/auth/verify"),
        (Method::GET, "/auth/profile"),
        (Method::GET, "/auth/does-not-exist"),
        (Method::DELETE, "/auth/login"),
    ];
    let longer = format!("{KEY}x");
    let shorter = &KEY[..KEY.len() - 1];
    let upper = KEY.to_uppercase();
    let keys: [Option<&str>; 6] = [
        None,
        Some(""),
        Some("wrong"),
        Some(shorter),
        Some(&longer),
        Some(&upper),
    ];
    for (method, path) in &routes {
        for key in keys {
            // A body and a token that would otherwise be accepted: the key
            // check must come first.
            let mut builder = Request::builder()
                .method(method.clone())
                .uri(*path)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::AUTHORIZATION, format!("Bearer {token}"));
            if let Some(key) = key {
                builder = builder.header("x-api-key", key);
            }
            let body = json!({ "email": "key@example.com", "password": PASSWORD }).to_string();
            let reply = send(&app, builder.body(Body::from(body)).unwrap()).await;
            assert_detail(&reply, StatusCode::UNAUTHORIZED, "Invalid API key");
        }
    }
    // And the right key gets through.
    let reply = send(
        &app,
        get_with_token("/auth/profile", Some(&format!("Bearer {token}"))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn login_works_and_failures_are_indistinguishable() {
    let app = router();
    register(&app, "carol@example.com", PASSWORD).await;

    let ok = send(
        &app,
        post_json(
            "/auth/login",
            &json!({ "email": "Carol@Example.com", "password": PASSWORD }),
        ),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
    assert_eq!(ok.json["token_type"], "bearer");
    assert_eq!(ok.json["user"]["email"], "carol@example.com");
    let token = ok.json["access_token"].as_str().unwrap();
    let profile = send(
        &app,
        get_with_token("/auth/profile", Some(&format!("Bearer {token}"))),
    )
    .await;
    assert_eq!(profile.status, StatusCode::OK);

    let wrong_password = send(
        &app,
        post_json(
            "/auth/login",
            &json!({ "email": "carol@example.com", "password": "wrong password" }),
        ),
    )
    .await;
    let unknown_user = send(
        &app,
        post_json(
            "/auth/login",
            &json!({ "email": "nobody@example.com", "password": PASSWORD }),
        ),
    )
    .await;
    assert_detail(
        &wrong_password,
        StatusCode::UNAUTHORIZED,
        "Invalid credentials",
    );
    assert_eq!(wrong_password.status, unknown_user.status);
    assert_eq!(wrong_password.json, unknown_user.json);

    // A password with the right 72-byte prefix is not the password.
    register(&app, "dave@example.com", &"d".repeat(72)).await;
    let longer = send(
        &app,
        post_json(
            "/auth/login",
            &json!({ "email": "dave@example.com", "password": "d".repeat(80) }),
        ),
    )
    .await;
    assert_detail(&longer, StatusCode::UNAUTHORIZED, "Invalid credentials");
    let exact = send(
        &app,
        post_json(
            "/auth/login",
            &json!({ "email": "dave@example.com", "password": "d".repeat(72) }),
        ),
    )
    .await;
    assert_eq!(exact.status, StatusCode::OK);
}

#[tokio::test]
async fn verify_and_profile_accept_a_valid_token() {
    let app = router();
    let token = token_for(&app, "erin@example.com").await;
    let bearer = format!("Bearer {token}");
    let verify = send(&app, get_with_token("/auth/verify", Some(&bearer))).await;
    assert_eq!(verify.status, StatusCode::OK);
    assert_eq!(verify.json["valid"], true);
    assert_eq!(verify.json["user"]["email"], "erin@example.com");
    let profile = send(&app, get_with_token("/auth/profile", Some(&bearer))).await;
    assert_eq!(profile.status, StatusCode::OK);
    assert_eq!(profile.json["email"], "erin@example.com");
    assert_eq!(profile.json["is_active"], true);
    assert_eq!(profile.json["id"], verify.json["user"]["id"]);
    // The scheme is case-insensitive.
    let lower = send(
        &app,
        get_with_token("/auth/profile", Some(&format!("bearer {token}"))),
    )
    .await;
    assert_eq!(lower.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_tokens_are_401_with_a_bearer_challenge() {
    let app = router();
    let token = token_for(&app, "frank@example.com").await;
    let claims: Value = {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    let with = |changes: Value| {
        let mut c = claims.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(&claims)
    );
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let (head, rest) = token.split_once('.').unwrap();
    let swapped_payload = format!(
        "{head}.{}.{}",
        b64(&with(json!({ "sub": "999" }))),
        rest.split_once('.').unwrap().1
    );

    let cases: Vec<(String, Option<String>, &str)> = vec![
        ("no header".into(), None, "Not authenticated"),
        (
            "basic scheme".into(),
            Some("Basic dXNlcjpwYXNz".into()),
            "Not authenticated",
        ),
        (
            "token without scheme".into(),
            Some(token.clone()),
            "Not authenticated",
        ),
        (
            "empty bearer".into(),
            Some("Bearer ".into()),
            "Invalid token",
        ),
        (
            "garbage".into(),
            Some("Bearer garbage".into()),
            "Invalid token",
        ),
        (
            "three garbage parts".into(),
            Some("Bearer a.b.c".into()),
            "Invalid token",
        ),
        (
            "truncated".into(),
            Some(format!("Bearer {}", &token[..token.len() - 5])),
            "Invalid token",
        ),
        (
            "payload only".into(),
            Some(format!("Bearer {}", token.split('.').nth(1).unwrap())),
            "Invalid token",
        ),
        (
            "other secret".into(),
            Some(format!(
                "Bearer {}",
                forge(&claims, b"another-secret-entirely")
            )),
            "Invalid token",
        ),
        (
            "payload swapped".into(),
            Some(format!("Bearer {swapped_payload}")),
            "Invalid token",
        ),
        (
            "alg none".into(),
            Some(format!("Bearer {alg_none}")),
            "Invalid token",
        ),
        (
            "HS512".into(),
            Some(format!("Bearer {hs512}")),
            "Invalid token",
        ),
        (
            "expired".into(),
            Some(format!(
                "Bearer {}",
                forge(
                    &with(json!({ "iat": now() - 7200, "exp": now() - 3600 })),
                    SECRET
                )
            )),
            "Token expired",
        ),
        (
            "expired a second ago".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "exp": now() - 1 })), SECRET)
            )),
            "Token expired",
        ),
        (
            "refresh type".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "type": "refresh" })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "no type".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "type": null })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "no exp".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "exp": null })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "no iat".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "iat": null })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "no sub".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "sub": null })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "unknown user".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "sub": "999999" })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "sub not a number".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "sub": "frank" })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "numeric sub".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "sub": 1 })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "negative sub".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "sub": "-1" })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "other email".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "email": "x@example.com" })), SECRET)
            )),
            "Invalid token",
        ),
        (
            "exp as string".into(),
            Some(format!(
                "Bearer {}",
                forge(&with(json!({ "exp": "tomorrow" })), SECRET)
            )),
            "Invalid token",
        ),
    ];
    for path in ["/auth/verify", "/auth/profile"] {
        for (name, authorization, detail) in &cases {
            let reply = send(&app, get_with_token(path, authorization.as_deref())).await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{path} {name}: {}",
                reply.json
            );
            assert_eq!(reply.detail(), *detail, "{path} {name}");
            assert_eq!(
                reply
                    .headers
                    .get(header::WWW_AUTHENTICATE)
                    .map(|v| v.as_bytes()),
                Some(&b"Bearer"[..]),
                "{path} {name}"
            );
        }
    }
    // The untouched token still works, so the cases above failed for their
    // own reason.
    let reply = send(
        &app,
        get_with_token("/auth/verify", Some(&format!("Bearer {token}"))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn tokens_from_another_server_start_are_rejected() {
    // Default configs get a random secret each.
    let first = app(AppState::new(ServerConfig::new(4, KEY)).unwrap());
    let second = app(AppState::new(ServerConfig::new(4, KEY)).unwrap());
    let token = token_for(&first, "gina@example.com").await;
    token_for(&second, "gina@example.com").await;
    let reply = send(
        &second,
        get_with_token("/auth/profile", Some(&format!("Bearer {token}"))),
    )
    .await;
    assert_detail(&reply, StatusCode::UNAUTHORIZED, "Invalid token");
}

#[tokio::test]
async fn health_needs_no_key() {
    let app = router();
    let reply = send(
        &app,
        request(Method::GET, "/health", None, None, Body::empty()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["status"], "healthy");
    assert_eq!(reply.json["service"], "authbench-reference");
    assert_eq!(reply.json["components"]["user_store"], "healthy");
    assert_eq!(reply.json["components"]["hashing"], "healthy");
    assert_eq!(reply.json["bcrypt_cost"], 4);
    assert_eq!(reply.json["hash_mode"], "pool");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let app = router();
    let reply = send(
        &app,
        request(Method::GET, "/nope", None, None, Body::empty()),
    )
    .await;
    assert_detail(&reply, StatusCode::NOT_FOUND, "Not Found");
    let reply = send(
        &app,
        request(Method::GET, "/auth/nope", Some(KEY), None, Body::empty()),
    )
    .await;
    assert_detail(&reply, StatusCode::NOT_FOUND, "Not Found");
    let reply = send(
        &app,
        request(Method::POST, "/health", None, None, Body::empty()),
    )
    .await;
    assert_detail(&reply, StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    let reply = send(
        &app,
        request(Method::GET, "/auth/login", Some(KEY), None, Body::empty()),
    )
    .await;
    assert_detail(&reply, StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    assert_eq!(
        reply.headers.get(header::ALLOW).map(|v| v.as_bytes()),
        Some(&b"POST"[..])
    );
    let reply = send(
        &app,
        request(Method::POST, "/auth/verify", Some(KEY), None, Body::empty()),
    )
    .await;
    assert_detail(&reply, StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
}

#[tokio::test]
async fn inline_mode_serves_the_same_api() {
    let mut cfg = config();
    cfg.hash_mode = HashMode::Inline;
    let app = app(AppState::new(cfg).unwrap());
    let token = token_for(&app, "inline@example.com").await;
    let login = send(
        &app,
        post_json(
            "/auth/login",
            &json!({ "email": "inline@example.com", "password": PASSWORD }),
        ),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK);
    let reply = send(
        &app,
        get_with_token("/auth/verify", Some(&format!("Bearer {token}"))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn odd_inputs_never_give_a_5xx() {
    let app = router();
    let token = token_for(&app, "odd@example.com").await;
    let long_header = format!("Bearer {}", "a".repeat(8000));
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{{\"email\": {}1{}}}", "[".repeat(200), "]".repeat(200));
    let bodies: Vec<String> = vec![
        String::new(),
        "{}".into(),
        "null".into(),
        deep,
        deep_object,
        "{\"email\": \"a@example.com\", \"password\": \"\\ud800\\udc00xxxxxxx\"}".into(),
        "{\"email\": \"a@example.com\", \"password\": \"\\ud800xxxxxxxxxx\"}".into(),
        "{\"email\": \"\\u0000@example.com\", \"password\": \"xxxxxxxxxx\"}".into(),
        "{\"email\": \"a@example.com\", \"password\": \"\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\"}".into(),
        "{\"email\": \"a@example.com\", \"password\": \"xxxxxxxxxx\", \"email\": \"b@example.com\"}".into(),
        "{\"email\": \"ü@exämple.com\", \"password\": \"pässwörd-ok\"}".into(),
        "{\"email\": \"a@example.com\", \"password\": 1e999}".into(),
        "{\"email\": \"a@example.com\", \"password\": 18446744073709551616}".into(),
        format!("{{\"email\": \"{}@example.com\", \"password\": \"xxxxxxxxxx\"}}", "é".repeat(200)),
        json!({ "email": "odd@example.com", "password": "" }).to_string(),
        json!({ "email": "odd@example.com", "password": "x".repeat(10_000) }).to_string(),
        json!({ "email": "İ@EXAMPLE.COM", "password": PASSWORD }).to_string(),
    ];
    let mut requests = Vec::new();
    for body in &bodies {
        for path in ["/auth/register", "/auth/login"] {
            requests.push(post_raw(path, body.clone()));
        }
    }
    for authorization in [
        "Bearer",
        "Bearer  ",
        "Bearer . .",
        "Bearer ..",
        "Bearer a.b",
        "Bearer a.b.c.d",
        "Bearer ====.====.====",
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.",
        "Bearer eyJhbGciOiJIUzI1NiJ9.bnVsbA.x",
        "Bearer eyJ9.eyJ9.eyJ9",
        long_header.as_str(),
        "\u{7f}",
    ] {
        for path in ["/auth/verify", "/auth/profile"] {
            let mut req = get_with_token(path, None);
            if let Ok(value) = authorization.parse() {
                req.headers_mut().insert(header::AUTHORIZATION, value);
            }
            requests.push(req);
        }
    }
    // Non-UTF-8 header values.
    let mut req = get_with_token("/auth/verify", None);
    req.headers_mut().insert(
        header::AUTHORIZATION,
        axum::http::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
    );
    requests.push(req);
    let mut req = get_with_token("/auth/verify", Some(&format!("Bearer {token}")));
    req.headers_mut().insert(
        "x-api-key",
        axum::http::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
    );
    requests.push(req);
    let mut req = post_raw("/auth/login", "{}");
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_bytes(b"application/\xffjson").unwrap(),
    );
    requests.push(req);
    let mut req = post_raw("/auth/login", "{}");
    req.headers_mut()
        .insert(header::CONTENT_LENGTH, "-5".parse().unwrap());
    requests.push(req);
    // Odd paths and methods.
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/auth"),
        (Method::GET, "/auth/"),
        (Method::GET, "//auth//verify"),
        (Method::GET, "/auth/verify/extra"),
        (Method::GET, "/%00"),
        (Method::OPTIONS, "/auth/login"),
        (Method::HEAD, "/health"),
        (Method::PATCH, "/health"),
    ] {
        requests.push(request(method, path, Some(KEY), None, Body::empty()));
    }

    let count = requests.len();
    for (i, req) in requests.into_iter().enumerate() {
        let label = format!("#{i} {} {}", req.method(), req.uri());
        let reply = send(&app, req).await;
        assert!(
            reply.status.is_client_error() || reply.status.is_success(),
            "{label} gave {}: {}",
            reply.status,
            reply.json
        );
    }
    assert!(count > 50);
}

#[test]
fn invalid_configs_are_typed_errors() {
    for cost in [0, 3, 32, 100] {
        assert!(
            matches!(AppState::new(ServerConfig::new(cost, KEY)), Err(ServerError::InvalidCost(c)) if c == cost),
            "cost {cost}"
        );
    }
    for key in ["", "has space", "tab\t", "ünicode"] {
        assert!(
            matches!(
                AppState::new(ServerConfig::new(4, key)),
                Err(ServerError::InvalidApiKey)
            ),
            "{key:?}"
        );
    }
    let mut cfg = config();
    cfg.jwt_secret.clear();
    assert!(matches!(
        AppState::new(cfg),
        Err(ServerError::EmptyJwtSecret)
    ));
    let mut cfg = config();
    cfg.hash_threads = 0;
    assert!(matches!(
        AppState::new(cfg),
        Err(ServerError::ZeroHashThreads)
    ));
    let mut cfg = config();
    cfg.token_ttl = Duration::from_millis(500);
    assert!(matches!(
        AppState::new(cfg),
        Err(ServerError::InvalidTokenTtl)
    ));

    let default = ServerConfig::default();
    assert_eq!(default.cost, 12);
    assert_eq!(default.api_key.len(), 32);
    assert_eq!(default.jwt_secret.len(), 32);
    assert_eq!(default.hash_mode, HashMode::Pool);
    assert!(default.hash_threads >= 1);
    assert_ne!(default.api_key, ServerConfig::default().api_key);
    // Debug output never shows the secrets.
    let debug = format!("{default:?}");
    assert!(!debug.contains(&default.api_key), "{debug}");
}

/// The one test over a real socket: a server on its own thread and runtime,
/// driven with reqwest, then stopped.
#[tokio::test]
async fn spawned_server_serves_over_tcp_and_shuts_down() {
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = spawn(config(), any_port).expect("server starts");
    let addr = server.addr();
    assert_ne!(addr.port(), 0);
    assert_eq!(
        server.base_url(),
        format!("http://127.0.0.1:{}", addr.port())
    );

    // The port is taken now: a second server on it fails with a typed error.
    assert!(matches!(
        spawn(config(), addr),
        Err(ServerError::Bind { .. })
    ));
    assert!(matches!(
        spawn(ServerConfig::new(99, KEY), any_port),
        Err(ServerError::InvalidCost(99))
    ));

    let client = reqwest::Client::new();
    let base = server.base_url();
    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let registered = client
        .post(format!("{base}/auth/register"))
        .header("x-api-key", KEY)
        .json(&json!({ "email": "tcp@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 200);
    let body: Value = registered.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let profile = client
        .get(format!("{base}/auth/profile"))
        .header("x-api-key", KEY)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), 200);
    let no_key = client
        .get(format!("{base}/auth/profile"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);

    // Shutdown joins the server thread (blocking), so run it off this
    // runtime; it must finish well within the grace period.
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || server.shutdown())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening"
    );

    // Inline mode runs on a current-thread runtime and serves too.
    let mut cfg = config();
    cfg.hash_mode = HashMode::Inline;
    let inline = spawn(cfg, any_port).expect("inline server starts");
    let reply = client
        .post(format!("{}/auth/register", inline.base_url()))
        .header("x-api-key", KEY)
        .json(&json!({ "email": "inline@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    tokio::task::spawn_blocking(move || drop(inline))
        .await
        .unwrap();
}

async fn login_reply(app: &Router, email: &str, password: &str) -> Reply {
    send(
        app,
        post_json(
            "/auth/login",
            &json!({ "email": email, "password": password }),
        ),
    )
    .await
}

async fn refresh(app: &Router, token: &str) -> Reply {
    send(
        app,
        post_json("/auth/refresh", &json!({ "refresh_token": token })),
    )
    .await
}

fn field(reply: &Reply, name: &str) -> String {
    reply.json[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {}", reply.json))
        .to_owned()
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_session() {
    let app = router();
    let reg = register(&app, "rita@example.com", PASSWORD).await;
    let r1 = field(&reg, "refresh_token");
    let a1 = field(&reg, "access_token");

    let next = refresh(&app, &r1).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.json);
    let r2 = field(&next, "refresh_token");
    let a2 = field(&next, "access_token");
    assert_ne!(r1, r2);
    assert_eq!(next.json["user"]["email"], "rita@example.com");
    let ok = send(
        &app,
        get_with_token("/auth/verify", Some(&format!("Bearer {a2}"))),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);

    // A refresh token is not an access token, nor the reverse.
    let as_access = send(
        &app,
        get_with_token("/auth/verify", Some(&format!("Bearer {r2}"))),
    )
    .await;
    assert_detail(&as_access, StatusCode::UNAUTHORIZED, "Invalid token");
    assert_detail(
        &refresh(&app, &a2).await,
        StatusCode::UNAUTHORIZED,
        "Invalid token",
    );

    // Reusing the spent r1 revokes the family: r2 and both access tokens die with it.
    assert_detail(
        &refresh(&app, &r1).await,
        StatusCode::UNAUTHORIZED,
        "Invalid token",
    );
    assert_detail(
        &refresh(&app, &r2).await,
        StatusCode::UNAUTHORIZED,
        "Invalid token",
    );
    for a in [&a1, &a2] {
        let dead = send(
            &app,
            get_with_token("/auth/profile", Some(&format!("Bearer {a}"))),
        )
        .await;
        assert_detail(&dead, StatusCode::UNAUTHORIZED, "Invalid token");
    }
    // Another session of the same user is unaffected.
    let other = login_reply(&app, "rita@example.com", PASSWORD).await;
    assert_eq!(
        refresh(&app, &field(&other, "refresh_token")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = router();
    let reg = register(&app, "lou@example.com", PASSWORD).await;
    let (r, a) = (field(&reg, "refresh_token"), field(&reg, "access_token"));
    let out = send(
        &app,
        post_json("/auth/logout", &json!({ "refresh_token": r })),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.json);
    let dead = send(
        &app,
        get_with_token("/auth/verify", Some(&format!("Bearer {a}"))),
    )
    .await;
    assert_detail(&dead, StatusCode::UNAUTHORIZED, "Invalid token");
    assert_detail(
        &refresh(&app, &r).await,
        StatusCode::UNAUTHORIZED,
        "Invalid token",
    );
    // Twice is an invalid token, not a 500; so are garbage and a missing field.
    let again = send(
        &app,
        post_json("/auth/logout", &json!({ "refresh_token": r })),
    )
    .await;
    assert_detail(&again, StatusCode::UNAUTHORIZED, "Invalid token");
    let junk = send(
        &app,
        post_json("/auth/logout", &json!({ "refresh_token": "x.y.z" })),
    )
    .await;
    assert_detail(&junk, StatusCode::UNAUTHORIZED, "Invalid token");
    assert_unprocessable(&send(&app, post_json("/auth/refresh", &json!({}))).await);
}

#[tokio::test]
async fn failed_logins_per_account_are_limited_with_retry_after() {
    let app = router();
    register(&app, "eve@example.com", PASSWORD).await;
    for _ in 0..5 {
        let r = login_reply(&app, "eve@example.com", "wrong password").await;
        assert_detail(&r, StatusCode::UNAUTHORIZED, "Invalid credentials");
    }
    let limited = login_reply(&app, "EVE@example.com", PASSWORD).await;
    assert_detail(
        &limited,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts, try again later",
    );
    let retry: u64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // An unknown email is limited the same way, so a 429 reveals nothing.
    for _ in 0..5 {
        login_reply(&app, "ghost@example.com", "wrong password").await;
    }
    let ghost = login_reply(&app, "ghost@example.com", "wrong password").await;
    assert_eq!(ghost.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(ghost.json, limited.json);
    // Other accounts are not affected.
    register(&app, "frank@example.com", PASSWORD).await;
    assert_eq!(
        login_reply(&app, "frank@example.com", PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_successful_login_clears_the_account_count_and_limits_are_configurable() {
    let app = router();
    register(&app, "gil@example.com", PASSWORD).await;
    // Many successful logins never hit the limit (a load test logs in thousands of times).
    for _ in 0..4 {
        login_reply(&app, "gil@example.com", "wrong password").await;
        assert_eq!(
            login_reply(&app, "gil@example.com", PASSWORD).await.status,
            StatusCode::OK
        );
    }
    for _ in 0..12 {
        assert_eq!(
            login_reply(&app, "gil@example.com", PASSWORD).await.status,
            StatusCode::OK
        );
    }

    let mut cfg = config();
    cfg.rate_limit.enabled = false;
    let open = app_with(cfg);
    register(&open, "hal@example.com", PASSWORD).await;
    for _ in 0..8 {
        let r = login_reply(&open, "hal@example.com", "wrong password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
}

fn app_with(cfg: ServerConfig) -> Router {
    app(AppState::new(cfg).expect("valid config"))
}

#[test]
fn many_successful_flows_from_one_address_are_not_limited() {
    // Over a real socket, so the per-IP limit sees 127.0.0.1: 300 register+login pairs,
    // with a failure budget of 10 per IP that successes must not use up.
    let mut cfg = config();
    cfg.rate_limit.failures_per_ip = 10;
    let server = spawn(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).expect("spawn");
    let base = server.base_url();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let post = |path: &str, body: Value| {
            client
                .post(format!("{base}{path}"))
                .header("x-api-key", KEY)
                .json(&body)
                .send()
        };
        for i in 0..150 {
            let body = json!({ "email": format!("u{i}@example.com"), "password": PASSWORD });
            assert_eq!(
                post("/auth/register", body.clone()).await.unwrap().status(),
                200
            );
            assert_eq!(post("/auth/login", body).await.unwrap().status(), 200);
        }
        // Failures do count: after 10, the address is throttled, even for a new account.
        for i in 0..10 {
            let body =
                json!({ "email": format!("u{i}@example.com"), "password": "wrong password" });
            assert_eq!(post("/auth/login", body).await.unwrap().status(), 401);
        }
        let body = json!({ "email": "u100@example.com", "password": PASSWORD });
        let limited = post("/auth/login", body).await.unwrap();
        assert_eq!(limited.status(), 429);
        assert!(limited.headers().contains_key("retry-after"));
    });
    server.shutdown();
}
