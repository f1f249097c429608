//! Serde types of the schema file (`schemas/*.json`), mirroring `schemas/schema.schema.json`.
//!
//! Owns the on-disk shape only: unknown keys are rejected, typed options (type names, time
//! formats, zones) are parsed here so their errors carry a line and column; defaults
//! (`source` = name, `nullable` = true) are applied when converting to [`super::TargetSchema`].

use serde::{Deserialize, Serialize};

use super::transform::{self, Currency, FixedTz, RoundMode, TimeFormat, Transform};
use super::{ColumnSpec, ColumnType, TargetSchema};

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

/// One column entry of a schema file: the column, its default and its transforms (flat
/// keys, documented in schemas/README.md).
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
    /// Any JSON value; kept as text (strings as is, other values as compact JSON).
    #[serde(default)]
    pub(crate) default: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) trim: Option<bool>,
    #[serde(default)]
    pub(crate) empty_as_null: Option<bool>,
    #[serde(default)]
    pub(crate) null_values: Vec<String>,
    #[serde(default, deserialize_with = "transform::de_char")]
    pub(crate) decimal_separator: Option<char>,
    #[serde(default, deserialize_with = "transform::de_char")]
    pub(crate) thousands_separator: Option<char>,
    #[serde(default, deserialize_with = "transform::de_currency")]
    pub(crate) currency: Option<Currency>,
    #[serde(default)]
    pub(crate) round: Option<RoundMode>,
    #[serde(default)]
    pub(crate) true_values: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) false_values: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) formats: Vec<TimeFormat>,
    #[serde(default)]
    pub(crate) timezone: Option<FixedTz>,
    #[serde(default)]
    pub(crate) split: Option<String>,
}

fn default_nullable() -> bool {
    true
}

impl From<ColumnFile> for ColumnSpec {
    fn from(c: ColumnFile) -> Self {
        let default = match c.default {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(other) => Some(other.to_string()),
        };
        ColumnSpec {
            source: c.source.unwrap_or_else(|| c.name.clone()),
            name: c.name,
            ty: c.ty,
            nullable: c.nullable,
            default,
            transform: Transform {
                trim: c.trim,
                empty_as_null: c.empty_as_null,
                null_values: c.null_values,
                decimal_separator: c.decimal_separator,
                thousands_separator: c.thousands_separator,
                currency: c.currency,
                round: c.round,
                true_values: c.true_values,
                false_values: c.false_values,
                formats: c.formats,
                timezone: c.timezone,
                split: c.split,
            },
        }
    }
}

impl From<SchemaFile> for TargetSchema {
    fn from(file: SchemaFile) -> Self {
        TargetSchema {
            name: file.name,
            version: file.version,
            columns: file.columns.into_iter().map(ColumnSpec::from).collect(),
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) default: Option<&'a str>,
    /// Only the options that are set, so adding an option later keeps old fingerprints.
    #[serde(flatten)]
    pub(crate) transform: &'a Transform,
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
                    default: c.default.as_deref(),
                    transform: &c.transform,
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
