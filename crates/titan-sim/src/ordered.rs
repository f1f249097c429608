//! TOML → `serde_json::Value` that keeps the source order of table keys.
//!
//! The `toml` crate is built without `preserve_order`, so its tables iterate
//! sorted; a task's `output_schema` must keep the author's property order
//! (it is the export's column order). Keys are read as `toml::Spanned` and
//! re-sorted by their byte offset in the file.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// A JSON value whose object keys are in TOML source order.
pub(crate) struct SourceOrdered(pub(crate) Value);

impl<'de> Deserialize<'de> for SourceOrdered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OrderedVisitor).map(SourceOrdered)
    }
}

struct OrderedVisitor;

impl<'de> Visitor<'de> for OrderedVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{v} is not representable in JSON")))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(SourceOrdered(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries: Vec<(usize, String, Value)> = Vec::new();
        while let Some(key) = map.next_key::<toml::Spanned<String>>()? {
            let SourceOrdered(v) = map.next_value()?;
            let start = key.span().start;
            entries.push((start, key.into_inner(), v));
        }
        entries.sort_by_key(|(start, _, _)| *start);
        let mut out = Map::with_capacity(entries.len());
        for (_, k, v) in entries {
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// `deserialize_with` for `output_schema`: a TOML table (source-ordered) or a
/// string holding the schema as JSON (handy to paste a real Titan schema).
pub(crate) fn schema<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    let SourceOrdered(v) = SourceOrdered::deserialize(d)?;
    match v {
        Value::String(s) => serde_json::from_str(&s)
            .map_err(|e| de::Error::custom(format!("output_schema is not valid JSON: {e}"))),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(deserialize_with = "schema")]
        s: Value,
    }

    #[test]
    fn keeps_source_order_of_nested_tables() {
        let doc: Doc = toml::from_str(
            r#"
[s]
type = "object"
required = ["zeta"]
[s.properties]
zeta = { type = "string" }
alpha = { type = "integer", minimum = 3 }
mid = { type = "number" }
"#,
        )
        .expect("valid toml");
        let keys: Vec<&str> = doc.s["properties"]
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["zeta", "alpha", "mid"]);
        let top: Vec<&str> = doc
            .s
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(top, ["type", "required", "properties"]);
        assert_eq!(doc.s["properties"]["alpha"]["minimum"], 3);
        assert_eq!(doc.s["required"][0], "zeta");
    }

    #[test]
    fn accepts_a_json_string() {
        let doc: Doc = toml::from_str(
            r#"s = '{"type":"object","properties":{"b":{"type":"string"},"a":{}}}'"#,
        )
        .expect("valid toml");
        let keys: Vec<&str> = doc.s["properties"]
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["b", "a"]);
        let bad = toml::from_str::<Doc>(r#"s = '{"type":'"#);
        assert!(bad.is_err_and(|e| e.to_string().contains("not valid JSON")));
    }
}
