//! OpenLineage events and Prometheus metrics of the real binary against the simulator:
//! events captured by an HTTP receiver on a loopback port, checked against the run
//! report; a receiver that is down or never answers costs at most the bounded retries.

use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

use crate::util::*;

const BIN: &str = env!("CARGO_BIN_EXE_titan-connector");
const PRODUCTS_ONLY: &str = "[[tasks]]\nid = \"task-products\"\n";
const OL_KEY: &str = "ol-key-SECRET-93c1";
const PARENT: &str = "airflow/titan_ingest.ingest/01931f5e-0b2a-7c3d-9e4f-5a6b7c8d9e0f";
const ROOT: &str = "airflow/titan_ingest/01931f5e-1111-7c3d-9e4f-5a6b7c8d9e0f";

/// One request the receiver got: the event and its Authorization header.
type Received = (Value, Option<String>);

/// What the receiver got, in order.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<Received>>>);

impl Captured {
    fn events(&self) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(v, _)| v.clone())
            .collect()
    }
    fn auth(&self) -> Vec<Option<String>> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, a)| a.clone())
            .collect()
    }
}

async fn receive(State(c): State<Captured>, headers: HeaderMap, body: String) -> StatusCode {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let v: Value = serde_json::from_str(&body).expect("an event is one JSON object");
    c.0.lock().unwrap().push((v, auth));
    StatusCode::CREATED
}

/// An OpenLineage receiver on a free loopback port: `(origin, captured)`.
async fn receiver() -> (String, Captured) {
    let captured = Captured::default();
    let app = Router::new()
        .route("/api/v1/lineage", post(receive))
        .with_state(captured.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), captured)
}

/// A port that accepts connections and never answers (holds them open).
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    format!("http://{addr}")
}

/// A loopback port nobody listens on.
fn closed_port() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

async fn run_bin(args: &[&str], env: &[(&str, &str)], dir: &Path) -> (Output, Duration) {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env("TITAN_TOKEN", TOKEN)
        .env_remove("TITAN_API_URL")
        .env_remove("TITAN_CONNECTOR_STORE")
        .env_remove("RUST_LOG");
    for var in [
        "OPENLINEAGE_URL",
        "OPENLINEAGE_API_KEY",
        "OPENLINEAGE_NAMESPACE",
        "OPENLINEAGE_ENDPOINT",
        "OPENLINEAGE_DISABLED",
        "OPENLINEAGE_PARENT_ID",
        "OPENLINEAGE_ROOT_PARENT_ID",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t0 = Instant::now();
    let o = cmd.output().await.unwrap();
    (o, t0.elapsed())
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `name{labels} value` lines of a metrics file, comments left out.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn sample(all: &[(String, f64)], key: &str) -> f64 {
    all.iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no sample `{key}`"))
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_sends_start_then_fail_with_what_the_report_says() {
    let sim = start_sim().await;
    let (url, captured) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &sim.base_url(),
        &format!("[lineage]\nnamespace = \"lake\"\nfile = \"events.ndjson\"\n\n{PRODUCTS_ONLY}"),
    );
    std::fs::create_dir_all(dir.path().join("metrics")).unwrap();
    let (o, _) = run_bin(
        &[
            "run",
            "--config",
            "titan.toml",
            "--report",
            "report.json",
            "--metrics-file",
            "metrics/titan.prom",
        ],
        &[
            ("OPENLINEAGE_URL", url.as_str()),
            ("OPENLINEAGE_API_KEY", OL_KEY),
            ("OPENLINEAGE_PARENT_ID", PARENT),
            ("OPENLINEAGE_ROOT_PARENT_ID", ROOT),
        ],
        dir.path(),
    )
    .await;
    // Exit 3: the scenario's failed and cancelled executions have no results.
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let report = read_json(&dir.path().join("report.json"));
    let events = captured.events();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["START", "FAIL"]);

    // The same run, job and parent in both; the run id is the report's.
    let run_id = report["run_id"].as_str().unwrap();
    for e in &events {
        assert_eq!(e["run"]["runId"].as_str().unwrap().replace('-', ""), run_id);
        assert_eq!(e["job"]["namespace"], "lake");
        assert_eq!(e["job"]["name"], "titan_connector.titan");
        let parent = &e["run"]["facets"]["parent"];
        assert_eq!(parent["job"]["name"], "titan_ingest.ingest");
        assert_eq!(
            parent["run"]["runId"],
            "01931f5e-0b2a-7c3d-9e4f-5a6b7c8d9e0f"
        );
        assert_eq!(parent["root"]["job"]["name"], "titan_ingest");
        assert_eq!(
            e["schemaURL"],
            "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
        );
    }
    let api_ns = format!(
        "titan://127.0.0.1:{}",
        url::Url::parse(&sim.base_url()).unwrap().port().unwrap()
    );
    assert_eq!(
        events[0]["inputs"],
        serde_json::json!([{ "namespace": api_ns, "name": PRODUCTS_TASK }])
    );

    // FAIL: the two executions without results, inputs and outputs with the report's counts.
    let end = &events[1];
    let message = end["run"]["facets"]["errorMessage"]["message"]
        .as_str()
        .unwrap();
    assert!(
        message.starts_with(
            "0 execution(s) failed, 2 ended without results on Titan, 0 task(s) could not be planned"
        ),
        "{message}"
    );
    assert!(message.contains("execution exec-p3 (task task-products) ended `failed` on Titan"));
    let input = &end["inputs"][0];
    assert_eq!(input["namespace"], api_ns.as_str());
    assert_eq!(
        input["inputFacets"]["inputStatistics"]["rowCount"],
        1500 + 321
    );
    let execs = input["facets"]["titanConnector_executions"]["executions"]
        .as_array()
        .unwrap();
    let mut seen: Vec<(String, String)> = execs
        .iter()
        .map(|e| {
            (
                e["executionId"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("exec-p1".into(), "ingested".into()),
            ("exec-p2".into(), "ingested".into()),
            ("exec-p3".into(), "no_results".into()),
            ("exec-p4".into(), "no_results".into()),
        ]
    );
    let outputs = end["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1);
    let out = &outputs[0];
    let dataset = report["datasets"][0]["dataset"].as_str().unwrap();
    assert_eq!(out["namespace"], "file");
    assert_eq!(
        out["name"].as_str().unwrap(),
        format!("{}/out/{dataset}", dir.path().display())
    );
    let stats = &out["outputFacets"]["outputStatistics"];
    let t = &report["totals"];
    assert_eq!(stats["rowCount"], t["rows"]);
    assert_eq!(stats["size"], t["bytes"]);
    assert_eq!(stats["fileCount"], t["files"]);
    assert_eq!(t["rows"], 1500 + 321);
    let rejects = &out["outputFacets"]["titanConnector_rejectedRows"];
    assert_eq!(rejects["rejectedRows"], t["rejected_rows"]);
    let fields: Vec<(&str, &str)> = out["facets"]["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["type"].as_str().unwrap()))
        .collect();
    let columns: Vec<(&str, &str)> = report["datasets"][0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap()))
        .collect();
    assert_eq!(fields, columns);
    assert!(fields.contains(&("price", "number")), "{fields:?}");

    // The key went in the header, and nowhere in any event; nor did the Titan token.
    assert_eq!(
        captured.auth(),
        [
            Some(format!("Bearer {OL_KEY}")),
            Some(format!("Bearer {OL_KEY}"))
        ]
    );
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(OL_KEY) && !all.contains(TOKEN), "{all}");
    assert!(!text(&o).contains(OL_KEY), "{}", text(&o));

    // The file transport got the same events, one per line.
    let lines: Vec<Value> = std::fs::read_to_string(dir.path().join("events.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, events);

    // Metrics: the report's values.
    let m = samples(&std::fs::read_to_string(dir.path().join("metrics/titan.prom")).unwrap());
    assert_eq!(sample(&m, "titan_connector_rows_written_total"), 1821.0);
    assert_eq!(
        sample(&m, "titan_connector_bytes_written_total"),
        t["bytes"].as_f64().unwrap()
    );
    assert_eq!(
        sample(
            &m,
            "titan_connector_executions_total{outcome=\"no_results\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(&m, "titan_connector_executions_total{outcome=\"ingested\"}"),
        2.0
    );
    assert_eq!(sample(&m, "titan_connector_last_run_success"), 0.0);
    assert_eq!(
        sample(&m, "titan_connector_api_requests_total"),
        t["api_requests"].as_f64().unwrap()
    );

    // Everything is settled now: exit 0, COMPLETE, nothing new written.
    let (again, _) = run_bin(
        &[
            "run",
            "--config",
            "titan.toml",
            "--metrics-file",
            "metrics/titan.prom",
        ],
        &[("OPENLINEAGE_URL", url.as_str())],
        dir.path(),
    )
    .await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let events = captured.events();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["START", "FAIL", "START", "COMPLETE"]);
    assert_ne!(events[2]["run"]["runId"], events[0]["run"]["runId"]);
    assert_eq!(events[3]["run"]["runId"], events[2]["run"]["runId"]);
    assert!(events[3]["run"]["facets"].get("parent").is_none());
    assert_eq!(
        events[3]["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"],
        0
    );
    let m = samples(&std::fs::read_to_string(dir.path().join("metrics/titan.prom")).unwrap());
    assert_eq!(sample(&m, "titan_connector_last_run_success"), 1.0);
    assert_eq!(
        sample(
            &m,
            "titan_connector_executions_total{outcome=\"already_ingested\"}"
        ),
        4.0
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_or_silent_changes_neither_exit_code_nor_run_time_beyond_the_bound() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    // 2 attempts of 300 ms and one 250 ms pause: at most 850 ms per event, and the end
    // event waits for START's remainder, so 1.7 s at the very worst.
    let bound = Duration::from_millis(2 * 850);
    let lineage = "[lineage]\ntimeout = \"300ms\"\nmax_attempts = 2\n";
    write_config(
        dir.path(),
        &sim.base_url(),
        &format!("{lineage}\n{PRODUCTS_ONLY}\nexecutions = \"latest\"\n"),
    );
    // Without lineage, twice: the second run is the baseline (nothing left to ingest).
    let (first, _) = run_bin(&["run", "--config", "titan.toml"], &[], dir.path()).await;
    let (baseline, base_time) = run_bin(&["run", "--config", "titan.toml"], &[], dir.path()).await;
    assert_eq!(
        first.status.code(),
        baseline.status.code(),
        "{}",
        text(&baseline)
    );
    let expected = baseline.status.code();
    let hole = black_hole().await;
    for (what, url) in [("closed port", closed_port()), ("silent receiver", hole)] {
        let (o, took) = run_bin(
            &["run", "--config", "titan.toml"],
            &[("OPENLINEAGE_URL", url.as_str())],
            dir.path(),
        )
        .await;
        assert_eq!(o.status.code(), expected, "{what}: {}", text(&o));
        assert!(
            text(&o).contains("OpenLineage event not delivered; the run goes on without it"),
            "{what}: {}",
            text(&o)
        );
        // Generous slack for a loaded machine; without the bound a silent receiver
        // would hold the run for 2 × 3 × 5 s at the defaults, or forever.
        assert!(
            took <= base_time + bound + Duration::from_secs(3),
            "{what}: {took:?} against {base_time:?} without lineage"
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_run_with_abort() {
    // One execution that never finishes: the run waits until it is told to stop.
    let toml = format!(
        r#"
seed = 3
token = "{TOKEN}"
[[tasks]]
id = "t1"
name = "Never"
[tasks.output_schema]
type = "object"
[tasks.output_schema.properties]
a = {{ type = "string" }}
[[tasks.executions]]
id = "never-done"
rows = 10
running_for = "1h"
"#
    );
    let sim = titan_sim::start(
        titan_sim::Scenario::from_toml_str(&toml).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &sim.base_url(),
        "[lineage]\nfile = \"events.ndjson\"\n\n[[tasks]]\nid = \"t1\"\n",
    );
    let mut child = std::process::Command::new(BIN)
        .current_dir(dir.path())
        .args(["run", "--config", "titan.toml"])
        .env("TITAN_TOKEN", TOKEN)
        .env_remove("OPENLINEAGE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let events = dir.path().join("events.ndjson");
    let started = Instant::now();
    // START is out and the execution is being awaited.
    while !(events.exists()
        && sim
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/executions/never-done")))
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the run never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let code = tokio::task::spawn_blocking(move || {
        crate::faults::wait_with_deadline(&mut child, Duration::from_secs(25))
    })
    .await
    .unwrap();
    assert_eq!(code, Some(130));
    let lines: Vec<Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["START", "ABORT"]);
    assert_eq!(lines[0]["run"]["runId"], lines[1]["run"]["runId"]);
    assert!(lines[1]["run"]["facets"].get("errorMessage").is_none());
    sim.shutdown().await;
}
