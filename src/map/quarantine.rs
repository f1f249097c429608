//! Quarantine records: rejected rows as JSON Lines, each with its original raw record, so
//! nothing that fails to map is lost and a human can see why.
//!
//! One line per rejected row (see schemas/README.md for the shape). Invariant: `record`
//! holds every column of the raw batch for that row, exactly as decoded (string or null).

use std::io::Write;

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use bytes::Bytes;

use super::{Lineage, Reject};

/// Folder (under a dataset) holding quarantined rows:
/// `<dataset>/_rejects/task_id=<task>/<execution>.jsonl`.
pub const REJECTS_DIR: &str = "_rejects";

/// Why rejects could not be encoded (a caller bug, or a raw batch the mapper did not see).
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// A reject's row number is not a row of the given raw batch.
    #[error("reject for row {row} is outside the raw batch (rows {first_row}..{end})")]
    RowOutOfBatch { row: u64, first_row: u64, end: u64 },
    /// A raw column that cannot be shown as text.
    #[error("raw field `{field}` has type {data_type}, which cannot be quoted as text")]
    RawType { field: String, data_type: DataType },
}

/// Encodes the rejects of one execution as JSON Lines.
#[derive(Debug, Clone)]
pub struct QuarantineEncoder {
    /// `{"execution_id":…,"task_id":…,` — the same prefix on every line.
    prefix: Vec<u8>,
}

impl QuarantineEncoder {
    pub fn new(lineage: &Lineage) -> Self {
        let mut prefix = b"{\"execution_id\":".to_vec();
        write_json_str(&mut prefix, &lineage.execution_id);
        prefix.extend_from_slice(b",\"task_id\":");
        write_json_str(&mut prefix, &lineage.task_id);
        prefix.push(b',');
        QuarantineEncoder { prefix }
    }

    /// JSON Lines for the rows of `raw` (whose first row is export row `first_row`) that
    /// `rejects` name; `rejects` are as [`super::Mapper::map_with_rejects`] returns them
    /// (grouped by row). Empty input gives empty bytes.
    ///
    /// Each line: `execution_id`, `task_id`, `row`, and `column`/`value`/`reason`/
    /// `reason_code`/`expected` of the row's first failing column, `errors` (every failing
    /// column of the row, same keys), and `record` (source field → raw string or null).
    pub fn encode(
        &self,
        raw: &RecordBatch,
        first_row: u64,
        rejects: &[Reject],
    ) -> Result<Bytes, QuarantineError> {
        if rejects.is_empty() {
            return Ok(Bytes::new());
        }
        let end = first_row + raw.num_rows() as u64;
        let schema = raw.schema();
        let columns: Vec<StringArray> = raw
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(col, field)| text_of(col.as_ref(), field.name()))
            .collect::<Result<_, _>>()?;
        let keys: Vec<Vec<u8>> = schema
            .fields()
            .iter()
            .map(|f| {
                let mut k = Vec::new();
                write_json_str(&mut k, f.name());
                k
            })
            .collect();
        let mut out = Vec::with_capacity(rejects.len() * 256);
        let mut rest = rejects;
        while let Some(first) = rest.first() {
            let group_len = rest.iter().take_while(|r| r.row == first.row).count();
            let (group, tail) = rest.split_at(group_len);
            rest = tail;
            if !(first_row..end).contains(&first.row) {
                return Err(QuarantineError::RowOutOfBatch {
                    row: first.row,
                    first_row,
                    end,
                });
            }
            let i = (first.row - first_row) as usize;
            out.extend_from_slice(&self.prefix);
            // Writing into a Vec cannot fail.
            let _ = write!(out, "\"row\":{},", first.row);
            write_error(&mut out, first);
            out.extend_from_slice(b",\"errors\":[");
            for (k, r) in group.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                out.push(b'{');
                write_error(&mut out, r);
                out.push(b'}');
            }
            out.extend_from_slice(b"],\"record\":{");
            for (k, (key, col)) in keys.iter().zip(&columns).enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(key);
                out.push(b':');
                if col.is_null(i) {
                    out.extend_from_slice(b"null");
                } else {
                    write_json_str(&mut out, col.value(i));
                }
            }
            out.extend_from_slice(b"}}\n");
        }
        Ok(Bytes::from(out))
    }
}

/// `"column":…,"value":…,"reason":…,"reason_code":…,"expected":…`
fn write_error(out: &mut Vec<u8>, r: &Reject) {
    out.extend_from_slice(b"\"column\":");
    write_json_str(out, &r.column);
    out.extend_from_slice(b",\"value\":");
    match &r.value {
        Some(v) => write_json_str(out, v),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"reason\":");
    write_json_str(out, &r.reason.to_string());
    out.extend_from_slice(b",\"reason_code\":");
    write_json_str(out, r.reason.code());
    out.extend_from_slice(b",\"expected\":");
    write_json_str(out, &r.expected);
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(out, s).expect("invariant: serialising a &str into a Vec cannot fail");
}

fn text_of(col: &dyn Array, field: &str) -> Result<StringArray, QuarantineError> {
    if let Some(s) = col.as_any().downcast_ref::<StringArray>() {
        return Ok(s.clone());
    }
    let bad = || QuarantineError::RawType {
        field: field.to_owned(),
        data_type: col.data_type().clone(),
    };
    let text = cast(col, &DataType::Utf8).map_err(|_| bad())?;
    text.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::ArrayRef;
    use arrow::datatypes::{Field, Schema};
    use serde_json::{Value, json};

    use super::*;
    use crate::map::RejectReason;

    fn raw() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("product_name", DataType::Utf8, true),
            Field::new("price", DataType::Utf8, true),
            Field::new("note", DataType::Utf8, true),
        ]);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![
                Some("A"),
                None,
                Some("灯 \"💡\"\n"),
            ])),
            Arc::new(StringArray::from(vec![Some("1"), Some("n/a"), Some("x")])),
            Arc::new(StringArray::from(vec![None, Some("مرحبا"), Some("")])),
        ];
        RecordBatch::try_new(Arc::new(schema), cols).unwrap()
    }

    fn reject(row: u64, column: &str, value: Option<&str>, reason: RejectReason) -> Reject {
        Reject {
            row,
            column: column.into(),
            value: value.map(str::to_owned),
            reason,
            expected: "number (finite float64)".into(),
        }
    }

    #[test]
    fn one_line_per_rejected_row_with_the_original_record() {
        let enc = QuarantineEncoder::new(&Lineage {
            task_id: "t-1".into(),
            execution_id: "e\"2".into(),
        });
        let rejects = [
            reject(11, "name", None, RejectReason::Null),
            reject(11, "price", Some("n/a"), RejectReason::Syntax),
            reject(12, "price", Some("x"), RejectReason::Syntax),
        ];
        let bytes = enc.encode(&raw(), 10, &rejects).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(text.ends_with('\n'));
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            json!({
                "execution_id": "e\"2", "task_id": "t-1", "row": 11,
                "column": "name", "value": null, "reason": "null in a non-nullable column",
                "reason_code": "null", "expected": "number (finite float64)",
                "errors": [
                    {"column": "name", "value": null, "reason": "null in a non-nullable column",
                     "reason_code": "null", "expected": "number (finite float64)"},
                    {"column": "price", "value": "n/a", "reason": "malformed value",
                     "reason_code": "syntax", "expected": "number (finite float64)"}
                ],
                "record": {"product_name": null, "price": "n/a", "note": "مرحبا"}
            })
        );
        assert_eq!(lines[1]["row"], 12);
        assert_eq!(
            lines[1]["record"],
            json!({"product_name": "灯 \"💡\"\n", "price": "x", "note": ""})
        );
        // Keys keep the raw batch's column order.
        let line = text.lines().nth(1).unwrap();
        let at = |k: &str| line.find(k).unwrap();
        assert!(
            at("\"product_name\"") < at("\"price\":\"x\"")
                && at("\"price\":\"x\"") < at("\"note\"")
        );
        assert!(enc.encode(&raw(), 10, &[]).unwrap().is_empty());
    }

    #[test]
    fn rows_outside_the_batch_are_an_error() {
        let enc = QuarantineEncoder::new(&Lineage {
            task_id: "t".into(),
            execution_id: "e".into(),
        });
        let err = enc
            .encode(&raw(), 10, &[reject(13, "price", None, RejectReason::Null)])
            .unwrap_err();
        assert!(
            matches!(
                err,
                QuarantineError::RowOutOfBatch {
                    row: 13,
                    first_row: 10,
                    end: 13
                }
            ),
            "{err:?}"
        );
    }
}
