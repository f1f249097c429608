//! Per-type coercion of one raw Utf8 column into a typed Arrow array, in one tight loop.
//!
//! Each cell first goes through the column's text step ([`Pre`]: trim, blank/`null_values`
//! → null, `default` for nulls), then the type's parser. Invariant: a value is null in the
//! output only if the text step made it null, or it was rejected; every rejected row is
//! reported with a reason, never silently nulled.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, BooleanArray, BooleanBufferBuilder, PrimitiveArray,
    StringArray, StringBuilder,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};
use arrow::datatypes::{
    Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};

use super::nested;
use super::parse_num::{NumFmt, parse_decimal, parse_f64, parse_i32, parse_i64};
use super::parse_time::{parse_date, parse_timestamp};
pub use super::reject::RejectReason;
use crate::schema::transform::{DEFAULT_FALSE, DEFAULT_TRUE, FixedTz, Transform};
use crate::schema::{ColumnSpec, ColumnType};

/// What a column accepts, for error messages and quarantine records.
pub(crate) fn expected(ty: &ColumnType, tf: &Transform) -> String {
    match ty {
        ColumnType::Boolean => {
            let words = |custom: &Option<Vec<String>>, default: &[&str]| match custom {
                Some(w) => w.join("/"),
                None => default.join("/"),
            };
            format!(
                "boolean (true: {}; false: {})",
                words(&tf.true_values, DEFAULT_TRUE),
                words(&tf.false_values, DEFAULT_FALSE)
            )
        }
        ColumnType::Timestamp | ColumnType::Date if !tf.formats.is_empty() => {
            let formats: Vec<String> = tf.formats.iter().map(ToString::to_string).collect();
            format!("{ty} ({})", formats.join(", "))
        }
        ColumnType::Timestamp => "timestamp (iso8601)".into(),
        ColumnType::Date => "date (YYYY-MM-DD)".into(),
        ColumnType::Decimal { scale, .. } if tf.round.is_none() => {
            format!("{} with at most {scale} fractional digits", ty.expected())
        }
        other => other.expected(),
    }
}

/// A typed column plus the rows (indices into the batch, ascending) it rejected.
pub(crate) struct Coerced {
    pub(super) array: ArrayRef,
    pub(crate) rejects: Vec<(usize, RejectReason)>,
}

/// The text step of one column (or of the leaf values inside a list/struct).
pub(super) struct Pre<'a> {
    trim: bool,
    blank_null: bool,
    null_values: &'a [String],
    default: Option<&'a str>,
}

impl<'a> Pre<'a> {
    /// For values of `ty` (a column's `default` applies at the top level only).
    pub(super) fn new(ty: &ColumnType, tf: &'a Transform, default: Option<&'a str>) -> Self {
        Pre {
            trim: tf.trims(ty),
            blank_null: tf.blank_is_null(ty),
            null_values: &tf.null_values,
            default,
        }
    }

    fn is_identity(&self) -> bool {
        !self.trim && !self.blank_null && self.null_values.is_empty() && self.default.is_none()
    }

    /// The text to parse, or `None` for null.
    #[inline]
    pub(super) fn apply<'s>(&self, v: Option<&'s str>) -> Option<&'s str>
    where
        'a: 's,
    {
        let Some(s) = v else {
            return self.default;
        };
        let s = if self.trim { s.trim() } else { s };
        let blank = || {
            if self.trim {
                s.is_empty()
            } else {
                s.trim().is_empty()
            }
        };
        if (self.blank_null && blank())
            || (!self.null_values.is_empty() && {
                let t = s.trim();
                self.null_values.iter().any(|n| n.eq_ignore_ascii_case(t))
            })
        {
            return self.default;
        }
        Some(s)
    }

    #[inline]
    pub(super) fn cell<'s>(&self, raw: &'s StringArray, i: usize) -> Option<&'s str>
    where
        'a: 's,
    {
        self.apply((!raw.is_null(i)).then(|| raw.value(i)))
    }
}

/// Converts a raw column to its spec's type.
pub(crate) fn coerce(spec: &ColumnSpec, raw: &StringArray) -> Coerced {
    let pre = Pre::new(&spec.ty, &spec.transform, spec.default.as_deref());
    coerce_with(&spec.ty, &spec.transform, &pre, spec.nullable, raw)
}

/// Converts `raw` to `ty`. Rejected rows are null in `array` and listed in `rejects`.
pub(super) fn coerce_with(
    ty: &ColumnType,
    tf: &Transform,
    pre: &Pre<'_>,
    nullable: bool,
    raw: &StringArray,
) -> Coerced {
    let round = tf.round;
    match ty {
        ColumnType::String => text(raw, pre, nullable, None),
        ColumnType::Media => media(raw, pre, nullable),
        ColumnType::Json => text(raw, pre, nullable, Some(parse_json)),
        ColumnType::Int64 => number::<Int64Type>(raw, pre, nullable, tf, |t| parse_i64(t, round)),
        ColumnType::Int32 => number::<Int32Type>(raw, pre, nullable, tf, |t| parse_i32(t, round)),
        ColumnType::Float64 => number::<Float64Type>(raw, pre, nullable, tf, parse_f64),
        ColumnType::Decimal { precision, scale } => {
            let (p, s) = (*precision, *scale);
            let c =
                number::<Decimal128Type>(raw, pre, nullable, tf, |t| parse_decimal(t, p, s, round));
            let array = c
                .array
                .as_any()
                .downcast_ref::<PrimitiveArray<Decimal128Type>>()
                .expect("invariant: number::<Decimal128Type> builds that array type")
                .clone()
                .with_precision_and_scale(p, s as i8)
                .expect(
                    "invariant: ColumnType::Decimal holds 1 <= precision <= 38, scale <= precision",
                );
            Coerced {
                array: Arc::new(array),
                rejects: c.rejects,
            }
        }
        ColumnType::Timestamp => {
            let tz = tf.timezone.unwrap_or(FixedTz(0));
            let formats = &tf.formats;
            let c = primitive::<TimestampMicrosecondType>(raw, pre, nullable, |t| {
                parse_timestamp(t, formats, tz)
            });
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
        ColumnType::Date => {
            let formats = &tf.formats;
            primitive::<Date32Type>(raw, pre, nullable, |t| parse_date(t, formats))
        }
        ColumnType::Boolean => boolean(raw, pre, nullable, tf),
        ColumnType::List(elem) => nested::list(elem, tf, pre, nullable, raw),
        ColumnType::Struct(fields) => nested::strukt(fields, tf, pre, nullable, raw),
    }
}

/// Shared loop of the parsed types: `parse` sees each value after the text step.
/// `on_value` receives `Some(value)` for accepted rows and `None` for null/rejected rows.
fn scan<T>(
    raw: &StringArray,
    pre: &Pre<'_>,
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
        let Some(text) = pre.cell(raw, i) else {
            clear(i);
            on_value(None);
            if !nullable {
                rejects.push((i, RejectReason::Null));
            }
            continue;
        };
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
    pre: &Pre<'_>,
    nullable: bool,
    parse: impl FnMut(&str) -> Result<T::Native, RejectReason>,
) -> Coerced {
    let mut values: Vec<T::Native> = Vec::with_capacity(raw.len());
    let (nulls, rejects) = scan(raw, pre, nullable, parse, |v| {
        values.push(v.unwrap_or_default());
    });
    Coerced {
        array: Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(values), nulls)),
        rejects,
    }
}

/// Numbers: the plain parser directly, or after normalising separators/currency.
fn number<T: ArrowPrimitiveType>(
    raw: &StringArray,
    pre: &Pre<'_>,
    nullable: bool,
    tf: &Transform,
    parse: impl Fn(&str) -> Result<T::Native, RejectReason>,
) -> Coerced {
    if !tf.has_number_format() {
        return primitive::<T>(raw, pre, nullable, parse);
    }
    let fmt = NumFmt::new(tf);
    let mut scratch = String::new();
    primitive::<T>(raw, pre, nullable, |t| {
        fmt.normalize(t, &mut scratch)?;
        parse(&scratch)
    })
}

fn boolean(raw: &StringArray, pre: &Pre<'_>, nullable: bool, tf: &Transform) -> Coerced {
    let custom = |w: &Option<Vec<String>>, d: &[&str]| -> Vec<String> {
        w.clone()
            .unwrap_or_else(|| d.iter().map(|s| s.to_string()).collect())
    };
    let (trues, falses) = (
        custom(&tf.true_values, DEFAULT_TRUE),
        custom(&tf.false_values, DEFAULT_FALSE),
    );
    let mut values = BooleanBufferBuilder::new(raw.len());
    let parse = |t: &str| parse_bool(t, &trues, &falses);
    let (nulls, rejects) = scan(raw, pre, nullable, parse, |v| {
        values.append(v.unwrap_or(false));
    });
    Coerced {
        array: Arc::new(BooleanArray::new(values.finish(), nulls)),
        rejects,
    }
}

/// One of `trues` or `falses`, ASCII-case-insensitively.
pub(super) fn parse_bool(
    t: &str,
    trues: &[String],
    falses: &[String],
) -> Result<bool, RejectReason> {
    if trues.iter().any(|w| w.eq_ignore_ascii_case(t)) {
        Ok(true)
    } else if falses.iter().any(|w| w.eq_ignore_ascii_case(t)) {
        Ok(false)
    } else {
        Err(RejectReason::Syntax)
    }
}

pub(crate) fn parse_json(t: &str) -> Result<(), RejectReason> {
    serde_json::from_str::<serde::de::IgnoredAny>(t)
        .map(|_| ())
        .map_err(|_| RejectReason::InvalidJson)
}

/// HOOK(media): the mapper keeps a media reference as text (like a string); the media
/// stage resolves it into the stored file's struct.
fn media(raw: &StringArray, pre: &Pre<'_>, nullable: bool) -> Coerced {
    text(raw, pre, nullable, None)
}

/// Checks a text value without converting it (JSON validity).
type Validate = fn(&str) -> Result<(), RejectReason>;

/// Text-valued columns (string, media, json). Zero-copy when the text step changes nothing,
/// new nulls over the same buffers when it only nulls values, else a rebuilt array.
fn text(raw: &StringArray, pre: &Pre<'_>, nullable: bool, validate: Option<Validate>) -> Coerced {
    let check = |t: &str| validate.map_or(Ok(()), |v| v(t));
    if pre.is_identity() && validate.is_none() {
        let rejects = match (nullable, raw.nulls()) {
            (false, Some(nulls)) if nulls.null_count() > 0 => (0..raw.len())
                .filter(|&i| nulls.is_null(i))
                .map(|i| (i, RejectReason::Null))
                .collect(),
            _ => Vec::new(),
        };
        return Coerced {
            array: Arc::new(raw.clone()),
            rejects,
        };
    }
    if !pre.trim && pre.default.is_none() {
        let (nulls, rejects) = scan(raw, pre, nullable, check, |_| {});
        let array = StringArray::new(raw.offsets().clone(), raw.values().clone(), nulls);
        return Coerced {
            array: Arc::new(array),
            rejects,
        };
    }
    let mut out = StringBuilder::with_capacity(raw.len(), raw.values().len());
    let mut rejects = Vec::new();
    for i in 0..raw.len() {
        match pre.cell(raw, i) {
            None => {
                out.append_null();
                if !nullable {
                    rejects.push((i, RejectReason::Null));
                }
            }
            Some(t) => match check(t) {
                Ok(()) => out.append_value(t),
                Err(reason) => {
                    out.append_null();
                    rejects.push((i, reason));
                }
            },
        }
    }
    Coerced {
        array: Arc::new(out.finish()),
        rejects,
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{
        Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::{DataType, TimeUnit};

    use super::*;
    use crate::schema::transform::{Currency, RoundMode};
    use RejectReason::*;

    fn strings(values: &[Option<&str>]) -> StringArray {
        StringArray::from(values.to_vec())
    }

    fn spec(ty: &str, nullable: bool, f: impl FnOnce(&mut ColumnSpec)) -> ColumnSpec {
        let mut s = ColumnSpec {
            name: "c".into(),
            source: "c".into(),
            ty: ty.parse().unwrap(),
            nullable,
            default: None,
            transform: Transform::default(),
        };
        f(&mut s);
        s
    }

    fn run(
        ty: &str,
        nullable: bool,
        values: &[Option<&str>],
        f: impl FnOnce(&mut ColumnSpec),
    ) -> Coerced {
        coerce(&spec(ty, nullable, f), &strings(values))
    }

    #[test]
    fn blanks_become_null_and_rejects_are_listed_never_silently_nulled() {
        let values = [
            Some(" 42 "),
            None,
            Some(""),
            Some(" \t"),
            Some("x"),
            Some("9007199254740993"),
            Some("\u{a0}7\u{a0}"),
        ];
        let c = run("integer", true, &values, |_| {});
        let got = c.array.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            vec![
                Some(42),
                None,
                None,
                None,
                None,
                Some(9_007_199_254_740_993),
                Some(7)
            ]
        );
        assert_eq!(c.rejects, vec![(4, Syntax)]);
        let c = run("integer", false, &values, |_| {});
        assert_eq!(
            c.rejects,
            vec![(1, Null), (2, Null), (3, Null), (4, Syntax)]
        );
    }

    #[test]
    fn text_step_options() {
        // null_values, then default for every null.
        let values = [Some("N/A"), None, Some(" 5 "), Some("-"), Some("")];
        let c = run("int32", false, &values, |s| {
            s.transform.null_values = vec!["n/a".into(), "-".into()];
            s.default = Some("0".into());
        });
        let got = c.array.as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            vec![Some(0), Some(0), Some(5), Some(0), Some(0)]
        );
        assert!(c.rejects.is_empty());
        // Without null_values, `n/a` in a number column is a reject, not a null.
        let c = run("number", true, &values, |_| {});
        assert_eq!(c.rejects, vec![(0, Syntax), (3, Syntax)]);
        // empty_as_null off: a blank number is malformed.
        let c = run("number", true, &[Some("")], |s| {
            s.transform.empty_as_null = Some(false)
        });
        assert_eq!(c.rejects, vec![(0, Syntax)]);
        // trim off: surrounding spaces are malformed.
        let c = run("number", true, &[Some(" 1")], |s| {
            s.transform.trim = Some(false)
        });
        assert_eq!(c.rejects, vec![(0, Syntax)]);
    }

    #[test]
    fn strings_keep_text_unless_told() {
        let raw = strings(&[Some("a"), Some(""), None, Some(" b ")]);
        for ty in ["string", "media"] {
            let c = coerce(&spec(ty, true, |_| {}), &raw);
            let got = c.array.as_any().downcast_ref::<StringArray>().unwrap();
            assert_eq!(got, &raw);
            assert_eq!(got.values().as_ptr(), raw.values().as_ptr());
            let c = coerce(&spec(ty, false, |_| {}), &raw);
            assert_eq!(c.rejects, vec![(2, Null)]);
        }
        let c = coerce(
            &spec("string", true, |s| s.transform.empty_as_null = Some(true)),
            &raw,
        );
        let got = c.array.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            vec![Some("a"), None, None, Some(" b ")]
        );
        assert_eq!(got.values().as_ptr(), raw.values().as_ptr());
        let c = coerce(
            &spec("string", true, |s| {
                s.transform.trim = Some(true);
                s.default = Some("?".into());
            }),
            &raw,
        );
        let got = c.array.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            vec![Some("a"), Some(""), Some("?"), Some("b")]
        );
    }

    #[test]
    fn numbers_with_formats_decimals_and_rounding() {
        let c = run(
            "decimal(12,2)",
            true,
            &[
                Some("$1,299.00"),
                Some("12.345"),
                Some("n/a"),
                Some("-0.5 USD"),
            ],
            |s| {
                s.transform.currency = Some(Currency::Any);
                s.transform.thousands_separator = Some(',');
            },
        );
        assert_eq!(c.array.data_type(), &DataType::Decimal128(12, 2));
        let got = c.array.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            vec![Some(129_900), None, None, Some(-50)]
        );
        assert_eq!(c.rejects, vec![(1, Scale), (2, Syntax)]);
        let c = run(
            "decimal(12,2)",
            true,
            &[Some("€12,50"), Some("12.345,678")],
            |s| {
                s.transform.currency = Some(Currency::Any);
                s.transform.decimal_separator = Some(',');
                s.transform.thousands_separator = Some('.');
                s.transform.round = Some(RoundMode::HalfEven);
            },
        );
        let got = c.array.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            vec![Some(1250), Some(1_234_568)]
        );
        let c = run("number", true, &[Some("1.234,5")], |s| {
            s.transform.decimal_separator = Some(',');
            s.transform.thousands_separator = Some('.');
        });
        let got = c.array.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(got.value(0), 1234.5);
    }

    #[test]
    fn booleans_default_and_custom_words() {
        let c = run(
            "boolean",
            true,
            &[
                Some("Yes"),
                Some("0"),
                Some("Y"),
                Some("off"),
                Some("maybe"),
                Some(""),
            ],
            |_| {},
        );
        let got = c.array.as_any().downcast_ref::<BooleanArray>().unwrap();
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            vec![Some(true), Some(false), Some(true), Some(false), None, None]
        );
        assert_eq!(c.rejects, vec![(4, Syntax)]);
        let c = run(
            "boolean",
            true,
            &[Some("JA"), Some("nein"), Some("yes")],
            |s| {
                s.transform.true_values = Some(vec!["ja".into()]);
                s.transform.false_values = Some(vec!["nein".into()]);
            },
        );
        assert_eq!(c.rejects, vec![(2, Syntax)]);
    }

    #[test]
    fn temporal_columns() {
        let c = run(
            "timestamp",
            true,
            &[
                Some("2024-03-10"),
                Some("2024-03-10 12:00:00"),
                Some("soon"),
            ],
            |s| {
                s.transform.timezone = Some(FixedTz(-18_000));
            },
        );
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
                Some(1_710_046_800_000_000),
                Some(1_710_090_000_000_000),
                None
            ]
        );
        assert_eq!(c.rejects, vec![(2, Syntax)]);
        let c = run(
            "date",
            true,
            &[Some("2024-03-10"), Some("2024-02-30")],
            |_| {},
        );
        let got = c.array.as_any().downcast_ref::<Date32Array>().unwrap();
        assert_eq!(got.iter().collect::<Vec<_>>(), vec![Some(19_792), None]);
        assert_eq!(c.rejects, vec![(1, InvalidDateTime)]);
    }

    #[test]
    fn json_keeps_original_text_and_rejects_invalid_json() {
        let raw = strings(&[
            Some(r#"{"a":1}"#),
            Some(" 3 "),
            Some("{bad"),
            Some(""),
            None,
            Some("null"),
        ]);
        let c = coerce(&spec("json", true, |_| {}), &raw);
        let got = c.array.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            vec![
                Some(r#"{"a":1}"#),
                Some(" 3 "),
                None,
                None,
                None,
                Some("null")
            ]
        );
        assert_eq!(c.rejects, vec![(2, InvalidJson)]);
        assert_eq!(got.values().as_ptr(), raw.values().as_ptr());
        let sliced = raw.slice(1, 2);
        let c = coerce(&spec("json", true, |_| {}), &sliced);
        let got = c.array.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(got.iter().collect::<Vec<_>>(), vec![Some(" 3 "), None]);
        assert_eq!(c.rejects, vec![(1, InvalidJson)]);
    }

    #[test]
    fn expected_texts() {
        let tf = Transform::default();
        assert_eq!(
            expected(&ColumnType::Boolean, &tf),
            "boolean (true: true/yes/y/on/1; false: false/no/n/off/0)"
        );
        assert_eq!(
            expected(&"decimal(12,2)".parse().unwrap(), &tf),
            "decimal(12,2) (exact decimal number) with at most 2 fractional digits"
        );
        assert_eq!(expected(&ColumnType::Timestamp, &tf), "timestamp (iso8601)");
        let tf = Transform {
            formats: vec!["epoch_millis".parse().unwrap(), "%d/%m/%Y".parse().unwrap()],
            ..Transform::default()
        };
        assert_eq!(
            expected(&ColumnType::Timestamp, &tf),
            "timestamp (epoch_millis, %d/%m/%Y)"
        );
    }
}
