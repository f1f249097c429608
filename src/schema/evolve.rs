//! Schema evolution: reconciling a declared schema with the fields an export actually has.
//!
//! Fields in the data but not in the schema are ignored, added (typed by inference on a
//! sample) or an error; schema fields absent from the data become null or an error.
//! Invariant: the schema used for an export is decided before its first row is mapped, and a
//! different column set always has a different fingerprint.

use arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};

use super::infer::{Candidates, column_name};
use super::jsontext::{JsonFail, Scanner};
use super::{ColumnSpec, SourcePath, TargetSchema};

/// Fields present in the data that no column reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraFieldPolicy {
    /// Leave them out of the output.
    #[default]
    Ignore,
    /// Append a nullable column per field, typed by inference on the sample.
    Add,
    /// Fail the execution, naming the fields.
    Fail,
}

/// Schema columns whose source field is absent from the data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingFieldPolicy {
    /// The column is null (or its default) in every row. A non-nullable column without a
    /// default still fails: every row would be rejected.
    #[default]
    Null,
    /// Fail the execution, naming the fields.
    Fail,
}

/// Both evolution policies of a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvolutionPolicy {
    #[serde(default)]
    pub extra_fields: ExtraFieldPolicy,
    #[serde(default)]
    pub missing_fields: MissingFieldPolicy,
}

/// The schema to map an export with, and how it differs from the declared one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evolved {
    /// The declared schema plus any added columns (same `name` and `version`; its
    /// fingerprint differs exactly when columns were added).
    pub schema: TargetSchema,
    /// Fields added as columns (source names), in data order.
    pub added: Vec<String>,
    /// Extra fields left out (under `Ignore`), in data order.
    pub ignored: Vec<String>,
    /// Source fields of schema columns absent from the data (they map to null/default).
    pub missing: Vec<String>,
}

/// The data does not fit the schema under the task's policies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvolutionError {
    #[error("fields not in the schema: {}", quoted(fields))]
    ExtraFields { fields: Vec<String> },
    #[error("schema fields missing from the data: {}", quoted(fields))]
    MissingFields { fields: Vec<String> },
    #[error(
        "non-nullable columns without a default have no field in the data: {}",
        columns.iter().zip(fields).map(|(c, f)| format!("`{c}` (field `{f}`)")).collect::<Vec<_>>().join(", ")
    )]
    MissingRequired {
        columns: Vec<String>,
        fields: Vec<String>,
    },
}

fn quoted(fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl TargetSchema {
    /// Reconciles this schema with the fields seen in an export.
    ///
    /// `seen`: the export's top-level field names — for CSV the header
    /// (`RawDecoder::columns()`), for JSON [`json_record_keys`] of the body's start.
    /// `sample`: raw batches holding the extra fields (for `Add`, to type them; the CSV
    /// decoder's first batch, or a JSON decoder built with `source_fields()` plus the extra
    /// keys). A column counts as present when `seen` has its whole source or its path root.
    pub fn evolve(
        &self,
        seen: &[String],
        sample: &[RecordBatch],
        policy: EvolutionPolicy,
    ) -> Result<Evolved, EvolutionError> {
        let present = |col: &ColumnSpec| {
            seen.contains(&col.source)
                || matches!(col.source_path(), SourcePath::Path { root, .. } if seen.contains(&root))
        };
        let used: Vec<String> = self
            .columns
            .iter()
            .flat_map(|c| [c.source.clone(), c.source_path().root().to_owned()])
            .collect();
        let mut extra: Vec<String> = Vec::new();
        for f in seen {
            if !used.contains(f) && !extra.contains(f) {
                extra.push(f.clone());
            }
        }
        let absent: Vec<&ColumnSpec> = self.columns.iter().filter(|c| !present(c)).collect();
        let missing: Vec<String> = absent.iter().map(|c| c.source.clone()).collect();
        if policy.missing_fields == MissingFieldPolicy::Fail && !missing.is_empty() {
            return Err(EvolutionError::MissingFields { fields: missing });
        }
        let required: Vec<&&ColumnSpec> = absent
            .iter()
            .filter(|c| !c.nullable && c.default.is_none())
            .collect();
        if !required.is_empty() {
            return Err(EvolutionError::MissingRequired {
                columns: required.iter().map(|c| c.name.clone()).collect(),
                fields: required.iter().map(|c| c.source.clone()).collect(),
            });
        }
        let mut schema = self.clone();
        let mut added = Vec::new();
        let mut ignored = Vec::new();
        match policy.extra_fields {
            ExtraFieldPolicy::Ignore => ignored = extra,
            ExtraFieldPolicy::Fail if !extra.is_empty() => {
                return Err(EvolutionError::ExtraFields { fields: extra });
            }
            ExtraFieldPolicy::Fail => {}
            ExtraFieldPolicy::Add => {
                for field in extra {
                    let mut cands = Candidates::default();
                    for batch in sample {
                        if let Some(col) = batch.column_by_name(&field) {
                            cands.observe_column(col.as_ref(), batch.num_rows());
                        }
                    }
                    let name = column_name(&field, &schema.columns);
                    let mut spec = ColumnSpec::new(&name, cands.best(), true);
                    // A field name with dots or a leading `/` must stay a literal source.
                    spec.source = if matches!(SourcePath::parse(&field), SourcePath::Field(ref f) if f == &field)
                    {
                        field.clone()
                    } else {
                        format!("/{}", field.replace('~', "~0").replace('/', "~1"))
                    };
                    schema.columns.push(spec);
                    added.push(field);
                }
            }
        }
        Ok(Evolved {
            schema,
            added,
            ignored,
            missing,
        })
    }
}

/// Top-level keys of the first `max_records` complete records at the start of a JSON
/// export body (array, NDJSON, or rows wrapped under `data`/`results`/`items`, recognised
/// as the decoder does: a wrapper key holding an array before any of `fields`), in
/// first-seen order. A record cut off by the end of `body_prefix` is not counted, so pass
/// the first chunk(s) of the body — e.g. up to 1 MiB — before starting the decoder.
/// Reserved `_titan_` keys are reported too (the caller's policy decides). At most
/// `MAX_COLUMNS + 1` keys are collected: one more than a decoder accepts, so the caller
/// still fails with a clear error, without the scan growing with a hostile key set.
pub fn json_record_keys(body_prefix: &[u8], fields: &[String], max_records: usize) -> Vec<String> {
    let valid = match std::str::from_utf8(body_prefix) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&body_prefix[..e.valid_up_to()]).unwrap_or_default(),
    };
    let text = valid.strip_prefix('\u{feff}').unwrap_or(valid);
    let mut sc = Scanner::new(text);
    let mut keys: Vec<String> = Vec::new();
    // Membership by hash: a 1 MiB prefix can hold ~95k distinct keys, and a scan of the
    // list for each was quadratic in them.
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let cap = crate::decode::MAX_COLUMNS + 1;
    let mut records = 0usize;
    let mut in_array = false;
    match sc.peek() {
        Some(b'[') => {
            sc.i += 1;
            in_array = true;
        }
        Some(b'{') => {
            // A wrapper, or the first NDJSON row.
            let start = sc.i;
            if wrapper_start(&mut sc, fields) {
                in_array = true;
            } else {
                sc.i = start;
            }
        }
        _ => return keys,
    }
    while records < max_records {
        if in_array && records > 0 && !sc.eat(b',') {
            break;
        }
        if sc.peek() != Some(b'{') {
            break;
        }
        let mut row = Vec::new();
        if record_keys(&mut sc, &mut row).is_err() {
            break;
        }
        records += 1;
        for k in row {
            if keys.len() >= cap {
                return keys;
            }
            if seen.insert(k.clone()) {
                keys.push(k);
            }
        }
    }
    keys
}

/// At a `{`: if it is a wrapper (a `data`/`results`/`items` key holding an array before any
/// listed field), leaves the scanner just inside that array and returns true.
fn wrapper_start(sc: &mut Scanner<'_>, fields: &[String]) -> bool {
    sc.i += 1;
    if sc.eat(b'}') {
        return false;
    }
    loop {
        let Ok(key) = sc.key() else {
            return false;
        };
        if fields.iter().any(|f| f.as_str() == key) {
            return false;
        }
        if matches!(&*key, "data" | "results" | "items") && sc.peek() == Some(b'[') {
            sc.i += 1;
            return true;
        }
        if sc.skip_value().is_err() || !sc.eat(b',') {
            return false;
        }
    }
}

/// Keys of the object at the scanner (a `{`), which must be complete.
fn record_keys(sc: &mut Scanner<'_>, out: &mut Vec<String>) -> Result<(), JsonFail> {
    sc.i += 1;
    if sc.eat(b'}') {
        return Ok(());
    }
    loop {
        let key = sc.key()?;
        sc.skip_value()?;
        out.push(key.into_owned());
        if sc.eat(b',') {
            continue;
        }
        if sc.eat(b'}') {
            return Ok(());
        }
        return Err(JsonFail::Invalid);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::schema::ColumnType;

    fn schema() -> TargetSchema {
        let mut price = ColumnSpec::new("price", ColumnType::Float64, false);
        price.default = None;
        let mut city = ColumnSpec::new("city", ColumnType::String, true);
        city.source = "address.city".into();
        TargetSchema {
            name: Some("p".into()),
            version: 3,
            columns: vec![
                ColumnSpec::new("name", ColumnType::String, false),
                price,
                city,
                ColumnSpec::new("rating", ColumnType::Float64, true),
            ],
        }
    }

    fn seen(f: &[&str]) -> Vec<String> {
        f.iter().map(|s| s.to_string()).collect()
    }

    fn sample() -> RecordBatch {
        let fields = vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("sku", DataType::Utf8, true),
            Field::new("a.b", DataType::Utf8, true),
        ];
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["x", "y"])),
            Arc::new(StringArray::from(vec!["12", "9007199254740993"])),
            Arc::new(StringArray::from(vec!["true", "no"])),
        ];
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    }

    #[test]
    fn extra_fields_per_policy() {
        let s = schema();
        let data = seen(&["name", "price", "address", "sku", "a.b"]);
        let e = s.evolve(&data, &[], EvolutionPolicy::default()).unwrap();
        assert_eq!(e.schema, s);
        assert_eq!(e.ignored, seen(&["sku", "a.b"]));
        assert_eq!(e.missing, seen(&["rating"]));

        let fail = EvolutionPolicy {
            extra_fields: ExtraFieldPolicy::Fail,
            ..EvolutionPolicy::default()
        };
        let err = s.evolve(&data, &[], fail).unwrap_err();
        assert_eq!(err.to_string(), "fields not in the schema: `sku`, `a.b`");

        let add = EvolutionPolicy {
            extra_fields: ExtraFieldPolicy::Add,
            ..EvolutionPolicy::default()
        };
        let e = s.evolve(&data, &[sample()], add).unwrap();
        assert_eq!(e.added, seen(&["sku", "a.b"]));
        let new: Vec<(&str, &str, String, bool)> = e.schema.columns[4..]
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.source.as_str(),
                    c.ty.to_string(),
                    c.nullable,
                )
            })
            .collect();
        assert_eq!(
            new,
            vec![
                ("sku", "sku", "integer".to_string(), true),
                ("a.b", "/a.b", "boolean".to_string(), true),
            ]
        );
        assert_eq!(e.schema.version, 3);
        assert_ne!(e.schema.fingerprint(), s.fingerprint());
        e.schema.validate().unwrap();
        assert_eq!(e.schema.source_fields()[4..], seen(&["sku", "a.b"]));
        // Nothing extra: the same schema, the same fingerprint.
        let e = s
            .evolve(&seen(&["name", "price", "address", "rating"]), &[], add)
            .unwrap();
        assert_eq!(e.schema.fingerprint(), s.fingerprint());
    }

    #[test]
    fn missing_fields_per_policy() {
        let s = schema();
        let err = s
            .evolve(&seen(&["name", "address"]), &[], EvolutionPolicy::default())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "non-nullable columns without a default have no field in the data: `price` (field `price`)"
        );
        let mut with_default = s.clone();
        with_default.columns[1].default = Some("0".into());
        let e = with_default
            .evolve(&seen(&["name"]), &[], EvolutionPolicy::default())
            .unwrap();
        assert_eq!(e.missing, seen(&["price", "address.city", "rating"]));
        let fail = EvolutionPolicy {
            missing_fields: MissingFieldPolicy::Fail,
            ..EvolutionPolicy::default()
        };
        let err = with_default
            .evolve(&seen(&["name", "price"]), &[], fail)
            .unwrap_err();
        assert_eq!(
            err,
            EvolutionError::MissingFields {
                fields: seen(&["address.city", "rating"])
            }
        );
        // A CSV header naming the whole dotted source counts as present.
        assert!(
            with_default
                .evolve(
                    &seen(&["name", "price", "address.city", "rating"]),
                    &[],
                    fail
                )
                .is_ok()
        );
    }

    #[test]
    fn policies_deserialize() {
        let p: EvolutionPolicy =
            serde_json::from_str(r#"{"extra_fields": "add", "missing_fields": "fail"}"#).unwrap();
        assert_eq!(p.extra_fields, ExtraFieldPolicy::Add);
        assert_eq!(p.missing_fields, MissingFieldPolicy::Fail);
        assert_eq!(
            serde_json::from_str::<EvolutionPolicy>("{}").unwrap(),
            EvolutionPolicy::default()
        );
    }

    #[test]
    fn json_keys_of_a_hostile_prefix_are_scanned_in_linear_time_and_capped() {
        // ~95k distinct keys in 1 MiB, spread over rows of 1000 keys each.
        let mut body = String::from("[");
        let mut n = 0;
        while body.len() < (1 << 20) - 20_000 {
            body.push_str(if n == 0 { "{" } else { ",{" });
            for k in 0..1000 {
                if k > 0 {
                    body.push(',');
                }
                body.push_str(&format!("\"k{}\":0", n * 1000 + k));
            }
            body.push('}');
            n += 1;
        }
        assert!(n * 1000 > 70_000, "{n}");
        let started = std::time::Instant::now();
        let keys = json_record_keys(body.as_bytes(), &[], usize::MAX);
        let elapsed = started.elapsed();
        assert_eq!(keys.len(), crate::decode::MAX_COLUMNS + 1);
        assert_eq!(keys[0], "k0");
        assert_eq!(keys[crate::decode::MAX_COLUMNS], "k10000");
        assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
    }

    #[test]
    fn json_keys_from_the_body_start() {
        let fields = seen(&["name"]);
        let array = br#" [ {"name": "a", "price": 1}, {"name": "b", "sku": {"x": [1]}}, {"name": "c", "late": 1"#;
        assert_eq!(
            json_record_keys(array, &fields, 10),
            seen(&["name", "price", "sku"])
        );
        assert_eq!(
            json_record_keys(array, &fields, 1),
            seen(&["name", "price"])
        );
        let ndjson = b"{\"a\": 1}\n{\"b\": null}\n{\"c\"";
        assert_eq!(json_record_keys(ndjson, &fields, 10), seen(&["a", "b"]));
        let wrapped =
            "\u{feff}{\"success\": true, \"data\": [{\"k\": \"é\"}, {\"m\": 2}]}".as_bytes();
        assert_eq!(json_record_keys(wrapped, &fields, 10), seen(&["k", "m"]));
        // A row whose listed field comes before a `data` array is a row, not a wrapper.
        let row = br#"{"name": "x", "data": [1]}"#;
        assert_eq!(json_record_keys(row, &fields, 10), seen(&["name", "data"]));
        // Cut inside a multi-byte character: the valid prefix is used.
        let cut = "[{\"é\": 1}, {\"ü".as_bytes();
        assert_eq!(
            json_record_keys(&cut[..cut.len() - 1], &fields, 10),
            seen(&["é"])
        );
        assert!(json_record_keys(b"<html>", &fields, 10).is_empty());
        assert!(json_record_keys(b"", &fields, 10).is_empty());
    }
}
