//! `authbench serve`: the reference auth server on its own, until Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;

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
}

pub(super) async fn exec(a: ServeArgs, out: &mut dyn Write, err: &mut dyn Write, ui: Ui) -> u8 {
    let opts = ServeOptions {
        addr: a.addr,
        cost: a.cost,
        api_key: a.api_key,
        hash_mode: a.hash_mode.into(),
    };
    let key_given = opts.api_key.is_some();
    let key = opts
        .api_key
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    let mut cfg = crate::server::ServerConfig::new(opts.cost, key.clone());
    cfg.hash_mode = opts.hash_mode;
    let handle = match crate::server::spawn(cfg, opts.addr) {
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
    let _ = out.flush();
    let _ = tokio::signal::ctrl_c().await;
    handle.shutdown();
    exit::OK
}
