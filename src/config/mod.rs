//! Configuration: the TOML file, the environment and the command line, resolved once
//! into a validated [`Config`] before any work starts.
//!
//! Layering is file < environment < flags: `${NAME}` in the file's strings is replaced
//! first ([`interpolate`]), then `TITAN_CONNECTOR_<SECTION>_<KEY>` variables override keys
//! ([`layer`]), then flags. Relative paths in the file (schemas, task list, token file, a
//! local store) are relative to the file's own directory, so a config means the same
//! thing whatever directory the orchestrator starts us in.

pub mod env;
pub mod file;
pub mod interpolate;
mod layer;
mod observe;
mod resolve;
mod template;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::api::{ApiConfig, Token};
use crate::decode::DecoderOptions;
use crate::media::MediaSettings;
use crate::sink::parquet::{DEFAULT_ZSTD_LEVEL, WriterSettings};
use crate::sink::store::StoreConfig;
use crate::source::tasks::{self, Shard, TaskSpec};
use crate::source::waiter::WaitPolicy;
pub use env::Env;
pub use template::TEMPLATE;

/// Default Titan origin (the public Task Service).
pub const DEFAULT_API_URL: &str = "https://api.webscraping.titannet.io";
/// Default of `[run] file_mb`.
pub const DEFAULT_FILE_MB: u64 = 1024;
/// `[run] file_mb` at most: S3 copies an object in one request only up to 5 GiB, and
/// committing a part may copy it.
pub const MAX_FILE_MB: f64 = 4096.0;
/// Default store when none is configured.
pub const DEFAULT_STORE: &str = "./out";

/// Errors in configuration. Each names the file and the field to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file `{path}`: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config file `{path}`{}: {source}", .line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Interpolate {
        path: PathBuf,
        line: Option<usize>,
        source: interpolate::InterpolateError,
    },
    #[error("invalid environment variable `{var}`: {message}")]
    Env { var: String, message: String },
    /// Any other error whose message held the token (put into a value by `${TITAN_TOKEN}`),
    /// with the token cut out.
    #[error("{0}")]
    Redacted(String),
    #[error("invalid `{field}` in `{origin}`: {message}")]
    Invalid {
        origin: String,
        field: String,
        message: String,
    },
    #[error(
        "no API token: set the TITAN_TOKEN environment variable or `api.token_file` in `{path}`"
    )]
    MissingToken { path: PathBuf },
    #[error("cannot read token file `{path}`: {message}")]
    TokenFile { path: PathBuf, message: String },
    #[error(transparent)]
    TaskList(#[from] tasks::TaskListError),
    #[error(
        "no tasks to ingest: list task ids in a task-list file (`--tasks FILE` or `run.tasks_file`) or add `[[tasks]]` tables to `{path}`"
    )]
    NoTasks { path: PathBuf },
}

/// Command-line values that override the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub tasks_file: Option<PathBuf>,
    pub store: Option<String>,
    pub concurrency: Option<usize>,
    pub shard: Option<Shard>,
    /// Commands that don't ingest (schema pull/infer) need no task list.
    pub allow_no_tasks: bool,
    /// List what would be ingested; write nothing.
    pub dry_run: bool,
}

/// Media fetching.
#[derive(Debug, Clone, Default)]
pub struct MediaConfig {
    pub settings: MediaSettings,
    /// A separate media store; `None` → the Parquet store.
    pub store: Option<StoreConfig>,
    /// Where and how large the local copy of an export may be while its media downloads.
    pub spool: crate::run::spool::SpoolSettings,
}

/// Tuning of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub concurrency: usize,
    pub batch_rows: usize,
    pub row_group_rows: usize,
    pub file_rows: usize,
    /// `file_mb`, in bytes.
    pub file_bytes: u64,
}

impl RunOptions {
    /// How Parquet parts are written for data of the schema with `schema_fingerprint`:
    /// one place, for `run`, combining and `convert`.
    pub fn writer_settings(&self, schema_fingerprint: String) -> WriterSettings {
        WriterSettings {
            row_group_rows: self.row_group_rows,
            file_rows: self.file_rows,
            file_bytes: self.file_bytes,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            schema_fingerprint,
        }
    }

    /// How export bodies are decoded.
    pub fn decoder_options(&self) -> DecoderOptions {
        DecoderOptions {
            batch_rows: self.batch_rows,
            ..DecoderOptions::default()
        }
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            concurrency: 4,
            batch_rows: 8192,
            row_group_rows: 128 * 1024,
            file_rows: 1024 * 1024,
            file_bytes: DEFAULT_FILE_MB << 20,
        }
    }
}

/// The validated configuration of one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub api: ApiConfig,
    pub store: StoreConfig,
    /// `[store] table_format` and its settings: how datasets are committed.
    pub table: crate::sink::TableSettings,
    pub run: RunOptions,
    pub wait: WaitPolicy,
    pub media: MediaConfig,
    /// `[run] combine_below_mb` / `combine_target_mb`: small executions share files.
    pub combine: crate::sink::combine::CombineSettings,
    pub tasks: Vec<TaskSpec>,
    /// This worker's share of the executions, if the work is split.
    pub shard: Option<Shard>,
    /// List what would be ingested; write nothing.
    pub dry_run: bool,
    /// `[lineage]`: OpenLineage events, when on.
    pub lineage: Option<crate::lineage::LineageSettings>,
    /// `[metrics]`: where the run's Prometheus metrics go.
    pub metrics: crate::metrics::MetricsSettings,
    /// The file this came from (for messages).
    pub path: PathBuf,
}

impl Config {
    /// Loads `path`, applies the environment and the overrides, and validates everything
    /// that can be checked without the network.
    pub fn load(path: &Path, env: &Env, overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path, env, overrides)
    }

    /// Same as [`Config::load`] from text already read; `path` locates relative paths.
    pub fn from_toml(
        text: &str,
        path: &Path,
        env: &Env,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        resolve::resolve(text, path, env, overrides).map_err(|e| redact_token(e, env))
    }
}

/// Parses the API origin: http(s) only, no credentials, no query.
fn parse_api_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("`{raw}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{raw}` must start with https:// (or http:// for loopback)"
        ));
    }
    if url.host_str().is_none() {
        return Err(format!("`{raw}` has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials do not belong in the URL; use TITAN_TOKEN".to_string());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{raw}` must be a bare origin (no query or fragment)"
        ));
    }
    Ok(url)
}

/// Turns a store setting into a URL: a URL with a scheme is kept; a path becomes `file://`,
/// resolved against `base` when relative.
pub fn resolve_store_url(raw: &str, base: &Path) -> Result<Url, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("is empty".to_string());
    }
    if let Some((scheme, _)) = raw.split_once("://") {
        let url = Url::parse(raw).map_err(|e| format!("`{raw}` is not a valid URL: {e}"))?;
        return match scheme {
            "file" | "memory" | "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "adl"
            | "http" | "https" => Ok(url),
            other => Err(format!(
                "unsupported store scheme `{other}://` (use a path, file://, memory://, s3://, gs:// or az://)"
            )),
        };
    }
    let p = Path::new(raw);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        let base = if base.is_absolute() {
            base.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| format!("cannot resolve relative path `{raw}`: {e}"))?
                .join(base)
        };
        base.join(p)
    };
    let abs = normalize(&abs);
    Url::from_directory_path(&abs).map_err(|()| format!("`{raw}` is not a usable path"))
}

/// Removes `.` and `..` components lexically (the directory may not exist yet).
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn read_token_file(path: &Path) -> Result<Token, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::TokenFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let first = text.lines().next().unwrap_or("").trim();
    Token::new(first).map_err(|e| ConfigError::TokenFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Durations shown in messages.
pub fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Cuts the token out of an error's message: `${TITAN_TOKEN}` may have put it into a value
/// that a message quotes.
fn redact_token(e: ConfigError, env: &Env) -> ConfigError {
    match env.get(env::vars::TITAN_TOKEN) {
        Some(token) => {
            let message = e.to_string();
            if message.contains(token) {
                ConfigError::Redacted(message.replace(token, "[redacted]"))
            } else {
                e
            }
        }
        None => e,
    }
}
