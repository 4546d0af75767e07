//! Everything that reads a request before a handler runs: the API-key
//! middleware, the JSON body extractor, the bearer-token extractor and the
//! client address (for rate limiting).
//!
//! axum's own `Json` extractor is not used because its rejections are plain
//! text with axum's wording; here every way a body can be wrong (wrong
//! content type, too large, not JSON, wrong shape) becomes an [`AuthError`]
//! and therefore a `{"detail": ...}` response with our status code.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Map, Value};

use super::error::AuthError;
use super::state::AppState;
use super::store::User;

/// Largest accepted JSON body. Register and login bodies are well under
/// 1 KiB; the limit only exists so a client cannot make us buffer an
/// arbitrary amount.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Middleware on the `/auth` router: rejects the request before routing,
/// body parsing or token checks when `X-API-Key` is missing or wrong.
/// A missing header is compared like an empty one, so it takes the same time
/// as a wrong key.
pub(crate) async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, AuthError> {
    let given = request
        .headers()
        .get("x-api-key")
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    if !state.inner.api_key_matches(given) {
        return Err(AuthError::InvalidApiKey);
    }
    Ok(next.run(request).await)
}

/// A JSON object body, checked for content type and size, handed to `T` to
/// pick its fields out of.
pub(crate) struct JsonBody<T>(pub T);

/// A request type that can be built from a JSON object with precise,
/// client-facing error messages.
pub(crate) trait FromJsonObject: Sized {
    fn from_object(object: &JsonObject) -> Result<Self, AuthError>;
}

/// A parsed JSON object body with typed field accessors whose errors name
/// the field. (Deriving `Deserialize` would give serde's messages instead,
/// which mention Rust type names and echo input values.)
pub(crate) struct JsonObject(Map<String, Value>);

impl JsonObject {
    pub fn required_str(&self, field: &'static str) -> Result<String, AuthError> {
        match self.0.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Err(unprocessable(format!("Missing field: {field}"))),
            Some(_) => Err(unprocessable(format!("Field '{field}' must be a string"))),
        }
    }

    pub fn optional_str(&self, field: &'static str) -> Result<Option<String>, AuthError> {
        match self.0.get(field) {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            None | Some(Value::Null) => Ok(None),
            Some(_) => Err(unprocessable(format!(
                "Field '{field}' must be a string or null"
            ))),
        }
    }
}

pub(crate) fn unprocessable(detail: impl Into<Cow<'static, str>>) -> AuthError {
    AuthError::Unprocessable(detail.into())
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: FromJsonObject,
{
    type Rejection = AuthError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, AuthError> {
        // Order: the cheap header checks first, so a wrong request is turned
        // away before we read its body.
        if !is_json_content_type(request.headers()) {
            return Err(AuthError::UnsupportedMediaType);
        }
        if declared_length(request.headers()).is_some_and(|len| len > MAX_BODY_BYTES as u64) {
            drain(request.into_body()).await;
            return Err(AuthError::PayloadTooLarge);
        }
        let bytes = read_body(request.into_body(), MAX_BODY_BYTES).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(unprocessable("Request body is empty"));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            unprocessable(format!(
                "Malformed JSON at line {}, column {}",
                e.line(),
                e.column()
            ))
        })?;
        match value {
            Value::Object(map) => T::from_object(&JsonObject(map)).map(JsonBody),
            _ => Err(unprocessable("Request body must be a JSON object")),
        }
    }
}

/// `application/json` or any `application/*+json`, with any parameters
/// (`; charset=utf-8`), case-insensitively.
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", subtype)) => subtype == "json" || subtype.ends_with("+json"),
        _ => false,
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Most a too-large body is read (and thrown away) for before the 413 is sent.
const DRAIN_MAX_BYTES: usize = 8 << 20;
/// Longest a too-large body is read for.
const DRAIN_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and discards what is left of a body that is too large, within bounds, before the
/// 413 goes out. Closing a connection with unread data in its receive buffer makes the
/// kernel send a reset, which can destroy the 413 on its way: the client, still writing,
/// would see a broken connection instead of the answer. Past the bounds the connection is
/// closed anyway (a client sending gigabytes gets no courtesy).
async fn drain(mut body: Body) {
    let read = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) =
            std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            if let Ok(data) = frame.into_data() {
                seen += data.len();
                if seen > DRAIN_MAX_BYTES {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, read).await;
}

/// Reads at most `limit` bytes, failing with 413 as soon as the body goes
/// past it (a body without `Content-Length`, e.g. chunked, is only known to
/// be too big while it is being read).
async fn read_body(mut body: Body, limit: usize) -> Result<Vec<u8>, AuthError> {
    let mut buffer = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|_| AuthError::BodyRead)?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                drain(body).await;
                return Err(AuthError::PayloadTooLarge);
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer)
}

/// The user a valid bearer token belongs to. Extracting it is the whole
/// token check: a handler that takes an `AuthUser` only runs for a valid,
/// unexpired access token of a user that exists.
pub(crate) struct AuthUser(pub Arc<User>);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AuthError> {
        let token = bearer_token(&parts.headers)?;
        let claims = state.inner.jwt.check(token)?;
        let id: u64 = claims.sub.parse().map_err(|_| AuthError::InvalidToken)?;
        // A token for a user this server does not know (e.g. one issued by
        // another server start sharing the secret) is rejected, as is one
        // whose email does not match the user it names.
        let user = state
            .inner
            .store
            .find_by_id(id)
            .filter(|user| user.email == claims.email)
            .ok_or(AuthError::InvalidToken)?;
        // A token of a session that was logged out, or revoked because one of
        // its refresh tokens was reused, is dead even before its `exp`.
        if let Some(sid) = claims.sid {
            if !state.inner.sessions.is_live(sid) {
                return Err(AuthError::InvalidToken);
            }
        }
        Ok(AuthUser(user))
    }
}

/// The peer address of the connection, when the server was started with
/// connect info (`spawn` does; a router driven with `oneshot` has none, and
/// is then not limited per IP). The socket address, not `X-Forwarded-For`:
/// a header would let any client pick the address it is counted under.
pub(crate) struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

/// The token from `Authorization: Bearer <token>` (scheme case-insensitive).
/// No header, or another scheme, is "not authenticated"; a Bearer header
/// with nothing usable after it is an invalid token.
fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::NotAuthenticated)?
        .to_str()
        .map_err(|_| AuthError::InvalidToken)?
        .trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotAuthenticated);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::InvalidToken);
    }
    Ok(token)
}
