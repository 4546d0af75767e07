//! [`AppState`]: the checked configuration turned into ready-to-use parts
//! (API key, JWT keys, user store, sessions, rate limiter, hasher), shared by
//! every request.
//!
//! It is built once by [`AppState::new`], which is also the one place the
//! configuration is validated, and is cheap to clone (one `Arc`).

use std::sync::Arc;

use subtle::{ConditionallySelectable, ConstantTimeEq, ConstantTimeLess};

use super::config::{HashMode, ServerConfig};
use super::error::ServerError;
use super::hashing::Hasher;
use super::jwt::JwtKeys;
use super::ratelimit::RateLimiter;
use super::sessions::Sessions;
use super::store::UserStore;

/// Shared server state. Clone freely.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Shared>,
}

pub(crate) struct Shared {
    api_key: Box<[u8]>,
    pub jwt: JwtKeys,
    pub store: UserStore,
    pub sessions: Sessions,
    pub limiter: RateLimiter,
    pub hasher: Hasher,
    pub cost: u32,
    pub hash_mode: HashMode,
    pub hash_threads: usize,
}

impl AppState {
    /// Checks `cfg` and builds the state. This computes one bcrypt hash at
    /// the configured cost (the dummy hash for unknown-user logins), so it
    /// takes about as long as one registration.
    pub fn new(cfg: ServerConfig) -> Result<Self, ServerError> {
        if !(4..=31).contains(&cfg.cost) {
            return Err(ServerError::InvalidCost(cfg.cost));
        }
        if cfg.api_key.is_empty() || !cfg.api_key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ServerError::InvalidApiKey);
        }
        if cfg.jwt_secret.is_empty() {
            return Err(ServerError::EmptyJwtSecret);
        }
        if cfg.hash_threads == 0 {
            return Err(ServerError::ZeroHashThreads);
        }
        if cfg.token_ttl.as_secs() == 0 || cfg.refresh_ttl.as_secs() == 0 {
            return Err(ServerError::InvalidTokenTtl);
        }
        if cfg.rate_limit.enabled && cfg.rate_limit.window.is_zero() {
            return Err(ServerError::InvalidRateLimit);
        }
        let algorithm = cfg
            .algorithm
            .unwrap_or(crate::password::Algorithm::Bcrypt { cost: cfg.cost });
        algorithm
            .check()
            .map_err(|e| ServerError::Algorithm(e.to_string()))?;
        let hasher = Hasher::new(cfg.hash_mode, algorithm, cfg.hash_threads)?;
        Ok(Self {
            inner: Arc::new(Shared {
                api_key: cfg.api_key.into_bytes().into_boxed_slice(),
                jwt: JwtKeys::new(&cfg.jwt_secret, cfg.token_ttl, cfg.refresh_ttl),
                store: UserStore::new(),
                sessions: Sessions::new(),
                limiter: RateLimiter::new(&cfg.rate_limit),
                hasher,
                cost: cfg.cost,
                hash_mode: cfg.hash_mode,
                hash_threads: cfg.hash_threads,
            }),
        })
    }

    /// Number of registered users.
    pub fn user_count(&self) -> usize {
        self.inner.store.len()
    }
}

impl Shared {
    /// Whether `given` is the API key, in time that depends only on the
    /// expected key's length.
    pub fn api_key_matches(&self, given: &[u8]) -> bool {
        constant_time_key_eq(&self.api_key, given)
    }
}

/// Compares `given` to `expected` without data-dependent branches or early
/// exits: the loop always runs `expected.len()` times and every iteration
/// does the same work. Bytes past the end of `given` are read as 0 via a
/// constant-time select (the index is clamped to 0, which is always in
/// bounds), and the lengths are compared in constant time too. So the time
/// reveals neither where a wrong key differs nor how long it is. (A plain
/// `ct_eq` on slices returns early when the lengths differ.)
fn constant_time_key_eq(expected: &[u8], given: &[u8]) -> bool {
    // The only branch: empty vs non-empty input, which is the caller's own
    // knowledge and says nothing about the key.
    let source: &[u8] = if given.is_empty() { &[0] } else { given };
    let given_len = given.len() as u64;
    let mut equal = given_len.ct_eq(&(expected.len() as u64));
    for (i, &want) in expected.iter().enumerate() {
        let in_range = (i as u64).ct_lt(&given_len);
        let index = u64::conditional_select(&0, &(i as u64), in_range) as usize;
        let got = u8::conditional_select(&0, &source[index], in_range);
        equal &= got.ct_eq(&want);
    }
    equal.into()
}

#[cfg(test)]
mod tests {
    use super::constant_time_key_eq as eq;

    #[test]
    fn key_comparison() {
        assert!(eq(b"secret-key", b"secret-key"));
        assert!(!eq(b"secret-key", b"secret-kez"));
        assert!(!eq(b"secret-key", b"secret-ke"));
        assert!(!eq(b"secret-key", b"secret-key!"));
        assert!(!eq(b"secret-key", b""));
        // A prefix padded with the zero bytes the comparison reads past the
        // end must still not match.
        assert!(!eq(b"ab\0", b"ab"));
        assert!(!eq(b"k", b"\0"));
    }
}
