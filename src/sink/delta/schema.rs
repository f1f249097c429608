//! The Delta table schema of a dataset: the execution's Arrow schema (data and lineage
//! columns) plus the partition columns `task_id` (STRING) and `date` (DATE), and how a
//! later execution's schema is reconciled with the table's.
//!
//! Every column is nullable in the table schema, nested fields included, and field
//! metadata is dropped: a non-null column would make the kernel require the `invariants`
//! writer feature (fewer writers could append), and a schema that only grows by nullable
//! columns is what `extra_fields = add` needs. The files themselves keep their exact
//! Arrow schema, which a nullable table column reads without loss.

use std::sync::Arc;

use arrow::datatypes::{DataType as ArrowType, Field, Schema};
use delta_kernel::engine::arrow_conversion::TryFromArrow;
use delta_kernel::schema::{DataType, StructField, StructType};

/// The table's partition columns, in order.
pub const PARTITION_COLUMNS: [&str; 2] = ["task_id", "date"];

/// The Arrow field, nullable all the way down and without metadata.
fn relax(field: &Field) -> Field {
    let data_type = match field.data_type() {
        ArrowType::List(elem) => ArrowType::List(Arc::new(relax(elem))),
        ArrowType::LargeList(elem) => ArrowType::LargeList(Arc::new(relax(elem))),
        ArrowType::Struct(fields) => ArrowType::Struct(fields.iter().map(|f| relax(f)).collect()),
        other => other.clone(),
    };
    Field::new(field.name(), data_type, true)
}

/// The table schema for files of `file_schema`: its columns (relaxed, see the module
/// doc) followed by the partition columns. Fails if the data has a column named like a
/// partition column, or a type Delta cannot hold.
pub fn table_schema(file_schema: &Schema) -> Result<StructType, String> {
    let mut fields = Vec::with_capacity(file_schema.fields().len() + PARTITION_COLUMNS.len());
    for field in file_schema.fields() {
        if PARTITION_COLUMNS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(field.name()))
        {
            return Err(format!(
                "column `{}` collides with the table's partition column of that name; \
                 rename it in the schema (`rename`) to write this dataset as Delta",
                field.name()
            ));
        }
        let relaxed = relax(field);
        fields.push(
            StructField::try_from_arrow(&relaxed)
                .map_err(|e| format!("column `{}`: {e}", field.name()))?,
        );
    }
    fields.push(StructField::nullable("task_id", DataType::STRING));
    fields.push(StructField::nullable("date", DataType::DATE));
    StructType::try_new(fields).map_err(|e| e.to_string())
}

/// The columns `ours` adds to `table` (to be added as nullable columns in the commit), or
/// why the two cannot be reconciled: a column of both with different types. Columns of
/// the table that `ours` lacks are fine: they read as null in our files.
pub fn added_columns(table: &StructType, ours: &StructType) -> Result<Vec<StructField>, String> {
    let mut added = Vec::new();
    for field in ours.fields() {
        match table.field(field.name()) {
            Some(existing) if existing.data_type() == field.data_type() => {}
            Some(existing) => {
                return Err(format!(
                    "column `{}` is {} in the table but {} in this execution",
                    field.name(),
                    existing.data_type(),
                    field.data_type()
                ));
            }
            None => {
                // Delta column names are case-insensitive.
                if let Some(existing) = table
                    .fields()
                    .find(|f| f.name().eq_ignore_ascii_case(field.name()))
                {
                    return Err(format!(
                        "column `{}` differs only in case from the table's `{}`",
                        field.name(),
                        existing.name()
                    ));
                }
                added.push(field.clone());
            }
        }
    }
    Ok(added)
}
