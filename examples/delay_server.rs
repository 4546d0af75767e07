//! A server with a known behaviour, to check authbench's numbers against a known truth:
//! every request to any path answers `{"status":"healthy"}` after `--delay-ms` (slept on a
//! blocking thread, precise to ~0.1 ms), and once,
//! `--stall-after-ms` after the first request, every request stalls for `--stall-ms`.
//!
//! `cargo run --release --example delay_server -- --addr 127.0.0.1:0 --delay-ms 20`
//! prints `listening on http://ADDR` and serves until killed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;

#[derive(Default)]
struct Stall {
    first: Option<Instant>,
    until: Option<Instant>,
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let addr = arg(&args, "--addr", "127.0.0.1:0");
    let delay = Duration::from_millis(arg(&args, "--delay-ms", "0").parse()?);
    let stall_after = Duration::from_millis(arg(&args, "--stall-after-ms", "0").parse()?);
    let stall = Duration::from_millis(arg(&args, "--stall-ms", "0").parse()?);
    let threads: usize = arg(&args, "--threads", "1").parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let state = Arc::new(Mutex::new(Stall::default()));
        let app = Router::new().fallback(move || {
            let state = state.clone();
            async move {
                let wait = {
                    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                    let now = Instant::now();
                    let first = *s.first.get_or_insert(now);
                    if !stall.is_zero() && s.until.is_none() && now - first >= stall_after {
                        s.until = Some(now + stall);
                    }
                    s.until.and_then(|u| u.checked_duration_since(now))
                };
                if let Some(w) = wait {
                    tokio::time::sleep(w).await;
                }
                if !delay.is_zero() {
                    // tokio's timer rounds up to its 1 ms tick; a blocking thread's
                    // nanosleep is within ~0.1 ms, which keeps the known truth known.
                    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(delay)).await;
                }
                (
                    [("content-type", "application/json")],
                    "{\"status\":\"healthy\"}",
                )
            }
        });
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
