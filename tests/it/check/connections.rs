//! Probes are independent of how the service handles connections: the correct fake is put
//! behind proxies that (a) close the connection after every error answer without saying
//! so, (b) answer a too-large body with 413 before reading it, then close, (c) reset the
//! connection of one request only. Every other probe's verdict is the fake's own, nothing
//! is skipped for set-up, and three runs give the same table.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use authbench::check::{check, CheckReport, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{fake_opts, fake_router, probe, Flaws};
use crate::support::serve;

/// How the proxy mishandles connections.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Misbehaviour {
    /// Closes the client's connection after any answer of 400 or more, without
    /// `Connection: close` (uvicorn after an unhandled exception).
    CloseAfterError,
    /// Answers a body over 64 KiB with 413 before reading it, then closes.
    EarlyAnswer,
    /// Resets the connection, unanswered, of the one request whose bearer token is
    /// garbage on `/auth/verify`.
    ResetOne,
}

/// One HTTP/1.1 request as read from the client: its head and the value of its
/// Content-Length.
struct Head {
    bytes: Vec<u8>,
    content_length: usize,
}

/// Reads a request head (up to the blank line); `None` at EOF or on a malformed head.
async fn read_head(c: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Head> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let bytes: Vec<u8> = buf.drain(..end + 4).collect();
            let text = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
            let content_length = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            return Some(Head {
                bytes,
                content_length,
            });
        }
        let mut chunk = [0u8; 8192];
        let n = c.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads `n` body bytes (some may already be in `buf`).
async fn read_body(c: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> Option<Vec<u8>> {
    while buf.len() < n {
        let mut chunk = vec![0u8; 64 * 1024];
        let got = c.read(&mut chunk).await.ok()?;
        if got == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..got]);
    }
    Some(buf.drain(..n).collect())
}

/// Sends one request to the backend on a connection of its own and returns the whole
/// answer (the backend closes after it: the request asks it to).
async fn forward(backend: SocketAddr, head: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(head);
    let mut lines: Vec<&str> = text
        .trim_end()
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("connection: close");
    let mut req = lines.join("\r\n").into_bytes();
    req.extend_from_slice(b"\r\n\r\n");
    req.extend_from_slice(body);
    let mut b = TcpStream::connect(backend).await.ok()?;
    b.write_all(&req).await.ok()?;
    let mut answer = Vec::new();
    b.read_to_end(&mut answer).await.ok()?;
    Some(answer)
}

/// The answer with its `connection: close` header removed: the client is not told.
fn without_close(answer: &[u8]) -> Vec<u8> {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return answer.to_vec();
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let kept: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    let mut out = kept.join("\r\n").into_bytes();
    out.extend_from_slice(&answer[end..]);
    out
}

async fn serve_client(mut c: TcpStream, backend: SocketAddr, mode: Misbehaviour) {
    let mut buf = Vec::new();
    while let Some(head) = read_head(&mut c, &mut buf).await {
        if mode == Misbehaviour::EarlyAnswer && head.content_length > 64 * 1024 {
            let body = br#"{"detail":"Request body too large"}"#;
            let answer = format!(
                "HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            let _ = c.write_all(answer.as_bytes()).await;
            let _ = c.write_all(body).await;
            // Then the body is read and dropped, and the connection closed.
            let _ = read_body(&mut c, &mut buf, head.content_length).await;
            return;
        }
        let Some(body) = read_body(&mut c, &mut buf, head.content_length).await else {
            return;
        };
        let text = String::from_utf8_lossy(&head.bytes);
        if mode == Misbehaviour::ResetOne
            && text.starts_with("GET /auth/verify ")
            && text.contains("Bearer garbage-")
        {
            // SO_LINGER 0: close() sends RST. (Deprecated because a non-zero linger blocks
            // the thread on drop; a zero one never does.)
            #[allow(deprecated)]
            let _ = c.set_linger(Some(std::time::Duration::ZERO));
            return;
        }
        let Some(answer) = forward(backend, &head.bytes, &body).await else {
            return;
        };
        let status: u16 = String::from_utf8_lossy(&answer[..answer.len().min(12)])
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if c.write_all(&without_close(&answer)).await.is_err() {
            return;
        }
        if mode == Misbehaviour::CloseAfterError && status >= 400 {
            return;
        }
    }
}

/// A proxy to `backend` that mishandles connections as `mode` says.
async fn proxy(backend: SocketAddr, mode: Misbehaviour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((c, _)) = listener.accept().await {
            tokio::spawn(serve_client(c, backend, mode));
        }
    });
    addr
}

/// Each probe's outcome, by id.
fn table(r: &CheckReport) -> BTreeMap<String, Outcome> {
    r.probes.iter().map(|p| (p.id.clone(), p.outcome)).collect()
}

async fn check_behind(mode: Misbehaviour) -> CheckReport {
    let backend = serve(fake_router(Flaws::default())).await;
    let front = proxy(backend, mode).await;
    check(&fake_opts(format!("http://{front}")))
        .await
        .expect("the check runs")
        .report
}

/// The verdicts behind the proxy equal the fake's own, except for `allowed` ids; nothing
/// is skipped because a set-up failed; no warning names a broken connection.
fn assert_unchanged(base: &CheckReport, r: &CheckReport, allowed: &[&str]) {
    let (a, b) = (table(base), table(r));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same probes run"
    );
    for (id, want) in &a {
        if allowed.contains(&id.as_str()) {
            continue;
        }
        assert_eq!(b[id], *want, "{id}: {:#?}", probe(r, id));
    }
    for p in &r.probes {
        let text = format!("{} {}", p.got, p.note.as_deref().unwrap_or(""));
        assert!(!text.contains("setup failed"), "{p:#?}");
        assert!(
            !(p.outcome == Outcome::Warn && text.contains("no answer")),
            "{p:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_closes_after_every_error_changes_no_verdict() {
    let base = super::check_fake(Flaws::default()).await;
    let runs = [
        check_behind(Misbehaviour::CloseAfterError).await,
        check_behind(Misbehaviour::CloseAfterError).await,
        check_behind(Misbehaviour::CloseAfterError).await,
    ];
    for r in &runs {
        assert_unchanged(&base, r, &[]);
        assert_eq!(table(r), table(&runs[0]), "three runs, one table");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_answers_a_large_body_unread_changes_only_that_probe() {
    let base = super::check_fake(Flaws::default()).await;
    let runs = [
        check_behind(Misbehaviour::EarlyAnswer).await,
        check_behind(Misbehaviour::EarlyAnswer).await,
        check_behind(Misbehaviour::EarlyAnswer).await,
    ];
    for r in &runs {
        // The fake itself takes 1 MiB (a failure); the proxy's 413 is what a careful
        // service answers.
        assert_unchanged(&base, r, &["register.large_body"]);
        assert_eq!(probe(r, "register.large_body").outcome, Outcome::Pass);
        assert_eq!(table(r), table(&runs[0]), "three runs, one table");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_on_one_request_is_that_probes_error_alone() {
    let base = super::check_fake(Flaws::default()).await;
    let runs = [
        check_behind(Misbehaviour::ResetOne).await,
        check_behind(Misbehaviour::ResetOne).await,
        check_behind(Misbehaviour::ResetOne).await,
    ];
    for r in &runs {
        assert_unchanged(&base, r, &["token.garbage[verify]"]);
        let p = probe(r, "token.garbage[verify]");
        assert_eq!(p.outcome, Outcome::Error, "{p:#?}");
        assert!(p.got.contains("no answer on a fresh connection"), "{p:#?}");
        assert!(
            p.request
                .as_deref()
                .unwrap_or("")
                .contains("GET /auth/verify"),
            "{p:#?}"
        );
        assert_eq!(r.summary.errors, 1);
        assert_eq!(
            r.exit_code(),
            base.exit_code(),
            "an error does not fail the run"
        );
        assert_eq!(table(r), table(&runs[0]), "three runs, one table");
    }
}
