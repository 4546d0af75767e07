//! Mixes: a `[[mix]]` scenario run against a real loopback server gives each scenario its
//! exact share of the flows (alone and over shards merged), thresholds name a scenario,
//! and `validate` locates every problem of a mix and of the files it names.

use std::path::{Path, PathBuf};

use axum::routing::get;
use axum::Router;

use crate::support::{self, cli};

/// Three scenarios of one GET each (distinct paths), and the mix of them at 80/15/5.
fn mix_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, path) in [("a", "/a"), ("b", "/b"), ("c", "/c")] {
        std::fs::write(
            d.path().join(format!("{name}.toml")),
            format!(
                "name = \"{name}\"\n[[steps]]\nname = \"get\"\npath = \"{path}\"\nexpect = 200\n"
            ),
        )
        .unwrap();
    }
    std::fs::write(
        d.path().join("mix.toml"),
        "name = \"abc\"\n[[mix]]\nscenario = \"a.toml\"\nweight = 80\n[[mix]]\nscenario = \"b.toml\"\nweight = 15\n[[mix]]\nscenario = \"c.toml\"\nweight = 5\n",
    )
    .unwrap();
    d
}

/// `/a` and `/b` at once, `/c` after 5 ms.
fn server() -> String {
    let app = Router::new()
        .route("/a", get(|| async { "{}" }))
        .route("/b", get(|| async { "{}" }))
        .route(
            "/c",
            get(|| async {
                support::sleep_ms(5).await;
                "{}"
            }),
        );
    format!("http://{}", support::serve_on_own_thread(app))
}

fn json_in(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-run.json"))
        .unwrap()
}

fn flows_per_scenario(v: &serde_json::Value) -> Vec<(String, u64)> {
    v["mix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["scenario"].as_str().unwrap().to_string(),
                p["report"]["summary"]["total_flows"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn read(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn a_thousand_flows_at_80_15_5_are_800_150_50_and_thresholds_name_a_scenario() {
    let d = mix_dir();
    let target = server();
    let mix = d.path().join("mix.toml").display().to_string();
    let out = d.path().join("out");
    let (code, stdout, err) = cli(&[
        "run",
        "--target",
        &target,
        "--scenario",
        &mix,
        "-n",
        "1000",
        "-c",
        "20",
        "--calibration",
        "0",
        "--threshold",
        "a:flow.p99<5s",
        "--threshold",
        "c:flow.p50<1ms",
        "--threshold",
        "success_rate>=100%",
        "--out-dir",
        &out.display().to_string(),
    ]);
    // `c` takes 5 ms a flow: its threshold fails, the others pass.
    assert_eq!(code, 1, "{stdout}\n{err}");
    assert!(stdout.contains("(whole)"), "{stdout}");
    let v = read(&json_in(&out));
    let want = |a, b, c| {
        vec![
            ("a".to_string(), a),
            ("b".to_string(), b),
            ("c".to_string(), c),
        ]
    };
    assert_eq!(flows_per_scenario(&v), want(800, 150, 50));
    assert_eq!(v["summary"]["total_flows"], 1000);
    assert_eq!(v["summary"]["successful_flows"], 1000);
    assert_eq!(v["config"]["scenario"], "abc");
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["a:get", "b:get", "c:get"]);
    let verdicts: Vec<(String, bool)> = v["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["expr"].as_str().unwrap().to_string(),
                t["passed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(
        verdicts.contains(&("a:flow.p99<5s".into(), true)),
        "{verdicts:?}"
    );
    assert!(
        verdicts.contains(&("c:flow.p50<1ms".into(), false)),
        "{verdicts:?}"
    );
    assert!(
        verdicts.contains(&("success_rate>=100%".into(), true)),
        "{verdicts:?}"
    );
    // The whole's flow latency is every scenario's flows together.
    assert_eq!(v["flow"]["count"], 1000);
    let md = std::fs::read_to_string(json_in(&out).with_extension("md")).unwrap();
    assert!(md.contains("### Scenarios of the Mix"), "{md}");
    assert!(md.contains("| c | 5 | 50 | 100.00% |"), "{md}");
    // The HTML too: a row per scenario, then each scenario's flow and steps.
    let html = std::fs::read_to_string(json_in(&out).with_extension("html")).unwrap();
    assert!(html.contains("<h2>Scenarios of the Mix</h2>"), "{html}");
    for (name, weight, flows) in [("a", 80, 800), ("b", 15, 150), ("c", 5, 50)] {
        let part = v["mix"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["scenario"] == name)
            .unwrap();
        let row = format!(
            "<tr data-scenario=\"{name}\"><td>{name}</td><td>{weight}</td><td>{flows}</td><td>100.00%</td><td>{:.2}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td></tr>",
            part["report"]["summary"]["flows_per_s"].as_f64().unwrap(),
            part["report"]["flow"]["p50_ms"].as_f64().unwrap(),
            part["report"]["flow"]["p95_ms"].as_f64().unwrap(),
            part["report"]["flow"]["p99_ms"].as_f64().unwrap(),
        );
        assert!(html.contains(&row), "{row}\n{html}");
        let step = &part["report"]["steps"][0]["latency"];
        let steps = format!(
            "<h3>{name}</h3><table class=\"mix-scenario\" data-scenario=\"{name}\"><tr><th>step</th><th>requests</th><th>ok</th><th>p50 (ms)</th><th>p95 (ms)</th><th>p99 (ms)</th></tr><tr><td>get</td><td>{flows}</td><td>{flows}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td></tr><tr><td>flow</td><td>{flows}</td><td>{flows}</td>",
            step["p50_ms"].as_f64().unwrap(),
            step["p95_ms"].as_f64().unwrap(),
            step["p99_ms"].as_f64().unwrap(),
        );
        assert!(html.contains(&steps), "{steps}\n{html}");
    }

    // Compared with that run as a baseline: the whole, step by step (`scenario:step`).
    let base = json_in(&out).display().to_string();
    let out2 = d.path().join("out2");
    let (code, stdout, err) = cli(&[
        "run",
        "--target",
        &target,
        "--scenario",
        &mix,
        "-n",
        "100",
        "--calibration",
        "0",
        "--baseline",
        &base,
        "--out-dir",
        &out2.display().to_string(),
    ]);
    // A regression by noise may fail the gate; the comparison is there either way.
    assert!(code == 0 || code == 1, "{stdout}\n{err}");
    let v2 = read(&json_in(&out2));
    let scopes: Vec<&str> = v2["comparison"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["scope"].as_str().unwrap())
        .collect();
    assert!(scopes.contains(&"c:get"), "{scopes:?}");
    // and scenario by scenario.
    assert!(scopes.contains(&"c:flow"), "{scopes:?}");
    let (code, _, err) = cli(&[
        "run",
        "--target",
        &target,
        "--scenario",
        &mix,
        "-n",
        "10",
        "--no-reports",
        "--save-users",
        "/dev/null",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a mix"), "{err}");

    // A scenario the mix does not have is named in the error, before any load.
    let (code, _, err) = cli(&[
        "run",
        "--target",
        &target,
        "--scenario",
        &mix,
        "-n",
        "10",
        "--no-reports",
        "--threshold",
        "d:flow.p99<1s",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no scenario of the mix is named `d`"), "{err}");
}

#[test]
fn compare_finds_and_names_a_regression_in_one_scenario_of_a_mix() {
    let d = mix_dir();
    let target = server();
    let mix = d.path().join("mix.toml").display().to_string();
    let out = d.path().join("out");
    let (code, stdout, err) = cli(&[
        "run",
        "--target",
        &target,
        "--scenario",
        &mix,
        "-n",
        "200",
        "-c",
        "4",
        "--calibration",
        "0",
        "--out-dir",
        &out.display().to_string(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    let base = json_in(&out);
    // The new report: `c`'s flows ten times slower, `b` gone; the whole and `a` unchanged.
    let mut v = read(&base);
    let parts = v["mix"].as_array_mut().unwrap();
    for p in parts.iter_mut() {
        if p["scenario"] == "c" {
            let f = &mut p["report"]["flow"];
            for k in ["p50_ms", "p95_ms", "p99_ms", "mean_ms"] {
                f[k] = serde_json::json!(f[k].as_f64().unwrap() * 10.0 + 100.0);
            }
        }
    }
    parts.retain(|p| p["scenario"] != "b");
    let new = d.path().join("new.json");
    std::fs::write(&new, serde_json::to_vec(&v).unwrap()).unwrap();
    let cmp = d.path().join("cmp.json");
    let (code, stdout, err) = cli(&[
        "compare",
        &base.display().to_string(),
        &new.display().to_string(),
        "--json",
        &cmp.display().to_string(),
    ]);
    assert_eq!(code, 1, "{stdout}\n{err}");
    let rows = read(&cmp)["rows"].as_array().unwrap().clone();
    let named = |verdict: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r["verdict"] == verdict)
            .map(|r| {
                format!(
                    "{}.{}",
                    r["scope"].as_str().unwrap(),
                    r["metric"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        named("regression"),
        [
            "c:flow.p50_ms",
            "c:flow.p95_ms",
            "c:flow.p99_ms",
            "c:flow.mean_ms"
        ],
        "{stdout}"
    );
    // The scenario the new report lacks is noted, not compared.
    let b: Vec<&serde_json::Value> = rows.iter().filter(|r| r["scope"] == "b:flow").collect();
    assert_eq!(b.len(), 6, "{rows:?}");
    assert!(
        b.iter()
            .all(|r| r["verdict"] == "no_data" && r["new"].is_null()),
        "{b:?}"
    );
    assert!(rows
        .iter()
        .any(|r| r["scope"] == "a:flow" && r["verdict"] == "unchanged"));
    assert!(stdout.contains("c:flow"), "{stdout}");

    // Reversed, `b` is the scenario only the new report has, and `c` got faster.
    let (code, stdout, err) = cli(&[
        "compare",
        &new.display().to_string(),
        &base.display().to_string(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(stdout.contains("b:flow"), "{stdout}");

    // One report a mix and the other not: the whole only, no crash.
    v.as_object_mut().unwrap().remove("mix");
    let whole = d.path().join("whole.json");
    std::fs::write(&whole, serde_json::to_vec(&v).unwrap()).unwrap();
    let (code, stdout, err) = cli(&[
        "compare",
        &base.display().to_string(),
        &whole.display().to_string(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(!stdout.contains(":flow"), "{stdout}");
}

#[test]
fn four_shards_merged_give_the_same_split() {
    let d = mix_dir();
    let target = server();
    let mix = d.path().join("mix.toml").display().to_string();
    // The four generators run at once, as shards do, from one planned start (merge checks
    // that they overlapped).
    let at = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let outs: Vec<PathBuf> = (0..4).map(|i| d.path().join(format!("shard{i}"))).collect();
    std::thread::scope(|sc| {
        for (i, out) in outs.iter().enumerate() {
            let (target, mix, at) = (&target, &mix, &at);
            sc.spawn(move || {
                let (code, stdout, err) = cli(&[
                    "run",
                    "--target",
                    target,
                    "--scenario",
                    mix,
                    "-n",
                    "1000",
                    "-c",
                    "20",
                    "--calibration",
                    "0",
                    "--shard",
                    &format!("{i}/4"),
                    "--start-at",
                    at,
                    "--out-dir",
                    &out.display().to_string(),
                ]);
                assert_eq!(code, 0, "{stdout}\n{err}");
            });
        }
    });
    let jsons: Vec<String> = outs
        .iter()
        .map(|o| json_in(o).display().to_string())
        .collect();
    let merged = d.path().join("all.json");
    let mut args = vec!["merge"];
    args.extend(jsons.iter().map(String::as_str));
    let merged_s = merged.display().to_string();
    args.extend(["-o", &merged_s]);
    let (code, stdout, err) = cli(&args);
    assert_eq!(code, 0, "{stdout}\n{err}");
    let v = read(&merged);
    assert_eq!(
        flows_per_scenario(&v),
        vec![
            ("a".to_string(), 800),
            ("b".to_string(), 150),
            ("c".to_string(), 50)
        ]
    );
    assert_eq!(v["summary"]["total_flows"], 1000);
}

#[test]
fn validate_locates_problems_of_a_mix_and_of_its_files() {
    let d = mix_dir();
    std::fs::write(
        d.path().join("bad.toml"),
        "name = \"bad\"\n[[steps]]\nname = \"get\"\npath = \"no-slash\"\n",
    )
    .unwrap();
    let broken = d.path().join("broken.toml");
    std::fs::write(
        &broken,
        "name = \"broken\"\n[[mix]]\nscenario = \"a.toml\"\nweight = 1\n[[mix]]\nscenario = \"gone.toml\"\nweight = 1\n[[mix]]\nscenario = \"bad.toml\"\nweight = 1\n",
    )
    .unwrap();
    let (code, out, err) = cli(&["validate", &d.path().join("mix.toml").display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("mix 'abc' of 3 scenarios (a 80, b 15, c 5)"),
        "{out}"
    );
    let b = broken.display().to_string();
    let (code, _, err) = cli(&["validate", &b]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("{b}:6:12: cannot read the scenario")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{b}:9:12: 'bad.toml' has 1 error")),
        "{err}"
    );
    assert!(err.contains("bad.toml:4:"), "{err}");
    // The shipped mix and its scenarios validate.
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/staging-day.toml");
    let (code, out, err) = cli(&["validate", shipped]);
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn check_takes_the_first_scenario_of_a_mix_with_the_roles_it_needs() {
    // staging-day: login-only has no registration; refresh (listed next) has every role.
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/staging-day.toml");
    let (code, out, err) = cli(&["check", "--explain-roles", "--scenario", shipped]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("reuse-spent"), "{out}");
    assert!(!out.contains("login-only"), "{out}");
}
