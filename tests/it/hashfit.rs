//! The hash time of a spawned service, measured from the outside, against a known truth:
//! a service whose "hash" takes `2^(cost-4)` ms on top of a 30 ms floor, in a variant that
//! serializes every request behind one lock and one that does not.
//!
//! The service is this test binary itself, started by `sweep --spawn` with the
//! `truth_service` entry point (an ignored test that serves when its environment says so),
//! so the sweep runs it exactly as it runs a user's service: a real process in its own
//! group, over real sockets. The "hash" is a sleep on a blocking thread: the truth stays
//! the truth on a loaded 2-core machine, where real hashing would share the cores with
//! authbench.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authbench::diagnosis::Verdict;
use authbench::sweep::{HashSource, Sweep};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use crate::support::{cli, dead_port};

const FLOOR_MS: f64 = 30.0;
const OTHER_STEP_MS: f64 = 5.0;

fn truth_hash_ms(cost: u32) -> f64 {
    2f64.powi(cost as i32 - 4)
}

/// The flows: two steps that hash (register, login) and one that does not (profile).
const SCENARIO: &str = r#"
name = "truth"
[vars]
password = "Pw-{{random}}"

[[steps]]
name = "register"
method = "POST"
path = "/register"
body = { password = "{{password}}" }
expect = 200

[[steps]]
name = "login"
method = "POST"
path = "/login"
body = { password = "{{password}}" }
expect = 200

[[steps]]
name = "profile"
method = "GET"
path = "/profile"
expect = 200
"#;

/// Sleeps `ms` on a blocking thread (precise to ~0.1 ms, unlike the timer wheel's 1 ms),
/// holding `lock` throughout when there is one.
async fn work(ms: f64, lock: Option<Arc<Mutex<()>>>) -> axum::Json<serde_json::Value> {
    let _ = tokio::task::spawn_blocking(move || {
        let _held = lock
            .as_ref()
            .map(|l| l.lock().unwrap_or_else(|e| e.into_inner()));
        std::thread::sleep(Duration::from_secs_f64(ms / 1e3));
    })
    .await;
    axum::Json(serde_json::json!({}))
}

/// The service's entry point: does nothing unless `AUTHBENCH_TRUTH_ADDR` is set, as it is
/// when a test spawns this binary as the service.
#[test]
#[ignore = "the known-truth service: runs only when a test spawns it"]
fn truth_service() {
    let Ok(addr) = std::env::var("AUTHBENCH_TRUTH_ADDR") else {
        return;
    };
    let cost: u32 = std::env::var("AUTHBENCH_TRUTH_COST")
        .expect("AUTHBENCH_TRUTH_COST")
        .parse()
        .expect("a cost");
    let mode = std::env::var("AUTHBENCH_TRUTH_MODE").unwrap_or_default();
    let lock = (mode == "serial").then(|| Arc::new(Mutex::new(())));
    // `limited`: every registration is refused for its rate (429, Retry-After: 10).
    let limited = mode == "limited";
    let hash = FLOOR_MS + truth_hash_ms(cost);
    let (l1, l2, l3) = (lock.clone(), lock.clone(), lock);
    let app = Router::new()
        .route("/health", get(|| async { "{}" }))
        .route(
            "/register",
            post(move || {
                let l1 = l1.clone();
                async move {
                    if limited {
                        let retry = [(axum::http::header::RETRY_AFTER, "10")];
                        return (axum::http::StatusCode::TOO_MANY_REQUESTS, retry, "{}")
                            .into_response();
                    }
                    work(hash, l1).await.into_response()
                }
            }),
        )
        .route("/login", post(move || work(hash, l2.clone())))
        .route("/profile", get(move || work(OTHER_STEP_MS, l3.clone())));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        axum::serve(listener, app).await.unwrap();
    });
}

/// `sweep --spawn` of the truth service in `mode`, costs 4..=10; returns the sweep.
fn sweep_truth(mode: &str, dir: &Path) -> (Sweep, String) {
    let scenario = dir.join("truth.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let addr = format!("127.0.0.1:{}", dead_port());
    let exe = std::env::current_exe().unwrap();
    let cmd = format!(
        "AUTHBENCH_TRUTH_MODE={mode} AUTHBENCH_TRUTH_ADDR={addr} AUTHBENCH_TRUTH_COST={{cost}} \
         exec '{}' hashfit::truth_service --exact --ignored --test-threads 1 --quiet",
        exe.display()
    );
    let out = dir.join(mode);
    let (code, stdout, err) = cli(&[
        "sweep",
        "--costs",
        "4..=10",
        "--flows",
        "10",
        "--concurrency",
        "5",
        "--scenario",
        scenario.to_str().unwrap(),
        "--spawn",
        &cmd,
        "--target",
        &format!("http://{addr}"),
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    let json = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let sweep: Sweep = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "{addr} still accepts"
    );
    (sweep, stdout)
}

#[test]
fn a_sweep_in_which_every_cost_is_rate_limited_exits_1_without_capacity_figures() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("truth.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let addr = format!("127.0.0.1:{}", dead_port());
    let exe = std::env::current_exe().unwrap();
    let cmd = format!(
        "AUTHBENCH_TRUTH_MODE=limited AUTHBENCH_TRUTH_ADDR={addr} AUTHBENCH_TRUTH_COST={{cost}} \
         exec '{}' hashfit::truth_service --exact --ignored --test-threads 1 --quiet",
        exe.display()
    );
    let out = dir.path().join("limited");
    let (code, stdout, err) = cli(&[
        "sweep",
        "--costs",
        "4..=5",
        "--flows",
        "4",
        "--concurrency",
        "2",
        "--scenario",
        scenario.to_str().unwrap(),
        "--spawn",
        &cmd,
        "--target",
        &format!("http://{addr}"),
        "--out-dir",
        out.to_str().unwrap(),
        "--no-progress",
    ]);
    assert_eq!(code, 1, "{stdout}\n{err}");
    assert!(
        err.contains("no flow succeeded at any of the 2 values swept"),
        "{err}"
    );
    let json = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let sweep: Sweep = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    for r in &sweep.rows {
        let f = r.failure.as_deref().unwrap_or_default();
        assert!(
            f.contains("rate limited: status 429, Retry-After: 10"),
            "{r:?}"
        );
        assert_eq!(r.capacity_flows_per_s, None, "{r:?}");
        assert_eq!(r.capacity_if_parallel_flows_per_s, None, "{r:?}");
        assert_eq!(r.verdict, None, "{r:?}");
    }
    let c = sweep.conclusion.as_ref().unwrap();
    assert!(
        c.text.starts_with("2 of 2 costs had no successful flow"),
        "{}",
        c.text
    );
    assert!(stdout.contains("failed: no flow succeeded"), "{stdout}");
}

fn within(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want
}

#[test]
fn the_fit_finds_the_known_hash_time_and_floor_and_the_verdicts_oppose() {
    let _cpu = crate::support::CPU_HEAVY.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let (serial, serial_out) = sweep_truth("serial", dir.path());
    let (parallel, _) = sweep_truth("parallel", dir.path());
    for sweep in [&serial, &parallel] {
        let fit = sweep.fit.as_ref().unwrap();
        assert!(fit.measurable(), "{fit:#?}");
        let hashing: Vec<&str> = fit.hashing().map(|s| s.name.as_str()).collect();
        assert_eq!(hashing, ["register", "login"], "{fit:#?}");
        for step in fit.hashing() {
            assert!(within(step.floor_ms, FLOOR_MS, 0.15), "{step:?}");
            for cost in 4..=10 {
                let h = step.hash_ms(cost);
                assert!(
                    within(h, truth_hash_ms(cost), 0.15),
                    "cost {cost}: {h} ms, {step:?}"
                );
            }
        }
        for r in &sweep.rows {
            assert_eq!(r.success_rate, 1.0, "{r:?}");
            assert_eq!(r.hash_source, HashSource::Fitted);
            assert!(
                within(r.hash_ms.unwrap(), truth_hash_ms(r.cost), 0.15),
                "{r:?}"
            );
            assert!(r.capacity_flows_per_s.is_some(), "{r:?}");
        }
    }
    // Opposite verdicts at every cost.
    for (s, p) in serial.rows.iter().zip(&parallel.rows) {
        assert_eq!(
            s.verdict,
            Some(Verdict::Serializes),
            "cost {}: {s:?}",
            s.cost
        );
        // Not saturated: kept up, or (on a loaded machine) queued a little below saturation.
        assert!(
            matches!(p.verdict, Some(Verdict::KeptUp | Verdict::NotSaturated)),
            "cost {}: {p:?}",
            p.cost
        );
        assert!(s.capacity_if_parallel_flows_per_s.is_some(), "{s:?}");
    }
    let c = serial.conclusion.as_ref().unwrap();
    assert_eq!(c.verdict, Some(Verdict::Serializes));
    assert!(
        c.text.contains("serializes its work at every cost"),
        "{}",
        c.text
    );
    assert!(c.text.contains("leaves the floor"), "{}", c.text);
    // 2 × 2^(cost-4) ms of hashing passes the 2 × 30 + 5 ms floor (plus HTTP) between
    // cost 9 (64 ms) and 10 (128 ms): 9 is within noise of the floor, so either is right.
    assert!(matches!(c.crossover_cost, Some(9 | 10)), "{c:?}");
    assert!(serial_out.contains("◀ hash > floor"), "{serial_out}");
    assert!(serial_out.contains("(fitted)"), "{serial_out}");
    let c = parallel.conclusion.as_ref().unwrap();
    assert!(c.text.contains("did not saturate"), "{}", c.text);
}

/// A serializing truth service at `cost`, served in this process.
fn serial_service(cost: u32) -> std::net::SocketAddr {
    let lock = Some(Arc::new(Mutex::new(())));
    let hash = FLOOR_MS + truth_hash_ms(cost);
    let (l1, l2, l3) = (lock.clone(), lock.clone(), lock);
    crate::support::serve_on_own_thread(
        Router::new()
            .route("/health", get(|| async { "{}" }))
            .route("/register", post(move || work(hash, l1.clone())))
            .route("/login", post(move || work(hash, l2.clone())))
            .route("/profile", get(move || work(OTHER_STEP_MS, l3.clone()))),
    )
}

#[test]
fn tune_target_says_up_to_which_concurrency_a_running_service_meets_the_slo() {
    let _cpu = crate::support::CPU_HEAVY.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("truth.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    // A flow is ≈ 2 × 32 + 5 ms of service, one request at a time: alone it meets
    // 200 ms easily, 8 at once (≈ 550 ms of queue) cannot.
    let addr = serial_service(5);
    let out = dir.path().join("reports");
    let (code, stdout, err) = cli(&[
        "tune",
        "--target",
        &format!("http://{addr}"),
        "--scenario",
        scenario.to_str().unwrap(),
        "--slo",
        "flow.p95<200ms",
        "--flows",
        "8",
        "--concurrency",
        "8",
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(
        stdout.contains("meets flow.p95<200ms up to concurrency"),
        "{stdout}"
    );
    assert!(stdout.contains("not separable from the floor"), "{stdout}");
    let json = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    assert_eq!(t["schema"], "authbench.tune/2");
    assert_eq!(t["mode"], "running");
    assert!(t["recommended"].is_null());
    let up_to = t["meets_up_to_concurrency"].as_u64().unwrap();
    assert!([1, 2, 4].contains(&up_to), "{t:#}");
    let probes = t["probes"].as_array().unwrap();
    let last = probes.last().unwrap();
    assert_eq!(last["passed"], false, "{t:#}");
    assert_eq!(last["verdict"], "serializes", "{t:#}");
}

/// The `--spawn` command of the truth service in `mode`, writing each group's id to
/// `pid_file`.
fn truth_command(mode: &str, addr: &str, pid_file: &Path) -> String {
    format!(
        "echo $$ >> '{}'; AUTHBENCH_TRUTH_MODE={mode} AUTHBENCH_TRUTH_ADDR={addr} AUTHBENCH_TRUTH_COST={{cost}} \
         exec '{}' hashfit::truth_service --exact --ignored --test-threads 1 --quiet",
        pid_file.display(),
        std::env::current_exe().unwrap().display()
    )
}

fn no_group_left(pid_file: &Path) {
    let groups: Vec<i32> = std::fs::read_to_string(pid_file)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(!groups.is_empty());
    for g in groups {
        // SAFETY: signal 0 checks existence only.
        let alive = unsafe { libc::kill(-g, 0) } == 0 && authbench::sweep::spawn::group_alive(g);
        assert!(!alive, "group {g} is still running");
    }
}

#[test]
fn tune_spawn_with_an_unreachable_slo_measures_three_costs_and_lists_alternatives() {
    let _cpu = crate::support::CPU_HEAVY.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("truth.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let pid_file = dir.path().join("pids");
    let addr = format!("127.0.0.1:{}", dead_port());
    let out = dir.path().join("reports");
    // No cost meets 1 ms: the search stops at the floor (4), and the advice needs the hash
    // time, which the fit takes from three costs.
    let (code, stdout, err) = cli(&[
        "tune",
        "--spawn",
        &truth_command("serial", &addr, &pid_file),
        "--target",
        &format!("http://{addr}"),
        "--scenario",
        scenario.to_str().unwrap(),
        "--slo",
        "flow.p95<1ms",
        "--allow-weak",
        "--min-cost",
        "4",
        "--max-cost",
        "8",
        "--flows",
        "4",
        "--concurrency",
        "2",
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}\n{err}");
    let json = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let t: authbench::sweep::tune::Tune =
        serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    assert!(t.recommended.is_none());
    let costs: std::collections::BTreeSet<u32> = t.probes.iter().map(|p| p.cost).collect();
    assert!(costs.len() >= 3, "{costs:?}");
    assert!(!t.advice.is_empty(), "{stdout}");
    // Each alternative carries a figure.
    let figures = |a: &String| a.chars().any(|c| c.is_ascii_digit());
    assert!(t.advice.iter().all(figures), "{:#?}", t.advice);
    assert!(
        !stdout.contains("what would meet it instead:\n\n"),
        "{stdout}"
    );
    no_group_left(&pid_file);
}

#[test]
fn tune_spawn_of_the_truth_service_is_confirmed_and_fits_its_hash() {
    let _cpu = crate::support::CPU_HEAVY.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("truth.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let pid_file = dir.path().join("pids");
    let addr = format!("127.0.0.1:{}", dead_port());
    let out = dir.path().join("reports");
    // A loose SLO: every cost meets it, so the answer is the top cost, and the search
    // visits 3 costs (7, 9, 10): enough to fit the hash.
    let (code, stdout, err) = cli(&[
        "tune",
        "--spawn",
        &truth_command("serial", &addr, &pid_file),
        "--target",
        &format!("http://{addr}"),
        "--scenario",
        scenario.to_str().unwrap(),
        "--slo",
        "flow.p95<5s",
        "--allow-weak",
        "--min-cost",
        "4",
        "--max-cost",
        "10",
        "--flows",
        "5",
        "--concurrency",
        "5",
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(stdout.contains("Recommended bcrypt cost: 10"), "{stdout}");
    assert!(stdout.contains("Confirmed"), "{stdout}");
    assert!(
        stdout.contains("What-if (serializes its work at cost 10)"),
        "{stdout}"
    );
    let json = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let t: authbench::sweep::tune::Tune =
        serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    assert!(t.confirmation.as_ref().is_some_and(|p| p.passed), "{t:#?}");
    let fit = t.fit.as_ref().unwrap();
    assert!(fit.measurable(), "{fit:#?}");
    for p in &t.probes {
        let h = p.hash_ms.unwrap();
        assert!(
            within(h, truth_hash_ms(p.cost), 0.15),
            "cost {}: {h}",
            p.cost
        );
    }
    no_group_left(&pid_file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tune_spawn_stopped_mid_run_leaves_no_group_behind() {
    // What Ctrl-C does: the stop future resolves (here as soon as the service answers),
    // the run is cut short, and the group must be gone.
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("truth.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let pid_file = dir.path().join("pids");
    let addr = format!("127.0.0.1:{}", dead_port());
    let opts = authbench::sweep::tune::TuneOptions {
        slos: vec!["flow.p95<5s".into()],
        flows: 50,
        concurrency: 2,
        scenario: authbench::options::ScenarioSource::File(scenario),
        min_cost: 10,
        max_cost: 12,
        target: authbench::sweep::tune::TuneTarget::Spawn(authbench::sweep::spawn::SpawnOptions {
            command: truth_command("serial", &addr, &pid_file),
            target: format!("http://{addr}"),
            ready_path: "/health".into(),
            ready_timeout: Duration::from_secs(30),
            api_key: None,
            hash_time_ms: None,
            tls: Default::default(),
        }),
        ..Default::default()
    };
    let up = addr.clone();
    let stop = async move {
        while tokio::net::TcpStream::connect(&up).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let t = authbench::sweep::tune::tune(&opts, stop, &mut |_| {})
        .await
        .unwrap();
    assert!(t.partial, "{t:#?}");
    assert_eq!(t.recommended, None);
    no_group_left(&pid_file);
}

#[test]
fn tune_spawn_interrupted_by_a_real_ctrl_c_leaves_no_group_behind() {
    // The binary, a real SIGINT once the spawned service answers: the tune stops with the
    // interrupt's exit code and kills the service's whole process group.
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("truth.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let pid_file = dir.path().join("pids");
    let addr = format!("127.0.0.1:{}", dead_port());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_authbench"))
        .args([
            "tune",
            "--spawn",
            &truth_command("serial", &addr, &pid_file),
        ])
        .args(["--target", &format!("http://{addr}"), "--scenario"])
        .arg(&scenario)
        .args([
            "--slo",
            "flow.p95<5s",
            "--min-cost",
            "10",
            "--max-cost",
            "12",
        ])
        .args([
            "--flows",
            "200",
            "--concurrency",
            "2",
            "--no-progress",
            "--out-dir",
        ])
        .arg(dir.path().join("reports"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the service never answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    no_group_left(&pid_file);
}
