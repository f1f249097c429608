//! Property tests of every parser and coercion: round trips where a value has a canonical
//! text, and no panic (plus the reject/null invariant) on arbitrary input.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use proptest::prelude::*;

use super::coerce::{coerce, parse_bool};
use super::parse_num::{NumFmt, parse_decimal, parse_f64, parse_i64};
use super::parse_time::{parse_date32, parse_iso_us, parse_timestamp};
use super::*;
use crate::schema::jsontext;
use crate::schema::transform::{Currency, FixedTz, RoundMode, TimeFormat, Transform};
use crate::schema::{ColumnSpec, ColumnType, StructField, TargetSchema};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Short strings biased towards the characters parsers care about.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9+\\-.,eE$€ \u{a0}:TZz/%]{0,24}",
        "[\\[\\]{}\",:0-9a-z\\\\ ]{0,24}",
    ]
}

fn column_type() -> impl Strategy<Value = ColumnType> {
    let leaf = prop_oneof![
        Just(ColumnType::String),
        Just(ColumnType::Int32),
        Just(ColumnType::Int64),
        Just(ColumnType::Float64),
        Just(ColumnType::Boolean),
        Just(ColumnType::Timestamp),
        Just(ColumnType::Date),
        Just(ColumnType::Json),
        Just(ColumnType::Media),
        (1u8..=38)
            .prop_flat_map(|p| (Just(p), 0..=p))
            .prop_map(|(precision, scale)| ColumnType::Decimal { precision, scale }),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| ColumnType::List(Box::new(t))),
            prop::collection::vec(("[a-z_]{1,4}|[ `:,é]{1,3}", inner), 1..4).prop_map(|fields| {
                let mut seen: Vec<String> = Vec::new();
                ColumnType::Struct(
                    fields
                        .into_iter()
                        .filter(|(n, _)| {
                            let dup = seen.iter().any(|s| s.eq_ignore_ascii_case(n));
                            seen.push(n.clone());
                            !dup
                        })
                        .map(|(name, ty)| StructField { name, ty })
                        .collect(),
                )
            }),
        ]
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn type_names_round_trip(ty in column_type()) {
        let text = ty.to_string();
        prop_assert_eq!(text.parse::<ColumnType>(), Ok(ty), "{}", text);
    }

    #[test]
    fn type_parser_never_panics(s in hostile()) {
        let _ = s.parse::<ColumnType>();
        let _ = format!("list<{s}>").parse::<ColumnType>();
        let _ = format!("struct<{s}>").parse::<ColumnType>();
    }

    #[test]
    fn integers_round_trip(v in any::<i64>(), zeros in 0usize..3, frac in 0usize..3, exp in any::<bool>()) {
        prop_assert_eq!(parse_i64(&v.to_string(), None), Ok(v));
        let digits = v.unsigned_abs().to_string();
        let sign = if v < 0 { "-" } else { "+" };
        let mut text = format!("{sign}{}{digits}", "0".repeat(zeros));
        if frac > 0 {
            text.push('.');
            text.push_str(&"0".repeat(frac));
        }
        if exp {
            text.push_str("e0");
        }
        prop_assert_eq!(parse_i64(&text, None), Ok(v), "{}", text);
    }

    #[test]
    fn decimals_round_trip(m in any::<i64>(), scale in 0u8..=18) {
        // m as the unscaled value of decimal(38, scale), written out with the point.
        let digits = format!("{:0>width$}", m.unsigned_abs(), width = usize::from(scale) + 1);
        let (int, frac) = digits.split_at(digits.len() - usize::from(scale));
        let sign = if m < 0 { "-" } else { "" };
        let text = if scale == 0 { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") };
        prop_assert_eq!(parse_decimal(&text, 38, scale, None), Ok(i128::from(m)), "{}", text);
    }

    #[test]
    fn grouped_currency_numbers_round_trip(cents in 0u64..10_000_000_000_000, neg in any::<bool>(), eu in any::<bool>()) {
        // Formats cents as "$1,234,567.89" (or "1.234.567,89 €") and reads it back.
        let units = (cents / 100).to_string();
        let mut grouped = String::new();
        let sep = if eu { '.' } else { ',' };
        for (i, ch) in units.chars().enumerate() {
            if i > 0 && (units.len() - i) % 3 == 0 {
                grouped.push(sep);
            }
            grouped.push(ch);
        }
        let (dec, text) = if eu {
            (',', format!("{}{grouped},{:02} €", if neg { "-" } else { "" }, cents % 100))
        } else {
            ('.', format!("{}${grouped}.{:02}", if neg { "-" } else { "" }, cents % 100))
        };
        let tf = Transform {
            currency: Some(Currency::Any),
            decimal_separator: Some(dec),
            thousands_separator: Some(sep),
            ..Transform::default()
        };
        let mut out = String::new();
        NumFmt::new(&tf).normalize(&text, &mut out).unwrap();
        let want = if neg { -(cents as i128) } else { cents as i128 };
        prop_assert_eq!(parse_decimal(&out, 38, 2, None), Ok(want), "{}", text);
    }

    #[test]
    fn floats_round_trip(v in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
        prop_assert_eq!(parse_f64(&v.to_string()).map(f64::to_bits), Ok(v.to_bits()));
        prop_assert_eq!(parse_f64(&format!("{v:e}")).map(f64::to_bits), Ok(v.to_bits()));
    }

    #[test]
    fn number_parsers_never_panic(s in hostile()) {
        let _ = parse_i64(&s, None);
        let _ = parse_i64(&s, Some(RoundMode::HalfEven));
        let _ = parse_decimal(&s, 38, 10, Some(RoundMode::Floor));
        let _ = parse_decimal(&s, 5, 2, None);
        let _ = parse_f64(&s);
        let tf = Transform {
            currency: Some(Currency::Any),
            decimal_separator: Some(','),
            thousands_separator: Some(' '),
            ..Transform::default()
        };
        let mut out = String::new();
        if NumFmt::new(&tf).normalize(&s, &mut out).is_ok() {
            // Whatever normalises is plain syntax every number parser reads without panic.
            let _ = parse_decimal(&out, 38, 2, None);
        }
    }

    #[test]
    fn timestamps_round_trip(us in -62_135_596_800_000_000i64..253_402_128_000_000_000, off_min in -1439i32..=1439) {
        let utc = chrono::DateTime::from_timestamp_micros(us).unwrap();
        let offset = chrono::FixedOffset::east_opt(off_min * 60).unwrap();
        let text = utc.with_timezone(&offset).to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        prop_assert_eq!(parse_iso_us(&text, FixedTz(0)), Ok(us), "{}", text);
        let naive = utc.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        prop_assert_eq!(parse_iso_us(&naive, FixedTz(0)), Ok(us), "{}", naive);
        let millis = us.div_euclid(1000);
        prop_assert_eq!(
            parse_timestamp(&millis.to_string(), &[TimeFormat::EpochMillis], FixedTz(0)),
            Ok(millis * 1000)
        );
    }

    #[test]
    fn dates_round_trip(days in -719_162i32..2_932_896) {
        let d = chrono::NaiveDate::default();
        let date = if days >= 0 {
            d.checked_add_days(chrono::Days::new(days as u64))
        } else {
            d.checked_sub_days(chrono::Days::new(days.unsigned_abs() as u64))
        }
        .unwrap();
        prop_assert_eq!(parse_date32(&date.format("%Y-%m-%d").to_string()), Ok(days));
    }

    #[test]
    fn time_parsers_never_panic(s in hostile()) {
        let formats: Vec<TimeFormat> = ["iso8601", "epoch_seconds", "epoch_micros", "%d/%m/%Y %H:%M:%S%.f%z", "%s"]
            .iter()
            .map(|f| f.parse().unwrap())
            .collect();
        let _ = parse_timestamp(&s, &formats, FixedTz(-3600));
        let _ = parse_date32(&s);
    }

    #[test]
    fn boolean_words_in_any_case(word in prop::sample::select(vec!["true", "yes", "y", "on", "1", "false", "no", "n", "off", "0"]), upper in prop::collection::vec(any::<bool>(), 5)) {
        let text: String = word
            .chars()
            .zip(upper.iter().cycle())
            .map(|(c, &u)| if u { c.to_ascii_uppercase() } else { c })
            .collect();
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let got = parse_bool(&text, &words(&["true", "yes", "y", "on", "1"]), &words(&["false", "no", "n", "off", "0"]));
        prop_assert_eq!(got, Ok(["true", "yes", "y", "on", "1"].contains(&word)));
    }

    #[test]
    fn json_scanner_agrees_with_serde(s in hostile()) {
        let ours = jsontext::is_valid(&s);
        let serde = serde_json::from_str::<serde::de::IgnoredAny>(&s).is_ok();
        // The scanner only differs on lone surrogate escapes, which serde rejects.
        if !s.contains("\\u") {
            prop_assert_eq!(ours, serde, "{:?}", s);
        }
        let _ = jsontext::for_each_element(&s, |_| {});
        let _ = jsontext::for_each_member(&s, |_, _| {});
        let _ = jsontext::extract(&s, &["a".into(), "0".into()]);
    }

    #[test]
    fn json_arrays_split_into_their_elements(values in prop::collection::vec(json_value(), 0..6)) {
        let text = serde_json::to_string(&values).unwrap();
        let mut got = Vec::new();
        jsontext::for_each_element(&text, |item| got.push(item.map(|c| c.into_owned()))).unwrap();
        let want: Vec<Option<String>> = values
            .iter()
            .map(|v| match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            })
            .collect();
        prop_assert_eq!(got, want);
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z\"\\\\é]{0,3}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn spec_for(ty: ColumnType, nullable: bool, tweak: u8) -> ColumnSpec {
    let mut spec = ColumnSpec::new("c", ty.clone(), nullable);
    let tf = &mut spec.transform;
    let numeric = ty.any_leaf(&|t| {
        matches!(
            t,
            ColumnType::Int32
                | ColumnType::Int64
                | ColumnType::Float64
                | ColumnType::Decimal { .. }
        )
    });
    if tweak & 1 == 1 && numeric {
        tf.currency = Some(Currency::Any);
        tf.thousands_separator = Some(',');
    }
    if tweak & 2 == 2 {
        tf.null_values = vec!["n/a".into()];
        tf.trim = Some(true);
    }
    if tweak & 4 == 4 && matches!(ty, ColumnType::List(_)) {
        tf.split = Some(",".into());
    }
    if tweak & 8 == 8 && ty.any_leaf(&|t| matches!(t, ColumnType::Timestamp)) {
        tf.formats = vec!["epoch_millis".parse().unwrap(), "%d/%m/%Y".parse().unwrap()];
        tf.timezone = Some(FixedTz(3600));
    }
    spec
}

proptest! {
    #![proptest_config(config(96))]

    /// Any column type and transforms over arbitrary text: never a panic, one value per row,
    /// every rejected row null, and every null row either null/blank input or rejected.
    #[test]
    fn coercion_never_panics_and_never_silently_nulls(
        ty in column_type(),
        nullable in any::<bool>(),
        tweak in 0u8..16,
        values in prop::collection::vec(prop::option::weighted(0.9, hostile()), 0..24),
    ) {
        let spec = spec_for(ty, nullable, tweak);
        prop_assume!(spec.transform.check(&spec.ty).is_ok());
        let raw = StringArray::from(values.iter().map(Option::as_deref).collect::<Vec<_>>());
        let c = coerce(&spec, &raw);
        prop_assert_eq!(c.array.len(), raw.len());
        prop_assert_eq!(c.array.data_type(), &spec.ty.arrow_type());
        for &(i, _) in &c.rejects {
            prop_assert!(c.array.is_null(i));
        }
        for (i, cell) in values.iter().enumerate() {
            if c.array.is_null(i) && !c.rejects.iter().any(|&(j, _)| j == i) {
                let blank_or_null = cell.as_deref().is_none_or(|s| {
                    let t = s.trim();
                    t.is_empty() || t.eq_ignore_ascii_case("n/a")
                });
                prop_assert!(blank_or_null, "row {} {:?}", i, cell);
            }
        }
    }

    /// Mapping then quarantining: accepted + quarantined rows = input rows, and each
    /// quarantine record holds the original raw values exactly.
    #[test]
    fn mapped_plus_quarantined_is_every_row(
        values in prop::collection::vec((prop::option::of(hostile()), prop::option::of(hostile())), 0..20),
        first_row in 1u64..1_000_000,
    ) {
        let schema = TargetSchema::from_json_str(
            r#"{"version": 1, "columns": [
                {"name": "n", "type": "decimal(10,2)", "currency": true, "thousands_separator": ",", "nullable": false},
                {"name": "t", "type": "list<int32>"}
            ]}"#,
            "p",
        ).unwrap();
        let n: ArrayRef = Arc::new(StringArray::from(values.iter().map(|v| v.0.as_deref()).collect::<Vec<_>>()));
        let t: ArrayRef = Arc::new(StringArray::from(values.iter().map(|v| v.1.as_deref()).collect::<Vec<_>>()));
        let fields = vec![Field::new("n", DataType::Utf8, true), Field::new("t", DataType::Utf8, true)];
        let raw = RecordBatch::try_new(Arc::new(Schema::new(fields)), vec![n, t]).unwrap();
        let lineage = Lineage { task_id: "t".into(), execution_id: "e".into() };
        let mapper = Mapper::new(&schema, lineage.clone());
        let mapped = mapper.map_batch(&raw, first_row, BadRowPolicy::Quarantine).unwrap();
        let bytes = QuarantineEncoder::new(&lineage).encode(&raw, first_row, &mapped.rejects).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        prop_assert_eq!(mapped.batch.num_rows() + lines.len(), raw.num_rows());
        for line in &lines {
            let i = (line["row"].as_u64().unwrap() - first_row) as usize;
            prop_assert_eq!(line["record"]["n"].as_str(), values[i].0.as_deref());
            prop_assert_eq!(line["record"]["t"].as_str(), values[i].1.as_deref());
        }
    }
}
