//! The error-body probe (`errors.no_internals`), run last: scans every error response the
//! other probes provoked for stack traces, source paths, SQL and exception text, which
//! tell an attacker what the service runs and where to push.

use regex::Regex;

use super::result;
use crate::check::target::{excerpt, Target};
use crate::check::{Outcome, ProbeResult, Severity};

/// Patterns of stack traces and internals in error bodies, with what each means.
const LEAKS: &[(&str, &str)] = &[
    (r"Traceback \(most recent call last\)", "a Python traceback"),
    (r#"File "[^"]+\.py", line \d+"#, "a Python source location"),
    (
        r"panicked at|stack backtrace:|RUST_BACKTRACE",
        "a Rust panic",
    ),
    (
        r"\bat [\w$.]+\([\w$]+\.(java|kt|scala):\d+\)",
        "a JVM stack trace",
    ),
    (
        r"\bat .+\(.+\.(js|ts|mjs|cjs):\d+:\d+\)|node_modules/",
        "a Node.js stack trace",
    ),
    (
        r"System\.[A-Za-z.]+Exception|Microsoft\.AspNetCore",
        "a .NET exception",
    ),
    (
        r"(?i)sqlalchemy|psycopg|sqlstate|syntax error at or near|ORA-\d{5}|SQLITE_ERROR|duplicate key value violates",
        "a database error",
    ),
    (r"\.(rs|go|py|rb|php|java):\d+", "a source file and line"),
    (
        r"(^|[\s\x22'(])/(home|usr|var|opt|srv|app)/[\w./-]+",
        "a server file path",
    ),
];

pub(super) fn leak_probe(t: &Target) -> ProbeResult {
    let seen = t.seen_errors();
    let r = result(
        "errors.no_internals",
        Severity::Medium,
        "error bodies carry no stack trace or internal detail",
        format!(
            "the {} error responses the other probes provoked",
            seen.len()
        ),
        "no stack trace, source path, SQL or exception text",
    );
    let patterns: Vec<(Regex, &str)> = LEAKS
        .iter()
        .filter_map(|(p, what)| Regex::new(p).ok().map(|re| (re, *what)))
        .collect();
    let mut found = Vec::new();
    for e in &seen {
        for (re, what) in &patterns {
            if let Some(m) = re.find(&e.body) {
                found.push(format!(
                    "{what} in {} ({}): {}",
                    e.probe,
                    e.status,
                    excerpt(m.as_str(), 60)
                ));
                break;
            }
        }
    }
    if seen.is_empty() {
        r.skip("no error responses were seen")
    } else if found.is_empty() {
        r.judged(
            Outcome::Pass,
            format!("{} error bodies, none with internals", seen.len()),
        )
    } else {
        found.truncate(5);
        r.judged(Outcome::Fail, found.join("; "))
    }
}
