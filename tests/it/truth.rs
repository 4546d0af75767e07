//! Figures checked against servers whose behaviour is known: time to first byte against a
//! body sent late, failures against invalid HTTP, and the diagnosis against a server that
//! serializes (a lock held per request) and one that does not.

use std::sync::Arc;
use std::time::Duration;

use authbench::options::{RunOptions, ScenarioSource};
use axum::routing::get;
use axum::Router;

use crate::support;

fn health() -> ScenarioSource {
    ScenarioSource::File(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/health.toml"),
    )
}

fn opts(addr: std::net::SocketAddr, flows: u64, concurrency: usize) -> RunOptions {
    RunOptions {
        target: Some(format!("http://{addr}")),
        scenario: health(),
        flows,
        concurrency,
        timeout: Duration::from_secs(5),
        calibration_flows: 0,
        out_dir: None,
        ..RunOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttfb_is_the_headers_and_latency_the_whole_body() {
    // Headers at once, the body 100 ms later: TTFB near zero, total at least 100 ms.
    let addr = support::raw_server(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n",
        100,
        b"{}",
    )
    .await;
    let r = authbench::run(&opts(addr, 5, 1), std::future::pending())
        .await
        .unwrap()
        .report;
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
            ..opts(addr, 3, 1)
        };
        let r = authbench::run(&o, std::future::pending())
            .await
            .unwrap()
            .report;
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
        ..opts(serial, 100, 10)
    };
    let r = authbench::run(&o, std::future::pending())
        .await
        .unwrap()
        .report;
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
        ..opts(parallel, 100, 10)
    };
    let r = authbench::run(&o, std::future::pending())
        .await
        .unwrap()
        .report;
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
        ..opts(addr, 6, 1)
    };
    let r = authbench::run(&o, std::future::pending())
        .await
        .unwrap()
        .report;
    assert_eq!(r.summary.successful_flows, 3, "{:#?}", r.failures);
    assert_eq!(r.steps[0].failures.get("timeout"), Some(&3));
    assert!(r.flow_failed.min_ms >= 300.0, "{:?}", r.flow_failed);
    assert!(r.flow_failed.max_ms < 1300.0, "{:?}", r.flow_failed);
}
