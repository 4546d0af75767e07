//! Load shapes: open loop with coordinated-omission correction against a server that
//! stalls, duration and flow bounds, warm-up, stages, per-flow connections, bad flag mixes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authbench::options::{Connections, RunOptions};
use authbench::plan::{Arrival, LoadModel, Plan, Stage};
use axum::routing::get;
use axum::Router;

use crate::support::{self, cli};

fn open(rate: f64, max_in_flight: usize, duration: Duration) -> Plan {
    Plan {
        model: LoadModel::Open {
            arrival: Arrival::Constant,
            max_in_flight,
        },
        stages: vec![Stage {
            level: rate,
            duration: Duration::MAX,
        }],
        max_flows: None,
        duration: Some(duration),
        warmup: Duration::ZERO,
    }
}

/// A /health that, once, stalls every request for `stall` starting `after` the first request.
async fn stalling_server(after: Duration, stall: Duration) -> std::net::SocketAddr {
    #[derive(Default)]
    struct S {
        first: Option<Instant>,
        until: Option<Instant>,
    }
    let state = Arc::new(Mutex::new(S::default()));
    let app = Router::new().route(
        "/health",
        get(move || {
            let state = state.clone();
            async move {
                let wait = {
                    let mut s = state.lock().unwrap();
                    let now = Instant::now();
                    let first = *s.first.get_or_insert(now);
                    if s.until.is_none() && now.duration_since(first) >= after {
                        s.until = Some(now + stall);
                    }
                    s.until.and_then(|u| u.checked_duration_since(now))
                };
                if let Some(w) = wait {
                    tokio::time::sleep(w).await;
                }
                "{\"status\":\"healthy\"}"
            }
        }),
    );
    support::serve(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_corrected_latency_shows_a_stall_that_service_time_hides() {
    let addr = stalling_server(Duration::from_secs(1), Duration::from_secs(1)).await;
    let o = RunOptions {
        plan: Some(open(100.0, 2, Duration::from_secs(5))),
        ..support::health_opts(addr, 20, 20)
    };
    let r = support::report(&o).await;
    assert_eq!(r.config.load_model, "open");
    assert!(r.summary.total_flows >= 480, "{:?}", r.summary);
    assert_eq!(r.summary.failed_flows, 0, "{:#?}", r.failures);
    // About 100 arrivals fell in the stall: they started late and waited up to 1 s.
    assert!(r.summary.late_flows >= 50, "{:?}", r.summary);
    assert_eq!(r.summary.dropped_flows, 0);
    assert!(r.flow_intended.p99_ms >= 500.0, "{:?}", r.flow_intended);
    // Only the two flows in flight when the stall began saw it in their service time.
    assert!(r.flow.p99_ms < 500.0, "{:?}", r.flow);
    assert!(
        r.flow.max_ms >= 500.0,
        "the stalled in-flight flows: {:?}",
        r.flow
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_counts_arrivals_it_could_not_start_as_dropped() {
    // One slot and a server that answers after 300 ms: at 50/s almost every arrival waits,
    // and those still waiting when the 1 s plan ends are dropped, not forgotten.
    let addr = support::delayed_health(300).await;
    let o = RunOptions {
        plan: Some(open(50.0, 1, Duration::from_secs(1))),
        ..support::health_opts(addr, 20, 20)
    };
    let r = support::report(&o).await;
    let s = &r.summary;
    assert!(s.total_flows <= 5, "{s:?}");
    assert!(s.late_flows >= 2, "{s:?}");
    // 50 due in the second; the started ones plus the dropped ones account for them.
    let accounted = s.total_flows + s.dropped_flows;
    assert!((48..=52).contains(&accounted), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_duration_warmup_and_per_flow_connections() {
    let addr = support::delayed_health(10).await;
    let o = RunOptions {
        target: Some(format!("http://{addr}")),
        scenario: support::health(),
        plan: Some(Plan {
            model: LoadModel::Closed,
            stages: vec![Stage {
                level: 4.0,
                duration: Duration::MAX,
            }],
            max_flows: None,
            duration: Some(Duration::from_millis(800)),
            warmup: Duration::from_millis(300),
        }),
        connections: Connections::PerFlow,
        calibration_flows: 0,
        out_dir: None,
        ..RunOptions::default()
    };
    let r = support::report(&o).await;
    let s = &r.summary;
    // 4 workers × ~10 ms flows: ~120 flows in the first 300 ms are warm-up, ~200 after.
    // On a busy machine every flow is slower, but the split stays by time: about 3/8 of
    // the flows started in the first 300 ms of 800.
    assert!(s.warmup_flows >= 8 && s.total_flows >= 8, "{s:?}");
    let share = s.warmup_flows as f64 / (s.warmup_flows + s.total_flows) as f64;
    assert!(
        (0.2..0.6).contains(&share),
        "warm-up share {share:.2}: {s:?}"
    );
    assert_eq!(s.failed_flows, 0, "{:#?}", r.failures);
    assert_eq!(r.config.connections, "per-flow");
    // Each measured flow opened its own connection (warm-up flows' are not measured).
    assert_eq!(r.steps[0].connect.count, s.total_flows, "{:?}", r.steps[0]);
    assert!(r.steps[0].connect.max_ms <= r.steps[0].ttfb.max_ms);
    assert!(r.flow.min_ms >= 10.0);
    assert!(s.wall_time_s < 2.0, "stops at the duration: {s:?}");
}

#[test]
fn impossible_flag_combinations_exit_2() {
    for (args, needle) in [
        (
            vec!["--rate", "10", "--concurrency", "5", "-n", "5"],
            "cannot be used with",
        ),
        (vec!["--rate", "10"], "needs a bound"),
        (vec!["--max-in-flight", "5"], "--max-in-flight"),
        (vec!["--arrival", "poisson", "-n", "5"], "--arrival"),
        (vec!["--duration", "5s"], "--concurrency"),
        (
            vec!["--rate", "5", "--duration", "2s", "--warmup", "3s"],
            "--warmup",
        ),
        (vec!["--stages", "10/s:1s,5:1s"], "mixes"),
        (vec!["--rate", "5", "--stages", "10/s:1s"], "--stages"),
        (vec!["--rate", "0", "-n", "5"], "above 0"),
    ] {
        let mut a = vec!["run", "--no-reports", "--cost", "4"];
        a.extend_from_slice(&args);
        let (code, _, err) = cli(&a);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn stages_run_from_the_command_line() {
    let (code, out, err) = cli(&[
        "run",
        "--cost",
        "4",
        "--no-reports",
        "--no-progress",
        "--calibration",
        "0",
        "--scenario",
        &format!("{}/scenarios/health.toml", env!("CARGO_MANIFEST_DIR")),
        "--stages",
        "50/s:400ms,100/s:400ms",
        "--arrival",
        "poisson",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("open loop"), "{out}");
    // About 20 + 40 arrivals.
    let total: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("Total Tests Executed: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((25..=110).contains(&total), "{total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_closes_are_replaced_not_failed() {
    // Every response closes its connection: the pooled connection a flow takes next is
    // dead before it sends, so it must open a new one, and nothing fails.
    let app = Router::new().route(
        "/health",
        get(|| async { ([("connection", "close")], "{\"status\":\"healthy\"}") }),
    );
    let addr = support::serve(app).await;
    let r = support::report(&support::health_opts(addr, 200, 4)).await;
    assert_eq!(r.summary.successful_flows, 200, "{:#?}", r.failures);
    assert_eq!(
        r.steps[0].connect.count, 200,
        "a new connection per request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_pool_opens_one_connection_per_worker() {
    let addr = support::delayed_health(1).await;
    let r = support::report(&support::health_opts(addr, 300, 4)).await;
    assert_eq!(r.summary.successful_flows, 300, "{:#?}", r.failures);
    let opened = r.steps[0].connect.count;
    assert!(
        (1..=4).contains(&opened),
        "{opened} connections for 4 workers"
    );
    assert_eq!(r.steps[0].ttfb.count, 300);
}
