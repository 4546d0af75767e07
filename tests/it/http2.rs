//! HTTP/2 over real sockets: the reference server over TLS (ALPN picks h2) and over TCP
//! (h2c, prior knowledge), and small `h2` servers with known behaviour (a stream limit,
//! `GOAWAY` after N requests, refused and reset streams) that count what they see.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authbench::options::{Connections, HttpVersion, RunOptions, TlsOptions};
use authbench::render::markdown::Markdown;
use authbench::render::Exporter;
use authbench::report::Report;
use authbench::server::{ServerConfig, TlsIdentity};
use bytes::Bytes;

use crate::support::{cli, health_opts, report};

/// What a test server does, and what it counted.
#[derive(Default)]
struct Behaviour {
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`.
    max_streams: Option<u32>,
    /// Sends `GOAWAY` (graceful) after this many requests on a connection.
    goaway_after: Option<u64>,
    /// Resets request number `n` (over the server's life) with this reason.
    reset: Option<fn(u64) -> Option<h2::Reason>>,
    /// How long each answer takes.
    delay: Duration,
    /// `SETTINGS_INITIAL_WINDOW_SIZE`: how much of a request body may come before the
    /// server reads it (it never does).
    window: Option<u32>,
    seen: AtomicU64,
    open: AtomicU64,
    peak: AtomicU64,
    connections: AtomicU64,
}

/// Serves `b` over h2c on a loopback port the OS chooses.
async fn h2c_server(b: Behaviour) -> (SocketAddr, Arc<Behaviour>) {
    let b = Arc::new(b);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = b.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(connection(sock, server.clone()));
        }
    });
    (addr, b)
}

async fn connection(sock: tokio::net::TcpStream, b: Arc<Behaviour>) {
    let mut builder = h2::server::Builder::new();
    if let Some(m) = b.max_streams {
        builder.max_concurrent_streams(m);
    }
    if let Some(w) = b.window {
        builder.initial_window_size(w);
    }
    let Ok(mut conn) = builder.handshake::<_, Bytes>(sock).await else {
        return;
    };
    b.connections.fetch_add(1, Ordering::SeqCst);
    let mut on_this = 0;
    while let Some(Ok((_req, mut respond))) = conn.accept().await {
        on_this += 1;
        let n = b.seen.fetch_add(1, Ordering::SeqCst);
        if let Some(reason) = b.reset.and_then(|f| f(n)) {
            respond.send_reset(reason);
            continue;
        }
        let b2 = b.clone();
        tokio::spawn(async move {
            let now = b2.open.fetch_add(1, Ordering::SeqCst) + 1;
            b2.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(b2.delay).await;
            b2.open.fetch_sub(1, Ordering::SeqCst);
            let resp = hyper::Response::builder().status(200).body(()).unwrap();
            if let Ok(mut s) = respond.send_response(resp, false) {
                let _ = s.send_data(Bytes::from_static(b"{\"status\":\"healthy\"}"), true);
            }
        });
        if b.goaway_after == Some(on_this) {
            conn.graceful_shutdown();
        }
    }
}

fn h2c_opts(addr: SocketAddr, flows: u64, concurrency: usize) -> RunOptions {
    RunOptions {
        http: HttpVersion::Http2,
        ..health_opts(addr, flows, concurrency)
    }
}

fn failure_classes(r: &Report) -> Vec<String> {
    r.failures.iter().map(|f| f.class.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_picks_h2_against_the_reference_server_and_the_report_says_so() {
    let id = TlsIdentity::self_signed().unwrap();
    let cert = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cert.path(), id.cert_pem()).unwrap();
    let mut cfg = ServerConfig::new(4, "k");
    cfg.tls = Some(id);
    let server = authbench::server::spawn(cfg, ([127, 0, 0, 1], 0).into()).unwrap();
    let tls = TlsOptions {
        cacert: Some(cert.path().to_path_buf()),
        ..TlsOptions::default()
    };
    let mut o = health_opts(server.addr(), 100, 8);
    o.target = Some(server.base_url());
    o.tls = tls.clone();
    let r = report(&o).await;
    assert_eq!(r.summary.success_rate, 1.0, "{:?}", r.failures);
    let h = r.http.as_ref().expect("an HTTP/2 run records its protocol");
    assert_eq!(h.protocol, "h2");
    assert_eq!(h.streams, 100);
    assert!(h.connections >= 1, "{h:?}");
    let md = String::from_utf8(Markdown.render(&r).unwrap()).unwrap();
    assert!(md.contains("| protocol | h2: "), "{md}");
    // The JSON keeps it.
    let back: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back.http, r.http);

    // `--http 1.1` stays on HTTP/1.1: no HTTP/2 figures at all.
    o.http = HttpVersion::Http1;
    let r = report(&o).await;
    assert_eq!(r.summary.success_rate, 1.0, "{:?}", r.failures);
    assert!(r.http.is_none(), "{:?}", r.http);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge_against_the_reference_server() {
    let server =
        authbench::server::spawn(ServerConfig::new(4, "k"), ([127, 0, 0, 1], 0).into()).unwrap();
    let o = RunOptions {
        h2_connections: Some(1),
        ..h2c_opts(server.addr(), 60, 6)
    };
    let r = report(&o).await;
    assert_eq!(r.summary.success_rate, 1.0, "{:?}", r.failures);
    let h = r.http.as_ref().unwrap();
    assert_eq!(
        (h.protocol.as_str(), h.connections, h.streams),
        ("h2c", 1, 60)
    );
    // The same per-step figures as HTTP/1.1: one connect, on the first request.
    assert_eq!(r.steps[0].connect.count, 1);
    assert_eq!(r.steps[0].requests, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_limit_of_4_holds_32_flows_to_4_open_streams_and_the_wait_is_reported() {
    let (addr, b) = h2c_server(Behaviour {
        max_streams: Some(4),
        delay: Duration::from_millis(20),
        ..Behaviour::default()
    })
    .await;
    let o = RunOptions {
        h2_connections: Some(1),
        ..h2c_opts(addr, 128, 32)
    };
    let r = report(&o).await;
    assert_eq!(r.summary.success_rate, 1.0, "{:?}", r.failures);
    let peak = b.peak.load(Ordering::SeqCst);
    assert!(peak <= 4, "the server saw {peak} streams at once");
    assert_eq!(peak, 4, "32 flows should fill all 4 streams");
    let h = r.http.as_ref().unwrap();
    assert_eq!(h.server_max_concurrent_streams, Some(4));
    assert!(h.peak_open_streams <= 4, "{h:?}");
    assert!(h.stream_waits > 0 && h.stream_wait_ms_max > 0.0, "{h:?}");
    assert_eq!(h.rst_stream, 0, "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_after_n_requests_is_counted_and_the_run_goes_on_on_a_new_connection() {
    let (addr, b) = h2c_server(Behaviour {
        goaway_after: Some(10),
        ..Behaviour::default()
    })
    .await;
    let o = RunOptions {
        h2_connections: Some(1),
        ..h2c_opts(addr, 50, 1)
    };
    let r = report(&o).await;
    let classes = failure_classes(&r);
    assert!(!classes.iter().any(|c| c == "transport"), "{classes:?}");
    // One at a time, every request but those a GOAWAY took gets through.
    assert_eq!(r.summary.success_rate, 1.0, "{:?}", r.failures);
    let h = r.http.as_ref().unwrap();
    assert!(h.goaway >= 4, "{h:?}");
    assert!(h.connections >= 5, "{h:?}");
    assert!(b.connections.load(Ordering::SeqCst) >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_stream_is_retried_once_on_a_new_connection_and_counted() {
    let (addr, b) = h2c_server(Behaviour {
        reset: Some(|n| (n == 0).then_some(h2::Reason::REFUSED_STREAM)),
        ..Behaviour::default()
    })
    .await;
    let r = report(&RunOptions {
        h2_connections: Some(1),
        ..h2c_opts(addr, 10, 1)
    })
    .await;
    assert_eq!(r.summary.success_rate, 1.0, "{:?}", r.failures);
    let h = r.http.as_ref().unwrap();
    assert_eq!((h.refused_stream_retried, h.rst_stream), (1, 1), "{h:?}");
    assert_eq!(b.seen.load(Ordering::SeqCst), 11);
    assert!(h.connections >= 2, "{h:?}");

    // Refused every time: one retry each, then a failure of its own class.
    let (addr, _) = h2c_server(Behaviour {
        reset: Some(|_| Some(h2::Reason::REFUSED_STREAM)),
        ..Behaviour::default()
    })
    .await;
    let r = report(&h2c_opts(addr, 3, 1)).await;
    assert_eq!(r.summary.successful_flows, 0);
    assert_eq!(failure_classes(&r), vec!["stream_reset".to_string()]);
    assert!(
        r.failures[0].detail.contains("REFUSED_STREAM"),
        "{:?}",
        r.failures
    );
    assert_eq!(r.http.as_ref().unwrap().refused_stream_retried, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reset_is_its_own_failure_class() {
    let (addr, _) = h2c_server(Behaviour {
        reset: Some(|n| (n % 2 == 1).then_some(h2::Reason::INTERNAL_ERROR)),
        ..Behaviour::default()
    })
    .await;
    let r = report(&h2c_opts(addr, 10, 1)).await;
    assert_eq!(r.summary.successful_flows, 5, "{:?}", r.failures);
    assert_eq!(failure_classes(&r), vec!["stream_reset".to_string()]);
    assert!(r.failures[0].detail.contains("INTERNAL_ERROR"));
    let h = r.http.as_ref().unwrap();
    assert_eq!((h.rst_stream, h.refused_stream_retried), (5, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_flow_connections_open_one_connection_per_flow() {
    let (addr, b) = h2c_server(Behaviour::default()).await;
    let r = report(&RunOptions {
        connections: Connections::PerFlow,
        ..h2c_opts(addr, 12, 3)
    })
    .await;
    assert_eq!(r.summary.success_rate, 1.0, "{:?}", r.failures);
    assert_eq!(r.http.as_ref().unwrap().connections, 12);
    assert_eq!(b.connections.load(Ordering::SeqCst), 12);
    assert_eq!(r.steps[0].connect.count, 12);
}

#[test]
fn http_flag_values_are_checked() {
    let (code, _, err) = cli(&["run", "--http", "3", "--flows", "1"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = cli(&["run", "--h2-connections", "0", "--flows", "1"]);
    assert_eq!(code, 2, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_limit_that_holds_the_run_back_is_the_diagnosis_not_the_server() {
    // One stream at a time on one connection: eight flows offered, one seen by the server.
    let (addr, b) = h2c_server(Behaviour {
        max_streams: Some(1),
        delay: Duration::from_millis(20),
        ..Behaviour::default()
    })
    .await;
    let o = RunOptions {
        h2_connections: Some(1),
        calibration_flows: 5,
        ..h2c_opts(addr, 48, 8)
    };
    let r = report(&o).await;
    assert_eq!(r.summary.success_rate, 1.0, "{:?}", r.failures);
    assert_eq!(b.peak.load(Ordering::SeqCst), 1);
    let d = r.diagnosis.as_ref().expect("a diagnosis");
    let v = authbench::diagnosis::verdict(d, &r);
    assert_eq!(
        v,
        authbench::diagnosis::Verdict::StreamLimit,
        "{:#?}",
        d.findings
    );
    assert!(
        d.findings[0].contains("stream limit") && d.findings[0].contains("at most 1 streams"),
        "{}",
        d.findings[0]
    );
    assert!(
        !d.findings.iter().any(|f| f.contains("one at a time")),
        "a client-side stream queue is not a server that serializes: {:#?}",
        d.findings
    );

    // The same delay with no stream limit: the server sees all eight and keeps up.
    let (addr, _) = h2c_server(Behaviour {
        delay: Duration::from_millis(20),
        ..Behaviour::default()
    })
    .await;
    let r = report(&RunOptions {
        h2_connections: Some(1),
        calibration_flows: 5,
        ..h2c_opts(addr, 48, 8)
    })
    .await;
    let d = r.diagnosis.as_ref().expect("a diagnosis");
    assert_ne!(
        authbench::diagnosis::verdict(d, &r),
        authbench::diagnosis::Verdict::StreamLimit,
        "{:#?}",
        d.findings
    );
    assert!(
        d.findings[0].contains("as streams on 1 HTTP/2 connection"),
        "{}",
        d.findings[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_the_server_never_opens_a_window_for_is_a_flow_control_stall() {
    // A window of 0: the request's headers go, its body never can.
    let (addr, _) = h2c_server(Behaviour {
        window: Some(0),
        delay: Duration::from_secs(60),
        ..Behaviour::default()
    })
    .await;
    let o = RunOptions {
        scenario: RunOptions::default().scenario,
        api_key: Some("k".into()),
        timeout: Duration::from_millis(300),
        ..h2c_opts(addr, 2, 2)
    };
    let r = report(&o).await;
    assert_eq!(r.summary.successful_flows, 0);
    let classes = failure_classes(&r);
    assert_eq!(
        classes,
        vec!["flow_control".to_string()],
        "{:?}",
        r.failures
    );
}

#[test]
fn check_and_sweep_speak_http2_when_told() {
    let (code, out, err) = cli(&["check", "--http", "2", "--cost", "4", "--no-progress"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines().next().unwrap_or("").contains("over HTTP/2.0"),
        "{out}"
    );
    let (code, out, err) = cli(&["check", "--http", "1.1", "--cost", "4", "--no-progress"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines().next().unwrap_or("").contains("over HTTP/1.1"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, out, err) = cli(&[
        "sweep",
        "--costs",
        "4",
        "--flows",
        "4",
        "--http",
        "2",
        "--no-progress",
        "--out-dir",
        d,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let json = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let sweep: authbench::sweep::Sweep =
        serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    assert_eq!(sweep.rows[0].protocol.as_deref(), Some("h2c"));
}
