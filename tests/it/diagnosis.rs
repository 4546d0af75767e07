//! The document's failure, reproduced: hashing inline on one event loop makes flows time
//! out and the diagnosis names serialization; the default off-loop pool at the same
//! settings does not. Run at a small cost with the timeout scaled by the measured hash time.

use authbench::options::RunOptions;
use authbench::server::HashMode;

use crate::support::{self, hash_time, CPU_HEAVY};

const COST: u32 = 9;
const FLOWS: u64 = 40;

fn opts(mode: HashMode, h: std::time::Duration) -> RunOptions {
    // At cost 12 the document's setting is 40 flows and a 10 s timeout with 0.2 s hashes:
    // 80 hashes = 16 s of hashing. Inline, the last registration waits 40 hash times; on a
    // 2-thread pool, 20. A timeout of 30 hash times separates the two.
    RunOptions {
        cost: COST,
        flows: FLOWS,
        concurrency: FLOWS as usize,
        timeout: h * 30,
        hash_mode: mode,
        out_dir: None,
        ..RunOptions::default()
    }
}

fn timeouts(r: &authbench::report::Report) -> u64 {
    r.steps
        .iter()
        .filter_map(|s| s.failures.get("timeout"))
        .sum()
}

/// Ignored in the default run and run alone by scripts/test.sh
/// (`cargo test --test it -- --ignored --test-threads=1`): its claim is about what two cores
/// do with hashing, so other tests must not be using them at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs both cores to itself: scripts/test.sh runs it alone"]
async fn inline_hashing_times_out_and_is_diagnosed_as_serialized_the_pool_is_not() {
    let _cpu = CPU_HEAVY.lock().await;
    if authbench::usage::cores() < 2 {
        eprintln!("skipped: a pool cannot beat one event loop on one core");
        return;
    }
    let h = hash_time(COST);

    let inline = authbench::run(&opts(HashMode::Inline, h), std::future::pending())
        .await
        .unwrap()
        .report;
    let d = inline.diagnosis.as_ref().expect("calibrated");
    assert!(timeouts(&inline) > 0, "{:#?}", inline.failures);
    assert!(
        d.findings[0].starts_with("Requests are processed one at a time"),
        "{:#?}",
        d
    );
    assert!(d.effective_parallelism < 1.4, "{d:#?}");
    assert!(d.findings.iter().any(|f| f.contains("timed out")));
    assert_eq!(inline.config.hash_mode.as_deref(), Some("inline"));

    let pool = authbench::run(&opts(HashMode::Pool, h), std::future::pending())
        .await
        .unwrap()
        .report;
    let d = pool.diagnosis.as_ref().expect("calibrated");
    assert_eq!(timeouts(&pool), 0, "{:#?} {d:#?}", pool.failures);
    assert_eq!(pool.summary.successful_flows, FLOWS);
    assert!(
        !d.findings.iter().any(|f| f.contains("one at a time")),
        "{d:#?}"
    );
    assert!(d.effective_parallelism > 1.4, "{d:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_figure_in_the_diagnosis_is_in_the_report() {
    let o = RunOptions {
        cost: 4,
        flows: 10,
        concurrency: 10,
        out_dir: None,
        ..RunOptions::default()
    };
    let r = support::report(&o).await;
    let d = r.diagnosis.as_ref().unwrap();
    assert_eq!(d.calibration_flows, 5);
    // Each step's spread is recorded around its median.
    assert!(d
        .steps
        .iter()
        .all(|s| s.service_p25_ms <= s.service_time_ms && s.service_time_ms <= s.service_p75_ms));
    assert!(d.effective_parallelism_low <= d.effective_parallelism);
    assert!(d.effective_parallelism <= d.effective_parallelism_high);
    assert_eq!(d.steps.len(), 4);
    // The calibration flows are not part of the run's figures.
    assert_eq!(r.summary.total_flows, 10);
    let sum: f64 = d.steps.iter().map(|s| s.service_time_ms).sum();
    assert!((sum - d.flow_service_time_ms).abs() < 1e-9);
    let md = String::from_utf8(
        authbench::render::Exporter::render(&authbench::render::markdown::Markdown, &r).unwrap(),
    )
    .unwrap();
    assert!(md.contains("## Diagnosis"));
    assert!(md.contains(&format!("**{:.2}**", d.effective_parallelism)));
    // No calibration: only what needs none (here the in-process server's CPU, from its
    // own threads).
    let o = RunOptions {
        calibration_flows: 0,
        ..o
    };
    let r = support::report(&o).await;
    let d = r
        .diagnosis
        .as_ref()
        .expect("findings that need no calibration");
    assert!(d.steps.is_empty(), "{d:#?}");
    // On a loaded machine authbench itself may be short of CPU: then that is all it says.
    if d.verdict == Some(authbench::diagnosis::Verdict::GeneratorBound) {
        return;
    }
    assert_eq!(
        d.verdict,
        Some(authbench::diagnosis::Verdict::NotCalibrated)
    );
    assert!(
        d.findings
            .iter()
            .any(|f| f.contains("the in-process server's") && f.contains("threads")),
        "{d:#?}"
    );
}
