//! The checks of the keys that browser-style login flows need: a step's `url` (another
//! host) against its `path`, `follow` against its `expect`, and the `jwt` claim sources
//! of extracts and checks. Each problem is reported at `file:line:col`.

use std::collections::BTreeMap;
use std::sync::Arc;

use toml::Spanned;

use super::Diagnostics;
use crate::scenario::parse::{RawCheck, RawStep};
use crate::scenario::{JwtClaim, StatusSet};

/// Where a step's request goes: `path` (appended to the target) or `url` (absolute).
pub(in crate::scenario) enum StepTarget<'r> {
    Path(&'r Spanned<String>),
    Url(&'r Spanned<String>),
}

impl Diagnostics<'_> {
    /// Exactly one of `path` and `url`; a `url` that is absolute (or starts with a
    /// variable that holds the scheme and host).
    pub(in crate::scenario) fn step_target<'r>(
        &mut self,
        rs: &'r RawStep,
    ) -> Option<StepTarget<'r>> {
        match (&rs.path, &rs.url) {
            (Some(p), None) => {
                self.path(p);
                Some(StepTarget::Path(p))
            }
            (None, Some(u)) => {
                let text = u.get_ref();
                let absolute = text.starts_with("http://")
                    || text.starts_with("https://")
                    || text.starts_with("{{");
                if !absolute {
                    self.err(
                        u.span().start,
                        format!("url `{text}` must be absolute (`http://` or `https://`, or a variable holding them such as `{{{{target}}}}/...`); a path on the target is `path = \"/...\"`"),
                    );
                    return None;
                }
                Some(StepTarget::Url(u))
            }
            (Some(_), Some(u)) => {
                self.err(
                    u.span().start,
                    "a step gives `path` (appended to --target) or `url` (absolute), not both",
                );
                None
            }
            (None, None) => {
                self.err(
                    rs.name.span().start,
                    format!(
                        "step `{}` needs `path = \"/...\"` (appended to --target) or `url = \"https://...\"` (absolute)",
                        rs.name.get_ref().trim()
                    ),
                );
                None
            }
        }
    }

    /// `follow = true` checks the response after the redirects: an `expect` of redirect
    /// statuses only could never pass.
    pub(in crate::scenario) fn follow(&mut self, rs: &RawStep, expect: &StatusSet) -> bool {
        let Some(f) = &rs.follow else {
            return false;
        };
        let follow = *f.get_ref();
        if follow && expect.0.iter().all(|&(lo, hi)| lo >= 300 && hi <= 399) {
            let at = rs
                .expect
                .as_ref()
                .map_or(f.span().start, |e| e.span().start);
            self.err(
                at,
                format!("`follow = true` checks the response after the redirects, which is never a redirect: `expect = {expect}` cannot pass (drop `follow` to check the redirect itself, and extract its `location` header)"),
            );
        }
        follow
    }

    /// `{ jwt = "var", claim = "name" }` in an extract table (at `at`): `var` must be a
    /// variable already defined (`names`).
    pub(in crate::scenario) fn jwt_source(
        &mut self,
        at: usize,
        what: &str,
        table: &toml::value::Table,
        names: &BTreeMap<String, usize>,
    ) -> Option<JwtClaim> {
        if let Some(bad) = table
            .keys()
            .find(|k| !["jwt", "claim", "key"].contains(&k.as_str()))
        {
            self.err(
                at,
                format!("unknown key `{bad}` in {what}: a claim is read with {{ jwt = \"variable\", claim = \"name\" }} (and `key` to verify an HS256 signature)"),
            );
            return None;
        }
        let text = |k: &str| table.get(k).and_then(toml::Value::as_str);
        let (Some(var), Some(claim)) = (text("jwt"), text("claim")) else {
            self.err(
                at,
                format!("{what} needs `jwt = \"variable\"` and `claim = \"name\"`, both strings"),
            );
            return None;
        };
        let key = match table.get("key") {
            None => None,
            Some(toml::Value::String(k)) if !k.is_empty() => Some(k.as_str()),
            Some(_) => {
                self.err(
                    at,
                    format!("`key` in {what} must be the HMAC secret, a non-empty string"),
                );
                return None;
            }
        };
        self.jwt_claim(at, what, var, claim, names)
            .map(|j| j.with_key(key))
    }

    /// The JWT variable `var` and its `claim`, checked against the names in scope.
    fn jwt_claim(
        &mut self,
        at: usize,
        what: &str,
        var: &str,
        claim: &str,
        names: &BTreeMap<String, usize>,
    ) -> Option<JwtClaim> {
        let Some(&slot) = names.get(var) else {
            self.err(
                at,
                format!("{what} reads the JWT in `{var}`, which is not defined yet: extract the token in an earlier step (e.g. `extract = {{ {var} = \"/access_token\" }}`)"),
            );
            return None;
        };
        if claim.is_empty() {
            self.err(at, format!("{what}: `claim` must not be empty"));
            return None;
        }
        Some(JwtClaim {
            var: var.into(),
            slot,
            claim: claim.into(),
            key: None,
        })
    }

    /// A check's subject: its `pointer`, or the claim of its `jwt`. `Err` after an
    /// error was reported.
    pub(in crate::scenario) fn check_subject(
        &mut self,
        c: &Spanned<RawCheck>,
        names: &BTreeMap<String, usize>,
    ) -> Result<(Arc<str>, Option<JwtClaim>), ()> {
        let at = c.span().start;
        let rc = c.get_ref();
        match (&rc.pointer, &rc.jwt, &rc.claim) {
            (Some(p), None, None) => Ok((p.as_str().into(), None)),
            (None, Some(var), Some(claim)) => {
                let j = self
                    .jwt_claim(at, "this check", var, claim, names)
                    .ok_or(())?
                    .with_key(rc.key.as_deref());
                Ok((format!("jwt {var} claim {claim}").into(), Some(j)))
            }
            (None, Some(_), None) => {
                self.err(at, "a `jwt` check needs `claim = \"name\"`");
                Err(())
            }
            _ => {
                self.err(
                    at,
                    "a check reads `pointer = \"/json/pointer\"` or `jwt = \"variable\", claim = \"name\"` (one of them)",
                );
                Err(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::Scenario;

    /// The one error of `step` (the TOML of one step's keys after its name), as text.
    fn error(step: &str) -> String {
        let text = format!("name = \"t\"\n[[steps]]\nname = \"a\"\npath = \"/a\"\nextract = {{ token = \"/t\" }}\n[[steps]]\nname = \"s\"\n{step}\n");
        let e = Scenario::parse(&text, "t.toml").unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        e.to_string()
    }

    #[test]
    fn every_new_key_is_validated_at_its_position() {
        let e = error("path = \"/x\"\nurl = \"http://h/x\"");
        assert!(e.starts_with("t.toml:9:7: a step gives `path`"), "{e}");
        let e = error("method = \"GET\"");
        assert!(e.starts_with("t.toml:7:8: step `s` needs `path"), "{e}");
        let e = error("url = \"/relative\"");
        assert!(
            e.starts_with("t.toml:8:7: url `/relative` must be absolute"),
            "{e}"
        );
        let e = error("path = \"/x\"\nfollow = true\nexpect = 302");
        assert!(
            e.starts_with("t.toml:10:10: `follow = true` checks the response after"),
            "{e}"
        );
        let e = error("path = \"/x?e={{token|shout}}\"");
        assert!(
            e.contains("t.toml:8:")
                && e.contains("unknown function `shout`: known are totp, lower"),
            "{e}"
        );
        let e = error("path = \"/x\"\nextract = { exp = { jwt = \"later\", claim = \"exp\" } }");
        assert!(
            e.starts_with(
                "t.toml:9:19: extract `exp` reads the JWT in `later`, which is not defined yet"
            ),
            "{e}"
        );
        let e =
            error("path = \"/x\"\ncheck = [{ jwt = \"nope\", claim = \"exp\", exists = true }]");
        assert!(
            e.starts_with("t.toml:9:10: this check reads the JWT in `nope`"),
            "{e}"
        );
        let e = error("path = \"/x\"\ncheck = [{ pointer = \"/a\", jwt = \"token\", claim = \"exp\", exists = true }]");
        assert!(e.contains("one of them"), "{e}");
        let e = error("path = \"/x\"\nextract = { v = { jwt = \"token\" } }");
        assert!(
            e.contains("needs `jwt = \"variable\"` and `claim = \"name\"`"),
            "{e}"
        );
    }

    #[test]
    fn new_keys_compile() {
        let s = Scenario::parse(
            "name = \"t\"\n[[steps]]\nname = \"a\"\nurl = \"{{target}}/a?s={{state|urlencode}}\"\nfollow = true\nextract = { token = \"/t\", exp = { jwt = \"token\", claim = \"exp\" } }\ncheck = [{ jwt = \"token\", claim = \"iss\", equals = \"x\" }]\n",
            "t.toml",
        )
        .unwrap();
        let st = &s.steps[0];
        assert!(st.follow && st.url.is_some() && st.general());
        // The claim is read after the token it reads, whatever the names' order.
        let vars: Vec<&str> = st.extract.iter().map(|e| e.var.as_str()).collect();
        assert_eq!(vars, ["token", "exp"]);
        assert!(st.checks[0].jwt.is_some());
        assert!(s.uses_auth_builtins());
    }
}
