//! Bad tokens made from a good one: a forged signature, `alg: none`, an expired token
//! (signed with the target's HS256 secret or its RS256/ES256 private key, only when one
//! is given), a truncated one, garbage.
//!
//! Nothing here validates a token; the payload is read without a signature check to
//! compare `exp - iat` with `expires_in` and to look for secrets in the claims.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// The three parts of a compact JWS, when `token` is one.
pub struct Jwt<'a> {
    pub header_b64: &'a str,
    pub payload_b64: &'a str,
    pub header: Value,
    pub claims: Value,
}

impl<'a> Jwt<'a> {
    /// Parses a JWT's header and payload (no signature check); `None` for anything
    /// that is not three dot-separated parts with JSON objects in the first two.
    pub fn parse(token: &'a str) -> Option<Self> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let header = decode_json(h)?;
        let claims = decode_json(p)?;
        (header.is_object() && claims.is_object()).then_some(Jwt {
            header_b64: h,
            payload_b64: p,
            header,
            claims,
        })
    }

    pub fn alg(&self) -> &str {
        self.header["alg"].as_str().unwrap_or("")
    }

    /// The same header and claims with a random signature.
    pub fn bad_signature(&self) -> String {
        let sig: [u8; 32] = rand::random();
        format!(
            "{}.{}.{}",
            self.header_b64,
            self.payload_b64,
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    /// The same claims, `alg: none`, no signature.
    pub fn alg_none(&self) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        format!("{header}.{}.", self.payload_b64)
    }

    /// The same claims, issued two hours ago and expired an hour ago, correctly signed
    /// with `secret` (HS256). `None` when the token is not HS256: a secret cannot sign it.
    pub fn expired(&self, secret: &[u8]) -> Option<String> {
        if self.alg() != "HS256" {
            return None;
        }
        let claims = expired_claims(&self.claims)?;
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .ok()
    }

    /// The same claims, expired an hour ago, signed with `key` in the token's own
    /// algorithm. `None` when the key cannot sign it (an RSA key and an ES256 token).
    pub fn expired_with(&self, key: &SigningKey) -> Option<String> {
        let alg = match (self.alg(), key.kind) {
            ("RS256", KeyKind::Rsa) => jsonwebtoken::Algorithm::RS256,
            ("RS384", KeyKind::Rsa) => jsonwebtoken::Algorithm::RS384,
            ("RS512", KeyKind::Rsa) => jsonwebtoken::Algorithm::RS512,
            ("PS256", KeyKind::Rsa) => jsonwebtoken::Algorithm::PS256,
            ("ES256", KeyKind::EcP256) => jsonwebtoken::Algorithm::ES256,
            _ => return None,
        };
        let mut header = jsonwebtoken::Header::new(alg);
        // The verifier may pick its key by `kid`: keep the token's.
        header.kid = self.header["kid"].as_str().map(str::to_string);
        jsonwebtoken::encode(&header, &expired_claims(&self.claims)?, &key.key).ok()
    }

    /// The same claims as HS256, with the target's *public* key (its PEM text) as the
    /// HMAC secret: a verifier that takes the algorithm from the token and the key from
    /// its configuration accepts it (algorithm confusion).
    pub fn alg_confusion(&self, public_pem: &[u8]) -> Option<String> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = self.header["kid"].as_str().map(str::to_string);
        jsonwebtoken::encode(
            &header,
            &self.claims,
            &jsonwebtoken::EncodingKey::from_secret(public_pem),
        )
        .ok()
    }

    /// `exp - iat` in seconds, when both are numbers.
    pub fn lifetime(&self) -> Option<i64> {
        let n = |k: &str| self.claims[k].as_f64();
        Some((n("exp")? - n("iat")?).round() as i64)
    }
}

/// `claims` issued two hours ago and expired an hour ago.
fn expired_claims(claims: &Value) -> Option<Value> {
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = claims.clone();
    let obj = claims.as_object_mut()?;
    obj.insert("iat".into(), now.saturating_sub(7200).into());
    obj.insert("exp".into(), now.saturating_sub(3600).into());
    if obj.contains_key("nbf") {
        obj.insert("nbf".into(), now.saturating_sub(7200).into());
    }
    Some(claims)
}

/// The kind of a private key, which decides the algorithms it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RS256/RS384/RS512/PS256.
    Rsa,
    /// ES256.
    EcP256,
}

/// A private key the target trusts (`--jwt-private-key`), to sign forged tokens.
#[derive(Clone)]
pub struct SigningKey {
    pub kind: KeyKind,
    key: jsonwebtoken::EncodingKey,
}

/// Why `--jwt-private-key` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("could not read the JWT key '{path}': {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the JWT key '{0}' is not a PEM RSA or EC P-256 private key (PKCS#1, SEC1 or PKCS#8)")]
    Format(String),
}

impl SigningKey {
    /// Reads a PEM private key: RSA (PKCS#1 or PKCS#8) or EC P-256 (SEC1 or PKCS#8).
    pub fn load(path: &std::path::Path) -> Result<Self, KeyError> {
        let pem = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&pem).ok_or_else(|| KeyError::Format(path.display().to_string()))
    }

    pub fn from_pem(pem: &[u8]) -> Option<Self> {
        let text = String::from_utf8_lossy(pem);
        if !text.contains("PRIVATE KEY-----") {
            return None;
        }
        // Try signing something: a key that parses but cannot sign is no use.
        let works = |key: &jsonwebtoken::EncodingKey, alg| {
            jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &serde_json::json!({}), key)
                .is_ok()
        };
        if let Ok(key) = jsonwebtoken::EncodingKey::from_ec_pem(pem) {
            if works(&key, jsonwebtoken::Algorithm::ES256) {
                return Some(SigningKey {
                    kind: KeyKind::EcP256,
                    key,
                });
            }
        }
        if let Ok(key) = jsonwebtoken::EncodingKey::from_rsa_pem(pem) {
            if works(&key, jsonwebtoken::Algorithm::RS256) {
                return Some(SigningKey {
                    kind: KeyKind::Rsa,
                    key,
                });
            }
        }
        None
    }
}

/// The token with its last quarter (at least 4 characters) cut off.
pub fn truncated(token: &str) -> String {
    let keep = token.len().saturating_sub((token.len() / 4).max(4));
    let mut end = keep;
    while !token.is_char_boundary(end) {
        end -= 1;
    }
    token[..end].to_string()
}

/// Random text that is no kind of token.
pub fn garbage() -> String {
    format!("garbage-{:032x}", rand::random::<u128>())
}

fn decode_json(part: &str) -> Option<Value> {
    // Some issuers pad; accept both.
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(secret: &[u8]) -> String {
        let claims = serde_json::json!({"sub": "1", "iat": 1000, "exp": 87400});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn forgeries() {
        let t = token(b"s3cret");
        let jwt = Jwt::parse(&t).unwrap();
        assert_eq!(jwt.alg(), "HS256");
        assert_eq!(jwt.lifetime(), Some(86400));
        assert_ne!(jwt.bad_signature(), t);
        assert!(jwt.alg_none().ends_with('.'));
        let none = jwt.alg_none();
        assert_eq!(Jwt::parse(&none).unwrap().alg(), "none");

        let expired = jwt.expired(b"s3cret").unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let data = jsonwebtoken::decode::<Value>(
            &expired,
            &jsonwebtoken::DecodingKey::from_secret(b"s3cret"),
            &v,
        )
        .unwrap();
        assert!(data.claims["exp"].as_u64().unwrap() < jsonwebtoken::get_current_timestamp());

        assert!(truncated(&t).len() < t.len());
        assert_eq!(truncated("abc"), "");
        for bad in ["", "a.b", "a.b.c.d", "!!.??.x", &garbage()] {
            assert!(Jwt::parse(bad).is_none(), "{bad}");
        }
    }
}
