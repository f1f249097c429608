//! The Parquet shape of a resolved media column: a struct per row saying where the file
//! went or why it did not. Invariant: a null (or blank) media value gives a null struct;
//! a non-null struct always has `url`, and either `path`+`sha256`+`bytes` or `error`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{Array, ArrayRef, Int64Builder, StringArray, StringBuilder, StructArray};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::error::ArrowError;

use super::MediaRecord;
use crate::schema::TYPE_METADATA_KEY;

/// Struct field: the media value as the row had it.
pub const FIELD_URL: &str = "url";
/// Struct field: object key of the stored file, relative to the media store root.
pub const FIELD_PATH: &str = "path";
/// Struct field: lowercase hex sha256 of the stored bytes.
pub const FIELD_SHA256: &str = "sha256";
/// Struct field: `Content-Type` the file was served with.
pub const FIELD_CONTENT_TYPE: &str = "content_type";
/// Struct field: size of the stored file in bytes.
pub const FIELD_BYTES: &str = "bytes";
/// Struct field: why the file could not be stored (then `path`/`sha256`/`bytes` are null).
pub const FIELD_ERROR: &str = "error";

/// What became of one distinct media value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Stored(MediaRecord),
    Failed(String),
}

/// The six struct children, all nullable.
pub fn media_struct_fields() -> Fields {
    Fields::from(vec![
        Field::new(FIELD_URL, DataType::Utf8, true),
        Field::new(FIELD_PATH, DataType::Utf8, true),
        Field::new(FIELD_SHA256, DataType::Utf8, true),
        Field::new(FIELD_CONTENT_TYPE, DataType::Utf8, true),
        Field::new(FIELD_BYTES, DataType::Int64, true),
        Field::new(FIELD_ERROR, DataType::Utf8, true),
    ])
}

/// Whether a field is marked `titan.type = media` by the schema mapper.
pub(crate) fn is_media(field: &Field) -> bool {
    field
        .metadata()
        .get(TYPE_METADATA_KEY)
        .is_some_and(|t| t == "media")
}

/// Media fields that still hold URL text (already-resolved struct columns are skipped).
pub(crate) fn unresolved(field: &Field) -> bool {
    is_media(field) && field.data_type() != &DataType::Struct(media_struct_fields())
}

/// `mapped` with every Utf8 media field turned into the media struct (same name,
/// nullability and metadata). Other fields are untouched.
pub fn resolved_schema(mapped: &SchemaRef) -> SchemaRef {
    if !mapped.fields().iter().any(|f| unresolved(f)) {
        return Arc::clone(mapped);
    }
    let fields: Vec<Field> = mapped
        .fields()
        .iter()
        .map(|f| {
            if unresolved(f) {
                f.as_ref()
                    .clone()
                    .with_data_type(DataType::Struct(media_struct_fields()))
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, mapped.metadata().clone()))
}

/// The struct column for one media column. Null or blank values give a null struct;
/// every other value must have an outcome in `outcomes`.
pub(crate) fn build(
    values: &StringArray,
    outcomes: &HashMap<&str, &Outcome>,
) -> Result<ArrayRef, ArrowError> {
    let n = values.len();
    let mut url = StringBuilder::with_capacity(n, n * 64);
    let mut path = StringBuilder::with_capacity(n, n * 48);
    let mut sha = StringBuilder::with_capacity(n, n * 64);
    let mut ct = StringBuilder::with_capacity(n, n * 12);
    let mut bytes = Int64Builder::with_capacity(n);
    let mut error = StringBuilder::new();
    let mut valid = NullBufferBuilder::new(n);
    for v in values {
        let outcome = v
            .filter(|v| !v.trim().is_empty())
            .map(|v| (v, outcomes.get(v)));
        match outcome {
            None => {
                valid.append_null();
                url.append_null();
                path.append_null();
                sha.append_null();
                ct.append_null();
                bytes.append_null();
                error.append_null();
            }
            Some((v, Some(Outcome::Stored(r)))) => {
                valid.append_non_null();
                url.append_value(v);
                path.append_value(&r.path);
                sha.append_value(&r.sha256);
                ct.append_option(r.content_type.as_deref());
                bytes.append_value(i64::try_from(r.bytes).unwrap_or(i64::MAX));
                error.append_null();
            }
            Some((v, Some(Outcome::Failed(msg)))) => {
                valid.append_non_null();
                url.append_value(v);
                path.append_null();
                sha.append_null();
                ct.append_null();
                bytes.append_null();
                error.append_value(msg);
            }
            Some((v, None)) => {
                return Err(ArrowError::InvalidArgumentError(format!(
                    "internal: no media outcome for `{}`",
                    super::layout::display_value(v)
                )));
            }
        }
    }
    let children: Vec<ArrayRef> = vec![
        Arc::new(url.finish()),
        Arc::new(path.finish()),
        Arc::new(sha.finish()),
        Arc::new(ct.finish()),
        Arc::new(bytes.finish()),
        Arc::new(error.finish()),
    ];
    Ok(Arc::new(StructArray::try_new(
        media_struct_fields(),
        children,
        valid.finish(),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;

    fn media_field(name: &str, nullable: bool) -> Field {
        Field::new(name, DataType::Utf8, nullable).with_metadata([(TYPE_METADATA_KEY, "media")])
    }

    #[test]
    fn only_media_fields_become_structs_keeping_name_nullability_and_metadata() {
        let mapped: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("title", DataType::Utf8, false),
            media_field("image", true),
            media_field("thumb", false),
            Field::new("n", DataType::Int64, true),
        ]));
        let out = resolved_schema(&mapped);
        assert_eq!(out.field(0), mapped.field(0));
        assert_eq!(out.field(3), mapped.field(3));
        for (i, nullable) in [(1, true), (2, false)] {
            let f = out.field(i);
            assert_eq!(f.name(), mapped.field(i).name());
            assert_eq!(f.is_nullable(), nullable);
            assert_eq!(f.data_type(), &DataType::Struct(media_struct_fields()));
            assert!(is_media(f), "metadata kept");
        }
        let names: Vec<_> = media_struct_fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            ["url", "path", "sha256", "content_type", "bytes", "error"]
        );
        // Resolving twice changes nothing; a schema without media is returned as is.
        assert_eq!(resolved_schema(&out), out);
        let plain: SchemaRef = Arc::new(Schema::new(vec![mapped.field(0).clone()]));
        assert!(Arc::ptr_eq(&resolved_schema(&plain), &plain));
    }

    #[test]
    fn structs_carry_the_record_the_error_or_null() {
        let rec = MediaRecord {
            url: "u1".into(),
            path: "media/t/e/u1.png".into(),
            sha256: "ab".repeat(32),
            content_type: Some("image/png".into()),
            bytes: 42,
        };
        let ok = Outcome::Stored(rec.clone());
        let bad = Outcome::Failed("GET /x: not found (HTTP 404)".into());
        let outcomes: HashMap<&str, &Outcome> = [("u1", &ok), ("u2", &bad)].into();
        let values = StringArray::from(vec![Some("u1"), None, Some("u2"), Some("  "), Some("u1")]);
        let col = build(&values, &outcomes).expect("builds");
        let s = col.as_struct();
        let nulls: Vec<bool> = (0..5).map(|i| s.is_null(i)).collect();
        assert_eq!(nulls, [false, true, false, true, false]);
        let text = |name: &str, i: usize| {
            let c = s.column_by_name(name).expect("child").as_string::<i32>();
            c.is_valid(i).then(|| c.value(i).to_string())
        };
        let bytes = s
            .column_by_name("bytes")
            .expect("child")
            .as_primitive::<Int64Type>();
        for i in [0, 4] {
            assert_eq!(text("url", i).as_deref(), Some("u1"));
            assert_eq!(text("path", i), Some(rec.path.clone()));
            assert_eq!(text("sha256", i), Some(rec.sha256.clone()));
            assert_eq!(text("content_type", i).as_deref(), Some("image/png"));
            assert_eq!(bytes.value(i), 42);
            assert_eq!(text("error", i), None);
        }
        assert_eq!(text("url", 2).as_deref(), Some("u2"));
        assert_eq!(text("path", 2), None);
        assert_eq!(text("sha256", 2), None);
        assert!(bytes.is_null(2));
        assert_eq!(
            text("error", 2).as_deref(),
            Some("GET /x: not found (HTTP 404)")
        );
        let missing = StringArray::from(vec![Some("u3")]);
        assert!(build(&missing, &outcomes).is_err());
    }

    #[test]
    fn resolved_batches_round_trip_through_parquet() {
        use arrow::record_batch::RecordBatch;
        use parquet::arrow::ArrowWriter;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

        let ok = Outcome::Stored(MediaRecord {
            url: "u1".into(),
            path: "media/t/e/u1.png".into(),
            sha256: "cd".repeat(32),
            content_type: None,
            bytes: 7,
        });
        let bad = Outcome::Failed("refused".into());
        let outcomes: HashMap<&str, &Outcome> = [("u1", &ok), ("u2", &bad)].into();
        let values = StringArray::from(vec![Some("u1"), None, Some("u2")]);
        let mapped: SchemaRef = Arc::new(Schema::new(vec![media_field("image", true)]));
        let schema = resolved_schema(&mapped);
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![build(&values, &outcomes).expect("builds")],
        )
        .expect("batch");
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, Arc::clone(&schema), None).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
        let back: Vec<RecordBatch> =
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(buf))
                .expect("reader")
                .build()
                .expect("build")
                .collect::<Result<_, _>>()
                .expect("read");
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].column(0).as_ref(), batch.column(0).as_ref());
        assert_eq!(
            back[0].schema().field(0).data_type(),
            schema.field(0).data_type()
        );
    }
}
