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
//! `pipeline` wires them together for one run, `report` says what happened (and
//! `lineage` and `metrics` tell lineage services and Prometheus from it), `cli`,
//! `telemetry` and `progress` serve the binary. `sim` is a faithful local simulator of the Titan Task
//! Service, used by the demo and the tests.

pub mod api;
pub mod config;
pub mod convert;
pub mod decode;
pub mod format;
pub mod lineage;
pub mod map;
pub mod media;
pub mod metrics;
pub mod progress;
pub mod report;
pub mod run;
pub mod schema;
pub mod sink;
pub mod source;
