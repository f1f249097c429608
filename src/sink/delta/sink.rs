//! [`DeltaSink`]: the [`Sink`] of `[store] table_format = "delta"`: one Delta table per
//! dataset, data files written straight to their final, attempt-unique names, one log
//! commit per execution (or per group of small executions) that adds its files and its
//! `txn` app id together.
//!
//! What the log keeps, so no code of ours has to: atomic visibility (files a crash left
//! behind are in no commit, so no Delta reader sees them), no renames or copies (S3 writes
//! each byte once), and which executions the table holds (a re-run, a retry or a racing
//! process finds the `txn` and adds nothing twice). What stays ours: naming files so that
//! two attempts never overwrite each other, deleting the files a lost race or a failure
//! left (this run's at once, others' after [`files::DEFAULT_RETENTION`]), and the
//! quarantined rows, which stay JSON Lines under `<dataset>/_rejects/` as in the Parquet
//! folder.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use object_store::path::Path;
use tracing::{info, warn};

use super::files::{self, DEFAULT_RETENTION};
use super::{CommitOutcome, CommitRequest, DataFile, DeltaError, DeltaTable};
use crate::sink::folder::{commit::sweep_staging, group::combine_into, place_rejects};
use crate::sink::lease::Owner;
use crate::sink::parquet::{StagedPart, WriterSettings};
use crate::sink::partition::{self, PartNames, PartitionKey};
use crate::sink::store::Store;
use crate::sink::{Committed, GroupCommitted, GroupFailed, Recovered, Sink, SinkError, Staged};

/// Delta tables over one store, opened on first use.
#[derive(Debug)]
pub struct DeltaSink {
    store: Store,
    checkpoint_interval: u64,
    tables: Mutex<HashMap<String, DeltaTable>>,
}

impl DeltaSink {
    /// The Delta sink over `store`, checkpointing every `checkpoint_interval` commits.
    pub fn new(store: Store, checkpoint_interval: u64) -> Self {
        DeltaSink {
            store,
            checkpoint_interval,
            tables: Mutex::new(HashMap::new()),
        }
    }

    /// The table of `dataset` (one kernel engine per table, kept for the run).
    fn table(&self, dataset: &str) -> Result<DeltaTable, SinkError> {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = tables.get(dataset) {
            return Ok(t.clone());
        }
        let table = DeltaTable::open(&self.store, dataset)?
            .with_checkpoint_interval(self.checkpoint_interval);
        tables.insert(dataset.to_string(), table.clone());
        Ok(table)
    }

    /// Deletes files we wrote that no commit references (ours alone: never another
    /// attempt's, which may still commit them). Best effort: vacuum removes what is left.
    async fn delete_unreferenced(&self, paths: Vec<Path>) {
        for path in &paths {
            if let Err(e) = self.store.delete(path).await {
                warn!(path = %path, error = %e, "Could not delete an uncommitted data file");
            }
        }
    }
}

/// The commit of one execution's files and `txn`.
fn request(staged: &Staged) -> CommitRequest {
    CommitRequest {
        file_schema: staged.schema.clone(),
        files: files::data_files(&staged.key, &staged.parts),
        executions: vec![(
            staged.key.task_id.clone(),
            staged.manifest.execution_id.clone(),
        )],
    }
}

#[async_trait::async_trait]
impl Sink for DeltaSink {
    fn url(&self) -> &str {
        self.store.url()
    }

    fn store(&self) -> &Store {
        &self.store
    }

    fn part_names(&self, key: &PartitionKey, execution_id: &str, run_id: &str) -> PartNames {
        PartNames::direct(key, execution_id, run_id)
    }

    /// A commit is one put-if-absent of a log file: there is nothing half done to finish.
    /// What crashed runs wrote and never committed is deleted once older than the
    /// retention (a live writer may still commit younger files).
    async fn recover(&self, dataset: &str, _owner: &Owner) -> Result<Recovered, SinkError> {
        let table = self.table(dataset)?;
        // A Parquet folder's parts are data files no Delta commit references: the sweep
        // below would delete them. Refuse the dataset before anything is written into it.
        let root = table.root();
        let manifests = root.clone().join(partition::MANIFESTS_DIR);
        if self.store.folders(&root).await?.contains(&manifests) {
            return Err(DeltaError::Invalid {
                table: table.url(),
                message: format!(
                    "it was written as a Parquet folder (`{manifests}/` exists); a Delta \
                     table there would delete its files as unreferenced. Write Delta to \
                     another dataset or store"
                ),
            }
            .into());
        }
        let done = files::vacuum(&table, DEFAULT_RETENTION).await?;
        if !done.deleted.is_empty() {
            info!(
                dataset,
                deleted = done.deleted.len(),
                "Deleted data files that crashed runs left uncommitted"
            );
        }
        Ok(Recovered {
            undone: done.deleted.len(),
            ..Recovered::default()
        })
    }

    async fn committed(&self, dataset: &str, task_id: &str) -> Result<HashSet<String>, SinkError> {
        Ok(self.table(dataset)?.committed(task_id).await?)
    }

    async fn is_committed(
        &self,
        dataset: &str,
        task_id: &str,
        execution_id: &str,
    ) -> Result<bool, SinkError> {
        Ok(self
            .table(dataset)?
            .is_committed(task_id, execution_id)
            .await?)
    }

    /// Nothing to settle: a holder that died either committed (the log says so) or not.
    async fn settle(&self, _: &str, _: &str, _: &str) -> Result<(), SinkError> {
        Ok(())
    }

    async fn commit(&self, staged: &Staged) -> Result<Committed, SinkError> {
        let table = self.table(&staged.key.dataset)?;
        place_rejects(&self.store, staged).await?;
        match table.commit(request(staged)).await? {
            CommitOutcome::Committed { version } => {
                tracing::debug!(
                    execution_id = staged.manifest.execution_id,
                    version,
                    "Committed"
                );
                Ok(Committed::Now)
            }
            CommitOutcome::AlreadyCommitted { .. } => {
                let paths = staged.parts.iter().map(|p| p.final_path.clone()).collect();
                self.delete_unreferenced(paths).await;
                Ok(Committed::ByAnother)
            }
        }
    }

    async fn commit_group(
        &self,
        members: &[&Staged],
        settings: WriterSettings,
    ) -> Result<GroupCommitted, GroupFailed> {
        let Some(first) = members.first() else {
            return Ok(GroupCommitted::Abandoned { committed: vec![] });
        };
        let mut parts: Vec<(&StagedPart, &crate::sink::manifest::Manifest)> =
            Vec::with_capacity(members.len());
        for m in members {
            let part = m.only_part().map_err(GroupFailed::Before)?;
            parts.push((part, &m.manifest));
        }
        let key = &first.key;
        let table = self.table(&key.dataset).map_err(GroupFailed::Before)?;
        let group_id = crate::sink::folder::group::new_group_id();
        let names = PartNames {
            staging_dir: partition::group_staging_dir(&key.dataset, &group_id),
            final_dir: key.prefix(),
            stem: "combined".to_string(),
            attempt: Some(group_id),
        };
        let combined = combine_into(&self.store, names, &parts, settings)
            .await
            .map_err(|e| GroupFailed::Before(e.into()))?;
        for m in members {
            place_rejects(&self.store, m)
                .await
                .map_err(GroupFailed::Before)?;
        }
        let req = CommitRequest {
            file_schema: first.schema.clone(),
            files: vec![DataFile {
                path: combined.final_path.clone(),
                task_id: key.task_id.clone(),
                date: key.date.clone(),
                rows: combined.rows,
                bytes: combined.bytes,
            }],
            executions: members
                .iter()
                .map(|m| (m.key.task_id.clone(), m.manifest.execution_id.clone()))
                .collect(),
        };
        let outcome = table
            .commit(req)
            .await
            .map_err(|e| GroupFailed::During(e.into()))?;
        match outcome {
            CommitOutcome::Committed { .. } => {
                // The members' own files were never committed: they are ours to delete.
                let paths = parts.iter().map(|(p, _)| p.final_path.clone()).collect();
                self.delete_unreferenced(paths).await;
                Ok(GroupCommitted::Now {
                    file: combined.final_path,
                    bytes: combined.bytes,
                })
            }
            CommitOutcome::AlreadyCommitted { executions } => {
                // Ours, never to be committed: the combined file, and the parts of the
                // members another run committed. The other members' parts are committed
                // alone next.
                let mut paths = vec![combined.final_path];
                paths.extend(
                    parts
                        .iter()
                        .filter(|(_, m)| executions.contains(&m.execution_id))
                        .map(|(p, _)| p.final_path.clone()),
                );
                self.delete_unreferenced(paths).await;
                Ok(GroupCommitted::Abandoned {
                    committed: executions,
                })
            }
        }
    }

    /// Removes the execution's temporary files (quarantined rows under `_staging/`). Data
    /// files of an attempt that failed were deleted by its writer, or (after a failed
    /// commit, which may have landed) are left to [`files::vacuum`].
    async fn discard(
        &self,
        dataset: &str,
        execution_id: &str,
        run_id: &str,
        leased: bool,
    ) -> Result<(), SinkError> {
        Ok(sweep_staging(&self.store, dataset, execution_id, run_id, leased).await?)
    }
}

impl From<DeltaError> for SinkError {
    fn from(e: DeltaError) -> Self {
        SinkError::Delta(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
    use object_store::memory::InMemory;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;
    use crate::sink::manifest::{MANIFEST_VERSION, Manifest, ManifestStatus};
    use crate::sink::parquet::ExecutionWriter;

    fn key() -> PartitionKey {
        PartitionKey {
            dataset: "d".into(),
            task_id: "t".into(),
            date: "2026-11-29".into(),
        }
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("_titan_execution_id", DataType::Utf8, false),
            Field::new("_titan_row", DataType::Int64, false),
        ]))
    }

    fn settings() -> WriterSettings {
        WriterSettings {
            row_group_rows: 1000,
            file_rows: 1000,
            file_bytes: u64::MAX,
            zstd_level: 1,
            schema_fingerprint: "f".into(),
        }
    }

    fn manifest(execution_id: &str, rows: u64, status: ManifestStatus) -> Manifest {
        Manifest {
            manifest_version: MANIFEST_VERSION,
            status,
            dataset: "d".into(),
            task_id: "t".into(),
            execution_id: execution_id.into(),
            execution_status: "completed".into(),
            format: "json".into(),
            files: vec![],
            rows,
            records_read: rows,
            source_record_count: None,
            schema_fingerprint: "f".into(),
            schema: serde_json::json!({}),
            committed_at: String::new(),
            connector_version: "0".into(),
            rejected_rows: 0,
            rejects_path: None,
            media: None,
        }
    }

    /// `rows` rows of `id` written by attempt `run` as the run loop writes them.
    async fn written(sink: &DeltaSink, id: &str, run: &str, rows: i64) -> Staged {
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(vec![id; rows as usize])),
                Arc::new(Int64Array::from_iter_values(1..=rows)),
            ],
        )
        .unwrap();
        let names = sink.part_names(&key(), id, run);
        let mut w =
            ExecutionWriter::new(sink.store().clone(), names, schema(), settings()).unwrap();
        w.write(&batch).await.unwrap();
        Staged {
            key: key(),
            parts: w.finish().await.unwrap(),
            manifest: manifest(id, rows as u64, ManifestStatus::Ingested),
            rejects: None,
            schema: schema(),
        }
    }

    fn sink() -> DeltaSink {
        let store = Store::from_object_store(Arc::new(InMemory::new()), "memory:///");
        DeltaSink::new(store, 100)
    }

    /// The table's rows as a reader sees them: (execution, row) of every live file.
    async fn table_rows(sink: &DeltaSink) -> Vec<(String, i64)> {
        let table = sink.table("d").unwrap();
        let mut rows = Vec::new();
        for f in table.live_files().await.unwrap() {
            let bytes = sink
                .store()
                .get_opt(&Path::from(format!("d/{}", f.path)))
                .await
                .unwrap()
                .unwrap();
            for b in ParquetRecordBatchReaderBuilder::try_new(bytes)
                .unwrap()
                .build()
                .unwrap()
            {
                let b = b.unwrap();
                let ids = b.column(0).as_string::<i32>();
                let n = b.column(1).as_primitive::<Int64Type>();
                rows.extend((0..b.num_rows()).map(|i| (ids.value(i).to_string(), n.value(i))));
            }
        }
        rows.sort();
        rows
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dataset_written_as_a_parquet_folder_is_refused() {
        let sink = sink();
        let part = Path::from("d/task_id=t/date=2026-11-29/e1-0.parquet");
        sink.store().put(&part, "folder part".into()).await.unwrap();
        let owner = Owner::this_process("r1");
        // Without manifests the dataset is fair game.
        assert_eq!(
            sink.recover("d", &owner).await.unwrap(),
            Recovered::default()
        );
        let manifest = Path::from("d/_manifests/t/e1.json");
        sink.store().put(&manifest, "{}".into()).await.unwrap();
        let err = sink.recover("d", &owner).await.unwrap_err().to_string();
        assert!(
            err.contains("written as a Parquet folder (`d/_manifests/` exists)"),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parts_are_written_at_their_final_attempt_unique_names() {
        let sink = sink();
        let a = written(&sink, "e1", "r1", 3).await;
        let b = written(&sink, "e1", "r2", 3).await;
        assert_eq!(
            a.parts[0].final_path.as_ref(),
            "d/task_id=t/date=2026-11-29/e1-r1-0.parquet"
        );
        assert_eq!(a.parts[0].staging, a.parts[0].final_path);
        assert_ne!(a.parts[0].final_path, b.parts[0].final_path);
        assert!(sink.store().exists(&b.parts[0].final_path).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_attempt_at_a_committed_execution_adds_nothing_and_deletes_its_files() {
        let sink = sink();
        let first = written(&sink, "e1", "r1", 4).await;
        let second = written(&sink, "e1", "r2", 4).await;
        assert_eq!(sink.commit(&first).await.unwrap(), Committed::Now);
        assert_eq!(sink.commit(&second).await.unwrap(), Committed::ByAnother);
        assert!(
            !sink
                .store()
                .exists(&second.parts[0].final_path)
                .await
                .unwrap()
        );
        assert!(
            sink.store()
                .exists(&first.parts[0].final_path)
                .await
                .unwrap()
        );
        let want: Vec<_> = (1..=4).map(|i| ("e1".to_string(), i)).collect();
        assert_eq!(table_rows(&sink).await, want);
        assert_eq!(
            sink.committed("d", "t").await.unwrap(),
            HashSet::from(["e1".to_string()])
        );
        assert!(sink.is_committed("d", "t", "e1").await.unwrap());
        assert!(!sink.is_committed("d", "t", "e2").await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_execution_without_results_is_a_commit_of_its_txn_alone() {
        let sink = sink();
        let none = Staged {
            key: key(),
            parts: vec![],
            manifest: manifest("e9", 0, ManifestStatus::NoResults),
            rejects: None,
            schema: schema(),
        };
        assert_eq!(sink.commit(&none).await.unwrap(), Committed::Now);
        assert!(sink.is_committed("d", "t", "e9").await.unwrap());
        assert!(table_rows(&sink).await.is_empty());
        assert_eq!(sink.table("d").unwrap().version().await.unwrap(), Some(0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_is_one_file_in_one_commit_and_its_members_files_are_deleted() {
        let sink = sink();
        let members = vec![
            written(&sink, "e1", "r1", 2).await,
            written(&sink, "e2", "r1", 3).await,
            written(&sink, "e3", "r1", 1).await,
        ];
        let refs: Vec<&Staged> = members.iter().collect();
        let GroupCommitted::Now { file, bytes } =
            sink.commit_group(&refs, settings()).await.unwrap()
        else {
            panic!("not committed");
        };
        let name = file.filename().unwrap();
        assert!(
            name.starts_with("combined-") && name.ends_with("-0.parquet"),
            "{name}"
        );
        assert_eq!(sink.store().size(&file).await.unwrap(), Some(bytes));
        for m in &members {
            assert!(!sink.store().exists(&m.parts[0].final_path).await.unwrap());
        }
        let table = sink.table("d").unwrap();
        assert_eq!(table.version().await.unwrap(), Some(0));
        let live = table.live_files().await.unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].rows, Some(6));
        assert_eq!(
            sink.committed("d", "t").await.unwrap(),
            HashSet::from(["e1".to_string(), "e2".to_string(), "e3".to_string()])
        );
        let want: Vec<(String, i64)> = [("e1", 1), ("e1", 2), ("e2", 1), ("e2", 2), ("e2", 3)]
            .into_iter()
            .chain([("e3", 1)])
            .map(|(e, n)| (e.to_string(), n))
            .collect();
        assert_eq!(table_rows(&sink).await, want);

        // A group with a member another process committed meanwhile commits nothing.
        let again = [
            written(&sink, "e3", "r2", 1).await,
            written(&sink, "e4", "r2", 2).await,
        ];
        let refs: Vec<&Staged> = again.iter().collect();
        assert_eq!(
            sink.commit_group(&refs, settings()).await.unwrap(),
            GroupCommitted::Abandoned {
                committed: vec!["e3".to_string()]
            }
        );
        assert_eq!(table.version().await.unwrap(), Some(0));
        // The members' own files stay for their commits alone.
        assert!(
            sink.store()
                .exists(&again[1].parts[0].final_path)
                .await
                .unwrap()
        );
        assert_eq!(sink.commit(&again[1]).await.unwrap(), Committed::Now);
        assert_eq!(table_rows(&sink).await.len(), 8);
    }
}
