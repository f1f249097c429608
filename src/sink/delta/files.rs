//! The Delta sink's file side: where an execution's data files go (their final, unique
//! names: no staging, no rename), and removing files the log does not hold: what a failed
//! execution wrote ([`discard`]) and what crashed runs left behind ([`vacuum`]).
//!
//! A file the log does not reference is invisible to every Delta reader, so these
//! deletions are housekeeping, never a correctness step.

use std::collections::HashSet;
use std::time::Duration;

use object_store::path::Path;

use super::{DataFile, DeltaError, DeltaTable};
use crate::sink::parquet::StagedPart;
use crate::sink::partition::{PartNames, PartitionKey};
use crate::sink::store::Store;

/// How old an unreferenced data file must be before [`vacuum`] deletes it: long enough
/// that no running writer is still between writing it and committing it.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Final location of part `n` of one attempt (`run_id`) at `execution_id`:
/// `<partition>/<execution>-<run>-<n>.parquet` ([`PartNames::direct`]). The run id makes
/// two attempts (a retry, a racing process) write different files, so a loser never
/// overwrites a committed file.
pub fn part_path(key: &PartitionKey, execution_id: &str, run_id: &str, n: usize) -> Path {
    PartNames::direct(key, execution_id, run_id).final_path(n)
}

/// The files of an execution's parts, written at their final place, for a commit.
pub fn data_files(key: &PartitionKey, parts: &[StagedPart]) -> Vec<DataFile> {
    parts
        .iter()
        .map(|p| DataFile {
            path: p.final_path.clone(),
            task_id: key.task_id.clone(),
            date: key.date.clone(),
            rows: p.rows,
            bytes: p.bytes,
        })
        .collect()
}

/// The table-relative paths of the current version's data files.
async fn live_paths(table: &DeltaTable) -> Result<HashSet<String>, DeltaError> {
    Ok(table
        .live_files()
        .await?
        .into_iter()
        .map(|f| f.path)
        .collect())
}

/// `location`'s path in the log ([`DeltaTable::log_path`]), if it is a data file under a
/// partition.
fn data_file_in_table(table: &DeltaTable, location: &Path) -> Option<String> {
    let root = table.root();
    let first = location.prefix_match(&root)?.next()?;
    if !first.as_ref().starts_with("task_id=") || !location.as_ref().ends_with(".parquet") {
        return None;
    }
    table.log_path(location)
}

/// Deletes what attempt `run_id` at `execution_id` wrote in `key`'s partition and the log
/// does not hold (a failed or interrupted execution). Returns how many files it deleted.
pub async fn discard(
    table: &DeltaTable,
    key: &PartitionKey,
    execution_id: &str,
    run_id: &str,
) -> Result<usize, DeltaError> {
    let stem = format!("{execution_id}-{run_id}-");
    let listed = table.store().list(&key.prefix()).await?;
    let ours: Vec<_> = listed
        .into_iter()
        .filter(|o| o.location.filename().is_some_and(|n| n.starts_with(&stem)))
        .collect();
    if ours.is_empty() {
        return Ok(0);
    }
    let live = live_paths(table).await?;
    let mut deleted = 0;
    for o in ours {
        if data_file_in_table(table, &o.location).is_some_and(|rel| !live.contains(&rel)) {
            table.store().delete(&o.location).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// What [`vacuum`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vacuumed {
    /// Unreferenced data files deleted.
    pub deleted: Vec<Path>,
    /// Their bytes.
    pub bytes: u64,
    /// Unreferenced data files kept because they are younger than the retention: written
    /// recently (a writer may still commit them) or removed from the table recently (a
    /// reader of an older version may still read them).
    pub young: usize,
}

/// Deletes the table's data files that the current version does not reference and that
/// are older than `retention`: files of crashed or failed attempts, and files a compaction
/// replaced. A file the log removed counts its age from the removing commit (its
/// `deletionTimestamp`), as Delta's own VACUUM does, so a reader still on an older
/// version keeps its files for the retention. Files under `_delta_log/`, `media/` and
/// other non-partition folders are never touched.
pub async fn vacuum(table: &DeltaTable, retention: Duration) -> Result<Vacuumed, DeltaError> {
    sweep(table, retention, false).await
}

/// [`vacuum`]; with `dry_run`, `deleted` lists what it would delete and nothing is.
pub async fn sweep(
    table: &DeltaTable,
    retention: Duration,
    dry_run: bool,
) -> Result<Vacuumed, DeltaError> {
    // No commit yet: every data file would look unreferenced, and a folder that is not
    // (yet) a table is not ours to sweep.
    if table.version().await?.is_none() {
        return Ok(Vacuumed::default());
    }
    let live = live_paths(table).await?;
    // A retention longer than the calendar (`--retention 300000y`) keeps everything.
    let cutoff = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let mut done = Vacuumed::default();
    // Unreferenced files written before the cutoff; only they need the tombstones (one
    // log replay, skipped when a run starts on a clean table).
    let mut old = Vec::new();
    for o in table.store().list(&table.root()).await? {
        let Some(rel) = data_file_in_table(table, &o.location) else {
            continue;
        };
        if live.contains(&rel) {
            continue;
        }
        if o.last_modified > cutoff {
            done.young += 1;
        } else {
            old.push((rel, o));
        }
    }
    if old.is_empty() {
        return Ok(done);
    }
    let removed_at = table.removed_at().await?;
    for (rel, o) in old {
        let removed = removed_at
            .get(&rel)
            .and_then(|ms| chrono::DateTime::from_timestamp_millis(*ms));
        if removed.is_some_and(|at| at > cutoff) {
            done.young += 1;
            continue;
        }
        if !dry_run {
            table.store().delete(&o.location).await?;
        }
        done.bytes += o.size;
        done.deleted.push(o.location);
    }
    Ok(done)
}

/// The datasets of `store` that hold a Delta table (a top-level folder with a commit or
/// checkpoint in its `_delta_log/`), sorted. Lists two levels, never the data.
pub async fn table_datasets(store: &Store) -> Result<Vec<String>, DeltaError> {
    let os = store.object_store();
    let top = os
        .list_with_delimiter(None)
        .await
        .map_err(|e| store.op_err("list", &Path::default(), e))?;
    let mut found = Vec::new();
    for folder in top.common_prefixes {
        let Some(name) = folder.filename().map(str::to_string) else {
            continue;
        };
        let log = folder.clone().join("_delta_log");
        let listed = os
            .list_with_delimiter(Some(&log))
            .await
            .map_err(|e| store.op_err("list", &log, e))?;
        if listed.objects.iter().any(|o| {
            o.location
                .filename()
                .is_some_and(|n| n.ends_with(".json") || n.ends_with(".parquet"))
        }) {
            found.push(name);
        }
    }
    found.sort();
    Ok(found)
}
