//! `authbench serve`: the reference auth server on its own, until Ctrl-C; with `--tls`,
//! over HTTPS with a certificate generated at start, written where another tool can
//! `--cacert` it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::shared::{HashModeArg, Ui};
use crate::error::exit;
use crate::options::ServeOptions;
use crate::password::{self as algorithm, Algorithm, AlgorithmKind};

/// The algorithm `--hash` names, with its parameters flag (or OWASP's minimum); an error
/// when a parameters flag names another algorithm than `--hash`.
pub(super) fn chosen_algorithm(
    hash: AlgorithmKind,
    argon2: Option<Algorithm>,
    scrypt: Option<Algorithm>,
    pbkdf2: Option<Algorithm>,
) -> Result<Option<Algorithm>, String> {
    for (flag, given, kind) in [
        ("--argon2", argon2.is_some(), AlgorithmKind::Argon2id),
        ("--scrypt", scrypt.is_some(), AlgorithmKind::Scrypt),
        ("--pbkdf2", pbkdf2.is_some(), AlgorithmKind::Pbkdf2),
    ] {
        if given && hash != kind {
            return Err(format!(
                "{flag} sets parameters of {kind:?}, but --hash is {hash:?}: add --hash {}",
                flag.trim_start_matches("--").replace("argon2", "argon2id")
            ));
        }
    }
    Ok(match hash {
        AlgorithmKind::Bcrypt => None,
        AlgorithmKind::Argon2id => Some(argon2.unwrap_or(algorithm::OWASP_ARGON2ID)),
        AlgorithmKind::Scrypt => Some(scrypt.unwrap_or(algorithm::OWASP_SCRYPT)),
        AlgorithmKind::Pbkdf2 => Some(pbkdf2.unwrap_or(algorithm::OWASP_PBKDF2)),
    })
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8007")]
    pub addr: SocketAddr,
    /// bcrypt cost (4-31).
    #[arg(long, default_value = "12", value_parser = clap::value_parser!(u32).range(4..=31))]
    pub cost: u32,
    /// The password hash: bcrypt (--cost), argon2id (--argon2), scrypt (--scrypt) or
    /// pbkdf2 (PBKDF2-HMAC-SHA256, --pbkdf2); each defaults to OWASP's minimum.
    #[arg(long, value_enum, default_value = "bcrypt")]
    pub hash: AlgorithmKind,
    /// argon2id parameters: m (KiB), t (passes), p (lanes) [default: OWASP's m=19456,t=2,p=1].
    #[arg(long, value_name = "m=..,t=..,p=..", value_parser = algorithm::parse_argon2)]
    pub argon2: Option<Algorithm>,
    /// scrypt parameters: n (a power of two), r, p [default: OWASP's n=131072,r=8,p=1].
    #[arg(long, value_name = "n=..,r=..,p=..", value_parser = algorithm::parse_scrypt)]
    pub scrypt: Option<Algorithm>,
    /// PBKDF2-HMAC-SHA256 iterations [default: OWASP's iterations=600000].
    #[arg(long, value_name = "iterations=..", value_parser = algorithm::parse_pbkdf2)]
    pub pbkdf2: Option<Algorithm>,
    /// API key clients must send in X-API-Key [default: a random key, printed at start].
    #[arg(long, env = "AUTHBENCH_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Where bcrypt runs: `pool` (off the event loop) or `inline` (on a single event loop).
    #[arg(long, value_enum, default_value = "pool")]
    pub hash_mode: HashModeArg,
    /// Serve HTTPS with a self-signed certificate for 127.0.0.1 and localhost, generated
    /// at start; its PEM is written to --tls-cert-out (or a temporary file) for --cacert.
    #[arg(long)]
    pub tls: bool,
    /// Where to write the generated certificate (PEM) [default: a temporary file,
    /// removed when the server stops on Ctrl-C].
    #[arg(long, value_name = "PATH", requires = "tls")]
    pub tls_cert_out: Option<PathBuf>,
}

pub(super) async fn exec(a: ServeArgs, out: &mut dyn Write, err: &mut dyn Write, ui: Ui) -> u8 {
    let algorithm = match chosen_algorithm(a.hash, a.argon2, a.scrypt, a.pbkdf2) {
        Ok(x) => x,
        Err(e) => {
            ui.error_msg(err, &e);
            return exit::USAGE;
        }
    };
    let opts = ServeOptions {
        addr: a.addr,
        cost: a.cost,
        algorithm,
        api_key: a.api_key,
        hash_mode: a.hash_mode.into(),
        tls: a.tls,
        tls_cert_out: a.tls_cert_out,
    };
    let key_given = opts.api_key.is_some();
    let key = opts
        .api_key
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    let mut cfg = crate::server::ServerConfig::new(opts.cost, key.clone());
    cfg.hash_mode = opts.hash_mode;
    cfg.algorithm = opts.algorithm;
    if opts.tls {
        match crate::server::TlsIdentity::self_signed() {
            Ok(id) => cfg.tls = Some(id),
            Err(e) => {
                ui.error(err, &e);
                return exit::FAILURE;
            }
        }
    }
    let handle = match crate::server::spawn(cfg.clone(), opts.addr) {
        Ok(h) => h,
        Err(e) => {
            ui.error(err, &e);
            return match e {
                crate::server::ServerError::InvalidCost(_)
                | crate::server::ServerError::Algorithm(_) => exit::USAGE,
                _ => exit::FAILURE,
            };
        }
    };
    let _ = writeln!(
        out,
        "authbench reference server listening on {} ({}{})",
        handle.base_url(),
        opts.algorithm
            .unwrap_or(Algorithm::Bcrypt { cost: opts.cost }),
        if opts
            .algorithm
            .unwrap_or(Algorithm::Bcrypt { cost: opts.cost })
            .below_owasp()
        {
            ", below the OWASP minimum"
        } else {
            ""
        }
    );
    if !key_given {
        let _ = writeln!(out, "API key (X-API-Key): {key}");
    }
    // The certificate file: where the user asked, else a temporary file removed at exit.
    let mut temporary = None;
    if let Some(id) = &cfg.tls {
        let (path, written) = match opts.tls_cert_out {
            Some(p) => {
                let w = std::fs::write(&p, id.cert_pem());
                (p, w)
            }
            None => {
                let p = std::env::temp_dir().join(format!(
                    "authbench-serve-{}-{}.pem",
                    std::process::id(),
                    handle.addr().port()
                ));
                // A new file only: in a shared temporary directory, never write through a
                // file or link someone else put there.
                let w = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&p)
                    .and_then(|mut f| f.write_all(id.cert_pem().as_bytes()));
                temporary = Some(p.clone());
                (p, w)
            }
        };
        if let Err(e) = written {
            ui.error_msg(
                err,
                &format!(
                    "could not write the certificate to '{}': {e}",
                    path.display()
                ),
            );
            handle.shutdown();
            return exit::FAILURE;
        }
        let _ = writeln!(
            out,
            "TLS certificate (PEM, for --cacert): {}",
            path.display()
        );
    }
    let _ = out.flush();
    let _ = tokio::signal::ctrl_c().await;
    handle.shutdown();
    if let Some(p) = temporary {
        let _ = std::fs::remove_file(p);
    }
    exit::OK
}
