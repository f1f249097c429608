//! The only place that reads the process environment.
//!
//! A snapshot is taken once at start-up, so the rest of the program (and the tests) get
//! the environment as a plain value and never call `std::env::var` themselves. The whole
//! environment is kept because `${NAME}` in the config file may name any variable.

use std::collections::BTreeMap;

/// Names of the environment variables the connector reads.
pub mod vars {
    /// Origin of the Titan Task Service (without `/api/v1`); overrides `api.url`.
    pub const TITAN_API_URL: &str = "TITAN_API_URL";
    /// The API token (JWT or API key). Never accepted on the command line.
    pub const TITAN_TOKEN: &str = "TITAN_TOKEN";
    /// Overrides `store.url` (short name of `TITAN_CONNECTOR_STORE_URL`).
    pub const TITAN_CONNECTOR_STORE: &str = "TITAN_CONNECTOR_STORE";
    /// Overrides `run.concurrency` (short name of `TITAN_CONNECTOR_RUN_CONCURRENCY`).
    pub const TITAN_CONNECTOR_CONCURRENCY: &str = "TITAN_CONNECTOR_CONCURRENCY";
    /// Prefix of the variables that override config keys: `TITAN_CONNECTOR_<SECTION>_<KEY>`.
    pub const PREFIX: &str = "TITAN_CONNECTOR_";
    /// The standard OpenLineage client variables: `lineage.url`, `lineage.endpoint`,
    /// `lineage.namespace` (as aliases), the API key, and `true` to turn lineage off.
    pub const OPENLINEAGE_URL: &str = "OPENLINEAGE_URL";
    pub const OPENLINEAGE_ENDPOINT: &str = "OPENLINEAGE_ENDPOINT";
    pub const OPENLINEAGE_NAMESPACE: &str = "OPENLINEAGE_NAMESPACE";
    pub const OPENLINEAGE_API_KEY: &str = "OPENLINEAGE_API_KEY";
    pub const OPENLINEAGE_DISABLED: &str = "OPENLINEAGE_DISABLED";
    /// `namespace/job name/run id` of the parent run (the Airflow provider's
    /// `lineage_parent_id` macro) and of the root run (`lineage_root_parent_id`).
    pub const OPENLINEAGE_PARENT_ID: &str = "OPENLINEAGE_PARENT_ID";
    pub const OPENLINEAGE_ROOT_PARENT_ID: &str = "OPENLINEAGE_ROOT_PARENT_ID";
}

/// Every scalar config key that `TITAN_CONNECTOR_<SECTION>_<KEY>` overrides (see
/// [`var_for`]). The README's table of settings lists the same keys.
pub const LAYERED_KEYS: &[&str] = &[
    "api.url",
    "api.auth",
    "api.token_file",
    "api.timeout",
    "api.read_timeout",
    "api.body_timeout",
    "api.allow_insecure_http",
    "api.max_attempts",
    "api.rate_limit_per_minute",
    "store.url",
    "store.table_format",
    "store.checkpoint_interval",
    "run.concurrency",
    "run.format",
    "run.tasks_file",
    "run.batch_rows",
    "run.row_group_rows",
    "run.file_rows",
    "run.combine_below_mb",
    "run.combine_target_mb",
    "run.max_commit_delay",
    "run.file_mb",
    "run.on_bad_row",
    "run.max_reject_ratio",
    "wait.poll_interval",
    "wait.max_poll_interval",
    "wait.max_wait",
    "media.enabled",
    "media.layout",
    "media.concurrency",
    "media.on_error",
    "media.max_bytes",
    "media.store",
    "media.spool_dir",
    "media.spool_max_bytes",
    "lineage.enabled",
    "lineage.url",
    "lineage.endpoint",
    "lineage.file",
    "lineage.namespace",
    "lineage.job_name",
    "lineage.timeout",
    "lineage.max_attempts",
    "metrics.file",
    "metrics.pushgateway",
    "metrics.job",
    "metrics.timeout",
];

/// Other names honoured (older, shorter ones; the standard OpenLineage variables); the long
/// `TITAN_CONNECTOR_…` name wins when both are set.
pub const ALIASES: &[(&str, &str)] = &[
    ("api.url", vars::TITAN_API_URL),
    ("store.url", vars::TITAN_CONNECTOR_STORE),
    ("run.concurrency", vars::TITAN_CONNECTOR_CONCURRENCY),
    // Not older names but the standard ones every OpenLineage client reads.
    ("lineage.url", vars::OPENLINEAGE_URL),
    ("lineage.endpoint", vars::OPENLINEAGE_ENDPOINT),
    ("lineage.namespace", vars::OPENLINEAGE_NAMESPACE),
];

/// The variable overriding a config key: `run.batch_rows` → `TITAN_CONNECTOR_RUN_BATCH_ROWS`.
pub fn var_for(key: &str) -> String {
    format!(
        "{}{}",
        vars::PREFIX,
        key.replace('.', "_").to_ascii_uppercase()
    )
}

/// The process environment, captured once.
#[derive(Clone, Default)]
pub struct Env {
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may include the token or cloud credentials: list names only.
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl Env {
    /// Snapshot of the process environment (variables that are not UTF-8 are left out).
    pub fn from_process() -> Self {
        let values = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Env { values }
    }

    /// An environment built from explicit pairs (tests, embedding).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, if set and not blank: a blank setting counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// The value of `name` exactly as set, empty included (for `${NAME}` in the config).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_section_and_key() {
        assert_eq!(var_for("run.batch_rows"), "TITAN_CONNECTOR_RUN_BATCH_ROWS");
        assert_eq!(var_for("wait.max_wait"), "TITAN_CONNECTOR_WAIT_MAX_WAIT");
        assert_eq!(var_for("store.url"), "TITAN_CONNECTOR_STORE_URL");
    }

    #[test]
    fn debug_lists_names_never_values() {
        let env = Env::from_pairs([("TITAN_TOKEN", "tok-SECRET"), ("LAKE", "s3://b")]);
        let shown = format!("{env:?}");
        assert_eq!(shown, r#"{"LAKE", "TITAN_TOKEN"}"#);
    }

    #[test]
    fn blank_is_unset_for_settings_but_kept_raw_for_interpolation() {
        let env = Env::from_pairs([("A", " "), ("B", "x")]);
        assert_eq!(env.get("A"), None);
        assert_eq!(env.raw("A"), Some(" "));
        assert_eq!(env.get("B"), Some("x"));
        assert_eq!(env.get("C"), None);
    }
}
