//! `compact` and `vacuum` through the real binary, on a Delta table written by the table
//! layer on local disk: exit codes, summaries, JSON logs, rows unchanged.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use bytes::Bytes;
use object_store::path::Path as StorePath;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use titan_connector::sink::delta::{CommitOutcome, CommitRequest, DataFile, DeltaTable};
use titan_connector::sink::store::Store;

use crate::util::*;

const BIN: &str = env!("CARGO_BIN_EXE_titan-connector");

async fn run_bin(args: &[&str], dir: &Path) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("TITAN_TOKEN")
        .env_remove("TITAN_API_URL")
        .env_remove("TITAN_CONNECTOR_STORE")
        .env_remove("TITAN_CONNECTOR_STORE_URL")
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn local_store(root: &Path) -> Store {
    std::fs::create_dir_all(root).unwrap();
    let fs = object_store::local::LocalFileSystem::new_with_prefix(root).unwrap();
    Store::from_object_store(Arc::new(fs), format!("file://{}", root.display()))
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, true),
        Field::new("price", DataType::Int64, true),
        Field::new("_titan_execution_id", DataType::Utf8, false),
        Field::new("_titan_row", DataType::Int64, false),
    ]))
}

/// Commits executions `e<i>` (`i` in `execs`) of `rows` rows each into `(task, date)` of
/// the `products` table, one small file and one commit each, as the Delta sink does.
pub(crate) async fn ingest(
    store: &Store,
    task: &str,
    date: &str,
    execs: std::ops::Range<usize>,
    rows: usize,
) {
    let table = DeltaTable::open(store, "products").unwrap();
    let s = schema();
    for i in execs {
        let exec = format!("e{i}");
        let batch = RecordBatch::try_new(
            Arc::clone(&s),
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|r| format!("product {i}/{r}")),
                )) as ArrayRef,
                Arc::new(Int64Array::from_iter_values(
                    (0..rows as i64).map(|r| r * 7 + i as i64),
                )),
                Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                    exec.as_str(),
                    rows,
                ))),
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            ],
        )
        .unwrap();
        let mut buf = Vec::new();
        // Compressed like the run's writer (zstd level 1).
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap()))
            .build();
        let mut w = ArrowWriter::try_new(&mut buf, Arc::clone(&s), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let path = StorePath::from(format!(
            "products/task_id={task}/date={date}/{exec}-r1-0.parquet"
        ));
        let bytes = buf.len() as u64;
        store.put(&path, Bytes::from(buf)).await.unwrap();
        let file = DataFile {
            path,
            task_id: task.to_string(),
            date: date.to_string(),
            rows: rows as u64,
            bytes,
        };
        let done = table
            .commit(CommitRequest {
                file_schema: Arc::clone(&s),
                files: vec![file],
                executions: vec![(task.to_string(), exec.clone())],
            })
            .await
            .unwrap();
        assert!(matches!(done, CommitOutcome::Committed { .. }));
    }
}

/// The `products` table's rows, sorted, and its live file count.
pub(crate) async fn table_rows(store: &Store) -> (Vec<String>, usize) {
    let table = DeltaTable::open(store, "products").unwrap();
    let live = table.live_files().await.unwrap().len();
    (dataset_rows(store, "products").await, live)
}

fn parquet_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".parquet")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_then_vacuum_keep_the_rows_and_leave_one_file() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "http://127.0.0.1:9", "");
    let out = dir.path().join("out");
    let store = local_store(&out);
    ingest(&store, "t1", "2026-01-02", 0..40, 25).await;
    ingest(&store, "t2", "2026-01-03", 40..41, 25).await;
    let (rows, files) = table_rows(&store).await;
    assert_eq!((rows.len(), files), (41 * 25, 41));
    let partition = out.join("products/task_id=t1/date=2026-01-02");
    let table_url = format!("file://{}/products", out.display());

    // The config's store; no token in the environment: compaction never calls Titan.
    let o = run_bin(&["compact", "--config", "titan.toml"], dir.path()).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(&format!(
            "{table_url}: task_id=t1 date=2026-01-02: 40 files ("
        )) && lines[0].contains(") -> 1 (")
            && lines[0].ends_with(", 1000 rows, version 41"),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{table_url}: 1 of 2 partition(s) compacted: 40 files ("
        )),
        "{text}"
    );
    assert_eq!(table_rows(&store).await, (rows.clone(), 2));
    assert_eq!(parquet_files(&partition), 41, "old files stay until vacuum");

    // Again: nothing left to do.
    let o = run_bin(&["compact", "--store", "out", "--task", "t1"], dir.path()).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("{table_url}: 0 of 1 partition(s) compacted: 0 files (0 B) -> 0 (0 B)\n")
    );

    // A dry run lists the 40 replaced files and deletes nothing.
    let o = run_bin(
        &["vacuum", "--store", "out", "--retention", "0s", "--dry-run"],
        dir.path(),
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("would delete products/task_id=t1/date=2026-01-02/e"))
            .count(),
        40,
        "{text}"
    );
    assert!(
        text.lines().last().unwrap().starts_with(&format!(
            "{table_url}: would delete 40 unreferenced file(s) ("
        )),
        "{text}"
    );
    assert_eq!(parquet_files(&partition), 41);

    // The default retention keeps files removed just now.
    let o = run_bin(&["vacuum", "--store", "out"], dir.path()).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("{table_url}: deleted 0 unreferenced file(s) (0 B); kept 40 younger than 1day\n")
    );

    // Zero retention deletes them; the JSON log says so.
    let o = run_bin(
        &[
            "--log-format",
            "json",
            "vacuum",
            "--store",
            "out",
            "--retention",
            "0s",
            "--dataset",
            "products",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let logged: Vec<serde_json::Value> = stderr(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let done = logged
        .iter()
        .find(|l| l["message"] == "vacuum done")
        .unwrap_or_else(|| panic!("{logged:?}"));
    assert_eq!(done["deleted"], 40);
    assert_eq!(done["kept"], 0);
    assert_eq!(done["table"], table_url);
    assert_eq!(parquet_files(&partition), 1);
    assert_eq!(table_rows(&store).await, (rows, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_mistakes_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(&dir.path().join("out"));
    ingest(&store, "t1", "2026-01-02", 0..1, 1).await;

    let o = run_bin(
        &["compact", "--store", "out", "--dataset", "orders"],
        dir.path(),
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "error: no Delta table at file://{}/orders (no `_delta_log/` there)\n",
            dir.path().join("out").display()
        )
    );
    let o = run_bin(
        &["compact", "--store", "out", "--date", "2026-13-01"],
        dir.path(),
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`2026-13-01` is not a date (YYYY-MM-DD)"),
        "{}",
        stderr(&o)
    );
    let o = run_bin(&["vacuum"], dir.path()).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--config <FILE>"), "{}", stderr(&o));
    let o = run_bin(&["vacuum", "--config", "missing.toml"], dir.path()).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.toml"), "{}", stderr(&o));
    // An empty store has no tables: nothing to do is not an error.
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    let o = run_bin(&["vacuum", "--store", "empty"], dir.path()).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("no Delta tables in file://"),
        "{}",
        stdout(&o)
    );

    let o = run_bin(&["man"], dir.path()).await;
    let page = stdout(&o);
    let compact = page
        .split(".SH \"TITAN-CONNECTOR COMPACT\"")
        .nth(1)
        .unwrap();
    for flag in [
        "\\-\\-target\\-mb",
        "\\-\\-task",
        "\\-\\-date",
        "\\-\\-dataset",
    ] {
        assert!(compact.contains(flag), "{flag}");
    }
    let vacuum = page.split(".SH \"TITAN-CONNECTOR VACUUM\"").nth(1).unwrap();
    for flag in ["\\-\\-retention", "\\-\\-dry\\-run"] {
        assert!(vacuum.contains(flag), "{flag}");
    }
}

/// Measures compaction of 200 small files (one per execution, 500 rows each) in one
/// partition: files and bytes before and after, and how long `compact` and `vacuum` take.
/// Run by hand: `cargo test --test it measure_compaction -- --ignored --nocapture`
/// (`MEASURE_ROWS=N` rows per execution instead of 500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn measure_compaction_of_200_small_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let store = local_store(&out);
    let rows_each = std::env::var("MEASURE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    ingest(&store, "t1", "2026-01-02", 0..200, rows_each).await;
    let partition = out.join("products/task_id=t1/date=2026-01-02");
    let size = |dir: &Path| -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
            .map(|e| e.metadata().unwrap().len())
            .sum()
    };
    let (rows, files) = table_rows(&store).await;
    let bytes = size(&partition);
    let started = std::time::Instant::now();
    // Under GNU time for the peak RSS, where it is installed.
    let o = if Path::new("/usr/bin/time").exists() {
        tokio::process::Command::new("/usr/bin/time")
            .args(["-f", "peak RSS %M KiB", BIN, "compact", "--store", "out"])
            .current_dir(dir.path())
            .output()
            .await
            .unwrap()
    } else {
        run_bin(&["compact", "--store", "out"], dir.path()).await
    };
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let started = std::time::Instant::now();
    let v = run_bin(
        &["vacuum", "--store", "out", "--retention", "0s"],
        dir.path(),
    )
    .await;
    let vacuum_took = started.elapsed();
    assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));
    let (after_rows, after_files) = table_rows(&store).await;
    assert_eq!(after_rows, rows);
    println!(
        "before: {files} files, {bytes} bytes, {} rows\nafter:  {after_files} files, {} bytes\ncompact {took:.2?} ({}), vacuum {vacuum_took:.2?}\n{}{}",
        rows.len(),
        size(&partition),
        stderr(&o).trim(),
        stdout(&o),
        stdout(&v)
    );
}

/// The whole path: `run` in delta mode writes one file per small execution (combining
/// off), `compact` merges them, a second `run` finds every execution still committed and
/// adds nothing, and the rows are the same throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_written_by_run_compacts_and_the_next_run_adds_nothing() {
    let mut toml = format!(
        r#"
seed = 7
token = "{TOKEN}"

[[tasks]]
id = "task-small"
name = "Small monitor"
[tasks.output_schema]
type = "object"
[tasks.output_schema.properties]
product_name = {{ type = "string" }}
price = {{ type = "number" }}
"#
    );
    for i in 0..12 {
        toml.push_str(&format!(
            "\n[[tasks.executions]]\nid = \"exec-{i:02}\"\nrows = {}\ncreated_at = \"2026-11-27T{:02}:00:00Z\"\n",
            20 + i,
            i + 1
        ));
    }
    let scenario = titan_sim::Scenario::from_toml_str(&toml).unwrap();
    let sim = titan_sim::start(scenario, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &sim.base_url(),
        "[[tasks]]\nid = \"task-small\"\n",
    );
    let run = || async {
        tokio::process::Command::new(BIN)
            .args(["run", "--config", "titan.toml"])
            .current_dir(dir.path())
            .env("TITAN_TOKEN", TOKEN)
            .env("TITAN_CONNECTOR_STORE_TABLE_FORMAT", "delta")
            .env("TITAN_CONNECTOR_RUN_COMBINE_BELOW_MB", "0")
            .env_remove("RUST_LOG")
            .output()
            .await
            .unwrap()
    };
    let o = run().await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = dir.path().join("out");
    let store = local_store(&out);
    let datasets = titan_connector::sink::delta::files::table_datasets(&store)
        .await
        .unwrap();
    assert_eq!(datasets.len(), 1, "{datasets:?}");
    let table = DeltaTable::open(&store, &datasets[0]).unwrap();
    let before = table.live_files().await.unwrap();
    assert_eq!(before.len(), 12);
    let rows_before = dataset_rows(&store, &datasets[0]).await;
    assert_eq!(rows_before.len(), (20..32).sum::<usize>());

    let o = run_bin(&["compact", "--config", "titan.toml"], dir.path()).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(": 12 files ("), "{}", stdout(&o));
    let table = DeltaTable::open(&store, &datasets[0]).unwrap();
    assert_eq!(table.live_files().await.unwrap().len(), 1);
    assert_eq!(dataset_rows(&store, &datasets[0]).await, rows_before);
    assert_eq!(table.committed("task-small").await.unwrap().len(), 12);
    let version = table.version().await.unwrap();

    // The log still holds every execution: the next run commits nothing.
    let o = run().await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table = DeltaTable::open(&store, &datasets[0]).unwrap();
    assert_eq!(table.version().await.unwrap(), version);
    assert_eq!(dataset_rows(&store, &datasets[0]).await, rows_before);
    sim.shutdown().await;
}

/// Every row of a dataset's table with its partition values, sorted.
async fn dataset_rows(store: &Store, dataset: &str) -> Vec<String> {
    let table = DeltaTable::open(store, dataset).unwrap();
    let mut rows = Vec::new();
    for f in table.live_files().await.unwrap() {
        let bytes = store
            .get_opt(&StorePath::from(format!("{dataset}/{}", f.path)))
            .await
            .unwrap()
            .unwrap();
        for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
        {
            let batch = batch.unwrap();
            let fmts: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).unwrap())
                .collect();
            for i in 0..batch.num_rows() {
                let mut row = format!(
                    "{}|{}",
                    f.partition_values["task_id"], f.partition_values["date"]
                );
                for (field, fmt) in batch.schema().fields().iter().zip(&fmts) {
                    row.push_str(&format!("|{}={}", field.name(), fmt.value(i)));
                }
                rows.push(row);
            }
        }
    }
    rows.sort();
    rows
}
