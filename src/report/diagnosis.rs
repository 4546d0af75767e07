//! The diagnosis as a report stores it: per-step service times, waiting and effective
//! parallelism, the findings in words, and the one-word [`Verdict`] a sweep's rows show.
//! Plain data; [`crate::diagnosis`] computes it from a run and its calibration.

use serde::{Deserialize, Serialize};

/// Per-step figures of the diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDiagnosis {
    pub name: String,
    /// Median latency at concurrency 1 (calibration), ms.
    pub service_time_ms: f64,
    /// The spread of the calibration's latencies: their 25th and 75th percentiles, ms.
    #[serde(default)]
    pub service_p25_ms: f64,
    #[serde(default)]
    pub service_p75_ms: f64,
    /// Median latency in the concurrent run, ms.
    pub loaded_p50_ms: f64,
    /// 1 − service / loaded median: the share of the step spent waiting.
    pub waiting_fraction: f64,
    /// Loaded median − service time: how long the step waited, ms.
    #[serde(default)]
    pub waited_ms: f64,
    /// Requests of this step the server refused for their rate (left out of every other
    /// figure here).
    #[serde(default)]
    pub rate_limited: u64,
    /// Requests of this step the server was busy with at once (requests/s × service time).
    #[serde(default)]
    pub effective_parallelism: f64,
}

/// The `diagnosis` object of the JSON report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Flows run one at a time before the measured run.
    pub calibration_flows: u64,
    pub steps: Vec<StepDiagnosis>,
    /// Sum of the steps' service times: a flow with no queue, ms.
    pub flow_service_time_ms: f64,
    /// Mean duration of successful flows in the run, ms (`null` if none succeeded).
    pub flow_mean_ms: Option<f64>,
    /// 1 − flow service time / mean flow time.
    pub waiting_fraction: Option<f64>,
    /// Requests the server was busy with at once, on average: Σ over steps of
    /// (requests sent / wall time × service time); rate-limited requests are left out.
    pub effective_parallelism: f64,
    /// The same figure from the calibration's 25th and 75th percentile service times (at
    /// least ±10%): a verdict whose threshold lies inside it is inconclusive.
    #[serde(default)]
    pub effective_parallelism_low: f64,
    #[serde(default)]
    pub effective_parallelism_high: f64,
    /// Flows in flight at once (the load's concurrency).
    pub concurrency: usize,
    /// Cores of the server's machine, when known (the in-process server's).
    pub server_cores: Option<usize>,
    /// Requests that timed out in the run.
    pub timeouts: u64,
    /// Steps that wait under load (≥ 50%) while others do not (< 20%): where the queue is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queued_steps: Vec<String>,
    /// New connections whose connect took a SYN retransmission time (≈1 s, 3 s, 7 s).
    #[serde(default)]
    pub syn_retransmitted_connects: u64,
    /// Requests of the run the server refused for their rate (`rate_limited`).
    #[serde(default)]
    pub rate_limited: u64,
    /// The classification of the run (see [`Verdict`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// For an [`Verdict::Inconclusive`] run: the two causes the figures cannot tell apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive_between: Option<[Verdict; 2]>,
    /// Plain-words findings, each citing its figures.
    pub findings: Vec<String>,
}

/// What limited the server in one run, in a word: the classification behind the main
/// finding, for places (a sweep's rows) that show one verdict per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// authbench itself was out of CPU: nothing is concluded about the server.
    GeneratorBound,
    /// Flows waited little: the server kept up with the load.
    KeptUp,
    /// The server was mostly idle; the waiting lies outside its work.
    Idle,
    /// Some queueing below saturation: the busy count reflects the offered load.
    NotSaturated,
    /// The server worked on about as many requests at once as it has cores.
    UsesCores,
    /// Requests were processed one at a time.
    Serializes,
    /// The machine the target shares with authbench was out of CPU.
    MachineCpu,
    /// Fewer requests at once than offered and than the cores: a lock, pool or worker count.
    OtherLimit,
    /// HTTP/2: the server's stream limit held the requests in flight below the
    /// concurrency, and they waited for a stream in authbench, not in the server.
    StreamLimit,
    /// The server refused a material share of the requests for their rate (429, or 503
    /// with `Retry-After`): nothing is concluded about its capacity.
    RateLimited,
    /// Other processes used a material share of the cores while requests queued: the
    /// server was starved of CPU, and no verdict on how it scales is drawn.
    OtherProcesses,
    /// The figure that decides between two causes lies inside its own noise
    /// (`inconclusive_between` names them).
    Inconclusive,
    /// Calibrated without a concurrent run to compare (or with `--calibration 0`): only
    /// the findings that need no calibration.
    NotCalibrated,
}

impl Verdict {
    /// A few words for a table cell.
    pub fn short(self) -> &'static str {
        match self {
            Verdict::GeneratorBound => "generator-bound: no verdict",
            Verdict::KeptUp => "kept up",
            Verdict::Idle => "server idle",
            Verdict::NotSaturated => "queueing, not saturated",
            Verdict::UsesCores => "uses its cores",
            Verdict::Serializes => "serializes its work",
            Verdict::MachineCpu => "machine CPU-bound",
            Verdict::OtherLimit => "limit other than cores",
            Verdict::StreamLimit => "HTTP/2 stream limit",
            Verdict::RateLimited => "rate limited",
            Verdict::OtherProcesses => "starved by other processes",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotCalibrated => "not calibrated",
        }
    }
}
