//! What came back: a [`Reply`] (status, headers, the body up to a cap, and whether it was
//! cut), what it means for a verdict ([`Reply::rate_limited`]), the [`Exchange`] log
//! entry the scans read, and the redaction that keeps live tokens out of every report.
//!
//! Nothing a server sends can make these panic: bodies are bytes, read lossily as text.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Bytes of a response body kept; the rest is read and dropped.
pub const MAX_BODY: usize = 1 << 20;
/// Bytes of a response body kept in the exchange log, for the scans and the excerpts.
pub const MAX_KEPT_BODY: usize = 16 * 1024;

/// A complete response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// From handing the request to the client to the last byte of the body.
    pub elapsed: Duration,
    /// The body was longer than the cap it was read with: `body` holds its start only.
    pub truncated: bool,
    /// The HTTP version it came over (`HTTP/1.1`, `HTTP/2.0`); empty for [`Reply::none`].
    pub version: String,
}

/// The longest wait `check` honours before retrying a rate-limited request once.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);
/// The wait before the retry when a 429 advises none.
pub const DEFAULT_RETRY_WAIT: Duration = Duration::from_secs(1);

impl Reply {
    /// A placeholder for a step that was not sent (status 0).
    pub fn none() -> Reply {
        Reply {
            status: 0,
            headers: HeaderMap::new(),
            body: Vec::new(),
            elapsed: Duration::ZERO,
            truncated: false,
            version: String::new(),
        }
    }

    /// A 429, or a 503 with `Retry-After`: the service declined to judge the request,
    /// so the answer says nothing about the input.
    pub fn rate_limited(&self) -> bool {
        self.status == 429 || (self.status == 503 && self.headers.contains_key(RETRY_AFTER))
    }

    /// The wait `Retry-After` advises (delta-seconds or an HTTP date), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        let v = self.headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
        let ms = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
        Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
    }

    /// `rate limited: 429 {...} (Retry-After: 10)`: the reason of an inconclusive row.
    pub fn limited_reason(&self) -> String {
        let after = self
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(|v| format!(" (Retry-After: {})", excerpt(v, 40)))
            .unwrap_or_default();
        format!("rate limited: {}{after}", self.brief())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as text, tokens redacted, cut to `max` characters, for reports.
    pub fn excerpt(&self, max: usize) -> String {
        excerpt(&redact(&String::from_utf8_lossy(&self.body)), max)
    }

    /// `401 {"detail":"Invalid API key"}` (tokens redacted).
    pub fn brief(&self) -> String {
        let body = self.excerpt(80);
        if body.is_empty() {
            self.status.to_string()
        } else {
            format!("{} {body}", self.status)
        }
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status)
    }
    pub fn is_server_error(&self) -> bool {
        self.status >= 500
    }
}

/// `text` with live credentials replaced: JWTs, and the values of JSON fields named
/// like a token or a secret. Reports quote answers; they must not carry a usable token.
pub fn redact(text: &str) -> String {
    static PATTERNS: std::sync::OnceLock<Option<(regex::Regex, regex::Regex)>> =
        std::sync::OnceLock::new();
    let Some((jwt, field)) = PATTERNS.get_or_init(|| {
        Some((
            regex::Regex::new(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*").ok()?,
            regex::Regex::new(r#"(?i)("[a-z_]*(token|secret)[a-z_]*"\s*:\s*")[^"]{4,}""#).ok()?,
        ))
    }) else {
        return text.to_string();
    };
    let text = jwt.replace_all(text, "eyJ…(a JWT)");
    field
        .replace_all(&text, |c: &regex::Captures| {
            if c[1].to_ascii_lowercase().contains("token_type") {
                c[0].to_string()
            } else {
                format!("{}…\"", &c[1])
            }
        })
        .into_owned()
}

/// One line of text, cut to `max` characters.
pub fn excerpt(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() <= max {
        flat.to_string()
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// One request a probe sent and what came back, kept for the scans that run last (a
/// password hash anywhere, internals in error bodies) and for each row's excerpt.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The probe that sent it (`setup` for set-up, `control` for a control request).
    pub probe: String,
    /// Method, path and the credentials it carried, e.g. `GET /me [Authorization: Bearer]`.
    pub request: String,
    /// The status, or `None` when no answer came.
    pub status: Option<u16>,
    pub headers: HeaderMap,
    /// The body as text, at most [`MAX_KEPT_BODY`] bytes.
    pub body: String,
    /// The transport cause when no answer came.
    pub error: Option<String>,
}

impl Exchange {
    /// `401 {"detail":"..."}`, or the transport cause.
    pub fn response_excerpt(&self, max: usize) -> String {
        match (self.status, &self.error) {
            (Some(s), _) => {
                let body = excerpt(&redact(&self.body), max);
                if body.is_empty() {
                    s.to_string()
                } else {
                    format!("{s} {body}")
                }
            }
            (None, Some(e)) => format!("no answer: {e}"),
            (None, None) => "no answer".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_tokens() {
        let body = r#"{"access_token":"eyJhbGciOi.eyJzdWIiOiIx.c2ln","refresh_token":"opaque-value","token_type":"bearer","detail":"ok"}"#;
        let r = redact(body);
        assert!(
            !r.contains("opaque-value") && !r.contains("eyJzdWIiOiIx"),
            "{r}"
        );
        assert!(
            r.contains(r#""detail":"ok""#) && r.contains(r#""token_type":"bearer""#),
            "{r}"
        );
        assert_eq!(redact("no tokens"), "no tokens");
    }
}
