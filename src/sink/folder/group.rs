//! Group commit: the rows of many small executions in one combined file, committed as one.
//!
//! Each small execution is first staged and transcoded as usual (its own staged part,
//! its own manifest draft). A group of them is then [`combine`]d: their staged parts are
//! read back batch by batch into one staged file, and [`commit_group`] publishes it:
//!
//! ```text
//! a. any member already has a manifest → abandon: delete the combined staged file; the
//!    caller commits the other members alone (their own parts, the normal commit)
//! b. put the intent  <dataset>/_groups/<group>.json  (staged + final path, every
//!    member's full manifest naming the combined file)
//! c. rename the combined staged file to  <partition>/combined_<group>.parquet
//! d. put every member's manifest
//! e. delete the intent (the caller deletes the members' staged parts)
//! ```
//!
//! Invariant, as for one execution: when a member's manifest exists, exactly the files it
//! lists hold its rows. A crash between b and e leaves the intent, and [`recover_groups`]
//! (at the start of every run, under the members' leases) finishes or undoes it: a
//! combined file already in place is rolled forward (missing manifests written); a combined
//! file still staged is moved into place and rolled forward, unless a member was committed
//! meanwhile by another process, in which case nothing was published and the group is
//! undone; neither file → nothing was published, the intent goes.
//!
//! A combined file's name has no `-`, so the orphan clean-up of a later alone commit
//! (`partition::is_part_of`) can never take it for an execution's part.

use std::collections::HashSet;
use std::time::Duration;

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, TryFutureExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::sink::lease::{self, Claim, Lease};
use crate::sink::manifest::{Manifest, ManifestFile};
use crate::sink::parquet::{ExecutionWriter, StagedPart, WriteError, WriterSettings};
use crate::sink::partition::{self, PartNames, PartitionKey};
use crate::sink::store::Store;
use crate::sink::{GroupCommitted, Recovered};

/// Intent format version.
pub const INTENT_VERSION: u32 = 1;

/// Rows per batch when reading staged parts back.
const READ_BATCH_ROWS: usize = 8192;

/// How old a staged combined file without an intent must be before recovery deletes it:
/// younger ones may belong to a group another process is still writing.
pub const GROUP_STAGING_GRACE: Duration = super::commit::STAGING_GRACE;

/// The record of a group commit under way: `<dataset>/_groups/<group>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupIntent {
    pub intent_version: u32,
    pub group_id: String,
    pub dataset: String,
    pub task_id: String,
    /// The combined file, staged.
    pub staged: String,
    /// Where the combined file lands.
    pub final_path: String,
    /// Every member's manifest exactly as it is to be written.
    pub manifests: Vec<Manifest>,
}

impl GroupIntent {
    /// Serialised form (pretty JSON, newline-terminated).
    pub fn to_bytes(&self) -> bytes::Bytes {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        bytes::Bytes::from(v)
    }

    /// Parses a stored intent.
    pub fn from_slice(b: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(b)
    }

    /// Where the intent is stored.
    pub fn path(&self) -> Path {
        partition::group_intent_path(&self.dataset, &self.group_id)
    }

    fn manifest_path(&self, m: &Manifest) -> Path {
        partition::manifest_path(&self.dataset, &self.task_id, &m.execution_id)
    }

    /// The member executions' ids.
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.manifests.iter().map(|m| m.execution_id.as_str())
    }
}

/// One small execution waiting to be combined: its staged part and its manifest as it
/// would be committed alone.
#[derive(Debug, Clone)]
pub struct Member {
    pub part: StagedPart,
    pub manifest: Manifest,
}

/// A new group id: a simple (dash-free) UUID.
pub fn new_group_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Reads every member's staged part back, batch by batch (never a whole file in memory),
/// into one staged combined file written with `settings` (one file: the caller keeps a
/// group within `file_rows`). Checks that each member's part holds the rows it claims.
pub async fn combine(
    store: &Store,
    key: &PartitionKey,
    group_id: &str,
    members: &[Member],
    settings: WriterSettings,
) -> Result<StagedPart, WriteError> {
    let names = PartNames {
        staging_dir: partition::group_staging_dir(&key.dataset, group_id),
        final_dir: key.prefix(),
        stem: format!("{}{group_id}", partition::COMBINED_PREFIX),
        attempt: None,
    };
    let members: Vec<_> = members.iter().map(|m| (&m.part, &m.manifest)).collect();
    let mut part = combine_into(store, names, &members, settings).await?;
    part.final_path = key.combined_path(group_id);
    Ok(part)
}

/// [`combine`] into the file `names` gives part 0 (by another sink's naming); each member
/// is its written part and its manifest.
pub async fn combine_into(
    store: &Store,
    names: PartNames,
    members: &[(&StagedPart, &Manifest)],
    settings: WriterSettings,
) -> Result<StagedPart, WriteError> {
    let mut writer: Option<ExecutionWriter> = None;
    let result = async {
        for (part, manifest) in members {
            let err = |source| WriteError::Parquet {
                path: part.staging.to_string(),
                source: Box::new(source),
            };
            let reader = StagedReader {
                store: store.object_store(),
                path: part.staging.clone(),
                size: part.bytes,
            };
            let mut stream = ParquetRecordBatchStreamBuilder::new(reader)
                .await
                .map_err(err)?
                .with_batch_size(READ_BATCH_ROWS)
                .build()
                .map_err(err)?;
            let mut rows = 0u64;
            while let Some(batch) = stream.try_next().await.map_err(err)? {
                let w = match &mut writer {
                    Some(w) => w,
                    None => writer.insert(ExecutionWriter::new(
                        store.clone(),
                        names.clone(),
                        batch.schema(),
                        WriterSettings {
                            file_rows: usize::MAX,
                            file_bytes: u64::MAX,
                            ..settings.clone()
                        },
                    )?),
                };
                rows += batch.num_rows() as u64;
                w.write(&batch).await?;
            }
            if rows != part.rows || rows != manifest.rows {
                return Err(WriteError::Schema {
                    message: format!(
                        "staged part `{}` of execution {} holds {rows} rows, not {}",
                        part.staging, manifest.execution_id, part.rows
                    ),
                });
            }
        }
        Ok(())
    }
    .await;
    let Some(w) = writer else {
        result?;
        return Err(WriteError::Schema {
            message: "a combined file needs at least one row".to_string(),
        });
    };
    if let Err(e) = result {
        w.abort().await;
        return Err(e);
    }
    let mut parts = w.finish().await?;
    if parts.len() != 1 {
        for p in &parts {
            let _ = store.delete(&p.staging).await;
        }
        return Err(WriteError::Schema {
            message: format!("a combined file rolled into {} parts", parts.len()),
        });
    }
    Ok(parts.remove(0))
}

/// The intent of committing `combined` for `members`: each manifest names the combined file
/// (shared) with that member's rows.
pub fn intent_for(
    key: &PartitionKey,
    group_id: &str,
    combined: &StagedPart,
    members: &[Member],
) -> GroupIntent {
    let manifests = members
        .iter()
        .map(|m| {
            let mut manifest = m.manifest.clone();
            manifest.files = vec![ManifestFile {
                path: combined.final_path.to_string(),
                rows: m.manifest.rows,
                bytes: combined.bytes,
                shared: true,
            }];
            manifest
        })
        .collect();
    GroupIntent {
        intent_version: INTENT_VERSION,
        group_id: group_id.to_string(),
        dataset: key.dataset.clone(),
        task_id: key.task_id.clone(),
        staged: combined.staging.to_string(),
        final_path: combined.final_path.to_string(),
        manifests,
    }
}

/// Publishes a combined file for its members (steps a–e of the module doc). `key` is the
/// members' partition, for the clean-up of their earlier runs' parts.
pub async fn commit_group(
    store: &Store,
    key: &PartitionKey,
    intent: &GroupIntent,
) -> Result<GroupCommitted, WriteError> {
    let staged = Path::from(intent.staged.as_str());
    // a.
    let mut committed = Vec::new();
    for m in &intent.manifests {
        if store.exists(&intent.manifest_path(m)).await? {
            committed.push(m.execution_id.clone());
        }
    }
    if !committed.is_empty() {
        store.delete(&staged).await?;
        return Ok(GroupCommitted::Abandoned { committed });
    }
    // b.
    store.put(&intent.path(), intent.to_bytes()).await?;
    // Parts an earlier, crashed run of a member left in place without a manifest: their
    // rows are in the combined file now.
    let members: HashSet<&str> = intent.members().collect();
    for meta in store.list(&key.prefix()).await? {
        if members
            .iter()
            .any(|id| partition::is_part_of(&meta.location, id))
        {
            store.delete(&meta.location).await?;
        }
    }
    // c.
    let final_path = Path::from(intent.final_path.as_str());
    if let Err(e) = store.rename(&staged, &final_path).await {
        // Recovery by another process (on a store without leases) may have moved it.
        if !store.exists(&final_path).await? {
            return Err(e.into());
        }
    }
    // d., e.
    roll_forward(store, intent).await?;
    Ok(GroupCommitted::Now {
        file: final_path,
        bytes: intent
            .manifests
            .first()
            .and_then(|m| m.files.first())
            .map_or(0, |f| f.bytes),
    })
}

/// Writes the manifests of `intent` that are missing, then deletes the intent.
async fn roll_forward(store: &Store, intent: &GroupIntent) -> Result<(), WriteError> {
    for m in &intent.manifests {
        let path = intent.manifest_path(m);
        if !store.exists(&path).await? {
            store.put(&path, m.to_bytes()).await?;
        }
    }
    store.delete(&intent.path()).await?;
    Ok(())
}

/// What recovery did with one intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The combined file was (or now is) in place: missing manifests written.
    RolledForward,
    /// Nothing had been published: the intent (and any staged combined file) deleted.
    Undone,
}

/// Finishes or undoes one interrupted group commit. The caller holds the members' leases.
pub async fn resolve(store: &Store, intent: &GroupIntent) -> Result<Resolution, WriteError> {
    let staged = Path::from(intent.staged.as_str());
    let final_path = Path::from(intent.final_path.as_str());
    if !store.exists(&final_path).await? && store.exists(&staged).await? {
        // Not published yet. A member committed meanwhile (alone, by a process that took
        // over its lease) would be duplicated: then undo instead.
        let mut any_committed = false;
        for m in &intent.manifests {
            any_committed |= store.exists(&intent.manifest_path(m)).await?;
        }
        if any_committed {
            store.delete(&staged).await?;
            store.delete(&intent.path()).await?;
            return Ok(Resolution::Undone);
        }
        if let Err(e) = store.rename(&staged, &final_path).await
            && !store.exists(&final_path).await?
        {
            return Err(e.into());
        }
    }
    // Checked again: a committer may have just moved the staged file into place.
    if store.exists(&final_path).await? {
        roll_forward(store, intent).await?;
        return Ok(Resolution::RolledForward);
    }
    store.delete(&intent.path()).await?;
    Ok(Resolution::Undone)
}

/// Finishes or undoes every interrupted group commit of `dataset`, each under its
/// members' leases (taken as `owner`); an intent with a member leased by another live
/// process is left to that process. Also deletes staged combined files that have no
/// intent and are older than [`GROUP_STAGING_GRACE`] (a crash before the intent).
pub async fn recover_groups(
    store: &Store,
    dataset: &str,
    owner: &lease::Owner,
) -> Result<Recovered, WriteError> {
    let mut done = Recovered::default();
    let prefix = partition::groups_prefix(dataset);
    let listed = store.list(&prefix).await?;
    let depth = prefix.parts().count() + 1;
    let mut intents = Vec::new();
    let mut staged = Vec::new();
    for meta in listed {
        let is_intent =
            meta.location.parts().count() == depth && meta.location.extension() == Some("json");
        if is_intent {
            intents.push(meta.location);
        } else {
            staged.push(meta);
        }
    }
    let mut live_groups = HashSet::new();
    for path in &intents {
        let Some(bytes) = store.get_opt(path).await? else {
            continue; // finished meanwhile
        };
        let intent = match GroupIntent::from_slice(&bytes) {
            Ok(i) => i,
            Err(e) => {
                warn!(intent = %path, error = %e, "Unreadable group intent left alone");
                done.skipped += 1;
                continue;
            }
        };
        let Some(leases) = claim_members(store, &intent, owner).await else {
            info!(
                group = intent.group_id,
                "Group commit under way elsewhere, leaving it"
            );
            live_groups.insert(intent.group_id.clone());
            done.skipped += 1;
            continue;
        };
        let resolved = resolve(store, &intent).await;
        let leased = !leases.is_empty();
        if resolved.is_ok() {
            for id in intent.members() {
                if let Err(e) =
                    super::sweep_staging(store, dataset, id, &owner.run_id, leased).await
                {
                    warn!(execution_id = id, error = %e, "Could not clean up staging");
                }
            }
        }
        for l in leases {
            l.release().await;
        }
        match resolved? {
            Resolution::RolledForward => {
                info!(
                    group = intent.group_id,
                    members = intent.manifests.len(),
                    "Finished an interrupted group commit"
                );
                done.rolled_forward += 1;
            }
            Resolution::Undone => {
                info!(group = intent.group_id, "Undid an interrupted group commit");
                done.undone += 1;
            }
        }
    }
    let cutoff = chrono::Duration::from_std(GROUP_STAGING_GRACE)
        .ok()
        .and_then(|g| chrono::Utc::now().checked_sub_signed(g))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    for meta in staged {
        let group = meta.location.parts().nth(depth - 1);
        let pending = group.is_some_and(|g| {
            live_groups.contains(g.as_ref())
                || intents.iter().any(|i| {
                    i.filename()
                        .and_then(|f| f.strip_suffix(".json"))
                        .is_some_and(|id| id == g.as_ref())
                })
        });
        if !pending && meta.last_modified < cutoff {
            store.delete(&meta.location).await?;
        }
    }
    Ok(done)
}

/// For an execution whose lease was just taken over from a holder that crashed (or
/// stalled): resolves, as recovery does, every interrupted group commit that names it, so
/// that it is neither committed alone next to rows of it already published in a combined
/// file, nor left waiting for a recovery that the run start missed (the holder was still
/// alive then). Returns how many intents were resolved.
pub async fn settle_member(
    store: &Store,
    dataset: &str,
    task_id: &str,
    execution_id: &str,
) -> Result<usize, WriteError> {
    let prefix = partition::groups_prefix(dataset);
    let depth = prefix.parts().count() + 1;
    let mut resolved = 0;
    for meta in store.list(&prefix).await? {
        if meta.location.parts().count() != depth || meta.location.extension() != Some("json") {
            continue;
        }
        let Some(bytes) = store.get_opt(&meta.location).await? else {
            continue;
        };
        let Ok(intent) = GroupIntent::from_slice(&bytes) else {
            continue;
        };
        if intent.task_id != task_id || !intent.members().any(|id| id == execution_id) {
            continue;
        }
        let how = resolve(store, &intent).await?;
        info!(
            group = intent.group_id,
            execution_id,
            resolution = ?how,
            "Resolved the interrupted group commit of a taken-over execution"
        );
        resolved += 1;
    }
    Ok(resolved)
}

/// Takes every member's lease; `None` (and none kept) when another live process holds
/// one. A store without leases, or lease trouble, gives an empty list: go ahead, as the
/// commit does.
async fn claim_members(
    store: &Store,
    intent: &GroupIntent,
    owner: &lease::Owner,
) -> Option<Vec<Lease>> {
    let mut held = Vec::new();
    for id in intent.members() {
        let path = lease::lease_path(&intent.dataset, &intent.task_id, id);
        match lease::acquire(store, &path, owner, lease::LEASE_TTL).await {
            Ok(Claim::Held(l)) => held.push(l),
            Ok(Claim::Busy(_)) => {
                for l in held {
                    l.release().await;
                }
                return None;
            }
            Ok(Claim::Unsupported) => {}
            Err(e) => warn!(execution_id = id, error = %e, "No lease for recovery; going ahead"),
        }
    }
    Some(held)
}

/// Reads a staged part by ranges (footer, then the row groups' column chunks), so a part
/// is never held whole in memory. Delta compaction reads its inputs with it too.
pub(crate) struct StagedReader {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) path: Path,
    pub(crate) size: u64,
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StagedReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.store
            .get_range(&self.path, range)
            .map_err(external)
            .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use object_store::memory::InMemory;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;
    use crate::sink::folder::commit::tests::keys;
    use crate::sink::manifest::{MANIFEST_VERSION, ManifestStatus};

    fn store() -> Store {
        Store::from_object_store(Arc::new(InMemory::new()), "memory://")
    }

    fn key() -> PartitionKey {
        PartitionKey {
            dataset: "d".into(),
            task_id: "t".into(),
            date: "2026-11-29".into(),
        }
    }

    fn manifest(execution_id: &str, rows: u64) -> Manifest {
        Manifest {
            manifest_version: MANIFEST_VERSION,
            status: ManifestStatus::Ingested,
            dataset: "d".into(),
            task_id: "t".into(),
            execution_id: execution_id.into(),
            execution_status: "completed".into(),
            format: "json".into(),
            files: vec![ManifestFile {
                path: key().part_path(execution_id, 0).to_string(),
                rows,
                bytes: 1,
                shared: false,
            }],
            rows,
            records_read: rows,
            source_record_count: Some(rows),
            schema_fingerprint: "f".into(),
            schema: serde_json::json!({}),
            committed_at: "2026-11-29T00:00:00Z".into(),
            connector_version: "0".into(),
            rejected_rows: 0,
            rejects_path: None,
            media: None,
        }
    }

    /// A member with a fake (non-Parquet) staged part: enough for everything but `combine`.
    fn member(id: &str, rows: u64) -> Member {
        Member {
            part: StagedPart {
                staging: Path::from(format!("d/_staging/{id}/run-1/part-0.parquet.tmp")),
                final_path: key().part_path(id, 0),
                rows,
                bytes: 1,
            },
            manifest: manifest(id, rows),
        }
    }

    /// An intent for members `ids` whose combined file is staged (content `bytes`).
    async fn staged_intent(store: &Store, ids: &[&str]) -> GroupIntent {
        let members: Vec<Member> = ids.iter().map(|id| member(id, 10)).collect();
        let combined = StagedPart {
            staging: partition::group_staging_dir("d", "g1").join("part-0.parquet.tmp"),
            final_path: key().combined_path("g1"),
            rows: 10 * ids.len() as u64,
            bytes: 5,
        };
        store
            .put(&combined.staging, bytes::Bytes::from_static(b"PAR1x"))
            .await
            .unwrap();
        intent_for(&key(), "g1", &combined, &members)
    }

    async fn stored_manifest(store: &Store, id: &str) -> Option<Manifest> {
        store
            .get_opt(&partition::manifest_path("d", "t", id))
            .await
            .unwrap()
            .map(|b| Manifest::from_slice(&b).unwrap())
    }

    const FINAL: &str = "d/task_id=t/date=2026-11-29/combined_g1.parquet";

    #[tokio::test]
    async fn intent_round_trips_and_names_the_combined_file_in_every_manifest() {
        let store = store();
        let intent = staged_intent(&store, &["e1", "e2"]).await;
        assert_eq!(intent.path().as_ref(), "d/_groups/g1.json");
        assert_eq!(intent.staged, "d/_groups/g1/part-0.parquet.tmp");
        assert_eq!(intent.final_path, FINAL);
        for m in &intent.manifests {
            assert_eq!(
                m.files,
                vec![ManifestFile {
                    path: FINAL.into(),
                    rows: 10,
                    bytes: 5,
                    shared: true
                }]
            );
        }
        let back = GroupIntent::from_slice(&intent.to_bytes()).unwrap();
        assert_eq!(back, intent);
        let text = String::from_utf8(intent.to_bytes().to_vec()).unwrap();
        assert!(text.contains("\"shared\": true"), "{text}");
    }

    #[tokio::test]
    async fn commit_group_publishes_the_file_then_every_manifest_and_drops_the_intent() {
        let store = store();
        let intent = staged_intent(&store, &["e1", "e2"]).await;
        // A crashed earlier run of e1 left a part in place without a manifest.
        store
            .put(&key().part_path("e1", 0), bytes::Bytes::from_static(b"old"))
            .await
            .unwrap();
        // Another execution's part stays.
        store
            .put(&key().part_path("e10", 0), bytes::Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(
            commit_group(&store, &key(), &intent).await.unwrap(),
            GroupCommitted::Now {
                file: Path::from(intent.final_path.as_str()),
                bytes: intent.manifests[0].files[0].bytes,
            }
        );
        assert_eq!(
            keys(&store).await,
            [
                "d/_manifests/t/e1.json",
                "d/_manifests/t/e2.json",
                "d/task_id=t/date=2026-11-29/combined_g1.parquet",
                "d/task_id=t/date=2026-11-29/e10-0.parquet",
            ]
        );
        for (i, id) in ["e1", "e2"].into_iter().enumerate() {
            assert_eq!(
                stored_manifest(&store, id).await.as_ref(),
                Some(&intent.manifests[i])
            );
        }
    }

    #[tokio::test]
    async fn commit_group_with_a_member_committed_elsewhere_publishes_nothing() {
        let store = store();
        let intent = staged_intent(&store, &["e1", "e2"]).await;
        let theirs = manifest("e2", 10);
        store
            .put(&partition::manifest_path("d", "t", "e2"), theirs.to_bytes())
            .await
            .unwrap();
        assert_eq!(
            commit_group(&store, &key(), &intent).await.unwrap(),
            GroupCommitted::Abandoned {
                committed: vec!["e2".into()]
            }
        );
        assert_eq!(keys(&store).await, ["d/_manifests/t/e2.json"]);
        assert_eq!(stored_manifest(&store, "e2").await, Some(theirs));
    }

    #[tokio::test]
    async fn resolve_rolls_forward_when_the_file_is_in_place() {
        let store = store();
        let intent = staged_intent(&store, &["e1", "e2", "e3"]).await;
        // Crashed after the rename and the first manifest.
        store.put(&intent.path(), intent.to_bytes()).await.unwrap();
        store
            .rename(&Path::from(intent.staged.as_str()), &Path::from(FINAL))
            .await
            .unwrap();
        store
            .put(
                &partition::manifest_path("d", "t", "e1"),
                intent.manifests[0].to_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(
            resolve(&store, &intent).await.unwrap(),
            Resolution::RolledForward
        );
        assert_eq!(
            keys(&store).await,
            [
                "d/_manifests/t/e1.json",
                "d/_manifests/t/e2.json",
                "d/_manifests/t/e3.json",
                FINAL,
            ]
        );
        for (i, id) in ["e1", "e2", "e3"].into_iter().enumerate() {
            assert_eq!(
                stored_manifest(&store, id).await.as_ref(),
                Some(&intent.manifests[i])
            );
        }
    }

    #[tokio::test]
    async fn resolve_finishes_the_rename_when_the_file_is_still_staged() {
        let store = store();
        let intent = staged_intent(&store, &["e1", "e2"]).await;
        store.put(&intent.path(), intent.to_bytes()).await.unwrap();
        assert_eq!(
            resolve(&store, &intent).await.unwrap(),
            Resolution::RolledForward
        );
        assert_eq!(
            keys(&store).await,
            ["d/_manifests/t/e1.json", "d/_manifests/t/e2.json", FINAL]
        );
        let published = store.get_opt(&Path::from(FINAL)).await.unwrap().unwrap();
        assert_eq!(&published[..], b"PAR1x");
    }

    #[tokio::test]
    async fn resolve_undoes_an_unpublished_group_whose_member_was_committed_alone() {
        let store = store();
        let intent = staged_intent(&store, &["e1", "e2"]).await;
        store.put(&intent.path(), intent.to_bytes()).await.unwrap();
        let alone = manifest("e1", 10);
        store
            .put(&partition::manifest_path("d", "t", "e1"), alone.to_bytes())
            .await
            .unwrap();
        store
            .put(&key().part_path("e1", 0), bytes::Bytes::from_static(b"e1"))
            .await
            .unwrap();
        assert_eq!(resolve(&store, &intent).await.unwrap(), Resolution::Undone);
        assert_eq!(
            keys(&store).await,
            [
                "d/_manifests/t/e1.json",
                "d/task_id=t/date=2026-11-29/e1-0.parquet"
            ]
        );
        assert_eq!(stored_manifest(&store, "e1").await, Some(alone));
    }

    #[tokio::test]
    async fn resolve_drops_an_intent_with_neither_file() {
        let store = store();
        let intent = staged_intent(&store, &["e1", "e2"]).await;
        store
            .delete(&Path::from(intent.staged.as_str()))
            .await
            .unwrap();
        store.put(&intent.path(), intent.to_bytes()).await.unwrap();
        assert_eq!(resolve(&store, &intent).await.unwrap(), Resolution::Undone);
        assert_eq!(keys(&store).await, Vec::<String>::new());
    }

    fn other_owner() -> lease::Owner {
        lease::Owner {
            run_id: "other-run".into(),
            host: "another-host".into(),
            boot_id: None,
            pid: 1,
            pid_start: None,
        }
    }

    #[tokio::test]
    async fn recovery_leaves_a_group_whose_member_another_live_process_holds() {
        let store = store();
        let intent = staged_intent(&store, &["e1", "e2"]).await;
        store.put(&intent.path(), intent.to_bytes()).await.unwrap();
        let theirs = match lease::acquire(
            &store,
            &lease::lease_path("d", "t", "e2"),
            &other_owner(),
            lease::LEASE_TTL,
        )
        .await
        .unwrap()
        {
            Claim::Held(l) => l,
            other => panic!("{other:?}"),
        };
        let me = lease::Owner::this_process("me");
        let done = recover_groups(&store, "d", &me).await.unwrap();
        assert_eq!(
            done,
            Recovered {
                skipped: 1,
                ..Recovered::default()
            }
        );
        assert_eq!(
            keys(&store).await,
            [
                "d/_groups/g1.json",
                "d/_groups/g1/part-0.parquet.tmp",
                "d/_leases/t/e2.json",
            ],
            "untouched, and e1's lease taken for the attempt was given back"
        );
        theirs.release().await;
        // Once the holder is done, the next recovery finishes it and sweeps the members'
        // staging.
        store
            .put(
                &Path::from("d/_staging/e1/run-1/part-0.parquet.tmp"),
                bytes::Bytes::from_static(b"x"),
            )
            .await
            .unwrap();
        let done = recover_groups(&store, "d", &me).await.unwrap();
        assert_eq!(done.rolled_forward, 1);
        assert_eq!(
            keys(&store).await,
            ["d/_manifests/t/e1.json", "d/_manifests/t/e2.json", FINAL]
        );
    }

    #[tokio::test]
    async fn a_taken_over_member_settles_only_the_groups_that_name_it() {
        let store = store();
        // Published, manifests not yet written: names e2.
        let published = staged_intent(&store, &["e1", "e2"]).await;
        store
            .put(&published.path(), published.to_bytes())
            .await
            .unwrap();
        store
            .rename(&Path::from(published.staged.as_str()), &Path::from(FINAL))
            .await
            .unwrap();
        // Another task's intent with an execution of the same id, and one without e2.
        let mut other_task = published.clone();
        other_task.task_id = "t2".into();
        other_task.group_id = "g2".into();
        store
            .put(&other_task.path(), other_task.to_bytes())
            .await
            .unwrap();
        let mut without = staged_intent(&store, &["e3"]).await;
        without.group_id = "g3".into();
        store
            .put(&without.path(), without.to_bytes())
            .await
            .unwrap();

        assert_eq!(settle_member(&store, "d", "t", "e9").await.unwrap(), 0);
        assert_eq!(settle_member(&store, "d", "t", "e2").await.unwrap(), 1);
        assert_eq!(
            keys(&store).await,
            [
                "d/_groups/g1/part-0.parquet.tmp",
                "d/_groups/g2.json",
                "d/_groups/g3.json",
                "d/_manifests/t/e1.json",
                "d/_manifests/t/e2.json",
                FINAL,
            ]
        );
        assert_eq!(
            stored_manifest(&store, "e2").await.as_ref(),
            Some(&published.manifests[1])
        );
        // Neither file any more: the intent goes, every member simply not committed.
        let store = store_with_an_intent_only().await;
        assert_eq!(settle_member(&store, "d", "t", "e1").await.unwrap(), 1);
        assert_eq!(keys(&store).await, Vec::<String>::new());
    }

    async fn store_with_an_intent_only() -> Store {
        let store = store();
        let intent = staged_intent(&store, &["e1", "e2"]).await;
        store.put(&intent.path(), intent.to_bytes()).await.unwrap();
        store
            .delete(&Path::from(intent.staged.as_str()))
            .await
            .unwrap();
        store
    }

    #[tokio::test]
    async fn recovery_keeps_a_young_staged_file_without_an_intent() {
        // A group being written by another process right now has no intent yet.
        let store = store();
        staged_intent(&store, &["e1", "e2"]).await;
        let me = lease::Owner::this_process("me");
        assert_eq!(
            recover_groups(&store, "d", &me).await.unwrap(),
            Recovered::default()
        );
        assert_eq!(keys(&store).await, ["d/_groups/g1/part-0.parquet.tmp"]);
    }

    fn batch(execution_id: &str, rows: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("_titan_execution_id", DataType::Utf8, false),
            Field::new("_titan_row", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![execution_id; rows as usize])),
                Arc::new(Int64Array::from_iter_values(1..=rows)),
            ],
        )
        .unwrap()
    }

    fn settings(file_rows: usize) -> WriterSettings {
        WriterSettings {
            row_group_rows: 7,
            file_rows,
            file_bytes: u64::MAX,
            zstd_level: 1,
            schema_fingerprint: "f".into(),
        }
    }

    async fn staged_member(store: &Store, id: &str, rows: i64) -> Member {
        let names = PartNames::for_execution(&key(), id, "run-1");
        let b = batch(id, rows);
        let mut w = ExecutionWriter::new(store.clone(), names, b.schema(), settings(1000)).unwrap();
        // In two batches, as a transcode would.
        w.write(&b.slice(0, 3)).await.unwrap();
        w.write(&b.slice(3, b.num_rows() - 3)).await.unwrap();
        let mut parts = w.finish().await.unwrap();
        assert_eq!(parts.len(), 1);
        let mut m = member(id, rows as u64);
        m.part = parts.remove(0);
        m
    }

    #[tokio::test]
    async fn combine_reads_every_member_back_into_one_staged_file() {
        let store = store();
        let members = vec![
            staged_member(&store, "e1", 10).await,
            staged_member(&store, "e2", 25).await,
            staged_member(&store, "e3", 4).await,
        ];
        // file_rows below the total: a combined file is one file all the same.
        let combined = combine(&store, &key(), "g1", &members, settings(20))
            .await
            .unwrap();
        assert_eq!(combined.rows, 39);
        assert_eq!(combined.final_path.as_ref(), FINAL);
        assert_eq!(combined.staging.as_ref(), "d/_groups/g1/part-0.parquet.tmp");
        let bytes = store.get_opt(&combined.staging).await.unwrap().unwrap();
        assert_eq!(bytes.len() as u64, combined.bytes);
        let mut seen: Vec<(String, i64)> = Vec::new();
        for b in ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
        {
            let b = b.unwrap();
            let ids = b.column(0).as_string::<i32>();
            let rows = b.column(1).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                seen.push((ids.value(i).to_string(), rows.value(i)));
            }
        }
        let mut want = Vec::new();
        for (id, n) in [("e1", 10), ("e2", 25), ("e3", 4)] {
            want.extend((1..=n).map(|r| (id.to_string(), r)));
        }
        assert_eq!(seen, want);
    }

    #[tokio::test]
    async fn combine_refuses_a_part_that_does_not_hold_its_rows() {
        let store = store();
        let mut liar = staged_member(&store, "e2", 5).await;
        liar.part.rows = 6;
        liar.manifest.rows = 6;
        let members = vec![staged_member(&store, "e1", 5).await, liar];
        let err = combine(&store, &key(), "g1", &members, settings(1000))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("holds 5 rows, not 6"), "{err}");
        // Nothing of the combined file is left staged.
        assert!(
            store
                .list(&partition::group_staging_dir("d", "g1"))
                .await
                .unwrap()
                .is_empty()
        );
    }
}
