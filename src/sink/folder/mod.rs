//! The Parquet-folder table format: parts renamed into place, a manifest per execution
//! written last, group commits of small executions under an intent record.

pub mod commit;
pub mod group;

pub use commit::{Committed, commit, sweep_staging};
pub use group::{GroupCommitted, GroupIntent, Member};
