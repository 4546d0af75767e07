//! The endpoint handlers and their request/response bodies, in the target
//! service's shape (see `docs/target-api.md`).
//!
//! Handlers stay short: the API key is checked by middleware, bodies and
//! tokens by extractors, and every failure is an [`AuthError`] returned
//! with `?`.

use std::sync::Arc;

use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::{json, Value};

use axum::extract::State;
use axum::Json;

use super::config::HashMode;
use super::error::AuthError;
use super::extract::{unprocessable, AuthUser, ClientIp, FromJsonObject, JsonBody, JsonObject};
use super::ratelimit::Limited;
use super::sessions::RefreshRefused;
use super::state::AppState;
use super::store::{NewUser, User};

/// bcrypt only reads the first 72 bytes of a password and silently ignores
/// the rest, so two long passwords sharing a 72-byte prefix would be the
/// same password. We reject longer ones (400) instead of letting a user
/// believe the tail of their passphrase counts. Pre-hashing (bcrypt over a
/// SHA-256 of the password) would lift the limit, but it changes the stored
/// format the target service uses, and its usual base64 form has pitfalls
/// (NUL bytes if done raw, "password shucking" against leaked plain SHA-256
/// hashes); an explicit limit is simpler and honest.
const MAX_PASSWORD_BYTES: usize = 72;
const MIN_PASSWORD_CHARS: usize = 8;
/// The practical limit of a forward path (RFC 5321 with errata).
const MAX_EMAIL_BYTES: usize = 254;

#[derive(Serialize)]
pub(crate) struct UserResponse {
    id: u64,
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    is_active: bool,
    created_at: String,
}

impl From<&User> for UserResponse {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            is_active: true,
            created_at: user.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        }
    }
}

/// The target's `TokenResponse`, plus `refresh_token` (an extra field, so
/// clients of the target's shape are unaffected).
#[derive(Serialize)]
pub(crate) struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: String,
    user: UserResponse,
}

#[derive(Serialize)]
pub(crate) struct VerifyResponse {
    valid: bool,
    user: UserResponse,
}

pub(crate) struct RegisterRequest {
    email: String,
    password: String,
    first_name: Option<String>,
    last_name: Option<String>,
}

impl FromJsonObject for RegisterRequest {
    fn from_object(object: &JsonObject) -> Result<Self, AuthError> {
        Ok(Self {
            email: object.required_str("email")?,
            password: object.required_str("password")?,
            first_name: object.optional_str("first_name")?,
            last_name: object.optional_str("last_name")?,
        })
    }
}

pub(crate) struct LoginRequest {
    email: String,
    password: String,
}

impl FromJsonObject for LoginRequest {
    fn from_object(object: &JsonObject) -> Result<Self, AuthError> {
        Ok(Self {
            email: object.required_str("email")?,
            password: object.required_str("password")?,
        })
    }
}

/// `{"refresh_token": "..."}`, the body of refresh and logout.
pub(crate) struct RefreshRequest {
    refresh_token: String,
}

impl FromJsonObject for RefreshRequest {
    fn from_object(object: &JsonObject) -> Result<Self, AuthError> {
        Ok(Self {
            refresh_token: object.required_str("refresh_token")?,
        })
    }
}

impl From<Limited> for AuthError {
    fn from(Limited(wait): Limited) -> Self {
        AuthError::RateLimited(wait)
    }
}

/// Whether a failure is the client's doing, and so counts against its
/// address's failure budget (our own 500s do not).
fn counts_as_failure(result: &Result<Json<TokenResponse>, AuthError>) -> bool {
    matches!(result, Err(e) if !matches!(e, AuthError::Internal | AuthError::RateLimited(_)))
}

/// `POST /auth/register`
pub(crate) async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(request): JsonBody<RegisterRequest>,
) -> Result<Json<TokenResponse>, AuthError> {
    let limiter = &state.inner.limiter;
    limiter.begin_register(ip, &request.email.to_lowercase())?;
    let result = register_user(&state, request).await;
    if counts_as_failure(&result) {
        limiter.failed(ip);
    }
    result
}

async fn register_user(
    state: &AppState,
    request: RegisterRequest,
) -> Result<Json<TokenResponse>, AuthError> {
    let email = normalize_email(&request.email).map_err(unprocessable)?;
    check_password(&request.password)?;
    let shared = &state.inner;
    // Claim the email before hashing: two concurrent registrations of one
    // address cannot both pass this line, and the loser is told at once
    // instead of after a wasted hash.
    let reservation = shared.store.reserve(email).ok_or(AuthError::EmailTaken)?;
    let password_hash = shared.hasher.hash(request.password).await?;
    let user = reservation.commit(NewUser {
        first_name: request.first_name,
        last_name: request.last_name,
        password_hash,
    });
    new_session(state, &user).map(Json)
}

/// `POST /auth/login`. The attempt is counted against the account before
/// any hashing (see `ratelimit`), and a success clears the count.
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<TokenResponse>, AuthError> {
    let limiter = &state.inner.limiter;
    let email = request.email.to_lowercase();
    limiter.begin_login(ip, &email)?;
    let result = login_user(&state, request).await;
    if result.is_ok() {
        limiter.login_succeeded(&email);
    } else if counts_as_failure(&result) {
        limiter.failed(ip);
    }
    result
}

async fn login_user(
    state: &AppState,
    request: LoginRequest,
) -> Result<Json<TokenResponse>, AuthError> {
    // Such a password can never have been registered, and that is true of
    // every email, so answering at once reveals nothing about accounts.
    if request.password.len() > MAX_PASSWORD_BYTES || request.password.contains('\0') {
        return Err(AuthError::InvalidCredentials);
    }
    let shared = &state.inner;
    let user = shared.store.find_by_email(&request.email.to_lowercase());
    let user = shared
        .hasher
        .verify_login(request.password, user)
        .await?
        .ok_or(AuthError::InvalidCredentials)?;
    new_session(state, &user).map(Json)
}

/// `POST /auth/refresh`: spends a refresh token and returns a new access and
/// refresh token of the same session. A spent token revokes the session.
pub(crate) async fn refresh(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RefreshRequest>,
) -> Result<Json<TokenResponse>, AuthError> {
    let shared = &state.inner;
    let (user, sid, jti) = refresh_claims(&state, &request.refresh_token)?;
    let next = shared
        .sessions
        .rotate(sid, user.id, &jti)
        .map_err(|e| match e {
            RefreshRefused::Invalid | RefreshRefused::Reused => AuthError::InvalidToken,
        })?;
    token_response(&state, &user, sid, next).map(Json)
}

/// `POST /auth/logout`: ends the session of a refresh token, its access
/// tokens included.
pub(crate) async fn logout(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RefreshRequest>,
) -> Result<Json<Value>, AuthError> {
    let (user, sid, _) = refresh_claims(&state, &request.refresh_token)?;
    if !state.inner.sessions.revoke(sid, user.id) {
        return Err(AuthError::InvalidToken);
    }
    Ok(Json(json!({ "detail": "Logged out" })))
}

/// The user, session and generation of a valid refresh token.
fn refresh_claims(state: &AppState, token: &str) -> Result<(Arc<User>, u64, String), AuthError> {
    let shared = &state.inner;
    let claims = shared.jwt.check_refresh(token)?;
    let id: u64 = claims.sub.parse().map_err(|_| AuthError::InvalidToken)?;
    let user = shared
        .store
        .find_by_id(id)
        .filter(|user| user.email == claims.email)
        .ok_or(AuthError::InvalidToken)?;
    match (claims.sid, claims.jti) {
        (Some(sid), Some(jti)) => Ok((user, sid, jti)),
        _ => Err(AuthError::InvalidToken),
    }
}

/// `GET /auth/verify`
pub(crate) async fn verify(AuthUser(user): AuthUser) -> Json<VerifyResponse> {
    Json(VerifyResponse {
        valid: true,
        user: UserResponse::from(&*user),
    })
}

/// `GET /auth/profile`
pub(crate) async fn profile(AuthUser(user): AuthUser) -> Json<UserResponse> {
    Json(UserResponse::from(&*user))
}

/// `GET /health`, no API key. Also reports the settings that shape the
/// server's performance, so a benchmark report can record what it ran
/// against. A typed body, not a `json!` map: this is the endpoint load tools
/// hammer, and building a map allocates for every key on every request.
pub(crate) async fn health(State(state): State<AppState>) -> Json<Health> {
    let shared = &state.inner;
    Json(Health {
        status: "healthy",
        service: "authbench-reference",
        components: HealthComponents {
            user_store: "healthy",
            hashing: "healthy",
        },
        users: shared.store.len(),
        bcrypt_cost: shared.cost,
        hash_mode: match shared.hash_mode {
            HashMode::Pool => "pool",
            HashMode::Inline => "inline",
        },
        hash_threads: shared.hash_threads,
    })
}

#[derive(Serialize)]
pub(crate) struct Health {
    status: &'static str,
    service: &'static str,
    components: HealthComponents,
    users: usize,
    bcrypt_cost: u32,
    hash_mode: &'static str,
    hash_threads: usize,
}

#[derive(Serialize)]
pub(crate) struct HealthComponents {
    user_store: &'static str,
    hashing: &'static str,
}

pub(crate) async fn not_found() -> AuthError {
    AuthError::NotFound
}

pub(crate) async fn method_not_allowed() -> AuthError {
    AuthError::MethodNotAllowed
}

/// Starts a session (a refresh-token family) and returns its first tokens.
fn new_session(state: &AppState, user: &User) -> Result<TokenResponse, AuthError> {
    let (sid, jti) = state.inner.sessions.start(user.id);
    token_response(state, user, sid, jti)
}

fn token_response(
    state: &AppState,
    user: &User,
    sid: u64,
    jti: String,
) -> Result<TokenResponse, AuthError> {
    let jwt = &state.inner.jwt;
    Ok(TokenResponse {
        access_token: jwt.issue(user, sid)?,
        token_type: "bearer",
        expires_in: jwt.ttl_secs(),
        refresh_token: jwt.issue_refresh(user, sid, jti)?,
        user: UserResponse::from(user),
    })
}

fn check_password(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AuthError::PasswordTooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::PasswordTooLong);
    }
    // bcrypt pads a password shorter than 72 bytes with a NUL, so "p" and
    // "p\0" could hash alike; no real password contains NUL anyway.
    if password.contains('\0') {
        return Err(AuthError::PasswordHasNul);
    }
    Ok(())
}

/// A deliberately simple sanity check, not RFC 5322: one `@`, a non-empty
/// local part, a dotted domain without empty labels, no whitespace or
/// control characters, at most 254 bytes. Returns the lowercased address,
/// which is how users are keyed, so `A@x.io` and `a@x.io` are one account.
pub(crate) fn normalize_email(email: &str) -> Result<String, &'static str> {
    if email.is_empty() {
        return Err("Invalid email: empty");
    }
    if email.len() > MAX_EMAIL_BYTES {
        return Err("Invalid email: longer than 254 bytes");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("Invalid email: contains whitespace or control characters");
    }
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("Invalid email: must contain exactly one '@'");
    };
    if local.is_empty() {
        return Err("Invalid email: empty local part");
    }
    if !domain.contains('.') {
        return Err("Invalid email: domain must contain a dot");
    }
    if domain.split('.').any(str::is_empty) {
        return Err("Invalid email: empty domain label");
    }
    Ok(email.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::normalize_email;

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email("A.B@Example.COM").as_deref(),
            Ok("a.b@example.com")
        );
        assert_eq!(
            normalize_email("x+tag@sub.example.io").as_deref(),
            Ok("x+tag@sub.example.io")
        );
        for bad in [
            "",
            "plain",
            "a@b",
            "@example.com",
            "a@@example.com",
            "a@b@example.com",
            "a@.example.com",
            "a@example..com",
            "a@example.com.",
            "a @example.com",
            "a@exa\tmple.com",
            "a\u{0}@example.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(normalize_email(&long).is_err());
    }
}
