//! New connections per flow, counted where the kernel keeps them: the TIME_WAIT sockets of
//! a per-flow run land on the server's side (it closes first, asked by `Connection:
//! close`), a server that ignores the request still answers every flow and is closed by
//! authbench, `--source-addr` spreads connections over loopback aliases, a machine out of
//! local ports (a network namespace with a four-port range) fails as class `ports` with
//! its fix, and the descriptor limit is raised, or the run refused with the cause.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use authbench::options::{Connections, RunOptions};

use crate::support::{health, health_opts, report};

/// A TCP socket in TIME_WAIT, from `/proc/net/tcp`: its local and remote addresses.
struct TimeWait {
    local: SocketAddr,
    remote: SocketAddr,
}

/// The IPv4 sockets in TIME_WAIT (state 06) now.
fn time_waits() -> Vec<TimeWait> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let addr = |hex: &str| -> SocketAddr {
        let (ip, port) = hex.split_once(':').unwrap();
        // The address is the in-memory (little-endian) u32, in hex.
        let ip = u32::from_str_radix(ip, 16).unwrap().to_le_bytes();
        let port = u16::from_str_radix(port, 16).unwrap();
        (IpAddr::from(ip), port).into()
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(3) == Some(&"06")).then(|| TimeWait {
                local: addr(f[1]),
                remote: addr(f[2]),
            })
        })
        .collect()
}

/// Per-flow health flows with no report files and no calibration.
fn per_flow(mut o: RunOptions) -> RunOptions {
    o.connections = Connections::PerFlow;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_time_wait_of_a_per_flow_run_lands_on_the_server() {
    let flows = 2000;
    let o = per_flow(RunOptions {
        scenario: health(),
        flows,
        concurrency: 16,
        calibration_flows: 0,
        cost: 4,
        out_dir: None,
        ..RunOptions::default()
    });
    let r = report(&o).await;
    assert_eq!(r.summary.successful_flows, flows);
    let port: u16 = r.config.target.rsplit(':').next().unwrap().parse().unwrap();
    let tw = time_waits();
    let server = tw.iter().filter(|t| t.local.port() == port).count() as u64;
    let client = tw.iter().filter(|t| t.remote.port() == port).count() as u64;
    // One socket per flow closes; whoever closed first holds it. A few on the client's
    // side are the reachability check and flows cut short; loopback may recycle some of
    // the server's for new connects (tcp_tw_reuse), hence "most", not "all".
    assert!(
        client * 20 < flows,
        "{client} TIME_WAIT on authbench's side of {flows} flows (server {server})"
    );
    assert!(
        server * 2 > flows,
        "only {server} TIME_WAIT on the server's side of {flows} flows (client {client})"
    );
}

/// Answers every request with a keep-alive 200 and never closes a connection, whatever the
/// request says; counts the connections the client closed.
async fn server_that_never_closes() -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let closed = Arc::new(AtomicUsize::new(0));
    let counter = closed.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let closed = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while let Ok(1..) = s.read(&mut buf).await {
                    let body = br#"{"status":"healthy"}"#;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
                        body.len()
                    );
                    if s.write_all(head.as_bytes()).await.is_err()
                        || s.write_all(body).await.is_err()
                    {
                        break;
                    }
                }
                closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_connection_close_still_answers_and_is_closed_by_authbench() {
    let (addr, closed) = server_that_never_closes().await;
    let flows = 40;
    let r = report(&per_flow(health_opts(addr, flows, 8))).await;
    assert_eq!(r.summary.successful_flows, flows, "{:?}", r.failures);
    // authbench waits a moment for the server's FIN, then closes each connection itself:
    // every connection the run opened (and the reachability check's) ends.
    let mut waited = 0;
    while closed.load(Ordering::SeqCst) < flows as usize + 1 && waited < 100 {
        crate::support::sleep_ms(50).await;
        waited += 1;
    }
    assert_eq!(closed.load(Ordering::SeqCst), flows as usize + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_addresses_spread_new_connections_over_loopback_aliases() {
    let flows = 60;
    let mut o = per_flow(RunOptions {
        scenario: health(),
        flows,
        concurrency: 4,
        calibration_flows: 0,
        cost: 4,
        out_dir: None,
        ..RunOptions::default()
    });
    o.source_addrs = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
    let r = report(&o).await;
    assert_eq!(r.summary.successful_flows, flows);
    assert_eq!(r.config.source_addrs, ["127.0.0.2", "127.0.0.3"]);
    let port: u16 = r.config.target.rsplit(':').next().unwrap().parse().unwrap();
    let from = |ip: &str| {
        time_waits()
            .iter()
            .filter(|t| t.local.port() == port && t.remote.ip().to_string() == ip)
            .count()
    };
    // Taken in turn: half from each (the server keeps their TIME_WAITs).
    let (two, three) = (from("127.0.0.2"), from("127.0.0.3"));
    assert!(
        two >= 20 && three >= 20,
        "127.0.0.2: {two}, 127.0.0.3: {three}"
    );
    assert_eq!(from("127.0.0.1"), 0, "a flow left from the default address");
}

#[test]
fn a_source_address_that_is_not_this_machines_is_refused_before_the_run() {
    let (code, _, err) = crate::support::cli(&[
        "run",
        "--flows",
        "2",
        "--cost",
        "4",
        "--calibration",
        "0",
        "--no-reports",
        "--source-addr",
        "192.0.2.1",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--source-addr 192.0.2.1") && err.contains("cannot bind"),
        "{err}"
    );
}

/// Runs `script` with `sh -c`, the authbench binary built for the tests in `$AB`: for
/// what must be set up around the process (a network namespace, a descriptor limit).
fn sh(script: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("AB", env!("CARGO_BIN_EXE_authbench"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn a_machine_out_of_local_ports_fails_as_class_ports_with_its_fix() {
    // A network namespace of our own (unprivileged where user namespaces are allowed), with
    // a four-port ephemeral range and no TIME_WAIT reuse: the in-process server's listening
    // socket takes one, the reachability check another (left in TIME_WAIT), and eight
    // workers each holding a connection find no port left.
    let has_ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    if !has_ip {
        eprintln!("SKIPPED: no `ip` (iproute2; scripts/setup.sh installs it)");
        return;
    }
    let probe = Command::new("unshare").args(["-rn", "true"]).status();
    let ns = match probe {
        Ok(s) if s.success() => "unshare -rn",
        _ => match Command::new("unshare").args(["-n", "true"]).status() {
            Ok(s) if s.success() => "unshare -n",
            _ => {
                eprintln!("SKIPPED: no network namespace can be made here (unshare)");
                return;
            }
        },
    };
    let script = format!(
        "{ns} sh -c 'ip link set lo up && \
         echo 40000 40003 > /proc/sys/net/ipv4/ip_local_port_range && \
         echo 0 > /proc/sys/net/ipv4/tcp_tw_reuse && \
         \"$AB\" run --scenario {} --flows 40 --concurrency 8 --cost 4 --calibration 0 \
         --no-reports --timeout 5s'",
        env!("CARGO_MANIFEST_DIR").to_string() + "/scenarios/health.toml"
    );
    let out = sh(&script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "status {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("ports"), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("EADDRNOTAVAIL") && stdout.contains("ip_local_port_range"),
        "{stdout}"
    );
}

#[test]
fn the_descriptor_limit_is_raised_or_the_run_refused_with_the_cause() {
    let health = env!("CARGO_MANIFEST_DIR").to_string() + "/scenarios/health.toml";
    // Soft 200, hard 4096: raised, and said.
    let out = sh(&format!(
        "ulimit -Sn 200 && ulimit -Hn 4096 && \"$AB\" run --scenario {health} --flows 20 \
         --concurrency 20 --cost 4 --calibration 0 --no-reports"
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("descriptor limit raised from 200 to 4096"),
        "{stdout}"
    );
    // Hard 200: 500 flows at once (client and in-process server ends) cannot fit.
    let out = sh(&format!(
        "ulimit -n 200 && \"$AB\" run --scenario {health} --flows 500 --concurrency 500 \
         --cost 4 --calibration 0 --no-reports"
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("need about 1064 file descriptors") && stderr.contains("may open 200"),
        "{stderr}"
    );
}

#[test]
fn a_planned_connection_rate_past_the_ephemeral_ports_is_noted() {
    let Some((lo, hi)) = authbench::engine::transport::local::ephemeral_ports() else {
        eprintln!("SKIPPED: no /proc/sys/net/ipv4/ip_local_port_range");
        return;
    };
    // A minute at this rate needs more ports than the range has; 5 flows are enough to
    // see the note.
    let rate = ((hi - lo + 1) / 60 + 100).to_string();
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = crate::support::cli(&[
        "run",
        "--rate",
        &rate,
        "--flows",
        "5",
        "--connections",
        "per-flow",
        "--cost",
        "4",
        "--calibration",
        "0",
        "--out-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("generator:") && out.contains("new connections/s for 60 s"),
        "{out}"
    );
    let md = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "md"))
        .unwrap();
    assert!(std::fs::read_to_string(md)
        .unwrap()
        .contains("| generator |"));
}
