//! The terminal summary: the metrics block and a comfy-table of steps. Colour (verdict
//! cells only) is on when the caller says so; the caller decides, once per process.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Color, Table};

use super::Exporter;
use crate::report::Report;
use crate::samples::LatencySummary;

/// The terminal exporter; `color` adds ANSI colour to verdict cells.
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminal {
    pub color: bool,
}

/// Makes a table write colour exactly when `color` says, whatever stdout is.
pub fn set_color(t: &mut Table, color: bool) {
    if color {
        t.enforce_styling();
    } else {
        t.force_no_tty();
    }
}

/// A verdict cell: green when good, red when bad, plain when neither (or colour is off,
/// which [`set_color`] enforces).
pub fn verdict_cell(text: &str, good: Option<bool>) -> Cell {
    let cell = Cell::new(text);
    match good {
        Some(true) => cell.fg(Color::Green),
        Some(false) => cell.fg(Color::Red),
        None => cell,
    }
}

fn row(name: &str, requests: u64, ok: &str, l: &LatencySummary) -> Vec<Cell> {
    let mut cells = vec![Cell::new(name), Cell::new(requests), Cell::new(ok)];
    for v in [l.min_ms, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.mean_ms] {
        let text = if l.count == 0 {
            "–".to_string()
        } else {
            format!("{v:.1}")
        };
        cells.push(Cell::new(text).set_alignment(CellAlignment::Right));
    }
    cells
}

/// The baseline comparison as a terminal table (also printed by `authbench compare`).
pub fn comparison_table(c: &crate::gate::Comparison, color: bool) -> String {
    use crate::gate::Verdict;
    let mut t = Table::new();
    set_color(&mut t, color);
    t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "scope", "metric", "base", "new", "delta", "change", "verdict",
    ]);
    let num = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into());
    for row in &c.rows {
        t.add_row(vec![
            Cell::new(&row.scope),
            Cell::new(&row.metric),
            Cell::new(num(row.base)).set_alignment(CellAlignment::Right),
            Cell::new(num(row.new)).set_alignment(CellAlignment::Right),
            Cell::new(
                row.delta
                    .map(|v| format!("{v:+.3}"))
                    .unwrap_or_else(|| "–".into()),
            )
            .set_alignment(CellAlignment::Right),
            Cell::new(
                row.relative
                    .map(|v| format!("{:+.1}%", v * 100.0))
                    .unwrap_or_else(|| "–".into()),
            )
            .set_alignment(CellAlignment::Right),
            verdict_cell(
                row.verdict.label(),
                match row.verdict {
                    Verdict::Regression => Some(false),
                    Verdict::Improvement => Some(true),
                    _ => None,
                },
            ),
        ]);
    }
    format!(
        "baseline: {} ({} regression(s))\n{t}\n",
        c.base,
        c.regressions()
    )
}

impl Exporter for Terminal {
    fn extension(&self) -> &'static str {
        "txt"
    }

    fn render(&self, r: &Report) -> anyhow::Result<Vec<u8>> {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "step", "requests", "ok", "min ms", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms",
        ]);
        for s in &r.steps {
            t.add_row(row(
                &s.name,
                s.requests,
                &format!("{}/{}", s.ok, s.requests),
                &s.latency,
            ));
        }
        t.add_row(row("flow (ok)", r.flow.count, "", &r.flow));
        if r.config.load_model == "open" {
            t.add_row(row(
                "flow from intended start",
                r.flow_intended.count,
                "",
                &r.flow_intended,
            ));
        }
        let mut out = String::new();
        if r.partial {
            out.push_str("PARTIAL: the run was interrupted; figures cover finished flows only.\n");
        }
        if r.config.insecure {
            out.push_str(
                "INSECURE: run with --insecure; the server's TLS certificate was not verified.\n",
            );
        }
        out.push_str(&r.metrics_block());
        out.push('\n');
        out.push_str(&t.to_string());
        out.push('\n');
        for s in r.steps.iter().filter(|s| s.tls.count > 0) {
            out.push_str(&format!(
                "TLS handshakes ({}): {} (one per connection opened), p50 {:.2} ms, p99 {:.2} ms\n",
                s.name, s.tls.count, s.tls.p50_ms, s.tls.p99_ms
            ));
        }
        if r.config.load_model == "open" {
            out.push_str(&format!(
                "open loop: 'flow (ok)' is service time; 'from intended start' is corrected for coordinated omission. late flows: {}, dropped: {}\n",
                r.summary.late_flows, r.summary.dropped_flows
            ));
        } else {
            out.push_str(
                "closed loop: latencies are service times (a slow server slows the load); a refused port is backed off (10 ms doubling to 1 s), never hammered.\n",
            );
        }
        let a = &r.availability;
        if !a.outages.is_empty() {
            out.push_str(&format!(
                "outages: {} (total {}, longest {}); availability outside them {:.2}%; {} attempts ({} connection probes)\n",
                a.outages.len(),
                crate::outage::ms_text(a.total_outage_ms),
                crate::outage::ms_text(a.max_outage_ms),
                a.success_rate_outside * 100.0,
                r.summary.attempts,
                a.connection_probes
            ));
            for f in crate::outage::findings(a) {
                out.push_str("  ");
                out.push_str(&f);
                out.push('\n');
            }
        }
        if let Some(t) = &r.config.think {
            out.push_str(&format!(
                "think time: {t} (inside flow times, not in step latencies)\n"
            ));
        }
        if r.config.connections == "per-flow" {
            out.push_str("per-flow connections: each flow's last request says 'Connection: close', so the server closes first and keeps the TIME_WAIT.\n");
        }
        if !r.config.source_addrs.is_empty() {
            out.push_str(&format!(
                "source addresses: {}\n",
                r.config.source_addrs.join(", ")
            ));
        }
        for (k, v) in r.config.distribution_rows() {
            out.push_str(&format!("{k}: {v}\n"));
        }
        for n in &r.config.notes {
            out.push_str(&format!("generator: {n}\n"));
        }
        if let Some(h) = &r.http {
            out.push_str(&format!("protocol: {}\n", h.describe()));
        }
        if !r.hosts.is_empty() {
            let hosts = crate::engine::seen::describe_hosts(&r.hosts);
            out.push_str(&format!("hosts: {hosts}\n"));
        }
        for t in &r.tokens {
            out.push_str(&format!("jwt {}\n", t.line()));
        }
        if let Some(line) = crate::render::markdown::redirects_line(r) {
            out.push_str(&format!("redirects followed: {line}\n"));
        }
        if let Some(n) = r.summary.feeder_exhausted_after {
            out.push_str(&format!(
                "feeder exhausted after {n} rows: no flow started after the last unique row; the flows in flight finished.\n"
            ));
        }
        if !r.failures.is_empty() {
            let mut f = Table::new();
            f.load_preset(UTF8_FULL_CONDENSED)
                .set_header(vec!["step", "kind", "detail", "count"]);
            for x in &r.failures {
                f.add_row(vec![
                    Cell::new(&x.step),
                    Cell::new(&x.class),
                    Cell::new(&x.detail),
                    Cell::new(x.count),
                ]);
            }
            out.push_str(&f.to_string());
            out.push('\n');
        }
        if !r.thresholds.is_empty() {
            let mut t = Table::new();
            set_color(&mut t, self.color);
            t.load_preset(UTF8_FULL_CONDENSED)
                .set_header(vec!["threshold", "observed", "result"]);
            for x in &r.thresholds {
                t.add_row(vec![
                    Cell::new(&x.expr),
                    Cell::new(&x.observed_text).set_alignment(CellAlignment::Right),
                    verdict_cell(if x.passed { "pass" } else { "FAIL" }, Some(x.passed)),
                ]);
            }
            out.push_str(&t.to_string());
            out.push('\n');
        }
        if let Some(c) = &r.comparison {
            out.push_str(&comparison_table(c, self.color));
        }
        if let Some(d) = &r.diagnosis {
            out.push_str("Diagnosis:\n");
            for f in &d.findings {
                out.push_str("  - ");
                out.push_str(f);
                out.push('\n');
            }
        }
        Ok(out.into_bytes())
    }
}
