//! Delta-mode harness: configs with `table_format = "delta"`, and a Delta table read back
//! the way a Delta reader reads it — only the data files the log's current version
//! references (`DeltaTable::live_files`), through a `Store` (local disk or S3) — then
//! compared with the simulator's source, row for row and `txn` for `txn`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path as FsPath;

use arrow::array::{AsArray, RecordBatch};
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use titan_connector::config::{Config, Env, Overrides, env::vars};
use titan_connector::sink::delta::{DeltaTable, LiveFile};
use titan_connector::sink::store::{Store, StoreConfig};
use titan_sim::Scenario;
use url::Url;

use crate::util::*;

/// The variable that turns delta mode on, as a deployment would set it.
pub const TABLE_FORMAT_VAR: &str = "TITAN_CONNECTOR_STORE_TABLE_FORMAT";
pub const CHECKPOINT_VAR: &str = "TITAN_CONNECTOR_STORE_CHECKPOINT_INTERVAL";
pub const COMBINE_BELOW_VAR: &str = "TITAN_CONNECTOR_RUN_COMBINE_BELOW_MB";

/// A synthetic environment with `token`, delta mode, and `extra` variables.
pub fn delta_env(token: &str, extra: &[(&str, &str)]) -> Env {
    let mut pairs = vec![
        (vars::TITAN_TOKEN.to_string(), token.to_string()),
        (TABLE_FORMAT_VAR.to_string(), "delta".to_string()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Env::from_pairs(pairs)
}

/// Loads the config file at `path` in delta mode (see [`delta_env`]).
pub fn load_delta(path: &FsPath, token: &str, extra: &[(&str, &str)]) -> Config {
    Config::load(path, &delta_env(token, extra), &Overrides::default()).unwrap()
}

/// [`config`] in delta mode: `titan.toml` in `dir`, the store at `dir/out`.
pub fn delta_config(dir: &FsPath, sim_url: &str, extra: &str, env: &[(&str, &str)]) -> Config {
    let path = write_config(dir, sim_url, extra);
    load_delta(&path, TOKEN, env)
}

/// The store at a local folder.
pub fn local_store(dir: &FsPath) -> Store {
    Store::open(&StoreConfig {
        url: Url::from_directory_path(dir).unwrap(),
        options: vec![],
    })
    .unwrap()
}

/// Every key in the store, sorted.
pub async fn keys(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = store
        .list(&Path::from(""))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.location.to_string())
        .collect();
    v.sort();
    v
}

/// The datasets that are Delta tables: first segments of `<dataset>/_delta_log/…` keys.
pub async fn delta_datasets(store: &Store) -> Vec<String> {
    let set: BTreeSet<String> = keys(store)
        .await
        .iter()
        .filter_map(|k| {
            let mut parts = k.split('/');
            let ds = parts.next()?;
            (parts.next()? == "_delta_log").then(|| ds.to_string())
        })
        .collect();
    set.into_iter().collect()
}

/// One table as a Delta reader sees it.
pub struct TableRead {
    /// The current version's data files (paths relative to the table root).
    pub files: Vec<LiveFile>,
    /// Their rows, split by `_titan_execution_id`.
    pub by_exec: BTreeMap<String, Vec<RecordBatch>>,
}

/// The store key of a live file: the log's path is a relative URI (percent-encoded).
pub fn live_key(dataset: &str, file: &LiveFile) -> Path {
    Path::from_url_path(format!("{dataset}/{}", file.path)).unwrap()
}

/// All batches of one Parquet object in the store.
pub async fn read_object(store: &Store, key: &Path) -> Vec<RecordBatch> {
    let bytes = store
        .get_opt(key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("the log references {key}, which is not in the store"));
    ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// Reads `dataset`'s table: only the files its log references. Checks each file against
/// its `add` action on the way: size, `numRecords`, and partition values equal to the
/// path's `task_id=`/`date=` folders and to the rows' `_titan_task_id`.
pub async fn read_table(store: &Store, dataset: &str) -> TableRead {
    let table = DeltaTable::open(store, dataset).unwrap();
    let files = table.live_files().await.unwrap();
    let mut by_exec: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
    let mut paths = BTreeSet::new();
    for f in &files {
        assert!(paths.insert(f.path.clone()), "{} added twice", f.path);
        let key = live_key(dataset, f);
        let task = &f.partition_values["task_id"];
        let date = &f.partition_values["date"];
        let rel = key.as_ref().strip_prefix(&format!("{dataset}/")).unwrap();
        assert!(
            rel.starts_with(&format!("task_id={task}/date={date}/")),
            "{rel} is not in its partition ({task}, {date})"
        );
        let size = store.size(&key).await.unwrap();
        assert_eq!(size, Some(f.size as u64), "size of {key}");
        let batches = read_object(store, &key).await;
        let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(f.rows, Some(n as u64), "numRecords of {key}");
        for b in &batches {
            let tasks = b
                .column_by_name("_titan_task_id")
                .unwrap()
                .as_string::<i32>();
            assert!(
                tasks.iter().all(|t| t == Some(task.as_str())),
                "{key}: rows of another task than its partition's {task}"
            );
            split_by_execution(b, &mut by_exec);
        }
    }
    TableRead { files, by_exec }
}

/// Adds `b`'s rows to `by_exec`, one filtered batch per execution id in it.
fn split_by_execution(b: &RecordBatch, by_exec: &mut BTreeMap<String, Vec<RecordBatch>>) {
    let ids = b
        .column_by_name("_titan_execution_id")
        .unwrap()
        .as_string::<i32>()
        .clone();
    let distinct: BTreeSet<&str> = ids.iter().flatten().collect();
    for id in distinct {
        let mask =
            arrow::compute::kernels::cmp::eq(&ids, &arrow::array::StringArray::new_scalar(id))
                .unwrap();
        let rows = arrow::compute::filter_record_batch(b, &mask).unwrap();
        by_exec.entry(id.to_string()).or_default().push(rows);
    }
}

/// Data files (`<dataset>/task_id=…/….parquet`) in the store that the table's current
/// version does not reference: what crashes left, invisible to Delta readers.
pub async fn unreferenced_files(store: &Store, dataset: &str) -> Vec<String> {
    let live: BTreeSet<String> = DeltaTable::open(store, dataset)
        .unwrap()
        .live_files()
        .await
        .unwrap()
        .iter()
        .map(|f| live_key(dataset, f).to_string())
        .collect();
    keys(store)
        .await
        .into_iter()
        .filter(|k| k.starts_with(&format!("{dataset}/task_id=")) && k.ends_with(".parquet"))
        .filter(|k| !live.contains(k))
        .collect()
}

/// Whether the executions with this final status have results (and so rows).
pub fn has_results(final_status: &str) -> bool {
    matches!(final_status, "completed" | "completed_with_errors")
}

/// The Delta tables in `store` hold exactly the source: every execution of `sc` (all
/// terminal) is committed by its `txn` in exactly one table, every execution with results
/// reads back as exactly the simulator's rows (no row missing, none twice), executions
/// without results have no rows, no table holds rows of anything else, and delta mode
/// wrote no manifests. Returns the rows.
pub async fn assert_table_equals_source(store: &Store, sc: &Scenario, base_url: &str) -> u64 {
    let datasets = delta_datasets(store).await;
    assert!(!datasets.is_empty(), "no Delta table in {}", store.url());
    let mut by_exec: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
    let mut committed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ds in &datasets {
        let read = read_table(store, ds).await;
        for (exec, batches) in read.by_exec {
            assert!(
                !by_exec.contains_key(&exec),
                "{exec} has rows in two tables"
            );
            by_exec.insert(exec, batches);
        }
        let table = DeltaTable::open(store, ds).unwrap();
        for t in &sc.tasks {
            for exec in table.committed(&t.id).await.unwrap() {
                assert!(
                    committed
                        .entry(t.id.clone())
                        .or_default()
                        .insert(exec.clone()),
                    "{}:{exec} committed in two tables",
                    t.id
                );
            }
        }
    }
    let want: BTreeMap<String, BTreeSet<String>> = sc
        .tasks
        .iter()
        .filter(|t| !t.executions.is_empty())
        .map(|t| {
            (
                t.id.clone(),
                t.executions.iter().map(|e| e.id.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        committed, want,
        "the log's txns are the source's executions"
    );

    let mut total = 0;
    for t in &sc.tasks {
        for e in &t.executions {
            let batches = by_exec.remove(&e.id).unwrap_or_default();
            if !has_results(&e.final_status) {
                assert!(batches.is_empty(), "{} has no results but has rows", e.id);
                continue;
            }
            let n = if batches.iter().all(|b| b.num_rows() == 0) {
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
        "rows of unknown executions: {:?}",
        by_exec.keys()
    );
    let manifests: Vec<String> = keys(store)
        .await
        .into_iter()
        .filter(|k| k.split('/').any(|seg| seg == "_manifests"))
        .collect();
    assert!(
        manifests.is_empty(),
        "manifests in delta mode: {manifests:?}"
    );
    total
}

/// The JSON commits in `dataset`'s `_delta_log/`, by version, each as its actions.
pub async fn log_commits(store: &Store, dataset: &str) -> BTreeMap<u64, Vec<serde_json::Value>> {
    let mut out = BTreeMap::new();
    for m in store
        .list(&Path::from(format!("{dataset}/_delta_log")))
        .await
        .unwrap()
    {
        let Some(name) = m.location.filename() else {
            continue;
        };
        let Some(version) = name
            .strip_suffix(".json")
            .and_then(|v| v.parse::<u64>().ok())
        else {
            continue;
        };
        let bytes = store.get_opt(&m.location).await.unwrap().unwrap();
        let actions = std::str::from_utf8(&bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        out.insert(version, actions);
    }
    out
}

/// `(appId, added paths)` of one commit's actions: its executions and its files.
pub fn txns_and_adds(actions: &[serde_json::Value]) -> (Vec<String>, Vec<String>) {
    let txns = actions
        .iter()
        .filter_map(|a| a["txn"]["appId"].as_str().map(str::to_string))
        .collect();
    let adds = actions
        .iter()
        .filter_map(|a| a["add"]["path"].as_str().map(str::to_string))
        .collect();
    (txns, adds)
}
