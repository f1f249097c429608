//! titan-connector: moves Titan web-scraping results into a data lake.
//!
//! The modules follow the data flow, each owning one step:
//!
//! ```text
//! config ─► tasks ─► api (client) ─► waiter ─► export (byte stream)
//!                                                   │
//!                                                decode (raw Utf8 batches)
//!                                                   │
//!        store ◄─ write (parquet + manifest) ◄─ partition ◄─ schema (mapper)
//!                                                   │
//!                                              media (fetcher)
//! ```
//!
//! `pipeline` wires them together for one run; `sim` is a faithful local
//! simulator of the Titan Task Service used by the demo and the tests.

pub mod api;
pub mod decode;
pub mod format;
pub mod schema;
pub mod sim;
pub mod waiter;
