//! The JSON report: the [`Report`] struct serialized as it is, so the format cannot drift
//! from the code. Documented in the README ("JSON report").

use super::Exporter;
use crate::report::Report;

pub struct Json;

impl Exporter for Json {
    fn extension(&self) -> &'static str {
        "json"
    }

    fn render(&self, report: &Report) -> anyhow::Result<Vec<u8>> {
        let mut out = serde_json::to_vec_pretty(report)?;
        out.push(b'\n');
        Ok(out)
    }
}
