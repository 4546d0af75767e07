//! HTTPS end to end, over real TLS: the reference server (or a small rustls server) with
//! a certificate generated for the test, and authbench trusting it through `--cacert`,
//! refusing it without, accepting anything with `--insecure` (and saying so), timing one
//! handshake per connection opened, naming a hostname mismatch and a protocol failure
//! before any load, and `run --tls` / `check --tls` on the in-process server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use authbench::options::{Connections, RunOptions, TlsOptions};
use authbench::render::{html::Html, markdown::Markdown, terminal::Terminal, Exporter};
use authbench::report::Report;
use authbench::server::{ServerConfig, ServerHandle, TlsIdentity};

use crate::support::{cli, health, report};

/// The reference server over HTTPS with a certificate for `names`, and that certificate
/// in a PEM file.
struct HttpsServer {
    handle: ServerHandle,
    cert: tempfile::NamedTempFile,
}

impl HttpsServer {
    fn start(names: &[&str]) -> HttpsServer {
        let id = TlsIdentity::self_signed_for(names).unwrap();
        let cert = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(cert.path(), id.cert_pem()).unwrap();
        let mut cfg = ServerConfig::new(4, "k");
        cfg.tls = Some(id);
        let handle = authbench::server::spawn(cfg, ([127, 0, 0, 1], 0).into()).unwrap();
        HttpsServer { handle, cert }
    }

    fn url(&self) -> String {
        self.handle.base_url()
    }

    fn cacert(&self) -> PathBuf {
        self.cert.path().to_path_buf()
    }
}

/// Health flows against `url` with the given TLS settings.
fn https_opts(url: String, tls: TlsOptions, flows: u64, concurrency: usize) -> RunOptions {
    RunOptions {
        target: Some(url),
        scenario: health(),
        flows,
        concurrency,
        timeout: std::time::Duration::from_secs(10),
        calibration_flows: 0,
        out_dir: None,
        tls,
        ..RunOptions::default()
    }
}

fn trusting(s: &HttpsServer) -> TlsOptions {
    TlsOptions {
        cacert: Some(s.cacert()),
        ..TlsOptions::default()
    }
}

/// TCP connections and TLS handshakes over all steps.
fn opened(r: &Report) -> (u64, u64) {
    r.steps
        .iter()
        .fold((0, 0), |(c, t), s| (c + s.connect.count, t + s.tls.count))
}

fn health_args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/health.toml");
    let mut a = vec![
        "run",
        "--target",
        url,
        "--scenario",
        scenario,
        "--flows",
        "10",
        "--calibration",
        "0",
        "--no-reports",
        "--no-progress",
    ];
    a.extend_from_slice(extra);
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_through_cacert_every_flow_succeeds_with_a_handshake_per_connection() {
    let s = HttpsServer::start(&["127.0.0.1", "localhost"]);
    let r = report(&https_opts(s.url(), trusting(&s), 200, 4)).await;
    assert_eq!(r.summary.success_rate, 1.0, "{:?}", r.failures);
    assert!(!r.config.insecure);
    let (connects, handshakes) = opened(&r);
    // A shared pool: at most one connection per worker, each with one full handshake.
    assert_eq!(handshakes, connects);
    assert!((1..=4).contains(&handshakes), "{handshakes}");
    let step = &r.steps[0];
    assert!(step.tls.p50_ms > 0.0 && !step.tls_histogram.is_empty());

    // The handshake histogram survives the JSON round trip and a merge adds it exactly.
    let json = serde_json::to_string(&r).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back.steps[0].tls, step.tls);
    let merged = authbench::report::merge::merge(&[r.clone(), back]).unwrap();
    assert_eq!(merged.steps[0].tls.count, 2 * step.tls.count);

    // Markdown and HTML put the handshake beside connect and first byte.
    let md = String::from_utf8(Markdown.render(&r).unwrap()).unwrap();
    assert!(
        md.contains("| TLS handshake p50 | TLS handshake p99 |"),
        "{md}"
    );
    let html = String::from_utf8(Html.render(&r).unwrap()).unwrap();
    assert!(html.contains("<th>TLS handshake p50</th>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_flow_connections_do_one_full_handshake_per_flow() {
    let s = HttpsServer::start(&["127.0.0.1"]);
    let o = RunOptions {
        connections: Connections::PerFlow,
        ..https_opts(s.url(), trusting(&s), 30, 3)
    };
    let r = report(&o).await;
    assert_eq!(r.summary.success_rate, 1.0, "{:?}", r.failures);
    assert_eq!(opened(&r), (30, 30));
}

#[test]
fn an_untrusted_certificate_is_refused_before_any_load_naming_the_fix() {
    let s = HttpsServer::start(&["127.0.0.1"]);
    let url = s.url();
    let (code, out, err) = cli(&health_args(&url, &[]));
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(
        err.contains("certificate not trusted (self-signed)")
            && err.contains("--cacert FILE")
            && err.contains("--insecure"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        !out.contains("Total Tests Executed"),
        "no load was sent: {out}"
    );

    // The same server with its certificate trusted.
    let ca = s.cacert();
    let (code, out, err) = cli(&health_args(&url, &["--cacert", ca.to_str().unwrap()]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Success Rate: 100.00%"), "{out}");
}

/// A server whose own certificate is marked as a CA (`basicConstraints CA:TRUE`), as
/// `openssl req -x509` makes by default: webpki refuses it as a server certificate. Given
/// as `--cacert`, that exact certificate is accepted (its name still checked); without it,
/// the preflight says what is wrong with it. Found against `openssl s_server`.
#[test]
fn a_self_signed_ca_certificate_is_accepted_only_when_pinned_with_cacert() {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let id = TlsIdentity::from_pem(&cert.pem(), &key.serialize_pem()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca-as-leaf.pem");
    std::fs::write(&pem, cert.pem()).unwrap();
    let mut cfg = ServerConfig::new(4, "k");
    cfg.tls = Some(id);
    let handle = authbench::server::spawn(cfg, ([127, 0, 0, 1], 0).into()).unwrap();
    let url = handle.base_url().replace("127.0.0.1", "localhost");

    let (code, _, err) = cli(&health_args(&url, &[]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("is a CA certificate") && err.contains("--cacert FILE"),
        "{err}"
    );

    let (code, out, err) = cli(&health_args(&url, &["--cacert", pem.to_str().unwrap()]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Success Rate: 100.00%"), "{out}");

    // Pinned, but reached by a name it does not carry: refused, and named.
    let other = url.replace("localhost", "127.0.0.1");
    let (code, _, err) = cli(&health_args(&other, &["--cacert", pem.to_str().unwrap()]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("hostname mismatch"), "{err}");
    handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_accepts_any_certificate_and_every_report_says_so() {
    // A certificate for another name, not trusted: --insecure takes it anyway.
    let s = HttpsServer::start(&["not-this-host.test"]);
    let tls = TlsOptions {
        insecure: true,
        ..TlsOptions::default()
    };
    let r = report(&https_opts(s.url(), tls, 20, 2)).await;
    assert_eq!(r.summary.success_rate, 1.0, "{:?}", r.failures);
    assert!(r.config.insecure);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["config"]["insecure"], true);
    let md = String::from_utf8(Markdown.render(&r).unwrap()).unwrap();
    assert!(md.contains("**INSECURE**") && md.contains("| TLS verification | **off**"));
    let html = String::from_utf8(Html.render(&r).unwrap()).unwrap();
    assert!(html.contains("<strong>INSECURE</strong>"));
    let term = String::from_utf8(Terminal { color: false }.render(&r).unwrap()).unwrap();
    assert!(term.contains("INSECURE"), "{term}");
}

#[test]
fn a_hostname_mismatch_is_named() {
    // A certificate for localhost only, reached as 127.0.0.1.
    let s = HttpsServer::start(&["localhost"]);
    let (url, ca) = (s.url(), s.cacert());
    let (code, _, err) = cli(&health_args(&url, &["--cacert", ca.to_str().unwrap()]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("hostname mismatch")
            && err.contains("localhost")
            && err.contains("--insecure"),
        "{err}"
    );

    // A certificate for another name altogether, reached by the name localhost.
    let s = HttpsServer::start(&["auth.example.test"]);
    let url = format!("https://localhost:{}", s.handle.addr().port());
    let ca = s.cacert();
    let (code, _, err) = cli(&health_args(&url, &["--cacert", ca.to_str().unwrap()]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("hostname mismatch") && err.contains("auth.example.test"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_server_behind_https_is_a_protocol_failure() {
    let addr: SocketAddr = crate::support::delayed_health(0).await;
    let url = format!("https://{addr}");
    let (code, _, err) = tokio::task::spawn_blocking(move || cli(&health_args(&url, &[])))
        .await
        .unwrap();
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("TLS protocol failure"), "{err}");
}

#[test]
fn tls_flag_errors_are_usage_errors() {
    let (code, _, err) = cli(&health_args(
        "https://127.0.0.1:1",
        &["--cacert", "/nonexistent/ca.pem"],
    ));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--cacert '/nonexistent/ca.pem'"), "{err}");
    let (code, _, err) = cli(&health_args("https://127.0.0.1:1", &["--cert", "c.pem"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--key"), "{err}");
    let (code, _, err) = cli(&["run", "--tls", "--target", "https://127.0.0.1:1"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn run_tls_against_the_in_process_server_passes() {
    let (code, out, err) = cli(&[
        "run",
        "--tls",
        "--cost",
        "4",
        "--flows",
        "10",
        "--calibration",
        "1",
        "--no-reports",
        "--no-progress",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Success Rate: 100.00%"), "{out}");
    assert!(!out.contains("INSECURE"), "{out}");
}

#[test]
fn check_tls_passes_every_probe() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = cli(&[
        "check",
        "--tls",
        "--cost",
        "4",
        "--out-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("0 failed") && out.contains("0 warned"),
        "{out}"
    );
    let json = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    assert!(r["target"]
        .as_str()
        .unwrap()
        .starts_with("https://127.0.0.1:"));
}

/// A server that requires a client certificate it knows; returns its address and, as
/// PEM files, its own certificate and the client's certificate and key.
async fn mtls_server(dir: &std::path::Path) -> (SocketAddr, PathBuf, PathBuf, PathBuf) {
    let server = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let client = rcgen::generate_simple_self_signed(vec!["client".to_string()]).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client.cert.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        authbench::crypto::provider(),
    )
    .build()
    .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(server.key_pair.serialize_der().into());
    let mut cfg = rustls::ServerConfig::builder_with_provider(authbench::crypto::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server.cert.der().clone()], key)
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = authbench::server::TlsListener::new(tcp, Arc::new(cfg)).unwrap();
    let app = axum::Router::new().route("/health", axum::routing::get(|| async { "{}" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let files = [
        ("server.pem", server.cert.pem()),
        ("client.pem", client.cert.pem()),
        ("client.key", client.key_pair.serialize_pem()),
    ]
    .map(|(name, pem)| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    });
    let [ca, cert, key] = files;
    (addr, ca, cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_sends_the_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, ca, cert, key) = mtls_server(dir.path()).await;
    let tls = TlsOptions {
        cacert: Some(ca.clone()),
        client_cert: Some((cert, key)),
        ..TlsOptions::default()
    };
    let r = report(&https_opts(format!("https://{addr}"), tls, 20, 2)).await;
    assert_eq!(r.summary.success_rate, 1.0, "{:?}", r.failures);

    // Without it the server refuses (under TLS 1.3 just after the client's side of the
    // handshake is done), and the preflight names the flags, before any load.
    let url = format!("https://{addr}");
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        cli(&health_args(&url, &["--cacert", ca.to_str().unwrap()]))
    })
    .await
    .unwrap();
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("asks for a client certificate") && err.contains("--cert FILE --key FILE"),
        "{err}"
    );
}

#[test]
fn serve_tls_writes_its_certificate_for_another_tool_and_removes_a_temporary_one() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authbench"))
        .args(["serve", "--tls", "--addr", "127.0.0.1:0", "--cost", "4"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut cert) = (None, None);
    for line in lines.by_ref().take(3) {
        let line = line.unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            url = rest.split_whitespace().next().map(str::to_string);
        }
        if let Some(p) = line.strip_prefix("TLS certificate (PEM, for --cacert): ") {
            cert = Some(p.to_string());
        }
    }
    let (url, cert) = (url.unwrap(), cert.unwrap());
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert!(std::path::Path::new(&cert).exists());

    let (code, out, err) = cli(&health_args(&url, &["--cacert", &cert]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Success Rate: 100.00%"), "{out}");

    // SAFETY: kill(2) with a pid we own; no memory is touched.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not stop on Ctrl-C");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !std::path::Path::new(&cert).exists(),
        "{cert} was left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_over_https_with_insecure_says_so() {
    let s = HttpsServer::start(&["127.0.0.1"]);
    let opts = authbench::check::CheckOptions {
        target: Some(s.url()),
        api_key: Some("k".into()),
        out_dir: None,
        timing_samples: 10,
        burst: 5,
        race: 2,
        tls: TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        },
        ..authbench::check::CheckOptions::default()
    };
    let r = authbench::check::check(&opts).await.unwrap().report;
    assert!(r.insecure);
    let term = String::from_utf8(authbench::check::report::terminal(&r, false)).unwrap();
    assert!(term.contains("INSECURE"), "{term}");
    let md = String::from_utf8(authbench::check::report::markdown(&r)).unwrap();
    assert!(md.contains("INSECURE"));

    // --insecure on a plain http:// target skipped nothing, and no report claims it did.
    let plain = crate::support::delayed_health(0).await;
    let o = RunOptions {
        tls: TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        },
        ..crate::support::health_opts(plain, 2, 1)
    };
    assert!(!report(&o).await.config.insecure);
}
