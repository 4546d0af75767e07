//! `authbench check` on the command line: its flags, their conversion into
//! [`CheckOptions`], and the command itself (print the table, say where the reports
//! went, return the exit code). The probes themselves live in [`crate::check`].

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::shared::{CommonArgs, TargetArgs, Ui};
use crate::check::CheckOptions;
use crate::units::{parse_count, parse_duration};

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// The target's HS256 signing secret, to forge an expired token (else that probe is skipped).
    #[arg(long, env = "AUTHBENCH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// A PEM private key (RSA or EC P-256) the target's RS256/ES256 tokens verify against,
    /// to forge an expired but correctly signed token (a public key cannot sign one).
    #[arg(long, value_name = "PEM")]
    pub jwt_private_key: Option<PathBuf>,
    /// The PEM public key the target's RS256/ES256 tokens verify against: adds the
    /// algorithm-confusion probe (an HS256 token signed with that key as its secret).
    #[arg(long, value_name = "PEM")]
    pub jwt_public_key: Option<PathBuf>,
    /// Print which step has which role (register, login, protected, refresh, logout) and
    /// why, then exit without probing.
    #[arg(long)]
    pub explain_roles: bool,
    /// bcrypt cost of the in-process server (4-31).
    #[arg(long, default_value = "12", value_parser = clap::value_parser!(u32).range(4..=31), conflicts_with = "target")]
    pub cost: u32,
    /// Login timing samples per group (unknown user, wrong password); at least 10.
    #[arg(long, default_value = "30", value_parser = parse_count)]
    pub timing_samples: u64,
    /// One password hash's duration [default: estimated from the login latencies].
    #[arg(long, value_parser = parse_duration)]
    pub hash_time: Option<Duration>,
    /// Concurrent wrong logins in the brute-force probe.
    #[arg(long, default_value = "50", value_parser = parse_count)]
    pub burst: u64,
    /// The longest wait before retrying a rate-limited probe request once (the service's
    /// Retry-After, capped at this; at most 30s). Still limited: the probe is inconclusive.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub rate_limit_wait: Duration,
    /// Also write a JUnit XML file, one test case per probe.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Check the in-process server over HTTPS (a self-signed certificate generated at
    /// start, which the check trusts).
    #[arg(long, conflicts_with = "target")]
    pub tls: bool,
}

impl CheckArgs {
    pub fn into_options(self) -> CheckOptions {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        CheckOptions {
            tls: self.target.tls(),
            http: self.target.http.version(),
            server_tls: self.tls,
            target: self.target.target,
            api_key: self.target.api_key,
            scenario: self.common.scenario.source(),
            vars: self.common.scenario.vars.vars(),
            jwt_secret: self.jwt_secret,
            jwt_private_key: self.jwt_private_key,
            jwt_public_key: self.jwt_public_key,
            cost: self.cost,
            connect_timeout: self.common.timeouts.connect(),
            timeout: self.common.timeouts.timeout,
            out_dir: self.common.output.dir(),
            junit: self.junit,
            timing_samples: size(self.timing_samples),
            hash_time: self.hash_time,
            burst: size(self.burst),
            rate_limit_wait: self.rate_limit_wait,
            ..CheckOptions::default()
        }
    }
}

/// Runs the check and prints the table; returns the exit code.
pub(super) async fn exec(args: CheckArgs, out: &mut dyn Write, err: &mut dyn Write, ui: Ui) -> u8 {
    if args.explain_roles {
        let opts = args.into_options();
        return match crate::check::explain_roles(&opts) {
            Ok(text) => {
                let _ = out.write_all(text.as_bytes());
                crate::error::exit::OK
            }
            Err(e) => {
                ui.error(err, &e);
                e.exit_code()
            }
        };
    }
    match crate::check::check(&args.into_options()).await {
        Ok(result) => {
            let _ = out.write_all(&crate::check::report::terminal(
                &result.report,
                ui.color_out,
            ));
            for f in &result.files {
                let _ = writeln!(out, "report: {}", f.display());
            }
            let code = result.report.exit_code();
            if code != crate::error::exit::OK {
                ui.verdict(
                    err,
                    "check failed:",
                    &format!(
                        "{} high or medium probe(s) failed",
                        result.report.summary.blocking_failures
                    ),
                );
            }
            code
        }
        Err(e) => {
            ui.error(err, &e);
            e.exit_code()
        }
    }
}
