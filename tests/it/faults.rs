//! Reliability under faults: the fault-injecting simulator, SIGTERM and SIGKILL.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use titan_connector::config::{Config, Env, Overrides, env::vars};
use titan_connector::pipeline;
use titan_connector::report::Outcome;
use titan_connector::sim::{self, PriceFormat, Scenario};

use crate::util::*;

const FAULTS_SCENARIO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/scenarios/faults.toml"
);

/// The soak scenario with clean data, so every row must land (dirty data is the
/// quarantine tests' business).
fn soak_scenario() -> Scenario {
    let mut sc = Scenario::from_file(Path::new(FAULTS_SCENARIO)).unwrap();
    for t in &mut sc.tasks {
        t.bad_row_rate = 0.0;
        t.price_format = PriceFormat::Number;
    }
    sc.validated().unwrap()
}

fn soak_config(dir: &Path, url: &str, sc: &Scenario, extra: &str) -> Config {
    let tasks: String = sc
        .tasks
        .iter()
        .map(|t| format!("[[tasks]]\nid = \"{}\"\n", t.id))
        .collect();
    let text = format!(
        r#"
[api]
url = "{url}"
rate_limit_per_minute = 0
read_timeout = "500ms"
timeout = "2s"

[store]
url = "out"

[run]
concurrency = 8

# Media has its own tests; 50k downloads under faults would only make this slow.
[media]
enabled = false

[wait]
poll_interval = "50ms"
max_poll_interval = "200ms"
max_wait = "60s"
{extra}
{tasks}
"#
    );
    let path = dir.join("soak.toml");
    std::fs::write(&path, text).unwrap();
    let env = Env::from_pairs([(vars::TITAN_TOKEN, sc.token.clone())]);
    Config::load(&path, &env, &Overrides::default()).unwrap()
}

/// Every execution with results is in the store exactly as the simulator generated it.
fn assert_dataset_equals_source(out: &Path, sc: &Scenario, base_url: &str) -> u64 {
    let mut by_exec: BTreeMap<String, Vec<arrow::array::RecordBatch>> = BTreeMap::new();
    for f in parquet_files(out) {
        let exec = f
            .file_name()
            .unwrap()
            .to_string_lossy()
            .rsplit_once('-')
            .unwrap()
            .0
            .to_string();
        by_exec.entry(exec).or_default().extend(read_parquet(&f));
    }
    let mut total = 0;
    for t in &sc.tasks {
        for e in &t.executions {
            let has_results = matches!(
                e.final_status.as_str(),
                "completed" | "completed_with_errors"
            );
            let batches = by_exec.remove(&e.id).unwrap_or_default();
            if !has_results {
                assert!(batches.is_empty(), "{} has no results but has files", e.id);
                continue;
            }
            let n = if e.rows == 0 {
                0
            } else {
                assert_rows_match(&batches, sc, &t.id, &e.id, base_url)
            };
            assert_eq!(n, e.rows, "rows of {}", e.id);
            total += n;
        }
    }
    assert!(
        by_exec.is_empty(),
        "files of unknown executions: {:?}",
        by_exec.keys()
    );
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_soak_ends_with_the_source_row_for_row() {
    let sc = soak_scenario();
    let n_exec: usize = sc.tasks.iter().map(|t| t.executions.len()).sum();
    assert!(n_exec >= 50);
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = soak_config(dir.path(), &sim.base_url(), &sc, "");
    let started = Instant::now();
    let report = pipeline::run(&cfg).await.unwrap();
    let faults = sim.faults_injected();
    assert!(
        report
            .executions
            .iter()
            .all(|e| e.outcome != Outcome::Failed),
        "{}",
        report.summary()
    );
    assert_eq!(report.executions.len(), n_exec);
    let rows = assert_dataset_equals_source(&dir.path().join("out"), &sc, &sim.base_url());
    assert_eq!(rows, report.totals.rows);
    // The faults really happened, and the report counts the retries they caused.
    assert!(faults.total() >= 20, "{faults:?}");
    for kind in titan_connector::sim::FaultKind::ALL {
        assert!(faults.get(kind) > 0, "no {kind:?} injected: {faults:?}");
    }
    assert!(
        report.totals.api_retries > 0 && report.totals.export_retries > 0,
        "{:?}",
        report.totals
    );
    eprintln!(
        "soak: {n_exec} executions, {rows} rows, {} faults, {:?}",
        faults.total(),
        started.elapsed()
    );
    sim.shutdown().await;
}

const BIN: &str = env!("CARGO_BIN_EXE_titan-connector");

fn spawn_run(dir: &Path) -> std::process::Child {
    std::process::Command::new(BIN)
        .current_dir(dir)
        .args(["run", "--config", "soak.toml", "--report", "report.json"])
        .env("TITAN_TOKEN", "soak-token")
        .env_remove("TITAN_API_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_with_deadline(child: &mut std::process::Child, deadline: Duration) -> Option<i32> {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_and_rerun_the_dataset_equals_the_source() {
    let sc = soak_scenario();
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    soak_config(dir.path(), &sim.base_url(), &sc, "");
    // 24 seeded kill points spread over a run's life (waiting, exporting, writing,
    // committing), each followed by a re-run; SIGKILL gives the process no chance to clean up.
    let mut seed: u64 = 0x5eed;
    let mut kills = 0;
    for _ in 0..24 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let after = Duration::from_millis(50 + (seed >> 33) % 900);
        let mut child = spawn_run(dir.path());
        std::thread::sleep(after);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        let _ = child.wait();
    }
    assert!(
        kills >= 20,
        "only {kills} runs were still going when killed"
    );
    // Re-runs until one finishes: each picks up what the killed ones left.
    let mut code = None;
    for _ in 0..5 {
        let mut child = spawn_run(dir.path());
        code = wait_with_deadline(&mut child, Duration::from_secs(120));
        if code == Some(0) || code == Some(3) {
            break;
        }
    }
    assert!(matches!(code, Some(0) | Some(3)), "final run exit {code:?}");
    let out = dir.path().join("out");
    assert_dataset_equals_source(&out, &sc, &sim.base_url());
    // Nothing half-written is visible to a reader: no temp files outside _staging.
    for f in walk(&out) {
        let rel = f.strip_prefix(&out).unwrap().to_string_lossy().into_owned();
        let hidden = rel
            .split('/')
            .any(|seg| seg.starts_with('_') || seg.starts_with('.'));
        assert!(
            hidden || rel.ends_with(".parquet"),
            "unexpected visible file {rel}"
        );
    }
    sim.shutdown().await;
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_within_the_deadline_with_code_130_and_no_partial_output() {
    // One execution that finishes quickly and streams slowly, one that never finishes.
    let toml = format!(
        r#"
seed = 7
token = "{TOKEN}"
[faults]
slow_drip_rate = 1.0
slow_drip_chunk = 256
slow_drip_delay = "20ms"
fault_routes = ["export"]
[[tasks]]
id = "t1"
name = "Slow"
[tasks.output_schema]
type = "object"
[tasks.output_schema.properties]
a = {{ type = "string" }}
[[tasks.executions]]
id = "slow-export"
rows = 20000
[[tasks.executions]]
id = "never-done"
rows = 10
running_for = "1h"
"#
    );
    let sim = sim::start(
        Scenario::from_toml_str(&toml).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &sim.base_url(), "[[tasks]]\nid = \"t1\"\n");
    let mut child = std::process::Command::new(BIN)
        .current_dir(dir.path())
        .args(["run", "--config", "titan.toml", "--report", "report.json"])
        .env("TITAN_TOKEN", TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Let it start downloading.
    let started = Instant::now();
    while !sim
        .requests()
        .iter()
        .any(|r| r.path.ends_with("/results/export"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "export never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let signalled = Instant::now();
    let code = tokio::task::spawn_blocking(move || {
        let c = wait_with_deadline(&mut child, Duration::from_secs(25));
        (c, child)
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(130));
    assert!(signalled.elapsed() < Duration::from_secs(20));
    let out = dir.path().join("out");
    assert!(parquet_files(&out).is_empty(), "partial output is visible");
    assert!(!out.join("slow/_manifests/t1/slow-export.json").exists());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["interrupted"], true);
    sim.shutdown().await;
}
