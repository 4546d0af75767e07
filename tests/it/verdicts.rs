//! Issue 27: a diagnosis you can trust. Known-truth servers, each run three times with the
//! verdict asserted every time: a pre-fork server (a master and two worker processes
//! burning real CPU) watched through its master's pid, a single-threaded server with and
//! without a CPU hog beside it, a lock in sign-up only, the reference server at its
//! defaults, a rate-limited service; and the exit code of a run in which nothing succeeded.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use authbench::diagnosis::Verdict;
use authbench::options::RunOptions;
use authbench::report::Report;
use authbench::server::HashMode;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use crate::support::{self, CPU_HEAVY};

/// Every known-truth test runs this many times, and the verdict must be the same each time.
const RUNS: usize = 3;

fn diagnosis(r: &Report) -> &authbench::diagnosis::Diagnosis {
    let d = r.diagnosis.as_ref().expect("a diagnosis");
    eprintln!(
        "verdict {:?} {:?}\nusage {:#?}\nfindings: {:#?}",
        d.verdict, d.inconclusive_between, r.usage, d.findings
    );
    d
}

/// Findings that suggest a lock, a thread or a small pool is in the way.
fn suggests_a_lock(f: &str) -> bool {
    [
        "held across",
        "a pool or a worker count",
        "small pool around",
        "a limit other than CPU",
    ]
    .iter()
    .any(|p| f.contains(p))
}

const SIGN_UP_IN: &str = r#"
name = "signup-signin"
[[steps]]
name = "signup"
method = "POST"
path = "/signup"
body = { email = "a@example.com", password = "pw-1" }
expect = 200
[[steps]]
name = "signin"
method = "POST"
path = "/signin"
body = { email = "a@example.com", password = "pw-1" }
expect = 200
[[steps]]
name = "verify"
method = "GET"
path = "/verify"
expect = 200
"#;

/// A pre-fork server in Python: the master binds, forks `workers` processes that serve
/// HTTP/1.0 on the shared socket and burn real CPU (PBKDF2) per POST, and waits. Workers
/// die with the master (PR_SET_PDEATHSIG). Prints the port.
const PREFORK: &str = r#"
import ctypes, hashlib, os, signal, socket, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
workers, iterations = int(sys.argv[1]), int(sys.argv[2])
class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def reply(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", iterations)
        self.reply()
    def do_GET(self):
        self.reply()
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
sock.listen(256)
for _ in range(workers):
    if os.fork() == 0:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)
        srv = HTTPServer(("127.0.0.1", 0), H, bind_and_activate=False)
        srv.socket.close()
        srv.socket = sock
        srv.serve_forever()
        os._exit(0)
print(sock.getsockname()[1], flush=True)
while True:
    try:
        os.wait()
    except ChildProcessError:
        signal.pause()
"#;

/// The master of a pre-fork server and its port; killed (with its workers) on drop.
struct Prefork {
    master: Child,
    port: u16,
}

impl Prefork {
    fn start(workers: usize, iterations: u32) -> Option<Prefork> {
        let mut master = Command::new("python3")
            .args(["-c", PREFORK, &workers.to_string(), &iterations.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let mut line = String::new();
        std::io::BufReader::new(master.stdout.take()?)
            .read_line(&mut line)
            .ok()?;
        let port = line.trim().parse().ok()?;
        Some(Prefork { master, port })
    }
}

impl Drop for Prefork {
    fn drop(&mut self) {
        let _ = self.master.kill();
        let _ = self.master.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs both cores to itself: scripts/test.sh runs it alone"]
async fn a_pre_fork_server_is_counted_whole_and_named_cpu_bound() {
    let _cpu = CPU_HEAVY.lock().await;
    if authbench::usage::cores() < 2 {
        eprintln!("skipped: needs two cores");
        return;
    }
    let Some(server) = Prefork::start(2, 60_000) else {
        eprintln!("skipped: no python3");
        return;
    };
    let (_dir, scenario) = support::scenario_file(SIGN_UP_IN);
    for run in 0..RUNS {
        let o = RunOptions {
            scenario: scenario.clone(),
            calibration_flows: 5,
            server_pids: vec![server.master.id()],
            ..support::health_opts(([127, 0, 0, 1], server.port).into(), 80, 8)
        };
        let r = support::report(&o).await;
        assert_eq!(
            r.summary.successful_flows, 80,
            "run {run}: {:#?}",
            r.failures
        );
        let d = diagnosis(&r);
        let p = r
            .usage
            .as_ref()
            .and_then(|u| u.server_process.clone())
            .unwrap();
        // The master and both workers, and the workers did the work.
        assert_eq!(p.processes.len(), 3, "run {run}: {p:#?}");
        let busy: Vec<_> = p.processes.iter().filter(|c| c.cpu_cores > 0.3).collect();
        assert_eq!(busy.len(), 2, "run {run}: {p:#?}");
        assert!(p.cpu_cores > 1.2, "run {run}: {p:#?}");
        assert_eq!(d.verdict, Some(Verdict::UsesCores), "run {run}");
        assert!(
            d.findings.iter().any(|f| f.contains("CPU-bound")),
            "run {run}"
        );
        assert!(
            !d.findings.iter().any(|f| suggests_a_lock(f)),
            "run {run}: {:#?}",
            d.findings
        );
    }
}

/// A process that keeps one core busy until dropped.
struct Hog(Child);

impl Hog {
    fn start() -> Hog {
        Hog(Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap())
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The in-process reference server hashing inline: single-threaded, CPU-bound.
fn inline_opts() -> RunOptions {
    RunOptions {
        cost: 8,
        flows: 60,
        concurrency: 8,
        calibration_flows: 5,
        hash_mode: HashMode::Inline,
        out_dir: None,
        ..RunOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs both cores to itself: scripts/test.sh runs it alone"]
async fn other_processes_are_named_first_and_without_them_one_at_a_time() {
    let _cpu = CPU_HEAVY.lock().await;
    if authbench::usage::cores() != 2 {
        eprintln!("skipped: the hog is sized for two cores");
        return;
    }
    for run in 0..RUNS {
        let hog = Hog::start();
        let r = support::report(&inline_opts()).await;
        drop(hog);
        let d = diagnosis(&r);
        assert_eq!(d.verdict, Some(Verdict::OtherProcesses), "run {run}");
        assert!(
            d.findings[0].starts_with("Other processes used"),
            "run {run}: {:#?}",
            d.findings
        );
        assert!(
            !d.findings
                .iter()
                .any(|f| f.starts_with("Requests are processed")),
            "run {run}"
        );
        let split = r.usage.as_ref().and_then(|u| u.split.clone()).unwrap();
        assert!(split.other_cores.unwrap() >= 0.5, "run {run}: {split:?}");
    }
    for run in 0..RUNS {
        let r = support::report(&inline_opts()).await;
        let d = diagnosis(&r);
        assert_eq!(d.verdict, Some(Verdict::Serializes), "run {run}");
        assert!(
            d.findings[0].starts_with("Requests are processed one at a time"),
            "run {run}: {:#?}",
            d.findings
        );
        // The server's CPU is known (its threads): the --server-pid hedge is not printed.
        assert!(
            !d.findings.iter().any(|f| f.contains("--server-pid can")),
            "run {run}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs both cores to itself: scripts/test.sh runs it alone"]
async fn the_reference_server_at_its_defaults_is_cpu_bound_and_no_lock_is_suggested() {
    let _cpu = CPU_HEAVY.lock().await;
    if authbench::usage::cores() < 2 {
        eprintln!("skipped: needs two cores");
        return;
    }
    for run in 0..RUNS {
        // The README's first command at a smaller cost: 20 flows at once, hashing on a
        // pool of one thread per core.
        let o = RunOptions {
            cost: 9,
            flows: 40,
            concurrency: 20,
            out_dir: None,
            ..RunOptions::default()
        };
        let r = support::report(&o).await;
        let d = diagnosis(&r);
        assert_eq!(d.verdict, Some(Verdict::UsesCores), "run {run}");
        assert!(
            !d.findings.iter().any(|f| suggests_a_lock(f)),
            "run {run}: {:#?}",
            d.findings
        );
        let t = r.usage.as_ref().and_then(|u| u.server_threads.clone());
        assert!(t.is_some_and(|t| t.cpu_cores > 1.2), "run {run}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_in_sign_up_only_names_sign_up() {
    // Sign-up holds one lock (a single connection) across its 20 ms of work; sign-in does
    // the same work without it; verify takes 1 ms. Only sign-up queues.
    for run in 0..RUNS {
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        let app = Router::new()
            .route(
                "/signup",
                post(move || {
                    let lock = lock.clone();
                    async move {
                        let _held = lock.lock().await;
                        support::sleep_ms(20).await;
                        "{}"
                    }
                }),
            )
            .route(
                "/signin",
                post(|| async {
                    support::sleep_ms(20).await;
                    "{}"
                }),
            )
            .route(
                "/verify",
                get(|| async {
                    support::sleep_ms(1).await;
                    "{}"
                }),
            );
        let addr = support::serve(app).await;
        let (_dir, scenario) = support::scenario_file(SIGN_UP_IN);
        let o = RunOptions {
            scenario,
            calibration_flows: 5,
            ..support::health_opts(addr, 60, 8)
        };
        let r = support::report(&o).await;
        assert_eq!(r.summary.successful_flows, 60, "{:#?}", r.failures);
        let d = diagnosis(&r);
        assert_eq!(d.queued_steps, vec!["signup"], "run {run}");
        let f = d
            .findings
            .iter()
            .find(|f| f.starts_with("`signup` wait"))
            .unwrap_or_else(|| panic!("run {run}: {:#?}", d.findings));
        // One at a time, or (figures off by a loaded machine) a lock all the same.
        assert!(
            f.contains("`signup` runs one at a time")
                || f.contains("a lock, a thread or a small pool"),
            "run {run}: {f}"
        );
        assert!(f.contains("`signin` and `verify` do not"), "run {run}: {f}");
    }
}

/// Registration answers 429 with `Retry-After: 10` after 3 registrations per 10 s.
fn rate_limited_app() -> Router {
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let register = move || {
        let count = count.clone();
        async move {
            let window = start.elapsed().as_secs() / 10;
            // The count is (window << 32) | registrations in it.
            let prev = count.load(Ordering::SeqCst);
            let n = if prev >> 32 == window {
                prev & 0xffff_ffff
            } else {
                0
            };
            count.store((window << 32) | (n + 1), Ordering::SeqCst);
            if n >= 3 {
                let mut h = HeaderMap::new();
                h.insert("retry-after", "10".parse().unwrap());
                (StatusCode::TOO_MANY_REQUESTS, h, "{}").into_response()
            } else {
                support::sleep_ms(5).await;
                "{}".into_response()
            }
        }
    };
    let ok = || async {
        support::sleep_ms(2).await;
        "{}"
    };
    Router::new()
        .route("/signup", post(register))
        .route("/signin", post(ok))
        .route("/verify", get(ok))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limiting_is_its_own_class_and_named_first() {
    for run in 0..RUNS {
        let addr = support::serve(rate_limited_app()).await;
        let (_dir, scenario) = support::scenario_file(SIGN_UP_IN);
        let o = RunOptions {
            scenario,
            calibration_flows: 5,
            ..support::health_opts(addr, 20, 4)
        };
        let r = support::report(&o).await;
        let limited: Vec<_> = r
            .failures
            .iter()
            .filter(|f| f.class == "rate_limited")
            .collect();
        assert!(!limited.is_empty(), "run {run}: {:#?}", r.failures);
        assert!(
            limited.iter().all(|f| f.detail.contains("Retry-After: 10")),
            "run {run}: {limited:#?}"
        );
        assert!(!r.failures.iter().any(|f| f.class == "status"), "run {run}");
        let d = diagnosis(&r);
        assert_eq!(d.verdict, Some(Verdict::RateLimited), "run {run}");
        assert!(d.findings[0].starts_with("Rate limited"), "run {run}");
        assert!(d.findings[0].contains("`signup`"), "run {run}");
        assert!(
            d.findings[0].contains("Retry-After values seen: 10"),
            "run {run}"
        );
        // The calibration's five sign-ups used up the allowance of three.
        assert!(
            d.findings[0].contains("calibration was itself rate-limited"),
            "run {run}: {}",
            d.findings[0]
        );
        assert!(!d.findings.iter().any(|f| suggests_a_lock(f)), "run {run}");
        assert!(
            !d.findings
                .iter()
                .any(|f| f.contains("lock") || f.contains("pool")),
            "run {run}: {:#?}",
            d.findings
        );
    }
    // Without a calibration the rate-limit finding is still there.
    let addr = support::serve(rate_limited_app()).await;
    let (_dir, scenario) = support::scenario_file(SIGN_UP_IN);
    let r = support::report(&RunOptions {
        scenario,
        ..support::health_opts(addr, 20, 4)
    })
    .await;
    let d = diagnosis(&r);
    assert_eq!(d.calibration_flows, 0);
    assert!(
        d.findings[0].starts_with("Rate limited"),
        "{:#?}",
        d.findings
    );
}

#[test]
fn a_run_in_which_no_flow_succeeded_exits_1() {
    // Sign-up always fails with a 503 (no Retry-After: an outage, not a rate limit).
    let app = Router::new().route(
        "/signup",
        post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "{}") }),
    );
    let addr = support::serve_on_own_thread(app);
    let (_dir, scenario) = support::scenario_file(SIGN_UP_IN);
    let authbench::options::ScenarioSource::File(path) = scenario else {
        unreachable!()
    };
    let (target, path) = (format!("http://{addr}"), path.display().to_string());
    let mut args = vec![
        "run",
        "--target",
        &target,
        "--scenario",
        &path,
        "--flows",
        "3",
        "--calibration",
        "0",
        "--no-reports",
        "--no-progress",
    ];
    let (code, _, err) = support::cli(&args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no flow succeeded"), "{err}");
    assert!(
        err.contains("unexpected status 503 at `signup` (3×)"),
        "{err}"
    );
    // Thresholds decide instead when given.
    args.extend(["--threshold", "failed_flows<=10"]);
    let (code, _, err) = support::cli(&args);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn server_pid_may_be_repeated_and_every_process_counted_is_named() {
    // Two process trees: a shell with a child of its own, and a lone sleep.
    let mut a = Command::new("sh")
        .args(["-c", "sleep 30 & wait"])
        .spawn()
        .unwrap();
    let mut b = Command::new("sleep").arg("30").spawn().unwrap();
    let app = Router::new().route(
        "/health",
        get(|| async {
            support::sleep_ms(20).await;
            "{}"
        }),
    );
    let addr = support::serve_on_own_thread(app);
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (a.id().to_string(), b.id().to_string());
    let target = format!("http://{addr}");
    let out = dir.path().to_str().unwrap();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/health.toml");
    let (code, stdout, err) = support::cli(&[
        "run",
        "--target",
        &target,
        "--flows",
        "60",
        "--concurrency",
        "2",
        "--server-pid",
        &pa,
        "--server-pid",
        &pb,
        "--out-dir",
        out,
        "--no-progress",
        "--scenario",
        scenario,
    ]);
    let _ = (a.kill(), b.kill(), a.wait(), b.wait());
    assert_eq!(code, 0, "{stdout}\n{err}");
    let json = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let r: Report = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    let p = r.usage.and_then(|u| u.server_process).expect("sampled");
    assert_eq!(p.pids, vec![a.id(), b.id()]);
    // sh, its sleep, and the other sleep.
    let names: Vec<&str> = p.processes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(p.processes.len(), 3, "{p:#?}");
    assert_eq!(
        names.iter().filter(|n| **n == "sleep").count(),
        2,
        "{names:?}"
    );
    let d = r.diagnosis.expect("calibrated");
    assert!(
        d.findings.iter().any(|f| f.contains(&format!(
            "--server-pid {pa}, --server-pid {pb} and their descendants: 3 process(es) counted"
        ))),
        "{:#?}",
        d.findings
    );
}
