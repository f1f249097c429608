//! The sink: where mapped batches become committed files in the lake.
//!
//! Placeholder while the restructure lands.

pub mod combine;
pub mod folder;
pub mod lease;
pub mod manifest;
pub mod parquet;
pub mod partition;
pub mod store;
