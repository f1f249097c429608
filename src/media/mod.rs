//! Media: downloads every media value of a mapped batch into the media store and replaces
//! the URL column by a struct saying where the file went (see [`column`](mod@column)).
//!
//! Invariants: downloads are bounded by one semaphore shared by every clone of the fetcher
//! (all executions of a run); bodies are streamed into the store and hashed on the way,
//! never held whole; a file is listed in the execution's index (`_index/`) only once it is
//! stored whole, and only the index makes a later run skip it (see [`KnownMedia`]).

pub mod column;
mod fetch;
mod known;
pub mod layout;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, AsArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tracing::debug;

use crate::api::{ApiError, TitanClient};
use crate::sink::store::{Store, StoreError};
use column::Outcome;
pub use fetch::FetchError;
use fetch::{Failure, Target};
pub use known::KnownMedia;

/// After the API accepted the token on one of its routes, media 401/403s within this window
/// are taken as per-file failures without asking it again (one cheap request per window,
/// however many links have expired).
const TOKEN_CONFIRMED_FOR: Duration = Duration::from_secs(30);

/// Default number of media downloads in flight across a whole run.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Where media files are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MediaLayout {
    /// `media/<task_id>/<execution_id>/<media_id>.<ext>`: browsable per execution.
    #[default]
    ByExecution,
    /// `media/sha256/<aa>/<sha256>.<ext>`: identical bytes are stored once, across
    /// executions and tasks.
    ContentAddressed,
}

/// What a media file that cannot be stored does to its execution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MediaErrorPolicy {
    /// The error goes into the row's struct (`error`) and is counted; the execution goes on.
    #[default]
    Record,
    /// The execution fails.
    Fail,
}

/// How media is fetched in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSettings {
    pub layout: MediaLayout,
    /// Downloads in flight across all executions of the run (at least 1). Default 8.
    pub concurrency: usize,
    pub on_error: MediaErrorPolicy,
    /// Off: media columns stay URL text and nothing is downloaded.
    pub enabled: bool,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            layout: MediaLayout::default(),
            concurrency: DEFAULT_CONCURRENCY,
            on_error: MediaErrorPolicy::default(),
            enabled: true,
        }
    }
}

/// One stored media file, for the execution's manifest and the index.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MediaRecord {
    /// The media value exactly as the row held it.
    pub url: String,
    /// Object key relative to the media store root.
    pub path: String,
    /// Lowercase hex sha256 of the stored bytes.
    pub sha256: String,
    pub content_type: Option<String>,
    pub bytes: u64,
}

/// Counters for the run report; shared by every clone of the fetcher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MediaStats {
    /// Files downloaded and stored in this run.
    pub downloaded: u64,
    /// Files found stored intact by an earlier run: no request made.
    pub reused: u64,
    /// Content-addressed downloads whose bytes were already stored (counted in
    /// `downloaded` too; nothing new was written).
    pub deduplicated: u64,
    /// Distinct media values (per execution) that could not be stored.
    pub failed: u64,
    /// Body bytes of the files downloaded.
    pub bytes: u64,
}

/// Errors that stop a batch (and so its execution).
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A column marked as media that is not URL text.
    #[error("column `{column}` is marked as media but has type {data_type}; expected Utf8")]
    ColumnType { column: String, data_type: DataType },
    /// A file could not be fetched and the policy is `fail`, or the API refused the
    /// credentials (a media 401/403 from the API origin that an API route then confirmed
    /// with its own 401/403), which fails under either policy.
    #[error("execution {execution_id}: media `{value}`: {source}")]
    Fetch {
        execution_id: String,
        /// The value without its query string, shortened.
        value: String,
        #[source]
        source: FetchError,
    },
    /// The media store failed (never recorded in rows: the lake itself is at fault).
    #[error("execution {execution_id}: media store: {source}")]
    Store {
        execution_id: String,
        #[source]
        source: StoreError,
    },
    /// Building the resolved batch failed.
    #[error("execution {execution_id}: building the media columns: {source}")]
    Arrow {
        execution_id: String,
        #[source]
        source: ArrowError,
    },
}

impl MediaError {
    /// The API error behind a fetch failure, so callers can stop the run on `Auth`.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            MediaError::Fetch {
                source: FetchError::Api(e),
                ..
            } => Some(e),
            _ => None,
        }
    }
}

/// Downloads media for every execution of a run. Cheap to clone; clones share the
/// download permits and the counters.
#[derive(Clone)]
pub struct MediaFetcher {
    inner: Arc<Inner>,
    part_size: usize,
}

struct Inner {
    client: TitanClient,
    store: Store,
    settings: MediaSettings,
    permits: Semaphore,
    api_origin: url::Origin,
    stats: Counters,
    /// When an API route last accepted the token after a media 401/403.
    token_confirmed: std::sync::Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Counters {
    downloaded: AtomicU64,
    reused: AtomicU64,
    deduplicated: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
}

impl std::fmt::Debug for MediaFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaFetcher")
            .field("store", &self.inner.store.url())
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl MediaFetcher {
    /// `store` is where media goes (the Parquet store, or a separate one).
    pub fn new(client: TitanClient, store: Store, settings: MediaSettings) -> Self {
        let settings = MediaSettings {
            concurrency: settings.concurrency.max(1),
            ..settings
        };
        let api_origin = client.base_url().origin();
        MediaFetcher {
            inner: Arc::new(Inner {
                permits: Semaphore::new(settings.concurrency),
                client,
                store,
                settings,
                api_origin,
                stats: Counters::default(),
                token_confirmed: std::sync::Mutex::new(None),
            }),
            part_size: fetch::DEFAULT_PART_SIZE,
        }
    }

    /// Bytes buffered per download before it becomes a multipart upload of parts this
    /// size (default 5 MiB, S3's minimum part size). Memory per download is about two to
    /// three times this.
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(1);
        self
    }

    /// The Arrow schema after resolution: every Utf8 field marked `titan.type = media`
    /// becomes `Struct{url, path, sha256, content_type: Utf8, bytes: Int64, error: Utf8}`
    /// with the field's name, nullability and metadata.
    pub fn resolved_schema(mapped: &SchemaRef) -> SchemaRef {
        column::resolved_schema(mapped)
    }

    /// The schema batches leave `resolve_batch` with: [`Self::resolved_schema`], or
    /// `mapped` unchanged when media is disabled.
    pub fn output_schema(&self, mapped: &SchemaRef) -> SchemaRef {
        if self.inner.settings.enabled {
            column::resolved_schema(mapped)
        } else {
            Arc::clone(mapped)
        }
    }

    pub fn settings(&self) -> &MediaSettings {
        &self.inner.settings
    }

    /// Downloads every media value of `batch` not already in `known` (each distinct value
    /// once, at most `concurrency` at a time across the run) and returns the batch with
    /// the media columns replaced by structs, plus the records of files this batch is the
    /// first in this run to reference (concatenated over an execution's batches: each
    /// file once). Successes and failures are added to `known`, so later batches of the
    /// execution repeat neither. Blank values are treated as null.
    pub async fn resolve_batch(
        &self,
        batch: &RecordBatch,
        task_id: &str,
        execution_id: &str,
        known: &KnownMedia,
    ) -> Result<(RecordBatch, Vec<MediaRecord>), MediaError> {
        let schema = batch.schema();
        let media: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| column::unresolved(schema.field(i)))
            .collect();
        if !self.inner.settings.enabled || media.is_empty() {
            return Ok((batch.clone(), Vec::new()));
        }
        for &i in &media {
            let f = schema.field(i);
            if f.data_type() != &DataType::Utf8 {
                return Err(MediaError::ColumnType {
                    column: f.name().clone(),
                    data_type: f.data_type().clone(),
                });
            }
        }

        // Distinct values in first-seen order.
        let mut distinct: Vec<&str> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for &i in &media {
            for v in batch.column(i).as_string::<i32>().iter().flatten() {
                if !v.trim().is_empty() && seen.insert(v) {
                    distinct.push(v);
                }
            }
        }

        let mut outcomes: Vec<Option<Outcome>> = vec![None; distinct.len()];
        let mut fetched_here = vec![false; distinct.len()];
        let mut to_fetch = Vec::new();
        {
            let state = known.lock();
            for (slot, v) in distinct.iter().enumerate() {
                if let Some(r) = state.stored.get(*v) {
                    outcomes[slot] = Some(Outcome::Stored(r.clone()));
                } else if let Some(e) = state.failed.get(*v) {
                    outcomes[slot] = Some(Outcome::Failed(e.clone()));
                } else {
                    to_fetch.push(slot);
                    fetched_here[slot] = true;
                }
            }
        }

        let fetched = self
            .fetch_all(&distinct, &to_fetch, task_id, execution_id, known)
            .await?;
        for (slot, outcome) in fetched {
            outcomes[slot] = Some(outcome);
        }

        // Records first referenced in this run; reuse of earlier runs' files is counted here.
        let mut records = Vec::new();
        {
            let mut state = known.lock();
            for (slot, v) in distinct.iter().enumerate() {
                if let Some(Outcome::Stored(r)) = &outcomes[slot]
                    && state.reported.insert((*v).to_owned())
                {
                    if !fetched_here[slot] {
                        self.inner.stats.reused.fetch_add(1, Ordering::Relaxed);
                    }
                    records.push(r.clone());
                }
            }
        }

        let by_value: HashMap<&str, &Outcome> = distinct
            .iter()
            .zip(&outcomes)
            .filter_map(|(v, o)| o.as_ref().map(|o| (*v, o)))
            .collect();
        let arrow_err = |source| MediaError::Arrow {
            execution_id: execution_id.to_owned(),
            source,
        };
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for &i in &media {
            columns[i] =
                column::build(batch.column(i).as_string::<i32>(), &by_value).map_err(arrow_err)?;
        }
        let out =
            RecordBatch::try_new(column::resolved_schema(&schema), columns).map_err(arrow_err)?;
        debug!(
            task_id,
            execution_id,
            distinct = distinct.len(),
            fetched = to_fetch.len(),
            "Resolved media of a batch"
        );
        Ok((out, records))
    }

    /// Fetches `distinct[slot]` for every slot of `to_fetch`, recording results in `known`
    /// as they complete. Returns (slot, outcome); stops at the first error that fails
    /// the execution (in-flight downloads are dropped and never become visible).
    async fn fetch_all(
        &self,
        distinct: &[&str],
        to_fetch: &[usize],
        task_id: &str,
        execution_id: &str,
        known: &KnownMedia,
    ) -> Result<Vec<(usize, Outcome)>, MediaError> {
        let inner = &self.inner;
        let mut downloads = futures::stream::iter(to_fetch.iter().copied().map(|slot| {
            let value = distinct[slot];
            async move { (slot, self.fetch_one(value, task_id, execution_id).await) }
        }))
        .buffer_unordered(inner.settings.concurrency);
        let mut out = Vec::with_capacity(to_fetch.len());
        while let Some((slot, result)) = downloads.next().await {
            let value = distinct[slot];
            match result {
                Ok(stored) => {
                    let s = &inner.stats;
                    s.downloaded.fetch_add(1, Ordering::Relaxed);
                    s.bytes.fetch_add(stored.record.bytes, Ordering::Relaxed);
                    if stored.deduplicated {
                        s.deduplicated.fetch_add(1, Ordering::Relaxed);
                    }
                    known
                        .lock()
                        .stored
                        .insert(value.to_owned(), stored.record.clone());
                    out.push((slot, Outcome::Stored(stored.record)));
                }
                Err(Failure::Store(source)) => {
                    return Err(MediaError::Store {
                        execution_id: execution_id.to_owned(),
                        source,
                    });
                }
                Err(Failure::Fetch(source)) => {
                    let source = if is_credential(&source) {
                        match self.judge_token(execution_id, source).await {
                            Ok(per_file) => per_file,
                            Err(rejected) => {
                                return Err(MediaError::Fetch {
                                    execution_id: execution_id.to_owned(),
                                    value: layout::display_value(value),
                                    source: FetchError::Api(rejected),
                                });
                            }
                        }
                    } else {
                        source
                    };
                    if inner.settings.on_error == MediaErrorPolicy::Fail {
                        return Err(MediaError::Fetch {
                            execution_id: execution_id.to_owned(),
                            value: layout::display_value(value),
                            source,
                        });
                    }
                    let text = source.to_string();
                    debug!(
                        execution_id,
                        value = layout::display_value(value),
                        error = text,
                        "Media not stored; recorded in the row"
                    );
                    inner.stats.failed.fetch_add(1, Ordering::Relaxed);
                    known.lock().failed.insert(value.to_owned(), text.clone());
                    out.push((slot, Outcome::Failed(text)));
                }
            }
        }
        Ok(out)
    }

    /// A media 401/403 from the API origin: an expired link, or a rejected token? The API
    /// routes judge the token: one `GET /executions/:id` (skipped when one succeeded in the
    /// last [`TOKEN_CONFIRMED_FOR`]). Accepted → `Ok` with the file's own failure
    /// ([`FetchError::LinkRefused`]); refused with 401/403 → `Err` with that error, which
    /// stops the run. Any other answer proves nothing against the token: the file fails.
    async fn judge_token(
        &self,
        execution_id: &str,
        media_failure: FetchError,
    ) -> Result<FetchError, ApiError> {
        let FetchError::Api(media_err) = media_failure else {
            return Ok(media_failure);
        };
        let per_file = |source| {
            Ok(FetchError::LinkRefused {
                source: Box::new(source),
            })
        };
        let lock = || {
            self.inner
                .token_confirmed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if lock().is_some_and(|at| at.elapsed() < TOKEN_CONFIRMED_FOR) {
            return per_file(media_err);
        }
        match self.inner.client.get_execution(execution_id).await {
            Ok(_) => {
                *lock() = Some(Instant::now());
                debug!(
                    execution_id,
                    "The API accepts the token: a media 401/403 is that file's failure"
                );
                per_file(media_err)
            }
            Err(e) if e.kind() == crate::api::ApiErrorKind::Auth => Err(e),
            Err(_) => per_file(media_err),
        }
    }

    /// One file under one download permit.
    async fn fetch_one(
        &self,
        value: &str,
        task_id: &str,
        execution_id: &str,
    ) -> Result<fetch::Stored, Failure> {
        let inner = &self.inner;
        let _permit = inner
            .permits
            .acquire()
            .await
            .expect("invariant: the media semaphore is never closed");
        let stem = layout::stem(value, execution_id, &inner.api_origin);
        let target = Target {
            store: &inner.store,
            layout: inner.settings.layout,
            task_id,
            execution_id,
            stem: &stem,
            part_size: self.part_size,
        };
        fetch::fetch_and_store(&target, value, || {
            inner.client.media_url(execution_id, value)
        })
        .await
    }

    /// Counters so far, over all clones.
    pub fn stats(&self) -> MediaStats {
        let s = &self.inner.stats;
        MediaStats {
            downloaded: s.downloaded.load(Ordering::Relaxed),
            reused: s.reused.load(Ordering::Relaxed),
            deduplicated: s.deduplicated.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
        }
    }
}

/// 401/403 on a request to the API origin: an expired link or a rejected token, which
/// [`MediaFetcher::judge_token`] tells apart. (API-origin routes are paths; foreign hosts'
/// start with a scheme.)
fn is_credential(e: &FetchError) -> bool {
    match e {
        FetchError::Api(
            ApiError::Unauthorized { route, .. } | ApiError::Forbidden { route, .. },
        ) => route.starts_with('/'),
        _ => false,
    }
}
