//! Small test servers with known behaviour (delays, lies, silence), served for real on
//! 127.0.0.1:0 so the engine is measured over real sockets.

use std::net::SocketAddr;
use std::time::Duration;

use authbench::options::{RunOptions, ScenarioSource};
use authbench::report::Report;
use axum::Router;

/// `scenarios/health.toml`: one GET /health per flow.
pub fn health() -> ScenarioSource {
    ScenarioSource::File(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/health.toml"),
    )
}

/// `flows` health flows against `addr`, `concurrency` at once: no calibration, no report
/// files, a 5 s request timeout (a test that waits for one fails fast).
pub fn health_opts(addr: SocketAddr, flows: u64, concurrency: usize) -> RunOptions {
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

/// Runs `o` to the end (no interrupt) and returns its report.
pub async fn report(o: &RunOptions) -> Report {
    authbench::run(o, std::future::pending())
        .await
        .unwrap()
        .report
}

/// Serves `router` on a loopback port chosen by the OS, on the current runtime.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

/// A port with nothing listening on it.
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Accepts connections and never answers.
pub async fn silent_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    addr
}

/// Runs the CLI in-process; returns (exit code, stdout, stderr).
pub fn cli(args: &[&str]) -> (u8, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut full = vec!["authbench"];
    full.extend_from_slice(args);
    let code = authbench::cli::main_with_args(full, &mut out, &mut err);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

pub async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Held by tests whose assertions depend on having the CPU (bcrypt contrasts), so two of
/// them never share the machine's cores.
pub static CPU_HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Median time of one bcrypt hash at `cost`, measured now.
pub fn hash_time(cost: u32) -> Duration {
    let mut t: Vec<Duration> = (0..5)
        .map(|_| {
            let s = std::time::Instant::now();
            bcrypt::hash("calibrate-me", cost).unwrap();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[2]
}

/// A `/health` that answers `{}` after `ms` milliseconds.
pub async fn delayed_health(ms: u64) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || async move {
            sleep_ms(ms).await;
            "{}"
        }),
    );
    serve(app).await
}

/// A raw TCP server: for every request it reads, it writes `head`, waits `gap_ms`, writes
/// `tail`, then keeps the connection open. For responses no framework would send.
pub async fn raw_server(head: &'static [u8], gap_ms: u64, tail: &'static [u8]) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                loop {
                    // One read per request: the scenarios here send small GETs.
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if s.write_all(head).await.is_err() {
                        return;
                    }
                    sleep_ms(gap_ms).await;
                    if s.write_all(tail).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Serves `router` on a loopback port, on an OS thread with a runtime of its own: its CPU
/// is then not the generator's (tests that look at who used the CPU need that).
pub fn serve_on_own_thread(router: Router) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// Held by tests that count the kernel's dropped SYNs (a count shared by the machine).
pub static BACKLOG: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The kernel's count of SYNs dropped because an accept queue was full.
pub fn listen_overflows() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap();
    let mut tcp_ext = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (tcp_ext.next().unwrap(), tcp_ext.next().unwrap());
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "ListenOverflows")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap()
}

/// A scenario file written for one test (kept alive by the returned guard).
pub fn scenario_file(toml: &str) -> (tempfile::TempDir, ScenarioSource) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, toml).unwrap();
    (dir, ScenarioSource::File(path))
}
