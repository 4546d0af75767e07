//! Stage 2 of a run, shared with `check` and `sweep`: what the load is sent to. The
//! external target's URL and API key are checked, or the in-process reference server is
//! started (over HTTPS with a certificate generated for it, when asked); [`preflight`]
//! fails fast when nothing answers; [`sampling`] checks what the usage sampler will watch.

use std::sync::Arc;
use std::time::Duration;

use crate::error::RunError;
use crate::options::{self, RunOptions, ScenarioSource};
use crate::scenario::Scenario;
use crate::server::{self, ServerError, ServerHandle};
use crate::units::millis;
use crate::usage;

/// Loads the scenario an options struct names.
pub fn load_scenario(src: &ScenarioSource) -> Result<Scenario, RunError> {
    load_scenario_with(src, &[])
}

/// Loads the scenario an options struct names, with variables from outside the file
/// (`--var`, `AUTHBENCH_VAR_*`).
pub fn load_scenario_with(
    src: &ScenarioSource,
    vars: &[(String, String)],
) -> Result<Scenario, RunError> {
    Ok(match src {
        ScenarioSource::Builtin => Scenario::builtin(),
        ScenarioSource::File(p) => {
            // A mix is run by `crate::mix`, a floor above; a command that needs one flow says so.
            let file = p.display().to_string();
            if std::fs::read_to_string(p).is_ok_and(|t| crate::scenario::mix::is_mix(&t)) {
                return Err(crate::scenario::mix::not_a_flow(&file).into());
            }
            Scenario::load_with_vars(p, vars)?
        }
    })
}

/// The API key for an external target: the one given, or an error naming the flag when
/// the scenario sends `{{api_key}}` and none was given.
pub fn external_api_key(given: Option<&str>, scenario: &Scenario) -> Result<String, RunError> {
    match given {
        Some(k) => Ok(k.to_string()),
        None if scenario.uses_api_key => Err(RunError::Config(format!(
            "the scenario '{}' sends {{{{api_key}}}}: pass --api-key KEY or set AUTHBENCH_API_KEY",
            scenario.name
        ))),
        None => Ok(String::new()),
    }
}

/// What the load is sent to.
pub struct Target {
    /// The in-process server, when there is no `--target`.
    pub server: Option<ServerHandle>,
    pub base_url: String,
    pub api_key: String,
    /// The clients' TLS config (`https://`, or any TLS flag); for the in-process server
    /// over TLS it trusts the certificate generated for it.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Target {
    /// Stops the in-process server, if there is one.
    pub fn shutdown(self) {
        if let Some(s) = self.server {
            s.shutdown();
        }
    }
}

/// Stage 2: the external target's URL and key, or the in-process reference server.
pub fn start_target(opts: &RunOptions, scenario: &Scenario) -> Result<Target, RunError> {
    Ok(match &opts.target {
        None => {
            let key = opts.api_key.clone().unwrap_or_else(random_key);
            let mut cfg = server::ServerConfig::new(opts.cost, key.clone());
            cfg.hash_mode = opts.hash_mode;
            cfg.algorithm = opts.algorithm;
            let (handle, tls) = start_reference_server_with_tls(cfg, opts.server_tls, &opts.tls)?;
            Target {
                base_url: handle.base_url(),
                server: Some(handle),
                api_key: key,
                tls,
            }
        }
        Some(t) => {
            let base_url = check_target_url(t)?;
            Target {
                server: None,
                tls: crate::tls::for_target(&base_url, &opts.tls, &[])?,
                base_url,
                api_key: external_api_key(opts.api_key.as_deref(), scenario)?,
            }
        }
    })
}

/// Starts the reference server, over HTTPS with a certificate generated now when
/// `https`, and returns the clients' TLS config, which trusts that certificate.
pub fn start_reference_server_with_tls(
    mut cfg: server::ServerConfig,
    https: bool,
    tls: &options::TlsOptions,
) -> Result<(ServerHandle, Option<Arc<rustls::ClientConfig>>), RunError> {
    let identity = if https {
        Some(
            server::TlsIdentity::self_signed().map_err(|e| RunError::Server {
                usage: false,
                cause: e.to_string(),
            })?,
        )
    } else {
        None
    };
    let roots: Vec<_> = identity.iter().map(|i| i.cert_der().clone()).collect();
    cfg.tls = identity;
    // The TLS flags are checked before the server starts: a bad file is a usage error.
    let base = if https { "https://" } else { "http://" };
    let client = crate::tls::for_target(base, tls, &roots)?;
    Ok((start_reference_server(cfg)?, client))
}

/// Starts the reference server on a loopback port. It runs on its own OS thread and tokio
/// runtime with its own bounded hashing pool, so it and the load generator cannot starve
/// each other's executor. Its errors become a [`RunError`] here, where they are handled.
pub fn start_reference_server(cfg: server::ServerConfig) -> Result<ServerHandle, RunError> {
    server::spawn(cfg, ([127, 0, 0, 1], 0).into()).map_err(|e| RunError::Server {
        usage: matches!(e, ServerError::InvalidCost(_)),
        cause: e.to_string(),
    })
}

/// Stage 3b: what the sampler watches besides authbench itself and the machine, checked
/// before any load is sent: the `--server-pid` process exists, the `--scrape` endpoint
/// answers in Prometheus text format.
pub async fn sampling(opts: &RunOptions, target: &Target) -> Result<usage::Targets, RunError> {
    for &pid in &opts.server_pids {
        if usage::procfs::process(pid).is_none() {
            return Err(RunError::Config(format!(
                "--server-pid {pid}: no such process on this machine (its /proc/{pid} cannot be read)"
            )));
        }
    }
    // The target's TLS config when it has one (it may trust a generated certificate), else
    // the run's TLS flags for an `https://` endpoint.
    let scrape_tls = match (&opts.scrape, &target.tls) {
        (Some(_), Some(tls)) => Some(tls.clone()),
        (Some(url), None) => crate::tls::for_target(url, &opts.tls, &[])?,
        (None, _) => None,
    };
    if let Some(url) = &opts.scrape {
        let client = usage::scrape::client(scrape_tls.as_ref()).map_err(|e| {
            RunError::Other(anyhow::anyhow!("could not build the HTTP client: {e}"))
        })?;
        usage::scrape::fetch(
            &client,
            url,
            opts.connect_timeout.max(std::time::Duration::from_secs(1)),
        )
        .await
        .map_err(|e| RunError::Config(format!("--scrape: {e}")))?;
    }
    Ok(usage::Targets {
        loopback: target.server.is_some() || usage::is_loopback(&target.base_url),
        server_pids: opts.server_pids.clone(),
        server_threads: target.server.as_ref().map(|s| s.thread_ids()),
        scrape: opts.scrape.clone(),
        scrape_tls,
    })
}

/// Accepts `http(s)://host[:port][/base]`; anything else is a configuration error.
pub fn check_target_url(t: &str) -> Result<String, RunError> {
    let url = reqwest::Url::parse(t).map_err(|e| {
        RunError::Config(format!(
            "--target '{t}' is not a URL ({e}): use e.g. http://127.0.0.1:8007"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(RunError::Config(format!(
            "--target '{t}' must be an http:// or https:// URL with a host"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Fails fast, with exit code 3, when nothing accepts a TCP connection at the target, or,
/// for `https://`, when a TLS handshake with `tls` fails (an untrusted certificate, a name
/// mismatch, a protocol failure): one line names the cause and the flag that fixes it.
/// Returns the address that accepted the connection.
pub async fn preflight(
    base_url: &str,
    timeout: Duration,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
) -> Result<std::net::SocketAddr, RunError> {
    let unreachable = |cause: String| RunError::Unreachable {
        target: base_url.to_string(),
        cause,
    };
    let url = reqwest::Url::parse(base_url).map_err(|e| unreachable(e.to_string()))?;
    let host = url
        .host_str()
        .unwrap_or("")
        .trim_matches(['[', ']'])
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let attempt = async {
        let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot resolve '{host}': {e}"))?
            .collect();
        let mut last = format!("'{host}' resolved to no address");
        for a in addrs {
            match tokio::net::TcpStream::connect(a).await {
                Ok(_) => return Ok(a),
                Err(e) => last = format!("{a}: {e}"),
            }
        }
        Err(last)
    };
    let addr = match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(a)) => a,
        Ok(Err(cause)) => return Err(unreachable(cause)),
        Err(_) => {
            return Err(unreachable(format!(
                "no TCP connection within {} ms",
                millis(timeout)
            )))
        }
    };
    match tls {
        Some(config) if url.scheme() == "https" => {
            crate::tls::diagnose::probe(addr, &host, config, timeout)
                .await
                .map_err(unreachable)?;
            Ok(addr)
        }
        _ => Ok(addr),
    }
}

/// A random 128-bit key in hex (the in-process server's API key or JWT secret when none is given).
pub fn random_key() -> String {
    format!("{:032x}", rand::random::<u128>())
}
