//! `--metrics`: the Prometheus endpoint serves every series during the run, and the last
//! scrape's counters equal the final report's totals.

use std::collections::HashMap;
use std::time::Duration;

use super::support::report;
use authbench::options::RunOptions;
use authbench::plan::{Arrival, LoadModel, Plan, Stage};

/// A loopback port nothing listens on right now.
fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// `name{labels}` → value, from a Prometheus text page.
fn samples(page: &str) -> HashMap<String, f64> {
    let scrape = prometheus_parse::Scrape::parse(page.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .into_iter()
        .map(|s| {
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let v = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => {
                    f64::NAN
                }
            };
            (format!("{}{{{}}}", s.metric, labels.join(",")), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_scrape_equals_the_report() {
    let addr = free_addr();
    let o = RunOptions {
        cost: 4,
        calibration_flows: 0,
        out_dir: None,
        metrics: Some(addr),
        metrics_linger: Duration::from_millis(1500),
        plan: Some(Plan {
            model: LoadModel::Open {
                arrival: Arrival::Constant,
                max_in_flight: 100,
            },
            stages: vec![Stage {
                level: 25.0,
                duration: Duration::MAX,
            }],
            max_flows: None,
            duration: Some(Duration::from_secs(3)),
            warmup: Duration::ZERO,
        }),
        ..RunOptions::default()
    };
    let scraper = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut pages = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut misses_after_up = 0;
        while tokio::time::Instant::now() < deadline {
            match client.get(format!("http://{addr}/metrics")).send().await {
                Ok(r) if r.status() == 200 => {
                    assert!(r
                        .headers()
                        .get("content-type")
                        .is_some_and(|v| v.to_str().unwrap().starts_with("text/plain")));
                    pages.push(r.text().await.unwrap());
                    misses_after_up = 0;
                }
                _ if !pages.is_empty() => {
                    misses_after_up += 1;
                    if misses_after_up > 5 {
                        break;
                    }
                }
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        pages
    });
    let r = report(&o).await;
    let pages = scraper.await.unwrap();
    assert!(pages.len() > 10, "{} scrapes", pages.len());
    let last = samples(pages.last().unwrap());
    let get = |k: &str| *last.get(k).unwrap_or_else(|| panic!("no {k} in {last:?}"));
    assert_eq!(
        get("authbench_flows_completed_total{result=ok}") as u64,
        r.summary.successful_flows
    );
    assert_eq!(
        get("authbench_flows_completed_total{result=failed}") as u64,
        r.summary.failed_flows
    );
    assert!(r.summary.total_flows >= 50, "{}", r.summary.total_flows);
    for s in &r.steps {
        assert_eq!(
            get(&format!("authbench_requests_total{{step={}}}", s.name)) as u64,
            s.requests
        );
        assert_eq!(
            get(&format!(
                "authbench_response_bytes_total{{step={}}}",
                s.name
            )) as u64,
            s.bytes_received
        );
    }
    assert_eq!(get("authbench_flows_in_flight{}"), 0.0);
    // During the run: some flows started, fewer than at the end, and a rate.
    let mid = pages
        .iter()
        .map(|p| samples(p))
        .find(|m| {
            m.get("authbench_flows_started_total{}")
                .is_some_and(|v| *v > 0.0)
        })
        .expect("a scrape during the run");
    assert!(mid["authbench_flows_started_total{}"] < get("authbench_flows_started_total{}"));
    assert!(mid.contains_key("authbench_arrival_rate{}"));
    assert!(last.contains_key("authbench_generator_cpu_seconds_total{}"));
}

/// Every metric the shipped Grafana dashboard queries is one the endpoint serves.
#[test]
fn the_dashboard_plots_only_served_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/authbench.json")).unwrap(),
    )
    .unwrap();
    let page = authbench::engine::metrics::render(
        &authbench::stats::Stats::new(&["login".into()]),
        0,
        0.0,
        0.0,
    );
    // Every family is declared (`# TYPE name kind`), with samples or not.
    let served: std::collections::BTreeSet<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let mut queried = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("authbench_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // A histogram family serves its `_bucket`, `_sum` and `_count` series.
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| served.contains(f)))
                    .unwrap_or(&name);
                assert!(
                    served.contains(family),
                    "{name} (in `{expr}`) is not served"
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= 8);
}
