//! Commit of an execution: staged parts moved into place, orphans removed, manifest last.
//!
//! Invariant: when the manifest exists, exactly the files it lists hold the execution's
//! rows. A crash before the manifest is written leaves no manifest, so the next run redoes
//! the execution; because part names are deterministic it overwrites, and any part that
//! run does not produce again is deleted here as an orphan.

use std::collections::HashSet;

use super::{Manifest, StagedPart, WriteError};
use crate::partition::{self, PartitionKey};
use crate::store::Store;

/// Moves `parts` into place and writes `manifest` last.
pub async fn commit(
    store: &Store,
    key: &PartitionKey,
    parts: &[StagedPart],
    manifest: &Manifest,
) -> Result<(), WriteError> {
    let execution_id = manifest.execution_id.as_str();
    let keep: HashSet<&str> = parts.iter().map(|p| p.final_path.as_ref()).collect();
    // Orphans: final parts of this execution from an earlier, crashed run that this run
    // did not produce (it wrote fewer parts).
    for meta in store.list(&key.prefix()).await? {
        if partition::is_part_of(&meta.location, execution_id)
            && !keep.contains(meta.location.as_ref())
        {
            store.delete(&meta.location).await?;
        }
    }
    for part in parts {
        store.rename(&part.staging, &part.final_path).await?;
    }
    store
        .put(
            &partition::manifest_path(&manifest.dataset, &manifest.task_id, execution_id),
            manifest.to_bytes(),
        )
        .await?;
    // Anything other runs staged for this execution is now garbage.
    for meta in store
        .list(&partition::staging_prefix(&manifest.dataset, execution_id))
        .await?
    {
        store.delete(&meta.location).await?;
    }
    Ok(())
}
