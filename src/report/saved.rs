//! Reading a saved JSON report back (a run's, or a merge's), refusing another schema.

use std::path::Path;

use anyhow::Context;

use super::{Report, SCHEMA};

/// Reads a saved JSON report (a run's, or a merge's), checking its schema version.
pub fn read(path: &Path) -> anyhow::Result<Report> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("could not read the report '{}'", path.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("'{}' is not JSON", path.display()))?;
    let schema = value
        .get("schema")
        .and_then(|s| s.as_str())
        .unwrap_or("none");
    if schema != SCHEMA {
        anyhow::bail!(
            "'{}' has schema '{schema}'; this authbench reads '{}'",
            path.display(),
            SCHEMA
        );
    }
    serde_json::from_value(value)
        .with_context(|| format!("'{}' is not a complete authbench report", path.display()))
}
