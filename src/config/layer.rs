//! The environment layer: `TITAN_CONNECTOR_<SECTION>_<KEY>` overrides `[section] key` of
//! the file, before flags override both (file < environment < flags).
//!
//! Values are parsed as the file's values are (numbers, `true`/`false`, durations like
//! `30s`, the same enum words), and a bad one is an error naming the variable. Paths from
//! the environment are relative to the working directory, like paths given as flags.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::ConfigError;
use super::env::{ALIASES, Env, LAYERED_KEYS, var_for};
use super::file::ConfigFile;

/// Applies every set variable of [`LAYERED_KEYS`] to `file`; returns which keys were set,
/// and by which variable, so that a value that parses but is out of range (a zero) is
/// blamed on the variable.
pub(super) fn apply(
    file: &mut ConfigFile,
    env: &Env,
) -> Result<BTreeMap<&'static str, String>, ConfigError> {
    let mut l = Layer {
        env,
        applied: BTreeMap::new(),
    };
    let f = file;
    l.set("api.url", &mut f.api.url, text)?;
    l.set("api.auth", &mut f.api.auth, word)?;
    l.set("api.token_file", &mut f.api.token_file, path)?;
    l.set("api.timeout", &mut f.api.timeout, duration)?;
    l.set("api.read_timeout", &mut f.api.read_timeout, duration)?;
    l.set("api.body_timeout", &mut f.api.body_timeout, duration)?;
    l.set(
        "api.allow_insecure_http",
        &mut f.api.allow_insecure_http,
        boolean,
    )?;
    l.set("api.max_attempts", &mut f.api.max_attempts, number)?;
    l.set(
        "api.rate_limit_per_minute",
        &mut f.api.rate_limit_per_minute,
        number,
    )?;
    l.set("store.url", &mut f.store.url, location)?;
    l.set("store.table_format", &mut f.store.table_format, word)?;
    l.set(
        "store.checkpoint_interval",
        &mut f.store.checkpoint_interval,
        number,
    )?;
    l.set("run.concurrency", &mut f.run.concurrency, number)?;
    l.set("run.format", &mut f.run.format, word)?;
    l.set("run.tasks_file", &mut f.run.tasks_file, path)?;
    l.set("run.batch_rows", &mut f.run.batch_rows, number)?;
    l.set("run.row_group_rows", &mut f.run.row_group_rows, number)?;
    l.set("run.file_rows", &mut f.run.file_rows, number)?;
    l.set("run.combine_below_mb", &mut f.run.combine_below_mb, number)?;
    l.set(
        "run.combine_target_mb",
        &mut f.run.combine_target_mb,
        number,
    )?;
    l.set(
        "run.max_commit_delay",
        &mut f.run.max_commit_delay,
        duration,
    )?;
    l.set("run.file_mb", &mut f.run.file_mb, number)?;
    l.set("run.on_bad_row", &mut f.run.on_bad_row, word)?;
    l.set("run.max_reject_ratio", &mut f.run.max_reject_ratio, number)?;
    l.set("wait.poll_interval", &mut f.wait.poll_interval, duration)?;
    l.set(
        "wait.max_poll_interval",
        &mut f.wait.max_poll_interval,
        duration,
    )?;
    l.set("wait.max_wait", &mut f.wait.max_wait, duration)?;
    l.set("media.enabled", &mut f.media.enabled, boolean)?;
    l.set("media.layout", &mut f.media.layout, word)?;
    l.set("media.concurrency", &mut f.media.concurrency, number)?;
    l.set("media.on_error", &mut f.media.on_error, word)?;
    l.set("media.max_bytes", &mut f.media.max_bytes, number)?;
    l.set("media.store", &mut f.media.store, location)?;
    l.set("media.spool_dir", &mut f.media.spool_dir, path)?;
    l.set(
        "media.spool_max_bytes",
        &mut f.media.spool_max_bytes,
        number,
    )?;
    l.set("lineage.enabled", &mut f.lineage.enabled, boolean)?;
    l.set("lineage.url", &mut f.lineage.url, text)?;
    l.set("lineage.endpoint", &mut f.lineage.endpoint, text)?;
    l.set("lineage.file", &mut f.lineage.file, path)?;
    l.set("lineage.namespace", &mut f.lineage.namespace, text)?;
    l.set("lineage.job_name", &mut f.lineage.job_name, text)?;
    l.set("lineage.timeout", &mut f.lineage.timeout, duration)?;
    l.set("lineage.max_attempts", &mut f.lineage.max_attempts, number)?;
    l.set("metrics.file", &mut f.metrics.file, path)?;
    l.set("metrics.pushgateway", &mut f.metrics.pushgateway, text)?;
    l.set("metrics.job", &mut f.metrics.job, text)?;
    l.set("metrics.timeout", &mut f.metrics.timeout, duration)?;
    Ok(l.applied)
}

struct Layer<'a> {
    env: &'a Env,
    applied: BTreeMap<&'static str, String>,
}

impl Layer<'_> {
    /// The variable set for `key` (the long name first, then an older short name).
    fn lookup(&self, key: &str) -> Option<(String, &str)> {
        let long = var_for(key);
        if let Some(v) = self.env.get(&long) {
            return Some((long, v));
        }
        ALIASES
            .iter()
            .filter(|(k, _)| *k == key)
            .find_map(|(_, alias)| self.env.get(alias).map(|v| (alias.to_string(), v)))
    }

    fn set<T>(
        &mut self,
        key: &'static str,
        slot: &mut Option<T>,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<(), ConfigError> {
        debug_assert!(LAYERED_KEYS.contains(&key), "{key} is not in LAYERED_KEYS");
        if let Some((var, raw)) = self.lookup(key) {
            let value = parse(raw.trim()).map_err(|message| ConfigError::Env {
                var: var.clone(),
                message,
            })?;
            *slot = Some(value);
            self.applied.insert(key, var);
        }
        Ok(())
    }
}

fn text(v: &str) -> Result<String, String> {
    Ok(v.to_string())
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("`{v}` is not a valid number here"))
}

pub(super) fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("`{v}` is not `true` or `false`")),
    }
}

fn duration(v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v).map_err(|e| format!("`{v}` is not a duration like `30s`: {e}"))
}

/// An enum word, spelled as in the file (`x-api-key`, `csv`, `quarantine`, …).
fn word<T: DeserializeOwned>(v: &str) -> Result<T, String> {
    use serde::de::IntoDeserializer;
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> = v.into_deserializer();
    T::deserialize(de).map_err(|e| format!("`{v}`: {e}"))
}

/// A path, made absolute against the working directory (the file's own relative paths
/// are relative to the file instead).
fn path(v: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(v);
    if p.is_absolute() {
        return Ok(p);
    }
    std::env::current_dir()
        .map(|d| d.join(p))
        .map_err(|e| format!("cannot resolve the relative path `{v}`: {e}"))
}

/// A store location: a URL is kept, a path is made absolute like [`path`].
fn location(v: &str) -> Result<String, String> {
    if v.contains("://") {
        return Ok(v.to_string());
    }
    Ok(path(v)?.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layered_key_is_applied() {
        // Whitespace-free, as rustfmt may break a call over lines.
        let source: String = include_str!("layer.rs")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        for key in LAYERED_KEYS {
            assert!(
                source.contains(&format!("l.set(\"{key}\",")),
                "{key} is listed but not applied"
            );
        }
    }
}
