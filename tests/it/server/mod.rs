//! The reference server, driven through `app(state)` with `oneshot` (no
//! network, bcrypt cost 4 for speed), plus one test over a real socket via
//! `spawn`. This file holds the shared helpers; the tests are grouped by area.

mod inputs;
mod registration;
mod sessions;
mod tokens;

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
