//! titan-connector: moves Titan web-scraping results into a data lake.
//!
//! The modules follow the data flow, each owning one step:
//!
//! ```text
//! config ─► tasks ─► api (client) ─► waiter ─► export (byte stream)
//!                                                   │
//!                                                decode (raw Utf8 batches)
//!                                                   │
//!   store ◄─ write (parquet + manifest) ◄─ partition ◄─ schema (mapper)
//! ```
//!
//! `pipeline` wires them together for one run, `report` says what happened, `cli`,
//! `telemetry` and `progress` serve the binary. `sim` is a faithful local simulator of the Titan Task
//! Service, used by the demo and the tests.

pub mod api;
pub mod cli;
pub mod combine;
pub mod config;
pub mod convert;
pub mod decode;
pub mod format;
pub mod lease;
pub mod media;
pub mod partition;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod schema;
pub mod sim;
pub mod sniff;
pub mod spool;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod transcode;
pub mod waiter;
pub mod write;
