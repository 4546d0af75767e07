//! Running one load as N shards (`run --shard`, `--start-at`) and merging them back: the
//! shards' `{{seq}}` numbers and `unique` data rows never collide, `--shard auto` reads a
//! Kubernetes Indexed Job's environment, bad times are refused, and `merge` refuses inputs
//! that are not the parts of one load. Real sockets, real runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use authbench::render::Exporter;
use authbench::report::Report;
use authbench::shard::Shard;
use axum::extract::{Form, State};
use axum::routing::post;
use axum::Router;

use crate::session::opts;
use crate::support::{self, cli};

type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// Records the `email` and `n` fields of every POST /login.
fn recorder(seen: Seen) -> Router {
    Router::new()
        .route(
            "/login",
            post(
                |State(seen): State<Seen>, Form(f): Form<HashMap<String, String>>| async move {
                    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
                    seen.lock().unwrap().push((get("email"), get("n")));
                },
            ),
        )
        .with_state(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_never_share_a_seq_or_a_unique_row_and_add_up_to_the_total() {
    let seen: Seen = Arc::default();
    let addr = support::serve(recorder(seen.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("email\n");
    for i in 0..11 {
        csv.push_str(&format!("u{i}@x.y\n"));
    }
    std::fs::write(dir.path().join("users.csv"), csv).unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(
        &path,
        r#"
name = "sharded"
[data]
file = "users.csv"
order = "unique"
[[steps]]
name = "login"
method = "POST"
path = "/login"
form = { email = "{{email}}", n = "{{seq}}" }
"#,
    )
    .unwrap();
    let src = authbench::options::ScenarioSource::File(path);
    let n = 3;
    let mut planned = 0;
    let mut workers = 0;
    for index in 0..n {
        let mut o = opts(addr, src.clone(), 11, 5);
        o.shard = Some(Shard { index, count: n });
        let r = support::report(&o).await;
        assert_eq!(r.config.shard, Some(Shard { index, count: n }));
        assert_eq!(
            r.summary.successful_flows, r.config.flows_planned,
            "{:#?}",
            r.failures
        );
        planned += r.config.flows_planned;
        workers += r.config.concurrency;
    }
    // 11 flows over 3 shards: 4 + 4 + 3; 5 workers: 2 + 2 + 1.
    assert_eq!((planned, workers), (11, 5));
    let seen = seen.lock().unwrap();
    let mut emails: Vec<&str> = seen.iter().map(|(e, _)| e.as_str()).collect();
    let mut seqs: Vec<u64> = seen.iter().map(|(_, s)| s.parse().unwrap()).collect();
    emails.sort();
    seqs.sort();
    let mut all: Vec<String> = (0..11).map(|i| format!("u{i}@x.y")).collect();
    all.sort();
    assert_eq!(emails, all, "every row exactly once across the shards");
    assert_eq!(
        seqs,
        (0..11).collect::<Vec<u64>>(),
        "every seq exactly once"
    );
}

#[test]
fn bad_shards_and_start_times_are_usage_errors() {
    let port = support::dead_port().to_string();
    let target = format!("http://127.0.0.1:{port}");
    let cases: &[(&[&str], &str)] = &[
        (&["--start-at", "2020-01-01T00:00:00Z"], "in the past"),
        (&["--start-at", "tomorrow"], "RFC 3339"),
        (&["--start-at", "+3h"], "ahead"),
        (&["--start-at", "2100-01-01T00:00:00Z"], "ahead"),
        (&["--shard", "4/4"], "0-based"),
        (
            &["--shard", "1/4", "--flows", "2", "--concurrency", "8"],
            "2 flows cannot be split over 4 shards",
        ),
        (
            &["--shard", "0/4", "--flows", "8", "--concurrency", "3"],
            "3 workers cannot be split over 4 shards",
        ),
    ];
    for (extra, expect) in cases {
        let mut args = vec![
            "run",
            "--target",
            &target,
            "--api-key",
            "k",
            "--no-progress",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = cli(&args);
        assert_eq!(code, 2, "{extra:?}: {out}{err}");
        assert!(err.contains(expect), "{extra:?}: {err}");
    }
    // A shard of the in-process server would be a load on a server of its own.
    let (code, _, err) = cli(&["run", "--shard", "0/2"]);
    assert_eq!(code, 2);
    assert!(err.contains("--target"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_auto_reads_the_indexed_job_environment() {
    let addr = support::delayed_health(0).await;
    let dir = tempfile::tempdir().unwrap();
    let health = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/health.toml");
    let out_dir = dir.path().to_path_buf();
    let run = move |env: &[(&str, &str)]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_authbench"));
        c.args([
            "run",
            "--target",
            &format!("http://{addr}"),
            "--flows",
            "7",
            "--calibration",
            "0",
        ])
        .arg("--scenario")
        .arg(&health)
        .args(["--shard", "auto", "--no-progress", "--out-dir"])
        .arg(&out_dir)
        .env_remove(authbench::shard::INDEX_VAR)
        .env_remove(authbench::shard::COUNT_VAR);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let out = tokio::task::spawn_blocking(move || {
        let ok = run(&[("JOB_COMPLETION_INDEX", "1"), ("AUTHBENCH_SHARDS", "3")]);
        let missing = run(&[("AUTHBENCH_SHARDS", "3")]);
        (ok, missing)
    })
    .await
    .unwrap();
    let (ok, missing) = out;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(stdout.contains("shard: 1/3"), "{stdout}");
    assert!(stdout.contains("Total Tests Executed: 2"), "{stdout}");
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("JOB_COMPLETION_INDEX"));
}

/// Runs shard `index` of `count` (6 health flows in all) and returns its report.
async fn shard_report(addr: std::net::SocketAddr, index: u64, count: u64) -> Report {
    let mut o = support::health_opts(addr, 6, 3);
    o.shard = Some(Shard { index, count });
    support::report(&o).await
}

#[test]
fn merge_takes_every_shard_once_and_refuses_anything_else() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Three shards run together, as generators would.
    let (a, b, c) = rt.block_on(async {
        let addr = support::delayed_health(20).await;
        tokio::join!(
            shard_report(addr, 0, 3),
            shard_report(addr, 1, 3),
            shard_report(addr, 2, 3)
        )
    });
    let dir = tempfile::tempdir().unwrap();
    use authbench::render::json::Json;
    let write = |name: &str, r: &Report| {
        let p = dir.path().join(name);
        std::fs::write(&p, authbench::render::json::Json.render(r).unwrap()).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (pa, pb, pc) = (
        write("a.json", &a),
        write("b.json", &b),
        write("c.json", &c),
    );
    let all = dir.path().join("all.json");
    let all = all.to_str().unwrap();
    let merge = |inputs: &[&str], extra: &[&str]| {
        let mut args = vec!["merge"];
        args.extend_from_slice(inputs);
        args.extend_from_slice(&["-o", all]);
        args.extend_from_slice(extra);
        cli(&args)
    };
    let (code, out, err) = merge(&[&pa, &pb, &pc], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("start skew: the 3 inputs began within"),
        "{out}"
    );
    let merged = authbench::report::read(std::path::Path::new(all)).unwrap();
    assert_eq!(merged.summary.total_flows, 6);
    assert_eq!(merged.config.flows_planned, 6);
    assert_eq!(merged.config.generators, 3);
    assert!(merged.config.start.as_ref().unwrap().skew_ms.is_some());

    // A directory stands for the run reports in it (a container has no shell to glob).
    let shards = dir.path().join("shards");
    for (i, r) in [&a, &b, &c].iter().enumerate() {
        let d = shards.join(format!("shard-{i}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("20261130T120000Z-run.json"), Json.render(r).unwrap()).unwrap();
    }
    let (code, out, err) = merge(&[shards.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("the 3 inputs"), "{out}");
    let (code, _, err) = merge(&[dir.path().join("none").to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");

    let (code, _, err) = merge(&[&pa, &pc], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("shard 1 of 3 is missing"), "{err}");
    let (code, _, err) = merge(&[&pa, &pb, &pb, &pc], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("shard 1/3 is given 2 times"), "{err}");

    let mut other = c.clone();
    other.config.scenario = "another".into();
    let po = write("other.json", &other);
    let (code, _, err) = merge(&[&pa, &pb, &po], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("ran scenario 'another'"), "{err}");
    // Forced, it merges and says what it accepted, in the report too.
    let (code, _, err) = merge(&[&pa, &pb, &po], &["--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("merged with --force"), "{err}");
    let merged = authbench::report::read(std::path::Path::new(all)).unwrap();
    assert!(merged.config.notes.iter().any(|n| n.contains("'another'")));

    let mut total = c.clone();
    total.config.shard = Some(Shard { index: 2, count: 4 });
    let pt = write("total.json", &total);
    let (code, _, err) = merge(&[&pa, &pb, &pt], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("shard totals differ"), "{err}");

    // A run an hour earlier did not overlap the others.
    let mut early = c.clone();
    let start = early.config.start.as_mut().unwrap();
    let t = start.actual_time().unwrap() - chrono::Duration::hours(1);
    start.actual = authbench::shard::stamp(t);
    let pe = write("early.json", &early);
    let (code, _, err) = merge(&[&pa, &pb, &pe], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("did not overlap in time"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_at_waits_and_reports_a_late_or_interrupted_start() {
    // On time: no calibration, a start 300 ms ahead; the load begins within the warning's
    // second of it, and never before it.
    let addr = support::delayed_health(0).await;
    let mut o = support::health_opts(addr, 4, 2);
    let planned = chrono::Utc::now() + chrono::Duration::milliseconds(300);
    o.start_at = Some(planned);
    let r = support::report(&o).await;
    let start = r.config.start.clone().unwrap();
    assert_eq!(start.planned, Some(authbench::shard::stamp(planned)));
    let skew = start.skew_ms.unwrap();
    assert!((-1.0..1_000.0).contains(&skew), "{start:?}");
    assert!(r.config.notes.is_empty(), "{:?}", r.config.notes);

    // Late: three 600 ms calibration flows run past a start 100 ms ahead.
    let slow = support::delayed_health(600).await;
    let mut o = support::health_opts(slow, 2, 2);
    o.calibration_flows = 3;
    o.start_at = Some(chrono::Utc::now() + chrono::Duration::milliseconds(100));
    let r = support::report(&o).await;
    let skew = r.config.start.as_ref().unwrap().skew_ms.unwrap();
    assert!(skew >= 1_700.0, "{skew}");
    assert!(
        r.config
            .notes
            .iter()
            .any(|n| n.contains("after the planned start")),
        "{:?}",
        r.config.notes
    );

    // Interrupted while waiting: a partial report that says the load never began.
    let mut o = support::health_opts(addr, 4, 2);
    o.start_at = Some(chrono::Utc::now() + chrono::Duration::seconds(30));
    let r = authbench::run(&o, support::sleep_ms(200))
        .await
        .unwrap()
        .report;
    assert!(r.partial);
    assert_eq!(r.summary.total_flows, 0);
    assert!(
        r.config.notes.iter().any(|n| n.contains("never began")),
        "{:?}",
        r.config.notes
    );
}
