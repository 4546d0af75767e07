//! Access tokens: HS256 JWTs with the target service's claims (`sub`,
//! `email`, `iat`, `exp`, `type: "access"`), issued at register and login
//! and checked by the [`AuthUser`](super::extract::AuthUser) extractor.
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

/// The only token type this server issues and accepts.
const ACCESS: &str = "access";

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
}

pub(crate) struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
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
        }
    }

    /// Seconds a fresh token lives: the `expires_in` of a token response.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs()
    }

    pub fn issue(&self, user: &User) -> Result<String, AuthError> {
        let iat = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.id.to_string(),
            email: user.email.clone(),
            iat,
            exp: iat.saturating_add(self.ttl_secs()),
            token_type: ACCESS.to_owned(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| AuthError::Internal)
    }

    /// Checks signature, algorithm, expiry and type. Whether the user still
    /// exists is the caller's check (it needs the store).
    pub fn check(&self, token: &str) -> Result<Claims, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::TokenExpired,
                _ => AuthError::InvalidToken,
            })?;
        if data.claims.token_type != ACCESS {
            return Err(AuthError::InvalidToken);
        }
        Ok(data.claims)
    }
}
