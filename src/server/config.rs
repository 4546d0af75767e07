//! Server configuration: the knobs a benchmark run turns (bcrypt cost, hashing
//! strategy, pool size, token lifetimes, rate limits) plus the secrets, with defaults that
//! match the target service (cost 12, 24 h tokens).
//!
//! Nothing here is checked; [`crate::server::AppState::new`] checks the whole
//! configuration once and reports the first problem as a
//! [`ServerError`](crate::server::ServerError).

use std::fmt;
use std::time::Duration;

pub use crate::password::HashMode;

/// Default bcrypt cost, the target service's `PASSWORD_HASH_ROUNDS` default.
pub const DEFAULT_COST: u32 = 12;

/// Default access-token lifetime (the target's `expires_in: 86400`).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Everything the reference server needs to start.
///
/// `Debug` is written by hand so that printing a config (in a report, in an
/// error) never leaks the API key or the JWT secret.
#[derive(Clone)]
pub struct ServerConfig {
    /// bcrypt cost factor (log2 of the rounds), valid 4..=31.
    pub cost: u32,
    /// Another hash algorithm (argon2id, scrypt, PBKDF2, or bcrypt); `None`: bcrypt at
    /// `cost`.
    pub algorithm: Option<crate::password::Algorithm>,
    /// Value every `/auth/*` request must carry in `X-API-Key`.
    pub api_key: String,
    /// HS256 signing key. Random 32 bytes by default, so tokens from one
    /// server start are not valid on the next.
    pub jwt_secret: Vec<u8>,
    /// How many hashes/verifies may run at once in [`HashMode::Pool`].
    pub hash_threads: usize,
    /// Where bcrypt work runs.
    pub hash_mode: HashMode,
    /// Lifetime of issued access tokens (`exp - iat`, and `expires_in`).
    pub token_ttl: Duration,
    /// Lifetime of one refresh token (each rotation issues a new one with a
    /// fresh lifetime).
    pub refresh_ttl: Duration,
    /// Login and registration rate limits.
    pub rate_limit: RateLimitConfig,
    /// Serve HTTPS with this certificate; plain HTTP when `None`.
    pub tls: Option<super::tls::TlsIdentity>,
}

/// Default refresh-token lifetime: 30 days.
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Rate limits on `/auth/login` and `/auth/register` (see `server::ratelimit` for why
/// the per-account limit is the strict one and the per-IP limit counts only failures).
/// A limited request gets 429 with `Retry-After` and costs no hashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Off only for experiments that must measure hashing alone.
    pub enabled: bool,
    /// Length of a counting window.
    pub window: Duration,
    /// Login attempts on one email per window without a success in between.
    pub login_attempts_per_account: u32,
    /// Registration attempts for one email per window.
    pub register_attempts_per_account: u32,
    /// Failed logins and registrations from one IP per window. Generous: it is a
    /// backstop against spraying guesses across many accounts, and successes never
    /// count, so a load generator on one address is not throttled.
    pub failures_per_ip: u32,
}

impl Default for RateLimitConfig {
    /// 5 login and 10 registration attempts per account, 1000 failures per IP, per minute.
    fn default() -> Self {
        Self {
            enabled: true,
            window: Duration::from_secs(60),
            login_attempts_per_account: 5,
            register_attempts_per_account: 10,
            failures_per_ip: 1000,
        }
    }
}

impl ServerConfig {
    /// A config with the given cost and API key; everything else default.
    pub fn new(cost: u32, api_key: impl Into<String>) -> Self {
        Self {
            cost,
            algorithm: None,
            api_key: api_key.into(),
            jwt_secret: rand::random::<[u8; 32]>().to_vec(),
            hash_threads: default_hash_threads(),
            hash_mode: HashMode::default(),
            token_ttl: DEFAULT_TOKEN_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
            rate_limit: RateLimitConfig::default(),
            tls: None,
        }
    }
}

impl Default for ServerConfig {
    /// Cost 12 and a random API key of 32 hex characters.
    fn default() -> Self {
        let key: String = rand::random::<[u8; 16]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self::new(DEFAULT_COST, key)
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("cost", &self.cost)
            .field("algorithm", &self.algorithm)
            .field("api_key", &format_args!("<{} bytes>", self.api_key.len()))
            .field(
                "jwt_secret",
                &format_args!("<{} bytes>", self.jwt_secret.len()),
            )
            .field("hash_threads", &self.hash_threads)
            .field("hash_mode", &self.hash_mode)
            .field("token_ttl", &self.token_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("rate_limit", &self.rate_limit)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// One hashing slot per core: bcrypt is pure CPU, so more concurrent hashes
/// than cores only makes every one of them slower.
fn default_hash_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
