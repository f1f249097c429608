//! Reliability under faults: the fault-injecting simulator, SIGTERM and SIGKILL.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use titan_connector::config::{Config, Env, Overrides, env::vars};
use titan_connector::report::Outcome;
use titan_connector::run;
use titan_sim::{self as sim, PriceFormat, Scenario};

use crate::util::*;

const FAULTS_SCENARIO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/scenarios/faults.toml"
);

/// The soak scenario with clean data, so every row must land (dirty data is the
/// quarantine tests' business).
pub(crate) fn soak_scenario() -> Scenario {
    soak_scenario_of(None)
}

/// [`soak_scenario`] grown to `executions` by adding copies of its tasks (new task and
/// execution ids, so new seeded rows). Copies of tasks rather than more executions per task:
/// the client stops listing at a page shorter than it asked for when the server gives no
/// total, so a task with more executions than the simulator's `page_max` (50) would lose
/// some — a client limit of its own, not what this soak is about.
pub(crate) fn soak_scenario_of(executions: Option<usize>) -> Scenario {
    let mut sc = Scenario::from_file(Path::new(FAULTS_SCENARIO)).unwrap();
    for t in &mut sc.tasks {
        t.bad_row_rate = 0.0;
        t.price_format = PriceFormat::Number;
    }
    let originals = sc.tasks.clone();
    let mut have: usize = originals.iter().map(|t| t.executions.len()).sum();
    let mut copy = 1;
    while executions.is_some_and(|want| have < want) {
        for t in &originals {
            let Some(room) = executions.map(|want| want.saturating_sub(have)) else {
                break;
            };
            if room == 0 {
                break;
            }
            let mut t = t.clone();
            t.id = format!("{}-copy{copy}", t.id);
            t.executions.truncate(room);
            for e in &mut t.executions {
                e.id = format!("{}-copy{copy}", e.id);
                e.created_at.clear();
            }
            have += t.executions.len();
            sc.tasks.push(t);
        }
        copy += 1;
    }
    sc.validated().unwrap()
}

/// `SOAK_EXECUTIONS` (`make soak`), else the scenario's own 52.
pub(crate) fn soak_size() -> Option<usize> {
    std::env::var("SOAK_EXECUTIONS")
        .ok()
        .map(|v| v.trim().parse().expect("SOAK_EXECUTIONS must be a number"))
}

pub(crate) fn soak_config(dir: &Path, url: &str, sc: &Scenario, extra: &str) -> Config {
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
/// Rows are told apart by `_titan_execution_id`, so small executions combined into shared
/// files are checked as strictly as files of one execution.
pub fn assert_dataset_equals_source(out: &Path, sc: &Scenario, base_url: &str) -> u64 {
    let mut by_exec = batches_by_execution(out);
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
    let sc = soak_scenario_of(soak_size());
    let n_exec: usize = sc.tasks.iter().map(|t| t.executions.len()).sum();
    assert!(n_exec >= soak_size().unwrap_or(50).max(50));
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = soak_config(dir.path(), &sim.base_url(), &sc, "");
    let started = Instant::now();
    let report = run::run(&cfg).await.unwrap();
    let faults = sim.faults_injected();
    assert!(
        report
            .executions
            .iter()
            .all(|e| e.outcome != Outcome::Failed),
        "{}",
        report.summary()
    );
    assert_eq!(report.executions.len(), n_exec, "{}", report.summary());
    let rows = assert_dataset_equals_source(&dir.path().join("out"), &sc, &sim.base_url());
    assert_eq!(rows, report.totals.rows);
    // The faults really happened, and the report counts the retries they caused.
    assert!(faults.total() >= 20, "{faults:?}");
    for kind in titan_sim::FaultKind::ALL {
        assert!(faults.get(kind) > 0, "no {kind:?} injected: {faults:?}");
    }
    assert!(
        report.totals.api_retries > 0 && report.totals.export_retries > 0,
        "{:?}",
        report.totals
    );
    eprintln!(
        "soak: {n_exec} executions, {rows} rows, {} files ({} combined), {} faults, {:?}",
        report.totals.files,
        report.totals.combined_files,
        faults.total(),
        started.elapsed()
    );
    sim.shutdown().await;
}

const BIN: &str = env!("CARGO_BIN_EXE_titan-connector");

fn spawn_run(dir: &Path) -> std::process::Child {
    spawn_run_reporting(dir, "report.json")
}

fn spawn_run_reporting(dir: &Path, report: &str) -> std::process::Child {
    std::process::Command::new(BIN)
        .current_dir(dir)
        .args(["run", "--config", "soak.toml", "--report", report])
        .env("TITAN_TOKEN", "soak-token")
        .env_remove("TITAN_API_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

pub fn wait_with_deadline(child: &mut std::process::Child, deadline: Duration) -> Option<i32> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_store_ingest_each_execution_exactly_once() {
    // The soak's executions that have results (so both runs can exit 0), no faults, and
    // slow exports: with timelines of up to 3 s the two runs wait for and export the same
    // executions at the same time.
    let mut sc = soak_scenario();
    for t in &mut sc.tasks {
        t.executions.retain(|e| {
            matches!(
                e.final_status.as_str(),
                "completed" | "completed_with_errors"
            )
        });
    }
    sc.faults = titan_sim::FaultConfig {
        slow_drip_rate: 1.0,
        slow_drip_chunk: 8192,
        slow_drip_delay: Duration::from_millis(2),
        fault_routes: vec![titan_sim::RouteKind::Export],
        ..Default::default()
    };
    let sc = sc.validated().unwrap();
    let ids: Vec<&str> = sc
        .tasks
        .iter()
        .flat_map(|t| t.executions.iter().map(|e| e.id.as_str()))
        .collect();
    assert!(ids.len() >= 30, "{}", ids.len());
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    soak_config(dir.path(), &sim.base_url(), &sc, "");
    // No faults here: generous timeouts, so a loaded machine causes no re-download.
    let cfg_path = dir.path().join("soak.toml");
    let text = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replace("read_timeout = \"500ms\"", "read_timeout = \"60s\"")
        .replace("timeout = \"2s\"", "timeout = \"60s\"");
    std::fs::write(&cfg_path, text).unwrap();

    let mut a = spawn_run_reporting(dir.path(), "report-a.json");
    let mut b = spawn_run_reporting(dir.path(), "report-b.json");
    let codes = tokio::task::spawn_blocking(move || {
        (
            wait_with_deadline(&mut a, Duration::from_secs(180)),
            wait_with_deadline(&mut b, Duration::from_secs(180)),
        )
    })
    .await
    .unwrap();
    assert_eq!(codes, (Some(0), Some(0)), "exit codes of the two runs");

    let out = dir.path().join("out");
    let rows = assert_dataset_equals_source(&out, &sc, &sim.base_url());
    // One manifest per execution, and no lease or staged file left behind.
    let mut manifests = Vec::new();
    for f in walk(&out) {
        let rel = f.strip_prefix(&out).unwrap().to_string_lossy().into_owned();
        assert!(
            !rel.contains("/_leases/") && !rel.contains("/_staging/") && !rel.contains("/_groups/"),
            "left behind: {rel}"
        );
        if rel.contains("/_manifests/") {
            manifests.push(f.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    manifests.sort();
    let mut want: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(manifests, want);

    // Each execution ingested by exactly one of the runs, and its export downloaded once:
    // the other run found it leased or already committed.
    let mut ingested_by: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut total_rows = 0;
    for name in ["report-a.json", "report-b.json"] {
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(name)).unwrap()).unwrap();
        let execs = report["executions"].as_array().unwrap();
        assert_eq!(
            execs.len(),
            ids.len(),
            "{name}: every execution accounted for"
        );
        for e in execs {
            let outcome = e["outcome"].as_str().unwrap();
            assert!(
                matches!(outcome, "ingested" | "already_ingested" | "leased"),
                "{name}: {e}"
            );
            if outcome == "ingested" {
                ingested_by
                    .entry(e["execution_id"].as_str().unwrap().to_string())
                    .or_default()
                    .push(name);
                total_rows += e["rows"].as_u64().unwrap();
            }
            if outcome == "leased" {
                assert!(e["leased_by"].as_str().unwrap().starts_with("run "), "{e}");
            }
        }
    }
    let by_a = ingested_by
        .values()
        .filter(|by| by[0] == "report-a.json")
        .count();
    eprintln!(
        "two processes: {} executions, {by_a} ingested by a, {} by b",
        ids.len(),
        ingested_by.len() - by_a
    );
    assert_eq!(ingested_by.len(), ids.len(), "{ingested_by:?}");
    assert!(
        ingested_by.values().all(|by| by.len() == 1),
        "ingested twice: {ingested_by:?}"
    );
    assert_eq!(total_rows, rows);
    // (Some executions' results lag their status on purpose: 404s before the one 200.)
    let mut downloads: BTreeMap<String, usize> = BTreeMap::new();
    for r in sim.requests() {
        if let Some(rest) = r.path.strip_suffix("/results/export")
            && r.status == 200
        {
            let id = rest.rsplit('/').next().unwrap().to_string();
            *downloads.entry(id).or_default() += 1;
        }
    }
    assert_eq!(downloads.len(), ids.len());
    assert!(downloads.values().all(|&n| n == 1), "{downloads:?}");
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
