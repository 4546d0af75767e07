//! `{{name}}` string templates, parsed once when a scenario loads.
//!
//! A template is a list of literal and variable segments; variables are resolved to slot
//! indices at load time, so rendering on the hot path is a single pass of `push_str` with
//! no parsing, hashing or lookups.
//!
//! A variable may go through functions (`{{email|lower}}`, `{{totp(secret)}}`, see
//! [`super::functions`]); only such segments cost more than a copy.

use std::fmt;

use super::functions::{self, Func};

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text copied as it is.
    Lit(String),
    /// The value of the variable in this slot of the flow's variable table.
    Var(usize),
    /// The value of the variable in this slot, through these functions in order.
    Call(usize, Box<[Func]>),
}

/// A parsed template: literal text and variable slots.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    segments: Vec<Segment>,
}

/// Why a template did not parse; `offset` is the byte offset in the template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A variable reference found while parsing, before it is resolved to a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarRef {
    pub name: String,
    /// Byte offset of the name inside the template string.
    pub offset: usize,
    /// Functions applied to the value, in order (`{{x|lower}}`, `{{totp(x)}}`).
    pub funcs: Vec<Func>,
}

/// The raw shape of a template: literal pieces and variable names, unresolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawSegment {
    Lit(String),
    Var(VarRef),
}

/// Splits `s` into literal text and `{{name}}` references. `{{{{` is not special: use a
/// variable if a literal `{{` is needed (no scenario has needed one yet).
pub fn parse(s: &str) -> Result<Vec<RawSegment>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = s;
    let mut base = 0usize;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(RawSegment::Lit(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(TemplateError {
                offset: base + open,
                message: "unclosed `{{`: a variable is written `{{name}}`".into(),
            });
        };
        let raw = &after[..close];
        let inner = base + open + 2;
        out.push(RawSegment::Var(expression(raw, inner)?));
        let consumed = open + 2 + close + 2;
        base += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        out.push(RawSegment::Lit(rest.to_string()));
    }
    Ok(out)
}

/// Checks that `s` (at `offset`) is a variable name.
fn ident(s: &str, offset: usize, what: &str) -> Result<(), TemplateError> {
    if s.is_empty() {
        return Err(TemplateError {
            offset,
            message: format!("empty {what} in `{{{{}}}}`"),
        });
    }
    match s
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
    {
        None => Ok(()),
        Some((i, c)) => Err(TemplateError {
            offset: offset + i,
            message: format!(
                "invalid character {c:?} in {what} `{s}`: names use letters, digits and `_`"
            ),
        }),
    }
}

/// The inside of `{{...}}` (at `offset` in the template): `name`, `name|f|g` or
/// `f(name)|g`.
fn expression(raw: &str, offset: usize) -> Result<VarRef, TemplateError> {
    let mut pieces = raw.split('|');
    let head = pieces.next().unwrap_or("");
    let mut at = offset + head.len() + 1;
    let lead = head.len() - head.trim_start().len();
    let head_at = offset + lead;
    let head = head.trim();
    if head.is_empty() && !raw.contains('|') {
        return Err(TemplateError {
            offset: offset.saturating_sub(2),
            message: "empty variable name in `{{}}`".into(),
        });
    }
    let mut funcs = Vec::new();
    let (name, name_at) = match head.split_once('(') {
        Some((f, rest)) => {
            let Some(arg) = rest.strip_suffix(')') else {
                return Err(TemplateError {
                    offset: head_at,
                    message: format!("`{head}`: a function call is written `f(name)`"),
                });
            };
            let f = f.trim();
            funcs.push(function(f, head_at)?);
            let arg_at = head_at + head.len() - rest.len() + (arg.len() - arg.trim_start().len());
            (arg.trim(), arg_at)
        }
        None => (head, head_at),
    };
    ident(name, name_at, "variable name")?;
    for p in pieces {
        let lead = p.len() - p.trim_start().len();
        funcs.push(function(p.trim(), at + lead)?);
        at += p.len() + 1;
    }
    Ok(VarRef {
        name: name.to_string(),
        offset: name_at,
        funcs,
    })
}

/// The function called `name` (at `offset`), or an error listing the known ones.
fn function(name: &str, offset: usize) -> Result<Func, TemplateError> {
    ident(name, offset, "function name")?;
    Func::parse(name).ok_or_else(|| TemplateError {
        offset,
        message: format!("unknown function `{name}`: known are {}", Func::names()),
    })
}

impl Template {
    /// Builds a template from parsed segments, resolving names with `slot`; the first name
    /// that `slot` does not know is returned as the error.
    pub fn resolve(
        raw: &[RawSegment],
        mut slot: impl FnMut(&str) -> Option<usize>,
    ) -> Result<Self, &VarRef> {
        let mut segments = Vec::with_capacity(raw.len());
        for seg in raw {
            match seg {
                RawSegment::Lit(s) => segments.push(Segment::Lit(s.clone())),
                RawSegment::Var(v) => {
                    let i = slot(&v.name).ok_or(v)?;
                    segments.push(match v.funcs.is_empty() {
                        true => Segment::Var(i),
                        false => Segment::Call(i, v.funcs.clone().into_boxed_slice()),
                    });
                }
            }
        }
        Ok(Template { segments })
    }

    /// A template that is only literal text.
    pub fn literal(s: impl Into<String>) -> Self {
        Template {
            segments: vec![Segment::Lit(s.into())],
        }
    }

    /// Appends the rendered template to `out`. A slot that is out of range renders empty
    /// (cannot happen for templates resolved against the same table).
    pub fn render_into(&self, vars: &[String], out: &mut String) {
        for seg in &self.segments {
            match seg {
                Segment::Lit(s) => out.push_str(s),
                Segment::Var(i) => out.push_str(vars.get(*i).map(String::as_str).unwrap_or("")),
                Segment::Call(i, funcs) => functions::apply_chain(
                    funcs,
                    vars.get(*i).map(String::as_str).unwrap_or(""),
                    out,
                ),
            }
        }
    }

    pub fn render(&self, vars: &[String]) -> String {
        let mut s = String::new();
        self.render_into(vars, &mut s);
        s
    }

    /// The text, when the template reads no variable (so it can be prepared once).
    pub fn constant(&self) -> Option<String> {
        if self.slots().next().is_some() {
            return None;
        }
        Some(self.render(&[]))
    }

    /// Slots this template reads.
    pub fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.segments.iter().filter_map(|s| match s {
            Segment::Var(i) | Segment::Call(i, _) => Some(*i),
            Segment::Lit(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &str) -> Vec<String> {
        parse(s)
            .unwrap()
            .into_iter()
            .filter_map(|s| match s {
                RawSegment::Var(v) => Some(v.name),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn parses_and_renders() {
        let raw = parse("a{{x}}b{{ y }}c").unwrap();
        let t = Template::resolve(&raw, |n| match n {
            "x" => Some(0),
            "y" => Some(1),
            _ => None,
        })
        .unwrap();
        assert_eq!(t.render(&["1".into(), "2".into()]), "a1b2c");
        assert_eq!(names("{{x}}{{y}}"), vec!["x", "y"]);
    }

    #[test]
    fn reports_offsets() {
        let e = parse("abc{{x").unwrap_err();
        assert_eq!(e.offset, 3);
        let e = parse("{{a-b}}").unwrap_err();
        assert_eq!(e.offset, 3);
        let e = parse("x{{ }}").unwrap_err();
        assert_eq!(e.offset, 1);
        let raw = parse("ab{{  zz}}").unwrap();
        let err = Template::resolve(&raw, |_| None).unwrap_err();
        assert_eq!((err.name.as_str(), err.offset), ("zz", 6));
    }

    #[test]
    fn functions_parse_in_both_forms_and_chain() {
        let raw = parse("a{{ totp(s) }}b{{e|lower|urlencode}}").unwrap();
        let RawSegment::Var(v) = &raw[1] else {
            panic!("{raw:?}")
        };
        assert_eq!(
            (v.name.as_str(), v.offset, v.funcs.as_slice()),
            ("s", 9, &[Func::Totp][..])
        );
        let RawSegment::Var(v) = &raw[3] else {
            panic!("{raw:?}")
        };
        assert_eq!(v.funcs, [Func::Lower, Func::Urlencode]);
        let t = Template::resolve(&raw, |n| (n == "e").then_some(1).or(Some(0))).unwrap();
        let out = t.render(&["!".into(), "A B".into()]);
        assert_eq!(out, "aba%20b");
        let e = parse("x{{v|nope}}").unwrap_err();
        assert!(
            e.message.contains("unknown function `nope`"),
            "{}",
            e.message
        );
        assert_eq!(e.offset, 5);
        let e = parse("{{frob(v)}}").unwrap_err();
        assert!(
            e.message.contains("unknown function `frob`"),
            "{}",
            e.message
        );
        assert!(parse("{{totp(v}}").is_err());
        assert!(parse("{{v|}}").is_err());
    }

    #[test]
    fn no_vars_is_literal() {
        let raw = parse("plain } { text").unwrap();
        let t = Template::resolve(&raw, |_| None).unwrap();
        assert_eq!(t.render(&[]), "plain } { text");
        assert_eq!(parse("").unwrap(), vec![]);
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(s in ".*") {
                let _ = parse(&s);
            }

            #[test]
            fn braces_heavy_input_never_panics(s in "[{}a-z_ é-]{0,40}") {
                if let Ok(raw) = parse(&s) {
                    let t = Template::resolve(&raw, |_| Some(0)).unwrap();
                    let _ = t.render(&["v".to_string()]);
                }
            }

            #[test]
            fn text_without_braces_is_one_literal(s in "[^{]*") {
                let raw = parse(&s).unwrap();
                let t = Template::resolve(&raw, |_| None).unwrap();
                prop_assert_eq!(t.render(&[]), s);
            }

            #[test]
            fn round_trips_literals_and_names(
                parts in proptest::collection::vec(("[^{}]{0,8}", "[a-z_][a-z0-9_]{0,6}"), 0..6)
            ) {
                let mut text = String::new();
                let mut expected = String::new();
                for (lit, name) in &parts {
                    text.push_str(lit);
                    text.push_str(&format!("{{{{{name}}}}}"));
                    expected.push_str(lit);
                    expected.push_str(&name.to_uppercase());
                }
                let raw = parse(&text).unwrap();
                let names: Vec<String> = parts.iter().map(|(_, n)| n.clone()).collect();
                let t = Template::resolve(&raw, |n| names.iter().position(|x| x == n)).unwrap();
                let vars: Vec<String> = names.iter().map(|n| n.to_uppercase()).collect();
                prop_assert_eq!(t.render(&vars), expected);
            }
        }
    }
}
