//! Which scenario step registers, which logs in, which are protected (and by what
//! credential), which refreshes and which logs out, and which carry the API key.
//!
//! A step's `role = "..."` in the scenario decides; for every role no step declares, it
//! is inferred from what the steps do (documented in `docs/check.md`, and printed with
//! the reasons by `check --explain-roles`):
//!
//! * **credential steps** expect a 2xx and send a body with a password field (a key
//!   containing `password`, or `pass`, `passwd`, `pwd`), as JSON, as a `form`, or as a
//!   string body that is JSON or form-encoded;
//! * with two or more, the first is **register** and the next **login** (a flow creates
//!   an account before it uses it); with one, its path decides (`login`, `signin`,
//!   `session`, `token` → login, anything else → register);
//! * with no password body, a step that authenticates with HTTP Basic (`basic`) and
//!   extracts a value (a client-credentials token request) is the **login**;
//! * **refresh** and **logout** steps expect a 2xx and have `refresh`, or `logout`,
//!   `signout` or `revoke`, in their path;
//! * **protected** steps expect a 2xx and send a header built from a value an earlier
//!   step extracted (a token), or, when the scenario keeps cookies and the login extracts
//!   no token, come after the login: they are authenticated by the session cookie (the
//!   one the scenario extracts with `cookie = "..."`, else the one the login sets);
//! * **API key** steps send a header whose template reads `{{api_key}}`.
//!
//! The token probes read the access token from the step that extracts the value the
//! first token-protected step sends (usually login).

use reqwest::header::{HeaderName, AUTHORIZATION};
use serde_json::Value;

use crate::scenario::{Body, ExtractSource, Role, Scenario, Step, SLOT_API_KEY};

use super::RolesSummary;

/// How a protected step proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// A header (usually `Authorization`) rendered from a value an earlier step extracted.
    Header {
        name: HeaderName,
        /// The variable slot holding the token.
        slot: usize,
        /// The scheme when the header is `Authorization: <scheme> <token>` (`Bearer`,
        /// `JWT`, `Token`, ...), read from the step's template; `None` for a custom
        /// header (`X-Auth-Token: <token>`) or a bare `Authorization: <token>`.
        scheme: Option<String>,
    },
    /// The session cookie in the jar; `None` when the scenario does not name it (it is
    /// then the cookie the login sets, found at run time).
    Cookie { name: Option<String> },
}

/// A protected step and its credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    pub step: usize,
    pub auth: Auth,
}

impl Protected {
    /// The token's slot, header and scheme, when the credential is a token in a header.
    pub fn token(&self) -> Option<(usize, &HeaderName, Option<&str>)> {
        match &self.auth {
            Auth::Header { name, slot, scheme } => Some((*slot, name, scheme.as_deref())),
            Auth::Cookie { .. } => None,
        }
    }
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

/// One role given to a step, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub step: String,
    pub role: &'static str,
    pub why: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    pub register: Option<usize>,
    pub login: Option<usize>,
    pub protected: Vec<Protected>,
    pub refresh: Option<usize>,
    pub logout: Option<usize>,
    /// Steps sending the API key, and the header it goes in.
    pub api_key: Vec<(usize, HeaderName)>,
    pub token: Option<TokenSource>,
    pub register_fields: Option<Fields>,
    pub login_fields: Option<Fields>,
    /// Every role given, with the reason, in step order.
    pub explanations: Vec<Explanation>,
}

impl Roles {
    pub fn detect(s: &Scenario) -> Self {
        let mut roles = Roles::default();
        let declared = |r: Role| s.steps.iter().position(|st| st.role == Some(r));
        let explicit = |i: usize| s.steps[i].role.is_some();
        let said = |i: usize| {
            format!(
                "`role = \"{}\"` in the scenario",
                role_name(s.steps[i].role)
            )
        };

        // Register and login.
        roles.register = declared(Role::Register);
        roles.login = declared(Role::Login);
        if let Some(i) = roles.register {
            roles.register_fields = body_fields(&s.steps[i], s.slot_count);
            roles.explain(s, i, "register", said(i));
        }
        if let Some(i) = roles.login {
            roles.login_fields = body_fields(&s.steps[i], s.slot_count);
            roles.explain(s, i, "login", said(i));
        }
        if roles.register.is_none() || roles.login.is_none() {
            let credential: Vec<(usize, Fields)> = s
                .steps
                .iter()
                .enumerate()
                .filter(|(i, st)| !explicit(*i) && expects_success(st))
                .filter_map(|(i, st)| body_fields(st, s.slot_count).map(|f| (i, f)))
                .collect();
            let why = |f: &Fields, what: &str| {
                format!(
                    "expects success and sends a password (`{}`){what}",
                    f.password
                )
            };
            let take_register = |roles: &mut Roles, i: usize, f: &Fields, what: &str| {
                if roles.register.is_none() {
                    roles.register = Some(i);
                    roles.register_fields = Some(f.clone());
                    roles.explain(s, i, "register", why(f, what));
                }
            };
            match credential.as_slice() {
                [] => {}
                [(i, f)] => {
                    if is_login_path(&s.steps[*i]) || roles.register.is_some() {
                        if roles.login.is_none() {
                            roles.login = Some(*i);
                            roles.login_fields = Some(f.clone());
                            roles.explain(
                                s,
                                *i,
                                "login",
                                why(f, ", the only such step, and its path names a login"),
                            );
                        }
                    } else {
                        take_register(
                            &mut roles,
                            *i,
                            f,
                            ", the only such step, and its path names no login",
                        );
                    }
                }
                [(r, rf), (l, lf), ..] => {
                    take_register(&mut roles, *r, rf, ", the first of several");
                    if roles.login.is_none() {
                        let (i, f) = if Some(*r) == roles.register {
                            (*l, lf)
                        } else {
                            (*r, rf)
                        };
                        roles.login = Some(i);
                        roles.login_fields = Some(f.clone());
                        roles.explain(s, i, "login", why(f, ", after the register step"));
                    }
                }
            }
        }
        if roles.login.is_none() {
            if let Some(i) = s.steps.iter().enumerate().position(|(i, st)| {
                !explicit(i)
                    && Some(i) != roles.register
                    && expects_success(st)
                    && st.basic.is_some()
                    && !st.extract.is_empty()
            }) {
                roles.login = Some(i);
                roles.explain(
                    s,
                    i,
                    "login",
                    "expects success, authenticates with HTTP Basic (client credentials) and extracts a value".into(),
                );
            }
        }

        // Refresh and logout.
        let taken = |roles: &Roles, i: usize| Some(i) == roles.register || Some(i) == roles.login;
        for (role, kind, words) in [
            (Role::Refresh, "refresh", &["refresh"][..]),
            (
                Role::Logout,
                "logout",
                &["logout", "log-out", "signout", "sign-out", "revoke"][..],
            ),
        ] {
            let found = match declared(role) {
                Some(i) => Some((i, said(i))),
                None => s
                    .steps
                    .iter()
                    .enumerate()
                    .position(|(i, st)| {
                        !explicit(i)
                            && !taken(&roles, i)
                            && expects_success(st)
                            && path_has(st, words)
                    })
                    .map(|i| (i, format!("expects success and its path names a {kind}"))),
            };
            if let Some((i, why)) = found {
                match role {
                    Role::Refresh => roles.refresh = Some(i),
                    _ => roles.logout = Some(i),
                }
                roles.explain(s, i, kind, why);
            }
        }

        // API keys.
        for (i, st) in s.steps.iter().enumerate() {
            if let Some((name, _)) = st
                .headers
                .iter()
                .find(|(_, t)| t.slots().any(|x| x == SLOT_API_KEY))
            {
                roles.api_key.push((i, name.clone()));
            }
        }

        // Protected steps.
        let any_declared = declared(Role::Protected).is_some();
        let login_token = roles.login.is_some_and(|l| {
            s.steps[l]
                .extract
                .iter()
                .any(|e| matches!(e.source, ExtractSource::Pointer(_)))
        });
        for (i, st) in s.steps.iter().enumerate() {
            let is_declared = st.role == Some(Role::Protected);
            if !is_declared
                && (any_declared
                    || explicit(i)
                    || taken(&roles, i)
                    || Some(i) == roles.refresh
                    || Some(i) == roles.logout
                    || !expects_success(st))
            {
                continue;
            }
            let header = header_credential(s, i);
            let cookie = || {
                let name = cookie_extract(s, i);
                let after_login = roles.login.is_some_and(|l| l < i);
                let why = match &name {
                    Some(n) => format!("comes after the login and is sent with the cookie `{n}` the scenario extracts"),
                    None => "comes after a login that extracts no token, and the scenario keeps cookies: its credential is the session cookie the login sets".into(),
                };
                (s.cookies && after_login && (name.is_some() || !login_token))
                    .then_some((Auth::Cookie { name }, why))
            };
            let found = match (header, is_declared) {
                (Some((auth, why)), true) => Some((auth, format!("{}; {why}", said(i)))),
                (Some(x), false) => Some(x),
                (None, declared) => match cookie() {
                    Some((auth, why)) if declared => Some((auth, format!("{}; {why}", said(i)))),
                    Some(x) => Some(x),
                    None if declared => Some((
                        Auth::Cookie { name: cookie_extract(s, i) },
                        format!("{}; no token header found, so its credential is taken to be the session cookie", said(i)),
                    )),
                    None => None,
                },
            };
            if let Some((auth, why)) = found {
                roles.protected.push(Protected { step: i, auth });
                roles.explain(s, i, "protected", why);
            }
        }
        let first_token = roles
            .protected
            .iter()
            .find_map(|p| p.token().map(|(slot, _, _)| (p.step, slot)));
        if let Some((step, slot)) = first_token {
            if let Some((src, pointer)) = extractor(s, slot, step) {
                roles.token = Some(TokenSource {
                    step: src,
                    pointer,
                    slot,
                });
            }
        }
        // No token-protected step (client credentials and introspection): the token is
        // what the login extracts from its answer, so the token-content probes still run.
        if roles.token.is_none() {
            roles.token = roles.login.and_then(|l| {
                let ex = &s.steps[l].extract;
                let pick = ex
                    .iter()
                    .filter(|e| matches!(e.source, ExtractSource::Pointer(_)))
                    .min_by_key(|e| !e.var.to_ascii_lowercase().contains("token"))?;
                match &pick.source {
                    ExtractSource::Pointer(p) => Some(TokenSource {
                        step: l,
                        pointer: p.to_string(),
                        slot: pick.slot,
                    }),
                    _ => None,
                }
            });
        }
        roles.explanations.sort_by_key(|e| {
            s.steps
                .iter()
                .position(|st| *st.name == *e.step)
                .unwrap_or(usize::MAX)
        });
        roles
    }

    fn explain(&mut self, s: &Scenario, i: usize, role: &'static str, why: String) {
        self.explanations.push(Explanation {
            step: s.steps[i].name.to_string(),
            role,
            why,
        });
    }

    /// The session cookie's name, when it is known before the run.
    pub fn session_cookie(&self) -> Option<&str> {
        self.protected.iter().find_map(|p| match &p.auth {
            Auth::Cookie { name } => name.as_deref(),
            Auth::Header { .. } => None,
        })
    }

    /// Whether some protected step is authenticated by a cookie.
    pub fn cookie_session(&self) -> bool {
        self.protected
            .iter()
            .any(|p| matches!(p.auth, Auth::Cookie { .. }))
    }

    pub fn summary(&self, s: &Scenario) -> RolesSummary {
        let name = |i: usize| s.steps.get(i).map(|st| st.name.to_string());
        RolesSummary {
            register: self.register.and_then(name),
            login: self.login.and_then(name),
            protected: self.protected.iter().filter_map(|p| name(p.step)).collect(),
            api_key: self.api_key.iter().filter_map(|(i, _)| name(*i)).collect(),
            refresh: self.refresh.and_then(name),
            logout: self.logout.and_then(name),
            session_cookie: self.cookie_session().then(|| {
                self.session_cookie()
                    .unwrap_or("(set by the login)")
                    .to_string()
            }),
        }
    }

    /// What `check --explain-roles` prints: each role with its reason, then what no step
    /// has.
    pub fn explain_text(&self, s: &Scenario) -> String {
        let mut out = format!("roles of scenario {} ({}):\n", s.name, s.source);
        for e in &self.explanations {
            out.push_str(&format!("  {:<10} {}: {}\n", e.role, e.step, e.why));
        }
        if let Some((_, header)) = self.api_key.first() {
            let steps: Vec<&str> = self
                .api_key
                .iter()
                .map(|(i, _)| &*s.steps[*i].name)
                .collect();
            out.push_str(&format!(
                "  {:<10} {}: send {{{{api_key}}}} in {header}\n",
                "api key",
                steps.join(", ")
            ));
        }
        if let Some(t) = &self.token {
            out.push_str(&format!(
                "  {:<10} {} {}: the value the first token-protected step sends (else the login extracts)\n",
                "token", s.steps[t.step].name, t.pointer
            ));
        }
        let missing: Vec<&str> = [
            ("register", self.register.is_none()),
            ("login", self.login.is_none()),
            ("protected", self.protected.is_empty()),
            ("refresh", self.refresh.is_none()),
            ("logout", self.logout.is_none()),
        ]
        .iter()
        .filter(|(_, m)| *m)
        .map(|(r, _)| *r)
        .collect();
        if !missing.is_empty() {
            out.push_str(&format!(
                "  no step is: {} (set `role = \"...\"` on a step to choose one)\n",
                missing.join(", ")
            ));
        }
        out
    }
}

fn role_name(r: Option<Role>) -> &'static str {
    r.map_or("", Role::as_str)
}

/// Whether the step's `expect` accepts some 2xx or 3xx (steps that expect a failure,
/// like "reuse a spent token → 401", are checks of their own, not roles). A 3xx counts:
/// a form login answers with a redirect.
fn expects_success(st: &Step) -> bool {
    (200..400).any(|c| st.expect.contains(c))
}

fn is_login_path(st: &Step) -> bool {
    path_has(st, &["login", "signin", "sign-in", "session", "token"])
}

fn path_has(st: &Step, words: &[&str]) -> bool {
    let path = match &st.url {
        Some(u) => u.render(&[]),
        None => st.path.render(&[]),
    }
    .to_ascii_lowercase();
    words.iter().any(|w| path.contains(w))
}

/// The header and token slot step `i` sends a token in (a value an earlier step
/// extracted), e.g. a logout's `Authorization: Bearer {{token}}`.
pub fn header_token(s: &Scenario, i: usize) -> Option<(HeaderName, usize)> {
    match header_credential(s, i)?.0 {
        Auth::Header { name, slot, .. } => Some((name, slot)),
        Auth::Cookie { .. } => None,
    }
}

/// A header of step `i` rendered from a value an earlier step extracted: Authorization
/// first, then any other.
fn header_credential(s: &Scenario, i: usize) -> Option<(Auth, String)> {
    let st = &s.steps[i];
    let mut headers: Vec<&(HeaderName, crate::scenario::template::Template)> = st
        .headers
        .iter()
        .filter(|(h, _)| *h == AUTHORIZATION)
        .collect();
    headers.extend(st.headers.iter().filter(|(h, _)| *h != AUTHORIZATION));
    headers.into_iter().find_map(|(h, t)| {
        let slot = t.slots().find(|slot| extractor(s, *slot, i).is_some())?;
        let (src, pointer) = extractor(s, slot, i)?;
        // `Bearer {{tok}}` renders with an empty token as `Bearer `: its first word is
        // the scheme when a token follows it.
        let rendered = t.render(&vec![String::new(); s.slot_count]);
        let scheme = (*h == AUTHORIZATION)
            .then(|| rendered.split_whitespace().next().map(str::to_string))
            .flatten()
            .filter(|w| rendered.trim_start().len() > w.len());
        Some((
            Auth::Header {
                name: h.clone(),
                slot,
                scheme,
            },
            format!(
                "expects success and sends {h} with the value step {} extracts at {pointer}",
                s.steps[src].name
            ),
        ))
    })
}

/// The name of the last cookie a step before `before` extracts.
fn cookie_extract(s: &Scenario, before: usize) -> Option<String> {
    s.steps.iter().take(before).rev().find_map(|st| {
        st.extract.iter().find_map(|e| match &e.source {
            ExtractSource::Cookie(n) => Some(n.to_string()),
            _ => None,
        })
    })
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

/// The body's fields rendered with placeholder values (only the keys matter), when it
/// is a JSON object or form-encoded: `(key, template text)` pairs.
pub fn body_keys(body: &Body, slot_count: usize) -> Option<Vec<String>> {
    let vars = vec!["x".to_string(); slot_count];
    let mut out = Vec::new();
    let mut scratch = String::new();
    body.render_into(&vars, &mut out, &mut scratch);
    match body {
        Body::Json(_) => serde_json::from_slice::<Value>(&out)
            .ok()?
            .as_object()
            .map(|o| o.keys().cloned().collect()),
        Body::Form(_) => Some(form_keys(&out)),
        Body::Text(_) => match serde_json::from_slice::<Value>(&out) {
            Ok(v) => v.as_object().map(|o| o.keys().cloned().collect()),
            Err(_) if out.contains(&b'=') => Some(form_keys(&out)),
            Err(_) => None,
        },
    }
}

fn form_keys(bytes: &[u8]) -> Vec<String> {
    form_urlencoded::parse(bytes)
        .map(|(k, _)| k.into_owned())
        .collect()
}

/// The password and identity fields of a step's body, if it has a password field.
fn body_fields(st: &Step, slot_count: usize) -> Option<Fields> {
    let keys = body_keys(st.body.as_ref()?, slot_count)?;
    let password = keys.iter().find(|k| is_password_key(k))?.clone();
    let identity = keys
        .iter()
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
#[path = "roles_tests.rs"]
mod tests;
