//! `authbench report --recover`: the report of a run that was killed, rebuilt from the
//! results it streamed ([`crate::engine::stream`]) up to its last complete interval,
//! marked partial with the time it covers and why.

use std::path::Path;

use crate::engine::stream;
use crate::report::{Report, ReportInput, RunConfig};
use crate::timeline::{Point, Timeline};

/// Rebuilds the report of the stream at `path` (a stream directory, one of its files, or
/// the out-dir that holds it: then its newest stream).
pub fn recover(path: &Path) -> Result<Report, String> {
    let dir = stream::locate(path)?;
    let rec = stream::read(&dir)?;
    let mut config: RunConfig = serde_json::from_value(rec.config.clone())
        .map_err(|e| format!("the stream's configuration: {e}"))?;
    let why = if rec.finished {
        format!(
            "rebuilt from the result stream in '{}' (the run finished; {:.1} s)",
            dir.display(),
            rec.covered_s
        )
    } else {
        format!(
            "the run stopped without finishing: last interval flushed at {:.1} s; rebuilt from the result stream in '{}'",
            rec.covered_s,
            dir.display()
        )
    };
    config.notes.push(why);
    let mut stats = rec.stats;
    stats.timeline = Timeline {
        bucket_s: rec.intervals.first().map_or(1.0, |i| i.len_s.max(0.001)),
        points: {
            let mut started_before = 0;
            rec.intervals
                .iter()
                .map(|i| {
                    let p = Point {
                        t_s: i.t_s,
                        started: i.started.saturating_sub(started_before),
                        completed: i.ok + i.failed,
                        ok: i.ok,
                        failed: i.failed,
                        errors: i.errors,
                        rate_limited: 0,
                        p50_ms: i.p50_ms,
                        p99_ms: i.p99_ms,
                        max_ms: i.max_ms,
                        usage: None,
                    };
                    started_before = i.started;
                    p
                })
                .collect()
        },
    };
    Ok(Report::build(ReportInput {
        stats: &stats,
        config,
        wall: std::time::Duration::from_secs_f64(rec.covered_s.max(0.0)),
        partial: !rec.finished,
        abandoned: 0,
        generated_at: chrono::Utc::now(),
    }))
}
