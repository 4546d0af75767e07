//! Figures checked against servers whose behaviour is known: time to first byte against a
//! body sent late, failures against invalid HTTP, and the diagnosis against a server that
//! serializes (a lock held per request) and one that does not.

use std::sync::Arc;
use std::time::Duration;

use authbench::options::RunOptions;
use axum::routing::get;
use axum::Router;

use crate::support::{self, listen_overflows};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttfb_is_the_headers_and_latency_the_whole_body() {
    // Headers at once, the body 100 ms later: TTFB near zero, total at least 100 ms.
    let addr = support::raw_server(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n",
        100,
        b"{}",
    )
    .await;
    let r = support::report(&support::health_opts(addr, 5, 1)).await;
    assert_eq!(r.summary.successful_flows, 5, "{:#?}", r.failures);
    let s = &r.steps[0];
    assert!(s.latency.min_ms >= 100.0, "{:?}", s.latency);
    assert!(s.ttfb.max_ms < 50.0, "{:?}", s.ttfb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_http_and_cut_bodies_are_transport_failures() {
    for (head, tail) in [
        (&b"SSH-2.0-OpenSSH\r\n\r\n"[..], &b""[..]),
        // Promises 100 bytes, sends 2, then nothing: the body never completes in time.
        (
            &b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n"[..],
            &b"{}"[..],
        ),
    ] {
        let addr = support::raw_server(head, 0, tail).await;
        let o = RunOptions {
            timeout: Duration::from_millis(300),
            ..support::health_opts(addr, 3, 1)
        };
        let r = support::report(&o).await;
        let f = &r.steps[0].failures;
        assert_eq!(r.summary.failed_flows, 3, "{:#?}", r.failures);
        assert!(
            f.get("transport").copied().unwrap_or(0) + f.get("timeout").copied().unwrap_or(0) == 3,
            "{f:?}"
        );
        assert_eq!(r.steps[0].latency.count, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnosis_names_a_server_that_serializes_and_not_one_that_does_not() {
    // 20 ms of "work" per request under one lock: requests are processed one at a time.
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    let app = Router::new().route(
        "/health",
        get(move || {
            let lock = lock.clone();
            async move {
                let _held = lock.lock().await;
                support::sleep_ms(20).await;
                "{}"
            }
        }),
    );
    let serial = support::serve(app).await;
    let o = RunOptions {
        calibration_flows: 3,
        ..support::health_opts(serial, 100, 10)
    };
    let r = support::report(&o).await;
    let d = r.diagnosis.unwrap();
    assert!((0.8..1.2).contains(&d.effective_parallelism), "{d:#?}");
    assert!(
        d.findings[0].starts_with("Requests are processed one at a time"),
        "{d:#?}"
    );

    // The same 20 ms without the lock: ten at once, so no queue at all.
    let parallel = support::delayed_health(20).await;
    let o = RunOptions {
        calibration_flows: 3,
        ..support::health_opts(parallel, 100, 10)
    };
    let r = support::report(&o).await;
    let d = r.diagnosis.unwrap();
    assert!((7.0..11.0).contains(&d.effective_parallelism), "{d:#?}");
    assert!(d.findings[0].starts_with("Little queueing"), "{d:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_times_out_at_its_own_deadline() {
    // One worker reuses one timer for all its requests: answered requests alternate with
    // requests the server never answers. Each unanswered one must fail after the full
    // timeout counted from its own start: not earlier (a stale deadline from the request
    // before) and not much later (a deadline that was never moved back into place).
    use std::sync::atomic::{AtomicU64, Ordering};
    let n = Arc::new(AtomicU64::new(0));
    let app = Router::new().route(
        "/health",
        get(move || {
            let n = n.clone();
            async move {
                if n.fetch_add(1, Ordering::Relaxed) % 2 == 1 {
                    std::future::pending::<()>().await;
                }
                "{\"status\":\"healthy\"}"
            }
        }),
    );
    let addr = support::serve(app).await;
    let o = RunOptions {
        timeout: Duration::from_millis(300),
        ..support::health_opts(addr, 6, 1)
    };
    let r = support::report(&o).await;
    assert_eq!(r.summary.successful_flows, 3, "{:#?}", r.failures);
    assert_eq!(r.steps[0].failures.get("timeout"), Some(&3));
    assert!(r.flow_failed.min_ms >= 300.0, "{:?}", r.flow_failed);
    assert!(r.flow_failed.max_ms < 1300.0, "{:?}", r.flow_failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_time_is_the_known_delay_of_a_dropped_syn() {
    // Known truth from the kernel: a listener whose accept queue is full drops new SYNs,
    // and the client sends its SYN again after the initial retransmission timeout, 1 s on
    // Linux. A backlog of 1 holds two connections: one filler here, and the run's
    // reachability check (connected, closed, never accepted). The run's own connection
    // then waits for the retransmit. Accepting starts once the kernel has counted that
    // dropped SYN (TcpExt ListenOverflows), so the retransmitted SYN gets in and the
    // connect takes about 1 s, while the server answers at once.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let _syn = support::BACKLOG.lock().await;
    let filler = tokio::net::TcpStream::connect(addr).await.unwrap();
    let overflows = listen_overflows();
    tokio::spawn(async move {
        for _ in 0..500 {
            if listen_overflows() > overflows {
                break;
            }
            support::sleep_ms(10).await;
        }
        let app = Router::new().route("/health", get(|| async { "{}" }));
        axum::serve(listener, app).await.unwrap();
    });
    let r = support::report(&support::health_opts(addr, 1, 1)).await;
    drop(filler);
    assert_eq!(r.summary.successful_flows, 1, "{:#?}", r.failures);
    let (connect, ttfb) = (&r.steps[0].connect, &r.steps[0].ttfb);
    assert_eq!(connect.count, 1);
    assert!(connect.min_ms >= 900.0, "{connect:?}");
    // The connect is inside the time to first byte, and the server itself was quick.
    assert!(connect.max_ms <= ttfb.max_ms, "{connect:?} {ttfb:?}");
    assert!(ttfb.max_ms - connect.max_ms < 300.0, "{connect:?} {ttfb:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_goes_away_after_the_check_fails_flows_not_the_run() {
    // The listener takes the reachability check's connection and closes: every connect
    // after it is refused. The run must end normally, each flow failed as a connect
    // failure, with no latency recorded for answers that never came.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let _ = listener.accept();
    });
    let r = support::report(&support::health_opts(addr, 5, 1)).await;
    assert_eq!(r.summary.failed_flows, 5, "{:?}", r.summary);
    let s = &r.steps[0];
    assert_eq!(s.latency.count, 0, "{s:?}");
    // The first connect can race the listener's close (queued, then reset).
    assert!(s.connect.count <= 1, "{s:?}");
    let connect = s.failures.get("connect").copied().unwrap_or(0);
    assert!(connect >= 4, "{:?}", s.failures);
    assert_eq!(s.failures.values().sum::<u64>(), 5, "{:?}", s.failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_is_bounded_by_concurrency_over_a_known_delay() {
    // 10 workers against a server that answers after 20 ms: no more than 10 / 20 ms =
    // 500 flows/s can complete, whatever the clock says (a rate above it would mean the
    // wall time or the count is wrong); the loose lower bound catches a rate computed
    // over the wrong span (e.g. including set-up).
    let addr = support::delayed_health(20).await;
    let r = support::report(&support::health_opts(addr, 200, 10)).await;
    let s = &r.summary;
    assert_eq!(s.successful_flows, 200, "{:#?}", r.failures);
    assert!(s.flows_per_s <= 500.0, "{s:?}");
    assert!(s.flows_per_s >= 200.0, "{s:?}");
    assert!(
        (s.requests_per_s - s.flows_per_s).abs() < 1e-9,
        "one request per flow"
    );
    assert!(s.wall_time_s >= 200.0 * 0.020 / 10.0, "{s:?}");
}
