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
    /// Median latency in the concurrent run, ms.
    pub loaded_p50_ms: f64,
    /// 1 − service / loaded median: the share of the step spent waiting.
    pub waiting_fraction: f64,
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
    /// (requests sent / wall time × service time).
    pub effective_parallelism: f64,
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
        }
    }
}
