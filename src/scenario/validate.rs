//! Step two of loading: every check that can reject a scenario, each reporting its problem
//! as a [`ScenarioError`] at `file:line:col`.
//!
//! The checks run from inside `compile`, in the order the compiler meets the data, because
//! some depend on what compiled before them (a variable extracted by one step is in scope
//! only in later steps). They collect problems instead of stopping at the first, so one run
//! of `authbench validate` lists them all; [`Diagnostics::finish`] sorts them by position.

use std::collections::BTreeMap;
use std::ops::Range;

use reqwest::header::HeaderName;
use reqwest::Method;
use toml::Spanned;

use super::parse::{RawCheck, RawExpect, RawStep};
use super::template::{RawSegment, TemplateError, VarRef};
use super::{line_col, Expectation, ScenarioError, ScenarioErrors, StatusSet};

mod auth;
mod data;
mod step;

pub(super) use auth::StepTarget;

/// The problems found so far in one scenario text.
pub(super) struct Diagnostics<'a> {
    text: &'a str,
    file: &'a str,
    errors: Vec<ScenarioError>,
}

/// A check that passed validation: its expectation, or the value it must equal (a string
/// there is a template, compiled with the step's scope).
pub(super) enum CheckSpec<'r> {
    Ready(Expectation),
    Equals(&'r toml::Value),
}

impl<'a> Diagnostics<'a> {
    pub(super) fn new(text: &'a str, file: &'a str) -> Self {
        Diagnostics {
            text,
            file,
            errors: Vec::new(),
        }
    }

    /// `Ok` when nothing was reported, else every problem in file order.
    pub(super) fn finish(mut self) -> Result<(), ScenarioErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            self.errors.sort_by_key(|e| (e.line, e.column));
            Err(ScenarioErrors(self.errors))
        }
    }

    pub(super) fn err(&mut self, at: usize, message: impl Into<String>) {
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

    /// A template string `s` (found at `span`) that does not parse.
    pub(super) fn template_syntax(&mut self, s: &str, span: &Range<usize>, e: TemplateError) {
        // Point at the start of the string in the file, plus the offset when the
        // string has no escapes before it (the common case).
        let base = span.start + 1;
        let at = if self.text.get(base..base + e.offset) == s.get(..e.offset) {
            base + e.offset
        } else {
            span.start
        };
        self.err(at, e.message);
    }

    /// A template whose variable `first` is not among `names`, and any later unknown ones.
    pub(super) fn undefined_variables(
        &mut self,
        raw: &[RawSegment],
        first: &VarRef,
        span: &Range<usize>,
        names: &BTreeMap<String, usize>,
    ) {
        let v = first;
        let at = self.locate_var(span, &v.name);
        let known: Vec<&str> = names.keys().map(String::as_str).collect();
        let msg = format!(
            "undefined variable `{}`: known here are {} (a variable extracted by a step is usable only in later steps)",
            v.name,
            known.join(", ")
        );
        self.err(at, msg);
        // Keep checking the rest of the template for more undefined names.
        for seg in raw {
            if let RawSegment::Var(w) = seg {
                if w.offset > v.offset && !names.contains_key(&w.name) {
                    let at = self.locate_var(span, &w.name);
                    self.err(at, format!("undefined variable `{}`", w.name));
                }
            }
        }
    }

    pub(super) fn scenario_name(&mut self, name: &Spanned<String>) {
        if name.get_ref().trim().is_empty() {
            self.err(name.span().start, "`name` must not be empty");
        }
    }

    /// A name for a variable: letters, digits and `_`.
    pub(super) fn ident(&mut self, k: &Spanned<String>) -> bool {
        if valid_ident(k.get_ref()).is_err() {
            self.err(
                k.span().start,
                format!(
                    "`{}` is not a valid variable name: use letters, digits and `_`",
                    k.get_ref()
                ),
            );
            return false;
        }
        true
    }

    /// The name of a `[vars]` entry, given the names already in `scope`.
    pub(super) fn var_name(
        &mut self,
        k: &Spanned<String>,
        scope: &BTreeMap<String, usize>,
    ) -> bool {
        if !self.ident(k) {
            return false;
        }
        if scope.contains_key(k.get_ref()) {
            self.err(
                k.span().start,
                format!(
                    "`{}` is a built-in variable and cannot be redefined",
                    k.get_ref()
                ),
            );
            return false;
        }
        true
    }

    pub(super) fn header_name(&mut self, k: &Spanned<String>) -> Option<HeaderName> {
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

    pub(super) fn steps_present(&mut self, steps: &Spanned<Vec<RawStep>>) {
        if steps.get_ref().is_empty() {
            self.err(
                steps.span().start,
                "`steps` is empty: a scenario needs at least one [[steps]] table",
            );
        }
    }

    /// The trimmed step name; `seen` maps names used so far to their first offset.
    pub(super) fn step_name(
        &mut self,
        name: &Spanned<String>,
        seen: &mut BTreeMap<String, usize>,
    ) -> String {
        let trimmed = name.get_ref().trim().to_string();
        if trimmed.is_empty() {
            self.err(name.span().start, "step `name` must not be empty");
        } else if let Some(first) = seen.get(&trimmed) {
            let (l, _) = line_col(self.text, *first);
            self.err(
                name.span().start,
                format!("duplicate step name `{trimmed}` (first used on line {l}): step names key the report rows, so each must be unique"),
            );
        } else {
            seen.insert(trimmed.clone(), name.span().start);
        }
        trimmed
    }

    /// The step's method, GET when absent or not a method.
    pub(super) fn method(&mut self, method: Option<&Spanned<String>>) -> Method {
        match method {
            None => Method::GET,
            Some(m) => match Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes()) {
                Ok(m) => m,
                Err(_) => {
                    self.err(
                        m.span().start,
                        format!(
                            "`{}` is not an HTTP method (GET, POST, PUT, PATCH, DELETE, ...)",
                            m.get_ref()
                        ),
                    );
                    Method::GET
                }
            },
        }
    }

    pub(super) fn path(&mut self, path: &Spanned<String>) {
        if !path.get_ref().starts_with('/') {
            self.err(
                path.span().start,
                format!(
                    "path `{}` must start with `/` (it is appended to the target URL)",
                    path.get_ref()
                ),
            );
        }
    }

    /// A value that is not a table, an array or a string, at `at`.
    pub(super) fn body_type(&mut self, at: usize) {
        self.err(
            at,
            "`body` must be a table or array (sent as JSON) or a string (sent as it is)",
        );
    }

    /// The step's accepted statuses: 2xx when absent or wrong.
    pub(super) fn expect(&mut self, e: Option<&Spanned<RawExpect>>) -> StatusSet {
        match e {
            None => StatusSet(vec![(200, 299)]),
            Some(e) => self.status_set(e).unwrap_or(StatusSet(vec![(200, 299)])),
        }
    }

    fn status_set(&mut self, e: &Spanned<RawExpect>) -> Option<StatusSet> {
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

    /// A `[[steps.check]]`: its pointer and exactly one valid expectation.
    pub(super) fn check<'r>(&mut self, c: &'r Spanned<RawCheck>) -> Option<CheckSpec<'r>> {
        let at = c.span().start;
        let rc = c.get_ref();
        let pointer = rc.pointer.as_deref().unwrap_or("");
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            self.err(
                at,
                format!("`{pointer}` is not a JSON pointer: it must be empty or start with `/`"),
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
        if let Some(exists) = rc.exists {
            if !exists {
                self.err(at, "`exists = false` is not supported: a check asserts that a value is present (`exists = true`), equal to something (`equals`) or matching a pattern (`matches`)");
                return None;
            }
            Some(CheckSpec::Ready(Expectation::Exists))
        } else if let Some(pattern) = &rc.matches {
            match regex::Regex::new(pattern) {
                Ok(re) => Some(CheckSpec::Ready(Expectation::Matches(re))),
                Err(e) => {
                    self.err(at, regex_error(pattern, &e));
                    None
                }
            }
        } else {
            rc.equals.as_ref().map(CheckSpec::Equals)
        }
    }

    /// The `[thresholds]` table as expressions, each checked against the step names.
    pub(super) fn thresholds(
        &mut self,
        raw: &BTreeMap<Spanned<String>, Spanned<String>>,
        step_names: &[String],
    ) -> Vec<String> {
        let mut thresholds = Vec::new();
        for (k, v) in raw {
            let expr = format!("{}{}", k.get_ref(), v.get_ref());
            match crate::criteria::Threshold::parse(&expr).and_then(|t| {
                t.check_steps(step_names)?;
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
        thresholds
    }
}

pub(super) fn valid_ident(s: &str) -> Result<(), ()> {
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

/// A regular expression that does not compile, in one line: the pattern and the last line
/// of the regex crate's message (its first lines repeat the pattern with a caret).
pub(crate) fn regex_error(pattern: &str, e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().last().unwrap_or("").trim();
    format!("`{pattern}` is not a valid regular expression: {last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_patterns() {
        assert_eq!(parse_status_pattern("2xx"), Ok((200, 299)));
        assert_eq!(parse_status_pattern("200-204"), Ok((200, 204)));
        assert_eq!(parse_status_pattern("404"), Ok((404, 404)));
        assert!(parse_status_pattern("299-200").is_err());
        assert!(parse_status_pattern("7xx").is_err());
        assert!(parse_status_pattern("600").is_err());
    }
}
