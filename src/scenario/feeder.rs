//! The rows of a scenario's `[data]` file (existing accounts and the like): a CSV file
//! with a header row, or JSON lines (`.jsonl`, `.ndjson`: one object per line).
//!
//! Loaded once when the scenario loads and shared by every flow, never copied per flow.
//! A million rows must cost little more than their text, so every value lives in one
//! `String` and a row is a run of end offsets into it: no `String` per value, no `Vec`
//! per row. Which row a flow gets (`order`) is decided by the engine; this module only
//! stores and reads. Every problem names the file and its line.

use std::fmt;
use std::path::Path;

/// How flows take rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataOrder {
    /// Row after row, starting again at the first after the last.
    Sequential,
    /// A row drawn uniformly at random for each flow.
    Random,
    /// Each row to at most one flow; the run ends when none is left.
    Unique,
}

impl DataOrder {
    pub fn parse(s: &str) -> Option<DataOrder> {
        match s {
            "sequential" => Some(DataOrder::Sequential),
            "random" => Some(DataOrder::Random),
            "unique" => Some(DataOrder::Unique),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DataOrder::Sequential => "sequential",
            DataOrder::Random => "random",
            DataOrder::Unique => "unique",
        }
    }
}

/// A problem in a data file: `line` is 1-based, or 0 for the file as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeederError {
    pub line: usize,
    pub message: String,
}

fn at(line: usize, message: impl Into<String>) -> FeederError {
    FeederError {
        line,
        message: message.into(),
    }
}

/// The rows of a data file, compactly.
pub struct Feeder {
    columns: Vec<String>,
    /// Every value of every row, one after another.
    text: String,
    /// End offset in `text` of each value, row after row (`rows × columns` entries); a
    /// value starts where the one before it ends.
    ends: Vec<usize>,
}

impl fmt::Debug for Feeder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feeder")
            .field("columns", &self.columns)
            .field("rows", &self.len())
            .finish()
    }
}

impl Feeder {
    /// Reads a data file: JSON lines when its name ends in `.jsonl` or `.ndjson`, else CSV.
    /// The file is streamed, never held whole beside its values.
    pub fn load(path: &Path) -> Result<Feeder, FeederError> {
        let cannot = |e: std::io::Error| at(0, format!("cannot read the file: {e}"));
        let file = std::fs::File::open(path).map_err(cannot)?;
        let size = file.metadata().map_err(cannot)?.len();
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let json_lines = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"));
        let reader = std::io::BufReader::with_capacity(1 << 16, file);
        if json_lines {
            Feeder::from_json_lines(reader, size)
        } else {
            Feeder::from_csv(reader, size)
        }
    }

    /// CSV with a header row naming the columns; `size_hint` is the input's size in bytes.
    pub fn from_csv(input: impl std::io::Read, size_hint: usize) -> Result<Feeder, FeederError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::Headers)
            .from_reader(input);
        let line_of = |e: &csv::Error| e.position().map_or(0, |p| p.line() as usize);
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| at(line_of(&e).max(1), csv_message(&e)))?
            .iter()
            .map(str::to_string)
            .collect();
        if columns.is_empty() || columns.iter().all(String::is_empty) {
            return Err(at(0, "the file is empty: a CSV data file starts with a header row naming its columns (e.g. `email,password`)"));
        }
        let mut feeder = Feeder::with_columns(columns, size_hint)?;
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    let line = record.position().map_or(0, |p| p.line() as usize);
                    if record.len() != feeder.columns.len() {
                        return Err(at(
                            line,
                            format!(
                                "this row has {} values, the header has {} ({})",
                                record.len(),
                                feeder.columns.len(),
                                feeder.columns.join(",")
                            ),
                        ));
                    }
                    for v in record.iter() {
                        feeder.push_value(v);
                    }
                }
                Err(e) => return Err(at(line_of(&e), csv_message(&e))),
            }
        }
        feeder.finish()
    }

    /// One JSON object per line; the first object's keys are the columns, and every other
    /// object must have the same keys. Values are strings, numbers or booleans.
    pub fn from_json_lines(
        input: impl std::io::BufRead,
        size_hint: usize,
    ) -> Result<Feeder, FeederError> {
        let mut feeder: Option<Feeder> = None;
        let mut row: Vec<String> = Vec::new();
        for (i, raw) in input.lines().enumerate() {
            let line = i + 1;
            let raw = raw.map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => at(line, "not UTF-8 text"),
                _ => at(line, format!("cannot read the file: {e}")),
            })?;
            if raw.trim().is_empty() {
                continue;
            }
            let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&raw)
                .map_err(|e| at(line, format!("not a JSON object: {e}")))?;
            let f = match &mut feeder {
                Some(f) => f,
                None => feeder.insert(Feeder::with_columns(
                    obj.keys().cloned().collect(),
                    size_hint,
                )?),
            };
            if let Some(extra) = obj.keys().find(|k| !f.columns.contains(k)) {
                return Err(at(
                    line,
                    format!(
                        "key `{extra}` is not in the first row (its keys are the columns: {})",
                        f.columns.join(", ")
                    ),
                ));
            }
            row.clear();
            for c in &f.columns {
                let v = obj.get(c).ok_or_else(|| {
                    at(
                        line,
                        format!(
                            "no `{c}` in this row (every row needs the first row's keys: {})",
                            f.columns.join(", ")
                        ),
                    )
                })?;
                row.push(match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(at(
                            line,
                            format!("`{c}` must be a string, a number or a boolean"),
                        ))
                    }
                });
            }
            for v in &row {
                f.push_value(v);
            }
        }
        feeder
            .ok_or_else(|| at(0, "the file is empty: JSON lines hold one object per line, e.g. {\"email\": \"a@x.y\", \"password\": \"pw\"}"))?
            .finish()
    }

    fn with_columns(columns: Vec<String>, size_hint: usize) -> Result<Feeder, FeederError> {
        if columns.is_empty() {
            return Err(at(1, "the first row has no columns"));
        }
        for (i, c) in columns.iter().enumerate() {
            if columns[..i].contains(c) {
                return Err(at(1, format!("column `{c}` appears twice")));
            }
        }
        Ok(Feeder {
            columns,
            // The values are at most the file's bytes: one allocation, never regrown.
            text: String::with_capacity(size_hint),
            ends: Vec::new(),
        })
    }

    fn push_value(&mut self, v: &str) {
        self.text.push_str(v);
        self.ends.push(self.text.len());
    }

    fn finish(mut self) -> Result<Feeder, FeederError> {
        if self.ends.is_empty() {
            return Err(at(
                0,
                format!(
                    "no rows: the file names its columns ({}) but holds no data",
                    self.columns.join(", ")
                ),
            ));
        }
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
        Ok(self)
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ends.len() / self.columns.len().max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The value of `column` in `row` ("" when either is out of range).
    pub fn value(&self, row: usize, column: usize) -> &str {
        let n = self.columns.len();
        if column >= n {
            return "";
        }
        let i = row.saturating_mul(n).saturating_add(column);
        let Some(&end) = self.ends.get(i) else {
            return "";
        };
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..end]
    }

    /// The values of `row`, in column order.
    pub fn row(&self, row: usize) -> impl Iterator<Item = &str> + '_ {
        (0..self.columns.len()).map(move |c| self.value(row, c))
    }

    /// Bytes held (values and offsets), for the memory figures.
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * std::mem::size_of::<usize>()
    }
}

fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_string(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("this row has {len} values, the header has {expected_len}"),
        _ => {
            // The csv crate's message repeats the position; keep only the cause.
            let m = e.to_string();
            m.rsplit_once(": ")
                .map_or(m.clone(), |(_, c)| c.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(b: &[u8]) -> Result<Feeder, FeederError> {
        Feeder::from_csv(b, b.len())
    }

    fn jl(b: &[u8]) -> Result<Feeder, FeederError> {
        Feeder::from_json_lines(b, b.len())
    }

    #[test]
    fn csv_rows_and_values() {
        let f = csv(b"email, password\na@x.y,p1\n\"b,c@x.y\",\"p \"\"2\"\"\"\n").unwrap();
        assert_eq!(f.columns(), ["email", "password"]);
        assert_eq!(f.len(), 2);
        assert_eq!(f.row(0).collect::<Vec<_>>(), ["a@x.y", "p1"]);
        assert_eq!(f.row(1).collect::<Vec<_>>(), ["b,c@x.y", "p \"2\""]);
        assert_eq!(f.value(2, 0), "");
        assert_eq!(f.value(0, 9), "");
    }

    #[test]
    fn csv_errors_name_the_line() {
        let e = csv(b"").unwrap_err();
        assert!(e.message.contains("empty"), "{e:?}");
        let e = csv(b"email,password\n").unwrap_err();
        assert!(e.message.contains("no rows"), "{e:?}");
        let e = csv(b"email,password\na,b\nc\n").unwrap_err();
        assert_eq!(e.line, 3, "{e:?}");
        assert!(e.message.contains("1 values, the header has 2"), "{e:?}");
        let e = csv(b"a,a\n1,2\n").unwrap_err();
        assert!(e.message.contains("twice"), "{e:?}");
        let e = csv(b"a\nok\n\xff\n").unwrap_err();
        assert_eq!(e.line, 3, "{e:?}");
    }

    #[test]
    fn json_lines() {
        let f = jl(b"{\"email\":\"a@x.y\",\"n\":3}\n\n{\"n\":true,\"email\":\"b\"}\n").unwrap();
        assert_eq!(f.columns(), ["email", "n"]);
        assert_eq!(f.row(1).collect::<Vec<_>>(), ["b", "true"]);
        let e = jl(b"{\"a\":1}\n{\"b\":1}\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = jl(b"{\"a\":1,\"b\":2}\n{\"a\":1}\n").unwrap_err();
        assert!(e.message.contains("no `b`"), "{e:?}");
        let e = jl(b"{\"a\":1}\n[1]\n").unwrap_err();
        assert!(
            e.line == 2 && e.message.contains("not a JSON object"),
            "{e:?}"
        );
        let e = jl(b"{\"a\":null}\n").unwrap_err();
        assert!(e.message.contains("string, a number"), "{e:?}");
        assert!(jl(b"\n").unwrap_err().message.contains("empty"));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn csv_round_trips(rows in proptest::collection::vec(("[^\r]{0,8}", "[ -~é]{0,6}"), 1..20)) {
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(["a", "b"]).unwrap();
                for (a, b) in &rows {
                    w.write_record([a, b]).unwrap();
                }
                let bytes = w.into_inner().unwrap();
                let f = Feeder::from_csv(&bytes[..], bytes.len()).unwrap();
                prop_assert_eq!(f.len(), rows.len());
                for (i, (a, b)) in rows.iter().enumerate() {
                    prop_assert_eq!(f.value(i, 0), a.as_str());
                    prop_assert_eq!(f.value(i, 1), b.as_str());
                }
            }

            #[test]
            fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                let _ = Feeder::from_csv(&bytes[..], 0);
                let _ = Feeder::from_json_lines(&bytes[..], 0);
            }
        }
    }
}
