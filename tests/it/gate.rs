//! The CI gate: thresholds change the exit code, baselines flag regressions past the
//! tolerance, merged reports equal the histograms combined in memory, JUnit parses back.

use std::time::Duration;

use authbench::gate::{compare, CompareOptions, Verdict};
use authbench::render::{junit::JUnit, Exporter};
use authbench::report::{Report, ReportInput, RunConfig};
use authbench::samples::{FailureKind, Sample};
use authbench::stats::Stats;

use crate::support::cli;

const STEPS: [&str; 2] = ["login", "profile"];

/// Records flows whose step latencies are `base_ms × scale` (plus a spread), `fail_every`
/// flows failing at login with a 401.
fn stats(n: u64, scale: f64, offset: u64, fail_every: u64) -> Stats {
    let names: Vec<String> = STEPS.iter().map(|s| s.to_string()).collect();
    let mut s = Stats::new(&names);
    for i in offset..offset + n {
        let fail = fail_every > 0 && i % fail_every == 0;
        let login = ((100_000 + (i % 50) * 2_000) as f64 * scale) as u64;
        s.record(Sample::Step {
            step: 0,
            elapsed_us: login,
            ttfb_us: 0,
            bytes: 0,
            responded: true,
            failure: fail.then_some(FailureKind::Status(401)),
        });
        let mut total = login;
        if !fail {
            let profile = ((5_000 + (i % 7) * 300) as f64 * scale) as u64;
            total += profile;
            s.record(Sample::Step {
                step: 1,
                elapsed_us: profile,
                ttfb_us: 0,
                bytes: 0,
                responded: true,
                failure: None,
            });
        }
        s.record(Sample::Flow {
            elapsed_us: total,
            lateness_us: 0,
            measured: true,
            failed_step: fail.then_some(0),
        });
    }
    s
}

fn report(s: &Stats, wall_s: f64) -> Report {
    Report::build(ReportInput {
        stats: s,
        config: RunConfig {
            target: "http://127.0.0.1:8007".into(),
            in_process_server: false,
            scenario: "t".into(),
            scenario_source: "t.toml".into(),
            flows_planned: s.flows_total(),
            concurrency: 10,
            load_model: "closed".into(),
            load: String::new(),
            connections: "shared".into(),
            timeout_ms: 30_000,
            connect_timeout_ms: 5_000,
            bcrypt_cost: None,
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
        wall: Duration::from_secs_f64(wall_s),
        partial: false,
        abandoned: 0,
        generated_at: chrono::Utc::now(),
    })
}

fn rows<'a>(
    c: &'a authbench::gate::Comparison,
    scope: &str,
    metric: &str,
) -> &'a authbench::gate::CompareRow {
    c.rows
        .iter()
        .find(|r| r.scope == scope && r.metric == metric)
        .unwrap()
}

#[test]
fn compare_flags_20_percent_and_passes_5_percent_at_10_percent_tolerance() {
    let base = report(&stats(1000, 1.0, 0, 0), 10.0);
    let slow = report(&stats(1000, 1.2, 0, 0), 10.0);
    let near = report(&stats(1000, 1.05, 0, 0), 10.0);
    let o = CompareOptions::default();
    let c = compare(&base, &slow, "base.json", o);
    let p95 = rows(&c, "flow", "p95_ms");
    assert_eq!(p95.verdict, Verdict::Regression, "{p95:?}");
    assert!((p95.relative.unwrap() - 0.2).abs() < 0.01, "{p95:?}");
    assert!(c.regressed());
    assert_eq!(rows(&c, "login", "p95_ms").verdict, Verdict::Regression);

    let c = compare(&base, &near, "base.json", o);
    assert!(!c.regressed(), "{:#?}", c.rows);
    assert_eq!(rows(&c, "flow", "p95_ms").verdict, Verdict::Unchanged);

    // Improvements are shown too, and throughput and success rate have their own sense.
    let c = compare(&slow, &base, "slow.json", o);
    assert_eq!(rows(&c, "flow", "p95_ms").verdict, Verdict::Improvement);
    let fewer = report(&stats(1000, 1.0, 0, 0), 20.0);
    let c = compare(&base, &fewer, "b", o);
    assert_eq!(rows(&c, "flow", "flows_per_s").verdict, Verdict::Regression);
    let failing = report(&stats(1000, 1.0, 0, 20), 10.0);
    let c = compare(&base, &failing, "b", o);
    assert_eq!(
        rows(&c, "flow", "success_rate").verdict,
        Verdict::Regression
    );
    assert_eq!(
        rows(&c, "login", "success_rate").verdict,
        Verdict::Regression
    );
}

#[test]
fn merging_two_halves_equals_the_whole() {
    let a = stats(500, 1.0, 0, 9);
    let b = stats(700, 1.3, 500, 9);
    let mut whole = a.clone();
    whole.merge(&b);
    let expected = report(&whole, 10.0);

    let dir = tempfile::tempdir().unwrap();
    let (pa, pb, pall) = (
        dir.path().join("a.json"),
        dir.path().join("b.json"),
        dir.path().join("all.json"),
    );
    std::fs::write(&pa, Json(&report(&a, 10.0))).unwrap();
    std::fs::write(&pb, Json(&report(&b, 8.0))).unwrap();
    let (code, out, err) = cli(&[
        "merge",
        pa.to_str().unwrap(),
        pb.to_str().unwrap(),
        "-o",
        pall.to_str().unwrap(),
        "--threshold",
        "flow.p99<10s",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let merged = authbench::report::read(&pall).unwrap();
    assert!(pall.with_extension("md").exists());
    assert_eq!(merged.summary.total_flows, 1200);
    assert_eq!(
        merged.summary.successful_flows,
        expected.summary.successful_flows
    );
    assert_eq!(merged.summary.requests, expected.summary.requests);
    assert_eq!(merged.flow, expected.flow);
    assert_eq!(merged.flow_failed, expected.flow_failed);
    for (m, e) in merged.steps.iter().zip(&expected.steps) {
        assert_eq!(m.latency, e.latency, "{}", m.name);
        assert_eq!(
            (m.requests, m.ok, &m.failures),
            (e.requests, e.ok, &e.failures)
        );
    }
    assert_eq!(merged.failures, expected.failures);
    assert_eq!(merged.config.generators, 2);
    // Wall time is the longest run's, so throughputs add up.
    assert!((merged.summary.flows_per_s - 120.0).abs() < 1e-9);
    assert_eq!(merged.thresholds.len(), 1);

    // Reports of different scenarios do not merge.
    let mut other = report(&b, 8.0);
    other.config.scenario = "other".into();
    std::fs::write(&pb, Json(&other)).unwrap();
    let (code, _, err) = cli(&[
        "merge",
        pa.to_str().unwrap(),
        pb.to_str().unwrap(),
        "-o",
        pall.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("ran scenario 'other'"), "{err}");
    assert!(err.contains("not the parts of one load"), "{err}");
}

#[allow(non_snake_case)]
fn Json(r: &Report) -> Vec<u8> {
    authbench::render::json::Json.render(r).unwrap()
}

#[test]
fn compare_command_exit_codes_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.json");
    let new = dir.path().join("new.json");
    std::fs::write(&base, Json(&report(&stats(300, 1.0, 0, 0), 3.0))).unwrap();
    std::fs::write(&new, Json(&report(&stats(300, 1.2, 0, 0), 3.0))).unwrap();
    let junit = dir.path().join("c.xml");
    let (code, out, _) = cli(&[
        "compare",
        base.to_str().unwrap(),
        new.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("regression"), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert!(doc.descendants().any(|n| n.has_tag_name("failure")));
    // Within a 25% tolerance the same change passes.
    let (code, _, err) = cli(&[
        "compare",
        base.to_str().unwrap(),
        new.to_str().unwrap(),
        "--max-regression",
        "25%",
    ]);
    assert_eq!(code, 0, "{err}");
    // A file that is not a report is a usage error.
    std::fs::write(&new, "{\"schema\": \"something/9\"}").unwrap();
    let (code, _, err) = cli(&["compare", base.to_str().unwrap(), new.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("schema"), "{err}");
}

#[test]
fn junit_parses_back_with_a_case_per_threshold_and_step() {
    let mut r = report(&stats(100, 1.0, 0, 10), 1.0);
    let ts = authbench::gate::parse_all(
        &[
            "success_rate>=0.99".into(),
            "flow.p95<2s".into(),
            "errors.status==0".into(),
        ],
        &["login".into(), "profile".into()],
    )
    .unwrap();
    r.thresholds = ts.iter().map(|t| t.evaluate(&r)).collect();
    let xml = String::from_utf8(JUnit.render(&r).unwrap()).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 2);
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 3 + 2);
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(failed, ["success_rate>=0.99", "errors.status==0", "login"]);
    assert_eq!(root.attribute("tests"), Some("5"));
    assert_eq!(root.attribute("failures"), Some("3"));
}

#[test]
fn thresholds_decide_the_exit_code_of_a_real_run() {
    let base = [
        "run",
        "--cost",
        "4",
        "-n",
        "5",
        "--no-reports",
        "--no-progress",
    ];
    let with = |extra: &[&str]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        cli(&v)
    };
    let (code, out, err) = with(&[
        "--threshold",
        "success_rate>=0.99",
        "--threshold",
        "flow.p95<30s",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("success_rate>=0.99") && out.contains("pass"),
        "{out}"
    );

    let (code, out, err) = with(&[
        "--threshold",
        "flow.p50<1us",
        "--threshold",
        "errors.timeout==0",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("gate failed: flow.p50<1us"), "{err}");
    assert!(out.contains("FAIL"), "{out}");

    let (code, _, err) = with(&["--threshold", "flow.p95<500"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("column 13") && err.contains("needs a unit"),
        "{err}"
    );
    let (code, _, err) = with(&["--threshold", "logon.p95<1s"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown step `logon`"), "{err}");
}

#[test]
fn baseline_run_against_itself_passes_and_reports_the_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, out, err) = cli(&[
        "run",
        "--cost",
        "4",
        "-n",
        "5",
        "--out-dir",
        d,
        "--no-progress",
    ]);
    assert_eq!(code, 0, "{err}");
    let json = out
        .lines()
        .find_map(|l| l.strip_prefix("report: ").filter(|p| p.ends_with(".json")))
        .unwrap()
        .to_string();
    let junit = dir.path().join("j.xml");
    let summary = dir.path().join("summary.md");
    std::env::set_var("GITHUB_STEP_SUMMARY", &summary);
    // A huge latency floor: the in-process timings of two tiny runs differ by noise only.
    let (code, out, err) = cli(&[
        "run",
        "--cost",
        "4",
        "-n",
        "5",
        "--out-dir",
        d,
        "--no-progress",
        "--baseline",
        &json,
        "--min-latency-delta",
        "10s",
        "--max-regression",
        "1000%",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    std::env::remove_var("GITHUB_STEP_SUMMARY");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("baseline:"), "{out}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("### Baseline Comparison") && md.contains("Success Rate: 100.00%"),
        "{md}"
    );
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("authbench.baseline"));
}

#[test]
fn scenario_thresholds_table_is_checked_and_located() {
    let ok = "name = \"t\"\n[thresholds]\n\"flow.p95\" = \"<2s\"\nsuccess_rate = \">=99%\"\n[[steps]]\nname = \"a\"\npath = \"/\"\n";
    let s = authbench::scenario::Scenario::parse(ok, "t.toml").unwrap();
    assert_eq!(s.thresholds, ["flow.p95<2s", "success_rate>=99%"]);
    let bad = "name = \"t\"\n[thresholds]\n\"flow.p95\" = \"<2\"\n\"b.p50\" = \"<1s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\n";
    let e = authbench::scenario::Scenario::parse(bad, "t.toml")
        .unwrap_err()
        .0;
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_eq!((e[0].line, e[0].column), (3, 14));
    assert!(e[0].message.contains("needs a unit"));
    assert_eq!((e[1].line, e[1].column), (4, 1));
    assert!(e[1].message.contains("unknown step `b`"));
}
