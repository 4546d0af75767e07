//! Outages during a run, against a known truth: a real server that is stopped (listener
//! closed, every connection dropped, as when a process dies) and started again on the same
//! port mid-run. The window must be found where the truth is, the flows outside it must
//! all succeed, recovery must be measured, and a closed loop must not hammer the dead port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authbench::gate::Threshold;
use authbench::options::RunOptions;
use authbench::plan::{Arrival, LoadModel, Plan, Stage};
use authbench::report::Report;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use crate::support::{health, report};

/// A minimal HTTP/1.1 server: every request gets `200 {}` after 5 ms, on kept-alive
/// connections. `stop` closes the listener and drops every connection.
struct Restartable {
    addr: SocketAddr,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Restartable {
    async fn start(port: u16) -> Restartable {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .unwrap();
        let listener = socket.listen(1024).unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks = Arc::new(Mutex::new(JoinSet::new()));
        let conns = tasks.clone();
        tasks.lock().await.spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                conns.lock().await.spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                        if s.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Restartable { addr, tasks }
    }

    async fn stop(self) {
        self.tasks.lock().await.abort_all();
    }
}

fn opts(addr: SocketAddr, model: LoadModel, level: f64) -> RunOptions {
    RunOptions {
        target: Some(format!("http://{addr}")),
        scenario: health(),
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        calibration_flows: 0,
        out_dir: None,
        concurrency: 8,
        plan: Some(Plan {
            model,
            stages: vec![Stage {
                level,
                duration: Duration::MAX,
            }],
            max_flows: None,
            duration: Some(Duration::from_secs(3)),
            warmup: Duration::ZERO,
        }),
        ..RunOptions::default()
    }
}

/// Runs `o` while the server goes away at 1 s and comes back at 2 s (from the run's start).
async fn run_through_an_outage(o: RunOptions, server: Restartable) -> Report {
    let port = server.addr.port();
    let t0 = Instant::now();
    let chaos = tokio::spawn(async move {
        tokio::time::sleep_until((t0 + Duration::from_millis(1000)).into()).await;
        server.stop().await;
        tokio::time::sleep_until((t0 + Duration::from_millis(2000)).into()).await;
        Restartable::start(port).await
    });
    let r = report(&o).await;
    chaos.await.unwrap().stop().await;
    r
}

fn check_window(r: &Report) {
    let a = &r.availability;
    assert_eq!(a.outages.len(), 1, "{:#?}", a);
    let w = &a.outages[0];
    // The engine's clock starts a few ms after t0 (scenario, preflight): well inside 100 ms.
    assert!((w.start_s - 1.0).abs() < 0.1, "start {w:?}");
    assert!((w.end_s - 2.0).abs() < 0.1, "end {w:?}");
    assert_eq!(a.success_rate_outside, 1.0, "{a:?}");
    let rec = w.recovery_ms.expect("a successful flow after the outage");
    assert!(rec < 1000.0, "{w:?}");
    assert!(w.first_flow_ms.is_some());
    for (expr, pass) in [
        ("outage.total<500ms", false),
        ("outage.total<2s", true),
        ("outage.max<2s", true),
        ("recovery<2s", true),
        ("availability>=99.9%", true),
    ] {
        let t = Threshold::parse(expr).unwrap();
        assert_eq!(t.evaluate(r).passed, pass, "{expr}: {:?}", t.evaluate(r));
    }
    // Every flow that failed, failed inside the window.
    assert_eq!(r.summary.failed_flows, a.flows_in_outages, "{a:?}");
}

/// Ignored in the default run and run alone by scripts/test.sh: the window is checked
/// against the truth to ±100 ms, which other tests loading both cores would blur.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "times the window to ±100 ms: scripts/test.sh runs it alone"]
async fn a_closed_loop_finds_the_window_and_does_not_hammer_the_dead_port() {
    let server = Restartable::start(0).await;
    let r = run_through_an_outage(opts(server.addr, LoadModel::Closed, 8.0), server).await;
    check_window(&r);
    let a = &r.availability;
    let w = &a.outages[0];
    // Workers back off (10 ms doubling to 1 s) and one prober connects every 50 ms at
    // most: a few dozen attempts per worker at the most, against hundreds of thousands
    // without back-off.
    assert!(
        a.connection_probes <= 8 * 30,
        "{} probes",
        a.connection_probes
    );
    assert!(a.connection_probes >= 5, "{a:?}");
    assert!(w.failed_flows <= 8 * 12, "{w:?}");
    assert!(w.failed_flows + a.connection_probes <= 8 * 30, "{w:?}");
    assert_eq!(
        r.summary.attempts,
        r.summary.total_flows + a.connection_probes
    );
    // The flows are flows: ~2 s of a live 8-worker loop at ~5 ms each, not refused retries.
    assert!(r.summary.total_flows > 500, "{}", r.summary.total_flows);
}

/// Ignored in the default run and run alone by scripts/test.sh: the window is checked
/// against the truth to ±100 ms, which other tests loading both cores would blur.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "times the window to ±100 ms: scripts/test.sh runs it alone"]
async fn an_open_loop_keeps_its_schedule_and_counts_the_arrivals_it_lost() {
    let server = Restartable::start(0).await;
    let model = LoadModel::Open {
        arrival: Arrival::Constant,
        max_in_flight: 100,
    };
    let r = run_through_an_outage(opts(server.addr, model, 200.0), server).await;
    check_window(&r);
    let a = &r.availability;
    assert_eq!(a.connection_probes, 0);
    // About a second of arrivals at 200/s failed, and each is a flow.
    let w = &a.outages[0];
    assert!((120..=260).contains(&w.failed_flows), "{w:?}");
}

#[tokio::test]
async fn a_run_without_an_outage_reports_none() {
    let server = Restartable::start(0).await;
    let o = RunOptions {
        plan: None,
        flows: 200,
        concurrency: 4,
        ..opts(server.addr, LoadModel::Closed, 4.0)
    };
    let r = report(&o).await;
    server.stop().await;
    assert_eq!(r.summary.successful_flows, 200);
    assert!(r.availability.outages.is_empty());
    assert_eq!(r.availability.success_rate_outside, 1.0);
    assert_eq!(r.summary.attempts, 200);
    for expr in ["outage.total<1ms", "recovery<1ms", "availability>=100%"] {
        assert!(
            Threshold::parse(expr).unwrap().evaluate(&r).passed,
            "{expr}"
        );
    }
}
