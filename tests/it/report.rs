//! Report exporters on hand-made figures: the Markdown is pinned by a snapshot.

use std::time::Duration;

use authbench::render::{json::Json, markdown::Markdown, Exporter};
use authbench::report::{Report, ReportInput, RunConfig};
use authbench::samples::{FailureKind, Sample};
use authbench::stats::Stats;

fn sample_report(partial: bool) -> Report {
    let names: Vec<String> = ["register", "login", "verify", "profile"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut stats = Stats::new(&names);
    for i in 0..20u64 {
        let fail = i == 7;
        for (step, base) in [(0usize, 200_000u64), (1, 210_000), (2, 900), (3, 800)] {
            let failure = (fail && step == 1).then_some(FailureKind::Status(401));
            if step == 0 && i < 4 {
                // The first flows open the pool's connections.
                stats.record(Sample::Connect {
                    step,
                    us: 150 + i * 10,
                });
            }
            stats.record(Sample::Step {
                step,
                elapsed_us: base + i * 1000,
                ttfb_us: base - 100 + i * 1000,
                bytes: 0,
                responded: true,
                failure: failure.clone(),
            });
            if failure.is_some() {
                break;
            }
        }
        stats.record(Sample::Flow {
            elapsed_us: 412_000 + i * 3000,
            lateness_us: 0,
            measured: true,
            failed_step: fail.then_some(1),
        });
    }
    Report::build(ReportInput {
        stats: &stats,
        config: RunConfig {
            target: "http://127.0.0.1:8007".into(),
            in_process_server: true,
            scenario: "pyairtable".into(),
            scenario_source: "scenarios/pyairtable.toml (built in)".into(),
            flows_planned: if partial { 40 } else { 20 },
            concurrency: 20,
            load_model: "closed".into(),
            load: authbench::plan::Plan::closed(20, 20).describe(),
            connections: "shared".into(),
            timeout_ms: 30_000,
            connect_timeout_ms: 5_000,
            bcrypt_cost: Some(12),
            cores: 2,
            generators: 1,
            hash_mode: None,
            think: None,
            data: None,
            insecure: false,
            source_addrs: vec![],
            notes: vec![],
            start: None,
            shard: None,
        },
        wall: Duration::from_millis(1_234),
        partial,
        abandoned: if partial { 3 } else { 0 },
        generated_at: "2026-11-25T12:00:00Z".parse().unwrap(),
    })
}

#[test]
fn markdown_snapshot() {
    let md = String::from_utf8(Markdown.render(&sample_report(false)).unwrap()).unwrap();
    insta::assert_snapshot!("run_markdown", md);
}

#[test]
fn partial_markdown_says_so() {
    let md = String::from_utf8(Markdown.render(&sample_report(true)).unwrap()).unwrap();
    insta::assert_snapshot!("run_markdown_partial", md);
}

#[test]
fn figures_follow_from_the_samples() {
    let r = sample_report(false);
    assert_eq!(
        r.metrics_block(),
        "Total Tests Executed: 20\nSuccessful Flows: 19\nFailed Flows: 1\nSuccess Rate: 95.00%\nAverage Flow Time: 0.441s\n"
    );
    assert_eq!(r.steps[1].failures["status"], 1);
    assert_eq!(r.steps[2].requests, 19);
    assert_eq!(r.summary.requests, 20 + 20 + 19 + 19);
    let back: Report = serde_json::from_slice(&Json.render(&r).unwrap()).unwrap();
    assert_eq!(back, r);
}
