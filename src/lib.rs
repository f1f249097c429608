//! titan-connector: moves Titan web-scraping results into a data lake.
//!
//! The modules follow the data flow, each owning one step:
//!
//! ```text
//! config ─► source (task list, plan, wait, open export) ──► bytes
//!             │  api: the Titan client                        │
//!             │                                            decode (+ sniff): raw Utf8 batches
//!             │                                               │
//!             │                   schema: what the columns are │
//!             │                                            map: typed batches, rejects
//!             │                                               │
//!             │                                            media: files fetched, struct column
//!             │                                               │
//!             └──────────────────── run ──────────────────►  sink: Parquet parts, commit
//!                                (orchestration)               (store, partition, leases,
//!                                                               combining; FolderSink)
//! ```
//!
//! `run` wires them together for one run, `report` says what happened (`lineage` and
//! `metrics` tell lineage services and Prometheus from it) and `progress` shows it on a
//! terminal; `convert` is the same path over a local file. The command line
//! (`cli`) and logging (`telemetry`) belong to the binary (`src/main.rs`). The simulator
//! of the Titan API is its own crate, `crates/titan-sim`.

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
