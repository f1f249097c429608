//! The TOML config file as written by users: raw, serde-derived, unknown keys rejected.
//!
//! Nothing here reads the environment or touches the network; `config::Config::resolve`
//! turns this into the validated configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::api::AuthScheme;
use crate::format::ExportFormat;

/// Top level of a config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub api: ApiSection,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub run: RunSection,
    #[serde(default)]
    pub wait: WaitSection,
    #[serde(default)]
    pub media: MediaSection,
    #[serde(default)]
    pub lineage: LineageSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    /// Per-task entries; merged with the plain task-list file, if any.
    #[serde(default)]
    pub tasks: Vec<TaskEntry>,
}

/// `[api]`: where Titan is and how to authenticate. The token itself is never here.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ApiSection {
    /// Origin of the Task Service, without `/api/v1`.
    pub url: Option<String>,
    /// File holding the token (first line); otherwise `TITAN_TOKEN` is used.
    pub token_file: Option<PathBuf>,
    /// `bearer` (default) or `x-api-key`.
    pub auth: Option<AuthScheme>,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub read_timeout: Option<Duration>,
    /// Whole-body deadline of a JSON answer (list page, object), from its headers.
    #[serde(default, with = "humantime_serde")]
    pub body_timeout: Option<Duration>,
    /// Allow plain `http://` to a non-loopback host (off by default: the token would travel in clear).
    pub allow_insecure_http: Option<bool>,
    /// Attempts per request, the first included (1 = never retry).
    pub max_attempts: Option<u32>,
    /// Client-side request budget shared by the whole process; 0 turns it off.
    pub rate_limit_per_minute: Option<u32>,
}

/// `[store]`: where Parquet, manifests and media go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// A path or URL: `./out`, `file:///data/lake`, `memory://`, `s3://bucket/prefix`, `gs://…`, `az://…`.
    pub url: Option<String>,
    /// Backend options passed to object_store (e.g. `aws_region`, `aws_endpoint`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// `parquet` (a folder of Parquet files with manifests) or `delta` (Delta Lake tables).
    pub table_format: Option<crate::sink::TableFormat>,
    /// Delta tables: write a checkpoint every this many commits (0: never).
    pub checkpoint_interval: Option<u64>,
}

/// `[run]`: how a run behaves.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Executions awaited and exported at once.
    pub concurrency: Option<usize>,
    /// Default export format for tasks that don't set one.
    pub format: Option<ExportFormat>,
    /// Plain task-list file (one task id per line, `#` comments).
    pub tasks_file: Option<PathBuf>,
    /// Rows per decoded batch.
    pub batch_rows: Option<usize>,
    /// Rows per Parquet row group.
    pub row_group_rows: Option<usize>,
    /// Rows per Parquet file before rolling to the next part.
    pub file_rows: Option<usize>,
    /// Executions whose staged output is smaller than this (MiB) share combined files
    /// with other small executions of their partition; 0 disables combining.
    pub combine_below_mb: Option<f64>,
    /// A combined file is written once its executions' staged output reaches this (MiB).
    pub combine_target_mb: Option<f64>,
    /// A finished execution waiting to be combined is committed within this time.
    #[serde(default, with = "humantime_serde")]
    pub max_commit_delay: Option<Duration>,
    /// MiB per Parquet file before rolling to the next part (checked per row group).
    pub file_mb: Option<f64>,
    /// Default for tasks: `quarantine` (default), `skip` or `fail`.
    pub on_bad_row: Option<crate::map::BadRowPolicy>,
    /// Default for tasks: fail an execution whose rejected rows exceed this share (0–1).
    pub max_reject_ratio: Option<f64>,
    /// Default for tasks: fields in the data but not in the schema — `ignore` (default),
    /// `add` (a new column, typed by inference; a new schema fingerprint) or `fail`.
    pub extra_fields: Option<crate::schema::ExtraFieldPolicy>,
    /// Default for tasks: schema fields missing from the data — `null` (default) or `fail`.
    pub missing_fields: Option<crate::schema::MissingFieldPolicy>,
}

/// `[wait]`: polling of executions that are not finished yet.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitSection {
    #[serde(default, with = "humantime_serde")]
    pub poll_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub max_poll_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub max_wait: Option<Duration>,
}

/// `[media]`: fetching the files that media columns point to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSection {
    /// `false`: media columns stay URL text and nothing is downloaded.
    pub enabled: Option<bool>,
    /// `by-execution` (default) or `content-addressed`.
    pub layout: Option<crate::media::MediaLayout>,
    /// Downloads in flight across the whole run.
    pub concurrency: Option<usize>,
    /// `record` (default: the error goes into the row) or `fail` (the execution fails).
    pub on_error: Option<crate::media::MediaErrorPolicy>,
    /// Largest file fetched, in bytes.
    pub max_bytes: Option<u64>,
    /// Hosts other than the API's from which media may be fetched (never with the token).
    pub allowed_hosts: Option<Vec<String>>,
    /// Directory of the local copy of an export while its media downloads; default: the
    /// system temp dir. Relative to the config file.
    pub spool_dir: Option<PathBuf>,
    /// Largest such copy, in bytes (default 10 GiB); a larger export fails its execution.
    pub spool_max_bytes: Option<u64>,
    /// A separate store for media; default: `[store]`.
    pub store: Option<String>,
    #[serde(default)]
    pub store_options: BTreeMap<String, String>,
}

/// `[lineage]`: OpenLineage events (see `crate::lineage`). On when `url` or `file` is set
/// (or `OPENLINEAGE_URL`); the API key only ever comes from `OPENLINEAGE_API_KEY`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineageSection {
    /// `false` turns lineage off even when a URL is set (like `OPENLINEAGE_DISABLED=true`).
    pub enabled: Option<bool>,
    /// Origin (and base path) of the OpenLineage HTTP API, e.g. Marquez's `http://marquez:5000`.
    pub url: Option<String>,
    /// Path of the lineage endpoint under `url`; default `api/v1/lineage`.
    pub endpoint: Option<String>,
    /// Append each event as one JSON line to this file (as well as, or instead of, HTTP).
    pub file: Option<PathBuf>,
    /// The job's namespace; default `default`.
    pub namespace: Option<String>,
    /// The job's name; default `titan_connector.<config file name without extension>`.
    pub job_name: Option<String>,
    /// Per HTTP attempt; default 5 s.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// HTTP attempts per event, the first included; default 3.
    pub max_attempts: Option<u32>,
}

/// `[metrics]`: Prometheus metrics of each run (see `crate::metrics`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Write the metrics here at the end of a run (`--metrics-file` wins).
    pub file: Option<PathBuf>,
    /// PUT them to this Pushgateway too (`http://pushgateway:9091`).
    pub pushgateway: Option<String>,
    /// The Pushgateway `job` label; default `titan_connector`.
    pub job: Option<String>,
    /// Per Pushgateway attempt; default 5 s.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// One `[[tasks]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskEntry {
    pub id: String,
    /// Dataset (top-level folder in the store); defaults to a slug of the task's name.
    pub dataset: Option<String>,
    /// Schema file; defaults to one derived from the task's `output_schema`.
    pub schema: Option<PathBuf>,
    /// Which executions: `"new"` (default), `"latest"`, or a list of ids.
    pub executions: Option<ExecutionsRaw>,
    pub format: Option<ExportFormat>,
    pub on_bad_row: Option<crate::map::BadRowPolicy>,
    pub max_reject_ratio: Option<f64>,
    pub extra_fields: Option<crate::schema::ExtraFieldPolicy>,
    pub missing_fields: Option<crate::schema::MissingFieldPolicy>,
}

/// Which executions of a task a run ingests, as written: `"new"`, `"latest"` or a list of ids.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ExecutionsRaw {
    Keyword(String),
    Ids(Vec<String>),
}
