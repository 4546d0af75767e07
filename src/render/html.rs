//! The HTML report: one self-contained file (inline CSS and SVG, a few lines of inline
//! script, no network fetch: a Content-Security-Policy forbids any), readable offline.
//! It shows the "Final Performance Metrics" block and the verdict, the thresholds, latency by
//! percentile per step and per flow (both clocks in open loop), latency and throughput
//! over time, the per-step table, a mix's scenarios (each with its own figures), failures,
//! the diagnosis and the configuration.
//!
//! It also owns what every HTML page shares: `page` (head, CSP, style, render check)
//! and `esc`. Other commands' pages live with their commands (`check::report::html`,
//! `sweep::report::html`) and build on these; this module knows nothing of them (no
//! import from `check`, `sweep` or `cli`).
//!
//! Charts are drawn here as SVG rather than by a JS charting library: nothing to vendor,
//! nothing to load, and each drawn point carries its value in `data-*` attributes so tests
//! can check the picture against the JSON.

use std::fmt::Write;

use super::Exporter;
use crate::report::{histogram, Report};
use crate::samples::LatencySummary;

pub struct Html;

/// Quantiles drawn on the percentile chart.
const QUANTILES: &[f64] = &[
    0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999,
];
const COLORS: &[&str] = &[
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A series of the percentile chart: (quantile, ms) points.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

fn percentile_series(name: &str, encoded: &str) -> Option<Series> {
    let h = histogram::decode(encoded).ok()?;
    if h.is_empty() {
        return None;
    }
    let mut points: Vec<(f64, f64)> = QUANTILES
        .iter()
        .map(|q| (*q, h.value_at_quantile(*q) as f64 / 1000.0))
        .collect();
    points.push((1.0, h.max() as f64 / 1000.0));
    Some(Series {
        name: name.to_string(),
        points,
    })
}

/// x position of a quantile on the "latency by percentile" axis: log10(1 / (1 − q)),
/// so 90% is 1, 99% is 2, 99.9% is 3; the maximum is drawn at 4.5.
fn qx(q: f64) -> f64 {
    if q >= 1.0 {
        4.5
    } else {
        (1.0 / (1.0 - q)).log10().min(4.4)
    }
}

fn percentile_chart(series: &[Series]) -> String {
    let (w, h, ml, mr, mt, mb) = (760.0, 340.0, 64.0, 170.0, 16.0, 40.0);
    let all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| *v > 0.0)
        .collect();
    let lo = all.iter().cloned().fold(f64::INFINITY, f64::min).max(0.001);
    let hi = all.iter().cloned().fold(0.0, f64::max).max(lo * 10.0);
    let (ylo, yhi) = (lo.log10().floor(), hi.log10().ceil());
    let px = |x: f64| ml + x / 4.5 * (w - ml - mr);
    let py = |ms: f64| {
        let v = ms.max(lo).log10();
        mt + (1.0 - (v - ylo) / (yhi - ylo)) * (h - mt - mb)
    };
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg class="chart" data-chart="percentiles" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="latency by percentile">"#
    );
    // Axes and grid.
    for (x, label) in [
        (0.0, "0%"),
        (qx(0.5), "50%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (4.5, "max"),
    ] {
        let _ = write!(
            o,
            r##"<line x1="{0:.1}" y1="{mt}" x2="{0:.1}" y2="{1:.1}" stroke="#ddd"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle" font-size="11">{label}</text>"##,
            px(x),
            h - mb,
            h - mb + 16.0
        );
    }
    let mut e = ylo as i32;
    while e <= yhi as i32 {
        let v = 10f64.powi(e);
        let label = if v >= 1000.0 {
            format!("{}s", v / 1000.0)
        } else {
            format!("{v}ms")
        };
        let _ = write!(
            o,
            r##"<line x1="{ml}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#ddd"/><text x="{2:.1}" y="{3:.1}" text-anchor="end" font-size="11">{label}</text>"##,
            py(v),
            w - mr,
            ml - 6.0,
            py(v) + 4.0
        );
        e += 1;
    }
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|(q, ms)| format!("{:.1},{:.1}", px(qx(*q)), py(*ms)))
            .collect();
        let _ = write!(
            o,
            r#"<g data-series="{}"><polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            esc(&s.name),
            pts.join(" ")
        );
        for (q, ms) in &s.points {
            let _ = write!(
                o,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{color}" data-q="{q}" data-ms="{ms}"><title>{} p{}: {ms:.3} ms</title></circle>"#,
                px(qx(*q)),
                py(*ms),
                esc(&s.name),
                q * 100.0
            );
        }
        let ly = mt + 14.0 + i as f64 * 16.0;
        let _ = write!(
            o,
            r#"<rect x="{:.1}" y="{:.1}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="12">{}</text></g>"#,
            w - mr + 12.0,
            ly - 9.0,
            w - mr + 26.0,
            ly,
            esc(&s.name)
        );
    }
    o.push_str("</svg>");
    o
}

fn latency_row(o: &mut String, name: &str, requests: String, ok: String, l: &LatencySummary) {
    let c = |v: f64| {
        if l.count == 0 {
            "–".to_string()
        } else {
            format!("{v:.1}")
        }
    };
    let _ = write!(
        o,
        "<tr><td>{}</td><td>{requests}</td><td>{ok}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(name),
        c(l.min_ms),
        c(l.p50_ms),
        c(l.p90_ms),
        c(l.p99_ms),
        c(l.p999_ms),
        c(l.max_ms),
        c(l.mean_ms)
    );
}

/// A mix run's scenarios, each with its own figures (nothing for one scenario): a summary
/// row per scenario, as in the Markdown, then its flow and steps at p50/p95/p99.
fn mix_section(o: &mut String, r: &Report) {
    if r.mix.is_empty() {
        return;
    }
    let c = |l: &LatencySummary, v: f64| {
        if l.count == 0 {
            "–".to_string()
        } else {
            format!("{v:.1}")
        }
    };
    let p3 = |l: &LatencySummary| {
        format!(
            "<td>{}</td><td>{}</td><td>{}</td>",
            c(l, l.p50_ms),
            c(l, l.p95_ms),
            c(l, l.p99_ms)
        )
    };
    o.push_str("<h2>Scenarios of the Mix</h2><table id=\"mix\"><tr><th>scenario</th><th>weight</th><th>flows</th><th>success</th><th>flows/s</th><th>flow p50 (ms)</th><th>flow p95 (ms)</th><th>flow p99 (ms)</th></tr>");
    for p in &r.mix {
        let s = &p.report.summary;
        let _ = write!(
            o,
            "<tr data-scenario=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{:.2}%</td><td>{:.2}</td>{}</tr>",
            esc(&p.scenario),
            esc(&p.scenario),
            p.weight,
            s.total_flows,
            s.success_rate * 100.0,
            s.flows_per_s,
            p3(&p.report.flow)
        );
    }
    o.push_str("</table>");
    for p in &r.mix {
        let _ = write!(
            o,
            "<h3>{}</h3><table class=\"mix-scenario\" data-scenario=\"{}\"><tr><th>step</th><th>requests</th><th>ok</th><th>p50 (ms)</th><th>p95 (ms)</th><th>p99 (ms)</th></tr>",
            esc(&p.scenario),
            esc(&p.scenario)
        );
        for s in &p.report.steps {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td>{}</tr>",
                esc(&s.name),
                s.requests,
                s.ok,
                p3(&s.latency)
            );
        }
        let f = &p.report.flow;
        let _ = write!(
            o,
            "<tr><td>flow</td><td>{}</td><td>{}</td>{}</tr></table>",
            p.report.summary.total_flows,
            p.report.summary.successful_flows,
            p3(f)
        );
    }
    o.push_str("<p class=\"note\">Each scenario's own figures; the tables above are the whole (every scenario's flows, steps named <code>scenario:step</code>).</p>");
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:980px;color:#222;padding:0 1rem}h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}pre.block{background:#f6f8fa;padding:1rem;border-radius:6px;font-size:1rem}table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}td:first-child,th:first-child{text-align:left}.pass{color:#1a7f37}.fail{color:#cf222e}.verdict{font-size:1.05rem}.partial{background:#fff8c5;padding:.6rem;border:1px solid #d4a72c;border-radius:6px}svg.chart{max-width:100%;height:auto;background:#fff}.note{color:#555;font-size:.9rem}td.crossover{font-weight:bold;background:#fff8c5}";

/// Inline check used by the browser test: counts drawn chart elements and records errors.
const SCRIPT: &str = "window.__errors=[];window.addEventListener('error',function(e){window.__errors.push(String(e.message));document.body.setAttribute('data-errors',String(window.__errors.length));});document.addEventListener('DOMContentLoaded',function(){var n=document.querySelectorAll('svg.chart polyline, svg.chart circle, svg.chart rect').length;document.body.setAttribute('data-drawn',String(n));document.body.setAttribute('data-errors',String(window.__errors.length));});";

/// The page around a body: the same head, CSP, style and render check for every report.
/// The check and sweep pages (in their own modules) are bodies put in this.
pub(crate) fn page(title: &str, body: &str) -> Vec<u8> {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t}</title><style>{STYLE}</style><script>{SCRIPT}</script></head><body><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    )
    .into_bytes()
}

impl Exporter for Html {
    fn extension(&self) -> &'static str {
        "html"
    }

    fn render(&self, r: &Report) -> anyhow::Result<Vec<u8>> {
        let c = &r.config;
        let open = c.load_model == "open";
        let mut o = String::new();
        let title = format!("Authentication Load Test Report: {}", c.scenario);
        let _ = write!(
            o,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style><script>{SCRIPT}</script></head><body>",
            esc(&title)
        );
        let _ = write!(
            o,
            "<h1>{}{}</h1>",
            esc(&title),
            if r.partial { " (PARTIAL)" } else { "" }
        );
        if r.partial {
            let _ = write!(
                o,
                "<p class=\"partial\"><strong>PARTIAL REPORT</strong>: the run was interrupted; the figures cover the {} flows that finished of {} planned.</p>",
                r.summary.total_flows, c.flows_planned
            );
        }
        if c.insecure {
            o.push_str("<p class=\"partial\"><strong>INSECURE</strong>: run with --insecure; the server's TLS certificate was not verified.</p>");
        }
        // The emoji marks of the Markdown verdict need an emoji font; words travel better.
        let verdict = r
            .verdict()
            .replace("**", "")
            .replace("✅ ", "")
            .replace("❌ ", "")
            .replace("⚠️ ", "");
        let _ = write!(
            o,
            "<h2>Executive Summary</h2><p class=\"verdict\">{}</p>",
            esc(&verdict)
        );
        let _ = write!(
            o,
            "<h2>Final Performance Metrics</h2><pre class=\"block\" id=\"metrics\">{}</pre>",
            esc(&r.metrics_block())
        );
        if !r.thresholds.is_empty() {
            o.push_str("<h2>Thresholds</h2><table id=\"thresholds\"><tr><th>threshold</th><th>observed</th><th>result</th></tr>");
            for t in &r.thresholds {
                let (cls, word) = if t.passed {
                    ("pass", "pass")
                } else {
                    ("fail", "FAIL")
                };
                let _ = write!(
                    o,
                    "<tr><td><code>{}</code></td><td>{}</td><td class=\"{cls}\">{word}</td></tr>",
                    esc(&t.expr),
                    esc(&t.observed_text)
                );
            }
            o.push_str("</table>");
        }

        o.push_str("<h2>Latency by Percentile</h2>");
        let mut series: Vec<Series> = r
            .steps
            .iter()
            .filter_map(|s| percentile_series(&s.name, &s.histogram))
            .collect();
        let flow_name = if open { "flow (service time)" } else { "flow" };
        series.extend(percentile_series(flow_name, &r.flow_histogram));
        if open {
            series.extend(percentile_series(
                "flow from intended start",
                &r.flow_intended_histogram,
            ));
        }
        if series.is_empty() {
            o.push_str("<p>No latency was recorded.</p>");
        } else {
            o.push_str(&percentile_chart(&series));
            o.push_str(if open {
                "<p class=\"note\">Log scales. Open loop: <em>service time</em> counts from a flow's actual first request; <em>from intended start</em> counts from when the schedule said it should start (corrected for coordinated omission).</p>"
            } else {
                "<p class=\"note\">Log scales. Closed loop: latencies are service times (a slow server slows the load down).</p>"
            });
        }

        let _ = write!(
            o,
            "<h2>Over Time</h2>{}<p class=\"note\">Per {}-second bucket: flows completed (bars), errors (red), and p50/p99 of flow latency from the intended start.</p>{}",
            super::timeline_chart::chart(r),
            r.timeline.bucket_s,
            super::usage_chart::chart(r)
        );
        let outage_findings = crate::outage::findings(&r.availability);
        if !outage_findings.is_empty() {
            o.push_str("<h2>Outages</h2><p class=\"note\">Shaded on the chart above.</p><ul id=\"outages\">");
            for f in &outage_findings {
                let _ = write!(o, "<li>{}</li>", esc(f));
            }
            o.push_str("</ul>");
        }

        o.push_str("<h2>Latency per Step (ms)</h2><table id=\"steps\"><tr><th>step</th><th>requests</th><th>ok</th><th>min</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>mean</th></tr>");
        for s in &r.steps {
            latency_row(
                &mut o,
                &s.name,
                s.requests.to_string(),
                format!("{}/{}", s.ok, s.requests),
                &s.latency,
            );
        }
        latency_row(
            &mut o,
            flow_name,
            r.flow.count.to_string(),
            String::new(),
            &r.flow,
        );
        if open {
            latency_row(
                &mut o,
                "flow from intended start",
                r.flow_intended.count.to_string(),
                String::new(),
                &r.flow_intended,
            );
        }
        o.push_str("</table>");
        if r.steps.iter().any(|s| s.ttfb.count > 0) {
            let tls = r.over_tls();
            o.push_str("<h2>Connect and First Byte per Step (ms)</h2><table id=\"connect\"><tr><th>step</th><th>connections opened</th><th>connect p50</th><th>connect p99</th>");
            if tls {
                o.push_str("<th>TLS handshake p50</th><th>TLS handshake p99</th>");
            }
            o.push_str("<th>first byte p50</th><th>first byte p99</th></tr>");
            for s in &r.steps {
                let _ = write!(o, "<tr><td>{}</td>", esc(&s.name));
                for c in s.connect_ttfb_cells(tls) {
                    let _ = write!(o, "<td>{c}</td>");
                }
                o.push_str("</tr>");
            }
            o.push_str(if tls {
                "</table><p class=\"note\">Connect: TCP connect, for the requests that opened a connection. TLS handshake: after it, a full handshake (authbench never resumes a session). First byte: to the response's status line and headers, connect and handshake included.</p>"
            } else {
                "</table><p class=\"note\">Connect: TCP connect, for the requests that opened a connection. First byte: to the response's status line and headers, connect included.</p>"
            });
        }
        let _ = write!(
            o,
            "<p class=\"note\">Throughput: {:.2} flows/s, {:.2} requests/s over {:.3}s. Late flows: {}; dropped: {}; warm-up flows: {}.</p>",
            r.summary.flows_per_s,
            r.summary.requests_per_s,
            r.summary.wall_time_s,
            r.summary.late_flows,
            r.summary.dropped_flows,
            r.summary.warmup_flows
        );

        mix_section(&mut o, r);

        o.push_str("<h2>Failures</h2>");
        if r.failures.is_empty() {
            o.push_str("<p>No failures.</p>");
        } else {
            o.push_str("<table id=\"failures\"><tr><th>step</th><th>kind</th><th>detail</th><th>count</th></tr>");
            for f in &r.failures {
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&f.step),
                    esc(&f.class),
                    esc(&f.detail),
                    f.count
                );
            }
            o.push_str("</table>");
        }

        if let Some(d) = &r.diagnosis {
            o.push_str("<h2>Diagnosis</h2><ul id=\"diagnosis\">");
            for f in &d.findings {
                let _ = write!(o, "<li>{}</li>", esc(f));
            }
            let _ = write!(
                o,
                "</ul><p class=\"note\">Effective parallelism {:.2} at concurrency {}; service times from {} calibration flow(s) run one at a time.</p>",
                d.effective_parallelism, d.concurrency, d.calibration_flows
            );
        }
        if let Some(cmp) = &r.comparison {
            let _ = write!(
                o,
                "<h2>Baseline</h2><p>{} regression(s) against {}.</p><table id=\"baseline\"><tr><th>scope</th><th>metric</th><th>base</th><th>new</th><th>change</th><th>verdict</th></tr>",
                cmp.regressions(),
                esc(&cmp.base)
            );
            let num = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into());
            for row in &cmp.rows {
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&row.scope),
                    esc(&row.metric),
                    num(row.base),
                    num(row.new),
                    row.relative
                        .map(|v| format!("{:+.1}%", v * 100.0))
                        .unwrap_or_else(|| "–".into()),
                    row.verdict.label()
                );
            }
            o.push_str("</table>");
        }

        o.push_str("<h2>Configuration</h2><table id=\"config\">");
        let cost = c
            .bcrypt_cost
            .map(|x| x.to_string())
            .unwrap_or_else(|| "unknown (external service)".into());
        let rows = [
            ("target", c.target.clone()),
            (
                "scenario",
                format!("{} ({})", c.scenario, c.scenario_source),
            ),
            (
                "load",
                if c.load.is_empty() {
                    c.load_model.clone()
                } else {
                    c.load.clone()
                },
            ),
            ("flows planned", c.flows_planned.to_string()),
            ("concurrency / in flight", c.concurrency.to_string()),
            ("connections", c.connections.clone()),
            (
                "timeout",
                format!("{} ms (connect {} ms)", c.timeout_ms, c.connect_timeout_ms),
            ),
            ("bcrypt cost", cost),
            ("cores", c.cores.to_string()),
            ("generators", c.generators.to_string()),
        ];
        let optional = [("think time", &c.think), ("data", &c.data)];
        let optional = optional
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k, v)));
        let tls = if c.insecure {
            Some("off (--insecure): the server's certificate was not checked")
        } else if c.target.starts_with("https://") {
            Some("on")
        } else {
            None
        };
        let tls = tls.map(|v| ("TLS verification", v.to_string()));
        let sources =
            (!c.source_addrs.is_empty()).then(|| ("source addresses", c.source_addrs.join(", ")));
        let notes = c.notes.iter().map(|n| ("generator", n.clone()));
        let distribution = c.distribution_rows();
        for (k, v) in rows
            .into_iter()
            .chain(optional)
            .chain(tls)
            .chain(sources)
            .chain(distribution)
            .chain(notes)
        {
            let _ = write!(o, "<tr><td>{k}</td><td>{}</td></tr>", esc(&v));
        }
        let _ = write!(
            o,
            "</table><p class=\"note\">Generated {} by {}.</p></body></html>",
            esc(&r.generated_at),
            esc(&r.tool)
        );
        Ok(o.into_bytes())
    }
}
