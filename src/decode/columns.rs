//! Column buffers of the raw batches (every column nullable Utf8) and the batch queue.
//!
//! Rows are built one at a time straight into per-column byte buffers and are either committed
//! or rolled back, so a record cut by a chunk boundary never leaves a partial value behind.
//! UTF-8 is checked once per column per batch, not per value.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, StringArray};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::DecodeError;

/// Upper bound of `batch_bytes`: keeps every column's i32 offsets far from overflow (a
/// record adds at most `MAX_RECORD_BYTES_CAP` on top).
pub(crate) const MAX_BATCH_BYTES: usize = 64 << 20;

/// Upper bound for `max_record_bytes`: with `MAX_BATCH_BYTES` it keeps offsets below 2 GiB.
pub(crate) const MAX_RECORD_BYTES_CAP: usize = 1 << 30;

struct Column {
    values: Vec<u8>,
    /// Always holds `rows + 1` entries; the last one is where the open row's value starts.
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
    /// The open row has a non-null value in this column.
    valid: bool,
}

impl Column {
    fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Column {
            values: Vec::with_capacity(bytes),
            offsets,
            nulls: NullBufferBuilder::new(rows),
            valid: false,
        }
    }

    #[inline]
    fn row_start(&self) -> usize {
        // Offsets are non-negative by construction (pushed from a checked usize).
        self.offsets.last().map_or(0, |&o| o as usize)
    }
}

/// Builder of raw batches: `names` fixes the columns, `batch_rows` bounds each batch.
pub(crate) struct Columns {
    schema: SchemaRef,
    cols: Vec<Column>,
    batch_rows: usize,
    /// Close the batch once its values hold this many bytes (≤ `MAX_BATCH_BYTES`).
    batch_bytes: usize,
    rows: usize,
    /// Data records committed before the open batch (so row `r` is record `flushed + r + 1`).
    flushed: u64,
    ready: VecDeque<RecordBatch>,
}

/// Bytes a row costs each column beyond its value: an i32 offset (the null bit is noise).
const OFFSET_BYTES: usize = 4;

impl Columns {
    /// A batch closes at `batch_rows` rows, or once its values reach `batch_bytes`; and it
    /// never holds more rows than `batch_bytes` of offsets (4 bytes per row and column), so
    /// a very wide export of empty cells — offsets but no values — stays within the same
    /// budget as a narrow one (100k columns × 8192 rows would be 3 GiB of offsets).
    pub(crate) fn new(names: &[String], batch_rows: usize, batch_bytes: usize) -> Self {
        let batch_bytes = batch_bytes.min(MAX_BATCH_BYTES);
        let by_offsets = batch_bytes / (OFFSET_BYTES * names.len().max(1));
        let batch_rows = batch_rows.min(by_offsets).max(1);
        let fields: Vec<Field> = names
            .iter()
            .map(|n| Field::new(n.as_str(), DataType::Utf8, true))
            .collect();
        Columns {
            schema: Arc::new(Schema::new(fields)),
            cols: (0..names.len())
                .map(|_| Column::with_capacity(batch_rows, 0))
                .collect(),
            batch_rows,
            batch_bytes,
            rows: 0,
            flushed: 0,
            ready: VecDeque::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.cols.len()
    }

    /// Data records committed so far, in returned and pending batches.
    pub(crate) fn records(&self) -> u64 {
        self.flushed + self.rows as u64
    }

    /// Appends bytes to column `c`'s value in the open row; columns past the end are ignored
    /// (the caller reports the ragged record).
    #[inline]
    pub(crate) fn put(&mut self, c: usize, bytes: &[u8]) {
        if let Some(col) = self.cols.get_mut(c) {
            col.values.extend_from_slice(bytes);
        }
    }

    /// Marks whether column `c` of the open row is non-null.
    #[inline]
    pub(crate) fn set_valid(&mut self, c: usize, valid: bool) {
        if let Some(col) = self.cols.get_mut(c) {
            col.valid = valid;
        }
    }

    /// Forgets any value already written to column `c` in the open row (a repeated JSON key:
    /// the last occurrence wins) and hands out the buffer to write the new one into.
    #[inline]
    pub(crate) fn restart_value(&mut self, c: usize) -> &mut Vec<u8> {
        let col = &mut self.cols[c];
        let start = col.row_start();
        col.values.truncate(start);
        col.valid = false;
        &mut col.values
    }

    /// Drops everything written to the open row.
    pub(crate) fn rollback_row(&mut self) {
        for col in &mut self.cols {
            let start = col.row_start();
            col.values.truncate(start);
            col.valid = false;
        }
    }

    /// Closes the open row; columns never set are null. Flushes a batch when it is full.
    pub(crate) fn commit_row(&mut self) -> Result<(), DecodeError> {
        let mut bytes = 0;
        for col in &mut self.cols {
            let len = col.values.len();
            bytes += len;
            let end = i32::try_from(len).expect(
                "a column holds < MAX_BATCH_BYTES plus one record of <= MAX_RECORD_BYTES_CAP",
            );
            col.offsets.push(end);
            col.nulls.append(col.valid);
            col.valid = false;
        }
        self.rows += 1;
        if self.rows >= self.batch_rows || bytes >= self.batch_bytes {
            self.flush()?;
        }
        Ok(())
    }

    /// Moves the open batch (if it has rows) to the ready queue.
    pub(crate) fn flush(&mut self) -> Result<(), DecodeError> {
        if self.rows == 0 {
            return Ok(());
        }
        let rows = self.rows;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.cols.len());
        for (i, col) in self.cols.iter_mut().enumerate() {
            // The next batch is likely shaped like this one: start it at this one's size
            // and a quarter more, so a column a little longer next time is not copied to a
            // buffer twice as large on the way (regrowing was 1% of a CSV conversion).
            let len = col.values.len();
            let next = Column::with_capacity(self.batch_rows, len + len / 4);
            let Column {
                values,
                offsets,
                mut nulls,
                ..
            } = std::mem::replace(col, next);
            let values = Buffer::from_vec(values);
            let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
            let array = StringArray::try_new(offsets.clone(), values.clone(), nulls.finish())
                .map_err(|_| {
                    let row = bad_utf8_row(&values, &offsets);
                    DecodeError::InvalidUtf8 {
                        record: self.flushed + row as u64 + 1,
                        column: self.schema.field(i).name().clone(),
                    }
                })?;
            arrays.push(Arc::new(array));
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .expect("one Utf8 array of `rows` rows per field of the all-Utf8 schema");
        self.flushed += rows as u64;
        self.rows = 0;
        self.ready.push_back(batch);
        Ok(())
    }

    pub(crate) fn next_batch(&mut self) -> Option<RecordBatch> {
        self.ready.pop_front()
    }

    /// Flushes and returns everything not yet handed out, as one batch when it fits.
    pub(crate) fn finish(&mut self) -> Result<Option<RecordBatch>, DecodeError> {
        self.flush()?;
        Ok(self.ready.pop_front())
    }
}

/// Index of the row holding the first byte that makes `values` invalid UTF-8, or whose value
/// ends inside a multi-byte character.
fn bad_utf8_row(values: &[u8], offsets: &[i32]) -> usize {
    let pos = match std::str::from_utf8(values) {
        Err(e) => e.valid_up_to(),
        // Valid as a whole, so some offset splits a character: the row ending there is bad.
        Ok(s) => offsets
            .iter()
            .map(|&o| o as usize)
            .find(|&o| !s.is_char_boundary(o))
            .map_or(0, |o| o - 1),
    };
    offsets
        .partition_point(|&o| o as usize <= pos)
        .saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn strings(batch: &RecordBatch, c: usize) -> Vec<Option<String>> {
        let a = batch
            .column(c)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("all columns are Utf8");
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
            .collect()
    }

    #[test]
    fn rows_commit_and_roll_back_and_batches_are_bounded() {
        let mut c = Columns::new(&names(&["a", "b"]), 2, MAX_BATCH_BYTES);
        c.put(0, b"x");
        c.set_valid(0, true);
        c.commit_row().expect("valid row");
        // A partial row that is rolled back leaves no trace.
        c.put(0, b"partial");
        c.set_valid(0, true);
        c.put(1, b"p");
        c.rollback_row();
        c.put(1, b"");
        c.set_valid(1, true); // empty but non-null
        c.commit_row().expect("valid row");
        c.put(0, b"third");
        c.set_valid(0, true);
        c.commit_row().expect("valid row");
        let first = c.next_batch().expect("a full batch after 2 rows");
        assert_eq!(first.num_rows(), 2);
        assert_eq!(strings(&first, 0), vec![Some("x".into()), None]);
        assert_eq!(strings(&first, 1), vec![None, Some("".into())]);
        assert!(c.next_batch().is_none());
        let last = c.finish().expect("valid").expect("one pending row");
        assert_eq!(strings(&last, 0), vec![Some("third".into())]);
        assert_eq!(c.records(), 3);
    }

    #[test]
    fn a_batch_closes_at_batch_bytes_before_batch_rows() {
        // Two columns of 10 bytes a row: 20 bytes a row, so 50 bytes close after 3 rows.
        let mut c = Columns::new(&names(&["a", "b"]), 100, 50);
        for _ in 0..7 {
            for col in 0..2 {
                c.put(col, b"0123456789");
                c.set_valid(col, true);
            }
            c.commit_row().expect("valid row");
        }
        let sizes: Vec<usize> = std::iter::from_fn(|| c.next_batch())
            .map(|b| b.num_rows())
            .collect();
        assert_eq!(sizes, vec![3, 3]);
        assert_eq!(c.finish().expect("valid").map(|b| b.num_rows()), Some(1));
        assert_eq!(c.records(), 7);
    }

    #[test]
    fn restart_value_keeps_only_the_last_write() {
        let mut c = Columns::new(&names(&["a"]), 10, MAX_BATCH_BYTES);
        c.put(0, b"old");
        c.set_valid(0, true);
        c.restart_value(0).extend_from_slice(b"new");
        c.set_valid(0, true);
        c.commit_row().expect("valid row");
        let b = c.finish().expect("valid").expect("one row");
        assert_eq!(strings(&b, 0), vec![Some("new".into())]);
    }

    #[test]
    fn invalid_utf8_names_record_and_column() {
        let mut c = Columns::new(&names(&["a", "b"]), 3, MAX_BATCH_BYTES);
        for v in [&b"ok"[..], b"fine", b"bad \xff", b"ok"] {
            c.put(0, b"x");
            c.set_valid(0, true);
            c.put(1, v);
            c.set_valid(1, true);
            let r = c.commit_row();
            if v == b"bad \xff" {
                match r {
                    Err(DecodeError::InvalidUtf8 { record, column }) => {
                        assert_eq!((record, column.as_str()), (3, "b"));
                        return;
                    }
                    other => panic!("expected InvalidUtf8, got {other:?}"),
                }
            }
            r.expect("valid rows before the bad one");
        }
        panic!("the bad row was not reported");
    }

    #[test]
    fn a_character_split_between_two_values_is_invalid() {
        // "中" is e4 b8 ad: the first value ends inside it, the next holds the rest.
        assert_eq!(bad_utf8_row(b"a\xe4\xb8\xadb", &[0, 1, 3, 5]), 1);
        assert_eq!(bad_utf8_row(b"ok\xff", &[0, 1, 1, 3]), 2);
    }
}
