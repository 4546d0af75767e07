//! Step one of loading: reading a scenario file and parsing its TOML into raw data, shaped
//! exactly as serde sees the format. Every value that can be wrong keeps its byte span
//! ([`Spanned`]) so that `validate` can point at `file:line:col`; nothing is checked here
//! beyond TOML syntax and the shape serde demands (unknown keys, wrong types).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{line_col, ScenarioError, ScenarioErrors};

/// Reads a scenario file; `file` names it in the error, which has no position (line 0).
pub(super) fn read_file(path: &Path, file: &str) -> Result<String, ScenarioErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ScenarioErrors(vec![ScenarioError {
            file: file.to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read the file: {e}"),
        }])
    })
}

/// Parses scenario text into its raw form; a syntax or shape error is the only error
/// reported, at the position TOML gives for it.
pub(super) fn from_str(text: &str, file: &str) -> Result<RawScenario, ScenarioErrors> {
    toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| s.start).unwrap_or(0);
        let (line, column) = line_col(text, at);
        ScenarioErrors(vec![ScenarioError {
            file: file.to_string(),
            line,
            column,
            message: e.message().trim().to_string(),
        }])
    })
}

// ---- the file format, as serde sees it ------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) headers: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) vars: BTreeMap<Spanned<String>, Spanned<String>>,
    pub(super) steps: Spanned<Vec<RawStep>>,
    /// `metric = "op value"`, e.g. `"flow.p95" = "<2s"`.
    #[serde(default)]
    pub(super) thresholds: BTreeMap<Spanned<String>, Spanned<String>>,
    /// A cookie jar per flow; on when absent.
    #[serde(default)]
    pub(super) cookies: Option<Spanned<bool>>,
    /// A feeder: rows of a data file, one per flow.
    #[serde(default)]
    pub(super) data: Option<Spanned<RawData>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawData {
    pub(super) file: Spanned<String>,
    #[serde(default)]
    pub(super) order: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBasic {
    pub(super) user: Spanned<String>,
    pub(super) password: Spanned<String>,
    /// `"none"` (RFC 7617, the default) or `"form"` (RFC 6749 section 2.3.1).
    #[serde(default)]
    pub(super) encode: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) method: Option<Spanned<String>>,
    /// Appended to the target; a step gives this or `url`, checked by `validate`.
    #[serde(default)]
    pub(super) path: Option<Spanned<String>>,
    /// An absolute URL (a template), for a step on another host than the target.
    #[serde(default)]
    pub(super) url: Option<Spanned<String>>,
    /// Follow redirects (up to 10) and check the last response.
    #[serde(default)]
    pub(super) follow: Option<Spanned<bool>>,
    #[serde(default)]
    pub(super) headers: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) body: Option<Spanned<toml::Value>>,
    /// `application/x-www-form-urlencoded` fields (values are templates).
    #[serde(default)]
    pub(super) form: Option<Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>>,
    #[serde(default)]
    pub(super) basic: Option<Spanned<RawBasic>>,
    /// `"1s"` or `{ min = "500ms", max = "2s" }`, checked by `validate`.
    #[serde(default)]
    pub(super) think: Option<Spanned<toml::Value>>,
    /// What the step is to `authbench check` (`register`, `login`, ...), checked by
    /// `validate`; inferred when absent.
    #[serde(default)]
    pub(super) role: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) expect: Option<Spanned<RawExpect>>,
    /// A JSON pointer (a string) or a table (`header`, `regex`, `group`, `cookie`), told
    /// apart by `validate` so that a wrong key gets its own message.
    #[serde(default)]
    pub(super) extract: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) check: Vec<Spanned<RawCheck>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawExpect {
    One(i64),
    Many(Vec<i64>),
    Pattern(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    /// A JSON pointer into the body; a check gives this or `jwt` (with `claim`).
    #[serde(default)]
    pub(super) pointer: Option<String>,
    /// A variable holding a JWT whose claim is checked.
    #[serde(default)]
    pub(super) jwt: Option<String>,
    #[serde(default)]
    pub(super) claim: Option<String>,
    /// The HMAC secret the `jwt`'s signature must verify with (HS256, HS384, HS512).
    #[serde(default)]
    pub(super) key: Option<String>,
    #[serde(default)]
    pub(super) exists: Option<bool>,
    #[serde(default)]
    pub(super) equals: Option<toml::Value>,
    #[serde(default)]
    pub(super) matches: Option<String>,
}
