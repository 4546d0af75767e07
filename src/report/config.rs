//! How a run was set up ([`RunConfig`]), as its report records it: target, scenario,
//! load, connections, cost, shards; never the API key.

use serde::{Deserialize, Serialize};

/// How the run was set up. Never holds the API key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunConfig {
    /// The target URL (for the in-process server, its loopback URL).
    pub target: String,
    /// Whether the target was authbench's in-process reference server.
    pub in_process_server: bool,
    pub scenario: String,
    pub scenario_source: String,
    pub flows_planned: u64,
    pub concurrency: usize,
    /// `closed` (a flow starts when another ends) or `open` (flows arrive at a rate).
    pub load_model: String,
    /// The load shape in words (stages, bounds, warm-up).
    #[serde(default)]
    pub load: String,
    /// `shared` (one keep-alive pool) or `per-flow` (new connections per flow).
    #[serde(default)]
    pub connections: String,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// bcrypt cost of the server, when known (the in-process server's).
    pub bcrypt_cost: Option<u32>,
    /// Where the in-process server hashed: `pool` (off the event loop) or `inline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_mode: Option<String>,
    /// `--insecure`: server certificates were not verified (written only when true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// `--source-addr`: the local addresses new connections left from (empty: the kernel's
    /// choice; written only when given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_addrs: Vec<String>,
    /// What the set-up did to or found about the generating machine (a raised descriptor
    /// limit, a planned connection rate past its ports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// CPU cores of the machine that ran authbench (and the in-process server).
    pub cores: usize,
    /// How many runs this report adds up (1 unless made by `authbench merge`).
    #[serde(default = "one")]
    pub generators: u64,
    /// Think time configured per step (`login 1000ms, verify 500ms-2000ms`): inside flow
    /// times, not step latencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<String>,
    /// The `[data]` feeder: rows, columns and order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// When the measured load began (and, with `--start-at`, when it was to begin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<crate::shard::Start>,
    /// `--shard I/N`: which share of a load split over N generators this run was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
}

fn one() -> u64 {
    1
}

impl RunConfig {
    /// Rows about a distributed run, for every exporter: the shard, and the start when it
    /// was planned (`--start-at`) or is a merge's spread.
    pub fn distribution_rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = Vec::new();
        if let Some(s) = &self.shard {
            rows.push((
                "shard",
                format!(
                    "{s} (0-based): this generator's share of the load; `authbench merge` adds the {} shards up",
                    s.count
                ),
            ));
        }
        if let Some(st) = &self.start {
            match (&st.planned, st.skew_ms) {
                (Some(p), Some(skew)) => rows.push((
                    "start",
                    format!("{} (planned {p}, {skew:+.0} ms)", st.actual),
                )),
                (None, Some(spread)) if self.generators > 1 => rows.push((
                    "start",
                    format!(
                        "{} (the {} inputs began within {spread:.0} ms of each other)",
                        st.actual, self.generators
                    ),
                )),
                _ => {}
            }
        }
        rows
    }
}
