//! CLI conventions through the real binary: `init`, completions, the man page,
//! `--version`, environment layering and `${VAR}`, and progress bars on a terminal only.

use std::path::Path;
use std::process::Output;

use titan_sim::{self as sim, Scenario};

use crate::util::*;

const BIN: &str = env!("CARGO_BIN_EXE_titan-connector");

/// Runs the binary with a clean environment plus `env`.
async fn run(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn init_writes_a_starter_config_and_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["init"], &[], dir.path()).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let path = dir.path().join("titan.toml");
    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written, titan_connector::config::TEMPLATE);

    std::fs::write(&path, "# mine\n").unwrap();
    let o = run(&["init"], &[], dir.path()).await;
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: `titan.toml` already exists; use --force to overwrite it\n"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");

    let o = run(&["init", "--force", "titan.toml"], &[], dir.path()).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);

    // The starter passes the config checks of a real command as is (it stops at the
    // network: nothing listens on port 9).
    let cfg = written.replace(
        "url = \"https://api.webscraping.titannet.io\"",
        "url = \"http://127.0.0.1:9\"\nmax_attempts = 1",
    );
    let cfg = cfg.replace("max_attempts = 6\n", "");
    std::fs::write(&path, cfg).unwrap();
    let o = run(
        &["run", "--config", "titan.toml"],
        &[("TITAN_TOKEN", TOKEN)],
        dir.path(),
    )
    .await;
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
}

#[tokio::test]
async fn completions_man_page_and_version_print_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["completions", "bash"], &[], dir.path()).await;
    assert_eq!(o.status.code(), Some(0));
    let bash = stdout(&o);
    for sub in [
        "run",
        "check",
        "convert",
        "schema",
        "init",
        "completions",
        "man",
    ] {
        assert!(
            bash.contains(&format!("titan__connector,{sub})")),
            "{sub} missing"
        );
    }
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let o = run(&["completions", shell], &[], dir.path()).await;
        assert_eq!(o.status.code(), Some(0), "{shell}");
        assert!(stdout(&o).contains("dry-run"), "{shell}");
    }

    let o = run(&["man"], &[], dir.path()).await;
    assert_eq!(o.status.code(), Some(0));
    let page = stdout(&o);
    assert!(page.contains(".TH titan-connector 1"), "{page}");
    let run_section = page.split(".SH \"TITAN-CONNECTOR RUN\"").nth(1).unwrap();
    for flag in [
        "\\-\\-concurrency",
        "\\-\\-report",
        "\\-\\-shard",
        "\\-\\-dry\\-run",
    ] {
        assert!(run_section.contains(flag), "{flag}");
    }

    let o = run(&["--version"], &[], dir.path()).await;
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        format!("titan-connector {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn environment_and_interpolation_mistakes_exit_2_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "http://127.0.0.1:9", "[[tasks]]\nid = \"t\"\n");
    let o = run(
        &["run", "--config", "titan.toml"],
        &[
            ("TITAN_TOKEN", TOKEN),
            ("TITAN_CONNECTOR_RUN_BATCH_ROWS", "lots"),
        ],
        dir.path(),
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: invalid environment variable `TITAN_CONNECTOR_RUN_BATCH_ROWS`: `lots` is not a valid number here\n"
    );

    std::fs::write(
        dir.path().join("lake.toml"),
        "[store]\nurl = \"${LAKE_DIR}\"\n[[tasks]]\nid = \"t\"\n",
    )
    .unwrap();
    let o = run(
        &["check", "--config", "lake.toml"],
        &[("TITAN_TOKEN", TOKEN)],
        dir.path(),
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: invalid config file `lake.toml`, line 2: environment variable `LAKE_DIR` is not set (write `${LAKE_DIR:-default}` to give a default)\n"
    );
}

/// One task whose execution is still running for a while after the start, so the
/// bar spends visible time `waiting` before it exports.
fn slow_scenario() -> Scenario {
    Scenario::from_toml_str(&format!(
        r#"
seed = 7
token = "{TOKEN}"

[[tasks]]
id = "task-slow"
name = "Slow"
[tasks.output_schema]
type = "object"
[tasks.output_schema.properties]
headline = {{ type = "string" }}
comments = {{ type = "integer" }}

[[tasks.executions]]
id = "exec-slow"
rows = 3000
running_for = "2500ms"
created_at = "2026-11-26T08:00:00Z"
"#
    ))
    .unwrap()
}

/// Runs the binary with stdin, stdout and stderr on a pseudo-terminal and returns what
/// the terminal received: `script` from util-linux, or python3's `pty` module without it.
async fn run_on_tty(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let quoted: Vec<String> = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    // A size, or a terminal without one reports 0 columns.
    let inner = format!("stty cols 120 rows 40; exec {}", quoted.join(" "));
    let have_script = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut cmd = if have_script {
        let mut c = tokio::process::Command::new("script");
        c.args(["-qfec", &inner, "/dev/null"]);
        c
    } else {
        let mut c = tokio::process::Command::new("python3");
        c.args([
            "-c",
            "import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))",
            "sh",
            "-c",
            &inner,
        ]);
        c
    };
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .env("TITAN_TOKEN", TOKEN)
        .stdin(std::process::Stdio::null());
    let o = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("the run under a pty finished")
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// Signs of a redrawn bar: a carriage return that doesn't end a line, or an
/// erase-line / cursor-up escape.
fn has_redraws(s: &str) -> bool {
    s.replace("\r\n", "\n").contains('\r') || s.contains("\x1b[2K") || s.contains("\x1b[1A")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_bars_on_a_terminal_only_and_never_with_json_logs_or_piped() {
    let sim = sim::start(slow_scenario(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &sim.base_url(),
        "[[tasks]]\nid = \"task-slow\"\n",
    );

    // On a terminal: the execution's line while it waits, then its result line.
    let (code, tty) = run_on_tty(
        &["run", "--config", "titan.toml", "--store", "out-tty"],
        dir.path(),
    )
    .await;
    assert_eq!(code, Some(0), "{tty}");
    assert!(
        tty.contains("exec-slo"),
        "the line is named by the execution: {tty:?}"
    );
    assert!(tty.contains("waiting"), "{tty:?}");
    assert!(tty.contains("ingested    3000 rows · "), "{tty:?}");
    assert!(tty.contains(" rows/s · 0 media"), "{tty:?}");
    assert!(has_redraws(&tty), "{tty:?}");
    assert!(!tty.contains(TOKEN));

    // On a terminal with JSON logs: every line is a log object or the summary.
    let (code, json) = run_on_tty(
        &[
            "run",
            "--config",
            "titan.toml",
            "--store",
            "out-json",
            "--log-format",
            "json",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(code, Some(0), "{json}");
    assert!(!has_redraws(&json), "{json:?}");
    assert!(!json.contains("rows · "), "{json:?}");
    for line in json
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
    {
        assert!(
            line.starts_with('{') || line.starts_with("1 execution(s): 1 ingested (3000 rows"),
            "not a log line: {line:?}"
        );
    }

    // On a terminal with -q: warnings only, no bars.
    let (code, quiet) = run_on_tty(
        &[
            "run",
            "--config",
            "titan.toml",
            "--store",
            "out-quiet",
            "-q",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(code, Some(0), "{quiet}");
    assert!(
        !has_redraws(&quiet) && !quiet.contains("rows · "),
        "{quiet:?}"
    );
    assert!(
        quiet.contains("1 execution(s): 1 ingested (3000 rows"),
        "{quiet:?}"
    );

    // Piped stderr: plain log lines only.
    let o = run(
        &["run", "--config", "titan.toml", "--store", "out-pipe"],
        &[("TITAN_TOKEN", TOKEN)],
        dir.path(),
    )
    .await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("Ingested execution"), "{err}");
    assert!(!has_redraws(&err) && !err.contains('\x1b'), "{err:?}");
    assert!(
        !err.contains("rows · ") && !err.contains("waiting"),
        "{err:?}"
    );
    sim.shutdown().await;
}
