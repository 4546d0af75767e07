//! The error-body probe (`errors.no_internals`), run last: scans every error response the
//! other probes provoked, JSON, text or HTML, for stack traces, source paths, SQL,
//! exception text and frameworks' debug pages, which tell an attacker what the service
//! runs and where to push. HTML is read with its entities decoded (`File &quot;...`).

use regex::Regex;

use super::result;
use crate::check::target::{excerpt, Target};
use crate::check::{Outcome, ProbeResult, Severity};

/// Patterns of stack traces and internals in error bodies, with what each means.
const LEAKS: &[(&str, &str)] = &[
    (
        r"You're seeing this error because you have <code>DEBUG = True</code>|DEBUG = True in your Django settings",
        "Django's debug page",
    ),
    (
        r"Werkzeug Debugger|werkzeug/debug",
        "Werkzeug's debugger page",
    ),
    (
        r"Action Controller: Exception caught|<h1>Routing Error</h1>",
        "Rails' debug page",
    ),
    (
        r"Whoops! There was an error|Symfony\\Component\\ErrorHandler",
        "a PHP framework's debug page",
    ),
    (
        r"(?s)<pre[^>]*>[^<]{0,4000}?(\n\s+at \S+ \(|Traceback|Exception:|Error: [^<]*\n\s+at )",
        "a stack trace in an HTML <pre>",
    ),
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

/// The few HTML entities that hide a traceback's quotes and brackets from the patterns.
fn unescape_html(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub(super) fn leak_probe(t: &Target) -> ProbeResult {
    let seen: Vec<_> = t
        .exchanges()
        .into_iter()
        .filter(|x| x.status.is_some_and(|s| s >= 400))
        .collect();
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
        let html = e.body.contains('<') && e.body.contains('>');
        let unescaped = if html {
            unescape_html(&e.body)
        } else {
            String::new()
        };
        for (re, what) in &patterns {
            let m = re
                .find(&e.body)
                .or_else(|| html.then(|| re.find(&unescaped)).flatten());
            if let Some(m) = m {
                found.push(format!(
                    "{what} in {} ({}): {}",
                    e.probe,
                    e.status.unwrap_or(0),
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
