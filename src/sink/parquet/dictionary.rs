//! Which columns get Parquet dictionary encoding, decided from a sample batch.
//!
//! Dictionary encoding pays for repeated values (constant lineage ids, categories,
//! flags) and costs for mostly distinct ones (names, URLs, descriptions, row numbers):
//! every value is hashed and interned, and the dictionary is then thrown away once it
//! passes its page limit and the writer falls back to plain encoding. Profiling the
//! products export showed ~15% of the writer's time in that interning, spent almost all
//! on such columns. So each column keeps the dictionary only when its values repeat in
//! the first batch (at most half of them distinct).

use std::collections::HashSet;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

/// Rows of the first batch looked at; enough to tell repeated from distinct values.
const SAMPLE_ROWS: usize = 8192;

/// `(column name, dictionary on)` for every top-level column whose values can be
/// sampled (strings, binaries, fixed-width numbers and times). Others (booleans, nested
/// types) keep the writer's default.
pub fn choose(batch: &RecordBatch) -> Vec<(String, bool)> {
    let rows = batch.num_rows().min(SAMPLE_ROWS);
    let schema = batch.schema();
    schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter_map(|(field, column)| {
            let sample = column.slice(0, rows);
            repeats(sample.as_ref()).map(|on| (field.name().clone(), on))
        })
        .collect()
}

/// Whether at most half of the non-null values are distinct; `None` for types not sampled.
fn repeats(array: &dyn Array) -> Option<bool> {
    let non_null = array.len() - array.null_count();
    if non_null == 0 {
        return match sampled(array.data_type()) {
            true => Some(true),
            false => None,
        };
    }
    // More than this many distinct values and the answer is "no".
    let limit = non_null / 2;
    let within = match array.data_type() {
        DataType::Utf8 => at_most(
            array.as_string::<i32>().iter().flatten().map(str::as_bytes),
            limit,
        ),
        DataType::LargeUtf8 => at_most(
            array.as_string::<i64>().iter().flatten().map(str::as_bytes),
            limit,
        ),
        DataType::Utf8View => at_most(
            array.as_string_view().iter().flatten().map(str::as_bytes),
            limit,
        ),
        DataType::Binary => at_most(array.as_binary::<i32>().iter().flatten(), limit),
        DataType::LargeBinary => at_most(array.as_binary::<i64>().iter().flatten(), limit),
        t if sampled(t) => {
            let width = t.primitive_width()?;
            let data = array.to_data();
            let values = data.buffers().first()?.as_slice();
            let start = data.offset() * width;
            let values = values.get(start..start + data.len() * width)?;
            let valid = values
                .chunks_exact(width)
                .enumerate()
                .filter(|(i, _)| array.is_valid(*i))
                .map(|(_, v)| v);
            at_most(valid, limit)
        }
        _ => return None,
    };
    Some(within)
}

/// Whether `values` hold at most `limit` distinct ones; stops counting past the limit.
fn at_most<'a>(values: impl Iterator<Item = &'a [u8]>, limit: usize) -> bool {
    let mut seen: HashSet<&'a [u8]> = HashSet::with_capacity(limit.min(1024) + 1);
    for v in values {
        seen.insert(v);
        if seen.len() > limit {
            return false;
        }
    }
    true
}

/// Types whose values are compared: byte strings and fixed-width values (not booleans,
/// which Parquet never dictionary-encodes, nor nested types).
fn sampled(t: &DataType) -> bool {
    match t {
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary => true,
        DataType::Boolean => false,
        t => t.is_primitive() && t.primitive_width().is_some(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BooleanArray, Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };

    use super::*;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).expect("valid batch")
    }

    #[test]
    fn repeated_values_keep_the_dictionary_and_distinct_ones_drop_it() {
        let n = 1000;
        let categories: StringArray = (0..n).map(|i| Some(["a", "b", "c"][i % 3])).collect();
        let names: StringArray = (0..n).map(|i| Some(format!("name {i}"))).collect();
        let rows = Int64Array::from_iter_values(0..n as i64);
        let counts = Int64Array::from_iter_values((0..n as i64).map(|i| i % 10));
        let prices = Decimal128Array::from_iter_values((0..n as i128).map(|i| i * 7))
            .with_precision_and_scale(12, 2)
            .expect("valid decimal");
        let at = TimestampMicrosecondArray::from_iter_values((0..n as i64).map(|i| i * 1000))
            .with_timezone("UTC");
        let flags = BooleanArray::from_iter((0..n).map(|i| Some(i % 2 == 0)));
        let b = batch(vec![
            ("category", Arc::new(categories)),
            ("name", Arc::new(names)),
            ("row", Arc::new(rows)),
            ("count", Arc::new(counts)),
            ("price", Arc::new(prices)),
            ("at", Arc::new(at)),
            ("flag", Arc::new(flags)),
        ]);
        assert_eq!(
            choose(&b),
            vec![
                ("category".to_string(), true),
                ("name".to_string(), false),
                ("row".to_string(), false),
                ("count".to_string(), true),
                ("price".to_string(), false),
                ("at".to_string(), false),
            ]
        );
    }

    #[test]
    fn nulls_are_not_values_and_an_all_null_column_keeps_the_default() {
        // Two distinct values among four non-null ones: half distinct, so it repeats.
        let mostly_null = StringArray::from(vec![
            Some("x"),
            None,
            Some("y"),
            None,
            Some("x"),
            None,
            Some("y"),
            None,
        ]);
        let all_null = StringArray::from(vec![None::<&str>; 8]);
        let sliced: ArrayRef = Arc::new(Int64Array::from_iter_values([
            1, 2, 3, 4, 5, 5, 5, 5, 6, 6, 6, 6,
        ]));
        let b = batch(vec![
            ("mostly_null", Arc::new(mostly_null)),
            ("all_null", Arc::new(all_null)),
            // A slice: only its own 8 values count (2 distinct), not the 4 before it.
            ("tail", sliced.slice(4, 8)),
        ]);
        assert_eq!(
            choose(&b),
            vec![
                ("mostly_null".to_string(), true),
                ("all_null".to_string(), true),
                ("tail".to_string(), true),
            ]
        );
    }
}
