//! The conventions a command-line user expects, checked on the built binary where the
//! streams matter: colour only on a terminal (or when forced), one `error:` line per error
//! with its causes once, the same shared flags on every command, completions and a man page.

use std::process::{Command, Output};

use authbench::cli::Cli;
use clap::CommandFactory;

use crate::support::{cli, dead_port};

const ESC: &str = "\x1b[";

/// The built binary with stdout and stderr piped and no colour variables inherited.
fn bin(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authbench"));
    cmd.args(args)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("AUTHBENCH_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the authbench binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Three ways to produce output: help (stdout), a clap usage error and a runtime error
/// (stderr). Each is plain when piped and under NO_COLOR, coloured with --color always.
#[test]
fn colour_only_on_a_terminal_or_when_forced() {
    let missing = "/nonexistent/authbench-scenario.toml";
    let cases: [(&[&str], bool); 3] = [
        (&["--help"], true),
        (&["run", "--flows", "abc"], false),
        (&["run", "--no-reports", "--scenario", missing], false),
    ];
    for (args, on_stdout) in cases {
        let stream = |o: &Output| {
            if on_stdout {
                text(&o.stdout)
            } else {
                text(&o.stderr)
            }
        };
        let piped = bin(args, &[]);
        let shown = stream(&piped);
        assert!(!shown.is_empty(), "{args:?} wrote nothing");
        assert!(!shown.contains(ESC), "{args:?} piped: {shown:?}");

        let no_color = bin(args, &[("NO_COLOR", "1")]);
        assert!(!stream(&no_color).contains(ESC), "{args:?} NO_COLOR");

        let mut forced_args = vec!["--color", "always"];
        forced_args.extend_from_slice(args);
        let forced = bin(&forced_args, &[]);
        assert!(
            stream(&forced).contains(ESC),
            "{args:?} --color always: {:?}",
            stream(&forced)
        );
        // The same exit code whatever the colour.
        assert_eq!(piped.status.code(), forced.status.code(), "{args:?}");

        let clicolor = bin(args, &[("CLICOLOR_FORCE", "1")]);
        assert!(stream(&clicolor).contains(ESC), "{args:?} CLICOLOR_FORCE");
        // NO_COLOR wins over CLICOLOR_FORCE; the flag wins over both.
        let both = bin(args, &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
        assert!(!stream(&both).contains(ESC), "{args:?} both");
        let mut never_args = vec!["--color=never"];
        never_args.extend_from_slice(args);
        let never = bin(&never_args, &[("CLICOLOR_FORCE", "1")]);
        assert!(!stream(&never).contains(ESC), "{args:?} never");
    }
}

/// Every error is one line: `error: ` and the cause chain, each cause once, a file
/// position only when there is one.
#[test]
fn one_line_per_error_class() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\n[[steps]]\nname = \"a\"\nmethod = \"GET\"\npath = 5\n",
    )
    .unwrap();
    let bad = bad.display().to_string();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let not_a_dir = not_a_dir.display().to_string();
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let health = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/health.toml");

    let cases: Vec<(Vec<&str>, u8, String)> = vec![
        // A file that cannot be read: no line or column.
        (
            vec!["run", "--no-reports", "--scenario", "/nonexistent.toml"],
            2,
            "error: /nonexistent.toml: cannot read the file: No such file or directory (os error 2)".into(),
        ),
        // An impossible flag combination.
        (
            vec!["run", "--no-reports", "--warmup", "5s", "--duration", "2s", "--concurrency", "2"],
            2,
            "error: --warmup (5s) must be shorter than --duration (2s): nothing would be measured".into(),
        ),
        // A baseline that does not exist: the path once, the OS cause once.
        (
            vec!["run", "--no-reports", "--baseline", "/nonexistent.json"],
            2,
            "error: could not read the report '/nonexistent.json': No such file or directory (os error 2)".into(),
        ),
        // An unreachable target.
        (
            vec!["run", "--no-reports", "--target", &dead, "--scenario", health],
            3,
            format!(
                "error: cannot reach the target {dead}: {}: Connection refused (os error 111)",
                dead.trim_start_matches("http://")
            ),
        ),
        // A command that reads reports.
        (
            vec!["compare", "/nonexistent-a.json", "/nonexistent-b.json"],
            2,
            "error: could not read the report '/nonexistent-a.json': No such file or directory (os error 2)".into(),
        ),
    ];
    for (args, code, line) in &cases {
        let (got, _out, err) = cli(args);
        assert_eq!(got, *code, "{args:?}: {err}");
        assert_eq!(err.trim_end(), line, "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }

    // A malformed scenario: one line per problem, each with its file, line and column.
    let (code, _, err) = cli(&["validate", &bad]);
    assert_eq!(code, 2, "{err}");
    for l in err.lines() {
        assert!(l.starts_with(&format!("error: {bad}:5:")), "{l}");
    }
    // A report directory that cannot be created: the run's own error, once.
    let (code, _, err) = cli(&[
        "run",
        "--flows",
        "1",
        "--cost",
        "4",
        "--calibration",
        "0",
        "--out-dir",
        &not_a_dir,
    ]);
    assert_eq!(code, 1, "{err}");
    let l: Vec<&str> = err.lines().collect();
    assert_eq!(l.len(), 1, "{err}");
    assert!(
        l[0].starts_with("error: ") && l[0].contains(&not_a_dir),
        "{err}"
    );
    assert_eq!(l[0].matches(&not_a_dir).count(), 1, "{err}");

    // clap's usage errors: the error is its first line (clap adds a usage hint below).
    let (code, _, err) = cli(&["run", "--flows", "abc"]);
    assert_eq!(code, 2);
    assert_eq!(
        err.lines().next().unwrap(),
        "error: invalid value 'abc' for '--flows <FLOWS>': 'abc' is not a count: use e.g. 20, 10k, 1m"
    );
}

/// What a flag means to a user: long name, help, defaults, short form, environment variable.
type Meaning = (String, String, Vec<String>, Option<char>, Option<String>);

/// One row per shared flag: the commands that must have it. Each flag must exist on each
/// of them with the same help, default, value name and short form.
#[test]
fn shared_flags_mean_the_same_on_every_command() {
    let mut root = Cli::command();
    root.build();
    let talk = ["run", "check", "sweep"];
    let load = ["run", "check", "sweep", "tune"];
    let every: Vec<String> = root
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|n| n != "help")
        .collect();
    let every: Vec<&str> = every.iter().map(String::as_str).collect();
    let table: [(&str, &[&str]); 9] = [
        ("target", &talk),
        ("api_key", &talk),
        ("timeout", &load),
        ("connect_timeout", &load),
        ("scenario", &load),
        ("out_dir", &load),
        ("no_reports", &load),
        ("no_progress", &every),
        ("color", &every),
    ];
    for (flag, commands) in table {
        let mut seen: Option<Meaning> = None;
        for name in commands {
            let sub = root
                .find_subcommand(name)
                .unwrap_or_else(|| panic!("no command {name}"));
            let arg = sub
                .get_arguments()
                .find(|a| a.get_id() == flag)
                .unwrap_or_else(|| panic!("`{name}` has no --{flag}"));
            let this = (
                arg.get_long().unwrap_or_default().to_string(),
                arg.get_help().map(|h| h.to_string()).unwrap_or_default(),
                arg.get_default_values()
                    .iter()
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect(),
                arg.get_short(),
                arg.get_env().map(|e| e.to_string_lossy().into_owned()),
            );
            match &seen {
                None => seen = Some(this),
                Some(first) => assert_eq!(first, &this, "--{flag} differs on `{name}`"),
            }
        }
    }
    // `--no-progress` is accepted (and harmless) on a command with no progress to hide.
    let (code, out, err) = cli(&["validate", "--no-progress", "scenarios/health.toml"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn bash_completions_parse() {
    let o = bin(&["completions", "bash"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let script = text(&o.stdout);
    assert!(script.contains("authbench"), "{script}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authbench.bash");
    std::fs::write(&path, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(check.status.success(), "{}", text(&check.stderr));
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let o = bin(&["completions", shell], &[]);
        assert!(o.status.success() && !o.stdout.is_empty(), "{shell}");
    }
}

/// The man page renders with groff without a warning, and names every command.
#[test]
fn the_man_page_renders() {
    let o = bin(&["man"], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("authbench.1");
    std::fs::write(&page, &o.stdout).unwrap();
    let Ok(render) = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww"])
        .arg(&page)
        .output()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "groff is required under CI (scripts/setup.sh installs it)"
        );
        eprintln!("skipped: no groff");
        return;
    };
    assert!(render.status.success(), "{}", text(&render.stderr));
    assert!(
        render.stderr.is_empty(),
        "groff warned: {}",
        text(&render.stderr)
    );
    let shown = text(&render.stdout);
    for c in ["run", "check", "sweep", "tune", "completions"] {
        assert!(shown.contains(c), "{c} missing from the man page");
    }
    // One page per command into a directory.
    let (code, out, err) = cli(&[
        "man",
        "--dir",
        &dir.path().join("man1").display().to_string(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(dir.path().join("man1/authbench-run.1").exists(), "{out}");
}

/// tokio panics on a bad `TOKIO_WORKER_THREADS` (the flows' lanes read it too): the binary
/// refuses it first, with the variable and what it takes, exit 2.
#[test]
fn a_bad_worker_thread_count_is_a_usage_error_not_a_panic() {
    for v in ["abc", "0", " 2"] {
        let o = bin(
            &[
                "run",
                "--no-reports",
                "--flows",
                "1",
                "--target",
                "http://127.0.0.1:1",
            ],
            &[("TOKIO_WORKER_THREADS", v)],
        );
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{v:?}: {err}");
        assert!(err.contains("TOKIO_WORKER_THREADS"), "{v:?}: {err}");
        assert!(err.contains("positive integer"), "{v:?}: {err}");
        assert!(!err.contains("panicked"), "{v:?}: {err}");
    }
}
