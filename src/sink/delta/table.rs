//! One dataset's Delta table: open over our store, commit, read back, checkpoint.
//!
//! The kernel's API is synchronous (it drives its own I/O through the engine's executor),
//! so every kernel call runs on a blocking thread (`spawn_blocking`), with the engine's
//! executor on our runtime. The engine is given the store's own `Arc<dyn ObjectStore>`
//! (rooted at the store URL, prefixes, credentials and emulators included, listings
//! sorted by `listing::SortedListing`) and sees the store under a `memory:///` root:
//! only the URL *paths* reach the object store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arrow::datatypes::SchemaRef as ArrowSchemaRef;
use delta_kernel::committer::FileSystemCommitter;
use delta_kernel::schema::StructType;
use delta_kernel::snapshot::CheckpointWriteResult;
use delta_kernel::transaction::create_table::create_table;
use delta_kernel::transaction::data_layout::DataLayout;
use delta_kernel::transaction::{CommitResult, CommittedTransaction, UpdateTableOperation};
use delta_kernel::{KernelError, Snapshot, SnapshotRef};
use delta_kernel_default_engine::DefaultEngine;
use delta_kernel_default_engine::executor::tokio::TokioMultiThreadExecutor;
use object_store::path::{Path, PathPart};
use rand::Rng;
use tracing::{debug, info, warn};
use url::Url;

use super::DeltaError;
use super::actions::{self, DataFile, TxnVisitor, add_file, app_id, parse_app_id};
use super::listing::SortedListing;
use super::schema::{PARTITION_COLUMNS, added_columns, table_schema};
use crate::sink::store::Store;

/// Write a checkpoint once this many commits were made since the last one: readers then
/// replay at most this many JSON commits.
pub const DEFAULT_CHECKPOINT_INTERVAL: u64 = 100;

/// `engineInfo` of our commits.
pub(super) const ENGINE_INFO: &str = concat!("titan-connector/", env!("CARGO_PKG_VERSION"));

/// `version` of every `txn` we write: an execution is committed once, so the version only
/// says "present".
const TXN_VERSION: i64 = 1;

/// Commit attempts before giving up on a table that other writers keep advancing. Each
/// lost attempt means another commit landed, so this bounds waiting, not progress.
pub(super) const MAX_ATTEMPTS: u32 = 200;

pub(super) type Engine = DefaultEngine<TokioMultiThreadExecutor>;

/// What one commit adds: files (already written at their final place), the executions
/// whose rows they hold (one `txn` each), the schema of the files.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub file_schema: ArrowSchemaRef,
    pub files: Vec<DataFile>,
    /// `(task_id, execution_id)` of each execution in the files.
    pub executions: Vec<(String, String)>,
}

/// How a commit ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Our commit is table version `version`.
    Committed { version: u64 },
    /// These executions (execution ids) were already in the table: nothing was committed.
    AlreadyCommitted { executions: Vec<String> },
}

/// A data file the table's current version holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// Path relative to the table root, as in the log.
    pub path: String,
    pub size: i64,
    pub rows: Option<u64>,
    pub partition_values: HashMap<String, String>,
}

/// One dataset's Delta table (cheap to clone).
#[derive(Clone)]
pub struct DeltaTable {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    store: Store,
    dataset: String,
    /// `memory:///<dataset>/`, see the module doc.
    pub(super) root: Url,
    pub(super) engine: Engine,
    checkpoint_interval: u64,
    /// The newest snapshot seen: the next read only lists the commits after it.
    latest: Mutex<Option<SnapshotRef>>,
    /// Our app ids at one table version: the log is replayed once per new version, not
    /// once per question (a run asks for every execution it claims).
    app_ids: Mutex<Option<(u64, Arc<HashSet<String>>)>>,
}

impl std::fmt::Debug for DeltaTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaTable")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

/// The store key of a dataset's table root.
pub(crate) fn dataset_root(dataset: &str) -> Path {
    Path::from_iter([PathPart::from(dataset)])
}

/// The kernel's engine over `store`, running its I/O on `handle`'s runtime.
fn engine_for(store: &Store, handle: tokio::runtime::Handle) -> Engine {
    DefaultEngine::builder(Arc::new(SortedListing(store.object_store())))
        .with_task_executor(Arc::new(TokioMultiThreadExecutor::new(handle)))
        .build()
}

impl DeltaTable {
    /// The table of `dataset` in `store` (created by the first commit). Must be called on
    /// a multi-threaded Tokio runtime: the kernel's I/O runs on it.
    pub fn open(store: &Store, dataset: &str) -> Result<DeltaTable, DeltaError> {
        let invalid = |message: String| DeltaError::Invalid {
            table: format!("{}/{dataset}", store.url()),
            message,
        };
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| invalid(format!("no Tokio runtime: {e}")))?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err(invalid("needs a multi-threaded Tokio runtime".to_string()));
        }
        let root = actions::url_of(&dataset_root(dataset))
            .and_then(|u| Url::parse(&format!("{u}/")))
            .map_err(|e| invalid(e.to_string()))?;
        let engine = engine_for(store, handle);
        Ok(DeltaTable {
            inner: Arc::new(Inner {
                store: store.clone(),
                dataset: dataset.to_string(),
                root,
                engine,
                checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
                latest: Mutex::new(None),
                app_ids: Mutex::new(None),
            }),
        })
    }

    /// Checkpoint every `n` commits instead of [`DEFAULT_CHECKPOINT_INTERVAL`] (`0`: never).
    pub fn with_checkpoint_interval(mut self, n: u64) -> DeltaTable {
        // Called right after `open`: the handle is the only one, set it in place.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.checkpoint_interval = n;
            return self;
        }
        let inner = Inner {
            store: self.inner.store.clone(),
            dataset: self.inner.dataset.clone(),
            root: self.inner.root.clone(),
            engine: engine_for(&self.inner.store, tokio::runtime::Handle::current()),
            checkpoint_interval: n,
            latest: Mutex::new(None),
            app_ids: Mutex::new(None),
        };
        DeltaTable {
            inner: Arc::new(inner),
        }
    }

    /// `<store>/<dataset>` without credentials.
    pub fn url(&self) -> String {
        self.inner.display()
    }

    /// The store the table lives in.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The table root's key in the store (`<dataset>`).
    pub fn root(&self) -> Path {
        dataset_root(&self.inner.dataset)
    }

    /// The path the log uses for the store key `location` (relative to the table root and
    /// URL-escaped, as the kernel writes `add.path`), `None` outside the table. Compare log
    /// paths with this, never with the key's own text: the two escape differently (a
    /// space is ` ` in a key and `%20` in the log; a `%` is `%25` in a key and `%2525` in
    /// the log, which readers decode back to the key).
    pub fn log_path(&self, location: &Path) -> Option<String> {
        actions::log_path(&self.inner.root, location)
    }

    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, DeltaError> + Send + 'static,
    ) -> Result<T, DeltaError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| DeltaError::Join {
                table: self.url(),
                message: e.to_string(),
            })?
    }

    /// The table's current version, `None` before the first commit.
    pub async fn version(&self) -> Result<Option<u64>, DeltaError> {
        self.blocking(|t| Ok(t.latest()?.map(|s| s.version())))
            .await
    }

    /// Execution ids of `task_id` the table holds (one log replay).
    pub async fn committed(&self, task_id: &str) -> Result<HashSet<String>, DeltaError> {
        let prefix = actions::app_id_prefix(task_id);
        self.blocking(move |t| {
            let Some(snapshot) = t.latest()? else {
                return Ok(HashSet::new());
            };
            let ids = t.our_app_ids(&snapshot)?;
            Ok(ids
                .iter()
                .filter(|id| id.starts_with(&prefix))
                .filter_map(|id| parse_app_id(id).map(|(_, e)| e.to_string()))
                .collect())
        })
        .await
    }

    /// Whether the table holds `execution_id` of `task_id`.
    pub async fn is_committed(
        &self,
        task_id: &str,
        execution_id: &str,
    ) -> Result<bool, DeltaError> {
        let id = app_id(task_id, execution_id);
        self.blocking(move |t| {
            let Some(snapshot) = t.latest()? else {
                return Ok(false);
            };
            Ok(t.our_app_ids(&snapshot)?.contains(&id))
        })
        .await
    }

    /// Commits `req` as one table version, or commits nothing if any of its executions is
    /// already in the table. Creates the table on the first commit.
    pub async fn commit(&self, req: CommitRequest) -> Result<CommitOutcome, DeltaError> {
        self.blocking(move |t| t.commit(&req)).await
    }

    /// The data files of the current version.
    pub async fn live_files(&self) -> Result<Vec<LiveFile>, DeltaError> {
        self.blocking(|t| {
            let Some(snapshot) = t.latest()? else {
                return Ok(Vec::new());
            };
            t.live_files(snapshot)
        })
        .await
    }

    /// When each file the log removed was removed (ms since the epoch, the newest
    /// `remove.deletionTimestamp` per path; one log replay). Tombstones older than the
    /// table's `deletedFileRetentionDuration` (a week) may be gone from checkpoints.
    pub async fn removed_at(&self) -> Result<HashMap<String, i64>, DeltaError> {
        self.blocking(|t| {
            let Some(snapshot) = t.latest()? else {
                return Ok(HashMap::new());
            };
            let mut visitor = actions::RemoveVisitor::default();
            let schema = actions::remove_read_schema().map_err(|e| t.kernel(e))?;
            t.replay(&snapshot, schema, &mut visitor)?;
            Ok(visitor.removed_at)
        })
        .await
    }
}

/// After a lost commit race: sleeps a little, longer the more races were lost, so that
/// racing writers spread out; the loser then re-reads the log and retries.
pub(super) fn backoff(attempt: u32) {
    let ms = rand::rng().random_range(1..=(5 + 5 * u64::from(attempt.min(20))));
    std::thread::sleep(Duration::from_millis(ms));
}

/// The result of one commit attempt.
enum Attempt {
    Committed(CommittedTransaction),
    /// Another writer took the version (or created the table) first.
    Lost,
}

impl Inner {
    pub(super) fn display(&self) -> String {
        let url = self.store.url();
        if url.ends_with('/') {
            format!("{url}{}", self.dataset)
        } else {
            format!("{url}/{}", self.dataset)
        }
    }

    pub(super) fn kernel(&self, e: KernelError) -> DeltaError {
        DeltaError::Kernel {
            table: self.display(),
            source: Box::new(e),
        }
    }

    /// The newest version of the table, `None` if it has no commit yet.
    pub(super) fn latest(&self) -> Result<Option<SnapshotRef>, DeltaError> {
        let previous = self
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let built = match previous {
            Some(prev) => Snapshot::builder_from(prev).build(&self.engine),
            None => Snapshot::builder_for(self.root.as_str()).build(&self.engine),
        };
        let snapshot = match built {
            Ok(s) => s,
            // No commit listed (yet): a writer creating the table lists it a moment later,
            // and its commit then wins over ours as a lost race.
            Err(KernelError::EmptyLog) => return Ok(None),
            Err(e) => {
                if self.log_is_empty()? {
                    return Ok(None);
                }
                return Err(self.kernel(e));
            }
        };
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&snapshot));
        Ok(Some(snapshot))
    }

    /// Whether `_delta_log/` holds no commit (the table does not exist yet).
    fn log_is_empty(&self) -> Result<bool, DeltaError> {
        let log = dataset_root(&self.dataset).join("_delta_log");
        let listed = tokio::runtime::Handle::current().block_on(self.store.list(&log))?;
        Ok(!listed
            .iter()
            .any(|o| o.location.filename().is_some_and(|n| n.ends_with(".json"))))
    }

    /// Every app id this connector wrote, as of `snapshot` (cached per version).
    fn our_app_ids(&self, snapshot: &SnapshotRef) -> Result<Arc<HashSet<String>>, DeltaError> {
        let version = snapshot.version();
        if let Some((v, ids)) = &*self.app_ids.lock().unwrap_or_else(PoisonError::into_inner)
            && *v == version
        {
            return Ok(Arc::clone(ids));
        }
        let ids = Arc::new(self.app_ids(snapshot, actions::APP_ID_START)?);
        *self.app_ids.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((version, Arc::clone(&ids)));
        Ok(ids)
    }

    /// App ids starting with `prefix` in the log of `snapshot` (one replay of the log).
    fn app_ids(&self, snapshot: &SnapshotRef, prefix: &str) -> Result<HashSet<String>, DeltaError> {
        let mut visitor = TxnVisitor {
            prefix: prefix.to_string(),
            app_ids: HashSet::new(),
        };
        let schema = actions::txn_read_schema().map_err(|e| self.kernel(e))?;
        self.replay(snapshot, schema, &mut visitor)?;
        Ok(visitor.app_ids)
    }

    /// Shows `visitor` the `schema` columns of every action in the log of `snapshot`
    /// (checkpoint and newer commits: one replay).
    fn replay<V: delta_kernel::RowVisitor>(
        &self,
        snapshot: &SnapshotRef,
        schema: delta_kernel::schema::SchemaRef,
        visitor: &mut V,
    ) -> Result<(), DeltaError> {
        let batches = snapshot
            .log_segment()
            .read_actions(&self.engine, schema)
            .map_err(|e| self.kernel(e))?;
        for batch in batches {
            let batch = batch.map_err(|e| self.kernel(e))?;
            visitor
                .visit_rows_of(batch.actions())
                .map_err(|e| self.kernel(e))?;
        }
        Ok(())
    }

    fn commit(&self, req: &CommitRequest) -> Result<CommitOutcome, DeltaError> {
        let ours = table_schema(&req.file_schema).map_err(|message| DeltaError::Schema {
            table: self.display(),
            message,
        })?;
        let ids: Vec<String> = req
            .executions
            .iter()
            .map(|(task, execution)| app_id(task, execution))
            .collect();
        for attempt in 0..MAX_ATTEMPTS {
            let attempted = match self.latest()? {
                None => self.try_create(&ours, req, &ids)?,
                Some(snapshot) => {
                    let present = self.our_app_ids(&snapshot)?;
                    let already: Vec<String> = req
                        .executions
                        .iter()
                        .zip(&ids)
                        .filter(|(_, id)| present.contains(*id))
                        .map(|((_, execution), _)| execution.clone())
                        .collect();
                    if !already.is_empty() {
                        debug!(table = %self.display(), ?already, "already committed");
                        return Ok(CommitOutcome::AlreadyCommitted {
                            executions: already,
                        });
                    }
                    self.try_append(snapshot, &ours, req, &ids)?
                }
            };
            match attempted {
                Attempt::Committed(done) => {
                    let version = done.commit_version();
                    self.after_commit(&done);
                    return Ok(CommitOutcome::Committed { version });
                }
                Attempt::Lost => {
                    debug!(table = %self.display(), attempt, "lost a commit race; re-reading the log");
                    backoff(attempt);
                }
            }
        }
        Err(DeltaError::Contention {
            table: self.display(),
            attempts: MAX_ATTEMPTS,
        })
    }

    fn modified_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    fn try_create(
        &self,
        ours: &StructType,
        req: &CommitRequest,
        ids: &[String],
    ) -> Result<Attempt, DeltaError> {
        let mut builder = create_table(
            self.root.as_str(),
            Arc::new(ours.clone()),
            ENGINE_INFO,
            true,
        )
        .with_data_layout(DataLayout::partitioned(PARTITION_COLUMNS));
        for id in ids {
            builder = builder.with_transaction_id(id.clone(), TXN_VERSION);
        }
        let mut txn = match builder.build(&self.engine, Box::new(FileSystemCommitter::new())) {
            Ok(txn) => txn,
            Err(KernelError::TableAlreadyExistsAtPath(_)) => return Ok(Attempt::Lost),
            Err(e) => return Err(self.kernel(e)),
        };
        let state = txn.write_state().map_err(|e| self.kernel(e))?;
        for file in &req.files {
            txn.add_files(self.add_metadata(&state, file)?);
        }
        let result = txn.commit(&self.engine).map_err(|e| self.kernel(e))?;
        Ok(match self.settled(result) {
            Some(done) => {
                info!(table = %self.display(), "created the Delta table");
                Attempt::Committed(done)
            }
            None => Attempt::Lost,
        })
    }

    fn try_append(
        &self,
        snapshot: SnapshotRef,
        ours: &StructType,
        req: &CommitRequest,
        ids: &[String],
    ) -> Result<Attempt, DeltaError> {
        let added =
            added_columns(&snapshot.schema(), ours).map_err(|message| DeltaError::Schema {
                table: self.display(),
                message,
            })?;
        let mut builder = snapshot.update_table(UpdateTableOperation::Write, ENGINE_INFO, true);
        if !added.is_empty() {
            info!(table = %self.display(), columns = ?added.iter().map(|f| f.name()).collect::<Vec<_>>(),
                "adding columns to the table schema");
        }
        for field in added {
            builder = builder.add_column(field);
        }
        for id in ids {
            builder = builder.with_transaction_id(id.clone(), TXN_VERSION);
        }
        let mut txn = builder
            .build(&self.engine, Box::new(FileSystemCommitter::new()))
            .map_err(|e| self.kernel(e))?;
        let state = txn.write_state().map_err(|e| self.kernel(e))?;
        for file in &req.files {
            txn.add_files(self.add_metadata(&state, file)?);
        }
        let result = txn.commit(&self.engine).map_err(|e| self.kernel(e))?;
        Ok(self
            .settled(result)
            .map_or(Attempt::Lost, Attempt::Committed))
    }

    /// Our commit (`Some`), or `None` when another writer took the version first; a
    /// retryable failure (logged) is retried like a lost race.
    pub(super) fn settled<S>(&self, result: CommitResult<S>) -> Option<CommittedTransaction> {
        match result {
            CommitResult::Committed(done) => Some(done),
            CommitResult::Conflicted(_) => None,
            CommitResult::Retryable(r) => {
                warn!(table = %self.display(), error = %r.error, "retryable commit failure");
                None
            }
        }
    }

    pub(super) fn add_metadata(
        &self,
        state: &Arc<delta_kernel::transaction::WriteState>,
        file: &DataFile,
    ) -> Result<Box<dyn delta_kernel::EngineData>, DeltaError> {
        let values = actions::partition_values(file).ok_or_else(|| DeltaError::Invalid {
            table: self.display(),
            message: format!("`{}`: date `{}` is not YYYY-MM-DD", file.path, file.date),
        })?;
        let context = state
            .write_context_builder()
            .with_partition_values(values)
            .build()
            .map_err(|e| self.kernel(e))?;
        add_file(file, &context, Self::modified_ms()).map_err(|e| self.kernel(e))
    }

    /// Checkpoints at versions that are multiples of `checkpoint_interval`, as Delta's own
    /// writers do: each version has one committer, so concurrent writers (whose snapshots
    /// may predate the newest checkpoint) never checkpoint the same stretch twice. A failed
    /// checkpoint is only logged: the commit stands, and once twice the interval has passed
    /// without one, every commit tries again.
    pub(super) fn after_commit(&self, done: &CommittedTransaction) {
        let n = self.checkpoint_interval;
        if n == 0 {
            return;
        }
        let version = done.commit_version();
        let since = done.post_commit_stats().commits_since_checkpoint;
        let due = version > 0 && version.is_multiple_of(n);
        if !due && since < n.saturating_mul(2) {
            return;
        }
        let snapshot = match done.post_commit_snapshot() {
            Some(s) => Arc::clone(s),
            None => match self.latest() {
                Ok(Some(s)) => s,
                Ok(None) => return,
                Err(e) => {
                    warn!(table = %self.display(), error = %e, "cannot read the table to checkpoint it");
                    return;
                }
            },
        };
        if let Err(e) = self.checkpoint(&snapshot) {
            warn!(table = %self.display(), error = %e, "checkpoint failed; the next commit retries");
        }
    }

    fn checkpoint(&self, snapshot: &SnapshotRef) -> Result<bool, DeltaError> {
        let (result, _) = snapshot
            .checkpoint(&self.engine, None)
            .map_err(|e| self.kernel(e))?;
        let written = matches!(result, CheckpointWriteResult::Written);
        if written {
            info!(table = %self.display(), version = snapshot.version(), "wrote a checkpoint");
        }
        Ok(written)
    }

    pub(super) fn live_files(&self, snapshot: SnapshotRef) -> Result<Vec<LiveFile>, DeltaError> {
        let scan = snapshot
            .scan_builder()
            .build()
            .map_err(|e| self.kernel(e))?;
        let mut files = Vec::new();
        for meta in scan
            .scan_metadata(&self.engine)
            .map_err(|e| self.kernel(e))?
        {
            let meta = meta.map_err(|e| self.kernel(e))?;
            files = meta
                .visit_scan_files(files, |files: &mut Vec<LiveFile>, f| {
                    files.push(LiveFile {
                        path: f.path,
                        size: f.size,
                        rows: f.stats.map(|s| s.num_records),
                        partition_values: f.partition_values,
                    });
                })
                .map_err(|e| self.kernel(e))?;
        }
        Ok(files)
    }
}
