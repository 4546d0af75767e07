//! Access tokens: HS256 JWTs with the target service's claims (`sub`,
//! `email`, `iat`, `exp`, `type: "access"`), issued at register and login
//! and checked by the [`AuthUser`](super::extract::AuthUser) extractor.
//! They also carry `sid`, the refresh-token family they belong to (see
//! `sessions`), so revoking a family ends its access tokens at once.
//!
//! Refresh tokens are JWTs of `type: "refresh"` with the family (`sid`) and
//! generation (`jti`); the type check keeps either kind from being used as
//! the other.
//!
//! Validation is strict on purpose, since the reference server is what a
//! real service is compared against: the algorithm is pinned to HS256 (so
//! `alg: none` and RS/HS confusion are rejected before the signature is even
//! looked at), `exp`, `iat` and `sub` are required, and the leeway is 0.
//! Leeway exists to absorb clock skew between an issuer and a verifier on
//! different machines; here both are this process, reading one clock.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::error::AuthError;
use super::store::User;

/// Token types: an access token authenticates requests, a refresh token
/// only buys a new pair at `/auth/refresh`.
const ACCESS: &str = "access";
const REFRESH: &str = "refresh";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// User id, as a string (as the target service does).
    pub sub: String,
    pub email: String,
    /// Issued at, seconds since the Unix epoch. Not a field `Validation`
    /// can require, so it is required by being a non-optional field here.
    pub iat: u64,
    pub exp: u64,
    #[serde(rename = "type")]
    pub token_type: String,
    /// Refresh-token family (session) id. Optional when decoding so a token
    /// without one is judged by signature and expiry alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<u64>,
    /// Generation of a refresh token within its family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

pub(crate) struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    refresh_ttl: Duration,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: Duration, refresh_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = false;
        // We issue no `aud`; do not reject tokens for lacking one.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
            refresh_ttl,
        }
    }

    /// Seconds a fresh token lives: the `expires_in` of a token response.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs()
    }

    /// An access token of `user` in session `sid`.
    pub fn issue(&self, user: &User, sid: u64) -> Result<String, AuthError> {
        self.encode(user, ACCESS, self.ttl, Some(sid), None)
    }

    /// A refresh token of `user`: generation `jti` of session `sid`.
    pub fn issue_refresh(&self, user: &User, sid: u64, jti: String) -> Result<String, AuthError> {
        self.encode(user, REFRESH, self.refresh_ttl, Some(sid), Some(jti))
    }

    fn encode(
        &self,
        user: &User,
        token_type: &str,
        ttl: Duration,
        sid: Option<u64>,
        jti: Option<String>,
    ) -> Result<String, AuthError> {
        let iat = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.id.to_string(),
            email: user.email.clone(),
            iat,
            exp: iat.saturating_add(ttl.as_secs()),
            token_type: token_type.to_owned(),
            sid,
            jti,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| AuthError::Internal)
    }

    /// Checks signature, algorithm, expiry and type of an access token.
    /// Whether the user and the session are still live is the caller's check
    /// (it needs the stores).
    pub fn check(&self, token: &str) -> Result<Claims, AuthError> {
        self.decode(token, ACCESS)
    }

    /// Like [`JwtKeys::check`] for a refresh token, which must name its
    /// session and generation.
    pub fn check_refresh(&self, token: &str) -> Result<Claims, AuthError> {
        let claims = self.decode(token, REFRESH)?;
        if claims.sid.is_none() || claims.jti.is_none() {
            return Err(AuthError::InvalidToken);
        }
        Ok(claims)
    }

    fn decode(&self, token: &str, token_type: &str) -> Result<Claims, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::TokenExpired,
                _ => AuthError::InvalidToken,
            })?;
        if data.claims.token_type != token_type {
            return Err(AuthError::InvalidToken);
        }
        Ok(data.claims)
    }
}
