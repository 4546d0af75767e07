//! The house's floors: every `crate::…` path in `src/` points down. Each top-level module
//! of the library has a floor; a module may name modules of lower floors, and modules
//! listed before it on its own floor, and nothing else. A cycle between top-level modules
//! is then impossible; a new module must be given a floor here (and a line in the
//! README's "Where things are").
//!
//! This reads the source text: comments (doc links included) are not imports; code is.
//! Paths are `crate::module…` and the groups `crate::{a, b::c}`; items of `lib.rs` itself
//! (`crate::run`) belong to the `pipeline` floor.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom first. Keep in step with the README's "Where things are".
const FLOORS: &[(&str, &[&str])] = &[
    (
        "ground",
        &[
            "units", "color", "samples", "crypto", "timeline", "outage", "stats",
        ],
    ),
    (
        "inputs",
        &[
            "password", "plan", "shard", "criteria", "scenario", "error", "options",
        ],
    ),
    ("load", &["tls", "usage", "engine"]),
    ("reference server", &["server"]),
    ("results", &["report"]),
    ("analyses", &["diagnosis", "gate"]),
    ("renderers", &["render"]),
    ("pipeline", &["pipeline", ROOT]),
    ("commands", &["check", "sweep", "mix", "capacity"]),
    ("command line", &["cli"]),
];

/// The crate root's own items (`lib.rs`: `run`, `RunResult`).
const ROOT: &str = "lib.rs";

/// One `crate::` path in code: which top-level module's file, where, and what it names.
#[derive(Debug, Clone)]
struct Import {
    from: String,
    to: String,
    at: String,
}

/// `(floor index, position on the floor)` of a module.
fn rank(module: &str) -> Option<(usize, usize)> {
    FLOORS
        .iter()
        .enumerate()
        .find_map(|(f, (_, ms))| ms.iter().position(|m| *m == module).map(|p| (f, p)))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source with comments and string literals blanked (newlines kept, so line numbers
/// stay right).
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &[u8]| {
        for c in s {
            out.push(if *c == b'\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            let end = src[i..].find('\n').map_or(b.len(), |n| i + n);
            blank(&mut out, &b[i..end]);
            i = end;
        } else if b[i..].starts_with(b"/*") {
            let end = src[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
            blank(&mut out, &b[i..end]);
            i = end;
        } else if b[i] == b'r'
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
            && matches!(b.get(i + 1), Some(b'"' | b'#'))
            && b[i + 1..].iter().find(|c| **c != b'#') == Some(&b'"')
        {
            // A raw string: r"…", r#"…"#.
            let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = i + 1 + hashes + 1;
            let end = src[body..]
                .find(&close)
                .map_or(b.len(), |n| body + n + close.len());
            blank(&mut out, &b[i..end]);
            i = end;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            blank(&mut out, &b[i..end]);
            i = end;
        } else if b[i] == b'\'' {
            // A char literal ('"', '\'', '→') is skipped whole; a lifetime is code.
            let next = src[i + 1..].chars().next().map_or(1, char::len_utf8);
            let end = if b.get(i + 1) == Some(&b'\\') {
                src[i + 3..].find('\'').map_or(b.len(), |n| i + 3 + n + 1)
            } else if b.get(i + 1 + next) == Some(&b'\'') {
                i + 1 + next + 1
            } else {
                out.push('\'');
                i += 1;
                continue;
            };
            blank(&mut out, &b[i..end]);
            i = end;
        } else {
            // Multi-byte characters are copied whole.
            let len = src[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&src[i..i + len]);
            i += len;
        }
    }
    out
}

/// The first path segment of each item of a `{…}` group starting at `open`.
fn group_heads(code: &str, open: usize) -> Vec<(String, usize)> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut item_start = true;
    let mut i = open;
    let b = code.as_bytes();
    while i < b.len() {
        match b[i] {
            b'{' => {
                depth += 1;
                item_start = depth == 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => item_start = true,
            c if item_start && depth == 1 && (c.is_ascii_alphabetic() || c == b'_') => {
                let end = code[i..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map_or(code.len(), |n| i + n);
                heads.push((code[i..end].to_string(), i));
                item_start = false;
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    heads
}

fn imports() -> Vec<Import> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let stem = p.file_stem()?.to_str()?.to_string();
            (p.is_dir() || p.extension().is_some_and(|x| x == "rs")).then_some(stem)
        })
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(&f).unwrap());
        let line_of = |at: usize| code[..at].matches('\n').count() + 1;
        let mut push = |name: &str, at: usize| {
            let to = if modules.contains(name) {
                name.to_string()
            } else {
                ROOT.to_string()
            };
            if to != top {
                out.push(Import {
                    from: top.clone(),
                    to,
                    at: format!("src/{}:{}: crate::{name}", rel.display(), line_of(at)),
                });
            }
        };
        for (at, _) in code.match_indices("crate::") {
            // `$crate::` and `authbench_crate::` are not this crate's paths.
            if at > 0 && {
                let p = code.as_bytes()[at - 1];
                p.is_ascii_alphanumeric() || p == b'_' || p == b'$'
            } {
                continue;
            }
            let rest = &code[at + "crate::".len()..];
            if rest.starts_with('{') {
                for (name, pos) in group_heads(&code, at + "crate::".len()) {
                    push(&name, pos);
                }
            } else {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                push(&rest[..end], at);
            }
        }
    }
    out
}

#[test]
fn every_top_level_module_has_a_floor() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let missing: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let stem = p.file_stem()?.to_str()?.to_string();
            (p.is_dir() || p.extension().is_some_and(|x| x == "rs")).then_some(stem)
        })
        .filter(|m| m != "lib" && m != "main" && rank(m).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "give these modules a floor in tests/it/floors.rs (and the README): {missing:?}"
    );
}

#[test]
fn every_import_points_down() {
    let upward: Vec<String> = imports()
        .into_iter()
        .filter(|i| {
            let (Some(a), Some(b)) = (rank(&i.from), rank(&i.to)) else {
                return false;
            };
            b.0 > a.0 || (b.0 == a.0 && b.1 > a.1)
        })
        .map(|i| {
            let floor = |m: &str| FLOORS[rank(m).unwrap().0].0;
            format!(
                "{} ({}) imports {} ({}): {}",
                i.from,
                floor(&i.from),
                i.to,
                floor(&i.to),
                i.at
            )
        })
        .collect();
    assert!(
        upward.is_empty(),
        "imports that point up a floor (move the type they need down, or the module up):\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_cycle_between_top_level_modules() {
    let mut edges: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for i in imports() {
        edges
            .entry(i.from.clone())
            .or_default()
            .entry(i.to.clone())
            .or_default()
            .push(i.at);
    }
    let cycles = cycles(&edges);
    let text: Vec<String> = cycles
        .iter()
        .map(|c| {
            let mut s = format!("cycle {}:", c.join(" → "));
            for (a, b) in c.iter().zip(c.iter().skip(1)) {
                let at = &edges[a][b];
                s.push_str(&format!("\n  {a} → {b}: {}", at.join(", ")));
            }
            s
        })
        .collect();
    assert!(cycles.is_empty(), "{}", text.join("\n"));
}

/// One closed path per strongly connected component of more than one module (a shortest
/// cycle through its first module), `a → b → … → a`.
fn cycles(edges: &BTreeMap<String, BTreeMap<String, Vec<String>>>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = edges
        .keys()
        .chain(edges.values().flat_map(|m| m.keys()))
        .collect();
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for m in edges.get(&n).into_iter().flat_map(|m| m.keys()) {
                if seen.insert(m.clone()) {
                    todo.push(m.clone());
                }
            }
        }
        seen
    };
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in nodes {
        if done.contains(n) || !reach(n).contains(n) {
            continue;
        }
        // Breadth-first from n back to n: the shortest cycle through it.
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([n.clone()]);
        'search: while let Some(a) = queue.pop_front() {
            for b in edges.get(&a).into_iter().flat_map(|m| m.keys()) {
                if b == n {
                    prev.insert(format!("{n}#end"), a.clone());
                    break 'search;
                }
                if !prev.contains_key(b) {
                    prev.insert(b.clone(), a.clone());
                    queue.push_back(b.clone());
                }
            }
        }
        let mut path = vec![prev[&format!("{n}#end")].clone()];
        while path.last() != Some(n) {
            let before = prev[path.last().unwrap()].clone();
            path.push(before);
        }
        path.reverse();
        path.push(n.clone());
        // The whole component is one report: mark every module that reaches n and that n
        // reaches.
        let from_n = reach(n);
        for m in &from_n {
            if reach(m).contains(n) {
                done.insert(m.clone());
            }
        }
        out.push(path);
    }
    out
}

#[test]
fn the_check_finds_a_cycle_and_names_its_imports() {
    let mut edges: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for (a, b) in [("report", "gate"), ("gate", "report"), ("gate", "stats")] {
        edges
            .entry(a.into())
            .or_default()
            .insert(b.into(), vec![format!("src/{a}.rs:1: crate::{b}")]);
    }
    assert_eq!(cycles(&edges), vec![vec!["gate", "report", "gate"]]);
    let code = code_only(
        "// crate::x\nuse crate::{a::B, c, d::{e, f}};\nlet s = \"crate::y\"; let q = '\"'; let r = r#\"crate::z\"#;",
    );
    assert!(!code.contains("crate::x") && !code.contains("crate::y") && !code.contains("crate::z"));
    assert!(code.contains("crate::{a::B"));
    let open = code.find('{').unwrap();
    let heads: Vec<String> = group_heads(&code, open).into_iter().map(|h| h.0).collect();
    assert_eq!(heads, ["a", "c", "d"]);
}

#[test]
fn a_file_over_600_lines_says_why_at_its_top() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches", "examples"] {
        if root.join(dir).is_dir() {
            rust_files(&root.join(dir), &mut files);
        }
    }
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let lines = text.lines().count();
            let says_why = text
                .lines()
                .take(5)
                .any(|l| l.starts_with("//! Over 600 lines: ") && l.len() > 30);
            (lines > 600 && !says_why).then(|| {
                format!(
                    "{} ({lines} lines)",
                    f.strip_prefix(root).unwrap().display()
                )
            })
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these by responsibility, or open them with a line `//! Over 600 lines: <why>`: {long:?}"
    );
}
