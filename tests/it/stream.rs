//! Results streamed to disk as the run goes: a run killed with SIGKILL is recovered from
//! its stream (`report --recover`), and a finished run's report is exactly the sum of what
//! it streamed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

use super::support::{cli, report};
use authbench::options::RunOptions;
use authbench::report::{histogram, Report};

fn stream_dir(out: &Path) -> PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "stream"))
        .expect("a <stamp>-run.stream directory")
}

/// Flows in the complete interval lines of a stream, and the end of the last one.
fn streamed_flows(dir: &Path) -> (u64, f64) {
    let text = std::fs::read_to_string(dir.join("intervals.jsonl")).unwrap();
    let (mut flows, mut end) = (0, 0.0);
    for l in text.split_inclusive('\n').skip(1) {
        let Some(v) = l
            .strip_suffix('\n')
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        else {
            break;
        };
        if v.get("end").is_some() {
            break;
        }
        flows += v["flows_ok"].as_u64().unwrap() + v["flows_failed"].as_u64().unwrap();
        end = v["t_s"].as_f64().unwrap() + v["len_s"].as_f64().unwrap();
    }
    (flows, end)
}

/// The sum of one tag's interval histograms that start before `end_s`, read with
/// HdrHistogram's own log reader.
fn hlog_sum(dir: &Path, tag: &str, end_s: f64) -> Histogram<u64> {
    let bytes = std::fs::read(dir.join("latency.hlog")).unwrap();
    let mut sum = Histogram::<u64>::new(3).unwrap();
    let mut de = Deserializer::new();
    for e in IntervalLogIterator::new(&bytes) {
        let Ok(LogEntry::Interval(h)) = e else {
            if e.is_err() {
                break;
            }
            continue;
        };
        if h.tag().map(|t| t.as_str()) != Some(tag)
            || h.start_timestamp().as_secs_f64() >= end_s - 1e-6
        {
            continue;
        }
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(h.encoded_histogram())
            .unwrap();
        let hist: Histogram<u64> = de.deserialize(&mut raw.as_slice()).unwrap();
        sum.add(&hist).unwrap();
    }
    sum
}

fn same(a: &Histogram<u64>, b: &Histogram<u64>) {
    assert_eq!(a.len(), b.len());
    for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
        assert_eq!(a.value_at_quantile(q), b.value_at_quantile(q), "q {q}");
    }
}

#[test]
fn a_run_killed_with_sigkill_is_recovered_from_its_stream() {
    let out = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authbench"))
        .args(["run", "--no-progress", "--cost", "4", "--calibration", "0"])
        .args(["--rate", "20", "--duration", "20s", "--interval", "1s"])
        .arg("--out-dir")
        .arg(out.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(6));
    child.kill().unwrap(); // SIGKILL: nothing at exit runs.
    child.wait().unwrap();
    let dir = stream_dir(out.path());
    assert!(
        !std::fs::read_dir(out.path()).unwrap().any(|e| e
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "json")),
        "a killed run wrote no report of its own"
    );
    let (flows, end_s) = streamed_flows(&dir);
    assert!(
        end_s >= 5.0,
        "only {end_s} s streamed before the kill at 6 s"
    );

    let (code, stdout, stderr) = cli(&["report", "--recover", out.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let json = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("report: "))
        .find(|p| p.ends_with(".json"))
        .unwrap();
    let r: Report = authbench::report::read(Path::new(json)).unwrap();
    assert!(r.partial);
    assert!(r.verdict().contains("PARTIAL"));
    assert!(
        r.config
            .notes
            .iter()
            .any(|n| n.contains("stopped without finishing: last interval flushed at")),
        "{:?}",
        r.config.notes
    );
    assert_eq!(r.summary.total_flows, flows);
    assert!(flows >= 80, "{flows} flows in {end_s} s at 20/s");
    assert!((r.summary.wall_time_s - end_s).abs() < 1e-6);
    for (i, s) in r.steps.iter().enumerate() {
        let from_log = hlog_sum(&dir, &format!("s{i}-{}", s.name), end_s);
        same(&histogram::decode(&s.histogram).unwrap(), &from_log);
    }
    same(
        &histogram::decode(&r.flow_histogram).unwrap(),
        &hlog_sum(&dir, "flow", end_s),
    );
}

#[tokio::test]
async fn a_finished_run_is_the_sum_of_what_it_streamed() {
    let out = tempfile::tempdir().unwrap();
    let o = RunOptions {
        flows: 60,
        concurrency: 6,
        cost: 4,
        calibration_flows: 0,
        out_dir: Some(out.path().to_path_buf()),
        interval: Duration::from_millis(100),
        ..RunOptions::default()
    };
    let r = report(&o).await;
    let dir = stream_dir(out.path());
    let (flows, end_s) = streamed_flows(&dir);
    assert_eq!(flows, r.summary.total_flows);
    let rebuilt = authbench::pipeline::recover(&dir).unwrap();
    assert!(!rebuilt.partial);
    assert_eq!(rebuilt.summary.total_flows, r.summary.total_flows);
    assert_eq!(rebuilt.summary.successful_flows, r.summary.successful_flows);
    for (i, (a, b)) in r.steps.iter().zip(&rebuilt.steps).enumerate() {
        assert_eq!((a.requests, a.ok, a.failed), (b.requests, b.ok, b.failed));
        assert_eq!(a.bytes_received, b.bytes_received);
        let final_h = histogram::decode(&a.histogram).unwrap();
        same(&final_h, &histogram::decode(&b.histogram).unwrap());
        same(
            &final_h,
            &hlog_sum(&dir, &format!("s{i}-{}", a.name), f64::MAX),
        );
    }
    assert!(end_s > 0.0);
}
