//! Delta mode (`[store] table_format = "delta"`) end to end against the simulator: every
//! execution committed exactly once by its `txn`, with exactly the source's rows, read as a
//! Delta reader reads them (only the files the log references); re-runs, SIGKILLs, racing
//! processes on local disk and on moto S3, the fault soak, checkpoints, quarantined rows
//! and schema evolution.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path as FsPath;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use object_store::path::Path;
use titan_connector::report::{Outcome, RunReport};
use titan_connector::run;
use titan_connector::sink::delta::DeltaTable;
use titan_connector::sink::store::{Store, StoreConfig};
use titan_sim::data;
use titan_sim::{self as sim, Scenario};
use url::Url;

use crate::delta_util::*;
use crate::faults::{soak_config, soak_scenario, soak_scenario_of, soak_size, wait_with_deadline};
use crate::stores::servers::{MOTO_KEY_ID, MOTO_REGION, MOTO_SECRET, moto};
use crate::util::*;

const BIN: &str = env!("CARGO_BIN_EXE_titan-connector");

const BOTH_TASKS: &str = r#"
[[tasks]]
id = "task-products"

[[tasks]]
id = "task-news"
format = "csv"
"#;

fn outcomes(report: &RunReport) -> BTreeMap<String, (Outcome, u64)> {
    report
        .executions
        .iter()
        .map(|e| (e.execution_id.clone(), (e.outcome, e.rows)))
        .collect()
}

/// Keys under `_staging/`, `_leases/` or `_groups/`, or ending in `.tmp`: what a run that
/// finished must not leave behind.
fn leftovers(all: &[String]) -> Vec<&String> {
    all.iter()
        .filter(|k| {
            k.split('/')
                .any(|s| matches!(s, "_staging" | "_leases" | "_groups"))
                || k.ends_with(".tmp")
        })
        .collect()
}

/// Checks every row of `batches` (all of `exec_id`) against the simulator's values,
/// except the columns in `skip`, and returns their `_titan_row` numbers, sorted.
fn source_rows(
    batches: &[RecordBatch],
    sc: &Scenario,
    task_id: &str,
    exec_id: &str,
    base_url: &str,
    skip: &[&str],
) -> Vec<i64> {
    let t = task(sc, task_id);
    let mut seen = Vec::new();
    for b in batches {
        let rows = b
            .column_by_name("_titan_row")
            .unwrap()
            .as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let row_no = rows.value(i);
            let expected = data::row(sc.seed, t, exec_id, (row_no - 1) as u64, base_url);
            for (name, want) in expected.iter().filter(|(n, _)| !skip.contains(&n.as_str())) {
                let col = b
                    .column_by_name(name)
                    .unwrap_or_else(|| panic!("column {name} missing"));
                assert_cell(
                    col.as_ref(),
                    i,
                    want,
                    &format!("{exec_id} row {row_no} {name}"),
                );
            }
            seen.push(row_no);
        }
    }
    seen.sort_unstable();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_every_terminal_state_json_and_csv_land_once_as_the_exact_source_rows() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = delta_config(dir.path(), &sim.base_url(), BOTH_TASKS, &[]);
    let report = run::run(&cfg).await.unwrap();
    let want: BTreeMap<String, (Outcome, u64)> = [
        ("exec-p1", (Outcome::Ingested, 1500)),
        ("exec-p2", (Outcome::Ingested, 321)),
        ("exec-p3", (Outcome::NoResults, 0)),
        ("exec-p4", (Outcome::NoResults, 0)),
        ("exec-n1", (Outcome::Ingested, 777)),
        ("exec-n2", (Outcome::Ingested, 0)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(outcomes(&report), want);
    assert!(
        report.has_failures(),
        "failed/cancelled make the run partial"
    );

    let store = local_store(&dir.path().join("out"));
    assert_eq!(
        delta_datasets(&store).await,
        ["news_headlines", "product_monitor"]
    );
    let sc = scenario();
    let rows = assert_table_equals_source(&store, &sc, &sim.base_url()).await;
    assert_eq!(rows, 1500 + 321 + 777);
    assert_eq!(rows, report.totals.rows);

    // Files at their final, attempt-unique names (`<execution>-<run>-<n>`) in their
    // partitions, no staging; one commit per execution adding its txn and its own files
    // only. Executions without rows (the empty one, the failed and the cancelled one)
    // are commits of their txn alone.
    let run = &report.run_id;
    let files = [
        (
            "news_headlines",
            vec![format!(
                "task_id=task-news/date=2026-11-26/exec-n1-{run}-0.parquet"
            )],
        ),
        (
            "product_monitor",
            vec![
                format!("task_id=task-products/date=2026-11-27/exec-p1-{run}-0.parquet"),
                // created 2026-11-28T23:30-02:00 is the 29th in UTC
                format!("task_id=task-products/date=2026-11-29/exec-p2-{run}-0.parquet"),
            ],
        ),
    ];
    for (ds, want) in files {
        let mut live: Vec<String> = read_table(&store, ds)
            .await
            .files
            .into_iter()
            .map(|f| f.path)
            .collect();
        live.sort();
        assert_eq!(live, want, "{ds}");
        let mut seen = BTreeSet::new();
        for (version, actions) in log_commits(&store, ds).await {
            let (txns, adds) = txns_and_adds(&actions);
            let [txn] = txns.as_slice() else {
                panic!("{ds} v{version}: one txn per commit here, got {txns:?}");
            };
            assert!(seen.insert(txn.clone()), "{txn} committed twice");
            let exec = txn.rsplit(':').next().unwrap();
            let own: Vec<&String> = want
                .iter()
                .filter(|f| f.contains(&format!("/{exec}-")))
                .collect();
            assert_eq!(adds.iter().collect::<Vec<_>>(), own, "{ds} v{version}");
        }
        let execs: &[&str] = match ds {
            "product_monitor" => &["exec-p1", "exec-p2", "exec-p3", "exec-p4"],
            _ => &["exec-n1", "exec-n2"],
        };
        let task = if ds == "product_monitor" {
            PRODUCTS_TASK
        } else {
            NEWS_TASK
        };
        let want: BTreeSet<String> = execs
            .iter()
            .map(|e| format!("titan-connector:{task}:{e}"))
            .collect();
        assert_eq!(seen, want, "{ds}");
    }
    let all = keys(&store).await;
    assert!(leftovers(&all).is_empty(), "{:?}", leftovers(&all));
    for ds in ["product_monitor", "news_headlines"] {
        assert!(
            unreferenced_files(&store, ds).await.is_empty(),
            "a clean run leaves no unreferenced file in {ds}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_a_second_run_commits_nothing() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = delta_config(dir.path(), &sim.base_url(), BOTH_TASKS, &[]);
    run::run(&cfg).await.unwrap();
    let store = local_store(&dir.path().join("out"));
    let versions = |store: Store| async move {
        let mut v = Vec::new();
        for ds in delta_datasets(&store).await {
            let table = DeltaTable::open(&store, &ds).unwrap();
            v.push((ds, table.version().await.unwrap()));
        }
        v
    };
    let objects = |store: Store| async move {
        store
            .list(&Path::from(""))
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.location.to_string(), m.size, m.last_modified))
            .collect::<BTreeSet<_>>()
    };
    let before = versions(store.clone()).await;
    assert_eq!(before.len(), 2);
    assert!(before.iter().all(|(_, v)| v.is_some()));
    let objects_before = objects(store.clone()).await;
    let exports_before = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("/results/"))
        .count();

    let again = run::run(&cfg).await.unwrap();
    assert_eq!(again.executions.len(), 6);
    assert!(
        again
            .executions
            .iter()
            .all(|e| e.outcome == Outcome::AlreadyIngested),
        "{}",
        again.summary()
    );
    assert!(!again.has_failures());
    assert_eq!(
        versions(store.clone()).await,
        before,
        "no new table version"
    );
    assert_eq!(
        objects(store.clone()).await,
        objects_before,
        "nothing written, rewritten or deleted"
    );
    let exports_after = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("/results/"))
        .count();
    assert_eq!(exports_before, exports_after, "no export downloaded again");
    assert_table_equals_source(&store, &scenario(), &sim.base_url()).await;
    sim.shutdown().await;
}

/// A child `titan-connector run` in `dir` (config `soak.toml`) in delta mode, with `args`
/// and `env` added.
fn spawn_delta(dir: &FsPath, token: &str, args: &[&str], env: &[(String, String)]) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .args(["run", "--config", "soak.toml"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TITAN_TOKEN", token)
        .env(TABLE_FORMAT_VAR, "delta")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Run `i` of the kill test: combining with a 200 ms commit delay, or (odd `i`) off.
fn kill_env(i: usize) -> Vec<(String, String)> {
    if i.is_multiple_of(2) {
        vec![(
            "TITAN_CONNECTOR_RUN_MAX_COMMIT_DELAY".into(),
            "200ms".into(),
        )]
    } else {
        vec![(COMBINE_BELOW_VAR.into(), "0".into())]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_killed_at_random_points_and_rerun_the_table_equals_the_source() {
    let sc = soak_scenario();
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    soak_config(dir.path(), &sim.base_url(), &sc, "");
    // 16 seeded kill points, each followed by a re-run; SIGKILL gives the process no
    // chance to clean up. A fresh run spends its first seconds listing and waiting (the
    // soak's faults), so a clock alone would rarely hit a commit: even runs are killed a
    // seeded 0-500 ms after this run's first data file appears (writing, committing),
    // odd ones 0.1-2.5 s after the start (listing, waiting, exporting).
    let out = dir.path().join("out");
    let mut seed: u64 = 0xde17a;
    let (mut kills, mut kills_after_writing) = (0, 0);
    for i in 0..16 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let before: BTreeSet<_> = parquet_files(&out).into_iter().collect();
        let mut child = spawn_delta(dir.path(), &sc.token, &[], &kill_env(i));
        let started = Instant::now();
        if i.is_multiple_of(2) {
            while child.try_wait().unwrap().is_none()
                && started.elapsed() < Duration::from_secs(60)
                && parquet_files(&out).iter().all(|f| before.contains(f))
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis((seed >> 33) % 500));
        } else {
            std::thread::sleep(Duration::from_millis(100 + (seed >> 33) % 2400));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
            if i.is_multiple_of(2) {
                kills_after_writing += 1;
            }
        }
        let _ = child.wait();
    }
    assert!(
        kills >= 10,
        "only {kills} runs were still going when killed"
    );
    assert!(
        kills_after_writing >= 4,
        "{kills_after_writing} kills after writing"
    );
    let store = local_store(&out);
    let crashed: usize = {
        let mut n = 0;
        for ds in delta_datasets(&store).await {
            n += unreferenced_files(&store, &ds).await.len();
        }
        n
    };

    // A file no commit references, in a committed file's partition with a copy of its
    // rows: a reader that globbed Parquet would count them twice; a Delta reader never
    // sees it. (The kills above leave such files too, but how many depends on timing.)
    let mut victim = None;
    for ds in delta_datasets(&store).await {
        let live = read_table(&store, &ds).await;
        if let Some(f) = live.files.iter().find(|f| f.rows.is_some_and(|r| r > 0)) {
            victim = Some((ds, f.clone()));
            break;
        }
    }
    let (ds, victim) = victim.expect("no killed run committed a file with rows");
    let ds = &ds;
    let victim_key = live_key(ds, &victim);
    let planted = Path::from(format!(
        "{}/planted-by-the-test-0.parquet",
        victim_key.as_ref().rsplit_once('/').unwrap().0
    ));
    let bytes = store.get_opt(&victim_key).await.unwrap().unwrap();
    store.put(&planted, bytes).await.unwrap();

    // Re-runs until one finishes: each picks up what the killed ones left.
    let mut code = None;
    for _ in 0..5 {
        let mut child = spawn_delta(dir.path(), &sc.token, &[], &kill_env(0));
        code = wait_with_deadline(&mut child, Duration::from_secs(120));
        if code == Some(0) || code == Some(3) {
            break;
        }
    }
    assert!(matches!(code, Some(0) | Some(3)), "final run exit {code:?}");
    let rows = assert_table_equals_source(&store, &sc, &sim.base_url()).await;
    // The planted file is still there (younger than vacuum's retention), unreferenced,
    // and all the Parquet on disk holds more rows than the table: the leftovers are real
    // and invisible.
    let unreferenced = unreferenced_files(&store, ds).await;
    assert!(
        unreferenced.contains(&planted.to_string()),
        "{unreferenced:?}"
    );
    let on_disk: usize = parquet_files(&out)
        .iter()
        .flat_map(|f| read_parquet(f))
        .map(|b| b.num_rows())
        .sum();
    assert!(
        on_disk as u64 > rows,
        "{on_disk} rows on disk, {rows} in the tables"
    );
    eprintln!(
        "delta kills: {kills} kills ({kills_after_writing} after writing), {crashed} files left uncommitted by them, {rows} rows, \
         {on_disk} rows in all Parquet on disk"
    );
    sim.shutdown().await;
}

/// The soak's executions with results (so every run exits 0), no faults, slow exports so
/// that racing processes wait for and export the same executions at the same time.
fn race_scenario() -> Scenario {
    let mut sc = soak_scenario();
    for t in &mut sc.tasks {
        t.executions.retain(|e| has_results(&e.final_status));
    }
    sc.faults = titan_sim::FaultConfig {
        slow_drip_rate: 1.0,
        slow_drip_chunk: 8192,
        slow_drip_delay: Duration::from_millis(2),
        fault_routes: vec![titan_sim::RouteKind::Export],
        ..Default::default()
    };
    sc.validated().unwrap()
}

/// The soak's datasets (from its task names).
const RACE_DATASETS: [&str; 4] = [
    "customer_reviews",
    "job_listings",
    "news_articles",
    "product_prices",
];

/// 4 `--shard I/4` processes and 2 unsharded ones at once on the store `store` (opened
/// by the test) that the children reach through `env`: each execution committed once,
/// ingested by exactly one process. With `leases`, its export is downloaded once (the
/// others found it leased or committed); without, the processes race to the log.
async fn six_processes_race(store: Store, env: Vec<(String, String)>, leases: bool) {
    let sc = race_scenario();
    let ids: BTreeSet<String> = sc
        .tasks
        .iter()
        .flat_map(|t| t.executions.iter().map(|e| e.id.clone()))
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

    let mut runs: Vec<(String, Option<usize>)> = (0..4)
        .map(|i| (format!("report-s{i}.json"), Some(i)))
        .collect();
    runs.push(("report-a.json".into(), None));
    runs.push(("report-b.json".into(), None));
    let started = Instant::now();
    let children: Vec<(String, Child)> = runs
        .iter()
        .map(|(report, shard)| {
            let shard_arg = shard.map(|i| format!("{i}/4"));
            let mut args = vec!["--report", report.as_str()];
            if let Some(s) = &shard_arg {
                args.extend(["--shard", s.as_str()]);
            }
            (
                report.clone(),
                spawn_delta(dir.path(), &sc.token, &args, &env),
            )
        })
        .collect();
    let codes = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|(name, mut c)| (name, wait_with_deadline(&mut c, Duration::from_secs(240))))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let elapsed = started.elapsed();
    assert!(
        codes.iter().all(|(_, c)| *c == Some(0)),
        "exit codes: {codes:?}"
    );

    let rows = assert_table_equals_source(&store, &sc, &sim.base_url()).await;
    assert_eq!(delta_datasets(&store).await, RACE_DATASETS);
    // (Without leases, each dataset's `_leases` is the test's blocking file.)
    let all = keys(&store).await;
    let left: Vec<_> = leftovers(&all)
        .into_iter()
        .filter(|k| leases || !k.ends_with("/_leases"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    for ds in delta_datasets(&store).await {
        let unreferenced = unreferenced_files(&store, &ds).await;
        assert!(unreferenced.is_empty(), "{ds}: {unreferenced:?}");
    }

    // The shards split the executions; each execution ingested by exactly one process.
    let mut all_outcomes: Vec<String> = Vec::new();
    let mut ingested_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut writers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut sharded = BTreeSet::new();
    let mut total_rows = 0;
    for (name, shard) in &runs {
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(name)).unwrap()).unwrap();
        let execs = report["executions"].as_array().unwrap();
        let seen: BTreeSet<String> = execs
            .iter()
            .map(|e| e["execution_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(seen.len(), execs.len(), "{name}: an execution listed twice");
        if shard.is_some() {
            for id in &seen {
                assert!(sharded.insert(id.clone()), "{id} in two shards");
            }
        } else {
            assert_eq!(seen, ids, "{name}: every execution accounted for");
        }
        for e in execs {
            let outcome = e["outcome"].as_str().unwrap();
            all_outcomes.push(outcome.to_string());
            assert!(
                matches!(outcome, "ingested" | "already_ingested" | "leased"),
                "{name}: {e}"
            );
            if outcome == "ingested" {
                ingested_by
                    .entry(e["execution_id"].as_str().unwrap().to_string())
                    .or_default()
                    .push(name.clone());
                writers
                    .entry(e["dataset"].as_str().unwrap().to_string())
                    .or_default()
                    .insert(name.clone());
                total_rows += e["rows"].as_u64().unwrap();
            }
        }
    }
    assert_eq!(sharded, ids, "the four shards cover every execution");
    // Every table was written by several processes at once: their commits raced.
    assert_eq!(writers.len(), delta_datasets(&store).await.len());
    assert!(
        writers.values().all(|w| w.len() >= 2),
        "writers per table: {writers:?}"
    );
    assert_eq!(
        ingested_by.keys().cloned().collect::<BTreeSet<_>>(),
        ids,
        "{ingested_by:?}"
    );
    assert!(
        ingested_by.values().all(|by| by.len() == 1),
        "ingested twice: {ingested_by:?}"
    );
    assert_eq!(total_rows, rows);
    let mut per_process: BTreeMap<&str, usize> = BTreeMap::new();
    for by in ingested_by.values() {
        *per_process.entry(by[0].as_str()).or_default() += 1;
    }
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
    let twice = downloads.values().filter(|&&n| n > 1).count();
    if leases {
        assert_eq!(twice, 0, "{downloads:?}");
    } else {
        assert!(
            twice > 0,
            "no export was downloaded by two processes: no race"
        );
        // `_leases` is a plain file here: no process may report an execution as leased.
        assert!(
            all_outcomes.iter().all(|o| o != "leased"),
            "a lease was taken: {all_outcomes:?}"
        );
    }
    eprintln!(
        "six processes on {} (leases: {leases}): {} executions, {rows} rows, ingested per \
         process {per_process:?}, {twice} exports downloaded more than once, {elapsed:?}",
        store.url(),
        ids.len(),
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_four_shards_and_two_racing_processes_ingest_each_execution_once_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    std::fs::create_dir_all(&out).unwrap();
    let store = local_store(&out);
    let env = vec![(
        "TITAN_CONNECTOR_STORE".to_string(),
        out.to_string_lossy().into_owned(),
    )];
    six_processes_race(store, env, true).await;
}

/// Without leases (each dataset's `_leases` is a file, so no lease can be created and
/// every process goes ahead), racing processes download the same executions and only the
/// log's `txn` check keeps each one exactly once, combined groups included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_racing_processes_without_leases_still_commit_each_execution_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    for ds in RACE_DATASETS {
        std::fs::create_dir_all(out.join(ds)).unwrap();
        std::fs::write(out.join(ds).join("_leases"), b"not a folder").unwrap();
    }
    let store = local_store(&out);
    let env = vec![(
        "TITAN_CONNECTOR_STORE".to_string(),
        out.to_string_lossy().into_owned(),
    )];
    six_processes_race(store, env, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_four_shards_and_two_racing_processes_ingest_each_execution_once_on_moto_s3() {
    let moto = moto();
    moto.create_bucket("lake");
    let url = "s3://lake/tables";
    let store = Store::open(&StoreConfig {
        url: Url::parse(url).unwrap(),
        options: [
            ("aws_endpoint", moto.endpoint()),
            ("aws_access_key_id", MOTO_KEY_ID.to_string()),
            ("aws_secret_access_key", MOTO_SECRET.to_string()),
            ("aws_region", MOTO_REGION.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    })
    .unwrap();
    let env = [
        ("TITAN_CONNECTOR_STORE", url.to_string()),
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", MOTO_KEY_ID.to_string()),
        ("AWS_SECRET_ACCESS_KEY", MOTO_SECRET.to_string()),
        ("AWS_REGION", MOTO_REGION.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    six_processes_race(store, env, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_a_fault_soak_ends_with_the_source_row_for_row() {
    let sc = soak_scenario_of(soak_size());
    let n_exec: usize = sc.tasks.iter().map(|t| t.executions.len()).sum();
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    soak_config(dir.path(), &sim.base_url(), &sc, "");
    let cfg = load_delta(&dir.path().join("soak.toml"), &sc.token, &[]);
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
    let store = local_store(&dir.path().join("out"));
    let rows = assert_table_equals_source(&store, &sc, &sim.base_url()).await;
    assert_eq!(rows, report.totals.rows);
    assert!(faults.total() >= 20, "{faults:?}");
    for kind in titan_sim::FaultKind::ALL {
        assert!(faults.get(kind) > 0, "no {kind:?} injected: {faults:?}");
    }
    assert!(
        report.totals.api_retries > 0 && report.totals.export_retries > 0,
        "{:?}",
        report.totals
    );
    // The report counts the files the run committed, the combined ones among them.
    let (mut commits, mut live, mut combined) = (0, 0, 0);
    for ds in delta_datasets(&store).await {
        commits += log_commits(&store, &ds).await.len();
        let files = read_table(&store, &ds).await.files;
        live += files.len();
        combined += files
            .iter()
            .filter(|f| {
                let name = f.path.rsplit('/').next().unwrap();
                name.starts_with("combined-")
            })
            .count();
    }
    assert!(combined > 0, "the soak's small executions were combined");
    assert_eq!(
        (report.totals.files, report.totals.combined_files),
        (live, combined),
        "{}",
        report.summary()
    );
    eprintln!(
        "delta soak: {n_exec} executions, {rows} rows, {} files ({} combined), {commits} commits, \
         {} faults, {:?}",
        report.totals.files,
        report.totals.combined_files,
        faults.total(),
        started.elapsed()
    );
    sim.shutdown().await;
}

/// One task of `n` executions of 100 rows, all on one day.
fn many_small(n: usize) -> Scenario {
    let mut toml = format!(
        r#"
seed = 5
token = "{TOKEN}"
[[tasks]]
id = "cp"
name = "Checkpointed"
[tasks.output_schema]
type = "object"
[tasks.output_schema.properties]
product_name = {{ type = "string" }}
price = {{ type = "number" }}
"#
    );
    for e in 0..n {
        toml.push_str(&format!(
            "[[tasks.executions]]\nid = \"cp-{e}\"\nrows = 100\ncreated_at = \"2026-11-20T{e:02}:00:00Z\"\n"
        ));
    }
    Scenario::from_toml_str(&toml).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_a_checkpoint_is_written_after_n_commits_and_is_all_a_reader_needs() {
    let sc = many_small(7);
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Combining off: one commit per execution.
    let cfg = delta_config(
        dir.path(),
        &sim.base_url(),
        "[media]\nenabled = false\n[[tasks]]\nid = \"cp\"\n",
        &[(CHECKPOINT_VAR, "5"), (COMBINE_BELOW_VAR, "0")],
    );
    let report = run::run(&cfg).await.unwrap();
    assert_eq!(report.totals.ingested, 7, "{}", report.summary());
    assert_eq!(report.totals.combined_files, 0);
    let out = dir.path().join("out");
    let store = local_store(&out);
    assert_eq!(delta_datasets(&store).await, ["checkpointed"]);
    let table = DeltaTable::open(&store, "checkpointed").unwrap();
    assert_eq!(table.version().await.unwrap(), Some(6), "seven commits");

    let log = out.join("checkpointed/_delta_log");
    let checkpoints: Vec<String> = walk_files(&log)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".checkpoint.parquet"))
        .collect();
    // One checkpoint, at version 5, although the run commits 8 executions at a time: a
    // writer whose snapshot predates it must not write another for the same commits.
    assert_eq!(checkpoints, ["00000000000000000005.checkpoint.parquet"]);
    let last: serde_json::Value =
        serde_json::from_slice(&std::fs::read(log.join("_last_checkpoint")).unwrap()).unwrap();
    assert_eq!(last["version"], 5, "{last}");
    assert_eq!(
        assert_table_equals_source(&store, &sc, &sim.base_url()).await,
        700
    );

    // The checkpoint holds every file and txn of versions 0..=5: without their JSON
    // commits a fresh reader still sees the whole table.
    for v in 0..=5 {
        std::fs::remove_file(log.join(format!("{v:020}.json"))).unwrap();
    }
    assert_eq!(log_commits(&store, "checkpointed").await.len(), 1);
    assert_eq!(
        assert_table_equals_source(&store, &sc, &sim.base_url()).await,
        700
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_quarantined_rows_land_in_rejects_and_written_plus_rejected_equals_the_export() {
    let toml = scenario_toml().replacen(
        "name = \"Product monitor\"\n",
        "name = \"Product monitor\"\nbad_row_rate = 0.05\n",
        1,
    );
    let sc = Scenario::from_toml_str(&toml).unwrap();
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let extra = "[media]\nenabled = false\n\n[[tasks]]\nid = \"task-products\"\nexecutions = [\"exec-p1\"]\n";
    let cfg = delta_config(dir.path(), &sim.base_url(), extra, &[]);
    let report = run::run(&cfg).await.unwrap();
    let e = &report.executions[0];
    assert_eq!(e.outcome, Outcome::Ingested, "{:?}", e.error);
    let t = task(&sc, PRODUCTS_TASK);
    let bad: Vec<i64> = (0..1500)
        .filter(|&r| data::bad_cell(sc.seed, t, "exec-p1", r).is_some())
        .map(|r| r as i64 + 1)
        .collect();
    assert!(bad.len() > 20, "the knob produced {} bad rows", bad.len());
    assert_eq!(e.rejected_rows, bad.len() as u64);
    assert_eq!(e.rows + e.rejected_rows, 1500);

    let out = dir.path().join("out");
    let jsonl = std::fs::read_to_string(
        out.join("product_monitor/_rejects/task_id=task-products/exec-p1.jsonl"),
    )
    .unwrap();
    let rejected: Vec<i64> = jsonl
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()), "{l}");
            assert!(v["record"].is_object(), "{l}");
            v["row"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(rejected, bad);

    // The table holds exactly the other rows, with their values, under the execution's
    // one txn; the rejects are beside the table, not in it.
    let store = local_store(&out);
    let read = read_table(&store, "product_monitor").await;
    assert_eq!(read.by_exec.keys().collect::<Vec<_>>(), ["exec-p1"]);
    let written = source_rows(
        &read.by_exec["exec-p1"],
        &sc,
        PRODUCTS_TASK,
        "exec-p1",
        &sim.base_url(),
        &[],
    );
    let good: Vec<i64> = (1..=1500).filter(|r| !bad.contains(r)).collect();
    assert_eq!(written, good);
    assert_eq!(written.len() + rejected.len(), 1500);
    let table = DeltaTable::open(&store, "product_monitor").unwrap();
    assert_eq!(
        table.committed(PRODUCTS_TASK).await.unwrap(),
        ["exec-p1".to_string()].into()
    );
    assert!(
        read.files.iter().all(|f| !f.path.contains("_rejects")),
        "{:?}",
        read.files
    );
    let all = keys(&store).await;
    assert!(
        all.iter().all(|k| !k.contains("/_manifests/")),
        "manifests in delta mode: {all:?}"
    );
    assert!(leftovers(&all).is_empty(), "{:?}", leftovers(&all));
    sim.shutdown().await;
}

/// The fields of the table schema in a commit's `metaData`: `(name, type, nullable)`.
fn schema_fields(actions: &[serde_json::Value]) -> Option<Vec<(String, String, bool)>> {
    let meta = actions.iter().find_map(|a| a.get("metaData"))?;
    let schema: serde_json::Value =
        serde_json::from_str(meta["schemaString"].as_str().unwrap()).unwrap();
    Some(
        schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().to_string(),
                    f["type"].to_string(),
                    f["nullable"].as_bool().unwrap(),
                )
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_extra_fields_add_adds_a_nullable_column_that_older_rows_read_as_null() {
    // exec-n2 with rows, so the second run has values for the added column.
    let toml = scenario_toml().replace(
        "id = \"exec-n2\"\nrows = 0\n",
        "id = \"exec-n2\"\nrows = 40\n",
    );
    assert_ne!(toml, scenario_toml());
    let sc = Scenario::from_toml_str(&toml).unwrap();
    let sim = sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("news.json"), crate::evolution::NEWS_SCHEMA).unwrap();
    let news = |exec: &str, policies: &str| {
        format!(
            "[media]\nenabled = false\n\n[[tasks]]\nid = \"{NEWS_TASK}\"\nformat = \"csv\"\n\
             executions = [\"{exec}\"]\nschema = \"news.json\"\n{policies}\n"
        )
    };
    // First the schema's columns only (`published_at` ignored), then `add`.
    let first = run::run(&delta_config(
        dir.path(),
        &sim.base_url(),
        &news("exec-n1", ""),
        &[],
    ))
    .await
    .unwrap();
    assert_eq!(first.executions[0].outcome, Outcome::Ingested);
    assert_eq!(first.executions[0].fields_ignored, ["published_at"]);
    let second = run::run(&delta_config(
        dir.path(),
        &sim.base_url(),
        &news("exec-n2", "extra_fields = \"add\""),
        &[],
    ))
    .await
    .unwrap();
    let e = &second.executions[0];
    assert_eq!(
        (e.outcome, e.rows),
        (Outcome::Ingested, 40),
        "{:?}",
        e.error
    );
    assert_eq!(e.columns_added, ["published_at"]);

    // Version 0 created the table without the column; version 1 is the metadata update
    // that adds it, nullable, as a UTC timestamp.
    let store = local_store(&dir.path().join("out"));
    let commits = log_commits(&store, "news").await;
    assert_eq!(commits.keys().copied().collect::<Vec<_>>(), [0, 1]);
    let names =
        |fields: &[(String, String, bool)]| fields.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    let v0 = schema_fields(&commits[&0]).expect("v0 metaData");
    let v1 = schema_fields(&commits[&1]).expect("v1 adds a column: a metaData action");
    let base = [
        "headline",
        "comments",
        "section",
        "_titan_task_id",
        "_titan_execution_id",
        "_titan_row",
        "task_id",
        "date",
    ];
    assert_eq!(names(&v0), base);
    let mut want = base.map(String::from).to_vec();
    want.push("published_at".into());
    assert_eq!(names(&v1), want);
    assert_eq!(
        v1.last().unwrap(),
        &(
            "published_at".to_string(),
            "\"timestamp\"".to_string(),
            true
        )
    );
    assert!(v1.iter().all(|f| f.2), "every table column is nullable");

    // exec-n1's files lack the column, so a Delta reader reads it as null there; exec-n2
    // has the source's values in it.
    let read = read_table(&store, "news").await;
    let n1 = &read.by_exec["exec-n1"];
    for b in n1 {
        assert!(
            b.column_by_name("published_at")
                .is_none_or(|c| c.null_count() == b.num_rows()),
            "exec-n1 rows have published_at values"
        );
        let section = b.column_by_name("section").unwrap();
        assert_eq!(section.null_count(), b.num_rows());
    }
    let rows = source_rows(
        n1,
        &sc,
        NEWS_TASK,
        "exec-n1",
        &sim.base_url(),
        &["published_at"],
    );
    assert_eq!(rows, (1..=777).collect::<Vec<_>>());
    assert_eq!(
        assert_rows_match(
            &read.by_exec["exec-n2"],
            &sc,
            NEWS_TASK,
            "exec-n2",
            &sim.base_url()
        ),
        40
    );
    assert_eq!(read.by_exec.len(), 2);
    sim.shutdown().await;
}

/// A Delta reader decodes `add.path` and reads that key: for task ids that a store key and
/// a URI escape differently, the log's path must decode to the exact key written, and
/// vacuum must see those files as referenced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_log_paths_of_escaped_task_ids_decode_to_their_keys_and_vacuum_keeps_them() {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};
    use bytes::Bytes;
    use titan_connector::sink::delta::{CommitRequest, DataFile, files};

    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true)]));
    let table = DeltaTable::open(&store, "ds").unwrap();
    let mut paths = Vec::new();
    for (i, task) in ["plain", "with space", "per%cent", "hash#mark", "ü-umlaut"]
        .iter()
        .enumerate()
    {
        let key = titan_connector::sink::partition::PartitionKey {
            dataset: "ds".into(),
            task_id: task.to_string(),
            date: "2026-01-02".into(),
        };
        let path = files::part_path(&key, &format!("e{i}"), "r1", 0);
        store.put(&path, Bytes::from_static(b"PAR1")).await.unwrap();
        table
            .commit(CommitRequest {
                file_schema: schema.clone(),
                files: vec![DataFile {
                    path: path.clone(),
                    task_id: task.to_string(),
                    date: "2026-01-02".into(),
                    rows: 1,
                    bytes: 4,
                }],
                executions: vec![(task.to_string(), format!("e{i}"))],
            })
            .await
            .unwrap();
        paths.push(path);
    }
    let live: BTreeSet<String> = table
        .live_files()
        .await
        .unwrap()
        .iter()
        .map(|f| live_key("ds", f).to_string())
        .collect();
    let want: BTreeSet<String> = paths.iter().map(|p| p.to_string()).collect();
    assert_eq!(live, want);
    // One file nobody committed beside them, in an escaped partition: vacuum must delete
    // exactly that one.
    let stray_key = titan_connector::sink::partition::PartitionKey {
        dataset: "ds".into(),
        task_id: "hash#mark".into(),
        date: "2026-01-02".into(),
    };
    let stray = files::part_path(&stray_key, "e9", "r2", 0);
    store
        .put(&stray, Bytes::from_static(b"PAR1"))
        .await
        .unwrap();
    let done = files::vacuum(&table, Duration::ZERO).await.unwrap();
    assert_eq!(
        done.deleted,
        vec![stray.clone()],
        "deleted committed files?"
    );
    assert!(!store.exists(&stray).await.unwrap());
    for p in &paths {
        assert!(store.exists(p).await.unwrap(), "{p}");
    }
}
