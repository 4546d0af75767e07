//! Rows of the scenario's `[data]` handed to flows as they start, and the accounts of
//! successful flows written out (`run --save-users`).
//!
//! [`Feed`] is shared by the calibration and the measured run, so `order = "unique"`
//! never gives a row twice in one `authbench run`; when its rows run out it says so, and
//! the engine starts no more flows (the run ends cleanly, it is not an error).
//! [`UserSink`] writes CSV as flows succeed, so an interrupted run still leaves the
//! accounts it created.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::Context;

use crate::scenario::{Data, DataOrder, Scenario};

/// Which row each new flow gets.
pub struct Feed {
    data: Data,
    next: AtomicU64,
    exhausted: AtomicBool,
    /// This generator's rows, `start..start + len` (all of them unless sharded).
    start: u64,
    len: u64,
}

impl Feed {
    /// Hands out all of `data`'s rows.
    pub fn new(data: Data) -> Feed {
        let len = data.feeder.len() as u64;
        Feed {
            data,
            next: AtomicU64::new(0),
            exhausted: AtomicBool::new(false),
            start: 0,
            len,
        }
    }

    /// Hands out `shard`'s part of `data`'s rows: `unique` rows are split into disjoint
    /// slices (no row is used by two shards), `sequential` starts at the shard's slice (the
    /// shards begin on different rows, then wrap over all of them), `random` draws from
    /// all. Fails when `unique` rows are fewer than the shards.
    pub fn for_shard(data: Data, shard: Option<crate::shard::Shard>) -> Result<Feed, String> {
        let mut f = Feed::new(data);
        if let Some(s) = shard {
            let rows = f.len;
            if f.data.order == DataOrder::Unique && rows / s.count == 0 {
                return Err(format!(
                    "the scenario's {rows} unique data rows cannot be split over {} shards: every shard needs at least one",
                    s.count
                ));
            }
            f.start = s.offset(rows);
            if f.data.order == DataOrder::Unique {
                f.len = s.share(rows);
            }
        }
        Ok(f)
    }

    /// The row for a flow about to start; `None` when `unique` rows have run out.
    pub fn take(&self) -> Option<usize> {
        let rows = self.data.feeder.len().max(1) as u64;
        match self.data.order {
            DataOrder::Sequential => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                Some(((self.start + n) % rows) as usize)
            }
            DataOrder::Random => {
                use rand::Rng;
                Some(rand::thread_rng().gen_range(0..rows as usize))
            }
            DataOrder::Unique => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                if n < self.len {
                    Some((self.start + n) as usize)
                } else {
                    self.exhausted.store(true, Ordering::Relaxed);
                    None
                }
            }
        }
    }

    /// With `unique` rows that ran out: how many rows this generator had.
    pub fn exhausted_after(&self) -> Option<u64> {
        self.exhausted.load(Ordering::Relaxed).then_some(self.len)
    }
}

/// `--save-users`: a CSV of the successful flows' `[vars]` and data columns.
pub struct UserSink {
    /// Column slots in the variable table, in the header's order.
    slots: Vec<usize>,
    out: Mutex<Writer>,
}

struct Writer {
    csv: csv::Writer<BufWriter<File>>,
    /// The first write error, reported when the sink is finished.
    error: Option<csv::Error>,
}

impl UserSink {
    /// Creates `path` and writes its header row: the scenario's `[vars]` names, then its
    /// data columns. An error when the scenario has neither.
    pub fn create(path: &Path, scenario: &Scenario) -> anyhow::Result<UserSink> {
        let mut columns: Vec<(&str, usize)> = scenario
            .var_names
            .iter()
            .map(|(n, s)| (n.as_str(), *s))
            .collect();
        if let Some(d) = &scenario.data {
            columns.extend(d.columns());
        }
        if columns.is_empty() {
            anyhow::bail!(
                "--save-users: the scenario '{}' has no [vars] and no [data] columns to save",
                scenario.name
            );
        }
        let file = File::create(path).with_context(|| {
            format!(
                "could not create the --save-users file '{}'",
                path.display()
            )
        })?;
        let mut csv = csv::Writer::from_writer(BufWriter::new(file));
        csv.write_record(columns.iter().map(|(n, _)| n))
            .with_context(|| format!("could not write '{}'", path.display()))?;
        Ok(UserSink {
            slots: columns.iter().map(|(_, s)| *s).collect(),
            out: Mutex::new(Writer { csv, error: None }),
        })
    }

    /// Writes one successful flow's values.
    pub fn save(&self, vars: &[String]) {
        let Ok(mut w) = self.out.lock() else { return };
        if w.error.is_some() {
            return;
        }
        let row = self
            .slots
            .iter()
            .map(|s| vars.get(*s).map_or("", String::as_str));
        if let Err(e) = w.csv.write_record(row) {
            w.error = Some(e);
        }
    }

    /// Flushes the file; the first error of the run, if any.
    pub fn finish(&self) -> anyhow::Result<()> {
        let mut w = self
            .out
            .lock()
            .map_err(|_| anyhow::anyhow!("the --save-users writer was poisoned"))?;
        if let Some(e) = w.error.take() {
            return Err(e).context("could not write the --save-users file");
        }
        w.csv
            .flush()
            .context("could not write the --save-users file")
    }
}
