//! The per-execution manifest: the commit record of an ingested execution.
//!
//! It is written last, after every part is in place, so its presence means "this
//! execution's data is complete". A re-run skips executions that have one; readers can
//! use it to tell complete data from partial.

use serde::{Deserialize, Serialize};

/// Manifest format version.
pub const MANIFEST_VERSION: u32 = 1;

/// What happened to the execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManifestStatus {
    /// The rows are in the listed files.
    Ingested,
    /// The execution ended without results (failed or cancelled on Titan); recorded so
    /// re-runs don't wait for it again. No files.
    NoResults,
}

/// One Parquet file of the execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Key relative to the store root.
    pub path: String,
    /// This execution's rows in the file.
    pub rows: u64,
    /// Size of the whole file (for a `shared` file, with the other executions' rows).
    pub bytes: u64,
    /// This file also holds other executions' rows (a combined file of many small
    /// executions, `combined_<group>.parquet`); select this execution's rows by
    /// `_titan_execution_id`. Absent (false) for a file of this execution alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// The commit record of one execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub status: ManifestStatus,
    pub dataset: String,
    pub task_id: String,
    pub execution_id: String,
    /// Titan's terminal status (`completed`, `completed_with_errors`, `failed`, `cancelled`).
    pub execution_status: String,
    /// `json` or `csv`.
    pub format: String,
    pub files: Vec<ManifestFile>,
    /// Rows written to the files.
    pub rows: u64,
    /// Records decoded from the export.
    pub records_read: u64,
    /// Records the platform said the export holds, when it said.
    pub source_record_count: Option<u64>,
    pub schema_fingerprint: String,
    /// The target schema (as in a schema file), so a reader knows what the columns mean.
    pub schema: serde_json::Value,
    pub committed_at: String,
    pub connector_version: String,
    /// Rows that did not fit the schema and were quarantined or skipped.
    #[serde(default)]
    pub rejected_rows: u64,
    /// Where quarantined rows are (JSON Lines), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejects_path: Option<String>,
    /// Media files fetched for the execution's rows, if it has media columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<ManifestMedia>,
}

/// The media of one execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestMedia {
    /// The media store (without credentials).
    pub store: String,
    pub files: Vec<crate::media::MediaRecord>,
    pub bytes: u64,
    /// Values that could not be fetched; their rows carry the error.
    pub failed: u64,
}

impl Manifest {
    /// Serialised form (pretty JSON, newline-terminated).
    pub fn to_bytes(&self) -> bytes::Bytes {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        bytes::Bytes::from(v)
    }

    /// Parses a stored manifest.
    pub fn from_slice(b: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let m = Manifest {
            manifest_version: MANIFEST_VERSION,
            status: ManifestStatus::Ingested,
            dataset: "products".into(),
            task_id: "t".into(),
            execution_id: "e".into(),
            execution_status: "completed".into(),
            format: "json".into(),
            files: vec![ManifestFile {
                path: "products/task_id=t/date=2026-01-01/e-0.parquet".into(),
                rows: 10,
                bytes: 1234,
                shared: false,
            }],
            rows: 10,
            records_read: 10,
            source_record_count: Some(10),
            schema_fingerprint: "abc".into(),
            schema: serde_json::json!({"columns": []}),
            committed_at: "2026-01-01T00:00:00Z".into(),
            connector_version: "0.1.0".into(),
            rejected_rows: 0,
            rejects_path: None,
            media: None,
        };
        let back = Manifest::from_slice(&m.to_bytes()).unwrap();
        assert_eq!(back, m);
        let text = String::from_utf8(m.to_bytes().to_vec()).unwrap();
        assert!(text.contains("\"status\": \"ingested\""), "{text}");
        // A file of the execution alone says nothing about sharing: older readers and
        // older manifests look the same.
        assert!(!text.contains("shared"), "{text}");
    }

    #[test]
    fn a_shared_file_says_so_and_older_manifests_read_as_not_shared() {
        let file = ManifestFile {
            path: "p/task_id=t/date=2026-01-01/combined_g.parquet".into(),
            rows: 3,
            bytes: 99,
            shared: true,
        };
        let v = serde_json::to_value(&file).unwrap();
        assert_eq!(v["shared"], true);
        let back: ManifestFile = serde_json::from_value(v).unwrap();
        assert_eq!(back, file);
        let old: ManifestFile =
            serde_json::from_str(r#"{"path": "a-0.parquet", "rows": 1, "bytes": 2}"#).unwrap();
        assert!(!old.shared);
    }
}
