//! Column types: the type-name grammar of schema files and the Arrow type of each.
//!
//! Grammar (whitespace allowed between tokens; canonical form has none):
//! `string | integer (int64) | int32 | number (float64) | boolean | timestamp | date | json |
//! media | decimal(p[,s]) | list<T> | struct<name:T,...>`. Invariant: `Display` prints the
//! canonical name and parsing it gives back an equal type.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest precision of an Arrow/Parquet Decimal128.
pub const MAX_DECIMAL_PRECISION: u8 = 38;
/// Name of the element field of list columns (the Parquet LIST convention).
pub const LIST_ELEMENT_NAME: &str = "element";
/// Deepest nesting of `list<…>`/`struct<…>` accepted in a type name.
const MAX_TYPE_DEPTH: usize = 16;

/// The scalar names, in the order error messages list them.
const TYPE_NAMES: &str = "string, integer (int64), int32, number (float64), boolean, timestamp, \
     date, json, media, decimal(p,s), list<T>, struct<name:T,...>";

/// The type of a target column; decides its Arrow type and how raw text is coerced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// Text, passed through unchanged.
    String,
    /// Signed 32-bit integer, parsed exactly.
    Int32,
    /// Signed 64-bit integer, parsed exactly (never through `f64`).
    Int64,
    /// 64-bit float; only finite values.
    Float64,
    /// Exact decimal: `precision` significant digits (1–38), `scale` of them after the point.
    Decimal { precision: u8, scale: u8 },
    /// `true`/`false` and the other configured words.
    Boolean,
    /// Instant in UTC, microsecond precision.
    Timestamp,
    /// Calendar date.
    Date,
    /// Any JSON value, validated and kept as its text.
    Json,
    /// A media asset. The mapper emits its reference as Utf8 text marked `titan.type =
    /// media`; the media stage (`media::MediaFetcher::output_schema`) turns such columns
    /// into the media struct before writing. HOOK(media): [`media_arrow_type`] and
    /// `coerce::media` are the mapper's side of that contract.
    Media,
    /// A list of values of one type, from JSON array text or a `split` string.
    List(Box<ColumnType>),
    /// Named fields, from JSON object text. Every field is nullable.
    Struct(Vec<StructField>),
}

/// One declared field of a `struct<…>` column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StructField {
    /// Key in the JSON object and name of the Arrow child field.
    pub name: String,
    pub ty: ColumnType,
}

/// Why a type name was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TypeError {
    /// The text that was given.
    pub text: String,
    /// What is wrong, naming the accepted forms.
    pub message: String,
}

/// The Arrow type of media columns as the mapper emits them: the reference as text, which
/// the media stage recognises (Utf8 + `titan.type = media`) and resolves into its struct.
/// HOOK(media): the one place to change if the mapper should emit another shape.
pub fn media_arrow_type() -> DataType {
    DataType::Utf8
}

impl ColumnType {
    /// The Arrow type of the mapped column.
    pub fn arrow_type(&self) -> DataType {
        match self {
            ColumnType::String | ColumnType::Json => DataType::Utf8,
            ColumnType::Media => media_arrow_type(),
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Decimal { precision, scale } => {
                DataType::Decimal128(*precision, *scale as i8)
            }
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColumnType::Date => DataType::Date32,
            ColumnType::List(elem) => DataType::List(Arc::new(Field::new(
                LIST_ELEMENT_NAME,
                elem.arrow_type(),
                true,
            ))),
            ColumnType::Struct(fields) => DataType::Struct(struct_fields(fields)),
        }
    }

    /// True for types whose values are kept as text (no parsing): string, media.
    pub fn is_text(&self) -> bool {
        matches!(self, ColumnType::String | ColumnType::Media)
    }

    /// Visits this type and every type nested in it (list elements, struct fields).
    pub fn any_leaf(&self, f: &dyn Fn(&ColumnType) -> bool) -> bool {
        match self {
            ColumnType::List(elem) => elem.any_leaf(f),
            ColumnType::Struct(fields) => fields.iter().any(|fl| fl.ty.any_leaf(f)),
            leaf => f(leaf),
        }
    }

    /// What a column of this type accepts, for error messages and quarantine records.
    pub fn expected(&self) -> String {
        match self {
            ColumnType::String => "string".into(),
            ColumnType::Media => "media (URL text)".into(),
            ColumnType::Int32 => "integer (int32)".into(),
            ColumnType::Int64 => "integer (int64)".into(),
            ColumnType::Float64 => "number (finite float64)".into(),
            ColumnType::Decimal { .. } => format!("{self} (exact decimal number)"),
            ColumnType::Boolean => "boolean".into(),
            ColumnType::Timestamp => "timestamp".into(),
            ColumnType::Date => "date".into(),
            ColumnType::Json => "json".into(),
            ColumnType::List(_) => format!("{self} (JSON array)"),
            ColumnType::Struct(_) => format!("{self} (JSON object)"),
        }
    }
}

pub(crate) fn struct_fields(fields: &[StructField]) -> Fields {
    fields
        .iter()
        .map(|f| Field::new(&f.name, f.ty.arrow_type(), true))
        .collect()
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::String => f.write_str("string"),
            ColumnType::Int32 => f.write_str("int32"),
            ColumnType::Int64 => f.write_str("integer"),
            ColumnType::Float64 => f.write_str("number"),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            ColumnType::Boolean => f.write_str("boolean"),
            ColumnType::Timestamp => f.write_str("timestamp"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Json => f.write_str("json"),
            ColumnType::Media => f.write_str("media"),
            ColumnType::List(elem) => write!(f, "list<{elem}>"),
            ColumnType::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write_field_name(f, &field.name)?;
                    write!(f, ":{}", field.ty)?;
                }
                f.write_str(">")
            }
        }
    }
}

/// A bare name when it is plain (`[A-Za-z0-9_]+`), else backquoted with `` ` `` doubled.
fn write_field_name(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        f.write_str(name)
    } else {
        write!(f, "`{}`", name.replace('`', "``"))
    }
}

impl FromStr for ColumnType {
    type Err = TypeError;

    /// Parses a type name (exact lowercase keywords; see the module doc for the grammar).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut p = TypeParser {
            text: s,
            b: s.as_bytes(),
            i: 0,
        };
        let ty = p.parse_type(0)?;
        p.ws();
        if p.i != p.b.len() {
            return Err(p.err(format!("unexpected `{}` after the type", &s[p.i..])));
        }
        Ok(ty)
    }
}

struct TypeParser<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl TypeParser<'_> {
    fn err(&self, message: String) -> TypeError {
        TypeError {
            text: self.text.to_owned(),
            message,
        }
    }

    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8, what: &str) -> Result<(), TypeError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(format!(
                "invalid column type `{}`: expected `{}` {what}",
                self.text, c as char
            )))
        }
    }

    fn word(&mut self) -> &str {
        self.ws();
        let start = self.i;
        while self
            .b
            .get(self.i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            self.i += 1;
        }
        &self.text[start..self.i]
    }

    fn number(&mut self, what: &str) -> Result<u32, TypeError> {
        let w = self.word().to_owned();
        w.parse::<u32>().map_err(|_| {
            self.err(format!(
                "invalid column type `{}`: {what} must be a number, got `{w}`",
                self.text
            ))
        })
    }

    fn parse_type(&mut self, depth: usize) -> Result<ColumnType, TypeError> {
        if depth > MAX_TYPE_DEPTH {
            return Err(self.err(format!(
                "invalid column type `{}`: nested deeper than {MAX_TYPE_DEPTH} levels",
                self.text
            )));
        }
        let word = self.word().to_owned();
        Ok(match word.as_str() {
            "string" => ColumnType::String,
            "integer" | "int64" => ColumnType::Int64,
            "int32" => ColumnType::Int32,
            "number" | "float64" => ColumnType::Float64,
            "boolean" => ColumnType::Boolean,
            "timestamp" => ColumnType::Timestamp,
            "date" => ColumnType::Date,
            "json" => ColumnType::Json,
            "media" => ColumnType::Media,
            "decimal" | "decimal128" => self.decimal()?,
            "list" => {
                self.expect(b'<', "after `list`")?;
                let elem = self.parse_type(depth + 1)?;
                self.expect(b'>', "to close `list<`")?;
                ColumnType::List(Box::new(elem))
            }
            "struct" => self.strukt(depth)?,
            _ => {
                let shown = if word.is_empty() { self.text } else { &word };
                return Err(self.err(format!(
                    "unknown column type `{shown}`, expected one of: {TYPE_NAMES}"
                )));
            }
        })
    }

    fn decimal(&mut self) -> Result<ColumnType, TypeError> {
        self.expect(b'(', "after `decimal` (write `decimal(precision,scale)`)")?;
        let precision = self.number("the precision")?;
        let scale = if self.eat(b',') {
            self.number("the scale")?
        } else {
            0
        };
        self.expect(b')', "to close `decimal(`")?;
        if !(1..=u32::from(MAX_DECIMAL_PRECISION)).contains(&precision) {
            return Err(self.err(format!(
                "invalid column type `{}`: decimal precision must be 1 to {MAX_DECIMAL_PRECISION}, got {precision}",
                self.text
            )));
        }
        if scale > precision {
            return Err(self.err(format!(
                "invalid column type `{}`: decimal scale {scale} is larger than the precision {precision}",
                self.text
            )));
        }
        Ok(ColumnType::Decimal {
            precision: precision as u8,
            scale: scale as u8,
        })
    }

    fn strukt(&mut self, depth: usize) -> Result<ColumnType, TypeError> {
        self.expect(b'<', "after `struct`")?;
        let mut fields: Vec<StructField> = Vec::new();
        loop {
            let name = self.field_name()?;
            if let Some(other) = fields.iter().find(|f| f.name.eq_ignore_ascii_case(&name)) {
                return Err(self.err(format!(
                    "invalid column type `{}`: struct field `{name}` is declared twice (as `{}`, ignoring case)",
                    self.text, other.name
                )));
            }
            self.expect(b':', "after a struct field name")?;
            let ty = self.parse_type(depth + 1)?;
            fields.push(StructField { name, ty });
            if self.eat(b',') {
                continue;
            }
            self.expect(b'>', "or `,` after a struct field")?;
            return Ok(ColumnType::Struct(fields));
        }
    }

    /// A bare name (no whitespace or `` `:,<>() ``) or a backquoted one (`` ` `` doubled).
    fn field_name(&mut self) -> Result<String, TypeError> {
        self.ws();
        let mut name = String::new();
        if self.b.get(self.i) == Some(&b'`') {
            let mut j = self.i + 1;
            loop {
                match self.text[j..].find('`') {
                    None => {
                        return Err(self.err(format!(
                            "invalid column type `{}`: unclosed backquoted field name",
                            self.text
                        )));
                    }
                    Some(k) => {
                        name.push_str(&self.text[j..j + k]);
                        j += k + 1;
                        if self.b.get(j) == Some(&b'`') {
                            name.push('`');
                            j += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            self.i = j;
        } else {
            let start = self.i;
            while let Some(c) = self.text[self.i..].chars().next() {
                if c.is_whitespace() || "`:,<>()".contains(c) {
                    break;
                }
                self.i += c.len_utf8();
            }
            name.push_str(&self.text[start..self.i]);
        }
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(self.err(format!(
                "invalid column type `{}`: a struct field name is empty or has a control character",
                self.text
            )));
        }
        Ok(name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_canonically() {
        let dec = |precision, scale| ColumnType::Decimal { precision, scale };
        let cases = [
            ("string", ColumnType::String, "string"),
            ("integer", ColumnType::Int64, "integer"),
            ("int64", ColumnType::Int64, "integer"),
            ("int32", ColumnType::Int32, "int32"),
            ("number", ColumnType::Float64, "number"),
            ("float64", ColumnType::Float64, "number"),
            ("boolean", ColumnType::Boolean, "boolean"),
            ("timestamp", ColumnType::Timestamp, "timestamp"),
            ("date", ColumnType::Date, "date"),
            ("json", ColumnType::Json, "json"),
            ("media", ColumnType::Media, "media"),
            ("decimal(12,2)", dec(12, 2), "decimal(12,2)"),
            (" decimal128 ( 38 , 0 ) ", dec(38, 0), "decimal(38,0)"),
            ("decimal(5)", dec(5, 0), "decimal(5,0)"),
            ("decimal(3,3)", dec(3, 3), "decimal(3,3)"),
            (
                "list<string>",
                ColumnType::List(Box::new(ColumnType::String)),
                "list<string>",
            ),
            (
                "list< list<int64> >",
                ColumnType::List(Box::new(ColumnType::List(Box::new(ColumnType::Int64)))),
                "list<list<integer>>",
            ),
            (
                "struct<a: int64, `b c`:list<decimal(4,1)>, é:string, `x``y`:json>",
                ColumnType::Struct(vec![
                    StructField {
                        name: "a".into(),
                        ty: ColumnType::Int64,
                    },
                    StructField {
                        name: "b c".into(),
                        ty: ColumnType::List(Box::new(dec(4, 1))),
                    },
                    StructField {
                        name: "é".into(),
                        ty: ColumnType::String,
                    },
                    StructField {
                        name: "x`y".into(),
                        ty: ColumnType::Json,
                    },
                ]),
                "struct<a:integer,`b c`:list<decimal(4,1)>,`é`:string,`x``y`:json>",
            ),
        ];
        for (text, ty, canonical) in cases {
            assert_eq!(text.parse::<ColumnType>(), Ok(ty.clone()), "{text}");
            assert_eq!(ty.to_string(), canonical);
            assert_eq!(canonical.parse::<ColumnType>(), Ok(ty), "{canonical}");
        }
    }

    #[test]
    fn bad_names_say_what_is_wrong() {
        let cases = [
            (
                "String",
                "unknown column type `String`, expected one of: string,",
            ),
            ("", "unknown column type ``"),
            ("decimal", "expected `(` after `decimal`"),
            ("decimal(0,0)", "precision must be 1 to 38, got 0"),
            ("decimal(39,2)", "precision must be 1 to 38, got 39"),
            ("decimal(4,5)", "scale 5 is larger than the precision 4"),
            ("decimal(a,1)", "the precision must be a number, got `a`"),
            ("decimal(10,-2)", "the scale must be a number, got ``"),
            ("list<string", "expected `>` to close `list<`"),
            ("list<>", "unknown column type"),
            ("struct<>", "a struct field name is empty"),
            (
                "struct<a:int64,A:string>",
                "struct field `A` is declared twice",
            ),
            ("struct<a int64>", "expected `:` after a struct field name"),
            ("struct<`a:int64>", "unclosed backquoted field name"),
            ("string string", "unexpected `string` after the type"),
            ("int", "unknown column type `int`"),
        ];
        for (text, want) in cases {
            let err = text.parse::<ColumnType>().unwrap_err();
            assert!(err.message.contains(want), "{text}: {}", err.message);
            assert_eq!(err.text, text);
        }
        let deep = format!("{}string{}", "list<".repeat(40), ">".repeat(40));
        let err = deep.parse::<ColumnType>().unwrap_err();
        assert!(err.message.contains("nested deeper than 16"), "{err}");
    }

    #[test]
    fn arrow_types() {
        assert_eq!(
            "decimal(12,2)".parse::<ColumnType>().unwrap().arrow_type(),
            DataType::Decimal128(12, 2)
        );
        assert_eq!(ColumnType::Int32.arrow_type(), DataType::Int32);
        let list = "list<timestamp>"
            .parse::<ColumnType>()
            .unwrap()
            .arrow_type();
        let DataType::List(elem) = &list else {
            panic!("{list:?}")
        };
        assert_eq!(elem.name(), "element");
        assert!(elem.is_nullable());
        assert_eq!(
            elem.data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let st = "struct<a:int32,b:list<string>>"
            .parse::<ColumnType>()
            .unwrap()
            .arrow_type();
        let DataType::Struct(fields) = &st else {
            panic!("{st:?}")
        };
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0].data_type(), &DataType::Int32);
        assert!(fields.iter().all(|f| f.is_nullable()));
    }
}
