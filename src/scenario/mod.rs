//! Flow definitions as data: scenario files (TOML) are loaded into the [`Scenario`] type
//! that every worker shares.
//!
//! Loading does all the work that does not depend on a response: templates are parsed,
//! variable names become slot indices, header names and methods are validated, and JSON
//! bodies are pre-serialized around their variable parts. A compiled [`Scenario`] is
//! immutable and shared by every worker. Errors carry the file, line and column.
//!
//! This module holds the public types and entry points; the work is done in three steps:
//! `parse` (the file and its TOML, with spans), `validate` (every `file:line:col` error)
//! and `compile` (templates to slots, pre-serialized bodies, the runtime types).

mod compile;
pub mod feeder;
pub mod functions;
mod keys;
pub mod mix;
mod parse;
pub mod template;
mod validate;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use reqwest::header::HeaderName;
use reqwest::Method;

use template::Template;

pub use feeder::{DataOrder, Feeder};
pub use functions::Func;
pub use keys::{Basic, Role, Think};
pub use validate::parse_status_pattern;

/// The default scenario, embedded at build time: `run` without `--scenario` uses these bytes.
pub const DEFAULT_SCENARIO: &str = include_str!("../../scenarios/pyairtable.toml");
/// The name under which the embedded default is reported.
pub const DEFAULT_SCENARIO_NAME: &str = "scenarios/pyairtable.toml (built in)";

/// Variables every flow has before any step runs, in slot order.
pub const BUILTINS: &[(&str, &str)] = &[
    ("api_key", "the API key from --api-key / AUTHBENCH_API_KEY"),
    ("seq", "a number unique to each flow in the run"),
    ("run_id", "a random id shared by all flows of one run"),
    ("uuid", "a random UUID (v4) per flow"),
    ("random", "16 random letters and digits per flow"),
    (
        "target",
        "the base URL (--target, or the in-process server's)",
    ),
    (
        "target_origin",
        "the target's scheme://host:port, as an Origin header wants it",
    ),
    (
        "pkce_verifier",
        "a PKCE code verifier per flow (RFC 7636: 43 characters)",
    ),
    ("pkce_challenge", "the S256 code challenge of pkce_verifier"),
    ("state", "a random OAuth `state` per flow (22 characters)"),
    (
        "nonce",
        "a random OpenID Connect `nonce` per flow (22 characters)",
    ),
];
pub const SLOT_API_KEY: usize = 0;
pub const SLOT_SEQ: usize = 1;
pub const SLOT_RUN_ID: usize = 2;
pub const SLOT_UUID: usize = 3;
pub const SLOT_RANDOM: usize = 4;
pub const SLOT_TARGET: usize = 5;
pub const SLOT_TARGET_ORIGIN: usize = 6;
pub const SLOT_PKCE_VERIFIER: usize = 7;
pub const SLOT_PKCE_CHALLENGE: usize = 8;
pub const SLOT_STATE: usize = 9;
pub const SLOT_NONCE: usize = 10;

/// One problem in a scenario file, with its position (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0 means the error is about the file as a whole (it cannot be read): no
        // position is shown rather than a meaningless `:0:0`.
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// Every problem found in one scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioErrors(pub Vec<ScenarioError>);

impl fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioErrors {}

/// A set of acceptable HTTP status codes, as inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(pub Vec<(u16, u16)>);

impl StatusSet {
    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= code && code <= hi)
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else if lo % 100 == 0 && *hi == lo + 99 {
                write!(f, "{}xx", lo / 100)?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// A request body: raw text or JSON, with variables substituted at send time.
#[derive(Debug, Clone)]
pub enum Body {
    /// Sent as it is after substitution; no content type is implied.
    Text(Template),
    /// JSON: pre-serialized text with string templates that are escaped when rendered.
    Json(Vec<JsonPart>),
    /// `application/x-www-form-urlencoded`: pre-encoded text with values that are
    /// rendered, then percent-encoded.
    Form(Vec<FormPart>),
}

/// A piece of a form body template.
#[derive(Debug, Clone)]
pub enum FormPart {
    /// Text copied as it is (already encoded: keys, `=`, `&`, constant values).
    Raw(String),
    /// A value rendered, then encoded by the form-urlencoded rules (space as `+`).
    Encoded(Template),
}

/// A piece of a JSON body template.
#[derive(Debug, Clone)]
pub enum JsonPart {
    /// JSON text copied as it is.
    Raw(String),
    /// A JSON string whose content is a template (quoted and escaped at render time).
    Str(Template),
}

impl Body {
    /// Renders the body into `out`; `scratch` is reused between strings.
    pub fn render_into(&self, vars: &[String], out: &mut Vec<u8>, scratch: &mut String) {
        match self {
            Body::Text(t) => {
                scratch.clear();
                t.render_into(vars, scratch);
                out.extend_from_slice(scratch.as_bytes());
            }
            Body::Json(parts) => {
                for p in parts {
                    match p {
                        JsonPart::Raw(s) => out.extend_from_slice(s.as_bytes()),
                        JsonPart::Str(t) => {
                            scratch.clear();
                            t.render_into(vars, scratch);
                            // Serializing a &str into a Vec cannot fail.
                            let _ = serde_json::to_writer(&mut *out, scratch.as_str());
                        }
                    }
                }
            }
            Body::Form(parts) => {
                for p in parts {
                    match p {
                        FormPart::Raw(s) => out.extend_from_slice(s.as_bytes()),
                        FormPart::Encoded(t) => {
                            scratch.clear();
                            t.render_into(vars, scratch);
                            for piece in form_urlencoded::byte_serialize(scratch.as_bytes()) {
                                out.extend_from_slice(piece.as_bytes());
                            }
                        }
                    }
                }
            }
        }
    }

    pub fn is_json(&self) -> bool {
        matches!(self, Body::Json(_))
    }
}

/// Where an extracted value comes from.
#[derive(Debug, Clone)]
pub enum ExtractSource {
    /// A JSON pointer into the response body (RFC 6901).
    Pointer(Arc<str>),
    /// A response header.
    Header(HeaderName),
    /// A capture group of a regular expression, over the body text or a header's value.
    Regex {
        re: regex::bytes::Regex,
        /// 0 is the whole match.
        group: usize,
        /// Search this header's value instead of the body.
        header: Option<HeaderName>,
    },
    /// A cookie's value, from the flow's jar after this step's `Set-Cookie` headers.
    Cookie(Arc<str>),
    /// A claim of the JWT held by an earlier variable, decoded (its signature is not
    /// checked).
    Jwt(JwtClaim),
}

/// `{ jwt = "token", claim = "exp" }`: a claim of the JWT in variable `var`.
#[derive(Debug, Clone)]
pub struct JwtClaim {
    pub var: Arc<str>,
    pub slot: usize,
    pub claim: Arc<str>,
    /// `key = "..."`: the HMAC secret the token's signature must verify with; without
    /// it the token is decoded, not verified.
    pub key: Option<Arc<str>>,
}

impl JwtClaim {
    /// The same claim, verified with `key` when one is given.
    pub fn with_key(mut self, key: Option<&str>) -> Self {
        self.key = key.map(Arc::from);
        self
    }
}

/// Stores a value from the response in a variable slot for later steps.
#[derive(Debug, Clone)]
pub struct Extract {
    pub var: String,
    pub slot: usize,
    pub source: ExtractSource,
}

/// What a check expects at its pointer.
#[derive(Debug, Clone)]
pub enum Expectation {
    /// The pointer resolves to some value.
    Exists,
    /// The value equals this JSON value.
    EqualsJson(serde_json::Value),
    /// The value is a string equal to this template.
    EqualsStr(Template),
    /// The value (a string, or the JSON text of a number or boolean) matches this regex.
    Matches(regex::Regex),
}

/// A check on the response body.
#[derive(Debug, Clone)]
pub struct Check {
    /// The JSON pointer; for a `jwt` check, a label (`jwt token claim exp`).
    pub pointer: Arc<str>,
    pub expect: Expectation,
    /// `{ jwt = "token", claim = "exp", ... }`: the value is that claim, not the body's.
    pub jwt: Option<JwtClaim>,
}

/// One request of a flow.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: Arc<str>,
    pub method: Method,
    /// Appended to the target (empty when the step gives `url`).
    pub path: Template,
    /// `url = "..."`: an absolute URL instead of `path`, for another host than the
    /// target. Such a step goes over the general client (per-host pools).
    pub url: Option<Template>,
    /// `follow = true`: redirects are followed (up to [`MAX_REDIRECTS`]) and the last
    /// response is checked.
    pub follow: bool,
    /// Scenario headers merged with the step's own (the step wins).
    pub headers: Vec<(HeaderName, Template)>,
    pub body: Option<Body>,
    pub expect: StatusSet,
    pub extract: Vec<Extract>,
    pub checks: Vec<Check>,
    /// `basic = { user, password }`: an `Authorization: Basic` header rendered per request.
    pub basic: Option<Basic>,
    /// Slept after a successful response when another step follows.
    pub think: Option<Think>,
    /// `role = "..."`: what the step is to `authbench check`; `None` leaves it to inference.
    pub role: Option<Role>,
}

/// The most redirects a `follow = true` step follows.
pub const MAX_REDIRECTS: usize = 10;

impl Step {
    /// Whether a response header is extracted (headers are copied only then).
    pub fn needs_headers(&self) -> bool {
        self.extract.iter().any(|e| {
            matches!(
                e.source,
                ExtractSource::Header(_)
                    | ExtractSource::Regex {
                        header: Some(_),
                        ..
                    }
            )
        })
    }

    /// Whether the step leaves the target's fast clients: another host (`url`) or
    /// redirects to follow.
    pub fn general(&self) -> bool {
        self.url.is_some() || self.follow
    }

    /// Whether a cookie is extracted (the jar is then read after the response).
    pub fn reads_cookies(&self) -> bool {
        self.extract
            .iter()
            .any(|e| matches!(e.source, ExtractSource::Cookie(_)))
    }

    /// Whether this step reads the response body at all (as JSON, or with a regex over
    /// it): a body cut at `--max-body` then fails the step.
    pub fn reads_body(&self) -> bool {
        let on_body = |e: &&Extract| matches!(e.source, ExtractSource::Regex { header: None, .. });
        self.needs_json() || self.extract.iter().any(|e| on_body(&e))
    }

    /// Whether the response body has to be parsed as JSON for this step.
    pub fn needs_json(&self) -> bool {
        self.checks.iter().any(|c| c.jwt.is_none())
            || self
                .extract
                .iter()
                .any(|e| matches!(e.source, ExtractSource::Pointer(_)))
    }
}

/// A compiled scenario, ready to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Where it came from (a path, or the built-in default).
    pub source: String,
    pub steps: Vec<Step>,
    /// Per-flow variables: slot and template (templates only read built-ins).
    pub vars: Vec<(usize, Template)>,
    /// Size of the per-flow variable table.
    pub slot_count: usize,
    /// Whether any template reads `{{api_key}}`.
    pub uses_api_key: bool,
    /// Threshold expressions from the `[thresholds]` table, already checked.
    pub thresholds: Vec<String>,
    /// Which built-in variables (by slot) any template reads: flows generate only those.
    pub builtins_used: [bool; BUILTINS.len()],
    /// A cookie jar per flow (`cookies = true`, the default).
    pub cookies: bool,
    /// The `[data]` feeder: rows of existing accounts, one per flow.
    pub data: Option<Data>,
    /// The `[vars]` names with their slots, in name order (what `--save-users` writes).
    pub var_names: Vec<(String, usize)>,
}

/// A scenario's `[data]`: the rows (loaded once, shared), how flows take them, and where
/// the columns go in the variable table.
#[derive(Debug, Clone)]
pub struct Data {
    pub feeder: Arc<Feeder>,
    pub order: DataOrder,
    /// Slot of the first column; the others follow in column order.
    pub first_slot: usize,
}

impl Data {
    /// Column names with their slots.
    pub fn columns(&self) -> impl Iterator<Item = (&str, usize)> + '_ {
        self.feeder
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), self.first_slot + i))
    }
}

impl Scenario {
    /// The built-in default scenario.
    pub fn builtin() -> Self {
        // The embedded file is checked by the test suite and by `authbench validate` in CI,
        // so a broken default fails the build's tests, not a user's run.
        Scenario::parse(DEFAULT_SCENARIO, DEFAULT_SCENARIO_NAME)
            .expect("the embedded default scenario is valid")
    }

    /// Reads and compiles a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioErrors> {
        Scenario::load_with_vars(path, &[])
    }

    /// Reads and compiles a scenario file with variables given from outside (`--var`,
    /// `AUTHBENCH_VAR_*`): they define names every template may read, and replace
    /// `[vars]` entries of the same name.
    pub fn load_with_vars(path: &Path, vars: &[(String, String)]) -> Result<Self, ScenarioErrors> {
        let file = path.display().to_string();
        let text = parse::read_file(path, &file)?;
        Scenario::parse_with_vars(&text, &file, vars)
    }

    /// Parses and compiles scenario text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ScenarioErrors> {
        Scenario::parse_with_vars(text, file, &[])
    }

    /// [`Scenario::parse`] with variables given from outside.
    pub fn parse_with_vars(
        text: &str,
        file: &str,
        vars: &[(String, String)],
    ) -> Result<Self, ScenarioErrors> {
        let raw = parse::from_str(text, file)?;
        compile::compile(raw, text, file, vars)
    }

    /// Whether a template reads `target`, `target_origin`, `pkce_*`, `state` or `nonce`.
    pub fn uses_auth_builtins(&self) -> bool {
        self.builtins_used[SLOT_TARGET..].iter().any(|u| *u)
    }

    pub fn step_names(&self) -> Vec<String> {
        self.steps.iter().map(|s| s.name.to_string()).collect()
    }

    /// The think times configured, as `step time` pieces (`None` when there is none).
    pub fn think_description(&self) -> Option<String> {
        let parts: Vec<String> = self
            .steps
            .iter()
            .filter_map(|s| s.think.map(|t| format!("{} {t}", s.name)))
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut start = offset;
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scenario_compiles() {
        let s = Scenario::builtin();
        assert_eq!(s.step_names(), ["register", "login", "verify", "profile"]);
        assert!(s.uses_api_key);
        assert!(s.steps[1].extract.iter().any(|e| e.var == "token"));
    }

    #[test]
    fn line_col_counts_chars() {
        assert_eq!(line_col("ab\ncé\nx", 0), (1, 1));
        assert_eq!(line_col("ab\ncé\nx", 3), (2, 1));
        assert_eq!(line_col("ab\ncé\nx", 7), (3, 1));
        assert_eq!(line_col("ab", 99), (1, 3));
    }

    fn basic_of(encode: &str) -> Result<String, ScenarioErrors> {
        let text = format!(
            "name = \"p\"\n[[steps]]\nname = \"s\"\npath = \"/\"\nbasic = {{ user = \"my client\", password = \"{{{{seq}}}}\"{encode} }}\n"
        );
        let s = Scenario::parse(&text, "p.toml")?;
        let mut vars = vec![String::new(); s.slot_count];
        vars[SLOT_SEQ] = "s+/:%é".to_string();
        let mut out = String::new();
        let basic = s.steps[0].basic.as_ref().unwrap();
        basic.render_into(&vars, &mut out);
        Ok(out)
    }

    #[test]
    fn basic_credentials_are_form_encoded_only_when_asked() {
        // RFC 7617: as they are.
        assert_eq!(basic_of("").unwrap(), "my client:s+/:%é");
        assert_eq!(basic_of(", encode = \"none\"").unwrap(), "my client:s+/:%é");
        // RFC 6749 section 2.3.1: each form-urlencoded, then joined.
        assert_eq!(
            basic_of(", encode = \"form\"").unwrap(),
            "my+client:s%2B%2F%3A%25%C3%A9"
        );
        let e = basic_of(", encode = \"url\"").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("p.toml:5:"), "{msg}");
        assert!(msg.contains("use \"form\""), "{msg}");
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics_on_any_text(s in ".*") {
                let _ = Scenario::parse(&s, "p.toml");
            }

            #[test]
            fn parse_never_panics_on_a_damaged_default(cut in 0usize..2000, len in 0usize..40, junk in ".{0,6}") {
                let mut t = DEFAULT_SCENARIO.to_string();
                let mut at = cut.min(t.len());
                while !t.is_char_boundary(at) { at -= 1; }
                let mut end = (at + len).min(t.len());
                while !t.is_char_boundary(end) { end -= 1; }
                t.replace_range(at..end, &junk);
                if let Err(e) = Scenario::parse(&t, "p.toml") {
                    for err in e.0 {
                        prop_assert!(err.line >= 1 && err.column >= 1, "{}", err);
                    }
                }
            }

            #[test]
            fn form_values_decode_back_to_what_was_rendered(v in "\\PC{0,24}", k in "[a-k &=+@%./?#é]{1,8}") {
                let key = format!("\"{k}\"");
                let text = format!("name = \"p\"\n[[steps]]\nname = \"s\"\npath = \"/\"\nform = {{ {key} = \"{{{{seq}}}}\", lit = \"a b&c\" }}\n");
                let s = Scenario::parse(&text, "p.toml").unwrap();
                let mut vars = vec![String::new(); s.slot_count];
                vars[SLOT_SEQ] = v.clone();
                let mut out = Vec::new();
                s.steps[0].body.as_ref().unwrap().render_into(&vars, &mut out, &mut String::new());
                let decoded: Vec<(String, String)> = form_urlencoded::parse(&out).into_owned().collect();
                let mut want = vec![(k, v), ("lit".to_string(), "a b&c".to_string())];
                want.sort();
                let mut got = decoded;
                got.sort();
                prop_assert_eq!(got, want);
            }

            #[test]
            fn line_col_never_panics(s in ".{0,50}", off in 0usize..200) {
                let (l, c) = line_col(&s, off);
                prop_assert!(l >= 1 && c >= 1);
            }
        }
    }
}
