//! What is already stored for one execution, so a re-run fetches nothing stored intact.
//!
//! Source of truth: the index entries `media/<task>/<exec>/_index/<hash>.json`, each written
//! only after its file was stored whole. An entry counts only if its file still exists with
//! the recorded size. During a run the same value also holds this run's results, so a value
//! repeated in later batches of the execution is fetched (or reported) once.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use tracing::{debug, warn};

use super::{MediaError, MediaRecord, layout};
use crate::sink::store::{Store, StoreError};

/// Index entries read concurrently while loading.
const LOAD_CONCURRENCY: usize = 16;

/// Media of one execution known to be stored intact, plus what this run already
/// fetched, reported or failed for it. Create one per execution (with [`KnownMedia::load`])
/// and pass it to every `resolve_batch` of that execution.
#[derive(Debug, Default)]
pub struct KnownMedia {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// Value → stored file (earlier runs, verified at load, and this run's downloads).
    pub(crate) stored: HashMap<String, MediaRecord>,
    /// Values whose record was already returned by `resolve_batch` in this run.
    pub(crate) reported: HashSet<String>,
    /// Values that failed in this run, with the error recorded for their rows.
    pub(crate) failed: HashMap<String, String>,
}

impl KnownMedia {
    /// Nothing known: every value is fetched.
    pub fn empty() -> Self {
        KnownMedia::default()
    }

    /// Reads the execution's index. One list of `media/<task>/<exec>/`, one small GET per
    /// entry, and a HEAD per content-addressed file; an entry is kept only when its file
    /// exists with the recorded size. Unreadable entries are skipped (their media is
    /// fetched again), a failing store is an error.
    pub async fn load(
        store: &Store,
        task_id: &str,
        execution_id: &str,
    ) -> Result<Self, MediaError> {
        let store_err = |source: StoreError| MediaError::Store {
            execution_id: execution_id.to_owned(),
            source,
        };
        let prefix = layout::execution_prefix(task_id, execution_id);
        let index = layout::index_prefix(task_id, execution_id);
        let listed = store.list(&prefix).await.map_err(store_err)?;
        let sizes: HashMap<&Path, u64> = listed.iter().map(|m| (&m.location, m.size)).collect();
        // Owned paths: a stream closure over borrowed items is not `Send` for every
        // lifetime, which the pipeline's spawned futures need.
        let entries: Vec<Path> = listed
            .iter()
            .map(|m| m.location.clone())
            .filter(|p| p.prefix_match(&index).is_some() && p.extension() == Some("json"))
            .collect();
        let sizes = &sizes;
        let records: Vec<Option<MediaRecord>> = futures::stream::iter(entries)
            .map(|entry| async move {
                let Some(bytes) = store.get_opt(&entry).await? else {
                    return Ok(None);
                };
                let record = match serde_json::from_slice::<MediaRecord>(&bytes) {
                    Ok(r) => r,
                    Err(e) => {
                        warn!(entry = %entry, error = %e, "Unreadable media index entry; its media will be fetched again");
                        return Ok(None);
                    }
                };
                let Ok(path) = Path::parse(&record.path) else {
                    return Ok(None);
                };
                let size = match sizes.get(&path) {
                    Some(size) => Some(*size),
                    None => store.size(&path).await?,
                };
                if size == Some(record.bytes) {
                    Ok(Some(record))
                } else {
                    debug!(path = %path, "Indexed media file missing or resized; fetching again");
                    Ok(None)
                }
            })
            .buffer_unordered(LOAD_CONCURRENCY)
            .try_collect()
            .await
            .map_err(store_err)?;
        let stored: HashMap<String, MediaRecord> = records
            .into_iter()
            .flatten()
            .map(|r| (r.url.clone(), r))
            .collect();
        debug!(
            task_id,
            execution_id,
            known = stored.len(),
            "Loaded media index"
        );
        Ok(KnownMedia {
            state: Mutex::new(State {
                stored,
                ..State::default()
            }),
        })
    }

    /// How many values have a file stored intact.
    pub fn len(&self) -> usize {
        self.lock().stored.len()
    }

    /// Whether no value has a stored file.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Distinct values of this execution that could not be stored in this run (their rows
    /// carry the error), for the manifest and the execution report.
    pub fn failed_count(&self) -> usize {
        self.lock().failed.len()
    }

    /// The stored file of `value`, if known.
    pub fn get(&self, value: &str) -> Option<MediaRecord> {
        self.lock().stored.get(value).cloned()
    }

    /// Never held across an await.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
