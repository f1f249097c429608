//! Schema evolution end to end: a schema file that lacks a field the export has and names
//! one it lacks, under each `extra_fields` / `missing_fields` policy.

use arrow::array::Array;
use arrow::datatypes::{DataType, TimeUnit};
use titan_connector::report::Outcome;
use titan_connector::run;
use titan_connector::schema::TargetSchema;

use crate::util::*;

/// The news task's export has `headline`, `published_at` and `comments`; this schema
/// knows `headline` and `comments` and asks for a `section` the export doesn't have.
pub(crate) const NEWS_SCHEMA: &str = r#"{
  "name": "news",
  "version": 1,
  "columns": [
    { "name": "headline", "type": "string" },
    { "name": "comments", "type": "integer" },
    { "name": "section",  "type": "string" }
  ]
}"#;

fn news_task(policies: &str) -> String {
    format!(
        "[media]\nenabled = false\n\n[[tasks]]\nid = \"{NEWS_TASK}\"\nformat = \"csv\"\n\
         executions = [\"exec-n1\"]\nschema = \"news.json\"\n{policies}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_appends_typed_columns_and_records_the_new_fingerprint() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("news.json"), NEWS_SCHEMA).unwrap();
    let cfg = config(
        dir.path(),
        &sim.base_url(),
        &news_task("extra_fields = \"add\""),
    );
    let report = run::run(&cfg).await.unwrap();
    let e = &report.executions[0];
    assert_eq!(e.outcome, Outcome::Ingested, "{:?}", e.error);
    assert_eq!(e.columns_added, ["published_at"]);
    assert_eq!(e.fields_missing, ["section"]);
    assert!(e.fields_ignored.is_empty());
    assert_eq!(e.rows, 777);

    let out = dir.path().join("out");
    let files = parquet_files(&out);
    assert_eq!(files.len(), 1, "{files:?}");
    let batches = read_parquet(&files[0]);
    let schema = batches[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "headline",
            "comments",
            "section",
            "published_at",
            "_titan_task_id",
            "_titan_execution_id",
            "_titan_row"
        ]
    );
    assert_eq!(
        schema.field_with_name("published_at").unwrap().data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    // The added column holds the export's values; the missing one is null in every row.
    let sc = scenario();
    assert_eq!(
        assert_rows_match(&batches, &sc, NEWS_TASK, "exec-n1", &sim.base_url()),
        777
    );
    for b in &batches {
        let section = b.column_by_name("section").unwrap();
        assert_eq!(section.null_count(), b.num_rows());
    }

    // The new fingerprint is the one in the manifest and in the file's metadata.
    let declared = TargetSchema::from_json_str(NEWS_SCHEMA, "news.json")
        .unwrap()
        .fingerprint();
    let manifest: titan_connector::sink::manifest::Manifest =
        titan_connector::sink::manifest::Manifest::from_slice(
            &std::fs::read(out.join("news/_manifests/task-news/exec-n1.json")).unwrap(),
        )
        .unwrap();
    assert_ne!(manifest.schema_fingerprint, declared);
    let kv = schema.metadata().get("titan.schema_fingerprint").cloned();
    let file_fp = kv.or_else(|| file_kv(&files[0], "titan.schema_fingerprint"));
    assert_eq!(
        file_fp.as_deref(),
        Some(manifest.schema_fingerprint.as_str())
    );
    let added = &manifest.schema["columns"][3];
    assert_eq!(added["name"], "published_at");
    assert_eq!(added["type"], "timestamp");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_and_null_are_the_defaults_and_are_reported() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("news.json"), NEWS_SCHEMA).unwrap();
    let cfg = config(dir.path(), &sim.base_url(), &news_task(""));
    let report = run::run(&cfg).await.unwrap();
    let e = &report.executions[0];
    assert_eq!(e.outcome, Outcome::Ingested, "{:?}", e.error);
    assert!(e.columns_added.is_empty());
    assert_eq!(e.fields_ignored, ["published_at"]);
    assert_eq!(e.fields_missing, ["section"]);
    let files = parquet_files(&dir.path().join("out"));
    let batches = read_parquet(&files[0]);
    assert!(batches[0].column_by_name("published_at").is_none());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_policies_fail_the_execution_naming_the_fields_and_write_nothing() {
    let sim = start_sim().await;
    for (policies, message) in [
        (
            "extra_fields = \"fail\"",
            "execution exec-n1: fields not in the schema: `published_at` \
             (the task's `extra_fields`/`missing_fields` policy)",
        ),
        (
            "missing_fields = \"fail\"",
            "execution exec-n1: schema fields missing from the data: `section` \
             (the task's `extra_fields`/`missing_fields` policy)",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("news.json"), NEWS_SCHEMA).unwrap();
        let cfg = config(dir.path(), &sim.base_url(), &news_task(policies));
        let report = run::run(&cfg).await.unwrap();
        let e = &report.executions[0];
        assert_eq!(e.outcome, Outcome::Failed, "{policies}");
        assert_eq!(e.error.as_deref(), Some(message));
        assert_eq!(e.retries, 0, "a schema mismatch is not downloaded again");
        assert!(parquet_files(&dir.path().join("out")).is_empty());
        assert!(report.has_failures());
    }
    sim.shutdown().await;
}

fn file_kv(path: &std::path::Path, key: &str) -> Option<String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let r = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    r.metadata()
        .file_metadata()
        .key_value_metadata()?
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
}
