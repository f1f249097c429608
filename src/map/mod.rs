//! Mapping: raw (all-Utf8) decoder batches → typed batches of a [`TargetSchema`] plus
//! lineage columns, and what happens to the rows that do not fit.
//!
//! [`Mapper`] coerces each column with the exact parsers in `parse_num` / `parse_time`
//! (numbers never through `f64`, times without a locale), cuts nested cells (`nested`),
//! applies the schema's transforms, and hands rows that fail to the [`BadRowPolicy`]:
//! fail the execution, skip the row, or quarantine it through [`QuarantineEncoder`] with
//! its [`RejectReason`].
//!
//! [`TargetSchema`]: crate::schema::TargetSchema

pub(crate) mod coerce;
mod mapper;
mod nested;
pub(crate) mod parse_num;
pub(crate) mod parse_time;
mod policy;
mod quarantine;
mod reject;

#[cfg(test)]
mod tests;

pub use mapper::{Lineage, MapError, Mapped, Mapper, Reject};
pub use policy::{BadRowPolicy, RejectPolicy, RejectRatioExceeded, RejectStats};
pub use quarantine::{QuarantineEncoder, QuarantineError, REJECTS_DIR};
pub use reject::RejectReason;
