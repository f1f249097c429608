//! End-to-end tests: the simulator in-process on an ephemeral loopback port, the pipeline
//! or the real binary against it, and the Parquet read back and compared with the
//! simulator's seeded data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod cli_ux;
mod combine;
mod convert;
mod delta;
mod delta_util;
mod e2e;
mod evolution;
mod faults;
mod golden;
mod lineage;
mod maintain;
mod media;
mod reliability;
mod stores;
mod util;
