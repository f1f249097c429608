//! Resolution of the `[lineage]` and `[metrics]` sections (after the environment layer):
//! the OpenLineage transports, job and parent run, and where metrics go.
//!
//! The variables that only make sense per run (the API key, the parent run ids,
//! `OPENLINEAGE_DISABLED`) are read here, not layered onto the file. A malformed parent
//! id is a warning, not an error: lineage must never be what stops an ingestion.

use std::path::Path;
use std::time::Duration;

use url::Url;

use super::ConfigError;
use super::env::{Env, vars};
use super::file::{LineageSection, MetricsSection};
use crate::lineage::{self, ApiKey, HttpSettings, LineageSettings, RunRef, Transports};
use crate::metrics::{self, MetricsSettings};

/// How a bad value is reported: by its key, blamed on the variable that set it if any.
pub(super) type Invalid<'a> = &'a dyn Fn(&str, String) -> ConfigError;

/// `[lineage]` resolved: `None` when lineage is off (neither a URL nor a file, or turned off).
pub(super) fn lineage(
    section: &LineageSection,
    env: &Env,
    base: &Path,
    config_path: &Path,
    invalid: Invalid<'_>,
) -> Result<Option<LineageSettings>, ConfigError> {
    let disabled = env
        .get(vars::OPENLINEAGE_DISABLED)
        .is_some_and(|v| super::layer::boolean(v.trim()).unwrap_or(false));
    if disabled || section.enabled == Some(false) {
        return Ok(None);
    }
    let http = match &section.url {
        Some(raw) => {
            let endpoint = endpoint_url(raw, section.endpoint.as_deref())
                .map_err(|m| invalid("lineage.url", m))?;
            let max_attempts = section
                .max_attempts
                .unwrap_or(lineage::DEFAULT_MAX_ATTEMPTS);
            if max_attempts == 0 {
                return Err(invalid("lineage.max_attempts", "must be at least 1".into()));
            }
            let timeout = section.timeout.unwrap_or(lineage::DEFAULT_TIMEOUT);
            if timeout.is_zero() {
                return Err(invalid("lineage.timeout", "must be greater than 0".into()));
            }
            Some(HttpSettings {
                endpoint,
                api_key: env.get(vars::OPENLINEAGE_API_KEY).and_then(ApiKey::new),
                timeout,
                max_attempts,
            })
        }
        None => None,
    };
    let file = section.file.as_ref().map(|p| base.join(p));
    if http.is_none() && file.is_none() {
        if section.enabled == Some(true) {
            return Err(invalid(
                "lineage.enabled",
                "is true but neither `lineage.url` (OPENLINEAGE_URL) nor `lineage.file` is set"
                    .into(),
            ));
        }
        return Ok(None);
    }
    let namespace = section
        .namespace
        .clone()
        .unwrap_or_else(|| lineage::DEFAULT_NAMESPACE.to_string());
    if namespace.trim().is_empty() {
        return Err(invalid("lineage.namespace", "is empty".into()));
    }
    let job_name = section.job_name.clone().unwrap_or_else(|| {
        let stem = config_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "titan".into());
        format!("titan_connector.{stem}")
    });
    Ok(Some(LineageSettings {
        transports: Transports { http, file },
        namespace,
        job_name,
        parent: parent(env, vars::OPENLINEAGE_PARENT_ID),
        root_parent: parent(env, vars::OPENLINEAGE_ROOT_PARENT_ID),
    }))
}

/// A parent run id from `var`; a malformed one is logged and left out.
fn parent(env: &Env, var: &str) -> Option<RunRef> {
    let raw = env.get(var)?;
    match raw.parse() {
        Ok(r) => Some(r),
        Err(message) => {
            tracing::warn!(var, %message, "Ignoring the OpenLineage parent run");
            None
        }
    }
}

/// `<url>/<endpoint>`: an http(s) URL without query; the endpoint's leading `/` is
/// optional (the OpenLineage clients accept both).
fn endpoint_url(raw: &str, endpoint: Option<&str>) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("`{raw}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{raw}` is not an http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{raw}` must not have a query or fragment"));
    }
    let endpoint = endpoint
        .unwrap_or(lineage::DEFAULT_ENDPOINT)
        .trim_matches('/');
    let mut out = url.clone();
    let path = format!("{}/{endpoint}", url.path().trim_end_matches('/'));
    out.set_path(&path);
    Ok(out)
}

/// `[metrics]` resolved (the `--metrics-file` flag is applied by the caller).
pub(super) fn metrics(
    section: &MetricsSection,
    base: &Path,
    invalid: Invalid<'_>,
) -> Result<MetricsSettings, ConfigError> {
    let pushgateway = match &section.pushgateway {
        Some(raw) => {
            let url = Url::parse(raw.trim()).map_err(|e| {
                invalid("metrics.pushgateway", format!("`{raw}` is not a URL: {e}"))
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(invalid(
                    "metrics.pushgateway",
                    format!("`{raw}` is not an http(s) URL"),
                ));
            }
            Some(url)
        }
        None => None,
    };
    let job = section
        .job
        .clone()
        .unwrap_or_else(|| metrics::DEFAULT_JOB.to_string());
    if job.trim().is_empty() {
        return Err(invalid("metrics.job", "is empty".into()));
    }
    let timeout: Duration = section.timeout.unwrap_or(metrics::DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        return Err(invalid("metrics.timeout", "must be greater than 0".into()));
    }
    Ok(MetricsSettings {
        file: section.file.as_ref().map(|p| base.join(p)),
        pushgateway,
        job,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    //! Through `Config::from_toml`: the file, the standard variables, and what wins; and
    //! the endpoint URL.
    use std::path::Path;
    use std::time::Duration;

    use super::super::{Config, ConfigError, Env, Overrides};
    use super::endpoint_url;

    const TASK: &str = "[[tasks]]\nid = \"task-1\"\n";
    const PARENT: &str = "airflow/titan_ingest.ingest/01931f5e-0b2a-7c3d-9e4f-5a6b7c8d9e0f";

    fn load(extra: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut all = vec![("TITAN_TOKEN".to_string(), "tok-SECRET".to_string())];
        all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_toml(
            &format!("{extra}\n{TASK}"),
            Path::new("/etc/titan/lake.toml"),
            &Env::from_pairs(all),
            &Overrides::default(),
        )
    }

    #[test]
    fn lineage_is_off_unless_a_url_or_file_is_set() {
        assert!(load("", &[]).unwrap().lineage.is_none());
        assert!(
            load("[lineage]\nnamespace = \"x\"\n", &[])
                .unwrap()
                .lineage
                .is_none()
        );
        let e = load("[lineage]\nenabled = true\n", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `lineage.enabled` in `/etc/titan/lake.toml`: is true but neither \
             `lineage.url` (OPENLINEAGE_URL) nor `lineage.file` is set"
        );
    }

    #[test]
    fn the_standard_variables_turn_it_on_and_fill_it_in() {
        let cfg = load(
            "",
            &[
                ("OPENLINEAGE_URL", "http://marquez:5000"),
                ("OPENLINEAGE_NAMESPACE", "lake"),
                ("OPENLINEAGE_API_KEY", "ol-SECRET"),
                ("OPENLINEAGE_PARENT_ID", PARENT),
            ],
        )
        .unwrap();
        let l = cfg.lineage.unwrap();
        let http = l.transports.http.as_ref().unwrap();
        assert_eq!(http.endpoint.as_str(), "http://marquez:5000/api/v1/lineage");
        assert_eq!(http.api_key.as_ref().map(|k| k.expose()), Some("ol-SECRET"));
        assert_eq!(
            (http.timeout, http.max_attempts),
            (Duration::from_secs(5), 3)
        );
        assert_eq!(l.transports.file, None);
        assert_eq!(
            (l.namespace.as_str(), l.job_name.as_str()),
            ("lake", "titan_connector.lake")
        );
        assert_eq!(l.parent.unwrap().name, "titan_ingest.ingest");
        assert_eq!(l.root_parent, None);
    }

    #[test]
    fn the_file_sets_both_transports_and_the_variables_win() {
        let text = "[lineage]\nurl = \"http://file-wins-not:5000\"\nfile = \"events/ol.ndjson\"\n\
                    namespace = \"from-file\"\njob_name = \"ingest\"\ntimeout = \"300ms\"\nmax_attempts = 2\n";
        let cfg = load(text, &[("OPENLINEAGE_URL", "http://127.0.0.1:5000/base")]).unwrap();
        let l = cfg.lineage.unwrap();
        let http = l.transports.http.unwrap();
        assert_eq!(
            http.endpoint.as_str(),
            "http://127.0.0.1:5000/base/api/v1/lineage"
        );
        assert_eq!(
            (http.timeout, http.max_attempts),
            (Duration::from_millis(300), 2)
        );
        assert_eq!(
            l.transports.file.as_deref(),
            Some(Path::new("/etc/titan/events/ol.ndjson"))
        );
        assert_eq!(
            (l.namespace.as_str(), l.job_name.as_str()),
            ("from-file", "ingest")
        );
        // The long name beats the standard one.
        let cfg = load(
            text,
            &[
                ("OPENLINEAGE_NAMESPACE", "standard"),
                ("TITAN_CONNECTOR_LINEAGE_NAMESPACE", "long"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.lineage.unwrap().namespace, "long");
    }

    #[test]
    fn disabled_wins_and_a_bad_parent_is_left_out() {
        let on = [("OPENLINEAGE_URL", "http://m:5000")];
        assert!(
            load("[lineage]\nenabled = false\n", &on)
                .unwrap()
                .lineage
                .is_none()
        );
        assert!(
            load("", &[on[0], ("OPENLINEAGE_DISABLED", "true")])
                .unwrap()
                .lineage
                .is_none()
        );
        let l = load("", &[on[0], ("OPENLINEAGE_PARENT_ID", "not/a-run")])
            .unwrap()
            .lineage
            .unwrap();
        assert_eq!(l.parent, None);
    }

    #[test]
    fn bad_values_name_their_key_or_variable() {
        let e = load("", &[("OPENLINEAGE_URL", "marquez:5000")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid environment variable `OPENLINEAGE_URL`: `marquez:5000` is not an http(s) URL"
        );
        let e = load("[lineage]\nurl = \"http://m\"\nmax_attempts = 0\n", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `lineage.max_attempts` in `/etc/titan/lake.toml`: must be at least 1"
        );
        let e = load("[metrics]\npushgateway = \"pushgw:9091\"\n", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `metrics.pushgateway` in `/etc/titan/lake.toml`: `pushgw:9091` is not an http(s) URL"
        );
    }

    #[test]
    fn metrics_default_to_nothing_and_paths_are_relative_to_the_file() {
        let m = load("", &[]).unwrap().metrics;
        assert!(!m.is_enabled());
        let m = load(
            "[metrics]\nfile = \"prom/titan.prom\"\npushgateway = \"http://127.0.0.1:9091\"\njob = \"lake\"\n",
            &[],
        )
        .unwrap()
        .metrics;
        assert_eq!(
            m.file.as_deref(),
            Some(Path::new("/etc/titan/prom/titan.prom"))
        );
        assert_eq!(m.pushgateway.unwrap().as_str(), "http://127.0.0.1:9091/");
        assert_eq!(
            (m.job.as_str(), m.timeout),
            ("lake", Duration::from_secs(5))
        );
    }

    #[test]
    fn the_endpoint_joins_url_and_path_with_one_slash() {
        for (url, ep, want) in [
            (
                "http://marquez:5000",
                None,
                "http://marquez:5000/api/v1/lineage",
            ),
            (
                "http://marquez:5000/",
                Some("/api/v1/lineage"),
                "http://marquez:5000/api/v1/lineage",
            ),
            (
                "https://ol.example.test/base/",
                Some("events"),
                "https://ol.example.test/base/events",
            ),
        ] {
            assert_eq!(
                endpoint_url(url, ep).unwrap().as_str(),
                want,
                "{url} {ep:?}"
            );
        }
        assert!(
            endpoint_url("ftp://x", None)
                .unwrap_err()
                .contains("not an http(s) URL")
        );
        assert!(
            endpoint_url("http://x/?k=v", None)
                .unwrap_err()
                .contains("query")
        );
    }
}
