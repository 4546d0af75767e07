//! Which scenario step registers, which logs in, which are protected, and which carry
//! the API key: the probes need to know, and scenarios do not say, so it is inferred
//! from what the steps do (documented in `docs/check.md`):
//!
//! * **credential steps** expect a 2xx and send a JSON object body with a password field
//!   (a key containing `password`, or `pass`, `passwd`, `pwd`);
//! * with two or more, the first is **register** and the next **login** (a flow creates
//!   an account before it uses it); with one, its path decides (`login`, `signin`,
//!   `session`, `token` → login, anything else → register);
//! * **protected** steps expect a 2xx and send an `Authorization` header built from a
//!   value an earlier step extracted (a token);
//! * **API key** steps send a header whose template reads `{{api_key}}`.
//!
//! The token probes read the access token from the step that extracts the value the
//! first protected step sends (usually login).

use reqwest::header::{HeaderName, AUTHORIZATION};
use serde_json::Value;

use crate::scenario::{Body, ExtractSource, Scenario, Step, SLOT_API_KEY};

use super::RolesSummary;

/// A protected step and where its token goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    pub step: usize,
    /// The variable slot holding the token (read by the Authorization header).
    pub slot: usize,
}

/// Where the access token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSource {
    pub step: usize,
    /// JSON pointer of the token in that step's response.
    pub pointer: String,
    pub slot: usize,
}

/// Body fields of the credential steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    pub password: String,
    /// The account identifier (email, username), when one is recognised.
    pub identity: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    pub register: Option<usize>,
    pub login: Option<usize>,
    pub protected: Vec<Protected>,
    /// Steps sending the API key, and the header it goes in.
    pub api_key: Vec<(usize, HeaderName)>,
    pub token: Option<TokenSource>,
    pub register_fields: Option<Fields>,
    pub login_fields: Option<Fields>,
}

impl Roles {
    pub fn detect(s: &Scenario) -> Self {
        let mut roles = Roles::default();
        let credential: Vec<(usize, Fields)> = s
            .steps
            .iter()
            .enumerate()
            .filter(|(_, st)| expects_success(st))
            .filter_map(|(i, st)| body_fields(st, s.slot_count).map(|f| (i, f)))
            .collect();
        match credential.as_slice() {
            [] => {}
            [(i, f)] => {
                if is_login_path(&s.steps[*i]) {
                    roles.login = Some(*i);
                    roles.login_fields = Some(f.clone());
                } else {
                    roles.register = Some(*i);
                    roles.register_fields = Some(f.clone());
                }
            }
            [(r, rf), (l, lf), ..] => {
                roles.register = Some(*r);
                roles.register_fields = Some(rf.clone());
                roles.login = Some(*l);
                roles.login_fields = Some(lf.clone());
            }
        }

        for (i, st) in s.steps.iter().enumerate() {
            if let Some((name, _)) = st
                .headers
                .iter()
                .find(|(_, t)| t.slots().any(|x| x == SLOT_API_KEY))
            {
                roles.api_key.push((i, name.clone()));
            }
            if Some(i) == roles.register || Some(i) == roles.login || !expects_success(st) {
                continue;
            }
            let token_slot = st
                .headers
                .iter()
                .filter(|(h, _)| *h == AUTHORIZATION)
                .flat_map(|(_, t)| t.slots())
                .find(|slot| extractor(s, *slot, i).is_some());
            if let Some(slot) = token_slot {
                roles.protected.push(Protected { step: i, slot });
            }
        }
        if let Some(p) = roles.protected.first() {
            if let Some((step, pointer)) = extractor(s, p.slot, p.step) {
                roles.token = Some(TokenSource {
                    step,
                    pointer,
                    slot: p.slot,
                });
            }
        }
        roles
    }

    pub fn summary(&self, s: &Scenario) -> RolesSummary {
        let name = |i: usize| s.steps.get(i).map(|st| st.name.to_string());
        RolesSummary {
            register: self.register.and_then(name),
            login: self.login.and_then(name),
            protected: self.protected.iter().filter_map(|p| name(p.step)).collect(),
            api_key: self.api_key.iter().filter_map(|(i, _)| name(*i)).collect(),
        }
    }
}

/// Whether the step's `expect` accepts some 2xx (steps that expect a failure, like
/// "reuse a spent token → 401", are checks of their own, not roles).
fn expects_success(st: &Step) -> bool {
    (200..300).any(|c| st.expect.contains(c))
}

fn is_login_path(st: &Step) -> bool {
    let path = st.path.render(&[]).to_ascii_lowercase();
    ["login", "signin", "sign-in", "session", "token"]
        .iter()
        .any(|w| path.contains(w))
}

/// The last step before `before` that extracts into `slot` with a JSON pointer.
fn extractor(s: &Scenario, slot: usize, before: usize) -> Option<(usize, String)> {
    s.steps
        .iter()
        .enumerate()
        .take(before)
        .rev()
        .find_map(|(i, st)| {
            st.extract.iter().find_map(|e| match &e.source {
                ExtractSource::Pointer(p) if e.slot == slot => Some((i, p.to_string())),
                _ => None,
            })
        })
}

/// The password and identity fields of a JSON object body, if it has a password field.
fn body_fields(st: &Step, slot_count: usize) -> Option<Fields> {
    let body = st.body.as_ref().filter(|b| b.is_json())?;
    // Render with placeholder values: only the keys matter.
    let vars = vec!["x".to_string(); slot_count];
    let obj = render_json(body, &vars)?;
    let obj = obj.as_object()?;
    let password = obj.keys().find(|k| is_password_key(k))?.clone();
    let identity = obj
        .keys()
        .find(|k| {
            let k = k.to_ascii_lowercase();
            k.contains("email") || k == "username" || k == "login" || k == "user"
        })
        .cloned();
    Some(Fields { password, identity })
}

fn is_password_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k.contains("password") || matches!(k.as_str(), "pass" | "passwd" | "pwd")
}

/// Renders a body and parses it as JSON.
pub fn render_json(body: &Body, vars: &[String]) -> Option<Value> {
    let mut out = Vec::new();
    let mut scratch = String::new();
    body.render_into(vars, &mut out, &mut scratch);
    serde_json::from_slice(&out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scenario() {
        let s = Scenario::builtin();
        let r = Roles::detect(&s);
        assert_eq!(r.register, Some(0));
        assert_eq!(r.login, Some(1));
        assert_eq!(
            r.protected.iter().map(|p| p.step).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(r.api_key.len(), 4);
        let t = r.token.unwrap();
        assert_eq!((t.step, t.pointer.as_str()), (1, "/access_token"));
        let f = r.login_fields.unwrap();
        assert_eq!(f.password, "password");
        assert_eq!(f.identity.as_deref(), Some("email"));
    }

    #[test]
    fn single_credential_step_is_judged_by_its_path() {
        let text = r#"
name = "t"
[vars]
pw = "{{random}}"
[[steps]]
name = "signin"
method = "POST"
path = "/api/v1/sessions"
body = { user = "u{{seq}}", pwd = "{{pw}}" }
extract = { tok = "/token" }
[[steps]]
name = "me"
path = "/api/v1/me"
headers = { Authorization = "Token {{tok}}" }
[[steps]]
name = "denied"
path = "/api/v1/me"
headers = { Authorization = "Token {{tok}}" }
expect = 401
"#;
        let s = Scenario::parse(text, "t.toml").unwrap();
        let r = Roles::detect(&s);
        assert_eq!((r.register, r.login), (None, Some(0)));
        assert_eq!(
            r.protected.len(),
            1,
            "a step expecting 401 is not protected"
        );
        assert_eq!(r.login_fields.unwrap().identity.as_deref(), Some("user"));
        assert!(r.api_key.is_empty());
    }
}
