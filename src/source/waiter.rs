//! Waits for one execution to reach a terminal status by polling
//! `GET /api/v1/executions/:id` with growing, jittered intervals. Invariant:
//! the wait is bounded by `max_wait` (one last poll happens at the deadline);
//! `paused` and unknown statuses keep waiting.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{debug, info};

use crate::api::{ApiError, Execution, TitanClient};

/// How often and how long to poll. Defaults: 3 s (Titan's documented poll
/// interval) growing ×1.5 to 30 s, 10 % jitter, at most 1 h.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct WaitPolicy {
    #[serde(with = "humantime_serde")]
    pub initial_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    /// Interval growth per poll (values below 1 are treated as 1).
    pub multiplier: f64,
    /// Fraction of each interval that is random: drawn from `[i·(1−jitter), i]`,
    /// so concurrent waiters spread out.
    pub jitter: f64,
    /// Give up (`WaitError::TimedOut`) after this long.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy {
            initial_interval: Duration::from_secs(3),
            max_interval: Duration::from_secs(30),
            multiplier: 1.5,
            jitter: 0.1,
            max_wait: Duration::from_secs(3600),
        }
    }
}

impl WaitPolicy {
    /// Nominal interval before poll number `n` (0-based), before jitter.
    fn nominal(&self, n: u32) -> f64 {
        let exp = n.min(i32::MAX as u32) as i32;
        let cap = self.max_interval.as_secs_f64();
        let secs = self.initial_interval.as_secs_f64() * self.multiplier.max(1.0).powi(exp);
        if secs.is_finite() { secs.min(cap) } else { cap }
    }
}

/// Why a wait ended without a terminal status.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error(
        "execution {execution_id} still `{last_status}` after waiting {}",
        humantime::format_duration(for_humans(*waited))
    )]
    TimedOut {
        execution_id: String,
        waited: Duration,
        last_status: String,
    },
    #[error("polling execution {execution_id} failed")]
    Api {
        execution_id: String,
        #[source]
        source: ApiError,
    },
}

/// Whole seconds from 10 s up, milliseconds below: readable, still precise for short waits.
fn for_humans(d: Duration) -> Duration {
    if d >= Duration::from_secs(10) {
        Duration::from_secs(d.as_secs())
    } else {
        Duration::from_millis(d.as_millis() as u64)
    }
}

/// Polls GET /executions/:id until a terminal status (completed, completed_with_errors, failed,
/// cancelled); paused and unknown statuses keep waiting; bounded by max_wait.
pub async fn wait_for_terminal(
    client: &TitanClient,
    execution_id: &str,
    policy: &WaitPolicy,
) -> Result<Execution, WaitError> {
    let started = Instant::now();
    let exec = poll(client, execution_id).await?;
    wait_loop(client, execution_id.to_owned(), exec, policy, started).await
}

/// Same, but takes an already-fetched execution to avoid a first poll when it is already terminal.
pub async fn wait_from(
    client: &TitanClient,
    exec: Execution,
    policy: &WaitPolicy,
) -> Result<Execution, WaitError> {
    let id = exec.id.clone();
    wait_loop(client, id, exec, policy, Instant::now()).await
}

async fn wait_loop(
    client: &TitanClient,
    execution_id: String,
    mut exec: Execution,
    policy: &WaitPolicy,
    started: Instant,
) -> Result<Execution, WaitError> {
    let deadline = started + policy.max_wait;
    let mut polls = 0u32;
    while !exec.status.is_terminal() {
        let now = Instant::now();
        if now >= deadline {
            return Err(WaitError::TimedOut {
                waited: now - started,
                last_status: exec.status.as_str().to_owned(),
                execution_id,
            });
        }
        let interval = {
            let mut rng = rand::rng();
            crate::api::jittered_secs(policy.nominal(polls), policy.jitter, &mut rng)
        };
        tokio::time::sleep_until((now + interval).min(deadline)).await;
        polls = polls.saturating_add(1);
        let next = poll(client, &execution_id).await?;
        if next.status != exec.status {
            debug!(execution_id, from = %exec.status, to = %next.status, "Execution status changed");
        }
        exec = next;
    }
    info!(execution_id, status = %exec.status, waited_ms = started.elapsed().as_millis() as u64, "Execution finished");
    Ok(exec)
}

async fn poll(client: &TitanClient, execution_id: &str) -> Result<Execution, WaitError> {
    client
        .get_execution(execution_id)
        .await
        .map_err(|source| WaitError::Api {
            execution_id: execution_id.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::testutil::{self, TestServer};
    use crate::api::{ApiConfig, ExecutionStatus, RetryPolicy};
    use axum::Router;
    use axum::extract::State;
    use axum::routing::get;
    use serde_json::json;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn fast_policy(max_wait: Duration) -> WaitPolicy {
        WaitPolicy {
            initial_interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(40),
            multiplier: 2.0,
            jitter: 0.1,
            max_wait,
        }
    }

    /// Serves `statuses` in order for execution `e1`, repeating the last one.
    async fn scripted(
        statuses: &'static [&'static str],
    ) -> (TestServer, TitanClient, Arc<AtomicUsize>) {
        let polls = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route(
                "/api/v1/executions/e1",
                get(move |State(polls): State<Arc<AtomicUsize>>| async move {
                    let n = polls.fetch_add(1, Ordering::SeqCst);
                    let status = statuses[n.min(statuses.len() - 1)];
                    testutil::ok(json!({"id": "e1", "task_id": "t1", "status": status}))
                }),
            )
            .with_state(Arc::clone(&polls));
        let server = TestServer::start(app).await;
        let client = TitanClient::new(testutil::config(&server)).expect("client");
        (server, client, polls)
    }

    #[tokio::test]
    async fn waits_through_queued_running_paused_until_completed() {
        let (_server, client, polls) =
            scripted(&["queued", "running", "paused", "paused", "completed"]).await;
        let exec = wait_for_terminal(&client, "e1", &fast_policy(Duration::from_secs(5)))
            .await
            .expect("completes");
        assert_eq!(exec.status, ExecutionStatus::Completed);
        assert_eq!(exec.task_id.as_deref(), Some("t1"));
        assert_eq!(polls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn unknown_status_keeps_waiting_and_failure_is_terminal() {
        let (_server, client, polls) = scripted(&["provisioning", "failed"]).await;
        let exec = wait_for_terminal(&client, "e1", &fast_policy(Duration::from_secs(5)))
            .await
            .expect("terminal");
        assert_eq!(exec.status, ExecutionStatus::Failed);
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn times_out_with_the_last_status() {
        let (_server, client, polls) = scripted(&["queued", "paused"]).await;
        let started = std::time::Instant::now();
        let err = wait_for_terminal(&client, "e1", &fast_policy(Duration::from_millis(200)))
            .await
            .expect_err("never terminal");
        let elapsed = started.elapsed();
        match &err {
            WaitError::TimedOut {
                execution_id,
                waited,
                last_status,
            } => {
                assert_eq!(execution_id, "e1");
                assert_eq!(last_status, "paused");
                assert!(*waited >= Duration::from_millis(200), "{waited:?}");
            }
            other => panic!("expected TimedOut, got {other:?}"),
        }
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        // 200 ms at 10..40 ms intervals: several polls, the last at the deadline.
        assert!(polls.load(Ordering::SeqCst) >= 5);
        let msg = err.to_string();
        assert!(
            msg.starts_with("execution e1 still `paused` after waiting 2"),
            "{msg}"
        );
        assert!(msg.ends_with("ms"), "{msg}");
        assert_eq!(for_humans(Duration::from_millis(61_500)).as_secs(), 61);
        assert_eq!(
            humantime::format_duration(for_humans(Duration::from_micros(1_234_567))).to_string(),
            "1s 234ms"
        );
    }

    #[tokio::test]
    async fn already_terminal_execution_is_not_polled() {
        let (_server, client, polls) = scripted(&["running"]).await;
        let exec = Execution {
            id: "e1".into(),
            status: ExecutionStatus::Cancelled,
            ..Execution::default()
        };
        let out = wait_from(&client, exec.clone(), &fast_policy(Duration::from_secs(1)))
            .await
            .expect("terminal");
        assert_eq!(out, exec);
        assert_eq!(polls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn api_failure_ends_the_wait() {
        let app = Router::new().route(
            "/api/v1/executions/gone",
            get(|| async { testutil::err(404, "NOT_FOUND", "no such execution") }),
        );
        let server = TestServer::start(app).await;
        let cfg = ApiConfig {
            retry: RetryPolicy {
                initial_backoff: Duration::from_millis(1),
                ..RetryPolicy::default()
            },
            ..testutil::config(&server)
        };
        let client = TitanClient::new(cfg).expect("client");
        let err = wait_for_terminal(&client, "gone", &fast_policy(Duration::from_secs(1)))
            .await
            .expect_err("404");
        match err {
            WaitError::Api {
                execution_id,
                source,
            } => {
                assert_eq!(execution_id, "gone");
                assert_eq!(source.status(), Some(404));
                assert_eq!(source.attempts(), 1);
            }
            other => panic!("expected Api, got {other:?}"),
        }
    }

    #[test]
    fn intervals_grow_and_cap() {
        let p = WaitPolicy::default();
        let nominal: Vec<f64> = (0..8).map(|n| p.nominal(n)).collect();
        assert_eq!(nominal[..4], [3.0, 4.5, 6.75, 10.125]);
        assert_eq!(nominal[7], 30.0);
        assert_eq!(p.nominal(u32::MAX), 30.0);
    }
}
