//! The run report: what a run did, per execution, as JSON for machines (`--report FILE`)
//! and as a short summary for people.

use std::collections::BTreeMap;

use serde::Serialize;

/// Report format version; bump on incompatible changes (added fields are compatible).
pub const REPORT_VERSION: u32 = 1;

/// How one execution ended in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Rows written and committed by this run.
    Ingested,
    /// A manifest already existed: nothing done.
    AlreadyIngested,
    /// Titan ended the execution without results (failed or cancelled).
    NoResults,
    /// This run could not ingest it (see `error`); a re-run will try again.
    Failed,
    /// `--dry-run`: would be awaited and ingested; nothing was done.
    Planned,
    /// Another live process holds the execution's lease (see `leased_by`) and is ingesting
    /// it; left to that process. Not a failure.
    Leased,
}

/// One execution in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionReport {
    pub task_id: String,
    pub execution_id: String,
    pub dataset: String,
    pub outcome: Outcome,
    /// Titan's status when we last saw it.
    pub execution_status: Option<String>,
    pub rows: u64,
    pub records_read: u64,
    pub source_record_count: Option<u64>,
    pub files: Vec<String>,
    pub bytes: u64,
    pub wait_ms: u64,
    pub ingest_ms: u64,
    /// Times the export was downloaded again after a broken or bad body.
    pub retries: u32,
    /// Rows that did not fit the schema (quarantined or skipped, per policy).
    pub rejected_rows: u64,
    /// `rejected_rows` by the reason code of each row's first failing column (`syntax`,
    /// `null`, …); adds up to `rejected_rows`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Media files stored for this execution.
    pub media_files: u64,
    /// Media values that could not be fetched (the error is in the row).
    pub media_failed: u64,
    /// Export fields added as columns (`extra_fields = "add"`): the schema fingerprint changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns_added: Vec<String>,
    /// Export fields left out because the schema has no column for them (`ignore`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields_ignored: Vec<String>,
    /// Schema fields the export did not have (their columns are null or their default).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields_missing: Vec<String>,
    pub error: Option<String>,
    /// `leased`: who holds the lease ("run R on host H, pid P, until T").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leased_by: Option<String>,
}

impl ExecutionReport {
    /// The report of an execution before anything is done to it: `outcome`, Titan's
    /// `execution_status`, no rows, files or counts; callers set what happened.
    pub fn new(
        task_id: &str,
        execution_id: &str,
        dataset: &str,
        outcome: Outcome,
        execution_status: &str,
    ) -> Self {
        ExecutionReport {
            task_id: task_id.to_string(),
            execution_id: execution_id.to_string(),
            dataset: dataset.to_string(),
            outcome,
            execution_status: Some(execution_status.to_string()),
            rows: 0,
            records_read: 0,
            source_record_count: None,
            files: vec![],
            bytes: 0,
            wait_ms: 0,
            ingest_ms: 0,
            retries: 0,
            rejected_rows: 0,
            rejected_by_reason: BTreeMap::new(),
            media_files: 0,
            media_failed: 0,
            columns_added: vec![],
            fields_ignored: vec![],
            fields_missing: vec![],
            error: None,
            leased_by: None,
        }
    }
}

/// A task that could not even be planned (unknown id, bad schema…).
#[derive(Debug, Clone, Serialize)]
pub struct TaskFailure {
    pub task_id: String,
    pub error: String,
}

/// A dataset the run wrote to (or would have), with the target schema its tasks map to:
/// what lineage consumers are told the output looks like.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetReport {
    pub dataset: String,
    /// The tasks planned into it, in config order.
    pub task_ids: Vec<String>,
    /// Fingerprint of the (first planned task's) target schema, as in the manifests.
    pub schema_fingerprint: String,
    /// Its columns, in order (the `_titan_*` lineage columns are not listed).
    pub columns: Vec<ColumnReport>,
}

/// One column of a [`DatasetReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnReport {
    pub name: String,
    /// The schema file's type name (`string`, `integer`, `decimal(10,2)`, …).
    #[serde(rename = "type")]
    pub ty: String,
    pub nullable: bool,
}

impl DatasetReport {
    /// The report entry of `dataset`, mapped by `schema`.
    pub fn new(dataset: &str, task_id: &str, schema: &crate::schema::TargetSchema) -> Self {
        DatasetReport {
            dataset: dataset.to_string(),
            task_ids: vec![task_id.to_string()],
            schema_fingerprint: schema.fingerprint(),
            columns: schema
                .columns
                .iter()
                .map(|c| ColumnReport {
                    name: c.name.clone(),
                    ty: c.ty.to_string(),
                    nullable: c.nullable,
                })
                .collect(),
        }
    }

    /// Adds `task_id`'s plan to `datasets`: a new entry, or its task id on the dataset's
    /// existing one.
    pub fn add(
        datasets: &mut Vec<DatasetReport>,
        dataset: &str,
        task_id: &str,
        schema: &crate::schema::TargetSchema,
    ) {
        match datasets.iter_mut().find(|d| d.dataset == dataset) {
            Some(d) => d.task_ids.push(task_id.to_string()),
            None => datasets.push(DatasetReport::new(dataset, task_id, schema)),
        }
    }
}

/// Sums over the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub executions: usize,
    /// `--dry-run`: executions that would be ingested.
    pub planned: usize,
    pub ingested: usize,
    pub already_ingested: usize,
    pub no_results: usize,
    pub failed: usize,
    /// Executions another process was ingesting (held their lease).
    pub leased: usize,
    pub failed_tasks: usize,
    pub rows: u64,
    pub rejected_rows: u64,
    /// `rejected_rows` by reason code (see [`ExecutionReport::rejected_by_reason`]).
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Files written (a combined file counts once, however many executions it holds).
    pub files: usize,
    /// Of `files`, combined files: the rows of several small executions each.
    pub combined_files: usize,
    pub bytes: u64,
    /// Executions that ended with an outcome (all but `planned`) per second of the run.
    pub executions_per_second: f64,
    pub api_requests: u64,
    pub api_retries: u64,
    /// `api_retries` by cause.
    pub api_retries_by_cause: crate::api::RetryCauses,
    /// 429 answers from the API (retried or not).
    pub api_rate_limited: u64,
    /// Time requests waited for the client's rate budget or a server hold, in ms.
    pub api_throttled_ms: u64,
    /// Time spent resolving tasks into executions before any was awaited, in ms.
    pub plan_ms: u64,
    /// Export downloads repeated after a broken or bad body.
    pub export_retries: u64,
    /// Media downloads of the whole run.
    pub media: crate::media::MediaStats,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub report_version: u32,
    pub connector_version: String,
    pub run_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub store: String,
    /// The datasets the planned tasks map to, with their target schemas.
    pub datasets: Vec<DatasetReport>,
    pub totals: Totals,
    pub tasks_failed: Vec<TaskFailure>,
    /// Stopped by SIGTERM/SIGINT before every execution was processed.
    pub interrupted: bool,
    pub executions: Vec<ExecutionReport>,
}

impl RunReport {
    /// Recomputes `totals` from the entries (API counters are set by the caller).
    pub fn tally(&mut self) {
        let mut t = Totals {
            api_requests: self.totals.api_requests,
            api_retries: self.totals.api_retries,
            api_retries_by_cause: self.totals.api_retries_by_cause,
            api_rate_limited: self.totals.api_rate_limited,
            api_throttled_ms: self.totals.api_throttled_ms,
            plan_ms: self.totals.plan_ms,
            media: self.totals.media,
            ..Totals::default()
        };
        t.executions = self.executions.len();
        t.failed_tasks = self.tasks_failed.len();
        let mut files = std::collections::HashSet::new();
        for e in &self.executions {
            match e.outcome {
                Outcome::Ingested => t.ingested += 1,
                Outcome::AlreadyIngested => t.already_ingested += 1,
                Outcome::Planned => t.planned += 1,
                Outcome::NoResults => t.no_results += 1,
                Outcome::Failed => t.failed += 1,
                Outcome::Leased => t.leased += 1,
            }
            t.export_retries += u64::from(e.retries);
            if e.outcome == Outcome::Ingested {
                t.rows += e.rows;
                t.rejected_rows += e.rejected_rows;
                for (reason, n) in &e.rejected_by_reason {
                    *t.rejected_by_reason.entry(reason.clone()).or_default() += n;
                }
                files.extend(e.files.iter().map(String::as_str));
                t.bytes += e.bytes;
            }
        }
        t.files = files.len();
        t.combined_files = files
            .iter()
            .filter(|f| crate::sink::partition::is_combined(&object_store::path::Path::from(**f)))
            .count();
        if self.duration_ms > 0 {
            let ended = t.executions - t.planned;
            t.executions_per_second = ended as f64 * 1000.0 / self.duration_ms as f64;
        }
        self.totals = t;
    }

    /// True when something was not ingested that should have been: an execution failed
    /// here or on Titan, or a task could not be planned.
    pub fn has_failures(&self) -> bool {
        self.totals.failed > 0 || self.totals.no_results > 0 || self.totals.failed_tasks > 0
    }

    /// A few lines for people.
    pub fn summary(&self) -> String {
        let t = &self.totals;
        let combined = if t.combined_files > 0 {
            format!(" ({} combined)", t.combined_files)
        } else {
            String::new()
        };
        let mut s = format!(
            "{} execution(s): {} ingested ({} rows, {} files{combined}, {}), {} already ingested, {} without results, {} failed",
            t.executions,
            t.ingested,
            t.rows,
            t.files,
            human_bytes(t.bytes),
            t.already_ingested,
            t.no_results,
            t.failed
        );
        if t.leased > 0 {
            s.push_str(&format!(", {} leased by another run", t.leased));
        }
        if self.duration_ms > 0 {
            s.push_str(&format!("; {:.1} executions/s", t.executions_per_second));
        }
        if t.planned > 0 {
            s.push_str(&format!(
                "\ndry run: {} execution(s) would be ingested",
                t.planned
            ));
        }
        for f in &self.tasks_failed {
            s.push_str(&format!("\n  task {}: {}", f.task_id, f.error));
        }
        for e in &self.executions {
            match e.outcome {
                Outcome::Failed => s.push_str(&format!(
                    "\n  execution {} (task {}) failed: {}",
                    e.execution_id,
                    e.task_id,
                    e.error.as_deref().unwrap_or("unknown error")
                )),
                Outcome::Planned => s.push_str(&format!(
                    "\n  would ingest execution {} (task {}, dataset {}, now `{}`)",
                    e.execution_id,
                    e.task_id,
                    e.dataset,
                    e.execution_status.as_deref().unwrap_or("?")
                )),
                Outcome::Leased => s.push_str(&format!(
                    "\n  execution {} (task {}) is being ingested by another {}",
                    e.execution_id,
                    e.task_id,
                    e.leased_by.as_deref().unwrap_or("run")
                )),
                Outcome::NoResults => s.push_str(&format!(
                    "\n  execution {} (task {}) ended `{}` on Titan: no results",
                    e.execution_id,
                    e.task_id,
                    e.execution_status.as_deref().unwrap_or("?")
                )),
                _ => {}
            }
        }
        s
    }
}

/// Now, as reports and manifests write times: RFC 3339, UTC, milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(outcome: Outcome, rows: u64) -> ExecutionReport {
        ExecutionReport {
            rows,
            records_read: rows,
            files: vec!["f".into()],
            bytes: 10,
            ..ExecutionReport::new("t", "e", "d", outcome, "completed")
        }
    }

    #[test]
    fn tally_counts_only_ingested_rows_and_flags_failures() {
        let mut r = RunReport {
            report_version: REPORT_VERSION,
            connector_version: "x".into(),
            run_id: "r".into(),
            started_at: String::new(),
            finished_at: String::new(),
            duration_ms: 0,
            store: "s".into(),
            datasets: vec![],
            totals: Totals::default(),
            tasks_failed: vec![],
            interrupted: false,
            executions: vec![
                exec(Outcome::Ingested, 5),
                exec(Outcome::AlreadyIngested, 7),
            ],
        };
        r.tally();
        assert_eq!(
            (r.totals.rows, r.totals.files, r.totals.ingested),
            (5, 1, 1)
        );
        assert!(!r.has_failures());
        let mut leased = exec(Outcome::Leased, 0);
        leased.leased_by = Some("run r2 on host h, pid 7, until T".into());
        r.executions.push(leased);
        r.tally();
        assert_eq!((r.totals.leased, r.totals.files), (1, 1));
        assert!(
            !r.has_failures(),
            "leased is left to its holder, not a failure"
        );
        assert!(
            r.summary().ends_with(
                ", 1 leased by another run\n  execution e (task t) is being ingested by \
                 another run r2 on host h, pid 7, until T"
            ),
            "{}",
            r.summary()
        );
        r.executions.push(exec(Outcome::Failed, 0));
        r.tally();
        assert!(r.has_failures());
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn tally_sums_rejects_by_reason_of_ingested_executions_and_keeps_api_counters() {
        let mut a = exec(Outcome::Ingested, 10);
        a.rejected_rows = 3;
        a.rejected_by_reason = BTreeMap::from([("syntax".into(), 2), ("null".into(), 1)]);
        let mut b = exec(Outcome::Ingested, 10);
        b.rejected_rows = 1;
        b.rejected_by_reason = BTreeMap::from([("syntax".into(), 1)]);
        // A failed execution's rejects were never committed: not counted.
        let mut failed = exec(Outcome::Failed, 0);
        failed.rejected_rows = 5;
        failed.rejected_by_reason = BTreeMap::from([("out_of_range".into(), 5)]);
        let mut r = RunReport {
            report_version: REPORT_VERSION,
            connector_version: "x".into(),
            run_id: "r".into(),
            started_at: String::new(),
            finished_at: String::new(),
            duration_ms: 0,
            store: "s".into(),
            datasets: vec![],
            totals: Totals {
                api_retries: 4,
                api_retries_by_cause: crate::api::RetryCauses {
                    rate_limited: 3,
                    network: 1,
                    ..Default::default()
                },
                api_rate_limited: 3,
                api_throttled_ms: 1500,
                plan_ms: 20,
                ..Totals::default()
            },
            tasks_failed: vec![],
            interrupted: false,
            executions: vec![a, b, failed],
        };
        r.tally();
        let t = &r.totals;
        assert_eq!(t.rejected_rows, 4);
        assert_eq!(
            t.rejected_by_reason,
            BTreeMap::from([("null".to_string(), 1), ("syntax".to_string(), 3)])
        );
        assert_eq!(
            (
                t.api_retries,
                t.api_retries_by_cause.rate_limited,
                t.api_retries_by_cause.network
            ),
            (4, 3, 1)
        );
        assert_eq!(
            (t.api_rate_limited, t.api_throttled_ms, t.plan_ms),
            (3, 1500, 20)
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["executions"][1]["rejected_by_reason"]["syntax"], 1);
        assert_eq!(json["totals"]["api_retries_by_cause"]["rate_limited"], 3);
    }

    #[test]
    fn a_combined_file_counts_once_and_the_rate_is_per_wall_second() {
        let shared = "d/task_id=t/date=2026-11-29/combined_0a1b.parquet".to_string();
        let mut a = exec(Outcome::Ingested, 100);
        a.files = vec![shared.clone()];
        a.bytes = 600;
        let mut b = exec(Outcome::Ingested, 50);
        b.files = vec![shared];
        b.bytes = 300;
        let mut alone = exec(Outcome::Ingested, 7);
        alone.files = vec!["d/task_id=t/date=2026-11-29/e-0.parquet".into()];
        let mut r = RunReport {
            report_version: REPORT_VERSION,
            connector_version: "x".into(),
            run_id: "r".into(),
            started_at: String::new(),
            finished_at: String::new(),
            duration_ms: 2_000,
            store: "s".into(),
            datasets: vec![],
            totals: Totals::default(),
            tasks_failed: vec![],
            interrupted: false,
            executions: vec![a, b, alone, exec(Outcome::AlreadyIngested, 0)],
        };
        r.tally();
        let t = &r.totals;
        assert_eq!(
            (t.files, t.combined_files, t.rows, t.bytes),
            (2, 1, 157, 910)
        );
        assert_eq!(t.executions_per_second, 2.0);
        assert!(
            r.summary().starts_with(
                "4 execution(s): 3 ingested (157 rows, 2 files (1 combined), 910 B), \
                 1 already ingested, 0 without results, 0 failed; 2.0 executions/s"
            ),
            "{}",
            r.summary()
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["totals"]["executions_per_second"], 2.0);
        assert_eq!(json["totals"]["combined_files"], 1);
        // Planned executions (a dry run) have not ended: they do not count.
        r.executions.push(exec(Outcome::Planned, 0));
        r.tally();
        assert_eq!(r.totals.executions_per_second, 2.0);
    }
}
