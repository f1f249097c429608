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
        if table.version().await?.is_none() {
            return Ok(Recovered::default());
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
            let [part] = m.parts.as_slice() else {
                return Err(GroupFailed::Before(SinkError::NotCombinable {
                    execution_id: m.manifest.execution_id.clone(),
                    parts: m.parts.len(),
                }));
            };
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
                self.delete_unreferenced(vec![combined.final_path]).await;
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
