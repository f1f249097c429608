//! Resolving a parsed config file into a [`Config`]: one function per section, each
//! validating what it owns and naming the variable or the file key a bad value came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::file::{ConfigFile, ExecutionsRaw};
use super::{
    Config, ConfigError, DEFAULT_API_URL, DEFAULT_STORE, Env, MAX_FILE_MB, MediaConfig, Overrides,
    RunOptions, env, interpolate, layer, parse_api_url, read_token_file, resolve_store_url,
};
use crate::api::{ApiConfig, AuthScheme, RetryPolicy, Token};
use crate::map::RejectPolicy;
use crate::media::MediaSettings;
use crate::schema::EvolutionPolicy;
use crate::sink::TableSettings;
use crate::sink::combine::{self, CombineSettings};
use crate::sink::store::StoreConfig;
use crate::source::tasks::{self, ExecutionSelector, TaskSpec};
use crate::source::waiter::WaitPolicy;

/// Parses `text` (syntax, `${…}` interpolation, types), applies the environment layer and
/// resolves every section.
pub(super) fn resolve(
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
    let r = Resolving {
        file: &file,
        path,
        base,
        origin: path.display().to_string(),
        from_env,
        overrides,
    };
    let (run, combine) = r.run()?;
    let invalid = |field: &str, message: String| r.invalid(field, message);
    let lineage = super::observe::lineage(&file.lineage, env, &r.base, path, &invalid)?;
    let metrics = super::observe::metrics(&file.metrics, &r.base, &invalid)?;
    Ok(Config {
        api: r.api(env)?,
        store: r.store()?,
        table: r.table(),
        run,
        wait: r.wait()?,
        media: r.media()?,
        combine,
        tasks: r.tasks()?,
        shard: overrides.shard,
        dry_run: overrides.dry_run,
        lineage,
        metrics,
        path: path.to_path_buf(),
    })
}

/// What every section's resolution needs: the file, where it is, which keys the
/// environment set, and the command-line overrides.
struct Resolving<'a> {
    file: &'a ConfigFile,
    path: &'a Path,
    /// The config file's folder: relative paths in it are relative to it.
    base: PathBuf,
    origin: String,
    /// Keys set by a variable, and by which.
    from_env: BTreeMap<&'static str, String>,
    overrides: &'a Overrides,
}

impl Resolving<'_> {
    /// A bad value names where it came from: the variable, or the file and key.
    fn invalid(&self, field: &str, message: String) -> ConfigError {
        match self.from_env.get(field) {
            Some(var) => ConfigError::Env {
                var: var.clone(),
                message,
            },
            None => ConfigError::Invalid {
                origin: self.origin.clone(),
                field: field.to_string(),
                message,
            },
        }
    }

    fn at_least_one(&self, field: &str, v: usize) -> Result<(), ConfigError> {
        if v == 0 {
            return Err(self.invalid(field, "must be at least 1".to_string()));
        }
        Ok(())
    }

    /// `[api]` plus the media host policy the client enforces.
    fn api(&self, env: &Env) -> Result<ApiConfig, ConfigError> {
        let file = self.file;
        let api_url = file
            .api
            .url
            .clone()
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        let base_url = parse_api_url(&api_url).map_err(|m| self.invalid("api.url", m))?;
        let token = match &file.api.token_file {
            Some(p) => read_token_file(&self.base.join(p))?,
            None => match env.get(env::vars::TITAN_TOKEN) {
                Some(t) => Token::new(t).map_err(|e| self.invalid("TITAN_TOKEN", e.to_string()))?,
                None => {
                    return Err(ConfigError::MissingToken {
                        path: self.path.to_path_buf(),
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
                return Err(
                    self.invalid("api.body_timeout", "must be greater than zero".to_string())
                );
            }
            api.body_timeout = t;
        }
        api.allow_insecure_http = file.api.allow_insecure_http.unwrap_or(false);
        api.retry = RetryPolicy::default();
        if let Some(n) = file.api.max_attempts {
            if n == 0 {
                return Err(self.invalid("api.max_attempts", "must be at least 1".to_string()));
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
            // Unset: `ApiConfig::new` already follows the server's advertised limit.
            None => {}
        }
        if let Some(hosts) = &file.media.allowed_hosts {
            api.media_allowed_hosts = hosts.clone();
        }
        if let Some(n) = file.media.max_bytes {
            api.max_media_bytes = Some(n);
        }
        Ok(api)
    }

    /// `[store]`, or `--store`.
    fn store(&self) -> Result<StoreConfig, ConfigError> {
        let file = self.file;
        let (store_raw, store_base) = match self.overrides.store.clone() {
            // Flags are relative to the working directory, like any CLI path (the
            // environment layer already made its paths absolute).
            Some(s) => (s, PathBuf::from(".")),
            None => (
                file.store
                    .url
                    .clone()
                    .unwrap_or_else(|| DEFAULT_STORE.to_string()),
                self.base.clone(),
            ),
        };
        Ok(StoreConfig {
            url: resolve_store_url(&store_raw, &store_base)
                .map_err(|m| self.invalid("store.url", m))?,
            options: file.store.options.clone().into_iter().collect(),
        })
    }

    /// `[store] table_format` and `checkpoint_interval`.
    fn table(&self) -> TableSettings {
        let store = &self.file.store;
        let defaults = TableSettings::default();
        TableSettings {
            format: store.table_format.unwrap_or(defaults.format),
            checkpoint_interval: store
                .checkpoint_interval
                .unwrap_or(defaults.checkpoint_interval),
        }
    }

    /// `[media]`: what to fetch and where to put it.
    fn media(&self) -> Result<MediaConfig, ConfigError> {
        let file = self.file;
        let mut settings = MediaSettings::default();
        if let Some(e) = file.media.enabled {
            settings.enabled = e;
        }
        if let Some(l) = file.media.layout {
            settings.layout = l;
        }
        if let Some(c) = file.media.concurrency {
            self.at_least_one("media.concurrency", c)?;
            settings.concurrency = c;
        }
        if let Some(p) = file.media.on_error {
            settings.on_error = p;
        }
        let store = match &file.media.store {
            Some(raw) => Some(StoreConfig {
                url: resolve_store_url(raw, &self.base)
                    .map_err(|m| self.invalid("media.store", m))?,
                options: file.media.store_options.clone().into_iter().collect(),
            }),
            None => None,
        };
        let mut spool = crate::run::spool::SpoolSettings::default();
        if let Some(dir) = &file.media.spool_dir {
            spool.dir = self.base.join(dir);
        }
        if let Some(n) = file.media.spool_max_bytes {
            if n == 0 {
                return Err(self.invalid("media.spool_max_bytes", "must be at least 1".to_string()));
            }
            spool.max_bytes = n;
        }
        Ok(MediaConfig {
            settings,
            store,
            spool,
        })
    }

    /// `[run]`: concurrency, batch and file sizes, and when small executions are combined.
    fn run(&self) -> Result<(RunOptions, CombineSettings), ConfigError> {
        let file = self.file;
        let defaults = RunOptions::default();
        let concurrency = self
            .overrides
            .concurrency
            .or(file.run.concurrency)
            .unwrap_or(defaults.concurrency);
        let run = RunOptions {
            concurrency,
            batch_rows: file.run.batch_rows.unwrap_or(defaults.batch_rows),
            row_group_rows: file.run.row_group_rows.unwrap_or(defaults.row_group_rows),
            file_rows: file.run.file_rows.unwrap_or(defaults.file_rows),
            file_bytes: match file.run.file_mb {
                None => defaults.file_bytes,
                Some(mb) if (1.0..=MAX_FILE_MB).contains(&mb) => {
                    (mb * 1024.0 * 1024.0).round() as u64
                }
                Some(mb) => {
                    return Err(self.invalid(
                        "run.file_mb",
                        format!("{mb} is not a size in MiB from 1 to {MAX_FILE_MB}"),
                    ));
                }
            },
        };
        for (field, v) in [
            ("run.concurrency", run.concurrency),
            ("run.batch_rows", run.batch_rows),
            ("run.row_group_rows", run.row_group_rows),
            ("run.file_rows", run.file_rows),
        ] {
            self.at_least_one(field, v)?;
        }
        let below_mb = file
            .run
            .combine_below_mb
            .unwrap_or(combine::DEFAULT_COMBINE_BELOW_MB);
        let target_mb = file
            .run
            .combine_target_mb
            .unwrap_or(combine::DEFAULT_COMBINE_TARGET_MB);
        if !(below_mb.is_finite() && below_mb >= 0.0) {
            return Err(self.invalid(
                "run.combine_below_mb",
                format!("{below_mb} is not a size in MiB (0 disables combining)"),
            ));
        }
        if !(target_mb.is_finite() && target_mb > 0.0) {
            return Err(self.invalid(
                "run.combine_target_mb",
                format!("{target_mb} is not a size in MiB greater than 0"),
            ));
        }
        let max_delay = file
            .run
            .max_commit_delay
            .unwrap_or(combine::DEFAULT_MAX_COMMIT_DELAY);
        if max_delay.is_zero() {
            return Err(self.invalid("run.max_commit_delay", "must be greater than 0".to_string()));
        }
        Ok((
            run,
            CombineSettings::from_mb(below_mb, target_mb).with_max_delay(max_delay),
        ))
    }

    /// `[wait]`: how executions are polled until they end.
    fn wait(&self) -> Result<WaitPolicy, ConfigError> {
        let file = self.file;
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
            return Err(self.invalid("wait.poll_interval", "must be greater than 0".to_string()));
        }
        if wait.max_interval < wait.initial_interval {
            wait.max_interval = wait.initial_interval;
        }
        Ok(wait)
    }

    fn ratio(&self, field: &str, r: Option<f64>) -> Result<Option<f64>, ConfigError> {
        match r {
            Some(x) if !(0.0..=1.0).contains(&x) => {
                Err(self.invalid(field, format!("{x} is not between 0 and 1")))
            }
            other => Ok(other),
        }
    }

    /// Tasks: `[[tasks]]` tables plus the plain task list, with the run's defaults.
    fn tasks(&self) -> Result<Vec<TaskSpec>, ConfigError> {
        let file = self.file;
        let default_format = file.run.format.unwrap_or_default();
        let default_bad_rows = RejectPolicy {
            on_bad_row: file.run.on_bad_row.unwrap_or_default(),
            max_reject_ratio: self.ratio("run.max_reject_ratio", file.run.max_reject_ratio)?,
        };
        let default_evolution = EvolutionPolicy {
            extra_fields: file.run.extra_fields.unwrap_or_default(),
            missing_fields: file.run.missing_fields.unwrap_or_default(),
        };
        let mut specs: Vec<TaskSpec> = Vec::new();
        for (i, entry) in file.tasks.iter().enumerate() {
            let field = |f: &str| format!("tasks[{i}].{f}");
            tasks::validate_task_id(&entry.id).map_err(|m| self.invalid(&field("id"), m))?;
            if specs.iter().any(|s| s.id == entry.id) {
                return Err(
                    self.invalid(&field("id"), format!("task `{}` is listed twice", entry.id))
                );
            }
            let executions = self.executions(entry.executions.as_ref(), &field("executions"))?;
            if let Some(d) = &entry.dataset {
                tasks::validate_dataset(d).map_err(|m| self.invalid(&field("dataset"), m))?;
            }
            specs.push(TaskSpec {
                id: entry.id.clone(),
                dataset: entry.dataset.clone(),
                schema: entry.schema.as_ref().map(|p| self.base.join(p)),
                executions,
                format: entry.format.unwrap_or(default_format),
                bad_rows: RejectPolicy {
                    on_bad_row: entry.on_bad_row.unwrap_or(default_bad_rows.on_bad_row),
                    max_reject_ratio: self
                        .ratio(&field("max_reject_ratio"), entry.max_reject_ratio)?
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
        let list_path = match &self.overrides.tasks_file {
            Some(p) => Some(p.clone()),
            None => file.run.tasks_file.as_ref().map(|p| self.base.join(p)),
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
        if specs.is_empty() && !self.overrides.allow_no_tasks {
            return Err(ConfigError::NoTasks {
                path: self.path.to_path_buf(),
            });
        }
        Ok(specs)
    }

    /// A task's `executions`: `"new"` (default), `"latest"` or a list of ids.
    fn executions(
        &self,
        raw: Option<&ExecutionsRaw>,
        field: &str,
    ) -> Result<ExecutionSelector, ConfigError> {
        Ok(match raw {
            None => ExecutionSelector::New,
            Some(ExecutionsRaw::Keyword(k)) => {
                match k.as_str() {
                    "new" => ExecutionSelector::New,
                    "latest" => ExecutionSelector::Latest,
                    other => {
                        return Err(self.invalid(
                        field,
                        format!("`{other}` is not `\"new\"`, `\"latest\"` or a list of execution ids"),
                    ));
                    }
                }
            }
            Some(ExecutionsRaw::Ids(ids)) => {
                if ids.is_empty() {
                    return Err(
                        self.invalid(field, "the list of execution ids is empty".to_string())
                    );
                }
                for id in ids {
                    tasks::validate_task_id(id).map_err(|m| self.invalid(field, m))?;
                }
                ExecutionSelector::Ids(ids.clone())
            }
        })
    }
}
