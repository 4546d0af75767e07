//! Results streamed to disk while a run goes, so a run that is killed (SIGKILL, an OOM kill,
//! a pod eviction, a CI timeout) still leaves everything measured up to its last interval.
//!
//! Every interval (`--interval`, 1 s by default) the collector hands its interval
//! [`Stats`] here before adding them to the run's totals: the final report is the sum of
//! exactly what was streamed. Two files in `<out-dir>/<start>-run.stream/`:
//!
//! - `latency.hlog`: HdrHistogram's interval log format (the one `HistogramLogWriter`
//!   writes and `HistogramLogProcessor` reads), one compressed histogram per interval and
//!   series, values in microseconds. The series are tags: `flow` (successful flows),
//!   `flow-failed`, `flow-intended` (from the intended start), and per step `s<i>-<name>`
//!   (latency), `s<i>-<name>-ttfb`, `-connect`, `-tls`. Empty histograms are not written.
//! - `intervals.jsonl`: a header line (`"schema": "authbench.stream/1"`, the run's
//!   configuration, the step names), then one line per interval with its counts, failures
//!   by step and kind, bytes and closed-connection times, the outage tracker's state
//!   (windows closed, the start of one still open, connection probes) and the generator's
//!   CPU seconds so far; an `"end"` line when the run finished. (The machine's and the
//!   server's CPU are sampled outside the engine and are in the final report only.)
//!
//! Each interval's histograms are written before its line, with plain `write`s (no
//! buffer in the process), so what the page cache holds survives the process; [`read`]
//! takes the intervals whose line is complete and ignores a line cut by a kill.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::samples::FailureKind;
use crate::stats::{ClosedTimes, Stats};

/// The version of the stream format.
pub const SCHEMA: &str = "authbench.stream/1";

/// What the engine needs to stream a run.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// The directory the two files go in (created).
    pub dir: PathBuf,
    /// How often an interval is written.
    pub interval: Duration,
    /// Written into the header line as `config` (the run's configuration, so a recovered
    /// report says what was run).
    pub config: Value,
}

/// The open stream of one run.
pub struct Streamer {
    hlog: File,
    lines: File,
    tags: Vec<[String; 4]>,
    serializer: V2DeflateSerializer,
    buf: Vec<u8>,
    index: u64,
    /// A write failed: streaming stops (the run goes on; the final report says so).
    pub failed: Option<String>,
}

fn tag_name(i: usize, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("s{i}-{clean}")
}

impl Streamer {
    /// Creates the directory and writes the headers.
    pub fn create(spec: &StreamSpec, steps: &[String]) -> std::io::Result<Streamer> {
        std::fs::create_dir_all(&spec.dir)?;
        let mut hlog = File::create(spec.dir.join("latency.hlog"))?;
        let mut lines = File::create(spec.dir.join("intervals.jsonl"))?;
        let now = std::time::SystemTime::now();
        let mut header = Vec::new();
        let mut ser = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment("authbench interval log: values in microseconds")
            .add_comment("tags: flow, flow-failed, flow-intended, s<i>-<step>[-ttfb|-connect|-tls]")
            .with_start_time(now)
            .with_base_time(now)
            .begin_log_with(&mut header, &mut ser)?;
        header.extend_from_slice(
            b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
        );
        hlog.write_all(&header)?;
        let head = json!({
            "schema": SCHEMA,
            "started_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "interval_s": spec.interval.as_secs_f64(),
            "steps": steps,
            "config": spec.config,
        });
        lines.write_all(format!("{head}\n").as_bytes())?;
        let tags = steps
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let t = tag_name(i, n);
                [
                    t.clone(),
                    format!("{t}-ttfb"),
                    format!("{t}-connect"),
                    format!("{t}-tls"),
                ]
            })
            .collect();
        Ok(Streamer {
            hlog,
            lines,
            tags,
            serializer: ser,
            buf: Vec::new(),
            index: 0,
            failed: None,
        })
    }

    /// Writes one interval: `start_s..start_s + len_s` since the run began, `started` the
    /// flows started so far.
    /// `extra`'s members (the outage tracker's state, the generator's CPU) are added to
    /// the interval's line.
    pub fn write(&mut self, s: &Stats, start_s: f64, len_s: f64, started: u64, extra: Value) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.try_write(s, start_s, len_s, started, extra) {
            self.failed = Some(format!(
                "the result stream stopped at interval {}: {e}",
                self.index
            ));
        }
    }

    fn try_write(
        &mut self,
        s: &Stats,
        start_s: f64,
        len_s: f64,
        started: u64,
        extra: Value,
    ) -> Result<(), String> {
        self.buf.clear();
        let start = Duration::from_secs_f64(start_s.max(0.0));
        let len = Duration::from_secs_f64(len_s.max(0.0));
        {
            let mut w = IntervalLogWriterBuilder::new()
                .begin_log_with(&mut self.buf, &mut self.serializer)
                .map_err(|e| e.to_string())?;
            let mut put = |h: &Histogram<u64>, tag: &str| -> Result<(), String> {
                if h.is_empty() {
                    return Ok(());
                }
                w.write_histogram(h, start, len, Tag::new(tag))
                    .map_err(|e| e.to_string())
            };
            put(&s.flow_ok, "flow")?;
            put(&s.flow_failed, "flow-failed")?;
            put(&s.flow_intended, "flow-intended")?;
            for (st, tags) in s.steps.iter().zip(&self.tags) {
                put(&st.latency, &tags[0])?;
                put(&st.ttfb, &tags[1])?;
                put(&st.connect, &tags[2])?;
                put(&st.tls, &tags[3])?;
            }
        }
        self.hlog.write_all(&self.buf).map_err(|e| e.to_string())?;
        let steps: Vec<Value> = s
            .steps
            .iter()
            .map(|st| {
                let failures: Vec<Value> = st
                    .failures
                    .iter()
                    .map(|(k, n)| json!({"class": k.class(), "detail": k.detail(), "count": n}))
                    .collect();
                let c = &st.closed;
                json!({
                    "requests": st.attempts,
                    "ok": st.ok,
                    "bytes": st.bytes,
                    "failures": failures,
                    "closed": [c.count, c.reused, c.idle_sum_us, c.idle_max_us, c.waited_sum_us, c.waited_max_us],
                })
            })
            .collect();
        let mut line = json!({
            "i": self.index,
            "t_s": start_s,
            "len_s": len_s,
            "started": started,
            "flows_ok": s.flows_ok(),
            "flows_failed": s.flows_failed(),
            "warmup": s.warmup_flows,
            "steps": steps,
        });
        if let (Some(l), Value::Object(x)) = (line.as_object_mut(), extra) {
            l.extend(x);
        }
        self.lines
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        self.index += 1;
        Ok(())
    }

    /// Marks the stream as finished: the run ended and its report was built.
    pub fn end(&mut self, wall_s: f64, interrupted: bool) {
        if self.failed.is_none() {
            let line = json!({"end": true, "wall_s": wall_s, "interrupted": interrupted});
            let _ = self.lines.write_all(format!("{line}\n").as_bytes());
        }
    }
}

/// A stream read back: the measurements of its complete intervals.
#[derive(Debug)]
pub struct Recovered {
    /// The header's `config`.
    pub config: Value,
    pub started_at: String,
    pub stats: Stats,
    /// Per interval: start (s), length (s), flows started so far, ok, failed, failed
    /// requests, and the intended-start flow histogram's p50/p99/max in ms.
    pub intervals: Vec<IntervalFigures>,
    /// The end of the last complete interval, seconds since the run began.
    pub covered_s: f64,
    /// The stream has its end line: the run finished.
    pub finished: bool,
}

/// One interval's figures, for a timeline.
#[derive(Debug, Clone, Default)]
pub struct IntervalFigures {
    pub t_s: f64,
    pub len_s: f64,
    pub started: u64,
    pub ok: u64,
    pub failed: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The stream directory `path` names: itself when it holds `intervals.jsonl`, else the
/// newest `*.stream` directory in it.
pub fn locate(path: &Path) -> Result<PathBuf, String> {
    if path.join("intervals.jsonl").is_file() {
        return Ok(path.to_path_buf());
    }
    if path
        .file_name()
        .is_some_and(|n| n == "intervals.jsonl" || n == "latency.hlog")
    {
        return path
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| format!("'{}' has no directory", path.display()));
    }
    let entries = std::fs::read_dir(path).map_err(|e| format!("'{}': {e}", path.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "stream") && p.join("intervals.jsonl").is_file()
        })
        .collect();
    dirs.sort();
    dirs.pop().ok_or_else(|| {
        format!(
            "'{}' holds no result stream (a directory '<start>-run.stream' with intervals.jsonl)",
            path.display()
        )
    })
}

/// Reads a stream directory: the complete intervals only (a line or a histogram cut by a
/// kill, and any interval after the last complete line, are left out).
pub fn read(dir: &Path) -> Result<Recovered, String> {
    let text = std::fs::read_to_string(dir.join("intervals.jsonl"))
        .map_err(|e| format!("'{}': {e}", dir.join("intervals.jsonl").display()))?;
    let mut lines = text.split_inclusive('\n');
    let head: Value = lines
        .next()
        .filter(|l| l.ends_with('\n'))
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or("intervals.jsonl has no complete header line")?;
    if head.get("schema").and_then(Value::as_str) != Some(SCHEMA) {
        return Err(format!("intervals.jsonl is not an {SCHEMA} stream"));
    }
    let names: Vec<String> = serde_json::from_value(head["steps"].clone())
        .map_err(|e| format!("the header's steps: {e}"))?;
    let mut stats = Stats::new(&names);
    let mut intervals = Vec::new();
    let mut finished = false;
    let mut covered_s = 0.0;
    let mut last_end = f64::NEG_INFINITY;
    for l in lines {
        // A line without its newline was cut by the kill.
        let Some(v) = l
            .strip_suffix('\n')
            .and_then(|l| serde_json::from_str::<Value>(l).ok())
        else {
            break;
        };
        if v.get("end").is_some() {
            finished = true;
            break;
        }
        let f = |k: &str| v[k].as_u64().unwrap_or(0);
        let t_s = v["t_s"].as_f64().unwrap_or(0.0);
        let len_s = v["len_s"].as_f64().unwrap_or(0.0);
        stats.warmup_flows += f("warmup");
        let mut errors = 0;
        for (st, sv) in stats
            .steps
            .iter_mut()
            .zip(v["steps"].as_array().into_iter().flatten())
        {
            let g = |k: &str| sv[k].as_u64().unwrap_or(0);
            st.attempts += g("requests");
            st.ok += g("ok");
            st.bytes += g("bytes");
            errors += g("requests") - g("ok").min(g("requests"));
            for fv in sv["failures"].as_array().into_iter().flatten() {
                let k = FailureKind::Loaded {
                    class: fv["class"].as_str().unwrap_or("").into(),
                    detail: fv["detail"].as_str().unwrap_or("").into(),
                };
                *st.failures.entry(k).or_insert(0) += fv["count"].as_u64().unwrap_or(0);
            }
            let c: Vec<u64> = sv["closed"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_u64().unwrap_or(0)).collect())
                .unwrap_or_default();
            if c.len() == 6 {
                st.closed.add(&ClosedTimes {
                    count: c[0],
                    reused: c[1],
                    idle_sum_us: c[2],
                    idle_max_us: c[3],
                    waited_sum_us: c[4],
                    waited_max_us: c[5],
                });
            }
        }
        intervals.push(IntervalFigures {
            t_s,
            len_s,
            started: f("started"),
            ok: f("flows_ok"),
            failed: f("flows_failed"),
            errors,
            ..IntervalFigures::default()
        });
        last_end = t_s + len_s;
        covered_s = last_end;
    }
    // The histograms of the complete intervals: those that start before the last complete
    // line's end.
    let hlog = std::fs::read(dir.join("latency.hlog"))
        .map_err(|e| format!("'{}': {e}", dir.join("latency.hlog").display()))?;
    let mut tags: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        let t = tag_name(i, n);
        for (j, suffix) in ["", "-ttfb", "-connect", "-tls"].iter().enumerate() {
            tags.insert(format!("{t}{suffix}"), (i, j));
        }
    }
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(&hlog) {
        let Ok(LogEntry::Interval(h)) = entry else {
            if entry.is_err() {
                break;
            }
            continue;
        };
        let start = h.start_timestamp().as_secs_f64();
        if start >= last_end - 1e-6 {
            continue;
        }
        let Ok(bytes) = base64_decode(h.encoded_histogram()) else {
            break;
        };
        let Ok(hist) = de.deserialize::<u64, _>(&mut bytes.as_slice()) else {
            break;
        };
        let add = |into: &mut Histogram<u64>| {
            let _ = into.add(&hist);
        };
        match h.tag().map(|t| t.as_str()) {
            Some("flow") => add(&mut stats.flow_ok),
            Some("flow-failed") => add(&mut stats.flow_failed),
            Some("flow-intended") => {
                add(&mut stats.flow_intended);
                if let Some(iv) = intervals
                    .iter_mut()
                    .find(|iv| (iv.t_s - start).abs() < 1e-3)
                {
                    iv.p50_ms = hist.value_at_quantile(0.5) as f64 / 1e3;
                    iv.p99_ms = hist.value_at_quantile(0.99) as f64 / 1e3;
                    iv.max_ms = hist.max() as f64 / 1e3;
                }
            }
            Some(t) => {
                if let Some(&(i, j)) = tags.get(t) {
                    let st = &mut stats.steps[i];
                    add(match j {
                        0 => &mut st.latency,
                        1 => &mut st.ttfb,
                        2 => &mut st.connect,
                        _ => &mut st.tls,
                    });
                }
            }
            None => {}
        }
    }
    Ok(Recovered {
        config: head["config"].clone(),
        started_at: head["started_at"].as_str().unwrap_or("").to_string(),
        stats,
        intervals,
        covered_s,
        finished,
    })
}

/// Standard base64 (the interval log's encoding), via the crate's own decoder.
fn base64_decode(s: &str) -> Result<Vec<u8>, ()> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| ())
}
