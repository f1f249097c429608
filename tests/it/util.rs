//! Shared harness: scenarios, configs, reading Parquet back, expected values.

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimestampMicrosecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use titan_connector::config::{Config, Env, Overrides, env::vars};
use titan_sim::data::{self, SimValue};
use titan_sim::{self as sim, RunningSim, Scenario, SimTask};

/// A token that must never show up in any output.
pub const TOKEN: &str = "tok-SECRET-7d1f0c9a";

pub const PRODUCTS_TASK: &str = "task-products";
pub const NEWS_TASK: &str = "task-news";

/// Two tasks, executions in every terminal state, short timelines.
pub fn scenario_toml() -> String {
    format!(
        r#"
seed = 42
token = "{TOKEN}"

[[tasks]]
id = "{PRODUCTS_TASK}"
name = "Product monitor"
[tasks.output_schema]
type = "object"
required = ["product_name", "price"]
[tasks.output_schema.properties]
product_name = {{ type = "string" }}
price = {{ type = "number" }}
in_stock = {{ type = "boolean" }}
review_count = {{ type = "integer" }}
scraped_at = {{ type = "string", format = "date-time" }}
image_url = {{ type = "string", format = "media" }}

[[tasks.executions]]
id = "exec-p1"
rows = 1500
created_at = "2026-11-27T09:00:00Z"

[[tasks.executions]]
id = "exec-p2"
rows = 321
final_status = "completed_with_errors"
queued_for = "100ms"
running_for = "300ms"
created_at = "2026-11-28T23:30:00-02:00"

[[tasks.executions]]
id = "exec-p3"
rows = 50
final_status = "failed"
running_for = "150ms"
created_at = "2026-11-28T10:00:00Z"

[[tasks.executions]]
id = "exec-p4"
rows = 10
final_status = "cancelled"
created_at = "2026-11-28T11:00:00Z"

[[tasks]]
id = "{NEWS_TASK}"
name = "News headlines"
csv_crlf = true
csv_bom = true
[tasks.output_schema]
type = "object"
[tasks.output_schema.properties]
headline = {{ type = "string" }}
published_at = {{ type = "string", format = "date-time" }}
comments = {{ type = "integer" }}

[[tasks.executions]]
id = "exec-n1"
rows = 777
created_at = "2026-11-26T08:00:00Z"

[[tasks.executions]]
id = "exec-n2"
rows = 0
created_at = "2026-11-26T09:00:00Z"
"#
    )
}

pub fn scenario() -> Scenario {
    Scenario::from_toml_str(&scenario_toml()).unwrap()
}

pub async fn start_sim() -> RunningSim {
    sim::start(scenario(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Writes `titan.toml` into `dir` pointing at `sim` and the store `dir/out`, plus `extra`.
pub fn write_config(dir: &Path, sim_url: &str, extra: &str) -> PathBuf {
    let text = format!(
        r#"
[api]
url = "{sim_url}"
rate_limit_per_minute = 0

[store]
url = "out"

[wait]
poll_interval = "50ms"
max_poll_interval = "200ms"
max_wait = "30s"

{extra}
"#
    );
    let path = dir.join("titan.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Config for the pipeline with the test token in a synthetic environment.
pub fn config(dir: &Path, sim_url: &str, extra: &str) -> Config {
    let path = write_config(dir, sim_url, extra);
    let env = Env::from_pairs([(vars::TITAN_TOKEN, TOKEN.to_string())]);
    Config::load(&path, &env, &Overrides::default()).unwrap()
}

/// Every `*.parquet` under `dir`, sorted.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    walk_files(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect()
}

/// Every file under `dir` (none when it does not exist), sorted.
pub fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// All batches of one Parquet file.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let f = std::fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// The scenario task with this id.
pub fn task<'a>(scenario: &'a Scenario, id: &str) -> &'a SimTask {
    scenario.tasks.iter().find(|t| t.id == id).unwrap()
}

/// Asserts that `batches` hold exactly rows 1..=n of `exec_id`, each equal to the
/// simulator's value, and returns n. Columns are matched by name to schema properties.
pub fn assert_rows_match(
    batches: &[RecordBatch],
    scenario: &Scenario,
    task_id: &str,
    exec_id: &str,
    base_url: &str,
) -> u64 {
    assert_rows_match_as(batches, scenario, task_id, exec_id, task_id, base_url)
}

/// Like [`assert_rows_match`], for rows whose lineage task id is `lineage_task`.
pub fn assert_rows_match_as(
    batches: &[RecordBatch],
    scenario: &Scenario,
    task_id: &str,
    exec_id: &str,
    lineage_task: &str,
    base_url: &str,
) -> u64 {
    let t = task(scenario, task_id);
    let mut seen = Vec::new();
    for b in batches {
        let execs = b
            .column_by_name("_titan_execution_id")
            .unwrap()
            .as_string::<i32>();
        let tasks = b
            .column_by_name("_titan_task_id")
            .unwrap()
            .as_string::<i32>();
        let rows = b
            .column_by_name("_titan_row")
            .unwrap()
            .as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            assert_eq!(execs.value(i), exec_id);
            assert_eq!(tasks.value(i), lineage_task);
            let row_no = rows.value(i);
            assert!(row_no >= 1, "row numbers are 1-based");
            let expected = data::row(scenario.seed, t, exec_id, (row_no - 1) as u64, base_url);
            for (name, want) in &expected {
                let col = b
                    .column_by_name(name)
                    .unwrap_or_else(|| panic!("column {name} missing"));
                assert_cell(
                    col.as_ref(),
                    i,
                    want,
                    &format!("{exec_id} row {row_no} {name}"),
                );
            }
            seen.push(row_no);
        }
    }
    seen.sort_unstable();
    let n = seen.len() as i64;
    assert_eq!(
        seen,
        (1..=n).collect::<Vec<_>>(),
        "rows of {exec_id} are 1..=n, no gap or duplicate"
    );
    n as u64
}

pub fn assert_cell(col: &dyn Array, i: usize, want: &SimValue, what: &str) {
    if let SimValue::Null = want {
        assert!(col.is_null(i), "{what}: expected null");
        return;
    }
    assert!(col.is_valid(i), "{what}: unexpected null, want {want:?}");
    match (col.data_type(), want) {
        (DataType::Utf8, SimValue::Str(s)) => {
            assert_eq!(col.as_string::<i32>().value(i), s, "{what}")
        }
        (DataType::Int64, SimValue::Int(v)) => {
            assert_eq!(col.as_primitive::<Int64Type>().value(i), *v, "{what}")
        }
        (DataType::Float64, SimValue::Num(v)) => {
            assert_eq!(col.as_primitive::<Float64Type>().value(i), *v, "{what}")
        }
        (DataType::Boolean, SimValue::Bool(v)) => {
            assert_eq!(col.as_boolean().value(i), *v, "{what}")
        }
        (DataType::Timestamp(_, Some(tz)), SimValue::Str(s)) => {
            assert_eq!(tz.as_ref(), "UTC", "{what}");
            let want = chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_micros();
            assert_eq!(
                col.as_primitive::<TimestampMicrosecondType>().value(i),
                want,
                "{what}"
            )
        }
        // A media column: the struct's url is the source value, and the file was stored.
        (DataType::Struct(_), SimValue::Str(s)) => {
            let st = col.as_struct();
            let url = st.column_by_name("url").unwrap().as_string::<i32>();
            assert_eq!(url.value(i), s, "{what}: media url");
            let error = st.column_by_name("error").unwrap();
            assert!(
                error.is_null(i),
                "{what}: media error {:?}",
                error.as_string::<i32>().value(i)
            );
            assert!(
                st.column_by_name("path").unwrap().is_valid(i),
                "{what}: media path"
            );
        }
        (dt, w) => panic!("{what}: column type {dt} cannot hold {w:?}"),
    }
}

/// Every row of the Parquet files under `dir`, split by `_titan_execution_id`: a file of
/// one execution and a combined file of many read the same way.
pub fn batches_by_execution(dir: &Path) -> std::collections::BTreeMap<String, Vec<RecordBatch>> {
    let mut by_exec: std::collections::BTreeMap<String, Vec<RecordBatch>> = Default::default();
    for f in parquet_files(dir) {
        for b in read_parquet(&f) {
            let ids = b
                .column_by_name("_titan_execution_id")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let mut distinct: Vec<&str> = ids.iter().flatten().collect();
            distinct.sort_unstable();
            distinct.dedup();
            for id in distinct {
                let mask = arrow::compute::kernels::cmp::eq(
                    &ids,
                    &arrow::array::StringArray::new_scalar(id),
                )
                .unwrap();
                let rows = arrow::compute::filter_record_batch(&b, &mask).unwrap();
                by_exec.entry(id.to_string()).or_default().push(rows);
            }
        }
    }
    by_exec
}
