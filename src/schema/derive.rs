//! Derives a [`TargetSchema`] from a task's JSON-Schema-like `output_schema`.
//!
//! Only the keywords Titan documents or implies are read (`type`, `format`, `properties`,
//! `required`, `title`); everything else is ignored. The result is not validated here.

use serde_json::Value;

use super::{ColumnSpec, ColumnType, SchemaError, TargetSchema};

/// Origin named in errors about a derived schema.
pub(super) const ORIGIN: &str = "output_schema";

pub(super) fn from_output_schema(v: &Value) -> Result<TargetSchema, SchemaError> {
    let invalid = |field: &str, message: String| SchemaError::Invalid {
        origin: ORIGIN.to_owned(),
        field: field.to_owned(),
        message,
    };
    let root = v
        .as_object()
        .ok_or_else(|| invalid("", format!("expected a JSON object, got {}", kind(v))))?;
    if let Some(ty) = root.get("type") {
        let types = type_names(ty).ok_or_else(|| {
            invalid(
                "type",
                format!("expected a string or an array of strings, got {ty}"),
            )
        })?;
        if !types.contains(&"object") {
            return Err(invalid(
                "type",
                format!("a row schema must have type \"object\", got {ty}"),
            ));
        }
    }
    let properties = match root.get("properties") {
        Some(Value::Object(p)) => p,
        Some(other) => {
            return Err(invalid(
                "properties",
                format!("expected an object, got {}", kind(other)),
            ));
        }
        None => return Err(invalid("properties", "is missing".to_owned())),
    };
    let required: Vec<&str> = match root.get("required") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().ok_or_else(|| {
                    invalid(
                        "required",
                        format!("expected an array of strings, found {item}"),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(invalid(
                "required",
                format!("expected an array of strings, got {}", kind(other)),
            ));
        }
    };

    let mut columns = Vec::with_capacity(properties.len());
    for (name, prop) in properties {
        let (ty, allows_null) = match prop {
            Value::Object(p) => column_type(p),
            // JSON Schema allows boolean subschemas (`true` = anything): keep the text.
            Value::Bool(_) => (ColumnType::String, true),
            other => {
                return Err(invalid(
                    &format!("properties.{name}"),
                    format!("expected a schema object, got {}", kind(other)),
                ));
            }
        };
        columns.push(ColumnSpec::new(
            name,
            ty,
            allows_null || !required.contains(&name.as_str()),
        ));
    }
    Ok(TargetSchema {
        name: root.get("title").and_then(Value::as_str).map(str::to_owned),
        version: 1,
        columns,
    })
}

/// The column type of one property schema, and whether its `type` lists `"null"`.
fn column_type(prop: &serde_json::Map<String, Value>) -> (ColumnType, bool) {
    let types = prop.get("type").and_then(type_names).unwrap_or_default();
    let allows_null = types.contains(&"null");
    let non_null: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
    let ty = match non_null.as_slice() {
        ["string"] => match prop.get("format").and_then(Value::as_str) {
            Some("date-time") => ColumnType::Timestamp,
            Some("date") => ColumnType::Date,
            Some("media") => ColumnType::Media,
            _ => ColumnType::String,
        },
        ["integer"] => ColumnType::Int64,
        // Every integer is a number, so a union of the two is a number.
        ["number"] | ["integer", "number"] | ["number", "integer"] => ColumnType::Float64,
        ["boolean"] => ColumnType::Boolean,
        ["object"] | ["array"] | ["object", "array"] | ["array", "object"] => ColumnType::Json,
        // Missing, unknown or mixed types: text is the one lossless choice.
        _ => ColumnType::String,
    };
    (ty, allows_null)
}

/// `"string"` or `["string", "null"]` as a list of names; `None` for any other shape.
fn type_names(ty: &Value) -> Option<Vec<&str>> {
    match ty {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn col(name: &str, ty: ColumnType, nullable: bool) -> ColumnSpec {
        ColumnSpec::new(name, ty, nullable)
    }

    /// The "Product monitor" task of the demo.
    fn products_output_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "product_name": {"type": "string"},
                "price": {"type": "number"},
                "currency": {"type": "string"},
                "in_stock": {"type": "boolean"},
                "rating": {"type": "number"},
                "review_count": {"type": "integer"},
                "scraped_at": {"type": "string", "format": "date-time"},
                "product_url": {"type": "string"},
                "image_url": {"type": "string", "format": "media"}
            },
            "required": ["product_name", "price", "product_url"]
        })
    }

    #[test]
    fn products_output_schema_gives_exact_columns_in_property_order() {
        let schema = TargetSchema::from_output_schema(&products_output_schema()).unwrap();
        assert_eq!(schema.name, None);
        assert_eq!(schema.version, 1);
        assert_eq!(
            schema.columns,
            vec![
                col("product_name", ColumnType::String, false),
                col("price", ColumnType::Float64, false),
                col("currency", ColumnType::String, true),
                col("in_stock", ColumnType::Boolean, true),
                col("rating", ColumnType::Float64, true),
                col("review_count", ColumnType::Int64, true),
                col("scraped_at", ColumnType::Timestamp, true),
                col("product_url", ColumnType::String, false),
                col("image_url", ColumnType::Media, true),
            ]
        );
    }

    #[test]
    fn every_documented_type_mapping() {
        let v = json!({
            "title": "Everything",
            "properties": {
                "s": {"type": "string"},
                "d": {"type": "string", "format": "date"},
                "ts": {"type": "string", "format": "date-time"},
                "m": {"type": "string", "format": "media"},
                "email": {"type": "string", "format": "email"},
                "i": {"type": "integer"},
                "n": {"type": "number"},
                "b": {"type": "boolean"},
                "o": {"type": "object", "properties": {"x": {"type": "string"}}},
                "a": {"type": "array", "items": {"type": "string"}},
                "untyped": {"description": "no type"},
                "weird": {"type": "uuid"},
                "nullable_int": {"type": ["integer", "null"]},
                "int_or_num": {"type": ["integer", "number"]},
                "str_or_num": {"type": ["string", "number"]},
                "anything": true,
                "fmt_on_int": {"type": "integer", "format": "date-time"}
            },
            "required": ["nullable_int", "i", "not_a_property"]
        });
        let schema = TargetSchema::from_output_schema(&v).unwrap();
        assert_eq!(schema.name.as_deref(), Some("Everything"));
        let got: Vec<(&str, ColumnType, bool)> = schema
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.ty.clone(), c.nullable))
            .collect();
        use ColumnType::*;
        assert_eq!(
            got,
            vec![
                ("s", String, true),
                ("d", Date, true),
                ("ts", Timestamp, true),
                ("m", Media, true),
                ("email", String, true),
                ("i", Int64, false),
                ("n", Float64, true),
                ("b", Boolean, true),
                ("o", Json, true),
                ("a", Json, true),
                ("untyped", String, true),
                ("weird", String, true),
                // Required, but its type admits null: nulls are data, not rejects.
                ("nullable_int", Int64, true),
                ("int_or_num", Float64, true),
                ("str_or_num", String, true),
                ("anything", String, true),
                ("fmt_on_int", Int64, true),
            ]
        );
    }

    fn invalid_field(v: Value) -> (String, String) {
        match TargetSchema::from_output_schema(&v).unwrap_err() {
            SchemaError::Invalid {
                origin,
                field,
                message,
            } => {
                assert_eq!(origin, "output_schema");
                (field, message)
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn malformed_output_schemas_name_the_field() {
        assert_eq!(invalid_field(json!([1])).0, "");
        assert_eq!(
            invalid_field(json!({"type": "array", "items": {}})).0,
            "type"
        );
        assert_eq!(invalid_field(json!({"type": "object"})).0, "properties");
        assert_eq!(invalid_field(json!({"properties": []})).0, "properties");
        assert_eq!(
            invalid_field(json!({"properties": {"a": {}}, "required": "a"})).0,
            "required"
        );
        assert_eq!(
            invalid_field(json!({"properties": {"a": {}}, "required": [1]})).0,
            "required"
        );
        assert_eq!(
            invalid_field(json!({"properties": {"a": 5}})).0,
            "properties.a"
        );
        // Validation runs too, with the derived origin.
        let (field, message) = invalid_field(json!({"properties": {}}));
        assert_eq!(field, "columns");
        assert!(message.contains("at least one column"), "{message}");
        let (field, _) = invalid_field(json!({"properties": {"_titan_row": {"type": "integer"}}}));
        assert_eq!(field, "columns[0].name");
    }
}
