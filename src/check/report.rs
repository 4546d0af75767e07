//! Check reports: a terminal table, Markdown, JSON (the [`CheckReport`] struct as it
//! is), JUnit XML and the HTML page (its body in the shared page of
//! [`crate::render::html`]). Renderers return bytes and do no I/O; [`write_reports`] and
//! [`write_junit`] write the files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{CheckReport, Outcome};
use crate::render::html::{esc, page};

/// The terminal table: one row per probe, then the summary line.
pub fn terminal(r: &CheckReport, color: bool) -> Vec<u8> {
    use crate::render::terminal::{set_color, verdict_cell};
    let mut t = Table::new();
    set_color(&mut t, color);
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(160)
        .set_header(vec![
            "probe",
            "severity",
            "result",
            "expected",
            "request → got",
        ]);
    for p in &r.probes {
        let good = match p.outcome {
            Outcome::Pass => Some(true),
            Outcome::Fail => Some(false),
            _ => None,
        };
        t.add_row(vec![
            comfy_table::Cell::new(&p.id),
            comfy_table::Cell::new(p.severity.as_str()),
            verdict_cell(p.outcome.as_str(), good),
            comfy_table::Cell::new(&p.expected),
            comfy_table::Cell::new(match &p.request {
                Some(req) => format!("{}\n→ {}", cut(req, 90), cut(&p.got, 90)),
                None => cut(&p.got, 90),
            }),
        ]);
    }
    let mut out = format!(
        "authbench check: {} ({}{})\n",
        r.target,
        r.scenario,
        over(&r.http)
    );
    if r.insecure {
        out.push_str(INSECURE);
        out.push('\n');
    }
    out.push_str(&format!("{t}\n"));
    for p in r.probes.iter().filter(|p| {
        matches!(
            p.outcome,
            Outcome::Fail | Outcome::Warn | Outcome::Error | Outcome::Inconclusive
        )
    }) {
        if let Some(n) = &p.note {
            out.push_str(&format!("{} {}: {n}\n", p.outcome.as_str(), p.id));
        }
    }
    out.push_str(&summary_line(r));
    out.push('\n');
    out.into_bytes()
}

const INSECURE: &str =
    "INSECURE: run with --insecure; the server's TLS certificate was not verified.";

fn summary_line(r: &CheckReport) -> String {
    let s = &r.summary;
    format!(
        "{} probes: {} passed, {} failed ({} high/medium), {} warned, {} skipped{}{} — {}",
        s.probes,
        s.passed,
        s.failed,
        s.blocking_failures,
        s.warned,
        s.skipped,
        if s.inconclusive > 0 {
            format!(", {} inconclusive", s.inconclusive)
        } else {
            String::new()
        },
        if s.errors > 0 {
            format!(", {} without an answer (error)", s.errors)
        } else {
            String::new()
        },
        if s.blocking_failures == 0 {
            "PASS"
        } else {
            "FAIL"
        }
    )
}

/// `, over HTTP/2.0`: the versions the answers came over, when any did.
fn over(versions: &[String]) -> String {
    if versions.is_empty() {
        String::new()
    } else {
        format!(", over {}", versions.join(" and "))
    }
}

fn cut(s: &str, max: usize) -> String {
    super::target::excerpt(s, max)
}

/// Markdown: the verdict, the roles, and every probe with what was sent.
pub fn markdown(r: &CheckReport) -> Vec<u8> {
    let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut m = String::new();
    m.push_str("# authbench check\n\n");
    m.push_str(&format!("**{}**\n\n", summary_line(r)));
    if r.insecure {
        m.push_str(&format!("> {INSECURE}\n\n"));
    }
    m.push_str(&format!(
        "- Target: {}{}{}\n- Scenario: {}\n- Roles: register `{}`, login `{}`, protected `{}`\n- Generated: {} by {}\n\n",
        r.target,
        if r.in_process_server {
            format!(
                " (in-process reference server, bcrypt cost {})",
                r.bcrypt_cost.map_or("?".into(), |c| c.to_string())
            )
        } else {
            String::new()
        },
        over(&r.http),
        r.scenario,
        r.roles.register.as_deref().unwrap_or("–"),
        r.roles.login.as_deref().unwrap_or("–"),
        r.roles.protected.join("`, `"),
        r.generated_at,
        r.tool,
    ));
    m.push_str("| probe | severity | result | sent | expected | got | request | response | note |\n|---|---|---|---|---|---|---|---|---|\n");
    for p in &r.probes {
        m.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            p.id,
            p.severity.as_str(),
            match p.outcome {
                Outcome::Pass => "✅ pass",
                Outcome::Fail => "❌ FAIL",
                Outcome::Warn => "⚠️ warn",
                Outcome::Skip => "⏭ skip",
                Outcome::Error => "💥 error",
                Outcome::Inconclusive => "❔ inconclusive",
            },
            esc(&p.sent),
            esc(&p.expected),
            esc(&p.got),
            p.request
                .as_deref()
                .map(|r| format!("`{}`", esc(r)))
                .unwrap_or_default(),
            esc(p.response.as_deref().unwrap_or("")),
            esc(p.note.as_deref().unwrap_or("")),
        ));
    }
    m.into_bytes()
}

pub fn json(r: &CheckReport) -> anyhow::Result<Vec<u8>> {
    let mut v = serde_json::to_vec_pretty(r).context("could not serialize the check report")?;
    v.push(b'\n');
    Ok(v)
}

/// JUnit: one suite, one test case per probe (classname `check.<severity>`). A failed
/// probe is a `<failure>` whatever its severity; CI decides by the exit code, which only
/// high and medium failures set. Warnings pass with the reason in `system-out`; an
/// inconclusive probe is skipped, its message `inconclusive: <reason>`.
pub fn junit(r: &CheckReport) -> anyhow::Result<Vec<u8>> {
    let mut suite = TestSuite::new("authbench check");
    for p in &r.probes {
        let detail = format!(
            "sent: {}\nexpected: {}\ngot: {}{}{}",
            p.sent,
            p.expected,
            p.got,
            match (&p.request, &p.response) {
                (Some(req), resp) => format!(
                    "\nrequest: {req}\nresponse: {}",
                    resp.as_deref().unwrap_or("")
                ),
                _ => String::new(),
            },
            p.note
                .as_ref()
                .map(|n| format!("\nnote: {n}"))
                .unwrap_or_default()
        );
        let status = match p.outcome {
            Outcome::Pass | Outcome::Warn => TestCaseStatus::success(),
            Outcome::Skip => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(p.note.clone().unwrap_or_default());
                s
            }
            Outcome::Inconclusive => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(format!(
                    "inconclusive: {}",
                    p.note.as_deref().unwrap_or(&p.got)
                ))
                .set_description(detail.clone());
                s
            }
            Outcome::Error => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                s.set_message(format!("no answer: {}", p.got))
                    .set_description(detail.clone());
                s
            }
            Outcome::Fail => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!("expected {}, got {}", p.expected, p.got))
                    .set_type(p.severity.as_str())
                    .set_description(detail.clone());
                s
            }
        };
        let mut case = TestCase::new(p.id.clone(), status);
        case.set_classname(format!("check.{}", p.severity.as_str()));
        if !matches!(p.outcome, Outcome::Fail | Outcome::Error) {
            let prefix = if p.outcome == Outcome::Warn {
                "warn\n"
            } else {
                ""
            };
            case.set_system_out(format!("{prefix}{detail}"));
        }
        suite.add_test_case(case);
    }
    let mut report = Report::new("authbench");
    report.add_test_suite(suite);
    let xml = report
        .to_string()
        .context("could not render the JUnit XML")?;
    Ok(xml.into_bytes())
}

/// The HTML page of `authbench check`: the verdict, counts, and the probe table with
/// severities, what was sent, expected and received.
pub fn html(r: &CheckReport) -> Vec<u8> {
    let mut o = String::new();
    let s = &r.summary;
    let verdict = if s.blocking_failures == 0 {
        "PASS"
    } else {
        "FAIL"
    };
    let _ = write!(
        o,
        "<p class=\"verdict\"><strong>{verdict}</strong>: {} probes against {} ({}): {} passed, {} failed ({} high/medium), {} warned, {} skipped, {} inconclusive.</p>",
        s.probes,
        esc(&r.target),
        if r.in_process_server { "the in-process reference server" } else { "an external service" },
        s.passed,
        s.failed,
        s.blocking_failures,
        s.warned,
        s.skipped,
        s.inconclusive
    );
    if r.insecure {
        let _ = write!(o, "<p class=\"note\"><strong>{INSECURE}</strong></p>");
    }
    o.push_str("<h2>Probes</h2><table id=\"probes\"><tr><th>probe</th><th>severity</th><th>result</th><th>sent</th><th>expected</th><th>got</th><th>request → response</th></tr>");
    for p in &r.probes {
        let cls = match p.outcome {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Warn | Outcome::Skip | Outcome::Error => "",
        };
        let _ = write!(
            o,
            "<tr data-severity=\"{sev}\" data-outcome=\"{out}\"><td><code>{}</code><br><span class=\"note\">{}</span></td><td>{sev}</td><td class=\"{cls}\">{out}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>",
            esc(&p.id),
            esc(&p.title),
            esc(&p.sent),
            esc(&p.expected),
            esc(&p.got),
            p.note.as_deref().map(|n| format!("<br><span class=\"note\">{}</span>", esc(n))).unwrap_or_default(),
            match (&p.request, &p.response) {
                (Some(req), resp) => format!(
                    "<code>{}</code><br>→ {}",
                    esc(req),
                    esc(resp.as_deref().unwrap_or(""))
                ),
                _ => String::new(),
            },
            sev = p.severity.as_str(),
            out = p.outcome.as_str(),
        );
    }
    let _ = write!(
        o,
        "</table><p class=\"note\">Scenario {}; generated {} by {}.</p>",
        esc(&r.scenario),
        esc(&r.generated_at),
        esc(&r.tool)
    );
    page("Authentication Conformance and Security Check", &o)
}

/// Writes `<dir>/<UTC timestamp>-check.{md,json,html}`, never overwriting an earlier set.
pub fn write_reports(r: &CheckReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("could not create the report directory '{}'", dir.display()))?;
    let stamp: String = r
        .generated_at
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let mut base = format!("{stamp}-check");
    let mut n = 1;
    while ["md", "json", "html"]
        .iter()
        .any(|e| dir.join(format!("{base}.{e}")).exists())
    {
        n += 1;
        base = format!("{stamp}-check-{n}");
    }
    let mut paths = Vec::new();
    for (ext, bytes) in [("md", markdown(r)), ("json", json(r)?), ("html", html(r))] {
        let path = dir.join(format!("{base}.{ext}"));
        std::fs::write(&path, bytes)
            .with_context(|| format!("could not write the report file '{}'", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}

pub fn write_junit(r: &CheckReport, path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("could not create the directory '{}'", parent.display()))?;
    }
    std::fs::write(path, junit(r)?)
        .with_context(|| format!("could not write the JUnit file '{}'", path.display()))
}
