//! Commit of an execution: staged parts moved into place, orphans removed, manifest last.
//!
//! Invariant: when the manifest exists, exactly the files it lists hold the execution's
//! rows. A crash before the manifest is written leaves no manifest, so the next run redoes
//! the execution; because part names are deterministic it overwrites, and any part that
//! run does not produce again is deleted here as an orphan. Parts are numbered from 0 and
//! moved into place (and orphans deleted) in an order that leaves every crash with a run
//! of parts from 0, so orphans are found by probing numbers, not by listing.
//!
//! Two processes may commit the same execution at once (no lease, or a lease lost to a
//! stall). That stays correct without relying on timing: both produce the same part names
//! with the same rows, a rename replaces a file atomically, and the commit deletes nothing
//! another process could still need — not another run's staged parts (only
//! [`sweep_staging`] does, under a lease or long after), and no final part once a manifest
//! exists: a commit that finds the execution committed by another process discards its own
//! staged parts instead ([`Committed::ByAnother`]).

use std::time::Duration;

use crate::sink::Committed;
use crate::sink::manifest::Manifest;
use crate::sink::parquet::{StagedPart, WriteError};
use crate::sink::partition::{self, PartitionKey};
use crate::sink::store::Store;

/// Moves `parts` into place and writes `manifest` last.
pub async fn commit(
    store: &Store,
    key: &PartitionKey,
    parts: &[StagedPart],
    manifest: &Manifest,
) -> Result<Committed, WriteError> {
    let execution_id = manifest.execution_id.as_str();
    let manifest_path =
        partition::manifest_path(&manifest.dataset, &manifest.task_id, execution_id);
    if store.exists(&manifest_path).await? {
        discard(store, parts).await;
        return Ok(Committed::ByAnother);
    }
    // Orphans: final parts of this execution from an earlier, crashed run that wrote more
    // parts than this one. Parts are numbered from 0 and moved into place in order, so
    // what any run left is parts 0..k: probing upward from our count finds them all. They
    // are deleted highest first, so a crash here too leaves a run of parts from 0.
    // (Listing the partition instead made each commit cost as much as the partition's
    // file count: 10,000 one-file executions of one partition took 327 CPU seconds.)
    let mut orphans = Vec::new();
    loop {
        let orphan = key.part_path(execution_id, parts.len() + orphans.len());
        if !store.exists(&orphan).await? {
            break;
        }
        orphans.push(orphan);
    }
    for orphan in orphans.iter().rev() {
        store.delete(orphan).await?;
    }
    for part in parts {
        if let Err(e) = store.rename(&part.staging, &part.final_path).await {
            // A concurrent committer that finished first may have swept our staging.
            if store.exists(&manifest_path).await? {
                discard(store, parts).await;
                return Ok(Committed::ByAnother);
            }
            return Err(e.into());
        }
    }
    store.put(&manifest_path, manifest.to_bytes()).await?;
    Ok(Committed::Now)
}

/// Best-effort removal of our staged parts that were not moved into place.
async fn discard(store: &Store, parts: &[StagedPart]) {
    for part in parts {
        let _ = store.delete(&part.staging).await;
    }
}

/// How old another run's staged file must be before a process without a lease deletes it:
/// far beyond any export, so it can only be a crashed run's leftover.
pub const STAGING_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Deletes what runs staged for `execution_id` and left behind (crashed, interrupted):
/// everything when the caller holds the execution's lease (no other process is working on
/// it), else only its own run's files and files older than [`STAGING_GRACE`].
pub async fn sweep_staging(
    store: &Store,
    dataset: &str,
    execution_id: &str,
    own_run_id: &str,
    leased: bool,
) -> Result<(), WriteError> {
    let prefix = partition::staging_prefix(dataset, execution_id);
    let own = prefix.clone().join(own_run_id);
    let now = chrono::Utc::now();
    let cutoff = chrono::Duration::from_std(STAGING_GRACE)
        .ok()
        .and_then(|grace| now.checked_sub_signed(grace))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    for meta in store.list(&prefix).await? {
        let ours = meta.location.prefix_matches(&own);
        if leased || ours || meta.last_modified < cutoff {
            store.delete(&meta.location).await?;
        }
    }
    store.prune_empty_dirs(&prefix).await;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use object_store::memory::InMemory;
    use object_store::path::Path;

    use super::*;
    use crate::sink::manifest::{MANIFEST_VERSION, ManifestStatus};

    fn key() -> PartitionKey {
        PartitionKey {
            dataset: "d".into(),
            task_id: "t".into(),
            date: "2026-11-29".into(),
        }
    }

    fn manifest(files: &[&str]) -> Manifest {
        Manifest {
            manifest_version: MANIFEST_VERSION,
            status: ManifestStatus::Ingested,
            dataset: "d".into(),
            task_id: "t".into(),
            execution_id: "e".into(),
            execution_status: "completed".into(),
            format: "json".into(),
            files: files
                .iter()
                .map(|f| crate::sink::manifest::ManifestFile {
                    path: (*f).into(),
                    rows: 1,
                    bytes: 1,
                    shared: false,
                })
                .collect(),
            rows: files.len() as u64,
            records_read: files.len() as u64,
            source_record_count: None,
            schema_fingerprint: "f".into(),
            schema: serde_json::json!({}),
            committed_at: "2026-11-29T00:00:00Z".into(),
            connector_version: "0".into(),
            rejected_rows: 0,
            rejects_path: None,
            media: None,
        }
    }

    async fn staged(store: &Store, run: &str, content: &'static str) -> StagedPart {
        let staging = Path::from(format!("d/_staging/e/{run}/part-0.parquet.tmp"));
        store.put(&staging, Bytes::from(content)).await.unwrap();
        StagedPart {
            staging,
            final_path: key().part_path("e", 0),
            rows: 1,
            bytes: content.len() as u64,
        }
    }

    /// Every key under the test dataset `d`, sorted (shared with `write::group`'s tests).
    pub(crate) async fn keys(store: &Store) -> Vec<String> {
        let mut v: Vec<String> = store
            .list(&Path::from("d"))
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.location.to_string())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn parts_a_crashed_run_left_beyond_this_runs_count_are_deleted() {
        let store = Store::from_object_store(Arc::new(InMemory::new()), "memory://");
        // A crashed run of `e` moved parts 0..3 into place; another execution's part
        // stays.
        for n in 0..3 {
            store
                .put(&key().part_path("e", n), Bytes::from("old"))
                .await
                .unwrap();
        }
        let other = key().part_path("e2", 1);
        store.put(&other, Bytes::from("other")).await.unwrap();
        let part = staged(&store, "run-b", "new").await;
        let done = commit(
            &store,
            &key(),
            &[part],
            &manifest(&["d/task_id=t/date=2026-11-29/e-0.parquet"]),
        )
        .await
        .unwrap();
        assert_eq!(done, Committed::Now);
        assert_eq!(
            keys(&store).await,
            vec![
                "d/_manifests/t/e.json".to_string(),
                "d/task_id=t/date=2026-11-29/e-0.parquet".to_string(),
                "d/task_id=t/date=2026-11-29/e2-1.parquet".to_string(),
            ]
        );
        let kept = store
            .get_opt(&key().part_path("e", 0))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept, Bytes::from("new"));
    }

    #[tokio::test]
    async fn a_second_committer_leaves_the_first_ones_data_and_the_others_staging_alone() {
        let store = Store::from_object_store(Arc::new(InMemory::new()), "memory://");
        let a = staged(&store, "run-a", "from a").await;
        let b = staged(&store, "run-b", "from b").await;
        let m = manifest(&["d/task_id=t/date=2026-11-29/e-0.parquet"]);
        assert_eq!(
            commit(&store, &key(), &[a], &m).await.unwrap(),
            Committed::Now
        );
        // A's commit did not touch B's staged part, still being written or committed.
        assert_eq!(
            keys(&store).await,
            [
                "d/_manifests/t/e.json",
                "d/_staging/e/run-b/part-0.parquet.tmp",
                "d/task_id=t/date=2026-11-29/e-0.parquet",
            ]
        );
        assert_eq!(
            commit(&store, &key(), &[b], &m).await.unwrap(),
            Committed::ByAnother
        );
        assert_eq!(
            keys(&store).await,
            [
                "d/_manifests/t/e.json",
                "d/task_id=t/date=2026-11-29/e-0.parquet"
            ]
        );
        let part = store.get_opt(&key().part_path("e", 0)).await.unwrap();
        assert_eq!(part.as_deref(), Some(&b"from a"[..]));
    }

    #[tokio::test]
    async fn a_committer_whose_staging_was_swept_after_the_other_committed_reports_it() {
        let store = Store::from_object_store(Arc::new(InMemory::new()), "memory://");
        let b = staged(&store, "run-b", "from b").await;
        store.delete(&b.staging).await.unwrap(); // swept by the lease holder
        let m = manifest(&["d/task_id=t/date=2026-11-29/e-0.parquet"]);
        // Without a manifest the missing staged part is an error …
        assert!(
            commit(&store, &key(), std::slice::from_ref(&b), &m)
                .await
                .is_err()
        );
        // … once the other process has committed, it is that process's commit.
        store
            .put(&Path::from("d/_manifests/t/e.json"), m.to_bytes())
            .await
            .unwrap();
        assert_eq!(
            commit(&store, &key(), &[b], &m).await.unwrap(),
            Committed::ByAnother
        );
    }

    #[tokio::test]
    async fn sweep_takes_everything_under_a_lease_and_only_own_or_old_files_without() {
        let store = Store::from_object_store(Arc::new(InMemory::new()), "memory://");
        staged(&store, "mine", "x").await;
        staged(&store, "other", "y").await;
        sweep_staging(&store, "d", "e", "mine", false)
            .await
            .unwrap();
        assert_eq!(
            keys(&store).await,
            ["d/_staging/e/other/part-0.parquet.tmp"]
        );
        sweep_staging(&store, "d", "e", "mine", true).await.unwrap();
        assert_eq!(keys(&store).await, Vec::<String>::new());
    }
}
