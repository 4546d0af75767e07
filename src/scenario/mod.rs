//! Flow definitions as data: scenario files (TOML) are parsed, checked and compiled here.
//!
//! Loading does all the work that does not depend on a response: templates are parsed,
//! variable names become slot indices, header names and methods are validated, and JSON
//! bodies are pre-serialized around their variable parts. A compiled [`Scenario`] is
//! immutable and shared by every worker. Errors carry the file, line and column.

pub mod template;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use reqwest::header::HeaderName;
use reqwest::Method;
use serde::Deserialize;
use toml::Spanned;

use template::{RawSegment, Template};

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
];
pub const SLOT_API_KEY: usize = 0;
pub const SLOT_SEQ: usize = 1;
pub const SLOT_RUN_ID: usize = 2;
pub const SLOT_UUID: usize = 3;
pub const SLOT_RANDOM: usize = 4;

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
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
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
    pub pointer: Arc<str>,
    pub expect: Expectation,
}

/// One request of a flow.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: Arc<str>,
    pub method: Method,
    pub path: Template,
    /// Scenario headers merged with the step's own (the step wins).
    pub headers: Vec<(HeaderName, Template)>,
    pub body: Option<Body>,
    pub expect: StatusSet,
    pub extract: Vec<Extract>,
    pub checks: Vec<Check>,
}

impl Step {
    /// Whether a response header is extracted (headers are copied only then).
    pub fn needs_headers(&self) -> bool {
        self.extract
            .iter()
            .any(|e| matches!(e.source, ExtractSource::Header(_)))
    }

    /// Whether the response body has to be parsed as JSON for this step.
    pub fn needs_json(&self) -> bool {
        !self.checks.is_empty()
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
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ScenarioErrors(vec![ScenarioError {
                file: file.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read the file: {e}"),
            }])
        })?;
        Scenario::parse(&text, &file)
    }

    /// Parses and compiles scenario text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ScenarioErrors> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| s.start).unwrap_or(0);
            let (line, column) = line_col(text, at);
            ScenarioErrors(vec![ScenarioError {
                file: file.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
            }])
        })?;
        let mut c = Compiler {
            text,
            file,
            errors: Vec::new(),
            uses_api_key: false,
            builtins_used: [false; BUILTINS.len()],
        };
        let scenario = c.compile(raw);
        if c.errors.is_empty() {
            Ok(scenario)
        } else {
            c.errors.sort_by_key(|e| (e.line, e.column));
            Err(ScenarioErrors(c.errors))
        }
    }

    pub fn step_names(&self) -> Vec<String> {
        self.steps.iter().map(|s| s.name.to_string()).collect()
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

// ---- the file format, as serde sees it ------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    headers: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    vars: BTreeMap<Spanned<String>, Spanned<String>>,
    steps: Spanned<Vec<RawStep>>,
    /// `metric = "op value"`, e.g. `"flow.p95" = "<2s"`.
    #[serde(default)]
    thresholds: BTreeMap<Spanned<String>, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Spanned<String>,
    #[serde(default)]
    method: Option<Spanned<String>>,
    path: Spanned<String>,
    #[serde(default)]
    headers: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    body: Option<Spanned<toml::Value>>,
    #[serde(default)]
    expect: Option<Spanned<RawExpect>>,
    #[serde(default)]
    extract: BTreeMap<Spanned<String>, Spanned<RawExtract>>,
    #[serde(default)]
    check: Vec<Spanned<RawCheck>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawExpect {
    One(i64),
    Many(Vec<i64>),
    Pattern(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawExtract {
    Pointer(String),
    Header { header: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    pointer: String,
    #[serde(default)]
    exists: Option<bool>,
    #[serde(default)]
    equals: Option<toml::Value>,
    #[serde(default)]
    matches: Option<String>,
}

// ---- compilation --------------------------------------------------------------------

struct Compiler<'a> {
    text: &'a str,
    file: &'a str,
    errors: Vec<ScenarioError>,
    /// Set when any template reads `{{api_key}}`.
    uses_api_key: bool,
    /// Which built-ins any template reads (the rest are not generated per flow).
    builtins_used: [bool; BUILTINS.len()],
}

/// Names visible to a template, with their slots.
struct Scope {
    names: BTreeMap<String, usize>,
}

impl Compiler<'_> {
    fn err(&mut self, at: usize, message: impl Into<String>) {
        let (line, column) = line_col(self.text, at);
        self.errors.push(ScenarioError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        });
    }

    /// Position of `{{name` inside a span of the source, or the span's start: TOML escapes
    /// mean offsets inside a decoded string do not map to the file, so search the file.
    fn locate_var(&self, span: &Range<usize>, name: &str) -> usize {
        let src = self.text.get(span.clone()).unwrap_or("");
        let mut from = 0;
        while let Some(i) = src[from..].find("{{") {
            let at = from + i + 2;
            let rest = src[at..].trim_start();
            if rest.starts_with(name) {
                return span.start + at + (src[at..].len() - rest.len());
            }
            from = at;
        }
        span.start
    }

    fn template(&mut self, s: &str, span: &Range<usize>, scope: &Scope) -> Option<Template> {
        let raw = match template::parse(s) {
            Ok(r) => r,
            Err(e) => {
                // Point at the start of the string in the file, plus the offset when the
                // string has no escapes before it (the common case).
                let base = span.start + 1;
                let at = if self.text.get(base..base + e.offset) == s.get(..e.offset) {
                    base + e.offset
                } else {
                    span.start
                };
                self.err(at, e.message);
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
            Err(v) => {
                let at = self.locate_var(span, &v.name);
                let known: Vec<&str> = scope.names.keys().map(String::as_str).collect();
                let msg = format!(
                    "undefined variable `{}`: known here are {} (a variable extracted by a step is usable only in later steps)",
                    v.name,
                    known.join(", ")
                );
                self.err(at, msg);
                // Keep checking the rest of the template for more undefined names.
                for seg in &raw {
                    if let RawSegment::Var(w) = seg {
                        if w.offset > v.offset && !scope.names.contains_key(&w.name) {
                            let at = self.locate_var(span, &w.name);
                            self.err(at, format!("undefined variable `{}`", w.name));
                        }
                    }
                }
                None
            }
        }
    }

    fn header_name(&mut self, k: &Spanned<String>) -> Option<HeaderName> {
        match HeaderName::from_bytes(k.get_ref().as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                self.err(
                    k.span().start,
                    format!(
                        "`{}` is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)",
                        k.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn compile(&mut self, raw: RawScenario) -> Scenario {
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

        if raw.name.get_ref().trim().is_empty() {
            self.err(raw.name.span().start, "`name` must not be empty");
        }

        let mut vars = Vec::new();
        for (k, v) in &raw.vars {
            if valid_ident(k.get_ref()).is_err() {
                self.err(
                    k.span().start,
                    format!(
                        "`{}` is not a valid variable name: use letters, digits and `_`",
                        k.get_ref()
                    ),
                );
                continue;
            }
            if scope.names.contains_key(k.get_ref()) {
                self.err(
                    k.span().start,
                    format!(
                        "`{}` is a built-in variable and cannot be redefined",
                        k.get_ref()
                    ),
                );
                continue;
            }
            // Per-flow variables read only built-ins, so their order never matters.
            if let Some(t) = self.template(v.get_ref(), &v.span(), &builtin_scope) {
                vars.push((slot_count, t));
            }
            scope.names.insert(k.get_ref().clone(), slot_count);
            slot_count += 1;
        }

        let mut default_headers = Vec::new();
        for (k, v) in &raw.headers {
            let name = self.header_name(k);
            let t = self.template(v.get_ref(), &v.span(), &scope);
            if let (Some(n), Some(t)) = (name, t) {
                default_headers.push((n, t));
            }
        }

        if raw.steps.get_ref().is_empty() {
            self.err(
                raw.steps.span().start,
                "`steps` is empty: a scenario needs at least one [[steps]] table",
            );
        }
        let mut seen_names: BTreeMap<String, usize> = BTreeMap::new();
        let mut steps = Vec::new();
        for rs in raw.steps.into_inner() {
            let name = rs.name.get_ref().trim().to_string();
            if name.is_empty() {
                self.err(rs.name.span().start, "step `name` must not be empty");
            } else if let Some(first) = seen_names.get(&name) {
                let (l, _) = line_col(self.text, *first);
                self.err(
                    rs.name.span().start,
                    format!("duplicate step name `{name}` (first used on line {l}): step names key the report rows, so each must be unique"),
                );
            } else {
                seen_names.insert(name.clone(), rs.name.span().start);
            }

            let method = match &rs.method {
                None => Method::GET,
                Some(m) => {
                    match Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes()) {
                        Ok(m) => m,
                        Err(_) => {
                            self.err(
                            m.span().start,
                            format!("`{}` is not an HTTP method (GET, POST, PUT, PATCH, DELETE, ...)", m.get_ref()),
                        );
                            Method::GET
                        }
                    }
                }
            };

            if !rs.path.get_ref().starts_with('/') {
                self.err(
                    rs.path.span().start,
                    format!(
                        "path `{}` must start with `/` (it is appended to the target URL)",
                        rs.path.get_ref()
                    ),
                );
            }
            let path = self
                .template(rs.path.get_ref(), &rs.path.span(), &scope)
                .unwrap_or_default();

            let mut headers: Vec<(HeaderName, Template)> = default_headers.clone();
            for (k, v) in &rs.headers {
                let n = self.header_name(k);
                let t = self.template(v.get_ref(), &v.span(), &scope);
                if let (Some(n), Some(t)) = (n, t) {
                    headers.retain(|(h, _)| *h != n);
                    headers.push((n, t));
                }
            }

            let body = rs.body.as_ref().and_then(|b| self.body(b, &scope));
            if body.as_ref().is_some_and(Body::is_json)
                && !headers
                    .iter()
                    .any(|(h, _)| h == reqwest::header::CONTENT_TYPE)
            {
                headers.push((
                    reqwest::header::CONTENT_TYPE,
                    Template::literal("application/json"),
                ));
            }

            let expect = match &rs.expect {
                None => StatusSet(vec![(200, 299)]),
                Some(e) => self.expect(e).unwrap_or(StatusSet(vec![(200, 299)])),
            };

            let mut checks = Vec::new();
            for c in &rs.check {
                if let Some(chk) = self.check(c, &scope) {
                    checks.push(chk);
                }
            }

            let mut extract = Vec::new();
            for (k, v) in &rs.extract {
                if valid_ident(k.get_ref()).is_err() {
                    self.err(
                        k.span().start,
                        format!(
                            "`{}` is not a valid variable name: use letters, digits and `_`",
                            k.get_ref()
                        ),
                    );
                    continue;
                }
                if builtin_scope.names.contains_key(k.get_ref()) {
                    self.err(
                        k.span().start,
                        format!(
                            "`{}` is a built-in variable and cannot be extracted into",
                            k.get_ref()
                        ),
                    );
                    continue;
                }
                let source = match v.get_ref() {
                    RawExtract::Pointer(p) => {
                        if !(p.is_empty() || p.starts_with('/')) {
                            self.err(
                                v.span().start,
                                format!("`{p}` is not a JSON pointer: it must be empty or start with `/`, e.g. `/access_token`"),
                            );
                            continue;
                        }
                        ExtractSource::Pointer(p.as_str().into())
                    }
                    RawExtract::Header { header } => {
                        match HeaderName::from_bytes(header.as_bytes()) {
                            Ok(h) => ExtractSource::Header(h),
                            Err(_) => {
                                self.err(
                                    v.span().start,
                                    format!("`{header}` is not a valid HTTP header name"),
                                );
                                continue;
                            }
                        }
                    }
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

            steps.push(Step {
                name: name.into(),
                method,
                path,
                headers,
                body,
                expect,
                extract,
                checks,
            });
        }

        let step_names: Vec<String> = steps.iter().map(|s| s.name.to_string()).collect();
        let mut thresholds = Vec::new();
        for (k, v) in &raw.thresholds {
            let expr = format!("{}{}", k.get_ref(), v.get_ref());
            match crate::gate::Threshold::parse(&expr).and_then(|t| {
                t.check_steps(&step_names)?;
                Ok(t)
            }) {
                Ok(_) => thresholds.push(expr),
                Err(e) => {
                    let at = if e.offset < k.get_ref().len() {
                        k.span().start
                    } else {
                        v.span().start
                    };
                    self.err(
                        at,
                        format!("{e}; a threshold is written `\"flow.p95\" = \"<2s\"`"),
                    );
                }
            }
        }

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
        }
    }

    fn expect(&mut self, e: &Spanned<RawExpect>) -> Option<StatusSet> {
        let at = e.span().start;
        let one = |c: i64| -> Result<(u16, u16), String> {
            if (100..=599).contains(&c) {
                Ok((c as u16, c as u16))
            } else {
                Err(format!(
                    "status {c} is out of range: HTTP status codes are 100 to 599"
                ))
            }
        };
        let r = match e.get_ref() {
            RawExpect::One(c) => one(*c).map(|r| vec![r]),
            RawExpect::Many(cs) if cs.is_empty() => {
                Err("`expect` is an empty list: give at least one status".to_string())
            }
            RawExpect::Many(cs) => cs.iter().map(|c| one(*c)).collect(),
            RawExpect::Pattern(p) => parse_status_pattern(p).map(|r| vec![r]),
        };
        match r {
            Ok(v) => Some(StatusSet(v)),
            Err(m) => {
                self.err(at, m);
                None
            }
        }
    }

    fn check(&mut self, c: &Spanned<RawCheck>, scope: &Scope) -> Option<Check> {
        let at = c.span().start;
        let rc = c.get_ref();
        if !(rc.pointer.is_empty() || rc.pointer.starts_with('/')) {
            self.err(
                at,
                format!(
                    "`{}` is not a JSON pointer: it must be empty or start with `/`",
                    rc.pointer
                ),
            );
            return None;
        }
        let given = [
            rc.exists.is_some(),
            rc.equals.is_some(),
            rc.matches.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            self.err(
                at,
                "a check needs exactly one of `exists = true`, `equals = VALUE` or `matches = \"REGEX\"`",
            );
            return None;
        }
        let expect = if let Some(exists) = rc.exists {
            if !exists {
                self.err(at, "`exists = false` is not supported: a check asserts that a value is present (`exists = true`), equal to something (`equals`) or matching a pattern (`matches`)");
                return None;
            }
            Expectation::Exists
        } else if let Some(pattern) = &rc.matches {
            match regex::Regex::new(pattern) {
                Ok(re) => Expectation::Matches(re),
                Err(e) => {
                    let first = e.to_string();
                    let last = first.lines().last().unwrap_or("").trim().to_string();
                    self.err(
                        at,
                        format!("`{pattern}` is not a valid regular expression: {last}"),
                    );
                    return None;
                }
            }
        } else {
            match &rc.equals {
                Some(toml::Value::String(s)) => {
                    Expectation::EqualsStr(self.template(s, &c.span(), scope)?)
                }
                Some(v) => Expectation::EqualsJson(toml_to_json(v)),
                None => return None,
            }
        };
        Some(Check {
            pointer: rc.pointer.as_str().into(),
            expect,
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
                self.err(
                    span.start,
                    "`body` must be a table or array (sent as JSON) or a string (sent as it is)",
                );
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

fn valid_ident(s: &str) -> Result<(), ()> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(())
    }
}

/// `"2xx"`, `"200-299"` or `"204"` as an inclusive range.
pub fn parse_status_pattern(p: &str) -> Result<(u16, u16), String> {
    let p = p.trim();
    let bad = || {
        format!("`{p}` is not a status: use a code (200), a list ([200, 201]), a class (\"2xx\") or a range (\"200-299\")")
    };
    let code = |s: &str| -> Result<u16, String> {
        let c: u16 = s.trim().parse().map_err(|_| bad())?;
        if (100..=599).contains(&c) {
            Ok(c)
        } else {
            Err(format!(
                "status {c} is out of range: HTTP status codes are 100 to 599"
            ))
        }
    };
    let lower = p.to_ascii_lowercase();
    if lower.len() == 3 && lower.ends_with("xx") {
        let d = lower.as_bytes()[0];
        return match d {
            b'1'..=b'5' => {
                let lo = u16::from(d - b'0') * 100;
                Ok((lo, lo + 99))
            }
            _ => Err(bad()),
        };
    }
    if let Some((a, b)) = p.split_once('-') {
        let (lo, hi) = (code(a)?, code(b)?);
        if lo > hi {
            return Err(format!(
                "status range `{p}` is empty: the first code must not be above the second"
            ));
        }
        return Ok((lo, hi));
    }
    code(p).map(|c| (c, c))
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
    use super::*;

    #[test]
    fn default_scenario_compiles() {
        let s = Scenario::builtin();
        assert_eq!(s.step_names(), ["register", "login", "verify", "profile"]);
        assert!(s.uses_api_key);
        assert!(s.steps[1].extract.iter().any(|e| e.var == "token"));
    }

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

    #[test]
    fn status_patterns() {
        assert_eq!(parse_status_pattern("2xx"), Ok((200, 299)));
        assert_eq!(parse_status_pattern("200-204"), Ok((200, 204)));
        assert_eq!(parse_status_pattern("404"), Ok((404, 404)));
        assert!(parse_status_pattern("299-200").is_err());
        assert!(parse_status_pattern("7xx").is_err());
        assert!(parse_status_pattern("600").is_err());
    }

    #[test]
    fn line_col_counts_chars() {
        assert_eq!(line_col("ab\ncé\nx", 0), (1, 1));
        assert_eq!(line_col("ab\ncé\nx", 3), (2, 1));
        assert_eq!(line_col("ab\ncé\nx", 7), (3, 1));
        assert_eq!(line_col("ab", 99), (1, 3));
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
            fn line_col_never_panics(s in ".{0,50}", off in 0usize..200) {
                let (l, c) = line_col(&s, off);
                prop_assert!(l >= 1 && c >= 1);
            }
        }
    }
}
