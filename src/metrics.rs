//! Prometheus metrics of a run, in the text exposition format (0.0.4): rendered from the
//! run report at the end of a run, written atomically to `--metrics-file` (for
//! node_exporter's textfile collector) and optionally PUT to a Pushgateway.
//!
//! Every value describes the last run only: a batch job has no process that lives across
//! runs to keep counters. `_total` families are that run's counts (they reset each run,
//! which `increase()` reads as a counter reset); `titan_connector_last_run_timestamp_seconds`
//! says which run they describe. Invariant: publishing never fails the run and is bounded
//! by `metrics.timeout` per Pushgateway attempt; what fails is a warning.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{debug, warn};
use url::Url;

use crate::report::{Outcome, RunReport};

/// Default `metrics.job`: the Pushgateway's `job` grouping label.
pub const DEFAULT_JOB: &str = "titan_connector";
/// Default per-attempt timeout of a Pushgateway PUT.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pushgateway attempts, the first included.
const PUSH_ATTEMPTS: u32 = 2;

/// The resolved `[metrics]` section (and `--metrics-file`).
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub file: Option<PathBuf>,
    /// The Pushgateway's origin (`http://pushgateway:9091`).
    pub pushgateway: Option<Url>,
    pub job: String,
    pub timeout: Duration,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            file: None,
            pushgateway: None,
            job: DEFAULT_JOB.to_string(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl MetricsSettings {
    pub fn is_enabled(&self) -> bool {
        self.file.is_some() || self.pushgateway.is_some()
    }
}

/// Why metrics could not be published.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Pushgateway: {0}")]
    Push(String),
}

/// The text exposition being written: one `# HELP`/`# TYPE` header per family.
struct Exposition(String);

type Labels<'a> = &'a [(&'a str, &'a str)];

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(Labels<'_>, f64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            self.0.push_str(name);
            if !labels.is_empty() {
                self.0.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        self.0.push(',');
                    }
                    let _ = write!(self.0, "{k}=\"{}\"", escape(v));
                }
                self.0.push('}');
            }
            let _ = writeln!(self.0, " {value}");
        }
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help, &[(&[], value)]);
    }
}

/// A label value as the format wants it: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn seconds_of(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Unix time of an RFC 3339 timestamp (the report's `finished_at`), if it parses.
fn unix_seconds(rfc3339: &str) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    Some(t.timestamp_millis() as f64 / 1000.0)
}

fn header(out: &mut Exposition, finished_unix: f64, duration_ms: u64, success: bool) {
    out.family(
        "titan_connector_build_info",
        "gauge",
        "The connector's version; always 1.",
        &[(&[("version", env!("CARGO_PKG_VERSION"))], 1.0)],
    );
    out.one(
        "titan_connector_last_run_timestamp_seconds",
        "gauge",
        "When the last run ended (Unix time).",
        finished_unix,
    );
    out.one(
        "titan_connector_last_run_success",
        "gauge",
        "1 if the last run ingested everything it should have (exit 0), else 0.",
        if success { 1.0 } else { 0.0 },
    );
    out.one(
        "titan_connector_run_duration_seconds",
        "gauge",
        "Wall time of the last run.",
        seconds_of(duration_ms),
    );
}

/// The metrics of a run that produced `report`.
pub fn render(report: &RunReport) -> String {
    let t = &report.totals;
    let mut out = Exposition(String::new());
    let finished = unix_seconds(&report.finished_at).unwrap_or(0.0);
    let success = !report.interrupted && !report.has_failures();
    header(&mut out, finished, report.duration_ms, success);
    out.one(
        "titan_connector_last_run_interrupted",
        "gauge",
        "1 if the last run was stopped by SIGTERM/SIGINT before it finished.",
        if report.interrupted { 1.0 } else { 0.0 },
    );
    let (wait_ms, ingest_ms) = report
        .executions
        .iter()
        .fold((0, 0), |(w, i), e| (w + e.wait_ms, i + e.ingest_ms));
    out.family(
        "titan_connector_stage_duration_seconds_total",
        "counter",
        "Time spent per stage: planning (wall time), then waiting for and ingesting executions (summed over executions, which run concurrently).",
        &[
            (&[("stage", "plan")], seconds_of(t.plan_ms)),
            (&[("stage", "wait")], seconds_of(wait_ms)),
            (&[("stage", "ingest")], seconds_of(ingest_ms)),
        ],
    );
    let outcomes = [
        ("ingested", t.ingested),
        ("already_ingested", t.already_ingested),
        ("no_results", t.no_results),
        ("failed", t.failed),
        ("leased", t.leased),
        ("planned", t.planned),
    ];
    debug_assert_eq!(
        outcomes.iter().map(|(_, n)| n).sum::<usize>(),
        t.executions,
        "every outcome is listed"
    );
    let outcome_labels: Vec<[(&str, &str); 1]> =
        outcomes.iter().map(|(o, _)| [("outcome", *o)]).collect();
    let outcome_samples: Vec<(Labels<'_>, f64)> = outcome_labels
        .iter()
        .zip(outcomes.iter())
        .map(|(l, (_, n))| (&l[..], *n as f64))
        .collect();
    out.family(
        "titan_connector_executions_total",
        "counter",
        "Executions handled by the last run, by outcome.",
        &outcome_samples,
    );
    out.one(
        "titan_connector_tasks_failed_total",
        "counter",
        "Tasks that could not be planned (unknown id, no schema…).",
        t.failed_tasks as f64,
    );
    let read: u64 = report
        .executions
        .iter()
        .filter(|e| e.outcome == Outcome::Ingested)
        .map(|e| e.records_read)
        .sum();
    out.one(
        "titan_connector_rows_read_total",
        "counter",
        "Records read from the exports of the executions ingested.",
        read as f64,
    );
    out.one(
        "titan_connector_rows_written_total",
        "counter",
        "Rows committed to the lake.",
        t.rows as f64,
    );
    out.one(
        "titan_connector_rows_rejected_total",
        "counter",
        "Rows that did not fit the target schema (quarantined or skipped).",
        t.rejected_rows as f64,
    );
    let reason_labels: Vec<[(&str, &str); 1]> = t
        .rejected_by_reason
        .keys()
        .map(|r| [("reason", r.as_str())])
        .collect();
    let reason_samples: Vec<(Labels<'_>, f64)> = reason_labels
        .iter()
        .zip(t.rejected_by_reason.values())
        .map(|(l, n)| (&l[..], *n as f64))
        .collect();
    out.family(
        "titan_connector_rows_rejected_by_reason_total",
        "counter",
        "Rejected rows by the reason code of the row's first failing column.",
        &reason_samples,
    );
    out.one(
        "titan_connector_files_written_total",
        "counter",
        "Parquet files committed (a combined file counts once).",
        t.files as f64,
    );
    out.one(
        "titan_connector_combined_files_written_total",
        "counter",
        "Of those, files combining several small executions.",
        t.combined_files as f64,
    );
    out.one(
        "titan_connector_bytes_written_total",
        "counter",
        "Bytes of the Parquet files committed.",
        t.bytes as f64,
    );
    let m = &t.media;
    out.family(
        "titan_connector_media_files_total",
        "counter",
        "Media files by outcome (deduplicated downloads are also counted as downloaded).",
        &[
            (&[("outcome", "downloaded")], m.downloaded as f64),
            (&[("outcome", "reused")], m.reused as f64),
            (&[("outcome", "deduplicated")], m.deduplicated as f64),
            (&[("outcome", "failed")], m.failed as f64),
        ],
    );
    out.one(
        "titan_connector_media_bytes_total",
        "counter",
        "Bytes of the media files downloaded.",
        m.bytes as f64,
    );
    out.one(
        "titan_connector_api_requests_total",
        "counter",
        "HTTP requests to Titan, retries and redirect hops included.",
        t.api_requests as f64,
    );
    let causes = t.api_retries_by_cause.iter();
    let mut cause_labels: Vec<[(&str, &str); 1]> =
        causes.iter().map(|(c, _)| [("cause", *c)]).collect();
    cause_labels.push([("cause", "export_body")]);
    let mut values: Vec<f64> = causes.iter().map(|(_, n)| *n as f64).collect();
    values.push(t.export_retries as f64);
    let retry_samples: Vec<(Labels<'_>, f64)> = cause_labels
        .iter()
        .zip(values)
        .map(|(l, v)| (&l[..], v))
        .collect();
    out.family(
        "titan_connector_retries_total",
        "counter",
        "Requests retried, by cause; export_body: whole exports downloaded again after a broken or bad body.",
        &retry_samples,
    );
    out.one(
        "titan_connector_api_rate_limited_total",
        "counter",
        "429 answers from Titan.",
        t.api_rate_limited as f64,
    );
    out.one(
        "titan_connector_api_throttled_seconds_total",
        "counter",
        "Time requests waited for the client's rate budget or a server-announced hold.",
        seconds_of(t.api_throttled_ms),
    );
    out.0
}

/// The metrics of a run that ended without a report (refused token, unreachable API…):
/// enough to alert on.
pub fn render_failed(finished_unix: f64, duration: Duration) -> String {
    let mut out = Exposition(String::new());
    header(&mut out, finished_unix, duration.as_millis() as u64, false);
    out.0
}

/// Writes `text` to `path` atomically: a temporary file in the same directory (a name
/// the textfile collector ignores: it reads `*.prom` only), synced, then renamed over.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), MetricsError> {
    let err = |source| MetricsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "metrics".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// `<origin>/metrics/job/<job>[/<label>/<value>…]`: the Pushgateway's grouping key.
pub fn push_url(
    gateway: &Url,
    job: &str,
    grouping: &[(&str, String)],
) -> Result<Url, MetricsError> {
    let mut url = gateway.clone();
    {
        let mut segs = url
            .path_segments_mut()
            .map_err(|()| MetricsError::Push(format!("`{gateway}` cannot hold a path")))?;
        segs.pop_if_empty().extend(["metrics", "job", job]);
        for (k, v) in grouping {
            segs.extend([*k, v.as_str()]);
        }
    }
    Ok(url)
}

/// PUTs `text` (replacing the group's previous metrics), bounded by `timeout` per attempt.
async fn push(url: &Url, text: &str, timeout: Duration) -> Result<(), MetricsError> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| MetricsError::Push(e.without_url().to_string()))?;
    let mut last = String::new();
    for attempt in 1..=PUSH_ATTEMPTS {
        let req = client
            .put(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "text/plain; version=0.0.4")
            .body(text.to_string());
        match tokio::time::timeout(timeout, req.send()).await {
            Ok(Ok(r)) if r.status().is_success() => return Ok(()),
            Ok(Ok(r)) if r.status().is_client_error() => {
                return Err(MetricsError::Push(format!("answered {}", r.status())));
            }
            Ok(Ok(r)) => last = format!("answered {}", r.status()),
            Ok(Err(e)) => last = e.without_url().to_string(),
            Err(_) => last = format!("no answer within {timeout:?}"),
        }
        debug!(attempt, error = %last, "Pushgateway push failed");
    }
    Err(MetricsError::Push(last))
}

/// Writes the metrics file and pushes to the Pushgateway, as configured; failures are
/// warnings. `grouping` extends the Pushgateway's grouping key (the shard, when sharded).
pub async fn publish(settings: &MetricsSettings, grouping: &[(&str, String)], text: &str) {
    if let Some(path) = &settings.file {
        match write_atomic(path, text) {
            Ok(()) => debug!(path = %path.display(), "Metrics written"),
            Err(e) => warn!(error = %e, "Metrics not written"),
        }
    }
    if let Some(gw) = &settings.pushgateway {
        let result = match push_url(gw, &settings.job, grouping) {
            Ok(url) => push(&url, text, settings.timeout).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            warn!(
                pushgateway = %crate::sink::store::redact_url(gw),
                error = %e,
                "Metrics not pushed; the run goes on without them"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ExecutionReport, REPORT_VERSION, Totals};
    use std::collections::BTreeMap;

    fn exec(outcome: Outcome) -> ExecutionReport {
        ExecutionReport::new("t", "e", "d", outcome, "completed")
    }

    fn report() -> RunReport {
        let mut a = exec(Outcome::Ingested);
        (a.rows, a.records_read, a.bytes, a.wait_ms, a.ingest_ms) = (95, 100, 2048, 1500, 250);
        a.files = vec!["d/x-0.parquet".into()];
        a.retries = 1;
        a.rejected_rows = 5;
        a.rejected_by_reason = BTreeMap::from([("syntax".into(), 4), ("null".into(), 1)]);
        let mut b = exec(Outcome::NoResults);
        b.wait_ms = 500;
        let mut r = RunReport {
            report_version: REPORT_VERSION,
            connector_version: "x".into(),
            run_id: "r".into(),
            started_at: "2026-12-01T10:00:00.000Z".into(),
            finished_at: "2026-12-01T10:00:02.500Z".into(),
            duration_ms: 2500,
            store: "s".into(),
            datasets: vec![],
            totals: Totals {
                api_requests: 12,
                api_retries: 3,
                api_retries_by_cause: crate::api::RetryCauses {
                    rate_limited: 2,
                    timeout: 1,
                    ..Default::default()
                },
                api_rate_limited: 2,
                api_throttled_ms: 1250,
                plan_ms: 40,
                media: crate::media::MediaStats {
                    downloaded: 3,
                    reused: 1,
                    deduplicated: 1,
                    failed: 2,
                    bytes: 999,
                },
                ..Totals::default()
            },
            tasks_failed: vec![],
            interrupted: false,
            executions: vec![a, b],
        };
        r.tally();
        r
    }

    #[test]
    fn the_exposition_holds_every_family_with_the_reports_values() {
        let text = render(&report());
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        let version = env!("CARGO_PKG_VERSION");
        let build_info = format!("titan_connector_build_info{{version=\"{version}\"}} 1");
        assert_eq!(
            samples,
            [
                build_info.as_str(),
                "titan_connector_last_run_timestamp_seconds 1796119202.5",
                "titan_connector_last_run_success 0",
                "titan_connector_run_duration_seconds 2.5",
                "titan_connector_last_run_interrupted 0",
                "titan_connector_stage_duration_seconds_total{stage=\"plan\"} 0.04",
                "titan_connector_stage_duration_seconds_total{stage=\"wait\"} 2",
                "titan_connector_stage_duration_seconds_total{stage=\"ingest\"} 0.25",
                "titan_connector_executions_total{outcome=\"ingested\"} 1",
                "titan_connector_executions_total{outcome=\"already_ingested\"} 0",
                "titan_connector_executions_total{outcome=\"no_results\"} 1",
                "titan_connector_executions_total{outcome=\"failed\"} 0",
                "titan_connector_executions_total{outcome=\"leased\"} 0",
                "titan_connector_executions_total{outcome=\"planned\"} 0",
                "titan_connector_tasks_failed_total 0",
                "titan_connector_rows_read_total 100",
                "titan_connector_rows_written_total 95",
                "titan_connector_rows_rejected_total 5",
                "titan_connector_rows_rejected_by_reason_total{reason=\"null\"} 1",
                "titan_connector_rows_rejected_by_reason_total{reason=\"syntax\"} 4",
                "titan_connector_files_written_total 1",
                "titan_connector_combined_files_written_total 0",
                "titan_connector_bytes_written_total 2048",
                "titan_connector_media_files_total{outcome=\"downloaded\"} 3",
                "titan_connector_media_files_total{outcome=\"reused\"} 1",
                "titan_connector_media_files_total{outcome=\"deduplicated\"} 1",
                "titan_connector_media_files_total{outcome=\"failed\"} 2",
                "titan_connector_media_bytes_total 999",
                "titan_connector_api_requests_total 12",
                "titan_connector_retries_total{cause=\"rate_limited\"} 2",
                "titan_connector_retries_total{cause=\"server_error\"} 0",
                "titan_connector_retries_total{cause=\"timeout\"} 1",
                "titan_connector_retries_total{cause=\"network\"} 0",
                "titan_connector_retries_total{cause=\"other\"} 0",
                "titan_connector_retries_total{cause=\"export_body\"} 1",
                "titan_connector_api_rate_limited_total 2",
                "titan_connector_api_throttled_seconds_total 1.25",
            ]
        );
        // Each family has its HELP and TYPE right before its samples.
        assert!(text.contains(
            "# HELP titan_connector_rows_written_total Rows committed to the lake.\n\
             # TYPE titan_connector_rows_written_total counter\n\
             titan_connector_rows_written_total 95\n"
        ));
    }

    #[test]
    fn a_clean_run_is_a_success_and_a_run_without_report_is_not() {
        let mut r = report();
        r.executions.retain(|e| e.outcome == Outcome::Ingested);
        r.tally();
        assert!(render(&r).contains("\ntitan_connector_last_run_success 1\n"));
        r.interrupted = true;
        let text = render(&r);
        assert!(text.contains("\ntitan_connector_last_run_success 0\n"));
        assert!(text.contains("\ntitan_connector_last_run_interrupted 1\n"));
        let failed = render_failed(1796119202.5, Duration::from_millis(1200));
        let samples: Vec<&str> = failed.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            &samples[1..],
            [
                "titan_connector_last_run_timestamp_seconds 1796119202.5",
                "titan_connector_last_run_success 0",
                "titan_connector_run_duration_seconds 1.2",
            ]
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn the_file_is_replaced_whole_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("titan.prom");
        write_atomic(&path, "a 1\n").unwrap();
        write_atomic(&path, "b 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b 2\n");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["titan.prom"]);
        let e = write_atomic(&dir.path().join("no/such/titan.prom"), "x").unwrap_err();
        assert!(e.to_string().starts_with("cannot write `"), "{e}");
    }

    #[test]
    fn the_push_url_carries_the_grouping_key() {
        let gw = Url::parse("http://127.0.0.1:9091/").unwrap();
        let url = push_url(&gw, "titan_connector", &[("shard", "1_of_3".into())]).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9091/metrics/job/titan_connector/shard/1_of_3"
        );
        let odd = push_url(&gw, "a/b c", &[]).unwrap();
        assert_eq!(odd.as_str(), "http://127.0.0.1:9091/metrics/job/a%2Fb%20c");
    }
}
