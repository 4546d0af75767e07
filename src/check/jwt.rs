//! Bad tokens made from a good one: a forged signature, `alg: none`, an expired token
//! (signed with the target's secret, only when it is known), a truncated one, garbage.
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
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = self.claims.clone();
        let obj = claims.as_object_mut()?;
        obj.insert("iat".into(), (now - 7200).into());
        obj.insert("exp".into(), (now - 3600).into());
        if obj.contains_key("nbf") {
            obj.insert("nbf".into(), (now - 7200).into());
        }
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .ok()
    }

    /// `exp - iat` in seconds, when both are numbers.
    pub fn lifetime(&self) -> Option<i64> {
        let n = |k: &str| self.claims[k].as_f64();
        Some((n("exp")? - n("iat")?).round() as i64)
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
