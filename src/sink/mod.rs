//! The sink: where mapped batches become committed files in the lake, behind one
//! boundary, [`Sink`].
//!
//! ```text
//!            run loop ── part_names ──► ExecutionWriter (parquet/) ──► parts in the store
//!                │                                                       │
//!                └── commit / commit_group / discard ──► Sink ───────────┘
//!                                                        ├─ FolderSink: Parquet folder,
//!                                                        │  manifests, group intents (folder/)
//!                                                        └─ DeltaSink: a Delta table per
//!                                                           dataset, committed by its log (delta/)
//! ```
//!
//! The run loop hands a sink an execution's written parts and its [`Manifest`] and asks
//! for them to be committed (all visible at once, or not at all), to be found already
//! committed, or to be cleaned up. It never learns how a sink makes files visible.
//! Shared by every sink: the [`store`], Hive-style [`partition`] paths, the Parquet
//! writer ([`parquet`]), per-execution [`lease`]s (which only avoid double downloads:
//! exactly-once never depends on them) and the [`combine`] policy for small executions.

pub mod binding;
pub mod combine;
pub mod delta;
pub mod folder;
pub mod lease;
pub mod manifest;
pub mod parquet;
pub mod partition;
pub mod store;

use std::collections::HashSet;
use std::fmt;

use object_store::path::Path;

pub use delta::DeltaSink;
pub use folder::FolderSink;
use manifest::Manifest;
use parquet::{StagedPart, WriteError, WriterSettings};
use partition::{PartNames, PartitionKey};
use store::{Store, StoreError};

/// How datasets are laid out in the store (`[store] table_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    /// Parquet files in Hive-style folders, committed by renames, with our manifests
    /// ([`FolderSink`]).
    #[default]
    Parquet,
    /// One Delta Lake table per dataset, committed by its log ([`DeltaSink`]).
    Delta,
}

impl fmt::Display for TableFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableFormat::Parquet => "parquet",
            TableFormat::Delta => "delta",
        })
    }
}

/// The table format and its settings, as resolved from `[store]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSettings {
    pub format: TableFormat,
    /// Delta: a checkpoint every this many commits (0: never).
    pub checkpoint_interval: u64,
}

impl Default for TableSettings {
    fn default() -> Self {
        TableSettings {
            format: TableFormat::Parquet,
            checkpoint_interval: delta::DEFAULT_CHECKPOINT_INTERVAL,
        }
    }
}

/// One execution's output, written and waiting for the sink to make it visible.
#[derive(Debug, Clone)]
pub struct Staged {
    /// Dataset, task and partition date.
    pub key: PartitionKey,
    /// What the writer produced, in order; empty for an execution without results.
    pub parts: Vec<StagedPart>,
    /// The execution's commit record: status, counts, schema, media, rejects.
    pub manifest: Manifest,
    /// Quarantined rows (JSON Lines), written to a temporary place, if any.
    pub rejects: Option<Path>,
    /// The Arrow schema of the parts (of the rows they would hold, when there are none):
    /// a table format records it.
    pub schema: arrow::datatypes::SchemaRef,
}

impl Staged {
    /// The execution's rows, over all parts.
    pub fn rows(&self) -> u64 {
        self.parts.iter().map(|p| p.rows).sum()
    }

    /// The execution's bytes, over all parts.
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }

    /// The execution's one part, which it may share with others in a combined file.
    pub fn only_part(&self) -> Result<&StagedPart, SinkError> {
        match self.parts.as_slice() {
            [part] => Ok(part),
            parts => Err(SinkError::NotCombinable {
                execution_id: self.manifest.execution_id.clone(),
                parts: parts.len(),
            }),
        }
    }
}

/// How a commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// Our files and record are in place.
    Now,
    /// Another process committed the execution first; our files were discarded.
    ByAnother,
}

/// How a group commit ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupCommitted {
    /// Every member is committed, its rows in `file` (`bytes` long).
    Now { file: Path, bytes: u64 },
    /// Nothing was committed: these members were committed by another process first.
    /// The caller commits the other members alone.
    Abandoned { committed: Vec<String> },
}

/// Why a group was not committed.
#[derive(Debug, thiserror::Error)]
pub enum GroupFailed {
    /// Before anything was recorded: the members can still be committed alone.
    #[error("combining the group: {0}")]
    Before(#[source] SinkError),
    /// While committing: the sink's recovery finishes or undoes it (the next run's, or a
    /// process that takes over a member's lease).
    #[error("committing the group: {0}")]
    During(#[source] SinkError),
}

/// What recovery did in one dataset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Interrupted commits finished.
    pub rolled_forward: usize,
    /// Interrupted commits undone (nothing of them was visible).
    pub undone: usize,
    /// Left to the live process that holds them.
    pub skipped: usize,
}

/// Errors of a sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Delta(Box<delta::DeltaError>),
    /// Only executions written as one part can share a file.
    #[error("execution {execution_id} has {parts} parts; only one-part executions are combined")]
    NotCombinable { execution_id: String, parts: usize },
}

/// A destination table format: how written parts become committed, exactly once.
///
/// Implementations must keep these promises, whatever the leases do:
/// * a committed execution's rows are visible all at once, and never twice;
/// * [`committed`](Sink::committed) and [`is_committed`](Sink::is_committed) answer from
///   what is durably committed, so a re-run skips exactly those executions;
/// * a crash at any point leaves nothing that a reader of the format sees as data, and
///   [`recover`](Sink::recover) or [`discard`](Sink::discard) clean it up later.
#[async_trait::async_trait]
pub trait Sink: Send + Sync + fmt::Debug {
    /// The store written to, without credentials (for logs and the report).
    fn url(&self) -> &str;

    /// The store parts are written to (leases live there too).
    fn store(&self) -> &Store;

    /// Where an execution's parts are written and where they end up.
    fn part_names(&self, key: &PartitionKey, execution_id: &str, run_id: &str) -> PartNames;

    /// Before planning: finishes or undoes what crashed runs left half-committed in
    /// `dataset`, taking leases as `owner` where it must.
    async fn recover(&self, dataset: &str, owner: &lease::Owner) -> Result<Recovered, SinkError>;

    /// Ids of the executions of (`dataset`, `task_id`) already committed.
    async fn committed(&self, dataset: &str, task_id: &str) -> Result<HashSet<String>, SinkError>;

    /// Whether one execution is committed (after planning: another process may have
    /// committed it meanwhile).
    async fn is_committed(
        &self,
        dataset: &str,
        task_id: &str,
        execution_id: &str,
    ) -> Result<bool, SinkError>;

    /// An execution's lease was taken over from a holder that died: settles whatever
    /// commit of it that holder left half done.
    async fn settle(
        &self,
        dataset: &str,
        task_id: &str,
        execution_id: &str,
    ) -> Result<(), SinkError>;

    /// Makes one execution visible, all its parts at once, with its record; an execution
    /// without results (no parts) is recorded so later runs skip it.
    async fn commit(&self, staged: &Staged) -> Result<Committed, SinkError>;

    /// Commits small executions (one part each, one partition and schema) together as one
    /// file written with `settings`.
    async fn commit_group(
        &self,
        members: &[&Staged],
        settings: WriterSettings,
    ) -> Result<GroupCommitted, GroupFailed>;

    /// Removes what runs wrote for `execution_id` and did not commit: everything when the
    /// caller holds its lease (`leased`), else only this run's and stale files.
    async fn discard(
        &self,
        dataset: &str,
        execution_id: &str,
        run_id: &str,
        leased: bool,
    ) -> Result<(), SinkError>;
}
