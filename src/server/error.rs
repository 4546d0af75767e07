//! The two error types of the server: [`ServerError`] for a server that
//! cannot start (bad config, port taken), and [`AuthError`] for a request
//! that cannot be served.
//!
//! Every request failure becomes a response in exactly one place,
//! `impl IntoResponse for AuthError`, so all of them share the FastAPI-style
//! `{"detail": "..."}` body the target service uses, and no handler or
//! extractor builds an error response by hand.

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Why the server could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// bcrypt only defines costs 4..=31.
    #[error("bcrypt cost {0} is out of range (valid: 4..=31)")]
    InvalidCost(u32),
    /// The API key must be sendable in an HTTP header and must not be empty,
    /// or `/auth/*` would be unreachable (or, if empty, open to anyone).
    #[error("API key must be one or more visible ASCII characters (it is sent as an HTTP header)")]
    InvalidApiKey,
    /// An empty HMAC key would make every token forgeable.
    #[error("JWT secret must not be empty")]
    EmptyJwtSecret,
    /// `hash_threads` of 0 would make every register and login wait forever.
    #[error("hash_threads must be at least 1")]
    ZeroHashThreads,
    /// Tokens are stamped in whole seconds; a TTL under one second would
    /// issue tokens that are already expired.
    #[error("token TTLs (access and refresh) must be at least one second")]
    InvalidTokenTtl,
    /// A zero rate-limit window would never count anything.
    #[error("the rate-limit window must not be zero")]
    InvalidRateLimit,
    /// The dummy hash used to equalise login timing could not be computed.
    #[error("could not compute the startup bcrypt hash")]
    Hash(#[source] bcrypt::BcryptError),
    /// The configured hash algorithm refused its parameters or failed.
    #[error("password hash: {0}")]
    Algorithm(String),
    /// The listening socket could not be bound.
    #[error("could not bind {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The server's tokio runtime could not be built.
    #[error("could not build the server runtime")]
    Runtime(#[source] std::io::Error),
    /// The OS refused to start the server thread.
    #[error("could not start the server thread")]
    Thread(#[source] std::io::Error),
    /// The TLS certificate could not be generated or used.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The server thread ended before reporting that it was listening.
    #[error("the server thread exited before it started listening")]
    ThreadExited,
}

/// Why a request failed. Each variant knows its status and its `detail`.
#[derive(Debug)]
pub(crate) enum AuthError {
    /// Missing or wrong `X-API-Key` on `/auth/*`.
    InvalidApiKey,
    /// No `Authorization: Bearer ...` header.
    NotAuthenticated,
    /// A bearer token that is malformed, badly signed, of the wrong type, or
    /// for a user that does not exist.
    InvalidToken,
    /// A well-formed, correctly signed token past its `exp`.
    TokenExpired,
    /// Login failed. Deliberately the same for unknown user and wrong
    /// password.
    InvalidCredentials,
    EmailTaken,
    PasswordTooShort,
    PasswordTooLong,
    PasswordHasNul,
    /// The body parsed but is not what the endpoint expects, or is not JSON.
    Unprocessable(Cow<'static, str>),
    UnsupportedMediaType,
    PayloadTooLarge,
    /// The client stopped sending the body part way, or sent a broken one.
    BodyRead,
    NotFound,
    MethodNotAllowed,
    /// Too many attempts on this account or from this address; retry after
    /// the duration (sent as `Retry-After`, whole seconds, at least 1).
    RateLimited(std::time::Duration),
    /// Our fault, never the client's: a hashing task died, a token could not
    /// be encoded. The detail is fixed so nothing internal leaks.
    Internal,
}

impl AuthError {
    fn status_and_detail(&self) -> (StatusCode, Cow<'static, str>) {
        use AuthError::*;
        let (status, detail): (StatusCode, &'static str) = match self {
            InvalidApiKey => (StatusCode::UNAUTHORIZED, "Invalid API key"),
            NotAuthenticated => (StatusCode::UNAUTHORIZED, "Not authenticated"),
            InvalidToken => (StatusCode::UNAUTHORIZED, "Invalid token"),
            TokenExpired => (StatusCode::UNAUTHORIZED, "Token expired"),
            InvalidCredentials => (StatusCode::UNAUTHORIZED, "Invalid credentials"),
            EmailTaken => (StatusCode::BAD_REQUEST, "Email already registered"),
            PasswordTooShort => (
                StatusCode::BAD_REQUEST,
                "Password must be at least 8 characters",
            ),
            PasswordTooLong => (StatusCode::BAD_REQUEST, "Password must be at most 72 bytes"),
            PasswordHasNul => (
                StatusCode::BAD_REQUEST,
                "Password must not contain NUL characters",
            ),
            Unprocessable(msg) => return (StatusCode::UNPROCESSABLE_ENTITY, msg.clone()),
            RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts, try again later",
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body too large (limit 64 KiB)",
            ),
            BodyRead => (StatusCode::BAD_REQUEST, "Could not read request body"),
            NotFound => (StatusCode::NOT_FOUND, "Not Found"),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
            Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"),
        };
        (status, Cow::Borrowed(detail))
    }

    /// Bearer-token failures carry `WWW-Authenticate: Bearer` (RFC 6750), so
    /// a client can tell "send a token" apart from other 401s.
    fn is_bearer_challenge(&self) -> bool {
        matches!(
            self,
            AuthError::NotAuthenticated | AuthError::InvalidToken | AuthError::TokenExpired
        )
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let (status, detail) = self.status_and_detail();
        let mut response = (status, Json(serde_json::json!({ "detail": detail }))).into_response();
        if self.is_bearer_challenge() {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let AuthError::RateLimited(wait) = self {
            // Round up: retrying a fraction of a second early would be refused again.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}
