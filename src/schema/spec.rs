//! Serde types of the schema file (`schemas/*.json`), mirroring `schemas/schema.schema.json`.
//!
//! Owns the on-disk shape only: unknown keys are rejected, defaults (`source` = name,
//! `nullable` = true) are applied when converting to [`super::TargetSchema`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ColumnSpec, ColumnType, TargetSchema};

/// The canonical type names, in the order error messages list them.
const TYPE_NAMES: &str =
    "string, integer (int64), number (float64), boolean, timestamp, date, json, media";

impl ColumnType {
    /// The canonical name used in schema files and fingerprints.
    fn canonical_name(&self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Int64 => "integer",
            ColumnType::Float64 => "number",
            ColumnType::Boolean => "boolean",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Date => "date",
            ColumnType::Json => "json",
            ColumnType::Media => "media",
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.canonical_name())
    }
}

/// Why a type name was not understood; its message lists the accepted names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown column type `{name}`, expected one of: {TYPE_NAMES}")]
pub struct UnknownType {
    /// The text that was given.
    pub name: String,
}

impl FromStr for ColumnType {
    type Err = UnknownType;

    /// Parses a type name. Names are exact (lowercase); parsing from text rather than a
    /// closed serde enum leaves room for parameterised types such as `decimal(12,2)`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "string" => ColumnType::String,
            "integer" | "int64" => ColumnType::Int64,
            "number" | "float64" => ColumnType::Float64,
            "boolean" => ColumnType::Boolean,
            "timestamp" => ColumnType::Timestamp,
            "date" => ColumnType::Date,
            "json" => ColumnType::Json,
            "media" => ColumnType::Media,
            other => {
                return Err(UnknownType {
                    name: other.to_owned(),
                });
            }
        })
    }
}

impl Serialize for ColumnType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ColumnType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The top level of a schema file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SchemaFile {
    /// Lets editors point at `schema.schema.json`; ignored otherwise.
    #[serde(rename = "$schema", default)]
    #[allow(dead_code, reason = "accepted for editor support, never read")]
    pub(crate) json_schema: Option<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    pub(crate) version: u32,
    pub(crate) columns: Vec<ColumnFile>,
}

/// One column entry of a schema file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ColumnFile {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) source: Option<String>,
    #[serde(rename = "type")]
    pub(crate) ty: ColumnType,
    #[serde(default = "default_nullable")]
    pub(crate) nullable: bool,
}

fn default_nullable() -> bool {
    true
}

impl From<SchemaFile> for TargetSchema {
    fn from(file: SchemaFile) -> Self {
        TargetSchema {
            name: file.name,
            version: file.version,
            columns: file
                .columns
                .into_iter()
                .map(|c| ColumnSpec {
                    source: c.source.unwrap_or_else(|| c.name.clone()),
                    name: c.name,
                    ty: c.ty,
                    nullable: c.nullable,
                })
                .collect(),
        }
    }
}

/// The written form of a schema: every key explicit, keys in a fixed order. Used both
/// for [`TargetSchema::to_json`] and (without `name`) as the fingerprint's canonical text.
#[derive(Serialize)]
pub(crate) struct CanonicalSchema<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<&'a str>,
    pub(crate) version: u32,
    pub(crate) columns: Vec<CanonicalColumn<'a>>,
}

#[derive(Serialize)]
pub(crate) struct CanonicalColumn<'a> {
    pub(crate) name: &'a str,
    pub(crate) source: &'a str,
    #[serde(rename = "type")]
    pub(crate) ty: &'a ColumnType,
    pub(crate) nullable: bool,
}

impl<'a> CanonicalSchema<'a> {
    pub(crate) fn new(schema: &'a TargetSchema, with_name: bool) -> Self {
        CanonicalSchema {
            name: schema.name.as_deref().filter(|_| with_name),
            version: schema.version,
            columns: schema
                .columns
                .iter()
                .map(|c| CanonicalColumn {
                    name: &c.name,
                    source: &c.source,
                    ty: &c.ty,
                    nullable: c.nullable,
                })
                .collect(),
        }
    }
}

/// The JSON path (`columns[2].type`) of the innermost key or element open just before byte
/// `offset` of `text`, so parse errors can name the field, not only a line and column.
/// `container_only` stops at the innermost object itself (for "missing field" errors).
/// Works on any prefix, valid or not; an empty string means the top level.
pub(crate) fn json_path_at(text: &str, offset: usize, container_only: bool) -> String {
    enum Frame {
        Object { key: Option<String>, in_value: bool },
        Array { index: usize },
    }
    let bytes = &text.as_bytes()[..offset.min(text.len())];
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => stack.push(Frame::Object {
                key: None,
                in_value: false,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b':' => {
                if let Some(Frame::Object { in_value, .. }) = stack.last_mut() {
                    *in_value = true;
                }
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { in_value, .. }) => *in_value = false,
                None => {}
            },
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Object { key, in_value }) = stack.last_mut()
                    && !*in_value
                {
                    let end = j.min(bytes.len());
                    *key = Some(String::from_utf8_lossy(&bytes[start..end]).into_owned());
                }
                i = j;
            }
            _ => {}
        }
        i += 1;
    }
    if container_only && let Some(Frame::Object { key, .. }) = stack.last_mut() {
        *key = None;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_and_aliases_parse_and_print_canonically() {
        let cases = [
            ("string", ColumnType::String, "string"),
            ("integer", ColumnType::Int64, "integer"),
            ("int64", ColumnType::Int64, "integer"),
            ("number", ColumnType::Float64, "number"),
            ("float64", ColumnType::Float64, "number"),
            ("boolean", ColumnType::Boolean, "boolean"),
            ("timestamp", ColumnType::Timestamp, "timestamp"),
            ("date", ColumnType::Date, "date"),
            ("json", ColumnType::Json, "json"),
            ("media", ColumnType::Media, "media"),
        ];
        for (text, ty, canonical) in cases {
            assert_eq!(text.parse::<ColumnType>(), Ok(ty.clone()), "{text}");
            assert_eq!(ty.to_string(), canonical);
        }
        let err = "String".parse::<ColumnType>().unwrap_err();
        assert_eq!(err.name, "String");
        assert!(
            err.to_string().contains("expected one of: string,"),
            "{err}"
        );
    }

    #[test]
    fn json_path_names_the_innermost_key_or_index() {
        let text = r#"{"version": 1, "columns": [{"name": "a", "type": "string"}, {"name": "b", "type": "strng"}]}"#;
        let at = |needle: &str| text.find(needle).unwrap() + needle.len();
        assert_eq!(
            json_path_at(text, at(r#""strng""#), false),
            "columns[1].type"
        );
        assert_eq!(json_path_at(text, at(r#""strng""#), true), "columns[1]");
        assert_eq!(json_path_at(text, at(r#""a""#), false), "columns[0].name");
        assert_eq!(json_path_at(text, at(r#""version": 1"#), false), "version");
        assert_eq!(
            json_path_at(text, at(r#""columns": ["#), false),
            "columns[0]"
        );
        assert_eq!(json_path_at(text, 0, false), "");
        assert_eq!(json_path_at(text, text.len(), false), "");
        // Escaped quotes inside strings do not end them.
        let tricky = r#"{"columns": [{"name": "a\"b", "nullable": "x"}]}"#;
        let off = tricky.find(r#""x""#).unwrap() + 3;
        assert_eq!(json_path_at(tricky, off, false), "columns[0].nullable");
    }

    #[test]
    fn json_path_never_panics_on_arbitrary_prefixes() {
        let text = r#"{"a": [1, {"b\\": "c\"", "d": [[],{}]}], "e": "\u00e9ü"}"#;
        for end in 0..=text.len() + 3 {
            let _ = json_path_at(text, end, false);
            let _ = json_path_at(text, end, true);
        }
        for s in ["\"", "\\", "\"\\", "{\"", "[[[", "]]]}}", ":,:,"] {
            let _ = json_path_at(s, s.len(), true);
        }
    }
}
