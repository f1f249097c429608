//! Why a value was rejected: the reason codes shared by the parsers, coercion, the
//! quarantine and the report. Its own module so that the parsers need nothing else of the
//! map layer.

use std::fmt;

/// Why a row was rejected for one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// Null (or blank, or a `null_values` word) in a non-nullable column without a default.
    Null,
    /// Text that does not have the syntax of the column type (`n/a` in a number column).
    Syntax,
    /// A number with a non-zero fractional part in an integer column (no `round`).
    NotIntegral,
    /// More fractional digits than a decimal's scale (no `round`).
    Scale,
    /// A number outside the type's range or precision, or a time outside years 0000–9999.
    OutOfRange,
    /// `NaN` or an infinity in a number column.
    NotFinite,
    /// Well-formed date/time fields naming no real date or time (month 13, Feb 30, 24:00).
    InvalidDateTime,
    /// Text that is not valid JSON where JSON is required (json, list, struct, paths).
    InvalidJson,
    /// Valid JSON of the wrong kind: not an array for a list, not an object for a struct,
    /// or a source path stepping into a scalar.
    WrongJsonKind,
}

impl RejectReason {
    /// Stable snake_case code, for quarantine records and counters.
    pub fn code(&self) -> &'static str {
        match self {
            RejectReason::Null => "null",
            RejectReason::Syntax => "syntax",
            RejectReason::NotIntegral => "not_integral",
            RejectReason::Scale => "scale",
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::NotFinite => "not_finite",
            RejectReason::InvalidDateTime => "invalid_date_time",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::WrongJsonKind => "wrong_json_kind",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectReason::Null => "null in a non-nullable column",
            RejectReason::Syntax => "malformed value",
            RejectReason::NotIntegral => "value has a fractional part",
            RejectReason::Scale => "more fractional digits than the decimal scale",
            RejectReason::OutOfRange => "value out of range",
            RejectReason::NotFinite => "value is not a finite number",
            RejectReason::InvalidDateTime => "no such date or time",
            RejectReason::InvalidJson => "invalid JSON",
            RejectReason::WrongJsonKind => "wrong kind of JSON value",
        })
    }
}
