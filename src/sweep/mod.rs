//! `authbench sweep` and `authbench tune`: how the bcrypt cost of a service turns into
//! flow latency and capacity on this machine.
//!
//! A sweep runs the same flows once per cost, against the in-process reference server
//! (started by [`crate::run`] at that cost) or against the user's own service started
//! per cost with `--spawn` ([`spawn`]). Next to the measured figures it prints the
//! capacity estimate `max flows/s ≈ hashing threads / (hashes per flow × time per hash)`,
//! because the point of the exercise is to see that latency under load is queueing for
//! the hashing threads, not the cost alone. [`tune`] searches for the highest cost that
//! still meets an SLO. [`chart`] draws the sweep as SVG and PNG.

pub mod chart;
pub mod spawn;
pub mod tune;

use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::{exit, RunError};
use crate::options::{RunOptions, ScenarioSource};
use crate::report::Report;

/// The version of the sweep JSON format.
pub const SCHEMA: &str = "authbench.sweep/1";

/// OWASP's Password Storage Cheat Sheet: bcrypt work factor 10 or more.
pub const OWASP_MIN_COST: u32 = 10;

/// The costs bcrypt accepts.
pub const COST_RANGE: std::ops::RangeInclusive<u32> = 4..=31;

/// Parses `4..=14`, `4..14` (end excluded), `4,6,8` or `12` into sorted, distinct costs,
/// each within bcrypt's 4..=31.
pub fn parse_costs(s: &str) -> Result<Vec<u32>, String> {
    let t = s.trim();
    let num = |p: &str| -> Result<u32, String> {
        p.trim().parse::<u32>().map_err(|_| {
            format!("'{s}' is not a list of costs: use e.g. 4..=14, 4..14, 4,6,8 or 12")
        })
    };
    let mut costs: Vec<u32> = if let Some((a, b)) = t.split_once("..") {
        let start = num(a)?;
        let (end, inclusive) = match b.strip_prefix('=') {
            Some(b) => (num(b)?, true),
            None => (num(b)?, false),
        };
        let end = if inclusive {
            Some(end)
        } else {
            end.checked_sub(1)
        };
        match end {
            Some(end) if end >= start => (start..=end).collect(),
            _ => return Err(format!("'{s}' is an empty range")),
        }
    } else {
        t.split(',').map(num).collect::<Result<_, _>>()?
    };
    costs.sort_unstable();
    costs.dedup();
    if let Some(bad) = costs.iter().find(|c| !COST_RANGE.contains(c)) {
        return Err(format!(
            "cost {bad} is outside bcrypt's range {}..={}",
            COST_RANGE.start(),
            COST_RANGE.end()
        ));
    }
    Ok(costs)
}

/// Options of `authbench sweep`.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The costs to run, ascending.
    pub costs: Vec<u32>,
    /// Flows per cost.
    pub flows: u64,
    /// Flows in flight at once.
    pub concurrency: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The flow definition.
    pub scenario: ScenarioSource,
    /// bcrypt operations per flow (the default scenario: register hashes, login verifies).
    pub hashes_per_flow: f64,
    /// Threads that hash at once on the server; the in-process server uses one per core.
    pub hashing_threads: usize,
    /// Start the user's service per cost instead of the in-process server.
    pub spawn: Option<spawn::SpawnOptions>,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            costs: (4..=14).collect(),
            flows: 20,
            concurrency: 20,
            timeout: Duration::from_secs(30),
            scenario: ScenarioSource::Builtin,
            hashes_per_flow: 2.0,
            hashing_threads: crate::cores(),
            spawn: None,
        }
    }
}

/// Why a sweep (or a tune) could not complete.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{0}")]
    Config(String),
    #[error("the run at cost {cost} failed")]
    Run {
        cost: u32,
        #[source]
        source: RunError,
    },
    #[error("at cost {cost}")]
    Spawn {
        cost: u32,
        #[source]
        source: spawn::SpawnError,
    },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl SweepError {
    pub fn exit_code(&self) -> u8 {
        match self {
            SweepError::Config(_) => exit::USAGE,
            SweepError::Run { source, .. } => source.exit_code(),
            SweepError::Spawn { .. } | SweepError::Other(_) => exit::FAILURE,
        }
    }
}

/// Where a row's hash time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashSource {
    /// Median of a few `bcrypt::hash` calls here, before the load run.
    Measured,
    /// `--hash-time-ms`, as the user stated it for their service.
    Given,
    /// A spawned service whose hash time is unknown.
    External,
}

/// The figures of one cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    pub cost: u32,
    /// Time of one hash in ms; `null` for an external service without `--hash-time-ms`.
    pub hash_ms: Option<f64>,
    pub hash_source: HashSource,
    /// Successful flows' latency percentiles (ms); `null` when no flow succeeded.
    pub flow_p50_ms: Option<f64>,
    pub flow_p95_ms: Option<f64>,
    pub flow_p99_ms: Option<f64>,
    /// Successful / finished flows, 0..=1.
    pub success_rate: f64,
    pub successful_flows: u64,
    pub total_flows: u64,
    /// Finished flows per second of wall time.
    pub flows_per_s: f64,
    /// `hashing_threads / (hashes_per_flow × hash time)`; `null` without a hash time.
    pub capacity_flows_per_s: Option<f64>,
    /// This cost's run was interrupted.
    pub partial: bool,
}

/// How the sweep was set up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepConfig {
    pub costs: Vec<u32>,
    pub flows: u64,
    pub concurrency: usize,
    pub timeout_ms: u64,
    pub scenario: String,
    pub hashes_per_flow: f64,
    pub hashing_threads: usize,
    pub cores: usize,
    /// The spawned service's URL; `null` for the in-process server.
    pub target: Option<String>,
    /// The `--spawn` command template (with `{cost}`); `null` for the in-process server.
    pub spawn: Option<String>,
}

/// A whole sweep: this struct is the JSON format (`authbench.sweep/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// Always [`SCHEMA`].
    pub schema: String,
    pub tool: String,
    /// When the sweep ended, RFC 3339 UTC.
    pub generated_at: String,
    /// Interrupted: rows cover only the costs that ran (the last one maybe partly).
    pub partial: bool,
    pub config: SweepConfig,
    /// One row per cost that ran, ascending.
    pub rows: Vec<SweepRow>,
}

/// `threads / (hashes_per_flow × hash_s)`: the flows per second the hashing threads can
/// sustain when hashing is all the server does. `None` when an input is not positive.
pub fn capacity(threads: usize, hashes_per_flow: f64, hash_s: f64) -> Option<f64> {
    let work = hashes_per_flow * hash_s;
    (threads > 0 && work.is_finite() && work > 0.0).then(|| threads as f64 / work)
}

/// Median time of a few `bcrypt::hash` calls at `cost`, in ms, on a blocking thread (so
/// the caller's executor keeps running). Fewer samples at high costs, where one hash is
/// already long enough to be stable.
pub async fn measure_hash_ms(cost: u32) -> anyhow::Result<f64> {
    let samples = if cost <= 10 { 5 } else { 3 };
    tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let start = Instant::now();
            bcrypt::hash("authbench-sweep-password", cost)
                .with_context(|| format!("bcrypt could not hash at cost {cost}"))?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        Ok(median(&mut times))
    })
    .await
    .context("the hashing thread failed")?
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A shared "stop now" flag built from a one-shot stop future, so each cost's run gets its
/// own stop future and the flag can be checked between costs.
pub(crate) fn stop_future(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + 'static {
    let mut rx = rx.clone();
    async move {
        // An error means the sender is gone: nobody can ask to stop any more.
        if rx.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Drives `body` until it ends; when `stop` resolves first, sets the flag `tx` feeds
/// (`body` holds its receiver) and keeps driving `body`, so it can wrap up and return
/// what it has.
pub(crate) async fn drive_with_stop<T>(
    stop: impl Future<Output = ()>,
    tx: watch::Sender<bool>,
    body: impl Future<Output = T>,
) -> T {
    tokio::pin!(body);
    tokio::pin!(stop);
    tokio::select! {
        r = &mut body => return r,
        () = &mut stop => { tx.send_replace(true); }
    }
    body.await
}

/// Runs the sweep. `stop` resolving interrupts the current cost's run (it is recorded as
/// partial), stops a spawned service, and ends the sweep; the result is marked partial.
/// `progress` gets one line per step, for the terminal.
pub async fn sweep(
    opts: &SweepOptions,
    stop: impl Future<Output = ()>,
    progress: &mut dyn FnMut(&str),
) -> Result<Sweep, SweepError> {
    if opts.costs.is_empty() {
        return Err(SweepError::Config("--costs names no cost".into()));
    }
    if let Some(bad) = opts.costs.iter().find(|c| !COST_RANGE.contains(c)) {
        return Err(SweepError::Config(format!(
            "cost {bad} is outside bcrypt's range 4..=31"
        )));
    }
    if !(opts.hashes_per_flow.is_finite() && opts.hashes_per_flow > 0.0) {
        return Err(SweepError::Config(
            "--hashes-per-flow must be a positive number".into(),
        ));
    }
    if let Some(sp) = &opts.spawn {
        // Checked before anything is started: a typo must not cost a service start.
        match reqwest::Url::parse(&sp.target) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            _ => {
                return Err(SweepError::Config(format!(
                    "--target '{}' must be an http:// or https:// URL, e.g. http://127.0.0.1:8007",
                    sp.target
                )))
            }
        }
        if !sp.command.contains("{cost}") {
            return Err(SweepError::Config(format!(
                "--spawn '{}' has no {{cost}}: every cost would start the same service",
                sp.command
            )));
        }
    }
    let scenario = crate::load_scenario(&opts.scenario).map_err(|e| SweepError::Run {
        cost: opts.costs[0],
        source: e,
    })?;
    let config = SweepConfig {
        costs: opts.costs.clone(),
        flows: opts.flows,
        concurrency: opts.concurrency,
        timeout_ms: u64::try_from(opts.timeout.as_millis()).unwrap_or(u64::MAX),
        scenario: scenario.name.clone(),
        hashes_per_flow: opts.hashes_per_flow,
        hashing_threads: opts.hashing_threads,
        cores: crate::cores(),
        target: opts.spawn.as_ref().map(|s| s.target.clone()),
        // The key may be spelled out in the command; reports never hold it.
        spawn: opts.spawn.as_ref().map(|s| match s.api_key.as_deref() {
            Some(k) if !k.is_empty() => s.command.replace(k, "<api-key>"),
            _ => s.command.clone(),
        }),
    };
    let (tx, rx) = watch::channel(false);
    let (rows, partial) = drive_with_stop(stop, tx, sweep_costs(opts, rx, progress)).await?;
    Ok(Sweep {
        schema: SCHEMA.into(),
        tool: format!("authbench {}", env!("CARGO_PKG_VERSION")),
        generated_at: now_rfc3339(),
        partial,
        config,
        rows,
    })
}

async fn sweep_costs(
    opts: &SweepOptions,
    stop: watch::Receiver<bool>,
    progress: &mut dyn FnMut(&str),
) -> Result<(Vec<SweepRow>, bool), SweepError> {
    let mut rows = Vec::new();
    for &cost in &opts.costs {
        if *stop.borrow() {
            return Ok((rows, true));
        }
        let row = match &opts.spawn {
            None => sweep_in_process(opts, cost, &stop, progress).await?,
            Some(sp) => sweep_spawned(opts, sp, cost, &stop, progress).await?,
        };
        let Some(row) = row else {
            return Ok((rows, true));
        };
        let interrupted = row.partial;
        rows.push(row);
        if interrupted {
            return Ok((rows, true));
        }
    }
    Ok((rows, *stop.borrow()))
}

fn run_options(opts: &SweepOptions, cost: u32) -> RunOptions {
    in_process_run(
        cost,
        opts.flows,
        opts.concurrency,
        opts.timeout,
        &opts.scenario,
    )
}

/// The options of one quiet run against the in-process server at `cost` (sweep and tune).
pub(crate) fn in_process_run(
    cost: u32,
    flows: u64,
    concurrency: usize,
    timeout: Duration,
    scenario: &ScenarioSource,
) -> RunOptions {
    RunOptions {
        cost,
        target: None,
        out_dir: None,
        flows,
        concurrency,
        timeout,
        connect_timeout: timeout.min(Duration::from_secs(5)),
        scenario: scenario.clone(),
        progress: false,
        ..RunOptions::default()
    }
}

/// One cost against the in-process server. `None` when stopped before the run started.
async fn sweep_in_process(
    opts: &SweepOptions,
    cost: u32,
    stop: &watch::Receiver<bool>,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<SweepRow>, SweepError> {
    progress(&format!("cost {cost}: timing bcrypt alone"));
    // Measured before the load run, never during it: both would compete for the cores.
    let hash_ms = measure_hash_ms(cost).await?;
    if *stop.borrow() {
        return Ok(None);
    }
    progress(&format!(
        "cost {cost}: {hash_ms:.1} ms per hash; running {} flows",
        opts.flows
    ));
    let result = crate::run(&run_options(opts, cost), stop_future(stop))
        .await
        .map_err(|e| SweepError::Run { cost, source: e })?;
    Ok(Some(row_of(
        cost,
        Some(hash_ms),
        HashSource::Measured,
        &result.report,
        opts,
    )))
}

/// One cost against the user's service, started for this cost and stopped after it.
async fn sweep_spawned(
    opts: &SweepOptions,
    sp: &spawn::SpawnOptions,
    cost: u32,
    stop: &watch::Receiver<bool>,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<SweepRow>, SweepError> {
    let command = sp.command.replace("{cost}", &cost.to_string());
    progress(&format!("cost {cost}: starting `{command}`"));
    let spawn_err = |source| SweepError::Spawn { cost, source };
    // The guard kills the whole process group on every way out of this function.
    let mut group = spawn::ProcessGroup::start(&command).map_err(spawn_err)?;
    let ready_url = format!(
        "{}/{}",
        sp.target.trim_end_matches('/'),
        sp.ready_path.trim_start_matches('/')
    );
    let mut stop_rx = stop.clone();
    match spawn::wait_ready(&mut group, &ready_url, sp.ready_timeout, &mut stop_rx)
        .await
        .map_err(spawn_err)?
    {
        spawn::Readiness::Ready => {}
        spawn::Readiness::Stopped => {
            group.stop(spawn::STOP_GRACE).await;
            return Ok(None);
        }
    }
    progress(&format!("cost {cost}: ready; running {} flows", opts.flows));
    let run_opts = RunOptions {
        target: Some(sp.target.clone()),
        api_key: sp.api_key.clone(),
        ..run_options(opts, cost)
    };
    let result = crate::run(&run_opts, stop_future(stop)).await;
    group.stop(spawn::STOP_GRACE).await;
    let result = result.map_err(|e| SweepError::Run { cost, source: e })?;
    let source = if sp.hash_time_ms.is_some() {
        HashSource::Given
    } else {
        HashSource::External
    };
    Ok(Some(row_of(
        cost,
        sp.hash_time_ms,
        source,
        &result.report,
        opts,
    )))
}

fn row_of(
    cost: u32,
    hash_ms: Option<f64>,
    hash_source: HashSource,
    r: &Report,
    opts: &SweepOptions,
) -> SweepRow {
    let lat = |v: f64| (r.flow.count > 0).then_some(v);
    SweepRow {
        cost,
        hash_ms,
        hash_source,
        flow_p50_ms: lat(r.flow.p50_ms),
        flow_p95_ms: lat(r.flow.p95_ms),
        flow_p99_ms: lat(r.flow.p99_ms),
        success_rate: r.summary.success_rate,
        successful_flows: r.summary.successful_flows,
        total_flows: r.summary.total_flows,
        flows_per_s: r.summary.flows_per_s,
        capacity_flows_per_s: hash_ms
            .and_then(|ms| capacity(opts.hashing_threads, opts.hashes_per_flow, ms / 1e3)),
        partial: r.partial,
    }
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn fmt_ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "–".into(),
    }
}

fn fmt_hash(row: &SweepRow) -> String {
    match (row.hash_ms, row.hash_source) {
        (None, _) => "n/a (external)".into(),
        (Some(v), HashSource::Given) => format!("{} (given)", fmt_ms(Some(v))),
        (Some(v), _) => fmt_ms(Some(v)),
    }
}

fn fmt_rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

const HEADERS: [&str; 8] = [
    "cost",
    "hash (ms)",
    "flow p50 (ms)",
    "flow p95 (ms)",
    "flow p99 (ms)",
    "success",
    "flows/s",
    "capacity ≈ flows/s",
];

fn cells(row: &SweepRow) -> [String; 8] {
    let cost = if row.cost < OWASP_MIN_COST {
        format!("{} (weak)", row.cost)
    } else {
        row.cost.to_string()
    };
    [
        if row.partial {
            format!("{cost} partial")
        } else {
            cost
        },
        fmt_hash(row),
        fmt_ms(row.flow_p50_ms),
        fmt_ms(row.flow_p95_ms),
        fmt_ms(row.flow_p99_ms),
        format!("{:.1}%", row.success_rate * 100.0),
        fmt_rate(row.flows_per_s),
        row.capacity_flows_per_s.map_or("n/a".into(), fmt_rate),
    ]
}

/// The formula and its inputs, one line.
pub fn capacity_note(s: &Sweep) -> String {
    format!(
        "capacity ≈ hashing threads / (hashes per flow × time per hash) = {} / ({} × hash time); \
         {} flows per cost, {} at once; OWASP minimum cost: {OWASP_MIN_COST}",
        s.config.hashing_threads, s.config.hashes_per_flow, s.config.flows, s.config.concurrency
    )
}

/// The terminal table.
pub fn terminal_table(s: &Sweep) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(HEADERS);
    for row in &s.rows {
        t.add_row(cells(row));
    }
    let mut out = format!("{t}\n{}\n", capacity_note(s));
    if s.partial {
        out.push_str("PARTIAL: the sweep was interrupted\n");
    }
    out
}

/// The Markdown report; `chart` is the SVG's file name, shown as an image.
pub fn markdown(s: &Sweep, chart: Option<&str>) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# bcrypt cost sweep{}\n",
        if s.partial { " (PARTIAL)" } else { "" }
    );
    let target = match (&s.config.spawn, &s.config.target) {
        (Some(cmd), Some(t)) => format!("`{cmd}` at {t}, started per cost"),
        _ => "the in-process reference server (hashing on a pool of one thread per core)".into(),
    };
    let _ = writeln!(
        md,
        "Target: {target}. Scenario `{}`: {} flows per cost, {} at once, {} ms request timeout, {} cores.\n",
        s.config.scenario, s.config.flows, s.config.concurrency, s.config.timeout_ms, s.config.cores
    );
    let _ = writeln!(md, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(md, "|{}", "---:|".repeat(HEADERS.len()));
    for row in &s.rows {
        let _ = writeln!(md, "| {} |", cells(row).join(" | "));
    }
    let _ = writeln!(md, "\n{}.\n", capacity_note(s));
    let _ = writeln!(
        md,
        "Each +1 in cost doubles the time of a hash. Under load, flows queue for the hashing \
         threads, so flow latency grows with concurrency × cost, not with the cost alone. \
         Costs below {OWASP_MIN_COST} are marked weak (OWASP Password Storage Cheat Sheet).\n"
    );
    if let Some(c) = chart {
        let _ = writeln!(md, "![latency and capacity against cost]({c})\n");
    }
    let _ = writeln!(md, "Generated {} by {}.", s.generated_at, s.tool);
    md
}

/// `<dir>/<stamp>-<kind>` with a suffix when any of `exts` exists already (never overwrite).
pub(crate) fn unique_stem(dir: &Path, generated_at: &str, kind: &str, exts: &[&str]) -> PathBuf {
    let stamp: String = generated_at
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let mut base = format!("{stamp}-{kind}");
    let mut n = 1;
    while exts
        .iter()
        .any(|e| dir.join(format!("{base}.{e}")).exists())
    {
        n += 1;
        base = format!("{stamp}-{kind}-{n}");
    }
    dir.join(base)
}

/// What [`write_sweep`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub files: Vec<PathBuf>,
    /// The PNG was drawn without any system font, so it has no text.
    pub png_without_text: bool,
}

/// Writes `<dir>/<stamp>-sweep.{md,json,svg,png,html}`.
pub fn write_sweep(s: &Sweep, dir: &Path) -> anyhow::Result<Written> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("could not create the report directory '{}'", dir.display()))?;
    let stem = unique_stem(
        dir,
        &s.generated_at,
        "sweep",
        &["md", "json", "svg", "png", "html"],
    );
    let path = |ext: &str| stem.with_extension(ext);
    let svg = chart::svg(s)?;
    let png = chart::png(&svg)?;
    let svg_name = path("svg")
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let json = serde_json::to_vec_pretty(s).context("could not serialize the sweep")?;
    let files = vec![
        (path("md"), markdown(s, svg_name.as_deref()).into_bytes()),
        (path("json"), json),
        (path("svg"), svg.clone().into_bytes()),
        (path("png"), png.bytes),
        (path("html"), crate::report::html::sweep_page(s, &svg)),
    ];
    let mut written = Vec::new();
    for (p, bytes) in files {
        crate::report::write_file(&p, &bytes)?;
        written.push(p);
    }
    Ok(Written {
        files: written,
        png_without_text: !png.had_fonts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs() {
        assert_eq!(parse_costs("4..=6"), Ok(vec![4, 5, 6]));
        assert_eq!(parse_costs("4..6"), Ok(vec![4, 5]));
        assert_eq!(parse_costs(" 8, 4,6,4 "), Ok(vec![4, 6, 8]));
        assert_eq!(parse_costs("12"), Ok(vec![12]));
        assert_eq!(parse_costs("31"), Ok(vec![31]));
        for bad in [
            "", "3", "32", "4..=32", "2..5", "6..4", "5..5", "a", "4..", "..4", "4,,5", "-1",
            "4..=x",
        ] {
            assert!(parse_costs(bad).is_err(), "{bad}");
        }
        assert!(parse_costs("3..=5").unwrap_err().contains("outside"));
    }

    #[test]
    fn capacity_arithmetic() {
        let c = capacity(2, 2.0, 0.235).unwrap();
        assert!((c - 4.255).abs() < 0.01, "{c}");
        assert_eq!(capacity(0, 2.0, 0.2), None);
        assert_eq!(capacity(2, 2.0, 0.0), None);
        assert_eq!(capacity(2, f64::NAN, 0.2), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
