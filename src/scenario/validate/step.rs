//! The checks of a step's session keys: `extract` (a JSON pointer, a header, a regular
//! expression over the body or a header, a cookie), `think`, `role`, and the request-body and
//! `basic` conflicts. Each problem is reported at `file:line:col` like every other check.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use reqwest::header::HeaderName;
use toml::Spanned;

use super::Diagnostics;
use crate::scenario::{ExtractSource, Role, Think};

/// The keys an `extract` table may hold.
const EXTRACT_KEYS: &[&str] = &["header", "regex", "group", "cookie", "jwt", "claim"];

impl Diagnostics<'_> {
    /// An `[steps.extract]` entry: its variable name and where the value comes from.
    /// `cookies` says whether the scenario keeps a cookie jar.
    pub(in crate::scenario) fn extract(
        &mut self,
        k: &Spanned<String>,
        v: &Spanned<toml::Value>,
        builtins: &BTreeMap<String, usize>,
        cookies: bool,
        scope: &BTreeMap<String, usize>,
    ) -> Option<ExtractSource> {
        if !self.ident(k) {
            return None;
        }
        let name = k.get_ref();
        if builtins.contains_key(name) {
            self.err(
                k.span().start,
                format!("`{name}` is a built-in variable and cannot be extracted into"),
            );
            return None;
        }
        let at = v.span().start;
        let table = match v.get_ref() {
            toml::Value::String(p) => {
                if !(p.is_empty() || p.starts_with('/')) {
                    self.err(
                        at,
                        format!("`{p}` is not a JSON pointer: it must be empty or start with `/`, e.g. `/access_token`"),
                    );
                    return None;
                }
                return Some(ExtractSource::Pointer(p.as_str().into()));
            }
            toml::Value::Table(t) => t,
            _ => {
                self.err(at, format!("extract `{name}` must be a JSON pointer (\"/access_token\") or a table: {{ header = \"name\" }}, {{ regex = '...', group = 1 }} (with `header` to search a header) or {{ cookie = \"name\" }}"));
                return None;
            }
        };
        if let Some(bad) = table.keys().find(|k| !EXTRACT_KEYS.contains(&k.as_str())) {
            self.err(
                at,
                format!("unknown key `{bad}` in extract `{name}`: expected `header`, `regex`, `group`, `cookie` or `jwt` with `claim`"),
            );
            return None;
        }
        let mut text = |key: &str| -> Result<Option<String>, ()> {
            match table.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => {
                    self.err(at, format!("`{key}` in extract `{name}` must be a string"));
                    Err(())
                }
            }
        };
        let (header, regex, cookie) = (text("header"), text("regex"), text("cookie"));
        let (Ok(header), Ok(regex), Ok(cookie)) = (header, regex, cookie) else {
            return None;
        };
        let group = match table.get("group") {
            None => None,
            Some(toml::Value::Integer(g)) if *g >= 0 => Some(*g as usize),
            Some(_) => {
                self.err(
                    at,
                    format!("`group` in extract `{name}` must be a capture group number: 0 (the whole match), 1, 2, ..."),
                );
                return None;
            }
        };
        if let Some(c) = cookie {
            return self.extract_cookie(name, &c, at, table.len(), cookies);
        }
        if table.contains_key("jwt") || table.contains_key("claim") {
            let what = format!("extract `{name}`");
            return self
                .jwt_source(at, &what, table, scope)
                .map(ExtractSource::Jwt);
        }
        let header = match header {
            Some(h) => match HeaderName::from_bytes(h.as_bytes()) {
                Ok(h) => Some(h),
                Err(_) => {
                    self.err(at, format!("`{h}` is not a valid HTTP header name"));
                    return None;
                }
            },
            None => None,
        };
        match regex {
            Some(pattern) => self.extract_regex(name, &pattern, group, header, at),
            None if group.is_some() => {
                self.err(
                    at,
                    format!("`group` in extract `{name}` needs a `regex` whose group it picks"),
                );
                None
            }
            None => match header {
                Some(h) => Some(ExtractSource::Header(h)),
                None => {
                    self.err(
                        at,
                        format!("extract `{name}` is an empty table: give `header`, `regex` or `cookie`"),
                    );
                    None
                }
            },
        }
    }

    fn extract_cookie(
        &mut self,
        name: &str,
        cookie: &str,
        at: usize,
        keys: usize,
        cookies: bool,
    ) -> Option<ExtractSource> {
        if keys > 1 {
            self.err(
                at,
                format!(
                    "extract `{name}`: `cookie` reads the flow's cookie jar and takes no other key"
                ),
            );
            return None;
        }
        if !cookies {
            self.err(
                at,
                format!("extract `{name}` reads a cookie, but `cookies = false` turns the cookie jar off"),
            );
            return None;
        }
        let bad = |c: char| c.is_ascii_control() || c.is_whitespace() || ";=,\"".contains(c);
        if cookie.is_empty() || cookie.chars().any(bad) {
            self.err(
                at,
                format!("`{cookie}` is not a cookie name (no spaces, `;`, `=`, `,` or quotes)"),
            );
            return None;
        }
        Some(ExtractSource::Cookie(cookie.into()))
    }

    fn extract_regex(
        &mut self,
        name: &str,
        pattern: &str,
        group: Option<usize>,
        header: Option<HeaderName>,
        at: usize,
    ) -> Option<ExtractSource> {
        let re = match regex::bytes::Regex::new(pattern) {
            Ok(re) => re,
            Err(e) => {
                self.err(at, super::regex_error(pattern, &e));
                return None;
            }
        };
        let groups = re.captures_len() - 1;
        let group = group.unwrap_or(1);
        if group > groups {
            let hint = if groups == 0 {
                " (use `group = 0` for the whole match, or put the value in parentheses)"
            } else {
                ""
            };
            self.err(
                at,
                format!("extract `{name}` takes group {group}, but `{pattern}` has {groups} capture group(s){hint}"),
            );
            return None;
        }
        Some(ExtractSource::Regex { re, group, header })
    }

    /// `role = "login"`: one of [`Role::ALL`].
    pub(in crate::scenario) fn role(&mut self, r: &Spanned<String>) -> Option<Role> {
        let role = Role::parse(r.get_ref().trim());
        if role.is_none() {
            let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            self.err(
                r.span().start,
                format!(
                    "`role = \"{}\"` is not a role: use one of {}",
                    r.get_ref(),
                    known.join(", ")
                ),
            );
        }
        role
    }

    /// `think = "1s"` or `think = { min = "500ms", max = "2s" }`.
    pub(in crate::scenario) fn think(&mut self, v: &Spanned<toml::Value>) -> Option<Think> {
        let at = v.span().start;
        let usage = "`think` is a duration (\"1s\", \"500ms\") or a range { min = \"500ms\", max = \"2s\" }";
        let mut duration = |s: &str| match parse_think(s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(at, format!("{e}; {usage}"));
                None
            }
        };
        match v.get_ref() {
            toml::Value::String(s) => duration(s).map(|d| Think { min: d, max: d }),
            toml::Value::Table(t) => {
                let get = |k: &str| t.get(k).and_then(toml::Value::as_str);
                let known = t.keys().all(|k| k == "min" || k == "max");
                match (get("min"), get("max")) {
                    (Some(min), Some(max)) if known && t.len() == 2 => {
                        let (min, max) = (duration(min)?, duration(max)?);
                        if min > max {
                            self.err(at, "`think`: `min` is above `max`");
                            return None;
                        }
                        Some(Think { min, max })
                    }
                    _ => {
                        self.err(at, usage);
                        None
                    }
                }
            }
            _ => {
                self.err(at, usage);
                None
            }
        }
    }

    /// A step with both `body` and `form`: they both give the request body.
    pub(in crate::scenario) fn body_and_form(&mut self, form: &Range<usize>) {
        self.err(
            form.start,
            "`body` and `form` both give the request body: keep one",
        );
    }

    /// A step with both `basic` and its own `Authorization` header.
    pub(in crate::scenario) fn basic_and_authorization(&mut self, basic: &Range<usize>) {
        self.err(
            basic.start,
            "`basic` sets the Authorization header, and this step's `headers` set it too: keep one",
        );
    }

    /// `basic`'s `encode`: `"form"` (true) or `"none"` (false).
    pub(in crate::scenario) fn basic_encode(&mut self, e: &Spanned<String>) -> Option<bool> {
        match e.get_ref().as_str() {
            "form" => Some(true),
            "none" => Some(false),
            other => {
                self.err(
                    e.span().start,
                    format!(
                        "`encode = \"{other}\"`: use \"form\" (OAuth 2.0 client credentials, RFC 6749 \
                         section 2.3.1: id and secret form-urlencoded first) or \"none\" (plain \
                         HTTP Basic, RFC 7617, the default)"
                    ),
                );
                None
            }
        }
    }

    /// A form value that is not a string, a number or a boolean.
    pub(in crate::scenario) fn form_value(&mut self, at: usize, key: &str) {
        self.err(
            at,
            format!("form field `{key}` must be a string (a template), a number or a boolean"),
        );
    }
}

/// A think duration: what `--timeout` accepts, and 0.
fn parse_think(s: &str) -> Result<Duration, String> {
    let digits: String = s
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    if digits.parse::<f64>().is_ok_and(|n| n == 0.0) {
        return Ok(Duration::ZERO);
    }
    crate::units::parse_duration(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn think_durations() {
        assert_eq!(parse_think("0"), Ok(Duration::ZERO));
        assert_eq!(parse_think("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_think("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_think("soon").is_err());
    }
}
