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

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8007")]
    pub addr: SocketAddr,
    /// bcrypt cost (4-31).
    #[arg(long, default_value = "12", value_parser = clap::value_parser!(u32).range(4..=31))]
    pub cost: u32,
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
    let opts = ServeOptions {
        addr: a.addr,
        cost: a.cost,
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
                crate::server::ServerError::InvalidCost(_) => exit::USAGE,
                _ => exit::FAILURE,
            };
        }
    };
    let _ = writeln!(
        out,
        "authbench reference server listening on {} (bcrypt cost {})",
        handle.base_url(),
        opts.cost
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
