//! OpenLineage run events (spec 2-0-2): a START when a run begins, then one COMPLETE, FAIL
//! or ABORT when it ends, sent over HTTP to a lineage service (Marquez, DataHub, Airflow's
//! provider setup…) and/or appended to a file, one event per line.
//!
//! This module owns the settings ([`LineageSettings`], resolved by `config`), the
//! [`LineageRun`] that the binary drives around a run, and the two halves below it:
//! [`event`] builds the JSON from the configuration and the run report (pure functions),
//! [`transport`] delivers it. Invariants: lineage never fails a run and never holds it up
//! for longer than the transports' documented bound (attempts × timeout plus backoff);
//! a delivery that does not succeed within it is a warning. Events carry no token, API
//! key or store credential: they are built from the report and redacted URLs only.

pub mod event;
pub mod transport;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use url::Url;
use uuid::Uuid;

use crate::report::RunReport;
pub use event::{EventContext, EventType, JobRef};
pub use transport::{Delivery, LineageError};

/// Default `lineage.endpoint`: the path of the OpenLineage HTTP API under `lineage.url`.
pub const DEFAULT_ENDPOINT: &str = "api/v1/lineage";
/// Default `lineage.namespace` (the OpenLineage clients' default too).
pub const DEFAULT_NAMESPACE: &str = "default";
/// Default per-attempt timeout of the HTTP transport.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default attempts per event, the first included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// An OpenLineage API key: sent as `Authorization: Bearer …`, never shown.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// `None` for a blank key.
    pub fn new(key: &str) -> Option<ApiKey> {
        let k = key.trim();
        (!k.is_empty()).then(|| ApiKey(k.to_string()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// Where events go. Both may be set: each event is then sent to both.
#[derive(Debug, Clone, Default)]
pub struct Transports {
    /// `<lineage.url>/<lineage.endpoint>`, with its key and bounds.
    pub http: Option<HttpSettings>,
    /// A file that gets one JSON event per line, appended.
    pub file: Option<PathBuf>,
}

/// The HTTP transport: POST each event, bounded retries.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The full endpoint URL (`http://marquez:5000/api/v1/lineage`).
    pub endpoint: Url,
    pub api_key: Option<ApiKey>,
    /// Per attempt, connect to last byte of the answer.
    pub timeout: Duration,
    /// Attempts per event, the first included (≥ 1).
    pub max_attempts: u32,
}

impl HttpSettings {
    /// The longest one event can take to be delivered or given up: every attempt timing
    /// out, plus the pauses between them.
    pub fn bound(&self) -> Duration {
        self.timeout * self.max_attempts + transport::backoff_total(self.max_attempts)
    }
}

/// The parent run (an Airflow task instance, usually): `namespace/name/run id`, the form
/// of `OPENLINEAGE_PARENT_ID` and of the Airflow provider's `lineage_parent_id` macro.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRef {
    pub namespace: String,
    pub name: String,
    pub run_id: Uuid,
}

impl std::str::FromStr for RunRef {
    type Err = String;

    /// The run id is what follows the last `/`, the namespace what precedes the first one
    /// (Airflow job names, `dag.task`, hold no `/`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let shape = || format!("`{s}` is not `namespace/job name/run id`");
        let (rest, run) = s.rsplit_once('/').ok_or_else(shape)?;
        let (namespace, name) = rest.split_once('/').ok_or_else(shape)?;
        if namespace.is_empty() || name.is_empty() {
            return Err(shape());
        }
        let run_id = Uuid::parse_str(run).map_err(|e| format!("`{run}` is not a UUID: {e}"))?;
        Ok(RunRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
            run_id,
        })
    }
}

/// The resolved `[lineage]` section: present only when lineage is on.
#[derive(Debug, Clone)]
pub struct LineageSettings {
    pub transports: Transports,
    /// The job's namespace (`OPENLINEAGE_NAMESPACE`).
    pub namespace: String,
    /// The job's name; by default `titan_connector.<config file stem>`.
    pub job_name: String,
    /// `OPENLINEAGE_PARENT_ID`: the run this one hangs under.
    pub parent: Option<RunRef>,
    /// `OPENLINEAGE_ROOT_PARENT_ID`: the top of that hierarchy (the Airflow DAG run).
    pub root_parent: Option<RunRef>,
}

/// The lineage of one run, between its START and its end event.
///
/// START is sent in the background as the run begins, so a slow receiver delays nothing
/// but the end; the end event waits for START first (events of a run must arrive in
/// order), then is sent within the same bound.
pub struct LineageRun {
    ctx: Arc<EventContext>,
    delivery: Arc<Delivery>,
    start: Option<JoinHandle<()>>,
}

impl LineageRun {
    /// Builds the START event of run `run_id` and sends it in the background.
    pub fn begin(
        settings: &LineageSettings,
        cfg: &crate::config::Config,
        run_id: Uuid,
    ) -> LineageRun {
        let ctx = Arc::new(EventContext::new(settings, cfg, run_id));
        let delivery = Arc::new(Delivery::new(&settings.transports));
        let start = {
            let ctx = Arc::clone(&ctx);
            let delivery = Arc::clone(&delivery);
            tokio::spawn(async move {
                let ev = event::start_event(&ctx, &crate::report::now_rfc3339());
                delivery.deliver(&ev).await;
            })
        };
        LineageRun {
            ctx,
            delivery,
            start: Some(start),
        }
    }

    /// Sends COMPLETE, FAIL (some executions or tasks failed) or ABORT (interrupted)
    /// with the run's inputs and outputs.
    pub async fn finish(mut self, report: &RunReport) {
        self.wait_for_start().await;
        let ev = event::end_event(&self.ctx, report);
        self.delivery.deliver(&ev).await;
    }

    /// Sends FAIL for a run that ended without a report (`error` says why).
    pub async fn fail(mut self, error: &str) {
        self.wait_for_start().await;
        let ev = event::fail_event(&self.ctx, error, &crate::report::now_rfc3339());
        self.delivery.deliver(&ev).await;
    }

    async fn wait_for_start(&mut self) {
        if let Some(h) = self.start.take() {
            // The task only delivers; it cannot panic short of a bug, and then there is
            // nothing to deliver in order after it anyway.
            let _ = h.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_ids_parse_as_airflow_writes_them() {
        let r: RunRef = "airflow/titan_ingest.ingest/01931f5e-0b2a-7c3d-9e4f-5a6b7c8d9e0f"
            .parse()
            .unwrap();
        assert_eq!(
            r,
            RunRef {
                namespace: "airflow".into(),
                name: "titan_ingest.ingest".into(),
                run_id: Uuid::parse_str("01931f5e-0b2a-7c3d-9e4f-5a6b7c8d9e0f").unwrap(),
            }
        );
        for (bad, says) in [
            (
                "airflow/01931f5e-0b2a-7c3d-9e4f-5a6b7c8d9e0f",
                "is not `namespace/job name/run id`",
            ),
            (
                "/job/01931f5e-0b2a-7c3d-9e4f-5a6b7c8d9e0f",
                "is not `namespace/job name/run id`",
            ),
            ("ns/job/not-a-uuid", "`not-a-uuid` is not a UUID"),
        ] {
            let e = bad.parse::<RunRef>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn the_api_key_never_shows_in_debug_output() {
        let s = HttpSettings {
            endpoint: Url::parse("http://127.0.0.1:5000/api/v1/lineage").unwrap(),
            api_key: ApiKey::new("ol-key-SECRET"),
            timeout: Duration::from_millis(300),
            max_attempts: 3,
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("ApiKey([redacted])"), "{shown}");
        assert_eq!(ApiKey::new("  ").map(|k| k.0), None);
        // 3 attempts of 300 ms plus the two pauses between them.
        assert_eq!(
            s.bound(),
            Duration::from_millis(900) + transport::backoff_total(3)
        );
    }
}
