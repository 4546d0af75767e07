//! The HTML report: its charts' data match the JSON figures, `authbench report` re-renders
//! a saved JSON identically, and headless Chromium renders it with no error.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use authbench::options::RunOptions;
use authbench::plan::{Arrival, LoadModel, Plan, Stage};
use authbench::render::{html::Html, Exporter};
use authbench::report::Report;

use crate::support::cli;

/// A short open-loop run against the in-process server, with its report files.
async fn short_run(dir: &Path) -> (Report, Vec<PathBuf>) {
    let o = RunOptions {
        cost: 4,
        plan: Some(Plan {
            model: LoadModel::Open {
                arrival: Arrival::Poisson,
                max_in_flight: 20,
            },
            stages: vec![Stage {
                level: 40.0,
                duration: Duration::MAX,
            }],
            max_flows: None,
            duration: Some(Duration::from_millis(2500)),
            warmup: Duration::ZERO,
        }),
        thresholds: vec!["success_rate>=0.99".into(), "flow.p99<1us".into()],
        out_dir: Some(dir.to_path_buf()),
        ..RunOptions::default()
    };
    let r = authbench::run(&o, std::future::pending()).await.unwrap();
    (r.report, r.files)
}

/// Values of `attr` on elements of `doc` matching `pred`.
fn attrs<'a>(
    doc: &'a roxmltree::Document,
    pred: impl Fn(&roxmltree::Node) -> bool + 'a,
    attr: &'a str,
) -> Vec<&'a str> {
    doc.descendants()
        .filter(|n| pred(n))
        .filter_map(|n| n.attribute(attr))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_match_the_json_and_report_rerenders_it() {
    let dir = tempfile::tempdir().unwrap();
    let (rep, files) = short_run(dir.path()).await;
    let html_path = files
        .iter()
        .find(|f| f.extension().unwrap() == "html")
        .unwrap();
    let json_path = files
        .iter()
        .find(|f| f.extension().unwrap() == "json")
        .unwrap();
    let html = std::fs::read_to_string(html_path).unwrap();

    // Self-contained: nothing is fetched from anywhere.
    for needle in ["http://", "https://", "src=", "<link", "@import"] {
        let hits: Vec<_> = html.match_indices(needle).collect();
        // The target URL appears in the configuration table as text only.
        assert!(
            needle.starts_with("http") && hits.len() <= 2 || hits.is_empty(),
            "{needle}: {hits:?}"
        );
    }
    assert!(html.contains("default-src 'none'"));
    assert!(html.contains(&format!(
        "<pre class=\"block\" id=\"metrics\">{}</pre>",
        rep.metrics_block()
    )));

    // The SVG parts parse as XML; check their data against the JSON.
    let svgs: Vec<&str> = html
        .match_indices("<svg")
        .map(|(i, _)| {
            let end = html[i..].find("</svg>").unwrap() + i + 6;
            &html[i..end]
        })
        .collect();
    assert_eq!(
        svgs.len(),
        3,
        "a percentile chart, a timeline and a CPU chart"
    );
    let cpu = roxmltree::Document::parse(svgs[2]).unwrap();
    assert_eq!(
        cpu.root_element().attribute("data-chart"),
        Some("cpu"),
        "{}",
        svgs[2]
    );
    let pct = roxmltree::Document::parse(svgs[0]).unwrap();
    let series = attrs(&pct, |n| n.has_tag_name("g"), "data-series");
    assert_eq!(
        series,
        [
            "register",
            "login",
            "verify",
            "profile",
            "flow (service time)",
            "flow from intended start"
        ]
    );
    for g in pct.descendants().filter(|n| n.has_tag_name("g")) {
        let name = g.attribute("data-series").unwrap();
        let want = match name {
            "flow (service time)" => rep.flow,
            "flow from intended start" => rep.flow_intended,
            step => rep.steps.iter().find(|s| s.name == step).unwrap().latency,
        };
        let at = |q: &str| -> f64 {
            g.children()
                .find(|c| c.attribute("data-q") == Some(q))
                .and_then(|c| c.attribute("data-ms"))
                .unwrap()
                .parse()
                .unwrap()
        };
        assert_eq!(at("0.5"), want.p50_ms, "{name}");
        assert_eq!(at("0.99"), want.p99_ms, "{name}");
        assert_eq!(at("1"), want.max_ms, "{name}");
    }
    let tl = roxmltree::Document::parse(svgs[1]).unwrap();
    let completed: u64 = attrs(
        &tl,
        |n| n.attribute("class") == Some("completed"),
        "data-completed",
    )
    .iter()
    .map(|v| v.parse::<u64>().unwrap())
    .sum();
    assert_eq!(completed, rep.summary.total_flows);
    let points = rep.timeline.points.len();
    assert!((2..=4).contains(&points), "{points}");
    assert!(
        html.contains("<td class=\"fail\">FAIL</td>"),
        "the failing threshold is shown"
    );

    // `authbench report RUN.json --html` re-renders the same page from the saved JSON.
    let again = dir.path().join("again.html");
    let (json, again_s) = (json_path.display().to_string(), again.display().to_string());
    let (code, _, err) =
        tokio::task::spawn_blocking(move || cli(&["report", &json, "--html", &again_s]))
            .await
            .unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&again).unwrap(), html);
    let json = json_path.display().to_string();
    let (code, _, err) = tokio::task::spawn_blocking(move || cli(&["report", &json]))
        .await
        .unwrap();
    assert_eq!(code, 2);
    assert!(err.contains("nothing to write"), "{err}");
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn headless(profile: &Path) -> Command {
    let mut c = Command::new(chromium().unwrap());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        // No network: every host name resolves to nothing (the page also forbids fetches).
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1100,2600",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renders_in_headless_chromium_without_errors() {
    if chromium().is_none() {
        // CI installs Chromium (scripts/test.sh); elsewhere the test says why it did nothing.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Chromium: scripts/test.sh installs Debian's chromium"
        );
        eprintln!("skipped: no /usr/bin/chromium (scripts/test.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, files) = short_run(dir.path()).await;
    let html = files
        .iter()
        .find(|f| f.extension().unwrap() == "html")
        .unwrap();
    let url = format!("file://{}", html.display());
    let profile = dir.path().join("profile");

    let out = headless(&profile)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let body = dom.split("<body").nth(1).unwrap_or_default();
    let attr = |name: &str| -> Option<u64> {
        let start = body.find(&format!("{name}=\""))? + name.len() + 2;
        body[start..].split('"').next()?.parse().ok()
    };
    assert_eq!(attr("data-errors"), Some(0), "{log}");
    let drawn = attr("data-drawn").unwrap_or(0);
    assert!(drawn > 50, "charts drew {drawn} elements");
    for bad in ["Uncaught", "Refused to", "ERR_NAME_NOT_RESOLVED"] {
        assert!(!log.contains(bad), "{bad} in the console: {log}");
    }

    let shot = std::env::var_os("AUTHBENCH_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("report.png"));
    let out = headless(&profile)
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(
        png.len() > 20_000,
        "a blank page is smaller: {} bytes",
        png.len()
    );
    // Sanity check of what Html renders without a browser, for the same report.
    let _ = Html.extension();
}

#[test]
fn check_results_have_an_html_page_with_severities() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, out, err) = cli(&["check", "--cost", "4", "--out-dir", d]);
    assert_eq!(code, 0, "{out}{err}");
    let html_path = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "html"))
        .expect("check writes an HTML page");
    let html = std::fs::read_to_string(&html_path).unwrap();
    let json_path = html_path.with_extension("json");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let probes = report["probes"].as_array().unwrap();
    assert_eq!(html.matches("<tr data-severity=").count(), probes.len());
    for sev in ["high", "medium", "low"] {
        assert!(html.contains(&format!("data-severity=\"{sev}\"")), "{sev}");
    }
    assert!(html.contains("<strong>PASS</strong>"));
    // `report` re-renders a check JSON as the same page.
    let again = dir.path().join("again.html");
    let (code, _, err) = cli(&[
        "report",
        json_path.to_str().unwrap(),
        "--html",
        again.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(again).unwrap(), html);
}

#[test]
fn sweep_results_have_an_html_page_with_the_chart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, out, err) = cli(&["sweep", "--costs", "4..=5", "--flows", "4", "--out-dir", d]);
    assert_eq!(code, 0, "{out}{err}");
    let html_path = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "html"))
        .expect("sweep writes an HTML page");
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("<tr data-cost=\"4\">") && html.contains("<tr data-cost=\"5\">"));
    assert!(
        html.contains("<svg") && html.contains("OWASP minimum"),
        "the chart is inline"
    );
    assert!(!html.contains("<?xml"));
    let again = dir.path().join("again.html");
    let json = html_path.with_extension("json");
    let (code, _, err) = cli(&[
        "report",
        json.to_str().unwrap(),
        "--html",
        again.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(again).unwrap(), html);
    if chromium().is_some() {
        let out = headless(&dir.path().join("profile"))
            .arg("--dump-dom")
            .arg(format!("file://{}", html_path.display()))
            .output()
            .unwrap();
        let dom = String::from_utf8_lossy(&out.stdout);
        assert!(
            dom.contains("data-errors=\"0\""),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
