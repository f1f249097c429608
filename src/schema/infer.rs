//! `schema infer`: proposes a [`TargetSchema`] from a sample of raw batches.
//!
//! Per column, the narrowest type accepting every non-blank sampled value, tried in the
//! order boolean → integer → number → date → timestamp → json → string. Invariant: the
//! proposed schema validates and maps its own sample without a reject.

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;

use super::transform::FixedTz;
use super::{ColumnSpec, ColumnType, MAX_DECIMAL_PRECISION, RESERVED_PREFIX, TargetSchema};
use crate::map::coerce::parse_json;
use crate::map::parse_num::{parse_f64, parse_i64};
use crate::map::parse_time::{parse_date32, parse_iso_us};

/// Which types every value seen so far fits.
#[derive(Debug, Clone)]
pub(super) struct Candidates {
    seen: bool,
    boolean: bool,
    integer: bool,
    /// Longest integer (digits) that did not fit i64; decimal(38,0) takes up to 38.
    wide_digits: usize,
    number: bool,
    date: bool,
    timestamp: bool,
    json: bool,
}

impl Default for Candidates {
    fn default() -> Self {
        Candidates {
            seen: false,
            boolean: true,
            integer: true,
            wide_digits: 0,
            number: true,
            date: true,
            timestamp: true,
            json: true,
        }
    }
}

impl Candidates {
    /// Narrows by one raw value (null and blank values say nothing).
    pub(super) fn observe(&mut self, v: &str) {
        let t = v.trim();
        if t.is_empty() {
            return;
        }
        self.seen = true;
        if self.boolean {
            self.boolean = ["true", "false", "yes", "no"]
                .iter()
                .any(|w| w.eq_ignore_ascii_case(t));
        }
        if self.integer {
            let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
            self.integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            if self.integer && parse_i64(t, None).is_err() {
                self.wide_digits = self.wide_digits.max(digits.trim_start_matches('0').len());
                self.integer = self.wide_digits <= usize::from(MAX_DECIMAL_PRECISION);
            }
        }
        if self.number {
            self.number = parse_f64(t).is_ok();
        }
        if self.date {
            self.date = parse_date32(t).is_ok();
        }
        if self.timestamp {
            self.timestamp = parse_iso_us(t, FixedTz(0)).is_ok();
        }
        if self.json {
            self.json = matches!(t.as_bytes()[0], b'{' | b'[') && parse_json(t).is_ok();
        }
    }

    /// The narrowest type fitting every observed value (string when none was seen).
    pub(super) fn best(&self) -> ColumnType {
        if !self.seen {
            ColumnType::String
        } else if self.boolean {
            ColumnType::Boolean
        } else if self.integer && self.wide_digits == 0 {
            ColumnType::Int64
        } else if self.integer {
            ColumnType::Decimal {
                precision: MAX_DECIMAL_PRECISION,
                scale: 0,
            }
        } else if self.number {
            ColumnType::Float64
        } else if self.date {
            ColumnType::Date
        } else if self.timestamp {
            ColumnType::Timestamp
        } else if self.json {
            ColumnType::Json
        } else {
            ColumnType::String
        }
    }

    /// Narrows by the first `rows` values of a raw column.
    pub(super) fn observe_column(&mut self, col: &dyn Array, rows: usize) {
        let Some(text) = as_text(col) else {
            // Not readable as text: only string is safe.
            self.seen = true;
            self.boolean = false;
            self.integer = false;
            self.number = false;
            self.date = false;
            self.timestamp = false;
            self.json = false;
            return;
        };
        for i in 0..rows.min(text.len()) {
            if text.is_valid(i) {
                self.observe(text.value(i));
            }
        }
    }
}

fn as_text(col: &dyn Array) -> Option<StringArray> {
    if let Some(s) = col.as_any().downcast_ref::<StringArray>() {
        return Some(s.clone());
    }
    let text = cast(col, &DataType::Utf8).ok()?;
    text.as_any().downcast_ref::<StringArray>().cloned()
}

/// Proposes a schema from the first `sample_rows` rows of `batches` (raw decoder output).
///
/// Columns come in first-seen order across batches; every column is nullable (a sample
/// cannot prove a field is always present) and reads its field by name. Names that would
/// not validate are adjusted (`source` keeps the field): control characters dropped, a
/// `_titan_` prefix becomes `x_titan_`, blank names become `column_<n>`, and names equal
/// ignoring ASCII case get `_2`, `_3`, … With no batches the schema has no columns (and so
/// does not validate): there was nothing to infer from.
pub fn infer_from_batches(batches: &[RecordBatch], sample_rows: usize) -> TargetSchema {
    let mut fields: Vec<(String, Candidates)> = Vec::new();
    let mut remaining = sample_rows;
    for batch in batches {
        let rows = remaining.min(batch.num_rows());
        let schema = batch.schema();
        for (field, col) in schema.fields().iter().zip(batch.columns()) {
            let k = match fields.iter().position(|(n, _)| n == field.name()) {
                Some(k) => k,
                None => {
                    fields.push((field.name().clone(), Candidates::default()));
                    fields.len() - 1
                }
            };
            fields[k].1.observe_column(col.as_ref(), rows);
        }
        remaining -= rows;
    }
    let mut columns: Vec<ColumnSpec> = Vec::with_capacity(fields.len());
    for (source, cands) in fields {
        let name = column_name(&source, &columns);
        let mut spec = ColumnSpec::new(&name, cands.best(), true);
        spec.source = source;
        columns.push(spec);
    }
    TargetSchema {
        name: None,
        version: 1,
        columns,
    }
}

/// A valid column name for field `source`, distinct from `taken` (see [`infer_from_batches`]).
pub(super) fn column_name(source: &str, taken: &[ColumnSpec]) -> String {
    let mut name: String = source.chars().filter(|c| !c.is_control()).collect();
    if name
        .get(..RESERVED_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_PREFIX))
    {
        name.insert(0, 'x');
    }
    if name.trim().is_empty() {
        name = format!("column_{}", taken.len() + 1);
    }
    let clash = |n: &str| taken.iter().any(|c| c.name.eq_ignore_ascii_case(n));
    if !clash(&name) {
        return name;
    }
    (2..)
        .map(|k| format!("{name}_{k}"))
        .find(|n| !clash(n))
        .expect("invariant: an unbounded counter eventually avoids a finite set of names")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int32Array};
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::map::{Lineage, Mapper};

    fn batch(cols: &[(&str, Vec<Option<&str>>)]) -> RecordBatch {
        let fields: Vec<Field> = cols
            .iter()
            .map(|(n, _)| Field::new(*n, DataType::Utf8, true))
            .collect();
        let arrays: Vec<ArrayRef> = cols
            .iter()
            .map(|(_, v)| Arc::new(StringArray::from(v.clone())) as ArrayRef)
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
    }

    #[test]
    fn narrowest_type_per_column() {
        let b = batch(&[
            ("flag", vec![Some("true"), Some("No"), None]),
            ("bits", vec![Some("1"), Some("0"), Some("")]),
            ("big", vec![Some("9007199254740993"), Some("-5"), None]),
            (
                "huge",
                vec![Some("123456789012345678901234567890"), Some("1"), None],
            ),
            ("price", vec![Some("12.5"), Some("3"), Some("1e3")]),
            ("day", vec![Some("2024-03-10"), Some("2024-02-29"), None]),
            (
                "at",
                vec![Some("2024-03-10"), Some("2024-03-10T12:00:00+05:30"), None],
            ),
            ("obj", vec![Some(r#"{"a":1}"#), Some("[1,2]"), None]),
            ("text", vec![Some("n/a"), Some("12"), None]),
            ("empty", vec![None, Some(" "), None]),
            ("money", vec![Some("$1,299.00"), None, None]),
            ("jsonish", vec![Some("{oops"), None, None]),
        ]);
        let schema = infer_from_batches(std::slice::from_ref(&b), 100);
        let got: Vec<(String, String)> = schema
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.ty.to_string()))
            .collect();
        let want = [
            ("flag", "boolean"),
            ("bits", "integer"),
            ("big", "integer"),
            ("huge", "decimal(38,0)"),
            ("price", "number"),
            ("day", "date"),
            ("at", "timestamp"),
            ("obj", "json"),
            ("text", "string"),
            ("empty", "string"),
            ("money", "string"),
            ("jsonish", "string"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
        assert!(schema.columns.iter().all(|c| c.nullable));
        schema.validate().unwrap();
        // The proposal maps its own sample without a reject.
        let mapper = Mapper::new(
            &schema,
            Lineage {
                task_id: "t".into(),
                execution_id: "e".into(),
            },
        );
        let (out, rejects) = mapper.map_with_rejects(&b, 1).unwrap();
        assert!(rejects.is_empty(), "{rejects:?}");
        assert_eq!(out.num_rows(), 3);
    }

    #[test]
    fn sample_limit_union_of_batches_and_name_fixes() {
        let a = batch(&[
            ("n", vec![Some("1"), Some("x")]),
            ("_titan_row", vec![Some("1"), None]),
        ]);
        let b = batch(&[
            ("N", vec![Some("2")]),
            ("\u{7}", vec![Some("a")]),
            ("n", vec![Some("y")]),
        ]);
        // Only the first row is sampled: `x` and batch b's `y` are not seen.
        let schema = infer_from_batches(&[a.clone(), b.clone()], 1);
        let got: Vec<(&str, &str, String)> = schema
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.source.as_str(), c.ty.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("n", "n", "integer".to_string()),
                ("x_titan_row", "_titan_row", "integer".to_string()),
                ("N_2", "N", "string".to_string()),
                ("column_4", "\u{7}", "string".to_string()),
            ]
        );
        schema.validate().unwrap();
        let schema = infer_from_batches(&[a, b], 10);
        assert_eq!(schema.columns[0].ty, ColumnType::String);
        assert!(infer_from_batches(&[], 10).columns.is_empty());
    }

    #[test]
    fn typed_raw_columns_are_read_as_text() {
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("i", DataType::Int32, true)])),
            vec![Arc::new(Int32Array::from(vec![Some(1), None]))],
        )
        .unwrap();
        assert_eq!(
            infer_from_batches(&[b], 10).columns[0].ty,
            ColumnType::Int64
        );
    }
}
