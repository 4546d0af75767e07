//! The reference auth server: an in-process service with the same HTTP shape
//! as the target service (`/auth/register`, `/auth/login`, `/auth/verify`,
//! `/auth/profile`, `/health`), so one client scenario runs against both,
//! but which behaves correctly where a real service may not: constant-time
//! API-key checks, no user enumeration through login timing, no
//! duplicate-registration race, bounded off-executor hashing, strict JWT
//! validation, rate limits on login and registration, refresh tokens with
//! rotation and reuse detection (`/auth/refresh`, `/auth/logout`), and
//! `{"detail": ...}` 4xx responses (never a 5xx) for any client input. It
//! passes every probe of `authbench check`.
//!
//! [`app`] builds the router (tests drive it with `oneshot`, no network);
//! [`spawn`] serves it on its own thread and runtime.
//!
//! Layout: `config` (what can be set), `state` (checked config, shared
//! parts), `store` (users), `sessions` (refresh-token families),
//! `ratelimit` (per account and per IP), `algorithm` (bcrypt, argon2id, scrypt,
//! PBKDF2 and their parameters), `hashing` (where the hashing runs),
//! `jwt` (tokens), `extract` (API key, body and token checks), `handlers`
//! (endpoints), `error` (errors to responses), `serve` (thread, runtime,
//! shutdown), `tls` (HTTPS: the generated certificate and the TLS listener).

mod config;
mod error;
mod extract;
mod handlers;
mod hashing;
mod jwt;
mod ratelimit;
mod serve;
mod sessions;
mod state;
mod store;
mod tls;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

pub use config::{
    HashMode, RateLimitConfig, ServerConfig, DEFAULT_COST, DEFAULT_REFRESH_TTL, DEFAULT_TOKEN_TTL,
};
pub use error::ServerError;
pub use serve::{spawn, spawn_with_ctrl_c, ServerHandle, SHUTDOWN_GRACE};
pub use state::AppState;
pub use tls::{TlsIdentity, TlsListener};

/// `Cache-Control: no-store` on every `/auth` answer: tokens must not be cached (RFC 6749
/// §5.1), and the other answers there are per-user too.
async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// The router with `state` applied, ready to serve or to call with
/// `tower::ServiceExt::oneshot`.
///
/// The API-key middleware wraps the whole `/auth` router, including its own
/// 404 and 405 fallbacks, so on `/auth/*` the key is checked before
/// anything else: a request without it learns nothing, not even which
/// paths or methods exist.
pub fn app(state: AppState) -> Router {
    // `method_not_allowed_fallback` applies to the routes added before it,
    // so it comes after them.
    let auth = Router::new()
        .route("/register", post(handlers::register))
        .route("/login", post(handlers::login))
        .route("/refresh", post(handlers::refresh))
        .route("/logout", post(handlers::logout))
        .route("/verify", get(handlers::verify))
        .route("/profile", get(handlers::profile))
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .fallback(handlers::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            extract::require_api_key,
        ))
        .layer(middleware::map_response(no_store));
    Router::new()
        .route("/health", get(handlers::health))
        .nest("/auth", auth)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .fallback(handlers::not_found)
        .with_state(state)
}
