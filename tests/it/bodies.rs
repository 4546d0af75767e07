//! Bounded bodies: a response is kept up to `--max-body` and the rest is read, counted and
//! dropped, so a server that answers gigabytes cannot exhaust the generator's memory; a
//! step that reads a body longer than the limit fails as `body_too_large`, and a step that
//! does not read it passes. Served by an in-process server whose bodies are streamed from
//! one 64 KiB chunk (it allocates nothing per byte either).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use hyper::body::Frame;

use super::support::{report, scenario_file, serve_on_own_thread};
use authbench::options::RunOptions;

/// A body of `left` bytes of `x`, in 64 KiB frames of one shared buffer.
struct Big {
    chunk: Bytes,
    left: u64,
}

impl hyper::body::Body for Big {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len() as u64) as usize;
        self.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }
}

fn big(len: u64) -> axum::response::Response {
    let body = Big {
        chunk: Bytes::from(vec![b'x'; 64 * 1024]),
        left: len,
    };
    axum::response::Response::new(axum::body::Body::new(body))
}

/// `/big`: `len` bytes; `/small`: a short JSON object.
fn server(len: u64) -> std::net::SocketAddr {
    serve_on_own_thread(
        Router::new()
            .route("/big", get(move || async move { big(len) }))
            .route(
                "/small",
                get(|| async { axum::Json(serde_json::json!({"ok": true})) }),
            ),
    )
}

/// `/big` not read, `/small` read, `/big` read (a check on it).
const THREE_STEPS: &str = r#"
name = "bodies"
[[steps]]
name = "download"
path = "/big"
expect = 200
[[steps]]
name = "small"
path = "/small"
expect = 200
check = [{ pointer = "/ok", equals = true }]
[[steps]]
name = "parse-big"
path = "/big"
expect = 200
check = [{ pointer = "/ok", exists = true }]
"#;

fn opts(
    addr: std::net::SocketAddr,
    flows: u64,
    max_body: usize,
) -> (tempfile::TempDir, RunOptions) {
    let (dir, scenario) = scenario_file(THREE_STEPS);
    let o = RunOptions {
        target: Some(format!("http://{addr}")),
        scenario,
        flows,
        concurrency: 4,
        max_body,
        calibration_flows: 0,
        out_dir: None,
        progress: false,
        timeout: Duration::from_secs(60),
        ..RunOptions::default()
    };
    (dir, o)
}

#[tokio::test]
async fn a_body_past_the_limit_fails_only_the_step_that_reads_it() {
    let len = 3 * 1024 * 1024 + 17;
    let addr = server(len);
    let (_dir, o) = opts(addr, 8, 1 << 20);
    let r = report(&o).await;
    let step = |n: &str| r.steps.iter().find(|s| s.name == n).unwrap();
    // Not read: passes, and every byte is counted though only 1 MiB of each was kept.
    assert_eq!(step("download").ok, 8, "{:?}", r.failures);
    assert_eq!(step("download").bytes_received, 8 * len);
    assert_eq!(step("small").ok, 8);
    // Read: fails with its own class, naming the limit.
    let parse = step("parse-big");
    assert_eq!(parse.ok, 0);
    assert_eq!(
        parse.failures.get("body_too_large"),
        Some(&8),
        "{:?}",
        parse.failures
    );
    assert_eq!(parse.bytes_received, 8 * len);
    let row = r
        .failures
        .iter()
        .find(|f| f.class == "body_too_large")
        .unwrap();
    assert!(row.detail.contains("--max-body 1 MiB"), "{}", row.detail);
    assert_eq!(r.summary.failed_flows, 8);
}

#[tokio::test]
async fn a_larger_limit_lets_the_step_read_the_whole_body() {
    let len = 3 * 1024 * 1024;
    let addr = server(len);
    let (_dir, o) = opts(addr, 2, 4 << 20);
    let r = report(&o).await;
    let parse = r.steps.iter().find(|s| s.name == "parse-big").unwrap();
    // The whole body was kept and parsed: it is not JSON, which is a different failure.
    assert_eq!(parse.failures.get("body_too_large"), None);
    assert_eq!(
        parse.failures.get("bad_body"),
        Some(&2),
        "{:?}",
        parse.failures
    );
}

#[test]
fn a_bad_max_body_is_a_usage_error() {
    let (code, _, err) = super::support::cli(&["run", "--max-body", "lots", "--no-reports"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a size"), "{err}");
}

/// The peak resident memory of a child process, polled from `/proc` until it exits.
fn peak_rss_kb(mut child: std::process::Child) -> (u64, std::process::ExitStatus) {
    let path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Some(kb) = text
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak = peak.max(kb);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (peak, status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// 8 flows each answered a 2 GiB body: the generator's peak RSS stays under 8 × the limit
/// plus 64 MB (it was 2.0 GB before bodies were bounded). Run alone: it moves 16 GiB over
/// loopback.
#[test]
#[ignore = "moves 16 GiB over loopback: run alone (scripts/test.sh runs it)"]
fn two_gigabyte_bodies_do_not_grow_the_generator() {
    let len: u64 = 2 << 30;
    let addr = server(len);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.toml");
    std::fs::write(
        &path,
        "name = \"big\"\n[[steps]]\nname = \"download\"\npath = \"/big\"\nexpect = 200\n[[steps]]\nname = \"parse\"\npath = \"/big\"\nexpect = 200\ncheck = [{ pointer = \"/ok\", exists = true }]\n",
    )
    .unwrap();
    let out = dir.path().join("reports");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_authbench"))
        .args([
            "run",
            "--no-progress",
            "--calibration",
            "0",
            "--timeout",
            "300s",
        ])
        .args(["-n", "8", "-c", "8", "--max-body", "1MiB"])
        .arg("--target")
        .arg(format!("http://{addr}"))
        .arg("--scenario")
        .arg(&path)
        .arg("--out-dir")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (peak_kb, status) = peak_rss_kb(child);
    eprintln!("peak RSS of 8 flows answered 2 GiB each: {peak_kb} kB");
    // Every flow fails at `parse` (exit 1 or 0 depending on the gate; either way a report).
    assert!(status.code().is_some(), "{status:?}");
    let limit_kb = 8 * 1024 + 64 * 1000;
    assert!(
        peak_kb < limit_kb,
        "peak RSS {peak_kb} kB, over 8 × 1 MiB + 64 MB = {limit_kb} kB"
    );
    let json = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let r = authbench::report::read(&json).unwrap();
    let step = |n: &str| r.steps.iter().find(|s| s.name == n).unwrap();
    assert_eq!(step("download").ok, 8);
    assert_eq!(step("download").bytes_received, 8 * len);
    assert_eq!(step("parse").failures.get("body_too_large"), Some(&8));
}
