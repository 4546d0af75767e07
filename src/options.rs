//! Checked options: what the engine and the reports see. clap's types stop at the CLI;
//! tests and library users build these directly.

use std::path::PathBuf;
use std::time::Duration;

/// The default of `--max-body`: the most bytes of one response body kept in memory.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// Where the flow definition comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ScenarioSource {
    /// `scenarios/pyairtable.toml`, embedded at build time.
    #[default]
    Builtin,
    /// A scenario file on disk.
    File(PathBuf),
}

/// How flows get HTTP connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Connections {
    /// One pool of keep-alive connections shared by all flows (cheap; the default).
    #[default]
    Shared,
    /// A new client, so new connections, per flow: each flow acts like a new user.
    PerFlow,
}

/// The HTTP version requests go over (`--http`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersion {
    /// Over TLS, offer `h2` and `http/1.1` in ALPN and speak what the server picks;
    /// HTTP/1.1 over `http://`.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only: `h2` in ALPN over TLS, prior knowledge (h2c) over `http://`.
    Http2,
}

/// TLS settings of the clients, for `https://` targets (`--insecure`, `--cacert`,
/// `--cert`/`--key`); built into a rustls config by [`crate::tls::client_config`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Accept any server certificate, for any name; every report says so.
    pub insecure: bool,
    /// PEM certificates trusted besides the system's roots.
    pub cacert: Option<PathBuf>,
    /// A client certificate chain and its private key (PEM), for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Options of `authbench run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Base URL of an external service; `None` starts the in-process reference server.
    pub target: Option<String>,
    /// API key sent as `{{api_key}}`; for the in-process server, its key (random if unset).
    pub api_key: Option<String>,
    /// Number of flows to run.
    pub flows: u64,
    /// Flows in flight at once (closed loop: a worker starts its next flow when one ends).
    pub concurrency: usize,
    /// Per-request timeout, from send to the last byte of the body.
    pub timeout: Duration,
    /// TCP connect timeout (also used for the reachability check before the run).
    pub connect_timeout: Duration,
    /// The most bytes of one response body kept in memory (`--max-body`); the rest is
    /// read, counted and dropped.
    pub max_body: usize,
    /// How often the results are streamed to the out-dir and folded into the totals
    /// (`--interval`).
    pub interval: Duration,
    /// `--metrics ADDR`: serve live metrics (Prometheus text) at `http://ADDR/metrics`.
    pub metrics: Option<std::net::SocketAddr>,
    /// How long the metrics endpoint stays up after the reports are written.
    pub metrics_linger: Duration,
    /// bcrypt cost of the in-process server (ignored for an external target).
    pub cost: u32,
    /// The in-process server's hash algorithm when not bcrypt at `cost` (sweeps of
    /// argon2id, scrypt or PBKDF2 parameters); ignored for an external target.
    pub algorithm: Option<crate::password::Algorithm>,
    /// The flow definition.
    pub scenario: ScenarioSource,
    /// Variables from outside the file (`--var`, `AUTHBENCH_VAR_*`), by name.
    pub vars: Vec<(String, String)>,
    /// Directory for the report files; `None` writes none.
    pub out_dir: Option<PathBuf>,
    /// Show a progress bar (only ever on a terminal).
    pub progress: bool,
    /// Colour in the progress bar (decided by `--color`, `NO_COLOR` and the terminal).
    pub color: bool,
    /// After an interrupt, how long in-flight flows may take to finish.
    pub grace: Duration,
    /// Threshold expressions (`flow.p95<500ms`), checked after the run with the
    /// scenario's own `[thresholds]`.
    pub thresholds: Vec<String>,
    /// A saved JSON report to compare the run with.
    pub baseline: Option<PathBuf>,
    /// Tolerances of the baseline comparison.
    pub compare: crate::criteria::CompareOptions,
    /// Where to write JUnit XML, if anywhere.
    pub junit: Option<PathBuf>,
    /// Also write the HTML report here (it is always written next to the Markdown).
    pub html: Option<PathBuf>,
    /// Flows run one at a time before the measured run, to learn each step's service
    /// time for the diagnosis (0: no calibration, no diagnosis).
    pub calibration_flows: u64,
    /// Where the in-process server hashes (ignored for an external target).
    pub hash_mode: crate::password::HashMode,
    /// The load shape; `None` is a closed loop of `concurrency` workers running `flows`.
    pub plan: Option<crate::plan::Plan>,
    /// Shared connection pool or a new client per flow.
    pub connections: Connections,
    /// `--http`: HTTP/1.1, HTTP/2, or what ALPN picks.
    pub http: HttpVersion,
    /// `--h2-connections`: HTTP/2 connections the flows share under `--connections
    /// shared`; `None` is one per lane (core).
    pub h2_connections: Option<usize>,
    /// Local addresses new connections leave from, in turn (`--source-addr`); empty lets
    /// the kernel choose.
    pub source_addrs: Vec<std::net::IpAddr>,
    /// Write the `[vars]` and data columns of successful flows here, as CSV.
    pub save_users: Option<PathBuf>,
    /// TLS settings of the clients (`https://` targets).
    pub tls: TlsOptions,
    /// The in-process server serves HTTPS with a certificate generated at start, which
    /// the run trusts (`--tls`; ignored with an external target).
    pub server_tls: bool,
    /// Server processes on this machine whose CPU, memory and threads, with their
    /// descendants', are sampled from `/proc` during the run (`--server-pid`, repeatable).
    pub server_pids: Vec<u32>,
    /// A Prometheus text endpoint of the service, scraped during the run (`--scrape`).
    pub scrape: Option<String>,
    /// This generator's share of the load (`--shard I/N`): flows, workers, rates and
    /// `unique` data rows are split, `{{seq}}` is strided (see [`crate::shard`]).
    pub shard: Option<crate::shard::Shard>,
    /// When the measured load begins (`--start-at`), after the calibration; `None` starts
    /// it at once.
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            target: None,
            api_key: None,
            flows: 20,
            concurrency: 20,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_body: DEFAULT_MAX_BODY,
            interval: Duration::from_secs(1),
            metrics: None,
            metrics_linger: Duration::from_secs(5),
            cost: 12,
            algorithm: None,
            scenario: ScenarioSource::Builtin,
            vars: Vec::new(),
            out_dir: Some(PathBuf::from("reports")),
            progress: false,
            color: false,
            grace: Duration::from_secs(2),
            thresholds: Vec::new(),
            baseline: None,
            compare: crate::criteria::CompareOptions::default(),
            junit: None,
            html: None,
            calibration_flows: 5,
            hash_mode: crate::password::HashMode::Pool,
            plan: None,
            connections: Connections::Shared,
            http: HttpVersion::Auto,
            h2_connections: None,
            source_addrs: Vec::new(),
            save_users: None,
            tls: TlsOptions::default(),
            server_tls: false,
            server_pids: Vec::new(),
            scrape: None,
            shard: None,
            start_at: None,
        }
    }
}

/// Options of `authbench serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: std::net::SocketAddr,
    pub cost: u32,
    /// The hash algorithm, when not bcrypt at `cost` (`--hash`).
    pub algorithm: Option<crate::password::Algorithm>,
    pub api_key: Option<String>,
    pub hash_mode: crate::password::HashMode,
    /// Serve HTTPS with a self-signed certificate generated at start.
    pub tls: bool,
    /// Where to write that certificate (PEM) for other tools' `--cacert`; a temporary
    /// file when unset.
    pub tls_cert_out: Option<PathBuf>,
}
