//! Compaction and vacuum on an in-memory store: rows kept exactly, files fewer, the log's
//! commit, executions still committed, a concurrent append and a racing compaction.

use std::collections::HashSet;
use std::time::Duration;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::compact::{self, CompactOptions, CompactOutcome};
use super::tests::{log_entry, mem_store, request, schema, set, write_file};
use super::*;
use crate::sink::partition::PartitionKey;
use crate::sink::store::Store;

fn key(task: &str, date: &str) -> PartitionKey {
    PartitionKey {
        dataset: "ds".to_string(),
        task_id: task.to_string(),
        date: date.to_string(),
    }
}

/// Every row of the table's current version, one string a row (partition values first,
/// then `column=value` for each of the file's columns), sorted.
async fn table_rows(store: &Store, table: &DeltaTable) -> Vec<String> {
    let keys: std::collections::HashMap<String, Path> = store
        .list(&Path::from("ds"))
        .await
        .expect("list")
        .into_iter()
        .filter_map(|o| Some((table.log_path(&o.location)?, o.location)))
        .collect();
    let mut rows = Vec::new();
    for f in table.live_files().await.expect("live") {
        let bytes = store
            .get_opt(&keys[&f.path])
            .await
            .expect("get")
            .expect("a live file exists");
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .expect("parquet")
            .build()
            .expect("reader");
        for batch in reader {
            let batch = batch.expect("batch");
            let schema = batch.schema();
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| {
                    ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).expect("fmt")
                })
                .collect();
            for i in 0..batch.num_rows() {
                let mut row = format!(
                    "{}|{}",
                    f.partition_values["task_id"], f.partition_values["date"]
                );
                for (field, fmt) in schema.fields().iter().zip(&formatters) {
                    row.push_str(&format!("|{}={}", field.name(), fmt.value(i)));
                }
                rows.push(row);
            }
        }
    }
    rows.sort();
    rows
}

/// Commits executions `e<i>` for `i` in `execs`, `rows` rows each, into `(task, date)`, one file
/// and one commit each.
async fn fill(
    store: &Store,
    table: &DeltaTable,
    wide: bool,
    task: &str,
    date: &str,
    execs: std::ops::Range<usize>,
    rows: usize,
) {
    let s = schema(wide);
    for i in execs {
        let exec = format!("e{i}");
        let f = write_file(store, &s, task, date, &exec, rows).await;
        table
            .commit(request(&s, vec![f], &[(task, exec.as_str())]))
            .await
            .expect("commit");
    }
}

fn in_partition(files: &[LiveFile], task: &str, date: &str) -> Vec<String> {
    let mut paths: Vec<String> = files
        .iter()
        .filter(|f| f.partition_values["task_id"] == task && f.partition_values["date"] == date)
        .map(|f| f.path.clone())
        .collect();
    paths.sort();
    paths
}

fn executions(range: std::ops::Range<usize>) -> HashSet<String> {
    range.map(|i| format!("e{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_keeps_every_row_in_fewer_files_with_one_remove_add_commit() {
    let store = mem_store();
    let table = DeltaTable::open(&store, "ds").expect("open");
    fill(&store, &table, false, "t1", "2026-01-02", 0..12, 5).await;
    fill(&store, &table, false, "t1", "2026-01-03", 12..14, 3).await;
    let before_rows = table_rows(&store, &table).await;
    assert_eq!(before_rows.len(), 12 * 5 + 2 * 3);
    let before = table.live_files().await.expect("live");
    let old_paths = in_partition(&before, "t1", "2026-01-02");
    assert_eq!(old_paths.len(), 12);
    let other = in_partition(&before, "t1", "2026-01-03");

    let done =
        compact::compact_partition(&table, &key("t1", "2026-01-02"), &CompactOptions::default())
            .await
            .expect("compact");
    assert_eq!(done.outcome, CompactOutcome::Committed { version: 14 });
    assert_eq!(
        (done.removed, done.added.len(), done.rows, done.attempts),
        (12, 1, 60, 1)
    );
    let new_path = done.added[0].path.to_string();
    assert!(
        new_path.starts_with("ds/task_id=t1/date=2026-01-02/compact-")
            && new_path.ends_with("-0.parquet"),
        "{new_path}"
    );

    // Same rows; 12 files became 1; the other partition is untouched.
    assert_eq!(table_rows(&store, &table).await, before_rows);
    let after = table.live_files().await.expect("live");
    assert_eq!(
        in_partition(&after, "t1", "2026-01-02"),
        [new_path.trim_start_matches("ds/").to_string()]
    );
    assert_eq!(in_partition(&after, "t1", "2026-01-03"), other);

    // The commit: commitInfo (OPTIMIZE), 12 removes and 1 add, all dataChange = false; no
    // txn, no metaData, no protocol.
    let actions = log_entry(&store, 14).await;
    let kinds: HashSet<&str> = actions
        .iter()
        .flat_map(|a| a.as_object().expect("object").keys().map(String::as_str))
        .collect();
    assert_eq!(kinds, HashSet::from(["commitInfo", "remove", "add"]));
    let info = actions
        .iter()
        .find_map(|a| a.get("commitInfo"))
        .expect("commitInfo");
    assert_eq!(info["operation"], "OPTIMIZE");
    assert_eq!(info["operationMetrics"]["numRemovedFiles"], "12");
    assert_eq!(info["operationMetrics"]["numAddedFiles"], "1");
    let mut removed: Vec<String> = actions
        .iter()
        .filter_map(|a| a.get("remove"))
        .map(|r| {
            assert_eq!(r["dataChange"], false, "{r}");
            assert_eq!(
                r["partitionValues"],
                serde_json::json!({"task_id": "t1", "date": "2026-01-02"})
            );
            r["path"].as_str().expect("path").to_string()
        })
        .collect();
    removed.sort();
    assert_eq!(removed, old_paths);
    let adds: Vec<_> = actions.iter().filter_map(|a| a.get("add")).collect();
    assert_eq!(adds.len(), 1);
    assert_eq!(adds[0]["dataChange"], false);
    assert_eq!(adds[0]["path"], new_path.trim_start_matches("ds/"));
    assert_eq!(adds[0]["size"], done.added[0].bytes);
    let stats: serde_json::Value =
        serde_json::from_str(adds[0]["stats"].as_str().expect("stats")).expect("json");
    assert_eq!(stats["numRecords"], 60);

    // Every execution is still committed, and a retry of one is still refused.
    assert_eq!(table.committed("t1").await.expect("c"), executions(0..14));
    let again = write_file(&store, &schema(false), "t1", "2026-01-02", "e3", 5).await;
    assert_eq!(
        table
            .commit(request(&schema(false), vec![again], &[("t1", "e3")]))
            .await
            .expect("commit"),
        CommitOutcome::AlreadyCommitted {
            executions: vec!["e3".to_string()]
        }
    );
    // One file left: nothing to do, nothing committed.
    let noop =
        compact::compact_partition(&table, &key("t1", "2026-01-02"), &CompactOptions::default())
            .await
            .expect("compact");
    assert_eq!(noop.outcome, CompactOutcome::NothingToDo);
    assert_eq!(table.version().await.expect("v"), Some(14));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_packed_up_to_the_target_and_large_files_and_schemas_are_kept_apart() {
    let store = mem_store();
    let table = DeltaTable::open(&store, "ds").expect("open");
    fill(&store, &table, false, "t1", "2026-01-02", 0..8, 4).await;
    // Evolved: 3 files with a `price` column.
    fill(&store, &table, true, "t1", "2026-01-02", 8..11, 4).await;
    // One large file (relative to the target below) is left alone.
    fill(&store, &table, false, "t1", "2026-01-02", 11..12, 5000).await;
    let before_rows = table_rows(&store, &table).await;
    let live = table.live_files().await.expect("live");
    let size_of = |exec: &str| {
        live.iter()
            .find(|f| f.path.contains(&format!("/{exec}-")))
            .expect("file")
            .size
    };
    // The narrow files are all the same size; three wide ones fit in four narrow ones.
    let small = size_of("e0");
    assert!((1..8).all(|i| size_of(&format!("e{i}")) == small));
    assert!((8..11).map(|i| size_of(&format!("e{i}"))).sum::<i64>() <= small * 4);
    let large_path = live
        .iter()
        .find(|f| f.path.contains("e11-"))
        .expect("large")
        .path
        .clone();
    // Four small files reach the target: 8 narrow → 2 outputs, 3 wide → 1.
    let opts = CompactOptions {
        target_bytes: u64::try_from(small * 4).expect("size"),
        ..CompactOptions::default()
    };
    let large = live.iter().find(|f| f.path == large_path).expect("large");
    assert!(large.size > small * 4, "the large file is above the target");

    let done = compact::compact_partition(&table, &key("t1", "2026-01-02"), &opts)
        .await
        .expect("compact");
    assert_eq!((done.removed, done.added.len(), done.rows), (11, 3, 44));
    assert_eq!(table_rows(&store, &table).await, before_rows);
    let after = table.live_files().await.expect("live");
    assert_eq!(after.len(), 4);
    assert!(after.iter().any(|f| f.path == large_path));
    // The wide output holds exactly the wide rows, with their column.
    let mut counts: Vec<u64> = after
        .iter()
        .filter(|f| f.path != large_path)
        .map(|f| f.rows.expect("numRecords"))
        .collect();
    counts.sort();
    assert_eq!(counts, [12, 16, 16]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_committed_during_compaction_is_kept() {
    let store = mem_store();
    let table = DeltaTable::open(&store, "ds").expect("open");
    fill(&store, &table, false, "t1", "2026-01-02", 0..5, 3).await;
    let k = key("t1", "2026-01-02");
    let opts = CompactOptions::default();
    let plan = compact::plan(&table, &k, &opts).await.expect("plan");
    assert_eq!((plan.inputs(), plan.version()), (5, Some(4)));
    let written = compact::rewrite(&table, &plan, &opts)
        .await
        .expect("rewrite");

    // Another process appends to the same partition before the compaction commits.
    let other = DeltaTable::open(&store, "ds").expect("open");
    fill(&store, &other, false, "t1", "2026-01-02", 5..6, 7).await;
    let expected = table_rows(&store, &other).await;
    assert_eq!(expected.len(), 5 * 3 + 7);

    let done = compact::commit(&table, plan, written)
        .await
        .expect("commit");
    // The first attempt lost version 5 to the append; the retry re-checked and won 6.
    assert_eq!(done.outcome, CompactOutcome::Committed { version: 6 });
    assert_eq!(done.attempts, 2);
    assert_eq!(table_rows(&store, &table).await, expected);
    let paths = in_partition(&table.live_files().await.expect("live"), "t1", "2026-01-02");
    assert_eq!(paths.len(), 2);
    assert!(
        paths.iter().any(|p| p.ends_with("e5-run1-0.parquet")),
        "{paths:?}"
    );
    assert_eq!(table.committed("t1").await.expect("c"), executions(0..6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_that_loses_its_inputs_to_another_commits_nothing_and_cleans_up() {
    let store = mem_store();
    let table = DeltaTable::open(&store, "ds").expect("open");
    fill(&store, &table, false, "t1", "2026-01-02", 0..4, 2).await;
    let k = key("t1", "2026-01-02");
    let opts = CompactOptions::default();
    let rows = table_rows(&store, &table).await;
    let first = compact::plan(&table, &k, &opts).await.expect("plan");
    let second = compact::plan(&table, &k, &opts).await.expect("plan");
    let first_files = compact::rewrite(&table, &first, &opts)
        .await
        .expect("rewrite");
    let second_files = compact::rewrite(&table, &second, &opts)
        .await
        .expect("rewrite");

    let won = compact::commit(&table, first, first_files)
        .await
        .expect("commit");
    assert_eq!(won.outcome, CompactOutcome::Committed { version: 4 });
    let lost = compact::commit(&table, second, second_files.clone())
        .await
        .expect("commit");
    assert_eq!(lost.outcome, CompactOutcome::Superseded);
    assert_eq!((lost.removed, lost.added.len()), (0, 0));
    assert_eq!(table.version().await.expect("v"), Some(4));
    assert_eq!(table_rows(&store, &table).await, rows);
    for f in &second_files {
        assert!(
            !store.exists(&f.path).await.expect("exists"),
            "{} deleted",
            f.path
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_after_compaction_deletes_exactly_the_replaced_files() {
    let store = mem_store();
    let table = DeltaTable::open(&store, "ds").expect("open");
    fill(&store, &table, false, "t1", "2026-01-02", 0..6, 2).await;
    fill(&store, &table, false, "t2", "2026-01-05", 6..7, 2).await;
    let rows = table_rows(&store, &table).await;
    let replaced: Vec<Path> =
        in_partition(&table.live_files().await.expect("live"), "t1", "2026-01-02")
            .into_iter()
            .map(|p| Path::from(format!("ds/{p}")))
            .collect();
    let done = compact::compact_table(&table, None, None, &CompactOptions::default())
        .await
        .expect("compact");
    // t2's single file: nothing to do there.
    let outcomes: Vec<_> = done
        .iter()
        .map(|c| (c.task_id.as_str(), c.outcome.clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("t1", CompactOutcome::Committed { version: 7 }),
            ("t2", CompactOutcome::NothingToDo)
        ]
    );

    // A day's retention keeps them (young files), zero retention deletes exactly them.
    let kept = files::vacuum(&table, files::DEFAULT_RETENTION)
        .await
        .expect("vacuum");
    assert_eq!((kept.deleted.len(), kept.young), (0, 6));
    let mut swept = files::vacuum(&table, Duration::ZERO).await.expect("vacuum");
    swept.deleted.sort();
    assert_eq!(swept.deleted, replaced);
    assert_eq!(table_rows(&store, &table).await, rows);
    assert_eq!(table.committed("t1").await.expect("c"), executions(0..6));
    assert_eq!(table.committed("t2").await.expect("c"), set(&["e6"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_keeps_replaced_files_for_the_retention_after_their_removal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).expect("fs");
    let store = Store::from_object_store(std::sync::Arc::new(fs), "file:///tmp");
    let table = DeltaTable::open(&store, "ds").expect("open");
    fill(&store, &table, false, "t1", "2026-01-02", 0..3, 2).await;
    // An attempt that never committed.
    let orphan = write_file(&store, &schema(false), "t1", "2026-01-02", "e9", 2).await;
    // Every data file was written three days ago.
    let three_days_ago = std::time::SystemTime::now() - Duration::from_secs(3 * 24 * 3600);
    let partition = dir.path().join("ds/task_id=t1/date=2026-01-02");
    let mut old = Vec::new();
    for entry in std::fs::read_dir(&partition).expect("dir") {
        let p = entry.expect("entry").path();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .expect("open")
            .set_modified(three_days_ago)
            .expect("set mtime");
        old.push(p);
    }
    assert_eq!(old.len(), 4);
    let done =
        compact::compact_partition(&table, &key("t1", "2026-01-02"), &CompactOptions::default())
            .await
            .expect("compact");
    assert_eq!(done.removed, 3);

    // The three replaced files were removed just now: a day's retention keeps them, and
    // deletes only the old orphan. A dry run says so and deletes nothing.
    let dry = files::sweep(&table, files::DEFAULT_RETENTION, true)
        .await
        .expect("dry run");
    assert_eq!(
        (dry.deleted.clone(), dry.young),
        (vec![orphan.path.clone()], 3)
    );
    assert!(store.exists(&orphan.path).await.expect("exists"));
    let kept = files::vacuum(&table, files::DEFAULT_RETENTION)
        .await
        .expect("vacuum");
    assert_eq!(kept, dry);
    assert!(!store.exists(&orphan.path).await.expect("exists"));
    let swept = files::vacuum(&table, Duration::ZERO).await.expect("vacuum");
    assert_eq!((swept.deleted.len(), swept.young), (3, 0));
    assert_eq!(table_rows(&store, &table).await.len(), 6);
}

/// Leaves a compacted table at `$DELTA_INTEROP_OUT/compacted` for
/// `tests/interop/test_delta.py`: 13 one-file executions in two partitions (three of them
/// with an added column) at version 12, then two compactions (versions 13 and 14) that
/// leave three files. The readers compare version 12 with the latest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by tests/interop/test_delta.py"]
async fn writes_a_compacted_table_for_the_interop_readers() {
    let Ok(out) = std::env::var("DELTA_INTEROP_OUT") else {
        panic!("set DELTA_INTEROP_OUT to the directory to write the table into");
    };
    let root = std::path::Path::new(&out).join("compacted");
    std::fs::create_dir_all(&root).expect("mkdir");
    let fs = object_store::local::LocalFileSystem::new_with_prefix(&root).expect("fs");
    let store = Store::from_object_store(
        std::sync::Arc::new(fs),
        format!("file://{}", root.display()),
    );
    let table = DeltaTable::open(&store, "ds").expect("open");
    fill(&store, &table, false, "t1", "2026-01-02", 0..6, 3).await;
    fill(&store, &table, true, "t1", "2026-01-02", 6..9, 2).await;
    fill(&store, &table, false, "t2", "2026-01-03", 9..13, 4).await;
    assert_eq!(table.version().await.expect("v"), Some(12));
    let done = compact::compact_table(&table, None, None, &CompactOptions::default())
        .await
        .expect("compact");
    let versions: Vec<_> = done.iter().map(|c| c.outcome.clone()).collect();
    assert_eq!(
        versions,
        [
            CompactOutcome::Committed { version: 13 },
            CompactOutcome::Committed { version: 14 }
        ]
    );
    assert_eq!(table.live_files().await.expect("live").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_that_fails_leaves_no_new_file_and_commits_nothing() {
    let store = mem_store();
    let table = DeltaTable::open(&store, "ds").expect("open");
    fill(&store, &table, false, "t1", "2026-01-02", 0..3, 2).await;
    let k = key("t1", "2026-01-02");
    let opts = CompactOptions::default();
    let plan = compact::plan(&table, &k, &opts).await.expect("plan");
    // An input vanishes between the plan and the rewrite (a bad manual clean-up).
    let gone = Path::from("ds/task_id=t1/date=2026-01-02/e2-run1-0.parquet");
    store.delete(&gone).await.expect("delete");
    let err = compact::rewrite(&table, &plan, &opts)
        .await
        .expect_err("an input is missing");
    assert!(
        err.to_string().starts_with(
            "Delta table `memory:///ds`: `ds/task_id=t1/date=2026-01-02/e2-run1-0.parquet`: "
        ),
        "{err}"
    );
    let mut left: Vec<String> = store
        .list(&k.prefix())
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.location.filename().expect("name").to_string())
        .collect();
    left.sort();
    assert_eq!(left, ["e0-run1-0.parquet", "e1-run1-0.parquet"]);
    assert_eq!(table.version().await.expect("v"), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compactions_racing_appenders_lose_no_row() {
    let store = mem_store();
    let table = DeltaTable::open(&store, "ds").expect("open");
    fill(&store, &table, false, "t1", "2026-01-02", 0..4, 2).await;
    // Three appenders (their own handles, like processes) and two compactors, at once.
    let mut appenders = Vec::new();
    for w in 0..3 {
        let store = store.clone();
        appenders.push(tokio::spawn(async move {
            let mine = DeltaTable::open(&store, "ds").expect("open");
            let first = 100 + w * 10;
            fill(
                &store,
                &mine,
                false,
                "t1",
                "2026-01-02",
                first..first + 6,
                3,
            )
            .await;
        }));
    }
    let mut compactors = Vec::new();
    for _ in 0..2 {
        let store = store.clone();
        compactors.push(tokio::spawn(async move {
            let mine = DeltaTable::open(&store, "ds").expect("open");
            let mut outcomes = Vec::new();
            for _ in 0..4 {
                let done = compact::compact_partition(
                    &mine,
                    &key("t1", "2026-01-02"),
                    &CompactOptions::default(),
                )
                .await
                .expect("compact");
                outcomes.push(done.outcome);
            }
            outcomes
        }));
    }
    for a in appenders {
        a.await.expect("join");
    }
    let mut committed = 0;
    for c in compactors {
        committed += c
            .await
            .expect("join")
            .iter()
            .filter(|o| matches!(o, CompactOutcome::Committed { .. }))
            .count();
    }
    assert!(committed >= 1, "at least one compaction committed");
    let rows = table_rows(&store, &table).await;
    assert_eq!(rows.len(), 4 * 2 + 3 * 6 * 3);
    // Each execution's rows exactly once.
    let mut per_exec = std::collections::BTreeMap::new();
    for r in &rows {
        let exec = r
            .split('|')
            .find_map(|c| c.strip_prefix("_titan_execution_id="))
            .expect("lineage column");
        *per_exec.entry(exec.to_string()).or_insert(0) += 1;
    }
    let expected: std::collections::BTreeMap<String, usize> = (0..4)
        .map(|i| (format!("e{i}"), 2))
        .chain((0..3).flat_map(|w| (0..6).map(move |i| (format!("e{}", 100 + w * 10 + i), 3))))
        .collect();
    assert_eq!(per_exec, expected);
    assert_eq!(table.committed("t1").await.expect("c").len(), 4 + 18);
}

/// Task ids whose characters the log escapes differently from the store's keys (a space
/// is `%20` in the log and ` ` in the key; `%` and `/` are escaped in both, non-ASCII as
/// UTF-8 escapes): compaction finds its inputs, vacuum deletes exactly the replaced files
/// and discard never deletes a committed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_task_ids_compact_and_vacuum_exactly_their_files() {
    for task in ["t 1", "t%1", "tâ/x", "a+b=c"] {
        let store = mem_store();
        let table = DeltaTable::open(&store, "ds").expect("open");
        let k = key(task, "2026-01-02");
        let s = schema(false);
        let mut written = Vec::new();
        for i in 0..3 {
            let exec = format!("e{i}");
            // At the key the sink uses (`files::part_path`), not `write_file`'s.
            let f = write_file(&store, &s, "tmp", "2026-01-02", &exec, 2).await;
            let bytes = store.get_opt(&f.path).await.expect("get").expect("file");
            store.delete(&f.path).await.expect("delete");
            let path = files::part_path(&k, &exec, "r1", 0);
            store.put(&path, bytes).await.expect("put");
            written.push(path.clone());
            let f = DataFile {
                path,
                task_id: task.to_string(),
                ..f
            };
            table
                .commit(request(&s, vec![f], &[(task, exec.as_str())]))
                .await
                .expect("commit");
        }
        let rows = table_rows(&store, &table).await;
        assert_eq!(
            files::discard(&table, &k, "e0", "r1")
                .await
                .expect("discard"),
            0,
            "{task}: a committed file is not discarded"
        );
        let done = compact::compact_partition(&table, &k, &CompactOptions::default())
            .await
            .expect("compact");
        assert_eq!(
            (done.outcome, done.removed),
            (CompactOutcome::Committed { version: 3 }, 3),
            "{task}"
        );
        let mut swept = files::vacuum(&table, Duration::ZERO).await.expect("vacuum");
        swept.deleted.sort();
        assert_eq!(swept.deleted, written, "{task}");
        assert_eq!(table_rows(&store, &table).await, rows, "{task}");
        assert!(
            store.exists(&done.added[0].path).await.expect("exists"),
            "{task}: the compacted file stays"
        );
    }
}
