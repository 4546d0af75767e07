//! The checks of `[data]`: its `order`, and its file, which is loaded here (once, when the
//! scenario loads) so that every problem in it is reported like a scenario error: a file
//! that cannot be read or holds no rows at the `file = ` key, a bad row or column name at
//! the data file's own line.

use std::path::Path;
use std::sync::Arc;

use toml::Spanned;

use super::{valid_ident, Diagnostics};
use crate::scenario::parse::RawData;
use crate::scenario::{DataOrder, Feeder, ScenarioError, BUILTINS};

impl Diagnostics<'_> {
    /// Loads the `[data]` file (its path relative to `base`, the scenario's directory) and
    /// checks its columns and `order`.
    pub(in crate::scenario) fn data(
        &mut self,
        raw: &RawData,
        base: &Path,
    ) -> Option<(Arc<Feeder>, DataOrder)> {
        let order = match &raw.order {
            None => Some(DataOrder::Sequential),
            Some(o) => {
                let order = DataOrder::parse(o.get_ref());
                if order.is_none() {
                    self.err(
                        o.span().start,
                        format!(
                            "`order = \"{}\"`: use \"sequential\" (wraps around), \"random\" or \"unique\" (each row to at most one flow)",
                            o.get_ref()
                        ),
                    );
                }
                order
            }
        };
        let feeder = self.data_file(&raw.file, base)?;
        Some((Arc::new(feeder), order?))
    }

    fn data_file(&mut self, file: &Spanned<String>, base: &Path) -> Option<Feeder> {
        let path = base.join(file.get_ref());
        let shown = path.display().to_string();
        let feeder = match Feeder::load(&path) {
            Ok(f) => f,
            Err(e) if e.line == 0 => {
                self.err(
                    file.span().start,
                    format!("data file {shown}: {}", e.message),
                );
                return None;
            }
            Err(e) => {
                self.errors.push(ScenarioError {
                    file: shown,
                    line: e.line,
                    column: 1,
                    message: e.message,
                });
                return None;
            }
        };
        let mut ok = true;
        for c in feeder.columns() {
            let problem = if valid_ident(c).is_err() {
                Some(format!(
                    "column `{c}` is not a valid variable name: use letters, digits and `_`"
                ))
            } else if BUILTINS.iter().any(|(b, _)| b == c) {
                Some(format!(
                    "column `{c}` is a built-in variable's name: rename it"
                ))
            } else {
                None
            };
            if let Some(message) = problem {
                self.errors.push(ScenarioError {
                    file: shown.clone(),
                    line: 1,
                    column: 1,
                    message,
                });
                ok = false;
            }
        }
        ok.then_some(feeder)
    }
}
