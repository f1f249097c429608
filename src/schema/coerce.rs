//! Per-type coercion of one raw Utf8 column into a typed Arrow array, in one tight loop.
//!
//! Invariant: a value is null in the output only if it was null or blank in the input, or it
//! was rejected; every rejected row is reported with a reason, never silently nulled.
//! Blank means empty after trimming ASCII whitespace; text columns keep blanks as they are.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, BooleanArray, BooleanBufferBuilder, PrimitiveArray,
    StringArray,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};
use arrow::datatypes::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};

use super::ColumnType;

/// Why a row was rejected for one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// Null (or blank) value in a non-nullable column.
    Null,
    /// Text that does not have the syntax of the column type.
    Syntax,
    /// A number with a non-zero fractional part in an integer column.
    NotIntegral,
    /// A number outside the type's range (beyond i64, or so large f64 overflows).
    OutOfRange,
    /// `NaN` or an infinity in a number column.
    NotFinite,
    /// Well-formed date/time fields naming no real date or time (month 13, Feb 30, 24:00).
    InvalidDateTime,
    /// Text that is not valid JSON in a json column.
    InvalidJson,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectReason::Null => "null in a non-nullable column",
            RejectReason::Syntax => "malformed value",
            RejectReason::NotIntegral => "value has a fractional part",
            RejectReason::OutOfRange => "value out of range",
            RejectReason::NotFinite => "value is not a finite number",
            RejectReason::InvalidDateTime => "no such date or time",
            RejectReason::InvalidJson => "invalid JSON",
        })
    }
}

/// What a column type accepts, for error messages.
pub(super) fn expected(ty: &ColumnType) -> &'static str {
    match ty {
        ColumnType::String => "string",
        ColumnType::Media => "media (URL text)",
        ColumnType::Int64 => "integer (int64)",
        ColumnType::Float64 => "number (finite float64)",
        ColumnType::Boolean => "boolean (true/false, 1/0, yes/no)",
        ColumnType::Timestamp => {
            "timestamp (RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]` as UTC, or `YYYY-MM-DD`)"
        }
        ColumnType::Date => "date (YYYY-MM-DD)",
        ColumnType::Json => "json",
    }
}

/// A typed column plus the rows (indices into the batch, ascending) it rejected.
pub(super) struct Coerced {
    pub(super) array: ArrayRef,
    pub(super) rejects: Vec<(usize, RejectReason)>,
}

/// Converts `raw` to `ty`. Rejected rows are null in `array` and listed in `rejects`.
pub(super) fn coerce(ty: &ColumnType, raw: &StringArray, nullable: bool) -> Coerced {
    match ty {
        ColumnType::String | ColumnType::Media => pass_through(raw, nullable),
        ColumnType::Int64 => primitive::<Int64Type>(raw, nullable, parse_i64),
        ColumnType::Float64 => primitive::<Float64Type>(raw, nullable, parse_f64),
        ColumnType::Timestamp => {
            let c = primitive::<TimestampMicrosecondType>(raw, nullable, parse_timestamp_us);
            let array = c
                .array
                .as_any()
                .downcast_ref::<PrimitiveArray<TimestampMicrosecondType>>()
                .expect("invariant: primitive::<TimestampMicrosecondType> builds that array type")
                .clone()
                .with_timezone("UTC");
            Coerced {
                array: Arc::new(array),
                rejects: c.rejects,
            }
        }
        ColumnType::Date => primitive::<Date32Type>(raw, nullable, parse_date32),
        ColumnType::Boolean => boolean(raw, nullable),
        ColumnType::Json => json(raw, nullable),
    }
}

/// Text columns: the raw array itself (zero-copy); only non-nullable nulls are rejected.
fn pass_through(raw: &StringArray, nullable: bool) -> Coerced {
    let rejects = match (nullable, raw.nulls()) {
        (false, Some(nulls)) if nulls.null_count() > 0 => (0..raw.len())
            .filter(|&i| nulls.is_null(i))
            .map(|i| (i, RejectReason::Null))
            .collect(),
        _ => Vec::new(),
    };
    Coerced {
        array: Arc::new(raw.clone()),
        rejects,
    }
}

/// Shared loop of the parsed types: `f` sees each non-null value trimmed and non-empty.
/// `on_value` receives `Some(value)` for accepted rows and `None` for null/rejected rows.
fn scan<T>(
    raw: &StringArray,
    nullable: bool,
    mut parse: impl FnMut(&str) -> Result<T, RejectReason>,
    mut on_value: impl FnMut(Option<T>),
) -> (Option<NullBuffer>, Vec<(usize, RejectReason)>) {
    let n = raw.len();
    // Validity bits, all set; cleared per null/reject (cheaper than a builder append per row).
    let mut valid = vec![0xFFu8; n.div_ceil(8)];
    let mut clear = |i: usize| valid[i >> 3] &= !(1u8 << (i & 7));
    let mut rejects = Vec::new();
    for i in 0..n {
        let text = if raw.is_null(i) {
            ""
        } else {
            raw.value(i).trim_ascii()
        };
        if text.is_empty() {
            clear(i);
            on_value(None);
            if !nullable {
                rejects.push((i, RejectReason::Null));
            }
            continue;
        }
        match parse(text) {
            Ok(v) => on_value(Some(v)),
            Err(reason) => {
                clear(i);
                on_value(None);
                rejects.push((i, reason));
            }
        }
    }
    let nulls = NullBuffer::new(BooleanBuffer::new(Buffer::from(valid), 0, n));
    (Some(nulls).filter(|n| n.null_count() > 0), rejects)
}

fn primitive<T: ArrowPrimitiveType>(
    raw: &StringArray,
    nullable: bool,
    parse: fn(&str) -> Result<T::Native, RejectReason>,
) -> Coerced {
    let mut values: Vec<T::Native> = Vec::with_capacity(raw.len());
    let (nulls, rejects) = scan(raw, nullable, parse, |v| {
        values.push(v.unwrap_or_default());
    });
    Coerced {
        array: Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(values), nulls)),
        rejects,
    }
}

fn boolean(raw: &StringArray, nullable: bool) -> Coerced {
    let mut values = BooleanBufferBuilder::new(raw.len());
    let (nulls, rejects) = scan(raw, nullable, parse_bool, |v| {
        values.append(v.unwrap_or(false));
    });
    Coerced {
        array: Arc::new(BooleanArray::new(values.finish(), nulls)),
        rejects,
    }
}

/// JSON columns keep the original text (zero-copy buffers) with blanks and rejects nulled.
fn json(raw: &StringArray, nullable: bool) -> Coerced {
    let (nulls, rejects) = scan(raw, nullable, parse_json, |_| {});
    let array = StringArray::new(raw.offsets().clone(), raw.values().clone(), nulls);
    Coerced {
        array: Arc::new(array),
        rejects,
    }
}

fn parse_json(t: &str) -> Result<(), RejectReason> {
    serde_json::from_str::<serde::de::IgnoredAny>(t)
        .map(|_| ())
        .map_err(|_| RejectReason::InvalidJson)
}

/// `true`/`false`, `yes`/`no` (ASCII case-insensitive), `1`/`0`.
pub(super) fn parse_bool(t: &str) -> Result<bool, RejectReason> {
    let is = |word: &str| t.eq_ignore_ascii_case(word);
    if t == "1" || is("true") || is("yes") {
        Ok(true)
    } else if t == "0" || is("false") || is("no") {
        Ok(false)
    } else {
        Err(RejectReason::Syntax)
    }
}

/// `f64::from_str` syntax (sign, `.5`, `5.`, exponent); non-finite results are rejected.
pub(super) fn parse_f64(t: &str) -> Result<f64, RejectReason> {
    let v: f64 = t.parse().map_err(|_| RejectReason::Syntax)?;
    if v.is_finite() {
        Ok(v)
    } else if v.is_infinite() && t.bytes().any(|b| b.is_ascii_digit()) {
        // Digits that parse to infinity: a finite number too large for f64 (`1e400`).
        Err(RejectReason::OutOfRange)
    } else {
        Err(RejectReason::NotFinite)
    }
}

/// Exact i64: `[+-]digits[.digits][(e|E)[+-]digits]` whose value is an integer in range.
/// Never goes through f64, so values past 2^53 stay exact.
pub(super) fn parse_i64(t: &str) -> Result<i64, RejectReason> {
    let b = t.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    // Fast path: up to 18 plain digits cannot overflow.
    if !digits.is_empty() && digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit) {
        let mut v: i64 = 0;
        for d in digits {
            v = v * 10 + i64::from(d - b'0');
        }
        return Ok(if neg { -v } else { v });
    }
    parse_i64_general(neg, digits)
}

fn parse_i64_general(neg: bool, s: &[u8]) -> Result<i64, RejectReason> {
    let take_digits = |from: usize| {
        let len = s[from..].iter().take_while(|b| b.is_ascii_digit()).count();
        (&s[from..from + len], from + len)
    };
    let (int_part, mut i) = take_digits(0);
    let mut frac_part: &[u8] = &[];
    if s.get(i) == Some(&b'.') {
        (frac_part, i) = take_digits(i + 1);
    }
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(RejectReason::Syntax);
    }
    // Exponent, clamped: anything beyond ±10^6 is out of range or fractional anyway.
    let mut exp: i64 = 0;
    if matches!(s.get(i), Some(b'e' | b'E')) {
        let exp_neg = s.get(i + 1) == Some(&b'-');
        let start = i + 1 + usize::from(matches!(s.get(i + 1), Some(b'+' | b'-')));
        let (exp_digits, end) = take_digits(start);
        if exp_digits.is_empty() {
            return Err(RejectReason::Syntax);
        }
        for d in exp_digits {
            exp = (exp * 10 + i64::from(d - b'0')).min(1_000_000);
        }
        if exp_neg {
            exp = -exp;
        }
        i = end;
    }
    if i != s.len() {
        return Err(RejectReason::Syntax);
    }
    // Significant digits `mant` with value mant × 10^exp10, without leading/trailing zeros.
    let all: Vec<u8> = int_part.iter().chain(frac_part).copied().collect();
    let Some(first_nz) = all.iter().position(|&d| d != b'0') else {
        return Ok(0);
    };
    let mut mant = &all[first_nz..];
    let mut exp10 = exp - frac_part.len() as i64;
    while let Some((&b'0', rest)) = mant.split_last() {
        mant = rest;
        exp10 += 1;
    }
    if exp10 < 0 {
        return Err(RejectReason::NotIntegral);
    }
    if mant.len() as i64 + exp10 > 19 {
        return Err(RejectReason::OutOfRange);
    }
    // At most 19 digits: fits u64 without overflow (10^19 - 1 < 2^64).
    let mut mag: u64 = 0;
    for d in mant {
        mag = mag * 10 + u64::from(d - b'0');
    }
    for _ in 0..exp10 {
        mag *= 10;
    }
    let signed = if neg {
        -i128::from(mag)
    } else {
        i128::from(mag)
    };
    i64::try_from(signed).map_err(|_| RejectReason::OutOfRange)
}

const US_PER_SEC: i64 = 1_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// `n` ASCII digits at `b[at..]` as a number, or `None`.
fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let s = b.get(at..at + n)?;
    s.iter().try_fold(0i64, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
    })
}

/// Days since 1970-01-01 of `YYYY-MM-DD` at the start of `b` (years 0000–9999).
fn parse_ymd(b: &[u8]) -> Result<i64, RejectReason> {
    let (Some(y), Some(m), Some(d)) = (digits(b, 0, 4), digits(b, 5, 2), digits(b, 8, 2)) else {
        return Err(RejectReason::Syntax);
    };
    if b[4] != b'-' || b[7] != b'-' {
        return Err(RejectReason::Syntax);
    }
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(RejectReason::InvalidDateTime),
    };
    if d < 1 || d > month_days {
        return Err(RejectReason::InvalidDateTime);
    }
    Ok(days_from_civil(y, m, d))
}

/// Days since the Unix epoch of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` exactly → days since the epoch.
pub(super) fn parse_date32(t: &str) -> Result<i32, RejectReason> {
    let b = t.as_bytes();
    if b.len() != 10 {
        return Err(RejectReason::Syntax);
    }
    let days = parse_ymd(b)?;
    i32::try_from(days).map_err(|_| RejectReason::OutOfRange)
}

/// Microseconds since the epoch (UTC) of
/// `YYYY-MM-DD`, or `YYYY-MM-DD(T|t| )HH:MM:SS[.fraction][Z|z|±HH:MM]` (no zone = UTC).
/// Fraction digits past the sixth are dropped, i.e. the instant is floored to the µs.
pub(super) fn parse_timestamp_us(t: &str) -> Result<i64, RejectReason> {
    let b = t.as_bytes();
    if b.len() < 10 {
        return Err(RejectReason::Syntax);
    }
    let days = parse_ymd(b)?;
    if b.len() == 10 {
        return Ok(days * SECS_PER_DAY * US_PER_SEC);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.get(13) != Some(&b':') || b.get(16) != Some(&b':')
    {
        return Err(RejectReason::Syntax);
    }
    let (Some(h), Some(mi), Some(s)) = (digits(b, 11, 2), digits(b, 14, 2), digits(b, 17, 2))
    else {
        return Err(RejectReason::Syntax);
    };
    let mut i = 19;
    let mut frac_us: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                frac_us = frac_us * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return Err(RejectReason::Syntax);
        }
        for _ in n..6 {
            frac_us *= 10;
        }
    }
    let offset_secs = match &b[i..] {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (Some(oh), Some(om)) = (digits(b, i + 1, 2), digits(b, i + 4, 2)) else {
                return Err(RejectReason::Syntax);
            };
            if oh > 23 || om > 59 {
                return Err(RejectReason::InvalidDateTime);
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'-' { -off } else { off }
        }
        _ => return Err(RejectReason::Syntax),
    };
    if h > 23 || mi > 59 || s > 59 {
        return Err(RejectReason::InvalidDateTime);
    }
    let secs = days * SECS_PER_DAY + h * 3600 + mi * 60 + s - offset_secs;
    Ok(secs * US_PER_SEC + frac_us)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Date32Array, Float64Array, Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, TimeUnit};

    use super::*;
    use RejectReason::*;

    #[test]
    fn integers_are_exact_and_strict() {
        let ok: &[(&str, i64)] = &[
            ("42", 42),
            ("+7", 7),
            ("-0", 0),
            ("007", 7),
            ("9007199254740993", 9_007_199_254_740_993),
            ("-9007199254740993", -9_007_199_254_740_993),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
            ("12.0", 12),
            ("12.", 12),
            ("-12.000", -12),
            ("9007199254740993.0", 9_007_199_254_740_993),
            // Exponent forms are accepted when the value is an exact integer in range.
            ("1e3", 1000),
            ("1E+3", 1000),
            ("1.5e1", 15),
            ("-2.50e2", -250),
            ("100000000000000000000e-2", 1_000_000_000_000_000_000),
            ("9.223372036854775807e18", i64::MAX),
            ("0e999999999", 0),
            ("0.000", 0),
        ];
        for &(text, want) in ok {
            assert_eq!(parse_i64(text), Ok(want), "{text}");
        }
        let bad: &[(&str, RejectReason)] = &[
            ("12.5", NotIntegral),
            ("0.1", NotIntegral),
            ("1e-3", NotIntegral),
            ("1e-999999999", NotIntegral),
            ("9223372036854775808", OutOfRange),
            ("-9223372036854775809", OutOfRange),
            ("99999999999999999999999", OutOfRange),
            ("1e19", OutOfRange),
            ("1e999999999", OutOfRange),
            ("-", Syntax),
            ("+", Syntax),
            (".", Syntax),
            ("1e", Syntax),
            ("1e+", Syntax),
            ("e5", Syntax),
            ("--1", Syntax),
            ("+-1", Syntax),
            ("1,000", Syntax),
            ("0x10", Syntax),
            ("1 2", Syntax),
            ("12a", Syntax),
            ("1.2.3", Syntax),
            ("١٢", Syntax),
            ("NaN", Syntax),
        ];
        for &(text, want) in bad {
            assert_eq!(parse_i64(text), Err(want), "{text}");
        }
    }

    #[test]
    fn floats_follow_rust_syntax_and_must_be_finite() {
        let ok: &[(&str, f64)] = &[
            ("2.5", 2.5),
            ("-0.5", -0.5),
            (".5", 0.5),
            ("5.", 5.0),
            ("+2", 2.0),
            ("1e3", 1000.0),
            ("1.5E-3", 0.0015),
            ("1e-400", 0.0),
            // Past 2^53 a float rounds to nearest even, as f64 must.
            ("9007199254740993", 9_007_199_254_740_992.0),
        ];
        for &(text, want) in ok {
            assert_eq!(parse_f64(text), Ok(want), "{text}");
        }
        let bad: &[(&str, RejectReason)] = &[
            ("NaN", NotFinite),
            ("nan", NotFinite),
            ("inf", NotFinite),
            ("-Infinity", NotFinite),
            ("1e400", OutOfRange),
            ("-1e400", OutOfRange),
            ("12,5", Syntax),
            ("$1", Syntax),
            ("0x1p3", Syntax),
            ("1_000", Syntax),
            ("e3", Syntax),
        ];
        for &(text, want) in bad {
            assert_eq!(parse_f64(text), Err(want), "{text}");
        }
    }

    #[test]
    fn booleans_accept_three_spellings_each() {
        for t in ["true", "TRUE", "True", "yes", "YES", "1"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for t in ["false", "False", "no", "NO", "0"] {
            assert_eq!(parse_bool(t), Ok(false), "{t}");
        }
        for t in ["t", "f", "y", "n", "2", "on", "off", "truee", "1.0", "-1"] {
            assert_eq!(parse_bool(t), Err(Syntax), "{t}");
        }
    }

    #[test]
    fn timestamps_normalise_to_utc_microseconds() {
        let ok: &[(&str, i64)] = &[
            // 12:00 at +05:30 is 06:30 UTC; the 7th-9th fraction digits are dropped.
            ("2024-03-10T12:00:00.123456789+05:30", 1_710_052_200_123_456),
            ("2024-03-10T12:00:00Z", 1_710_072_000_000_000),
            ("2024-03-10t12:00:00z", 1_710_072_000_000_000),
            ("2024-03-10T12:00:00+00:00", 1_710_072_000_000_000),
            ("2024-03-10T12:00:00-00:00", 1_710_072_000_000_000),
            ("2024-03-10T12:00:00-08:00", 1_710_100_800_000_000),
            ("2024-03-10 12:00:00", 1_710_072_000_000_000),
            ("2024-03-10T12:00:00", 1_710_072_000_000_000),
            ("2024-03-10 12:00:00.5", 1_710_072_000_500_000),
            ("2024-03-10 12:00:00+05:30", 1_710_052_200_000_000),
            ("2024-03-10", 1_710_028_800_000_000),
            ("2024-02-29", 1_709_164_800_000_000),
            ("1970-01-01T00:00:00Z", 0),
            // Truncating the fraction floors: 100 ns before the epoch is -1 µs.
            ("1969-12-31T23:59:59.9999999Z", -1),
            ("9999-12-31T23:59:59.999999Z", 253_402_300_799_999_999),
            ("0001-01-01T00:00:00Z", -62_135_596_800_000_000),
        ];
        for &(text, want) in ok {
            assert_eq!(parse_timestamp_us(text), Ok(want), "{text}");
        }
        let bad: &[(&str, RejectReason)] = &[
            ("2023-02-29", InvalidDateTime),
            ("2024-13-01", InvalidDateTime),
            ("2024-00-10", InvalidDateTime),
            ("2024-04-31T00:00:00Z", InvalidDateTime),
            ("2024-01-01T24:00:00Z", InvalidDateTime),
            ("2024-01-01T12:60:00Z", InvalidDateTime),
            ("2024-01-01T12:00:60Z", InvalidDateTime),
            ("2024-01-01T12:00:00+24:00", InvalidDateTime),
            ("2024-01-01T12:00Z", Syntax),
            ("2024-01-01T12:00:00+0530", Syntax),
            ("2024-01-01T12:00:00+05", Syntax),
            ("2024-01-01T12:00:00.Z", Syntax),
            ("2024-01-01T12:00:00 Z", Syntax),
            ("2024-01-01T12:00:00ZZ", Syntax),
            ("2024-01-01X12:00:00Z", Syntax),
            ("2024-01-01T", Syntax),
            ("01/02/2024", Syntax),
            ("2024-1-1", Syntax),
            ("20240101", Syntax),
            ("1710072000", Syntax),
            ("+2024-01-01", Syntax),
        ];
        for &(text, want) in bad {
            assert_eq!(parse_timestamp_us(text), Err(want), "{text}");
        }
    }

    /// Agrees with chrono's RFC 3339 parser on generated valid instants.
    #[test]
    fn timestamps_agree_with_chrono() {
        let mut rng = Rng(0x5eed);
        for _ in 0..5000 {
            let (y, mo) = (rng.below(10_000), 1 + rng.below(12));
            let d = 1 + rng.below(28);
            let (h, mi, s) = (rng.below(24), rng.below(60), rng.below(60));
            let frac = match rng.below(3) {
                0 => String::new(),
                1 => format!(".{:03}", rng.below(1000)),
                _ => format!(".{:09}", rng.below(1_000_000_000)),
            };
            let zone = match rng.below(3) {
                0 => "Z".to_owned(),
                1 => format!("+{:02}:{:02}", rng.below(24), rng.below(60)),
                _ => format!("-{:02}:{:02}", rng.below(24), rng.below(60)),
            };
            let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{zone}");
            let want = chrono::DateTime::parse_from_rfc3339(&text)
                .unwrap()
                .timestamp_micros();
            assert_eq!(parse_timestamp_us(&text), Ok(want), "{text}");
        }
    }

    #[test]
    fn dates_are_days_since_epoch() {
        assert_eq!(parse_date32("1970-01-01"), Ok(0));
        assert_eq!(parse_date32("1969-12-31"), Ok(-1));
        assert_eq!(parse_date32("2024-03-10"), Ok(19_792));
        assert_eq!(parse_date32("2024-02-29"), Ok(19_782));
        assert_eq!(parse_date32("0000-01-01"), Ok(-719_528));
        assert_eq!(parse_date32("9999-12-31"), Ok(2_932_896));
        assert_eq!(parse_date32("2100-02-29"), Err(InvalidDateTime));
        assert_eq!(parse_date32("2000-02-29"), Ok(11_016));
        assert_eq!(parse_date32("2024-03-10T00:00:00Z"), Err(Syntax));
        assert_eq!(parse_date32("2024/03/10"), Err(Syntax));
        assert_eq!(parse_date32("10-03-2024"), Err(Syntax));
    }

    fn strings(values: &[Option<&str>]) -> StringArray {
        StringArray::from(values.to_vec())
    }

    #[test]
    fn blanks_become_null_and_rejects_are_listed_never_silently_nulled() {
        let raw = strings(&[
            Some(" 42 "),
            None,
            Some(""),
            Some(" \t"),
            Some("x"),
            Some("9007199254740993"),
        ]);
        let c = coerce(&ColumnType::Int64, &raw, true);
        let got = c.array.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            vec![
                Some(42),
                None,
                None,
                None,
                None,
                Some(9_007_199_254_740_993)
            ]
        );
        assert_eq!(c.rejects, vec![(4, Syntax)]);

        let c = coerce(&ColumnType::Int64, &raw, false);
        assert_eq!(
            c.rejects,
            vec![(1, Null), (2, Null), (3, Null), (4, Syntax)]
        );
    }

    #[test]
    fn each_type_builds_its_arrow_array() {
        let raw = strings(&[Some("1.5"), Some("oops"), None]);
        let c = coerce(&ColumnType::Float64, &raw, true);
        let got = c.array.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(got.iter().collect::<Vec<_>>(), vec![Some(1.5), None, None]);
        assert_eq!(c.rejects, vec![(1, Syntax)]);

        let raw = strings(&[Some("Yes"), Some("0"), Some("maybe"), Some("")]);
        let c = coerce(&ColumnType::Boolean, &raw, true);
        let got = c.array.as_any().downcast_ref::<BooleanArray>().unwrap();
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            vec![Some(true), Some(false), None, None]
        );
        assert_eq!(c.rejects, vec![(2, Syntax)]);

        let raw = strings(&[
            Some("2024-03-10"),
            Some("2024-03-10T12:00:00Z"),
            Some("soon"),
        ]);
        let c = coerce(&ColumnType::Timestamp, &raw, true);
        assert_eq!(
            c.array.data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let got = c
            .array
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            vec![
                Some(1_710_028_800_000_000),
                Some(1_710_072_000_000_000),
                None
            ]
        );
        assert_eq!(c.rejects, vec![(2, Syntax)]);

        let raw = strings(&[Some("2024-03-10"), Some("2024-02-30")]);
        let c = coerce(&ColumnType::Date, &raw, true);
        let got = c.array.as_any().downcast_ref::<Date32Array>().unwrap();
        assert_eq!(got.iter().collect::<Vec<_>>(), vec![Some(19_792), None]);
        assert_eq!(c.rejects, vec![(1, InvalidDateTime)]);
    }

    #[test]
    fn json_keeps_original_text_and_rejects_invalid_json() {
        let raw = strings(&[
            Some(r#"{"a":1}"#),
            Some("[1,2]"),
            Some(r#""s""#),
            Some(" 3 "),
            Some("{bad"),
            Some(""),
            None,
            Some("null"),
        ]);
        let c = coerce(&ColumnType::Json, &raw, true);
        let got = c.array.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            vec![
                Some(r#"{"a":1}"#),
                Some("[1,2]"),
                Some(r#""s""#),
                Some(" 3 "),
                None,
                None,
                None,
                Some("null"),
            ]
        );
        assert_eq!(c.rejects, vec![(4, InvalidJson)]);
        // Same value buffer as the input: no copy.
        assert_eq!(got.values().as_ptr(), raw.values().as_ptr());

        // Sliced input (offsets not starting at 0) keeps its values.
        let sliced = raw.slice(3, 2);
        let c = coerce(&ColumnType::Json, &sliced, true);
        let got = c.array.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(got.iter().collect::<Vec<_>>(), vec![Some(" 3 "), None]);
        assert_eq!(c.rejects, vec![(1, InvalidJson)]);
    }

    #[test]
    fn text_columns_pass_through_zero_copy() {
        let raw = strings(&[Some("a"), Some(""), None, Some(" b ")]);
        for ty in [ColumnType::String, ColumnType::Media] {
            let c = coerce(&ty, &raw, true);
            let got = c.array.as_any().downcast_ref::<StringArray>().unwrap();
            assert_eq!(got, &raw);
            assert_eq!(got.values().as_ptr(), raw.values().as_ptr());
            assert!(c.rejects.is_empty());
            // Non-nullable: the null is a reject; the empty string is a value.
            let c = coerce(&ty, &raw, false);
            assert_eq!(c.rejects, vec![(2, Null)]);
        }
    }

    /// xorshift64: deterministic inputs without a proptest dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn string(&mut self, alphabet: &[char], max_len: u64) -> String {
            let len = self.below(max_len + 1);
            (0..len)
                .map(|_| alphabet[self.below(alphabet.len() as u64) as usize])
                .collect()
        }
    }

    const ALPHABET: &[char] = &[
        '0', '1', '5', '9', '+', '-', '.', 'e', 'E', ':', 'T', 'Z', 'z', ' ', '\t', 't', 'n', 'a',
        '"', '{', '}', '[', ']', ',', 'é', '\u{0}', '٣', 'i', 'f', 'N',
    ];

    #[test]
    fn arbitrary_input_never_panics() {
        let mut rng = Rng(0xdead_beef);
        let types = [
            ColumnType::String,
            ColumnType::Int64,
            ColumnType::Float64,
            ColumnType::Boolean,
            ColumnType::Timestamp,
            ColumnType::Date,
            ColumnType::Json,
            ColumnType::Media,
        ];
        let inputs: Vec<Option<String>> = (0..20_000)
            .map(|i| (i % 17 != 0).then(|| rng.string(ALPHABET, 40)))
            .collect();
        let raw = StringArray::from(inputs.iter().map(Option::as_deref).collect::<Vec<_>>());
        for ty in &types {
            for nullable in [true, false] {
                let c = coerce(ty, &raw, nullable);
                assert_eq!(c.array.len(), raw.len());
                // Every rejected row is null in the output; every other null was blank.
                for &(i, _) in &c.rejects {
                    assert!(c.array.is_null(i), "{ty} row {i}");
                }
            }
        }
    }

    #[test]
    fn mutated_valid_values_never_panic() {
        let seeds = [
            "2024-03-10T12:00:00.123456789+05:30",
            "-9223372036854775808",
            "9.223372036854775807e18",
            "2024-02-29",
        ];
        for seed in seeds {
            for pos in 0..=seed.len() {
                for &ch in ALPHABET {
                    for cut in [false, true] {
                        let mut s: String = seed.chars().take(pos).collect();
                        s.push(ch);
                        if !cut {
                            s.extend(seed.chars().skip(pos + 1));
                        }
                        let _ = parse_timestamp_us(&s);
                        let _ = parse_date32(&s);
                        let _ = parse_i64(&s);
                        let _ = parse_f64(&s);
                    }
                }
            }
        }
    }

    /// On plain (sign + digits) integers the exact parser agrees with `str::parse::<i64>`.
    #[test]
    fn plain_integers_agree_with_std() {
        let mut rng = Rng(42);
        let digits = ['0', '1', '2', '5', '8', '9'];
        for _ in 0..50_000 {
            let sign = ["", "+", "-"][rng.below(3) as usize];
            let text = format!("{sign}{}", rng.string(&digits, 21));
            let ours = parse_i64(&text).ok();
            assert_eq!(ours, text.parse::<i64>().ok(), "{text}");
        }
        for v in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
            assert_eq!(parse_i64(&v.to_string()), Ok(v));
        }
    }

    #[test]
    fn finite_floats_agree_with_std() {
        let mut rng = Rng(7);
        let alphabet = ['0', '1', '7', '9', '.', 'e', '-', '+'];
        for _ in 0..50_000 {
            let text = rng.string(&alphabet, 12);
            let std = text.parse::<f64>().ok().filter(|v| v.is_finite());
            assert_eq!(parse_f64(&text).ok(), std, "{text}");
        }
    }
}
