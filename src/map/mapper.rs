//! Maps raw (all-Utf8) decoder batches to typed batches of a [`TargetSchema`] plus lineage.
//!
//! ```text
//! raw batch ──per column──► coerce ──► typed arrays + rejects (row, column, reason)
//!                                        │ rejected rows filtered out (one filter kernel)
//!                                        ▼
//!                     typed columns ++ _titan_task_id, _titan_execution_id, _titan_row
//! ```
//! Invariant: an output row is either fully converted or reported as a [`Reject`].

use std::sync::{Arc, Mutex, PoisonError};

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBufferBuilder, Int64Array, RecordBatch, StringArray,
    new_null_array,
};
use arrow::buffer::{Buffer, OffsetBuffer};
use arrow::compute::{FilterBuilder, cast};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;

use super::coerce::{self, RejectReason};
use super::nested;
use super::policy::BadRowPolicy;
use crate::schema::{ColumnSpec, SourcePath, TargetSchema};

/// Longest value text (in chars, including the trailing `…`) kept in errors and rejects.
const MAX_VALUE_CHARS: usize = 200;

/// Where mapped rows came from; written into every row's lineage columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    pub task_id: String,
    pub execution_id: String,
}

/// One rejected (row, column): enough to quarantine the row and tell a human why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// 1-based row number in the export.
    pub row: u64,
    /// Target column name.
    pub column: String,
    /// The raw text, untrimmed (at most 200 chars, `…`-terminated when cut); `None` when
    /// the raw value was null. A blank value rejected as null keeps its text here; for a
    /// path source whose JSON could not be followed, this is the root field's text.
    pub value: Option<String>,
    pub reason: RejectReason,
    /// What the column accepts (type and formats), for humans.
    pub expected: String,
}

/// A mapped batch and the rejects of its raw batch (empty under [`BadRowPolicy::Fail`]).
#[derive(Debug)]
pub struct Mapped {
    /// Accepted rows only, in the mapper's Arrow schema.
    pub batch: RecordBatch,
    /// One per rejected (row, column), ordered by row then column.
    pub rejects: Vec<Reject>,
}

/// Errors of mapping a raw batch.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// A non-nullable column's source field is not in the raw batch at all.
    #[error(
        "column `{column}`: source field `{source_field}` is not in the export and the column is not nullable"
    )]
    MissingColumn {
        column: String,
        source_field: String,
    },
    /// A value that cannot be converted to its column's type.
    #[error("row {row}, column `{column}`: {reason}: cannot convert {value:?} to {expected}")]
    BadValue {
        row: u64,
        column: String,
        /// The raw text, cut to 200 chars.
        value: String,
        expected: String,
        reason: RejectReason,
    },
    /// A null or blank value in a non-nullable column.
    #[error("row {row}, column `{column}`: null in a non-nullable column")]
    NullValue { row: u64, column: String },
    /// The raw column is neither text nor castable to text.
    #[error("source field `{source_field}` has type {data_type}, which cannot be read as text")]
    RawType {
        source_field: String,
        data_type: DataType,
    },
    /// `first_row` plus the batch length does not fit the Int64 `_titan_row` column.
    #[error("row numbers from {first_row} for {rows} rows overflow the int64 `_titan_row` column")]
    RowOverflow { first_row: u64, rows: usize },
    /// Arrow refused to assemble the output (e.g. lineage text beyond 2 GiB in one batch).
    #[error("cannot assemble the mapped batch: {source}")]
    Arrow {
        #[source]
        source: ArrowError,
    },
}

/// Maps raw batches of one execution's export. Holds no per-batch state except a cache of
/// the constant lineage columns, which every batch slices instead of rebuilding.
#[derive(Debug)]
pub struct Mapper {
    columns: Vec<ColumnSpec>,
    /// Per column: its parsed source and what it accepts (for errors).
    sources: Vec<SourcePath>,
    expected: Vec<String>,
    schema: SchemaRef,
    lineage: Lineage,
    /// `[task_id, execution_id]` repeated for the largest batch seen so far.
    lineage_cache: Mutex<Option<[ArrayRef; 2]>>,
}

impl Clone for Mapper {
    fn clone(&self) -> Self {
        Mapper {
            columns: self.columns.clone(),
            sources: self.sources.clone(),
            expected: self.expected.clone(),
            schema: Arc::clone(&self.schema),
            lineage: self.lineage.clone(),
            lineage_cache: Mutex::new(None),
        }
    }
}

/// Typed columns of one batch before rejected rows are removed.
struct Coercion {
    arrays: Vec<ArrayRef>,
    /// The text each target column was coerced from (`None` when absent), to quote
    /// rejected values.
    texts: Vec<Option<StringArray>>,
    /// For path sources, the root field's text (quoted when the path could not be followed).
    roots: Vec<Option<StringArray>>,
    /// (row index in batch, column index, reason), sorted by row then column.
    rejects: Vec<(usize, usize, RejectReason)>,
}

impl Mapper {
    /// Builds a mapper for a schema that passed [`TargetSchema::validate`] (all constructors
    /// of `TargetSchema` ensure that).
    pub fn new(schema: &TargetSchema, lineage: Lineage) -> Self {
        Mapper {
            columns: schema.columns.clone(),
            sources: schema.columns.iter().map(ColumnSpec::source_path).collect(),
            expected: schema
                .columns
                .iter()
                .map(|c| coerce::expected(&c.ty, &c.transform))
                .collect(),
            schema: schema.arrow_schema(),
            lineage,
            lineage_cache: Mutex::new(None),
        }
    }

    /// The schema of every batch this mapper returns (same `Arc` each time).
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Maps one raw batch. `first_row` is the 1-based export row number of the batch's first row.
    ///
    /// A source absent from the raw batch gives the column's `default` in every row, else
    /// nulls (an error, `MissingColumn`, if the column is not nullable); raw columns not in
    /// the schema are ignored. The first rejected value fails the whole batch
    /// (`BadValue`/`NullValue`).
    pub fn map(&self, raw: &RecordBatch, first_row: u64) -> Result<RecordBatch, MapError> {
        let base = row_base(first_row, raw.num_rows())?;
        let coercion = self.coerce(raw)?;
        if let Some(&(i, c, reason)) = coercion.rejects.first() {
            let reject = self.reject(&coercion, base, i, c, reason);
            return Err(match (reason, reject.value) {
                (RejectReason::Null, _) | (_, None) => MapError::NullValue {
                    row: reject.row,
                    column: reject.column,
                },
                (_, Some(value)) => MapError::BadValue {
                    row: reject.row,
                    column: reject.column,
                    value,
                    expected: reject.expected,
                    reason,
                },
            });
        }
        self.assemble(coercion.arrays, raw.num_rows(), base, None)
    }

    /// Like [`Mapper::map`], but rejected rows are left out of the batch and returned as
    /// [`Reject`]s (one per failing column, ordered by row then column); `_titan_row` keeps
    /// the accepted rows' export row numbers.
    pub fn map_with_rejects(
        &self,
        raw: &RecordBatch,
        first_row: u64,
    ) -> Result<(RecordBatch, Vec<Reject>), MapError> {
        let base = row_base(first_row, raw.num_rows())?;
        let coercion = self.coerce(raw)?;
        if coercion.rejects.is_empty() {
            let batch = self.assemble(coercion.arrays, raw.num_rows(), base, None)?;
            return Ok((batch, Vec::new()));
        }
        let rejects: Vec<Reject> = coercion
            .rejects
            .iter()
            .map(|&(i, c, reason)| self.reject(&coercion, base, i, c, reason))
            .collect();
        let mut keep = BooleanBufferBuilder::new(raw.num_rows());
        keep.append_n(raw.num_rows(), true);
        for &(i, _, _) in &coercion.rejects {
            keep.set_bit(i, false);
        }
        let keep = BooleanArray::new(keep.finish(), None);
        let batch = self.assemble(coercion.arrays, raw.num_rows(), base, Some(&keep))?;
        Ok((batch, rejects))
    }

    /// Maps one raw batch under a bad-row policy: `Fail` is [`Mapper::map`] (first reject
    /// is the error), `Skip` and `Quarantine` are [`Mapper::map_with_rejects`] (the caller
    /// counts the rejects, and for `Quarantine` writes them with
    /// [`super::QuarantineEncoder`]).
    pub fn map_batch(
        &self,
        raw: &RecordBatch,
        first_row: u64,
        policy: BadRowPolicy,
    ) -> Result<Mapped, MapError> {
        match policy {
            BadRowPolicy::Fail => Ok(Mapped {
                batch: self.map(raw, first_row)?,
                rejects: Vec::new(),
            }),
            BadRowPolicy::Skip | BadRowPolicy::Quarantine => {
                let (batch, rejects) = self.map_with_rejects(raw, first_row)?;
                Ok(Mapped { batch, rejects })
            }
        }
    }

    fn coerce(&self, raw: &RecordBatch) -> Result<Coercion, MapError> {
        let n = raw.num_rows();
        let raw_schema = raw.schema();
        let mut arrays = Vec::with_capacity(self.columns.len());
        let mut texts = Vec::with_capacity(self.columns.len());
        let mut roots = Vec::with_capacity(self.columns.len());
        let mut rejects = Vec::new();
        for (c, (spec, source)) in self.columns.iter().zip(&self.sources).enumerate() {
            // A raw column named like the whole source wins (CSV headers such as `a.b`).
            let literal = raw_schema.index_of(&spec.source).ok();
            let (text, root, mut path_rejects) = match (literal, source) {
                (Some(idx), _) => (Some(as_utf8(raw.column(idx), &spec.source)?), None, vec![]),
                (None, SourcePath::Path { root, rest }) => match raw_schema.index_of(root) {
                    Ok(idx) => {
                        let root_text = as_utf8(raw.column(idx), root)?;
                        let (text, rejects) = nested::extract_path(&root_text, rest);
                        (Some(text), Some(root_text), rejects)
                    }
                    Err(_) => (None, None, vec![]),
                },
                (None, SourcePath::Field(_)) => (None, None, vec![]),
            };
            let text = match text {
                Some(t) => t,
                None if spec.nullable || spec.default.is_some() => {
                    if spec.default.is_none() {
                        arrays.push(new_null_array(&spec.ty.arrow_type(), n));
                        texts.push(None);
                        roots.push(None);
                        continue;
                    }
                    StringArray::new_null(n)
                }
                None => {
                    return Err(MapError::MissingColumn {
                        column: spec.name.clone(),
                        source_field: spec.source.clone(),
                    });
                }
            };
            let coerced = coerce::coerce(spec, &text);
            // A row whose path failed is reported for that, not again as a null.
            let mut column_rejects = coerced.rejects;
            if !path_rejects.is_empty() {
                column_rejects
                    .retain(|(i, _)| path_rejects.binary_search_by_key(i, |&(j, _)| j).is_err());
                column_rejects.append(&mut path_rejects);
                column_rejects.sort_by_key(|&(i, _)| i);
            }
            rejects.extend(column_rejects.into_iter().map(|(i, r)| (i, c, r)));
            arrays.push(coerced.array);
            texts.push(Some(text));
            roots.push(root);
        }
        // Each column's list is ascending; a stable sort by row keeps column order per row.
        rejects.sort_by_key(|&(i, _, _)| i);
        Ok(Coercion {
            arrays,
            texts,
            roots,
            rejects,
        })
    }

    fn reject(
        &self,
        coercion: &Coercion,
        base: i64,
        i: usize,
        c: usize,
        reason: RejectReason,
    ) -> Reject {
        let quote = |a: &Option<StringArray>| {
            a.as_ref()
                .filter(|t| t.is_valid(i))
                .map(|t| truncate(t.value(i)))
        };
        Reject {
            row: base.unsigned_abs() + i as u64,
            column: self.columns[c].name.clone(),
            value: quote(&coercion.texts[c]).or_else(|| quote(&coercion.roots[c])),
            reason,
            expected: self.expected[c].clone(),
        }
    }

    /// Typed columns (all rows, or the rows `keep` selects) plus lineage, as one batch.
    fn assemble(
        &self,
        arrays: Vec<ArrayRef>,
        num_rows: usize,
        base: i64,
        keep: Option<&BooleanArray>,
    ) -> Result<RecordBatch, MapError> {
        let arrow = |source| MapError::Arrow { source };
        let (mut columns, rows): (Vec<ArrayRef>, Int64Array) = match keep {
            None => (arrays, (0..num_rows as i64).map(|i| base + i).collect()),
            Some(keep) => {
                let filter = FilterBuilder::new(keep).optimize().build();
                let columns = arrays
                    .iter()
                    .map(|a| filter.filter(a))
                    .collect::<Result<_, _>>()
                    .map_err(arrow)?;
                let rows = keep
                    .values()
                    .set_indices()
                    .map(|i| base + i as i64)
                    .collect();
                (columns, rows)
            }
        };
        columns.extend(self.lineage_columns(rows.len()).map_err(arrow)?);
        columns.push(Arc::new(rows));
        RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(arrow)
    }

    /// `_titan_task_id` and `_titan_execution_id` for `n` rows: zero-copy slices of a cached
    /// pair, rebuilt only when a batch is larger than any before (saves a copy and a UTF-8
    /// validation of `n × id length` bytes per column and batch).
    fn lineage_columns(&self, n: usize) -> Result<[ArrayRef; 2], ArrowError> {
        // A poisoned lock only means another thread panicked mid-rebuild; the slot is
        // replaced whole, so its content is still either None or a complete pair.
        let mut cache = self
            .lineage_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let cached = match cache.take() {
            Some(pair) if pair[0].len() >= n => pair,
            _ => [
                repeated(&self.lineage.task_id, n)?,
                repeated(&self.lineage.execution_id, n)?,
            ],
        };
        let out = [cached[0].slice(0, n), cached[1].slice(0, n)];
        *cache = Some(cached);
        Ok(out)
    }
}

/// `first_row` as i64, checked so that `first_row + rows - 1` fits.
fn row_base(first_row: u64, rows: usize) -> Result<i64, MapError> {
    i64::try_from(first_row)
        .ok()
        .filter(|b| i64::try_from(rows).is_ok_and(|r| b.checked_add(r).is_some()))
        .ok_or(MapError::RowOverflow { first_row, rows })
}

/// The raw column as Utf8: itself when it already is, else an Arrow cast (LargeUtf8,
/// Utf8View, Null, or typed columns from a decoder that typed them early).
fn as_utf8(column: &ArrayRef, source: &str) -> Result<StringArray, MapError> {
    if let Some(s) = column.as_any().downcast_ref::<StringArray>() {
        return Ok(s.clone());
    }
    let raw_type = || MapError::RawType {
        source_field: source.to_owned(),
        data_type: column.data_type().clone(),
    };
    let text = cast(column, &DataType::Utf8).map_err(|_| raw_type())?;
    text.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(raw_type)
}

/// A non-null Utf8 array holding `value` `n` times, built with two bulk allocations.
fn repeated(value: &str, n: usize) -> Result<ArrayRef, ArrowError> {
    let offsets = OffsetBuffer::<i32>::try_from_repeated_length(value.len(), n)
        .map_err(|_| ArrowError::OffsetOverflowError(value.len().saturating_mul(n)))?;
    let values = Buffer::from(value.repeat(n).into_bytes());
    Ok(Arc::new(StringArray::try_new(offsets, values, None)?))
}

/// The first `MAX_VALUE_CHARS - 1` chars plus `…` when longer than `MAX_VALUE_CHARS`.
fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_VALUE_CHARS) {
        None => s.to_owned(),
        Some(_) => {
            let cut = s
                .char_indices()
                .nth(MAX_VALUE_CHARS - 1)
                .map_or(s.len(), |(i, _)| i);
            format!("{}…", &s[..cut])
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{
        BooleanArray, Float64Array, Int32Array, LargeStringArray, StructArray,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::schema::{ColumnType, LINEAGE_ROW};

    fn spec(name: &str, source: &str, ty: ColumnType, nullable: bool) -> ColumnSpec {
        let mut c = ColumnSpec::new(name, ty, nullable);
        c.source = source.into();
        c
    }

    fn schema() -> TargetSchema {
        TargetSchema {
            name: Some("products".into()),
            version: 1,
            columns: vec![
                spec("name", "product_name", ColumnType::String, false),
                spec("price", "price", ColumnType::Float64, false),
                spec("in_stock", "in_stock", ColumnType::Boolean, true),
                spec("scraped_at", "scraped_at", ColumnType::Timestamp, true),
            ],
        }
    }

    fn lineage() -> Lineage {
        Lineage {
            task_id: "task-7".into(),
            execution_id: "exec-42".into(),
        }
    }

    /// A raw batch the way the decoder produces it: nullable Utf8 columns by source name.
    fn raw(columns: &[(&str, Vec<Option<&str>>)]) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(n, _)| Field::new(*n, DataType::Utf8, true))
            .collect();
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|(_, v)| Arc::new(StringArray::from(v.clone())) as ArrayRef)
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
    }

    fn strs(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
        let col = batch.column_by_name(name).unwrap();
        let col = col.as_any().downcast_ref::<StringArray>().unwrap();
        col.iter().map(|v| v.map(str::to_owned)).collect()
    }

    fn rows(batch: &RecordBatch) -> Vec<i64> {
        let col = batch.column_by_name(LINEAGE_ROW).unwrap();
        col.as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec()
    }

    #[test]
    fn maps_a_clean_batch_with_renames_lineage_and_row_numbers() {
        let mapper = Mapper::new(&schema(), lineage());
        let batch = raw(&[
            ("extra", vec![Some("ignored"), None]),
            ("scraped_at", vec![Some("2024-03-10T12:00:00+05:30"), None]),
            ("price", vec![Some("19.99"), Some(" 5 ")]),
            ("product_name", vec![Some("Lamp"), Some("")]),
            ("in_stock", vec![Some("yes"), Some("FALSE")]),
        ]);
        let out = mapper.map(&batch, 101).unwrap();
        assert_eq!(out.schema(), mapper.arrow_schema());
        let schema = out.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "name",
                "price",
                "in_stock",
                "scraped_at",
                "_titan_task_id",
                "_titan_execution_id",
                "_titan_row"
            ]
        );
        assert_eq!(
            strs(&out, "name"),
            [Some("Lamp".into()), Some(String::new())]
        );
        let price = out
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(price.iter().collect::<Vec<_>>(), [Some(19.99), Some(5.0)]);
        let stock = out
            .column(2)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap();
        assert_eq!(stock.iter().collect::<Vec<_>>(), [Some(true), Some(false)]);
        let at = out.column(3);
        let at = at
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(
            at.iter().collect::<Vec<_>>(),
            [Some(1_710_052_200_000_000), None]
        );
        assert_eq!(
            strs(&out, "_titan_task_id"),
            [Some("task-7".into()), Some("task-7".into())]
        );
        assert_eq!(
            strs(&out, "_titan_execution_id"),
            [Some("exec-42".into()), Some("exec-42".into())]
        );
        assert_eq!(rows(&out), [101, 102]);
    }

    fn bad_batch() -> RecordBatch {
        raw(&[
            (
                "product_name",
                vec![Some("A"), Some("B"), Some("C"), None, Some("E")],
            ),
            (
                "price",
                vec![Some("1"), Some("12,99"), Some("nan"), Some("4"), Some("5")],
            ),
            (
                "in_stock",
                vec![Some("1"), Some("0"), Some("maybe"), Some("1"), None],
            ),
        ])
    }

    #[test]
    fn rejects_leave_the_batch_and_keep_their_row_numbers() {
        let mapper = Mapper::new(&schema(), lineage());
        let (out, rejects) = mapper.map_with_rejects(&bad_batch(), 11).unwrap();
        assert_eq!(out.num_rows(), 2);
        assert_eq!(strs(&out, "name"), [Some("A".into()), Some("E".into())]);
        assert_eq!(rows(&out), [11, 15]);
        assert_eq!(
            strs(&out, "_titan_task_id"),
            [Some("task-7".into()), Some("task-7".into())]
        );
        let reject = |row, column: &str, value: Option<&str>, reason| Reject {
            row,
            column: column.into(),
            value: value.map(str::to_owned),
            reason,
            expected: match column {
                "price" => "number (finite float64)",
                "in_stock" => "boolean (true: true/yes/y/on/1; false: false/no/n/off/0)",
                _ => "string",
            }
            .into(),
        };
        assert_eq!(
            rejects,
            [
                reject(12, "price", Some("12,99"), RejectReason::Syntax),
                reject(13, "price", Some("nan"), RejectReason::NotFinite),
                reject(13, "in_stock", Some("maybe"), RejectReason::Syntax),
                reject(14, "name", None, RejectReason::Null),
            ]
        );
    }

    #[test]
    fn map_fails_on_the_first_reject() {
        let mapper = Mapper::new(&schema(), lineage());
        let err = mapper.map(&bad_batch(), 11).unwrap_err();
        match &err {
            MapError::BadValue {
                row,
                column,
                value,
                expected,
                reason,
            } => {
                assert_eq!(*row, 12);
                assert_eq!(column, "price");
                assert_eq!(value, "12,99");
                assert_eq!(expected, "number (finite float64)");
                assert_eq!(*reason, RejectReason::Syntax);
            }
            other => panic!("expected BadValue, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "row 12, column `price`: malformed value: cannot convert \"12,99\" to number (finite float64)"
        );

        // A blank string column is a value; a blank number column is a null.
        let blank = raw(&[
            ("product_name", vec![Some(" ")]),
            ("price", vec![Some(" ")]),
        ]);
        let err = mapper.map(&blank, 1).unwrap_err();
        assert!(
            matches!(&err, MapError::NullValue { row: 1, column } if column == "price"),
            "{err:?}"
        );
        let (_, rejects) = mapper.map_with_rejects(&blank, 1).unwrap();
        assert_eq!(rejects[0].value.as_deref(), Some(" "));
        assert_eq!(rejects[0].reason, RejectReason::Null);
        assert_eq!(rejects.len(), 1);

        let nulls = raw(&[
            ("product_name", vec![Some("A"), None]),
            ("price", vec![Some("1"), Some("2")]),
        ]);
        let err = mapper.map(&nulls, 1).unwrap_err();
        assert!(
            matches!(&err, MapError::NullValue { row: 2, column } if column == "name"),
            "{err:?}"
        );
    }

    #[test]
    fn absent_source_columns_are_null_or_an_error() {
        let mapper = Mapper::new(&schema(), lineage());
        let batch = raw(&[
            ("product_name", vec![Some("A")]),
            ("price", vec![Some("1")]),
        ]);
        let out = mapper.map(&batch, 1).unwrap();
        assert_eq!(out.column(2).null_count(), 1);
        assert_eq!(out.column(3).null_count(), 1);
        assert_eq!(
            out.column(3).data_type(),
            &ColumnType::Timestamp.arrow_type()
        );

        let batch = raw(&[("product_name", vec![Some("A")])]);
        let err = mapper.map(&batch, 1).unwrap_err();
        assert!(
            matches!(&err, MapError::MissingColumn { column, source_field }
                if column == "price" && source_field == "price"),
            "{err:?}"
        );
        assert!(mapper.map_with_rejects(&batch, 1).is_err());
    }

    #[test]
    fn long_values_are_cut_to_200_chars() {
        let mapper = Mapper::new(&schema(), lineage());
        let long = "é".repeat(500);
        let batch = raw(&[
            ("product_name", vec![Some("A")]),
            ("price", vec![Some(&long)]),
        ]);
        let (_, rejects) = mapper.map_with_rejects(&batch, 1).unwrap();
        let value = rejects[0].value.as_deref().unwrap();
        assert_eq!(value.chars().count(), 200);
        assert_eq!(value, format!("{}…", "é".repeat(199)));
        let exact = "x".repeat(200);
        assert_eq!(truncate(&exact), exact);
    }

    #[test]
    fn empty_and_sliced_batches() {
        let mapper = Mapper::new(&schema(), lineage());
        let empty = raw(&[("product_name", vec![]), ("price", vec![])]);
        let out = mapper.map(&empty, 1).unwrap();
        assert_eq!(out.num_rows(), 0);
        assert_eq!(out.schema(), mapper.arrow_schema());

        let sliced = bad_batch().slice(3, 2);
        let (out, rejects) = mapper.map_with_rejects(&sliced, 14).unwrap();
        assert_eq!(strs(&out, "name"), [Some("E".into())]);
        assert_eq!(rows(&out), [15]);
        assert_eq!(rejects.len(), 1);
        assert_eq!((rejects[0].row, rejects[0].column.as_str()), (14, "name"));
    }

    #[test]
    fn non_utf8_raw_columns_are_cast_or_refused() {
        let mapper = Mapper::new(&schema(), lineage());
        let fields = vec![
            Field::new("product_name", DataType::LargeUtf8, true),
            Field::new("price", DataType::Int32, true),
        ];
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            vec![
                Arc::new(LargeStringArray::from(vec!["A"])),
                Arc::new(Int32Array::from(vec![7])),
            ],
        )
        .unwrap();
        let out = mapper.map(&batch, 1).unwrap();
        let price = out
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(price.value(0), 7.0);

        let inner = Arc::new(Field::new("x", DataType::Int32, true));
        let strukt = StructArray::from(vec![(
            inner,
            Arc::new(Int32Array::from(vec![1])) as ArrayRef,
        )]);
        let fields = vec![
            Field::new("product_name", strukt.data_type().clone(), true),
            Field::new("price", DataType::Utf8, true),
        ];
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            vec![Arc::new(strukt), Arc::new(StringArray::from(vec!["1"]))],
        )
        .unwrap();
        let err = mapper.map(&batch, 1).unwrap_err();
        assert!(
            matches!(&err, MapError::RawType { source_field, .. } if source_field == "product_name"),
            "{err:?}"
        );
    }

    #[test]
    fn lineage_columns_fit_every_batch_size_in_any_order() {
        let mapper = Mapper::new(&schema(), lineage());
        let batch = |n: usize| {
            let names: Vec<Option<&str>> = vec![Some("A"); n];
            let prices: Vec<Option<&str>> = vec![Some("1"); n];
            raw(&[("product_name", names), ("price", prices)])
        };
        let clone = mapper.clone();
        for (n, first) in [(1usize, 1i64), (3, 2), (2, 5), (0, 7), (4, 7)] {
            for m in [&mapper, &clone] {
                let out = m.map(&batch(n), first as u64).unwrap();
                assert_eq!(
                    strs(&out, "_titan_task_id"),
                    vec![Some("task-7".to_owned()); n]
                );
                assert_eq!(
                    strs(&out, "_titan_execution_id"),
                    vec![Some("exec-42".to_owned()); n]
                );
                assert_eq!(rows(&out), (first..first + n as i64).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn row_numbers_must_fit_int64() {
        let mapper = Mapper::new(&schema(), lineage());
        let batch = raw(&[
            ("product_name", vec![Some("A")]),
            ("price", vec![Some("1")]),
        ]);
        let err = mapper.map(&batch, u64::MAX).unwrap_err();
        assert!(
            matches!(
                err,
                MapError::RowOverflow {
                    first_row: u64::MAX,
                    rows: 1
                }
            ),
            "{err:?}"
        );
        let out = mapper.map(&batch, i64::MAX as u64 - 1).unwrap();
        assert_eq!(rows(&out), [i64::MAX - 1]);
    }
}
