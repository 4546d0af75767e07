//! Mixes: a scenario file that is a weighted list of other scenario files (`[[mix]]`
//! tables with `scenario`, `weight` and, for open loop, an optional `rate`), and the
//! deterministic split of flows between them.
//!
//! Loading a mix reads the mix file and every file it names (paths relative to the mix
//! file) and reports every problem at `file:line:col`: a missing file at the `scenario`
//! value that names it, and the named file's own errors at their own positions.
//!
//! [`split`] shares a total out by weight exactly (largest remainder): 1,000 flows at
//! 80/15/5 are 800/150/50. Running a mix is [`crate::mix`]'s (a floor above).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{line_col, Scenario, ScenarioError, ScenarioErrors};

/// The most a mix's weights may add up to.
pub const MAX_TOTAL_WEIGHT: u64 = 1_000_000;

/// One scenario of a mix.
#[derive(Debug, Clone)]
pub struct Part {
    pub scenario: Scenario,
    /// The file, as the mix names it resolved against the mix file's directory.
    pub path: PathBuf,
    pub weight: u64,
    /// Open loop: this scenario's own arrival rate (flows/s) instead of a share of the run's.
    pub rate: Option<f64>,
}

/// A loaded mix: every named scenario compiled.
#[derive(Debug, Clone)]
pub struct Mix {
    pub name: String,
    pub description: String,
    pub source: String,
    pub parts: Vec<Part>,
}

impl Mix {
    pub fn weights(&self) -> Vec<u64> {
        self.parts.iter().map(|p| p.weight).collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMix {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    mix: Spanned<Vec<Spanned<RawPart>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPart {
    scenario: Spanned<String>,
    weight: Spanned<i64>,
    #[serde(default)]
    rate: Option<Spanned<toml::Value>>,
}

/// Whether scenario text is a mix (it has a top-level `mix`). Text that is not TOML is
/// not a mix: the scenario parser reports its error.
pub fn is_mix(text: &str) -> bool {
    text.parse::<toml::Table>()
        .is_ok_and(|t| t.contains_key("mix"))
}

/// The error of a mix given where one flow is expected (`check`, `sweep`, `tune`,
/// `capacity`: only `run` and `validate` take a mix so far).
pub fn not_a_flow(file: &str) -> ScenarioErrors {
    ScenarioErrors(vec![ScenarioError {
        file: file.to_string(),
        line: 0,
        column: 0,
        message: "this file is a mix ([[mix]]): `run` and `validate` take a mix, this command needs one scenario (give one of the mix's)".into(),
    }])
}

/// Reads a mix file and every scenario it names.
pub fn load(path: &Path) -> Result<Mix, ScenarioErrors> {
    load_with_vars(path, &[])
}

/// [`load`] with variables given from outside (`--var`, `AUTHBENCH_VAR_*`), for every
/// scenario of the mix.
pub fn load_with_vars(path: &Path, vars: &[(String, String)]) -> Result<Mix, ScenarioErrors> {
    let file = path.display().to_string();
    let text = super::parse::read_file(path, &file)?;
    parse_with_vars(&text, &file, path.parent().unwrap_or(Path::new("")), vars)
}

/// Parses mix text; `file` names it in errors, `dir` is where its paths are relative to.
pub fn parse(text: &str, file: &str, dir: &Path) -> Result<Mix, ScenarioErrors> {
    parse_with_vars(text, file, dir, &[])
}

/// [`parse`] with variables given from outside.
pub fn parse_with_vars(
    text: &str,
    file: &str,
    dir: &Path,
    vars: &[(String, String)],
) -> Result<Mix, ScenarioErrors> {
    let at = |offset: usize, message: String| {
        let (line, column) = line_col(text, offset);
        ScenarioError {
            file: file.to_string(),
            line,
            column,
            message,
        }
    };
    let raw: RawMix = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        ScenarioErrors(vec![at(offset, e.message().trim().to_string())])
    })?;
    let mut errors = Vec::new();
    if raw.mix.get_ref().is_empty() {
        errors.push(at(
            raw.mix.span().start,
            "a mix names at least one scenario".into(),
        ));
    }
    let mut parts = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut total: u64 = 0;
    for entry in raw.mix.get_ref() {
        let p = entry.get_ref();
        let weight = *p.weight.get_ref();
        let weight = match u64::try_from(weight) {
            Ok(w) if w >= 1 => w,
            _ => {
                errors.push(at(
                    p.weight.span().start,
                    format!("weight must be a whole number of at least 1, not {weight}"),
                ));
                1
            }
        };
        total = total.saturating_add(weight);
        let rate = match &p.rate {
            None => None,
            Some(r) => {
                let text = match r.get_ref() {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    other => other.to_string(),
                };
                match crate::units::parse_rate(&text) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        errors.push(at(r.span().start, format!("rate: {e}")));
                        None
                    }
                }
            }
        };
        let named = p.scenario.get_ref();
        let path = dir.join(named);
        let here = p.scenario.span().start;
        let scenario_text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(at(
                    here,
                    format!("cannot read the scenario '{}': {e}", path.display()),
                ));
                continue;
            }
        };
        if is_mix(&scenario_text) {
            errors.push(at(
                here,
                format!("'{named}' is a mix itself: a mix names plain scenarios"),
            ));
            continue;
        }
        match Scenario::parse_with_vars(&scenario_text, &path.display().to_string(), vars) {
            Ok(s) => {
                if let Some(prev) = seen.insert(s.name.clone(), parts.len()) {
                    let _ = prev;
                    errors.push(at(
                        here,
                        format!(
                            "a second scenario named '{}': the names of a mix's scenarios must differ (reports and thresholds use them)",
                            s.name
                        ),
                    ));
                }
                parts.push(Part {
                    scenario: s,
                    path,
                    weight,
                    rate,
                });
            }
            Err(e) => {
                errors.push(at(
                    here,
                    format!("'{named}' has {} error(s), listed below", e.0.len()),
                ));
                errors.extend(e.0);
            }
        }
    }
    if total > MAX_TOTAL_WEIGHT {
        errors.push(at(
            raw.mix.span().start,
            format!("the weights add up to {total}: at most {MAX_TOTAL_WEIGHT}"),
        ));
    }
    if !errors.is_empty() {
        return Err(ScenarioErrors(errors));
    }
    Ok(Mix {
        name: raw.name.into_inner(),
        description: raw.description.unwrap_or_default(),
        source: file.to_string(),
        parts,
    })
}

/// `total` split in proportion to `weights`, exactly (largest remainder, ties to the part
/// listed first): 1,000 at 80/15/5 is 800/150/50; the counts always add up to `total`.
pub fn split(weights: &[u64], total: u64) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let mut counts: Vec<u64> = Vec::with_capacity(weights.len());
    let mut rems: Vec<(u128, usize)> = Vec::with_capacity(weights.len());
    for (i, &w) in weights.iter().enumerate() {
        let exact = u128::from(total) * u128::from(w);
        counts.push((exact / sum) as u64);
        rems.push((exact % sum, i));
    }
    let given: u64 = counts.iter().sum();
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in rems.iter().take((total - given) as usize) {
        counts[i] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    const ONE: &str = "name = \"one\"\n[[steps]]\nname = \"a\"\npath = \"/a\"\n";
    const TWO: &str = "name = \"two\"\n[[steps]]\nname = \"b\"\npath = \"/b\"\n";

    #[test]
    fn a_mix_loads_its_scenarios_and_splits_exactly() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "one.toml", ONE);
        write(d.path(), "two.toml", TWO);
        let text = "name = \"m\"\n[[mix]]\nscenario = \"one.toml\"\nweight = 80\n[[mix]]\nscenario = \"two.toml\"\nweight = 20\nrate = \"5/s\"\n";
        write(d.path(), "m.toml", text);
        let m = load(&d.path().join("m.toml")).unwrap();
        assert_eq!(m.parts.len(), 2);
        assert_eq!(m.parts[1].scenario.name, "two");
        assert_eq!(m.parts[1].rate, Some(5.0));
        assert_eq!(split(&m.weights(), 1000), [800, 200]);
    }

    #[test]
    fn splits_are_exact() {
        assert_eq!(split(&[80, 15, 5], 1000), [800, 150, 50]);
        assert_eq!(split(&[1, 1, 1], 10), [4, 3, 3]);
        assert_eq!(split(&[80, 15, 5], 7).iter().sum::<u64>(), 7);
    }

    #[test]
    fn problems_are_reported_at_file_line_col() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "one.toml", ONE);
        write(
            d.path(),
            "bad.toml",
            "name = \"bad\"\n[[steps]]\nname = \"a\"\npath = \"no-slash\"\n",
        );
        let text = "name = \"m\"\n[[mix]]\nscenario = \"one.toml\"\nweight = 0\n[[mix]]\nscenario = \"missing.toml\"\nweight = 1\n[[mix]]\nscenario = \"bad.toml\"\nweight = 1\n";
        let e = parse(text, "m.toml", d.path()).unwrap_err().to_string();
        assert!(e.contains("m.toml:4:10: weight must be"), "{e}");
        assert!(e.contains("m.toml:6:12: cannot read the scenario"), "{e}");
        assert!(e.contains("missing.toml"), "{e}");
        assert!(e.contains("m.toml:9:12: 'bad.toml' has 1 error"), "{e}");
        assert!(e.contains("bad.toml:4:"), "{e}");
        let e = parse(
            "name = \"m\"\n[[mix]]\nscenario = \"one.toml\"\nwieght = 1\n",
            "m.toml",
            d.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("m.toml:"), "{e}");
        assert!(is_mix(text) && !is_mix(ONE) && !is_mix("not toml ["));
    }
}
