//! Decoding of Titan's JSON envelope: `{success:true,data}`, `{success:false,
//! error:{code,message}}`, the CDN's bare `{"error":"…"}`, and list pages whose
//! `data` is a bare array or an object wrapping the items. Pure functions over
//! bytes; invariant: anything that is not the envelope is an `Err(detail)`.

use serde::Deserialize;
use serde_json::{Map, Value};

/// Keys under which a wrapped list may hold its items, in lookup order.
const ITEM_KEYS: [&str; 6] = [
    "items",
    "tasks",
    "executions",
    "datasets",
    "data",
    "results",
];

/// A decoded envelope.
#[derive(Debug, PartialEq)]
pub(crate) enum Envelope {
    Success {
        data: Value,
        /// Envelope-level siblings of `data` (`total`, `pagination`, …).
        siblings: Map<String, Value>,
    },
    Failure {
        code: Option<String>,
        message: Option<String>,
    },
}

/// One page of a list endpoint.
#[derive(Debug, PartialEq)]
pub(crate) struct ListPage {
    pub items: Vec<Value>,
    /// Total item count, if the server reports one.
    pub total: Option<u64>,
    /// The page size the server actually applied, if it reports one.
    pub limit: Option<u64>,
}

#[derive(Deserialize)]
struct Raw {
    success: Option<bool>,
    data: Option<Value>,
    error: Option<Value>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// Decodes an envelope; `Err` carries a short reason for a Protocol error.
pub(crate) fn parse(body: &[u8]) -> Result<Envelope, String> {
    let raw: Raw = match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => serde_json::from_value(v).map_err(|e| e.to_string())?,
        Ok(_) => return Err("body is JSON but not an envelope object".into()),
        Err(e) => return Err(format!("body is not valid JSON ({e})")),
    };
    match (raw.success, raw.data, raw.error) {
        (Some(true), Some(data), _) => Ok(Envelope::Success {
            data,
            siblings: raw.rest,
        }),
        (Some(true), None, _) => Err("envelope has `success: true` but no `data`".into()),
        (Some(false), _, error) | (None, _, error @ Some(_)) => {
            let (code, message) = error_fields(error.as_ref());
            Ok(Envelope::Failure { code, message })
        }
        (None, _, None) => Err("body has no `success` field (not the Titan envelope)".into()),
    }
}

/// Code and message from a non-2xx body: the envelope, the CDN's bare
/// `{"error":"…"}`, or a plain `{"message":"…"}`. Anything else (HTML from a
/// proxy, empty) yields nothing; the HTTP status still classifies the error.
pub(crate) fn error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    match obj.get("error") {
        Some(e) => error_fields(Some(e)),
        None => (None, obj.get("message").and_then(as_text)),
    }
}

fn error_fields(error: Option<&Value>) -> (Option<String>, Option<String>) {
    match error {
        Some(Value::Object(e)) => (
            e.get("code").and_then(as_text),
            e.get("message").and_then(as_text),
        ),
        Some(Value::String(m)) => (None, Some(m.clone())),
        _ => (None, None),
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The items of a list page from a successful envelope's `data` (bare array or
/// a wrapping object) plus `total`/`limit` found in `data`, `data.pagination`,
/// `data.meta`, or the envelope's siblings.
pub(crate) fn list_page(data: Value, siblings: &Map<String, Value>) -> Result<ListPage, String> {
    let (items, wrapper) = match data {
        Value::Array(items) => (items, None),
        Value::Object(mut obj) => {
            let key = ITEM_KEYS
                .iter()
                .find(|k| obj.get(**k).is_some_and(Value::is_array))
                .ok_or_else(|| {
                    format!(
                        "list `data` is an object without an items array (looked for {})",
                        ITEM_KEYS.join(", ")
                    )
                })?;
            let Some(Value::Array(items)) = obj.remove(*key) else {
                return Err("list items vanished while decoding".into());
            };
            (items, Some(obj))
        }
        Value::Null => return Err("list `data` is null".into()),
        other => {
            return Err(format!(
                "list `data` is a {}, not an array",
                type_name(&other)
            ));
        }
    };
    let places: Vec<&Map<String, Value>> = wrapper.iter().chain(Some(siblings)).collect();
    Ok(ListPage {
        items,
        total: find_count(&places, "total"),
        limit: find_count(&places, "limit"),
    })
}

/// Looks for `key` directly in each map, then under `pagination` and `meta`.
fn find_count(places: &[&Map<String, Value>], key: &str) -> Option<u64> {
    places.iter().find_map(|m| {
        count(m.get(key)).or_else(|| {
            ["pagination", "meta"]
                .iter()
                .find_map(|p| count(m.get(*p).and_then(|v| v.get(key))))
        })
    })
}

fn count(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok_data(body: &str) -> (Value, Map<String, Value>) {
        match parse(body.as_bytes()) {
            Ok(Envelope::Success { data, siblings }) => (data, siblings),
            other => panic!("expected success, got {other:?}"),
        }
    }

    #[test]
    fn success_envelope() {
        let (data, siblings) = ok_data(r#"{"success":true,"data":{"id":"t1"},"request_id":"r"}"#);
        assert_eq!(data, json!({"id": "t1"}));
        assert_eq!(siblings.get("request_id"), Some(&json!("r")));
    }

    #[test]
    fn error_envelope() {
        let env =
            parse(br#"{"success":false,"error":{"code":"NOT_FOUND","message":"no such task"}}"#);
        assert_eq!(
            env,
            Ok(Envelope::Failure {
                code: Some("NOT_FOUND".into()),
                message: Some("no such task".into())
            })
        );
        // `error` without `success` is still a failure; a string error is a message.
        let env = parse(br#"{"error":"token expired"}"#);
        assert_eq!(
            env,
            Ok(Envelope::Failure {
                code: None,
                message: Some("token expired".into())
            })
        );
    }

    #[test]
    fn not_an_envelope() {
        let table: [(&[u8], &str); 6] = [
            (br#"{"success":true}"#, "no `data`"),
            (br#"{"id":"t1"}"#, "no `success`"),
            (br#"[1,2]"#, "not an envelope object"),
            (b"<!doctype html><html>login</html>", "not valid JSON"),
            (b"", "not valid JSON"),
            (br#"{"success":true,"data":"#, "not valid JSON"),
        ];
        for (body, want) in table {
            let err = parse(body).expect_err("must be rejected");
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }

    #[test]
    fn error_bodies_of_every_shape() {
        let s = |v: &str| Some(v.to_owned());
        type CodeMsg = (Option<String>, Option<String>);
        let table: [(&[u8], CodeMsg); 6] = [
            (
                br#"{"success":false,"error":{"code":"FORBIDDEN","message":"scope"}}"#,
                (s("FORBIDDEN"), s("scope")),
            ),
            (
                br#"{"error":"media token expired"}"#,
                (None, s("media token expired")),
            ),
            (br#"{"message":"Bad gateway"}"#, (None, s("Bad gateway"))),
            (br#"{"error":{"code":429}}"#, (s("429"), None)),
            (b"<html>502</html>", (None, None)),
            (b"", (None, None)),
        ];
        for (body, want) in table {
            assert_eq!(error_body(body), want, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn bare_array_list() {
        let (data, sib) = ok_data(r#"{"success":true,"data":[{"id":"a"},{"id":"b"}],"total":7}"#);
        let page = list_page(data, &sib).expect("list");
        assert_eq!(page.items, vec![json!({"id":"a"}), json!({"id":"b"})]);
        assert_eq!(page.total, Some(7));
        assert_eq!(page.limit, None);
    }

    #[test]
    fn wrapped_lists_under_every_key() {
        for key in ITEM_KEYS {
            let body = format!(
                r#"{{"success":true,"data":{{"{key}":[{{"id":"x"}}],"total":"3","limit":50}}}}"#
            );
            let (data, sib) = ok_data(&body);
            let page = list_page(data, &sib).expect("list");
            assert_eq!(page.items, vec![json!({"id":"x"})], "key {key}");
            assert_eq!((page.total, page.limit), (Some(3), Some(50)), "key {key}");
        }
        let (data, sib) =
            ok_data(r#"{"success":true,"data":{"items":[],"pagination":{"total":0,"limit":100}}}"#);
        let page = list_page(data, &sib).expect("list");
        assert_eq!(
            (page.items.len(), page.total, page.limit),
            (0, Some(0), Some(100))
        );
        let (data, sib) = ok_data(r#"{"success":true,"data":[],"meta":{"total":12}}"#);
        assert_eq!(list_page(data, &sib).expect("list").total, Some(12));
    }

    #[test]
    fn list_data_that_is_not_a_list() {
        let table = [
            (json!(null), "null"),
            (json!("x"), "string"),
            (json!({"count": 3}), "without an items array"),
            (json!({"items": "nope"}), "without an items array"),
        ];
        for (data, want) in table {
            let err = list_page(data, &Map::new()).expect_err("must be rejected");
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }
}
