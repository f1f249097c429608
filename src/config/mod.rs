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
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::api::{ApiConfig, AuthScheme, RetryPolicy, Token};
use crate::media::MediaSettings;
use crate::schema::{EvolutionPolicy, RejectPolicy};
use crate::tasks::{self, ExecutionSelector, Shard, TaskSpec};
use crate::waiter::WaitPolicy;
pub use env::Env;
use file::{ConfigFile, ExecutionsRaw};

/// Default Titan origin (the public Task Service).
pub const DEFAULT_API_URL: &str = "https://api.webscraping.titannet.io";
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

/// Where output goes. `Debug` (in `store.rs`) hides credential options and URL secrets.
#[derive(Clone)]
pub struct StoreConfig {
    /// Resolved URL (`file:///abs/path`, `s3://…`, `memory://`).
    pub url: Url,
    /// Backend options for object_store.
    pub options: Vec<(String, String)>,
}

/// Media fetching.
#[derive(Debug, Clone, Default)]
pub struct MediaConfig {
    pub settings: MediaSettings,
    /// A separate media store; `None` → the Parquet store.
    pub store: Option<StoreConfig>,
    /// Where and how large the local copy of an export may be while its media downloads.
    pub spool: crate::spool::SpoolSettings,
}

/// Tuning of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub concurrency: usize,
    pub batch_rows: usize,
    pub row_group_rows: usize,
    pub file_rows: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            concurrency: 4,
            batch_rows: 8192,
            row_group_rows: 128 * 1024,
            file_rows: 1024 * 1024,
        }
    }
}

/// The validated configuration of one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub api: ApiConfig,
    pub store: StoreConfig,
    pub run: RunOptions,
    pub wait: WaitPolicy,
    pub media: MediaConfig,
    /// `[run] combine_below_mb` / `combine_target_mb`: small executions share files.
    pub combine: crate::combine::CombineSettings,
    pub tasks: Vec<TaskSpec>,
    /// This worker's share of the executions, if the work is split.
    pub shard: Option<Shard>,
    /// List what would be ingested; write nothing.
    pub dry_run: bool,
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
        Self::resolve(text, path, env, overrides).map_err(|e| redact_token(e, env))
    }

    fn resolve(
        text: &str,
        path: &Path,
        env: &Env,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let parse_error = |e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        };
        // Syntax first (with the line), then `${…}` in the string values, then types. When
        // nothing was interpolated the text is read again so type errors keep their line.
        let mut table: toml::Table = toml::from_str(text).map_err(parse_error)?;
        let interpolated =
            interpolate::table(&mut table, env).map_err(|source| ConfigError::Interpolate {
                path: path.to_path_buf(),
                line: source.line_in(text),
                source,
            })?;
        let mut file: ConfigFile = if interpolated {
            toml::Value::Table(table).try_into().map_err(parse_error)?
        } else {
            toml::from_str(text).map_err(parse_error)?
        };
        let mut from_env = layer::apply(&mut file, env)?;
        // A flag's value is the flag's to answer for, not the variable's.
        if overrides.store.is_some() {
            from_env.remove("store.url");
        }
        if overrides.concurrency.is_some() {
            from_env.remove("run.concurrency");
        }
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let origin = path.display().to_string();
        // A bad value names where it came from: the variable, or the file and key.
        let invalid = |field: &str, message: String| match from_env.get(field) {
            Some(var) => ConfigError::Env {
                var: var.clone(),
                message,
            },
            None => ConfigError::Invalid {
                origin: origin.clone(),
                field: field.to_string(),
                message,
            },
        };

        // [api]
        let api_url = file
            .api
            .url
            .clone()
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        let base_url = parse_api_url(&api_url).map_err(|m| invalid("api.url", m))?;
        let token = match &file.api.token_file {
            Some(p) => read_token_file(&base.join(p))?,
            None => match env.get(env::vars::TITAN_TOKEN) {
                Some(t) => Token::new(t).map_err(|e| invalid("TITAN_TOKEN", e.to_string()))?,
                None => {
                    return Err(ConfigError::MissingToken {
                        path: path.to_path_buf(),
                    });
                }
            },
        };
        let mut api = ApiConfig::new(base_url, token);
        api.auth = file.api.auth.unwrap_or(AuthScheme::Bearer);
        if let Some(t) = file.api.timeout {
            api.timeout = t;
        }
        if let Some(t) = file.api.read_timeout {
            api.read_timeout = t;
        }
        if let Some(t) = file.api.body_timeout {
            if t.is_zero() {
                return Err(invalid(
                    "api.body_timeout",
                    "must be greater than zero".to_string(),
                ));
            }
            api.body_timeout = t;
        }
        api.allow_insecure_http = file.api.allow_insecure_http.unwrap_or(false);
        api.retry = RetryPolicy::default();
        if let Some(n) = file.api.max_attempts {
            if n == 0 {
                return Err(invalid(
                    "api.max_attempts",
                    "must be at least 1".to_string(),
                ));
            }
            api.retry.max_attempts = n;
        }
        // Unset: the default budget until the server advertises its own limit. Set: the
        // user's number, held to whatever the server says.
        match file.api.rate_limit_per_minute {
            Some(0) => api.rate_limit_per_minute = None,
            Some(n) => {
                api.rate_limit_per_minute = Some(n);
                api.rate_limit_from_server = false;
            }
            None => api.rate_limit_from_server = true,
        }
        if let Some(hosts) = &file.media.allowed_hosts {
            api.media_allowed_hosts = hosts.clone();
        }
        if let Some(n) = file.media.max_bytes {
            api.max_media_bytes = Some(n);
        }

        // [store]
        let (store_raw, store_base) = match overrides.store.clone() {
            // Flags are relative to the working directory, like any CLI path (the
            // environment layer already made its paths absolute).
            Some(s) => (s, PathBuf::from(".")),
            None => (
                file.store
                    .url
                    .clone()
                    .unwrap_or_else(|| DEFAULT_STORE.to_string()),
                base.clone(),
            ),
        };
        let store = StoreConfig {
            url: resolve_store_url(&store_raw, &store_base).map_err(|m| invalid("store.url", m))?,
            options: file.store.options.clone().into_iter().collect(),
        };

        // [media]
        let mut settings = MediaSettings::default();
        if let Some(e) = file.media.enabled {
            settings.enabled = e;
        }
        if let Some(l) = file.media.layout {
            settings.layout = l;
        }
        if let Some(c) = file.media.concurrency {
            if c == 0 {
                return Err(invalid(
                    "media.concurrency",
                    "must be at least 1".to_string(),
                ));
            }
            settings.concurrency = c;
        }
        if let Some(p) = file.media.on_error {
            settings.on_error = p;
        }
        let media_store = match &file.media.store {
            Some(raw) => Some(StoreConfig {
                url: resolve_store_url(raw, &base).map_err(|m| invalid("media.store", m))?,
                options: file.media.store_options.clone().into_iter().collect(),
            }),
            None => None,
        };
        let mut spool = crate::spool::SpoolSettings::default();
        if let Some(dir) = &file.media.spool_dir {
            spool.dir = base.join(dir);
        }
        if let Some(n) = file.media.spool_max_bytes {
            if n == 0 {
                return Err(invalid(
                    "media.spool_max_bytes",
                    "must be at least 1".to_string(),
                ));
            }
            spool.max_bytes = n;
        }
        let media = MediaConfig {
            settings,
            store: media_store,
            spool,
        };

        // [run]
        let defaults = RunOptions::default();
        let concurrency = overrides
            .concurrency
            .or(file.run.concurrency)
            .unwrap_or(defaults.concurrency);
        let run = RunOptions {
            concurrency,
            batch_rows: file.run.batch_rows.unwrap_or(defaults.batch_rows),
            row_group_rows: file.run.row_group_rows.unwrap_or(defaults.row_group_rows),
            file_rows: file.run.file_rows.unwrap_or(defaults.file_rows),
        };
        for (field, v) in [
            ("run.concurrency", run.concurrency),
            ("run.batch_rows", run.batch_rows),
            ("run.row_group_rows", run.row_group_rows),
            ("run.file_rows", run.file_rows),
        ] {
            if v == 0 {
                return Err(invalid(field, "must be at least 1".to_string()));
            }
        }
        let below_mb = file
            .run
            .combine_below_mb
            .unwrap_or(crate::combine::DEFAULT_COMBINE_BELOW_MB);
        let target_mb = file
            .run
            .combine_target_mb
            .unwrap_or(crate::combine::DEFAULT_COMBINE_TARGET_MB);
        if !(below_mb.is_finite() && below_mb >= 0.0) {
            return Err(invalid(
                "run.combine_below_mb",
                format!("{below_mb} is not a size in MiB (0 disables combining)"),
            ));
        }
        if !(target_mb.is_finite() && target_mb > 0.0) {
            return Err(invalid(
                "run.combine_target_mb",
                format!("{target_mb} is not a size in MiB greater than 0"),
            ));
        }
        let combine = crate::combine::CombineSettings::from_mb(below_mb, target_mb);

        // [wait]
        let mut wait = WaitPolicy::default();
        if let Some(d) = file.wait.poll_interval {
            wait.initial_interval = d;
        }
        if let Some(d) = file.wait.max_poll_interval {
            wait.max_interval = d;
        }
        if let Some(d) = file.wait.max_wait {
            wait.max_wait = d;
        }
        if wait.initial_interval.is_zero() {
            return Err(invalid(
                "wait.poll_interval",
                "must be greater than 0".to_string(),
            ));
        }
        if wait.max_interval < wait.initial_interval {
            wait.max_interval = wait.initial_interval;
        }

        // Tasks: [[tasks]] tables plus the plain list.
        let default_format = file.run.format.unwrap_or_default();
        let ratio = |field: &str, r: Option<f64>| match r {
            Some(x) if !(0.0..=1.0).contains(&x) => {
                Err(invalid(field, format!("{x} is not between 0 and 1")))
            }
            other => Ok(other),
        };
        let default_bad_rows = RejectPolicy {
            on_bad_row: file.run.on_bad_row.unwrap_or_default(),
            max_reject_ratio: ratio("run.max_reject_ratio", file.run.max_reject_ratio)?,
        };
        let default_evolution = EvolutionPolicy {
            extra_fields: file.run.extra_fields.unwrap_or_default(),
            missing_fields: file.run.missing_fields.unwrap_or_default(),
        };
        let mut specs = Vec::new();
        for (i, entry) in file.tasks.iter().enumerate() {
            let field = |f: &str| format!("tasks[{i}].{f}");
            tasks::validate_task_id(&entry.id).map_err(|m| invalid(&field("id"), m))?;
            if specs.iter().any(|s: &TaskSpec| s.id == entry.id) {
                return Err(invalid(
                    &field("id"),
                    format!("task `{}` is listed twice", entry.id),
                ));
            }
            let executions = match &entry.executions {
                None => ExecutionSelector::New,
                Some(ExecutionsRaw::Keyword(k)) => match k.as_str() {
                    "new" => ExecutionSelector::New,
                    "latest" => ExecutionSelector::Latest,
                    other => {
                        return Err(invalid(
                            &field("executions"),
                            format!(
                                "`{other}` is not `\"new\"`, `\"latest\"` or a list of execution ids"
                            ),
                        ));
                    }
                },
                Some(ExecutionsRaw::Ids(ids)) => {
                    if ids.is_empty() {
                        return Err(invalid(
                            &field("executions"),
                            "the list of execution ids is empty".to_string(),
                        ));
                    }
                    for id in ids {
                        tasks::validate_task_id(id)
                            .map_err(|m| invalid(&field("executions"), m))?;
                    }
                    ExecutionSelector::Ids(ids.clone())
                }
            };
            if let Some(d) = &entry.dataset {
                tasks::validate_dataset(d).map_err(|m| invalid(&field("dataset"), m))?;
            }
            specs.push(TaskSpec {
                id: entry.id.clone(),
                dataset: entry.dataset.clone(),
                schema: entry.schema.as_ref().map(|p| base.join(p)),
                executions,
                format: entry.format.unwrap_or(default_format),
                bad_rows: RejectPolicy {
                    on_bad_row: entry.on_bad_row.unwrap_or(default_bad_rows.on_bad_row),
                    max_reject_ratio: ratio(&field("max_reject_ratio"), entry.max_reject_ratio)?
                        .or(default_bad_rows.max_reject_ratio),
                },
                evolution: EvolutionPolicy {
                    extra_fields: entry.extra_fields.unwrap_or(default_evolution.extra_fields),
                    missing_fields: entry
                        .missing_fields
                        .unwrap_or(default_evolution.missing_fields),
                },
            });
        }
        let list_path = match &overrides.tasks_file {
            Some(p) => Some(p.clone()),
            None => file.run.tasks_file.as_ref().map(|p| base.join(p)),
        };
        if let Some(list_path) = list_path {
            for id in tasks::read_task_list(&list_path)? {
                if !specs.iter().any(|s| s.id == id) {
                    specs.push(TaskSpec::with_defaults(
                        id,
                        default_format,
                        default_bad_rows,
                        default_evolution,
                    ));
                }
            }
        }
        if specs.is_empty() && !overrides.allow_no_tasks {
            return Err(ConfigError::NoTasks {
                path: path.to_path_buf(),
            });
        }

        Ok(Config {
            api,
            store,
            run,
            wait,
            media,
            combine,
            tasks: specs,
            shard: overrides.shard,
            dry_run: overrides.dry_run,
            path: path.to_path_buf(),
        })
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
