//! `authbench run` end to end: the engine over real sockets against the reference server
//! and against test servers with known behaviour.

use std::time::Duration;

use authbench::options::{RunOptions, ScenarioSource};
use authbench::report::Report;
use authbench::server::{self, ServerConfig};
use axum::routing::{get, post};
use axum::Router;

use crate::support::{self, cli, dead_port};

fn opts() -> RunOptions {
    RunOptions {
        cost: 4,
        out_dir: None,
        ..RunOptions::default()
    }
}

fn step<'a>(r: &'a Report, name: &str) -> &'a authbench::report::StepReport {
    r.steps.iter().find(|s| s.name == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_flows_in_process_all_succeed_and_reports_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let o = RunOptions {
        out_dir: Some(dir.path().to_path_buf()),
        ..opts()
    };
    let r = authbench::run(&o, std::future::pending()).await.unwrap();
    let rep = &r.report;
    assert_eq!(rep.summary.total_flows, 20);
    assert_eq!(rep.summary.successful_flows, 20, "{:#?}", rep.failures);
    assert!(rep.metrics_block().starts_with(
        "Total Tests Executed: 20\nSuccessful Flows: 20\nFailed Flows: 0\nSuccess Rate: 100.00%\nAverage Flow Time: "
    ));
    for s in ["register", "login", "verify", "profile"] {
        let st = step(rep, s);
        assert_eq!((st.requests, st.ok), (20, 20), "{s}");
        assert_eq!(st.latency.count, 20);
        assert!(st.latency.min_ms > 0.0 && st.latency.min_ms <= st.latency.p50_ms);
        assert!(st.latency.p50_ms <= st.latency.p99_ms && st.latency.p99_ms <= st.latency.max_ms);
    }
    // A flow contains its four steps, so it cannot be shorter than their sum at the median.
    assert!(rep.flow.mean_ms >= step(rep, "register").latency.min_ms);
    assert_eq!(rep.config.bcrypt_cost, Some(4));
    assert!(rep.config.in_process_server);
    assert!(!rep.partial);

    assert_eq!(r.files.len(), 3);
    assert!(r.files[2].extension().is_some_and(|e| e == "html"));
    let md = std::fs::read_to_string(&r.files[0]).unwrap();
    assert!(md.contains("### Final Performance Metrics\n```\nTotal Tests Executed: 20\n"));
    assert!(md.contains("1. ✅ User Registration with validation (`register`): 20/20"));
    let json: Report = serde_json::from_slice(&std::fs::read(&r.files[1]).unwrap()).unwrap();
    assert_eq!(&json, rep);
    assert_eq!(json.schema, "authbench.report/1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_target_with_api_key_matches_in_process() {
    let handle = server::spawn(ServerConfig::new(4, "k-123"), ([127, 0, 0, 1], 0).into()).unwrap();
    let o = RunOptions {
        target: Some(handle.base_url()),
        api_key: Some("k-123".into()),
        concurrency: 5,
        ..opts()
    };
    let r = authbench::run(&o, std::future::pending()).await.unwrap();
    assert_eq!(
        r.report.summary.successful_flows, 20,
        "{:#?}",
        r.report.failures
    );
    assert!(!r.report.config.in_process_server);
    assert_eq!(r.report.config.bcrypt_cost, None);
    assert_eq!(r.report.config.concurrency, 5);
    // The key is never written into a report.
    assert!(!serde_json::to_string(&r.report).unwrap().contains("k-123"));

    // A wrong key: every flow fails at its first step, recorded under that step's name.
    let o = RunOptions {
        api_key: Some("wrong".into()),
        flows: 3,
        ..o
    };
    let r = authbench::run(&o, std::future::pending()).await.unwrap();
    assert_eq!(r.report.summary.failed_flows, 3);
    assert_eq!(step(&r.report, "register").failures["status"], 3);
    assert_eq!(r.report.failures[0].detail, "unexpected status 401");
    assert_eq!(step(&r.report, "login").requests, 0);
    handle.shutdown();
}

#[test]
fn unreachable_target_exits_3_with_a_clear_message() {
    let url = format!("http://127.0.0.1:{}", dead_port());
    let (code, _, err) = cli(&["run", "--target", &url, "--api-key", "k", "--no-reports"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("cannot reach the target") && err.contains(&url),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one-line cause: {err}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["run", "--cost", "4", "--target", "http://127.0.0.1:1"],
        vec!["run", "--flows", "0"],
        vec!["run", "--cost", "3"],
        vec!["run", "--timeout", "soon"],
        vec!["run", "--target", "not a url", "--api-key", "k"],
        vec!["run", "--target", "ftp://127.0.0.1:1", "--api-key", "k"],
        vec!["run", "--scenario", "/nonexistent/x.toml"],
        vec!["frobnicate"],
    ] {
        let (code, _, err) = cli(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(!err.is_empty(), "{args:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // A target that needs a key but got none says how to give one.
    std::env::remove_var("AUTHBENCH_API_KEY");
    let (code, _, err) = cli(&["run", "--target", "http://127.0.0.1:1"]);
    assert_eq!(code, 2);
    assert!(err.contains("--api-key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_lying_servers_are_classified() {
    // /auth/register never answers in time; the others answer 200 with non-JSON bodies.
    let app = Router::new()
        .route(
            "/auth/register",
            post(|| async {
                support::sleep_ms(2_000).await;
                "late"
            }),
        )
        .route("/auth/login", post(|| async { "<html>not json</html>" }));
    let addr = support::serve(app).await;
    let o = RunOptions {
        target: Some(format!("http://{addr}")),
        api_key: Some("k".into()),
        flows: 4,
        timeout: Duration::from_millis(200),
        ..opts()
    };
    let r = authbench::run(&o, std::future::pending()).await.unwrap();
    let reg = step(&r.report, "register");
    assert_eq!(reg.failures["timeout"], 4);
    assert_eq!(reg.latency.count, 0, "a timeout is not a latency");

    // A server that lies: 200 but no JSON.
    let app = Router::new()
        .route(
            "/auth/register",
            post(|| async { "{\"access_token\":\"t\",\"user\":{}}" }),
        )
        .route("/auth/login", post(|| async { "<html>" }))
        .route("/auth/verify", get(|| async { "{}" }));
    let addr = support::serve(app).await;
    let o = RunOptions {
        target: Some(format!("http://{addr}")),
        ..o
    };
    let r = authbench::run(&o, std::future::pending()).await.unwrap();
    // register's body is JSON but its user has no email: a failed check... the pointer is
    // missing, which is a bad body.
    let reg = step(&r.report, "register");
    assert_eq!(reg.failures["bad_body"], 4, "{:#?}", r.report.failures);
    assert!(r.report.failures[0].detail.contains("/user/email"));

    // A server that never answers at all.
    let addr = support::silent_server().await;
    let o = RunOptions {
        target: Some(format!("http://{addr}")),
        flows: 2,
        ..o
    };
    let r = authbench::run(&o, std::future::pending()).await.unwrap();
    assert_eq!(step(&r.report, "register").failures["timeout"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_never_below_a_known_server_delay() {
    // A server with a known 20 ms delay on every step: each step's minimum must be at
    // least 20 ms and a flow of four steps at least 80 ms (a lower bound cannot be flaky).
    let slow = || async {
        support::sleep_ms(20).await;
        axum::Json(serde_json::json!({
            "access_token": "t", "valid": true,
            "email": "x", "user": {"email": "x"}
        }))
    };
    let app = Router::new()
        .route("/auth/register", post(slow))
        .route("/auth/login", post(slow))
        .route("/auth/verify", get(slow))
        .route("/auth/profile", get(slow));
    let addr = support::serve(app).await;
    let path = scenario_without_email_checks();
    let o = RunOptions {
        target: Some(format!("http://{addr}")),
        api_key: Some("k".into()),
        flows: 10,
        scenario: ScenarioSource::File(path.path().to_path_buf()),
        ..opts()
    };
    let r = authbench::run(&o, std::future::pending()).await.unwrap();
    assert_eq!(
        r.report.summary.successful_flows, 10,
        "{:#?}",
        r.report.failures
    );
    for s in &r.report.steps {
        assert!(s.latency.min_ms >= 20.0, "{}: {:?}", s.name, s.latency);
    }
    assert!(r.report.flow.min_ms >= 80.0, "{:?}", r.report.flow);
}

fn scenario_without_email_checks() -> tempfile::NamedTempFile {
    let text = authbench::scenario::DEFAULT_SCENARIO
        .replace(
            "  { pointer = \"/user/email\", equals = \"{{email}}\" },\n",
            "",
        )
        .replace(
            "check = [{ pointer = \"/email\", equals = \"{{email}}\" }]",
            "check = [{ pointer = \"/email\", exists = true }]",
        );
    let f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}

/// The four auth endpoints, each answering after 300 ms with a body every step accepts
/// (with [`scenario_without_email_checks`]).
async fn slow_auth_server() -> std::net::SocketAddr {
    let slow = || async {
        support::sleep_ms(300).await;
        axum::Json(
            serde_json::json!({"access_token": "t", "valid": true, "email": "x", "user": {"email": "x"}}),
        )
    };
    let app = Router::new()
        .route("/auth/register", post(slow))
        .route("/auth/login", post(slow))
        .route("/auth/verify", get(slow))
        .route("/auth/profile", get(slow));
    support::serve(app).await
}

/// 1000 flows, 4 at a time, against [`slow_auth_server`], for interrupting: 50 ms of
/// grace, no calibration.
fn slow_run(addr: std::net::SocketAddr, scenario: &tempfile::NamedTempFile) -> RunOptions {
    RunOptions {
        target: Some(format!("http://{addr}")),
        api_key: Some("k".into()),
        flows: 1000,
        concurrency: 4,
        grace: Duration::from_millis(50),
        calibration_flows: 0,
        scenario: ScenarioSource::File(scenario.path().to_path_buf()),
        ..opts()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_writes_a_partial_report() {
    let addr = slow_auth_server().await;
    let path = scenario_without_email_checks();
    let dir = tempfile::tempdir().unwrap();
    let o = RunOptions {
        out_dir: Some(dir.path().to_path_buf()),
        ..slow_run(addr, &path)
    };
    // Interrupt after about two flows' worth of time.
    let r = authbench::run(&o, support::sleep_ms(2_600)).await.unwrap();
    let rep = &r.report;
    assert!(rep.partial);
    assert!(
        rep.summary.total_flows >= 4 && rep.summary.total_flows < 1000,
        "{:?}",
        rep.summary
    );
    assert_eq!(rep.summary.abandoned_flows, 4, "four workers were mid-flow");
    let md = std::fs::read_to_string(&r.files[0]).unwrap();
    assert!(md.contains("PARTIAL"));
    assert!(md.contains(&format!(
        "Total Tests Executed: {}",
        rep.summary.total_flows
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_mid_flow_keeps_the_steps_that_finished() {
    // Steps take 300 ms; the interrupt comes at 750 ms, when each of the 4 workers has
    // finished `register` (and probably `login`) of its first flow. The flows are cut off
    // and not counted, but the requests that completed were measured: they are in the
    // step figures (a flow sends its samples when it ends, so this is the drop guard's
    // hand-over).
    let addr = slow_auth_server().await;
    let path = scenario_without_email_checks();
    let o = slow_run(addr, &path);
    let r = authbench::run(&o, support::sleep_ms(750)).await.unwrap();
    let rep = &r.report;
    assert!(rep.partial);
    assert_eq!(rep.summary.total_flows, 0, "{:?}", rep.summary);
    assert_eq!(rep.summary.abandoned_flows, 4);
    let register = step(rep, "register");
    assert_eq!((register.requests, register.ok), (4, 4), "{register:?}");
    assert_eq!(register.latency.count, 4);
    assert!(register.latency.min_ms >= 300.0, "{register:?}");
    assert!(step(rep, "login").requests <= 4);
    assert_eq!(step(rep, "profile").requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_during_calibration_reports_the_calibration_flows() {
    // Calibration runs 3 flows one at a time, 300 ms each; the interrupt comes in the
    // second. What was measured (the first flow, and the second if it ends within the
    // grace period) is in the partial report, not an empty one.
    let addr = support::delayed_health(300).await;
    let o = RunOptions {
        target: Some(format!("http://{addr}")),
        scenario: support::health(),
        flows: 100,
        concurrency: 10,
        calibration_flows: 3,
        grace: Duration::from_millis(50),
        out_dir: None,
        ..opts()
    };
    let r = authbench::run(&o, support::sleep_ms(450)).await.unwrap();
    let rep = &r.report;
    assert!(rep.partial);
    assert!(
        (1..=2).contains(&rep.summary.total_flows),
        "{:?}",
        rep.summary
    );
    assert!(rep.flow.min_ms >= 300.0, "{:?}", rep.flow);
    assert!(
        rep.diagnosis.is_none(),
        "no diagnosis from calibration alone"
    );
}

/// Runs the real binary, sends it `signals` SIGINTs (the first after `after`), and returns
/// its exit code and output. Fails rather than hangs if it does not exit.
fn interrupt_binary(signals: usize, cost: &str, after: Duration) -> (Option<i32>, String, String) {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authbench"))
        .args([
            "run",
            "--flows",
            "100000",
            "-c",
            "4",
            "--cost",
            cost,
            "--calibration",
            "0",
            "--no-progress",
            "--no-reports",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    for _ in 0..signals {
        // SAFETY: kill(2) with a pid we own; no memory is touched.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("authbench did not exit after {signals} Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), out, err)
}

#[test]
fn ctrl_c_writes_a_partial_report_and_a_second_one_exits_at_once() {
    let (code, out, err) = interrupt_binary(1, "10", Duration::from_millis(1500));
    assert_eq!(code, Some(130), "{out}{err}");
    assert!(out.starts_with("PARTIAL"), "{out}");
    assert!(err.contains("the report is partial"), "{err}");

    // At cost 14 a flow takes seconds, so flows are still in their grace period when the
    // second Ctrl-C comes 200 ms after the first.
    let (code, out, err) = interrupt_binary(2, "14", Duration::from_millis(3000));
    assert_eq!(code, Some(130), "{out}{err}");
    assert!(err.contains("interrupted twice"), "{err}");
    assert!(
        !out.contains("Total Tests Executed"),
        "no report after a second Ctrl-C: {out}"
    );
}
