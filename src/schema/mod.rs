//! Target schemas: what typed columns an export becomes (types, schema files, derivation
//! from a task's `output_schema`, inference, evolution). Mapping rows through a schema is
//! [`crate::map`]'s job.
//!
//! A [`TargetSchema`] comes from a schema file (`schemas/README.md`), a task's `output_schema`,
//! inference or evolution. Invariant: constructors here return only schemas that passed
//! [`TargetSchema::validate`], so the mapper can trust them.
//!
//! One edge points back to the map layer: [`infer`](infer_from_batches) reads sample values
//! with the same parsers the mapper uses (`map::parse_num`, `map::parse_time`), so that what
//! inference proposes is exactly what the mapper will accept.

mod derive;
mod evolve;
mod infer;
pub(crate) mod jsontext;
mod source;
mod spec;
pub(crate) mod transform;
pub(crate) mod types;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sha2::{Digest, Sha256};

pub use evolve::{
    EvolutionError, EvolutionPolicy, Evolved, ExtraFieldPolicy, MissingFieldPolicy,
    json_record_keys,
};
pub use infer::infer_from_batches;
pub use source::SourcePath;
pub use transform::{Currency, FixedTz, RoundMode, Strftime, TimeFormat, Transform};
pub use types::{ColumnType, MAX_DECIMAL_PRECISION, StructField, TypeError, media_arrow_type};

/// Lineage column: the Titan task id of the row (Utf8, non-null).
pub const LINEAGE_TASK_ID: &str = "_titan_task_id";
/// Lineage column: the Titan execution id of the row (Utf8, non-null).
pub const LINEAGE_EXECUTION_ID: &str = "_titan_execution_id";
/// Lineage column: 1-based row number of the row in its export (Int64, non-null).
pub const LINEAGE_ROW: &str = "_titan_row";
/// Column names starting with this (ASCII case-insensitively) belong to lineage.
pub const RESERVED_PREFIX: &str = "_titan_";
/// Field metadata key carrying the column's schema type name (`media`, `json`, …), so
/// readers of a mapped batch (media fetcher, writers) need not consult the schema.
pub const TYPE_METADATA_KEY: &str = "titan.type";

/// Bumped when the canonical text behind [`TargetSchema::fingerprint`] or the meaning of a
/// mapped column changes (lineage columns, coercion rules), so old fingerprints stop matching.
/// 2: transforms, defaults and the nested/decimal types; Unicode trimming; more boolean words.
const FINGERPRINT_FORMAT: u32 = 2;

/// One target column and where its values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    /// Name of the output column.
    pub name: String,
    /// Source field in the export (CSV header / JSON key), or a path into a nested JSON
    /// field (`a.b.0`, JSON pointer `/a/b/0`; see [`SourcePath`]); defaults to `name`.
    pub source: String,
    /// Target type.
    pub ty: ColumnType,
    /// Whether nulls are allowed; a null (after the default) rejects the row otherwise.
    pub nullable: bool,
    /// Text used instead of a null value (missing field, null, blank, a `null_values` word);
    /// parsed like any value of the column.
    pub default: Option<String>,
    /// How the raw text is cleaned and read.
    pub transform: Transform,
}

impl ColumnSpec {
    /// A plain column: source = name, no default, default transforms.
    pub fn new(name: &str, ty: ColumnType, nullable: bool) -> Self {
        ColumnSpec {
            name: name.to_owned(),
            source: name.to_owned(),
            ty,
            nullable,
            default: None,
            transform: Transform::default(),
        }
    }

    /// Where the values come from: a top-level field, or a path inside one.
    pub fn source_path(&self) -> SourcePath {
        SourcePath::parse(&self.source)
    }
}

/// The typed shape one task's exports are mapped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSchema {
    /// Human name (informational; not part of the fingerprint).
    pub name: Option<String>,
    /// Author-maintained version, bumped on intentional changes (≥ 1).
    pub version: u32,
    /// Output columns in order; lineage columns follow them in mapped batches.
    pub columns: Vec<ColumnSpec>,
}

/// Errors of loading, deriving or validating a target schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The schema file could not be read.
    #[error("cannot read schema file {}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The schema text is not valid JSON or does not have the schema-file shape.
    #[error("{origin}:{line}:{column}: {message}{}", at_field(field))]
    Parse {
        origin: String,
        line: usize,
        column: usize,
        /// JSON path of the offending key or element (`columns[2].type`); empty = top level.
        field: String,
        message: String,
    },
    /// The schema parsed but breaks a rule (duplicate names, reserved prefix, …).
    #[error("{origin}: invalid `{field}`: {message}")]
    Invalid {
        origin: String,
        /// JSON path of the offending key (`columns[3].name`).
        field: String,
        message: String,
    },
}

fn at_field(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!(" (at `{field}`)")
    }
}

impl TargetSchema {
    /// Reads a schema file (JSON). Errors name the file, line and column (serde_json gives them) and the field.
    pub fn from_file(path: &Path) -> Result<Self, SchemaError> {
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::File {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// Parses and validates schema-file text; `origin` names it in messages (a path, `<inline>`).
    pub fn from_json_str(s: &str, origin: &str) -> Result<Self, SchemaError> {
        let file: spec::SchemaFile = serde_json::from_str(s).map_err(|e| {
            let (line, column) = (e.line(), e.column());
            let full = e.to_string();
            let suffix = format!(" at line {line} column {column}");
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
            SchemaError::Parse {
                origin: origin.to_owned(),
                line,
                column,
                field: spec::json_path_at(
                    s,
                    byte_offset(s, line, column),
                    message.starts_with("missing field"),
                ),
                message,
            }
        })?;
        let schema = TargetSchema::from(file);
        schema.validate().map_err(|e| e.with_origin(origin))?;
        Ok(schema)
    }

    /// Derives a schema from a task's output_schema (JSON-Schema-like: {type: object, properties: {...}, required: [...]}).
    ///
    /// string→String, string+format date-time→Timestamp, string+format date→Date,
    /// string+format media→Media, integer→Int64, number→Float64, boolean→Boolean,
    /// object/array→Json, unknown/missing type→String. Columns in property order.
    /// A column is non-nullable exactly when it is listed in `required` and its `type` does
    /// not also allow `"null"`; the Arrow/Parquet field mirrors that (see schemas/README.md).
    pub fn from_output_schema(v: &serde_json::Value) -> Result<Self, SchemaError> {
        let schema = derive::from_output_schema(v)?;
        schema
            .validate()
            .map_err(|e| e.with_origin(derive::ORIGIN))?;
        Ok(schema)
    }

    /// Validates: version ≥ 1, non-empty, unique column names (ASCII case-insensitive, as
    /// DuckDB and Hive compare them), names not starting with `_titan_` (reserved for
    /// lineage), no empty or control-character names, no empty source, a well-formed source
    /// path, transforms that apply to the column type, and a default that converts.
    pub fn validate(&self) -> Result<(), SchemaError> {
        let invalid = |field: String, message: String| SchemaError::Invalid {
            origin: self.name.clone().unwrap_or_else(|| "<schema>".to_owned()),
            field,
            message,
        };
        if self.version == 0 {
            return Err(invalid("version".into(), "must be at least 1".into()));
        }
        if self.columns.is_empty() {
            return Err(invalid(
                "columns".into(),
                "at least one column is required".into(),
            ));
        }
        for (i, col) in self.columns.iter().enumerate() {
            let name = &col.name;
            let field = |key: &str| format!("columns[{i}].{key}");
            if name.trim().is_empty() {
                return Err(invalid(field("name"), "must not be empty".into()));
            }
            if name.chars().any(char::is_control) {
                return Err(invalid(
                    field("name"),
                    format!("{name:?} contains a control character"),
                ));
            }
            if name
                .get(..RESERVED_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_PREFIX))
            {
                return Err(invalid(
                    field("name"),
                    format!(
                        "`{name}` starts with `{RESERVED_PREFIX}`, which is reserved for lineage columns"
                    ),
                ));
            }
            if let Some(j) = self.columns[..i]
                .iter()
                .position(|other| other.name.eq_ignore_ascii_case(name))
            {
                return Err(invalid(
                    field("name"),
                    format!("duplicate column name `{name}` (same as columns[{j}], ignoring case)"),
                ));
            }
            if col.source.is_empty() {
                return Err(invalid(field("source"), "must not be empty".into()));
            }
            if let Err(message) = SourcePath::check(&col.source) {
                return Err(invalid(field("source"), message));
            }
            if let Err((key, message)) = col.transform.check(&col.ty) {
                return Err(invalid(field(key), message));
            }
            if let Some(default) = &col.default {
                let probe = StringArray::from(vec![Some(default.as_str())]);
                let c = crate::map::coerce::coerce(col, &probe);
                if let Some(&(_, reason)) = c.rejects.first() {
                    return Err(invalid(
                        field("default"),
                        format!(
                            "{default:?} is not a valid value of the column ({reason}; expected {})",
                            crate::map::coerce::expected(&col.ty, &col.transform)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Top-level source field names in column order (what the JSON decoder must extract):
    /// a path source contributes its root field; each name is listed once, at its first use.
    pub fn source_fields(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(self.columns.len());
        for col in &self.columns {
            let root = col.source_path().root().to_owned();
            if !out.contains(&root) {
                out.push(root);
            }
        }
        out
    }

    /// The Arrow schema of mapped batches: the columns, then lineage columns
    /// `_titan_task_id` Utf8 (non-null), `_titan_execution_id` Utf8 (non-null), `_titan_row` Int64 (non-null, 1-based row number in the export).
    pub fn arrow_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| {
                Field::new(&c.name, c.ty.arrow_type(), c.nullable)
                    .with_metadata([(TYPE_METADATA_KEY, c.ty.to_string())])
            })
            .collect();
        fields.push(Field::new(LINEAGE_TASK_ID, DataType::Utf8, false));
        fields.push(Field::new(LINEAGE_EXECUTION_ID, DataType::Utf8, false));
        fields.push(Field::new(LINEAGE_ROW, DataType::Int64, false));
        Arc::new(Schema::new(fields))
    }

    /// Stable fingerprint (hex sha256 of a canonical JSON of the columns + version), so a changed schema is detectable.
    ///
    /// The canonical text is `{"fingerprint_format":1,"schema":{"version":…,"columns":[{"name","source","type","nullable"}…]}}`
    /// with canonical type names; `name` is left out, so renaming the schema keeps it.
    pub fn fingerprint(&self) -> String {
        #[derive(serde::Serialize)]
        struct Canon<'a> {
            fingerprint_format: u32,
            schema: spec::CanonicalSchema<'a>,
        }
        let canon = Canon {
            fingerprint_format: FINGERPRINT_FORMAT,
            schema: spec::CanonicalSchema::new(self, false),
        };
        let text = serde_json::to_vec(&canon)
            .expect("invariant: serialising plain structs of strings, ints and bools cannot fail");
        hex::encode(Sha256::digest(&text))
    }

    /// The schema as schema-file text (every key explicit), e.g. to save a derived schema.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&spec::CanonicalSchema::new(self, true))
            .expect("invariant: serialising plain structs of strings, ints and bools cannot fail")
    }
}

/// `schema check FILE`: loads and validates a schema file; the error names the file and the
/// line/column (syntax, unknown keys, bad type names, formats, zones) or the field path
/// (`columns[2].default`) of the first problem.
pub fn check_file(path: &Path) -> Result<TargetSchema, SchemaError> {
    TargetSchema::from_file(path)
}

impl SchemaError {
    /// Replaces the origin of an `Invalid` error; `validate` cannot know where text came from.
    fn with_origin(self, origin: &str) -> Self {
        match self {
            SchemaError::Invalid { field, message, .. } => SchemaError::Invalid {
                origin: origin.to_owned(),
                field,
                message,
            },
            other => other,
        }
    }
}

/// Byte offset of serde_json's 1-based (line, column), column counting bytes: the error is
/// at or just after that byte, so the path scan stops before it.
fn byte_offset(text: &str, line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n')
            .nth(line - 2)
            .map_or(text.len(), |(i, _)| i + 1)
    };
    (line_start + column.saturating_sub(1)).min(text.len())
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::TimeUnit;

    use super::*;

    const PRODUCTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/products.json");

    fn col(name: &str, source: &str, ty: ColumnType, nullable: bool) -> ColumnSpec {
        let mut c = ColumnSpec::new(name, ty, nullable);
        c.source = source.into();
        c
    }

    fn products() -> TargetSchema {
        TargetSchema::from_file(Path::new(PRODUCTS)).unwrap()
    }

    #[test]
    fn products_file_loads_with_renames_and_defaults() {
        let schema = products();
        assert_eq!(schema.name.as_deref(), Some("products"));
        assert_eq!(schema.version, 2);
        use ColumnType::*;
        let mut price = col(
            "price",
            "price",
            Decimal {
                precision: 12,
                scale: 2,
            },
            false,
        );
        price.transform.currency = Some(Currency::Any);
        price.transform.thousands_separator = Some(',');
        assert_eq!(
            schema.columns,
            vec![
                col("name", "product_name", String, false),
                price,
                col("currency", "currency", String, true),
                col("in_stock", "in_stock", Boolean, true),
                col("rating", "rating", Float64, true),
                col("review_count", "review_count", Int64, true),
                col("scraped_at", "scraped_at", Timestamp, true),
                col("url", "product_url", String, false),
                col("image_url", "image_url", Media, true),
            ]
        );
    }

    /// The example file is the derived schema with two columns renamed and the price made
    /// an exact decimal that also reads currency text.
    #[test]
    fn products_file_matches_the_derived_schema_up_to_renames() {
        let output_schema = serde_json::json!({
            "type": "object",
            "properties": {
                "product_name": {"type": "string"}, "price": {"type": "number"},
                "currency": {"type": "string"}, "in_stock": {"type": "boolean"},
                "rating": {"type": "number"}, "review_count": {"type": "integer"},
                "scraped_at": {"type": "string", "format": "date-time"},
                "product_url": {"type": "string"},
                "image_url": {"type": "string", "format": "media"}
            },
            "required": ["product_name", "price", "product_url"]
        });
        let mut derived = TargetSchema::from_output_schema(&output_schema).unwrap();
        derived.name = Some("products".into());
        derived.columns[0].name = "name".into();
        derived.columns[7].name = "url".into();
        derived.version = 2;
        derived.columns[1].ty = ColumnType::Decimal {
            precision: 12,
            scale: 2,
        };
        derived.columns[1].transform.currency = Some(Currency::Any);
        derived.columns[1].transform.thousands_separator = Some(',');
        assert_eq!(derived, products());
        assert_eq!(derived.fingerprint(), products().fingerprint());
    }

    #[test]
    fn arrow_schema_is_columns_then_lineage() {
        let schema = products().arrow_schema();
        let got: Vec<(&str, &DataType, bool)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type(), f.is_nullable()))
            .collect();
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(
            got,
            vec![
                ("name", &DataType::Utf8, false),
                ("price", &DataType::Decimal128(12, 2), false),
                ("currency", &DataType::Utf8, true),
                ("in_stock", &DataType::Boolean, true),
                ("rating", &DataType::Float64, true),
                ("review_count", &DataType::Int64, true),
                ("scraped_at", &ts, true),
                ("url", &DataType::Utf8, false),
                ("image_url", &DataType::Utf8, true),
                ("_titan_task_id", &DataType::Utf8, false),
                ("_titan_execution_id", &DataType::Utf8, false),
                ("_titan_row", &DataType::Int64, false),
            ]
        );
        let meta = |i: usize| schema.field(i).metadata().get(TYPE_METADATA_KEY).cloned();
        assert_eq!(meta(8).as_deref(), Some("media"));
        assert_eq!(meta(1).as_deref(), Some("decimal(12,2)"));
        assert_eq!(meta(5).as_deref(), Some("integer"));
        assert_eq!(meta(9), None);
        assert_eq!(ColumnType::Date.arrow_type(), DataType::Date32);
        assert_eq!(ColumnType::Json.arrow_type(), DataType::Utf8);
    }

    #[test]
    fn source_fields_in_column_order_without_repeats() {
        let mut schema = products();
        assert_eq!(
            schema.source_fields(),
            [
                "product_name",
                "price",
                "currency",
                "in_stock",
                "rating",
                "review_count",
                "scraped_at",
                "product_url",
                "image_url"
            ]
        );
        schema
            .columns
            .push(col("price_text", "price", ColumnType::String, true));
        assert_eq!(schema.source_fields().len(), 9);
    }

    #[test]
    fn fingerprint_is_pinned_and_tracks_meaningful_changes() {
        let base = products();
        // Pinned: a different value means every stored manifest would see a "changed" schema.
        assert_eq!(
            base.fingerprint(),
            "c02c9551e4c943c73bc6323b656bd8ac65263048084041de889c6312525861f7"
        );
        let changed = |f: &dyn Fn(&mut TargetSchema)| {
            let mut s = base.clone();
            f(&mut s);
            s.fingerprint()
        };
        assert_eq!(
            changed(&|s| s.name = Some("renamed".into())),
            base.fingerprint()
        );
        for change in [
            &(|s: &mut TargetSchema| s.columns[5].ty = ColumnType::Float64)
                as &dyn Fn(&mut TargetSchema),
            &|s| s.columns[2].nullable = false,
            &|s| s.columns[2].source = "ccy".into(),
            &|s| s.columns[2].name = "ccy".into(),
            &|s| s.version = 3,
            &|s| s.columns.swap(2, 3),
            &|s| s.columns[1].transform.thousands_separator = None,
            &|s| s.columns[2].default = Some("USD".into()),
            &|s| s.columns[6].transform.timezone = Some(FixedTz(3600)),
        ] {
            assert_ne!(changed(change), base.fingerprint());
        }
        // Aliases and defaults do not matter, only meaning.
        let spelled = r#"{"version": 1, "columns": [{"name": "n", "type": "int64"}]}"#;
        let explicit = r#"{"name": "x", "version": 1,
            "columns": [{"name": "n", "source": "n", "type": "integer", "nullable": true}]}"#;
        assert_eq!(
            TargetSchema::from_json_str(spelled, "a")
                .unwrap()
                .fingerprint(),
            TargetSchema::from_json_str(explicit, "b")
                .unwrap()
                .fingerprint()
        );
    }

    /// The first example of schemas/README.md is a valid schema file.
    #[test]
    fn readme_example_loads() {
        let readme = include_str!("../../schemas/README.md");
        let start = readme.find("```json\n").unwrap() + "```json\n".len();
        let end = start + readme[start..].find("```").unwrap();
        let schema = TargetSchema::from_json_str(&readme[start..end], "README").unwrap();
        let sources: Vec<SourcePath> = schema.columns.iter().map(ColumnSpec::source_path).collect();
        assert_eq!(sources[2], SourcePath::parse("seller.name"));
        assert_eq!(schema.columns[4].transform.split.as_deref(), Some("|"));
        assert_eq!(schema.source_fields()[2], "seller");
    }

    #[test]
    fn to_json_round_trips() {
        let schema = products();
        let text = schema.to_json();
        assert_eq!(
            TargetSchema::from_json_str(&text, "round-trip").unwrap(),
            schema
        );
        assert!(text.contains(r#""source": "product_name""#), "{text}");
    }

    fn parse_err(text: &str) -> (usize, usize, String, String) {
        match TargetSchema::from_json_str(text, "products.json").unwrap_err() {
            SchemaError::Parse {
                origin,
                line,
                column,
                field,
                message,
            } => {
                assert_eq!(origin, "products.json");
                (line, column, field, message)
            }
            other => panic!("expected Parse, got {other:?}"),
        }
    }

    #[test]
    fn parse_errors_report_line_column_and_field() {
        let unknown_key = "{\n  \"version\": 1,\n  \"columns\": [\n    {\"name\": \"a\", \"type\": \"string\"},\n    {\"name\": \"b\", \"type\": \"string\", \"nulable\": false}\n  ]\n}";
        let (line, column, field, message) = parse_err(unknown_key);
        assert_eq!((line, column), (5, 45));
        assert_eq!(field, "columns[1].nulable");
        assert_eq!(
            message,
            "unknown field `nulable`, expected one of `name`, `source`, `type`, `nullable`, \
             `default`, `trim`, `empty_as_null`, `null_values`, `decimal_separator`, \
             `thousands_separator`, `currency`, `round`, `true_values`, `false_values`, \
             `formats`, `timezone`, `split`"
        );

        let bad_type = "{\"version\": 1,\n \"columns\": [{\"name\": \"a\", \"type\": \"strng\"}]}";
        let (line, column, field, message) = parse_err(bad_type);
        assert_eq!((line, column), (2, 43));
        assert_eq!(field, "columns[0].type");
        assert!(
            message.starts_with("unknown column type `strng`, expected one of: string,"),
            "{message}"
        );

        let wrong_kind = "{\"version\": 1, \"columns\": [{\"name\": \"a\", \"type\": \"string\", \"nullable\": \"no\"}]}";
        let (_, _, field, message) = parse_err(wrong_kind);
        assert_eq!(field, "columns[0].nullable");
        assert!(message.contains("expected a boolean"), "{message}");

        let missing = "{\"version\": 1,\n \"columns\": [{\"name\": \"a\"}]}";
        let (line, _, field, message) = parse_err(missing);
        assert_eq!(line, 2);
        assert_eq!(field, "columns[0]");
        assert_eq!(message, "missing field `type`");

        let syntax = "{\n  \"version\": 1,\n  \"columns\": [,]\n}";
        let (line, column, _, message) = parse_err(syntax);
        assert_eq!((line, column), (3, 15));
        assert_eq!(message, "expected value");

        let err = TargetSchema::from_json_str(syntax, "products.json").unwrap_err();
        assert_eq!(
            err.to_string(),
            "products.json:3:15: expected value (at `columns[0]`)"
        );
    }

    fn invalid(text: &str) -> (String, String) {
        match TargetSchema::from_json_str(text, "s.json").unwrap_err() {
            SchemaError::Invalid {
                origin,
                field,
                message,
            } => {
                assert_eq!(origin, "s.json");
                (field, message)
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn validation_errors_name_the_field() {
        let cols = |c: &str| format!(r#"{{"version": 1, "columns": [{c}]}}"#);
        let (field, message) = invalid(&cols(
            r#"{"name": "price", "type": "number"}, {"name": "a", "type": "string"}, {"name": "Price", "type": "string"}"#,
        ));
        assert_eq!(field, "columns[2].name");
        assert_eq!(
            message,
            "duplicate column name `Price` (same as columns[0], ignoring case)"
        );

        let (field, message) = invalid(&cols(r#"{"name": "_TITAN_row", "type": "integer"}"#));
        assert_eq!(field, "columns[0].name");
        assert!(message.contains("reserved for lineage"), "{message}");

        assert_eq!(
            invalid(&cols(r#"{"name": " ", "type": "string"}"#)).0,
            "columns[0].name"
        );
        assert_eq!(
            invalid(&cols(r#"{"name": "a\u0007", "type": "string"}"#)).0,
            "columns[0].name"
        );
        assert_eq!(
            invalid(&cols(r#"{"name": "a", "source": "", "type": "string"}"#)).0,
            "columns[0].source"
        );
        assert_eq!(invalid(&cols("")).0, "columns");
        let (field, _) = invalid(r#"{"version": 0, "columns": [{"name": "a", "type": "string"}]}"#);
        assert_eq!(field, "version");

        // validate() on a hand-built schema names it by its name.
        let mut schema = products();
        schema.columns[1].name = "NAME".into();
        let err = schema.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "products: invalid `columns[1].name`: duplicate column name `NAME` (same as columns[0], ignoring case)"
        );
    }

    #[test]
    fn unreadable_file_names_the_path() {
        let path = Path::new("/nonexistent/schemas/x.json");
        let err = TargetSchema::from_file(path).unwrap_err();
        assert!(
            matches!(&err, SchemaError::File { path: p, .. } if p == path),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("cannot read schema file /nonexistent/schemas/x.json: ")
        );
    }
}
