//! What several commands share: the flag groups flattened into every command that talks to
//! a target or writes reports (target, timeouts, output), `--max-regression` and friends,
//! `--hash-mode`; the [`Ui`] (colour per stream, progress) and the one way errors and
//! warnings are printed; Ctrl-C handling.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::color::{self, paint};
use crate::error::exit;
use crate::units::parse_duration;

/// The service under test. Flattened into `run`, `check` and `sweep`.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Base URL of the service to test (http:// or https://); without it the in-process
    /// reference server is used.
    #[arg(long, short = 't', value_name = "URL")]
    pub target: Option<String>,
    /// API key, sent where the scenario says (`{{api_key}}`, the X-API-Key header by default).
    #[arg(
        long,
        env = "AUTHBENCH_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
    /// https: accept any server certificate, for any name (no verification; every report
    /// says so).
    #[arg(long)]
    pub insecure: bool,
    /// https: also trust the CA or self-signed certificates in this PEM file (besides the
    /// system's roots).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// https: client certificate chain (PEM) for mutual TLS; needs --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// https: the client certificate's private key (PEM); needs --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// `auto`: over TLS offer h2 and http/1.1 (ALPN) and speak what the server picks,
    /// HTTP/1.1 over http://; `2`: HTTP/2 only (h2c prior knowledge over http://); `1.1`.
    #[arg(long, value_enum, default_value = "auto")]
    pub http: HttpArg,
}

impl TargetArgs {
    /// The TLS flags as options.
    pub fn tls(&self) -> crate::options::TlsOptions {
        crate::options::TlsOptions {
            insecure: self.insecure,
            cacert: self.cacert.clone(),
            client_cert: self.cert.clone().zip(self.key.clone()),
        }
    }
}

/// What every command that runs flows shares: the scenario, the timeouts, the output
/// directory. Flattened into `run`, `check`, `sweep` and `tune`.
#[derive(Debug, Args)]
pub struct CommonArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The flow definition.
#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// Scenario file (TOML) [default: the built-in scenarios/pyairtable.toml].
    #[arg(long, short = 's', value_name = "PATH")]
    pub scenario: Option<PathBuf>,
    #[command(flatten)]
    pub vars: VarArgs,
}

/// Variables given from outside the scenario file.
#[derive(Debug, Args, Default)]
pub struct VarArgs {
    /// Define a variable every template may read as {{NAME}} (repeatable); replaces a
    /// [vars] entry of that name. AUTHBENCH_VAR_NAME=VALUE in the environment does the
    /// same; the flag wins.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub var: Vec<(String, String)>,
}

impl VarArgs {
    /// The `AUTHBENCH_VAR_*` environment, then `--var` (a later one of the same name wins).
    pub fn vars(&self) -> Vec<(String, String)> {
        merge_vars(
            std::env::vars().filter_map(|(k, v)| {
                let name = k.strip_prefix(VAR_ENV_PREFIX)?;
                (valid_var_name(name) && !builtin(name)).then(|| (name.to_string(), v))
            }),
            self.var.iter().cloned(),
        )
    }
}

/// The environment form of `--var NAME=VALUE`: `AUTHBENCH_VAR_NAME=VALUE`.
pub const VAR_ENV_PREFIX: &str = "AUTHBENCH_VAR_";

fn valid_var_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn builtin(name: &str) -> bool {
    crate::scenario::BUILTINS.iter().any(|(b, _)| *b == name)
}

/// `env` then `flags`, one entry per name, the last given winning.
fn merge_vars(
    env: impl Iterator<Item = (String, String)>,
    flags: impl Iterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in env.chain(flags) {
        out.retain(|(n, _)| *n != k);
        out.push((k, v));
    }
    out
}

/// `NAME=VALUE` of `--var`: the name in letters, digits and `_`, the value anything.
pub fn parse_var(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    if !valid_var_name(name) {
        return Err(format!(
            "`{name}` is not a variable name: use letters, digits and `_`"
        ));
    }
    if builtin(name) {
        return Err(format!(
            "`{name}` is a built-in variable: authbench sets it (see scenarios/README.md)"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

impl ScenarioArgs {
    pub fn source(&self) -> crate::options::ScenarioSource {
        self.scenario
            .clone()
            .map(crate::options::ScenarioSource::File)
            .unwrap_or_default()
    }
}

/// Request timeouts.
#[derive(Debug, Args)]
pub struct TimeoutArgs {
    /// Per-request timeout, from send to the last byte of the response (e.g. 30s, 500ms).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// TCP connect timeout, also the reachability check before any load (capped at --timeout).
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub connect_timeout: Duration,
}

impl TimeoutArgs {
    /// The connect timeout, never longer than the request timeout.
    pub fn connect(&self) -> Duration {
        self.connect_timeout.min(self.timeout)
    }
}

/// Where report files go.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Directory for the report files.
    #[arg(long, default_value = "reports", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Write no report files (the summary still prints).
    #[arg(long, conflicts_with = "out_dir")]
    pub no_reports: bool,
}

impl OutputArgs {
    /// The directory to write into, or `None` with `--no-reports`.
    pub fn dir(&self) -> Option<PathBuf> {
        (!self.no_reports).then(|| self.out_dir.clone())
    }
}

/// How this process writes to the terminal: colour per stream, and whether progress shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ui {
    /// ANSI colour on stdout.
    pub color_out: bool,
    /// ANSI colour on stderr.
    pub color_err: bool,
    /// Progress (bar or lines) on stderr; off with `--no-progress`.
    pub progress: bool,
}

impl Ui {
    /// Prints an error as `error: ` lines (see [`crate::error::lines`]).
    pub fn error(&self, err: &mut dyn Write, e: &(dyn std::error::Error + 'static)) {
        for line in crate::error::lines(e) {
            let _ = writeln!(
                err,
                "{} {line}",
                paint(self.color_err, color::ERROR, "error:")
            );
        }
    }

    /// Prints a message-only error.
    pub fn error_msg(&self, err: &mut dyn Write, msg: &str) {
        self.error(err, &Message(msg.to_string()));
    }

    /// Prints a warning line.
    pub fn warning(&self, err: &mut dyn Write, msg: &str) {
        let _ = writeln!(
            err,
            "{} {msg}",
            paint(self.color_err, color::WARNING, "warning:")
        );
    }

    /// Prints a line that explains a non-zero exit (`gate failed: ...`, `interrupted: ...`).
    pub fn verdict(&self, err: &mut dyn Write, label: &str, msg: &str) {
        let _ = writeln!(err, "{} {msg}", paint(self.color_err, color::NOTICE, label));
    }
}

/// A plain message as an error, for [`Ui::error`].
#[derive(Debug)]
struct Message(String);

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// `--hash-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HashModeArg {
    /// Hash on a blocking pool sized to the cores, off the event loop.
    Pool,
    /// Hash inline on a single-threaded event loop (reproduces a one-worker async service).
    Inline,
}

impl From<HashModeArg> for crate::password::HashMode {
    fn from(a: HashModeArg) -> Self {
        match a {
            HashModeArg::Pool => crate::password::HashMode::Pool,
            HashModeArg::Inline => crate::password::HashMode::Inline,
        }
    }
}

#[derive(Debug, Args)]
pub struct ToleranceArgs {
    /// Relative latency/throughput change tolerated before a row is a regression.
    #[arg(long, default_value = "10%", value_parser = crate::gate::compare::parse_fraction)]
    pub max_regression: f64,
    /// Drop in success rate tolerated, in percentage points.
    #[arg(long, default_value = "1%", value_parser = crate::gate::compare::parse_fraction)]
    pub max_success_drop: f64,
    /// Latency changes smaller than this are noise, whatever their ratio.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    pub min_latency_delta: Duration,
}

impl ToleranceArgs {
    pub(super) fn options(&self) -> crate::gate::CompareOptions {
        crate::gate::CompareOptions {
            max_regression: self.max_regression,
            max_success_drop: self.max_success_drop,
            min_latency_delta_ms: self.min_latency_delta.as_secs_f64() * 1000.0,
        }
    }
}

/// Commands that fail with an error message and a code.
/// Lists the files a sweep or a capacity search wrote, and warns when its PNG has no text.
pub(super) fn written(
    w: &crate::sweep::report::Written,
    out: &mut dyn Write,
    err: &mut dyn Write,
    ui: Ui,
) {
    for f in &w.files {
        let _ = writeln!(out, "report: {}", f.display());
    }
    if w.png_without_text {
        ui.warning(
            err,
            "no system font found, the PNG has no text (scripts/setup.sh installs fonts-dejavu-core)",
        );
    }
}

pub(super) struct CmdError(pub(super) u8, pub(super) anyhow::Error);

pub(super) fn report_errors(r: Result<u8, CmdError>, err: &mut dyn Write, ui: Ui) -> u8 {
    match r {
        Ok(code) => code,
        Err(CmdError(code, e)) => {
            ui.error(err, e.as_ref());
            code
        }
    }
}

pub(super) fn usage(e: anyhow::Error) -> CmdError {
    CmdError(exit::USAGE, e)
}

/// First Ctrl-C resolves the future (the command wraps up and writes a partial result);
/// a second one exits at once.
pub(super) async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted twice: exiting at once");
            crate::sweep::spawn::kill_live_groups();
            std::process::exit(i32::from(exit::INTERRUPTED));
        }
    });
}

/// `--spawn` and its readiness flags, shared by `sweep` and `tune`.
#[derive(Debug, Args)]
pub struct SpawnArgs {
    /// Start your service per cost instead of the in-process server: a shell command where
    /// {cost} is replaced (needs --target, the spawned service's base URL). Its process
    /// group is stopped after each cost, on error and on Ctrl-C.
    #[arg(long, value_name = "CMD")]
    pub spawn: Option<String>,
    /// Path polled with GET until the spawned service answers 2xx.
    #[arg(long, default_value = "/health", requires = "spawn")]
    pub ready: String,
    /// How long the spawned service may take to become ready.
    #[arg(long, default_value = "30s", value_parser = crate::units::parse_duration, requires = "spawn")]
    pub ready_timeout: std::time::Duration,
}

/// `--http` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HttpArg {
    /// HTTP/2 when a TLS server picks it in ALPN, else HTTP/1.1.
    Auto,
    /// HTTP/1.1 only.
    #[value(name = "1.1")]
    Http1,
    /// HTTP/2 only (h2 over TLS, h2c over http://).
    #[value(name = "2")]
    Http2,
}

impl HttpArg {
    /// The checked option.
    pub fn version(self) -> crate::options::HttpVersion {
        match self {
            HttpArg::Auto => crate::options::HttpVersion::Auto,
            HttpArg::Http1 => crate::options::HttpVersion::Http1,
            HttpArg::Http2 => crate::options::HttpVersion::Http2,
        }
    }
}

#[cfg(test)]
mod var_tests {
    use super::*;

    #[test]
    fn vars_parse_and_the_flag_wins_over_the_environment() {
        assert_eq!(
            parse_var("idp=https://h/a=b").unwrap(),
            ("idp".to_string(), "https://h/a=b".to_string())
        );
        assert_eq!(parse_var("e=").unwrap(), ("e".to_string(), String::new()));
        assert!(parse_var("novalue").unwrap_err().contains("NAME=VALUE"));
        assert!(parse_var("a-b=1")
            .unwrap_err()
            .contains("not a variable name"));
        assert!(parse_var("target=x").unwrap_err().contains("built-in"));
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        let merged = merge_vars(
            [pair("a", "env"), pair("b", "env")].into_iter(),
            [pair("a", "flag"), pair("a", "flag2")].into_iter(),
        );
        assert_eq!(merged, [pair("b", "env"), pair("a", "flag2")]);
    }
}
