//! Step three of loading: turning the raw data from `parse` into the runtime [`Scenario`]
//! and [`Step`]s. Templates are resolved to variable slots (built-ins first, then
//! `[vars]`, then values extracted by earlier steps), scenario headers are merged into each
//! step's, JSON and form bodies are pre-serialized around their variable parts, the
//! `[data]` file is loaded (its columns take the slots after the built-ins), and the
//! built-ins that any template reads are recorded so flows generate only those.
//!
//! Every problem is reported through `validate`, as the compiler meets it; a scenario with
//! any problem is never returned.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use reqwest::header::HeaderName;
use toml::Spanned;

use super::parse::{RawCheck, RawScenario, RawStep};
use super::template::{self, Template};
use super::validate::{CheckSpec, Diagnostics, StepTarget};
use super::{
    Basic, Body, Check, Data, Expectation, Extract, FormPart, JsonPart, Scenario, ScenarioErrors,
    Step, BUILTINS, SLOT_API_KEY,
};

/// Compiles a parsed scenario; `text` and `file` place its errors.
pub(super) fn compile(
    raw: RawScenario,
    text: &str,
    file: &str,
    external: &[(String, String)],
) -> Result<Scenario, ScenarioErrors> {
    let mut c = Compiler {
        external,
        diag: Diagnostics::new(text, file),
        file,
        uses_api_key: false,
        builtins_used: [false; BUILTINS.len()],
        data_failed: false,
    };
    let scenario = c.scenario(raw);
    c.diag.finish().map(|()| scenario)
}

struct Compiler<'a> {
    diag: Diagnostics<'a>,
    /// `--var NAME=VALUE` and `AUTHBENCH_VAR_NAME`: they define variables, and win over
    /// a `[vars]` entry of the same name.
    external: &'a [(String, String)],
    file: &'a str,
    /// Set when any template reads `{{api_key}}`.
    uses_api_key: bool,
    /// Which built-ins any template reads (the rest are not generated per flow).
    builtins_used: [bool; BUILTINS.len()],
    /// The `[data]` file did not load: its columns are unknown, so a variable that is not
    /// defined elsewhere is not reported (it is likely a column; the file's error is).
    data_failed: bool,
}

/// Names visible to a template, with their slots.
struct Scope {
    names: BTreeMap<String, usize>,
}

impl Compiler<'_> {
    fn template(&mut self, s: &str, span: &Range<usize>, scope: &Scope) -> Option<Template> {
        let raw = match template::parse(s) {
            Ok(r) => r,
            Err(e) => {
                self.diag.template_syntax(s, span, e);
                return None;
            }
        };
        match Template::resolve(&raw, |n| scope.names.get(n).copied()) {
            Ok(t) => {
                self.uses_api_key |= t.slots().any(|s| s == SLOT_API_KEY);
                for slot in t.slots() {
                    if let Some(u) = self.builtins_used.get_mut(slot) {
                        *u = true;
                    }
                }
                Some(t)
            }
            Err(_) if self.data_failed => None,
            Err(v) => {
                self.diag.undefined_variables(&raw, v, span, &scope.names);
                None
            }
        }
    }

    fn scenario(&mut self, raw: RawScenario) -> Scenario {
        let mut scope = Scope {
            names: BUILTINS
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.to_string(), i))
                .collect(),
        };
        let builtin_scope = Scope {
            names: scope.names.clone(),
        };
        let mut slot_count = BUILTINS.len();

        self.diag.scenario_name(&raw.name);

        // The data file's columns come right after the built-ins: `[vars]` may read them.
        let base = Path::new(self.file).parent().unwrap_or(Path::new(""));
        let data = raw.data.as_ref().and_then(|d| {
            let loaded = self.diag.data(d.get_ref(), base);
            self.data_failed = loaded.is_none();
            let (feeder, order) = loaded?;
            let first_slot = slot_count;
            for c in feeder.columns() {
                scope.names.insert(c.clone(), slot_count);
                slot_count += 1;
            }
            Some(Data {
                feeder,
                order,
                first_slot,
            })
        });
        let mut vars = Vec::new();
        let mut var_names = Vec::new();
        // Variables from the command line that the file does not define: constant per run.
        for (k, v) in self.external {
            let in_file = raw.vars.keys().any(|f| f.get_ref() == k);
            if in_file || scope.names.contains_key(k) {
                continue;
            }
            vars.push((slot_count, Template::literal(v.clone())));
            scope.names.insert(k.clone(), slot_count);
            slot_count += 1;
        }
        let vars_scope = Scope {
            names: scope.names.clone(),
        };
        for (k, v) in &raw.vars {
            if data
                .as_ref()
                .is_some_and(|d| d.columns().any(|(c, _)| c == k.get_ref()))
            {
                self.diag.err(
                    k.span().start,
                    format!(
                        "`{}` is a column of the [data] file: a [vars] entry cannot redefine it",
                        k.get_ref()
                    ),
                );
                continue;
            }
            if !self.diag.var_name(k, &builtin_scope.names) {
                continue;
            }
            // Per-flow variables read only built-ins, columns and `--var`s, so their order
            // never matters. A `--var` of the same name replaces the file's value.
            let given = self.external.iter().find(|(n, _)| n == k.get_ref());
            if let Some((_, value)) = given {
                vars.push((slot_count, Template::literal(value.clone())));
            } else if let Some(t) = self.template(v.get_ref(), &v.span(), &vars_scope) {
                vars.push((slot_count, t));
            }
            var_names.push((k.get_ref().clone(), slot_count));
            scope.names.insert(k.get_ref().clone(), slot_count);
            slot_count += 1;
        }
        let cookies = raw.cookies.as_ref().is_none_or(|c| *c.get_ref());

        let mut default_headers = Vec::new();
        for (k, v) in &raw.headers {
            let name = self.diag.header_name(k);
            let t = self.template(v.get_ref(), &v.span(), &scope);
            if let (Some(n), Some(t)) = (name, t) {
                default_headers.push((n, t));
            }
        }

        self.diag.steps_present(&raw.steps);
        let mut seen_names: BTreeMap<String, usize> = BTreeMap::new();
        let mut seen_roles: BTreeMap<&'static str, String> = BTreeMap::new();
        let mut steps = Vec::new();
        for rs in raw.steps.into_inner() {
            let name = self.diag.step_name(&rs.name, &mut seen_names);
            let method = self.diag.method(rs.method.as_ref());

            let (mut path, mut url) = (Template::default(), None);
            match self.diag.step_target(&rs) {
                Some(StepTarget::Path(p)) => {
                    path = self
                        .template(p.get_ref(), &p.span(), &scope)
                        .unwrap_or_default();
                }
                Some(StepTarget::Url(u)) => url = self.template(u.get_ref(), &u.span(), &scope),
                None => {}
            }

            let mut headers: Vec<(HeaderName, Template)> = default_headers.clone();
            for (k, v) in &rs.headers {
                let n = self.diag.header_name(k);
                let t = self.template(v.get_ref(), &v.span(), &scope);
                if let (Some(n), Some(t)) = (n, t) {
                    headers.retain(|(h, _)| *h != n);
                    headers.push((n, t));
                }
            }

            let body = self.request_body(&rs, &scope);
            let content_type = match &body {
                Some(Body::Json(_)) => Some("application/json"),
                Some(Body::Form(_)) => Some("application/x-www-form-urlencoded"),
                _ => None,
            };
            if let Some(ct) = content_type {
                if !headers
                    .iter()
                    .any(|(h, _)| h == reqwest::header::CONTENT_TYPE)
                {
                    headers.push((reqwest::header::CONTENT_TYPE, Template::literal(ct)));
                }
            }
            let basic = self.basic(&rs, &scope, &mut headers);
            let think = rs.think.as_ref().and_then(|t| self.diag.think(t));
            let role = rs.role.as_ref().and_then(|r| {
                let role = self.diag.role(r)?;
                if role != super::Role::Protected {
                    if let Some(first) = seen_roles.get(role.as_str()) {
                        self.diag.err(
                            r.span().start,
                            format!(
                                "`role = \"{}\"` is already step `{first}`'s: only `protected` may be on several steps",
                                role.as_str()
                            ),
                        );
                        return None;
                    }
                    seen_roles.insert(role.as_str(), name.clone());
                }
                Some(role)
            });

            let expect = self.diag.expect(rs.expect.as_ref());
            let follow = self.diag.follow(&rs, &expect);

            let mut extract = Vec::new();
            // Claims of a JWT come last: they may read a token this same step extracts.
            let reads_jwt = |v: &Spanned<toml::Value>| {
                v.get_ref()
                    .as_table()
                    .is_some_and(|t| t.contains_key("jwt"))
            };
            let mut entries: Vec<_> = rs.extract.iter().collect();
            entries.sort_by_key(|(_, v)| reads_jwt(v));
            for (k, v) in entries {
                let Some(source) =
                    self.diag
                        .extract(k, v, &builtin_scope.names, cookies, &scope.names)
                else {
                    continue;
                };
                let slot = *scope.names.entry(k.get_ref().clone()).or_insert_with(|| {
                    slot_count += 1;
                    slot_count - 1
                });
                extract.push(Extract {
                    var: k.get_ref().clone(),
                    slot,
                    source,
                });
            }

            // Checks run after the extracts, so they may read what this step extracted.
            let mut checks = Vec::new();
            for c in &rs.check {
                if let Some(chk) = self.check(c, &scope) {
                    checks.push(chk);
                }
            }

            steps.push(Step {
                name: name.into(),
                method,
                path,
                url,
                follow,
                headers,
                body,
                expect,
                extract,
                checks,
                basic,
                think,
                role,
            });
        }

        let step_names: Vec<String> = steps.iter().map(|s| s.name.to_string()).collect();
        let thresholds = self.diag.thresholds(&raw.thresholds, &step_names);

        Scenario {
            thresholds,
            name: raw.name.into_inner(),
            description: raw.description.unwrap_or_default(),
            source: self.file.to_string(),
            steps,
            vars,
            slot_count,
            uses_api_key: self.uses_api_key,
            builtins_used: self.builtins_used,
            cookies,
            data,
            var_names,
        }
    }

    /// The step's `body` or `form` (not both).
    fn request_body(&mut self, rs: &RawStep, scope: &Scope) -> Option<Body> {
        match (&rs.body, &rs.form) {
            (Some(_), Some(f)) => {
                self.diag.body_and_form(&f.span());
                None
            }
            (Some(b), None) => self.body(b, scope),
            (None, Some(f)) => self.form(f.get_ref(), scope),
            (None, None) => None,
        }
    }

    /// A form body: keys and constant values encoded now, the rest when rendered.
    fn form(
        &mut self,
        fields: &BTreeMap<Spanned<String>, Spanned<toml::Value>>,
        scope: &Scope,
    ) -> Option<Body> {
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut parts = Vec::new();
        let mut raw = String::new();
        let mut ok = true;
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                raw.push('&');
            }
            raw.push_str(&encode(k.get_ref()));
            raw.push('=');
            let text = match v.get_ref() {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    self.diag.form_value(v.span().start, k.get_ref());
                    ok = false;
                    continue;
                }
            };
            match self.template(&text, &v.span(), scope) {
                Some(t) => match t.constant() {
                    Some(c) => raw.push_str(&encode(&c)),
                    None => {
                        parts.push(FormPart::Raw(std::mem::take(&mut raw)));
                        parts.push(FormPart::Encoded(t));
                    }
                },
                None => ok = false,
            }
        }
        if !raw.is_empty() {
            parts.push(FormPart::Raw(raw));
        }
        parts.retain(|p| !matches!(p, FormPart::Raw(s) if s.is_empty()));
        ok.then_some(Body::Form(parts))
    }

    /// `basic = { user, password }`, which replaces a scenario-wide Authorization header
    /// and conflicts with the step's own.
    fn basic(
        &mut self,
        rs: &RawStep,
        scope: &Scope,
        headers: &mut Vec<(HeaderName, Template)>,
    ) -> Option<Basic> {
        let b = rs.basic.as_ref()?;
        let auth = reqwest::header::AUTHORIZATION;
        if rs
            .headers
            .keys()
            .any(|k| k.get_ref().eq_ignore_ascii_case(auth.as_str()))
        {
            self.diag.basic_and_authorization(&b.span());
            return None;
        }
        headers.retain(|(h, _)| *h != auth);
        let raw = b.get_ref();
        let user = self.template(raw.user.get_ref(), &raw.user.span(), scope);
        let password = self.template(raw.password.get_ref(), &raw.password.span(), scope);
        let form_encoded = match &raw.encode {
            None => Some(false),
            Some(e) => self.diag.basic_encode(e),
        };
        Some(Basic {
            user: user?,
            password: password?,
            form_encoded: form_encoded?,
        })
    }

    fn check(&mut self, c: &Spanned<RawCheck>, scope: &Scope) -> Option<Check> {
        let (pointer, jwt) = self.diag.check_subject(c, &scope.names).ok()?;
        let expect = match self.diag.check(c)? {
            CheckSpec::Ready(e) => e,
            CheckSpec::Equals(toml::Value::String(s)) => {
                Expectation::EqualsStr(self.template(s, &c.span(), scope)?)
            }
            CheckSpec::Equals(v) => Expectation::EqualsJson(toml_to_json(v)),
        };
        Some(Check {
            pointer,
            expect,
            jwt,
        })
    }

    fn body(&mut self, b: &Spanned<toml::Value>, scope: &Scope) -> Option<Body> {
        let span = b.span();
        match b.get_ref() {
            toml::Value::String(s) => self.template(s, &span, scope).map(Body::Text),
            v @ (toml::Value::Table(_) | toml::Value::Array(_)) => {
                let mut parts = Vec::new();
                let mut raw = String::new();
                let mut ok = true;
                self.json_parts(v, &span, scope, &mut parts, &mut raw, &mut ok);
                if !raw.is_empty() {
                    parts.push(JsonPart::Raw(raw));
                }
                ok.then_some(Body::Json(parts))
            }
            _ => {
                self.diag.body_type(span.start);
                None
            }
        }
    }

    fn json_parts(
        &mut self,
        v: &toml::Value,
        span: &Range<usize>,
        scope: &Scope,
        parts: &mut Vec<JsonPart>,
        raw: &mut String,
        ok: &mut bool,
    ) {
        match v {
            toml::Value::String(s) => match self.template(s, span, scope) {
                Some(t) if t.slots().next().is_none() => {
                    raw.push_str(&serde_json::Value::String(s.clone()).to_string());
                }
                Some(t) => {
                    if !raw.is_empty() {
                        parts.push(JsonPart::Raw(std::mem::take(raw)));
                    }
                    parts.push(JsonPart::Str(t));
                }
                None => *ok = false,
            },
            toml::Value::Table(t) => {
                raw.push('{');
                for (i, (k, v)) in t.iter().enumerate() {
                    if i > 0 {
                        raw.push(',');
                    }
                    raw.push_str(&serde_json::Value::String(k.clone()).to_string());
                    raw.push(':');
                    self.json_parts(v, span, scope, parts, raw, ok);
                }
                raw.push('}');
            }
            toml::Value::Array(a) => {
                raw.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        raw.push(',');
                    }
                    self.json_parts(v, span, scope, parts, raw, ok);
                }
                raw.push(']');
            }
            other => raw.push_str(&toml_to_json(other).to_string()),
        }
    }
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .unwrap_or(J::Null),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::Method;

    use crate::scenario::{Scenario, SLOT_SEQ};

    #[test]
    fn json_body_renders_escaped() {
        let s = Scenario::parse(
            r#"
name = "t"
[vars]
v = "a\"b{{seq}}"
[[steps]]
name = "s"
method = "post"
path = "/x"
body = { k = "{{v}}", n = 3, list = [true, "lit"] }
"#,
            "t.toml",
        )
        .unwrap();
        let mut vars = vec![String::new(); s.slot_count];
        vars[SLOT_SEQ] = "7".into();
        vars[s.vars[0].0] = s.vars[0].1.render(&vars);
        let mut out = Vec::new();
        s.steps[0]
            .body
            .as_ref()
            .unwrap()
            .render_into(&vars, &mut out, &mut String::new());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["k"], "a\"b7");
        assert_eq!(v["n"], 3);
        assert_eq!(v["list"][1], "lit");
        assert_eq!(s.steps[0].method, Method::POST);
    }
}
