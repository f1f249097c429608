//! The pipeline against the simulator: exact rows, layout, manifests, re-runs.

use std::collections::BTreeMap;

use titan_connector::report::Outcome;
use titan_connector::run;
use titan_connector::sink::manifest::Manifest;

use crate::util::*;

const BOTH_TASKS: &str = r#"
[[tasks]]
id = "task-products"

[[tasks]]
id = "task-news"
format = "csv"
"#;

fn outcomes(report: &titan_connector::report::RunReport) -> BTreeMap<String, (Outcome, u64)> {
    report
        .executions
        .iter()
        .map(|e| (e.execution_id.clone(), (e.outcome, e.rows)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_terminal_state_json_and_csv_land_as_the_exact_source_rows() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &sim.base_url(), BOTH_TASKS);
    let report = run::run(&cfg).await.unwrap();

    let got = outcomes(&report);
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
    assert_eq!(got, want);
    assert!(
        report.has_failures(),
        "failed/cancelled executions make the run partial"
    );
    let p2 = report
        .executions
        .iter()
        .find(|e| e.execution_id == "exec-p2")
        .unwrap();
    assert_eq!(
        p2.execution_status.as_deref(),
        Some("completed_with_errors")
    );
    assert_eq!(p2.source_record_count, Some(321));

    let out = dir.path().join("out");
    let files: Vec<String> = parquet_files(&out)
        .iter()
        .map(|p| p.strip_prefix(&out).unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files,
        vec![
            "news_headlines/task_id=task-news/date=2026-11-26/exec-n1-0.parquet",
            "product_monitor/task_id=task-products/date=2026-11-27/exec-p1-0.parquet",
            // created 2026-11-28T23:30-02:00 is the 29th in UTC
            "product_monitor/task_id=task-products/date=2026-11-29/exec-p2-0.parquet",
        ]
    );

    let sc = scenario();
    let base = sim.base_url();
    for (task_id, exec, file, n) in [
        (PRODUCTS_TASK, "exec-p1", &files[1], 1500),
        (PRODUCTS_TASK, "exec-p2", &files[2], 321),
        (NEWS_TASK, "exec-n1", &files[0], 777),
    ] {
        let batches = read_parquet(&out.join(file));
        assert_eq!(assert_rows_match(&batches, &sc, task_id, exec, &base), n);
    }

    // Manifests: one per execution, counts equal to the files.
    let m: Manifest = Manifest::from_slice(
        &std::fs::read(out.join("product_monitor/_manifests/task-products/exec-p1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (m.rows, m.records_read, m.source_record_count),
        (1500, 1500, Some(1500))
    );
    assert_eq!(m.files.len(), 1);
    assert_eq!(
        m.files[0].path,
        format!("product_monitor/{}", &files[1]["product_monitor/".len()..])
    );
    assert_eq!(
        m.files[0].bytes,
        std::fs::metadata(out.join(&files[1])).unwrap().len()
    );
    let failed: Manifest = Manifest::from_slice(
        &std::fs::read(out.join("product_monitor/_manifests/task-products/exec-p3.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(failed.execution_status, "failed");
    assert!(failed.files.is_empty());
    // Staged parts end in `.tmp`: look for any file at all, not just Parquet.
    let leftovers: Vec<_> = walk_files(&out.join("product_monitor/_staging"));
    assert!(leftovers.is_empty(), "left in staging: {leftovers:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_ingests_nothing_and_rewrites_nothing() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &sim.base_url(), BOTH_TASKS);
    run::run(&cfg).await.unwrap();
    let out = dir.path().join("out");
    let before: Vec<_> = parquet_files(&out)
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).unwrap();
            (p, m.len(), m.modified().unwrap())
        })
        .collect();
    let exports_before = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("/results/"))
        .count();

    let again = run::run(&cfg).await.unwrap();
    assert!(
        again
            .executions
            .iter()
            .all(|e| e.outcome == Outcome::AlreadyIngested)
    );
    assert_eq!(again.executions.len(), 6);
    assert!(!again.has_failures(), "nothing failed in the second run");
    let after: Vec<_> = parquet_files(&out)
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).unwrap();
            (p, m.len(), m.modified().unwrap())
        })
        .collect();
    assert_eq!(before, after);
    let exports_after = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("/results/"))
        .count();
    assert_eq!(exports_before, exports_after, "no export downloaded again");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_roll_at_file_rows_and_leftovers_of_a_crashed_run_are_replaced() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // What a crashed earlier run with smaller parts could have left: parts 0..5 moved
    // into place (this run writes 3), and a staged file.
    let part_dir = out.join("product_monitor/task_id=task-products/date=2026-11-27");
    std::fs::create_dir_all(&part_dir).unwrap();
    for n in 0..5 {
        std::fs::write(part_dir.join(format!("exec-p1-{n}.parquet")), b"stale").unwrap();
    }
    let staged = out.join("product_monitor/_staging/exec-p1/oldrun");
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::write(staged.join("part-0.parquet.tmp"), b"partial").unwrap();

    let extra = r#"
[run]
file_rows = 600
batch_rows = 256

[[tasks]]
id = "task-products"
executions = ["exec-p1"]
"#;
    let cfg = config(dir.path(), &sim.base_url(), extra);
    let report = run::run(&cfg).await.unwrap();
    assert_eq!(outcomes(&report)["exec-p1"], (Outcome::Ingested, 1500));

    let names: Vec<String> = parquet_files(&part_dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec![
            "exec-p1-0.parquet",
            "exec-p1-1.parquet",
            "exec-p1-2.parquet"
        ]
    );
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    for f in parquet_files(&part_dir) {
        let b = read_parquet(&f);
        sizes.push(b.iter().map(|b| b.num_rows()).sum::<usize>());
        all.extend(b);
    }
    assert_eq!(sizes, vec![600, 600, 300]);
    assert_eq!(
        assert_rows_match(&all, &scenario(), PRODUCTS_TASK, "exec-p1", &sim.base_url()),
        1500
    );
    assert!(
        !staged.join("part-0.parquet.tmp").exists(),
        "stale staging removed"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_selects_only_the_newest_execution() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[[tasks]]
id = "task-news"
executions = "latest"
dataset = "news"
"#;
    let cfg = config(dir.path(), &sim.base_url(), extra);
    let report = run::run(&cfg).await.unwrap();
    let got = outcomes(&report);
    assert_eq!(got.len(), 1);
    assert_eq!(got["exec-n2"], (Outcome::Ingested, 0));
    assert!(
        dir.path()
            .join("out/news/_manifests/task-news/exec-n2.json")
            .exists()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_split_the_executions_exactly_once() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..3 {
        let path = write_config(dir.path(), &sim.base_url(), BOTH_TASKS);
        let env = titan_connector::config::Env::from_pairs([(
            titan_connector::config::env::vars::TITAN_TOKEN,
            TOKEN.to_string(),
        )]);
        let overrides = titan_connector::config::Overrides {
            shard: Some(format!("{i}/3").parse().unwrap()),
            ..Default::default()
        };
        let cfg = titan_connector::config::Config::load(&path, &env, &overrides).unwrap();
        let report = run::run(&cfg).await.unwrap();
        for e in &report.executions {
            assert_ne!(
                e.outcome,
                Outcome::AlreadyIngested,
                "another shard took {}",
                e.execution_id
            );
            *seen.entry(e.execution_id.clone()).or_default() += 1;
        }
    }
    let all: Vec<&str> = seen.keys().map(String::as_str).collect();
    assert_eq!(
        all,
        [
            "exec-n1", "exec-n2", "exec-p1", "exec-p2", "exec-p3", "exec-p4"
        ]
    );
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    let rows: usize = parquet_files(&dir.path().join("out"))
        .iter()
        .flat_map(|f| read_parquet(f))
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 1500 + 321 + 777);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_quarantined_and_written_plus_rejected_equals_the_export() {
    let toml = scenario_toml().replacen(
        "name = \"Product monitor\"\n",
        "name = \"Product monitor\"\nbad_row_rate = 0.05\n",
        1,
    );
    let sc = titan_sim::Scenario::from_toml_str(&toml).unwrap();
    let sim = titan_sim::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let extra = "[media]\nenabled = false\n\n[[tasks]]\nid = \"task-products\"\nexecutions = [\"exec-p1\"]\n";
    let cfg = config(dir.path(), &sim.base_url(), extra);
    let report = run::run(&cfg).await.unwrap();
    let e = &report.executions[0];
    assert_eq!(e.outcome, Outcome::Ingested, "{:?}", e.error);
    let task = task(&sc, PRODUCTS_TASK);
    let bad: Vec<u64> = (0..1500)
        .filter(|&r| titan_sim::data::bad_cell(sc.seed, task, "exec-p1", r).is_some())
        .map(|r| r + 1)
        .collect();
    assert!(bad.len() > 20, "the knob produced {} bad rows", bad.len());
    assert_eq!(e.rejected_rows, bad.len() as u64);
    assert_eq!(e.rows + e.rejected_rows, 1500);
    // The quarantine file holds exactly the bad rows, each with its reason and record.
    let out = dir.path().join("out");
    let jsonl = std::fs::read_to_string(
        out.join("product_monitor/_rejects/task_id=task-products/exec-p1.jsonl"),
    )
    .unwrap();
    let rows: Vec<u64> = jsonl
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()), "{l}");
            assert!(v["record"].is_object(), "{l}");
            v["row"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(rows, bad);
    // The written rows are exactly the good ones, with their values.
    let batches: Vec<_> = parquet_files(&out)
        .iter()
        .flat_map(|f| read_parquet(f))
        .collect();
    let written: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    assert_eq!(written, 1500 - bad.len() as u64);
    let m: titan_connector::sink::manifest::Manifest =
        titan_connector::sink::manifest::Manifest::from_slice(
            &std::fs::read(out.join("product_monitor/_manifests/task-products/exec-p1.json"))
                .unwrap(),
        )
        .unwrap();
    assert_eq!(m.rejected_rows, bad.len() as u64);
    assert_eq!(m.rows + m.rejected_rows, m.records_read);
    sim.shutdown().await;
}

/// A task renamed in Titan keeps landing in the dataset of its first ingest: a dataset
/// that followed the name would re-ingest the task's whole history into a new folder.
#[tokio::test]
async fn a_renamed_task_keeps_its_dataset_and_nothing_is_ingested_twice() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let first_sim = start_sim().await;
    let cfg = config(
        dir.path(),
        &first_sim.base_url(),
        "[[tasks]]\nid = \"task-products\"\n",
    );
    let first = run::run(&cfg).await.unwrap();
    assert!(
        first
            .executions
            .iter()
            .all(|e| e.dataset == "product_monitor")
    );
    let ingested = first.totals.ingested;
    assert!(ingested > 0);
    first_sim.shutdown().await;

    // The same task, renamed, served again.
    let renamed = scenario_toml().replace("name = \"Product monitor\"", "name = \"Shoe prices\"");
    let sim = titan_sim::start(
        titan_sim::Scenario::from_toml_str(&renamed).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let cfg = config(
        dir.path(),
        &sim.base_url(),
        "[[tasks]]\nid = \"task-products\"\n",
    );
    let again = run::run(&cfg).await.unwrap();
    assert_eq!(again.totals.ingested, 0, "{:?}", again.totals);
    assert_eq!(again.totals.already_ingested, first.executions.len());
    assert!(
        again
            .executions
            .iter()
            .all(|e| e.dataset == "product_monitor")
    );
    assert!(!out.join("shoe_prices").exists());
}
