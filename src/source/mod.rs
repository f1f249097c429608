//! The source side of a run: which executions to ingest and how to get their bytes.
//!
//! ```text
//! tasks (task list) ─► plan (task → schema, dataset, executions) ─► waiter (terminal status)
//!                                                                     ─► export (open the body)
//! ```
//!
//! Everything here talks to Titan only through [`crate::api::TitanClient`].

pub mod export;
pub mod plan;
pub mod tasks;
pub mod waiter;
