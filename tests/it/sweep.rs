//! `authbench sweep` and `authbench tune`: the cost parser, the files a sweep writes, the
//! tune search (with a fake measurement, and for real at low costs), and `--spawn`
//! leaving no process behind. Costs stay at 4..=6 (10 for one tune probe) to stay quick.

use std::path::{Path, PathBuf};

use authbench::gate::Threshold;
use authbench::sweep::tune::{advice, find_highest, search_range, Probe};
use authbench::sweep::{parse_costs, Sweep, SweepOptions};

use crate::support::{cli, dead_port};

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn read_json(dir: &Path) -> serde_json::Value {
    let json = files_with(dir, "json");
    assert_eq!(json.len(), 1, "{json:?}");
    serde_json::from_slice(&std::fs::read(&json[0]).unwrap()).unwrap()
}

/// Members of process group `pgid` that are not zombies, read from /proc independently
/// of the code under test. A pid 1 that never reaps leaves killed orphans as zombies, and
/// `kill(-pgid, 0)` still finds those, so the ESRCH check alone would blame us for it.
fn live_members(pgid: i32) -> Vec<String> {
    // SAFETY: signal 0 checks existence only.
    if unsafe { libc::kill(-pgid, 0) } == -1 {
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ESRCH)
        );
        return Vec::new();
    }
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let rest = &stat[stat.rfind(')').unwrap() + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            f[2].parse::<i32>() == Ok(pgid) && f[0] != "Z"
        })
        .collect()
}

/// Processes (not zombies) whose command line contains `needle`.
fn live_with_cmdline(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?;
            (cmd.contains(needle) && state != "Z").then_some(cmd)
        })
        .collect()
}

#[test]
fn cost_lists_and_ranges() {
    assert_eq!(parse_costs("4..=14").unwrap(), (4..=14).collect::<Vec<_>>());
    assert_eq!(parse_costs("4..14").unwrap(), (4..14).collect::<Vec<_>>());
    assert_eq!(parse_costs("4,6,8").unwrap(), vec![4, 6, 8]);
    assert_eq!(parse_costs("12").unwrap(), vec![12]);
    for bad in ["3..=5", "4..=32", "0", "x", "8..4", ""] {
        assert!(parse_costs(bad).is_err(), "{bad}");
    }
    let (code, _, err) = cli(&["sweep", "--costs", "2..=5"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("outside bcrypt's range"), "{err}");
    let (code, _, err) = cli(&[
        "sweep",
        "--costs",
        "4",
        "--spawn",
        "true",
        "--target",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no {cost}"), "{err}");
}

#[test]
fn sweep_writes_every_format_with_one_row_per_cost() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (code, stdout, err) = cli(&["sweep", "--costs", "4,6", "--flows", "4", "--out-dir", out]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("capacity"), "{stdout}");
    for ext in ["md", "json", "svg", "png"] {
        assert_eq!(files_with(dir.path(), ext).len(), 1, "{ext}");
    }
    let png = std::fs::read(&files_with(dir.path(), "png")[0]).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let svg = std::fs::read_to_string(&files_with(dir.path(), "svg")[0]).unwrap();
    assert!(svg.contains("OWASP minimum (10)"));

    let json = read_json(dir.path());
    assert_eq!(json["schema"], "authbench.sweep/2");
    let sweep: Sweep = serde_json::from_value(json).unwrap();
    assert!(!sweep.partial);
    assert_eq!(
        sweep.rows.iter().map(|r| r.cost).collect::<Vec<_>>(),
        [4, 6]
    );
    for r in &sweep.rows {
        assert_eq!(r.success_rate, 1.0, "{r:?}");
        assert!(r.capacity_flows_per_s.is_some_and(|c| c > 0.0));
    }
    // Cost 6 is 4x the work of cost 4: far beyond any timing noise.
    let (h4, h6) = (
        sweep.rows[0].hash_ms.unwrap(),
        sweep.rows[1].hash_ms.unwrap(),
    );
    assert!(h6 > h4, "{h4} ms at 4, {h6} ms at 6");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_sweep_is_partial() {
    let opts = SweepOptions {
        costs: vec![4, 5],
        flows: 2,
        concurrency: 2,
        ..SweepOptions::default()
    };
    // Already stopped: whether the first run starts or not, the sweep says it is partial.
    let sweep = authbench::sweep::sweep(&opts, std::future::ready(()), &mut |_| {})
        .await
        .unwrap();
    assert!(sweep.partial);
    assert!(sweep.rows.len() <= 1);
}

/// A probe whose p95 doubles with each cost: 0.8 ms per hash at cost 4, 40 hashes on
/// 2 threads.
fn fake_probe(cost: u32, slo_ms: f64) -> Probe {
    let hash_ms = 0.8 * 2f64.powi(cost as i32 - 4);
    let p95 = 20.0 * hash_ms;
    Probe {
        cost,
        hash_ms: Some(hash_ms),
        passed: p95 < slo_ms,
        flow_p50_ms: Some(p95 / 2.0),
        flow_p95_ms: Some(p95),
        success_rate: 1.0,
        flows_per_s: 2.0,
        ..Probe::default()
    }
}

#[test]
fn tune_search_all_pass_gives_the_max_cost() {
    let (lo, hi) = search_range(4, 14, false).unwrap();
    let (best, probes) = find_highest(lo, hi, |c| fake_probe(c, f64::INFINITY));
    assert_eq!(best, Some(14));
    assert!(probes.iter().all(|p| p.cost >= 10));
}

#[test]
fn tune_search_none_pass_gives_none_and_advice() {
    let (lo, hi) = search_range(4, 14, false).unwrap();
    let (best, probes) = find_highest(lo, hi, |c| fake_probe(c, 0.0));
    assert_eq!(best, None);
    let at_floor = probes.iter().find(|p| p.cost == 10).unwrap();
    let slo = Threshold::parse("flow.p95<1s").unwrap();
    let a = advice(at_floor, &[slo], 2, 2.0, 20).join("\n");
    assert!(
        a.contains("max flows/s ≈ hashing threads / (hashes per flow × time per hash)"),
        "{a}"
    );
    assert!(a.contains("2 threads / (2 × 0.051 s)"), "{a}");
    assert!(a.contains("hash off the event loop"), "{a}");
    assert!(a.contains("more cores or instances"), "{a}");
}

#[test]
fn tune_advice_without_a_hash_time_still_lists_alternatives_with_figures() {
    // A spawned service whose hash time could not be fitted: what it measured at the floor.
    let slo = Threshold::parse("flow.p95<200ms").unwrap();
    let p = Probe {
        cost: 10,
        hash_ms: None,
        passed: false,
        flow_p95_ms: Some(900.0),
        effective_parallelism: Some(1.0),
        verdict: Some(authbench::diagnosis::Verdict::Serializes),
        slos: vec![authbench::report::gate::ThresholdResult {
            expr: "flow.p95<200ms".into(),
            observed: Some(900.0),
            observed_text: "900 ms".into(),
            passed: false,
        }],
        ..Probe::default()
    };
    let a = advice(&p, &[slo], 2, 2.0, 20);
    let all = a.join("\n");
    assert!(a.len() >= 2, "{all}");
    assert!(
        all.contains("the SLO cost 10 does meet here is `flow.p95 ≤ 900 ms`"),
        "{all}"
    );
    assert!(
        all.contains("about ×4.5 the capacity: 5 instances like this one"),
        "{all}"
    );
    assert!(all.contains("≈ 10 cores where it now has 2"), "{all}");
    assert!(
        all.contains("1.0 requests at once (serializes its work)"),
        "{all}"
    );
}

#[test]
fn tune_search_never_goes_below_10_without_allow_weak() {
    // The SLO is met only at 8 and below: without --allow-weak there is no answer...
    let mut measured = Vec::new();
    let (lo, hi) = search_range(4, 14, false).unwrap();
    let (best, _) = find_highest(lo, hi, |c| {
        measured.push(c);
        fake_probe(c, 0.8 * 2f64.powi(4) * 20.0 + 1.0)
    });
    assert_eq!(best, None);
    assert!(measured.iter().all(|c| *c >= 10), "{measured:?}");
    // ...and with it, 8.
    let (lo, hi) = search_range(4, 14, true).unwrap();
    let (best, _) = find_highest(lo, hi, |c| fake_probe(c, 0.8 * 2f64.powi(4) * 20.0 + 1.0));
    assert_eq!(best, Some(8));
    // A range entirely below 10 is refused without --allow-weak.
    assert!(search_range(4, 9, false).is_err());
    let (code, _, err) = cli(&["tune", "--slo", "flow.p95<1s", "--max-cost", "8"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--allow-weak"), "{err}");
}

#[test]
fn tune_with_an_impossible_slo_recommends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (code, stdout, err) = cli(&[
        "tune",
        "--slo",
        "flow.p95<1us",
        "--max-cost",
        "10",
        "--flows",
        "2",
        "--concurrency",
        "2",
        "--out-dir",
        out,
    ]);
    assert_eq!(code, 1, "{stdout}\n{err}");
    assert!(stdout.contains("No recommendation"), "{stdout}");
    assert!(stdout.contains("max flows/s ≈"), "{stdout}");
    let json = read_json(dir.path());
    assert_eq!(json["schema"], "authbench.tune/2");
    assert!(json["recommended"].is_null());
    let probes = json["probes"].as_array().unwrap();
    assert!(!probes.is_empty());
    assert!(probes.iter().all(|p| p["cost"].as_u64().unwrap() >= 10));
    assert!(!json["advice"].as_array().unwrap().is_empty());
    assert_eq!(files_with(dir.path(), "md").len(), 1);
}

#[test]
fn tune_allow_weak_with_a_loose_slo_recommends_the_top_cost() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (code, stdout, err) = cli(&[
        "tune",
        "--slo",
        "flow.p95<60s",
        "--slo",
        "success_rate>=100%",
        "--allow-weak",
        "--min-cost",
        "4",
        "--max-cost",
        "5",
        "--flows",
        "4",
        "--concurrency",
        "4",
        "--out-dir",
        out,
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(stdout.contains("Recommended bcrypt cost: 5"), "{stdout}");
    assert!(stdout.contains("below the OWASP minimum"), "{stdout}");
    assert_eq!(read_json(dir.path())["recommended"], 5);
}

#[test]
fn spawn_that_never_gets_ready_is_stopped_with_its_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // `$$` is the shell, the group leader; the background sleep is in its group.
    let cmd = format!(
        ": {{cost}}; echo $$ > '{}'; sleep 300 & sleep 300",
        pid_file.display()
    );
    let target = format!("http://127.0.0.1:{}", dead_port());
    let out = dir.path().join("reports");
    let (code, _, err) = cli(&[
        "sweep",
        "--costs",
        "4",
        "--flows",
        "1",
        "--spawn",
        &cmd,
        "--target",
        &target,
        "--ready-timeout",
        "1s",
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("did not answer 2xx"), "{err}");
    let pgid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(live_members(pgid), Vec::<String>::new());
}

#[test]
fn spawn_that_exits_reports_its_status() {
    let target = format!("http://127.0.0.1:{}", dead_port());
    let (code, _, err) = cli(&[
        "sweep",
        "--costs",
        "4",
        "--flows",
        "1",
        "--spawn",
        ": {cost}; exit 3",
        "--target",
        &target,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("exited") && err.contains('3'), "{err}");
}

#[test]
fn spawn_sweeps_a_real_server_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let port = dead_port();
    let addr = format!("127.0.0.1:{port}");
    let cmd = format!(
        "'{}' serve --addr {addr} --cost {{cost}} --api-key k",
        env!("CARGO_BIN_EXE_authbench")
    );
    let target = format!("http://{addr}");
    let (code, stdout, err) = cli(&[
        "sweep",
        "--costs",
        "4..=5",
        "--flows",
        "4",
        "--spawn",
        &cmd,
        "--target",
        &target,
        "--api-key",
        "k",
        "--ready-timeout",
        "30s",
        "--out-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    // Two costs cannot separate a hash from a floor: no number, and the reason.
    assert!(stdout.contains("not measurable"), "{stdout}");
    assert!(stdout.contains("needs at least 3"), "{stdout}");
    let sweep: Sweep = serde_json::from_value(read_json(dir.path())).unwrap();
    assert_eq!(
        sweep.rows.iter().map(|r| r.cost).collect::<Vec<_>>(),
        [4, 5]
    );
    for r in &sweep.rows {
        assert_eq!(r.success_rate, 1.0, "{r:?}");
        assert_eq!(r.hash_ms, None);
        // The capacity now comes from the measured parallelism, not a hash time.
        assert!(r.effective_parallelism.is_some(), "{r:?}");
        assert!(r.verdict.is_some(), "{r:?}");
    }
    assert_eq!(
        live_with_cmdline(&format!("--addr {addr}")),
        Vec::<String>::new()
    );
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "{addr} still accepts"
    );
}

/// Every pgid in `pid_file` (one line per service started).
fn pgids(pid_file: &Path) -> Vec<i32> {
    std::fs::read_to_string(pid_file)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

#[test]
fn tune_spawn_recommends_a_confirmed_cost_and_leaves_no_group_behind() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let port = dead_port();
    let addr = format!("127.0.0.1:{port}");
    let cmd = format!(
        "echo $$ >> '{}'; exec '{}' serve --addr {addr} --cost {{cost}} --api-key k",
        pid_file.display(),
        env!("CARGO_BIN_EXE_authbench")
    );
    let out = dir.path().join("reports");
    let (code, stdout, err) = cli(&[
        "tune",
        "--spawn",
        &cmd,
        "--target",
        &format!("http://{addr}"),
        "--api-key",
        "k",
        "--slo",
        "flow.p95<60s",
        "--allow-weak",
        "--min-cost",
        "4",
        "--max-cost",
        "6",
        "--flows",
        "4",
        "--concurrency",
        "4",
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(stdout.contains("Recommended bcrypt cost: 6"), "{stdout}");
    assert!(
        stdout.contains("Confirmed: a second run at cost 6"),
        "{stdout}"
    );
    let json = read_json(&out);
    assert_eq!(json["mode"], "spawn");
    assert_eq!(json["recommended"], 6);
    assert_eq!(json["confirmation"]["passed"], true);
    // One service per probe and one for the confirmation, each stopped with its group.
    let groups = pgids(&pid_file);
    assert_eq!(groups.len(), json["probes"].as_array().unwrap().len() + 1);
    for g in groups {
        assert_eq!(live_members(g), Vec::<String>::new(), "group {g}");
    }
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "{addr} still accepts"
    );
}

#[test]
fn tune_spawn_that_fails_leaves_no_group_behind() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let cmd = format!(
        ": {{cost}}; echo $$ >> '{}'; sleep 300 & sleep 300",
        pid_file.display()
    );
    let target = format!("http://127.0.0.1:{}", dead_port());
    let (code, _, err) = cli(&[
        "tune",
        "--spawn",
        &cmd,
        "--target",
        &target,
        "--slo",
        "flow.p95<1s",
        "--ready-timeout",
        "1s",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("did not answer 2xx"), "{err}");
    let groups = pgids(&pid_file);
    assert_eq!(groups.len(), 1);
    assert_eq!(live_members(groups[0]), Vec::<String>::new());
    // --spawn without --target, and without {cost}, are flag errors.
    let (code, _, err) = cli(&["tune", "--slo", "flow.p95<1s", "--spawn", "x {cost}"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--spawn needs --target"), "{err}");
    let (code, _, err) = cli(&[
        "tune",
        "--slo",
        "flow.p95<1s",
        "--spawn",
        "x",
        "--target",
        &target,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no {cost}"), "{err}");
}

/// `sweep --param ALG.PARAM=a,b` in-process, 2 flows per value: the sweep it wrote.
fn param_sweep(param: &str, dir: &Path) -> Sweep {
    let (code, stdout, err) = cli(&[
        "sweep",
        "--param",
        param,
        "--flows",
        "2",
        "--out-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(stdout.contains("(weak)"), "{stdout}");
    serde_json::from_value(read_json(dir)).unwrap()
}

#[test]
fn sweep_param_runs_the_reference_server_with_each_algorithm() {
    for (param, label) in [
        ("pbkdf2.iterations=1000,2000", "pbkdf2.iterations"),
        ("argon2.m=256,512", "argon2.m"),
        ("scrypt.n=256,512", "scrypt.n"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let s = param_sweep(param, dir.path());
        assert_eq!(s.config.param.as_deref(), Some(label));
        assert_eq!(s.rows.len(), 2, "{param}");
        for r in &s.rows {
            assert_eq!(r.success_rate, 1.0, "{param}: {r:?}");
            assert!(r.below_owasp, "{param}: {r:?}");
            assert!(r.hash_ms.is_some_and(|h| h > 0.0), "{param}: {r:?}");
        }
        let md = std::fs::read_to_string(&files_with(dir.path(), "md")[0]).unwrap();
        assert!(md.starts_with(&format!("# {label} sweep")), "{md}");
        assert!(md.contains("PBKDF2-HMAC-SHA256 600,000 iterations"), "{md}");
    }
    let (code, _, err) = cli(&["sweep", "--param", "argon2.m=1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("memory cost is too small"), "{err}");
    let (code, _, err) = cli(&[
        "sweep",
        "--param",
        "pbkdf2.iterations=1000",
        "--spawn",
        "x {cost}",
        "--target",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(code, 2, "{err}");
}
