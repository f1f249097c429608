//! The Delta table layer on an in-memory store and on local disk: commits, txn ids,
//! races, schema evolution, checkpoints.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;

use super::*;
use crate::sink::store::Store;

pub(super) fn schema(extra: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("name", DataType::Utf8, true),
        Field::new("_titan_execution_id", DataType::Utf8, false),
        Field::new("_titan_row", DataType::Int64, false),
    ];
    if extra {
        fields.push(Field::new("price", DataType::Int64, true));
    }
    Arc::new(Schema::new(fields))
}

pub(super) fn mem_store() -> Store {
    Store::from_object_store(Arc::new(InMemory::new()), "memory:///")
}

/// Writes a real Parquet file of `rows` rows for `execution` and describes it.
pub(super) async fn write_file(
    store: &Store,
    schema: &SchemaRef,
    task: &str,
    date: &str,
    execution: &str,
    rows: usize,
) -> DataFile {
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("n{i}")),
        )),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            execution, rows,
        ))),
        Arc::new(Int64Array::from_iter_values(0..rows as i64)),
    ];
    if schema.fields().len() == 4 {
        columns.push(Arc::new(Int64Array::from_iter_values(
            (0..rows as i64).map(|i| i * 10),
        )));
    }
    let batch = RecordBatch::try_new(Arc::clone(schema), columns).expect("batch");
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, Arc::clone(schema), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    let path = Path::from(format!(
        "ds/task_id={task}/date={date}/{execution}-run1-0.parquet"
    ));
    let bytes = buf.len() as u64;
    store.put(&path, Bytes::from(buf)).await.expect("put");
    DataFile {
        path,
        task_id: task.to_string(),
        date: date.to_string(),
        rows: rows as u64,
        bytes,
    }
}

pub(super) fn request(
    schema: &SchemaRef,
    files: Vec<DataFile>,
    executions: &[(&str, &str)],
) -> CommitRequest {
    CommitRequest {
        file_schema: Arc::clone(schema),
        files,
        executions: executions
            .iter()
            .map(|(t, e)| (t.to_string(), e.to_string()))
            .collect(),
    }
}

/// The actions of commit `version`, one JSON value a line.
pub(super) async fn log_entry(store: &Store, version: u64) -> Vec<serde_json::Value> {
    let path = Path::from(format!("ds/_delta_log/{version:020}.json"));
    let bytes = store
        .get_opt(&path)
        .await
        .expect("get")
        .expect("commit exists");
    std::str::from_utf8(&bytes)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

pub(super) fn set(items: &[&str]) -> HashSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_commit_creates_a_partitioned_table_with_adds_and_txns() {
    let store = mem_store();
    let table = DeltaTable::open(&store, "ds").expect("open");
    assert_eq!(table.version().await.expect("version"), None);
    assert!(table.committed("t1").await.expect("committed").is_empty());

    let s = schema(false);
    let a = write_file(&store, &s, "t1", "2026-01-02", "e1", 3).await;
    let b = write_file(&store, &s, "t1", "2026-01-03", "e1", 2).await;
    let outcome = table
        .commit(request(&s, vec![a.clone(), b.clone()], &[("t1", "e1")]))
        .await
        .expect("commit");
    assert_eq!(outcome, CommitOutcome::Committed { version: 0 });

    let actions = log_entry(&store, 0).await;
    let metadata = actions
        .iter()
        .find_map(|a| a.get("metaData"))
        .expect("metaData action");
    assert_eq!(
        metadata["partitionColumns"],
        serde_json::json!(["task_id", "date"])
    );
    let txns: Vec<_> = actions.iter().filter_map(|a| a.get("txn")).collect();
    assert_eq!(txns.len(), 1);
    assert_eq!(txns[0]["appId"], "titan-connector:t1:e1");
    let mut adds: Vec<_> = actions.iter().filter_map(|a| a.get("add")).collect();
    adds.sort_by_key(|a| a["path"].as_str().map(str::to_string));
    assert_eq!(adds.len(), 2);
    assert_eq!(
        adds[0]["path"],
        "task_id=t1/date=2026-01-02/e1-run1-0.parquet"
    );
    assert_eq!(
        adds[0]["partitionValues"],
        serde_json::json!({"task_id": "t1", "date": "2026-01-02"})
    );
    assert_eq!(adds[0]["size"], a.bytes);
    assert_eq!(adds[0]["dataChange"], true);
    let stats: serde_json::Value =
        serde_json::from_str(adds[0]["stats"].as_str().expect("stats string")).expect("stats");
    assert_eq!(stats["numRecords"], 3);
    assert_eq!(
        adds[1]["path"],
        "task_id=t1/date=2026-01-03/e1-run1-0.parquet"
    );

    assert_eq!(
        table.committed("t1").await.expect("committed"),
        set(&["e1"])
    );
    assert!(table.committed("t2").await.expect("committed").is_empty());
    assert!(table.is_committed("t1", "e1").await.expect("is"));
    assert!(!table.is_committed("t1", "e2").await.expect("is"));

    let mut live = table.live_files().await.expect("live");
    live.sort_by(|x, y| x.path.cmp(&y.path));
    assert_eq!(live.len(), 2);
    assert_eq!(live[0].rows, Some(3));
    assert_eq!(live[0].partition_values["task_id"], "t1");
    assert_eq!(live[0].partition_values["date"], "2026-01-02");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_already_in_the_log_is_not_committed_again() {
    let store = mem_store();
    let table = DeltaTable::open(&store, "ds").expect("open");
    let s = schema(false);
    let f = write_file(&store, &s, "t1", "2026-01-02", "e1", 1).await;
    table
        .commit(request(&s, vec![f.clone()], &[("t1", "e1")]))
        .await
        .expect("commit");
    // A second writer (own snapshot cache) retrying the same execution.
    let other = DeltaTable::open(&store, "ds").expect("open");
    let again = other
        .commit(request(&s, vec![f.clone()], &[("t1", "e1")]))
        .await
        .expect("commit");
    assert_eq!(
        again,
        CommitOutcome::AlreadyCommitted {
            executions: vec!["e1".to_string()]
        }
    );
    // A group holding it commits nothing either, and says which member was there.
    let g = write_file(&store, &s, "t1", "2026-01-02", "e2", 1).await;
    let group = other
        .commit(request(&s, vec![g], &[("t1", "e2"), ("t1", "e1")]))
        .await
        .expect("commit");
    assert_eq!(
        group,
        CommitOutcome::AlreadyCommitted {
            executions: vec!["e1".to_string()]
        }
    );
    assert_eq!(table.version().await.expect("version"), Some(0));
    assert_eq!(other.committed("t1").await.expect("c"), set(&["e1"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_commit_records_every_member_in_one_version() {
    let store = mem_store();
    let table = DeltaTable::open(&store, "ds").expect("open");
    let s = schema(false);
    let f = write_file(&store, &s, "t1", "2026-01-02", "combined", 4).await;
    let done = table
        .commit(request(
            &s,
            vec![f],
            &[("t1", "e1"), ("t1", "e2"), ("t2", "e3")],
        ))
        .await
        .expect("commit");
    assert_eq!(done, CommitOutcome::Committed { version: 0 });
    assert_eq!(table.committed("t1").await.expect("c"), set(&["e1", "e2"]));
    assert_eq!(table.committed("t2").await.expect("c"), set(&["e3"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_each_commit_once_and_the_same_execution_only_once() {
    let store = mem_store();
    let s = schema(false);
    let mut handles = Vec::new();
    // 8 writers, each its own table handle (like separate processes), 8 executions, each
    // execution tried by two writers.
    for w in 0..8 {
        let store = store.clone();
        let s = Arc::clone(&s);
        handles.push(tokio::spawn(async move {
            let table = DeltaTable::open(&store, "ds").expect("open");
            let exec = format!("e{}", w % 4);
            let f = write_file(&store, &s, "t1", "2026-01-02", &exec, 2).await;
            table
                .commit(request(&s, vec![f], &[("t1", exec.as_str())]))
                .await
                .expect("commit")
        }));
    }
    let mut committed = 0;
    let mut already = 0;
    let mut versions = HashSet::new();
    for h in handles {
        match h.await.expect("join") {
            CommitOutcome::Committed { version } => {
                committed += 1;
                assert!(versions.insert(version), "version {version} twice");
            }
            CommitOutcome::AlreadyCommitted { .. } => already += 1,
        }
    }
    assert_eq!((committed, already), (4, 4));
    let table = DeltaTable::open(&store, "ds").expect("open");
    assert_eq!(
        table.committed("t1").await.expect("c"),
        set(&["e0", "e1", "e2", "e3"])
    );
    assert_eq!(table.version().await.expect("v"), Some(3));
    // Each execution's file is in the table once (both writers wrote the same name).
    assert_eq!(table.live_files().await.expect("live").len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_nullable_columns_evolve_the_schema_and_a_type_change_fails() {
    let store = mem_store();
    let table = DeltaTable::open(&store, "ds").expect("open");
    let narrow = schema(false);
    let wide = schema(true);
    let f = write_file(&store, &narrow, "t1", "2026-01-02", "e1", 1).await;
    table
        .commit(request(&narrow, vec![f], &[("t1", "e1")]))
        .await
        .expect("commit");
    let g = write_file(&store, &wide, "t1", "2026-01-02", "e2", 1).await;
    let done = table
        .commit(request(&wide, vec![g], &[("t1", "e2")]))
        .await
        .expect("commit");
    assert_eq!(done, CommitOutcome::Committed { version: 1 });
    let metadata = log_entry(&store, 1)
        .await
        .into_iter()
        .find_map(|a| a.get("metaData").cloned())
        .expect("the evolving commit carries a metaData action");
    let schema_string = metadata["schemaString"].as_str().expect("schemaString");
    let parsed: serde_json::Value = serde_json::from_str(schema_string).expect("schema json");
    let names: Vec<&str> = parsed["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "name",
            "_titan_execution_id",
            "_titan_row",
            "task_id",
            "date",
            "price"
        ]
    );
    // A narrower execution after that is fine: its files read `price` as null.
    let h = write_file(&store, &narrow, "t1", "2026-01-02", "e3", 1).await;
    assert_eq!(
        table
            .commit(request(&narrow, vec![h], &[("t1", "e3")]))
            .await
            .expect("commit"),
        CommitOutcome::Committed { version: 2 }
    );

    let changed = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Int64, true),
        Field::new("_titan_execution_id", DataType::Utf8, false),
        Field::new("_titan_row", DataType::Int64, false),
    ]));
    let err = table
        .commit(request(&changed, vec![], &[("t1", "e4")]))
        .await
        .expect_err("a changed type must fail");
    assert_eq!(
        err.to_string(),
        "Delta table `memory:///ds`: incompatible schema: column `name` is string in the table but long in this execution"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_column_named_like_a_partition_column_is_refused() {
    let store = mem_store();
    let table = DeltaTable::open(&store, "ds").expect("open");
    let s = Arc::new(Schema::new(vec![Field::new("Date", DataType::Utf8, true)]));
    let err = table
        .commit(request(&s, vec![], &[("t1", "e1")]))
        .await
        .expect_err("collision");
    assert!(
        err.to_string()
            .contains("column `Date` collides with the table's partition column"),
        "{err}"
    );
    assert_eq!(table.version().await.expect("v"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_is_written_every_n_commits_and_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).expect("fs");
    let store = Store::from_object_store(Arc::new(fs), "file:///tmp");
    let table = DeltaTable::open(&store, "ds")
        .expect("open")
        .with_checkpoint_interval(3);
    let s = schema(false);
    for i in 0..5 {
        let exec = format!("e{i}");
        let f = write_file(&store, &s, "t1", "2026-01-02", &exec, 1).await;
        table
            .commit(request(&s, vec![f], &[("t1", exec.as_str())]))
            .await
            .expect("commit");
    }
    let log = dir.path().join("ds/_delta_log");
    let mut checkpoints: Vec<String> = std::fs::read_dir(&log)
        .expect("log dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("checkpoint.parquet"))
        .collect();
    checkpoints.sort();
    assert_eq!(
        checkpoints,
        ["00000000000000000003.checkpoint.parquet"],
        "versions 0..=4: commits since the start reach 3 at version 3"
    );
    assert!(log.join("_last_checkpoint").exists());
    // A fresh reader starts from the checkpoint and still sees every txn and file.
    let fresh = DeltaTable::open(&store, "ds").expect("open");
    assert_eq!(
        fresh.committed("t1").await.expect("c"),
        set(&["e0", "e1", "e2", "e3", "e4"])
    );
    assert_eq!(fresh.live_files().await.expect("live").len(), 5);
}

fn key(task: &str, date: &str) -> crate::sink::partition::PartitionKey {
    crate::sink::partition::PartitionKey {
        dataset: "ds".to_string(),
        task_id: task.to_string(),
        date: date.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_and_vacuum_delete_only_files_the_log_does_not_hold() {
    let store = mem_store();
    let table = DeltaTable::open(&store, "ds").expect("open");
    let s = schema(false);
    let k = key("t1", "2026-01-02");
    assert_eq!(
        files::part_path(&k, "e1", "r1", 0).as_ref(),
        "ds/task_id=t1/date=2026-01-02/e1-r1-0.parquet"
    );
    // e1 committed; e2 written by run r1 and r2 but never committed; a media file.
    let committed = write_file(&store, &s, "t1", "2026-01-02", "e1", 2).await;
    table
        .commit(request(&s, vec![committed.clone()], &[("t1", "e1")]))
        .await
        .expect("commit");
    for p in ["e2-r1-0.parquet", "e2-r1-1.parquet", "e2-r2-0.parquet"] {
        store
            .put(&k.prefix().join(p), Bytes::from_static(b"x"))
            .await
            .expect("put");
    }
    let media = Path::from("ds/media/abc.jpg");
    store
        .put(&media, Bytes::from_static(b"x"))
        .await
        .expect("put");

    // The failed attempt r1 at e2: its two files go, r2's and the committed one stay.
    assert_eq!(
        files::discard(&table, &k, "e2", "r1")
            .await
            .expect("discard"),
        2
    );
    // Discarding a committed execution's files deletes nothing.
    assert_eq!(
        files::discard(&table, &k, "e1", "run1")
            .await
            .expect("discard"),
        0
    );

    // A day's retention keeps r2's young file; zero retention deletes it.
    let kept = files::vacuum(&table, files::DEFAULT_RETENTION)
        .await
        .expect("vacuum");
    assert_eq!(
        kept,
        files::Vacuumed {
            deleted: vec![],
            bytes: 0,
            young: 1
        }
    );
    let swept = files::vacuum(&table, Duration::ZERO).await.expect("vacuum");
    assert_eq!(
        swept.deleted,
        vec![Path::from("ds/task_id=t1/date=2026-01-02/e2-r2-0.parquet")]
    );
    assert_eq!(swept.bytes, 1);
    let mut left: Vec<String> = store
        .list(&Path::from("ds"))
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.location.to_string())
        .filter(|l| !l.contains("_delta_log"))
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "ds/media/abc.jpg",
            "ds/task_id=t1/date=2026-01-02/e1-run1-0.parquet"
        ]
    );
    assert_eq!(table.live_files().await.expect("live").len(), 1);
}

/// Leaves a table at `$DELTA_INTEROP_OUT` for `tests/interop/test_delta.py`, which reads it
/// with `deltalake` and `polars`: two partitions, the connector's column types, and a second
/// commit that adds a column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by tests/interop/test_delta.py"]
async fn writes_a_table_for_the_interop_readers() {
    use arrow::array::{BooleanArray, Date32Array, Decimal128Array, Float64Array};
    use arrow::array::{ListArray, StructArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Int64Type, TimeUnit};

    let Ok(out) = std::env::var("DELTA_INTEROP_OUT") else {
        panic!("set DELTA_INTEROP_OUT to the directory to write the table into");
    };
    let fs = object_store::local::LocalFileSystem::new_with_prefix(&out).expect("fs");
    let store = Store::from_object_store(Arc::new(fs), format!("file://{out}"));
    let table = DeltaTable::open(&store, "ds").expect("open");
    let inner = Arc::new(Schema::new(vec![Field::new("city", DataType::Utf8, true)]));
    let base = vec![
        Field::new("name", DataType::Utf8, true),
        Field::new("qty", DataType::Int64, true),
        Field::new("price", DataType::Float64, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new(
            "seen",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("day", DataType::Date32, true),
        Field::new("amount", DataType::Decimal128(12, 2), true),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
            true,
        ),
        Field::new("addr", DataType::Struct(inner.fields().clone()), true),
        Field::new("_titan_execution_id", DataType::Utf8, false),
        Field::new("_titan_row", DataType::Int64, false),
    ];
    for (i, (task, date, exec, extra)) in [
        ("t1", "2026-01-02", "e1", false),
        ("t2", "2026-01-03", "e2", true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut fields = base.clone();
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("a"), None])),
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(Float64Array::from(vec![1.5, -2.25])),
            Arc::new(BooleanArray::from(vec![true, false])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![1_767_312_000_000_000, 0])
                    .with_timezone("UTC"),
            ),
            Arc::new(Date32Array::from(vec![20_455, 0])),
            Arc::new(
                Decimal128Array::from(vec![12_345, -1])
                    .with_precision_and_scale(12, 2)
                    .expect("decimal"),
            ),
            Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
                Some(vec![Some(1), Some(2)]),
                Some(vec![]),
            ])),
            Arc::new(StructArray::from(vec![(
                Arc::new(Field::new("city", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec!["Oslo", "Rome"])) as ArrayRef,
            )])),
            Arc::new(StringArray::from(vec![exec, exec])),
            Arc::new(Int64Array::from(vec![1, 2])),
        ];
        if extra {
            fields.push(Field::new("note", DataType::Utf8, true));
            cols.push(Arc::new(StringArray::from(vec!["x", "y"])));
        }
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(Arc::clone(&schema), cols).expect("batch");
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, Arc::clone(&schema), None).expect("w");
        w.write(&batch).expect("write");
        w.close().expect("close");
        let k = key(task, date);
        let path = files::part_path(&k, exec, "r1", 0);
        let bytes = buf.len() as u64;
        store.put(&path, Bytes::from(buf)).await.expect("put");
        let f = DataFile {
            path,
            task_id: task.to_string(),
            date: date.to_string(),
            rows: 2,
            bytes,
        };
        let done = table
            .commit(request(&schema, vec![f], &[(task, exec)]))
            .await
            .expect("commit");
        assert_eq!(done, CommitOutcome::Committed { version: i as u64 });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_without_results_is_recorded_by_its_txn_alone() {
    let store = mem_store();
    let table = DeltaTable::open(&store, "ds").expect("open");
    let s = schema(false);
    // First commit of the table, and a later one: no files, only the txn.
    for (version, exec) in [(0, "empty1"), (1, "empty2")] {
        let done = table
            .commit(request(&s, vec![], &[("t1", exec)]))
            .await
            .expect("commit");
        assert_eq!(done, CommitOutcome::Committed { version });
    }
    assert_eq!(
        table.committed("t1").await.expect("c"),
        set(&["empty1", "empty2"])
    );
    assert!(table.live_files().await.expect("live").is_empty());
    let adds = log_entry(&store, 1)
        .await
        .into_iter()
        .filter(|a| a.get("add").is_some())
        .count();
    assert_eq!(adds, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_leaves_a_folder_without_commits_alone_and_takes_any_retention() {
    let store = mem_store();
    let table = DeltaTable::open(&store, "ds").expect("open");
    let s = schema(false);
    let stray = write_file(&store, &s, "t1", "2026-01-02", "e0", 2).await;
    // Not a table yet: nothing is "unreferenced", even at retention 0.
    let done = files::vacuum(&table, Duration::ZERO).await.expect("vacuum");
    assert_eq!(done, files::Vacuumed::default());
    assert!(store.exists(&stray.path).await.expect("exists"));

    let kept = write_file(&store, &s, "t1", "2026-01-02", "e1", 3).await;
    table
        .commit(request(&s, vec![kept.clone()], &[("t1", "e1")]))
        .await
        .expect("commit");
    // A retention beyond the calendar keeps everything instead of overflowing.
    let done = files::vacuum(&table, Duration::from_secs(u64::MAX / 4))
        .await
        .expect("vacuum");
    assert!(done.deleted.is_empty());
    assert_eq!(done.young, 1);
    let done = files::vacuum(&table, Duration::ZERO).await.expect("vacuum");
    assert_eq!(done.deleted, vec![stray.path.clone()]);
    assert!(store.exists(&kept.path).await.expect("exists"));
}
