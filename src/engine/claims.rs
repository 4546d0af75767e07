//! A JWT's claims as a flow reads them: the payload decoded (base64url, JSON) without a
//! signature check, for `extract = { v = { jwt = "token", claim = "exp" } }` and checks
//! on a claim; and the facts a report shows about a flow's tokens (algorithm, lifetime
//! `exp - iat`, issuer, audience).
//!
//! A token is verified only when the scenario gives its HMAC key (`key = "..."`): a
//! load test reads what the service issued; `authbench check` is where forged and
//! expired tokens are tried.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The header and claims of a compact JWS, or `None` for anything else.
pub fn decode(token: &str) -> Option<(Value, Value)> {
    let mut parts = token.trim().split('.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let json = |part: &str| -> Option<Value> {
        let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(Value::is_object)
    };
    Some((json(h)?, json(p)?))
}

/// Whether `token`'s HMAC signature (HS256, HS384 or HS512, as its header says)
/// verifies with `key`. Only the signature: expiry and audience are claims to check.
pub fn verifies(token: &str, key: &[u8]) -> bool {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return false;
    };
    if !matches!(
        header.alg,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return false;
    }
    let mut v = Validation::new(header.alg);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(key), &v).is_ok()
}

/// What a report says about the tokens of one variable, as the first flow saw them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFacts {
    /// The variable that held the token.
    pub var: String,
    /// The header's `alg`.
    pub alg: String,
    /// `exp - iat` in seconds, when both are numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifetime_s: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `aud`, a string or the strings of an array joined with `, `.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

impl TokenFacts {
    /// The facts of `token` (held by `var`), when it is a JWT.
    pub fn of(var: &str, token: &str) -> Option<TokenFacts> {
        let (header, claims) = decode(token)?;
        let num = |k: &str| claims.get(k).and_then(Value::as_i64);
        let audience = match claims.get("aud") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(a)) => Some(
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            _ => None,
        };
        Some(TokenFacts {
            var: var.to_string(),
            alg: header["alg"].as_str().unwrap_or("?").to_string(),
            lifetime_s: num("exp").zip(num("iat")).map(|(e, i)| e - i),
            issuer: claims
                .get("iss")
                .and_then(Value::as_str)
                .map(str::to_string),
            audience,
        })
    }

    /// One line for a report: `token: HS256, lifetime 24h (86400 s), issuer ..., audience ...`.
    pub fn line(&self) -> String {
        let mut s = format!("{}: {}", self.var, self.alg);
        match self.lifetime_s {
            Some(l) => s.push_str(&format!(", lifetime {} ({l} s)", human(l))),
            None => s.push_str(", lifetime not stated (no exp and iat)"),
        }
        if let Some(i) = &self.issuer {
            s.push_str(&format!(", issuer {i}"));
        }
        if let Some(a) = &self.audience {
            s.push_str(&format!(", audience {a}"));
        }
        s
    }
}

fn human(secs: i64) -> String {
    match secs {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}min", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str, claims: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn decodes_and_describes_a_token() {
        let t = token(
            r#"{"alg":"RS256"}"#,
            r#"{"iss":"http://idp","aud":["a","b"],"iat":1000,"exp":87400}"#,
        );
        let f = TokenFacts::of("token", &t).unwrap();
        assert_eq!(f.lifetime_s, Some(86_400));
        assert_eq!(
            f.line(),
            "token: RS256, lifetime 24h (86400 s), issuer http://idp, audience a, b"
        );
        let f = TokenFacts::of("t", &token(r#"{"alg":"HS256"}"#, r#"{"sub":"x"}"#)).unwrap();
        assert!(f.line().contains("not stated"), "{}", f.line());
        assert_eq!(TokenFacts::of("t", "opaque-token"), None);
        let signed = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({ "sub": "x" }),
            &jsonwebtoken::EncodingKey::from_secret(b"k1"),
        )
        .unwrap();
        assert!(verifies(&signed, b"k1"));
        assert!(!verifies(&signed, b"k2"));
        assert!(!verifies(&t, b"k1"));
        assert_eq!(decode("a.b.c"), None);
    }
}
