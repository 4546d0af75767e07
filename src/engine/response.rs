//! Checks one step's response: its status, then the values it extracts into the flow's
//! variable table (a JSON pointer, a header, a regular expression's group over the body or
//! a header, a cookie from the flow's jar), then its checks. The first problem is the
//! step's failure, classified for the report.

use reqwest::header::HeaderMap;
use url::Url;

use super::cookies::Jar;
use crate::samples::FailureKind;
use crate::scenario::{Check, Expectation, ExtractSource, JwtClaim, Step};

/// Checks status, extracts values and runs the step's checks (without a cookie jar: a
/// cookie to extract is missing). Only tests call it now: `check` keeps a jar too.
#[cfg(test)]
pub(crate) fn check_response(
    step: &Step,
    status: u16,
    headers: &HeaderMap,
    bytes: &[u8],
    vars: &mut [String],
) -> Result<(), FailureKind> {
    check_with_cookies(step, status, headers, bytes, vars, None)
}

/// Checks status, extracts values (cookies from `jar`, as sent to the URL with it) and
/// runs the step's checks.
pub(crate) fn check_with_cookies(
    step: &Step,
    status: u16,
    headers: &HeaderMap,
    bytes: &[u8],
    vars: &mut [String],
    jar: Option<(&Jar, &Url)>,
) -> Result<(), FailureKind> {
    if !step.expect.contains(status) {
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok());
        return Err(FailureKind::of_status(status, retry_after));
    }
    let json: Option<serde_json::Value> = if step.needs_json() {
        Some(serde_json::from_slice(bytes).map_err(|_| FailureKind::NotJson)?)
    } else {
        None
    };
    for ex in &step.extract {
        let value = match &ex.source {
            ExtractSource::Pointer(p) => json
                .as_ref()
                .and_then(|j| j.pointer(p))
                .and_then(scalar_string)
                .ok_or_else(|| FailureKind::Missing(p.clone()))?,
            ExtractSource::Header(h) => headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| FailureKind::Missing(format!("header {h}").into()))?,
            ExtractSource::Regex { re, group, header } => {
                let text = match header {
                    Some(h) => headers
                        .get(h)
                        .ok_or_else(|| FailureKind::Missing(format!("header {h}").into()))?
                        .as_bytes(),
                    None => bytes,
                };
                re.captures(text)
                    .and_then(|c| c.get(*group))
                    .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
                    .ok_or_else(|| {
                        FailureKind::Missing(format!("a match of the regex of `{}`", ex.var).into())
                    })?
            }
            ExtractSource::Jwt(j) => claim_of(vars, j)?
                .as_ref()
                .and_then(scalar_string)
                .ok_or_else(|| {
                    FailureKind::Missing(
                        format!("claim {} of the JWT in `{}`", j.claim, j.var).into(),
                    )
                })?,
            ExtractSource::Cookie(name) => jar
                .and_then(|(jar, url)| jar.value(name, url))
                .map(str::to_string)
                .ok_or_else(|| {
                    FailureKind::Missing(format!("cookie {name} (for `{}`)", ex.var).into())
                })?,
        };
        if let Some(slot) = vars.get_mut(ex.slot) {
            *slot = value;
        }
    }
    for c in &step.checks {
        let claim;
        let found = match &c.jwt {
            Some(j) => {
                claim = claim_of(vars, j)?;
                claim.as_ref()
            }
            None => json.as_ref().and_then(|j| j.pointer(&c.pointer)),
        };
        let Some(v) = found else {
            return Err(FailureKind::Missing(c.pointer.clone()));
        };
        let pass = match &c.expect {
            Expectation::Exists => true,
            Expectation::EqualsJson(want) => same_json(v, want),
            Expectation::EqualsStr(t) => equals_text(v, &t.render(vars)),
            Expectation::Matches(re) => match v {
                serde_json::Value::String(s) => re.is_match(s),
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
                    re.is_match(&v.to_string())
                }
                _ => false,
            },
        };
        if !pass {
            return Err(FailureKind::Check(check_detail(c, v, vars).into()));
        }
    }
    Ok(())
}

/// The claim `j` of the JWT held in its variable: decoded, and its signature verified
/// when `j` has a key (a signature that does not verify fails the step as a check).
fn claim_of(vars: &[String], j: &JwtClaim) -> Result<Option<serde_json::Value>, FailureKind> {
    let Some(token) = vars.get(j.slot) else {
        return Ok(None);
    };
    if let Some(key) = &j.key {
        if !super::claims::verifies(token, key.as_bytes()) {
            let what = format!(
                "jwt {}: the signature does not verify with the given key",
                j.var
            );
            return Err(FailureKind::Check(what.into()));
        }
    }
    let Some((_, mut claims)) = super::claims::decode(token) else {
        return Ok(None);
    };
    Ok(claims.get_mut(&*j.claim).map(serde_json::Value::take))
}

/// Whether `v` equals the rendered text `want`, compared as `v`'s JSON type: a string
/// as it is, a number by value (`42` equals "42" and "42.0"), `true` equals "true",
/// `null` equals "null".
pub(crate) fn equals_text(v: &serde_json::Value, want: &str) -> bool {
    use serde_json::Value as J;
    match v {
        J::String(s) => s == want,
        J::Number(n) => {
            n.to_string() == want
                || matches!((n.as_f64(), want.trim().parse::<f64>()), (Some(a), Ok(b)) if a == b)
        }
        J::Bool(b) => want.trim() == if *b { "true" } else { "false" },
        J::Null => want.trim() == "null",
        J::Array(_) | J::Object(_) => false,
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
fn same_json(v: &serde_json::Value, want: &serde_json::Value) -> bool {
    match (v.as_f64(), want.as_f64()) {
        (Some(a), Some(b)) if v.is_number() && want.is_number() => a == b,
        _ => v == want,
    }
}

/// `/id: expected "42", got 41`: what a failed check wanted and what it found, each
/// shortened to [`SHOWN`] characters.
fn check_detail(c: &Check, got: &serde_json::Value, vars: &[String]) -> String {
    let expected = match &c.expect {
        Expectation::Exists => "a value".to_string(),
        Expectation::EqualsJson(want) => shorten(&want.to_string()),
        Expectation::EqualsStr(t) => {
            shorten(&serde_json::Value::String(t.render(vars)).to_string())
        }
        Expectation::Matches(re) => format!("a match of /{}/", shorten(re.as_str())),
    };
    format!(
        "{}: expected {expected}, got {}",
        c.pointer,
        shorten(&got.to_string())
    )
}

/// The most characters of a value a failure shows.
const SHOWN: usize = 40;

fn shorten(s: &str) -> String {
    match s.char_indices().nth(SHOWN) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

/// The text of a JSON scalar (strings without quotes); objects, arrays and null are not
/// values a later request can use.
fn scalar_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    #[test]
    fn checks_status_fields_and_extracts() {
        let s = Scenario::builtin();
        let login = &s.steps[1];
        let mut vars = vec![String::new(); s.slot_count];
        let h = HeaderMap::new();
        assert_eq!(
            check_response(login, 500, &h, b"{}", &mut vars),
            Err(FailureKind::Status(500))
        );
        assert_eq!(
            check_response(login, 200, &h, b"<html>", &mut vars),
            Err(FailureKind::NotJson)
        );
        assert_eq!(
            check_response(login, 200, &h, b"{\"token\":\"x\"}", &mut vars),
            Err(FailureKind::Missing("/access_token".into()))
        );
        check_response(login, 200, &h, b"{\"access_token\":\"abc\"}", &mut vars).unwrap();
        assert!(vars.contains(&"abc".to_string()));
        let verify = &s.steps[2];
        assert_eq!(
            check_response(verify, 200, &h, b"{\"valid\":false}", &mut vars),
            Err(FailureKind::Check(
                "/valid: expected true, got false".into()
            ))
        );
    }

    mod props {
        use super::super::*;
        use crate::scenario::Scenario;
        use proptest::prelude::*;

        const WITH_POINTERS: &str = r#"
name = "p"
[[steps]]
name = "s"
path = "/x"
extract = { a = "/a/0/b", h = { header = "x-h" } }
check = [{ pointer = "/c", matches = "^[0-9]+$" }, { pointer = "/d~1e", equals = "{{seq}}" }]
"#;

        proptest! {
            #[test]
            fn checking_any_body_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200), status in 0u16..1000) {
                for s in [Scenario::builtin(), Scenario::parse(WITH_POINTERS, "p.toml").unwrap()] {
                    for step in &s.steps {
                        let mut vars = vec![String::new(); s.slot_count];
                        let _ = check_response(step, status, &HeaderMap::new(), &body, &mut vars);
                    }
                }
            }

            #[test]
            fn checking_any_json_never_panics(j in json_value(), ptr in "(/[a-z0-9~]{0,3}){0,4}") {
                let text = format!(
                    "name = \"p\"\n[[steps]]\nname = \"s\"\npath = \"/\"\nextract = {{ v = \"{ptr}\" }}\ncheck = [{{ pointer = \"{ptr}\", exists = true }}]\n"
                );
                let s = Scenario::parse(&text, "p.toml").unwrap();
                let bytes = serde_json::to_vec(&j).unwrap();
                let mut vars = vec![String::new(); s.slot_count];
                let r = check_response(&s.steps[0], 200, &HeaderMap::new(), &bytes, &mut vars);
                // Either the pointer resolves (to a scalar or not) or it is reported missing.
                if j.pointer(&ptr).is_none() {
                    prop_assert!(matches!(r, Err(FailureKind::Missing(_))));
                }
            }
        }

        fn json_value() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                "[a-z]{0,4}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4)
                        .prop_map(serde_json::Value::from),
                    proptest::collection::btree_map("[a-z0-9~]{0,3}", inner, 0..4)
                        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }
    }
}
