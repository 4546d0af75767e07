//! The Markdown report, in the format of the PyAirtable optimization report users know:
//! an executive summary, the "Final Performance Metrics" block, the flow checklist, then
//! what that document lacked: per-step latency, failures by kind, and the configuration.

use std::fmt::Write;

use super::Exporter;
use crate::report::Report;
use crate::samples::LatencySummary;

pub struct Markdown;

/// The report format's wording for the four steps of the default flow (docs/report-format.md).
fn step_label(name: &str) -> Option<&'static str> {
    match name {
        "register" => Some("User Registration with validation"),
        "login" => Some("User Login with token generation"),
        "verify" => Some("JWT Token Verification"),
        "profile" => Some("Protected Endpoint Access (Profile)"),
        _ => None,
    }
}

fn ms(v: f64) -> String {
    format!("{v:.1}")
}

fn latency_cells(l: &LatencySummary) -> String {
    if l.count == 0 {
        return "– | – | – | – | – | – |".to_string();
    }
    format!(
        "{} | {} | {} | {} | {} | {} |",
        ms(l.min_ms),
        ms(l.p50_ms),
        ms(l.p90_ms),
        ms(l.p99_ms),
        ms(l.max_ms),
        ms(l.mean_ms)
    )
}

/// Connections opened, connect time and time to first byte per step, when measured.
fn write_connect_ttfb(o: &mut String, r: &Report) -> std::fmt::Result {
    if r.steps.iter().all(|s| s.ttfb.count == 0) {
        return Ok(());
    }
    let tls = r.over_tls();
    writeln!(o, "### Connect and First Byte per Step (ms)\n")?;
    if tls {
        writeln!(
            o,
            "| step | connections opened | connect p50 | connect p99 | TLS handshake p50 | TLS handshake p99 | first byte p50 | first byte p99 |"
        )?;
        writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    } else {
        writeln!(
            o,
            "| step | connections opened | connect p50 | connect p99 | first byte p50 | first byte p99 |"
        )?;
        writeln!(o, "|---|---:|---:|---:|---:|---:|")?;
    }
    for s in &r.steps {
        writeln!(
            o,
            "| {} | {} |",
            s.name,
            s.connect_ttfb_cells(tls).join(" | ")
        )?;
    }
    writeln!(o)?;
    writeln!(
        o,
        "Connect is the TCP connect for the requests that opened a connection (a kept-alive one is reused without it){}. First byte is the time to the response's status line and headers, {} included.\n",
        if tls {
            "; the TLS handshake follows it, timed on its own (a full handshake: authbench never resumes a session)"
        } else {
            ""
        },
        if tls { "connect and handshake" } else { "connect" }
    )?;
    if let Some(line) = bytes_line(r) {
        writeln!(o, "{line}\n")?;
    }
    Ok(())
}

/// `Body bytes received: register 1.2 KiB (64 B per request), ...`, when any step has
/// a figure (reports written before the figure existed have none).
pub fn bytes_line(r: &Report) -> Option<String> {
    if r.steps.iter().all(|s| s.bytes_received == 0) {
        return None;
    }
    let parts: Vec<String> = r
        .steps
        .iter()
        .map(|s| {
            let per = s.bytes_received.checked_div(s.requests).unwrap_or(0);
            format!(
                "`{}` {} ({} per request)",
                s.name,
                crate::units::bytes_text(s.bytes_received),
                crate::units::bytes_text(per)
            )
        })
        .collect();
    Some(format!(
        "Response body bytes received: {}. Each body is kept up to `--max-body` (1 MiB unless set); the rest is read, counted here and dropped.",
        parts.join(", ")
    ))
}

/// The thresholds and baseline sections (also used for GITHUB_STEP_SUMMARY).
pub fn write_gate(o: &mut String, r: &Report) -> std::fmt::Result {
    if !r.thresholds.is_empty() {
        writeln!(o, "### Thresholds\n")?;
        writeln!(o, "| threshold | observed | result |")?;
        writeln!(o, "|---|---:|---|")?;
        for t in &r.thresholds {
            let mark = if t.passed { "✅ pass" } else { "❌ fail" };
            writeln!(o, "| `{}` | {} | {mark} |", t.expr, t.observed_text)?;
        }
        writeln!(o)?;
    }
    if let Some(c) = &r.comparison {
        writeln!(o, "### Baseline Comparison\n")?;
        writeln!(
            o,
            "Against {}; tolerance {:.0}% for latency and throughput (latency changes under {} ms ignored), {:.1} points for success rate. {} regression(s).\n",
            c.base,
            c.options.max_regression * 100.0,
            c.options.min_latency_delta_ms,
            c.options.max_success_drop * 100.0,
            c.regressions()
        )?;
        writeln!(
            o,
            "| scope | metric | base | new | delta | change | verdict |"
        )?;
        writeln!(o, "|---|---|---:|---:|---:|---:|---|")?;
        let num = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into());
        for row in &c.rows {
            writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} |",
                row.scope,
                row.metric,
                num(row.base),
                num(row.new),
                row.delta
                    .map(|v| format!("{v:+.3}"))
                    .unwrap_or_else(|| "–".into()),
                row.relative
                    .map(|v| format!("{:+.1}%", v * 100.0))
                    .unwrap_or_else(|| "–".into()),
                row.verdict.label()
            )?;
        }
        writeln!(o)?;
    }
    Ok(())
}

/// A mix run's scenarios, each with its own figures (nothing for one scenario).
pub fn write_mix(o: &mut String, r: &Report) -> std::fmt::Result {
    if r.mix.is_empty() {
        return Ok(());
    }
    writeln!(
        o,
        "### Scenarios of the Mix
"
    )?;
    writeln!(
        o,
        "| scenario | weight | flows | success | flow p50 (ms) | flow p99 (ms) | flows/s |"
    )?;
    writeln!(o, "|---|---|---|---|---|---|---|")?;
    for p in &r.mix {
        let s = &p.report.summary;
        writeln!(
            o,
            "| {} | {} | {} | {:.2}% | {} | {} | {:.2} |",
            p.scenario,
            p.weight,
            s.total_flows,
            s.success_rate * 100.0,
            ms(p.report.flow.p50_ms),
            ms(p.report.flow.p99_ms),
            s.flows_per_s
        )?;
    }
    writeln!(o)
}

/// The "Outages" section, when the run had any: one row per window, then the sentences.
pub fn write_outages(o: &mut String, r: &Report) -> std::fmt::Result {
    let a = &r.availability;
    if a.outages.is_empty() {
        return Ok(());
    }
    writeln!(
        o,
        "### Outages
"
    )?;
    writeln!(o, "| start (s) | end (s) | duration | cause | failed attempts | failed flows | cut off in flight | first success after | its flow time | latency back after |")?;
    writeln!(o, "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")?;
    let opt = |v: Option<f64>| v.map(crate::outage::ms_text).unwrap_or_else(|| "–".into());
    for w in &a.outages {
        writeln!(
            o,
            "| {:.3} | {:.3} | {} | {} | {} | {} | {} | {} | {} | {} |",
            w.start_s,
            w.end_s,
            crate::outage::ms_text(w.duration_ms),
            w.cause,
            w.attempts,
            w.failed_flows,
            w.in_flight,
            opt(w.recovery_ms),
            opt(w.first_flow_ms),
            opt(w.latency_recovery_ms)
        )?;
    }
    writeln!(o)?;
    for f in crate::outage::findings(a) {
        writeln!(o, "{f}")?;
    }
    writeln!(
        o,
        "Availability outside the windows: {:.2}%; {} connection probe(s); {} attempts in all.\n",
        a.success_rate_outside * 100.0,
        a.connection_probes,
        r.summary.attempts
    )?;
    Ok(())
}

/// The "Diagnosis" section: findings, then the figures they follow from.
pub fn write_diagnosis(o: &mut String, r: &Report) -> std::fmt::Result {
    let Some(d) = &r.diagnosis else {
        return Ok(());
    };
    writeln!(o, "## Diagnosis\n")?;
    for f in &d.findings {
        writeln!(o, "- {f}")?;
    }
    writeln!(o)?;
    if d.steps.is_empty() {
        writeln!(
            o,
            "No calibration (--calibration 0, or its flows failed): only the findings that need none.\n"
        )?;
        if let Some(u) = &r.usage {
            writeln!(o, "CPU during the run: {}.\n", crate::usage::describe(u))?;
        }
        return Ok(());
    }
    writeln!(
        o,
        "Service times come from {} calibration flow(s) run one at a time before the measured run (median, and the 25th–75th percentile spread). Effective parallelism = Σ over steps of (requests / wall time × service time), by Little's law; rate-limited requests are left out.\n",
        d.calibration_flows
    )?;
    writeln!(
        o,
        "| step | service time alone (ms) | spread alone (ms) | median under load (ms) | waiting | waited (ms) | effective parallelism |"
    )?;
    writeln!(o, "|---|---:|---:|---:|---:|---:|---:|")?;
    for s in &d.steps {
        writeln!(
            o,
            "| {} | {:.1} | {:.1}–{:.1} | {:.1} | {:.0}% | {:.1} | {:.2} |",
            s.name,
            s.service_time_ms,
            s.service_p25_ms,
            s.service_p75_ms,
            s.loaded_p50_ms,
            s.waiting_fraction * 100.0,
            s.waited_ms,
            s.effective_parallelism
        )?;
    }
    let mean = d
        .flow_mean_ms
        .map(|m| format!("{m:.1}"))
        .unwrap_or_else(|| "–".into());
    let waiting = d
        .waiting_fraction
        .map(|w| format!("{:.0}%", w * 100.0))
        .unwrap_or_else(|| "–".into());
    writeln!(
        o,
        "| **flow** | {:.1} | | {mean} (mean) | {waiting} | | {:.2} |\n",
        d.flow_service_time_ms, d.effective_parallelism
    )?;
    let cores = d
        .server_cores
        .map(|c| c.to_string())
        .unwrap_or_else(|| "unknown (external)".into());
    writeln!(
        o,
        "Effective parallelism: **{:.2}** ({:.2}–{:.2}) at concurrency {}; server cores: {cores}; timeouts: {}; verdict: {}.\n",
        d.effective_parallelism,
        d.effective_parallelism_low,
        d.effective_parallelism_high,
        d.concurrency,
        d.timeouts,
        d.verdict.map_or("–", |v| v.short())
    )?;
    if let Some(u) = &r.usage {
        writeln!(o, "CPU during the run: {}.\n", crate::usage::describe(u))?;
    }
    Ok(())
}

/// A short summary for CI pages (GITHUB_STEP_SUMMARY): verdict, metrics, gate.
pub fn summary(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "## authbench: {}\n", r.config.scenario);
    let _ = writeln!(o, "{}\n", r.verdict());
    let _ = writeln!(o, "```\n{}```\n", r.metrics_block());
    let _ = write_gate(&mut o, r);
    o
}

impl Exporter for Markdown {
    fn extension(&self) -> &'static str {
        "md"
    }

    fn render(&self, r: &Report) -> anyhow::Result<Vec<u8>> {
        let mut o = String::new();
        let c = &r.config;
        let partial = if r.partial { " (PARTIAL)" } else { "" };
        writeln!(
            o,
            "# Authentication Load Test Report: {}{partial}\n",
            c.scenario
        )?;
        if r.partial {
            writeln!(
                o,
                "> **PARTIAL REPORT**: the run was interrupted. The figures cover the {} flows that finished of {} planned; {} in-flight flows were cut off and are not counted.\n",
                r.summary.total_flows, c.flows_planned, r.summary.abandoned_flows
            )?;
        }
        if c.insecure {
            writeln!(
                o,
                "> **INSECURE**: run with `--insecure`; the server's TLS certificate was not verified.\n"
            )?;
        }
        writeln!(o, "## Executive Summary\n")?;
        writeln!(o, "{}\n", r.verdict())?;

        writeln!(o, "## Test Results\n")?;
        writeln!(o, "### Final Performance Metrics")?;
        writeln!(o, "```\n{}```\n", r.metrics_block())?;

        writeln!(o, "### Authentication Flow Test Coverage")?;
        for (i, s) in r.steps.iter().enumerate() {
            let mark = if s.requests > 0 && s.failed == 0 {
                "✅"
            } else {
                "❌"
            };
            let label = step_label(&s.name)
                .map(|l| format!("{l} (`{}`)", s.name))
                .unwrap_or_else(|| format!("`{}`", s.name));
            writeln!(
                o,
                "{}. {mark} {label}: {}/{} succeeded",
                i + 1,
                s.ok,
                s.requests
            )?;
        }
        writeln!(o)?;

        writeln!(o, "### Latency per Step (ms)\n")?;
        writeln!(
            o,
            "| step | requests | ok | failed | min | p50 | p90 | p99 | max | mean |"
        )?;
        writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        for s in &r.steps {
            writeln!(
                o,
                "| {} | {} | {} | {} | {}",
                s.name,
                s.requests,
                s.ok,
                s.failed,
                latency_cells(&s.latency)
            )?;
        }
        writeln!(
            o,
            "| **flow** (successful) | {} | {} | – | {}",
            r.flow.count,
            r.flow.count,
            latency_cells(&r.flow)
        )?;
        let open = c.load_model == "open";
        if open {
            writeln!(
                o,
                "| **flow** from intended start (corrected) | {} | {} | – | {}",
                r.flow_intended.count,
                r.flow_intended.count,
                latency_cells(&r.flow_intended)
            )?;
        }
        if r.flow_failed.count > 0 {
            writeln!(
                o,
                "| **flow** (failed) | {} | – | {} | {}",
                r.flow_failed.count,
                r.flow_failed.count,
                latency_cells(&r.flow_failed)
            )?;
        }
        writeln!(o)?;
        writeln!(
            o,
            "Step latency is measured from sending the request to the last byte of the response, for requests that got a response; timeouts and connection errors are counted under Failures. Flow time runs from the first request of a flow to the end of its last."
        )?;
        if open {
            writeln!(
                o,
                "Two clocks (open loop): *flow (successful)* is service time, from a flow's actual first request; *from intended start* counts from when the schedule said the flow should start, so time spent waiting to start (a stalled or saturated server) is included: this is the latency users arriving at this rate would see (corrected for coordinated omission). Late flows (started over 10 ms after their intended start): {}; dropped (due before the end, never started): {}.",
                r.summary.late_flows, r.summary.dropped_flows
            )?;
        } else {
            writeln!(
                o,
                "Closed loop: each worker starts its next flow only when its last one ends, so a slow server slows the load down and these latencies are service times; they understate what users arriving at a fixed rate would see (use `--rate` for an open loop)."
            )?;
        }
        writeln!(o, "{}", crate::outage::POLICY)?;
        if r.summary.warmup_flows > 0 {
            writeln!(
                o,
                "Warm-up: {} flows ran first and are not measured.",
                r.summary.warmup_flows
            )?;
        }
        writeln!(
            o,
            "Throughput: {:.2} flows/s, {:.2} requests/s over {:.3}s of wall time.\n",
            r.summary.flows_per_s, r.summary.requests_per_s, r.summary.wall_time_s
        )?;

        write_mix(&mut o, r)?;
        write_outages(&mut o, r)?;
        write_connect_ttfb(&mut o, r)?;
        write_gate(&mut o, r)?;
        write_diagnosis(&mut o, r)?;

        writeln!(o, "### Failures\n")?;
        if r.failures.is_empty() {
            writeln!(o, "No failures.\n")?;
        } else {
            writeln!(o, "| step | kind | detail | count |")?;
            writeln!(o, "|---|---|---|---:|")?;
            for f in &r.failures {
                writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    f.step, f.class, f.detail, f.count
                )?;
            }
            writeln!(o)?;
        }

        writeln!(o, "## Configuration\n")?;
        writeln!(o, "| setting | value |")?;
        writeln!(o, "|---|---|")?;
        let target = if c.in_process_server {
            format!("{} (in-process reference server)", c.target)
        } else {
            c.target.clone()
        };
        writeln!(o, "| target | {target} |")?;
        writeln!(o, "| scenario | {} ({}) |", c.scenario, c.scenario_source)?;
        writeln!(o, "| flows | {} |", c.flows_planned)?;
        writeln!(o, "| concurrency | {} |", c.concurrency)?;
        if c.load.is_empty() {
            writeln!(
                o,
                "| load model | {} loop, at most {} in flight |",
                c.load_model, c.concurrency
            )?;
        } else {
            writeln!(o, "| load model | {} |", c.load)?;
        }
        if !c.connections.is_empty() {
            writeln!(o, "| connections | {} |", c.connections)?;
        }
        if let Some(t) = &c.think {
            writeln!(
                o,
                "| think time | {t} (inside flow times, not in step latencies) |"
            )?;
        }
        if let Some(d) = &c.data {
            let end = match r.summary.feeder_exhausted_after {
                Some(n) => format!("; feeder exhausted after {n} rows (the run ended there)"),
                None => String::new(),
            };
            writeln!(o, "| data | {d}{end} |")?;
        }
        writeln!(
            o,
            "| request timeout | {} ms (connect {} ms) |",
            c.timeout_ms, c.connect_timeout_ms
        )?;
        let cost = c
            .bcrypt_cost
            .map(|c| c.to_string())
            .unwrap_or_else(|| "unknown (external service)".into());
        writeln!(o, "| bcrypt cost | {cost} |")?;
        if let Some(m) = &c.hash_mode {
            writeln!(o, "| hashing | {m} |")?;
        }
        if c.insecure {
            writeln!(
                o,
                "| TLS verification | **off** (`--insecure`): the server's certificate was not checked |"
            )?;
        }
        if !c.source_addrs.is_empty() {
            writeln!(o, "| source addresses | {} |", c.source_addrs.join(", "))?;
        }
        for (k, v) in c.distribution_rows() {
            writeln!(o, "| {k} | {v} |")?;
        }
        for n in &c.notes {
            writeln!(o, "| generator | {n} |")?;
        }
        if let Some(h) = &r.http {
            writeln!(o, "| protocol | {} |", h.describe())?;
        }
        if !r.hosts.is_empty() {
            let hosts = crate::engine::seen::describe_hosts(&r.hosts);
            writeln!(o, "| hosts | {hosts} |")?;
        }
        for t in &r.tokens {
            writeln!(o, "| JWT | {} |", t.line())?;
        }
        if let Some(line) = redirects_line(r) {
            writeln!(o, "| redirects followed | {line} |")?;
        }
        writeln!(o, "| cores | {} |", c.cores)?;
        writeln!(o)?;
        writeln!(o, "---\n")?;
        writeln!(o, "**Generated**: {}  ", r.generated_at)?;
        writeln!(o, "**Tool**: {}  ", r.tool)?;
        let status = if r.partial {
            "⚠️ PARTIAL: interrupted before all flows ran"
        } else {
            "✅ COMPLETED"
        };
        writeln!(o, "**Status**: {status}")?;
        Ok(o.into_bytes())
    }
}

/// `login 40 (2.0 per request), authorize 20 (1.0 per request)`: the redirects the
/// `follow = true` steps followed; `None` when none was.
pub fn redirects_line(r: &Report) -> Option<String> {
    let parts: Vec<String> = r
        .steps
        .iter()
        .filter(|s| s.redirects > 0)
        .map(|s| {
            let per = s.redirects as f64 / s.requests.max(1) as f64;
            format!("{} {} ({per:.1} per request)", s.name, s.redirects)
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}
