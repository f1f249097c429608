//! Where an execution's rows go: Hive-style partition folders and deterministic file names.
//!
//! Layout: `<dataset>/task_id=<task>/date=<YYYY-MM-DD>/<execution>-<n>.parquet`. Every
//! segment goes through `object_store::path::PathPart`, which percent-encodes `/`, `..`,
//! control characters and the like, so a value from the API can never escape its folder.
//! The names are a pure function of (dataset, task, date, execution, part number): a re-run
//! overwrites what a crashed run left instead of duplicating it.

use object_store::path::{Path, PathPart};

/// Folder (under a dataset) holding one manifest per ingested execution.
pub const MANIFESTS_DIR: &str = "_manifests";
/// Folder (under a dataset) where parts are staged before they are moved into place.
pub const STAGING_DIR: &str = "_staging";
/// Folder (under a dataset) holding the intent records of group commits (combined files
/// of many small executions) and the combined files while they are staged.
pub const GROUPS_DIR: &str = "_groups";
/// Start of a combined file's name: `combined_<group>.parquet`. It has no `-`, so no
/// execution's part name (`<execution>-<n>.parquet`) can ever be a combined file's name.
pub const COMBINED_PREFIX: &str = "combined_";

/// The partition of one execution's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKey {
    pub dataset: String,
    pub task_id: String,
    /// `YYYY-MM-DD` (UTC) of the execution.
    pub date: String,
}

impl PartitionKey {
    /// `<dataset>/task_id=<task>/date=<date>`.
    pub fn prefix(&self) -> Path {
        Path::from_iter([
            PathPart::from(self.dataset.as_str()),
            PathPart::from(format!("task_id={}", self.task_id)),
            PathPart::from(format!("date={}", self.date)),
        ])
    }

    /// The final location of the combined file of group `group_id` (a simple UUID):
    /// `<partition>/combined_<group>.parquet`, never matched by [`is_part_of`].
    pub fn combined_path(&self, group_id: &str) -> Path {
        self.prefix().join(PathPart::from(format!(
            "{COMBINED_PREFIX}{}.parquet",
            group_id.replace('-', "_")
        )))
    }

    /// The final location of part `n` of `execution_id`.
    pub fn part_path(&self, execution_id: &str, n: usize) -> Path {
        self.prefix()
            .join(PathPart::from(format!("{execution_id}-{n}.parquet")))
    }
}

/// Where the parts of one unit of output (an execution, or a converted file) are written
/// and where they land. Staged (the Parquet folder):
/// `<staging_dir>/part-<n>.parquet.tmp` → `<final_dir>/<stem>-<n>.parquet`. Direct (a
/// table format whose log makes files visible): written at
/// `<final_dir>/<stem>-<attempt>-<n>.parquet` and never moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartNames {
    /// This attempt's temporary files (staged parts, quarantined rows).
    pub staging_dir: Path,
    pub final_dir: Path,
    /// The execution id (or the converted file's name); also in each file's metadata.
    pub stem: String,
    /// `Some(run id)`: parts go straight to their final, attempt-unique names.
    pub attempt: Option<String>,
}

impl PartNames {
    /// The names of an execution's staged parts in its partition; `run_id` keeps
    /// concurrent or crashed runs' staging areas apart.
    pub fn for_execution(key: &PartitionKey, execution_id: &str, run_id: &str) -> Self {
        PartNames {
            staging_dir: staging_prefix(&key.dataset, execution_id).join(run_id),
            final_dir: key.prefix(),
            stem: execution_id.to_string(),
            attempt: None,
        }
    }

    /// The names of an execution's parts written straight to their final place, unique to
    /// this attempt (`run_id`): a retry or a racing process never overwrites them.
    pub fn direct(key: &PartitionKey, execution_id: &str, run_id: &str) -> Self {
        PartNames {
            attempt: Some(run_id.to_string()),
            ..Self::for_execution(key, execution_id, run_id)
        }
    }

    /// Where part `n` is written: its staged location, or its final one when direct.
    pub fn staging(&self, n: usize) -> Path {
        if self.attempt.is_some() {
            return self.final_path(n);
        }
        self.staging_dir
            .clone()
            .join(PathPart::from(format!("part-{n}.parquet.tmp")))
    }

    /// Final location of part `n`.
    pub fn final_path(&self, n: usize) -> Path {
        let name = match &self.attempt {
            Some(run) => format!("{}-{run}-{n}.parquet", self.stem),
            None => format!("{}-{n}.parquet", self.stem),
        };
        self.final_dir.clone().join(PathPart::from(name))
    }
}

/// The partition date of an execution without any timestamp.
pub const UNKNOWN_DATE: &str = "1970-01-01";

/// The partition date of an execution: the UTC day it was created, else the day it
/// started or completed, else [`UNKNOWN_DATE`]. Never the day of the run: an execution
/// must land in the same folder whenever it is (re-)ingested, or a crashed run's leftovers
/// in one day's folder would sit beside a later run's copy in another's.
pub fn execution_date(e: &crate::api::Execution) -> String {
    [&e.created_at, &e.started_at, &e.completed_at]
        .into_iter()
        .flatten()
        .find_map(|t| utc_date(t))
        .unwrap_or_else(|| UNKNOWN_DATE.to_string())
}

/// `<dataset>/task_id=<task>`: every partition of a task, for orphan clean-up.
pub fn task_prefix(dataset: &str, task_id: &str) -> Path {
    Path::from_iter([
        PathPart::from(dataset),
        PathPart::from(format!("task_id={task_id}")),
    ])
}

/// `<dataset>/_manifests/<task>/<execution>.json`.
pub fn manifest_path(dataset: &str, task_id: &str, execution_id: &str) -> Path {
    Path::from_iter([
        PathPart::from(dataset),
        PathPart::from(MANIFESTS_DIR),
        PathPart::from(task_id),
        PathPart::from(format!("{execution_id}.json")),
    ])
}

/// `<dataset>/_manifests/<task>`: every manifest of a task, listed once when planning.
pub fn manifests_prefix(dataset: &str, task_id: &str) -> Path {
    Path::from_iter([
        PathPart::from(dataset),
        PathPart::from(MANIFESTS_DIR),
        PathPart::from(task_id),
    ])
}

/// `<dataset>/_groups`: the intents of group commits and their staged combined files.
pub fn groups_prefix(dataset: &str) -> Path {
    Path::from_iter([PathPart::from(dataset), PathPart::from(GROUPS_DIR)])
}

/// `<dataset>/_groups/<group>.json`: the intent record of one group commit.
pub fn group_intent_path(dataset: &str, group_id: &str) -> Path {
    groups_prefix(dataset).join(PathPart::from(format!("{group_id}.json")))
}

/// `<dataset>/_groups/<group>`: where the combined file of a group is staged.
pub fn group_staging_dir(dataset: &str, group_id: &str) -> Path {
    groups_prefix(dataset).join(PathPart::from(group_id))
}

/// Whether `location` is a combined file: the rows of several executions, told apart by
/// `_titan_execution_id`. `combined_<group>.parquet` in the Parquet folder;
/// `combined-<group>-<n>.parquet` in a Delta table, whose files are written straight to
/// their final, attempt-unique names (the group id, a simple UUID, being the attempt).
/// The Delta form is also what an execution named `combined` would be called there; the
/// name only feeds the report's count, the log says which executions a file holds.
pub fn is_combined(location: &Path) -> bool {
    location.filename().is_some_and(|name| {
        let Some(stem) = name.strip_suffix(".parquet") else {
            return false;
        };
        if let Some(group) = stem.strip_prefix(COMBINED_PREFIX) {
            return !group.contains('-');
        }
        stem.strip_prefix("combined-")
            .and_then(|rest| rest.split_once('-'))
            .is_some_and(|(group, n)| {
                group.len() == 32
                    && group.bytes().all(|b| b.is_ascii_hexdigit())
                    && !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
            })
    })
}

/// `<dataset>/_rejects/task_id=<task>/<execution>.jsonl`: quarantined rows.
pub fn rejects_path(dataset: &str, task_id: &str, execution_id: &str) -> Path {
    Path::from_iter([
        PathPart::from(dataset),
        PathPart::from("_rejects"),
        PathPart::from(format!("task_id={task_id}")),
        PathPart::from(format!("{execution_id}.jsonl")),
    ])
}

/// `<dataset>/_staging/<execution>`: everything staged for an execution by any run. Staged
/// parts end in `.tmp`, invisible to `**/*.parquet` globs and to readers that skip `_`-folders.
pub fn staging_prefix(dataset: &str, execution_id: &str) -> Path {
    Path::from_iter([
        PathPart::from(dataset),
        PathPart::from(STAGING_DIR),
        PathPart::from(execution_id),
    ])
}

/// Whether `location` is a final part of `execution_id` (named `<execution>-<n>.parquet`).
pub fn is_part_of(location: &Path, execution_id: &str) -> bool {
    let Some(name) = location.filename() else {
        return false;
    };
    let encoded = PathPart::from(execution_id);
    let Some(rest) = name.strip_prefix(encoded.as_ref()) else {
        return false;
    };
    rest.strip_prefix('-')
        .and_then(|r| r.strip_suffix(".parquet"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The UTC date (`YYYY-MM-DD`) of an RFC 3339 timestamp, if it parses.
pub fn utc_date(rfc3339: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(rfc3339.trim())
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(task: &str) -> PartitionKey {
        PartitionKey {
            dataset: "products".into(),
            task_id: task.into(),
            date: "2026-11-28".into(),
        }
    }

    #[test]
    fn layout_is_hive_style_and_deterministic() {
        let k = key("7f1c");
        assert_eq!(
            k.part_path("0b6e", 2).as_ref(),
            "products/task_id=7f1c/date=2026-11-28/0b6e-2.parquet"
        );
        assert_eq!(
            manifest_path("products", "7f1c", "0b6e").as_ref(),
            "products/_manifests/7f1c/0b6e.json"
        );
        let names = PartNames::for_execution(&k, "0b6e", "r1");
        assert_eq!(
            names.staging(0).as_ref(),
            "products/_staging/0b6e/r1/part-0.parquet.tmp"
        );
        assert_eq!(names.final_path(3), k.part_path("0b6e", 3));
    }

    #[test]
    fn hostile_values_cannot_escape_their_segment() {
        for hostile in ["../../etc", "a/b", "x\0y", "..", "."] {
            let p = key(hostile).part_path(hostile, 0);
            let parts: Vec<_> = p.parts().collect();
            assert_eq!(parts.len(), 4, "{hostile:?} → {p}");
            assert!(
                parts
                    .iter()
                    .all(|s| s.as_ref() != ".." && s.as_ref() != "."),
                "{p}"
            );
            assert!(p.as_ref().starts_with("products/task_id="), "{p}");
        }
        let long = "é".repeat(2048);
        let p = key(&long).part_path(&long, 0);
        assert_eq!(p.parts().count(), 4);
    }

    #[test]
    fn recognises_parts_of_one_execution_only() {
        let k = key("t");
        assert!(is_part_of(&k.part_path("e1", 0), "e1"));
        assert!(is_part_of(&k.part_path("e1", 12), "e1"));
        assert!(!is_part_of(&k.part_path("e1", 0), "e"));
        assert!(!is_part_of(&k.part_path("e10", 0), "e1"));
        assert!(!is_part_of(&Path::from("d/e1-0.parquet.tmp"), "e1"));
    }

    #[test]
    fn combined_files_are_never_parts_of_an_execution() {
        let k = key("t");
        let group = uuid::Uuid::new_v4().simple().to_string();
        let combined = k.combined_path(&group);
        assert_eq!(
            combined.as_ref(),
            format!("products/task_id=t/date=2026-11-28/combined_{group}.parquet")
        );
        assert!(is_combined(&combined));
        // Whatever an execution is called — even after the combined file, or all digits —
        // its part names end in `-<n>.parquet`, and a combined name has no `-` at all.
        let name = combined.filename().unwrap().to_string();
        let stem = name.strip_suffix(".parquet").unwrap().to_string();
        for id in [
            "combined".to_string(),
            "combined_".to_string(),
            stem.clone(),
            group.clone(),
            format!("combined_{}", &group[..group.len() - 1]),
            String::new(),
            "0".to_string(),
        ] {
            assert!(!is_part_of(&combined, &id), "{id:?} matched {combined}");
        }
        // A group id that itself holds dashes (a hyphenated UUID) still yields no `-`.
        let hyphenated = k.combined_path("6f1c-22aa-0");
        assert!(!hyphenated.filename().unwrap().contains('-'));
        assert!(!is_part_of(&hyphenated, "combined_6f1c_22aa"));
        assert!(is_combined(&hyphenated));
        // And an execution's parts are not combined files, not even one named like it.
        assert!(!is_combined(&k.part_path("combined_x", 0)));
        assert!(!is_combined(&k.part_path("e1", 0)));
        // A Delta table's combined file: the group id is the attempt of its direct name.
        let direct = PartNames::direct(&k, "combined", &group).final_path(0);
        assert_eq!(
            direct.as_ref(),
            format!("products/task_id=t/date=2026-11-28/combined-{group}-0.parquet")
        );
        assert!(is_combined(&direct));
        for not in [
            "combined-x-0",
            "combined-0",
            &format!("combined-{group}-"),
            &format!("e1-{group}-0"),
        ] {
            let p = k.prefix().join(PathPart::from(format!("{not}.parquet")));
            assert!(!is_combined(&p), "{p}");
        }
        assert_eq!(
            group_intent_path("products", "g1").as_ref(),
            "products/_groups/g1.json"
        );
        assert_eq!(
            manifests_prefix("products", "t").as_ref(),
            "products/_manifests/t"
        );
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(
            utc_date("2026-11-28T23:30:00-02:00").as_deref(),
            Some("2026-11-29")
        );
        assert_eq!(
            utc_date("2026-11-28T10:00:00Z").as_deref(),
            Some("2026-11-28")
        );
        assert_eq!(utc_date("yesterday"), None);
    }

    #[test]
    fn an_execution_lands_on_the_same_day_whenever_it_is_ingested() {
        let e: crate::api::Execution = serde_json::from_value(serde_json::json!({
            "id": "e1", "status": "completed",
            "started_at": "2026-11-28T23:30:00-02:00", "completed_at": "2026-11-30T01:00:00Z"
        }))
        .expect("execution");
        assert_eq!(
            execution_date(&e),
            "2026-11-29",
            "created_at missing: started_at"
        );
        let bare: crate::api::Execution =
            serde_json::from_value(serde_json::json!({"id": "e2", "status": "completed"}))
                .expect("execution");
        // Not the day of the run, which would move it on a re-run.
        assert_eq!(execution_date(&bare), UNKNOWN_DATE);
    }
}
