//! Delta Lake output (`[store] table_format = "delta"`): one Delta table per dataset at
//! `<store>/<dataset>/`, partitioned by `task_id` and `date`.
//!
//! This module owns the table side of the Delta sink: opening (or creating) a table over
//! our own `object_store`, committing a set of already-written Parquet files in one
//! commit together with one `txn` action per execution, reading the committed executions
//! back from the log, retrying a lost put-if-absent race, schema evolution (added nullable
//! columns) and checkpoints. The log protocol itself (commit files, actions, checkpoints,
//! log replay) is `delta_kernel`'s; what is ours is said where it is built.
//!
//! Exactly-once is kept by the log: an execution's `txn` app id
//! (`titan-connector:<task>:<execution>`, see [`app_id`]) is written in the same commit
//! that adds its files, and a commit is only attempted after the snapshot it is built on
//! was checked for those app ids. A commit that loses the race for the next version
//! (put-if-absent of `_delta_log/<version>.json`) re-reads the log and checks again, so
//! two writers of the same execution can never both add it.

mod actions;
pub mod compact;
pub mod files;
mod listing;
mod schema;
mod sink;
mod table;

#[cfg(test)]
mod compact_tests;
#[cfg(test)]
mod tests;

pub use actions::{DataFile, app_id, app_id_prefix, parse_app_id};
pub use schema::{PARTITION_COLUMNS, table_schema};
pub use sink::DeltaSink;
pub use table::{CommitOutcome, CommitRequest, DEFAULT_CHECKPOINT_INTERVAL, DeltaTable, LiveFile};

use crate::sink::store::StoreError;

/// Errors of the Delta sink; each names the table.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("Delta table `{table}`: {source}")]
    Kernel {
        table: String,
        #[source]
        source: Box<delta_kernel::KernelError>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The execution's schema cannot be added to the table's: a column changed type, or
    /// the data collides with a partition column.
    #[error("Delta table `{table}`: incompatible schema: {message}")]
    Schema { table: String, message: String },
    #[error("Delta table `{table}`: {message}")]
    Invalid { table: String, message: String },
    #[error(
        "Delta table `{table}`: gave up after {attempts} commit attempts lost to concurrent writers"
    )]
    Contention { table: String, attempts: u32 },
    #[error("Delta table `{table}`: a blocking task failed: {message}")]
    Join { table: String, message: String },
}
