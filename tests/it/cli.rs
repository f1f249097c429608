//! The real binary: exit codes, messages, the report, and the token never printed.

use std::path::Path;
use std::process::Output;

use crate::util::*;

const BIN: &str = env!("CARGO_BIN_EXE_titan-connector");

async fn run_bin(args: &[&str], token: Option<&str>, dir: &Path) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_remove("TITAN_TOKEN")
        .env_remove("TITAN_API_URL")
        .env_remove("TITAN_CONNECTOR_STORE")
        .env_remove("RUST_LOG");
    if let Some(t) = token {
        cmd.env("TITAN_TOKEN", t);
    }
    cmd.output().await.unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `(name, type)` of each column of a schema file, in order.
fn column_types(schema: &serde_json::Value) -> Vec<(String, String)> {
    schema["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const PRODUCTS_ONLY: &str = "[[tasks]]\nid = \"task-products\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_failed_executions_exits_3_and_writes_the_report() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &sim.base_url(), PRODUCTS_ONLY);
    let o = run_bin(
        &[
            "run",
            "--config",
            "titan.toml",
            "--report",
            "report.json",
            "--log-format",
            "json",
        ],
        Some(TOKEN),
        dir.path(),
    )
    .await;
    let all = text(&o);
    assert_eq!(o.status.code(), Some(3), "{all}");
    assert!(!all.contains(TOKEN), "token leaked: {all}");
    // JSON logs: every stderr line that looks like a log is a JSON object.
    let stderr = String::from_utf8_lossy(&o.stderr);
    let log_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!log_lines.is_empty());
    for l in log_lines {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["totals"]["ingested"], 2);
    assert_eq!(report["totals"]["no_results"], 2);
    assert_eq!(report["totals"]["rows"], 1500 + 321);
    assert!(
        !std::fs::read_to_string(dir.path().join("report.json"))
            .unwrap()
            .contains(TOKEN)
    );

    // Everything is ingested now: the same command exits 0.
    let again = run_bin(&["run", "--config", "titan.toml"], Some(TOKEN), dir.path()).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_exits_4_without_printing_it() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &sim.base_url(), PRODUCTS_ONLY);
    let wrong = "wrong-SECRET-0000";
    for cmd in ["run", "check"] {
        let o = run_bin(&[cmd, "--config", "titan.toml"], Some(wrong), dir.path()).await;
        let all = text(&o);
        assert_eq!(o.status.code(), Some(4), "{cmd}: {all}");
        assert!(
            all.contains("401") || all.to_lowercase().contains("unauthorized"),
            "{all}"
        );
        assert!(!all.contains(wrong), "token leaked by {cmd}: {all}");
    }
    // And the token went to the API only in the Authorization header.
    assert!(
        sim.requests()
            .iter()
            .all(|r| r.query.as_deref().is_none_or(|q| !q.contains(wrong)))
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_verifies_token_tasks_and_store() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &sim.base_url(), PRODUCTS_ONLY);
    let o = run_bin(
        &["check", "--config", "titan.toml"],
        Some(TOKEN),
        dir.path(),
    )
    .await;
    let all = text(&o);
    assert_eq!(o.status.code(), Some(0), "{all}");
    assert!(
        all.contains("ok: task task-products `Product monitor` readable"),
        "{all}"
    );
    assert!(all.contains("writable"), "{all}");
    assert!(
        !dir.path()
            .join("out/_titan_check")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn config_mistakes_exit_2_with_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    // No token at all.
    write_config(dir.path(), "http://127.0.0.1:9", PRODUCTS_ONLY);
    let o = run_bin(&["run", "--config", "titan.toml"], None, dir.path()).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("TITAN_TOKEN"), "{}", text(&o));

    // A typo'd key: file and line named.
    std::fs::write(
        dir.path().join("bad.toml"),
        "[run]\nconcurrency = 2\nconcurency = 3\n",
    )
    .unwrap();
    let o = run_bin(&["run", "--config", "bad.toml"], Some(TOKEN), dir.path()).await;
    let all = text(&o);
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert!(
        all.contains("bad.toml") && all.contains("line 3") && all.contains("concurency"),
        "{all}"
    );

    // The token is not accepted as an argument.
    let o = run_bin(
        &["run", "--config", "titan.toml", "--token", TOKEN],
        None,
        dir.path(),
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
}

#[tokio::test]
async fn an_unreachable_api_exits_5() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: bind one and drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    write_config(
        dir.path(),
        &format!("http://127.0.0.1:{port}"),
        PRODUCTS_ONLY,
    );
    let cfg = std::fs::read_to_string(dir.path().join("titan.toml")).unwrap();
    std::fs::write(
        dir.path().join("titan.toml"),
        cfg.replacen("[api]\n", "[api]\nmax_attempts = 1\n", 1),
    )
    .unwrap();
    let o = run_bin(&["run", "--config", "titan.toml"], Some(TOKEN), dir.path()).await;
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(text(&o).contains(&port.to_string()), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_pull_infer_and_check() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &sim.base_url(), "");
    // pull: the task's output_schema as a schema file.
    let o = run_bin(
        &[
            "schema",
            "pull",
            "--config",
            "titan.toml",
            "--task",
            PRODUCTS_TASK,
            "-o",
            "pulled.json",
        ],
        Some(TOKEN),
        dir.path(),
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let pulled: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("pulled.json")).unwrap()).unwrap();
    let cols = column_types(&pulled);
    let want: Vec<(String, String)> = [
        ("product_name", "string"),
        ("price", "number"),
        ("in_stock", "boolean"),
        ("review_count", "integer"),
        ("scraped_at", "timestamp"),
        ("image_url", "media"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(cols, want);

    // check: the pulled file is valid; a broken one names line and field.
    let o = run_bin(&["schema", "check", "pulled.json"], None, dir.path()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).starts_with("ok: pulled.json (6 columns"),
        "{}",
        text(&o)
    );
    std::fs::write(
        dir.path().join("bad.json"),
        "{\n  \"name\": \"x\",\n  \"version\": 1,\n  \"columns\": [\n    {\"name\": \"a\", \"type\": \"integr\"}\n  ]\n}\n",
    )
    .unwrap();
    let o = run_bin(&["schema", "check", "bad.json"], None, dir.path()).await;
    let all = text(&o);
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert!(
        all.contains("bad.json") && all.contains("integr") && all.contains("columns[0].type"),
        "{all}"
    );

    // infer: types proposed from the export's values.
    let o = run_bin(
        &[
            "schema",
            "infer",
            "--config",
            "titan.toml",
            "--execution",
            "exec-p1",
            "--rows",
            "500",
        ],
        Some(TOKEN),
        dir.path(),
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let inferred: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let types: std::collections::BTreeMap<String, String> =
        column_types(&inferred).into_iter().collect();
    assert_eq!(types["in_stock"], "boolean");
    assert_eq!(types["review_count"], "integer");
    assert_eq!(types["scraped_at"], "timestamp");
    assert_eq!(types["product_name"], "string");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_lists_what_would_be_ingested_and_writes_nothing() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &sim.base_url(), PRODUCTS_ONLY);
    let o = run_bin(
        &["run", "--config", "titan.toml", "--dry-run"],
        Some(TOKEN),
        dir.path(),
    )
    .await;
    let all = text(&o);
    assert_eq!(o.status.code(), Some(0), "{all}");
    for exec in ["exec-p1", "exec-p2", "exec-p3", "exec-p4"] {
        assert!(
            all.contains(&format!("would ingest execution {exec} ")),
            "{exec}: {all}"
        );
    }
    assert!(
        all.contains("dry run: 4 execution(s) would be ingested"),
        "{all}"
    );
    assert!(parquet_files(&dir.path().join("out")).is_empty());
    assert!(
        !dir.path().join("out/product_monitor").exists(),
        "no manifest or staging written"
    );
    assert!(
        !sim.requests().iter().any(|r| r.path.contains("/results")),
        "a dry run downloads nothing"
    );
    sim.shutdown().await;
}
