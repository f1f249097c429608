//! Typed views of Titan's JSON objects (tasks, executions, results metadata,
//! datasets). Lenient by design: every field defaults, ids may be strings or
//! numbers, and unknown keys are kept in `extra` so nothing the server sends is lost.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A scraping task (`GET /api/v1/tasks/:id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Task {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Task lifecycle (`active`, `paused`, …), not an execution status.
    pub status: Option<String>,
    /// JSON-Schema-like description of one result row; media fields carry `"format": "media"`.
    pub output_schema: Option<Value>,
    pub created_at: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One run of a task (`GET /api/v1/executions/:id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Execution {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    #[serde(deserialize_with = "opt_id_string")]
    pub task_id: Option<String>,
    pub status: ExecutionStatus,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    /// A string or `{code, message}`; shape not documented.
    pub error: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Execution lifecycle. `completed_with_errors` is terminal with (partial)
/// results; anything unrecognised is `Other` and treated as non-terminal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExecutionStatus {
    Queued,
    Running,
    Paused,
    Completed,
    CompletedWithErrors,
    Failed,
    Cancelled,
    /// As sent by the server (empty when the field was missing or null).
    Other(String),
}

impl Default for ExecutionStatus {
    fn default() -> Self {
        ExecutionStatus::Other(String::new())
    }
}

impl ExecutionStatus {
    /// Completed, completed with errors, failed or cancelled: polling can stop.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            ExecutionStatus::Completed
                | ExecutionStatus::CompletedWithErrors
                | ExecutionStatus::Failed
                | ExecutionStatus::Cancelled
        )
    }

    /// Whether an export is worth attempting: completed, with or without errors.
    pub fn has_results(&self) -> bool {
        matches!(
            self,
            ExecutionStatus::Completed | ExecutionStatus::CompletedWithErrors
        )
    }

    /// The wire name (`completed_with_errors`), or the raw value for `Other`.
    pub fn as_str(&self) -> &str {
        match self {
            ExecutionStatus::Queued => "queued",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Paused => "paused",
            ExecutionStatus::Completed => "completed",
            ExecutionStatus::CompletedWithErrors => "completed_with_errors",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Cancelled => "cancelled",
            ExecutionStatus::Other(s) => s,
        }
    }

    /// Case-insensitive; `-`/space count as `_`; `canceled` is accepted.
    pub fn parse(s: &str) -> Self {
        let norm = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        match norm.as_str() {
            "queued" => ExecutionStatus::Queued,
            "running" => ExecutionStatus::Running,
            "paused" => ExecutionStatus::Paused,
            "completed" => ExecutionStatus::Completed,
            "completed_with_errors" => ExecutionStatus::CompletedWithErrors,
            "failed" => ExecutionStatus::Failed,
            "cancelled" | "canceled" => ExecutionStatus::Cancelled,
            _ => ExecutionStatus::Other(s.to_owned()),
        }
    }
}

impl FromStr for ExecutionStatus {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ExecutionStatus::parse(s))
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ExecutionStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ExecutionStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<String>::deserialize(d)?
            .map(|s| ExecutionStatus::parse(&s))
            .unwrap_or_default())
    }
}

/// Results metadata (`GET /api/v1/executions/:id/results`): a readiness hint only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResultsMeta {
    pub available: Option<bool>,
    pub record_count: Option<u64>,
    #[serde(deserialize_with = "null_default")]
    pub formats: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Dataset metadata of an execution or task; an empty list is normal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dataset {
    #[serde(deserialize_with = "opt_id_string")]
    pub id: Option<String>,
    pub name: Option<String>,
    pub record_count: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `null` → `T::default()`.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdRepr {
    S(String),
    U(u64),
    I(i64),
}

fn opt_id_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<IdRepr>::deserialize(d)?.map(|id| match id {
        IdRepr::S(s) => s,
        IdRepr::U(n) => n.to_string(),
        IdRepr::I(n) => n.to_string(),
    }))
}

fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(opt_id_string(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_classes() {
        use ExecutionStatus::*;
        // (wire, parsed, terminal, has_results)
        let table = [
            ("queued", Queued, false, false),
            ("running", Running, false, false),
            ("paused", Paused, false, false),
            ("completed", Completed, true, true),
            ("completed_with_errors", CompletedWithErrors, true, true),
            ("failed", Failed, true, false),
            ("cancelled", Cancelled, true, false),
            ("CANCELED", Cancelled, true, false),
            ("Completed-With-Errors", CompletedWithErrors, true, true),
            ("provisioning", Other("provisioning".into()), false, false),
        ];
        for (wire, want, terminal, results) in table {
            let got = ExecutionStatus::parse(wire);
            assert_eq!(got, want, "{wire}");
            assert_eq!(got.is_terminal(), terminal, "{wire}");
            assert_eq!(got.has_results(), results, "{wire}");
        }
        assert_eq!(CompletedWithErrors.as_str(), "completed_with_errors");
        assert_eq!(Other("weird".into()).to_string(), "weird");
    }

    #[test]
    fn execution_is_lenient_and_keeps_unknown_keys() {
        let e: Execution = serde_json::from_value(json!({
            "id": 42, "task_id": "t1", "status": "running", "phase": "scraping",
            "completed_at": null, "error": {"code": "X"}
        }))
        .expect("lenient execution");
        assert_eq!(e.id, "42");
        assert_eq!(e.task_id.as_deref(), Some("t1"));
        assert_eq!(e.status, ExecutionStatus::Running);
        assert_eq!(e.completed_at, None);
        assert_eq!(e.error, Some(json!({"code": "X"})));
        assert_eq!(e.extra.get("phase"), Some(&json!("scraping")));
        assert_eq!(e.extra.len(), 1);

        let bare: Execution = serde_json::from_value(json!({"status": null})).expect("bare");
        assert_eq!(bare.id, "");
        assert_eq!(bare.status, ExecutionStatus::Other(String::new()));
    }

    #[test]
    fn task_meta_and_dataset_defaults() {
        let t: Task = serde_json::from_value(json!({
            "id": "t1", "name": null, "output_schema": {"type": "object"}, "schedule": "0 * * * *"
        }))
        .expect("task");
        assert_eq!((t.id.as_str(), t.name.as_str()), ("t1", ""));
        assert_eq!(t.output_schema, Some(json!({"type": "object"})));
        assert_eq!(t.extra.get("schedule"), Some(&json!("0 * * * *")));

        let m: ResultsMeta =
            serde_json::from_value(json!({"available": true, "record_count": 3, "formats": null}))
                .expect("meta");
        assert_eq!((m.available, m.record_count), (Some(true), Some(3)));
        assert!(m.formats.is_empty());

        let d: Dataset =
            serde_json::from_value(json!({"id": 7, "format": "parquet"})).expect("dataset");
        assert_eq!(d.id.as_deref(), Some("7"));
        assert_eq!(d.extra.get("format"), Some(&json!("parquet")));
    }

    #[test]
    fn status_round_trips_as_its_wire_name() {
        let e = Execution {
            id: "e1".into(),
            status: ExecutionStatus::CompletedWithErrors,
            ..Execution::default()
        };
        let v = serde_json::to_value(&e).expect("serialize");
        assert_eq!(v["status"], json!("completed_with_errors"));
        let back: Execution = serde_json::from_value(v).expect("deserialize");
        assert_eq!(back, e);
    }
}
