//! `authbench check`: an auth conformance and security probe.
//!
//! A suite of probes, each with an id, a severity, what it sent, what it expected and
//! what came back, run against any target `run` works with: the probes build their
//! requests from the scenario's own steps (paths, headers, bodies, token extraction),
//! altered one thing at a time (a key dropped, a token forged, a field removed).
//! [`roles`] decides which step registers, which logs in and which are protected;
//! [`target`] sends requests and replays the flow up to a step; [`probes`] and
//! [`timing`] are the probes; [`report`] renders the results (terminal, Markdown, JSON,
//! JUnit). With no target, the in-process reference server is started and checked.
//!
//! Exit status: 1 when a high or medium probe fails; warnings and low/info failures are
//! reported without failing the run.

pub mod body;
pub mod jwt;
pub mod probes;
pub mod reply;
pub mod report;
pub mod roles;
mod send;
pub mod target;
pub mod timing;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{exit, RunError};
use crate::options::ScenarioSource;

/// The JSON report's schema id; changes only with an incompatible format change.
pub const SCHEMA: &str = "authbench.check/1";

/// How much a failed probe matters. High and medium failures fail the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A security hole: a request let through, accounts duplicated, secrets leaked.
    High,
    /// A robustness or privacy defect: 5xx on bad input, user enumeration.
    Medium,
    /// Sloppy but harmless: e.g. a wrong content type accepted.
    Low,
    /// Informational only.
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }

    /// Whether a failure at this severity fails the run.
    pub fn blocks(self) -> bool {
        matches!(self, Severity::High | Severity::Medium)
    }
}

/// The verdict of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Not a failure, but not what a careful service does (e.g. no 429 after a burst).
    Warn,
    /// Could not be run here (and the note says why).
    Skip,
    /// The service gave no answer on a fresh connection (the transport's cause is in
    /// `got`): no verdict either way.
    Error,
    /// The service answered, but with nothing the verdict can rest on: rate limited
    /// (429, or 503 with `Retry-After`, still so after one retry), or a body `check`
    /// cannot read (over its cap, not JSON where JSON is needed). The note says which;
    /// never a pass and never a failure.
    Inconclusive,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Warn => "warn",
            Outcome::Skip => "skip",
            Outcome::Error => "error",
            Outcome::Inconclusive => "inconclusive",
        }
    }
}

/// One probe's result: the row of every report format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Stable id, `area.name[step]`, e.g. `token.alg_none[verify]`.
    pub id: String,
    pub severity: Severity,
    /// What the probe checks, in a few words.
    pub title: String,
    /// What was sent.
    pub sent: String,
    /// What a correct service answers.
    pub expected: String,
    /// What came back.
    pub got: String,
    pub outcome: Outcome,
    /// Why it was skipped, how a number was computed, what to fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The request the verdict rests on: method, path and which credentials it carried
    /// (never their values), e.g. `GET /users/me [Authorization: Bearer]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// An excerpt of what came back to that request: status and the start of the body,
    /// or the transport's cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
}

/// Counts of outcomes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSummary {
    pub probes: usize,
    pub passed: usize,
    pub failed: usize,
    pub warned: usize,
    pub skipped: usize,
    /// Probes whose request got no answer on a fresh connection.
    #[serde(default)]
    pub errors: usize,
    /// Probes whose answers meant nothing (rate limited, unreadable): no verdict.
    #[serde(default)]
    pub inconclusive: usize,
    /// Failures of high or medium probes: the run fails when this is not 0.
    pub blocking_failures: usize,
}

/// Which steps of the scenario the probes treat as what.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolesSummary {
    pub register: Option<String>,
    pub login: Option<String>,
    pub protected: Vec<String>,
    /// Steps that send the API key.
    pub api_key: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logout: Option<String>,
    /// The session cookie's name, when protected steps are authenticated by a cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_cookie: Option<String>,
}

/// The result of `authbench check`; serialized as it is, it is the JSON report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub schema: String,
    pub tool: String,
    /// RFC 3339 UTC, when the check ended.
    pub generated_at: String,
    pub target: String,
    pub in_process_server: bool,
    pub scenario: String,
    /// bcrypt cost of the in-process server; null for an external target.
    pub bcrypt_cost: Option<u32>,
    /// `--insecure`: the server's certificate was not verified (written only when true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// The HTTP versions the answers came over (`--http`), e.g. `["HTTP/2.0"]`.
    #[serde(default)]
    pub http: Vec<String>,
    pub roles: RolesSummary,
    pub summary: CheckSummary,
    pub probes: Vec<ProbeResult>,
}

impl CheckReport {
    /// Builds the report and its summary from the probe results.
    pub fn new(meta: ReportMeta, probes: Vec<ProbeResult>) -> Self {
        let count = |o: Outcome| probes.iter().filter(|p| p.outcome == o).count();
        let summary = CheckSummary {
            probes: probes.len(),
            passed: count(Outcome::Pass),
            failed: count(Outcome::Fail),
            warned: count(Outcome::Warn),
            skipped: count(Outcome::Skip),
            errors: count(Outcome::Error),
            inconclusive: count(Outcome::Inconclusive),
            blocking_failures: probes
                .iter()
                .filter(|p| p.outcome == Outcome::Fail && p.severity.blocks())
                .count(),
        };
        CheckReport {
            schema: SCHEMA.into(),
            tool: format!("authbench {}", env!("CARGO_PKG_VERSION")),
            generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            target: meta.target,
            in_process_server: meta.in_process_server,
            scenario: meta.scenario,
            bcrypt_cost: meta.bcrypt_cost,
            insecure: meta.insecure,
            http: meta.http,
            roles: meta.roles,
            summary,
            probes,
        }
    }

    /// 0 when no high or medium probe failed, else 1.
    pub fn exit_code(&self) -> u8 {
        if self.summary.blocking_failures == 0 {
            exit::OK
        } else {
            exit::FAILURE
        }
    }
}

/// What a report says about the run besides the probes.
#[derive(Debug, Clone)]
pub struct ReportMeta {
    pub target: String,
    pub in_process_server: bool,
    pub scenario: String,
    pub bcrypt_cost: Option<u32>,
    pub insecure: bool,
    pub http: Vec<String>,
    pub roles: RolesSummary,
}

/// Options of `authbench check`.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Base URL of the service; `None` checks the in-process reference server.
    pub target: Option<String>,
    pub api_key: Option<String>,
    pub scenario: ScenarioSource,
    /// Variables from outside the file (`--var`, `AUTHBENCH_VAR_*`), by name.
    pub vars: Vec<(String, String)>,
    /// The target's HS256 secret, to forge an expired but correctly signed token.
    /// Known automatically for the in-process server.
    pub jwt_secret: Option<String>,
    /// A PEM private key (RSA or EC P-256) the target trusts for RS256/ES256 tokens, to
    /// forge an expired but correctly signed one.
    pub jwt_private_key: Option<PathBuf>,
    /// The PEM public key RS256/ES256 tokens verify against, for the algorithm-confusion
    /// probe (an HS256 token with that key as its secret).
    pub jwt_public_key: Option<PathBuf>,
    /// bcrypt cost of the in-process server.
    pub cost: u32,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Where `<ts>-check.md` and `.json` go; `None` writes none.
    pub out_dir: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    /// Login timing samples per group (unknown user, wrong password).
    pub timing_samples: usize,
    /// One password hash's duration; estimated from the login latencies when unset.
    pub hash_time: Option<Duration>,
    /// Concurrent wrong logins of the brute-force probe.
    pub burst: usize,
    /// Concurrent registrations of one email in each burst of the race probe.
    pub race: usize,
    /// The longest wait before the one retry of a rate-limited probe request (the
    /// service's `Retry-After`, capped at this and at 30 s).
    pub rate_limit_wait: Duration,
    /// TLS settings of the client (`https://` targets).
    pub tls: crate::options::TlsOptions,
    /// Check the in-process server over HTTPS (`--tls`), trusting its generated
    /// certificate.
    pub server_tls: bool,
    /// `--http`: the HTTP version the probes go over.
    pub http: crate::options::HttpVersion,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            target: None,
            api_key: None,
            scenario: ScenarioSource::Builtin,
            vars: Vec::new(),
            jwt_secret: None,
            jwt_private_key: None,
            jwt_public_key: None,
            cost: crate::server::DEFAULT_COST,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            out_dir: Some(PathBuf::from("reports")),
            junit: None,
            timing_samples: 30,
            hash_time: None,
            burst: 50,
            race: 20,
            rate_limit_wait: target::MAX_RETRY_WAIT,
            tls: crate::options::TlsOptions::default(),
            server_tls: false,
            http: crate::options::HttpVersion::Auto,
        }
    }
}

/// What `check` produced.
#[derive(Debug)]
pub struct CheckResult {
    pub report: CheckReport,
    /// Files written (reports, JUnit).
    pub files: Vec<PathBuf>,
}

/// The scenario to check: the one given, or of a mix the first scenario with the roles the
/// probes need (register, login and a protected step; else login and a protected step;
/// else the first).
fn scenario_for_check(
    src: &ScenarioSource,
    vars: &[(String, String)],
) -> Result<crate::scenario::Scenario, RunError> {
    use crate::scenario::mix;
    let ScenarioSource::File(p) = src else {
        return crate::pipeline::load_scenario_with(src, vars);
    };
    if !std::fs::read_to_string(p).is_ok_and(|t| mix::is_mix(&t)) {
        return crate::pipeline::load_scenario_with(src, vars);
    }
    let m = mix::load_with_vars(p, vars)?;
    let roles: Vec<roles::Roles> = m
        .parts
        .iter()
        .map(|part| roles::Roles::detect(&part.scenario))
        .collect();
    let full = |r: &roles::Roles| r.register.is_some() && r.login.is_some();
    let signs_in = |r: &roles::Roles| r.login.is_some() && !r.protected.is_empty();
    let pick = roles
        .iter()
        .position(|r| full(r) && signs_in(r))
        .or_else(|| roles.iter().position(signs_in))
        .unwrap_or(0);
    Ok(m.parts[pick].scenario.clone())
}

/// What `check --explain-roles` prints: the roles of the scenario's steps and why.
pub fn explain_roles(opts: &CheckOptions) -> Result<String, RunError> {
    let scenario = scenario_for_check(&opts.scenario, &opts.vars)?;
    Ok(roles::Roles::detect(&scenario).explain_text(&scenario))
}

/// Runs every probe against the target (or a fresh in-process reference server) and
/// writes the reports.
pub async fn check(opts: &CheckOptions) -> Result<CheckResult, RunError> {
    if opts.timing_samples < 10 {
        return Err(RunError::Config(
            "--timing-samples must be at least 10 (a rank test on fewer cannot tell a real difference from noise)".into(),
        ));
    }
    if opts.burst == 0 || opts.race < 2 {
        return Err(RunError::Config(
            "--burst must be at least 1 and --race at least 2".into(),
        ));
    }
    let scenario = Arc::new(scenario_for_check(&opts.scenario, &opts.vars)?);
    let jwt_key = match &opts.jwt_private_key {
        Some(path) => {
            Some(jwt::SigningKey::load(path).map_err(|e| RunError::Config(e.to_string()))?)
        }
        None => None,
    };
    let jwt_public_key = match &opts.jwt_public_key {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                RunError::Config(format!(
                    "could not read the JWT public key '{}': {e}",
                    path.display()
                ))
            })?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN") {
                return Err(RunError::Config(format!(
                    "the JWT public key '{}' is not PEM",
                    path.display()
                )));
            }
            Some(pem)
        }
        None => None,
    };

    let (server, base_url, api_key, jwt_secret, tls) = match &opts.target {
        None => {
            let key = opts
                .api_key
                .clone()
                .unwrap_or_else(crate::pipeline::random_key);
            let mut cfg = crate::server::ServerConfig::new(opts.cost, key.clone());
            // We chose the secret, so the expired-token probe can forge with it.
            let secret = crate::pipeline::random_key();
            cfg.jwt_secret = secret.clone().into_bytes();
            let (handle, tls) =
                crate::pipeline::start_reference_server_with_tls(cfg, opts.server_tls, &opts.tls)?;
            let url = handle.base_url();
            (Some(handle), url, key, Some(secret), tls)
        }
        Some(t) => {
            let url = crate::pipeline::check_target_url(t)?;
            let key = crate::pipeline::external_api_key(opts.api_key.as_deref(), &scenario)?;
            let tls = crate::tls::for_target(&url, &opts.tls, &[])?;
            (None, url, key, opts.jwt_secret.clone(), tls)
        }
    };
    crate::pipeline::preflight(&base_url, opts.connect_timeout, tls.as_ref()).await?;

    // No idle connection is kept: every request opens its own (see `target`); over HTTP/2
    // requests in flight at once may share one, as streams.
    // Steps on other hosts (`url`, redirects followed) get the TLS flags too.
    let other_hosts = scenario.steps.iter().any(|s| s.general());
    let tls = crate::tls::for_other_hosts(tls, &opts.tls, other_hosts)?;
    let tls = tls.map(|c| crate::tls::with_alpn(&c, opts.http));
    let builder = crate::tls::reqwest_tls(reqwest::Client::builder(), tls.as_ref());
    let builder = match opts.http {
        crate::options::HttpVersion::Http1 => builder.http1_only(),
        crate::options::HttpVersion::Http2 => builder.http2_prior_knowledge(),
        // ALPN decides over TLS; HTTP/1.1 over http://.
        crate::options::HttpVersion::Auto => builder,
    };
    let client = builder
        .pool_max_idle_per_host(0)
        // A redirect is an answer to judge (a form login's 302), as `run` sees it.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(opts.timeout)
        .connect_timeout(opts.connect_timeout)
        .tcp_nodelay(true)
        .no_proxy()
        .build()
        .map_err(|e| RunError::Other(anyhow::anyhow!("could not build the HTTP client: {e}")))?;
    let roles = roles::Roles::detect(&scenario);
    let target = target::Target::new(scenario.clone(), client, base_url.clone(), api_key)
        .with_retry_wait(opts.rate_limit_wait);
    let settings = probes::Settings {
        jwt_secret,
        jwt_key,
        jwt_public_key,
        timing_samples: opts.timing_samples,
        hash_time: opts.hash_time,
        burst: opts.burst,
        race: opts.race,
    };
    let results = probes::run_all(&target, &roles, &settings).await;
    let bcrypt_cost = server.as_ref().map(|_| opts.cost);
    if let Some(s) = server {
        s.shutdown();
    }

    let report = CheckReport::new(
        ReportMeta {
            insecure: opts.tls.insecure && base_url.starts_with("https://"),
            target: base_url,
            in_process_server: opts.target.is_none(),
            scenario: scenario.source.clone(),
            bcrypt_cost,
            http: target.protocols(),
            roles: roles.summary(&scenario),
        },
        results,
    );
    let mut files = match &opts.out_dir {
        Some(dir) => report::write_reports(&report, dir)?,
        None => Vec::new(),
    };
    if let Some(path) = &opts.junit {
        report::write_junit(&report, path)?;
        files.push(path.clone());
    }
    Ok(CheckResult { report, files })
}
