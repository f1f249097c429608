//! The Parquet-folder table format, the default sink: Hive-style folders of Parquet files,
//! parts staged under `_staging/` and renamed into place, a manifest per execution
//! (`_manifests/<task>/<execution>.json`) written last as the commit record, and group
//! commits of small executions under an intent record (`_groups/`).
//!
//! A reader that globs `**/*.parquet` sees an execution's parts appear one by one during
//! its commit; the manifests say which executions are complete.

pub mod commit;
pub mod group;

use std::borrow::Cow;
use std::collections::HashSet;

use tracing::info;

pub use commit::{commit, sweep_staging};
pub use group::{GroupIntent, Member};

use super::lease::Owner;
use super::manifest::Manifest;
use super::parquet::WriterSettings;
use super::partition::{self, PartNames, PartitionKey};
use super::store::Store;
use super::{Committed, GroupCommitted, GroupFailed, Recovered, Sink, SinkError, Staged};

/// The Parquet folder over one store.
#[derive(Debug, Clone)]
pub struct FolderSink {
    store: Store,
}

impl FolderSink {
    pub fn new(store: Store) -> Self {
        FolderSink { store }
    }

    /// The manifest to write for `staged`: with quarantined rows, these are first moved to
    /// their place beside the manifests (see [`place_rejects`]) and the manifest names
    /// them; without, the staged manifest as it is.
    async fn manifest_with_rejects<'a>(
        &self,
        staged: &'a Staged,
    ) -> Result<Cow<'a, Manifest>, SinkError> {
        let Some(target) = place_rejects(&self.store, staged).await? else {
            return Ok(Cow::Borrowed(&staged.manifest));
        };
        let mut m = staged.manifest.clone();
        m.rejects_path = Some(target.to_string());
        Ok(Cow::Owned(m))
    }
}

/// Moves `staged`'s quarantined rows, if any, to their place
/// (`<dataset>/_rejects/task_id=<task>/<execution>.jsonl`, which a re-run overwrites with
/// the same rows) and returns it. Done before the commit, so a committed execution's
/// rejects are always in place.
pub(crate) async fn place_rejects(
    store: &Store,
    staged: &Staged,
) -> Result<Option<object_store::path::Path>, SinkError> {
    let Some(from) = &staged.rejects else {
        return Ok(None);
    };
    let m = &staged.manifest;
    let target = partition::rejects_path(&m.dataset, &m.task_id, &m.execution_id);
    // Already moved by an earlier attempt (a group that fell back to alone commits).
    if let Err(e) = store.rename(from, &target).await
        && !store.exists(&target).await?
    {
        return Err(e.into());
    }
    Ok(Some(target))
}

#[async_trait::async_trait]
impl Sink for FolderSink {
    fn url(&self) -> &str {
        self.store.url()
    }

    fn store(&self) -> &Store {
        &self.store
    }

    fn part_names(&self, key: &PartitionKey, execution_id: &str, run_id: &str) -> PartNames {
        PartNames::for_execution(key, execution_id, run_id)
    }

    async fn recover(&self, dataset: &str, owner: &Owner) -> Result<Recovered, SinkError> {
        let done = group::recover_groups(&self.store, dataset, owner).await?;
        if done != Recovered::default() {
            info!(dataset, ?done, "Recovered interrupted group commits");
        }
        Ok(done)
    }

    async fn committed(&self, dataset: &str, task_id: &str) -> Result<HashSet<String>, SinkError> {
        // One LIST of the task's manifests instead of a HEAD per execution.
        let prefix = partition::manifests_prefix(dataset, task_id);
        Ok(self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|m| {
                let id = m.location.filename()?.strip_suffix(".json")?.to_string();
                // Only `<prefix>/<id>.json`: the path must be exactly the manifest's.
                (partition::manifest_path(dataset, task_id, &id) == m.location).then_some(id)
            })
            .collect())
    }

    async fn is_committed(
        &self,
        dataset: &str,
        task_id: &str,
        execution_id: &str,
    ) -> Result<bool, SinkError> {
        let manifest = partition::manifest_path(dataset, task_id, execution_id);
        Ok(self.store.exists(&manifest).await?)
    }

    async fn settle(
        &self,
        dataset: &str,
        task_id: &str,
        execution_id: &str,
    ) -> Result<(), SinkError> {
        group::settle_member(&self.store, dataset, task_id, execution_id).await?;
        Ok(())
    }

    async fn commit(&self, staged: &Staged) -> Result<Committed, SinkError> {
        let manifest = self.manifest_with_rejects(staged).await?;
        Ok(commit::commit(&self.store, &staged.key, &staged.parts, &manifest).await?)
    }

    async fn commit_group(
        &self,
        members: &[&Staged],
        settings: WriterSettings,
    ) -> Result<GroupCommitted, GroupFailed> {
        let mut parts = Vec::with_capacity(members.len());
        for m in members {
            let part = m.only_part().map_err(GroupFailed::Before)?;
            let manifest = self
                .manifest_with_rejects(m)
                .await
                .map_err(GroupFailed::Before)?;
            parts.push(Member {
                part: part.clone(),
                manifest: manifest.into_owned(),
            });
        }
        let Some(first) = members.first() else {
            return Ok(GroupCommitted::Abandoned { committed: vec![] });
        };
        let key = &first.key;
        let group_id = group::new_group_id();
        let combined = group::combine(&self.store, key, &group_id, &parts, settings)
            .await
            .map_err(|e| GroupFailed::Before(e.into()))?;
        let mut intent = group::intent_for(key, &group_id, &combined, &parts);
        let committed_at = crate::report::now_rfc3339();
        for m in &mut intent.manifests {
            m.committed_at = committed_at.clone();
        }
        group::commit_group(&self.store, key, &intent)
            .await
            .map_err(|e| GroupFailed::During(e.into()))
    }

    async fn discard(
        &self,
        dataset: &str,
        execution_id: &str,
        run_id: &str,
        leased: bool,
    ) -> Result<(), SinkError> {
        Ok(commit::sweep_staging(&self.store, dataset, execution_id, run_id, leased).await?)
    }
}
