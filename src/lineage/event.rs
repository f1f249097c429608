//! Building OpenLineage run events (spec 2-0-2) from the configuration and the run
//! report. Pure functions of their inputs (the time is a parameter), so tests compare
//! whole events.
//!
//! Naming follows the OpenLineage naming conventions: a Titan task is the input dataset
//! `titan://<api host>` / `<task id>`; a lake dataset is `s3://<bucket>` /
//! `<prefix>/<dataset>` (`gs://`, `az://` alike), or `file` / `<absolute path>` on a local
//! disk. Facets are the standard ones (parent, processing_engine, jobType, errorMessage,
//! schema, inputStatistics, outputStatistics) plus two of ours, whose JSON Schemas are in
//! `schemas/openlineage/`: `titanConnector_executions` on inputs and
//! `titanConnector_rejectedRows` (rejected rows by reason) on outputs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;

use super::{LineageSettings, RunRef};
use crate::report::{Outcome, RunReport};

/// The spec version of the events' shape.
pub const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
/// `producer` and every facet's `_producer`: this program and its version.
pub const PRODUCER: &str = concat!("urn:titan-connector:", env!("CARGO_PKG_VERSION"));

const PARENT_URL: &str =
    "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet";
const ENGINE_URL: &str = "https://openlineage.io/spec/facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet";
const ERROR_URL: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
const JOB_TYPE_URL: &str =
    "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
const SCHEMA_FACET_URL: &str =
    "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet";
const INPUT_STATS_URL: &str = "https://openlineage.io/spec/facets/1-0-0/InputStatisticsInputDatasetFacet.json#/$defs/InputStatisticsInputDatasetFacet";
const OUTPUT_STATS_URL: &str = "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet";
/// Our facets' schemas (`schemas/openlineage/*.json`), by their `$id`.
const EXECUTIONS_URL: &str = "urn:titan-connector:openlineage:TitanExecutionsInputDatasetFacet:1-0-0#/$defs/TitanExecutionsInputDatasetFacet";
const REJECTS_URL: &str = "urn:titan-connector:openlineage:TitanRejectedRowsOutputDatasetFacet:1-0-0#/$defs/TitanRejectedRowsOutputDatasetFacet";

/// Key of our input facet (executions read) and of our output facet (rejected rows).
pub const EXECUTIONS_FACET: &str = "titanConnector_executions";
pub const REJECTS_FACET: &str = "titanConnector_rejectedRows";

/// How a run ended, as OpenLineage says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Start,
    Complete,
    Fail,
    Abort,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Start => "START",
            EventType::Complete => "COMPLETE",
            EventType::Fail => "FAIL",
            EventType::Abort => "ABORT",
        }
    }

    /// The end event a report calls for: ABORT when interrupted, FAIL when something
    /// that should have been ingested was not (exit 3), COMPLETE otherwise.
    pub fn of(report: &RunReport) -> EventType {
        if report.interrupted {
            EventType::Abort
        } else if report.has_failures() {
            EventType::Fail
        } else {
            EventType::Complete
        }
    }
}

/// A job's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    pub namespace: String,
    pub name: String,
}

/// What every event of one run shares.
#[derive(Debug, Clone)]
pub struct EventContext {
    pub run_id: Uuid,
    pub job: JobRef,
    pub parent: Option<RunRef>,
    pub root_parent: Option<RunRef>,
    /// `titan://<host>[:port]` of the API.
    pub input_namespace: String,
    /// The configured task ids (the START event's inputs).
    pub task_ids: Vec<String>,
    /// The store's URL: outputs are named after it.
    pub store: Url,
}

impl EventContext {
    pub fn new(settings: &LineageSettings, cfg: &crate::config::Config, run_id: Uuid) -> Self {
        EventContext {
            run_id,
            job: JobRef {
                namespace: settings.namespace.clone(),
                name: settings.job_name.clone(),
            },
            parent: settings.parent.clone(),
            root_parent: settings.root_parent.clone(),
            input_namespace: input_namespace(&cfg.api.base_url),
            task_ids: cfg.tasks.iter().map(|t| t.id.clone()).collect(),
            store: cfg.store.url.clone(),
        }
    }
}

/// `titan://<host>[:port]`: the namespace of a Titan API's tasks.
pub fn input_namespace(api: &Url) -> String {
    let host = api.host_str().unwrap_or("unknown");
    match api.port() {
        Some(p) => format!("titan://{host}:{p}"),
        None => format!("titan://{host}"),
    }
}

/// `(namespace, name)` of `dataset` in the store at `store`, per the OpenLineage naming
/// conventions. Only scheme, host and path are used: never user info or a query.
pub fn output_dataset(store: &Url, dataset: &str) -> (String, String) {
    // The store's own prefix, decoded as `Store::open` decodes it, so the name is where
    // the files land.
    let prefix = object_store::path::Path::from_url_path(store.path())
        .map(|p| p.to_string())
        .unwrap_or_default();
    let joined = |prefix: &str| {
        if prefix.is_empty() {
            dataset.to_string()
        } else {
            format!("{prefix}/{dataset}")
        }
    };
    match store.scheme() {
        "file" => ("file".to_string(), format!("/{}", joined(&prefix))),
        "memory" => ("inmemory://".to_string(), joined(&prefix)),
        scheme => {
            let scheme = if scheme == "s3a" { "s3" } else { scheme };
            let authority = match (store.host_str(), store.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_string(),
                (None, _) => String::new(),
            };
            (format!("{scheme}://{authority}"), joined(&prefix))
        }
    }
}

fn base(ctx: &EventContext, kind: EventType, time: &str, run_facets: Value) -> Value {
    json!({
        "eventType": kind.as_str(),
        "eventTime": time,
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": { "runId": ctx.run_id.hyphenated().to_string(), "facets": run_facets },
        "job": {
            "namespace": ctx.job.namespace,
            "name": ctx.job.name,
            "facets": {
                "jobType": {
                    "_producer": PRODUCER,
                    "_schemaURL": JOB_TYPE_URL,
                    "processingType": "BATCH",
                    "integration": "TITAN_CONNECTOR",
                    "jobType": "JOB",
                }
            }
        },
    })
}

fn run_facets(ctx: &EventContext, error: Option<&str>) -> Value {
    let mut facets = serde_json::Map::new();
    facets.insert(
        "processing_engine".into(),
        json!({
            "_producer": PRODUCER,
            "_schemaURL": ENGINE_URL,
            "name": "titan-connector",
            "version": env!("CARGO_PKG_VERSION"),
        }),
    );
    if let Some(p) = &ctx.parent {
        let mut parent = json!({
            "_producer": PRODUCER,
            "_schemaURL": PARENT_URL,
            "run": { "runId": p.run_id.hyphenated().to_string() },
            "job": { "namespace": p.namespace, "name": p.name },
        });
        if let Some(r) = &ctx.root_parent {
            parent["root"] = json!({
                "run": { "runId": r.run_id.hyphenated().to_string() },
                "job": { "namespace": r.namespace, "name": r.name },
            });
        }
        facets.insert("parent".into(), parent);
    }
    if let Some(message) = error {
        facets.insert(
            "errorMessage".into(),
            json!({
                "_producer": PRODUCER,
                "_schemaURL": ERROR_URL,
                "message": message,
                "programmingLanguage": "Rust",
            }),
        );
    }
    Value::Object(facets)
}

fn input(ctx: &EventContext, task_id: &str) -> Value {
    json!({ "namespace": ctx.input_namespace, "name": task_id })
}

/// START: the job, the run (and its parent), and the configured tasks as inputs. Outputs
/// are not known yet: their names come from the tasks, read from the API during the run.
pub fn start_event(ctx: &EventContext, time: &str) -> Value {
    let mut ev = base(ctx, EventType::Start, time, run_facets(ctx, None));
    ev["inputs"] = ctx.task_ids.iter().map(|t| input(ctx, t)).collect();
    ev["outputs"] = json!([]);
    ev
}

/// FAIL for a run that ended before it had a report (the token was refused, the API or
/// the store unreachable…).
pub fn fail_event(ctx: &EventContext, error: &str, time: &str) -> Value {
    let mut ev = base(ctx, EventType::Fail, time, run_facets(ctx, Some(error)));
    ev["inputs"] = ctx.task_ids.iter().map(|t| input(ctx, t)).collect();
    ev["outputs"] = json!([]);
    ev
}

/// The end event of a run with a report: inputs are the tasks planned, each with the
/// executions this run handled; outputs are their datasets with schema, statistics and
/// rejected rows of what this run committed.
pub fn end_event(ctx: &EventContext, report: &RunReport) -> Value {
    let kind = EventType::of(report);
    let error = (kind == EventType::Fail).then(|| failure_message(report));
    let mut ev = base(
        ctx,
        kind,
        &report.finished_at,
        run_facets(ctx, error.as_deref()),
    );
    ev["inputs"] = inputs(ctx, report);
    ev["outputs"] = outputs(ctx, report);
    ev
}

/// What FAIL's `errorMessage` says: the counts, then each failure (as in the summary).
fn failure_message(report: &RunReport) -> String {
    let t = &report.totals;
    let mut s = format!(
        "{} execution(s) failed, {} ended without results on Titan, {} task(s) could not be planned",
        t.failed, t.no_results, t.failed_tasks
    );
    for f in &report.tasks_failed {
        s.push_str(&format!("\ntask {}: {}", f.task_id, f.error));
    }
    for e in &report.executions {
        match e.outcome {
            Outcome::Failed => s.push_str(&format!(
                "\nexecution {} (task {}): {}",
                e.execution_id,
                e.task_id,
                e.error.as_deref().unwrap_or("unknown error")
            )),
            Outcome::NoResults => s.push_str(&format!(
                "\nexecution {} (task {}) ended `{}` on Titan",
                e.execution_id,
                e.task_id,
                e.execution_status.as_deref().unwrap_or("?")
            )),
            _ => {}
        }
    }
    s
}

fn outcome_name(o: Outcome) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

fn inputs(ctx: &EventContext, report: &RunReport) -> Value {
    let planned: Vec<&str> = report
        .datasets
        .iter()
        .flat_map(|d| d.task_ids.iter().map(String::as_str))
        .collect();
    planned
        .into_iter()
        .map(|task_id| {
            let execs: Vec<_> = report
                .executions
                .iter()
                .filter(|e| e.task_id == task_id)
                .collect();
            let read: u64 = execs
                .iter()
                .filter(|e| e.outcome == Outcome::Ingested)
                .map(|e| e.records_read)
                .sum();
            let mut i = input(ctx, task_id);
            i["inputFacets"] = json!({
                "inputStatistics": {
                    "_producer": PRODUCER,
                    "_schemaURL": INPUT_STATS_URL,
                    "rowCount": read,
                },
            });
            i["facets"] = json!({
                EXECUTIONS_FACET: {
                    "_producer": PRODUCER,
                    "_schemaURL": EXECUTIONS_URL,
                    "executions": execs.iter().map(|e| json!({
                        "executionId": e.execution_id,
                        "status": e.execution_status,
                        "outcome": outcome_name(e.outcome),
                        "recordsRead": e.records_read,
                    })).collect::<Vec<_>>(),
                },
            });
            i
        })
        .collect()
}

fn outputs(ctx: &EventContext, report: &RunReport) -> Value {
    report
        .datasets
        .iter()
        .map(|d| {
            let (namespace, name) = output_dataset(&ctx.store, &d.dataset);
            let committed: Vec<_> = report
                .executions
                .iter()
                .filter(|e| e.dataset == d.dataset && e.outcome == Outcome::Ingested)
                .collect();
            let rows: u64 = committed.iter().map(|e| e.rows).sum();
            let bytes: u64 = committed.iter().map(|e| e.bytes).sum();
            let files: BTreeSet<&str> = committed
                .iter()
                .flat_map(|e| e.files.iter().map(String::as_str))
                .collect();
            let rejected: u64 = committed.iter().map(|e| e.rejected_rows).sum();
            let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
            for e in &committed {
                for (reason, n) in &e.rejected_by_reason {
                    *by_reason.entry(reason).or_default() += n;
                }
            }
            let mut added: Vec<&str> = Vec::new();
            for e in &committed {
                for c in &e.columns_added {
                    if !added.contains(&c.as_str()) && !d.columns.iter().any(|k| &k.name == c) {
                        added.push(c);
                    }
                }
            }
            let mut fields: Vec<Value> = d
                .columns
                .iter()
                .map(|c| json!({ "name": c.name, "type": c.ty }))
                .collect();
            // Columns added from the data (`extra_fields = "add"`): typed by inference per
            // execution, so only their names are certain.
            fields.extend(added.iter().map(|c| json!({ "name": c })));
            for (i, f) in fields.iter_mut().enumerate() {
                f["ordinal_position"] = json!(i + 1);
            }
            json!({
                "namespace": namespace,
                "name": name,
                "facets": {
                    "schema": {
                        "_producer": PRODUCER,
                        "_schemaURL": SCHEMA_FACET_URL,
                        "fields": fields,
                    },
                },
                "outputFacets": {
                    "outputStatistics": {
                        "_producer": PRODUCER,
                        "_schemaURL": OUTPUT_STATS_URL,
                        "rowCount": rows,
                        "size": bytes,
                        "fileCount": files.len(),
                    },
                    REJECTS_FACET: {
                        "_producer": PRODUCER,
                        "_schemaURL": REJECTS_URL,
                        "rejectedRows": rejected,
                        "byReason": by_reason,
                    },
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{
        ColumnReport, DatasetReport, ExecutionReport, REPORT_VERSION, TaskFailure, Totals,
    };

    fn ctx() -> EventContext {
        EventContext {
            run_id: Uuid::parse_str("01931f5e-0b2a-7c3d-9e4f-5a6b7c8d9e0f").unwrap(),
            job: JobRef {
                namespace: "lake".into(),
                name: "titan_connector.titan".into(),
            },
            parent: Some(RunRef {
                namespace: "airflow".into(),
                name: "titan_ingest.ingest".into(),
                run_id: Uuid::parse_str("01931f5e-aaaa-7c3d-9e4f-5a6b7c8d9e0f").unwrap(),
            }),
            root_parent: None,
            input_namespace: "titan://api.example.test".into(),
            task_ids: vec!["task-a".into(), "task-b".into()],
            store: Url::parse("s3://bucket/lake/raw/").unwrap(),
        }
    }

    fn exec(id: &str, task: &str, dataset: &str, outcome: Outcome) -> ExecutionReport {
        ExecutionReport::new(task, id, dataset, outcome, "completed")
    }

    fn report() -> RunReport {
        let mut e1 = exec("e1", "task-a", "products", Outcome::Ingested);
        (e1.rows, e1.records_read, e1.bytes) = (98, 100, 4096);
        e1.files = vec!["products/task_id=task-a/date=2026-12-01/e1-0.parquet".into()];
        e1.rejected_rows = 2;
        e1.rejected_by_reason = BTreeMap::from([("syntax".into(), 1), ("null".into(), 1)]);
        e1.columns_added = vec!["colour".into()];
        let mut e2 = exec("e2", "task-a", "products", Outcome::Failed);
        e2.error = Some("export of execution e2: stream broken".into());
        let mut e3 = exec("e3", "task-a", "products", Outcome::AlreadyIngested);
        e3.rows = 7; // not this run's: not counted
        let mut r = RunReport {
            report_version: REPORT_VERSION,
            connector_version: "0.1.0".into(),
            run_id: "01931f5e0b2a7c3d9e4f5a6b7c8d9e0f".into(),
            started_at: "2026-12-01T10:00:00.000Z".into(),
            finished_at: "2026-12-01T10:01:00.000Z".into(),
            duration_ms: 60_000,
            store: "s3://bucket/lake/raw/".into(),
            datasets: vec![DatasetReport {
                dataset: "products".into(),
                task_ids: vec!["task-a".into()],
                schema_fingerprint: "f".into(),
                columns: vec![
                    ColumnReport {
                        name: "name".into(),
                        ty: "string".into(),
                        nullable: false,
                    },
                    ColumnReport {
                        name: "price".into(),
                        ty: "decimal(10,2)".into(),
                        nullable: true,
                    },
                ],
            }],
            totals: Totals::default(),
            tasks_failed: vec![TaskFailure {
                task_id: "task-b".into(),
                error: "task has no `output_schema` and no schema file is configured for it".into(),
            }],
            interrupted: false,
            executions: vec![e1, e2, e3],
        };
        r.tally();
        r
    }

    #[test]
    fn start_names_the_run_its_parent_and_the_configured_tasks() {
        let ev = start_event(&ctx(), "2026-12-01T10:00:00.000Z");
        assert_eq!(
            ev,
            json!({
                "eventType": "START",
                "eventTime": "2026-12-01T10:00:00.000Z",
                "producer": PRODUCER,
                "schemaURL": SCHEMA_URL,
                "run": {
                    "runId": "01931f5e-0b2a-7c3d-9e4f-5a6b7c8d9e0f",
                    "facets": {
                        "processing_engine": {
                            "_producer": PRODUCER,
                            "_schemaURL": ENGINE_URL,
                            "name": "titan-connector",
                            "version": env!("CARGO_PKG_VERSION"),
                        },
                        "parent": {
                            "_producer": PRODUCER,
                            "_schemaURL": PARENT_URL,
                            "run": { "runId": "01931f5e-aaaa-7c3d-9e4f-5a6b7c8d9e0f" },
                            "job": { "namespace": "airflow", "name": "titan_ingest.ingest" },
                        },
                    },
                },
                "job": {
                    "namespace": "lake",
                    "name": "titan_connector.titan",
                    "facets": { "jobType": {
                        "_producer": PRODUCER,
                        "_schemaURL": JOB_TYPE_URL,
                        "processingType": "BATCH",
                        "integration": "TITAN_CONNECTOR",
                        "jobType": "JOB",
                    }},
                },
                "inputs": [
                    { "namespace": "titan://api.example.test", "name": "task-a" },
                    { "namespace": "titan://api.example.test", "name": "task-b" },
                ],
                "outputs": [],
            })
        );
    }

    #[test]
    fn the_end_event_fails_with_what_failed_and_counts_only_this_runs_commits() {
        let ev = end_event(&ctx(), &report());
        assert_eq!(ev["eventType"], "FAIL");
        assert_eq!(ev["eventTime"], "2026-12-01T10:01:00.000Z");
        assert_eq!(
            ev["run"]["facets"]["errorMessage"]["message"],
            "1 execution(s) failed, 0 ended without results on Titan, 1 task(s) could not be planned\n\
             task task-b: task has no `output_schema` and no schema file is configured for it\n\
             execution e2 (task task-a): export of execution e2: stream broken"
        );
        assert_eq!(
            ev["run"]["facets"]["errorMessage"]["programmingLanguage"],
            "Rust"
        );
        // Inputs: the planned task only, with every execution the run handled.
        assert_eq!(
            ev["inputs"],
            json!([{
                "namespace": "titan://api.example.test",
                "name": "task-a",
                "inputFacets": { "inputStatistics": {
                    "_producer": PRODUCER, "_schemaURL": INPUT_STATS_URL, "rowCount": 100,
                }},
                "facets": { EXECUTIONS_FACET: {
                    "_producer": PRODUCER,
                    "_schemaURL": EXECUTIONS_URL,
                    "executions": [
                        { "executionId": "e1", "status": "completed", "outcome": "ingested", "recordsRead": 100 },
                        { "executionId": "e2", "status": "completed", "outcome": "failed", "recordsRead": 0 },
                        { "executionId": "e3", "status": "completed", "outcome": "already_ingested", "recordsRead": 0 },
                    ],
                }},
            }])
        );
        assert_eq!(
            ev["outputs"],
            json!([{
                "namespace": "s3://bucket",
                "name": "lake/raw/products",
                "facets": { "schema": {
                    "_producer": PRODUCER,
                    "_schemaURL": SCHEMA_FACET_URL,
                    "fields": [
                        { "name": "name", "type": "string", "ordinal_position": 1 },
                        { "name": "price", "type": "decimal(10,2)", "ordinal_position": 2 },
                        { "name": "colour", "ordinal_position": 3 },
                    ],
                }},
                "outputFacets": {
                    "outputStatistics": {
                        "_producer": PRODUCER, "_schemaURL": OUTPUT_STATS_URL,
                        "rowCount": 98, "size": 4096, "fileCount": 1,
                    },
                    REJECTS_FACET: {
                        "_producer": PRODUCER, "_schemaURL": REJECTS_URL,
                        "rejectedRows": 2, "byReason": { "null": 1, "syntax": 1 },
                    },
                },
            }])
        );
    }

    #[test]
    fn complete_and_abort_follow_the_report() {
        let mut r = report();
        r.executions.retain(|e| e.outcome != Outcome::Failed);
        r.tasks_failed.clear();
        r.tally();
        let ev = end_event(&ctx(), &r);
        assert_eq!(ev["eventType"], "COMPLETE");
        assert!(ev["run"]["facets"].get("errorMessage").is_none());
        r.interrupted = true;
        assert_eq!(end_event(&ctx(), &r)["eventType"], "ABORT");
        let fail = fail_event(&ctx(), "Titan rejected the token (401)", "t");
        assert_eq!(fail["eventType"], "FAIL");
        assert_eq!(
            fail["run"]["facets"]["errorMessage"]["message"],
            "Titan rejected the token (401)"
        );
        assert_eq!(fail["inputs"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_root_parent_is_nested_under_the_parent() {
        let mut c = ctx();
        c.root_parent = Some(RunRef {
            namespace: "airflow".into(),
            name: "titan_ingest".into(),
            run_id: Uuid::parse_str("01931f5e-bbbb-7c3d-9e4f-5a6b7c8d9e0f").unwrap(),
        });
        let ev = start_event(&c, "t");
        assert_eq!(
            ev["run"]["facets"]["parent"]["root"],
            json!({
                "run": { "runId": "01931f5e-bbbb-7c3d-9e4f-5a6b7c8d9e0f" },
                "job": { "namespace": "airflow", "name": "titan_ingest" },
            })
        );
        c.parent = None;
        assert!(
            start_event(&c, "t")["run"]["facets"]
                .get("parent")
                .is_none()
        );
    }

    #[test]
    fn datasets_are_named_by_the_openlineage_conventions() {
        let cases = [
            ("s3://bucket/lake/raw", ("s3://bucket", "lake/raw/products")),
            ("s3a://bucket", ("s3://bucket", "products")),
            ("gs://b/p%20q/", ("gs://b", "p q/products")),
            ("az://container/x", ("az://container", "x/products")),
            ("file:///data/lake/", ("file", "/data/lake/products")),
            ("memory://", ("inmemory://", "products")),
            (
                "http://user:pw@127.0.0.1:9000/b?sig=1",
                ("http://127.0.0.1:9000", "b/products"),
            ),
        ];
        for (store, (ns, name)) in cases {
            let got = output_dataset(&Url::parse(store).unwrap(), "products");
            assert_eq!(got, (ns.to_string(), name.to_string()), "{store}");
        }
        assert_eq!(
            input_namespace(&Url::parse("http://127.0.0.1:8080").unwrap()),
            "titan://127.0.0.1:8080"
        );
        assert_eq!(
            input_namespace(&Url::parse("https://api.webscraping.titannet.io").unwrap()),
            "titan://api.webscraping.titannet.io"
        );
    }
}
